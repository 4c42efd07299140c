//! The behaviour every [`FileStore`] backend must show. Backends call [`run_all`] with a
//! function that makes a fresh, empty store with the given limits.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a panic with a message"
)]

use md5::{Digest as _, Md5};

use super::rules::FileError;
use super::{FileStore, FileStoreConfig, FinishRequest};

/// Makes a fresh, empty store with these limits.
pub type Factory<'a> = &'a dyn Fn(FileStoreConfig) -> Box<dyn FileStore>;

/// Runs every check.
pub fn run_all(factory: Factory<'_>) {
    parts_in_any_order_make_the_file(factory);
    owners_are_kept_apart(factory);
    finishing_checks_parts_and_md5(factory);
    big_files_keep_their_total(factory);
    identical_content_is_stored_once(factory);
    unfinished_uploads_expire(factory);
    downloads_follow_get_file_rules(factory);
}

/// Deterministic bytes of a file.
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `inputFile`: a small file, with its MD5 (empty when the client gives none).
fn finish(owner: i64, file_id: i64, parts: i32, md5: Option<String>) -> FinishRequest {
    FinishRequest {
        owner,
        file_id,
        parts,
        name: "file.bin".to_owned(),
        md5_checksum: Some(md5.unwrap_or_default()),
    }
}

/// `inputFileBig`: a big file, no MD5.
fn finish_big(owner: i64, file_id: i64, parts: i32) -> FinishRequest {
    FinishRequest {
        owner,
        file_id,
        parts,
        name: "big.bin".to_owned(),
        md5_checksum: None,
    }
}

fn store(factory: Factory<'_>) -> Box<dyn FileStore> {
    factory(FileStoreConfig::default())
}

/// Parts sent out of order and twice make the file; it reads back byte for byte.
pub fn parts_in_any_order_make_the_file(factory: Factory<'_>) {
    let store = store(factory);
    let data = content(3 * 8192 + 100, 1);
    let parts: Vec<&[u8]> = data.chunks(8192).collect();
    for index in [3usize, 0, 2, 1, 2] {
        store
            .save_part(1, 77, index as i32, parts[index], 10)
            .unwrap();
    }
    let info = store
        .finish(&finish(1, 77, 4, Some(md5_hex(&data))), 11)
        .unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(store.file(1, 77).unwrap(), Some(info.clone()));
    let read = store.get_file(info.content, 0, 1024 * 1024, false).unwrap();
    assert_eq!(read, data);
    let hashes = store.get_file_hashes(info.content, 0).unwrap();
    assert_eq!(hashes.len(), 1);
    assert_eq!(u64::from(hashes[0].limit), data.len() as u64);
}

/// Another owner neither adds to nor finishes someone's upload.
pub fn owners_are_kept_apart(factory: Factory<'_>) {
    let store = store(factory);
    let data = content(4096, 2);
    store.save_part(1, 5, 0, &data, 0).unwrap();
    store.save_part(2, 5, 1, &content(10, 9), 0).unwrap();
    assert_eq!(
        store.finish(&finish(2, 5, 1, None), 1),
        Err(FileError::FilePartMissing(0))
    );
    let info = store.finish(&finish(1, 5, 1, None), 1).unwrap();
    assert_eq!(store.get_file(info.content, 0, 4096, false).unwrap(), data);
    assert_eq!(store.file(2, 5).unwrap(), None);
}

/// Missing parts are named; a wrong MD5 is refused; the parts survive a failed finish.
pub fn finishing_checks_parts_and_md5(factory: Factory<'_>) {
    let store = store(factory);
    let data = content(3 * 4096, 3);
    store.save_part(1, 9, 0, &data[..4096], 0).unwrap();
    store.save_part(1, 9, 2, &data[8192..], 0).unwrap();
    assert_eq!(
        store.finish(&finish(1, 9, 3, None), 1),
        Err(FileError::FilePartMissing(1))
    );
    store.save_part(1, 9, 1, &data[4096..8192], 0).unwrap();
    assert_eq!(
        store.finish(&finish(1, 9, 3, Some("00".repeat(16))), 1),
        Err(FileError::Md5ChecksumInvalid)
    );
    assert!(
        store
            .finish(&finish(1, 9, 3, Some(md5_hex(&data))), 1)
            .is_ok()
    );
    // The id now names a finished file: it cannot be finished again.
    store.save_part(1, 9, 0, &data[..4096], 2).unwrap();
    assert_eq!(
        store.finish(&finish(1, 9, 1, None), 2),
        Err(FileError::FileIdInvalid)
    );
    assert_eq!(
        store.finish(&finish(1, 9, 0, None), 1),
        Err(FileError::FilePartsInvalid)
    );
    // Part size rules on save.
    assert_eq!(
        store.save_part(1, 10, 0, &[], 0),
        Err(FileError::FilePartEmpty)
    );
    assert_eq!(
        store.save_part(1, 10, 0, &content(512 * 1024 + 1, 0), 0),
        Err(FileError::FilePartTooBig)
    );
    store.save_part(1, 10, 0, &content(3000, 0), 0).unwrap();
    assert_eq!(
        store.save_part(1, 10, 1, &content(3000, 0), 0),
        Err(FileError::FilePartSizeInvalid)
    );
    assert_eq!(
        store.save_part(1, 10, 4000, &content(1024, 0), 0),
        Err(FileError::FilePartInvalid)
    );
}

/// A big file announces its total with every part; it may not change, and the finish must
/// name it. Over 10 MB through small parts is refused.
pub fn big_files_keep_their_total(factory: Factory<'_>) {
    let store = store(factory);
    let part = content(512 * 1024, 4);
    store.save_big_part(1, 20, 0, 3, &part, 0).unwrap();
    assert_eq!(
        store.save_big_part(1, 20, 1, 4, &part, 0),
        Err(FileError::FilePartsInvalid)
    );
    assert_eq!(
        store.save_big_part(1, 20, 3, 3, &part, 0),
        Err(FileError::FilePartInvalid)
    );
    store.save_big_part(1, 20, 1, 3, &part, 0).unwrap();
    store.save_big_part(1, 20, 2, 3, &part[..100], 0).unwrap();
    assert_eq!(
        store.finish(&finish_big(1, 20, 2), 1),
        Err(FileError::FilePartsInvalid)
    );
    assert_eq!(
        store.finish(&finish(1, 20, 3, None), 1),
        Err(FileError::FilePartsInvalid),
        "inputFile for a big upload"
    );
    let info = store.finish(&finish_big(1, 20, 3), 1).unwrap();
    assert_eq!(info.size, 2 * 512 * 1024 + 100);
    assert_eq!(
        store.finish(&finish_big(1, 20, 3), 1),
        Err(FileError::FilePartMissing(0)),
        "parts released"
    );
    // Through saveFilePart, the part that takes the upload over 10 MB is refused.
    for index in 0..20 {
        store.save_part(1, 21, index, &part, 0).unwrap();
    }
    assert_eq!(
        store.save_part(1, 21, 20, &part, 0),
        Err(FileError::FilePartsInvalid)
    );
    // A failed first part leaves nothing behind for the sweep to count.
    assert_eq!(
        store.save_part(1, 22, 0, &[], 0),
        Err(FileError::FilePartEmpty)
    );
    assert_eq!(store.sweep(i64::MAX).unwrap(), 1, "only upload 21");
}

/// The same bytes from two owners are one content; it goes with the last file using it.
pub fn identical_content_is_stored_once(factory: Factory<'_>) {
    let store = store(factory);
    let data = content(5000, 5);
    store.save_part(1, 1, 0, &data, 0).unwrap();
    store.save_part(2, 8, 0, &data, 0).unwrap();
    let first = store.finish(&finish(1, 1, 1, None), 1).unwrap();
    let second = store.finish(&finish(2, 8, 1, None), 1).unwrap();
    assert_eq!(first.content, second.content);
    assert!(store.delete_file(1, 1).unwrap());
    assert_eq!(store.get_file(first.content, 0, 8192, false).unwrap(), data);
    assert!(store.delete_file(2, 8).unwrap());
    assert!(!store.delete_file(2, 8).unwrap());
    assert_eq!(
        store.get_file(first.content, 0, 8192, false),
        Err(FileError::FileIdInvalid)
    );
}

/// An upload idle past the TTL cannot be finished, and the sweep reclaims it.
pub fn unfinished_uploads_expire(factory: Factory<'_>) {
    let store = factory(FileStoreConfig {
        upload_ttl: 100,
        ..FileStoreConfig::default()
    });
    store.save_part(1, 3, 0, &content(1024, 6), 1000).unwrap();
    store.save_part(1, 4, 0, &content(1024, 6), 1050).unwrap();
    assert_eq!(
        store.finish(&finish(1, 3, 1, None), 1100),
        Err(FileError::FilePartMissing(0))
    );
    assert_eq!(store.sweep(1100).unwrap(), 1);
    assert!(
        store.finish(&finish(1, 4, 1, None), 1100).is_ok(),
        "still within its TTL"
    );
    assert_eq!(store.sweep(10_000).unwrap(), 0);
}

/// Downloads check offsets and limits; reads past the end are short or empty.
pub fn downloads_follow_get_file_rules(factory: Factory<'_>) {
    let store = store(factory);
    let data = content(300 * 1024, 7);
    for (index, chunk) in data.chunks(128 * 1024).enumerate() {
        store.save_part(1, 30, index as i32, chunk, 0).unwrap();
    }
    let info = store.finish(&finish(1, 30, 3, None), 1).unwrap();
    assert_eq!(
        store.get_file(info.content, 4096, 4096, false).unwrap(),
        data[4096..8192]
    );
    assert_eq!(
        store.get_file(info.content, 1024, 2048, true).unwrap(),
        data[1024..3072]
    );
    assert_eq!(
        store
            .get_file(info.content, 256 * 1024, 256 * 1024, false)
            .unwrap(),
        data[256 * 1024..]
    );
    assert!(
        store
            .get_file(info.content, 1024 * 1024, 4096, false)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.get_file(info.content, 1000, 4096, false),
        Err(FileError::OffsetInvalid)
    );
    assert_eq!(
        store.get_file(info.content, 0, 3 * 4096, false),
        Err(FileError::LimitInvalid)
    );
    let hashes = store.get_file_hashes(info.content, 130 * 1024).unwrap();
    assert_eq!(
        hashes.iter().map(|h| h.offset).collect::<Vec<_>>(),
        vec![128 * 1024, 256 * 1024]
    );
    assert_eq!(hashes[1].limit, 44 * 1024);
}

/// One step of the model-based test.
#[derive(Debug, Clone)]
pub enum Op {
    /// Save a part: `short` makes it 100 bytes instead of 4 KiB; `total` makes it a big-file
    /// part.
    Save {
        /// 1..=2.
        owner: i64,
        /// 1..=3.
        file_id: i64,
        /// 0..5.
        part: i32,
        /// A 100-byte part.
        short: bool,
        /// `saveBigFilePart`'s total.
        total: Option<i32>,
        /// A content seed.
        seed: u8,
    },
    /// Finish with `parts` parts: `md5` None is `inputFileBig`; Some(true) `inputFile` with
    /// the right checksum, Some(false) with a wrong one.
    Finish {
        /// Owner.
        owner: i64,
        /// File id.
        file_id: i64,
        /// Parts.
        parts: i32,
        /// Some(true): the right MD5; Some(false): a wrong one; None: none.
        md5: Option<bool>,
    },
    /// Read the finished file from the start.
    Read {
        /// Owner.
        owner: i64,
        /// File id.
        file_id: i64,
    },
    /// Delete a finished file.
    Delete {
        /// Owner.
        owner: i64,
        /// File id.
        file_id: i64,
    },
    /// Time passes (seconds).
    Advance {
        /// Seconds.
        secs: i64,
    },
    /// Expired uploads are swept.
    Sweep,
}

#[derive(Debug, Default, Clone)]
struct ModelUpload {
    total: Option<u32>,
    sizes: super::rules::PartSizes,
    parts: std::collections::BTreeMap<u32, Vec<u8>>,
    touched: i64,
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// Applies `ops` to a fresh store and a reference model, comparing every result.
pub fn model_agrees(factory: Factory<'_>, ops: &[Op]) {
    use std::collections::BTreeMap;
    let ttl = 600;
    let store = factory(FileStoreConfig {
        upload_ttl: ttl,
        max_parts: 5,
    });
    let mut uploads: BTreeMap<(i64, i64), ModelUpload> = BTreeMap::new();
    let mut files: BTreeMap<(i64, i64), Vec<u8>> = BTreeMap::new();
    let mut now = 1_000i64;
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Save {
                owner,
                file_id,
                part,
                short,
                total,
                seed,
            } => {
                let bytes = content(if short { 100 } else { 4096 }, seed);
                let got = match total {
                    Some(total) => store.save_big_part(owner, file_id, part, total, &bytes, now),
                    None => store.save_part(owner, file_id, part, &bytes, now),
                };
                let expected = (|| {
                    let index = super::rules::check_part_index(part, total, 5)?;
                    let total = total.and_then(|t| u32::try_from(t).ok());
                    // An expired upload is as good as gone: parts start over (once a
                    // part is accepted; a refused one changes nothing).
                    let live = uploads
                        .get(&(owner, file_id))
                        .filter(|u| now < u.touched + ttl);
                    if live.is_some_and(|u| u.total != total) {
                        return Err(FileError::FilePartsInvalid);
                    }
                    let sizes = live.map(|u| u.sizes.clone()).unwrap_or_default();
                    sizes.check(index, bytes.len(), total.map(|t| t - 1))?;
                    if live.is_none() {
                        uploads.insert((owner, file_id), ModelUpload::default());
                    }
                    let upload = uploads.entry((owner, file_id)).or_default();
                    upload.total = total;
                    upload.sizes.insert(index, bytes.len());
                    upload.parts.insert(index, bytes.clone());
                    upload.touched = now;
                    Ok(())
                })();
                assert_eq!(got, expected, "step {step}: save");
            }
            Op::Finish {
                owner,
                file_id,
                parts,
                md5,
            } => {
                let mut request = match md5 {
                    None => finish_big(owner, file_id, parts),
                    Some(_) => finish(owner, file_id, parts, None),
                };
                let upload = uploads.get(&(owner, file_id)).cloned();
                let whole: Vec<u8> = upload
                    .as_ref()
                    .map(|u| {
                        u.parts
                            .range(..u32::try_from(parts).unwrap_or(0))
                            .flat_map(|(_, b)| b.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(right) = md5 {
                    request.md5_checksum = Some(if right {
                        md5_hex(&whole)
                    } else {
                        "ab".repeat(16)
                    });
                }
                let got = store.finish(&request, now);
                let expected = (|| {
                    let count = u32::try_from(parts).map_err(|_| FileError::FilePartsInvalid)?;
                    if count == 0 || count > 5 {
                        return Err(FileError::FilePartsInvalid);
                    }
                    let upload = upload
                        .filter(|u| now < u.touched + ttl)
                        .ok_or(FileError::FilePartMissing(0))?;
                    if upload.total.is_some_and(|t| t != count) {
                        return Err(FileError::FilePartsInvalid);
                    }
                    if md5.is_none() != upload.total.is_some() {
                        return Err(FileError::FilePartsInvalid);
                    }
                    if files.contains_key(&(owner, file_id)) {
                        return Err(FileError::FileIdInvalid);
                    }
                    let size = upload.sizes.finish(count)?;
                    if md5 == Some(false) {
                        return Err(FileError::Md5ChecksumInvalid);
                    }
                    Ok(size)
                })();
                match (got, expected) {
                    (Ok(info), Ok(size)) => {
                        assert_eq!(info.size, size, "step {step}: size");
                        assert_eq!(info.content.0, sha(&whole), "step {step}: content address");
                        uploads.remove(&(owner, file_id));
                        files.insert((owner, file_id), whole);
                    }
                    (got, expected) => {
                        assert_eq!(got.map(|i| i.size), expected, "step {step}: finish")
                    }
                }
            }
            Op::Read { owner, file_id } => {
                let info = store.file(owner, file_id).unwrap();
                let expected = files.get(&(owner, file_id));
                assert_eq!(
                    info.is_some(),
                    expected.is_some(),
                    "step {step}: file exists"
                );
                if let (Some(info), Some(bytes)) = (info, expected) {
                    let read = store.get_file(info.content, 0, 1024 * 1024, false).unwrap();
                    assert_eq!(&read, bytes, "step {step}: bytes");
                }
            }
            Op::Delete { owner, file_id } => {
                let got = store.delete_file(owner, file_id).unwrap();
                assert_eq!(
                    got,
                    files.remove(&(owner, file_id)).is_some(),
                    "step {step}: delete"
                );
                // Content shared with another file must still read back.
                for ((o, f), bytes) in &files {
                    let info = store.file(*o, *f).unwrap().unwrap();
                    assert_eq!(
                        &store.get_file(info.content, 0, 1024 * 1024, false).unwrap(),
                        bytes,
                        "step {step}: shared content"
                    );
                }
            }
            Op::Advance { secs } => now += secs,
            Op::Sweep => {
                let swept = store.sweep(now).unwrap();
                let before = uploads.len();
                uploads.retain(|_, u| now < u.touched + ttl);
                assert_eq!(swept, before - uploads.len(), "step {step}: sweep");
            }
        }
    }
}

/// Random operation sequences for [`model_agrees`].
pub fn ops() -> impl proptest::strategy::Strategy<Value = Vec<Op>> {
    use proptest::prelude::*;
    let save = (
        1i64..=2,
        1i64..=3,
        0i32..5,
        any::<bool>(),
        proptest::option::weighted(0.3, 1i32..=5),
        0u8..3,
    )
        .prop_map(|(owner, file_id, part, short, total, seed)| Op::Save {
            owner,
            file_id,
            part,
            short,
            total,
            seed,
        });
    let op = prop_oneof![
        6 => save,
        2 => (1i64..=2, 1i64..=3, 0i32..=6, proptest::option::of(any::<bool>()))
            .prop_map(|(owner, file_id, parts, md5)| Op::Finish { owner, file_id, parts, md5 }),
        1 => (1i64..=2, 1i64..=3).prop_map(|(owner, file_id)| Op::Read { owner, file_id }),
        1 => (1i64..=2, 1i64..=3).prop_map(|(owner, file_id)| Op::Delete { owner, file_id }),
        1 => (0i64..700).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Sweep),
    ];
    proptest::collection::vec(op, 0..50)
}
