//! `updates`: the state and the difference of the caller's common box, and [`notify`],
//! which tells a box's owner what changed in it (the other side of every change).

use std::sync::Arc;

use bytes::Bytes;
use columba_mtproto::tl::Serializable as _;
use columba_mtproto::tl::api::{enums, functions};
use columba_session::runtime::ServerHandle;
use columba_store::message::{Affected, BoxId, Difference};

use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects;
use crate::router::Router;

/// Update-log entries a `getDifference` answer carries at most.
pub const DIFFERENCE_LIMIT: usize = 100;

/// `updates.getState` and `updates.getDifference`.
pub fn router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route_with(backend.clone(), get_state)
        .route_with(backend, get_difference)
}

/// `updates.getState`.
pub async fn get_state(
    ctx: Ctx,
    backend: Arc<Backend>,
    _: functions::updates::GetState,
) -> Result<enums::updates::State, ApiError> {
    let user = ctx.user()?;
    let state = ctx
        .blocking(move || Ok(backend.messages.state(BoxId::User(user))?))
        .await?;
    Ok(objects::state(state.pts, objects::now_unix()))
}

/// `updates.getDifference` from the client's pts, at most [`DIFFERENCE_LIMIT`] entries.
pub async fn get_difference(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::updates::GetDifference,
) -> Result<enums::updates::Difference, ApiError> {
    let user = ctx.user()?;
    ctx.blocking(move || {
        let difference =
            backend
                .messages
                .get_difference(BoxId::User(user), request.pts, DIFFERENCE_LIMIT)?;
        let mut failed = None;
        let answer = objects::difference(
            difference,
            |messages| {
                backend.users_of(messages, user).unwrap_or_else(|error| {
                    failed = Some(error);
                    Vec::new()
                })
            },
            objects::now_unix(),
        );
        match failed {
            Some(error) => Err(error),
            None => Ok(answer),
        }
    })
    .await
}

/// Sends the owner of a changed box the updates of its log from `pts - pts_count` to
/// `pts`, as one `updates`. Blocking (it reads the store): call it from
/// [`Ctx::after`] or the blocking pool. Channel boxes are not told here.
pub fn notify(server: &ServerHandle, backend: &Backend, affected: Affected) {
    let BoxId::User(owner) = affected.box_id else {
        return;
    };
    let from = affected.pts - affected.pts_count;
    let limit = usize::try_from(affected.pts_count.clamp(1, 100)).unwrap_or(1);
    let Ok(Difference::Changes {
        entries, messages, ..
    }) = backend
        .messages
        .get_difference(affected.box_id, from, limit)
    else {
        return;
    };
    let updates: Vec<enums::Update> = entries
        .iter()
        .filter(|entry| entry.pts <= affected.pts)
        .filter_map(|entry| objects::update_of(entry, &messages))
        .collect();
    if updates.is_empty() {
        return;
    }
    let Ok(users) = backend.users_of(&messages, owner) else {
        return;
    };
    let updates = objects::updates(updates, users, objects::now_unix());
    server.send_update(owner, Bytes::from(updates.to_bytes()));
}

/// [`notify`] for each of `affected`, after the answer (on the blocking pool).
pub fn notify_after(ctx: &Ctx, backend: &Arc<Backend>, affected: Vec<Affected>) {
    if affected.is_empty() {
        return;
    }
    let server = ctx.server().clone();
    let backend = backend.clone();
    ctx.after(move || {
        for affected in affected {
            notify(&server, &backend, affected);
        }
    });
}
