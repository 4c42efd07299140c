//! The `@echo` user: every message sent to it comes back with the same text and media.
//!
//! It is the stock `messages.sendMessage` and `messages.sendMedia` of `columba-api`,
//! wrapped: the message is stored by [`messages::send`], and when it went to the echo user
//! the reply is stored and pushed to the sender after the answer. The reply's random id
//! follows from the message it answers, so that echoing one message twice stores one reply:
//! a resent message asks for its echo again, and a start makes up the replies a stop cut
//! off ([`Echo::catch_up`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use columba_api::body::Body;
use columba_api::messages::{self, Outgoing, Sent};
use columba_api::{ApiError, Backend, Ctx, Router, updates};
use columba_mtproto::tl::api::{enums, functions};
use columba_session::runtime::ServerHandle;
use columba_store::MessageError;
use columba_store::message::{Affected, BoxId, HistoryQuery, Peer};

use super::botfather::{BOTFATHER_USER_ID, BotFather};
use super::users::ECHO_USER_ID;

/// Stores `outgoing` from the server's own account `from` (the echo, `@BotFather`) and tells
/// the recipient; whether it was stored now (`false`: a repeat of its random id). Blocking.
pub(crate) fn send_as_service(
    backend: &Backend,
    server: &ServerHandle,
    from: i64,
    outgoing: &Outgoing,
) -> Result<bool, MessageError> {
    let outcome = backend
        .messages
        .send(&messages::private_message(from, outgoing))?;
    if outcome.repeated {
        return Ok(false);
    }
    if let Some(theirs) = outcome.deliveries.get(1) {
        let affected = Affected {
            box_id: theirs.box_id,
            pts: theirs.pts,
            pts_count: 1,
        };
        updates::notify(server, backend, affected);
    }
    Ok(true)
}

/// The message a send replies to, by id in the chat it goes to.
fn reply_id(reply_to: &Option<enums::InputReplyTo>) -> Option<i32> {
    match reply_to {
        Some(enums::InputReplyTo::InputReplyToMessage(reply)) => Some(reply.reply_to_msg_id),
        _ => None,
    }
}

/// Whether a message goes to a group or a channel (the stock send stores and delivers it;
/// the echo answers private messages only).
fn is_group(peer: &enums::InputPeer) -> bool {
    matches!(
        peer,
        enums::InputPeer::InputPeerChannel(_) | enums::InputPeer::InputPeerChat(_)
    )
}

/// The echo user's behaviour.
#[derive(Debug)]
pub struct Echo {
    backend: Arc<Backend>,
    father: BotFather,
}

impl Echo {
    /// The echo over `backend`.
    pub fn new(backend: Arc<Backend>) -> Arc<Self> {
        Arc::new(Self {
            father: BotFather::new(backend.clone()),
            backend,
        })
    }

    /// The backend the echo works on.
    pub fn backend(&self) -> Arc<Backend> {
        self.backend.clone()
    }

    /// `messages.sendMessage` and `messages.sendMedia`, echoing what goes to the echo user.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route_with(
                self.clone(),
                |ctx, echo: Arc<Self>, request: functions::messages::SendMessage| async move {
                    if is_group(&request.peer) {
                        let (peer, reply_to) = (request.peer.clone(), reply_id(&request.reply_to));
                        let answer =
                            messages::send_message(ctx.clone(), echo.backend.clone(), request)
                                .await?;
                        echo.in_group(&ctx, peer, reply_to, &answer)?;
                        return Ok(answer);
                    }
                    let user = ctx.user()?;
                    let backend = echo.backend.clone();
                    // The request's lookups and the send in one hand-off to the pool.
                    let sent = ctx
                        .blocking(move || {
                            let outgoing = messages::outgoing_text(&backend, user, request)?;
                            messages::send_blocking(&backend, user, outgoing)
                        })
                        .await?;
                    Ok(echo.sent(&ctx, sent))
                },
            )
            .route_with(
                self.clone(),
                |ctx, echo: Arc<Self>, request: functions::messages::SendMedia| async move {
                    if is_group(&request.peer) {
                        let (peer, reply_to) = (request.peer.clone(), reply_id(&request.reply_to));
                        let answer =
                            messages::send_media(ctx.clone(), echo.backend.clone(), request)
                                .await?;
                        echo.in_group(&ctx, peer, reply_to, &answer)?;
                        return Ok(answer);
                    }
                    let user = ctx.user()?;
                    let backend = echo.backend.clone();
                    let outgoing = ctx
                        .blocking(move || messages::outgoing_media(&backend, user, request))
                        .await?;
                    echo.send(ctx, outgoing).await
                },
            )
    }

    /// After a send to a group: the echo answers there if the message is for it (after the
    /// sender's answer).
    fn in_group(
        &self,
        ctx: &Ctx,
        peer: enums::InputPeer,
        reply_to: Option<i32>,
        answer: &enums::Updates,
    ) -> Result<(), ApiError> {
        let user = ctx.user()?;
        let (task_ctx, backend, answer) = (ctx.clone(), self.backend.clone(), answer.clone());
        ctx.after(move || {
            super::groups::answer_in_group(&task_ctx, &backend, user, &peer, reply_to, &answer);
        });
        Ok(())
    }

    async fn send(
        self: Arc<Self>,
        ctx: Ctx,
        outgoing: Outgoing,
    ) -> Result<enums::Updates, ApiError> {
        let sent = messages::send(&ctx, &self.backend, outgoing).await?;
        Ok(self.sent(&ctx, sent))
    }

    /// After a send: the echo's reply when it went to the echo user, the recipient told
    /// otherwise; the sender's answer.
    fn sent(self: &Arc<Self>, ctx: &Ctx, sent: Sent) -> enums::Updates {
        if sent.target == ECHO_USER_ID && sent.sender != ECHO_USER_ID {
            // Even a repeated send asks for the echo: the server may have stopped between
            // the message and its reply, and the client's resend is the moment to make up
            // for it (a reply that exists is not stored twice).
            let server = ctx.server().clone();
            let echo = self.clone();
            let Sent {
                sender, message, ..
            } = sent.clone();
            ctx.after(move || {
                echo.reply(&server, sender, message.body, message.media, message.id);
            });
        } else if sent.target == BOTFATHER_USER_ID && sent.sender != BOTFATHER_USER_ID {
            let server = ctx.server().clone();
            let echo = self.clone();
            let (sender, id) = (sent.sender, sent.message.id);
            let text = Body::decode(&sent.message.body).text;
            ctx.after(move || echo.father.answer(&server, sender, &text, id));
        } else {
            sent.notify_recipient(ctx, &self.backend);
        }
        sent.updates
    }

    /// The echo user answers `user`'s message `source` with `text` and `media`; `true` if a
    /// reply was stored now (`false`: it was there already, or the store failed).
    fn reply(
        &self,
        server: &ServerHandle,
        user: i64,
        text: Vec<u8>,
        media: Option<Vec<u8>>,
        source: i32,
    ) -> bool {
        let random_id = (user as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(source as u64) as i64;
        let reply = Outgoing::new(user, random_id, Body::decode(&text).text, media);
        match send_as_service(&self.backend, server, ECHO_USER_ID, &reply) {
            Ok(stored) => stored,
            // The same reply is being stored right now (a resend raced the start's
            // catch-up): it is answered.
            Err(MessageError::RandomIdDuplicate) => false,
            Err(error) => {
                tracing::warn!(%error, "the echo could not answer");
                false
            }
        }
    }

    /// Answers the messages to the echo user that a stop cut off before their reply: the
    /// newest `per_user` messages of every user's chat with the echo (the echo's dialogs)
    /// are echoed again, and the replies that exist already are not stored twice. Returns
    /// how many replies were made up. Run once at start, before or while serving; it stops
    /// between two users once `stop` is set.
    pub fn catch_up(&self, server: &ServerHandle, per_user: i32, stop: &AtomicBool) -> usize {
        let mut made_up = 0;
        for user in self.chat_partners() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let query = HistoryQuery {
                offset_id: 0,
                offset_date: 0,
                add_offset: 0,
                limit: per_user,
                max_id: 0,
                min_id: 0,
            };
            let page = match self.backend.messages.get_history(
                BoxId::User(user),
                Peer::User(ECHO_USER_ID),
                &query,
            ) {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, user, "echo catch-up: history unreadable");
                    continue;
                }
            };
            // Oldest first, so that made-up replies come in the order of their messages.
            for message in page
                .messages
                .into_iter()
                .rev()
                .filter(|message| message.out)
            {
                if self.reply(server, user, message.body, message.media, message.id) {
                    made_up += 1;
                }
            }
        }
        if made_up > 0 {
            tracing::info!(made_up, "echo replies a stop had cut off were sent");
        }
        made_up
    }

    /// The users who have a chat with the echo: the private chats of its box, a page of
    /// dialogs at a time.
    fn chat_partners(&self) -> Vec<i64> {
        const PAGE: usize = 500;
        let mut users = Vec::new();
        let mut offset = 0;
        loop {
            let page = match self.backend.messages.dialogs(ECHO_USER_ID, offset, PAGE) {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "echo catch-up: dialogs unreadable");
                    break;
                }
            };
            users.extend(page.iter().filter_map(|dialog| match dialog.peer {
                Peer::User(user) if user != ECHO_USER_ID => Some(user),
                _ => None,
            }));
            match page.last() {
                Some(last) if page.len() == PAGE => offset = last.top_message,
                _ => break,
            }
        }
        users
    }
}
