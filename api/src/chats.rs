//! Basic groups (`chat`, up to 200 members): `messages.createChat`, `addChatUser`,
//! `deleteChatUser`, `editChatTitle`, `getChats`, `getFullChat`, and the basic-group side of
//! sending, history and reading.
//!
//! As Telegram keeps them, a basic group's messages are stored in every member's common box
//! (each with its own id and pts there); the membership is the store's (`Peer::Chat`), the
//! title the store's opaque group info ([`ChannelInfo`], with `broadcast` unset). Every
//! change is a service message in the group, so each member's box records it and their
//! sessions are told like for any message in their box.
//!
//! Not yet: admins of basic groups (`editChatAdmin`), default rights, migration to a
//! supergroup, invite links.

use std::sync::Arc;

use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::{BoxId, Participant, Peer, Role, SendRequest, StoredMessage};

use crate::backend::Backend;
use crate::body::{Action, Body};
use crate::channels::{ChannelInfo, MAX_TITLE_CHARS, updates_with};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects::{self, now_unix};
use crate::router::Router;
use crate::updates::notify_after;

/// Every method of this module.
pub fn router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route_with(backend.clone(), create_chat)
        .route_with(backend.clone(), add_chat_user)
        .route_with(backend.clone(), delete_chat_user)
        .route_with(backend.clone(), edit_chat_title)
        .route_with(backend.clone(), get_chats)
        .route_with(backend, get_full_chat)
}

/// A basic group as one caller sees it.
#[derive(Debug, Clone)]
pub struct Chat {
    /// Its id.
    pub id: i64,
    /// Its title and origin.
    pub info: ChannelInfo,
    /// Its members, by join date.
    pub members: Vec<Participant>,
    /// The caller's record, if any.
    pub me: Option<Participant>,
}

impl Chat {
    /// `CHAT_FORBIDDEN` (Telegram's answer) unless the caller is a member.
    pub fn require_member(&self) -> Result<(), ApiError> {
        if self.me.as_ref().is_some_and(|me| me.role.is_member()) {
            Ok(())
        } else {
            Err(ApiError::forbidden("CHAT_FORBIDDEN"))
        }
    }

    /// Whether the caller created the group or is one of its admins.
    pub fn caller_is_admin(&self) -> bool {
        self.me.as_ref().is_some_and(|me| {
            me.role.is_member() && (self.info.creator == me.user_id || me.role == Role::Admin)
        })
    }

    fn member_ids(&self) -> Vec<i64> {
        self.members.iter().map(|p| p.user_id).collect()
    }
}

/// The basic group `id` as `viewer` sees it (`CHAT_ID_INVALID` when there is none).
/// Blocking.
pub fn load(backend: &Backend, viewer: i64, id: i64) -> Result<Chat, ApiError> {
    let invalid = || ApiError::bad_request("CHAT_ID_INVALID");
    if id <= 0 {
        return Err(invalid());
    }
    let peer = Peer::Chat(id);
    let bytes = backend.messages.group_info(peer)?.ok_or_else(invalid)?;
    let info = ChannelInfo::decode(&bytes).ok_or_else(|| ApiError::new(500, "INTERNAL"))?;
    let page = backend.messages.participants(
        peer,
        columba_store::message::ParticipantFilter::Recent,
        0,
        columba_store::message::MAX_PAGE,
    )?;
    let mut members = page.participants;
    members.reverse();
    Ok(Chat {
        id,
        info,
        me: backend.messages.participant(peer, viewer)?,
        members,
    })
}

/// The `chat` object of a basic group as its caller sees it.
pub fn chat_object(chat: &Chat) -> enums::Chat {
    let mut object = types::Chat::new(
        chat.id,
        chat.info.title.clone(),
        types::ChatPhotoEmpty {}.into(),
        i32::try_from(chat.members.len()).unwrap_or(i32::MAX),
        chat.info.date,
        1,
    );
    object.creator = chat.info.creator == chat.me.as_ref().map_or(0, |me| me.user_id);
    object.left = !chat.me.as_ref().is_some_and(|me| me.role.is_member());
    object.into()
}

/// The chat objects of the basic groups `messages` belong to, as `viewer` sees them
/// (groups that no longer exist left out). Blocking.
pub fn chats_of(
    backend: &Backend,
    messages: &[StoredMessage],
    viewer: i64,
) -> Result<Vec<enums::Chat>, ApiError> {
    let mut ids: Vec<i64> = messages
        .iter()
        .filter_map(|m| match m.peer {
            Peer::Chat(id) => Some(id),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut chats = Vec::with_capacity(ids.len());
    for id in ids {
        if let Ok(chat) = load(backend, viewer, id) {
            chats.push(chat_object(&chat));
        }
    }
    Ok(chats)
}

/// Stores a message (or a service message) of `sender` in the basic group, in every
/// member's box (idempotent by random id), and answers the sender with its copy; the other
/// members are told after the answer. Blocking. Public for applications that post as a
/// user of their own (a bot answering in a group).
pub fn post(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    chat: &Chat,
    sender: i64,
    random_id: i64,
    body: &Body,
    media: Option<Vec<u8>>,
) -> Result<enums::Updates, ApiError> {
    let members = chat.member_ids();
    let request = SendRequest {
        sender,
        peer: Peer::Chat(chat.id),
        random_id,
        date: now_unix(),
        body: body.encode(),
        media,
        flags: 0,
        members,
        sender_only: false,
    };
    let outcome = backend.messages.send(&request)?;
    let missing = || ApiError::new(500, "INTERNAL");
    let mine = outcome.deliveries.first().ok_or_else(missing)?;
    let message = backend
        .messages
        .get_messages(BoxId::User(sender), &[mine.message_id])?
        .into_iter()
        .next()
        .ok_or_else(missing)?;
    if !outcome.repeated {
        let others = outcome
            .deliveries
            .iter()
            .skip(1)
            .map(|delivery| columba_store::message::Affected {
                box_id: delivery.box_id,
                pts: delivery.pts,
                pts_count: 1,
            })
            .collect();
        notify_after(ctx, backend, others);
    }
    let mut users = vec![sender];
    if let Some(user) = body.action.and_then(Action::named_user) {
        users.push(user);
    }
    let reloaded = load(backend, sender, chat.id)?;
    Ok(updates_with(
        vec![
            types::UpdateMessageID {
                id: message.id,
                random_id,
            }
            .into(),
            types::UpdateNewMessage {
                message: objects::message(&message),
                pts: mine.pts,
                pts_count: 1,
            }
            .into(),
        ],
        backend.user_objects(users, sender)?,
        vec![chat_object(&reloaded)],
        message.date,
    ))
}

/// A service message in the group.
pub(crate) fn service(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    chat: &Chat,
    sender: i64,
    action: Action,
    text: String,
) -> Result<enums::Updates, ApiError> {
    let body = Body {
        text,
        action: Some(action),
        ..Body::default()
    };
    post(ctx, backend, chat, sender, rand::random(), &body, None)
}

/// `messages.sendMessage` and `sendMedia` to a basic group (members only).
pub async fn send_to_chat(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    chat_id: i64,
    random_id: i64,
    text: String,
    media: Option<Vec<u8>>,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    if text.chars().count() > crate::messages::MAX_TEXT_CHARS {
        return Err(ApiError::bad_request("MESSAGE_TOO_LONG"));
    }
    let backend = backend.clone();
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let chat = load(&backend, user, chat_id)?;
        chat.require_member()?;
        post(
            &task_ctx,
            &backend,
            &chat,
            user,
            random_id,
            &Body::text(text),
            media,
        )
    })
    .await
}

/// `messages.createChat`: a basic group of the caller and `users`, with a
/// `messageActionChatCreate` in every member's box.
pub async fn create_chat(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::CreateChat,
) -> Result<enums::messages::InvitedUsers, ApiError> {
    let user = ctx.user()?;
    let title = request.title.trim().to_owned();
    if title.is_empty() {
        return Err(ApiError::bad_request("CHAT_TITLE_EMPTY"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad_request("CHAT_TITLE_TOO_LONG"));
    }
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let mut invited = Vec::with_capacity(request.users.len());
        for input in &request.users {
            let id = backend.input_user(user, input)?;
            backend.live_user(id)?;
            if id != user && !invited.contains(&id) {
                invited.push(id);
            }
        }
        if invited.len() + 1 > backend_max_members() {
            return Err(ApiError::bad_request("USERS_TOO_MUCH"));
        }
        let date = now_unix();
        let info = ChannelInfo::new(title.clone(), false, user, date);
        let peer = backend
            .messages
            .create_group(false, info.encode(), user, date)?;
        let Peer::Chat(id) = peer else {
            return Err(ApiError::new(500, "INTERNAL"));
        };
        let mut missing = Vec::new();
        for invitee in &invited {
            match backend.messages.set_participant(
                peer,
                *invitee,
                Some(Participant::member(*invitee, date, user)),
            ) {
                Ok(_) => {}
                Err(columba_store::MessageError::ChannelsTooMuch) => missing.push(
                    types::MissingInvitee {
                        premium_would_allow_invite: false,
                        premium_required_for_pm: false,
                        user_id: *invitee,
                    }
                    .into(),
                ),
                Err(error) => return Err(error.into()),
            }
        }
        let chat = load(&backend, user, id)?;
        let updates = service(&task_ctx, &backend, &chat, user, Action::ChatCreate, title)?;
        Ok(types::messages::InvitedUsers {
            updates,
            missing_invitees: missing,
        }
        .into())
    })
    .await
}

/// The most members of a basic group (the store's default, Telegram's 200).
fn backend_max_members() -> usize {
    columba_store::MessageStoreConfig::default().max_members
}

/// `messages.addChatUser`: any member adds a user (`USER_ALREADY_PARTICIPANT` for one who
/// is in), with a `messageActionChatAddUser` in every member's box, the new one's included.
pub async fn add_chat_user(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::AddChatUser,
) -> Result<enums::messages::InvitedUsers, ApiError> {
    let user = ctx.user()?;
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let chat = load(&backend, user, request.chat_id)?;
        chat.require_member()?;
        let invitee = backend.input_user(user, &request.user_id)?;
        backend.live_user(invitee)?;
        if chat.members.iter().any(|p| p.user_id == invitee) {
            return Err(ApiError::bad_request("USER_ALREADY_PARTICIPANT"));
        }
        backend.messages.set_participant(
            Peer::Chat(chat.id),
            invitee,
            Some(Participant::member(invitee, now_unix(), user)),
        )?;
        let chat = load(&backend, user, chat.id)?;
        let updates = service(
            &task_ctx,
            &backend,
            &chat,
            user,
            Action::ChatAddUser(invitee),
            String::new(),
        )?;
        Ok(types::messages::InvitedUsers {
            updates,
            missing_invitees: Vec::new(),
        }
        .into())
    })
    .await
}

/// `messages.deleteChatUser`: a member leaves (naming themselves), or the creator or the
/// member who added them removes someone (`CHAT_ADMIN_REQUIRED` otherwise); a
/// `messageActionChatDeleteUser` reaches everyone, the one removed included.
pub async fn delete_chat_user(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::DeleteChatUser,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let chat = load(&backend, user, request.chat_id)?;
        chat.require_member()?;
        let target = backend.input_user(user, &request.user_id)?;
        let record = chat
            .members
            .iter()
            .find(|p| p.user_id == target)
            .cloned()
            .ok_or_else(|| ApiError::bad_request("USER_NOT_PARTICIPANT"))?;
        let may = target == user || record.inviter == user || chat.caller_is_admin();
        if !may {
            return Err(ApiError::bad_request("CHAT_ADMIN_REQUIRED"));
        }
        // Told while still a member, so that their box records it too.
        let updates = service(
            &task_ctx,
            &backend,
            &chat,
            user,
            Action::ChatDeleteUser(target),
            String::new(),
        )?;
        backend
            .messages
            .set_participant(Peer::Chat(chat.id), target, None)?;
        Ok(updates)
    })
    .await
}

/// `messages.editChatTitle` (any member, as in a basic group without admins):
/// `messageActionChatEditTitle` in every member's box.
pub async fn edit_chat_title(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::EditChatTitle,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    let title = request.title.trim().to_owned();
    if title.is_empty() {
        return Err(ApiError::bad_request("CHAT_TITLE_EMPTY"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad_request("CHAT_TITLE_TOO_LONG"));
    }
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let mut chat = load(&backend, user, request.chat_id)?;
        chat.require_member()?;
        if chat.info.title == title {
            return Err(ApiError::bad_request("CHAT_NOT_MODIFIED"));
        }
        chat.info.title = title.clone();
        backend
            .messages
            .set_group_info(Peer::Chat(chat.id), chat.info.encode())?;
        service(
            &task_ctx,
            &backend,
            &chat,
            user,
            Action::ChatEditTitle,
            title,
        )
    })
    .await
}

/// `messages.getChats`: the basic groups the caller is or was in (others are left out).
pub async fn get_chats(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::GetChats,
) -> Result<enums::messages::Chats, ApiError> {
    let user = ctx.user()?;
    if request.id.len() > crate::messages::MAX_GET_MESSAGES {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    ctx.blocking(move || {
        let mut chats = Vec::new();
        for id in &request.id {
            let chat = load(&backend, user, *id)?;
            let was_in =
                chat.me.is_some() || backend.messages.dialog(user, Peer::Chat(*id))?.is_some();
            if was_in {
                chats.push(chat_object(&chat));
            }
        }
        Ok(types::messages::Chats { chats }.into())
    })
    .await
}

/// `messages.getFullChat`: the group with its participants.
pub async fn get_full_chat(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::GetFullChat,
) -> Result<enums::messages::ChatFull, ApiError> {
    let user = ctx.user()?;
    ctx.blocking(move || {
        let chat = load(&backend, user, request.chat_id)?;
        chat.require_member()?;
        let participants = chat
            .members
            .iter()
            .map(|p| -> enums::ChatParticipant {
                match p.role {
                    Role::Creator => types::ChatParticipantCreator {
                        user_id: p.user_id,
                        rank: None,
                    }
                    .into(),
                    Role::Admin => types::ChatParticipantAdmin {
                        user_id: p.user_id,
                        inviter_id: p.inviter,
                        date: p.date,
                        rank: None,
                    }
                    .into(),
                    _ => types::ChatParticipant {
                        user_id: p.user_id,
                        inviter_id: p.inviter,
                        date: p.date,
                        rank: None,
                    }
                    .into(),
                }
            })
            .collect();
        let full = types::ChatFull::new(
            chat.id,
            chat.info.about.clone(),
            types::ChatParticipants {
                chat_id: chat.id,
                participants,
                version: 1,
            }
            .into(),
            objects::notify_settings(),
        );
        Ok(types::messages::ChatFull {
            full_chat: full.into(),
            chats: vec![chat_object(&chat)],
            users: backend.user_objects(chat.member_ids(), user)?,
        }
        .into())
    })
    .await
}
