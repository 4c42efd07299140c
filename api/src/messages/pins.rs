//! Pinned messages of private chats: `messages.updatePinnedMessage` and
//! `messages.unpinAllMessages`. A pin takes a pts in every box it changes
//! (`updatePinnedMessages`); with `pm_oneside` only the caller's box changes. A new pin for
//! both sides also writes a service message (`messageActionPinMessage`).

use std::sync::Arc;

use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::{Affected, BoxId, MAX_PAGE, Peer, UpdateEntry};

use crate::backend::Backend;
use crate::body::Action;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::messages::{Outgoing, send};
use crate::objects::{self, now_unix};
use crate::updates::notify_after;

/// Pinned messages one `messages.unpinAllMessages` unpins at most; a client with more calls
/// again (the answer's `offset` says so, as Telegram's does).
pub const MAX_UNPIN_ALL: usize = MAX_PAGE;

/// The caller's own entry, if its box changed; the other boxes are told after the answer.
fn tell_others(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    user: i64,
    changes: Vec<(BoxId, UpdateEntry)>,
) -> Option<UpdateEntry> {
    let own = BoxId::User(user);
    let mut mine = None;
    let mut others = Vec::new();
    for (box_id, entry) in changes {
        if box_id == own {
            mine = Some(entry);
        } else {
            others.push(Affected {
                box_id,
                pts: entry.pts,
                pts_count: entry.pts_count,
            });
        }
    }
    notify_after(ctx, backend, others);
    mine
}

/// The caller's own change as updates, with the users they name; the others are told.
fn answer(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    user: i64,
    target: i64,
    changes: Vec<(BoxId, UpdateEntry)>,
) -> Result<(Vec<enums::Update>, Vec<enums::User>), ApiError> {
    let mine =
        tell_others(ctx, backend, user, changes).and_then(|entry| objects::update_of(&entry, &[]));
    Ok((
        mine.into_iter().collect(),
        backend.user_objects([user, target], user)?,
    ))
}

/// `messages.updatePinnedMessage` in a private chat: pins (or with `unpin`, unpins) the
/// message for both sides, or with `pm_oneside` for the caller only. Pinning what is pinned
/// changes nothing and answers no update.
pub async fn update_pinned_message(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::UpdatePinnedMessage,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    let task_ctx = ctx.clone();
    let pin_backend = backend.clone();
    let (target, both_changed, mut updates, users) = ctx
        .blocking(move || {
            let backend = pin_backend;
            let target = backend.input_peer(user, &request.peer)?;
            // As a send: not to someone the caller blocked.
            if target != user && !request.pm_oneside && backend.users.is_blocked(user, target)? {
                return Err(ApiError::bad_request("YOU_BLOCKED_USER"));
            }
            // Someone who blocked the caller is not reached: the pin stays on this side.
            let one_side =
                request.pm_oneside || (target != user && backend.users.is_blocked(target, user)?);
            let changes = backend.messages.pin(
                BoxId::User(user),
                Peer::User(target),
                &[request.id],
                !request.unpin,
                one_side,
            )?;
            let both_changed = !one_side && !changes.is_empty();
            let (updates, users) = answer(&task_ctx, &backend, user, target, changes)?;
            Ok((target, both_changed, updates, users))
        })
        .await?;
    // A new pin for both sides of a private chat is recorded by a service message replying
    // to the pinned one, as Telegram writes it (clients show it, and Telethon's
    // `pin_message` returns it).
    let pinned_for_both = both_changed && !request.unpin && target != user;
    if pinned_for_both {
        let random_id = rand::random::<i64>();
        let outgoing =
            Outgoing::service(target, random_id, Action::PinMessage).replying_to(Some(request.id));
        // The pin is made and told already: a service message that cannot be written (the
        // pinned message deleted meanwhile, a failing store) does not undo it.
        match send(&ctx, &backend, outgoing).await {
            Ok(sent) => {
                sent.notify_recipient(&ctx, &backend);
                if let enums::Updates::Updates(answer) = sent.updates {
                    updates.extend(
                        answer
                            .updates
                            .into_iter()
                            .filter(|update| matches!(update, enums::Update::UpdateNewMessage(_))),
                    );
                }
            }
            Err(error) => tracing::warn!(?error, "a pin's service message was not written"),
        }
    }
    Ok(objects::updates(updates, users, now_unix()))
}

/// `messages.unpinAllMessages` of a private chat, for both sides: up to [`MAX_UNPIN_ALL`]
/// pinned messages per call; `offset` is nonzero when more are left.
pub async fn unpin_all_messages(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::UnpinAllMessages,
) -> Result<enums::messages::AffectedHistory, ApiError> {
    let user = ctx.user()?;
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let target = backend.input_peer(user, &request.peer)?;
        let own = BoxId::User(user);
        let chat = Peer::User(target);
        // Someone who blocked the caller is not reached, as with one pin.
        let one_side = target != user && backend.users.is_blocked(target, user)?;
        let ids = backend.messages.pinned(own, chat, 0, MAX_UNPIN_ALL)?;
        if ids.is_empty() {
            let pts = backend.messages.state(own)?.pts;
            return Ok(types::messages::AffectedHistory {
                pts,
                pts_count: 0,
                offset: 0,
            }
            .into());
        }
        let changes = backend.messages.pin(own, chat, &ids, false, one_side)?;
        let (pts, pts_count) = match tell_others(&task_ctx, &backend, user, changes) {
            Some(entry) => (entry.pts, entry.pts_count),
            None => (backend.messages.state(own)?.pts, 0),
        };
        let more = !backend.messages.pinned(own, chat, 0, 1)?.is_empty();
        Ok(types::messages::AffectedHistory {
            pts,
            pts_count,
            offset: if more { 1 } else { 0 },
        }
        .into())
    })
    .await
}
