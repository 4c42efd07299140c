//! Reactions in private chats: `messages.sendReaction` (one emoji per user, as Telegram
//! allows without Premium) and `messages.getMessagesReactions`. Reactions take no pts:
//! `updateMessageReactions` carries none, so the other side's live sessions are told
//! directly and a client that was away reads them with the messages.

use std::sync::Arc;

use bytes::Bytes;
use columba_mtproto::tl::Serializable as _;
use columba_mtproto::tl::api::{enums, functions};
use columba_store::message::{BoxId, StoredMessage};

use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::messages::MAX_GET_MESSAGES;
use crate::objects::{self, now_unix};

/// The reaction a `messages.sendReaction` asks for: `None` to take one's reaction back.
/// Only emoji reactions, and at most one (custom emoji and several reactions need Premium).
fn wanted(reaction: Option<&[enums::Reaction]>) -> Result<Option<Vec<u8>>, ApiError> {
    match reaction.unwrap_or_default() {
        [] | [enums::Reaction::ReactionEmpty(_)] => Ok(None),
        [enums::Reaction::ReactionEmoji(emoji)] => {
            if emoji.emoticon.is_empty() {
                return Err(ApiError::bad_request("REACTION_EMPTY"));
            }
            Ok(Some(emoji.emoticon.as_bytes().to_vec()))
        }
        [_] => Err(ApiError::bad_request("REACTION_INVALID")),
        _ => Err(ApiError::bad_request("REACTIONS_TOO_MANY")),
    }
}

/// `messages.sendReaction` in a private chat: sets, replaces or (with no reaction) removes
/// the caller's reaction in both copies. The caller gets `updateMessageReactions` in the
/// answer; the other side's live sessions get it after.
pub async fn send_reaction(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::SendReaction,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    let server = ctx.server().clone();
    let reaction = wanted(request.reaction.as_deref())?;
    ctx.blocking(move || {
        let target = backend.input_peer(user, &request.peer)?;
        let own = BoxId::User(user);
        let mine = backend
            .messages
            .get_messages(own, &[request.msg_id])?
            .into_iter()
            .next()
            .filter(|message| message.peer == columba_store::message::Peer::User(target))
            .ok_or_else(|| ApiError::bad_request("MESSAGE_ID_INVALID"))?;
        // Reactions reach the other copy: not to someone who blocked the caller (taking one
        // back is allowed, and they are not told).
        let blocked_by_target = target != user && backend.users.is_blocked(target, user)?;
        if blocked_by_target && reaction.is_some() {
            return Err(ApiError::forbidden("USER_IS_BLOCKED"));
        }
        let copies = backend
            .messages
            .react(user, own, mine.id, reaction, now_unix())?;
        let mut answer = Vec::new();
        for copy in &copies {
            match copy.box_id {
                BoxId::User(owner) if owner == user => {
                    answer.push(objects::reactions_update(copy));
                }
                BoxId::User(owner) if !blocked_by_target => tell(&server, &backend, owner, copy),
                BoxId::User(_) => {}
                BoxId::Channel(_) => {}
            }
        }
        Ok(objects::updates(
            answer,
            backend.user_objects([user, target], user)?,
            now_unix(),
        ))
    })
    .await
}

/// Sends `owner`'s live sessions the reactions of their copy.
fn tell(
    server: &columba_session::runtime::ServerHandle,
    backend: &Backend,
    owner: i64,
    copy: &StoredMessage,
) {
    let Ok(users) = backend.users_of(std::slice::from_ref(copy), owner) else {
        return;
    };
    let updates = objects::updates(vec![objects::reactions_update(copy)], users, now_unix());
    server.send_update(owner, Bytes::from(updates.to_bytes()));
}

/// `messages.getMessagesReactions`: `updateMessageReactions` for each of these messages of
/// the caller's chat (missing ones left out), at most [`MAX_GET_MESSAGES`].
pub async fn get_messages_reactions(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::GetMessagesReactions,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    if request.id.len() > MAX_GET_MESSAGES {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    ctx.blocking(move || {
        let target = backend.input_peer(user, &request.peer)?;
        let chat = columba_store::message::Peer::User(target);
        let messages: Vec<StoredMessage> = backend
            .messages
            .get_messages(BoxId::User(user), &request.id)?
            .into_iter()
            .filter(|message| message.peer == chat)
            .collect();
        let updates = messages.iter().map(objects::reactions_update).collect();
        Ok(objects::updates(
            updates,
            backend.users_of(&messages, user)?,
            now_unix(),
        ))
    })
    .await
}
