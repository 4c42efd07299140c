//! Push notifications to registered devices: a [`PushProvider`] for the runtime that turns an
//! update which reached no live session of its user into Telegram's push payload
//! (core.telegram.org/api/push-updates: `loc_key`, `loc_args`, and `custom` with `from_id`
//! and `msg_id`) and hands it, once per device the user registered
//! (`account.registerDevice`), to a [`DevicePusher`]: the application's APNs, FCM or web-push
//! client.
//!
//! Only new messages are pushed (`MESSAGE_TEXT`, or `MESSAGE_NOTEXT` for media alone); status,
//! read and edit updates are not worth waking a phone for. Payloads are not encrypted with
//! the device's `secret` here: that is the pusher's business, as it is the pusher that knows
//! the provider's format.

use std::sync::{Arc, Mutex, PoisonError};

use columba_mtproto::tl::Deserializable as _;
use columba_mtproto::tl::api::enums;
use columba_session::plugins::{BoxFuture, DeliveryError, Notification, PushProvider};
use columba_store::UserStore;
use columba_store::user::Device;

/// The longest message text carried in a payload, in characters (the rest is cut: a
/// notification shows a preview).
pub const MAX_PREVIEW_CHARS: usize = 256;

/// One notification for one user, as Telegram's push payload describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushPayload {
    /// The user it is for.
    pub user_id: i64,
    /// What kind of notification (`MESSAGE_TEXT`, `MESSAGE_NOTEXT`; for secret chats
    /// `ENCRYPTION_REQUEST`, `ENCRYPTION_ACCEPT`, `ENCRYPTED_MESSAGE`, which carry no text).
    pub loc_key: String,
    /// The strings the client puts in its localised text: the sender's name, then the text.
    pub loc_args: Vec<String>,
    /// The sender.
    pub from_id: i64,
    /// The message id, in the recipient's box (0 for a secret chat's notification).
    pub msg_id: i32,
    /// The secret chat a notification is about (`custom.encryption_id`).
    pub encryption_id: Option<i32>,
}

impl PushPayload {
    /// The payload as the JSON object Telegram's clients read (the `data` of an FCM
    /// message): `loc_key`, `loc_args`, `user_id`, and `custom` with `from_id` and `msg_id`
    /// (a secret chat's: `encryption_id`, and `from_id` when known).
    pub fn to_json(&self) -> String {
        let args = self
            .loc_args
            .iter()
            .map(|arg| json_string(arg))
            .collect::<Vec<_>>()
            .join(",");
        let custom = match self.encryption_id {
            Some(id) if self.from_id != 0 => {
                format!(
                    "\"encryption_id\":\"{id}\",\"from_id\":\"{}\"",
                    self.from_id
                )
            }
            Some(id) => format!("\"encryption_id\":\"{id}\""),
            None => format!(
                "\"from_id\":\"{}\",\"msg_id\":\"{}\"",
                self.from_id, self.msg_id
            ),
        };
        format!(
            "{{\"loc_key\":{},\"loc_args\":[{args}],\"user_id\":\"{}\",\"custom\":{{{custom}}}}}",
            json_string(&self.loc_key),
            self.user_id,
        )
    }
}

/// `text` as a JSON string, quoted and escaped.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The application's push client: delivers one payload to one device.
pub trait DevicePusher: Send + Sync + 'static {
    /// Sends `payload` to `device` (its token type says which service).
    fn send(
        &self,
        device: &Device,
        payload: &PushPayload,
    ) -> BoxFuture<'_, Result<(), DeliveryError>>;
}

/// A [`DevicePusher`] that logs each push (development).
#[derive(Debug, Default, Clone, Copy)]
pub struct LoggingPusher;

impl DevicePusher for LoggingPusher {
    fn send(
        &self,
        device: &Device,
        payload: &PushPayload,
    ) -> BoxFuture<'_, Result<(), DeliveryError>> {
        tracing::info!(
            token_type = device.token_type,
            user_id = payload.user_id,
            payload = %payload.to_json(),
            "push"
        );
        Box::pin(async { Ok(()) })
    }
}

/// A [`DevicePusher`] that keeps every push in memory (tests).
#[derive(Debug, Default, Clone)]
pub struct RecordingPusher {
    sent: Arc<Mutex<Vec<(Device, PushPayload)>>>,
}

impl RecordingPusher {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every push so far, in order.
    pub fn sent(&self) -> Vec<(Device, PushPayload)> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl DevicePusher for RecordingPusher {
    fn send(
        &self,
        device: &Device,
        payload: &PushPayload,
    ) -> BoxFuture<'_, Result<(), DeliveryError>> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((device.clone(), payload.clone()));
        Box::pin(async { Ok(()) })
    }
}

/// The runtime's [`PushProvider`] over the user store's devices and a [`DevicePusher`].
pub struct DevicePush {
    users: Arc<dyn UserStore>,
    pusher: Arc<dyn DevicePusher>,
}

impl std::fmt::Debug for DevicePush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevicePush").finish_non_exhaustive()
    }
}

impl DevicePush {
    /// Pushes to the devices of `users` through `pusher`.
    pub fn new(users: Arc<dyn UserStore>, pusher: Arc<dyn DevicePusher>) -> Self {
        Self { users, pusher }
    }
}

/// The payload of a secret chat's event in `updates`, if it holds one: a request, an
/// acceptance, or a new encrypted message (Telegram's loc keys; no text, the server has
/// none).
fn secret_payload(user_id: i64, updates: &enums::Updates) -> Option<PushPayload> {
    let list: &[enums::Update] = match updates {
        enums::Updates::Updates(updates) => &updates.updates,
        enums::Updates::UpdateShort(short) => std::slice::from_ref(&short.update),
        _ => return None,
    };
    let (loc_key, from_id, encryption_id) = list.iter().find_map(|update| match update {
        enums::Update::UpdateEncryption(update) => match &update.chat {
            enums::EncryptedChat::EncryptedChatRequested(chat) => {
                Some(("ENCRYPTION_REQUEST", chat.admin_id, chat.id))
            }
            enums::EncryptedChat::EncryptedChat(chat) => {
                Some(("ENCRYPTION_ACCEPT", chat.participant_id, chat.id))
            }
            _ => None,
        },
        enums::Update::UpdateNewEncryptedMessage(update) => {
            let chat_id = match &update.message {
                enums::EncryptedMessage::EncryptedMessage(message) => message.chat_id,
                enums::EncryptedMessage::EncryptedMessageService(message) => message.chat_id,
            };
            Some(("ENCRYPTED_MESSAGE", 0, chat_id))
        }
        _ => None,
    })?;
    Some(PushPayload {
        user_id,
        loc_key: loc_key.to_owned(),
        loc_args: Vec::new(),
        from_id,
        msg_id: 0,
        encryption_id: Some(encryption_id),
    })
}

/// The payload of a new message to `user_id`, if `update` (TL bytes of an `Updates`) holds
/// one (or of a secret chat's request, acceptance or message); the sender's name is looked
/// up by `name_of`.
pub fn payload_of(
    user_id: i64,
    update: &[u8],
    name_of: impl Fn(i64) -> Option<String>,
) -> Option<PushPayload> {
    let updates = enums::Updates::from_bytes(update).ok()?;
    if let Some(payload) = secret_payload(user_id, &updates) {
        return Some(payload);
    }
    let (message, users) = match &updates {
        enums::Updates::Updates(updates) => (
            updates.updates.iter().find_map(|update| match update {
                enums::Update::UpdateNewMessage(new) => Some(&new.message),
                _ => None,
            })?,
            &updates.users,
        ),
        _ => return None,
    };
    let enums::Message::Message(message) = message else {
        return None;
    };
    if message.out {
        return None;
    }
    let from_id = match message.from_id.as_ref().unwrap_or(&message.peer_id) {
        enums::Peer::PeerUser(peer) => peer.user_id,
        _ => return None,
    };
    let name = users
        .iter()
        .find_map(|user| match user {
            enums::User::User(user) if user.id == from_id => {
                let first = user.first_name.clone().unwrap_or_default();
                Some(match &user.last_name {
                    Some(last) => format!("{first} {last}"),
                    None => first,
                })
            }
            _ => None,
        })
        .or_else(|| name_of(from_id))
        .unwrap_or_default();
    let text: String = message.message.chars().take(MAX_PREVIEW_CHARS).collect();
    let (loc_key, loc_args) = if text.is_empty() {
        ("MESSAGE_NOTEXT", vec![name])
    } else {
        ("MESSAGE_TEXT", vec![name, text])
    };
    Some(PushPayload {
        user_id,
        loc_key: loc_key.to_owned(),
        loc_args,
        from_id,
        msg_id: message.id,
        encryption_id: None,
    })
}

impl PushProvider for DevicePush {
    fn push(&self, notification: Notification) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async move {
            let user_id = notification.user_id;
            let users = self.users.clone();
            // Store reads block: off the async worker.
            let found = tokio::task::spawn_blocking(move || {
                let devices = users.devices(user_id)?;
                if devices.is_empty() {
                    return Ok::<_, columba_store::UserError>(None);
                }
                let name_of = |id| {
                    users.account(id).ok().flatten().map(|account| {
                        format!("{} {}", account.first_name, account.last_name)
                            .trim()
                            .to_owned()
                    })
                };
                Ok(payload_of(user_id, &notification.update, name_of).map(|p| (devices, p)))
            })
            .await
            .map_err(DeliveryError::unavailable)?
            .map_err(DeliveryError::unavailable)?;
            let Some((devices, payload)) = found else {
                return Ok(());
            };
            let mut failure = None;
            for device in &devices {
                if let Err(error) = self.pusher.send(device, &payload).await {
                    failure = Some(error);
                }
            }
            failure.map_or(Ok(()), Err)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use columba_mtproto::tl::Serializable as _;
    use columba_mtproto::tl::api::types;
    use columba_store::MemoryUserStore;

    use super::*;

    fn new_message(from: i64, to: i64, text: &str, out: bool) -> Vec<u8> {
        let mut message =
            types::Message::new(7, crate::objects::peer_user(from), 1, text.to_owned());
        message.out = out;
        message.from_id = Some(crate::objects::peer_user(from));
        let _ = to;
        let update: enums::Update = types::UpdateNewMessage {
            message: message.into(),
            pts: 1,
            pts_count: 1,
        }
        .into();
        crate::objects::updates(vec![update], Vec::new(), 1).to_bytes()
    }

    #[test]
    fn secret_chat_events_have_telegrams_keys_and_no_text() {
        let request: enums::Updates = types::UpdateShort {
            update: types::UpdateEncryption {
                chat: types::EncryptedChatRequested {
                    folder_id: None,
                    id: 77,
                    access_hash: 1,
                    date: 1,
                    admin_id: 5,
                    participant_id: 6,
                    g_a: vec![1; 256],
                }
                .into(),
                date: 1,
            }
            .into(),
            date: 1,
        }
        .into();
        let payload = payload_of(6, &request.to_bytes(), |_| None).unwrap();
        assert_eq!(payload.loc_key, "ENCRYPTION_REQUEST");
        assert_eq!((payload.from_id, payload.encryption_id), (5, Some(77)));
        assert!(payload.loc_args.is_empty());
        assert_eq!(
            payload.to_json(),
            "{\"loc_key\":\"ENCRYPTION_REQUEST\",\"loc_args\":[],\"user_id\":\"6\",\"custom\":{\"encryption_id\":\"77\",\"from_id\":\"5\"}}"
        );
        let message: enums::Updates = types::UpdateShort {
            update: types::UpdateNewEncryptedMessage {
                message: types::EncryptedMessageService {
                    random_id: 1,
                    chat_id: 77,
                    date: 1,
                    bytes: vec![9; 64],
                }
                .into(),
                qts: 2,
            }
            .into(),
            date: 1,
        }
        .into();
        let payload = payload_of(6, &message.to_bytes(), |_| None).unwrap();
        assert_eq!(payload.loc_key, "ENCRYPTED_MESSAGE");
        assert_eq!(payload.encryption_id, Some(77));
        assert!(
            payload
                .to_json()
                .contains("\"custom\":{\"encryption_id\":\"77\"}")
        );
    }

    #[tokio::test]
    async fn a_new_message_is_pushed_to_each_device_and_nothing_else_is() {
        let users = Arc::new(MemoryUserStore::new());
        let ann = users.create_account("1555", "Ann", "Lee").unwrap();
        let bo = users.create_account("1556", "Bo", "").unwrap();
        users
            .register_device(bo.id, &Device::new(1, 2, "fcm-token"))
            .unwrap();
        users
            .register_device(bo.id, &Device::new(1, 1, "apns-token"))
            .unwrap();
        let pusher = RecordingPusher::new();
        let push = DevicePush::new(users.clone(), Arc::new(pusher.clone()));
        let update = new_message(ann.id, bo.id, "hi \"there\"\n", false);
        push.push(Notification::new(bo.id, update.clone().into()))
            .await
            .unwrap();
        let sent = pusher.sent();
        assert_eq!(sent.len(), 2, "one push per device");
        let payload = &sent[0].1;
        assert_eq!(payload.loc_key, "MESSAGE_TEXT");
        assert_eq!(
            payload.loc_args,
            vec!["Ann Lee".to_owned(), "hi \"there\"\n".to_owned()]
        );
        assert_eq!(
            (payload.from_id, payload.msg_id, payload.user_id),
            (ann.id, 7, bo.id)
        );
        assert_eq!(
            payload.to_json(),
            format!(
                "{{\"loc_key\":\"MESSAGE_TEXT\",\"loc_args\":[\"Ann Lee\",\"hi \\\"there\\\"\\n\"],\"user_id\":\"{}\",\"custom\":{{\"from_id\":\"{}\",\"msg_id\":\"7\"}}}}",
                bo.id, ann.id
            )
        );
        // Ann has no device; a status update and an outgoing copy are not pushed.
        push.push(Notification::new(ann.id, update.into()))
            .await
            .unwrap();
        let out = new_message(ann.id, bo.id, "mine", true);
        push.push(Notification::new(bo.id, out.into()))
            .await
            .unwrap();
        let status: enums::Updates = types::UpdateShort {
            update: types::UpdateUserStatus {
                user_id: ann.id,
                status: types::UserStatusOnline { expires: 5 }.into(),
            }
            .into(),
            date: 1,
        }
        .into();
        push.push(Notification::new(bo.id, status.to_bytes().into()))
            .await
            .unwrap();
        push.push(Notification::new(bo.id, vec![1, 2, 3].into()))
            .await
            .unwrap();
        assert_eq!(pusher.sent().len(), 2);
    }
}
