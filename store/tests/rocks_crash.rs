//! Crash test of the RocksDB message store: a child process sends messages as fast as it can
//! from several threads across many boxes and every instance, printing each acknowledged
//! send; the parent kills it with SIGKILL at a random moment, reopens the store and checks
//! that every acknowledged message is present exactly once, in order, in every box it
//! reached, and that every box's pts log has no gap. Then again, on the same store.
//!
//! Its own `main` (no libtest harness): run with no arguments it is the parent; the parent
//! runs this same executable with `child <dir> <cycle>` as the writer. Cycles:
//! `COLUMBA_CRASH_CYCLES` (default 50).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod crash_harness;

use crash_harness::Rng;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use columba_store::message::Difference;
use columba_store::{
    BoxId, Durability, MessageStore, MessageStoreConfig, Peer, RocksMessageStore, RocksOptions,
    SendRequest,
};

const USERS: i64 = 40;
const THREADS: i64 = 6;

fn options() -> RocksOptions {
    let mut options = RocksOptions::default();
    options.instances = 4;
    options.durability = Durability::Sync;
    options.messages = MessageStoreConfig::default();
    options.block_cache_bytes = 8 << 20;
    options.write_buffer_bytes = 1 << 20;
    options
}

/// The writer: sends until killed (or for 30 s, should the parent be gone), one line per
/// acknowledged send: `ack <thread> <sender> <peer> <random_id> <box>:<id>:<pts> ...`.
fn child(dir: &Path, cycle: u64) {
    let store = Arc::new(RocksMessageStore::open(dir, options()).unwrap());
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = store.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                let mut rng = Rng((cycle << 8 | u64::try_from(thread).unwrap()) * 0x9e37_79b9 + 1);
                let started = Instant::now();
                let mut i: i64 = 0;
                while started.elapsed() < Duration::from_secs(30) {
                    i += 1;
                    let sender =
                        1 + i64::try_from(rng.below(u64::try_from(USERS).unwrap())).unwrap();
                    let to = 1 + i64::try_from(rng.below(u64::try_from(USERS).unwrap())).unwrap();
                    // Unique per cycle, thread and step.
                    let random_id = i64::try_from(cycle).unwrap() << 40 | thread << 32 | i;
                    let request = SendRequest {
                        sender,
                        peer: Peer::User(to),
                        random_id,
                        date: 1_700_000_000,
                        body: format!("{cycle}/{thread}/{i}").into_bytes(),
                        media: None,
                        flags: 0,
                        members: Vec::new(),
                        sender_only: false,
                    };
                    let outcome = store.send(&request).unwrap();
                    let mut line = format!("ack {thread} {sender} {to} {random_id}");
                    for delivery in &outcome.deliveries {
                        let BoxId::User(user) = delivery.box_id else {
                            unreachable!()
                        };
                        line.push_str(&format!(" {user}:{}:{}", delivery.message_id, delivery.pts));
                    }
                    line.push('\n');
                    let mut out = out.lock().unwrap();
                    out.write_all(line.as_bytes()).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// One acknowledged send.
#[derive(Debug, Clone)]
struct Ack {
    thread: i64,
    sender: i64,
    random_id: i64,
    /// (user, id, pts) per box.
    deliveries: Vec<(i64, i32, i32)>,
}

fn parse(line: &str) -> Option<Ack> {
    let mut words = line.split_whitespace();
    if words.next()? != "ack" {
        return None;
    }
    let thread = words.next()?.parse().ok()?;
    let sender = words.next()?.parse().ok()?;
    let _to: i64 = words.next()?.parse().ok()?;
    let random_id = words.next()?.parse().ok()?;
    let mut deliveries = Vec::new();
    for word in words {
        let mut parts = word.split(':');
        deliveries.push((
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
        ));
    }
    Some(Ack {
        thread,
        sender,
        random_id,
        deliveries,
    })
}

/// Checks every acknowledged send against the reopened store, and every box's log.
fn verify(store: &RocksMessageStore, acks: &[Ack], cycle: u64) {
    // Every box: a gapless log from pts 0, and no (sender, random_id) twice.
    let mut copies: HashMap<(i64, i64, i64), Vec<(i32, i64)>> = HashMap::new();
    // (box, from, random_id, chat) of every stored copy, acknowledged or not.
    let mut stored: Vec<(i64, i64, i64, i64)> = Vec::new();
    for user in 1..=USERS {
        let box_id = BoxId::User(user);
        let state = store.state(box_id).unwrap();
        let mut pts = 0;
        loop {
            match store.get_difference(box_id, pts, 1000).unwrap() {
                Difference::Empty { pts: current } => {
                    assert_eq!(current, pts, "cycle {cycle}: box {user}");
                    break;
                }
                Difference::TooLong { .. } => panic!("cycle {cycle}: box {user}: log truncated"),
                Difference::Changes {
                    entries, messages, ..
                } => {
                    for entry in &entries {
                        assert_eq!(
                            entry.pts - entry.pts_count,
                            pts,
                            "cycle {cycle}: a gap in box {user}'s pts log"
                        );
                        pts = entry.pts;
                    }
                    for message in messages {
                        let Peer::User(chat) = message.peer else {
                            unreachable!()
                        };
                        stored.push((user, message.from, message.random_id, chat));
                        copies
                            .entry((user, message.from, message.random_id))
                            .or_default()
                            .push((message.id, i64::from(message.date)));
                    }
                }
            }
        }
        assert_eq!(
            pts, state.pts,
            "cycle {cycle}: box {user}: log ends at the box's pts"
        );
    }
    for ((user, from, random_id), found) in &copies {
        assert_eq!(
            found.len(),
            1,
            "cycle {cycle}: ({from}, {random_id}) is in box {user} {} times",
            found.len()
        );
    }
    // No send half-delivered: a copy in one box of a private chat has its twin in the other
    // (sends the child never acknowledged included: recovery finished them on open).
    for (user, from, random_id, chat) in &stored {
        if chat != user {
            assert!(
                copies.contains_key(&(*chat, *from, *random_id)),
                "cycle {cycle}: ({from}, {random_id}) is in box {user} but not in box {chat}"
            );
        }
    }
    // Every acknowledged send: in each box it reached, with the acknowledged id.
    let mut last_id: HashMap<(i64, i64), i32> = HashMap::new();
    for ack in acks {
        for (user, id, _pts) in &ack.deliveries {
            let found = copies.get(&(*user, ack.sender, ack.random_id));
            assert_eq!(
                found.map(|copies| copies[0].0),
                Some(*id),
                "cycle {cycle}: acknowledged send {ack:?} missing from box {user}"
            );
            // Sends of one writer thread are sequential: their ids grow in every box.
            let last = last_id.entry((ack.thread, *user)).or_insert(0);
            assert!(*id > *last, "cycle {cycle}: out of order in box {user}");
            *last = *id;
        }
    }
}

fn parent() {
    let cycles = crash_harness::cycles(50);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_1234_abcd);
    let mut acks: Vec<Ack> = Vec::new();
    let mut redelivered = 0;
    let started = Instant::now();
    for cycle in 1..=cycles {
        // Anywhere from during the open (and its recovery) to well into the sending.
        let kill_after = Duration::from_millis(20 + rng.below(400));
        let lines = crash_harness::run_and_kill(dir.path(), cycle, kill_after);
        let new: Vec<Ack> = lines.iter().filter_map(|line| parse(line)).collect();
        // Thread numbers are per child: make them distinct per cycle for the order check.
        acks.extend(new.into_iter().map(|mut ack| {
            ack.thread += i64::try_from(cycle).unwrap() * 100;
            ack
        }));
        let store = RocksMessageStore::open(dir.path(), options()).unwrap();
        redelivered += store.redelivered_on_open();
        verify(&store, &acks, cycle);
    }
    let by_box: BTreeMap<i64, usize> = acks
        .iter()
        .flat_map(|ack| ack.deliveries.iter().map(|(user, _, _)| *user))
        .fold(BTreeMap::new(), |mut counts, user| {
            *counts.entry(user).or_default() += 1;
            counts
        });
    assert!(
        acks.len() > usize::try_from(cycles).unwrap(),
        "the child acknowledged almost nothing"
    );
    println!(
        "crash test: {cycles} SIGKILL cycles, {} acknowledged sends over {} boxes all present once and in order, {redelivered} interrupted deliveries finished on open, {:.1} s",
        acks.len(),
        by_box.len(),
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    crash_harness::main("acknowledged_sends_survive_sigkill", child, parent);
}
