//! Whole-file hashes of uploads whose parts arrive in order, kept while they arrive.
//!
//! A finish needs the SHA-256 of the whole content (its address) and, for a small file, its
//! MD5. Clients that send parts in order (Telethon does) let the store hash each part as it
//! is saved, while other uploaders wait on their disks, instead of reading the whole file
//! back at finish. Parts that arrive out of order, a part stored again, a restart or a full
//! table leave an upload without a running hash, and its finish reads the parts back as
//! before. The table is bounded ([`MAX_RUNNING`] uploads); entries go at finish, at the sweep
//! and when an upload starts over.

use std::collections::HashMap;
use std::sync::Mutex;

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Uploads with a running hash at once (about 250 bytes each).
pub(crate) const MAX_RUNNING: usize = 16_384;

/// The hashes of parts `0..next` of one upload.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    /// The upload's blob number: an upload started over has another one.
    blob: u64,
    /// The next part in order.
    next: u32,
    sha256: Sha256,
    /// Only for small files (`saveFilePart`), whose finish may name an MD5.
    md5: Option<Md5>,
}

/// A finished running hash: SHA-256 and (for a small file) MD5 of parts `0..parts`.
#[derive(Debug)]
pub(crate) struct Whole {
    pub(crate) sha256: [u8; 32],
    pub(crate) md5: Option<[u8; 16]>,
}

/// The running hashes, by (owner, file_id).
#[derive(Debug, Default)]
pub(crate) struct UploadHashes {
    running: Mutex<HashMap<(i64, i64), Running>>,
}

impl UploadHashes {
    /// Records that `part` of the upload (`blob`) now holds `bytes`, committed. Callers hold
    /// the upload's lock, so parts of one upload come here one at a time, in commit order.
    pub(crate) fn saved(&self, key: (i64, i64), blob: u64, part: u32, small: bool, bytes: &[u8]) {
        let mut running = crate::lock(&self.running);
        let next = running
            .get(&key)
            .filter(|entry| entry.blob == blob)
            .map(|entry| entry.next);
        match next {
            Some(next) if next == part => {
                if let Some(entry) = running.get_mut(&key) {
                    entry.sha256.update(bytes);
                    if let Some(md5) = &mut entry.md5 {
                        md5.update(bytes);
                    }
                    entry.next += 1;
                }
            }
            // A part the hash already covers was replaced: the hash is no longer of the
            // stored bytes.
            Some(next) if part < next => {
                running.remove(&key);
            }
            // A part ahead of the next one: the hash stops advancing (finish reads back).
            Some(_) => {}
            None => {
                running.remove(&key);
                if part == 0 && running.len() < MAX_RUNNING {
                    let mut entry = Running {
                        blob,
                        next: 1,
                        sha256: Sha256::new(),
                        md5: small.then(Md5::new),
                    };
                    entry.sha256.update(bytes);
                    if let Some(md5) = &mut entry.md5 {
                        md5.update(bytes);
                    }
                    running.insert(key, entry);
                }
            }
        }
    }

    /// Takes the upload's running hash if it covers exactly parts `0..parts` of `blob`.
    pub(crate) fn take(&self, key: (i64, i64), blob: u64, parts: u32) -> Option<Whole> {
        let entry = crate::lock(&self.running).remove(&key)?;
        if entry.blob != blob || entry.next != parts {
            return None;
        }
        Some(Whole {
            sha256: entry.sha256.finalize().into(),
            md5: entry.md5.map(|md5| md5.finalize().into()),
        })
    }

    /// Forgets an upload (finished elsewhere, swept, or failed).
    pub(crate) fn forget(&self, key: (i64, i64)) {
        crate::lock(&self.running).remove(&key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        crate::lock(&self.running).len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    #[test]
    fn parts_in_order_hash_the_whole() {
        let hashes = UploadHashes::default();
        hashes.saved((1, 1), 7, 0, true, b"abc");
        hashes.saved((1, 1), 7, 1, true, b"def");
        // Too few parts: no hash, and the entry is gone.
        assert!(hashes.take((1, 1), 7, 3).is_none());
        assert_eq!(hashes.len(), 0);
        hashes.saved((1, 1), 7, 0, true, b"abc");
        hashes.saved((1, 1), 7, 1, true, b"def");
        let whole = hashes.take((1, 1), 7, 2).unwrap();
        assert_eq!(whole.sha256, sha(b"abcdef"));
        assert_eq!(whole.md5, Some(Md5::digest(b"abcdef").into()));
    }

    #[test]
    fn big_files_get_no_md5() {
        let hashes = UploadHashes::default();
        hashes.saved((1, 1), 7, 0, false, b"abc");
        assert_eq!(hashes.take((1, 1), 7, 1).unwrap().md5, None);
    }

    #[test]
    fn a_replaced_or_skipped_part_drops_the_hash() {
        let hashes = UploadHashes::default();
        hashes.saved((1, 1), 7, 0, false, b"abc");
        hashes.saved((1, 1), 7, 1, false, b"def");
        hashes.saved((1, 1), 7, 1, false, b"xyz");
        assert!(hashes.take((1, 1), 7, 2).is_none());

        hashes.saved((1, 2), 7, 0, false, b"abc");
        hashes.saved((1, 2), 7, 2, false, b"ghi");
        hashes.saved((1, 2), 7, 1, false, b"def");
        // Part 2 came before part 1: the hash covers 0..2 only.
        assert!(hashes.take((1, 2), 7, 3).is_none());

        // An upload started over (another blob) starts from its part 0 again.
        hashes.saved((1, 3), 7, 0, false, b"abc");
        hashes.saved((1, 3), 8, 1, false, b"def");
        assert!(hashes.take((1, 3), 8, 2).is_none());
        hashes.saved((1, 3), 9, 0, false, b"new");
        assert_eq!(hashes.take((1, 3), 9, 1).unwrap().sha256, sha(b"new"));
        // Another blob at take: none.
        hashes.saved((1, 4), 9, 0, false, b"new");
        assert!(hashes.take((1, 4), 10, 1).is_none());
    }

    #[test]
    fn the_table_is_bounded() {
        let hashes = UploadHashes::default();
        for id in 0..(MAX_RUNNING as i64 + 10) {
            hashes.saved((1, id), 1, 0, false, b"x");
        }
        assert_eq!(hashes.len(), MAX_RUNNING);
        hashes.forget((1, 0));
        assert_eq!(hashes.len(), MAX_RUNNING - 1);
    }
}
