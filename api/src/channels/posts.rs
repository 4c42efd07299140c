//! Creating channels, reading and changing them, and posting in them: `channels.createChannel`,
//! `getChannels`, `getFullChannel`, `editTitle`, `getMessages`, `deleteMessages`,
//! `readHistory`, and the channel side of `messages.sendMessage`, `sendMedia`, `getHistory`,
//! `editMessage` and `getMessagesViews`.

use std::sync::Arc;

use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::{HistoryQuery, Participant, Role, StoredMessage};

use super::{
    Channel, ChannelInfo, MAX_ABOUT_CHARS, MAX_TITLE_CHARS, channel_object, fan_out, input_channel,
    message_object, rights, updates_with,
};
use crate::backend::Backend;
use crate::body::{Action, Body};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects::{self, now_unix};

/// A copy of `channel` as any member sees it (no rights of their own): what one encoding
/// for every member carries.
pub(super) fn member_view(channel: &Channel) -> Channel {
    Channel {
        me: Some(Participant::member(0, channel.info.date, 0)),
        ..channel.clone()
    }
}

/// A post stored in a channel: the message and the pts it took.
#[derive(Debug, Clone)]
pub struct Posted {
    /// The message.
    pub message: StoredMessage,
    /// The channel's pts after it.
    pub pts: i32,
    /// Whether it repeated an earlier send (nothing new was stored).
    pub repeated: bool,
}

/// Stores a post of `sender` in `channel` (idempotent by random id). Blocking.
pub fn post(
    backend: &Backend,
    channel: &Channel,
    sender: i64,
    random_id: i64,
    body: &Body,
    media: Option<Vec<u8>>,
) -> Result<Posted, ApiError> {
    let request = columba_store::message::SendRequest {
        sender,
        peer: channel.peer(),
        random_id,
        date: now_unix(),
        body: body.encode(),
        media,
        flags: 0,
        members: Vec::new(),
        sender_only: false,
    };
    let outcome = backend.messages.send(&request)?;
    let missing = || ApiError::new(500, "INTERNAL");
    let delivery = outcome.deliveries.first().ok_or_else(missing)?;
    let message = backend
        .messages
        .get_messages(channel.box_id(), &[delivery.message_id])?
        .into_iter()
        .next()
        .ok_or_else(missing)?;
    Ok(Posted {
        message,
        pts: delivery.pts,
        repeated: outcome.repeated,
    })
}

/// A service message of `sender` in `channel` recording `action`, with a random id of the
/// server's. Blocking.
pub fn post_service(
    backend: &Backend,
    channel: &Channel,
    sender: i64,
    action: Action,
    text: String,
) -> Result<Posted, ApiError> {
    let body = Body {
        text,
        action: Some(action),
        ..Body::default()
    };
    post(backend, channel, sender, rand::random(), &body, None)
}

/// The update of a new post, as `viewer` sees it.
fn new_message_update(posted: &Posted, viewer: i64, channel: &Channel) -> enums::Update {
    types::UpdateNewChannelMessage {
        message: message_object(&posted.message, viewer, &channel.info, Some(1)),
        pts: posted.pts,
        pts_count: 1,
    }
    .into()
}

/// Tells every other member of a new post, after the answer.
pub fn announce(ctx: &Ctx, backend: &Arc<Backend>, channel: &Channel, posted: &Posted) {
    if posted.repeated {
        return;
    }
    let server = ctx.server().clone();
    let backend = backend.clone();
    let channel = member_view(channel);
    let posted = posted.clone();
    ctx.after(move || {
        let sender = posted.message.from;
        let users = backend.user_objects([sender], 0).unwrap_or_default();
        let updates = updates_with(
            vec![new_message_update(&posted, 0, &channel)],
            users,
            vec![channel_object(&backend, &channel)],
            posted.message.date,
        );
        fan_out(&server, &backend, channel.id, Some(sender), &updates);
    });
}

/// The caller's answer to their post: `updateMessageID` and `updateNewChannelMessage`.
fn post_answer(
    backend: &Backend,
    channel: &Channel,
    user: i64,
    random_id: i64,
    posted: &Posted,
) -> Result<enums::Updates, ApiError> {
    Ok(updates_with(
        vec![
            types::UpdateMessageID {
                id: posted.message.id,
                random_id,
            }
            .into(),
            new_message_update(posted, user, channel),
        ],
        backend.user_objects([user], user)?,
        vec![channel_object(backend, channel)],
        posted.message.date,
    ))
}

/// `messages.sendMessage` and `sendMedia` to a channel: rights checked, stored once, the
/// caller answered and the other members told.
pub async fn send_to_channel(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    channel: Channel,
    random_id: i64,
    text: String,
    media: Option<Vec<u8>>,
    reply_to: Option<i32>,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    if text.chars().count() > crate::messages::MAX_TEXT_CHARS {
        return Err(ApiError::bad_request("MESSAGE_TOO_LONG"));
    }
    channel.require_post(now_unix())?;
    let (posted, channel) = {
        let backend = backend.clone();
        ctx.blocking(move || {
            let mut body = Body::text(text);
            if let Some(id) = reply_to {
                let found = backend.messages.get_messages(channel.box_id(), &[id])?;
                if found.is_empty() {
                    return Err(ApiError::bad_request("REPLY_MESSAGE_ID_INVALID"));
                }
                body.reply_to = vec![(channel.id, id)];
            }
            let posted = post(&backend, &channel, user, random_id, &body, media)?;
            backend.present.touch(channel.id, user, posted.message.date);
            Ok((posted, channel))
        })
        .await?
    };
    announce(ctx, backend, &channel, &posted);
    post_answer(backend, &channel, user, random_id, &posted)
}

/// `channels.createChannel`: a supergroup (`megagroup`) or a broadcast channel with the
/// caller as creator and its first message, `messageActionChannelCreate`.
pub async fn create_channel(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::CreateChannel,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    let title = request.title.trim().to_owned();
    if title.is_empty() {
        return Err(ApiError::bad_request("CHAT_TITLE_EMPTY"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad_request("CHAT_TITLE_TOO_LONG"));
    }
    if request.about.chars().count() > MAX_ABOUT_CHARS {
        return Err(ApiError::bad_request("CHAT_ABOUT_TOO_LONG"));
    }
    let date = now_unix();
    let info = ChannelInfo {
        about: request.about,
        ..ChannelInfo::new(title.clone(), !request.megagroup, user, date)
    };
    let task_backend = backend.clone();
    ctx.blocking(move || {
        let backend = task_backend;
        let peer = backend
            .messages
            .create_group(true, info.encode(), user, date)?;
        let columba_store::message::Peer::Channel(id) = peer else {
            return Err(ApiError::new(500, "INTERNAL"));
        };
        let channel = super::load(&backend, user, id)?.ok_or_else(super::channel_invalid)?;
        let posted = post_service(&backend, &channel, user, Action::ChannelCreate, title)?;
        Ok(updates_with(
            vec![
                types::UpdateChannel { channel_id: id }.into(),
                new_message_update(&posted, user, &channel),
            ],
            backend.user_objects([user], user)?,
            vec![channel_object(&backend, &channel)],
            date,
        ))
    })
    .await
}

/// `channels.getChannels`: the channels as the caller sees them (`CHANNEL_INVALID` for one
/// the caller cannot name).
pub async fn get_channels(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::GetChannels,
) -> Result<enums::messages::Chats, ApiError> {
    let user = ctx.user()?;
    if request.id.len() > crate::messages::MAX_GET_MESSAGES {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    ctx.blocking(move || {
        let mut chats = Vec::with_capacity(request.id.len());
        for input in &request.id {
            let channel = input_channel(&backend, user, input)?;
            chats.push(channel_object(&backend, &channel));
        }
        Ok(types::messages::Chats { chats }.into())
    })
    .await
}

/// `channels.getFullChannel`: counts, the caller's read state and the channel's pts.
pub async fn get_full_channel(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::GetFullChannel,
) -> Result<enums::messages::ChatFull, ApiError> {
    let user = ctx.user()?;
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        channel.require_reader()?;
        let state = backend.messages.state(channel.box_id())?;
        let dialog = backend.messages.dialog(user, channel.peer())?;
        let (read_in, read_out, unread) = dialog.map_or((0, 0, 0), |d| {
            (d.read_inbox_max_id, d.read_outbox_max_id, d.unread_count)
        });
        let count = |n: u32| Some(i32::try_from(n).unwrap_or(i32::MAX));
        let mut full = types::ChannelFull::new(
            channel.id,
            channel.info.about.clone(),
            read_in,
            read_out,
            unread,
            types::PhotoEmpty { id: 0 }.into(),
            objects::notify_settings(),
            Vec::new(),
            state.pts,
        );
        full.participants_count = count(channel.counts.members);
        full.admins_count = count(channel.counts.admins);
        full.kicked_count = count(channel.counts.banned);
        full.banned_count = count(channel.counts.restricted);
        full.can_view_participants =
            !channel.info.broadcast || channel.has_right(rights::BAN_USERS);
        full.can_delete_channel = channel
            .me
            .as_ref()
            .is_some_and(|me| me.role == Role::Creator);
        if channel.has_right(rights::INVITE_USERS) {
            full.exported_invite = channel
                .info
                .invite
                .map(|link| super::invites::exported(&backend, channel.peer(), link, false));
        }
        Ok(types::messages::ChatFull {
            full_chat: full.into(),
            chats: vec![channel_object(&backend, &channel)],
            users: backend.user_objects([user], user)?,
        }
        .into())
    })
    .await
}

/// `channels.editTitle` (`change_info`): the members are told with `updateChannel`.
pub async fn edit_title(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::EditTitle,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    let title = request.title.trim().to_owned();
    if title.is_empty() {
        return Err(ApiError::bad_request("CHAT_TITLE_EMPTY"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad_request("CHAT_TITLE_TOO_LONG"));
    }
    let server = ctx.server().clone();
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let mut channel = input_channel(&backend, user, &request.channel)?;
        channel.require_right(rights::CHANGE_INFO)?;
        if channel.info.title == title {
            return Err(ApiError::bad_request("CHAT_NOT_MODIFIED"));
        }
        channel.info.title = title;
        backend
            .messages
            .set_group_info(channel.peer(), channel.info.encode())?;
        let update: enums::Update = types::UpdateChannel {
            channel_id: channel.id,
        }
        .into();
        let told = updates_with(
            vec![update.clone()],
            Vec::new(),
            vec![channel_object(&backend, &member_view(&channel))],
            now_unix(),
        );
        let id = channel.id;
        let task_backend = backend.clone();
        task_ctx.after(move || fan_out(&server, &task_backend, id, Some(user), &told));
        Ok(updates_with(
            vec![update],
            Vec::new(),
            vec![channel_object(&backend, &channel)],
            now_unix(),
        ))
    })
    .await
}

/// A `messages.channelMessages` of `messages` (with the channel's pts).
pub fn channel_messages(
    backend: &Backend,
    channel: &Channel,
    user: i64,
    messages: &[StoredMessage],
    count: usize,
    offset_id_offset: Option<usize>,
) -> Result<enums::messages::Messages, ApiError> {
    let pts = backend.messages.state(channel.box_id())?.pts;
    let ids: Vec<i32> = messages.iter().map(|m| m.id).collect();
    let views = if channel.info.broadcast {
        backend.messages.views(channel.id, &ids, false)?
    } else {
        Vec::new()
    };
    let objects = messages
        .iter()
        .enumerate()
        .map(|(index, message)| {
            message_object(message, user, &channel.info, views.get(index).copied())
        })
        .collect();
    let mut users: Vec<i64> = messages.iter().map(|m| m.from).collect();
    users.push(user);
    for message in messages {
        if let Some(named) = Body::decode(&message.body)
            .action
            .and_then(Action::named_user)
        {
            users.push(named);
        }
    }
    Ok(types::messages::ChannelMessages {
        inexact: false,
        pts,
        count: i32::try_from(count).unwrap_or(i32::MAX),
        offset_id_offset: offset_id_offset.map(|o| i32::try_from(o).unwrap_or(i32::MAX)),
        messages: objects,
        topics: Vec::new(),
        chats: vec![channel_object(backend, channel)],
        users: backend.user_objects(users, user)?,
    }
    .into())
}

/// `messages.getHistory` of a channel (members only), by the store's paging rules.
pub fn channel_history(
    backend: &Backend,
    channel: &Channel,
    user: i64,
    request: &functions::messages::GetHistory,
) -> Result<enums::messages::Messages, ApiError> {
    channel.require_reader()?;
    backend.present.touch(channel.id, user, now_unix());
    let page = backend.messages.get_history(
        channel.box_id(),
        channel.peer(),
        &HistoryQuery {
            offset_id: request.offset_id,
            offset_date: request.offset_date,
            add_offset: request.add_offset,
            limit: request.limit,
            max_id: request.max_id,
            min_id: request.min_id,
        },
    )?;
    channel_messages(
        backend,
        channel,
        user,
        &page.messages,
        page.count,
        Some(page.offset_id_offset),
    )
}

/// `channels.getMessages`: messages by id (`messageEmpty` for missing ones).
pub async fn get_channel_messages(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::GetMessages,
) -> Result<enums::messages::Messages, ApiError> {
    let user = ctx.user()?;
    if request.id.len() > crate::messages::MAX_GET_MESSAGES {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        channel.require_reader()?;
        let ids: Vec<i32> = request
            .id
            .iter()
            .filter_map(|input| match input {
                enums::InputMessage::InputMessageID(id) => Some(id.id),
                _ => None,
            })
            .collect();
        let found = backend.messages.get_messages(channel.box_id(), &ids)?;
        let answer = channel_messages(&backend, &channel, user, &found, found.len(), None)?;
        // Ids not found come back as `messageEmpty`, in the order asked.
        let enums::messages::Messages::ChannelMessages(mut answer) = answer else {
            return Ok(answer);
        };
        let mut ordered = Vec::with_capacity(ids.len());
        for id in &ids {
            let object = found
                .iter()
                .position(|m| m.id == *id)
                .and_then(|index| answer.messages.get(index).cloned())
                .unwrap_or_else(|| {
                    types::MessageEmpty {
                        id: *id,
                        peer_id: None,
                    }
                    .into()
                });
            ordered.push(object);
        }
        answer.messages = ordered;
        answer.count = i32::try_from(ids.len()).unwrap_or(i32::MAX);
        Ok(answer.into())
    })
    .await
}

/// `channels.deleteMessages`: one's own posts in a supergroup; anyone's with
/// `delete_messages` (`MESSAGE_DELETE_FORBIDDEN` otherwise). Every member is told.
pub async fn delete_channel_messages(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::DeleteMessages,
) -> Result<enums::messages::AffectedMessages, ApiError> {
    let user = ctx.user()?;
    let server = ctx.server().clone();
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        channel.require_member()?;
        if request.id.len() > columba_store::message::MAX_PAGE {
            return Err(ApiError::bad_request("LIMIT_INVALID"));
        }
        let found = backend
            .messages
            .get_messages(channel.box_id(), &request.id)?;
        let may_delete_any = channel.has_right(rights::DELETE_MESSAGES);
        if found.iter().any(|m| m.from != user) && !may_delete_any {
            return Err(ApiError::forbidden("MESSAGE_DELETE_FORBIDDEN"));
        }
        let ids: Vec<i32> = found.iter().map(|m| m.id).collect();
        let changed = backend.messages.delete(channel.box_id(), &ids, true)?;
        let Some(affected) = changed.into_iter().find(|a| a.box_id == channel.box_id()) else {
            let pts = backend.messages.state(channel.box_id())?.pts;
            return Ok(types::messages::AffectedMessages { pts, pts_count: 0 }.into());
        };
        let update: enums::Update = types::UpdateDeleteChannelMessages {
            channel_id: channel.id,
            messages: ids,
            pts: affected.pts,
            pts_count: affected.pts_count,
        }
        .into();
        let told = updates_with(
            vec![update],
            Vec::new(),
            vec![channel_object(&backend, &member_view(&channel))],
            now_unix(),
        );
        let task_backend = backend.clone();
        task_ctx.after(move || fan_out(&server, &task_backend, channel.id, Some(user), &told));
        Ok(types::messages::AffectedMessages {
            pts: affected.pts,
            pts_count: affected.pts_count,
        }
        .into())
    })
    .await
}

/// `channels.readHistory`: the caller's watermark moves (no pts); their other sessions get
/// `updateReadChannelInbox`.
pub async fn read_channel_history(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::ReadHistory,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    let server = ctx.server().clone();
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        channel.require_member()?;
        backend.present.touch(channel.id, user, now_unix());
        let changed = backend
            .messages
            .read_history(user, channel.peer(), request.max_id)?;
        if let Some(affected) = changed.first() {
            if let Some(dialog) = backend.messages.dialog(user, channel.peer())? {
                let update: enums::Update = types::UpdateReadChannelInbox {
                    folder_id: None,
                    channel_id: channel.id,
                    max_id: dialog.read_inbox_max_id,
                    still_unread_count: dialog.unread_count,
                    pts: affected.pts,
                }
                .into();
                let told = updates_with(vec![update], Vec::new(), Vec::new(), now_unix());
                server.send_update(
                    user,
                    bytes::Bytes::from(columba_mtproto::tl::Serializable::to_bytes(&told)),
                );
            }
        }
        Ok(true)
    })
    .await
}

/// `messages.editMessage` in a channel: one's own posts (and, in broadcasts, anyone's with
/// `edit_messages`). Every member is told with `updateEditChannelMessage`.
pub fn edit_in_channel(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    channel: &Channel,
    user: i64,
    request: &functions::messages::EditMessage,
    media: Option<Vec<u8>>,
) -> Result<enums::Updates, ApiError> {
    channel.require_member()?;
    let invalid = || ApiError::bad_request("MESSAGE_ID_INVALID");
    let current = backend
        .messages
        .get_messages(channel.box_id(), &[request.id])?
        .into_iter()
        .next()
        .ok_or_else(invalid)?;
    let body = Body::decode(&current.body);
    if body.action.is_some() {
        return Err(invalid());
    }
    let editor_may = current.from == user
        || (channel.info.broadcast && channel.has_right(rights::EDIT_MESSAGES));
    if !editor_may {
        return Err(ApiError::forbidden("MESSAGE_AUTHOR_REQUIRED"));
    }
    let new_body = match &request.message {
        Some(text) => Body {
            text: text.clone(),
            ..body
        }
        .encode(),
        None => current.body.clone(),
    };
    if new_body == current.body && media.is_none() {
        return Err(ApiError::bad_request("MESSAGE_NOT_MODIFIED"));
    }
    let media = media.or(current.media);
    // The store's rule is the author's; a broadcast admin edits in the author's name.
    let changed = backend.messages.edit(
        current.from,
        channel.box_id(),
        request.id,
        new_body,
        media,
        now_unix(),
    )?;
    let affected = changed
        .into_iter()
        .find(|a| a.box_id == channel.box_id())
        .ok_or_else(invalid)?;
    let edited = backend
        .messages
        .get_messages(channel.box_id(), &[request.id])?
        .into_iter()
        .next()
        .ok_or_else(invalid)?;
    let update_for = |viewer: i64| -> enums::Update {
        types::UpdateEditChannelMessage {
            message: message_object(&edited, viewer, &channel.info, Some(1)),
            pts: affected.pts,
            pts_count: affected.pts_count,
        }
        .into()
    };
    let users = backend.user_objects([edited.from], user)?;
    let told = updates_with(
        vec![update_for(0)],
        users.clone(),
        vec![channel_object(backend, &member_view(channel))],
        now_unix(),
    );
    let server = ctx.server().clone();
    let task_backend = backend.clone();
    let id = channel.id;
    ctx.after(move || fan_out(&server, &task_backend, id, Some(user), &told));
    Ok(updates_with(
        vec![update_for(user)],
        users,
        vec![channel_object(backend, channel)],
        now_unix(),
    ))
}

/// `messages.getMessagesViews` in a channel: each post's views, raised by one with
/// `increment` (`PEER_ID_INVALID` for any other peer: only channels count views).
pub async fn get_messages_views(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::GetMessagesViews,
) -> Result<enums::messages::MessageViews, ApiError> {
    let user = ctx.user()?;
    ctx.blocking(move || {
        let channel = super::input_peer_channel(&backend, user, &request.peer)?
            .ok_or_else(|| ApiError::bad_request("PEER_ID_INVALID"))?;
        views_in_channel(&backend, &channel, &request.id, request.increment)
    })
    .await
}

fn views_in_channel(
    backend: &Backend,
    channel: &Channel,
    ids: &[i32],
    increment: bool,
) -> Result<enums::messages::MessageViews, ApiError> {
    channel.require_reader()?;
    if ids.len() > crate::messages::MAX_GET_MESSAGES {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    let views = backend.messages.views(channel.id, ids, increment)?;
    Ok(types::messages::MessageViews {
        views: views
            .iter()
            .map(|count| {
                types::MessageViews {
                    views: Some(i32::try_from(*count).unwrap_or(i32::MAX)),
                    forwards: None,
                    replies: None,
                }
                .into()
            })
            .collect(),
        chats: vec![channel_object(backend, channel)],
        users: Vec::new(),
    }
    .into())
}
