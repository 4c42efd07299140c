//! `messages` in private chats: sends (text and media), history, messages by id, dialogs,
//! read markers, deletes and edits, forwards, typing, search, pins and reactions. Every change answers the caller with its own box's
//! updates and tells the other boxes' owners after the answer ([`crate::updates::notify`]).
//!
//! [`send`] is public on its own, without the routing, so that an application can wrap the
//! stock send (the echo server answers messages to its bot this way).

use std::sync::Arc;

use columba_mtproto::tl::Serializable as _;
use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::{Affected, BoxId, HistoryQuery, Peer, SendRequest, StoredMessage};

use crate::backend::Backend;
use crate::body::{Action, Body, Forwarded};
use crate::channels;
use crate::chats;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects::{self, now_unix};
use crate::router::Router;
use crate::updates::notify_after;
use crate::upload;

mod pins;
mod reactions;

pub use pins::{MAX_UNPIN_ALL, unpin_all_messages, update_pinned_message};
pub use reactions::{get_messages_reactions, send_reaction};

/// The longest text message, in characters (`message_length_max` of the config).
pub const MAX_TEXT_CHARS: usize = 4096;
/// Messages asked for at most in one `messages.getMessages`.
pub const MAX_GET_MESSAGES: usize = 200;
/// Dialogs in one page at most.
pub const MAX_DIALOGS: usize = 100;

/// Every method of this module.
pub fn router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route_with(backend.clone(), send_message)
        .route_with(backend.clone(), send_media)
        .route_with(backend.clone(), get_history)
        .route_with(backend.clone(), get_messages)
        .route_with(backend.clone(), get_dialogs)
        .route_with(backend.clone(), read_history)
        .route_with(backend.clone(), delete_messages)
        .route_with(backend.clone(), set_typing)
        .route_with(backend.clone(), forward_messages)
        .route_with(backend.clone(), search)
        .route_with(backend.clone(), get_peer_dialogs)
        .route_with(backend.clone(), update_pinned_message)
        .route_with(backend.clone(), unpin_all_messages)
        .route_with(backend.clone(), send_reaction)
        .route_with(backend.clone(), get_messages_reactions)
        .route_with(backend, edit_message)
}

/// Messages of one chat a `messages.search` looks at, at most (newest first); a search
/// that stops there says its count is inexact.
pub const MAX_SEARCH_SCAN: usize = 10_000;
/// The most chats of one `messages.getPeerDialogs`.
pub const MAX_PEER_DIALOGS: usize = 100;

/// Whether `message` passes `filter` (text, photos, documents, photos and videos, pinned;
/// any other filter passes nothing).
fn passes(message: &StoredMessage, filter: &enums::MessagesFilter) -> bool {
    use columba_mtproto::tl::Deserializable as _;
    let media = || {
        message
            .media
            .as_deref()
            .and_then(|bytes| enums::MessageMedia::from_bytes(bytes).ok())
    };
    match filter {
        enums::MessagesFilter::InputMessagesFilterEmpty(_) => true,
        enums::MessagesFilter::InputMessagesFilterPhotos(_)
        | enums::MessagesFilter::InputMessagesFilterPhotoVideo(_) => {
            matches!(media(), Some(enums::MessageMedia::MessageMediaPhoto(_)))
        }
        enums::MessagesFilter::InputMessagesFilterDocument(_) => {
            matches!(media(), Some(enums::MessageMedia::MessageMediaDocument(_)))
        }
        enums::MessagesFilter::InputMessagesFilterPinned(_) => message.pinned,
        _ => false,
    }
}

/// `messages.search` in a private chat: messages whose text contains `q` (any case; all of
/// them when `q` is empty) and that pass the filter, newest first, below `offset_id` when
/// it is set, within `min_id`..`max_id` and `min_date`..`max_date` when set, from
/// `add_offset` on, at most `limit`. The newest [`MAX_SEARCH_SCAN`] messages are looked at.
pub async fn search(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::Search,
) -> Result<enums::messages::Messages, ApiError> {
    let user = ctx.user()?;
    let limit = usize::try_from(request.limit).unwrap_or(0).clamp(1, 100);
    let skip = usize::try_from(request.add_offset).unwrap_or(0);
    let query = request.q.to_lowercase();
    ctx.blocking(move || {
        let target = backend.input_peer(user, &request.peer)?;
        let box_id = BoxId::User(user);
        let mut found = Vec::new();
        let mut matched = 0usize;
        let mut scanned = 0usize;
        let mut offset_id = request.offset_id;
        let mut exhausted = false;
        while scanned < MAX_SEARCH_SCAN {
            let page = backend.messages.get_history(
                box_id,
                Peer::User(target),
                &HistoryQuery {
                    offset_id,
                    offset_date: 0,
                    add_offset: 0,
                    limit: 100,
                    max_id: 0,
                    min_id: 0,
                },
            )?;
            let Some(last) = page.messages.last() else {
                exhausted = true;
                break;
            };
            offset_id = last.id;
            scanned += page.messages.len();
            for message in page.messages {
                let in_ids = (request.max_id == 0 || message.id < request.max_id)
                    && message.id > request.min_id;
                let in_dates = (request.max_date == 0 || message.date <= request.max_date)
                    && message.date >= request.min_date;
                let text = Body::decode(&message.body).text.to_lowercase();
                if in_ids && in_dates && text.contains(&query) && passes(&message, &request.filter)
                {
                    matched += 1;
                    if matched > skip && found.len() < limit {
                        found.push(message);
                    }
                }
            }
        }
        let users = backend.users_of(&found, user)?;
        Ok(types::messages::MessagesSlice {
            inexact: !exhausted,
            count: i32::try_from(matched).unwrap_or(i32::MAX),
            next_rate: None,
            offset_id_offset: None,
            search_flood: None,
            messages: found.iter().map(objects::message).collect(),
            topics: Vec::new(),
            chats: Vec::new(),
            users,
        }
        .into())
    })
    .await
}

/// `messages.getPeerDialogs`: the caller's chats with these users (those without messages
/// left out), with their top messages and the caller's `updates.state`.
pub async fn get_peer_dialogs(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::GetPeerDialogs,
) -> Result<enums::messages::PeerDialogs, ApiError> {
    let user = ctx.user()?;
    if request.peers.len() > MAX_PEER_DIALOGS {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    ctx.blocking(move || {
        let mut dialogs = Vec::new();
        let mut channel_found = Vec::new();
        for peer in &request.peers {
            let enums::InputDialogPeer::InputDialogPeer(peer) = peer else {
                return Err(ApiError::bad_request("PEER_ID_INVALID"));
            };
            if let Some(channel) = channels::input_peer_channel(&backend, user, &peer.peer)? {
                channel.require_member()?;
                channel_found.push(channel);
                continue;
            }
            let target = backend.input_peer(user, &peer.peer)?;
            dialogs.extend(backend.messages.dialog(user, Peer::User(target))?);
        }
        let tops: Vec<i32> = dialogs.iter().map(|dialog| dialog.top_message).collect();
        let messages = backend.messages.get_messages(BoxId::User(user), &tops)?;
        let mut users = backend.users_of(&messages, user)?;
        let state = backend.messages.state(BoxId::User(user))?;
        let mut dialog_objects: Vec<enums::Dialog> = dialogs.iter().map(dialog_object).collect();
        let mut message_objects: Vec<enums::Message> =
            messages.iter().map(objects::message).collect();
        let mut chats = Vec::new();
        for channel in &channel_found {
            let Some(dialog) = backend.messages.dialog(user, channel.peer())? else {
                continue;
            };
            let pts = backend.messages.state(channel.box_id())?.pts;
            dialog_objects.push(channels::dialog_object(&dialog, pts));
            for message in backend
                .messages
                .get_messages(channel.box_id(), &[dialog.top_message])?
            {
                users.extend(backend.user_object(message.from, user)?);
                message_objects.push(channels::message_object(
                    &message,
                    user,
                    &channel.info,
                    None,
                ));
            }
            chats.push(channels::channel_object(&backend, channel));
        }
        Ok(types::messages::PeerDialogs {
            dialogs: dialog_objects,
            messages: message_objects,
            chats,
            users,
            state: objects::state(state.pts, now_unix()),
        }
        .into())
    })
    .await
}

/// A `dialog` of a stored chat summary.
fn dialog_object(dialog: &columba_store::message::Dialog) -> enums::Dialog {
    types::Dialog::new(
        objects::peer(dialog.peer),
        dialog.top_message,
        dialog.read_inbox_max_id,
        dialog.read_outbox_max_id,
        dialog.unread_count,
        0,
        0,
        0,
        objects::notify_settings(),
    )
    .into()
}

/// The most messages of one `messages.forwardMessages` (Telegram's figure).
pub const MAX_FORWARD: usize = 100;

/// `messages.forwardMessages` from a private chat to a user: each message is sent again
/// with its text and media and a `fwd_from` naming its first sender and date (kept when it
/// was a forward already; left out with `drop_author`). `RANDOM_ID_INVALID` when the ids
/// and random ids do not pair up, `MESSAGE_ID_INVALID` when none of the ids is in the chat.
pub async fn forward_messages(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::ForwardMessages,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    if request.id.len() != request.random_id.len() || request.id.is_empty() {
        return Err(ApiError::bad_request("RANDOM_ID_INVALID"));
    }
    if request.id.len() > MAX_FORWARD {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    let drop_author = request.drop_author;
    let found = {
        let backend = backend.clone();
        ctx.blocking(move || {
            let source = backend.input_peer(user, &request.from_peer)?;
            let target = backend.input_peer(user, &request.to_peer)?;
            let stored = backend
                .messages
                .get_messages(BoxId::User(user), &request.id)?;
            let mut outgoing = Vec::new();
            for (id, random_id) in request.id.iter().zip(&request.random_id) {
                let Some(original) = stored
                    .iter()
                    .find(|message| message.id == *id && message.peer == Peer::User(source))
                else {
                    continue;
                };
                let body = Body::decode(&original.body);
                // Service messages (a pin's record) are not forwarded.
                if body.action.is_some() {
                    continue;
                }
                let mut message =
                    Outgoing::new(target, *random_id, body.text, original.media.clone());
                message.forwarded = if drop_author {
                    None
                } else {
                    body.forwarded.or(Some(Forwarded {
                        from: original.from,
                        date: original.date,
                    }))
                };
                outgoing.push(message);
            }
            Ok(outgoing)
        })
        .await?
    };
    if found.is_empty() {
        return Err(ApiError::bad_request("MESSAGE_ID_INVALID"));
    }
    let mut updates = Vec::new();
    let mut users: Vec<enums::User> = Vec::new();
    let mut date = now_unix();
    for outgoing in found {
        let sent = send(&ctx, &backend, outgoing).await?;
        sent.notify_recipient(&ctx, &backend);
        if let enums::Updates::Updates(answer) = sent.updates {
            updates.extend(answer.updates);
            date = answer.date;
            for user in answer.users {
                if !users.contains(&user) {
                    users.push(user);
                }
            }
        }
    }
    Ok(objects::updates(updates, users, date))
}

/// `messages.setTyping` in a private chat: the other side gets `updateUserTyping` (never
/// stored; a client that misses it misses nothing lasting). To oneself it is a no-op.
pub async fn set_typing(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::SetTyping,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    let server = ctx.server().clone();
    ctx.blocking(move || {
        let target = backend.input_peer(user, &request.peer)?;
        if target == user || backend.users.is_blocked(target, user)? {
            return Ok(true);
        }
        let update: enums::Updates = types::UpdateShort {
            update: types::UpdateUserTyping {
                user_id: user,
                top_msg_id: None,
                action: request.action,
            }
            .into(),
            date: now_unix(),
        }
        .into();
        server.send_update(target, bytes::Bytes::from(update.to_bytes()));
        Ok(true)
    })
    .await
}

/// A message to send: to whom, its idempotency key, its text and media, and the message it
/// replies to or forwards.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outgoing {
    /// The recipient (a user id, checked).
    pub target: i64,
    /// The client's random id.
    pub random_id: i64,
    /// The text.
    pub text: String,
    /// The media, as the `MessageMedia` bytes stored with the message.
    pub media: Option<Vec<u8>>,
    /// The message it replies to, by its id in the sender's box (in the chat with `target`).
    pub reply_to: Option<i32>,
    /// Where it was forwarded from.
    pub forwarded: Option<Forwarded>,
    /// For a service message, what it records (its text is empty).
    pub action: Option<Action>,
    /// The buttons sent with it (kept only when the sender is a bot, as Telegram does).
    pub reply_markup: Option<enums::ReplyMarkup>,
    /// The text's formatting.
    pub entities: Option<Vec<enums::MessageEntity>>,
}

impl Outgoing {
    /// A message to `target` with this random id, text and media.
    pub fn new(target: i64, random_id: i64, text: String, media: Option<Vec<u8>>) -> Self {
        Self {
            target,
            random_id,
            text,
            media,
            reply_to: None,
            forwarded: None,
            action: None,
            reply_markup: None,
            entities: None,
        }
    }

    /// The same message with buttons (kept only from a bot) and the text's formatting.
    pub fn with_markup(
        mut self,
        reply_markup: Option<enums::ReplyMarkup>,
        entities: Option<Vec<enums::MessageEntity>>,
    ) -> Self {
        self.reply_markup = reply_markup;
        self.entities = entities;
        self
    }

    /// A service message to `target` recording `action` (the random id is the server's).
    pub fn service(target: i64, random_id: i64, action: Action) -> Self {
        Self {
            action: Some(action),
            ..Self::new(target, random_id, String::new(), None)
        }
    }

    /// The same message as a reply to `id` (in the sender's box).
    pub fn replying_to(mut self, id: Option<i32>) -> Self {
        self.reply_to = id;
        self
    }
}

/// The channel an `inputPeerChannel` names (checked; `CHANNEL_INVALID` otherwise).
async fn channel_of(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    peer: enums::InputPeer,
) -> Result<channels::Channel, ApiError> {
    let user = ctx.user()?;
    let backend = backend.clone();
    ctx.blocking(move || {
        channels::input_peer_channel(&backend, user, &peer)?.ok_or_else(channels::channel_invalid)
    })
    .await
}

/// The id in the sender's box of the message an `InputReplyTo` names, if any (replies to
/// stories and in other chats are not taken: `REPLY_TO_INVALID`).
fn reply_id(reply_to: Option<&enums::InputReplyTo>) -> Result<Option<i32>, ApiError> {
    match reply_to {
        None => Ok(None),
        Some(enums::InputReplyTo::InputReplyToMessage(reply))
            if reply.reply_to_peer_id.is_none() =>
        {
            Ok(Some(reply.reply_to_msg_id))
        }
        Some(_) => Err(ApiError::bad_request("REPLY_TO_INVALID")),
    }
}

/// The reply's target in each box of the chat between `sender` and `target`: its id in the
/// sender's box, and the id of the same message in the target's box (found by the send
/// that made it). `REPLY_MESSAGE_ID_INVALID` when the sender's box has no such message in
/// that chat. Blocking.
fn reply_targets(
    backend: &Backend,
    sender: i64,
    target: i64,
    id: i32,
) -> Result<Vec<(i64, i32)>, ApiError> {
    let invalid = || ApiError::bad_request("REPLY_MESSAGE_ID_INVALID");
    let replied = backend
        .messages
        .get_messages(BoxId::User(sender), &[id])?
        .into_iter()
        .next()
        .filter(|message| message.peer == Peer::User(target))
        .ok_or_else(invalid)?;
    let mut targets = vec![(sender, id)];
    if target != sender {
        // Who sent the replied-to message, and to whom: its identity in the store.
        let to = if replied.from == sender {
            target
        } else {
            sender
        };
        let copies = backend
            .messages
            .sent(replied.from, Peer::User(to), replied.random_id)?
            .unwrap_or_default();
        targets.extend(
            copies
                .iter()
                .find(|copy| copy.box_id == BoxId::User(target))
                .map(|copy| (target, copy.message_id)),
        );
    }
    Ok(targets)
}

/// What [`send`] stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Sent {
    /// The sender.
    pub sender: i64,
    /// The recipient.
    pub target: i64,
    /// The sender's copy.
    pub message: StoredMessage,
    /// The sender's answer: `updateMessageID` and `updateNewMessage`.
    pub updates: enums::Updates,
    /// The recipient's box, changed by this send; `None` when the send repeated an earlier
    /// one (nothing new was stored) or the message went to the sender's own box only.
    pub delivered: Option<Affected>,
}

impl Sent {
    /// Tells the recipient of the new message, after the answer.
    pub fn notify_recipient(&self, ctx: &Ctx, backend: &Arc<Backend>) {
        notify_after(ctx, backend, self.delivered.into_iter().collect());
    }
}

/// A private message from `sender` to `target`, dated now, its reply (if any) not resolved:
/// see [`send`], which names the replied-to message in each box.
pub fn private_message(sender: i64, outgoing: &Outgoing) -> SendRequest {
    request_of(sender, outgoing, Vec::new())
}

fn request_of(sender: i64, outgoing: &Outgoing, reply_to: Vec<(i64, i32)>) -> SendRequest {
    let body = Body {
        text: outgoing.text.clone(),
        reply_to,
        forwarded: outgoing.forwarded,
        action: outgoing.action,
        reply_markup: outgoing
            .reply_markup
            .as_ref()
            .map(|markup| markup.to_bytes()),
        entities: outgoing
            .entities
            .as_ref()
            .filter(|entities| !entities.is_empty())
            .map(|entities| entities.to_bytes()),
    };
    SendRequest {
        sender,
        peer: Peer::User(outgoing.target),
        random_id: outgoing.random_id,
        date: now_unix(),
        body: body.encode(),
        media: outgoing.media.clone(),
        flags: 0,
        members: Vec::new(),
        sender_only: false,
    }
}

/// Stores `outgoing` from the caller (idempotent by random id: a repeat answers with the
/// original message) and builds the caller's answer. The recipient is not told: the caller
/// decides ([`Sent::notify_recipient`]).
pub async fn send(ctx: &Ctx, backend: &Arc<Backend>, outgoing: Outgoing) -> Result<Sent, ApiError> {
    let sender = ctx.user()?;
    let backend = backend.clone();
    ctx.blocking(move || send_blocking(&backend, sender, outgoing))
        .await
}

/// [`send`] on the calling thread, for a caller already on the blocking pool (one hand-off
/// for the request's lookups and the send, where two would cost two thread switches).
/// Blocking.
pub fn send_blocking(backend: &Backend, sender: i64, outgoing: Outgoing) -> Result<Sent, ApiError> {
    if outgoing.text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::bad_request("MESSAGE_TOO_LONG"));
    }
    backend.recipient(outgoing.target)?;
    if outgoing.target != sender && backend.is_bot(sender)? {
        check_bot_may_write(backend, sender, outgoing.target)?;
    }
    if outgoing.target != sender && backend.users.is_blocked(sender, outgoing.target)? {
        return Err(ApiError::bad_request("YOU_BLOCKED_USER"));
    }
    let reply_to = match outgoing.reply_to {
        Some(id) => reply_targets(backend, sender, outgoing.target, id)?,
        None => Vec::new(),
    };
    let mut outgoing = outgoing;
    check_markup(
        backend,
        sender,
        &mut outgoing.reply_markup,
        &outgoing.entities,
    )?;
    let mut request = request_of(sender, &outgoing, reply_to);
    // A recipient who blocked the sender never gets the message; the sender is not
    // told (Telegram keeps it on the sender's side as if sent).
    request.sender_only =
        outgoing.target != sender && backend.users.is_blocked(outgoing.target, sender)?;
    let outcome = backend.messages.send(&request)?;
    let missing = || ApiError::new(500, "INTERNAL");
    let mine = outcome.deliveries.first().ok_or_else(missing)?;
    let message = backend
        .messages
        .get_messages(BoxId::User(sender), &[mine.message_id])?
        .into_iter()
        .next()
        .ok_or_else(missing)?;
    let updates = objects::updates(
        vec![
            types::UpdateMessageID {
                id: mine.message_id,
                random_id: outgoing.random_id,
            }
            .into(),
            types::UpdateNewMessage {
                message: objects::message(&message),
                pts: mine.pts,
                pts_count: 1,
            }
            .into(),
        ],
        backend.user_objects([sender, outgoing.target], sender)?,
        message.date,
    );
    let delivered = match (outcome.repeated, outcome.deliveries.get(1)) {
        (false, Some(theirs)) => Some(Affected {
            box_id: theirs.box_id,
            pts: theirs.pts,
            pts_count: 1,
        }),
        _ => None,
    };
    Ok(Sent {
        sender,
        target: outgoing.target,
        message,
        updates,
        delivered,
    })
}

/// Telegram's rules for a bot's message: not to another bot (`USER_IS_BOT`), and only in a
/// chat the person started (`PEER_ID_INVALID`: bots do not start conversations). Blocking.
pub fn check_bot_may_write(backend: &Backend, bot: i64, target: i64) -> Result<(), ApiError> {
    if backend.is_bot(target)? {
        return Err(ApiError::bad_request("USER_IS_BOT"));
    }
    let query = HistoryQuery {
        limit: 1,
        ..HistoryQuery::default()
    };
    let started = !backend
        .messages
        .get_history(BoxId::User(bot), Peer::User(target), &query)?
        .messages
        .is_empty();
    if started {
        Ok(())
    } else {
        Err(ApiError::bad_request("PEER_ID_INVALID"))
    }
}

/// Telegram's rules for what comes with a text: buttons only from bots (a person's are
/// dropped, as Telegram ignores them), within [`body::MAX_MARKUP_BYTES`]
/// (`REPLY_MARKUP_TOO_LONG`), and entities within [`body::MAX_ENTITIES_BYTES`]
/// (`ENTITIES_TOO_LONG`). Blocking.
///
/// [`body::MAX_MARKUP_BYTES`]: crate::body::MAX_MARKUP_BYTES
/// [`body::MAX_ENTITIES_BYTES`]: crate::body::MAX_ENTITIES_BYTES
pub fn check_markup(
    backend: &Backend,
    sender: i64,
    reply_markup: &mut Option<enums::ReplyMarkup>,
    entities: &Option<Vec<enums::MessageEntity>>,
) -> Result<(), ApiError> {
    if entities
        .as_ref()
        .is_some_and(|entities| entities.to_bytes().len() > crate::body::MAX_ENTITIES_BYTES)
    {
        return Err(ApiError::bad_request("ENTITIES_TOO_LONG"));
    }
    if reply_markup.is_some() && !backend.is_bot(sender)? {
        *reply_markup = None;
    }
    if reply_markup
        .as_ref()
        .is_some_and(|markup| markup.to_bytes().len() > crate::body::MAX_MARKUP_BYTES)
    {
        return Err(ApiError::bad_request("REPLY_MARKUP_TOO_LONG"));
    }
    Ok(())
}

/// The [`Outgoing`] of a `messages.sendMessage` (checked: `MESSAGE_EMPTY`, the peer).
pub fn outgoing_text(
    backend: &Backend,
    user: i64,
    request: functions::messages::SendMessage,
) -> Result<Outgoing, ApiError> {
    if request.message.is_empty() {
        return Err(ApiError::bad_request("MESSAGE_EMPTY"));
    }
    let reply_to = reply_id(request.reply_to.as_ref())?;
    let target = backend.input_peer(user, &request.peer)?;
    Ok(
        Outgoing::new(target, request.random_id, request.message, None)
            .replying_to(reply_to)
            .with_markup(request.reply_markup, request.entities),
    )
}

/// The [`Outgoing`] of a `messages.sendMedia` (the upload is finished here). Blocking.
pub fn outgoing_media(
    backend: &Backend,
    user: i64,
    request: functions::messages::SendMedia,
) -> Result<Outgoing, ApiError> {
    let reply_to = reply_id(request.reply_to.as_ref())?;
    let target = backend.input_peer(user, &request.peer)?;
    let media = upload::media(backend, user, &request.media)?;
    Ok(Outgoing::new(
        target,
        request.random_id,
        request.message,
        Some(media.to_bytes()),
    )
    .replying_to(reply_to)
    .with_markup(request.reply_markup, request.entities))
}

/// `messages.sendMessage` to a user.
pub async fn send_message(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::SendMessage,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    if let enums::InputPeer::InputPeerChat(chat) = &request.peer {
        if request.message.is_empty() {
            return Err(ApiError::bad_request("MESSAGE_EMPTY"));
        }
        let chat_id = chat.chat_id;
        return chats::send_to_chat(
            &ctx,
            &backend,
            chat_id,
            request.random_id,
            request.message,
            None,
        )
        .await;
    }
    if let enums::InputPeer::InputPeerChannel(_) = &request.peer {
        if request.message.is_empty() {
            return Err(ApiError::bad_request("MESSAGE_EMPTY"));
        }
        let reply_to = reply_id(request.reply_to.as_ref())?;
        let channel = channel_of(&ctx, &backend, request.peer.clone()).await?;
        return channels::send_to_channel(
            &ctx,
            &backend,
            channel,
            request.random_id,
            request.message,
            None,
            reply_to,
        )
        .await;
    }
    let sent = {
        let backend = backend.clone();
        ctx.blocking(move || send_blocking(&backend, user, outgoing_text(&backend, user, request)?))
            .await?
    };
    sent.notify_recipient(&ctx, &backend);
    Ok(sent.updates)
}

/// `messages.sendMedia` of an uploaded document or photo to a user.
pub async fn send_media(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::SendMedia,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    if let enums::InputPeer::InputPeerChat(chat) = &request.peer {
        let chat_id = chat.chat_id;
        let media = {
            let backend = backend.clone();
            let input = request.media.clone();
            ctx.blocking(move || Ok(upload::media(&backend, user, &input)?.to_bytes()))
                .await?
        };
        return chats::send_to_chat(
            &ctx,
            &backend,
            chat_id,
            request.random_id,
            request.message,
            Some(media),
        )
        .await;
    }
    if let enums::InputPeer::InputPeerChannel(_) = &request.peer {
        let reply_to = reply_id(request.reply_to.as_ref())?;
        let (channel, media) = {
            let backend = backend.clone();
            let peer = request.peer.clone();
            let input = request.media.clone();
            ctx.blocking(move || {
                let channel = channels::input_peer_channel(&backend, user, &peer)?
                    .ok_or_else(channels::channel_invalid)?;
                channel.require_post(now_unix())?;
                let media = upload::media(&backend, user, &input)?;
                Ok((channel, media.to_bytes()))
            })
            .await?
        };
        return channels::send_to_channel(
            &ctx,
            &backend,
            channel,
            request.random_id,
            request.message,
            Some(media),
            reply_to,
        )
        .await;
    }
    let outgoing = {
        let backend = backend.clone();
        ctx.blocking(move || outgoing_media(&backend, user, request))
            .await?
    };
    let sent = send(&ctx, &backend, outgoing).await?;
    sent.notify_recipient(&ctx, &backend);
    Ok(sent.updates)
}

/// `messages.getHistory` of a private chat, with Telegram's paging rules (the store's).
pub async fn get_history(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::GetHistory,
) -> Result<enums::messages::Messages, ApiError> {
    let user = ctx.user()?;
    ctx.blocking(move || {
        if let Some(channel) = channels::input_peer_channel(&backend, user, &request.peer)? {
            return channels::channel_history(&backend, &channel, user, &request);
        }
        let chat_peer = match &request.peer {
            enums::InputPeer::InputPeerChat(chat) => {
                chats::load(&backend, user, chat.chat_id)?;
                Peer::Chat(chat.chat_id)
            }
            peer => Peer::User(backend.input_peer(user, peer)?),
        };
        let page = backend.messages.get_history(
            BoxId::User(user),
            chat_peer,
            &HistoryQuery {
                offset_id: request.offset_id,
                offset_date: request.offset_date,
                add_offset: request.add_offset,
                limit: request.limit,
                max_id: request.max_id,
                min_id: request.min_id,
            },
        )?;
        let users = backend.users_of(&page.messages, user)?;
        let chats = chats::chats_of(&backend, &page.messages, user)?;
        let messages: Vec<enums::Message> = page.messages.iter().map(objects::message).collect();
        Ok(if messages.len() == page.count {
            types::messages::Messages {
                messages,
                topics: Vec::new(),
                chats,
                users,
            }
            .into()
        } else {
            types::messages::MessagesSlice {
                inexact: false,
                count: i32::try_from(page.count).unwrap_or(i32::MAX),
                next_rate: None,
                offset_id_offset: Some(i32::try_from(page.offset_id_offset).unwrap_or(i32::MAX)),
                search_flood: None,
                messages,
                topics: Vec::new(),
                chats,
                users,
            }
            .into()
        })
    })
    .await
}

/// `messages.getMessages`: the messages asked for by id, `messageEmpty` for those missing.
pub async fn get_messages(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::GetMessages,
) -> Result<enums::messages::Messages, ApiError> {
    let user = ctx.user()?;
    if request.id.len() > MAX_GET_MESSAGES {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    ctx.blocking(move || {
        let wanted: Vec<i32> = request
            .id
            .iter()
            .filter_map(|input| match input {
                enums::InputMessage::InputMessageID(input) => Some(input.id),
                _ => None,
            })
            .collect();
        let found = backend.messages.get_messages(BoxId::User(user), &wanted)?;
        let messages = wanted
            .iter()
            .map(|id| match found.iter().find(|message| message.id == *id) {
                Some(message) => objects::message(message),
                None => types::MessageEmpty {
                    id: *id,
                    peer_id: None,
                }
                .into(),
            })
            .collect();
        Ok(types::messages::Messages {
            messages,
            topics: Vec::new(),
            chats: chats::chats_of(&backend, &found, user)?,
            users: backend.users_of(&found, user)?,
        }
        .into())
    })
    .await
}

/// `messages.getDialogs`: a page of at most `limit` (1 to [`MAX_DIALOGS`]) chats below
/// `offset_id` (the last top message of the page before; 0 for the first), as
/// `messages.dialogs` when it is all there is and `messages.dialogsSlice` (with the whole
/// count) otherwise. (`offset_date` and `offset_peer` add nothing: a top message's id is
/// unique in the box.)
pub async fn get_dialogs(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::GetDialogs,
) -> Result<enums::messages::Dialogs, ApiError> {
    let user = ctx.user()?;
    let limit = usize::try_from(request.limit)
        .unwrap_or(0)
        .clamp(1, MAX_DIALOGS);
    let offset_id = request.offset_id;
    ctx.blocking(move || {
        let channel_dialogs = backend.messages.channel_dialogs(user)?;
        if !channel_dialogs.is_empty() {
            return merged_dialogs(&backend, user, &request, channel_dialogs, limit);
        }
        // One more than asked, to know whether there is more.
        let mut dialogs = backend.messages.dialogs(user, offset_id, limit + 1)?;
        let partial = offset_id > 0 || dialogs.len() > limit;
        dialogs.truncate(limit);
        let tops: Vec<i32> = dialogs.iter().map(|dialog| dialog.top_message).collect();
        let messages = backend.messages.get_messages(BoxId::User(user), &tops)?;
        let users = backend.users_of(&messages, user)?;
        let chats = chats::chats_of(&backend, &messages, user)?;
        let dialogs: Vec<enums::Dialog> = dialogs.iter().map(dialog_object).collect();
        let messages: Vec<enums::Message> = messages.iter().map(objects::message).collect();
        Ok(if partial {
            let count = backend.messages.dialog_count(user)?;
            types::messages::DialogsSlice {
                count: i32::try_from(count).unwrap_or(i32::MAX),
                dialogs,
                messages,
                chats,
                users,
            }
            .into()
        } else {
            types::messages::Dialogs {
                dialogs,
                messages,
                chats,
                users,
            }
            .into()
        })
    })
    .await
}

/// Common-box chats a merged dialog list reads at most (the newest): a user with more
/// private chats than this and channels too sees only these merged with their channels.
pub const MAX_MERGED_DIALOGS: usize = 10_000;

/// `messages.getDialogs` for a user in channels: their common-box chats and their channels
/// in one list, newest top message date first, paged by the position after `offset_peer`
/// (or, when that chat is not in the list, after `offset_date`), as clients page.
fn merged_dialogs(
    backend: &Backend,
    user: i64,
    request: &functions::messages::GetDialogs,
    channel_dialogs: Vec<columba_store::message::Dialog>,
    limit: usize,
) -> Result<enums::messages::Dialogs, ApiError> {
    let mut common = Vec::new();
    let mut offset = 0;
    while common.len() < MAX_MERGED_DIALOGS {
        let page = backend
            .messages
            .dialogs(user, offset, columba_store::message::MAX_PAGE)?;
        let Some(last) = page.last() else {
            break;
        };
        offset = last.top_message;
        let full = page.len() == columba_store::message::MAX_PAGE;
        common.extend(page);
        if !full {
            break;
        }
    }
    let mut all: Vec<columba_store::message::Dialog> = common;
    all.extend(channel_dialogs);
    all.sort_by_key(|d| std::cmp::Reverse((d.top_date, d.peer)));
    let total = all.len();
    let offset_peer = match &request.offset_peer {
        enums::InputPeer::InputPeerUser(peer) => Some(Peer::User(peer.user_id)),
        enums::InputPeer::InputPeerSelf(_) => Some(Peer::User(user)),
        enums::InputPeer::InputPeerChannel(peer) => Some(Peer::Channel(peer.channel_id)),
        enums::InputPeer::InputPeerChat(peer) => Some(Peer::Chat(peer.chat_id)),
        _ => None,
    };
    let start = match offset_peer.and_then(|peer| all.iter().position(|d| d.peer == peer)) {
        Some(position) => position + 1,
        None if request.offset_date > 0 => all
            .iter()
            .position(|d| d.top_date < request.offset_date)
            .unwrap_or(total),
        None => 0,
    };
    let page: Vec<columba_store::message::Dialog> =
        all.into_iter().skip(start).take(limit).collect();
    let partial = start > 0 || start + page.len() < total;
    let mut dialogs = Vec::with_capacity(page.len());
    let mut messages = Vec::with_capacity(page.len());
    let mut chats = Vec::new();
    let mut user_ids = vec![user];
    let mut tops = Vec::new();
    for dialog in &page {
        match dialog.peer {
            Peer::Channel(id) => {
                let Some(channel) = channels::load(backend, user, id)? else {
                    continue;
                };
                let pts = backend.messages.state(channel.box_id())?.pts;
                dialogs.push(channels::dialog_object(dialog, pts));
                if dialog.top_message > 0 {
                    for message in backend
                        .messages
                        .get_messages(channel.box_id(), &[dialog.top_message])?
                    {
                        user_ids.push(message.from);
                        messages.push(channels::message_object(
                            &message,
                            user,
                            &channel.info,
                            None,
                        ));
                    }
                }
                chats.push(channels::channel_object(backend, &channel));
            }
            _ => {
                dialogs.push(dialog_object(dialog));
                tops.push(dialog.top_message);
            }
        }
    }
    let common_tops = backend.messages.get_messages(BoxId::User(user), &tops)?;
    chats.extend(chats::chats_of(backend, &common_tops, user)?);
    for message in &common_tops {
        user_ids.push(message.from);
        if let Peer::User(peer) = message.peer {
            user_ids.push(peer);
        }
        messages.push(objects::message(message));
    }
    let users = backend.user_objects(user_ids, user)?;
    Ok(if partial {
        types::messages::DialogsSlice {
            count: i32::try_from(total).unwrap_or(i32::MAX),
            dialogs,
            messages,
            chats,
            users,
        }
        .into()
    } else {
        types::messages::Dialogs {
            dialogs,
            messages,
            chats,
            users,
        }
        .into()
    })
}

/// `messages.affectedMessages` for the caller's box; the other boxes are told.
fn affected(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    user: i64,
    affected: Vec<Affected>,
) -> Result<enums::messages::AffectedMessages, ApiError> {
    let box_id = BoxId::User(user);
    let (mine, others): (Vec<Affected>, Vec<Affected>) = affected
        .into_iter()
        .partition(|affected| affected.box_id == box_id);
    let (pts, pts_count) = match mine.first() {
        Some(affected) => (affected.pts, affected.pts_count),
        None => (backend.messages.state(box_id)?.pts, 0),
    };
    notify_after(ctx, backend, others);
    Ok(types::messages::AffectedMessages { pts, pts_count }.into())
}

/// `messages.readHistory` of a private chat.
pub async fn read_history(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::ReadHistory,
) -> Result<enums::messages::AffectedMessages, ApiError> {
    let user = ctx.user()?;
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let peer = match &request.peer {
            enums::InputPeer::InputPeerChat(chat) => {
                chats::load(&backend, user, chat.chat_id)?;
                Peer::Chat(chat.chat_id)
            }
            peer => Peer::User(backend.input_peer(user, peer)?),
        };
        let changed = backend.messages.read_history(user, peer, request.max_id)?;
        affected(&task_ctx, &backend, user, changed)
    })
    .await
}

/// `messages.deleteMessages` (for everyone with `revoke`).
pub async fn delete_messages(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::DeleteMessages,
) -> Result<enums::messages::AffectedMessages, ApiError> {
    let user = ctx.user()?;
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let changed = backend
            .messages
            .delete(BoxId::User(user), &request.id, request.revoke)?;
        affected(&task_ctx, &backend, user, changed)
    })
    .await
}

/// `messages.editMessage` of the caller's own message: text and media.
pub async fn edit_message(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::EditMessage,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        if let Some(channel) = channels::input_peer_channel(&backend, user, &request.peer)? {
            let media = match &request.media {
                Some(input) => Some(upload::media(&backend, user, input)?.to_bytes()),
                None => None,
            };
            return channels::edit_in_channel(&task_ctx, &backend, &channel, user, &request, media);
        }
        let box_id = BoxId::User(user);
        let invalid = || ApiError::bad_request("MESSAGE_ID_INVALID");
        let current = backend
            .messages
            .get_messages(box_id, &[request.id])?
            .into_iter()
            .next()
            .ok_or_else(invalid)?;
        if Body::decode(&current.body).action.is_some() {
            return Err(ApiError::bad_request("MESSAGE_ID_INVALID"));
        }
        // The text changes (and with it its entities), the buttons when given; what it
        // replies to and where it came from stay.
        let mut reply_markup = request.reply_markup.clone();
        check_markup(&backend, user, &mut reply_markup, &request.entities)?;
        let mut body = Body::decode(&current.body);
        if let Some(text) = request.message.clone() {
            body.text = text;
            body.entities = request
                .entities
                .as_ref()
                .filter(|entities| !entities.is_empty())
                .map(|entities| entities.to_bytes());
        }
        // As in Telegram, an edit without buttons takes the old ones away.
        body.reply_markup = reply_markup.as_ref().map(|markup| markup.to_bytes());
        let body = body.encode();
        if body == current.body && request.media.is_none() {
            return Err(ApiError::bad_request("MESSAGE_NOT_MODIFIED"));
        }
        let media = match &request.media {
            Some(input) => Some(upload::media(&backend, user, input)?.to_bytes()),
            None => current.media,
        };
        let changed = backend
            .messages
            .edit(user, box_id, request.id, body, media, now_unix())?;
        let (mine, others): (Vec<Affected>, Vec<Affected>) = changed
            .into_iter()
            .partition(|affected| affected.box_id == box_id);
        let edited = backend
            .messages
            .get_messages(box_id, &[request.id])?
            .into_iter()
            .next()
            .ok_or_else(invalid)?;
        let (pts, pts_count) = mine
            .first()
            .map_or((0, 0), |affected| (affected.pts, affected.pts_count));
        notify_after(&task_ctx, &backend, others);
        Ok(objects::updates(
            vec![
                types::UpdateEditMessage {
                    message: objects::message(&edited),
                    pts,
                    pts_count,
                }
                .into(),
            ],
            backend.users_of(std::slice::from_ref(&edited), user)?,
            now_unix(),
        ))
    })
    .await
}
