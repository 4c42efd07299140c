//! The RocksDB file store: the shared conformance suite and model test, plus what only a
//! persistent store has (reopening, corruption on disk, the sweep leaving no bytes behind).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code"
)]

use columba_store::file::conformance::{self, content};
use columba_store::file::{ContentId, FileHash, FileInfo, FileStoreConfig, FinishRequest};
use columba_store::{Durability, FileError, FileStore, RocksFileStore};

/// A store in a temporary directory that goes with it.
struct TempStore {
    store: RocksFileStore,
    _dir: tempfile::TempDir,
}

impl FileStore for TempStore {
    fn save_part(
        &self,
        owner: i64,
        file_id: i64,
        part: i32,
        bytes: &[u8],
        now: i64,
    ) -> Result<(), FileError> {
        self.store.save_part(owner, file_id, part, bytes, now)
    }
    fn save_big_part(
        &self,
        owner: i64,
        file_id: i64,
        part: i32,
        total_parts: i32,
        bytes: &[u8],
        now: i64,
    ) -> Result<(), FileError> {
        self.store
            .save_big_part(owner, file_id, part, total_parts, bytes, now)
    }
    fn finish(&self, request: &FinishRequest, now: i64) -> Result<FileInfo, FileError> {
        self.store.finish(request, now)
    }
    fn file(&self, owner: i64, file_id: i64) -> Result<Option<FileInfo>, FileError> {
        self.store.file(owner, file_id)
    }
    fn get_file(
        &self,
        content: ContentId,
        offset: i64,
        limit: i32,
        precise: bool,
    ) -> Result<Vec<u8>, FileError> {
        self.store.get_file(content, offset, limit, precise)
    }
    fn get_file_hashes(&self, content: ContentId, offset: i64) -> Result<Vec<FileHash>, FileError> {
        self.store.get_file_hashes(content, offset)
    }
    fn delete_file(&self, owner: i64, file_id: i64) -> Result<bool, FileError> {
        self.store.delete_file(owner, file_id)
    }
    fn sweep(&self, now: i64) -> Result<usize, FileError> {
        self.store.sweep(now)
    }
}

fn temp_store(config: FileStoreConfig) -> Box<dyn FileStore> {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksFileStore::open(
        dir.path(),
        config,
        Durability::Periodic(std::time::Duration::from_millis(200)),
    )
    .unwrap();
    Box::new(TempStore { store, _dir: dir })
}

#[test]
fn rocksdb_file_store_passes_the_conformance_suite() {
    conformance::run_all(&temp_store);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

    /// Random part uploads (repeats, gaps, small and big), finishes, reads, deletes and
    /// expiry with a simulated clock agree with the reference model.
    #[test]
    fn rocksdb_file_store_agrees_with_the_model(ops in conformance::ops()) {
        conformance::model_agrees(&temp_store, &ops);
    }
}

fn finish(file_id: i64, parts: i32) -> FinishRequest {
    FinishRequest {
        owner: 1,
        file_id,
        parts,
        name: "f.bin".into(),
        md5_checksum: Some(String::new()),
    }
}

/// The part rows in the database and the part files beside it, read behind the store's
/// back (the sweep and deletes must leave neither behind).
fn parts_left(dir: &std::path::Path) -> (usize, usize) {
    let rows = {
        let db = rocksdb::DB::open_cf_for_read_only(
            &rocksdb::Options::default(),
            dir.join("db"),
            ["parts", "files"],
            false,
        )
        .unwrap();
        let cf = db.cf_handle("parts").unwrap();
        db.iterator_cf(cf, rocksdb::IteratorMode::Start).count()
    };
    let files = std::fs::read_dir(dir.join("parts")).unwrap().count();
    (rows, files)
}

#[test]
fn files_survive_a_reopen_and_uploads_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(5 * 16384 + 10, 3);
    let parts: Vec<&[u8]> = data.chunks(16384).collect();
    let info = {
        let store =
            RocksFileStore::open(dir.path(), FileStoreConfig::default(), Durability::Sync).unwrap();
        for (index, part) in parts.iter().enumerate() {
            store.save_part(1, 10, index as i32, part, 100).unwrap();
        }
        let info = store.finish(&finish(10, parts.len() as i32), 101).unwrap();
        // Half of another upload.
        for index in 0..3 {
            store
                .save_part(1, 11, index, parts[index as usize], 102)
                .unwrap();
        }
        info
    };
    let store =
        RocksFileStore::open(dir.path(), FileStoreConfig::default(), Durability::Sync).unwrap();
    assert_eq!(store.file(1, 10).unwrap(), Some(info.clone()));
    assert_eq!(
        store.get_file(info.content, 0, 1 << 20, false).unwrap(),
        data
    );
    // The unfinished upload resumes from the parts it had.
    assert_eq!(
        store.finish(&finish(11, 6), 103),
        Err(FileError::FilePartMissing(3))
    );
    for index in 3..6 {
        store
            .save_part(1, 11, index, parts[index as usize], 104)
            .unwrap();
    }
    let again = store.finish(&finish(11, 6), 105).unwrap();
    assert_eq!(again.content, info.content, "identical content, one copy");
    // New uploads do not reuse the blob numbers of stored parts.
    store.save_part(1, 12, 0, b"fresh", 106).unwrap();
    assert_eq!(
        store.get_file(info.content, 0, 1 << 20, false).unwrap(),
        data
    );
}

#[test]
fn a_flipped_byte_on_disk_is_reported_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        RocksFileStore::open(dir.path(), FileStoreConfig::default(), Durability::Sync).unwrap();
    let part = vec![7u8; 4096];
    store.save_part(1, 10, 0, &part, 0).unwrap();
    store.save_part(1, 10, 1, &part, 0).unwrap();
    assert!(store.corrupt_part(1, 10, 1));
    assert_eq!(
        store.finish(&finish(10, 2), 1),
        Err(FileError::Corrupted {
            file_id: 10,
            part: 1
        })
    );
    store.save_part(1, 10, 1, &part, 2).unwrap();
    let info = store.finish(&finish(10, 2), 3).unwrap();
    assert_eq!(store.get_file(info.content, 0, 4096, false).unwrap(), part);
    assert!(store.corrupt_content(info.content, 5000));
    assert!(matches!(
        store.get_file(info.content, 4096, 4096, false),
        Err(FileError::Corrupted { .. })
    ));
    assert_eq!(
        store.get_file(info.content, 0, 4096, false).unwrap(),
        part,
        "the sound part still reads"
    );
}

#[test]
fn the_sweep_and_deletes_leave_no_part_bytes_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = FileStoreConfig::default();
    config.upload_ttl = 100;
    {
        let store = RocksFileStore::open(dir.path(), config, Durability::Sync).unwrap();
        let part = content(8192, 9);
        for file_id in 0..4 {
            store.save_part(1, file_id, 0, &part, 10).unwrap();
            store.save_part(1, file_id, 1, &part, 10).unwrap();
        }
        let kept = store.finish(&finish(0, 2), 20).unwrap();
        let twin = store.finish(&finish(1, 2), 20).unwrap();
        assert_eq!(kept.content, twin.content);
        assert_eq!(store.sweep(200).unwrap(), 2, "the two unfinished uploads");
        assert!(store.delete_file(1, 0).unwrap());
        assert_eq!(
            store.get_file(twin.content, 0, 8192, false).unwrap(),
            part,
            "one reference left"
        );
        assert!(store.delete_file(1, 1).unwrap());
        assert_eq!(
            store.get_file(twin.content, 0, 8192, false),
            Err(FileError::FileIdInvalid)
        );
    }
    assert_eq!(parts_left(dir.path()), (0, 0));
}

#[test]
fn part_files_no_row_names_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let part = content(4096, 4);
    {
        let store =
            RocksFileStore::open(dir.path(), FileStoreConfig::default(), Durability::Sync).unwrap();
        store.save_part(1, 1, 0, &part, 10).unwrap();
    }
    assert_eq!(parts_left(dir.path()), (1, 1));
    // What a crash between a part's write and its row (or between a delete's rows and its
    // file) leaves: a file no row names.
    std::fs::write(dir.path().join("parts/00000000000000ff.parts"), &part).unwrap();
    assert_eq!(parts_left(dir.path()), (1, 2));
    let store =
        RocksFileStore::open(dir.path(), FileStoreConfig::default(), Durability::Sync).unwrap();
    assert_eq!(
        parts_left(dir.path()),
        (1, 1),
        "the orphan went, the upload stayed"
    );
    store.save_part(1, 1, 1, &part, 11).unwrap();
    let info = store.finish(&finish(1, 2), 12).unwrap();
    assert_eq!(
        store.get_file(info.content, 4096, 4096, false).unwrap(),
        part
    );
}

#[test]
fn a_torn_replacement_leaves_the_acknowledged_part_intact() {
    let dir = tempfile::tempdir().unwrap();
    let first = content(8192, 5);
    {
        let store =
            RocksFileStore::open(dir.path(), FileStoreConfig::default(), Durability::Sync).unwrap();
        store.save_part(1, 1, 0, &first, 10).unwrap();
    }
    // A crash in the middle of storing part 0 again: its other slot (the second 512 KiB of
    // the file) holds half of the new bytes, and no row names them.
    let path = std::fs::read_dir(dir.path().join("parts"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    {
        use std::os::unix::fs::FileExt as _;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0xAA; 4096], 512 * 1024).unwrap();
    }
    let store =
        RocksFileStore::open(dir.path(), FileStoreConfig::default(), Durability::Sync).unwrap();
    let info = store.finish(&finish(1, 1), 11).unwrap();
    assert_eq!(store.get_file(info.content, 0, 8192, false).unwrap(), first);
    // Replaced for real, twice: each read gives the latest bytes.
    let second = content(8192, 6);
    let third = content(8192, 7);
    store.save_part(1, 2, 0, &first, 12).unwrap();
    store.save_part(1, 2, 0, &second, 12).unwrap();
    store.save_part(1, 2, 0, &third, 12).unwrap();
    let info = store.finish(&finish(2, 1), 13).unwrap();
    assert_eq!(store.get_file(info.content, 0, 8192, false).unwrap(), third);
}

#[test]
fn hashes_taken_as_parts_arrive_agree_with_hashes_read_back() {
    use md5::{Digest as _, Md5};
    let dir = tempfile::tempdir().unwrap();
    let store =
        RocksFileStore::open(dir.path(), FileStoreConfig::default(), Durability::Sync).unwrap();
    let part_len = 128 * 1024;
    let data = content(5 * part_len + 1000, 8);
    let parts: Vec<&[u8]> = data.chunks(part_len).collect();
    let md5: String = Md5::digest(&data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let request = |file_id: i64, md5: &str| FinishRequest {
        owner: 1,
        file_id,
        parts: 6,
        name: "f.bin".into(),
        md5_checksum: Some(md5.to_owned()),
    };
    // In order (hashed as the parts come), in reverse (read back at finish), and in order
    // with a part stored again (read back too).
    for (index, part) in parts.iter().enumerate() {
        store.save_part(1, 1, index as i32, part, 10).unwrap();
    }
    for (index, part) in parts.iter().enumerate().rev() {
        store.save_part(1, 2, index as i32, part, 10).unwrap();
    }
    for (index, part) in parts.iter().enumerate() {
        store.save_part(1, 3, index as i32, part, 10).unwrap();
        if index == 2 {
            store.save_part(1, 3, 1, &content(part_len, 9), 10).unwrap();
        }
    }
    let in_order = store.finish(&request(1, &md5), 11).unwrap();
    let reversed = store.finish(&request(2, &md5), 11).unwrap();
    let replaced = store.finish(&request(3, ""), 11).unwrap();
    assert_eq!(
        in_order.content.0,
        <sha2::Sha256 as sha2::Digest>::digest(&data).as_slice()
    );
    assert_eq!(in_order.content, reversed.content);
    let mut changed = data.clone();
    changed[part_len..2 * part_len].copy_from_slice(&content(part_len, 9));
    assert_eq!(
        replaced.content.0,
        <sha2::Sha256 as sha2::Digest>::digest(&changed).as_slice(),
        "the hash is of the part stored last"
    );
    let hashes = store.get_file_hashes(in_order.content, 0).unwrap();
    assert_eq!(hashes.len(), 6);
    for hash in &hashes {
        let start = usize::try_from(hash.offset).unwrap();
        let end = start + usize::try_from(hash.limit).unwrap();
        assert_eq!(
            hash.hash.as_slice(),
            <sha2::Sha256 as sha2::Digest>::digest(&data[start..end]).as_slice()
        );
    }
    // A wrong MD5 is caught on both paths.
    let wrong = "0".repeat(32);
    for file_id in [4, 5] {
        for step in 0..parts.len() {
            let index = if file_id == 4 {
                step
            } else {
                parts.len() - 1 - step
            };
            store
                .save_part(1, file_id, index as i32, parts[index], 10)
                .unwrap();
        }
        assert_eq!(
            store.finish(&request(file_id, &wrong), 11),
            Err(FileError::Md5ChecksumInvalid)
        );
        // The failed finish keeps the upload: the right MD5 then finishes it.
        assert_eq!(
            store.finish(&request(file_id, &md5), 11).unwrap().content,
            in_order.content
        );
    }
}
