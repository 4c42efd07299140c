//! The behaviour of memberships and channel boxes every backend must show, and a model test
//! of them.

use std::collections::BTreeMap;

use super::super::{
    Affected, BoxId, Dialog, GroupCounts, HistoryQuery, Membership, MessageError,
    MessageStoreConfig, Participant, ParticipantFilter, Peer, Role,
};
use super::{Factory, private, store};

/// A post to `channel` by `from`.
pub fn post(channel: i64, from: i64, random_id: i64) -> crate::message::SendRequest {
    let mut request = private(from, 0, random_id, "post");
    request.peer = Peer::Channel(channel);
    request.date = 1_700_000_000;
    request
}

fn admin(user_id: i64, date: i32, rights: u32, rank: &str) -> Participant {
    Participant {
        role: Role::Admin,
        admin_rights: rights,
        rank: rank.to_owned(),
        ..Participant::member(user_id, date, 1)
    }
}

fn ids(page: &[Participant]) -> Vec<i64> {
    page.iter().map(|p| p.user_id).collect()
}

/// Joining, changing roles, banning and leaving keep the records, the counts, every filter's
/// page and each user's list of groups in step.
pub fn members_join_change_and_leave(factory: Factory<'_>) {
    let store = store(factory);
    let channel = Peer::Channel(70);
    let change = store
        .set_participant(channel, 1, Some(Participant::creator(1, 100)))
        .unwrap();
    assert_eq!(change.before, None);
    assert_eq!((change.counts.members, change.counts.admins), (1, 1));
    for (user, date) in [(2, 101), (3, 102), (4, 102), (5, 103)] {
        store
            .set_participant(channel, user, Some(Participant::member(user, date, 1)))
            .unwrap();
    }
    let recent = store
        .participants(channel, ParticipantFilter::Recent, 0, 100)
        .unwrap();
    assert_eq!(recent.count, 5);
    assert_eq!(
        ids(&recent.participants),
        vec![5, 3, 4, 2, 1],
        "newest joiner first, then by user id"
    );
    let second = store
        .participants(channel, ParticipantFilter::Recent, 2, 2)
        .unwrap();
    assert_eq!(ids(&second.participants), vec![4, 2]);
    assert_eq!(second.count, 5, "count is all of them whatever the page");
    // Promote 3 with a title, restrict 4, ban 5.
    let promoted = admin(3, 102, 0x1f, "boss");
    let change = store
        .set_participant(channel, 3, Some(promoted.clone()))
        .unwrap();
    assert_eq!(change.before, Some(Participant::member(3, 102, 1)));
    assert_eq!(store.participant(channel, 3).unwrap(), Some(promoted));
    let mut restricted = Participant::member(4, 102, 1);
    restricted.banned_rights = 0x80;
    restricted.until = 500;
    store
        .set_participant(channel, 4, Some(restricted.clone()))
        .unwrap();
    let banned = Participant {
        role: Role::Banned,
        banned_rights: 1,
        ..Participant::member(5, 104, 1)
    };
    let change = store.set_participant(channel, 5, Some(banned)).unwrap();
    assert_eq!(
        change.counts,
        GroupCounts {
            members: 4,
            admins: 2,
            banned: 1,
            restricted: 1,
            read_outbox_max_id: 0
        }
    );
    assert_eq!(store.group_counts(channel).unwrap(), change.counts);
    let page = |filter| {
        store
            .participants(channel, filter, 0, 100)
            .unwrap()
            .participants
    };
    assert_eq!(ids(&page(ParticipantFilter::Recent)), vec![3, 4, 2, 1]);
    assert_eq!(ids(&page(ParticipantFilter::Admins)), vec![1, 3]);
    assert_eq!(ids(&page(ParticipantFilter::Banned)), vec![5]);
    assert_eq!(page(ParticipantFilter::Restricted), vec![restricted]);
    // The users' side.
    assert_eq!(
        store.memberships(3).unwrap(),
        vec![Membership {
            group: channel,
            role: Role::Admin,
            date: 102
        }]
    );
    assert_eq!(store.memberships(5).unwrap()[0].role, Role::Banned);
    // Leaving and lifting a ban drop the records everywhere.
    store.set_participant(channel, 2, None).unwrap();
    store.set_participant(channel, 5, None).unwrap();
    assert_eq!(store.participant(channel, 2).unwrap(), None);
    assert_eq!(store.memberships(2).unwrap(), Vec::new());
    assert_eq!(store.memberships(5).unwrap(), Vec::new());
    assert_eq!(ids(&page(ParticipantFilter::Recent)), vec![3, 4, 1]);
    assert_eq!(page(ParticipantFilter::Banned), Vec::new());
    let counts = store.group_counts(channel).unwrap();
    assert_eq!((counts.members, counts.banned), (3, 0));
    // Leaving twice changes nothing more.
    let again = store.set_participant(channel, 2, None).unwrap();
    assert_eq!(again.before, None);
    assert_eq!(again.counts.members, 3);
    // A basic group keeps its members apart from a channel with the same id.
    let chat = Peer::Chat(70);
    store
        .set_participant(chat, 2, Some(Participant::creator(2, 200)))
        .unwrap();
    assert_eq!(store.group_counts(chat).unwrap().members, 1);
    assert_eq!(store.group_counts(channel).unwrap().members, 3);
    assert_eq!(store.memberships(2).unwrap()[0].group, chat);
    store
        .set_participant(chat, 1, Some(Participant::member(1, 201, 2)))
        .unwrap();
    let groups: Vec<Peer> = store
        .memberships(1)
        .unwrap()
        .iter()
        .map(|m| m.group)
        .collect();
    assert_eq!(groups, vec![chat, channel], "basic groups first");
}

/// Groups get ids from one sequence, their info and their creator; info changes only for a
/// group that exists.
pub fn groups_are_created_with_info_and_creator(factory: Factory<'_>) {
    let store = store(factory);
    let chat = store.create_group(false, b"chat".to_vec(), 3, 10).unwrap();
    let channel = store.create_group(true, b"chan".to_vec(), 4, 11).unwrap();
    assert_eq!((chat, channel), (Peer::Chat(1), Peer::Channel(2)));
    assert_eq!(store.group_info(channel).unwrap(), Some(b"chan".to_vec()));
    assert_eq!(store.group_info(Peer::Chat(2)).unwrap(), None);
    assert_eq!(
        store.participant(channel, 4).unwrap(),
        Some(Participant::creator(4, 11))
    );
    assert_eq!(store.group_counts(chat).unwrap().admins, 1);
    store.set_group_info(channel, b"renamed".to_vec()).unwrap();
    assert_eq!(
        store.group_info(channel).unwrap(),
        Some(b"renamed".to_vec())
    );
    assert_eq!(
        store.set_group_info(Peer::Channel(9), b"x".to_vec()),
        Err(MessageError::PeerIdInvalid)
    );
    assert_eq!(
        store.create_group(true, vec![0; 2 * 1024 * 1024], 4, 1),
        Err(MessageError::MessageTooLong)
    );
    assert_eq!(
        store.create_group(true, Vec::new(), 0, 1),
        Err(MessageError::UserIdInvalid)
    );
    assert_eq!(
        store.create_group(true, Vec::new(), 5, 1).unwrap(),
        Peer::Channel(3),
        "refused creations use no id"
    );
}

/// Bad memberships get typed errors and change nothing.
pub fn bad_memberships_get_typed_errors(factory: Factory<'_>) {
    let store = store(factory);
    let channel = Peer::Channel(5);
    assert_eq!(
        store.set_participant(Peer::User(5), 1, Some(Participant::member(1, 1, 0))),
        Err(MessageError::PeerIdInvalid)
    );
    assert_eq!(
        store.set_participant(Peer::Channel(0), 1, None),
        Err(MessageError::PeerIdInvalid)
    );
    assert_eq!(
        store.set_participant(channel, 0, None),
        Err(MessageError::UserIdInvalid)
    );
    assert_eq!(
        store.set_participant(channel, 1, Some(Participant::member(2, 1, 0))),
        Err(MessageError::UserIdInvalid),
        "a record for another user"
    );
    assert_eq!(
        store.set_participant(channel, 1, Some(admin(1, 1, 1, &"x".repeat(65)))),
        Err(MessageError::AdminRankInvalid)
    );
    assert_eq!(
        store.participants(channel, ParticipantFilter::Recent, 0, 0),
        Err(MessageError::LimitInvalid)
    );
    assert_eq!(
        store.participants(channel, ParticipantFilter::Recent, 0, 1001),
        Err(MessageError::LimitInvalid)
    );
    assert_eq!(store.group_counts(channel).unwrap(), GroupCounts::default());
    assert_eq!(store.memberships(1).unwrap(), Vec::new());
    assert_eq!(
        store.views(5, &vec![1; 1001], true),
        Err(MessageError::LimitInvalid)
    );
}

/// A full group refuses one more member (not a change to a member, nor a ban); a user in as
/// many groups as allowed cannot join another.
pub fn groups_and_users_have_caps(factory: Factory<'_>) {
    let store = factory(MessageStoreConfig {
        max_members: 2,
        max_channel_members: 3,
        max_groups_per_user: 2,
        ..MessageStoreConfig::default()
    });
    let chat = Peer::Chat(1);
    store
        .set_participant(chat, 1, Some(Participant::creator(1, 1)))
        .unwrap();
    store
        .set_participant(chat, 2, Some(Participant::member(2, 1, 1)))
        .unwrap();
    assert_eq!(
        store.set_participant(chat, 3, Some(Participant::member(3, 1, 1))),
        Err(MessageError::UsersTooMuch)
    );
    assert_eq!(store.participant(chat, 3).unwrap(), None);
    assert_eq!(store.memberships(3).unwrap(), Vec::new());
    store
        .set_participant(chat, 2, Some(admin(2, 1, 3, "")))
        .unwrap();
    let banned = Participant {
        role: Role::Banned,
        ..Participant::member(3, 1, 1)
    };
    store.set_participant(chat, 3, Some(banned)).unwrap();
    let channel = Peer::Channel(1);
    for user in 1..=3 {
        store
            .set_participant(channel, user, Some(Participant::member(user, 1, 0)))
            .unwrap();
    }
    assert_eq!(
        store.set_participant(channel, 4, Some(Participant::member(4, 1, 0))),
        Err(MessageError::UsersTooMuch)
    );
    // User 1 is in the chat and the channel: a third group is too many, a ban is not a
    // membership.
    assert_eq!(
        store.set_participant(Peer::Channel(2), 1, Some(Participant::member(1, 1, 0))),
        Err(MessageError::ChannelsTooMuch)
    );
    store
        .set_participant(Peer::Channel(2), 3, Some(Participant::member(3, 1, 0)))
        .unwrap();
    assert_eq!(store.group_counts(Peer::Channel(2)).unwrap().members, 1);
}

/// A channel post is stored once, in the channel's box; each member's dialog of the channel
/// is read from the box and the member's watermark, which moves on their reads (no pts) and
/// on their own posts; a member who leaves loses it.
pub fn channel_posts_are_stored_once_and_read_per_member(factory: Factory<'_>) {
    let store = store(factory);
    let channel = Peer::Channel(9);
    for user in 1..=3 {
        let record = if user == 1 {
            Participant::creator(1, 50)
        } else {
            Participant::member(user, 50 + i32::try_from(user).unwrap(), 1)
        };
        store.set_participant(channel, user, Some(record)).unwrap();
    }
    let empty = store.channel_dialogs(2).unwrap();
    assert_eq!(
        empty,
        vec![Dialog {
            peer: channel,
            top_message: 0,
            top_date: 52,
            read_inbox_max_id: 0,
            read_outbox_max_id: 0,
            unread_count: 0
        }],
        "a channel without posts, dated when the member joined"
    );
    for random_id in 1..=4 {
        store.send(&post(9, 1, random_id)).unwrap();
    }
    let reply = store.send(&post(9, 2, 1)).unwrap();
    assert_eq!(reply.deliveries.len(), 1);
    assert_eq!(reply.deliveries[0].box_id, BoxId::Channel(9));
    assert_eq!(reply.deliveries[0].message_id, 5);
    assert_eq!(
        store.state(BoxId::User(2)).unwrap().pts,
        0,
        "nothing per member"
    );
    assert_eq!(store.sent(2, channel, 1).unwrap(), Some(reply.deliveries));
    assert!(store.send(&post(9, 2, 1)).unwrap().repeated);
    let dialog = |user| store.dialog(user, channel).unwrap().unwrap();
    assert_eq!(
        (
            dialog(1).top_message,
            dialog(1).read_inbox_max_id,
            dialog(1).unread_count
        ),
        (5, 4, 1),
        "the poster read up to their own post"
    );
    assert_eq!(
        (dialog(2).read_inbox_max_id, dialog(2).unread_count),
        (5, 0)
    );
    assert_eq!(
        (dialog(3).read_inbox_max_id, dialog(3).unread_count),
        (0, 5)
    );
    let pts = store.state(BoxId::Channel(9)).unwrap().pts;
    assert_eq!(
        store.read_history(3, channel, 3).unwrap(),
        vec![Affected {
            box_id: BoxId::Channel(9),
            pts,
            pts_count: 0
        }]
    );
    assert_eq!(
        store.state(BoxId::Channel(9)).unwrap().pts,
        pts,
        "reads take no pts"
    );
    assert_eq!(store.read_history(3, channel, 2).unwrap(), Vec::new());
    assert_eq!(
        (dialog(3).read_inbox_max_id, dialog(3).unread_count),
        (3, 2)
    );
    assert_eq!(dialog(1).read_outbox_max_id, 3);
    store.read_history(3, channel, 0).unwrap();
    assert_eq!(
        (dialog(3).read_inbox_max_id, dialog(3).unread_count),
        (5, 0)
    );
    // A deleted post leaves the count.
    store.delete(BoxId::Channel(9), &[5], true).unwrap();
    assert_eq!((dialog(1).top_message, dialog(1).unread_count), (4, 0));
    // The dialogs of a user's common box do not list channels.
    assert!(store.dialogs(1, 0, 100).unwrap().is_empty());
    // Leaving drops the dialog and the watermark.
    store.set_participant(channel, 3, None).unwrap();
    assert_eq!(store.dialog(3, channel).unwrap(), None);
    store
        .set_participant(channel, 3, Some(Participant::member(3, 60, 0)))
        .unwrap();
    assert_eq!(
        (dialog(3).read_inbox_max_id, dialog(3).unread_count),
        (0, 4)
    );
    let history = store
        .get_history(
            BoxId::Channel(9),
            channel,
            &HistoryQuery {
                limit: 10,
                ..HistoryQuery::default()
            },
        )
        .unwrap();
    assert_eq!(history.count, 4);
    // Channel dialogs come newest first.
    store
        .set_participant(Peer::Channel(10), 3, Some(Participant::creator(3, 70)))
        .unwrap();
    let order: Vec<Peer> = store
        .channel_dialogs(3)
        .unwrap()
        .iter()
        .map(|d| d.peer)
        .collect();
    assert_eq!(order, vec![Peer::Channel(9), Peer::Channel(10)]);
}

/// Views count up per call with `increment`, are read without it, and are 0 for posts that
/// do not exist.
pub fn post_views_count_up(factory: Factory<'_>) {
    let store = store(factory);
    store.send(&post(4, 1, 1)).unwrap();
    store.send(&post(4, 1, 2)).unwrap();
    assert_eq!(store.views(4, &[1, 2, 3], false).unwrap(), vec![0, 0, 0]);
    assert_eq!(store.views(4, &[1, 2, 3], true).unwrap(), vec![1, 1, 0]);
    assert_eq!(store.views(4, &[1, 1], true).unwrap(), vec![2, 3]);
    assert_eq!(store.views(4, &[1, 2], false).unwrap(), vec![3, 1]);
    assert_eq!(store.views(5, &[1], true).unwrap(), vec![0]);
}

/// One step of the membership model test.
#[derive(Debug, Clone)]
pub enum MemberOp {
    /// Sets `user`'s record in `group` (0-1 basic groups, 2-3 channels): `role` 0-3 as
    /// [`Role`]'s order, 4 restricted member, 5 removes.
    Set {
        /// Which group.
        group: u8,
        /// The user, 1..=5.
        user: i64,
        /// The record.
        role: u8,
        /// The join date.
        date: i32,
    },
    /// `user` posts in channel `channel` (0-1).
    Post {
        /// Which channel.
        channel: u8,
        /// The poster.
        user: i64,
    },
    /// `user` reads channel `channel` up to `max_id`.
    Read {
        /// Which channel.
        channel: u8,
        /// The reader.
        user: i64,
        /// Up to.
        max_id: i32,
    },
}

fn group_of(index: u8) -> Peer {
    match index {
        0 | 1 => Peer::Chat(i64::from(index) + 1),
        _ => Peer::Channel(i64::from(index) + 1),
    }
}

fn record(user: i64, role: u8, date: i32) -> Option<Participant> {
    let mut participant = Participant::member(user, date, 0);
    match role {
        0 => participant.role = Role::Creator,
        1 => {
            participant.role = Role::Admin;
            participant.admin_rights = 7;
            participant.rank = format!("r{date}");
        }
        2 => {}
        3 => {
            participant.role = Role::Banned;
            participant.banned_rights = 1;
        }
        4 => participant.banned_rights = 4,
        _ => return None,
    }
    Some(participant)
}

#[derive(Debug, Default)]
struct MemberModel {
    groups: BTreeMap<Peer, BTreeMap<i64, Participant>>,
    reads: BTreeMap<(Peer, i64), i32>,
    read_outbox: BTreeMap<Peer, i32>,
    posts: BTreeMap<Peer, i32>,
    random: i64,
}

impl MemberModel {
    fn member_groups(&self, user: i64) -> usize {
        self.groups
            .values()
            .filter(|members| members.get(&user).is_some_and(|p| p.role.is_member()))
            .count()
    }
}

/// Applies `ops` to a fresh store (small caps: 3 members a basic group, 4 a channel, 3 groups
/// a user) and to a reference model, checking every record, page, count, list and channel
/// dialog after each step.
pub fn members_agree_with_the_model(factory: Factory<'_>, ops: &[MemberOp]) {
    let config = MessageStoreConfig {
        max_members: 3,
        max_channel_members: 4,
        max_groups_per_user: 3,
        ..MessageStoreConfig::default()
    };
    let store = factory(config);
    let mut model = MemberModel::default();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            MemberOp::Set {
                group,
                user,
                role,
                date,
            } => {
                let peer = group_of(group);
                let after = record(user, role, date);
                let members = model.groups.entry(peer).or_default();
                let before = members.get(&user).cloned();
                let was = before.as_ref().is_some_and(|p| p.role.is_member());
                let joins = after.as_ref().is_some_and(|p| p.role.is_member()) && !was;
                let cap = match peer {
                    Peer::Channel(_) => config.max_channel_members,
                    _ => config.max_members,
                };
                let size = members.values().filter(|p| p.role.is_member()).count();
                let result = store.set_participant(peer, user, after.clone());
                if joins && size >= cap {
                    assert_eq!(result, Err(MessageError::UsersTooMuch), "step {step}");
                    continue;
                }
                if joins && model.member_groups(user) >= config.max_groups_per_user {
                    assert_eq!(result, Err(MessageError::ChannelsTooMuch), "step {step}");
                    continue;
                }
                assert_eq!(result.unwrap().before, before, "step {step}: before");
                let members = model.groups.entry(peer).or_default();
                match after {
                    Some(after) => {
                        if !after.role.is_member() {
                            model.reads.remove(&(peer, user));
                        }
                        members.insert(user, after);
                    }
                    None => {
                        members.remove(&user);
                        model.reads.remove(&(peer, user));
                    }
                }
            }
            MemberOp::Post { channel, user } => {
                let peer = group_of(channel + 2);
                model.random += 1;
                let Peer::Channel(id) = peer else {
                    unreachable!()
                };
                let outcome = store.send(&post(id, user, model.random)).unwrap();
                let top = model.posts.entry(peer).or_default();
                *top += 1;
                assert_eq!(outcome.deliveries[0].message_id, *top, "step {step}");
                let top = *top;
                model.reads.insert((peer, user), top);
            }
            MemberOp::Read {
                channel,
                user,
                max_id,
            } => {
                let peer = group_of(channel + 2);
                let top = model.posts.get(&peer).copied().unwrap_or(0);
                let wanted = if max_id == 0 { top } else { max_id.min(top) };
                let read = model.reads.entry((peer, user)).or_default();
                let moved = wanted > *read;
                if moved {
                    *read = wanted;
                    let outbox = model.read_outbox.entry(peer).or_default();
                    *outbox = (*outbox).max(wanted);
                }
                let result = store.read_history(user, peer, max_id).unwrap();
                assert_eq!(result.len(), usize::from(moved), "step {step}: read");
            }
        }
        check_members(&*store, &model, step);
    }
}

fn check_members(store: &dyn crate::message::MessageStore, model: &MemberModel, step: usize) {
    for index in 0..4 {
        let peer = group_of(index);
        let members = model.groups.get(&peer).cloned().unwrap_or_default();
        for filter in [
            ParticipantFilter::Recent,
            ParticipantFilter::Admins,
            ParticipantFilter::Banned,
            ParticipantFilter::Restricted,
        ] {
            let mut expected: Vec<&Participant> = members
                .values()
                .filter(|p| super::super::members::matches(p, filter))
                .collect();
            if filter == ParticipantFilter::Recent {
                expected.sort_by_key(|p| (std::cmp::Reverse(p.date), p.user_id));
            }
            let page = store.participants(peer, filter, 0, 100).unwrap();
            let expected: Vec<Participant> = expected.into_iter().cloned().collect();
            assert_eq!(
                page.count,
                expected.len(),
                "step {step}: count of {peer:?} {filter:?}"
            );
            assert_eq!(
                page.participants, expected,
                "step {step}: {peer:?} {filter:?}"
            );
        }
        for user in 1..=5 {
            assert_eq!(
                store.participant(peer, user).unwrap().as_ref(),
                members.get(&user),
                "step {step}: {user} in {peer:?}"
            );
        }
    }
    for user in 1..=5 {
        let expected: Vec<Membership> = model
            .groups
            .iter()
            .filter_map(|(peer, members)| {
                members.get(&user).map(|p| Membership {
                    group: *peer,
                    role: p.role,
                    date: p.date,
                })
            })
            .collect();
        assert_eq!(
            store.memberships(user).unwrap(),
            expected,
            "step {step}: groups of {user}"
        );
        let mut dialogs: Vec<Dialog> = expected
            .iter()
            .filter(|m| matches!(m.group, Peer::Channel(_)) && m.role.is_member())
            .map(|m| {
                let top = model.posts.get(&m.group).copied().unwrap_or(0);
                let read = model.reads.get(&(m.group, user)).copied().unwrap_or(0);
                Dialog {
                    peer: m.group,
                    top_message: top,
                    top_date: if top > 0 { 1_700_000_000 } else { m.date },
                    read_inbox_max_id: read,
                    read_outbox_max_id: model.read_outbox.get(&m.group).copied().unwrap_or(0),
                    unread_count: top - read.min(top),
                }
            })
            .collect();
        dialogs.sort_by_key(|d| std::cmp::Reverse((d.top_date, d.top_message, d.peer)));
        assert_eq!(
            store.channel_dialogs(user).unwrap(),
            dialogs,
            "step {step}: channel dialogs of {user}"
        );
    }
}

/// Random operation sequences for [`members_agree_with_the_model`].
pub fn member_ops() -> impl proptest::strategy::Strategy<Value = Vec<MemberOp>> {
    use proptest::prelude::*;
    let op = prop_oneof![
        4 => (0u8..4, 1i64..=5, 0u8..6, 1i32..5).prop_map(|(group, user, role, date)| MemberOp::Set { group, user, role, date }),
        2 => (0u8..2, 1i64..=5).prop_map(|(channel, user)| MemberOp::Post { channel, user }),
        2 => (0u8..2, 1i64..=5, 0i32..8).prop_map(|(channel, user, max_id)| MemberOp::Read { channel, user, max_id }),
    ];
    proptest::collection::vec(op, 0..40)
}
