//! `users` (and `contacts.resolveUsername`): users by id, the full user, users (and public
//! channels) by username.

use std::sync::Arc;

use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::{BoxId, Peer};

use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects;
use crate::router::Router;
use crate::upload;

/// Users asked for at most in one `users.getUsers`.
pub const MAX_GET_USERS: usize = 200;

/// `users.getUsers`, `users.getFullUser`, `contacts.resolveUsername`.
pub fn router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route_with(backend.clone(), get_users)
        .route_with(backend.clone(), get_full_user)
        .route_with(backend, resolve_username)
}

/// `users.getUsers`: the users whose `InputUser` checks, in the order asked; the others
/// are left out, as Telegram does.
pub async fn get_users(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::users::GetUsers,
) -> Result<Vec<enums::User>, ApiError> {
    let viewer = ctx.user()?;
    if request.id.len() > MAX_GET_USERS {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    ctx.blocking(move || {
        let mut users = Vec::new();
        for input in &request.id {
            if let Ok(id) = backend.input_user(viewer, input) {
                users.extend(backend.user_object(id, viewer)?);
            }
        }
        Ok(users)
    })
    .await
}

/// `users.getFullUser`: the user with their about text, current profile photo, whether the
/// caller blocked them, and the newest pinned message of the caller's chat with them.
pub async fn get_full_user(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::users::GetFullUser,
) -> Result<enums::users::UserFull, ApiError> {
    let viewer = ctx.user()?;
    ctx.blocking(move || {
        let target = backend.input_user(viewer, &request.id)?;
        let account = backend
            .users
            .account(target)?
            .ok_or_else(|| ApiError::bad_request("USER_ID_INVALID"))?;
        let user = backend
            .user_object(target, viewer)?
            .ok_or_else(|| ApiError::bad_request("USER_ID_INVALID"))?;
        let mut full_user = types::UserFull::new(
            target,
            types::PeerSettings::default().into(),
            objects::notify_settings(),
            0,
        );
        full_user.about = (!account.about.is_empty()).then(|| account.about.clone());
        full_user.profile_photo = account.photo.map(|photo| {
            upload::photo(
                &backend,
                &photo.content,
                photo.size,
                (photo.width, photo.height),
                photo.date,
            )
            .into()
        });
        full_user.blocked = viewer != target && backend.users.is_blocked(viewer, target)?;
        full_user.bot_info = crate::bots::bot_info(&account);
        // The newest pinned message of the chat with them, in the caller's box.
        full_user.pinned_msg_id = backend
            .messages
            .pinned(BoxId::User(viewer), Peer::User(target), 0, 1)?
            .first()
            .copied();
        Ok(types::users::UserFull {
            full_user: full_user.into(),
            chats: Vec::new(),
            users: vec![user],
        }
        .into())
    })
    .await
}

/// `contacts.resolveUsername`: the user or the public channel with the username;
/// `USERNAME_NOT_OCCUPIED` when none has it.
pub async fn resolve_username(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::contacts::ResolveUsername,
) -> Result<enums::contacts::ResolvedPeer, ApiError> {
    let viewer = ctx.user()?;
    ctx.blocking(move || {
        if let Some(channel) =
            crate::channels::resolve_channel(&backend, viewer, &request.username)?
        {
            return Ok(types::contacts::ResolvedPeer {
                peer: types::PeerChannel {
                    channel_id: channel.id,
                }
                .into(),
                chats: vec![crate::channels::channel_object(&backend, &channel)],
                users: Vec::new(),
            }
            .into());
        }
        let found = backend
            .users
            .by_username(&request.username)?
            .ok_or_else(|| ApiError::bad_request("USERNAME_NOT_OCCUPIED"))?;
        let user = backend
            .user_object(found.id, viewer)?
            .ok_or_else(|| ApiError::bad_request("USERNAME_NOT_OCCUPIED"))?;
        Ok(types::contacts::ResolvedPeer {
            peer: objects::peer_user(found.id),
            chats: Vec::new(),
            users: vec![user],
        }
        .into())
    })
    .await
}
