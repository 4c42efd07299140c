//! Who is in a channel: `channels.inviteToChannel`, `joinChannel`, `leaveChannel`,
//! `getParticipants`, `getParticipant`, `editAdmin`, `editBanned`.

use std::sync::Arc;

use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::{Participant, ParticipantFilter, Role};

use super::posts::{Posted, announce, post_service};
use super::{
    Channel, MAX_INVITES, MAX_PARTICIPANTS_OFFSET, MAX_PARTICIPANTS_PAGE, admin_rights_bits,
    admin_rights_object, banned_rights_bits, banned_rights_object, channel_object, channel_private,
    input_channel, message_object, rights, updates_with,
};
use crate::backend::Backend;
use crate::body::Action;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects::now_unix;

/// The updates a change of membership answers with: `updateChannel` and the service posts
/// it wrote, as the caller sees them.
fn membership_answer(
    backend: &Backend,
    channel: &Channel,
    user: i64,
    posted: &[Posted],
    more_users: &[i64],
) -> Result<enums::Updates, ApiError> {
    let mut updates: Vec<enums::Update> = vec![
        types::UpdateChannel {
            channel_id: channel.id,
        }
        .into(),
    ];
    for post in posted {
        updates.push(
            types::UpdateNewChannelMessage {
                message: message_object(&post.message, user, &channel.info, None),
                pts: post.pts,
                pts_count: 1,
            }
            .into(),
        );
    }
    let mut users = vec![user];
    users.extend_from_slice(more_users);
    Ok(updates_with(
        updates,
        backend.user_objects(users, user)?,
        vec![channel_object(backend, channel)],
        now_unix(),
    ))
}

/// Tells `user`'s sessions that their standing in `channel` changed (`updateChannel` with
/// the channel as they now see it). Blocking.
fn tell_user(
    server: &columba_session::runtime::ServerHandle,
    backend: &Backend,
    channel: i64,
    user: i64,
) {
    let Ok(Some(seen)) = super::load(backend, user, channel) else {
        return;
    };
    let updates = updates_with(
        vec![
            types::UpdateChannel {
                channel_id: channel,
            }
            .into(),
        ],
        Vec::new(),
        vec![channel_object(backend, &seen)],
        now_unix(),
    );
    server.send_update(
        user,
        bytes::Bytes::from(columba_mtproto::tl::Serializable::to_bytes(&updates)),
    );
}

/// `channels.inviteToChannel`: adds users (each told with `updateChannel`); in a supergroup
/// each addition is a `messageActionChatAddUser` post. Members of a supergroup may invite
/// unless restricted; a broadcast needs `invite_users`. A banned user is `USER_KICKED`; a
/// user in too many groups is a missing invitee (`USER_CHANNELS_TOO_MUCH`).
pub async fn invite_to_channel(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::InviteToChannel,
) -> Result<enums::messages::InvitedUsers, ApiError> {
    let user = ctx.user()?;
    if request.users.is_empty() {
        return Err(ApiError::bad_request("USERS_TOO_FEW"));
    }
    if request.users.len() > MAX_INVITES {
        return Err(ApiError::bad_request("USERS_TOO_MUCH"));
    }
    let server = ctx.server().clone();
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        let me = channel.require_member()?;
        if channel.info.broadcast {
            channel.require_right(rights::INVITE_USERS)?;
        } else if me.banned_rights & rights::BANNED_INVITE_USERS != 0 && !me.role.is_admin() {
            return Err(ApiError::bad_request("CHAT_ADMIN_REQUIRED"));
        }
        let mut added = Vec::new();
        let mut missing = Vec::new();
        let date = now_unix();
        for input in &request.users {
            let invitee = backend.input_user(user, input)?;
            backend.live_user(invitee)?;
            match backend.messages.participant(channel.peer(), invitee)? {
                Some(existing) if existing.role.is_member() => continue,
                Some(existing)
                    if existing.role == Role::Banned && !channel.has_right(rights::BAN_USERS) =>
                {
                    return Err(ApiError::bad_request("USER_KICKED"));
                }
                _ => {}
            }
            match backend.messages.set_participant(
                channel.peer(),
                invitee,
                Some(Participant::member(invitee, date, user)),
            ) {
                Ok(_) => added.push(invitee),
                Err(columba_store::MessageError::ChannelsTooMuch) => missing.push(
                    types::MissingInvitee {
                        premium_would_allow_invite: false,
                        premium_required_for_pm: false,
                        user_id: invitee,
                    }
                    .into(),
                ),
                Err(error) => return Err(error.into()),
            }
        }
        let channel = super::load(&backend, user, channel.id)?.ok_or_else(channel_private)?;
        let mut posted = Vec::new();
        if !channel.info.broadcast {
            for invitee in &added {
                posted.push(post_service(
                    &backend,
                    &channel,
                    user,
                    Action::ChatAddUser(*invitee),
                    String::new(),
                )?);
            }
        }
        for post in &posted {
            announce(&task_ctx, &backend, &channel, post);
        }
        for invitee in &added {
            backend.present.joined(&server, channel.id, *invitee);
        }
        let task_backend = backend.clone();
        let (id, told) = (channel.id, added.clone());
        task_ctx.after(move || {
            for invitee in told {
                tell_user(&server, &task_backend, id, invitee);
            }
        });
        Ok(types::messages::InvitedUsers {
            updates: membership_answer(&backend, &channel, user, &posted, &added)?,
            missing_invitees: missing,
        }
        .into())
    })
    .await
}

/// `channels.joinChannel`: a channel whose access hash the caller has (they were shown it)
/// may be joined, unless they were banned (`CHANNEL_PRIVATE`); an invite link
/// ([`super::import_chat_invite`]) is the other way in. `USER_ALREADY_PARTICIPANT` for a
/// member.
pub async fn join_channel(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::JoinChannel,
) -> Result<enums::messages::ChatInviteJoinResult, ApiError> {
    let user = ctx.user()?;
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        join(&task_ctx, &backend, &channel, user, None)
    })
    .await
}

/// Makes `user` a member of `channel` by themselves: through the channel (`link` `None`,
/// a `messageActionChatAddUser` naming them in a supergroup) or through the invite link
/// `link` exported (a `messageActionChatJoinedByLink`). Blocking.
pub(super) fn join(
    ctx: &Ctx,
    backend: &Arc<Backend>,
    channel: &Channel,
    user: i64,
    link: Option<i64>,
) -> Result<enums::messages::ChatInviteJoinResult, ApiError> {
    match &channel.me {
        Some(me) if me.role.is_member() => {
            return Err(ApiError::bad_request("USER_ALREADY_PARTICIPANT"));
        }
        Some(_) => return Err(channel_private()),
        None => {}
    }
    backend.messages.set_participant(
        channel.peer(),
        user,
        Some(Participant::member(user, now_unix(), link.unwrap_or(0))),
    )?;
    backend.present.joined(ctx.server(), channel.id, user);
    let channel = super::load(backend, user, channel.id)?.ok_or_else(channel_private)?;
    let mut posted = Vec::new();
    if !channel.info.broadcast {
        let action = match link {
            Some(inviter) => Action::ChatJoinedByLink(inviter),
            None => Action::ChatAddUser(user),
        };
        posted.push(post_service(
            backend,
            &channel,
            user,
            action,
            String::new(),
        )?);
    }
    for post in &posted {
        announce(ctx, backend, &channel, post);
    }
    let inviter: Vec<i64> = link.into_iter().collect();
    Ok(types::messages::ChatInviteJoinResultOk {
        updates: membership_answer(backend, &channel, user, &posted, &inviter)?,
    }
    .into())
}

/// `channels.leaveChannel`: the caller's record goes (in a supergroup with a
/// `messageActionChatDeleteUser` post); the answer shows the channel `left`.
pub async fn leave_channel(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::LeaveChannel,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        if !channel.is_member() {
            return Err(ApiError::bad_request("USER_NOT_PARTICIPANT"));
        }
        let mut posted = Vec::new();
        if !channel.info.broadcast {
            // Posted while still a member, so that it reaches everyone who stays.
            posted.push(post_service(
                &backend,
                &channel,
                user,
                Action::ChatDeleteUser(user),
                String::new(),
            )?);
        }
        backend
            .messages
            .set_participant(channel.peer(), user, None)?;
        backend.present.left(channel.id, user);
        for post in &posted {
            announce(&task_ctx, &backend, &channel, post);
        }
        let channel = super::load(&backend, user, channel.id)?.ok_or_else(channel_private)?;
        membership_answer(&backend, &channel, user, &posted, &[])
    })
    .await
}

/// A `ChannelParticipant` of a record, as `viewer` sees it.
fn participant_object(participant: &Participant, viewer: i64) -> enums::ChannelParticipant {
    let rank = (!participant.rank.is_empty()).then(|| participant.rank.clone());
    match participant.role {
        Role::Creator => {
            let mut creator = types::ChannelParticipantCreator::new(
                participant.user_id,
                admin_rights_object(rights::ALL),
            );
            creator.rank = rank;
            creator.into()
        }
        Role::Admin => {
            let mut admin = types::ChannelParticipantAdmin::new(
                participant.user_id,
                participant.inviter,
                participant.date,
                admin_rights_object(participant.admin_rights),
            );
            admin.rank = rank;
            admin.self_ = participant.user_id == viewer;
            if admin.self_ {
                admin.inviter_id = Some(participant.inviter);
            }
            admin.into()
        }
        Role::Banned => {
            let mut banned = types::ChannelParticipantBanned::new(
                crate::objects::peer_user(participant.user_id),
                participant.inviter,
                participant.date,
                banned_rights_object(participant.banned_rights, participant.until),
            );
            banned.left = true;
            banned.into()
        }
        _ if participant.banned_rights != 0 => types::ChannelParticipantBanned::new(
            crate::objects::peer_user(participant.user_id),
            participant.inviter,
            participant.date,
            banned_rights_object(participant.banned_rights, participant.until),
        )
        .into(),
        _ if participant.user_id == viewer => types::ChannelParticipantSelf {
            via_request: false,
            user_id: participant.user_id,
            inviter_id: participant.inviter,
            date: participant.date,
            subscription_until_date: None,
            rank: None,
        }
        .into(),
        _ => types::ChannelParticipant {
            user_id: participant.user_id,
            date: participant.date,
            subscription_until_date: None,
            rank: None,
        }
        .into(),
    }
}

/// `channels.getParticipants`: `Recent`, `Search` (by name; `''` is everyone), `Admins`,
/// `Kicked` (banned) and `Banned` (restricted), at most 200 a page and 10,000 deep; `count`
/// is all the filter matches. Supergroup members may list; a broadcast needs `ban_users`.
pub async fn get_participants(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::GetParticipants,
) -> Result<enums::channels::ChannelParticipants, ApiError> {
    let user = ctx.user()?;
    let limit = usize::try_from(request.limit)
        .unwrap_or(0)
        .min(MAX_PARTICIPANTS_PAGE);
    let offset = usize::try_from(request.offset).unwrap_or(0);
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        channel.require_member()?;
        if channel.info.broadcast && !channel.has_right(rights::BAN_USERS) {
            return Err(ApiError::bad_request("CHAT_ADMIN_REQUIRED"));
        }
        let (filter, query) = match &request.filter {
            enums::ChannelParticipantsFilter::ChannelParticipantsRecent(_) => {
                (Some(ParticipantFilter::Recent), None)
            }
            enums::ChannelParticipantsFilter::ChannelParticipantsAdmins(_) => {
                (Some(ParticipantFilter::Admins), None)
            }
            enums::ChannelParticipantsFilter::ChannelParticipantsKicked(f) => {
                (Some(ParticipantFilter::Banned), Some(f.q.clone()))
            }
            enums::ChannelParticipantsFilter::ChannelParticipantsBanned(f) => {
                (Some(ParticipantFilter::Restricted), Some(f.q.clone()))
            }
            enums::ChannelParticipantsFilter::ChannelParticipantsSearch(f) => {
                (Some(ParticipantFilter::Recent), Some(f.q.clone()))
            }
            enums::ChannelParticipantsFilter::ChannelParticipantsContacts(f) => {
                (Some(ParticipantFilter::Recent), Some(f.q.clone()))
            }
            // No bots yet; mentions are not tracked.
            _ => (None, None),
        };
        let query = query
            .map(|q| q.trim().to_lowercase())
            .filter(|q| !q.is_empty());
        let Some(filter) = filter else {
            return Ok(empty_participants());
        };
        let (participants, count) = if offset >= MAX_PARTICIPANTS_OFFSET || limit == 0 {
            let count = backend
                .messages
                .participants(channel.peer(), filter, 0, 1)?
                .count;
            (Vec::new(), count)
        } else if let Some(query) = query {
            // A name search walks the list (as far as pages reach) and matches names.
            let mut matched = Vec::new();
            let mut walked = 0;
            let mut total = 0;
            while walked < MAX_PARTICIPANTS_OFFSET {
                let page = backend.messages.participants(
                    channel.peer(),
                    filter,
                    walked,
                    columba_store::message::MAX_PAGE,
                )?;
                if page.participants.is_empty() {
                    break;
                }
                walked += page.participants.len();
                for participant in page.participants {
                    let Some(account) = backend.users.account(participant.user_id)? else {
                        continue;
                    };
                    let name = format!(
                        "{} {} {}",
                        account.first_name,
                        account.last_name,
                        account.username.unwrap_or_default()
                    )
                    .to_lowercase();
                    if name.contains(&query) {
                        total += 1;
                        if total > offset && matched.len() < limit {
                            matched.push(participant);
                        }
                    }
                }
            }
            (matched, total)
        } else {
            let page = backend
                .messages
                .participants(channel.peer(), filter, offset, limit)?;
            (page.participants, page.count)
        };
        let users = backend.user_objects(participants.iter().map(|p| p.user_id), user)?;
        Ok(types::channels::ChannelParticipants {
            count: i32::try_from(count).unwrap_or(i32::MAX),
            participants: participants
                .iter()
                .map(|p| participant_object(p, user))
                .collect(),
            chats: Vec::new(),
            users,
        }
        .into())
    })
    .await
}

fn empty_participants() -> enums::channels::ChannelParticipants {
    types::channels::ChannelParticipants {
        count: 0,
        participants: Vec::new(),
        chats: Vec::new(),
        users: Vec::new(),
    }
    .into()
}

/// `channels.getParticipant`: one user's record (`USER_NOT_PARTICIPANT` when none).
pub async fn get_participant(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::GetParticipant,
) -> Result<enums::channels::ChannelParticipant, ApiError> {
    let user = ctx.user()?;
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        channel.require_member()?;
        let target = backend.input_peer(user, &request.participant)?;
        let participant = backend
            .messages
            .participant(channel.peer(), target)?
            .ok_or_else(|| ApiError::bad_request("USER_NOT_PARTICIPANT"))?;
        Ok(types::channels::ChannelParticipant {
            participant: participant_object(&participant, user),
            chats: vec![channel_object(&backend, &channel)],
            users: backend.user_objects([target, user], user)?,
        }
        .into())
    })
    .await
}

/// `channels.editAdmin` (`add_admins`): rights set on a member (none: back to member). The
/// creator's rights do not change (`USER_CREATOR`); an admin cannot grant rights they lack
/// (`RIGHT_FORBIDDEN`).
pub async fn edit_admin(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::EditAdmin,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    let server = ctx.server().clone();
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        channel.require_right(rights::ADD_ADMINS)?;
        let target = backend.input_user(user, &request.user_id)?;
        let current = backend
            .messages
            .participant(channel.peer(), target)?
            .filter(|p| p.role.is_member())
            .ok_or_else(|| ApiError::bad_request("USER_NOT_PARTICIPANT"))?;
        if current.role == Role::Creator {
            return Err(ApiError::bad_request("USER_CREATOR"));
        }
        let bits = admin_rights_bits(&request.admin_rights);
        let mine = channel.me.as_ref().map_or(0, |me| {
            if me.role == Role::Creator {
                rights::ALL
            } else {
                me.admin_rights
            }
        });
        if bits & !mine != 0 {
            return Err(ApiError::forbidden("RIGHT_FORBIDDEN"));
        }
        let mut record = current;
        if bits == 0 {
            record.role = Role::Member;
            record.admin_rights = 0;
            record.rank.clear();
        } else {
            record.role = Role::Admin;
            record.admin_rights = bits;
            record.banned_rights = 0;
            record.inviter = user;
            record.rank = request.rank.unwrap_or_default();
        }
        backend
            .messages
            .set_participant(channel.peer(), target, Some(record))?;
        let task_backend = backend.clone();
        let id = channel.id;
        task_ctx.after(move || tell_user(&server, &task_backend, id, target));
        membership_answer(&backend, &channel, user, &[], &[target])
    })
    .await
}

/// `channels.editBanned` (`ban_users`): `view_messages` bans (the user is out, told with
/// `updateChannel`); other bits restrict a member; none lifts both.
pub async fn edit_banned(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::channels::EditBanned,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    let server = ctx.server().clone();
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let channel = input_channel(&backend, user, &request.channel)?;
        channel.require_right(rights::BAN_USERS)?;
        let target = backend.input_peer(user, &request.participant)?;
        if target == user {
            return Err(ApiError::bad_request("USER_ADMIN_INVALID"));
        }
        let current = backend.messages.participant(channel.peer(), target)?;
        if current.as_ref().is_some_and(|p| p.role.is_admin()) {
            return Err(ApiError::bad_request("USER_ADMIN_INVALID"));
        }
        let (bits, until) = banned_rights_bits(&request.banned_rights);
        let date = now_unix();
        let record = if bits & rights::VIEW_MESSAGES != 0 {
            Some(Participant {
                role: Role::Banned,
                banned_rights: bits,
                until,
                ..Participant::member(target, date, user)
            })
        } else {
            match current.clone() {
                Some(mut member) if member.role.is_member() => {
                    member.banned_rights = bits;
                    member.until = until;
                    Some(member)
                }
                // Lifting a ban: the user may join again.
                Some(_) if bits == 0 => None,
                _ => return Err(ApiError::bad_request("USER_NOT_PARTICIPANT")),
            }
        };
        let was_member = current.as_ref().is_some_and(|p| p.role.is_member());
        let stays = record.as_ref().is_some_and(|p| p.role.is_member());
        let kicked = was_member && record.as_ref().is_some_and(|p| !p.role.is_member());
        let mut posted = Vec::new();
        if kicked && !channel.info.broadcast {
            posted.push(post_service(
                &backend,
                &channel,
                user,
                Action::ChatDeleteUser(target),
                String::new(),
            )?);
        }
        backend
            .messages
            .set_participant(channel.peer(), target, record)?;
        if !stays {
            backend.present.left(channel.id, target);
        }
        for post in &posted {
            announce(&task_ctx, &backend, &channel, post);
        }
        let task_backend = backend.clone();
        let id = channel.id;
        task_ctx.after(move || tell_user(&server, &task_backend, id, target));
        membership_answer(&backend, &channel, user, &posted, &[target])
    })
    .await
}
