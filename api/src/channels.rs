//! `channels`: supergroups (`megagroup`) and broadcast channels. One box per channel with its
//! own ids and pts, messages stored once; memberships, roles, rights and read state in the
//! message store; the channel's title and the like as the store's opaque group info
//! ([`ChannelInfo`]).
//!
//! Rights are Telegram's bits (`chatAdminRights`, `chatBannedRights`) and refusals its errors:
//! `CHANNEL_INVALID` for a channel the caller cannot name, `CHANNEL_PRIVATE` for one they are
//! not in (or were banned from), `CHAT_ADMIN_REQUIRED`, `CHAT_WRITE_FORBIDDEN`,
//! `USER_BANNED_IN_CHANNEL`, `USER_NOT_PARTICIPANT`.
//!
//! Updates reach the members' live sessions after the answer ([`Channels::fan_out`]): one
//! encoding for all members, pushed member by member to their sessions. A member who was
//! offline catches up with `updates.getChannelDifference`.
//!
//! Public channels have a username (from the user store's one namespace): anyone finds them
//! with `contacts.resolveUsername`, reads them and joins them.
//!
//! Not yet: a channel's photo, discussion groups, slow mode, signatures.

use std::sync::Arc;

use bytes::Bytes;
use columba_mtproto::tl::api::{enums, types};
use columba_mtproto::tl::{Deserializable as _, Serializable as _};
use columba_store::message::{
    BoxId, GroupCounts, Participant, ParticipantFilter, Peer, Role, StoredMessage,
};

use crate::backend::Backend;
use crate::error::ApiError;
use crate::objects;
use crate::router::Router;

mod delete;
mod difference;
mod info;
mod invites;
mod members;
mod posts;
mod present;
mod usernames;

pub use delete::{MAX_DELETABLE_MEMBERS, delete_channel};
pub use difference::get_channel_difference;
pub use info::{ChannelInfo, InviteLink};
pub use invites::{
    INVITE_LINK_PREFIX, check_chat_invite, edit_exported_chat_invite, export_chat_invite,
    import_chat_invite, invite_hash,
};
pub use members::{
    edit_admin, edit_banned, get_participant, get_participants, invite_to_channel, join_channel,
    leave_channel,
};
pub use posts::{
    Posted, announce, channel_history, channel_messages, create_channel, delete_channel_messages,
    edit_in_channel, edit_title, get_channel_messages, get_channels, get_full_channel,
    get_messages_views, post, post_service, read_channel_history, send_to_channel,
};
pub use present::{
    DEFAULT_FOLLOWED_CHANNELS, DEFAULT_PASSIVE_POLICY, PassivePolicy, PresentMembers,
};
pub use usernames::{check_username, resolve_channel, update_username};

/// The longest channel title, in characters (Telegram's).
pub const MAX_TITLE_CHARS: usize = 128;
/// The longest channel description, in characters (Telegram's).
pub const MAX_ABOUT_CHARS: usize = 255;
/// Participants in one `channels.getParticipants` page at most (Telegram's).
pub const MAX_PARTICIPANTS_PAGE: usize = 200;
/// How far `channels.getParticipants` pages reach in a supergroup (Telegram's 10,000).
pub const MAX_PARTICIPANTS_OFFSET: usize = 10_000;
/// Users one `channels.inviteToChannel` adds at most.
pub const MAX_INVITES: usize = 200;

/// `chatAdminRights` bits this module checks (their flag positions in the schema).
pub mod rights {
    /// `change_info`.
    pub const CHANGE_INFO: u32 = 1 << 0;
    /// `post_messages` (broadcasts).
    pub const POST_MESSAGES: u32 = 1 << 1;
    /// `edit_messages` (broadcasts).
    pub const EDIT_MESSAGES: u32 = 1 << 2;
    /// `delete_messages`.
    pub const DELETE_MESSAGES: u32 = 1 << 3;
    /// `ban_users`.
    pub const BAN_USERS: u32 = 1 << 4;
    /// `invite_users`.
    pub const INVITE_USERS: u32 = 1 << 5;
    /// `add_admins`.
    pub const ADD_ADMINS: u32 = 1 << 9;
    /// Every right a creator has: the flags Telegram defines up to `manage_welcome_messages`,
    /// but `anonymous` (bit 10).
    pub const ALL: u32 = 0x001f_fabf;
    /// `chatBannedRights.view_messages`: the user is out of the channel.
    pub const VIEW_MESSAGES: u32 = 1 << 0;
    /// `chatBannedRights.send_messages`.
    pub const SEND_MESSAGES: u32 = 1 << 1;
    /// `chatBannedRights.invite_users`.
    pub const BANNED_INVITE_USERS: u32 = 1 << 15;
}

/// The flags word of a `chatAdminRights` (read from its encoding: the word after the
/// constructor id).
pub fn admin_rights_bits(rights: &enums::ChatAdminRights) -> u32 {
    flags_word(&rights.to_bytes())
}

/// The flags word and `until_date` of a `chatBannedRights`.
pub fn banned_rights_bits(rights: &enums::ChatBannedRights) -> (u32, i32) {
    let enums::ChatBannedRights::ChatBannedRights(inner) = rights;
    (flags_word(&rights.to_bytes()), inner.until_date)
}

fn flags_word(bytes: &[u8]) -> u32 {
    bytes
        .get(4..8)
        .and_then(|word| <[u8; 4]>::try_from(word).ok())
        .map_or(0, u32::from_le_bytes)
}

/// The `chatAdminRights` of a flags word.
pub fn admin_rights_object(bits: u32) -> enums::ChatAdminRights {
    let mut bytes = Vec::with_capacity(8);
    bytes.extend_from_slice(&0x5fb2_24d5_u32.to_le_bytes());
    bytes.extend_from_slice(&bits.to_le_bytes());
    enums::ChatAdminRights::from_bytes(&bytes)
        .unwrap_or_else(|_| types::ChatAdminRights::default().into())
}

/// The `chatBannedRights` of a flags word and an end date.
pub fn banned_rights_object(bits: u32, until: i32) -> enums::ChatBannedRights {
    let mut bytes = Vec::with_capacity(12);
    bytes.extend_from_slice(&0x9f12_0418_u32.to_le_bytes());
    bytes.extend_from_slice(&bits.to_le_bytes());
    bytes.extend_from_slice(&until.to_le_bytes());
    enums::ChatBannedRights::from_bytes(&bytes).unwrap_or_else(|_| {
        types::ChatBannedRights {
            until_date: until,
            ..Default::default()
        }
        .into()
    })
}

/// A channel as one caller sees it: its id, info, counts and the caller's record.
#[derive(Debug, Clone)]
pub struct Channel {
    /// The channel's id.
    pub id: i64,
    /// Its title and kind.
    pub info: ChannelInfo,
    /// Its counts.
    pub counts: GroupCounts,
    /// The caller's record, if any.
    pub me: Option<Participant>,
    /// Its public username: anyone may find it, read it and join it.
    pub username: Option<String>,
}

impl Channel {
    /// The store's peer of this channel.
    pub fn peer(&self) -> Peer {
        Peer::Channel(self.id)
    }

    /// The channel's box.
    pub fn box_id(&self) -> BoxId {
        BoxId::Channel(self.id)
    }

    /// Whether the caller is a member (creator, admin or member).
    pub fn is_member(&self) -> bool {
        self.me.as_ref().is_some_and(|me| me.role.is_member())
    }

    /// `CHANNEL_PRIVATE` unless the caller is a member.
    pub fn require_member(&self) -> Result<&Participant, ApiError> {
        match &self.me {
            Some(me) if me.role.is_member() => Ok(me),
            _ => Err(channel_private()),
        }
    }

    /// `CHANNEL_PRIVATE` unless the caller may read the channel: a member, or anyone not
    /// banned from a public channel (one with a username).
    pub fn require_reader(&self) -> Result<(), ApiError> {
        let banned = self.me.as_ref().is_some_and(|me| me.role == Role::Banned);
        if self.is_member() || (self.username.is_some() && !banned) {
            Ok(())
        } else {
            Err(channel_private())
        }
    }

    /// Whether the caller holds admin right `bit` (the creator holds all).
    pub fn has_right(&self, bit: u32) -> bool {
        match &self.me {
            Some(me) if me.role == Role::Creator => true,
            Some(me) if me.role == Role::Admin => me.admin_rights & bit != 0,
            _ => false,
        }
    }

    /// `CHAT_ADMIN_REQUIRED` unless the caller holds admin right `bit`.
    pub fn require_right(&self, bit: u32) -> Result<(), ApiError> {
        self.require_member()?;
        if self.has_right(bit) {
            Ok(())
        } else {
            Err(ApiError::bad_request("CHAT_ADMIN_REQUIRED"))
        }
    }

    /// Whether the caller may post: admins with `post_messages` in a broadcast; members not
    /// restricted from sending in a supergroup.
    pub fn require_post(&self, now: i32) -> Result<(), ApiError> {
        if !self.is_member() && self.require_reader().is_ok() {
            // A public channel one has not joined.
            return Err(ApiError::forbidden("CHAT_WRITE_FORBIDDEN"));
        }
        let me = self.require_member()?;
        if self.info.broadcast {
            return self.require_right(rights::POST_MESSAGES);
        }
        let restricted =
            me.banned_rights & rights::SEND_MESSAGES != 0 && (me.until == 0 || me.until > now);
        if restricted {
            return Err(ApiError::forbidden("CHAT_WRITE_FORBIDDEN"));
        }
        Ok(())
    }
}

/// `406 CHANNEL_PRIVATE`.
pub fn channel_private() -> ApiError {
    ApiError::new(406, "CHANNEL_PRIVATE")
}

/// `400 CHANNEL_INVALID`.
pub fn channel_invalid() -> ApiError {
    ApiError::bad_request("CHANNEL_INVALID")
}

/// The channel `id` as `viewer` sees it, if it exists. Blocking.
pub fn load(backend: &Backend, viewer: i64, id: i64) -> Result<Option<Channel>, ApiError> {
    let peer = Peer::Channel(id);
    let Some(bytes) = backend.messages.group_info(peer)? else {
        return Ok(None);
    };
    let Some(info) = ChannelInfo::decode(&bytes) else {
        return Err(ApiError::new(500, "INTERNAL"));
    };
    if info.deleted {
        return Ok(None);
    }
    Ok(Some(Channel {
        id,
        info,
        counts: backend.messages.group_counts(peer)?,
        me: backend.messages.participant(peer, viewer)?,
        username: backend.users.channel_username(id)?,
    }))
}

/// The channel an `InputChannel` names, checked: a valid access hash (or 0 from a member, as
/// Telegram accepts), a channel that exists. `CHANNEL_INVALID` otherwise. Blocking.
pub fn input_channel(
    backend: &Backend,
    viewer: i64,
    input: &enums::InputChannel,
) -> Result<Channel, ApiError> {
    let enums::InputChannel::InputChannel(input) = input else {
        return Err(channel_invalid());
    };
    resolve(backend, viewer, input.channel_id, input.access_hash)
}

/// The channel an `inputPeerChannel` names, checked as [`input_channel`]; `None` for any
/// other peer. Blocking.
pub fn input_peer_channel(
    backend: &Backend,
    viewer: i64,
    peer: &enums::InputPeer,
) -> Result<Option<Channel>, ApiError> {
    match peer {
        enums::InputPeer::InputPeerChannel(input) => {
            resolve(backend, viewer, input.channel_id, input.access_hash).map(Some)
        }
        _ => Ok(None),
    }
}

fn resolve(backend: &Backend, viewer: i64, id: i64, hash: i64) -> Result<Channel, ApiError> {
    let channel = load(backend, viewer, id)?.ok_or_else(channel_invalid)?;
    let hash_ok = backend.access.check_channel_hash(id, hash);
    if hash_ok || (hash == 0 && channel.me.is_some()) {
        Ok(channel)
    } else {
        Err(channel_invalid())
    }
}

/// The `channel` object of `channel` as its caller sees it (their role, rights, `left`).
pub fn channel_object(backend: &Backend, channel: &Channel) -> enums::Chat {
    let mut object = types::Channel::new(
        channel.id,
        channel.info.title.clone(),
        types::ChatPhotoEmpty {}.into(),
        channel.info.date,
    );
    object.access_hash = Some(backend.access.channel_hash(channel.id));
    object.broadcast = channel.info.broadcast;
    object.megagroup = !channel.info.broadcast;
    object.participants_count = Some(i32::try_from(channel.counts.members).unwrap_or(i32::MAX));
    object.username.clone_from(&channel.username);
    match &channel.me {
        Some(me) if me.role == Role::Creator => {
            object.creator = true;
            object.admin_rights = Some(admin_rights_object(rights::ALL));
        }
        Some(me) if me.role == Role::Admin => {
            object.admin_rights = Some(admin_rights_object(me.admin_rights));
        }
        Some(me) if me.role == Role::Member && me.banned_rights != 0 => {
            object.banned_rights = Some(banned_rights_object(me.banned_rights, me.until));
        }
        Some(me) if me.role == Role::Member => {}
        _ => object.left = true,
    }
    object.into()
}

/// A channel's message as `viewer` sees it: outgoing when they sent it; in a broadcast, a
/// post (`post`, no author) with its views.
pub fn message_object(
    stored: &StoredMessage,
    viewer: i64,
    info: &ChannelInfo,
    views: Option<u32>,
) -> enums::Message {
    let mut message = objects::message(stored);
    let out = stored.from == viewer;
    match &mut message {
        enums::Message::Message(message) => {
            message.out = out;
            if info.broadcast {
                message.post = true;
                message.from_id = None;
                // `views` and `forwards` share a flag bit: both or neither.
                message.views = Some(i32::try_from(views.unwrap_or(1)).unwrap_or(i32::MAX));
                message.forwards = Some(0);
            }
        }
        enums::Message::MessageService(service) => {
            service.out = out;
            if info.broadcast {
                service.post = true;
                service.from_id = None;
            }
        }
        enums::Message::MessageEmpty(_) => {}
    }
    message
}

/// The `dialog` of a channel for one member.
pub fn dialog_object(dialog: &columba_store::message::Dialog, pts: i32) -> enums::Dialog {
    let mut object = types::Dialog::new(
        objects::peer(dialog.peer),
        dialog.top_message,
        dialog.read_inbox_max_id,
        dialog.read_outbox_max_id,
        dialog.unread_count,
        0,
        0,
        0,
        objects::notify_settings(),
    );
    object.pts = Some(pts);
    object.into()
}

/// Telegram's `updates` with chats.
pub fn updates_with(
    updates: Vec<enums::Update>,
    users: Vec<enums::User>,
    chats: Vec<enums::Chat>,
    date: i32,
) -> enums::Updates {
    types::Updates {
        updates,
        users,
        chats,
        date,
        seq: 0,
    }
    .into()
}

/// The members of a channel, by user id, at most `limit` (a walk of the join-date index, a
/// page of [`columba_store::message::MAX_PAGE`] at a time). Blocking.
pub fn member_ids(backend: &Backend, channel: i64, limit: usize) -> Result<Vec<i64>, ApiError> {
    let mut members = Vec::new();
    let mut offset = 0;
    while members.len() < limit {
        let page = backend.messages.participants(
            Peer::Channel(channel),
            ParticipantFilter::Recent,
            offset,
            columba_store::message::MAX_PAGE,
        )?;
        if page.participants.is_empty() {
            break;
        }
        offset += page.participants.len();
        members.extend(page.participants.iter().map(|p| p.user_id));
    }
    members.truncate(limit);
    Ok(members)
}

/// Pushes `updates` to the live sessions of the members of `channel` present on this node
/// but `except` (whose own answer carries them): encoded once, each endpoint shard locked
/// once ([`columba_session::runtime::Server::fan_out`]). Blocking (a channel's first post
/// reads its members).
pub fn fan_out(
    server: &columba_session::runtime::ServerHandle,
    backend: &Backend,
    channel: i64,
    except: Option<i64>,
    updates: &enums::Updates,
) {
    let mut members =
        match backend
            .present
            .recipients(server, backend, channel, objects::now_unix())
        {
            Ok(members) => members,
            Err(error) => {
                tracing::warn!(%error, channel, "the members of a channel could not be read");
                return;
            }
        };
    if let Some(except) = except {
        members.retain(|member| *member != except);
    }
    if members.is_empty() {
        return;
    }
    // A member who lags gets one `updateChannelTooLong` instead, and refetches the channel.
    let too_long: enums::Updates = types::UpdateShort {
        update: types::UpdateChannelTooLong {
            channel_id: channel,
            pts: None,
        }
        .into(),
        date: objects::now_unix(),
    }
    .into();
    server.fan_out(
        &members,
        &Bytes::from(updates.to_bytes()),
        Some((channel, &Bytes::from(too_long.to_bytes()))),
    );
}

/// Every method of this module.
pub fn router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route_with(backend.clone(), create_channel)
        .route_with(backend.clone(), get_channels)
        .route_with(backend.clone(), get_full_channel)
        .route_with(backend.clone(), edit_title)
        .route_with(backend.clone(), invite_to_channel)
        .route_with(backend.clone(), join_channel)
        .route_with(backend.clone(), leave_channel)
        .route_with(backend.clone(), get_participants)
        .route_with(backend.clone(), get_participant)
        .route_with(backend.clone(), edit_admin)
        .route_with(backend.clone(), edit_banned)
        .route_with(backend.clone(), get_channel_messages)
        .route_with(backend.clone(), delete_channel_messages)
        .route_with(backend.clone(), read_channel_history)
        .route_with(backend.clone(), get_messages_views)
        .route_with(backend.clone(), delete_channel)
        .route_with(backend.clone(), check_username)
        .route_with(backend.clone(), update_username)
        .route_with(backend.clone(), export_chat_invite)
        .route_with(backend.clone(), edit_exported_chat_invite)
        .route_with(backend.clone(), check_chat_invite)
        .route_with(backend.clone(), import_chat_invite)
        .route_with(backend, get_channel_difference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_round_trip_through_their_bits() {
        for bits in [0, rights::ALL, rights::POST_MESSAGES | rights::ADD_ADMINS] {
            assert_eq!(admin_rights_bits(&admin_rights_object(bits)), bits);
        }
        let rights = banned_rights_object(rights::SEND_MESSAGES | rights::VIEW_MESSAGES, 77);
        assert_eq!(
            banned_rights_bits(&rights),
            (rights::SEND_MESSAGES | rights::VIEW_MESSAGES, 77)
        );
        let enums::ChatAdminRights::ChatAdminRights(all) = admin_rights_object(rights::ALL);
        assert!(all.change_info && all.add_admins && all.manage_welcome_messages);
        assert!(!all.anonymous);
    }
}
