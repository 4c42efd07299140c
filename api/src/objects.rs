//! Telegram objects built from what the stores keep: users, peers, messages, `updates`,
//! `updates.State`, `updates.Difference`, the `config`.

use std::net::SocketAddr;

use columba_mtproto::tl::Deserializable as _;
use columba_mtproto::tl::api::{enums, types};
use columba_store::message::{BoxId, Difference, Peer, StoredMessage, UpdateEntry, UpdateKind};

use columba_store::user::{Account, Presence};

use crate::access::AccessSecret;
use crate::body::{Action, Body};

/// The data centres clients are told about (`help.getConfig`, `help.getNearestDc`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DcList {
    /// The DC this server is.
    pub this_dc: i32,
    /// Every DC's id and address (this one's included).
    pub options: Vec<(i32, SocketAddr)>,
}

/// The DC ids Telegram's production network has: clients may believe they are on any of
/// them (Pyrogram-family clients start on DC 2) and open media connections to the DC a file
/// names.
pub const TELEGRAM_DC_IDS: std::ops::RangeInclusive<i32> = 1..=5;

impl DcList {
    /// One DC, `this_dc`, at `address`, and nothing else.
    pub fn single(this_dc: i32, address: SocketAddr) -> Self {
        Self {
            this_dc,
            options: vec![(this_dc, address)],
        }
    }

    /// One node at `address` that answers for `this_dc` and every other DC id of
    /// [`TELEGRAM_DC_IDS`], so that a client that believes it is on another DC, or opens a
    /// connection to the DC of a file, reaches this node.
    pub fn one_node(this_dc: i32, address: SocketAddr) -> Self {
        let mut options = vec![(this_dc, address)];
        options.extend(
            TELEGRAM_DC_IDS
                .filter(|id| *id != this_dc)
                .map(|id| (id, address)),
        );
        Self { this_dc, options }
    }
}

/// `peerUser` of a user id.
pub fn peer_user(user_id: i64) -> enums::Peer {
    types::PeerUser { user_id }.into()
}

/// The Telegram peer of a stored peer.
pub fn peer(peer: Peer) -> enums::Peer {
    match peer {
        Peer::User(id) => peer_user(id),
        Peer::Chat(chat_id) => types::PeerChat { chat_id }.into(),
        Peer::Channel(channel_id) => types::PeerChannel { channel_id }.into(),
    }
}

/// How a viewer knows another user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Relation {
    /// The viewer has the user as contact.
    pub contact: bool,
    /// And the user has the viewer as contact.
    pub mutual: bool,
    /// The viewer may see the user's phone number: the viewer found the user by it (an
    /// import), or the user has the viewer as contact (Telegram's default phone privacy,
    /// "my contacts").
    pub phone_visible: bool,
}

/// A user's status as others see it at `now`: online until its expiry, then last seen at
/// it.
pub fn user_status(presence: Presence, now: i32) -> Option<enums::UserStatus> {
    match presence {
        Presence::Unknown => None,
        Presence::Online { expires } if expires > now => {
            Some(types::UserStatusOnline { expires }.into())
        }
        Presence::Online { expires } => Some(
            types::UserStatusOffline {
                was_online: expires,
            }
            .into(),
        ),
        Presence::Offline { was_online } => Some(types::UserStatusOffline { was_online }.into()),
    }
}

/// A user as `viewer` sees it at `now`: the phone number only for the user itself and when
/// [`Relation::phone_visible`] says so, the
/// profile photo, the status; a deleted account as `deleted`, without names.
pub fn user(
    account: &Account,
    viewer: i64,
    relation: Relation,
    access: &AccessSecret,
    dcs: &DcList,
    now: i32,
) -> enums::User {
    let is_self = account.id == viewer;
    let mut user = types::User {
        self_: is_self,
        contact: relation.contact,
        mutual_contact: relation.mutual,
        deleted: account.deleted,
        id: account.id,
        access_hash: Some(access.user_hash(account.id)),
        ..Default::default()
    };
    if account.deleted {
        return user.into();
    }
    user.first_name = Some(account.first_name.clone());
    user.last_name = (!account.last_name.is_empty()).then(|| account.last_name.clone());
    user.username.clone_from(&account.username);
    user.phone = ((is_self || relation.phone_visible) && !account.phone.is_empty())
        .then(|| account.phone.clone());
    user.photo = account.photo.map(|photo| {
        types::UserProfilePhoto {
            has_video: false,
            personal: false,
            photo_id: photo.photo_id,
            stripped_thumb: None,
            dc_id: dcs.this_dc,
        }
        .into()
    });
    user.status = user_status(account.presence, now);
    if let Some(profile) = &account.bot {
        // `bot` and `bot_info_version` share a flag bit: both or neither.
        user.bot = true;
        user.bot_info_version = Some(profile.info_version);
        user.bot_nochats = true;
        user.status = None;
    }
    user.into()
}

/// A stored message as its box's owner sees it. Media that no longer decodes (a schema
/// change) is left out rather than failing the whole answer.
pub fn message(stored: &StoredMessage) -> enums::Message {
    let body = Body::decode(&stored.body);
    let owner = match stored.box_id {
        BoxId::User(owner) | BoxId::Channel(owner) => owner,
    };
    let reply_to = body.reply_to_in(owner).map(|id| {
        types::MessageReplyHeader {
            reply_to_msg_id: Some(id),
            ..Default::default()
        }
        .into()
    });
    if let Some(action) = body.action {
        let action: enums::MessageAction = match action {
            Action::PinMessage => types::MessageActionPinMessage {}.into(),
            Action::ChannelCreate => types::MessageActionChannelCreate { title: body.text }.into(),
            Action::ChatAddUser(user) => {
                types::MessageActionChatAddUser { users: vec![user] }.into()
            }
            Action::ChatDeleteUser(user_id) => {
                types::MessageActionChatDeleteUser { user_id }.into()
            }
            Action::ChatCreate => types::MessageActionChatCreate {
                title: body.text,
                users: Vec::new(),
            }
            .into(),
            Action::ChatEditTitle => types::MessageActionChatEditTitle { title: body.text }.into(),
            Action::ChatJoinedByLink(inviter_id) => {
                types::MessageActionChatJoinedByLink { inviter_id }.into()
            }
        };
        let mut service =
            types::MessageService::new(stored.id, peer(stored.peer), stored.date, action);
        service.out = stored.out;
        service.from_id = Some(peer_user(stored.from));
        service.reply_to = reply_to;
        return service.into();
    }
    let mut message = types::Message::new(stored.id, peer(stored.peer), stored.date, body.text);
    message.reply_to = reply_to;
    message.fwd_from = body.forwarded.map(|forwarded| {
        types::MessageFwdHeader {
            from_id: Some(peer_user(forwarded.from)),
            date: forwarded.date,
            ..Default::default()
        }
        .into()
    });
    message.out = stored.out;
    message.from_id = Some(peer_user(stored.from));
    message.edit_date = stored.edit_date;
    message.pinned = stored.pinned;
    message.reactions = message_reactions(stored);
    message.media = stored
        .media
        .as_deref()
        .and_then(|bytes| enums::MessageMedia::from_bytes(bytes).ok());
    // Markup and entities that no longer decode (a schema change) are left out.
    message.reply_markup = body
        .reply_markup
        .as_deref()
        .and_then(|bytes| enums::ReplyMarkup::from_bytes(bytes).ok());
    message.entities = body
        .entities
        .as_deref()
        .and_then(|bytes| Vec::<enums::MessageEntity>::from_bytes(bytes).ok());
    message.into()
}

/// A message's reactions as its box's owner sees them: one count per reaction in the order
/// first given, the owner's own marked as chosen, and the list of who reacted (a private
/// chat shows it); `None` without reactions.
pub fn message_reactions(stored: &StoredMessage) -> Option<enums::MessageReactions> {
    if stored.reactions.is_empty() {
        return None;
    }
    let owner = match stored.box_id {
        BoxId::User(owner) | BoxId::Channel(owner) => owner,
    };
    let reaction_of = |bytes: &[u8]| -> enums::Reaction {
        types::ReactionEmoji {
            emoticon: String::from_utf8_lossy(bytes).into_owned(),
        }
        .into()
    };
    let mut counts: Vec<(&[u8], i32, bool)> = Vec::new();
    for reaction in &stored.reactions {
        let mine = reaction.user_id == owner;
        match counts
            .iter_mut()
            .find(|(bytes, _, _)| *bytes == reaction.reaction.as_slice())
        {
            Some((_, count, chosen)) => {
                *count = count.saturating_add(1);
                *chosen |= mine;
            }
            None => counts.push((&reaction.reaction, 1, mine)),
        }
    }
    let results = counts
        .into_iter()
        .map(|(bytes, count, chosen)| {
            types::ReactionCount {
                chosen_order: chosen.then_some(0),
                reaction: reaction_of(bytes),
                count,
            }
            .into()
        })
        .collect();
    let recent = stored
        .reactions
        .iter()
        .rev()
        .map(|reaction| {
            types::MessagePeerReaction {
                big: false,
                unread: false,
                my: reaction.user_id == owner,
                peer_id: peer_user(reaction.user_id),
                date: reaction.date,
                reaction: reaction_of(&reaction.reaction),
            }
            .into()
        })
        .collect();
    Some(
        types::MessageReactions {
            min: false,
            can_see_list: true,
            reactions_as_tags: false,
            results,
            recent_reactions: Some(recent),
            top_reactors: None,
        }
        .into(),
    )
}

/// `updateMessageReactions` of a message as its box's owner sees it (empty reactions when
/// the last one went).
pub fn reactions_update(stored: &StoredMessage) -> enums::Update {
    let reactions = message_reactions(stored).unwrap_or_else(|| {
        types::MessageReactions {
            can_see_list: true,
            ..Default::default()
        }
        .into()
    });
    types::UpdateMessageReactions {
        peer: peer(stored.peer),
        msg_id: stored.id,
        top_msg_id: None,
        saved_peer_id: None,
        reactions,
    }
    .into()
}

/// An `updates` of these updates.
pub fn updates(updates: Vec<enums::Update>, users: Vec<enums::User>, date: i32) -> enums::Updates {
    types::Updates {
        updates,
        users,
        chats: Vec::new(),
        date,
        seq: 0,
    }
    .into()
}

/// `updates.state` of a box at `pts`.
pub fn state(pts: i32, date: i32) -> enums::updates::State {
    types::updates::State {
        pts,
        qts: 0,
        date,
        seq: 0,
        unread_count: 0,
    }
    .into()
}

/// Default notification settings.
pub fn notify_settings() -> enums::PeerNotifySettings {
    types::PeerNotifySettings::default().into()
}

/// The update of one log entry, as the box's owner sees it (`messages` holds the messages
/// that new-message and edit entries refer to; an entry whose message is gone is `None`).
pub fn update_of(entry: &UpdateEntry, messages: &[StoredMessage]) -> Option<enums::Update> {
    let find = |id: i32| messages.iter().find(|message| message.id == id);
    let (pts, pts_count) = (entry.pts, entry.pts_count);
    Some(match &entry.kind {
        UpdateKind::NewMessage { id } => types::UpdateNewMessage {
            message: message(find(*id)?),
            pts,
            pts_count,
        }
        .into(),
        UpdateKind::EditMessage { id } => types::UpdateEditMessage {
            message: message(find(*id)?),
            pts,
            pts_count,
        }
        .into(),
        UpdateKind::DeleteMessages { ids } => types::UpdateDeleteMessages {
            messages: ids.clone(),
            pts,
            pts_count,
        }
        .into(),
        UpdateKind::ReadInbox { peer: chat, max_id } => types::UpdateReadHistoryInbox {
            folder_id: None,
            peer: peer(*chat),
            top_msg_id: None,
            max_id: *max_id,
            still_unread_count: 0,
            pts,
            pts_count,
        }
        .into(),
        UpdateKind::ReadOutbox { peer: chat, max_id } => types::UpdateReadHistoryOutbox {
            peer: peer(*chat),
            max_id: *max_id,
            pts,
            pts_count,
        }
        .into(),
        UpdateKind::PinMessages {
            peer: chat,
            ids,
            pinned,
        } => types::UpdatePinnedMessages {
            pinned: *pinned,
            peer: peer(*chat),
            messages: ids.clone(),
            pts,
            pts_count,
        }
        .into(),
    })
}

/// `updates.Difference` of a store [`Difference`]: `differenceEmpty`, `differenceTooLong`,
/// or the changes (`difference` when complete, `differenceSlice` with the state reached
/// otherwise). `users` are the users the messages name, as the caller sees them.
pub fn difference(
    difference: Difference,
    users: impl FnOnce(&[StoredMessage]) -> Vec<enums::User>,
    date: i32,
) -> enums::updates::Difference {
    match difference {
        Difference::Empty { .. } => types::updates::DifferenceEmpty { date, seq: 0 }.into(),
        Difference::TooLong { pts } => types::updates::DifferenceTooLong { pts }.into(),
        Difference::Changes {
            entries,
            messages,
            complete,
            pts: box_pts,
        } => {
            let mut new_messages = Vec::new();
            let mut other_updates = Vec::new();
            for entry in &entries {
                match update_of(entry, &messages) {
                    Some(enums::Update::UpdateNewMessage(update)) => {
                        new_messages.push(update.message);
                    }
                    Some(update) => other_updates.push(update),
                    None => {}
                }
            }
            let users = users(&messages);
            let reached = entries.last().map_or(box_pts, |entry| entry.pts);
            if complete {
                types::updates::Difference {
                    new_messages,
                    new_encrypted_messages: Vec::new(),
                    other_updates,
                    chats: Vec::new(),
                    users,
                    state: state(box_pts, date),
                }
                .into()
            } else {
                types::updates::DifferenceSlice {
                    new_messages,
                    new_encrypted_messages: Vec::new(),
                    other_updates,
                    chats: Vec::new(),
                    users,
                    intermediate_state: state(reached, date),
                }
                .into()
            }
        }
    }
}

/// A `config` naming the DCs of `dcs`, with Telegram's usual limits.
pub fn config(dcs: &DcList, now: i32) -> enums::Config {
    types::Config {
        date: now,
        expires: now.saturating_add(3600),
        test_mode: false,
        this_dc: dcs.this_dc,
        // Each DC twice: for everything, and for media only (clients open media connections
        // to the `media_only` entry when there is one).
        dc_options: dcs
            .options
            .iter()
            .flat_map(|(id, address)| {
                [false, true].map(|media_only| {
                    types::DcOption {
                        ipv6: address.is_ipv6(),
                        media_only,
                        id: *id,
                        ip_address: address.ip().to_string(),
                        port: i32::from(address.port()),
                        ..Default::default()
                    }
                    .into()
                })
            })
            .collect(),
        chat_size_max: 200,
        megagroup_size_max: 200_000,
        forwarded_count_max: 100,
        online_update_period_ms: 210_000,
        offline_blur_timeout_ms: 5_000,
        offline_idle_timeout_ms: 30_000,
        online_cloud_timeout_ms: 300_000,
        notify_cloud_delay_ms: 30_000,
        notify_default_delay_ms: 1_500,
        push_chat_period_ms: 60_000,
        push_chat_limit: 2,
        edit_time_limit: 172_800,
        revoke_time_limit: i32::MAX,
        revoke_pm_time_limit: i32::MAX,
        rating_e_decay: 2_419_200,
        stickers_recent_limit: 200,
        channels_read_media_period: 604_800,
        call_receive_timeout_ms: 20_000,
        call_ring_timeout_ms: 90_000,
        call_connect_timeout_ms: 30_000,
        call_packet_timeout_ms: 10_000,
        me_url_prefix: "https://t.me/".to_owned(),
        caption_length_max: 1024,
        message_length_max: crate::messages::MAX_TEXT_CHARS as i32,
        webfile_dc_id: dcs.this_dc,
        ..Default::default()
    }
    .into()
}

/// Unix seconds now.
pub fn now_unix() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    i32::try_from(secs).unwrap_or(i32::MAX)
}
