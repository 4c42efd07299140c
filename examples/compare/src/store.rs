//! Suite `store`: the RocksDB message store against raw RocksDB doing the same I/O.
//!
//! - `send_durable_64`: private-chat sends per second from 64 threads at once, each sending
//!   from its own user to its own partner (64 distinct chats), every send synced (the
//!   default durability), in the default layout (one instance). Peer
//!   (`rocksdb_writebatch_sync`):
//!   64 threads writing synced `WriteBatch`es into one RocksDB with the same number of keys
//!   and bytes per batch as our sends write on average (measured from our store's own
//!   statistics in the same run). The ratio is what the store's bookkeeping (locks, counters,
//!   idempotency, the pending record of a send that crosses instances) costs over the bare
//!   writes. `send_durable_64_4_instances` is the same over four instances.
//! - `send_durable_hot_box`: 64 threads sending into one box (each from its own user), against
//!   64 threads sending into 64 boxes (`send_durable_64`'s pattern), both through our store in
//!   the same run: what a hot box costs with group commit.
//! - `history_page_100`: 100-message `get_history` pages at a random `offset_id` in a random
//!   chat of a store of 1,000,000 messages (500 private chats of 1,000 sends, each message
//!   stored in both boxes). Peer (`rocksdb_range_scan`): a RocksDB holding the same message
//!   rows under the same keys, read with a raw iterator seeking to the same place and reading
//!   the same 100 rows (each value copied out, as we decode each).
//!
//! Both stores live in a temporary directory, deleted at the end. Peak RSS goes to stderr.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use columba_store::hooks::codec::{MessageRecord, encode_message};
use columba_store::hooks::keys;
use columba_store::message::HistoryQuery;
use columba_store::{
    BoxId, Durability, MessageStore, Peer, RocksMessageStore, RocksOptions, SendRequest,
};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::{Side, compare};

const WRITERS: i64 = 64;
/// Sends per writer per measured call.
const SENDS_PER_CALL: i64 = 8;
const BODY: usize = 64;

fn request(sender: i64, to: i64, random_id: i64) -> SendRequest {
    SendRequest {
        sender,
        peer: Peer::User(to),
        random_id,
        date: 1_700_000_000,
        body: vec![0x61; BODY],
        media: None,
        flags: 0,
        members: Vec::new(),
        sender_only: false,
    }
}

fn metric(store: &RocksMessageStore, name: &str) -> u64 {
    store
        .metrics()
        .into_iter()
        .find(|(metric, _)| *metric == name)
        .map_or(0, |(_, value)| value)
}

fn raw_db(path: &Path) -> rocksdb::DB {
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    rocksdb::DB::open(&options, path).expect("a RocksDB for the peer")
}

fn send_durable(dir: &Path, bench: &str, instances: u32) {
    let mut options = RocksOptions::default();
    options.instances = instances;
    let store = RocksMessageStore::open(dir.join(bench), options).expect("store");
    let next_id = AtomicI64::new(1);
    let run_ours = |store: &RocksMessageStore| {
        std::thread::scope(|scope| {
            for writer in 0..WRITERS {
                let next_id = &next_id;
                scope.spawn(move || {
                    for _ in 0..SENDS_PER_CALL {
                        let random_id = next_id.fetch_add(1, Ordering::Relaxed);
                        let sent = store.send(&request(1 + writer, 1001 + writer, random_id));
                        black_box(sent.expect("a send"));
                    }
                });
            }
        });
    };
    // Warm up, then measure what one send writes.
    run_ours(&store);
    let keys_before = metric(&store, "rocksdb.number.keys.written");
    let bytes_before = metric(&store, "rocksdb.bytes.written");
    run_ours(&store);
    let sends = u64::try_from(WRITERS * SENDS_PER_CALL).unwrap_or(1);
    let keys_per_send = (metric(&store, "rocksdb.number.keys.written") - keys_before) / sends;
    let bytes_per_send = (metric(&store, "rocksdb.bytes.written") - bytes_before) / sends;
    let keys_per_send = usize::try_from(keys_per_send.max(1)).unwrap_or(1);
    let value_len = usize::try_from(bytes_per_send).unwrap_or(0) / keys_per_send;
    eprintln!(
        "store: {bench}: a send writes {keys_per_send} keys, {bytes_per_send} bytes (WriteBatch bytes)"
    );
    let peer = raw_db(&dir.join(format!("peer-{bench}")));
    let next_key = AtomicI64::new(0);
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    // Each entry of a batch is its key (8 bytes here), its value and 3 bytes of framing
    // (type, key length, value length): values sized so that a batch carries the bytes ours
    // do (checked below from the peer's own statistics).
    let value = vec![0x61u8; value_len.saturating_sub(8 + 3).max(1)];
    {
        let mut batch = rocksdb::WriteBatch::default();
        for key in 0..keys_per_send {
            batch.put((key as u64).to_be_bytes(), &value);
        }
        eprintln!(
            "store: {bench}: the peer's batch is {} keys, {} bytes",
            keys_per_send,
            batch.size_in_bytes()
        );
    }
    compare(
        bench,
        "sends/s",
        "rocksdb_writebatch_sync",
        Side::new((WRITERS * SENDS_PER_CALL) as f64, || run_ours(&store)),
        Side::new((WRITERS * SENDS_PER_CALL) as f64, || {
            std::thread::scope(|scope| {
                for _ in 0..WRITERS {
                    let (peer, next_key, sync, value) = (&peer, &next_key, &sync, &value);
                    scope.spawn(move || {
                        for _ in 0..SENDS_PER_CALL {
                            let mut batch = rocksdb::WriteBatch::default();
                            for _ in 0..keys_per_send {
                                let key = next_key.fetch_add(1, Ordering::Relaxed);
                                batch.put(key.to_be_bytes(), value);
                            }
                            peer.write_opt(batch, sync).expect("a peer write");
                        }
                    });
                }
            });
        }),
    );
}

/// `send_durable_hot_box`: 64 senders into one box (a bot's, a popular user's) against 64
/// senders into 64 boxes, both through our store in the default layout, every send synced.
/// Before group commit a hot box was one sync per send; the ratio is what sharing one box
/// still costs.
fn send_durable_hot_box(dir: &Path) {
    let hot_store =
        RocksMessageStore::open(dir.join("hot"), RocksOptions::default()).expect("store");
    let spread_store =
        RocksMessageStore::open(dir.join("spread"), RocksOptions::default()).expect("store");
    let next_id = AtomicI64::new(1);
    let run = |store: &RocksMessageStore, hot: bool| {
        std::thread::scope(|scope| {
            for writer in 0..WRITERS {
                let next_id = &next_id;
                scope.spawn(move || {
                    for _ in 0..SENDS_PER_CALL {
                        let random_id = next_id.fetch_add(1, Ordering::Relaxed);
                        let to = if hot { 5000 } else { 1001 + writer };
                        let sent = store.send(&request(1 + writer, to, random_id));
                        black_box(sent.expect("a send"));
                    }
                });
            }
        });
    };
    let syncs_before = metric(&hot_store, "rocksdb.wal.synced");
    run(&hot_store, true);
    let syncs = metric(&hot_store, "rocksdb.wal.synced") - syncs_before;
    eprintln!(
        "store: send_durable_hot_box: {} sends into one box took {syncs} WAL syncs",
        WRITERS * SENDS_PER_CALL
    );
    run(&spread_store, false);
    compare(
        "send_durable_hot_box",
        "sends/s",
        "send_durable_64",
        Side::new((WRITERS * SENDS_PER_CALL) as f64, || run(&hot_store, true)),
        Side::new((WRITERS * SENDS_PER_CALL) as f64, || {
            run(&spread_store, false);
        }),
    );
}

/// Chats, sends per chat: 500 × 1,000 sends, two copies each.
const CHATS: i64 = 500;
const PER_CHAT: i64 = 1000;

fn history(dir: &Path) {
    let mut options = RocksOptions::default();
    // Filling a million messages synced one by one would take minutes; the timer mode
    // writes the same rows.
    options.durability = Durability::Periodic(std::time::Duration::from_millis(100));
    let store = RocksMessageStore::open(dir.join("ours-history"), options).expect("store");
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let store = &store;
            scope.spawn(move || {
                for chat in (0..CHATS).filter(|chat| chat % 8 == worker) {
                    for n in 0..PER_CHAT {
                        let sender = if n % 2 == 0 { 1 + chat } else { 100_001 + chat };
                        let to = if n % 2 == 0 { 100_001 + chat } else { 1 + chat };
                        store
                            .send(&request(sender, to, chat * PER_CHAT + n))
                            .expect("a send");
                    }
                }
            });
        }
    });
    // The peer: the same rows (the messages of user 1 + chat with its partner) under the
    // same keys, in one RocksDB.
    let peer = raw_db(&dir.join("peer-history"));
    for chat in 0..CHATS {
        let user = 1 + chat;
        let partner = Peer::User(100_001 + chat);
        let page = store
            .get_messages(BoxId::User(user), &(1..=1000).collect::<Vec<i32>>())
            .expect("messages");
        let mut batch = rocksdb::WriteBatch::default();
        for (ordinal, message) in page.into_iter().enumerate() {
            let id = message.id;
            let record = MessageRecord {
                others: vec![(BoxId::User(100_001 + chat), id)],
                ordinal: i32::try_from(ordinal + 1).unwrap_or(0),
                message,
            };
            batch.put(
                keys::chat(BoxId::User(user), partner, id),
                encode_message(&record),
            );
        }
        peer.write(batch).expect("a peer write");
    }
    peer.flush().expect("flush");
    let mut rng_ours = ChaCha8Rng::seed_from_u64(11);
    let mut rng_peer = ChaCha8Rng::seed_from_u64(11);
    let pick = |rng: &mut ChaCha8Rng| {
        let chat = i64::try_from(rng.next_u64() % u64::try_from(CHATS).unwrap_or(1)).unwrap_or(0);
        let offset_id = 101 + i32::try_from(rng.next_u64() % 900).unwrap_or(0);
        (chat, offset_id)
    };
    compare(
        "history_page_100",
        "pages/s",
        "rocksdb_range_scan",
        Side::new(1.0, || {
            let (chat, offset_id) = pick(&mut rng_ours);
            let page = store
                .get_history(
                    BoxId::User(1 + chat),
                    Peer::User(100_001 + chat),
                    &HistoryQuery {
                        offset_id,
                        limit: 100,
                        ..HistoryQuery::default()
                    },
                )
                .expect("a page");
            assert_eq!(page.messages.len(), 100);
            black_box(page);
        }),
        Side::new(1.0, || {
            let (chat, offset_id) = pick(&mut rng_peer);
            let box_id = BoxId::User(1 + chat);
            let partner = Peer::User(100_001 + chat);
            let mut iterator = peer.raw_iterator();
            iterator.seek_for_prev(keys::chat(box_id, partner, offset_id - 1));
            let mut rows = Vec::with_capacity(100);
            while rows.len() < 100 && iterator.valid() {
                if let Some(value) = iterator.value() {
                    rows.push(value.to_vec());
                }
                iterator.prev();
            }
            assert_eq!(rows.len(), 100);
            black_box(rows);
        }),
    );
}

/// Peak resident memory of this process, from /proc.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn run() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The default layout (one instance), then four instances, where three private chats in
    // four cross instances and take two synced batches.
    send_durable(
        dir.path(),
        "send_durable_64",
        RocksOptions::default().instances,
    );
    send_durable(dir.path(), "send_durable_64_4_instances", 4);
    send_durable_hot_box(dir.path());
    history(dir.path());
    if let Some(kib) = peak_rss_kib() {
        eprintln!("store: peak RSS {} MiB", kib / 1024);
    }
}
