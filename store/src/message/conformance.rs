//! The behaviour every [`MessageStore`] backend must show. Backends call [`run_all`] from
//! their tests with a function that makes a fresh, empty store with the given limits.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a panic with a message"
)]

use super::{
    Affected, BoxId, Delivery, Difference, HistoryQuery, MessageError, MessageStore,
    MessageStoreConfig, Peer, SendRequest, UpdateEntry, UpdateKind,
};

mod members;

pub use members::{
    MemberOp, bad_memberships_get_typed_errors, channel_posts_are_stored_once_and_read_per_member,
    groups_and_users_have_caps, groups_are_created_with_info_and_creator, member_ops,
    members_agree_with_the_model, members_join_change_and_leave, post, post_views_count_up,
};

/// Makes a fresh, empty store with these limits.
pub type Factory<'a> = &'a dyn Fn(MessageStoreConfig) -> Box<dyn MessageStore>;

/// Runs every check.
pub fn run_all(factory: Factory<'_>) {
    private_messages_reach_both_boxes_with_their_own_ids(factory);
    saved_messages_groups_and_channels(factory);
    sends_are_idempotent_on_random_id(factory);
    a_send_is_found_by_its_identity(factory);
    history_follows_get_history_rules(factory);
    difference_replays_the_log_and_says_too_long(factory);
    channel_logs_have_their_own_bound(factory);
    edits_reach_every_copy(factory);
    deletes_for_me_and_revoked(factory);
    read_markers_and_unread_counts(factory);
    dialogs_come_in_pages_by_top_message(factory);
    bad_input_gets_typed_errors(factory);
    pins_reach_both_sides_or_one(factory);
    reactions_are_one_per_user_in_every_copy(factory);
    a_sender_only_message_stays_in_the_sender_s_box(factory);
    members_join_change_and_leave(factory);
    groups_are_created_with_info_and_creator(factory);
    bad_memberships_get_typed_errors(factory);
    groups_and_users_have_caps(factory);
    channel_posts_are_stored_once_and_read_per_member(factory);
    post_views_count_up(factory);
}

/// `sent` finds every copy of a send by (sender, peer, random_id), the sender's first, as
/// the send answered it; an unknown identity is `None`.
pub fn a_send_is_found_by_its_identity(factory: Factory<'_>) {
    let store = factory(MessageStoreConfig::default());
    let first = store.send(&private(1, 2, 10, "one")).unwrap();
    let second = store.send(&private(2, 1, 11, "two")).unwrap();
    assert_eq!(
        store.sent(1, Peer::User(2), 10).unwrap(),
        Some(first.deliveries.clone())
    );
    assert_eq!(
        store.sent(2, Peer::User(1), 11).unwrap(),
        Some(second.deliveries)
    );
    let copies = first.deliveries;
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0].box_id, BoxId::User(1), "the sender's copy first");
    assert_eq!(store.sent(1, Peer::User(2), 11).unwrap(), None);
    assert_eq!(store.sent(2, Peer::User(1), 10).unwrap(), None);
    assert_eq!(store.sent(1, Peer::User(3), 10).unwrap(), None);
}

/// A private message from `from` to `to`.
pub fn private(from: i64, to: i64, random_id: i64, text: &str) -> SendRequest {
    SendRequest {
        sender: from,
        peer: Peer::User(to),
        random_id,
        date: 1_700_000_000 + i32::try_from(random_id % 1_000_000).unwrap_or(0),
        body: text.as_bytes().to_vec(),
        media: None,
        flags: 0,
        members: Vec::new(),
        sender_only: false,
    }
}

fn store(factory: Factory<'_>) -> Box<dyn MessageStore> {
    factory(MessageStoreConfig::default())
}

/// A private message is stored in the sender's box (outgoing) and the recipient's box
/// (incoming), each with the next id and pts of that box.
pub fn private_messages_reach_both_boxes_with_their_own_ids(factory: Factory<'_>) {
    let store = store(factory);
    // User 1 already has two messages with user 3: its ids run ahead of user 2's.
    store.send(&private(1, 3, 100, "a")).unwrap();
    store.send(&private(1, 3, 101, "b")).unwrap();
    let sent = store.send(&private(1, 2, 7, "hello")).unwrap();
    assert!(!sent.repeated);
    assert_eq!(
        sent.deliveries,
        vec![
            Delivery {
                box_id: BoxId::User(1),
                message_id: 3,
                pts: 3
            },
            Delivery {
                box_id: BoxId::User(2),
                message_id: 1,
                pts: 1
            },
        ]
    );
    let mine = store.get_messages(BoxId::User(1), &[3]).unwrap();
    assert_eq!(mine.len(), 1);
    assert!(mine[0].out);
    assert_eq!(mine[0].peer, Peer::User(2));
    assert_eq!(mine[0].body, b"hello");
    let theirs = store.get_messages(BoxId::User(2), &[1]).unwrap();
    assert!(!theirs[0].out);
    assert_eq!(
        theirs[0].peer,
        Peer::User(1),
        "the chat is the sender, seen from the recipient"
    );
    assert_eq!(theirs[0].from, 1);
    assert_eq!(store.state(BoxId::User(2)).unwrap().pts, 1);
    assert_eq!(
        store.state(BoxId::User(9)).unwrap().pts,
        0,
        "an untouched box is empty"
    );
}

/// Saved Messages take one copy; a basic group one per member; a channel one.
pub fn saved_messages_groups_and_channels(factory: Factory<'_>) {
    let store = store(factory);
    let saved = store.send(&private(1, 1, 1, "note")).unwrap();
    assert_eq!(saved.deliveries.len(), 1);
    let mut group = private(1, 0, 2, "hi all");
    group.peer = Peer::Chat(50);
    group.members = vec![1, 2, 3, 2];
    let sent = store.send(&group).unwrap();
    let boxes: Vec<BoxId> = sent.deliveries.iter().map(|d| d.box_id).collect();
    assert_eq!(boxes, vec![BoxId::User(1), BoxId::User(2), BoxId::User(3)]);
    let mut channel = private(1, 0, 3, "news");
    channel.peer = Peer::Channel(70);
    let posted = store.send(&channel).unwrap();
    assert_eq!(
        posted.deliveries,
        vec![Delivery {
            box_id: BoxId::Channel(70),
            message_id: 1,
            pts: 1
        }]
    );
}

/// A repeated (sender, peer, random_id) returns the first outcome and stores nothing new;
/// the same random_id to another peer is another send.
pub fn sends_are_idempotent_on_random_id(factory: Factory<'_>) {
    let store = store(factory);
    let first = store.send(&private(1, 2, 42, "once")).unwrap();
    let again = store.send(&private(1, 2, 42, "once, again")).unwrap();
    assert!(again.repeated);
    assert_eq!(again.deliveries, first.deliveries);
    assert_eq!(store.state(BoxId::User(2)).unwrap().pts, 1);
    // A repeat is recognised before anything else about it is checked.
    let mut longer = private(1, 2, 42, "once");
    longer.body = vec![0; 2 * 1024 * 1024];
    assert!(store.send(&longer).unwrap().repeated);
    let other = store.send(&private(1, 3, 42, "elsewhere")).unwrap();
    assert!(!other.repeated);
    let body = store.get_messages(BoxId::User(2), &[1]).unwrap();
    assert_eq!(body[0].body, b"once", "the repeat changed nothing");
}

/// `get_history` pages a chat newest first by offset_id, add_offset, limit, max_id, min_id,
/// counting only that chat's messages.
pub fn history_follows_get_history_rules(factory: Factory<'_>) {
    let store = store(factory);
    for n in 0..30 {
        store.send(&private(1, 2, n, "to 2")).unwrap();
        store.send(&private(1, 3, 1000 + n, "to 3")).unwrap();
    }
    // In box 1, the chat with 2 has the odd ids 1, 3, ..., 59.
    let page = store
        .get_history(
            BoxId::User(1),
            Peer::User(2),
            &HistoryQuery {
                offset_id: 41,
                limit: 5,
                ..HistoryQuery::default()
            },
        )
        .unwrap();
    let ids: Vec<i32> = page.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![39, 37, 35, 33, 31]);
    assert_eq!(page.count, 30);
    assert_eq!(page.offset_id_offset, 10);
    let newer = store
        .get_history(
            BoxId::User(1),
            Peer::User(2),
            &HistoryQuery {
                offset_id: 41,
                add_offset: -3,
                limit: 3,
                ..HistoryQuery::default()
            },
        )
        .unwrap();
    let ids: Vec<i32> = newer.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![45, 43, 41]);
    // Dates never go back in a box, so offset_date pages cleanly even when the caller's
    // clock did.
    for (n, date) in [(0i64, 100), (1, 300), (2, 200), (3, 400), (4, 150)] {
        let mut message = private(5, 6, 5000 + n, "dated");
        message.date = date;
        store.send(&message).unwrap();
    }
    let dated = store
        .get_history(
            BoxId::User(6),
            Peer::User(5),
            &HistoryQuery {
                offset_date: 250,
                limit: 10,
                ..HistoryQuery::default()
            },
        )
        .unwrap();
    let dates: Vec<i32> = dated.messages.iter().map(|m| m.date).collect();
    assert_eq!(dates, vec![100], "only what was sent before the date");
    let empty = store
        .get_history(BoxId::User(4), Peer::User(2), &HistoryQuery::default())
        .unwrap();
    assert!(empty.messages.is_empty());
    assert_eq!(empty.count, 0);
}

/// The update log replays changes after a pts, in slices, and says TooLong past its size.
pub fn difference_replays_the_log_and_says_too_long(factory: Factory<'_>) {
    let store = factory(MessageStoreConfig {
        max_log_entries: 5,
        ..MessageStoreConfig::default()
    });
    for n in 0..8 {
        store.send(&private(1, 2, n, "m")).unwrap();
    }
    assert_eq!(
        store.get_difference(BoxId::User(2), 8, 10).unwrap(),
        Difference::Empty { pts: 8 }
    );
    match store.get_difference(BoxId::User(2), 4, 2).unwrap() {
        Difference::Changes {
            entries,
            messages,
            complete,
            pts,
        } => {
            assert_eq!(
                entries.iter().map(|e| e.pts).collect::<Vec<_>>(),
                vec![5, 6]
            );
            assert_eq!(
                messages.iter().map(|m| m.id).collect::<Vec<_>>(),
                vec![5, 6]
            );
            assert!(!complete);
            assert_eq!(pts, 8);
        }
        other => panic!("{other:?}"),
    }
    match store.get_difference(BoxId::User(2), 3, 10).unwrap() {
        Difference::Changes {
            entries, complete, ..
        } => {
            assert_eq!(entries.len(), 5);
            assert!(complete);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.get_difference(BoxId::User(2), 2, 10).unwrap(),
        Difference::TooLong { pts: 8 }
    );
}

/// Channel boxes keep their own number of log entries, apart from common boxes (Telegram
/// keeps far fewer for channels).
pub fn channel_logs_have_their_own_bound(factory: Factory<'_>) {
    let store = factory(MessageStoreConfig {
        max_log_entries: 6,
        max_channel_log_entries: 3,
        ..MessageStoreConfig::default()
    });
    for n in 0..6 {
        store
            .send(&SendRequest {
                peer: Peer::Channel(7),
                ..private(1, 2, n, "post")
            })
            .unwrap();
        store.send(&private(1, 2, 100 + n, "m")).unwrap();
    }
    let channel = BoxId::Channel(7);
    assert_eq!(store.state(channel).unwrap().pts, 6);
    assert_eq!(
        store.get_difference(channel, 2, 10).unwrap(),
        Difference::TooLong { pts: 6 }
    );
    match store.get_difference(channel, 3, 10).unwrap() {
        Difference::Changes { entries, .. } => assert_eq!(entries.len(), 3),
        other => panic!("{other:?}"),
    }
    // The common box, with as many changes, still has all six.
    match store.get_difference(BoxId::User(2), 0, 10).unwrap() {
        Difference::Changes { entries, .. } => assert_eq!(entries.len(), 6),
        other => panic!("{other:?}"),
    }
}

/// Editing changes every copy, keeps the id, sets edit_date and takes a pts in each box;
/// only the sender may edit.
pub fn edits_reach_every_copy(factory: Factory<'_>) {
    let store = store(factory);
    store.send(&private(1, 2, 1, "typo")).unwrap();
    assert_eq!(
        store.edit(2, BoxId::User(2), 1, b"no".to_vec(), None, 5),
        Err(MessageError::MessageAuthorRequired)
    );
    let affected = store
        .edit(1, BoxId::User(1), 1, b"fixed".to_vec(), None, 1_700_000_100)
        .unwrap();
    assert_eq!(
        affected,
        vec![
            Affected {
                box_id: BoxId::User(1),
                pts: 2,
                pts_count: 1
            },
            Affected {
                box_id: BoxId::User(2),
                pts: 2,
                pts_count: 1
            },
        ]
    );
    let theirs = store.get_messages(BoxId::User(2), &[1]).unwrap();
    assert_eq!(theirs[0].body, b"fixed");
    assert_eq!(theirs[0].edit_date, Some(1_700_000_100));
    match store.get_difference(BoxId::User(2), 1, 10).unwrap() {
        Difference::Changes { entries, .. } => {
            assert_eq!(entries[0].kind, UpdateKind::EditMessage { id: 1 });
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.edit(1, BoxId::User(1), 99, Vec::new(), None, 0),
        Err(MessageError::MessageIdInvalid)
    );
}

/// Deleting for oneself leaves the other copy; revoking removes both; pts_count is the
/// number removed in each box; unknown ids are skipped.
pub fn deletes_for_me_and_revoked(factory: Factory<'_>) {
    let store = store(factory);
    for n in 0..3 {
        store.send(&private(1, 2, n, "x")).unwrap();
    }
    let mine = store.delete(BoxId::User(1), &[1, 77], false).unwrap();
    assert_eq!(
        mine,
        vec![Affected {
            box_id: BoxId::User(1),
            pts: 4,
            pts_count: 1
        }]
    );
    assert_eq!(
        store.get_messages(BoxId::User(2), &[1]).unwrap().len(),
        1,
        "theirs stays"
    );
    let both = store.delete(BoxId::User(1), &[2, 3], true).unwrap();
    assert_eq!(
        both,
        vec![
            Affected {
                box_id: BoxId::User(1),
                pts: 6,
                pts_count: 2
            },
            Affected {
                box_id: BoxId::User(2),
                pts: 5,
                pts_count: 2
            },
        ]
    );
    assert!(
        store
            .get_messages(BoxId::User(2), &[2, 3])
            .unwrap()
            .is_empty()
    );
    assert!(
        store.delete(BoxId::User(1), &[2], true).unwrap().is_empty(),
        "already gone"
    );
}

/// Reading moves the inbox watermark (never back), lowers the unread count, and moves the
/// sender's outbox watermark in a private chat.
pub fn read_markers_and_unread_counts(factory: Factory<'_>) {
    let store = store(factory);
    store.send(&private(3, 1, 1, "other chat")).unwrap();
    for n in 0..4 {
        store.send(&private(2, 1, 10 + n, "hi")).unwrap();
    }
    let dialogs = store.dialogs(1, 0, 10).unwrap();
    assert_eq!(dialogs.len(), 2);
    assert_eq!(dialogs[0].peer, Peer::User(2), "newest top message first");
    assert_eq!(dialogs[0].unread_count, 4);
    let affected = store.read_history(1, Peer::User(2), 3).unwrap();
    assert_eq!(
        affected.len(),
        2,
        "the reader's inbox and the sender's outbox"
    );
    let dialogs = store.dialogs(1, 0, 10).unwrap();
    assert_eq!(dialogs[0].read_inbox_max_id, 3);
    assert_eq!(dialogs[0].unread_count, 2);
    let sender = store.dialogs(2, 0, 10).unwrap();
    assert_eq!(
        sender[0].read_outbox_max_id, 2,
        "two of the sender's messages were read"
    );
    assert!(
        store.read_history(1, Peer::User(2), 2).unwrap().is_empty(),
        "never back"
    );
    store.read_history(1, Peer::User(2), 0).unwrap();
    assert_eq!(
        store.dialogs(1, 0, 10).unwrap()[0].unread_count,
        0,
        "0 reads everything"
    );
}

/// Dialogs page by top message: each page starts below the last top message of the one
/// before, the pages together are the whole list once, and the count is the whole list's.
pub fn dialogs_come_in_pages_by_top_message(factory: Factory<'_>) {
    let store = store(factory);
    assert_eq!(store.dialog_count(1).unwrap(), 0);
    assert!(store.dialogs(1, 0, 10).unwrap().is_empty());
    // Five chats; the third one's top message is moved up by a later message.
    for (n, peer) in [2i64, 3, 4, 5, 6].into_iter().enumerate() {
        store.send(&private(peer, 1, n as i64, "hi")).unwrap();
    }
    store.send(&private(4, 1, 99, "again")).unwrap();
    let all = store.dialogs(1, 0, 10).unwrap();
    let peers: Vec<Peer> = all.iter().map(|dialog| dialog.peer).collect();
    assert_eq!(
        peers,
        [4, 6, 5, 3, 2].map(Peer::User),
        "newest top message first"
    );
    assert_eq!(store.dialog_count(1).unwrap(), 5);
    // One chat's summary on its own is the list's entry.
    for dialog in &all {
        assert_eq!(store.dialog(1, dialog.peer).unwrap(), Some(*dialog));
    }
    assert_eq!(store.dialog(1, Peer::User(77)).unwrap(), None);
    let mut paged = Vec::new();
    let mut offset = 0;
    // Bounded: a backend that ignored the offset would repeat its first page for ever.
    for _ in 0..10 {
        let page = store.dialogs(1, offset, 2).unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else {
            break;
        };
        offset = last.top_message;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    // An offset between two top messages starts below it; one below every top message gives
    // nothing.
    let below_third = store.dialogs(1, all[2].top_message + 1, 10).unwrap();
    assert_eq!(below_third.first().map(|d| d.peer), Some(all[2].peer));
    let lowest = all
        .iter()
        .map(|dialog| dialog.top_message)
        .min()
        .unwrap_or(0);
    assert!(store.dialogs(1, lowest, 10).unwrap().is_empty());
}

/// Impossible arguments give typed errors, never a panic.
pub fn bad_input_gets_typed_errors(factory: Factory<'_>) {
    let store = factory(MessageStoreConfig {
        max_body_len: 16,
        ..MessageStoreConfig::default()
    });
    assert_eq!(
        store.send(&private(0, 2, 1, "x")),
        Err(MessageError::PeerIdInvalid)
    );
    assert_eq!(
        store.send(&private(1, -2, 1, "x")),
        Err(MessageError::PeerIdInvalid)
    );
    assert_eq!(
        store.send(&private(1, 2, 1, "far too long for this store")),
        Err(MessageError::MessageTooLong)
    );
    let mut group = private(1, 0, 2, "x");
    group.peer = Peer::Chat(5);
    group.members = vec![0];
    assert_eq!(store.send(&group), Err(MessageError::PeerIdInvalid));
    group.members = Vec::new();
    assert_eq!(
        store.send(&group),
        Err(MessageError::PeerIdInvalid),
        "a group with no members"
    );
    assert_eq!(store.dialogs(1, 0, 0), Err(MessageError::LimitInvalid));
    assert_eq!(
        store.get_difference(BoxId::User(1), 0, 0),
        Err(MessageError::LimitInvalid)
    );
    assert_eq!(
        store.get_difference(BoxId::User(1), 0, usize::MAX),
        Err(MessageError::LimitInvalid)
    );
    assert_eq!(
        store.get_history(
            BoxId::User(1),
            Peer::User(2),
            &HistoryQuery {
                limit: -5,
                ..HistoryQuery::default()
            }
        ),
        Err(MessageError::LimitInvalid)
    );
    assert_eq!(
        store.read_history(1, Peer::User(2), -1),
        Err(MessageError::MessageIdInvalid)
    );
    assert!(store.get_messages(BoxId::User(1), &vec![1; 5000]).is_err());
}

/// Pinning reaches every copy (each box takes one pts and logs its own ids), or with
/// `one_side` only the pinner's; the pinned list is newest first and pages by offset; a
/// repeat changes nothing; a deleted message leaves the list; ids of another chat are
/// refused.
pub fn pins_reach_both_sides_or_one(factory: Factory<'_>) {
    let store = store(factory);
    // User 2's ids run one ahead of user 1's.
    store.send(&private(2, 3, 1, "other")).unwrap();
    for n in 0..3 {
        store.send(&private(1, 2, 10 + n, "m")).unwrap();
    }
    // Box 1: ids 1..=3, pts 3; box 2: ids 2..=4, pts 4.
    let changes = store
        .pin(BoxId::User(1), Peer::User(2), &[2], true, false)
        .unwrap();
    let pin = |peer, ids: Vec<i32>, pinned| UpdateKind::PinMessages { peer, ids, pinned };
    assert_eq!(
        changes,
        vec![
            (
                BoxId::User(1),
                UpdateEntry {
                    pts: 4,
                    pts_count: 1,
                    kind: pin(Peer::User(2), vec![2], true)
                }
            ),
            (
                BoxId::User(2),
                UpdateEntry {
                    pts: 5,
                    pts_count: 1,
                    kind: pin(Peer::User(1), vec![3], true)
                }
            ),
        ]
    );
    assert!(store.get_messages(BoxId::User(2), &[3]).unwrap()[0].pinned);
    assert!(!store.get_messages(BoxId::User(2), &[4]).unwrap()[0].pinned);
    match store.get_difference(BoxId::User(2), 4, 10).unwrap() {
        Difference::Changes { entries, .. } => {
            assert_eq!(entries[0].kind, pin(Peer::User(1), vec![3], true));
        }
        other => panic!("{other:?}"),
    }
    // Again: nothing changes, no pts.
    assert_eq!(
        store
            .pin(BoxId::User(1), Peer::User(2), &[2], true, false)
            .unwrap(),
        Vec::new()
    );
    // One side only: the other box keeps its state.
    let changes = store
        .pin(BoxId::User(2), Peer::User(1), &[4, 3, 4], true, true)
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].1.kind, pin(Peer::User(1), vec![4], true));
    assert!(!store.get_messages(BoxId::User(1), &[3]).unwrap()[0].pinned);
    assert_eq!(
        store.pinned(BoxId::User(2), Peer::User(1), 0, 10).unwrap(),
        vec![4, 3]
    );
    assert_eq!(
        store.pinned(BoxId::User(2), Peer::User(1), 4, 10).unwrap(),
        vec![3]
    );
    assert_eq!(
        store.pinned(BoxId::User(2), Peer::User(1), 0, 1).unwrap(),
        vec![4]
    );
    assert_eq!(
        store.pinned(BoxId::User(2), Peer::User(3), 0, 10).unwrap(),
        Vec::<i32>::new()
    );
    // Unpinning both sides.
    let changes = store
        .pin(BoxId::User(2), Peer::User(1), &[3], false, false)
        .unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(
        store.pinned(BoxId::User(1), Peer::User(2), 0, 10).unwrap(),
        Vec::<i32>::new()
    );
    // A deleted message leaves the pinned list.
    store.delete(BoxId::User(2), &[4], false).unwrap();
    assert_eq!(
        store.pinned(BoxId::User(2), Peer::User(1), 0, 10).unwrap(),
        Vec::<i32>::new()
    );
    // An id of another chat (2's message 1 is with user 3), or none at all.
    assert_eq!(
        store.pin(BoxId::User(2), Peer::User(1), &[1], true, false),
        Err(MessageError::MessageIdInvalid)
    );
    assert_eq!(
        store.pin(BoxId::User(9), Peer::User(1), &[1], true, false),
        Err(MessageError::MessageIdInvalid)
    );
    assert_eq!(
        store.pin(BoxId::User(2), Peer::User(1), &vec![1; 5000], true, false),
        Err(MessageError::LimitInvalid)
    );
    assert_eq!(
        store.pinned(BoxId::User(2), Peer::User(1), 0, 0),
        Err(MessageError::LimitInvalid)
    );
}

/// A reaction is one per user: set, replaced, removed, in every copy; reactions take no
/// pts; the same one again or removing none is `MESSAGE_NOT_MODIFIED`; a full message takes
/// no new reactor; empty and oversized reactions are refused.
pub fn reactions_are_one_per_user_in_every_copy(factory: Factory<'_>) {
    let config = MessageStoreConfig {
        max_reactions: 2,
        ..MessageStoreConfig::default()
    };
    let store = factory(config);
    store.send(&private(1, 2, 1, "hello")).unwrap();
    let before = store.state(BoxId::User(2)).unwrap();
    let copies = store
        .react(2, BoxId::User(2), 1, Some("👍".as_bytes().to_vec()), 50)
        .unwrap();
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0].box_id, BoxId::User(2), "the reactor's copy first");
    for copy in &copies {
        assert_eq!(copy.reactions.len(), 1);
        assert_eq!(copy.reactions[0].user_id, 2);
        assert_eq!(copy.reactions[0].date, 50);
    }
    assert_eq!(store.state(BoxId::User(2)).unwrap(), before, "no pts taken");
    assert_eq!(
        store.react(2, BoxId::User(2), 1, Some("👍".as_bytes().to_vec()), 51),
        Err(MessageError::MessageNotModified)
    );
    store
        .react(1, BoxId::User(1), 1, Some("🔥".as_bytes().to_vec()), 52)
        .unwrap();
    assert_eq!(
        store.react(3, BoxId::User(1), 1, Some(b"x".to_vec()), 53),
        Err(MessageError::ReactionsTooMany)
    );
    // Replaced in place, then removed.
    store
        .react(2, BoxId::User(2), 1, Some("❤".as_bytes().to_vec()), 54)
        .unwrap();
    let mine = &store.get_messages(BoxId::User(1), &[1]).unwrap()[0];
    let seen: Vec<(i64, Vec<u8>)> = mine
        .reactions
        .iter()
        .map(|r| (r.user_id, r.reaction.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![(2, "❤".as_bytes().to_vec()), (1, "🔥".as_bytes().to_vec())]
    );
    store.react(2, BoxId::User(2), 1, None, 55).unwrap();
    assert_eq!(
        store.react(2, BoxId::User(2), 1, None, 56),
        Err(MessageError::MessageNotModified)
    );
    let theirs = &store.get_messages(BoxId::User(2), &[1]).unwrap()[0];
    assert_eq!(theirs.reactions.len(), 1);
    assert_eq!(theirs.reactions[0].user_id, 1);
    // Bad input.
    assert_eq!(
        store.react(2, BoxId::User(2), 1, Some(Vec::new()), 57),
        Err(MessageError::ReactionInvalid)
    );
    assert_eq!(
        store.react(2, BoxId::User(2), 1, Some(vec![b'x'; 65]), 57),
        Err(MessageError::ReactionInvalid)
    );
    assert_eq!(
        store.react(2, BoxId::User(2), 99, Some(b"x".to_vec()), 57),
        Err(MessageError::MessageIdInvalid)
    );
    // A message with reactions keeps them across an edit.
    store
        .edit(1, BoxId::User(1), 1, b"edited".to_vec(), None, 60)
        .unwrap();
    assert_eq!(
        store.get_messages(BoxId::User(2), &[1]).unwrap()[0]
            .reactions
            .len(),
        1
    );
}

/// A private message sent `sender_only` lands in the sender's box alone (a chat there with
/// the recipient), the recipient's box unchanged; a repeat is still the same send.
pub fn a_sender_only_message_stays_in_the_sender_s_box(factory: Factory<'_>) {
    let store = store(factory);
    store.send(&private(2, 1, 1, "before")).unwrap();
    let before = store.state(BoxId::User(2)).unwrap();
    let request = SendRequest {
        sender_only: true,
        ..private(1, 2, 5, "unseen")
    };
    let outcome = store.send(&request).unwrap();
    assert_eq!(
        outcome.deliveries,
        vec![Delivery {
            box_id: BoxId::User(1),
            message_id: 2,
            pts: 2
        }]
    );
    assert_eq!(store.state(BoxId::User(2)).unwrap(), before);
    let mine = store.get_messages(BoxId::User(1), &[2]).unwrap();
    assert_eq!(mine[0].peer, Peer::User(2));
    assert!(mine[0].out);
    let dialogs = store.dialogs(1, 0, 10).unwrap();
    assert_eq!(dialogs.len(), 1);
    assert_eq!(dialogs[0].top_message, 2);
    assert!(store.send(&request).unwrap().repeated);
    assert_eq!(store.state(BoxId::User(2)).unwrap(), before);
}

/// One step of the model-based test.
#[derive(Debug, Clone)]
pub enum Op {
    /// A private message (random ids from a small range, so that repeats happen).
    Send {
        /// Sender, 1..=4.
        from: i64,
        /// Recipient, 1..=4 (the sender itself is Saved Messages).
        to: i64,
        /// The random id.
        random_id: i64,
    },
    /// Edit the `pick`-th message (modulo) of `user`'s box, as `user`.
    Edit {
        /// Whose box.
        user: i64,
        /// Which message.
        pick: usize,
    },
    /// Delete the `pick`-th message of `user`'s box.
    Delete {
        /// Whose box.
        user: i64,
        /// Which message.
        pick: usize,
        /// For both sides.
        revoke: bool,
    },
    /// `user` pins or unpins the `pick`-th message of its box.
    Pin {
        /// Whose box.
        user: i64,
        /// Which message.
        pick: usize,
        /// Pin or unpin.
        pinned: bool,
        /// In the user's box only.
        one_side: bool,
    },
    /// `user` reacts to the `pick`-th message of its box with reaction `reaction` (one of a
    /// few), or with `None` takes its reaction back.
    React {
        /// Whose box.
        user: i64,
        /// Which message.
        pick: usize,
        /// Which reaction.
        reaction: Option<u8>,
    },
    /// `user` reads the chat with `peer` up to `max_id`.
    Read {
        /// The reader.
        user: i64,
        /// The chat.
        peer: i64,
        /// Up to.
        max_id: i32,
    },
}

/// A deliberately simple reference: every copy in one list, everything found by scanning.
#[derive(Debug, Default)]
struct Model {
    copies: Vec<ModelCopy>,
    next_id: std::collections::BTreeMap<i64, i32>,
    pts: std::collections::BTreeMap<i64, i32>,
    sends: std::collections::BTreeMap<(i64, i64, i64), Vec<(i64, i32)>>,
    read_in: std::collections::BTreeMap<(i64, i64), i32>,
    read_out: std::collections::BTreeMap<(i64, i64), i32>,
    /// (box, pts, kind) in order.
    log: Vec<(i64, i32, UpdateKind)>,
}

#[derive(Debug, Clone)]
struct ModelCopy {
    user: i64,
    id: i32,
    peer: i64,
    from: i64,
    body: Vec<u8>,
    send: (i64, i64, i64),
    pinned: bool,
    reactions: Vec<(i64, Vec<u8>)>,
}

impl Model {
    fn bump(&mut self, user: i64, count: i32, kind: UpdateKind) -> i32 {
        let pts = self.pts.entry(user).or_default();
        *pts += count;
        let pts = *pts;
        self.log.push((user, pts, kind));
        pts
    }

    fn mailbox(&self, user: i64) -> Vec<&ModelCopy> {
        let mut copies: Vec<&ModelCopy> = self.copies.iter().filter(|c| c.user == user).collect();
        copies.sort_by_key(|c| c.id);
        copies
    }
}

fn text(n: usize) -> Vec<u8> {
    format!("message {n}").into_bytes()
}

/// Applies `ops` to a fresh store and to the reference model, and checks after every step
/// that results, messages, histories, differences and dialogs agree.
pub fn model_agrees(factory: Factory<'_>, ops: &[Op]) {
    let store = store(factory);
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Send {
                from,
                to,
                random_id,
            } => {
                let outcome = store.send(&private(from, to, random_id, "m")).unwrap();
                let key = (from, to, random_id);
                let expected: Vec<(i64, i32)> = match model.sends.get(&key) {
                    Some(first) => {
                        assert!(outcome.repeated, "step {step}: a repeat");
                        first.clone()
                    }
                    None => {
                        let users = if from == to {
                            vec![from]
                        } else {
                            vec![from, to]
                        };
                        let mut landed = Vec::new();
                        for user in users {
                            let id = model.next_id.entry(user).or_default();
                            *id += 1;
                            let id = *id;
                            let peer = if user == from { to } else { from };
                            model.copies.push(ModelCopy {
                                user,
                                id,
                                peer,
                                from,
                                body: b"m".to_vec(),
                                send: key,
                                pinned: false,
                                reactions: Vec::new(),
                            });
                            model.bump(user, 1, UpdateKind::NewMessage { id });
                            landed.push((user, id));
                        }
                        model.sends.insert(key, landed.clone());
                        landed
                    }
                };
                let got: Vec<(i64, i32)> = outcome
                    .deliveries
                    .iter()
                    .map(|d| match d.box_id {
                        BoxId::User(user) => (user, d.message_id),
                        BoxId::Channel(_) => panic!("private sends reach user boxes"),
                    })
                    .collect();
                assert_eq!(got, expected, "step {step}: deliveries");
            }
            Op::Edit { user, pick } => {
                let mailbox = model.mailbox(user);
                let Some(target) = mailbox
                    .get(pick % mailbox.len().max(1))
                    .map(|c| (*c).clone())
                else {
                    continue;
                };
                let result = store.edit(user, BoxId::User(user), target.id, text(step), None, 5);
                if target.from != user {
                    assert_eq!(
                        result,
                        Err(MessageError::MessageAuthorRequired),
                        "step {step}"
                    );
                    continue;
                }
                let mut affected = Vec::new();
                let mut order: Vec<(i64, i32)> = vec![(user, target.id)];
                order.extend(
                    model
                        .copies
                        .iter()
                        .filter(|c| c.send == target.send && c.user != user)
                        .map(|c| (c.user, c.id)),
                );
                for (owner, id) in order {
                    if let Some(copy) = model
                        .copies
                        .iter_mut()
                        .find(|c| c.user == owner && c.id == id)
                    {
                        copy.body = text(step);
                        let pts = model.bump(owner, 1, UpdateKind::EditMessage { id });
                        affected.push(Affected {
                            box_id: BoxId::User(owner),
                            pts,
                            pts_count: 1,
                        });
                    }
                }
                assert_eq!(result.unwrap(), affected, "step {step}: edit");
            }
            Op::Delete { user, pick, revoke } => {
                let mailbox = model.mailbox(user);
                let Some(target) = mailbox
                    .get(pick % mailbox.len().max(1))
                    .map(|c| (*c).clone())
                else {
                    continue;
                };
                let result = store
                    .delete(BoxId::User(user), &[target.id], revoke)
                    .unwrap();
                let mut removed: Vec<(i64, i32)> = vec![(user, target.id)];
                if revoke {
                    removed.extend(
                        model
                            .copies
                            .iter()
                            .filter(|c| c.send == target.send && c.user != user)
                            .map(|c| (c.user, c.id)),
                    );
                }
                removed.sort_by_key(|(owner, _)| *owner);
                let mut affected = Vec::new();
                for (owner, id) in removed {
                    model.copies.retain(|c| !(c.user == owner && c.id == id));
                    let pts = model.bump(owner, 1, UpdateKind::DeleteMessages { ids: vec![id] });
                    affected.push(Affected {
                        box_id: BoxId::User(owner),
                        pts,
                        pts_count: 1,
                    });
                }
                assert_eq!(result, affected, "step {step}: delete");
            }
            Op::Pin {
                user,
                pick,
                pinned,
                one_side,
            } => {
                let mailbox = model.mailbox(user);
                let Some(target) = mailbox
                    .get(pick % mailbox.len().max(1))
                    .map(|c| (*c).clone())
                else {
                    continue;
                };
                let result = store
                    .pin(
                        BoxId::User(user),
                        Peer::User(target.peer),
                        &[target.id],
                        pinned,
                        one_side,
                    )
                    .unwrap();
                let mut order: Vec<(i64, i32)> = vec![(user, target.id)];
                if !one_side {
                    order.extend(
                        model
                            .copies
                            .iter()
                            .filter(|c| c.send == target.send && c.user != user)
                            .map(|c| (c.user, c.id)),
                    );
                }
                let mut changes = Vec::new();
                for (owner, id) in order {
                    let Some(copy) = model
                        .copies
                        .iter_mut()
                        .find(|c| c.user == owner && c.id == id && c.pinned != pinned)
                    else {
                        continue;
                    };
                    copy.pinned = pinned;
                    let kind = UpdateKind::PinMessages {
                        peer: Peer::User(copy.peer),
                        ids: vec![id],
                        pinned,
                    };
                    let pts = model.bump(owner, 1, kind.clone());
                    changes.push((
                        BoxId::User(owner),
                        UpdateEntry {
                            pts,
                            pts_count: 1,
                            kind,
                        },
                    ));
                }
                assert_eq!(result, changes, "step {step}: pin");
            }
            Op::React {
                user,
                pick,
                reaction,
            } => {
                let mailbox = model.mailbox(user);
                let Some(target) = mailbox
                    .get(pick % mailbox.len().max(1))
                    .map(|c| (*c).clone())
                else {
                    continue;
                };
                let bytes = reaction.map(|r| vec![b'a' + r]);
                let result = store.react(user, BoxId::User(user), target.id, bytes.clone(), 7);
                let existing = target.reactions.iter().position(|(u, _)| *u == user);
                let mut reactions = target.reactions.clone();
                match (existing, &bytes) {
                    (None, None) => {
                        assert_eq!(result, Err(MessageError::MessageNotModified), "step {step}");
                        continue;
                    }
                    (Some(at), Some(b)) if reactions[at].1 == *b => {
                        assert_eq!(result, Err(MessageError::MessageNotModified), "step {step}");
                        continue;
                    }
                    (Some(at), Some(b)) => reactions[at].1.clone_from(b),
                    (Some(at), None) => {
                        reactions.remove(at);
                    }
                    (None, Some(b)) => reactions.push((user, b.clone())),
                }
                let got = result.unwrap();
                assert_eq!(
                    got.first().map(|m| m.id),
                    Some(target.id),
                    "step {step}: react"
                );
                for copy in model.copies.iter_mut().filter(|c| c.send == target.send) {
                    copy.reactions.clone_from(&reactions);
                }
            }
            Op::Read { user, peer, max_id } => {
                let result = store.read_history(user, Peer::User(peer), max_id).unwrap();
                let top = model
                    .mailbox(user)
                    .iter()
                    .filter(|c| c.peer == peer)
                    .map(|c| c.id)
                    .max()
                    .unwrap_or(0);
                let wanted = if max_id == 0 { top } else { max_id.min(top) };
                let mark = model.read_in.entry((user, peer)).or_default();
                let mut affected = Vec::new();
                if wanted > *mark {
                    *mark = wanted;
                    let pts = model.bump(
                        user,
                        1,
                        UpdateKind::ReadInbox {
                            peer: Peer::User(peer),
                            max_id: wanted,
                        },
                    );
                    affected.push(Affected {
                        box_id: BoxId::User(user),
                        pts,
                        pts_count: 1,
                    });
                    if peer != user {
                        let sends: Vec<(i64, i64, i64)> = model
                            .copies
                            .iter()
                            .filter(|c| {
                                c.user == user && c.peer == peer && c.from != user && c.id <= wanted
                            })
                            .map(|c| c.send)
                            .collect();
                        // The sender's copies, deleted ones included: the watermark moves
                        // past messages the sender deleted for itself.
                        let outbox = sends
                            .iter()
                            .filter_map(|send| model.sends.get(send))
                            .flat_map(|landed| landed.iter())
                            .filter(|(owner, _)| *owner == peer)
                            .map(|(_, id)| *id)
                            .max();
                        if let Some(outbox) = outbox {
                            let mark = model.read_out.entry((peer, user)).or_default();
                            if outbox > *mark {
                                *mark = outbox;
                                let pts = model.bump(
                                    peer,
                                    1,
                                    UpdateKind::ReadOutbox {
                                        peer: Peer::User(user),
                                        max_id: outbox,
                                    },
                                );
                                affected.push(Affected {
                                    box_id: BoxId::User(peer),
                                    pts,
                                    pts_count: 1,
                                });
                            }
                        }
                    }
                }
                assert_eq!(result, affected, "step {step}: read");
            }
        }
        check_views(store.as_ref(), &model, step);
    }
}

/// Compares what a client can read: every box's messages, histories, differences, dialogs.
fn check_views(store: &dyn MessageStore, model: &Model, step: usize) {
    for user in 1..=4i64 {
        let box_id = BoxId::User(user);
        let expected_pts = model.pts.get(&user).copied().unwrap_or(0);
        assert_eq!(
            store.state(box_id).unwrap().pts,
            expected_pts,
            "step {step}: pts of {user}"
        );
        for peer in 1..=4i64 {
            let page = store
                .get_history(
                    box_id,
                    Peer::User(peer),
                    &HistoryQuery {
                        limit: 1000,
                        ..HistoryQuery::default()
                    },
                )
                .unwrap();
            type Seen = (i32, Vec<u8>, bool, Vec<(i64, Vec<u8>)>);
            let got: Vec<Seen> = page
                .messages
                .iter()
                .map(|m| {
                    let reactions = m
                        .reactions
                        .iter()
                        .map(|r| (r.user_id, r.reaction.clone()))
                        .collect();
                    (m.id, m.body.clone(), m.pinned, reactions)
                })
                .collect();
            let mut expected: Vec<Seen> = model
                .copies
                .iter()
                .filter(|c| c.user == user && c.peer == peer)
                .map(|c| (c.id, c.body.clone(), c.pinned, c.reactions.clone()))
                .collect();
            expected.sort_by_key(|seen| std::cmp::Reverse(seen.0));
            assert_eq!(got, expected, "step {step}: history of {user} with {peer}");
            let pinned: Vec<i32> = expected
                .iter()
                .filter(|seen| seen.2)
                .map(|seen| seen.0)
                .collect();
            assert_eq!(
                store.pinned(box_id, Peer::User(peer), 0, 1000).unwrap(),
                pinned,
                "step {step}: pinned of {user} with {peer}"
            );
        }
        // The whole log from zero (the default log is far larger than these runs).
        let entries: Vec<(i32, UpdateKind)> = match store.get_difference(box_id, 0, 1000).unwrap() {
            Difference::Empty { .. } => Vec::new(),
            Difference::Changes { entries, .. } => {
                entries.into_iter().map(|e| (e.pts, e.kind)).collect()
            }
            Difference::TooLong { .. } => panic!("step {step}: the log was truncated"),
        };
        let expected: Vec<(i32, UpdateKind)> = model
            .log
            .iter()
            .filter(|(owner, _, _)| *owner == user)
            .map(|(_, pts, kind)| (*pts, kind.clone()))
            .collect();
        assert_eq!(entries, expected, "step {step}: log of {user}");
        let dialogs = store.dialogs(user, 0, 100).unwrap();
        assert_eq!(
            store.dialog_count(user).unwrap(),
            dialogs.len(),
            "step {step}: dialog count of {user}"
        );
        for dialog in dialogs {
            let Peer::User(peer) = dialog.peer else {
                panic!("private chats only")
            };
            let unread = model
                .copies
                .iter()
                .filter(|c| c.user == user && c.peer == peer && c.from != user)
                .filter(|c| c.id > model.read_in.get(&(user, peer)).copied().unwrap_or(0))
                .count();
            let unread = if peer == user { 0 } else { unread };
            assert_eq!(
                usize::try_from(dialog.unread_count).unwrap(),
                unread,
                "step {step}: unread of {user} with {peer}"
            );
        }
    }
}

/// Random operation sequences for [`model_agrees`].
pub fn ops() -> impl proptest::strategy::Strategy<Value = Vec<Op>> {
    use proptest::prelude::*;
    let op = prop_oneof![
        4 => (1i64..=4, 1i64..=4, 0i64..12).prop_map(|(from, to, random_id)| Op::Send { from, to, random_id }),
        1 => (1i64..=4, any::<usize>()).prop_map(|(user, pick)| Op::Edit { user, pick }),
        1 => (1i64..=4, any::<usize>(), any::<bool>()).prop_map(|(user, pick, revoke)| Op::Delete { user, pick, revoke }),
        1 => (1i64..=4, 1i64..=4, 0i32..20).prop_map(|(user, peer, max_id)| Op::Read { user, peer, max_id }),
        1 => (1i64..=4, any::<usize>(), any::<bool>(), any::<bool>()).prop_map(|(user, pick, pinned, one_side)| Op::Pin { user, pick, pinned, one_side }),
        1 => (1i64..=4, any::<usize>(), proptest::option::of(0u8..3)).prop_map(|(user, pick, reaction)| Op::React { user, pick, reaction }),
    ];
    proptest::collection::vec(op, 0..60)
}
