//! `updates.getChannelDifference` with the rules clients depend on (see
//! `reference/channels.md` §1.4 and §2.1): `limit` clamped, not refused; `Empty` and
//! `TooLong` always `final`; `TooLong` carries the dialog with its `pts` and the newest
//! messages; a `channelMessagesFilter`'s ranges keep only the messages inside them.

use std::sync::Arc;

use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::{Difference, HistoryQuery, UpdateKind};

use super::{channel_object, dialog_object, input_channel, message_object};
use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;

/// Seconds a client is told to wait before asking again (`timeout`), Telegram's usual.
pub(crate) const DIFFERENCE_TIMEOUT: i32 = 30;
/// The most entries one answer carries (clients ask for 100; bots for up to 100,000).
pub(crate) const MAX_DIFFERENCE: usize = 1000;
/// Messages a `channelDifferenceTooLong` carries.
pub(crate) const TOO_LONG_MESSAGES: i32 = 20;

/// Whether message `id` passes a `channelMessagesFilter`'s ranges.
fn in_ranges(filter: &enums::ChannelMessagesFilter, id: i32) -> bool {
    match filter {
        enums::ChannelMessagesFilter::ChannelMessagesFilter(filter) => {
            filter
                .ranges
                .iter()
                .any(|enums::MessageRange::MessageRange(range)| {
                    (range.min_id..=range.max_id).contains(&id)
                })
        }
        enums::ChannelMessagesFilter::ChannelMessagesFilterEmpty(_) => true,
    }
}

/// `updates.getChannelDifference`.
pub async fn get_channel_difference(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::updates::GetChannelDifference,
) -> Result<enums::updates::ChannelDifference, ApiError> {
    let user = ctx.user()?;
    let limit = usize::try_from(request.limit)
        .unwrap_or(1)
        .clamp(1, MAX_DIFFERENCE);
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        channel.require_reader()?;
        backend
            .present
            .touch(channel.id, user, crate::objects::now_unix());
        if request.pts <= 0 {
            return Err(ApiError::bad_request("PERSISTENT_TIMESTAMP_INVALID"));
        }
        let box_id = channel.box_id();
        let chats = || vec![channel_object(&backend, &channel)];
        match backend
            .messages
            .get_difference(box_id, request.pts, limit)?
        {
            Difference::Empty { pts } => Ok(types::updates::ChannelDifferenceEmpty {
                r#final: true,
                pts,
                timeout: Some(DIFFERENCE_TIMEOUT),
            }
            .into()),
            Difference::TooLong { pts } => {
                let page = backend.messages.get_history(
                    box_id,
                    channel.peer(),
                    &HistoryQuery {
                        limit: TOO_LONG_MESSAGES,
                        ..HistoryQuery::default()
                    },
                )?;
                let dialog = backend
                    .messages
                    .dialog(user, channel.peer())?
                    .ok_or_else(super::channel_private)?;
                let users = backend.user_objects(page.messages.iter().map(|m| m.from), user)?;
                let mut answer = types::updates::ChannelDifferenceTooLong::new(
                    dialog_object(&dialog, pts),
                    page.messages
                        .iter()
                        .map(|m| message_object(m, user, &channel.info, None))
                        .collect(),
                    chats(),
                    users,
                );
                answer.r#final = true;
                answer.timeout = Some(DIFFERENCE_TIMEOUT);
                Ok(answer.into())
            }
            Difference::Changes {
                entries,
                messages,
                complete,
                pts,
            } => {
                let reached = entries.last().map_or(pts, |entry| entry.pts);
                let find = |id: i32| messages.iter().find(|m| m.id == id);
                let mut new_messages = Vec::new();
                let mut other_updates: Vec<enums::Update> = Vec::new();
                for entry in &entries {
                    match &entry.kind {
                        UpdateKind::NewMessage { id } if in_ranges(&request.filter, *id) => {
                            if let Some(message) = find(*id) {
                                new_messages.push(message_object(
                                    message,
                                    user,
                                    &channel.info,
                                    None,
                                ));
                            }
                        }
                        UpdateKind::EditMessage { id } if in_ranges(&request.filter, *id) => {
                            if let Some(message) = find(*id) {
                                other_updates.push(
                                    types::UpdateEditChannelMessage {
                                        message: message_object(message, user, &channel.info, None),
                                        pts: entry.pts,
                                        pts_count: entry.pts_count,
                                    }
                                    .into(),
                                );
                            }
                        }
                        UpdateKind::DeleteMessages { ids } => other_updates.push(
                            types::UpdateDeleteChannelMessages {
                                channel_id: channel.id,
                                messages: ids.clone(),
                                pts: entry.pts,
                                pts_count: entry.pts_count,
                            }
                            .into(),
                        ),
                        UpdateKind::PinMessages { ids, pinned, .. } => other_updates.push(
                            types::UpdatePinnedChannelMessages {
                                pinned: *pinned,
                                channel_id: channel.id,
                                messages: ids.clone(),
                                pts: entry.pts,
                                pts_count: entry.pts_count,
                            }
                            .into(),
                        ),
                        _ => {}
                    }
                }
                let users = backend.user_objects(messages.iter().map(|m| m.from), user)?;
                Ok(types::updates::ChannelDifference {
                    r#final: complete,
                    pts: reached,
                    timeout: Some(DIFFERENCE_TIMEOUT),
                    new_messages,
                    other_updates,
                    chats: chats(),
                    users,
                }
                .into())
            }
        }
    })
    .await
}
