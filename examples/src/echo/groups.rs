//! The echo in groups: in a basic group or a supergroup it is a member of, `@echo` answers a
//! message that mentions it (`@echo` in the text) or replies to one of its own, with the
//! same text, as a reply. Its answer's random id follows from the message it answers, so a
//! resent message is not answered twice.

use std::sync::Arc;

use columba_api::body::Body;
use columba_api::{ApiError, Backend, Ctx, channels, chats};
use columba_mtproto::tl::api::enums;
use columba_store::message::{BoxId, Peer};

use super::users::{ECHO_USER_ID, ECHO_USERNAME};

/// The id and text of the sender's new message in an answer to a send.
fn sent_message(answer: &enums::Updates) -> Option<(i32, String)> {
    let enums::Updates::Updates(updates) = answer else {
        return None;
    };
    updates.updates.iter().find_map(|update| {
        let message = match update {
            enums::Update::UpdateNewMessage(update) => &update.message,
            enums::Update::UpdateNewChannelMessage(update) => &update.message,
            _ => return None,
        };
        match message {
            enums::Message::Message(message) => Some((message.id, message.message.clone())),
            _ => None,
        }
    })
}

/// Whether `text` names the echo (`@echo`, any case, not part of a longer name).
fn mentions_echo(text: &str) -> bool {
    let wanted = format!("@{ECHO_USERNAME}");
    let lower = text.to_lowercase();
    lower.match_indices(&wanted).any(|(at, _)| {
        lower[at + wanted.len()..]
            .chars()
            .next()
            .is_none_or(|next| !(next.is_alphanumeric() || next == '_'))
    })
}

/// After `user`'s send to the group `peer` was answered with `answer`: the echo answers if
/// the message is for it. Blocking; errors are logged (the sender's send succeeded).
pub(super) fn answer_in_group(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    user: i64,
    peer: &enums::InputPeer,
    reply_to: Option<i32>,
    answer: &enums::Updates,
) {
    if user == ECHO_USER_ID {
        return;
    }
    let Some((id, text)) = sent_message(answer) else {
        return;
    };
    if let Err(error) = reply(ctx, backend, user, peer, reply_to, id, text) {
        tracing::warn!(%error, "the echo could not answer in a group");
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each argument named there"
)]
fn reply(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    user: i64,
    peer: &enums::InputPeer,
    reply_to: Option<i32>,
    id: i32,
    text: String,
) -> Result<(), ApiError> {
    let random_id = (user as u64)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(id as u64)
        .rotate_left(7) as i64;
    match peer {
        enums::InputPeer::InputPeerChannel(input) => {
            let Some(channel) = channels::load(backend, ECHO_USER_ID, input.channel_id)? else {
                return Ok(());
            };
            if !channel.is_member() || channel.info.broadcast {
                return Ok(());
            }
            let to_echo = match reply_to {
                Some(replied) => backend
                    .messages
                    .get_messages(channel.box_id(), &[replied])?
                    .first()
                    .is_some_and(|message| message.from == ECHO_USER_ID),
                None => false,
            };
            if !(to_echo || mentions_echo(&text)) {
                return Ok(());
            }
            let body = Body {
                reply_to: vec![(channel.id, id)],
                ..Body::text(text)
            };
            let posted = channels::post(backend, &channel, ECHO_USER_ID, random_id, &body, None)?;
            channels::announce(ctx, backend, &channel, &posted);
        }
        enums::InputPeer::InputPeerChat(input) => {
            let chat = chats::load(backend, ECHO_USER_ID, input.chat_id)?;
            if chat.require_member().is_err() {
                return Ok(());
            }
            let to_echo = match reply_to {
                Some(replied) => backend
                    .messages
                    .get_messages(BoxId::User(user), &[replied])?
                    .first()
                    .is_some_and(|message| {
                        message.from == ECHO_USER_ID && message.peer == Peer::Chat(chat.id)
                    }),
                None => false,
            };
            if !(to_echo || mentions_echo(&text)) {
                return Ok(());
            }
            // A plain message (a reply would name the message in every member's box).
            chats::post(
                ctx,
                backend,
                &chat,
                ECHO_USER_ID,
                random_id,
                &Body::text(text),
                None,
            )?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mention_is_the_whole_name() {
        assert!(mentions_echo("hey @echo, say this"));
        assert!(mentions_echo("@ECHO"));
        assert!(!mentions_echo("@echoes are not me"));
        assert!(!mentions_echo("echo without the at"));
    }
}
