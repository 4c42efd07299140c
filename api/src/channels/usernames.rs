//! Public channels: `channels.checkUsername`, `channels.updateUsername`, and the channel
//! side of `contacts.resolveUsername`. Usernames are one namespace for accounts and
//! channels, kept by the user store ([`columba_store::UserStore::set_channel_username`]).

use std::sync::Arc;

use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::Role;

use super::{Channel, channel_object, input_channel};
use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;

/// `CHAT_ADMIN_REQUIRED` unless the caller created the channel: only its creator makes it
/// public or private, as in Telegram.
fn require_creator(channel: &Channel) -> Result<(), ApiError> {
    channel.require_member()?;
    if channel
        .me
        .as_ref()
        .is_some_and(|me| me.role == Role::Creator)
    {
        Ok(())
    } else {
        Err(ApiError::bad_request("CHAT_ADMIN_REQUIRED"))
    }
}

/// `channels.checkUsername`: whether `username` is free for the channel (its own counts as
/// free); `USERNAME_INVALID` outside the rules. `inputChannelEmpty` asks for a channel yet
/// to be created.
pub async fn check_username(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::CheckUsername,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    ctx.blocking(move || {
        let own = match &request.channel {
            enums::InputChannel::InputChannelEmpty(_) => None,
            input => {
                let channel = input_channel(&backend, user, input)?;
                require_creator(&channel)?;
                Some(channel.id)
            }
        };
        if columba_store::user::user_username_key(&request.username).is_none() {
            return Err(ApiError::bad_request("USERNAME_INVALID"));
        }
        Ok(match backend.users.username_owner(&request.username)? {
            None => true,
            Some(columba_store::UsernameOwner::Channel(id)) => Some(id) == own,
            Some(columba_store::UsernameOwner::User(_)) => false,
        })
    })
    .await
}

/// `channels.updateUsername` (the creator): an empty username makes the channel private
/// again. `USERNAME_OCCUPIED`, `USERNAME_INVALID`, `USERNAME_NOT_MODIFIED` as Telegram
/// answers them. The members' sessions are told with `updateChannel`.
pub async fn update_username(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::UpdateUsername,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    let server = ctx.server().clone();
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        require_creator(&channel)?;
        let username = (!request.username.is_empty()).then_some(request.username.as_str());
        backend.users.set_channel_username(channel.id, username)?;
        let task_backend = backend.clone();
        let id = channel.id;
        task_ctx.after(move || {
            let Ok(Some(loaded)) = super::load(&task_backend, 0, id) else {
                return;
            };
            // One encoding for every member: as a member sees it.
            let seen = super::posts::member_view(&loaded);
            let updates = super::updates_with(
                vec![types::UpdateChannel { channel_id: id }.into()],
                Vec::new(),
                vec![channel_object(&task_backend, &seen)],
                crate::objects::now_unix(),
            );
            super::fan_out(&server, &task_backend, id, None, &updates);
        });
        Ok(true)
    })
    .await
}

/// The channel a username names, as `viewer` sees it: `None` when no live channel has it.
/// Blocking.
pub fn resolve_channel(
    backend: &Backend,
    viewer: i64,
    username: &str,
) -> Result<Option<Channel>, ApiError> {
    match backend.users.username_owner(username)? {
        Some(columba_store::UsernameOwner::Channel(id)) => super::load(backend, viewer, id),
        _ => Ok(None),
    }
}
