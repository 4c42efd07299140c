//! `updates`: the state and the difference of the caller's common box (with the device's
//! secret queue, [`crate::secret::with_secret_queue`]), and [`notify`],
//! which tells a box's owner what changed in it (the other side of every change).

use std::sync::Arc;

use bytes::Bytes;
use columba_mtproto::tl::Serializable as _;
use columba_mtproto::tl::api::{enums, functions, types};
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
    let key = ctx.perm_auth_key_id()?;
    let (state, queue) = ctx
        .blocking(move || {
            Ok((
                backend.messages.state(BoxId::User(user))?,
                backend.secrets.queue_state(key)?,
            ))
        })
        .await?;
    let mut answer = objects::state(state.pts, objects::now_unix());
    let enums::updates::State::State(fields) = &mut answer;
    fields.qts = queue.qts;
    Ok(answer)
}

/// `updates.getDifference` from the client's pts, at most [`DIFFERENCE_LIMIT`] entries.
pub async fn get_difference(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::updates::GetDifference,
) -> Result<enums::updates::Difference, ApiError> {
    let user = ctx.user()?;
    let key = ctx.perm_auth_key_id()?;
    ctx.blocking(move || {
        let difference =
            backend
                .messages
                .get_difference(BoxId::User(user), request.pts, DIFFERENCE_LIMIT)?;
        let mut failed = None;
        let mut chats = Vec::new();
        let answer = objects::difference(
            difference,
            |messages| {
                chats = crate::chats::chats_of(&backend, messages, user).unwrap_or_default();
                backend.users_of(messages, user).unwrap_or_else(|error| {
                    failed = Some(error);
                    Vec::new()
                })
            },
            objects::now_unix(),
        );
        let answer = with_chats(answer, chats);
        if let Some(error) = failed {
            return Err(error);
        }
        let news = channel_news(&backend, user, request.date)?;
        let answer = with_channel_news(answer, news, &backend, user)?;
        // An empty difference says the client's pts is current: a difference made of the
        // secret queue alone keeps it (a pts read now could be past a message the client
        // has not seen).
        let from = crate::secret::DifferenceFrom {
            user,
            key,
            pts: request.pts,
            qts: request.qts,
            date: request.date,
        };
        crate::secret::with_secret_queue(&backend, from, answer)
    })
    .await
}

/// `answer` with the chats its messages belong to.
fn with_chats(
    answer: enums::updates::Difference,
    chats: Vec<enums::Chat>,
) -> enums::updates::Difference {
    match answer {
        enums::updates::Difference::Difference(mut difference) => {
            difference.chats.extend(chats);
            enums::updates::Difference::Difference(difference)
        }
        enums::updates::Difference::DifferenceSlice(mut slice) => {
            slice.chats.extend(chats);
            enums::updates::Difference::DifferenceSlice(slice)
        }
        other => other,
    }
}

/// `updateChannelTooLong` for every channel of `user` with a post dated at or after `date`
/// (the client's state date), with the channels: a client that was offline then asks each
/// for its `updates.getChannelDifference` (channel posts are not in the common box's log).
/// Blocking.
fn channel_news(
    backend: &Backend,
    user: i64,
    date: i32,
) -> Result<Vec<(enums::Update, enums::Chat)>, ApiError> {
    let mut news = Vec::new();
    for dialog in backend.messages.channel_dialogs(user)? {
        if dialog.top_message == 0 || dialog.top_date < date {
            continue;
        }
        let columba_store::message::Peer::Channel(id) = dialog.peer else {
            continue;
        };
        let Some(channel) = crate::channels::load(backend, user, id)? else {
            continue;
        };
        let pts = backend.messages.state(channel.box_id())?.pts;
        news.push((
            types::UpdateChannelTooLong {
                channel_id: id,
                pts: Some(pts),
            }
            .into(),
            crate::channels::channel_object(backend, &channel),
        ));
    }
    Ok(news)
}

/// `answer` with the channel news added (an empty difference becomes a difference with
/// them; one that is too long stays as it is: the client refetches everything).
fn with_channel_news(
    answer: enums::updates::Difference,
    news: Vec<(enums::Update, enums::Chat)>,
    backend: &Backend,
    user: i64,
) -> Result<enums::updates::Difference, ApiError> {
    if news.is_empty() {
        return Ok(answer);
    }
    let (updates, chats): (Vec<enums::Update>, Vec<enums::Chat>) = news.into_iter().unzip();
    Ok(match answer {
        enums::updates::Difference::DifferenceEmpty(empty) => {
            let pts = backend.messages.state(BoxId::User(user))?.pts;
            types::updates::Difference {
                new_messages: Vec::new(),
                new_encrypted_messages: Vec::new(),
                other_updates: updates,
                chats,
                users: Vec::new(),
                state: objects::state(pts, empty.date),
            }
            .into()
        }
        enums::updates::Difference::Difference(mut difference) => {
            difference.other_updates.extend(updates);
            difference.chats.extend(chats);
            enums::updates::Difference::Difference(difference)
        }
        enums::updates::Difference::DifferenceSlice(mut slice) => {
            slice.other_updates.extend(updates);
            slice.chats.extend(chats);
            enums::updates::Difference::DifferenceSlice(slice)
        }
        other => other,
    })
}

/// Sends the owner of a changed box the updates of its log from `pts - pts_count` to
/// `pts`, as one `updates`. Blocking (it reads the store): call it from
/// [`Ctx::after`] or the blocking pool. Channel boxes are not told here.
pub fn notify(server: &ServerHandle, backend: &Backend, affected: Affected) {
    let BoxId::User(owner) = affected.box_id else {
        return;
    };
    backend.bot_feeds.box_changed(owner);
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
    let chats = crate::chats::chats_of(backend, &messages, owner).unwrap_or_default();
    let updates = crate::channels::updates_with(updates, users, chats, objects::now_unix());
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
