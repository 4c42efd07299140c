//! Crash test of the RocksDB secret store: a child process opens secret chats and relays
//! messages into the devices' queues from several threads, repeating some sends and
//! acknowledging now and then, printing each acknowledged call; the parent kills it with
//! SIGKILL at a random moment, reopens the store and checks that every acknowledged message
//! not yet acknowledged by its device is queued once, in qts order, with its kind; that the
//! counters agree with the queues; that a repeat of an acknowledged send is still a repeat;
//! and that no qts is given twice. Then again, on the same store.
//!
//! Its own `main` (no libtest harness): run with no arguments it is the parent; the parent
//! runs this same executable with `child <dir> <cycle>` as the writer. Cycles:
//! `COLUMBA_CRASH_CYCLES` (default 30).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod crash_harness;

use crash_harness::Rng;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use columba_store::secret::{NewSecretChat, SecretKind, SecretSend, SecretStore};
use columba_store::{Durability, RocksSecretStore, SecretStoreConfig};

const THREADS: u64 = 3;

fn open(dir: &Path) -> RocksSecretStore {
    RocksSecretStore::open(dir, SecretStoreConfig::default(), Durability::Sync).unwrap()
}

/// The chat of `thread` in `cycle`, and its two devices (admin's, participant's).
fn chat_of(cycle: u64, thread: u64) -> (i32, i64, i64) {
    let n = i64::try_from(cycle * 10 + thread).unwrap();
    (i32::try_from(n).unwrap(), 1_000_000 + n, 2_000_000 + n)
}

fn send_of(
    cycle: u64,
    thread: u64,
    access_hash: i64,
    random_id: i64,
    kind: SecretKind,
) -> SecretSend {
    let (id, admin_key, _) = chat_of(cycle, thread);
    SecretSend {
        sender: 1,
        sender_key: admin_key,
        chat_id: id,
        access_hash,
        random_id,
        date: 1_700_000_000,
        kind,
        data: random_id.to_le_bytes().repeat(8),
        file: None,
    }
}

/// The writer: per thread, a chat between users 1 and 2 on two devices of its own, then
/// until killed (or for 30 s): sends (every third a service message, every fifth repeated),
/// and every seventh step an acknowledgement of what the receiving device has. One line per
/// acknowledged call.
fn child(dir: &Path, cycle: u64) {
    let store = Arc::new(open(dir));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = store.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                let say = |line: String| {
                    let mut out = out.lock().unwrap();
                    writeln!(out, "{line}").unwrap();
                    out.flush().unwrap();
                };
                let (id, admin_key, participant_key) = chat_of(cycle, thread);
                let chat = store
                    .request(&NewSecretChat {
                        id,
                        access_hash: i64::from(id) * 31,
                        date: 1_700_000_000,
                        admin_id: 1,
                        admin_key,
                        participant_id: 2,
                        g_a: vec![7; 256],
                    })
                    .unwrap();
                store
                    .accept(
                        id,
                        chat.access_hash,
                        2,
                        participant_key,
                        &[8; 256],
                        5,
                        1_700_000_001,
                    )
                    .unwrap();
                say(format!("chat {thread} {}", chat.access_hash));
                let started = Instant::now();
                let mut random_id = 0i64;
                while started.elapsed() < Duration::from_secs(30) {
                    random_id += 1;
                    let kind = if random_id % 3 == 0 {
                        SecretKind::Service
                    } else {
                        SecretKind::Message
                    };
                    let send = send_of(cycle, thread, chat.access_hash, random_id, kind);
                    let sent = store.send(&send).unwrap();
                    let qts = sent.qts.expect("a first send is queued");
                    say(format!(
                        "sent {thread} {random_id} {qts} {}",
                        kind == SecretKind::Service
                    ));
                    if random_id % 5 == 0 {
                        assert_eq!(store.send(&send).unwrap().qts, None, "a repeat");
                    }
                    if random_id % 7 == 0 {
                        let max = store.queue_state(participant_key).unwrap().qts - 2;
                        store.acknowledge(participant_key, max).unwrap();
                        say(format!("ack {thread} {max}"));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// What the child acknowledged in one cycle, per thread.
#[derive(Default)]
struct Thread {
    access_hash: i64,
    /// qts -> (random id, service)
    sent: BTreeMap<i32, (i64, bool)>,
    acknowledged: i32,
}

fn read(lines: &[String], cycle: u64) -> BTreeMap<u64, Thread> {
    let mut threads: BTreeMap<u64, Thread> = BTreeMap::new();
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["chat", thread, hash] => {
                threads
                    .entry(thread.parse().unwrap())
                    .or_default()
                    .access_hash = hash.parse().unwrap();
            }
            ["sent", thread, random_id, qts, service] => {
                let qts: i32 = qts.parse().unwrap();
                let fresh = threads
                    .entry(thread.parse().unwrap())
                    .or_default()
                    .sent
                    .insert(qts, (random_id.parse().unwrap(), *service == "true"))
                    .is_none();
                assert!(fresh, "cycle {cycle}: qts {qts} given twice");
            }
            ["ack", thread, max] => {
                let thread = threads.entry(thread.parse().unwrap()).or_default();
                thread.acknowledged = thread.acknowledged.max(max.parse().unwrap());
            }
            _ => panic!("cycle {cycle}: a line the child cannot print: {line:?}"),
        }
    }
    threads
}

/// Checks one cycle's chats after a reopen; returns how many acknowledged sends were found.
fn verify(store: &RocksSecretStore, threads: &BTreeMap<u64, Thread>, cycle: u64) -> usize {
    let mut found = 0;
    for (thread, acked) in threads {
        let (id, _, participant_key) = chat_of(cycle, *thread);
        let queue = store.queue(participant_key, 0, usize::MAX).unwrap();
        // Pages hold at most 1000: read on until the end.
        let mut entries = queue;
        while entries.len() % 1000 == 0 && !entries.is_empty() {
            let after = entries.last().unwrap().qts;
            let more = store.queue(participant_key, after, 1000).unwrap();
            if more.is_empty() {
                break;
            }
            entries.extend(more);
        }
        let state = store.queue_state(participant_key).unwrap();
        assert_eq!(
            usize::try_from(state.pending).unwrap(),
            entries.len(),
            "cycle {cycle} thread {thread}: the count agrees with the queue"
        );
        assert!(
            entries.windows(2).all(|pair| pair[0].qts < pair[1].qts),
            "cycle {cycle} thread {thread}: qts order"
        );
        let mut random_ids: Vec<i64> = entries.iter().map(|entry| entry.random_id).collect();
        random_ids.sort_unstable();
        random_ids.dedup();
        assert_eq!(
            random_ids.len(),
            entries.len(),
            "cycle {cycle}: a message queued twice"
        );
        let by_qts: BTreeMap<i32, _> = entries.iter().map(|entry| (entry.qts, entry)).collect();
        for (qts, (random_id, service)) in &acked.sent {
            if *qts <= state.acknowledged.max(acked.acknowledged) {
                assert!(
                    !by_qts.contains_key(qts),
                    "cycle {cycle} thread {thread}: acknowledged entry {qts} still queued"
                );
                continue;
            }
            let entry = by_qts.get(qts).unwrap_or_else(|| {
                panic!(
                    "cycle {cycle} thread {thread}: acknowledged send {random_id} (qts {qts}) lost"
                )
            });
            assert_eq!(entry.random_id, *random_id);
            assert_eq!(entry.kind == SecretKind::Service, *service);
            assert_eq!(entry.chat_id, id);
            found += 1;
        }
        if let Some((qts, (random_id, service))) = acked.sent.iter().next_back() {
            assert!(state.qts >= *qts, "cycle {cycle}: the counter went back");
            let kind = if *service {
                SecretKind::Service
            } else {
                SecretKind::Message
            };
            let repeat = store
                .send(&send_of(
                    cycle,
                    *thread,
                    acked.access_hash,
                    *random_id,
                    kind,
                ))
                .unwrap();
            assert_eq!(repeat.qts, None, "cycle {cycle}: the send record was lost");
        }
    }
    found
}

fn parent() {
    let cycles = crash_harness::cycles(30);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5ec2_e7c4_a5e5);
    let mut total = 0;
    let started = Instant::now();
    for cycle in 1..=cycles {
        let kill_after = Duration::from_millis(50 + rng.below(400));
        let lines = crash_harness::run_and_kill(dir.path(), cycle, kill_after);
        let threads = read(&lines, cycle);
        let store = open(dir.path());
        total += verify(&store, &threads, cycle);
    }
    assert!(
        total > usize::try_from(cycles).unwrap(),
        "the child acknowledged almost nothing"
    );
    println!(
        "secret crash test: {cycles} SIGKILL cycles, {total} acknowledged and unacknowledged-by-device messages found queued once and in order, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    crash_harness::main("acknowledged_secret_sends_survive_sigkill", child, parent);
}
