//! Suite `files`: the RocksDB file store against plain files doing the same I/O.
//!
//! - `upload_512k_parts`: MB/s uploading 64 MiB as 512 KiB parts (`saveBigFilePart`) from 4
//!   uploaders at once (16 MiB each, distinct contents), every part synced (the default
//!   durability), each upload finished (all parts read back, checked and hashed). Peer
//!   (`fdatasync_sequential_write`): the same 64 MiB written to a plain file in 512 KiB writes,
//!   each followed by `fdatasync`.
//! - `get_file_1mib`: MB/s reading a finished 64 MiB file in 1 MiB `upload.getFile` windows at
//!   random offsets, every part's SHA-256 checked as it is read. Peer (`pread`): `pread` of
//!   the same 1 MiB windows from a plain file holding the same bytes (page cache warm, as our
//!   blob files are).
//!
//! Both live in a temporary directory, deleted at the end.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]

use std::fs::File;
use std::hint::black_box;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use columba_store::file::{FileStoreConfig, FinishRequest};
use columba_store::{Durability, FileStore, RocksFileStore};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::{Side, compare};

const PART: usize = 512 * 1024;
const UPLOADERS: usize = 4;
const PER_UPLOADER: usize = 16 << 20;
const TOTAL: usize = UPLOADERS * PER_UPLOADER;
const MB: f64 = 1_000_000.0;

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out
}

fn upload(dir: &Path) {
    let store = RocksFileStore::open(
        dir.join("ours-upload"),
        FileStoreConfig::default(),
        Durability::Sync,
    )
    .expect("file store");
    let contents: Vec<Vec<u8>> = (0..UPLOADERS)
        .map(|i| bytes(i as u64, PER_UPLOADER))
        .collect();
    let next_id = AtomicI64::new(1);
    let parts = i32::try_from(PER_UPLOADER / PART).unwrap_or(i32::MAX);
    let peer_path = dir.join("peer-upload.bin");
    let all: Vec<u8> = contents.concat();
    compare(
        "upload_512k_parts",
        "MB/s",
        "fdatasync_sequential_write",
        Side::timed(TOTAL as f64 / MB, || {
            let started = Instant::now();
            let ids: Vec<i64> = std::thread::scope(|scope| {
                let handles: Vec<_> = contents
                    .iter()
                    .enumerate()
                    .map(|(uploader, content)| {
                        let (store, next_id) = (&store, &next_id);
                        scope.spawn(move || {
                            let file_id = next_id.fetch_add(1, Ordering::Relaxed);
                            // A different first byte per upload: no two are the same content.
                            let mut first = content[..PART].to_vec();
                            first[0] = file_id as u8;
                            for (index, part) in content.chunks(PART).enumerate() {
                                let part = if index == 0 { &first[..] } else { part };
                                let index = i32::try_from(index).unwrap_or(i32::MAX);
                                store
                                    .save_big_part(uploader as i64, file_id, index, parts, part, 0)
                                    .expect("a part");
                            }
                            let finish = FinishRequest {
                                owner: uploader as i64,
                                file_id,
                                parts,
                                name: "bench.bin".into(),
                                md5_checksum: None,
                            };
                            store.finish(&finish, 0).expect("a finish");
                            file_id
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| handle.join().expect("an uploader"))
                    .collect()
            });
            let spent = started.elapsed();
            for (uploader, file_id) in ids.into_iter().enumerate() {
                store
                    .delete_file(uploader as i64, file_id)
                    .expect("a delete");
            }
            spent
        }),
        Side::timed(TOTAL as f64 / MB, || {
            let started = Instant::now();
            let mut file = File::create(&peer_path).expect("a peer file");
            for part in all.chunks(PART) {
                file.write_all(part).expect("a write");
                file.sync_data().expect("fdatasync");
            }
            let spent = started.elapsed();
            drop(file);
            let _ = std::fs::remove_file(&peer_path);
            spent
        }),
    );
}

fn download(dir: &Path) {
    let store = RocksFileStore::open(
        dir.join("ours-download"),
        FileStoreConfig::default(),
        Durability::Sync,
    )
    .expect("file store");
    let content = bytes(99, TOTAL);
    let parts = i32::try_from(TOTAL / PART).unwrap_or(i32::MAX);
    for (index, part) in content.chunks(PART).enumerate() {
        store
            .save_big_part(1, 1, i32::try_from(index).unwrap_or(0), parts, part, 0)
            .expect("a part");
    }
    let info = store
        .finish(
            &FinishRequest {
                owner: 1,
                file_id: 1,
                parts,
                name: "bench.bin".into(),
                md5_checksum: None,
            },
            0,
        )
        .expect("a finish");
    let peer_path = dir.join("peer-download.bin");
    std::fs::write(&peer_path, &content).expect("a peer file");
    let peer = File::open(&peer_path).expect("a peer file");
    let windows = (TOTAL >> 20) as u64;
    let mut rng_ours = ChaCha8Rng::seed_from_u64(5);
    let mut rng_peer = ChaCha8Rng::seed_from_u64(5);
    let mut buf = vec![0u8; 1 << 20];
    compare(
        "get_file_1mib",
        "MB/s",
        "pread",
        Side::new((1 << 20) as f64 / MB, || {
            let offset = (rng_ours.next_u64() % windows) << 20;
            let got = store
                .get_file(
                    info.content,
                    i64::try_from(offset).unwrap_or(0),
                    1 << 20,
                    false,
                )
                .expect("a window");
            assert_eq!(got.len(), 1 << 20);
            black_box(got);
        }),
        Side::new((1 << 20) as f64 / MB, || {
            let offset = (rng_peer.next_u64() % windows) << 20;
            peer.read_exact_at(&mut buf, offset).expect("pread");
            black_box(&buf);
        }),
    );
}

pub(crate) fn run() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    upload(dir.path());
    download(dir.path());
}
