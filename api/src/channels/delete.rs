//! `channels.deleteChannel`: the creator deletes a channel for everyone.

use std::sync::Arc;

use bytes::Bytes;
use columba_mtproto::tl::Serializable as _;
use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::Role;

use super::{Channel, input_channel, member_ids, updates_with};
use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects::now_unix;

/// The most members a channel may have to be deleted (Telegram's figure: bigger channels
/// answer `CHANNEL_TOO_LARGE`). It also bounds the work of one deletion: every membership
/// is removed.
pub const MAX_DELETABLE_MEMBERS: u32 = 1_000;

/// The `channelForbidden` a deleted channel shows.
fn forbidden(backend: &Backend, channel: &Channel) -> enums::Chat {
    types::ChannelForbidden {
        broadcast: channel.info.broadcast,
        megagroup: !channel.info.broadcast,
        monoforum: false,
        id: channel.id,
        access_hash: backend.access.channel_hash(channel.id),
        title: channel.info.title.clone(),
        until_date: None,
    }
    .into()
}

/// `channels.deleteChannel` (the creator only, `CHAT_ADMIN_REQUIRED` otherwise; 406
/// `CHANNEL_TOO_LARGE` above [`MAX_DELETABLE_MEMBERS`]): the channel is marked deleted,
/// which every later call sees at once (`CHANNEL_INVALID`; its dialog and its invite link
/// are gone, its username is free); then, after the answer, every membership is removed and the members' live
/// sessions get `updateChannel` with the channel `channelForbidden`. The posts stay in the
/// store, unreachable.
pub async fn delete_channel(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::DeleteChannel,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        channel.require_member()?;
        if channel.me.as_ref().is_none_or(|me| me.role != Role::Creator) {
            return Err(ApiError::bad_request("CHAT_ADMIN_REQUIRED"));
        }
        if channel.counts.members > MAX_DELETABLE_MEMBERS {
            return Err(ApiError::new(406, "CHANNEL_TOO_LARGE"));
        }
        let mut info = channel.info.clone();
        info.deleted = true;
        info.invite = None;
        backend
            .messages
            .set_group_info(channel.peer(), info.encode())?;
        backend.present.forget(channel.id);
        if channel.username.is_some() {
            // The name is free again (a crash before this keeps it taken by a channel that
            // no longer resolves: `contacts.resolveUsername` answers as for a free name).
            backend.users.set_channel_username(channel.id, None)?;
        }
        let answer = updates_with(
            vec![types::UpdateChannel {
                channel_id: channel.id,
            }
            .into()],
            Vec::new(),
            vec![forbidden(&backend, &channel)],
            now_unix(),
        );
        let told = Bytes::from(answer.to_bytes());
        let server = task_ctx.server().clone();
        let task_backend = backend.clone();
        task_ctx.after(move || {
            let backend = task_backend;
            let members = match member_ids(&backend, channel.id, usize::MAX) {
                Ok(members) => members,
                Err(error) => {
                    tracing::warn!(%error, channel = channel.id, "a deleted channel's members could not be read");
                    return;
                }
            };
            for member in &members {
                if let Err(error) = backend
                    .messages
                    .set_participant(channel.peer(), *member, None)
                {
                    tracing::warn!(%error, channel = channel.id, "a deleted channel's membership could not be removed");
                }
            }
            let others: Vec<i64> = members.into_iter().filter(|m| *m != user).collect();
            server.fan_out(&others, &told, None);
            // The deleter's other sessions.
            server.send_update(user, told);
        });
        Ok(answer)
    })
    .await
}
