//! Crash test of the RocksDB file store: a child process uploads files in parts from several
//! threads (parts in random order, some uploads left unfinished), printing each
//! acknowledged part and finish; the parent kills it with SIGKILL at a random moment,
//! reopens the store and checks that every finished file reads back byte for byte and that
//! every unfinished upload resumes from the parts acknowledged (the parent sends the rest
//! and finishes it). At the end, after deleting every file and a sweep, no part row is left
//! in the database and no part file beside it.
//!
//! Its own `main` (no libtest harness), as `rocks_crash`. Cycles: `COLUMBA_CRASH_CYCLES`
//! (default 30).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod crash_harness;

use crash_harness::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use columba_store::file::{FileStoreConfig, FinishRequest};
use columba_store::{Durability, FileError, FileStore, RocksFileStore};

const THREADS: i64 = 4;
const PART: usize = 8 * 1024;
const NOW: i64 = 1_000;

fn open(dir: &Path) -> RocksFileStore {
    RocksFileStore::open(dir, FileStoreConfig::default(), Durability::Sync).unwrap()
}

/// A file's bytes, from its id alone: 1 to 24 parts, the last one short.
fn file_bytes(file_id: i64) -> Vec<u8> {
    let mut rng = Rng(u64::try_from(file_id).unwrap() * 0x9e37_79b9 + 7);
    let parts = 1 + rng.below(24);
    let len = usize::try_from((parts - 1) * PART as u64 + 1 + rng.below(PART as u64)).unwrap();
    (0..len).map(|_| rng.next() as u8).collect()
}

fn parts_of(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.chunks(PART).collect()
}

fn finish_request(owner: i64, file_id: i64, parts: usize) -> FinishRequest {
    FinishRequest {
        owner,
        file_id,
        parts: i32::try_from(parts).unwrap(),
        name: format!("{file_id}.bin"),
        md5_checksum: Some(String::new()),
    }
}

/// The uploader: prints `part <owner> <file_id> <index>` and `done <owner> <file_id>`.
fn child(dir: &Path, cycle: u64) {
    let store = Arc::new(open(dir));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = store.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                let mut rng = Rng((cycle << 8 | u64::try_from(thread).unwrap()) * 0x9e37 + 3);
                let started = Instant::now();
                let owner = 1 + thread;
                let mut n: i64 = 0;
                while started.elapsed() < Duration::from_secs(30) {
                    n += 1;
                    let file_id = i64::try_from(cycle).unwrap() * 100_000 + thread * 10_000 + n;
                    let bytes = file_bytes(file_id);
                    let parts = parts_of(&bytes);
                    let mut order: Vec<usize> = (0..parts.len()).collect();
                    for i in (1..order.len()).rev() {
                        order.swap(
                            i,
                            usize::try_from(rng.below(u64::try_from(i + 1).unwrap())).unwrap(),
                        );
                    }
                    for index in order {
                        store
                            .save_part(
                                owner,
                                file_id,
                                i32::try_from(index).unwrap(),
                                parts[index],
                                NOW,
                            )
                            .unwrap();
                        writeln!(out.lock().unwrap(), "part {owner} {file_id} {index}").unwrap();
                    }
                    // One upload in four is left unfinished.
                    if rng.below(4) == 0 {
                        continue;
                    }
                    store
                        .finish(&finish_request(owner, file_id, parts.len()), NOW)
                        .unwrap();
                    writeln!(out.lock().unwrap(), "done {owner} {file_id}").unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

fn read_all(store: &RocksFileStore, owner: i64, file_id: i64) -> Vec<u8> {
    let info = store
        .file(owner, file_id)
        .unwrap()
        .expect("a finished file");
    let mut bytes = Vec::new();
    let mut offset = 0i64;
    loop {
        let chunk = store
            .get_file(info.content, offset, 1 << 20, false)
            .unwrap();
        let done = chunk.len() < 1 << 20;
        bytes.extend_from_slice(&chunk);
        if done {
            break;
        }
        offset += 1 << 20;
    }
    assert_eq!(u64::try_from(bytes.len()).unwrap(), info.size);
    bytes
}

fn parent() {
    let cycles = crash_harness::cycles(30);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xf11e_5eed);
    // Finished files to check again after every later crash.
    let mut finished: BTreeSet<(i64, i64)> = BTreeSet::new();
    let mut resumed = 0usize;
    let started = Instant::now();
    for cycle in 1..=cycles {
        let lines = crash_harness::run_and_kill(
            dir.path(),
            cycle,
            Duration::from_millis(30 + rng.below(400)),
        );
        let mut acked_parts: BTreeMap<(i64, i64), BTreeSet<usize>> = BTreeMap::new();
        for line in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["part", owner, file_id, index] => {
                    acked_parts
                        .entry((owner.parse().unwrap(), file_id.parse().unwrap()))
                        .or_default()
                        .insert(index.parse().unwrap());
                }
                ["done", owner, file_id] => {
                    finished.insert((owner.parse().unwrap(), file_id.parse().unwrap()));
                }
                _ => {}
            }
        }
        let store = open(dir.path());
        for &(owner, file_id) in &finished {
            assert_eq!(
                read_all(&store, owner, file_id),
                file_bytes(file_id),
                "cycle {cycle}: file {file_id}"
            );
        }
        // Uploads cut short: send what was not acknowledged, then finish.
        for (&(owner, file_id), acked) in &acked_parts {
            if finished.contains(&(owner, file_id)) {
                continue;
            }
            if store.file(owner, file_id).unwrap().is_none() {
                let bytes = file_bytes(file_id);
                let parts = parts_of(&bytes);
                // Every acknowledged part must be there: finishing with only those fails on
                // the first one not acknowledged, never on an acknowledged one.
                match store.finish(&finish_request(owner, file_id, parts.len()), NOW) {
                    Err(FileError::FilePartMissing(missing)) => {
                        let missing = usize::try_from(missing).unwrap();
                        assert!(
                            !acked.contains(&missing),
                            "cycle {cycle}: acknowledged part {missing} of {file_id} lost"
                        );
                    }
                    Ok(_) => {}
                    Err(other) => panic!("cycle {cycle}: {other:?}"),
                }
                for (index, part) in parts.iter().enumerate() {
                    if !acked.contains(&index) && store.file(owner, file_id).unwrap().is_none() {
                        store
                            .save_part(owner, file_id, i32::try_from(index).unwrap(), part, NOW)
                            .unwrap();
                    }
                }
                if store.file(owner, file_id).unwrap().is_none() {
                    store
                        .finish(&finish_request(owner, file_id, parts.len()), NOW)
                        .unwrap();
                }
                resumed += 1;
            }
            assert_eq!(
                read_all(&store, owner, file_id),
                file_bytes(file_id),
                "cycle {cycle}: resumed {file_id}"
            );
            finished.insert((owner, file_id));
        }
    }
    // Everything deleted and swept: no part bytes are left.
    {
        let store = open(dir.path());
        for &(owner, file_id) in &finished {
            assert!(store.delete_file(owner, file_id).unwrap());
        }
        store.sweep(NOW + 1_000_000).unwrap();
    }
    let db = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        dir.path().join("db"),
        ["parts", "files"],
        false,
    )
    .unwrap();
    let left = db
        .iterator_cf(db.cf_handle("parts").unwrap(), rocksdb::IteratorMode::Start)
        .count();
    assert_eq!(
        left, 0,
        "part rows left after deleting every file and sweeping"
    );
    let files = std::fs::read_dir(dir.path().join("parts")).unwrap().count();
    assert_eq!(
        files, 0,
        "part files left after deleting every file and sweeping"
    );
    assert!(
        finished.len() > usize::try_from(cycles).unwrap(),
        "the child finished almost nothing"
    );
    println!(
        "file crash test: {cycles} SIGKILL cycles, {} files read back intact, {resumed} interrupted uploads resumed from their acknowledged parts, nothing left after the sweep, {:.1} s",
        finished.len(),
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    crash_harness::main("acknowledged_uploads_survive_sigkill", child, parent);
}
