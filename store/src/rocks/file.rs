//! [`FileStore`] on RocksDB.
//!
//! Rows (uploads, parts, contents, files, range hashes, the expiry index) live in a RocksDB
//! at `<root>/db`; part bytes in one sparse file per upload under `<root>/parts`
//! ([`part_files`](super::part_files)), written once and synced before the row naming them
//! commits. RocksDB would carry every part through its write-ahead log and again into a
//! blob or table file, checksumming it on each pass; a plain file takes it once.
//!
//! Each part row holds the SHA-256 of every 128 KiB piece of the part, checked whenever the
//! part is read; for parts of 128 KiB or more these pieces are the file's
//! `upload.getFileHashes` ranges, so finishing needs no separate pass for them. A finished
//! file keeps its parts where they are (the content row names the upload's blob number), so
//! finishing copies nothing, and identical content found at finish drops the new parts
//! instead (reference counts). Every change of rows is one atomic `WriteBatch` that names
//! each part row it removes; a part file goes only after the rows naming it are committed,
//! and files no row names (a crash came between) are removed when the store opens.
//! Layout: `docs/storage-format.md`.

use crate::BackendError;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::instance::{FILE_FAMILIES, Instance, Reader, Tuning};
use super::part_cache::PartCache;
use super::part_files::PartFiles;
use super::shards::{Durability, OpenError};
use super::upload_hashes::{UploadHashes, Whole};
use crate::codec::{
    BatchOp, ContentRecord, PartRecord, UploadRecord, decode_content, decode_file, decode_hashes,
    decode_part, decode_upload, encode_content, encode_file, encode_hashes, encode_part,
    encode_upload,
};
use crate::file::rules::{self, DOWNLOAD_WINDOW, FileError, HASH_RANGE, PartSizes};
use crate::file::{ContentId, FileHash, FileInfo, FileStore, FileStoreConfig, FinishRequest};
use crate::keys::{self, Prefix};
use crate::message::MessageError;

/// Lock stripes for uploads.
const STRIPES: usize = 1024;

/// File parts and finished files in a RocksDB database of their own.
#[derive(Debug)]
pub struct RocksFileStore {
    instance: Instance,
    files: PartFiles,
    hashes: UploadHashes,
    config: FileStoreConfig,
    /// Serialise the changes of one upload (its parts may arrive in parallel).
    uploads: Vec<Mutex<()>>,
    /// Serialises reference-count changes of contents.
    contents: Mutex<()>,
    /// Never used in practice: what `upload_lock` takes should a stripe index be out of
    /// range (it cannot be).
    spare: Mutex<()>,
    next_blob: AtomicU64,
    /// Parts of finished files already checked, for downloads.
    cache: PartCache,
}

/// The default budget of the cache of checked parts.
pub const DEFAULT_PART_CACHE_BYTES: usize = 128 << 20;

fn backend(error: MessageError) -> FileError {
    match error {
        MessageError::Backend(cause) => FileError::Backend(cause),
        other => FileError::Backend(BackendError::with_source("file store", other)),
    }
}

fn corrupt(error: impl std::error::Error + Send + Sync + 'static) -> FileError {
    FileError::Backend(BackendError::with_source("file store", error))
}

fn io_error(error: std::io::Error) -> FileError {
    FileError::Backend(BackendError::with_source("file store: part file", error))
}

/// SHA-256 of each 128 KiB piece of a part (one hash for a part of 128 KiB or less, even an
/// empty one).
fn piece_hashes(bytes: &[u8]) -> Vec<[u8; 32]> {
    let range = usize::try_from(HASH_RANGE).unwrap_or(usize::MAX);
    if bytes.is_empty() {
        return vec![Sha256::digest(bytes).into()];
    }
    bytes
        .chunks(range)
        .map(|piece| Sha256::digest(piece).into())
        .collect()
}

/// SHA-256 over consecutive 128 KiB ranges of a stream of parts.
struct RangeHasher {
    current: Sha256,
    filled: u64,
    done: Vec<[u8; 32]>,
}

impl RangeHasher {
    fn new() -> Self {
        Self {
            current: Sha256::new(),
            filled: 0,
            done: Vec::new(),
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = usize::try_from(HASH_RANGE - self.filled).unwrap_or(usize::MAX);
            let (head, rest) = bytes.split_at(room.min(bytes.len()));
            self.current.update(head);
            self.filled += head.len() as u64;
            if self.filled == HASH_RANGE {
                let full = std::mem::replace(&mut self.current, Sha256::new());
                self.done.push(full.finalize().into());
                self.filled = 0;
            }
            bytes = rest;
        }
    }

    fn finish(mut self) -> Vec<[u8; 32]> {
        if self.filled > 0 {
            self.done.push(self.current.finalize().into());
        }
        self.done
    }
}

/// The hashes of one 1 MiB window per row.
const RANGES_PER_WINDOW: usize = (DOWNLOAD_WINDOW / HASH_RANGE) as usize;

impl RocksFileStore {
    /// Opens (or creates) the file store at `path` (rows in `path/db`, part bytes in
    /// `path/parts`), removing part files that no row names (left by a crash between a
    /// part's write and its row, or between a delete's rows and its file). Part bytes are
    /// always synced before their row is written; with [`Durability::Periodic`] the rows of
    /// the last period may be lost on power failure (a client then uploads the part again:
    /// `FILE_PART_X_MISSING`).
    pub fn open(
        path: impl AsRef<Path>,
        config: FileStoreConfig,
        durability: Durability,
    ) -> Result<Self, OpenError> {
        std::fs::create_dir_all(path.as_ref())?;
        let files = PartFiles::open(path.as_ref().join("parts"))?;
        let cache = rocksdb::Cache::new_lru_cache(32 << 20);
        let tuning = Tuning {
            statistics: false,
            write_buffer_bytes: 16 << 20,
            sync: durability == Durability::Sync,
        };
        let instance =
            Instance::open_with(&path.as_ref().join("db"), 0, &cache, tuning, FILE_FAMILIES)
                .map_err(|error| OpenError::Engine {
                    instance: 0,
                    message: error.to_string(),
                })?;
        // Blob numbers go on from the highest one holding parts (an upload or a content
        // always holds at least one part).
        let next = {
            let reader = instance.latest();
            let mut walk = reader
                .range(&[Prefix::Part as u8])
                .map_err(OpenError::Recovery)?;
            walk.last();
            match walk.item().map_err(OpenError::Recovery)? {
                Some((key, _)) => keys::decode_part(key)
                    .map(|(blob, _)| blob.saturating_add(1))
                    .map_err(|error| {
                        OpenError::Recovery(MessageError::Backend(BackendError::with_source(
                            "file store",
                            error,
                        )))
                    })?,
                None => 1,
            }
        };
        // Every upload and content has at least one part row under its blob number: a file
        // without one is left over from a crash.
        files
            .remove_orphans(|blob| {
                let reader = instance.latest();
                let mut walk = reader
                    .range(&keys::part_prefix(blob))
                    .map_err(|error| std::io::Error::other(error.to_string()))?;
                walk.first();
                Ok(walk
                    .item()
                    .map_err(|error| std::io::Error::other(error.to_string()))?
                    .is_some())
            })
            .map_err(OpenError::Io)?;
        Ok(Self {
            instance,
            files,
            hashes: UploadHashes::default(),
            config,
            uploads: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            contents: Mutex::new(()),
            spare: Mutex::new(()),
            next_blob: AtomicU64::new(next),
            cache: PartCache::new(DEFAULT_PART_CACHE_BYTES),
        })
    }

    /// Sets the memory given to parts of finished files already checked against their
    /// SHA-256 ([`DEFAULT_PART_CACHE_BYTES`] by default; 0 turns the cache off, and every
    /// download reads and hashes its parts again).
    pub fn with_part_cache(mut self, bytes: usize) -> Self {
        self.cache = PartCache::new(bytes);
        self
    }

    fn upload_lock(&self, owner: i64, file_id: i64) -> MutexGuard<'_, ()> {
        let hash = (owner as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (file_id as u64);
        let index = usize::try_from(hash % STRIPES as u64).unwrap_or(0);
        let stripe = self.uploads.get(index).unwrap_or(&self.spare);
        crate::lock(stripe)
    }

    fn write(&self, ops: &[BatchOp]) -> Result<(), FileError> {
        self.instance.write(ops, false).map_err(backend)
    }

    fn upload(
        reader: &Reader<'_>,
        owner: i64,
        file_id: i64,
    ) -> Result<Option<UploadRecord>, FileError> {
        reader
            .get(&keys::owned_file(Prefix::Upload, owner, file_id), |value| {
                decode_upload(value).map_err(|error| {
                    MessageError::Backend(BackendError::with_source("file store", error))
                })
            })
            .map_err(backend)
    }

    fn content(
        reader: &Reader<'_>,
        content: &ContentId,
    ) -> Result<Option<ContentRecord>, FileError> {
        reader
            .get(&keys::content(&content.0), |value| {
                decode_content(value).map_err(|error| {
                    MessageError::Backend(BackendError::with_source("file store", error))
                })
            })
            .map_err(backend)
    }

    fn part_row(
        reader: &Reader<'_>,
        blob: u64,
        part: u32,
    ) -> Result<Option<PartRecord>, FileError> {
        reader
            .get(&keys::part(blob, part), |value| {
                decode_part(value).map_err(|error| {
                    MessageError::Backend(BackendError::with_source("file store", error))
                })
            })
            .map_err(backend)
    }

    /// A part's row and its bytes, checked against the row's piece hashes: a part whose row
    /// or bytes are missing, short or altered is [`FileError::Corrupted`], never served.
    fn read_part(
        &self,
        reader: &Reader<'_>,
        blob: u64,
        part: u32,
        file_id: i64,
    ) -> Result<(PartRecord, Vec<u8>), FileError> {
        let corrupted = FileError::Corrupted { file_id, part };
        let record = Self::part_row(reader, blob, part)?.ok_or(corrupted.clone())?;
        let bytes = match self.files.read(blob, part, record.slot, record.len) {
            Ok(bytes) => bytes,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                return Err(corrupted);
            }
            Err(error) => return Err(io_error(error)),
        };
        if piece_hashes(&bytes) != record.hashes {
            return Err(corrupted);
        }
        Ok((record, bytes))
    }

    /// The range hashes of a file whose parts are whole 128 KiB ranges, from its part rows.
    fn range_hashes_from_rows(
        &self,
        reader: &Reader<'_>,
        upload: &UploadRecord,
        parts: u32,
    ) -> Result<Vec<[u8; 32]>, FileError> {
        let mut out = Vec::new();
        for part in 0..parts {
            let record = Self::part_row(reader, upload.blob, part)?
                .ok_or(FileError::Corrupted { file_id: 0, part })?;
            out.extend(record.hashes);
        }
        Ok(out)
    }

    /// Reads parts `0..parts` back, each checked against its piece hashes, and hashes them
    /// whole (with MD5 when asked) and into 128 KiB ranges: the piece hashes when the parts
    /// are whole ranges, otherwise a hash of the bytes over range boundaries.
    fn hash_by_reading(
        &self,
        reader: &Reader<'_>,
        upload: &UploadRecord,
        parts: u32,
        file_id: i64,
        with_md5: bool,
        parts_are_ranges: bool,
    ) -> Result<(Whole, Vec<[u8; 32]>), FileError> {
        let mut md5 = with_md5.then(Md5::new);
        let mut whole = Sha256::new();
        let mut ranges = RangeHasher::new();
        let mut range_hashes = Vec::new();
        for part in 0..parts {
            let (record, bytes) = self.read_part(reader, upload.blob, part, file_id)?;
            if let Some(md5) = &mut md5 {
                md5.update(&bytes);
            }
            whole.update(&bytes);
            if parts_are_ranges {
                range_hashes.extend(record.hashes);
            } else {
                ranges.update(&bytes);
            }
        }
        if !parts_are_ranges {
            range_hashes = ranges.finish();
        }
        let whole = Whole {
            sha256: whole.finalize().into(),
            md5: md5.map(|md5| md5.finalize().into()),
        };
        Ok((whole, range_hashes))
    }

    /// The deletes of an upload's row and of its entry in the expiry index.
    fn drop_upload_rows(upload: &UploadRecord, owner: i64, file_id: i64, ops: &mut Vec<BatchOp>) {
        ops.push(BatchOp::delete(keys::owned_file(
            Prefix::Upload,
            owner,
            file_id,
        )));
        ops.push(BatchOp::delete(keys::upload_expiry(
            upload.touched,
            owner,
            file_id,
        )));
    }

    /// The deletes of every part of an upload.
    fn drop_parts(upload: &UploadRecord, ops: &mut Vec<BatchOp>) {
        for (part, _) in &upload.sizes {
            ops.push(BatchOp::delete(keys::part(upload.blob, *part)));
        }
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
        let last = total.map(|total| total - 1);
        // Cheap checks and the hashes before the lock.
        PartSizes::new().check(0, bytes.len(), None)?;
        let hashes = piece_hashes(bytes);
        let len = u32::try_from(bytes.len()).map_err(|_| FileError::FilePartTooBig)?;
        let _upload = self.upload_lock(owner, file_id);
        let reader = self.instance.latest();
        let stored = Self::upload(&reader, owner, file_id)?;
        let ttl = self.config.upload_ttl;
        let mut ops = Vec::new();
        let mut expired_blob = None;
        let live = stored
            .as_ref()
            .filter(|upload| now < upload.touched.saturating_add(ttl));
        let mut upload = match live {
            Some(upload) => {
                if upload.total != total {
                    // One upload is either small or big, with one announced total.
                    return Err(FileError::FilePartsInvalid);
                }
                let mut sizes = PartSizes::new();
                for (index, size) in &upload.sizes {
                    sizes.insert(*index, *size as usize);
                }
                sizes.check(part, bytes.len(), last)?;
                let replaced = sizes.get(part).map_or(0, |size| size as u64);
                let small_total = sizes.total_len() - replaced + u64::from(len);
                if total.is_none() && small_total > rules::BIG_FILE_THRESHOLD {
                    // Over 10 MB must come through saveBigFilePart.
                    return Err(FileError::FilePartsInvalid);
                }
                ops.push(BatchOp::delete(keys::upload_expiry(
                    upload.touched,
                    owner,
                    file_id,
                )));
                upload.clone()
            }
            None => {
                PartSizes::new().check(part, bytes.len(), last)?;
                // An expired upload is gone even before the sweep: it starts over.
                if let Some(expired) = &stored {
                    expired_blob = Some(expired.blob);
                    Self::drop_parts(expired, &mut ops);
                    ops.push(BatchOp::delete(keys::upload_expiry(
                        expired.touched,
                        owner,
                        file_id,
                    )));
                }
                UploadRecord {
                    blob: self.next_blob.fetch_add(1, Ordering::Relaxed),
                    total,
                    touched: now,
                    sizes: Vec::new(),
                }
            }
        };
        let slot = match upload
            .sizes
            .binary_search_by_key(&part, |(index, _)| *index)
        {
            Ok(at) => {
                if let Some(entry) = upload.sizes.get_mut(at) {
                    entry.1 = len;
                }
                // Stored again: into the slot the committed row does not name.
                Self::part_row(&reader, upload.blob, part)?.map_or(0, |old| 1 - (old.slot & 1))
            }
            Err(at) => {
                upload.sizes.insert(at, (part, len));
                0
            }
        };
        upload.touched = now;
        // The bytes are on disk before any row names them.
        self.files
            .write(upload.blob, part, slot, bytes)
            .map_err(io_error)?;
        ops.push(BatchOp::put(
            keys::part(upload.blob, part),
            encode_part(&PartRecord { slot, len, hashes }),
        ));
        ops.push(BatchOp::put(
            keys::owned_file(Prefix::Upload, owner, file_id),
            encode_upload(&upload),
        ));
        ops.push(BatchOp::put(
            keys::upload_expiry(now, owner, file_id),
            Vec::new(),
        ));
        self.write(&ops)?;
        self.hashes
            .saved((owner, file_id), upload.blob, part, total.is_none(), bytes);
        if let Some(blob) = expired_blob {
            self.release(blob);
        }
        Ok(())
    }

    /// Removes a part file whose rows are committed gone. A failure leaves a file no row
    /// names, which the next open removes; the change itself has happened.
    fn release(&self, blob: u64) {
        self.cache.remove_blob(blob);
        let _ignored = self.files.remove(blob);
    }

    /// Flips a byte of a stored part, to test that corruption is caught. Unstable API,
    /// feature `testing`.
    #[cfg(feature = "testing")]
    pub fn corrupt_part(&self, owner: i64, file_id: i64, part: u32) -> bool {
        let reader = self.instance.latest();
        let Ok(Some(upload)) = Self::upload(&reader, owner, file_id) else {
            return false;
        };
        self.flip(&reader, upload.blob, part, 0)
    }

    /// Flips a byte of a finished file's content at `at`. Unstable API, feature `testing`.
    #[cfg(feature = "testing")]
    pub fn corrupt_content(&self, content: ContentId, at: u64) -> bool {
        let reader = self.instance.latest();
        let Ok(Some(record)) = Self::content(&reader, &content) else {
            return false;
        };
        let part_size = u64::from(record.part_size.max(1));
        let part = u32::try_from(at / part_size).unwrap_or(u32::MAX);
        self.flip(&reader, record.blob, part, at % part_size)
    }

    #[cfg(feature = "testing")]
    fn flip(&self, reader: &Reader<'_>, blob: u64, part: u32, at: u64) -> bool {
        let Ok(Some(record)) = Self::part_row(reader, blob, part) else {
            return false;
        };
        if at >= u64::from(record.len) {
            return false;
        }
        self.cache.remove(blob, part);
        self.files.flip(blob, part, record.slot, at).is_ok()
    }
}

impl FileStore for RocksFileStore {
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
        let (owner, file_id) = (request.owner, request.file_id);
        let _upload = self.upload_lock(owner, file_id);
        let reader = self.instance.latest();
        let upload = Self::upload(&reader, owner, file_id)?.ok_or(FileError::FilePartMissing(0))?;
        if now >= upload.touched.saturating_add(self.config.upload_ttl) {
            return Err(FileError::FilePartMissing(0));
        }
        if upload.total.is_some_and(|total| total != parts) {
            return Err(FileError::FilePartsInvalid);
        }
        let big = upload.total.is_some();
        // inputFile (with its md5_checksum) finishes small uploads, inputFileBig big ones.
        if request.md5_checksum.is_some() == big {
            return Err(FileError::FilePartsInvalid);
        }
        let file_key = keys::owned_file(Prefix::FileRow, owner, file_id);
        // A file id names one file: finishing it again would let go of content that
        // messages may still refer to.
        if reader.contains(&file_key).map_err(backend)? {
            return Err(FileError::FileIdInvalid);
        }
        let mut sizes = PartSizes::new();
        for (index, size) in &upload.sizes {
            sizes.insert(*index, *size as usize);
        }
        let size = sizes.finish(parts)?;
        if !big && size > rules::BIG_FILE_THRESHOLD {
            return Err(FileError::FilePartsInvalid);
        }
        let part_size = sizes
            .get(0)
            .and_then(|len| u32::try_from(len).ok())
            .unwrap_or(0);
        // Every part but the last has `part_size` bytes: ranges when that is 128 KiB or more.
        let parts_are_ranges = parts == 1 || u64::from(part_size) >= HASH_RANGE;
        let check_md5 = request
            .md5_checksum
            .as_deref()
            .is_some_and(|md5| !md5.is_empty());
        let key = (owner, file_id);
        // Parts that came in order were hashed as they came: the range hashes are then in
        // the part rows and nothing is read back. Otherwise one pass over the parts.
        let running = if parts_are_ranges {
            self.hashes.take(key, upload.blob, parts)
        } else {
            self.hashes.forget(key);
            None
        }
        .filter(|whole| !check_md5 || whole.md5.is_some());
        let (whole, range_hashes) = match running {
            Some(whole) => (whole, self.range_hashes_from_rows(&reader, &upload, parts)?),
            None => self.hash_by_reading(
                &reader,
                &upload,
                parts,
                file_id,
                check_md5,
                parts_are_ranges,
            )?,
        };
        if let Some(expected) = request
            .md5_checksum
            .as_deref()
            .filter(|md5| !md5.is_empty())
        {
            let actual: String = whole
                .md5
                .unwrap_or_default()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(FileError::Md5ChecksumInvalid);
            }
        }
        let content = ContentId(whole.sha256);
        let _contents = crate::lock(&self.contents);
        let mut ops = Vec::new();
        let mut duplicate = false;
        match Self::content(&reader, &content)? {
            Some(mut existing) => {
                // Stored already: one more reference, and these parts go.
                existing.refs = existing.refs.saturating_add(1);
                ops.push(BatchOp::put(
                    keys::content(&content.0),
                    encode_content(&existing),
                ));
                Self::drop_parts(&upload, &mut ops);
                duplicate = true;
            }
            None => {
                ops.push(BatchOp::put(
                    keys::content(&content.0),
                    encode_content(&ContentRecord {
                        blob: upload.blob,
                        part_size,
                        size,
                        refs: 1,
                    }),
                ));
                for (window, hashes) in range_hashes.chunks(RANGES_PER_WINDOW).enumerate() {
                    let window = u32::try_from(window).unwrap_or(u32::MAX);
                    ops.push(BatchOp::put(
                        keys::range_hashes(&content.0, window),
                        encode_hashes(hashes),
                    ));
                }
                // Parts past the finished count are not part of the file.
                for (part, _) in upload.sizes.iter().filter(|(part, _)| *part >= parts) {
                    ops.push(BatchOp::delete(keys::part(upload.blob, *part)));
                }
            }
        }
        let info = FileInfo {
            content,
            size,
            name: request.name.clone(),
            owner,
            file_id,
        };
        ops.push(BatchOp::put(file_key, encode_file(&info)));
        Self::drop_upload_rows(&upload, owner, file_id, &mut ops);
        self.write(&ops)?;
        if duplicate {
            self.release(upload.blob);
        }
        Ok(info)
    }

    fn file(&self, owner: i64, file_id: i64) -> Result<Option<FileInfo>, FileError> {
        self.instance
            .latest()
            .get(
                &keys::owned_file(Prefix::FileRow, owner, file_id),
                |value| {
                    decode_file(value).map_err(|error| {
                        MessageError::Backend(BackendError::with_source("file store", error))
                    })
                },
            )
            .map_err(backend)
    }

    fn get_file(
        &self,
        content: ContentId,
        offset: i64,
        limit: i32,
        precise: bool,
    ) -> Result<Vec<u8>, FileError> {
        let (offset, limit) = rules::check_download(offset, limit, precise)?;
        let reader = self.instance.snapshot();
        let record = Self::content(&reader, &content)?.ok_or(FileError::FileIdInvalid)?;
        let start = offset.min(record.size);
        let end = offset.saturating_add(limit).min(record.size);
        let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
        if end <= start {
            return Ok(out);
        }
        let part_size = u64::from(record.part_size.max(1));
        let first = start / part_size;
        let last = (end - 1) / part_size;
        for part in first..=last {
            let index = u32::try_from(part).map_err(corrupt)?;
            let part_start = part * part_size;
            let from = usize::try_from(start.max(part_start) - part_start).map_err(corrupt)?;
            let to = usize::try_from(end - part_start).map_err(corrupt)?;
            let bytes = match self.cache.get(record.blob, index) {
                Some(bytes) => bytes,
                None => {
                    let (_, bytes) = self.read_part(&reader, record.blob, index, 0)?;
                    let bytes: Arc<[u8]> = bytes.into();
                    self.cache.insert(record.blob, index, bytes.clone());
                    bytes
                }
            };
            let slice = bytes
                .get(from..to.min(bytes.len()))
                .ok_or(FileError::Corrupted {
                    file_id: 0,
                    part: index,
                })?;
            out.extend_from_slice(slice);
        }
        Ok(out)
    }

    fn get_file_hashes(&self, content: ContentId, offset: i64) -> Result<Vec<FileHash>, FileError> {
        let offset = u64::try_from(offset).map_err(|_| FileError::OffsetInvalid)?;
        let reader = self.instance.snapshot();
        let record = Self::content(&reader, &content)?.ok_or(FileError::FileIdInvalid)?;
        let window = offset / DOWNLOAD_WINDOW;
        let Some(hashes) = reader
            .get(
                &keys::range_hashes(&content.0, u32::try_from(window).unwrap_or(u32::MAX)),
                |value| {
                    decode_hashes(value).map_err(|error| {
                        MessageError::Backend(BackendError::with_source("file store", error))
                    })
                },
            )
            .map_err(backend)?
        else {
            return Ok(Vec::new());
        };
        let first = offset / HASH_RANGE;
        let mut out = Vec::new();
        for (i, hash) in hashes.iter().enumerate() {
            let range = window * (RANGES_PER_WINDOW as u64) + i as u64;
            let start = range * HASH_RANGE;
            if range < first || start >= record.size {
                continue;
            }
            out.push(FileHash {
                offset: start,
                limit: u32::try_from(HASH_RANGE.min(record.size - start)).unwrap_or(u32::MAX),
                hash: *hash,
            });
        }
        Ok(out)
    }

    fn delete_file(&self, owner: i64, file_id: i64) -> Result<bool, FileError> {
        let _upload = self.upload_lock(owner, file_id);
        let reader = self.instance.latest();
        let file_key = keys::owned_file(Prefix::FileRow, owner, file_id);
        let Some(info) = reader
            .get(&file_key, |value| {
                decode_file(value).map_err(|error| {
                    MessageError::Backend(BackendError::with_source("file store", error))
                })
            })
            .map_err(backend)?
        else {
            return Ok(false);
        };
        let _contents = crate::lock(&self.contents);
        let mut ops = vec![BatchOp::delete(file_key)];
        let mut released = None;
        if let Some(mut record) = Self::content(&reader, &info.content)? {
            record.refs = record.refs.saturating_sub(1);
            if record.refs == 0 {
                // The last file: the content, its hashes and its parts go together.
                released = Some(record.blob);
                ops.push(BatchOp::delete(keys::content(&info.content.0)));
                let part_size = u64::from(record.part_size.max(1));
                let parts = record.size.div_ceil(part_size);
                for part in 0..parts {
                    ops.push(BatchOp::delete(keys::part(
                        record.blob,
                        u32::try_from(part).unwrap_or(u32::MAX),
                    )));
                }
                for window in 0..record.size.div_ceil(DOWNLOAD_WINDOW) {
                    ops.push(BatchOp::delete(keys::range_hashes(
                        &info.content.0,
                        u32::try_from(window).unwrap_or(u32::MAX),
                    )));
                }
            } else {
                ops.push(BatchOp::put(
                    keys::content(&info.content.0),
                    encode_content(&record),
                ));
            }
        }
        self.write(&ops)?;
        if let Some(blob) = released {
            self.release(blob);
        }
        Ok(true)
    }

    fn sweep(&self, now: i64) -> Result<usize, FileError> {
        let ttl = self.config.upload_ttl;
        let expired: Vec<(i64, i64, i64)> = {
            let reader = self.instance.latest();
            let mut walk = reader
                .range(&[Prefix::UploadExpiry as u8])
                .map_err(backend)?;
            walk.first();
            let mut expired = Vec::new();
            while let Some((key, _)) = walk.item().map_err(backend)? {
                let (touched, owner, file_id) = keys::decode_upload_expiry(key).map_err(corrupt)?;
                if now < touched.saturating_add(ttl) {
                    break;
                }
                expired.push((touched, owner, file_id));
                walk.next();
            }
            expired
        };
        let mut swept = 0;
        for (touched, owner, file_id) in expired {
            let _upload = self.upload_lock(owner, file_id);
            let reader = self.instance.latest();
            // Checked again under the lock: a part may have come since.
            let Some(upload) = Self::upload(&reader, owner, file_id)? else {
                self.write(&[BatchOp::delete(keys::upload_expiry(
                    touched, owner, file_id,
                ))])?;
                continue;
            };
            if now < upload.touched.saturating_add(ttl) {
                continue;
            }
            let mut ops = Vec::new();
            Self::drop_parts(&upload, &mut ops);
            Self::drop_upload_rows(&upload, owner, file_id, &mut ops);
            if upload.touched != touched {
                ops.push(BatchOp::delete(keys::upload_expiry(
                    touched, owner, file_id,
                )));
            }
            self.write(&ops)?;
            self.hashes.forget((owner, file_id));
            self.release(upload.blob);
            swept += 1;
        }
        Ok(swept)
    }
}
