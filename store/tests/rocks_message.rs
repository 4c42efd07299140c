//! The RocksDB message store: the shared conformance suite and model test, plus what only a
//! persistent, sharded backend has (reopening, the manifest, failing disks, interrupted
//! deliveries, checkpoints, statistics, concurrent writers).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use columba_store::message::conformance::{self, private};
use columba_store::message::{
    Affected, BoxState, Delivery, Dialog, Difference, GroupCounts, HistoryPage, HistoryQuery,
    Membership, Participant, ParticipantChange, ParticipantFilter, ParticipantPage, Role,
    SendOutcome, StoredMessage, UpdateEntry,
};
use columba_store::rocks::Fault;
use columba_store::{
    BoxId, Durability, MessageError, MessageStore, MessageStoreConfig, OpenError, Peer,
    RocksMessageStore, RocksOptions, SendRequest,
};

/// A store in a temporary directory that goes with it.
struct TempStore {
    store: RocksMessageStore,
    _dir: tempfile::TempDir,
}

impl MessageStore for TempStore {
    fn sent(
        &self,
        sender: i64,
        peer: Peer,
        random_id: i64,
    ) -> Result<Option<Vec<Delivery>>, MessageError> {
        self.store.sent(sender, peer, random_id)
    }
    fn send(&self, request: &SendRequest) -> Result<SendOutcome, MessageError> {
        self.store.send(request)
    }
    fn get_messages(&self, box_id: BoxId, ids: &[i32]) -> Result<Vec<StoredMessage>, MessageError> {
        self.store.get_messages(box_id, ids)
    }
    fn get_history(
        &self,
        box_id: BoxId,
        peer: Peer,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, MessageError> {
        self.store.get_history(box_id, peer, query)
    }
    fn get_difference(
        &self,
        box_id: BoxId,
        pts: i32,
        limit: usize,
    ) -> Result<Difference, MessageError> {
        self.store.get_difference(box_id, pts, limit)
    }
    fn state(&self, box_id: BoxId) -> Result<BoxState, MessageError> {
        self.store.state(box_id)
    }
    fn dialogs(
        &self,
        user_id: i64,
        offset_id: i32,
        limit: usize,
    ) -> Result<Vec<Dialog>, MessageError> {
        self.store.dialogs(user_id, offset_id, limit)
    }
    fn dialog(&self, user_id: i64, peer: Peer) -> Result<Option<Dialog>, MessageError> {
        self.store.dialog(user_id, peer)
    }
    fn dialog_count(&self, user_id: i64) -> Result<usize, MessageError> {
        self.store.dialog_count(user_id)
    }
    fn edit(
        &self,
        editor: i64,
        box_id: BoxId,
        id: i32,
        body: Vec<u8>,
        media: Option<Vec<u8>>,
        edit_date: i32,
    ) -> Result<Vec<Affected>, MessageError> {
        self.store.edit(editor, box_id, id, body, media, edit_date)
    }
    fn delete(
        &self,
        box_id: BoxId,
        ids: &[i32],
        revoke: bool,
    ) -> Result<Vec<Affected>, MessageError> {
        self.store.delete(box_id, ids, revoke)
    }
    fn read_history(
        &self,
        user_id: i64,
        peer: Peer,
        max_id: i32,
    ) -> Result<Vec<Affected>, MessageError> {
        self.store.read_history(user_id, peer, max_id)
    }
    fn pin(
        &self,
        box_id: BoxId,
        peer: Peer,
        ids: &[i32],
        pinned: bool,
        one_side: bool,
    ) -> Result<Vec<(BoxId, UpdateEntry)>, MessageError> {
        self.store.pin(box_id, peer, ids, pinned, one_side)
    }
    fn pinned(
        &self,
        box_id: BoxId,
        peer: Peer,
        offset_id: i32,
        limit: usize,
    ) -> Result<Vec<i32>, MessageError> {
        self.store.pinned(box_id, peer, offset_id, limit)
    }
    fn react(
        &self,
        user_id: i64,
        box_id: BoxId,
        id: i32,
        reaction: Option<Vec<u8>>,
        date: i32,
    ) -> Result<Vec<StoredMessage>, MessageError> {
        self.store.react(user_id, box_id, id, reaction, date)
    }
    fn create_group(
        &self,
        channel: bool,
        info: Vec<u8>,
        creator: i64,
        date: i32,
    ) -> Result<Peer, MessageError> {
        self.store.create_group(channel, info, creator, date)
    }
    fn set_group_info(&self, group: Peer, info: Vec<u8>) -> Result<(), MessageError> {
        self.store.set_group_info(group, info)
    }
    fn group_info(&self, group: Peer) -> Result<Option<Vec<u8>>, MessageError> {
        self.store.group_info(group)
    }
    fn set_participant(
        &self,
        group: Peer,
        user_id: i64,
        participant: Option<Participant>,
    ) -> Result<ParticipantChange, MessageError> {
        self.store.set_participant(group, user_id, participant)
    }
    fn participant(&self, group: Peer, user_id: i64) -> Result<Option<Participant>, MessageError> {
        self.store.participant(group, user_id)
    }
    fn participants(
        &self,
        group: Peer,
        filter: ParticipantFilter,
        offset: usize,
        limit: usize,
    ) -> Result<ParticipantPage, MessageError> {
        self.store.participants(group, filter, offset, limit)
    }
    fn group_counts(&self, group: Peer) -> Result<GroupCounts, MessageError> {
        self.store.group_counts(group)
    }
    fn memberships(&self, user_id: i64) -> Result<Vec<Membership>, MessageError> {
        self.store.memberships(user_id)
    }
    fn channel_dialogs(&self, user_id: i64) -> Result<Vec<Dialog>, MessageError> {
        self.store.channel_dialogs(user_id)
    }
    fn views(&self, channel: i64, ids: &[i32], increment: bool) -> Result<Vec<u32>, MessageError> {
        self.store.views(channel, ids, increment)
    }
}

/// Fast options for tests that are not about durability: three instances (so that private
/// chats cross instances), the WAL synced by a timer.
fn options(messages: MessageStoreConfig) -> RocksOptions {
    let mut options = RocksOptions::default();
    options.instances = 3;
    options.durability = Durability::Periodic(Duration::from_millis(200));
    options.messages = messages;
    options.block_cache_bytes = 8 << 20;
    options.write_buffer_bytes = 1 << 20;
    options
}

fn temp_store(config: MessageStoreConfig) -> Box<dyn MessageStore> {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksMessageStore::open(dir.path(), options(config)).unwrap();
    Box::new(TempStore { store, _dir: dir })
}

#[test]
fn rocksdb_store_passes_the_conformance_suite() {
    conformance::run_all(&temp_store);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Random sends (with repeated random ids), edits, deletes and reads agree with the
    /// reference model after every step.
    #[test]
    fn rocksdb_store_agrees_with_the_model(ops in conformance::ops()) {
        conformance::model_agrees(&temp_store, &ops);
    }

    /// Random joins, role changes, bans, leaves, posts and reads agree with the model
    /// (groups and users spread over three instances).
    #[test]
    fn rocksdb_memberships_agree_with_the_model(ops in conformance::member_ops()) {
        conformance::members_agree_with_the_model(&temp_store, &ops);
    }
}

/// Two users whose common boxes live on different instances.
fn users_on_two_instances(store: &RocksMessageStore) -> (i64, i64) {
    let first = 1;
    let other = (2..1000)
        .find(|user| store.instance_of(BoxId::User(*user)) != store.instance_of(BoxId::User(first)))
        .unwrap();
    (first, other)
}

/// Everything a client can see of some users' boxes.
fn views(store: &dyn MessageStore, users: &[i64]) -> Vec<String> {
    let mut out = Vec::new();
    for user in users {
        let box_id = BoxId::User(*user);
        out.push(format!("{:?}", store.state(box_id).unwrap()));
        out.push(format!("{:?}", store.dialogs(*user, 0, 100).unwrap()));
        out.push(format!(
            "{:?}",
            store.get_difference(box_id, 0, 1000).unwrap()
        ));
        for other in users {
            let page = store
                .get_history(
                    box_id,
                    Peer::User(*other),
                    &HistoryQuery {
                        limit: 100,
                        ..HistoryQuery::default()
                    },
                )
                .unwrap();
            out.push(format!("{page:?}"));
        }
    }
    out
}

#[test]
fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let users = [1, 2, 3, 4, 5];
    let before = {
        let store =
            RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap();
        let mut random_id = 0;
        for from in users {
            for to in users {
                random_id += 1;
                store.send(&private(from, to, random_id, "hi")).unwrap();
            }
        }
        store
            .edit(
                1,
                BoxId::User(1),
                2,
                b"edited".to_vec(),
                None,
                1_800_000_000,
            )
            .unwrap();
        store.delete(BoxId::User(2), &[1, 3], true).unwrap();
        store.read_history(3, Peer::User(1), 0).unwrap();
        views(&store, &users)
    };
    let store =
        RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap();
    assert_eq!(views(&store, &users), before);
    assert_eq!(store.redelivered_on_open(), 0, "nothing was interrupted");
    // Ids go on from where they were.
    let max_before = store.state(BoxId::User(1)).unwrap().max_id;
    assert_eq!(max_before, 9, "five sent and four received");
    let next = store.send(&private(1, 2, 999, "after")).unwrap();
    let ids: BTreeMap<_, _> = next
        .deliveries
        .iter()
        .map(|d| (d.box_id, d.message_id))
        .collect();
    assert_eq!(ids[&BoxId::User(1)], max_before + 1);
}

#[test]
fn another_instance_count_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap());
    let mut two = options(MessageStoreConfig::default());
    two.instances = 2;
    match RocksMessageStore::open(dir.path(), two) {
        Err(OpenError::Manifest(_)) => {}
        other => panic!("expected a manifest error, got {other:?}"),
    }
    let mut none = options(MessageStoreConfig::default());
    none.instances = 0;
    assert!(matches!(
        RocksMessageStore::open(tempfile::tempdir().unwrap().path(), none),
        Err(OpenError::Options(_))
    ));
    // A damaged manifest is refused too.
    std::fs::write(dir.path().join("MANIFEST"), "columba-store\nformat 99\n").unwrap();
    assert!(RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).is_err());
}

#[test]
fn a_failed_delivery_poisons_its_instance_and_completes_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = {
        let store =
            RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap();
        let (alice, bob) = users_on_two_instances(&store);
        store.send(&private(alice, bob, 1, "first")).unwrap();
        // The next write on bob's instance fails: alice's copy (and the pending record) are
        // committed, bob's is not.
        store
            .inject_fault(store.instance_of(BoxId::User(bob)), 0, Fault::FailWrite)
            .unwrap();
        let failed = store.send(&private(alice, bob, 2, "second"));
        assert!(
            matches!(failed, Err(MessageError::Backend(_))),
            "{failed:?}"
        );
        // Bob's instance refuses writes now; alice's still works for others.
        let refused = store.send(&private(bob, bob, 3, "note to self"));
        assert!(
            matches!(
                refused,
                Err(MessageError::Poisoned { ref cause, .. })
                    if cause.to_string().contains("injected write failure")
            ),
            "{refused:?}"
        );
        assert_eq!(
            store.state(BoxId::User(bob)).unwrap().max_id,
            1,
            "bob's copy is not there yet"
        );
        // Alice's side of the failed send committed: her next message takes the next id
        // (nothing cached from before the failure is reused).
        let carol = (2..1000)
            .find(|user| {
                store.instance_of(BoxId::User(*user)) != store.instance_of(BoxId::User(bob))
                    && *user != alice
            })
            .unwrap();
        let next = store.send(&private(alice, carol, 9, "to carol")).unwrap();
        assert_eq!(next.deliveries[0].message_id, 3);
        (alice, bob)
    };
    let store =
        RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap();
    assert_eq!(store.redelivered_on_open(), 1);
    let messages = store.get_messages(BoxId::User(bob), &[1, 2]).unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].body, b"second");
    assert_eq!(messages[1].random_id, 2);
    // The send is complete: a retry is a repeat with the first outcome.
    let retry = store.send(&private(alice, bob, 2, "second")).unwrap();
    assert!(retry.repeated);
    assert_eq!(retry.deliveries[1].box_id, BoxId::User(bob));
    assert_eq!(retry.deliveries[1].message_id, 2);
    assert_eq!(store.state(BoxId::User(bob)).unwrap().pts, 2);
    drop(store);
    let again =
        RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap();
    assert_eq!(again.redelivered_on_open(), 0, "the pending record is gone");
}

#[test]
fn a_membership_whose_user_side_failed_is_finished_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let channel = Peer::Channel(40);
    let user = {
        let store =
            RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap();
        let home = store.instance_of(BoxId::Channel(40));
        let user = (1..1000)
            .find(|user| store.instance_of(BoxId::User(*user)) != home)
            .unwrap();
        store
            .set_participant(channel, user, Some(Participant::creator(user, 5)))
            .unwrap();
        // The user's instance fails the next write: the channel's side commits, the user's
        // list does not.
        store
            .inject_fault(store.instance_of(BoxId::User(user)), 0, Fault::FailWrite)
            .unwrap();
        let mut admin = Participant::creator(user, 5);
        admin.role = Role::Admin;
        admin.admin_rights = 9;
        assert!(matches!(
            store.set_participant(channel, user, Some(admin)),
            Err(MessageError::Backend(_))
        ));
        assert_eq!(
            store.participant(channel, user).unwrap().unwrap().role,
            Role::Admin,
            "the channel's side is authoritative"
        );
        assert_eq!(store.memberships(user).unwrap()[0].role, Role::Creator);
        user
    };
    let store =
        RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap();
    assert_eq!(store.redelivered_on_open(), 1);
    assert_eq!(
        store.memberships(user).unwrap(),
        vec![Membership {
            group: channel,
            role: Role::Admin,
            date: 5
        }]
    );
    drop(store);
    let again =
        RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap();
    assert_eq!(again.redelivered_on_open(), 0, "the pending record is gone");
}

#[test]
fn a_failed_sync_refuses_further_writes_and_keeps_the_store_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let user = 7;
    {
        let store =
            RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap();
        store.send(&private(user, user, 1, "one")).unwrap();
        store
            .inject_fault(store.instance_of(BoxId::User(user)), 0, Fault::FailSync)
            .unwrap();
        // The write reached RocksDB but its sync "failed": the caller hears of an error and
        // the instance takes nothing more.
        assert!(store.send(&private(user, user, 2, "two")).is_err());
        for attempt in 3..6 {
            let refused = store.send(&private(user, user, attempt, "more"));
            assert!(
                matches!(refused, Err(MessageError::Poisoned { .. })),
                "{refused:?}"
            );
        }
        // Reads still work.
        assert_eq!(store.state(BoxId::User(user)).unwrap().pts, 2);
    }
    let store =
        RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap();
    // The unknown outcome resolved one way: the message is there once, and a retry repeats.
    assert_eq!(
        store.state(BoxId::User(user)).unwrap(),
        BoxState { pts: 2, max_id: 2 }
    );
    let retry = store.send(&private(user, user, 2, "two")).unwrap();
    assert!(retry.repeated);
    assert!(
        !store
            .send(&private(user, user, 3, "three"))
            .unwrap()
            .repeated
    );
}

#[test]
fn a_checkpoint_is_a_store_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksMessageStore::open(
        dir.path().join("live"),
        options(MessageStoreConfig::default()),
    )
    .unwrap();
    for random_id in 0..20 {
        store
            .send(&private(1, 2 + random_id % 3, random_id, "before"))
            .unwrap();
    }
    let backup = dir.path().join("backup");
    store.checkpoint(&backup).unwrap();
    assert!(
        store.checkpoint(&backup).is_err(),
        "an existing destination is refused"
    );
    store.send(&private(1, 2, 100, "after")).unwrap();
    let copy = RocksMessageStore::open(&backup, options(MessageStoreConfig::default())).unwrap();
    assert_eq!(copy.state(BoxId::User(1)).unwrap().max_id, 20);
    assert_eq!(store.state(BoxId::User(1)).unwrap().max_id, 21);
    assert_eq!(
        views(&copy, &[1, 2, 3, 4]).len(),
        views(&store, &[1, 2, 3, 4]).len()
    );
}

#[test]
fn statistics_count_writes_and_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(MessageStoreConfig::default());
    options.durability = Durability::Sync;
    let store = RocksMessageStore::open(dir.path(), options).unwrap();
    for random_id in 0..10 {
        store.send(&private(1, 2, random_id, "counted")).unwrap();
    }
    let metrics: HashMap<&str, u64> = store.metrics().into_iter().collect();
    assert!(
        metrics["rocksdb.number.keys.written"] >= 10 * 6,
        "{metrics:?}"
    );
    assert!(
        metrics["rocksdb.wal.synced"] >= 10,
        "synced writes: {metrics:?}"
    );
    assert!(metrics["rocksdb.estimate-num-keys"] > 0);
}

#[test]
fn concurrent_writers_keep_every_box_gapless_and_random_ids_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        RocksMessageStore::open(dir.path(), options(MessageStoreConfig::default())).unwrap(),
    );
    let users: Vec<i64> = (1..=12).collect();
    let threads: Vec<_> = (0..8i64)
        .map(|thread| {
            let store = store.clone();
            let users = users.clone();
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for i in 0..60i64 {
                    let from = users[usize::try_from((thread + i) % 12).unwrap()];
                    let to = users[usize::try_from((thread * 7 + i * 5) % 12).unwrap()];
                    // Threads 0 and 1 race on the same random ids: one sends, the other
                    // repeats or is told the send is in flight.
                    let random_id = if thread < 2 { i } else { thread * 1000 + i };
                    let from = if thread < 2 { 1 } else { from };
                    let to = if thread < 2 { 2 } else { to };
                    match store.send(&private(from, to, random_id, "race")) {
                        Ok(outcome) => outcomes.push((from, to, random_id, outcome)),
                        Err(MessageError::RandomIdDuplicate) => {}
                        Err(other) => panic!("{other:?}"),
                    }
                }
                outcomes
            })
        })
        .collect();
    let mut fresh: HashMap<(i64, i64, i64), usize> = HashMap::new();
    for thread in threads {
        for (from, to, random_id, outcome) in thread.join().unwrap() {
            if !outcome.repeated {
                *fresh.entry((from, to, random_id)).or_default() += 1;
            }
        }
    }
    assert!(
        fresh.values().all(|count| *count == 1),
        "a send stored twice"
    );
    for user in &users {
        let box_id = BoxId::User(*user);
        let state = store.state(box_id).unwrap();
        let Difference::Changes {
            entries,
            messages,
            complete,
            ..
        } = store.get_difference(box_id, 0, 1000).unwrap()
        else {
            assert_eq!(state.pts, 0);
            continue;
        };
        assert!(complete);
        let mut pts = 0;
        for entry in &entries {
            assert_eq!(entry.pts - entry.pts_count, pts, "a gap in box {user}");
            pts = entry.pts;
        }
        assert_eq!(pts, state.pts);
        let mut seen = std::collections::HashSet::new();
        for message in &messages {
            assert!(
                seen.insert((message.from, message.peer, message.random_id)),
                "a duplicate copy"
            );
        }
    }
}

/// Every box's log is gapless and every private copy has its twin in the other box.
fn assert_consistent(store: &RocksMessageStore, users: &[i64]) -> usize {
    let mut copies = std::collections::HashSet::new();
    let mut stored = Vec::new();
    for user in users {
        let box_id = BoxId::User(*user);
        let state = store.state(box_id).unwrap();
        let mut pts = 0;
        while pts < state.pts {
            let Difference::Changes {
                entries, messages, ..
            } = store.get_difference(box_id, pts, 1000).unwrap()
            else {
                panic!("box {user}: no changes below its pts");
            };
            for entry in &entries {
                assert_eq!(entry.pts - entry.pts_count, pts, "a gap in box {user}");
                pts = entry.pts;
            }
            for message in messages {
                let Peer::User(chat) = message.peer else {
                    continue;
                };
                copies.insert((*user, message.from, message.random_id));
                stored.push((*user, chat, message.from, message.random_id));
            }
        }
    }
    for (user, chat, from, random_id) in &stored {
        if user != chat {
            assert!(
                copies.contains(&(*chat, *from, *random_id)),
                "a half-delivered send"
            );
        }
    }
    stored.len()
}

/// A torn write-ahead log (the tail of the newest log file cut off, as by a power failure
/// mid-write) opens in point-in-time recovery: the store comes back consistent, without the
/// torn tail, and a repeat of a lost send stores it again.
#[test]
fn a_torn_wal_tail_recovers_to_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<i64> = (1..=6).collect();
    let mut options = options(MessageStoreConfig::default());
    options.instances = 2;
    options.durability = Durability::Sync;
    {
        let store = RocksMessageStore::open(dir.path(), options).unwrap();
        for random_id in 0..60i64 {
            let from = users[usize::try_from(random_id % 6).unwrap()];
            let to = users[usize::try_from((random_id * 5 + 1) % 6).unwrap()];
            store
                .send(&private(from, to, random_id, "before the tear"))
                .unwrap();
        }
    }
    for instance in 0..2 {
        let wal_dir = dir.path().join(format!("instance-{instance}"));
        let newest_log = std::fs::read_dir(&wal_dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .max()
            .unwrap();
        let len = std::fs::metadata(&newest_log).unwrap().len();
        assert!(len > 300, "the log holds the sends");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&newest_log)
            .unwrap();
        file.set_len(len - 150).unwrap();
    }
    let store = RocksMessageStore::open(dir.path(), options).unwrap();
    let kept = assert_consistent(&store, &users);
    assert!(
        kept > 0 && kept < 120,
        "the torn tail is gone, the rest is there: {kept} copies"
    );
    // Sending everything again: what survived repeats, what was torn off is stored anew,
    // and nothing ends up twice.
    for random_id in 0..60i64 {
        let from = users[usize::try_from(random_id % 6).unwrap()];
        let to = users[usize::try_from((random_id * 5 + 1) % 6).unwrap()];
        store.send(&private(from, to, random_id, "again")).unwrap();
    }
    let all = assert_consistent(&store, &users);
    let expected: usize = (0..60i64)
        .map(|random_id| {
            if random_id % 6 == (random_id * 5 + 1) % 6 {
                1
            } else {
                2
            }
        })
        .sum();
    assert_eq!(all, expected);
}

/// Many senders into one box (a hot box, as a bot's or a channel's): every send lands once
/// with its own id and pts, the box stays gapless, each outcome names the message stored
/// under it, and the sends share synced writes (group commit) instead of one sync each.
#[test]
fn a_hot_box_commits_in_groups_and_stays_gapless() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = RocksOptions::default();
    options.instances = 1;
    options.durability = Durability::Sync;
    let store = Arc::new(RocksMessageStore::open(dir.path(), options).unwrap());
    let hot = 1_000;
    let senders = 16i64;
    let each = 40i64;
    let synced_before = store
        .metrics()
        .into_iter()
        .find(|(name, _)| *name == "rocksdb.wal.synced")
        .map_or(0, |(_, value)| value);
    let threads: Vec<_> = (1..=senders)
        .map(|sender| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..each)
                    .map(|i| {
                        let outcome = store.send(&private(sender, hot, i, "hot")).unwrap();
                        (sender, i, outcome)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let outcomes: Vec<_> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    let total = usize::try_from(senders * each).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for (sender, random_id, outcome) in &outcomes {
        assert!(!outcome.repeated);
        let theirs = outcome.deliveries[1];
        assert_eq!(theirs.box_id, BoxId::User(hot));
        assert!(ids.insert(theirs.message_id), "an id given twice");
        let stored = store
            .get_messages(BoxId::User(hot), &[theirs.message_id])
            .unwrap();
        assert_eq!((stored[0].from, stored[0].random_id), (*sender, *random_id));
        let mine = store
            .get_messages(BoxId::User(*sender), &[outcome.deliveries[0].message_id])
            .unwrap();
        assert_eq!(mine[0].random_id, *random_id);
    }
    assert_eq!(ids.len(), total);
    assert_eq!(
        ids.iter().copied().collect::<Vec<_>>(),
        (1..=i32::try_from(total).unwrap()).collect::<Vec<_>>()
    );
    let state = store.state(BoxId::User(hot)).unwrap();
    assert_eq!(state.pts, i32::try_from(total).unwrap());
    assert_eq!(
        assert_consistent(&store, &(1..=senders).chain([hot]).collect::<Vec<_>>()),
        total * 2
    );
    let dialogs = store.dialogs(hot, 0, 100).unwrap();
    assert_eq!(dialogs.len(), usize::try_from(senders).unwrap());
    assert_eq!(
        dialogs.iter().map(|d| d.unread_count).sum::<i32>(),
        i32::try_from(total).unwrap()
    );
    let synced = store
        .metrics()
        .into_iter()
        .find(|(name, _)| *name == "rocksdb.wal.synced")
        .map_or(0, |(_, value)| value)
        - synced_before;
    assert!(
        synced < u64::try_from(total).unwrap(),
        "{synced} syncs for {total} sends: no group shared a sync"
    );
}
