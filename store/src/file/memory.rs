//! [`FileStore`] in memory: the reference backend, and the one tests use. Everything is
//! held in RAM, so it suits tests and small deployments, not 2 GB uploads.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::rules::{self, FileError, HASH_RANGE, PartSizes};
use super::{ContentId, FileHash, FileInfo, FileStore, FileStoreConfig, FinishRequest};

#[derive(Debug, Clone)]
struct Part {
    bytes: Vec<u8>,
    sha256: [u8; 32],
}

#[derive(Debug, Default)]
struct Upload {
    /// `saveBigFilePart`'s total, once announced.
    total: Option<u32>,
    big: bool,
    sizes: PartSizes,
    parts: BTreeMap<u32, Part>,
    touched: i64,
}

#[derive(Debug)]
struct Content {
    bytes: Vec<u8>,
    /// SHA-256 of each 128 KiB range, checked when the range is read.
    ranges: Vec<[u8; 32]>,
    refs: u64,
}

#[derive(Debug, Default)]
struct Inner {
    uploads: HashMap<(i64, i64), Upload>,
    files: HashMap<(i64, i64), FileInfo>,
    contents: HashMap<ContentId, Content>,
}

/// File parts and files in memory, behind one mutex.
#[derive(Debug, Default)]
pub struct MemoryFileStore {
    config: FileStoreConfig,
    inner: Mutex<Inner>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn range_hashes(bytes: &[u8]) -> Vec<[u8; 32]> {
    bytes.chunks(HASH_RANGE as usize).map(sha256).collect()
}

impl MemoryFileStore {
    /// An empty store with default limits.
    pub fn new() -> Self {
        Self::with_config(FileStoreConfig::default())
    }

    /// An empty store with these limits.
    pub fn with_config(config: FileStoreConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::lock(&self.inner)
    }

    fn save(
        &self,
        owner: i64,
        file_id: i64,
        part: i32,
        total_parts: Option<i32>,
        bytes: &[u8],
        now: i64,
    ) -> Result<(), FileError> {
        let part = rules::check_part_index(part, total_parts, self.config.max_parts)?;
        let total = total_parts.and_then(|total| u32::try_from(total).ok());
        let mut inner = self.lock();
        let ttl = self.config.upload_ttl;
        // An expired upload is gone even before the sweep: it starts over.
        let live = inner
            .uploads
            .get(&(owner, file_id))
            .filter(|upload| now < upload.touched.saturating_add(ttl));
        if let Some(upload) = live {
            if upload.big != total.is_some() || upload.total != total {
                // One upload is either small or big, with one announced total.
                return Err(FileError::FilePartsInvalid);
            }
            upload
                .sizes
                .check(part, bytes.len(), total.map(|total| total - 1))?;
            let replaced = upload.sizes.get(part).map_or(0, |len| len as u64);
            let small_total = upload.sizes.total_len() - replaced + bytes.len() as u64;
            if total.is_none() && small_total > rules::BIG_FILE_THRESHOLD {
                // Over 10 MB must come through saveBigFilePart.
                return Err(FileError::FilePartsInvalid);
            }
        } else {
            PartSizes::new().check(part, bytes.len(), total.map(|total| total - 1))?;
            inner.uploads.insert(
                (owner, file_id),
                Upload {
                    total,
                    big: total.is_some(),
                    ..Upload::default()
                },
            );
        }
        // Checked above: only now is anything stored.
        let Some(upload) = inner.uploads.get_mut(&(owner, file_id)) else {
            return Err(FileError::Backend(crate::BackendError::new(
                "upload vanished",
            )));
        };
        upload.sizes.insert(part, bytes.len());
        upload.parts.insert(
            part,
            Part {
                bytes: bytes.to_vec(),
                sha256: sha256(bytes),
            },
        );
        upload.touched = now;
        Ok(())
    }

    /// Flips a byte of a stored part, to test that corruption is caught (tests only).
    #[cfg(any(test, feature = "testing"))]
    pub fn corrupt_part(&self, owner: i64, file_id: i64, part: u32) -> bool {
        let mut inner = self.lock();
        let byte = inner
            .uploads
            .get_mut(&(owner, file_id))
            .and_then(|upload| upload.parts.get_mut(&part))
            .and_then(|part| part.bytes.first_mut());
        match byte {
            Some(byte) => {
                *byte ^= 0x40;
                true
            }
            None => false,
        }
    }

    /// Flips a byte of a finished file's content (tests only).
    #[cfg(any(test, feature = "testing"))]
    pub fn corrupt_content(&self, content: ContentId, at: usize) -> bool {
        let mut inner = self.lock();
        let byte = inner
            .contents
            .get_mut(&content)
            .and_then(|content| content.bytes.get_mut(at));
        match byte {
            Some(byte) => {
                *byte ^= 0x40;
                true
            }
            None => false,
        }
    }
}

impl FileStore for MemoryFileStore {
    fn save_part(
        &self,
        owner: i64,
        file_id: i64,
        part: i32,
        bytes: &[u8],
        now: i64,
    ) -> Result<(), FileError> {
        self.save(owner, file_id, part, None, bytes, now)
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
        self.save(owner, file_id, part, Some(total_parts), bytes, now)
    }

    fn finish(&self, request: &FinishRequest, now: i64) -> Result<FileInfo, FileError> {
        let parts = u32::try_from(request.parts).map_err(|_| FileError::FilePartsInvalid)?;
        if parts == 0 || parts > self.config.max_parts {
            return Err(FileError::FilePartsInvalid);
        }
        let key = (request.owner, request.file_id);
        let mut inner = self.lock();
        let upload = inner
            .uploads
            .get(&key)
            .ok_or(FileError::FilePartMissing(0))?;
        if now >= upload.touched.saturating_add(self.config.upload_ttl) {
            return Err(FileError::FilePartMissing(0));
        }
        if upload.total.is_some_and(|total| total != parts) {
            return Err(FileError::FilePartsInvalid);
        }
        // inputFile (with its md5_checksum) finishes small uploads, inputFileBig big ones.
        if request.md5_checksum.is_some() == upload.big {
            return Err(FileError::FilePartsInvalid);
        }
        // A file id names one file: finishing it again would let go of content that
        // messages may still refer to.
        if inner.files.contains_key(&key) {
            return Err(FileError::FileIdInvalid);
        }
        let size = upload.sizes.finish(parts)?;
        if !upload.big && size > rules::BIG_FILE_THRESHOLD {
            // Over 10 MB must come through saveBigFilePart.
            return Err(FileError::FilePartsInvalid);
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        let mut md5 = Md5::new();
        for (&index, part) in upload.parts.range(..parts) {
            if sha256(&part.bytes) != part.sha256 {
                return Err(FileError::Corrupted {
                    file_id: request.file_id,
                    part: index,
                });
            }
            md5.update(&part.bytes);
            bytes.extend_from_slice(&part.bytes);
        }
        if let Some(expected) = request
            .md5_checksum
            .as_deref()
            .filter(|md5| !md5.is_empty())
        {
            let actual: String = md5
                .finalize()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(FileError::Md5ChecksumInvalid);
            }
        }
        let content = ContentId(sha256(&bytes));
        inner.uploads.remove(&key);
        let ranges = range_hashes(&bytes);
        inner
            .contents
            .entry(content)
            .or_insert(Content {
                bytes,
                ranges,
                refs: 0,
            })
            .refs += 1;
        let info = FileInfo {
            content,
            size,
            name: request.name.clone(),
            owner: request.owner,
            file_id: request.file_id,
        };
        inner.files.insert(key, info.clone());
        Ok(info)
    }

    fn file(&self, owner: i64, file_id: i64) -> Result<Option<FileInfo>, FileError> {
        Ok(self.lock().files.get(&(owner, file_id)).cloned())
    }

    fn get_file(
        &self,
        content: ContentId,
        offset: i64,
        limit: i32,
        precise: bool,
    ) -> Result<Vec<u8>, FileError> {
        let (offset, limit) = rules::check_download(offset, limit, precise)?;
        let inner = self.lock();
        let stored = inner
            .contents
            .get(&content)
            .ok_or(FileError::FileIdInvalid)?;
        let len = stored.bytes.len() as u64;
        let start = offset.min(len);
        let end = offset.saturating_add(limit).min(len);
        // Check every 128 KiB range the request touches before serving any of it.
        if end > start {
            let first = start / HASH_RANGE;
            let last = (end - 1) / HASH_RANGE;
            for range in first..=last {
                let from = usize::try_from(range * HASH_RANGE).unwrap_or(usize::MAX);
                let to = usize::try_from(((range + 1) * HASH_RANGE).min(len)).unwrap_or(usize::MAX);
                let bytes = stored.bytes.get(from..to).unwrap_or_default();
                let expected = stored
                    .ranges
                    .get(usize::try_from(range).unwrap_or(usize::MAX));
                if expected != Some(&sha256(bytes)) {
                    return Err(FileError::Corrupted {
                        file_id: 0,
                        part: u32::try_from(range).unwrap_or(u32::MAX),
                    });
                }
            }
        }
        let from = usize::try_from(start).unwrap_or(usize::MAX);
        let to = usize::try_from(end).unwrap_or(usize::MAX);
        Ok(stored.bytes.get(from..to).unwrap_or_default().to_vec())
    }

    fn get_file_hashes(&self, content: ContentId, offset: i64) -> Result<Vec<FileHash>, FileError> {
        let offset = u64::try_from(offset).map_err(|_| FileError::OffsetInvalid)?;
        let inner = self.lock();
        let stored = inner
            .contents
            .get(&content)
            .ok_or(FileError::FileIdInvalid)?;
        let len = stored.bytes.len() as u64;
        let first = offset / HASH_RANGE;
        let window_end = (offset / rules::DOWNLOAD_WINDOW + 1) * rules::DOWNLOAD_WINDOW;
        let mut hashes = Vec::new();
        let mut range = first;
        while range * HASH_RANGE < len.min(window_end) {
            let Some(hash) = stored
                .ranges
                .get(usize::try_from(range).unwrap_or(usize::MAX))
            else {
                break;
            };
            let start = range * HASH_RANGE;
            hashes.push(FileHash {
                offset: start,
                limit: u32::try_from(HASH_RANGE.min(len - start)).unwrap_or(u32::MAX),
                hash: *hash,
            });
            range += 1;
        }
        Ok(hashes)
    }

    fn delete_file(&self, owner: i64, file_id: i64) -> Result<bool, FileError> {
        let mut inner = self.lock();
        let Some(info) = inner.files.remove(&(owner, file_id)) else {
            return Ok(false);
        };
        release(&mut inner, info.content);
        Ok(true)
    }

    fn sweep(&self, now: i64) -> Result<usize, FileError> {
        let ttl = self.config.upload_ttl;
        let mut inner = self.lock();
        let before = inner.uploads.len();
        inner
            .uploads
            .retain(|_, upload| now < upload.touched.saturating_add(ttl));
        Ok(before - inner.uploads.len())
    }
}

/// One file less refers to `content`; the content goes with the last one.
fn release(inner: &mut Inner, content: ContentId) {
    if let Some(stored) = inner.contents.get_mut(&content) {
        stored.refs = stored.refs.saturating_sub(1);
        if stored.refs == 0 {
            inner.contents.remove(&content);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        super::super::conformance::run_all(&|config| {
            Box::new(MemoryFileStore::with_config(config))
        });
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

        /// Random part uploads (repeats, gaps, small and big), finishes, reads, deletes and
        /// expiry with a simulated clock agree with the reference model.
        #[test]
        fn memory_store_agrees_with_the_model(ops in super::super::conformance::ops()) {
            super::super::conformance::model_agrees(
                &|config| Box::new(MemoryFileStore::with_config(config)),
                &ops,
            );
        }
    }

    #[test]
    fn a_flipped_byte_is_caught_on_read() {
        let store = MemoryFileStore::new();
        let part = vec![7u8; 4096];
        store.save_part(1, 10, 0, &part, 0).unwrap();
        store.save_part(1, 10, 1, &part, 0).unwrap();
        assert!(store.corrupt_part(1, 10, 1));
        let finish = FinishRequest {
            owner: 1,
            file_id: 10,
            parts: 2,
            name: "f".to_owned(),
            md5_checksum: Some(String::new()),
        };
        assert_eq!(
            store.finish(&finish, 1),
            Err(FileError::Corrupted {
                file_id: 10,
                part: 1
            })
        );
        // Re-uploading the part repairs the upload.
        store.save_part(1, 10, 1, &part, 2).unwrap();
        let info = store.finish(&finish, 3).unwrap();
        assert!(store.corrupt_content(info.content, 5000));
        assert!(matches!(
            store.get_file(info.content, 0, 4096, false),
            Err(FileError::Corrupted { .. })
        ));
    }
}
