//! Who belongs to a group: basic groups (`Peer::Chat`) and channels (`Peer::Channel`, both
//! supergroups and broadcasts), with roles, rights, join dates and the per-member read state
//! of a channel.
//!
//! The store keeps what must be exact and atomic: one participant record per (group, user),
//! the group's counts, the index by join date that `channels.getParticipants` pages, the list
//! of groups each user is in, and each member's read watermark in a channel. It does not
//! decide who may do what: rights are bits the application reads and enforces with
//! Telegram's errors (`CHAT_ADMIN_REQUIRED`, ...).
//!
//! A channel's members are many (Telegram's supergroups reach 200,000): nothing here is
//! written per member when someone posts. A member's dialog of a channel is read from the
//! channel's box and the member's watermark when asked for.

use super::{MessageError, MessageStoreConfig, Peer};

/// A member's standing in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// Created the group; all rights.
    Creator,
    /// An administrator with [`Participant::admin_rights`].
    Admin,
    /// An ordinary member (possibly restricted by [`Participant::banned_rights`]).
    Member,
    /// Removed and kept out (`channelParticipantBanned` with `view_messages`): not a member,
    /// may not come back until [`Participant::until`] (0: for ever) or until unbanned.
    Banned,
}

impl Role {
    /// Whether this role counts as a member (reads, writes within its rights, sees posts).
    pub fn is_member(self) -> bool {
        !matches!(self, Self::Banned)
    }

    /// Whether this role administers the group.
    pub fn is_admin(self) -> bool {
        matches!(self, Self::Creator | Self::Admin)
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Creator => 0,
            Self::Admin => 1,
            Self::Member => 2,
            Self::Banned => 3,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Creator),
            1 => Some(Self::Admin),
            2 => Some(Self::Member),
            3 => Some(Self::Banned),
            _ => None,
        }
    }
}

/// One user's record in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The user.
    pub user_id: i64,
    /// Their standing.
    pub role: Role,
    /// When they joined (for [`Role::Banned`], when they were banned). Unix seconds.
    pub date: i32,
    /// Who added them (or banned them); 0 when they joined by themselves.
    pub inviter: i64,
    /// Telegram's `chatAdminRights` flags, for admins.
    pub admin_rights: u32,
    /// Telegram's `chatBannedRights` flags: what a restricted member or a banned user may not
    /// do.
    pub banned_rights: u32,
    /// When the restriction or ban ends (Unix seconds); 0 for ever.
    pub until: i32,
    /// An admin's custom title (`rank`), at most [`MessageStoreConfig::max_rank_len`] bytes.
    pub rank: String,
}

impl Participant {
    /// A member who joined at `date`, added by `inviter` (0: by themselves).
    pub fn member(user_id: i64, date: i32, inviter: i64) -> Self {
        Self {
            user_id,
            role: Role::Member,
            date,
            inviter,
            admin_rights: 0,
            banned_rights: 0,
            until: 0,
            rank: String::new(),
        }
    }

    /// The creator, at the group's creation.
    pub fn creator(user_id: i64, date: i32) -> Self {
        Self {
            role: Role::Creator,
            ..Self::member(user_id, date, 0)
        }
    }
}

/// Which participants a page lists (`channels.getParticipants`' filters the store serves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParticipantFilter {
    /// Members (creator, admins, members), newest joiner first.
    Recent,
    /// The creator and the admins, by user id.
    Admins,
    /// Banned users, by user id.
    Banned,
    /// Members with restrictions ([`Participant::banned_rights`] not 0), by user id.
    Restricted,
}

/// A page of a group's participants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantPage {
    /// The participants, in the filter's order.
    pub participants: Vec<Participant>,
    /// How many the filter matches in all.
    pub count: usize,
}

/// A group's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCounts {
    /// Members (creator, admins, members).
    pub members: u32,
    /// The creator and the admins.
    pub admins: u32,
    /// Banned users.
    pub banned: u32,
    /// Members with restrictions.
    pub restricted: u32,
    /// A channel's read-outbox watermark: the highest message id some member read (Telegram
    /// keeps one value for everyone's outgoing messages in a channel).
    pub read_outbox_max_id: i32,
}

/// A group a user is in, from the user's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The group.
    pub group: Peer,
    /// The user's role in it.
    pub role: Role,
    /// When the user joined.
    pub date: i32,
}

/// What [`super::MessageStore::set_participant`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantChange {
    /// The record before the change (`None`: the user was not in the group).
    pub before: Option<Participant>,
    /// The group's counts after the change.
    pub counts: GroupCounts,
}

/// A group a membership can be in: a basic group or a channel, with a positive id.
pub(crate) fn check_group(group: Peer) -> Result<(), MessageError> {
    match group {
        Peer::Chat(id) | Peer::Channel(id) if id > 0 => Ok(()),
        _ => Err(MessageError::PeerIdInvalid),
    }
}

/// Checks a record before it is stored.
pub(crate) fn check_participant(
    participant: &Participant,
    config: &MessageStoreConfig,
) -> Result<(), MessageError> {
    if participant.user_id <= 0 {
        return Err(MessageError::UserIdInvalid);
    }
    if participant.rank.len() > config.max_rank_len {
        return Err(MessageError::AdminRankInvalid);
    }
    Ok(())
}

/// The counts after `before` is replaced by `after`.
pub(crate) fn recount(
    mut counts: GroupCounts,
    before: Option<&Participant>,
    after: Option<&Participant>,
) -> GroupCounts {
    fn tally(counts: &mut GroupCounts, participant: &Participant, up: bool) {
        let step = |value: &mut u32| {
            *value = if up {
                value.saturating_add(1)
            } else {
                value.saturating_sub(1)
            };
        };
        if participant.role.is_member() {
            step(&mut counts.members);
        }
        if participant.role.is_admin() {
            step(&mut counts.admins);
        }
        if participant.role == Role::Banned {
            step(&mut counts.banned);
        }
        if participant.role == Role::Member && participant.banned_rights != 0 {
            step(&mut counts.restricted);
        }
    }
    if let Some(before) = before {
        tally(&mut counts, before, false);
    }
    if let Some(after) = after {
        tally(&mut counts, after, true);
    }
    counts
}

/// Whether a participant is listed by `filter`.
pub(crate) fn matches(participant: &Participant, filter: ParticipantFilter) -> bool {
    match filter {
        ParticipantFilter::Recent => participant.role.is_member(),
        ParticipantFilter::Admins => participant.role.is_admin(),
        ParticipantFilter::Banned => participant.role == Role::Banned,
        ParticipantFilter::Restricted => {
            participant.role == Role::Member && participant.banned_rights != 0
        }
    }
}

/// The most members `group` may have under `config`.
pub(crate) fn member_cap(group: Peer, config: &MessageStoreConfig) -> usize {
    match group {
        Peer::Channel(_) => config.max_channel_members,
        _ => config.max_members,
    }
}

/// Refuses a change that would take the group past its size or the user past their number of
/// groups; `user_groups` is how many groups (basic groups and channels) the user is in now.
pub(crate) fn check_room(
    group: Peer,
    counts: &GroupCounts,
    before: Option<&Participant>,
    after: Option<&Participant>,
    user_groups: usize,
    config: &MessageStoreConfig,
) -> Result<(), MessageError> {
    let was_member = before.is_some_and(|p| p.role.is_member());
    let is_member = after.is_some_and(|p| p.role.is_member());
    if is_member && !was_member {
        let members = usize::try_from(counts.members).unwrap_or(usize::MAX);
        if members >= member_cap(group, config) {
            return Err(MessageError::UsersTooMuch);
        }
        if user_groups >= config.max_groups_per_user {
            return Err(MessageError::ChannelsTooMuch);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_codes() {
        for role in [Role::Creator, Role::Admin, Role::Member, Role::Banned] {
            assert_eq!(Role::from_code(role.code()), Some(role));
        }
        assert_eq!(Role::from_code(4), None);
    }

    #[test]
    fn counts_follow_each_change() {
        let member = Participant::member(1, 10, 0);
        let mut admin = Participant::member(1, 10, 0);
        admin.role = Role::Admin;
        let counts = recount(GroupCounts::default(), None, Some(&member));
        assert_eq!((counts.members, counts.admins), (1, 0));
        let counts = recount(counts, Some(&member), Some(&admin));
        assert_eq!((counts.members, counts.admins), (1, 1));
        let mut banned = admin.clone();
        banned.role = Role::Banned;
        let counts = recount(counts, Some(&admin), Some(&banned));
        assert_eq!((counts.members, counts.admins, counts.banned), (0, 0, 1));
        let counts = recount(counts, Some(&banned), None);
        assert_eq!(counts, GroupCounts::default());
    }

    #[test]
    fn a_full_group_refuses_one_more_member_but_not_a_change() {
        let config = MessageStoreConfig {
            max_members: 1,
            ..MessageStoreConfig::default()
        };
        let full = GroupCounts {
            members: 1,
            ..GroupCounts::default()
        };
        let member = Participant::member(2, 10, 0);
        assert_eq!(
            check_room(Peer::Chat(1), &full, None, Some(&member), 0, &config),
            Err(MessageError::UsersTooMuch)
        );
        assert_eq!(
            check_room(
                Peer::Chat(1),
                &full,
                Some(&member),
                Some(&member),
                0,
                &config
            ),
            Ok(())
        );
        let channels = MessageStoreConfig {
            max_groups_per_user: 2,
            ..MessageStoreConfig::default()
        };
        assert_eq!(
            check_room(
                Peer::Channel(1),
                &GroupCounts::default(),
                None,
                Some(&member),
                2,
                &channels
            ),
            Err(MessageError::ChannelsTooMuch)
        );
    }
}
