//! `@echo` in secret chats: a device of the echo user that accepts every secret chat asked of
//! it and sends back every text and file, encrypted end to end.
//!
//! The echo's device is one of the relay's devices like any client's, with an id of its own
//! ([`ECHO_DEVICE`]) in place of a permanent auth key. It runs `columba-mtproto`'s sans-IO
//! [`SecretChat`] for each chat: the key exchange (it accepts, with the relay's DH group and
//! its own random), sequence numbers with their `Resend` both ways, layers, and re-keying
//! (it starts one after 100 messages under a key, as the spec asks). Its queue is read after
//! each send into one of its chats; what it sends goes through the same relay functions as
//! a client's request.
//!
//! A file is echoed by sending the same encrypted file back (`inputEncryptedFile`) with the
//! same key and iv inside the message: the echo can read the file, but need not copy it.
//!
//! The chats' keys live in memory: a restart loses them, so a start closes the echo's chats
//! that are still open ([`SecretEcho::close_all`]), and their users see them closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use columba_api::secret::{self, Ciphertext, Device, Relay};
use columba_api::{ApiError, Backend, Ctx, Router};
use columba_mtproto::e2e::chat::ChatLimits;
use columba_mtproto::e2e::{Outgoing, SecretChat, Side, exchange};
use columba_mtproto::tl::api::{enums, functions, types};
use columba_mtproto::tl::secret as e2e_tl;
use columba_session::runtime::ServerHandle;
use columba_store::secret::{SecretChatState, SecretKind};
use rand::RngCore as _;

use super::users::ECHO_USER_ID;

/// The echo's device: its id in the relay (an auth_key_id no client can have but by a
/// 2^-64 chance, as any two keys).
pub const ECHO_DEVICE: i64 = 0x6563_686f_5345_4352;

/// Queue entries read at a time.
const QUEUE_PAGE: usize = 100;

/// One chat of the echo.
struct EchoChat {
    access_hash: i64,
    chat: SecretChat,
    /// When the current key was agreed, and its generation then.
    keyed_at: Instant,
    generation: u32,
}

/// The echo's secret-chat device.
pub struct SecretEcho {
    backend: Arc<Backend>,
    relay: Arc<Relay>,
    chats: Mutex<HashMap<i32, EchoChat>>,
}

impl std::fmt::Debug for SecretEcho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretEcho").finish_non_exhaustive()
    }
}

fn device() -> Device {
    Device {
        user: ECHO_USER_ID,
        key: ECHO_DEVICE,
    }
}

impl SecretEcho {
    /// The echo's device over `backend`.
    pub fn new(backend: Arc<Backend>) -> Arc<Self> {
        Arc::new(Self {
            relay: Relay::new(backend.clone()),
            backend,
            chats: Mutex::new(HashMap::new()),
        })
    }

    fn chats(&self) -> std::sync::MutexGuard<'_, HashMap<i32, EchoChat>> {
        // A chat's state is changed in whole steps by one holder at a time.
        self.chats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The relay's methods that concern the echo, wrapped: after a request to the echo it
    /// accepts; after a send into one of its chats it reads its queue.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route_with(
                self.clone(),
                |ctx: Ctx, echo: Arc<Self>, request: functions::messages::RequestEncryption| async move {
                    let to_echo = matches!(
                        &request.user_id,
                        enums::InputUser::InputUser(user) if user.user_id == ECHO_USER_ID
                    );
                    let id = request.random_id;
                    let answer =
                        secret::request_encryption(ctx.clone(), echo.relay.clone(), request)
                            .await?;
                    if to_echo {
                        let server = ctx.server().clone();
                        ctx.after(move || echo.accept(&server, id));
                    }
                    Ok(answer)
                },
            )
            .route_with(
                self.clone(),
                |ctx: Ctx, echo: Arc<Self>, request: functions::messages::SendEncrypted| async move {
                    let answer =
                        secret::send_encrypted(ctx.clone(), echo.relay.clone(), request).await?;
                    echo.read_after(&ctx);
                    Ok(answer)
                },
            )
            .route_with(
                self.clone(),
                |ctx: Ctx,
                 echo: Arc<Self>,
                 request: functions::messages::SendEncryptedService| async move {
                    let answer =
                        secret::send_encrypted_service(ctx.clone(), echo.relay.clone(), request)
                            .await?;
                    echo.read_after(&ctx);
                    Ok(answer)
                },
            )
            .route_with(
                self.clone(),
                |ctx: Ctx, echo: Arc<Self>, request: functions::messages::SendEncryptedFile| async move {
                    let answer =
                        secret::send_encrypted_file(ctx.clone(), echo.relay.clone(), request)
                            .await?;
                    echo.read_after(&ctx);
                    Ok(answer)
                },
            )
            .route_with(
                self.clone(),
                |ctx: Ctx, echo: Arc<Self>, request: functions::messages::DiscardEncryption| async move {
                    let id = request.chat_id;
                    let answer =
                        secret::discard_encryption(ctx.clone(), echo.relay.clone(), request)
                            .await?;
                    echo.forget_if_closed(id);
                    Ok(answer)
                },
            )
    }

    /// Reads the echo's queue after the answer, if the send was to the echo.
    fn read_after(self: &Arc<Self>, ctx: &Ctx) {
        let server = ctx.server().clone();
        let echo = self.clone();
        ctx.after(move || echo.read_queue(&server));
    }

    /// Drops chat `id` if the relay has it closed.
    fn forget_if_closed(&self, id: i32) {
        let closed = matches!(
            self.backend.secrets.chat_of(ECHO_USER_ID, id),
            Ok(Some(chat)) if matches!(chat.state, SecretChatState::Discarded { .. })
        );
        if closed {
            self.chats().remove(&id);
        }
    }

    /// Accepts the waiting request `id` to the echo. Blocking.
    fn accept(&self, server: &ServerHandle, id: i32) {
        if let Err(error) = self.try_accept(server, id) {
            tracing::warn!(%error, id, "the echo could not accept a secret chat");
        }
    }

    fn try_accept(&self, server: &ServerHandle, id: i32) -> Result<(), ApiError> {
        let Some(chat) = self.backend.secrets.chat_of(ECHO_USER_ID, id)? else {
            return Ok(());
        };
        if chat.state != SecretChatState::Waiting || chat.participant_id != ECHO_USER_ID {
            return Ok(());
        }
        let mut rng = rand::rng();
        let mut server_random = [0u8; 256];
        rng.fill_bytes(&mut server_random);
        let group = self.relay.group().clone();
        let (key, g_b) = exchange::accept(&group, &chat.g_a, &server_random, &mut rng)
            .map_err(|_| ApiError::bad_request("DH_G_A_INVALID"))?;
        let fingerprint = key.fingerprint();
        let mut chats = self.chats();
        secret::accept_as(
            server,
            &self.backend,
            device(),
            chat.id,
            chat.access_hash,
            &g_b,
            fingerprint,
        )?;
        let mut echo_chat = EchoChat {
            access_hash: chat.access_hash,
            chat: SecretChat::new(Side::Participant, key, group, ChatLimits::default()),
            keyed_at: Instant::now(),
            generation: 0,
        };
        // The first message of a chat says the layer this side speaks.
        let notify = echo_chat
            .chat
            .notify_layer(&mut rng)
            .map_err(|error| ApiError::internal(&error))?;
        self.send(server, chat.id, &echo_chat, notify, None)?;
        chats.insert(chat.id, echo_chat);
        tracing::info!(id, user = chat.admin_id, "the echo accepted a secret chat");
        Ok(())
    }

    /// Sends `outgoing` of chat `id`, with `file`. Blocking.
    fn send(
        &self,
        server: &ServerHandle,
        id: i32,
        chat: &EchoChat,
        outgoing: Outgoing,
        file: Option<enums::EncryptedFile>,
    ) -> Result<(), ApiError> {
        secret::send_as(
            server,
            &self.backend,
            device(),
            Ciphertext {
                chat_id: id,
                access_hash: chat.access_hash,
                random_id: outgoing.random_id,
                data: outgoing.data,
                kind: if outgoing.service {
                    SecretKind::Service
                } else {
                    SecretKind::Message
                },
            },
            file,
            false,
        )?;
        Ok(())
    }

    /// Reads and answers everything in the echo's queue, acknowledging it. Blocking.
    pub fn read_queue(&self, server: &ServerHandle) {
        // One reader at a time: a chat's messages must be taken in queue order.
        let mut chats = self.chats();
        loop {
            let entries = match self.backend.secrets.queue(ECHO_DEVICE, 0, QUEUE_PAGE) {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(%error, "the echo could not read its secret queue");
                    return;
                }
            };
            let Some(last) = entries.last().map(|entry| entry.qts) else {
                return;
            };
            for entry in &entries {
                let closed = match chats.get_mut(&entry.chat_id) {
                    Some(chat) => self.take(
                        server,
                        entry.chat_id,
                        chat,
                        &entry.data,
                        entry.file.as_deref(),
                    ),
                    // A chat of before a restart, or closed: nothing to answer.
                    None => false,
                };
                if closed {
                    chats.remove(&entry.chat_id);
                }
            }
            if let Err(error) = self.backend.secrets.acknowledge(ECHO_DEVICE, last) {
                tracing::warn!(%error, "the echo could not acknowledge its secret queue");
                return;
            }
        }
    }

    /// Takes one ciphertext of chat `id`; `true` if the chat had to be closed.
    fn take(
        &self,
        server: &ServerHandle,
        id: i32,
        chat: &mut EchoChat,
        data: &[u8],
        file: Option<&[u8]>,
    ) -> bool {
        let mut rng = rand::rng();
        let received = match chat.chat.receive(data, &mut rng) {
            Ok(Ok(received)) => received,
            Ok(Err(dropped)) => {
                tracing::debug!(%dropped, id, "the echo dropped a secret message");
                return false;
            }
            Err(error) => {
                tracing::warn!(%error, id, "a secret chat with the echo broke the rules");
                if let Err(error) =
                    secret::discard_as(server, &self.backend, ECHO_USER_ID, id, false)
                {
                    tracing::warn!(%error, id, "the echo could not close a secret chat");
                }
                return true;
            }
        };
        let mut outgoing: Vec<(Outgoing, Option<enums::EncryptedFile>)> = received
            .send
            .into_iter()
            .map(|outgoing| (outgoing, None))
            .collect();
        for message in received.messages {
            let Some((echoed, with_file)) = echo_of(&message, &mut rng) else {
                continue;
            };
            let file = match (with_file, file) {
                (true, Some(bytes)) => self.same_file(bytes),
                _ => None,
            };
            match chat.chat.send(echoed, &mut rng) {
                Ok(sending) => outgoing.push((sending, file)),
                Err(error) => tracing::warn!(%error, id, "the echo could not answer"),
            }
        }
        if chat.chat.key_generation() != chat.generation {
            chat.generation = chat.chat.key_generation();
            chat.keyed_at = Instant::now();
        }
        if chat.chat.needs_rekey(chat.keyed_at.elapsed().as_secs()) {
            match chat.chat.start_rekey(&mut rng) {
                Ok(Some(request)) => outgoing.push((request, None)),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, id, "the echo could not start a re-key"),
            }
        }
        for (message, file) in outgoing {
            if let Err(error) = self.send(server, id, chat, message, file) {
                tracing::warn!(%error, id, "the echo could not send in a secret chat");
            }
        }
        false
    }

    /// The file a message came with, to send back as it is (`inputEncryptedFile`).
    fn same_file(&self, stored: &[u8]) -> Option<enums::EncryptedFile> {
        use columba_mtproto::tl::Deserializable as _;
        let enums::EncryptedFile::EncryptedFile(file) =
            enums::EncryptedFile::from_bytes(stored).ok()?
        else {
            return None;
        };
        let input: enums::InputEncryptedFile = types::InputEncryptedFile {
            id: file.id,
            access_hash: file.access_hash,
        }
        .into();
        secret::input_file_as(&self.backend, ECHO_USER_ID, &input)
            .ok()
            .flatten()
    }

    /// Closes every chat of the echo the relay still has open (their keys were in memory
    /// and are gone). Blocking; run at start.
    pub fn close_all(&self, server: &ServerHandle) -> usize {
        let chats = match self.backend.secrets.chats_of(ECHO_USER_ID) {
            Ok(chats) => chats,
            Err(error) => {
                tracing::warn!(%error, "the echo could not list its secret chats");
                return 0;
            }
        };
        let mut closed = 0;
        for chat in chats {
            if matches!(chat.state, SecretChatState::Discarded { .. }) {
                continue;
            }
            if secret::discard_as(server, &self.backend, ECHO_USER_ID, chat.id, false).is_ok() {
                closed += 1;
            }
        }
        closed
    }
}

/// The echo of a message: the same text (and media, whose file goes back as it came), and
/// whether it carries a file. Service messages are not echoed.
fn echo_of(
    message: &e2e_tl::enums::DecryptedMessage,
    rng: &mut impl rand::RngCore,
) -> Option<(e2e_tl::enums::DecryptedMessage, bool)> {
    let (text, media) = match message {
        e2e_tl::enums::DecryptedMessage::DecryptedMessage(m) => {
            (m.message.clone(), m.media.clone())
        }
        e2e_tl::enums::DecryptedMessage::DecryptedMessage46(m) => (m.message.clone(), None),
        e2e_tl::enums::DecryptedMessage::DecryptedMessage23(m) => (m.message.clone(), None),
        e2e_tl::enums::DecryptedMessage::DecryptedMessage8(m) => (m.message.clone(), None),
        _ => return None,
    };
    let with_file = media.as_ref().is_some_and(|media| {
        matches!(
            media,
            e2e_tl::enums::DecryptedMessageMedia::DecryptedMessageMediaDocument(_)
                | e2e_tl::enums::DecryptedMessageMedia::DecryptedMessageMediaPhoto(_)
                | e2e_tl::enums::DecryptedMessageMedia::DecryptedMessageMediaVideo(_)
                | e2e_tl::enums::DecryptedMessageMedia::DecryptedMessageMediaAudio(_)
        )
    });
    let echoed = e2e_tl::types::DecryptedMessage {
        no_webpage: false,
        silent: false,
        random_id: rng.next_u64() as i64,
        ttl: 0,
        message: text,
        media,
        entities: None,
        via_bot_name: None,
        reply_to_random_id: None,
        grouped_id: None,
    };
    Some((echoed.into(), with_file))
}
