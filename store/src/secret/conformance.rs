//! The conformance suite every [`SecretStore`] backend must pass (feature `testing`).
//!
//! `run_all(&make)` runs every check on fresh stores made by `make` with the configuration
//! each check needs; a failure panics with the check's name.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test suite: a failure is a panic with its message"
)]

use super::{
    INITIAL_QTS, NewSecretChat, QueueState, SecretChat, SecretChatState, SecretError, SecretKind,
    SecretSend, SecretStore, SecretStoreConfig,
};

/// Makes a fresh, empty store with this configuration.
pub type MakeStore<'a> = &'a dyn Fn(SecretStoreConfig) -> Box<dyn SecretStore>;

const ALICE: i64 = 100;
const ALICE_KEY: i64 = -1_000;
const BOB: i64 = 200;
const BOB_KEY: i64 = 2_000;
const BOB_OTHER_KEY: i64 = 2_001;
const NOW: i32 = 1_700_000_000;

/// Runs every check.
pub fn run_all(make: MakeStore<'_>) {
    requests_are_idempotent_and_ids_unique(make);
    accepting_binds_the_participants_device(make);
    sends_reach_the_other_device_once(make);
    sends_are_checked(make);
    acknowledgements_drop_entries(make);
    queues_page_in_qts_order(make);
    discarding_closes_for_both(make);
    limits_are_kept(make);
    requests_count_against_their_requester(make);
    removing_a_device_closes_its_chats(make);
    retention_ends(make);
    files_are_kept_for_the_retention(make);
}

fn files_are_kept_for_the_retention(make: MakeStore<'_>) {
    let config = SecretStoreConfig {
        retention_secs: 100,
        ..SecretStoreConfig::default()
    };
    let store = make(config);
    assert_eq!(store.file(1).unwrap(), None);
    store.put_file(1, b"first", NOW).unwrap();
    assert_eq!(store.file(1).unwrap(), Some(b"first".to_vec()));
    // Put again later: it lives to the later end.
    store.put_file(1, b"again", NOW + 50).unwrap();
    store.purge_expired(NOW + 100, 1000).unwrap();
    assert_eq!(store.file(1).unwrap(), Some(b"again".to_vec()));
    store.purge_expired(NOW + 150, 1000).unwrap();
    assert_eq!(store.file(1).unwrap(), None);
}

fn new_chat(id: i32, g_a: u8) -> NewSecretChat {
    NewSecretChat {
        id,
        access_hash: i64::from(id) * 7 + 1,
        date: NOW,
        admin_id: ALICE,
        admin_key: ALICE_KEY,
        participant_id: BOB,
        g_a: vec![g_a; 256],
    }
}

fn ready_chat(store: &dyn SecretStore, id: i32) -> SecretChat {
    let chat = store.request(&new_chat(id, 1)).expect("request");
    store
        .accept(
            chat.id,
            chat.access_hash,
            BOB,
            BOB_KEY,
            &[2; 256],
            77,
            NOW + 1,
        )
        .expect("accept")
}

fn send(chat: &SecretChat, from_bob: bool, random_id: i64, kind: SecretKind) -> SecretSend {
    SecretSend {
        sender: if from_bob { BOB } else { ALICE },
        sender_key: if from_bob { BOB_KEY } else { ALICE_KEY },
        chat_id: chat.id,
        access_hash: chat.access_hash,
        random_id,
        date: NOW + 2,
        kind,
        data: random_id.to_le_bytes().to_vec(),
        file: None,
    }
}

fn requests_are_idempotent_and_ids_unique(make: MakeStore<'_>) {
    let store = make(SecretStoreConfig::default());
    let chat = store.request(&new_chat(5, 1)).unwrap();
    assert_eq!(chat.state, SecretChatState::Waiting, "a new chat waits");
    assert_eq!(chat.participant_key, None);
    assert_eq!(
        store.request(&new_chat(5, 1)).unwrap(),
        chat,
        "a repeated request is the same chat"
    );
    assert_eq!(
        store.request(&new_chat(5, 9)),
        Err(SecretError::RandomIdDuplicate),
        "another g_a under a used id"
    );
    // Bob has chat 5 (as participant): he cannot request one with that id.
    let mut reverse = new_chat(5, 1);
    reverse.admin_id = BOB;
    reverse.admin_key = BOB_KEY;
    reverse.participant_id = 300;
    assert_eq!(store.request(&reverse), Err(SecretError::RandomIdDuplicate));
    assert_eq!(store.chat(5, chat.access_hash).unwrap(), Some(chat.clone()));
    assert_eq!(
        store.chat(5, chat.access_hash + 1).unwrap(),
        None,
        "hash checked"
    );
    assert_eq!(store.chat_of(BOB, 5).unwrap(), Some(chat.clone()));
    assert_eq!(store.chats_of(ALICE).unwrap(), vec![chat]);
    assert_eq!(store.chat_of(300, 5).unwrap(), None);
}

fn accepting_binds_the_participants_device(make: MakeStore<'_>) {
    let store = make(SecretStoreConfig::default());
    let chat = store.request(&new_chat(6, 1)).unwrap();
    assert_eq!(
        store.accept(6, chat.access_hash, ALICE, ALICE_KEY, &[2; 256], 1, NOW),
        Err(SecretError::ChatIdInvalid),
        "the requester cannot accept"
    );
    assert_eq!(
        store.accept(6, chat.access_hash ^ 1, BOB, BOB_KEY, &[2; 256], 1, NOW),
        Err(SecretError::ChatIdInvalid),
        "a wrong access hash"
    );
    let ready = store
        .accept(6, chat.access_hash, BOB, BOB_KEY, &[2; 256], 77, NOW + 5)
        .unwrap();
    assert_eq!(ready.state, SecretChatState::Ready);
    assert_eq!(ready.participant_key, Some(BOB_KEY));
    assert_eq!(ready.g_b, vec![2; 256]);
    assert_eq!(ready.key_fingerprint, 77);
    assert_eq!(ready.changed, NOW + 5);
    assert_eq!(ready.other_key(ALICE_KEY), Some(BOB_KEY));
    assert_eq!(ready.other_key(BOB_OTHER_KEY), None);
    assert_eq!(
        store.accept(6, chat.access_hash, BOB, BOB_OTHER_KEY, &[3; 256], 77, NOW),
        Err(SecretError::EncryptionAlreadyAccepted),
        "a second device cannot accept too"
    );
    assert_eq!(store.chat(6, chat.access_hash).unwrap(), Some(ready));
}

fn sends_reach_the_other_device_once(make: MakeStore<'_>) {
    let store = make(SecretStoreConfig::default());
    let chat = ready_chat(&*store, 7);
    assert_eq!(
        store.queue_state(BOB_KEY).unwrap(),
        QueueState {
            qts: INITIAL_QTS,
            acknowledged: INITIAL_QTS,
            pending: 0
        },
        "a device's qts starts at 1"
    );
    let sent = store
        .send(&send(&chat, false, 11, SecretKind::Message))
        .unwrap();
    assert_eq!(sent.qts, Some(INITIAL_QTS + 1));
    assert_eq!((sent.recipient, sent.recipient_key), (BOB, BOB_KEY));
    let service = store
        .send(&send(&chat, false, 12, SecretKind::Service))
        .unwrap();
    assert_eq!(service.qts, Some(INITIAL_QTS + 2));
    let mut later = send(&chat, false, 11, SecretKind::Message);
    later.date = NOW + 100;
    let repeat = store.send(&later).unwrap();
    assert_eq!(repeat.qts, None, "a repeat queues nothing");
    assert_eq!(repeat.date, NOW + 2, "a repeat answers with the first date");
    let queue = store.queue(BOB_KEY, 0, 100).unwrap();
    assert_eq!(queue.len(), 2);
    assert_eq!(queue[0].kind, SecretKind::Message, "kinds are kept");
    assert_eq!(queue[1].kind, SecretKind::Service);
    assert_eq!(queue[0].data, 11i64.to_le_bytes().to_vec());
    assert_eq!(queue[0].chat_id, 7);
    assert!(store.queue(ALICE_KEY, 0, 100).unwrap().is_empty());
    // The other way: Alice's queue has its own qts.
    let back = store
        .send(&send(&chat, true, 11, SecretKind::Message))
        .unwrap();
    assert_eq!(back.qts, Some(INITIAL_QTS + 1), "one random id per sender");
    assert_eq!(back.recipient_key, ALICE_KEY);
    // A file is kept with the entry and given back on a repeat.
    let mut with_file = send(&chat, true, 13, SecretKind::Message);
    with_file.file = Some(vec![1, 2, 3]);
    store.send(&with_file).unwrap();
    with_file.file = None;
    assert_eq!(store.send(&with_file).unwrap().file, Some(vec![1, 2, 3]));
    assert_eq!(
        store.queue(ALICE_KEY, 0, 100).unwrap()[1].file,
        Some(vec![1, 2, 3])
    );
}

fn sends_are_checked(make: MakeStore<'_>) {
    let config = SecretStoreConfig {
        max_data_len: 16,
        ..SecretStoreConfig::default()
    };
    let store = make(config);
    let waiting = store.request(&new_chat(8, 1)).unwrap();
    assert_eq!(
        store.send(&send(&waiting, false, 1, SecretKind::Message)),
        Err(SecretError::EncryptionIdInvalid),
        "not accepted yet"
    );
    let chat = ready_chat(&*store, 9);
    let mut stranger = send(&chat, true, 2, SecretKind::Message);
    stranger.sender_key = BOB_OTHER_KEY;
    assert_eq!(
        store.send(&stranger),
        Err(SecretError::ChatIdInvalid),
        "another device of a member"
    );
    let mut wrong_hash = send(&chat, true, 3, SecretKind::Message);
    wrong_hash.access_hash ^= 1;
    assert_eq!(store.send(&wrong_hash), Err(SecretError::ChatIdInvalid));
    let mut empty = send(&chat, true, 4, SecretKind::Message);
    empty.data.clear();
    assert_eq!(store.send(&empty), Err(SecretError::DataInvalid));
    let mut long = send(&chat, true, 5, SecretKind::Message);
    long.data = vec![0; 17];
    assert_eq!(store.send(&long), Err(SecretError::DataTooLong));
    long.data = vec![0; 16];
    assert!(store.send(&long).is_ok(), "the limit itself is allowed");
    assert_eq!(
        store.queue_state(ALICE_KEY).unwrap().pending,
        1,
        "refused sends queue nothing"
    );
}

fn acknowledgements_drop_entries(make: MakeStore<'_>) {
    let store = make(SecretStoreConfig::default());
    let chat = ready_chat(&*store, 10);
    for random_id in 1..=5 {
        store
            .send(&send(&chat, false, random_id, SecretKind::Message))
            .unwrap();
    }
    let state = store.queue_state(BOB_KEY).unwrap();
    assert_eq!((state.qts, state.pending), (INITIAL_QTS + 5, 5));
    assert_eq!(store.acknowledge(BOB_KEY, 0).unwrap(), Vec::<i64>::new());
    assert_eq!(store.acknowledge(BOB_KEY, -1).unwrap(), Vec::<i64>::new());
    assert_eq!(
        store.acknowledge(BOB_KEY, INITIAL_QTS + 6),
        Err(SecretError::MaxQtsInvalid),
        "past the last qts"
    );
    assert_eq!(
        store.acknowledge(BOB_KEY, INITIAL_QTS + 3).unwrap(),
        vec![1, 2, 3]
    );
    let left: Vec<i32> = store
        .queue(BOB_KEY, 0, 100)
        .unwrap()
        .iter()
        .map(|entry| entry.qts)
        .collect();
    assert_eq!(left, vec![INITIAL_QTS + 4, INITIAL_QTS + 5]);
    let state = store.queue_state(BOB_KEY).unwrap();
    assert_eq!((state.acknowledged, state.pending), (INITIAL_QTS + 3, 2));
    assert_eq!(
        store.acknowledge(BOB_KEY, INITIAL_QTS + 2).unwrap(),
        Vec::<i64>::new(),
        "acknowledged again: nothing left to drop"
    );
    assert_eq!(
        store.acknowledge(BOB_KEY, INITIAL_QTS + 5).unwrap(),
        vec![4, 5]
    );
    assert!(store.queue(BOB_KEY, 0, 100).unwrap().is_empty());
    // The counter goes on after the queue emptied.
    let next = store
        .send(&send(&chat, false, 6, SecretKind::Message))
        .unwrap();
    assert_eq!(next.qts, Some(INITIAL_QTS + 6));
}

fn queues_page_in_qts_order(make: MakeStore<'_>) {
    let store = make(SecretStoreConfig::default());
    let chat = ready_chat(&*store, 11);
    for random_id in 1..=10 {
        store
            .send(&send(&chat, false, random_id, SecretKind::Message))
            .unwrap();
    }
    let page: Vec<i64> = store
        .queue(BOB_KEY, INITIAL_QTS + 3, 4)
        .unwrap()
        .iter()
        .map(|entry| entry.random_id)
        .collect();
    assert_eq!(page, vec![4, 5, 6, 7]);
    assert!(
        store
            .queue(BOB_KEY, INITIAL_QTS + 10, 4)
            .unwrap()
            .is_empty()
    );
    assert!(store.queue(BOB_KEY, 0, 0).unwrap().is_empty());
    store.acknowledge(BOB_KEY, INITIAL_QTS + 2).unwrap();
    let page: Vec<i64> = store
        .queue(BOB_KEY, INITIAL_QTS + 5, 2)
        .unwrap()
        .iter()
        .map(|entry| entry.random_id)
        .collect();
    assert_eq!(
        page,
        vec![6, 7],
        "pages skip what comes before, acknowledged or not"
    );
}

fn discarding_closes_for_both(make: MakeStore<'_>) {
    let store = make(SecretStoreConfig::default());
    let chat = ready_chat(&*store, 12);
    assert_eq!(
        store.discard(300, 12, false, NOW),
        Err(SecretError::EncryptionIdInvalid),
        "not the caller's chat"
    );
    let closed = store.discard(BOB, 12, true, NOW + 9).unwrap();
    assert_eq!(
        closed.state,
        SecretChatState::Discarded {
            history_deleted: true,
            by: BOB
        }
    );
    assert_eq!(closed.changed, NOW + 9);
    assert_eq!(
        store.discard(ALICE, 12, false, NOW),
        Err(SecretError::EncryptionAlreadyDeclined)
    );
    assert_eq!(
        store.send(&send(&chat, false, 1, SecretKind::Message)),
        Err(SecretError::EncryptionDeclined)
    );
    assert_eq!(
        store.accept(12, chat.access_hash, BOB, BOB_KEY, &[2; 256], 1, NOW),
        Err(SecretError::EncryptionAlreadyAccepted),
        "accepted before it was closed"
    );
    // A declined request cannot be accepted.
    let declined = store.request(&new_chat(13, 1)).unwrap();
    store.discard(BOB, 13, false, NOW).unwrap();
    assert_eq!(
        store.accept(13, declined.access_hash, BOB, BOB_KEY, &[2; 256], 1, NOW),
        Err(SecretError::EncryptionAlreadyDeclined)
    );
    assert_eq!(
        store.chats_of(BOB).unwrap().len(),
        2,
        "closed chats are kept a while"
    );
}

fn limits_are_kept(make: MakeStore<'_>) {
    let config = SecretStoreConfig {
        max_chats_per_user: 2,
        max_queue_len: 3,
        ..SecretStoreConfig::default()
    };
    let store = make(config);
    let chat = ready_chat(&*store, 20);
    store.request(&new_chat(21, 1)).unwrap();
    assert_eq!(
        store.request(&new_chat(22, 1)),
        Err(SecretError::TooManyChats)
    );
    store.discard(ALICE, 21, false, NOW).unwrap();
    assert!(
        store.request(&new_chat(22, 1)).is_ok(),
        "a closed chat frees its place"
    );
    for random_id in 1..=3 {
        store
            .send(&send(&chat, false, random_id, SecretKind::Message))
            .unwrap();
    }
    assert_eq!(
        store.send(&send(&chat, false, 4, SecretKind::Message)),
        Err(SecretError::QueueFull)
    );
    assert!(
        store
            .send(&send(&chat, false, 1, SecretKind::Message))
            .is_ok(),
        "a repeat is answered even with a full queue"
    );
    store.acknowledge(BOB_KEY, INITIAL_QTS + 1).unwrap();
    assert!(
        store
            .send(&send(&chat, false, 4, SecretKind::Message))
            .is_ok()
    );
    let mut long = new_chat(23, 1);
    long.g_a = vec![1; 257];
    assert_eq!(store.request(&long), Err(SecretError::DataTooLong));
}

fn requests_count_against_their_requester(make: MakeStore<'_>) {
    let config = SecretStoreConfig {
        max_chats_per_user: 2,
        retention_secs: 100,
        ..SecretStoreConfig::default()
    };
    let store = make(config);
    // Three users each ask Bob: Bob's place is not theirs to fill.
    for (n, admin) in [(60, 301), (61, 302), (62, 303)] {
        let mut request = new_chat(n, 1);
        request.admin_id = admin;
        request.admin_key = admin * 10;
        store.request(&request).unwrap();
    }
    let mine = store.request(&{
        let mut own = new_chat(63, 1);
        own.admin_id = BOB;
        own.admin_key = BOB_KEY;
        own.participant_id = 400;
        own
    });
    assert!(mine.is_ok(), "Bob may still ask someone: {mine:?}");
    // Accepting counts: Bob has one (his own request); a second accept fills his place.
    let first = store.chat_of(BOB, 60).unwrap().unwrap();
    store
        .accept(60, first.access_hash, BOB, BOB_KEY, &[2; 256], 1, NOW)
        .unwrap();
    let second = store.chat_of(BOB, 61).unwrap().unwrap();
    assert_eq!(
        store.accept(61, second.access_hash, BOB, BOB_KEY, &[2; 256], 1, NOW),
        Err(SecretError::TooManyChats)
    );
    // A request nobody accepts lapses with the retention period, and frees its requester.
    store.purge_expired(NOW + 100, 1000).unwrap();
    assert_eq!(store.chat(61, second.access_hash).unwrap(), None);
    assert!(store.chat_of(BOB, 61).unwrap().is_none());
    assert!(
        store.chat(60, first.access_hash).unwrap().is_some(),
        "accepted: kept"
    );
    let mut again = new_chat(64, 1);
    again.admin_id = 302;
    again.admin_key = 3020;
    again.participant_id = 500;
    assert!(store.request(&again).is_ok());
}

fn removing_a_device_closes_its_chats(make: MakeStore<'_>) {
    let store = make(SecretStoreConfig::default());
    let chat = ready_chat(&*store, 30);
    let other = store.request(&new_chat(31, 1)).unwrap();
    for random_id in 1..=3 {
        store
            .send(&send(&chat, false, random_id, SecretKind::Message))
            .unwrap();
    }
    // Bob's device goes: the ready chat closes; the request to Bob (not bound to a device of
    // his) stays.
    let closed = store.remove_device(BOB_KEY, NOW + 50).unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].id, 30);
    assert!(matches!(
        closed[0].state,
        SecretChatState::Discarded { by: BOB, .. }
    ));
    assert!(store.queue(BOB_KEY, 0, 100).unwrap().is_empty());
    assert_eq!(store.queue_state(BOB_KEY).unwrap().pending, 0);
    assert_eq!(
        store.chat(31, other.access_hash).unwrap().unwrap().state,
        SecretChatState::Waiting
    );
    // Alice's device goes: her waiting request closes.
    let closed = store.remove_device(ALICE_KEY, NOW + 51).unwrap();
    assert_eq!(
        closed.iter().map(|chat| chat.id).collect::<Vec<_>>(),
        vec![31]
    );
}

fn retention_ends(make: MakeStore<'_>) {
    let config = SecretStoreConfig {
        retention_secs: 100,
        ..SecretStoreConfig::default()
    };
    let store = make(config);
    let chat = ready_chat(&*store, 40);
    let mut early = send(&chat, false, 1, SecretKind::Message);
    early.date = NOW;
    store.send(&early).unwrap();
    let mut late = send(&chat, false, 2, SecretKind::Message);
    late.date = NOW + 50;
    store.send(&late).unwrap();
    assert_eq!(
        store.purge_expired(NOW + 99, 1000).unwrap(),
        0,
        "nothing is due"
    );
    // The first entry and its send record are due at NOW + 100, and the request's row of
    // the chat (accepted since: it stays).
    assert_eq!(store.purge_expired(NOW + 100, 1000).unwrap(), 3);
    assert!(store.chat(40, chat.access_hash).unwrap().is_some());
    let left: Vec<i64> = store
        .queue(BOB_KEY, 0, 10)
        .unwrap()
        .iter()
        .map(|entry| entry.random_id)
        .collect();
    assert_eq!(left, vec![2]);
    assert_eq!(store.queue_state(BOB_KEY).unwrap().pending, 1);
    // The send record went too: the same random id is a new send now.
    early.date = NOW + 120;
    assert!(store.send(&early).unwrap().qts.is_some());
    // A closed chat goes after its retention, and its id is free again.
    store.discard(ALICE, 40, false, NOW + 200).unwrap();
    store.purge_expired(NOW + 299, 1000).unwrap();
    assert!(store.chat(40, chat.access_hash).unwrap().is_some());
    store.purge_expired(NOW + 300, 1000).unwrap();
    assert_eq!(store.chat(40, chat.access_hash).unwrap(), None);
    assert!(store.chats_of(ALICE).unwrap().is_empty());
    assert!(store.request(&new_chat(40, 5)).is_ok());
    // A purge is bounded.
    let chat = ready_chat(&*store, 41);
    for random_id in 10..20 {
        store
            .send(&send(&chat, false, random_id, SecretKind::Message))
            .unwrap();
    }
    assert_eq!(store.purge_expired(NOW + 10_000, 3).unwrap(), 3);
}

/// One step of [`model_agrees`].
#[derive(Debug, Clone)]
pub enum Op {
    /// A send into the ready chat: from Bob or Alice, with a random id from a small range
    /// (so that repeats happen).
    Send {
        /// From Bob's side.
        from_bob: bool,
        /// The random id.
        random_id: i64,
    },
    /// An acknowledgement by one side of its qts plus an offset from its last.
    Acknowledge {
        /// Bob's side.
        bob: bool,
        /// How far below the device's current qts (may be negative: past it).
        below: i32,
    },
    /// A bounded purge at a later time.
    Purge {
        /// Seconds after the first send.
        after: i32,
    },
}

/// Random steps.
pub fn ops() -> impl proptest::strategy::Strategy<Value = Vec<Op>> {
    use proptest::prelude::*;
    let op = prop_oneof![
        4 => (any::<bool>(), 0i64..12).prop_map(|(from_bob, random_id)| Op::Send { from_bob, random_id }),
        2 => (any::<bool>(), -2i32..6).prop_map(|(bob, below)| Op::Acknowledge { bob, below }),
        1 => (0i32..40).prop_map(|after| Op::Purge { after }),
    ];
    proptest::collection::vec(op, 0..60)
}

/// Runs `ops` on a fresh store and on a model of one ready chat's two queues, comparing the
/// queues, the counters and every answer after each step.
pub fn model_agrees(make: MakeStore<'_>, ops: &[Op]) {
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Side {
        qts: i32,
        acknowledged: i32,
        queue: BTreeMap<i32, (i64, i32)>,
        sent: BTreeMap<i64, i32>,
    }
    let config = SecretStoreConfig {
        retention_secs: 10,
        ..SecretStoreConfig::default()
    };
    let store = make(config);
    let chat = ready_chat(&*store, 50);
    // Index 0 is Alice's device (what Bob sends lands there), 1 is Bob's.
    let mut sides = [Side::default(), Side::default()];
    for side in &mut sides {
        side.qts = INITIAL_QTS;
        side.acknowledged = INITIAL_QTS;
    }
    let mut clock = NOW;
    for op in ops {
        match *op {
            Op::Send {
                from_bob,
                random_id,
            } => {
                clock += 1;
                let mut request = send(&chat, from_bob, random_id, SecretKind::Message);
                request.date = clock;
                let answer = store.send(&request).unwrap();
                let (sender, receiver) = if from_bob { (1, 0) } else { (0, 1) };
                // The record keeps the first send's date.
                let first = match sides[sender].sent.entry(random_id) {
                    std::collections::btree_map::Entry::Vacant(entry) => {
                        entry.insert(clock);
                        true
                    }
                    std::collections::btree_map::Entry::Occupied(_) => false,
                };
                if first {
                    sides[receiver].qts += 1;
                    let qts = sides[receiver].qts;
                    sides[receiver].queue.insert(qts, (random_id, clock));
                    assert_eq!(answer.qts, Some(qts));
                } else {
                    assert_eq!(answer.qts, None, "a repeat of {random_id}");
                }
            }
            Op::Acknowledge { bob, below } => {
                let side = &mut sides[usize::from(bob)];
                let max_qts = side.qts - below;
                let key = if bob { BOB_KEY } else { ALICE_KEY };
                let answer = store.acknowledge(key, max_qts);
                if max_qts > side.qts {
                    assert_eq!(answer, Err(SecretError::MaxQtsInvalid));
                } else if max_qts <= 0 {
                    assert_eq!(answer, Ok(Vec::new()));
                } else {
                    let dropped: Vec<i64> = side
                        .queue
                        .range(..=max_qts)
                        .map(|(_, (random_id, _))| *random_id)
                        .collect();
                    side.queue.retain(|qts, _| *qts > max_qts);
                    side.acknowledged = side.acknowledged.max(max_qts);
                    assert_eq!(answer, Ok(dropped));
                }
            }
            Op::Purge { after } => {
                let now = NOW + after;
                store.purge_expired(now, usize::MAX).unwrap();
                let alive = |date: &i32| i64::from(*date) + 10 > i64::from(now);
                for side in &mut sides {
                    side.queue.retain(|_, (_, date)| alive(date));
                    // A send record goes with its retention: the id may be sent anew.
                    side.sent.retain(|_, date| alive(date));
                }
            }
        }
        for (index, side) in sides.iter().enumerate() {
            let key = if index == 1 { BOB_KEY } else { ALICE_KEY };
            let state = store.queue_state(key).unwrap();
            assert_eq!(state.qts, side.qts);
            assert_eq!(state.acknowledged, side.acknowledged);
            let held: Vec<(i32, i64)> = store
                .queue(key, 0, usize::MAX)
                .unwrap()
                .iter()
                .map(|entry| (entry.qts, entry.random_id))
                .collect();
            let expected: Vec<(i32, i64)> = side
                .queue
                .iter()
                .map(|(qts, (random_id, _))| (*qts, *random_id))
                .collect();
            assert_eq!(held, expected);
            assert_eq!(usize::try_from(state.pending).unwrap(), expected.len());
        }
    }
}
