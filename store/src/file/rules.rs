//! Telegram's rules for file parts and downloads, as pure checks
//! (core.telegram.org/api/files, /method/upload.saveFilePart, /method/upload.saveBigFilePart,
//! /method/upload.getFile). Every backend applies them the same way.
//!
//! Upload: every part of a file has the same size but the last, which may be smaller; that
//! size is a multiple of 1 KiB that divides 512 KiB. Parts arrive in any order and again, so
//! the size is checked on what has arrived: at most two sizes, the smaller one on a single
//! part (the future last), the larger a valid part size. At finish, every index is present
//! and the smaller part is the last one.
//!
//! Download: without `precise`, offset and limit are multiples of 4 KiB and the limit divides
//! 1 MiB; with `precise`, multiples of 1 KiB and at most 1 MiB; either way the range lies
//! inside one 1 MiB window.

use std::collections::BTreeMap;

/// The largest part, and the number every part size divides.
pub const MAX_PART_SIZE: usize = 512 * 1024;
/// Part sizes are multiples of this.
pub const PART_SIZE_UNIT: usize = 1024;
/// Files above this size are uploaded with `saveBigFilePart`.
pub const BIG_FILE_THRESHOLD: u64 = 10 * 1024 * 1024;
/// The download window: a range never crosses a multiple of it.
pub const DOWNLOAD_WINDOW: u64 = 1024 * 1024;
/// `upload.getFileHashes` gives one SHA-256 per range of this size.
pub const HASH_RANGE: u64 = 128 * 1024;

/// Why an upload or download was refused; the names are Telegram's RPC errors (all 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// `FILE_PARTS_INVALID`: the number of parts is outside 1..=the limit, or changed.
    #[error("FILE_PARTS_INVALID")]
    FilePartsInvalid,
    /// `FILE_PART_INVALID`: the part index is outside 0..the number of parts.
    #[error("FILE_PART_INVALID")]
    FilePartInvalid,
    /// `FILE_PART_TOO_BIG`: a part over 512 KiB.
    #[error("FILE_PART_TOO_BIG")]
    FilePartTooBig,
    /// `FILE_PART_EMPTY`: a part with no bytes.
    #[error("FILE_PART_EMPTY")]
    FilePartEmpty,
    /// `FILE_PART_SIZE_INVALID`: the part size is not a multiple of 1 KiB dividing 512 KiB.
    #[error("FILE_PART_SIZE_INVALID")]
    FilePartSizeInvalid,
    /// `FILE_PART_SIZE_CHANGED`: a part's size differs from the file's other parts.
    #[error("FILE_PART_SIZE_CHANGED")]
    FilePartSizeChanged,
    /// `FILE_PART_X_MISSING`: part X was never stored (or has expired); re-upload it.
    #[error("FILE_PART_{0}_MISSING")]
    FilePartMissing(u32),
    /// `MD5_CHECKSUM_INVALID`: the MD5 given at finish does not match the parts.
    #[error("MD5_CHECKSUM_INVALID")]
    Md5ChecksumInvalid,
    /// `FILE_ID_INVALID`: no such upload or file for this owner.
    #[error("FILE_ID_INVALID")]
    FileIdInvalid,
    /// `OFFSET_INVALID`: a download offset that breaks the rules.
    #[error("OFFSET_INVALID")]
    OffsetInvalid,
    /// `LIMIT_INVALID`: a download limit that breaks the rules.
    #[error("LIMIT_INVALID")]
    LimitInvalid,
    /// A stored part failed its SHA-256 check: it is reported, never served.
    #[error("stored part {part} of file {file_id} is corrupted")]
    Corrupted {
        /// The upload's file id.
        file_id: i64,
        /// The part.
        part: u32,
    },
    /// The storage engine failed (or refuses writes after a failed one).
    #[error("storage backend: {0}")]
    Backend(#[source] crate::BackendError),
}

impl FileError {
    /// The RPC error Telegram answers with: code and message (`FILE_PART_3_MISSING`).
    pub fn rpc_error(&self) -> (i32, String) {
        match self {
            Self::Corrupted { .. } | Self::Backend(_) => (500, "INTERNAL".to_owned()),
            other => (400, other.to_string()),
        }
    }
}

/// Whether `size` may be the part size of a multi-part file.
pub fn is_valid_part_size(size: usize) -> bool {
    size > 0 && size % PART_SIZE_UNIT == 0 && MAX_PART_SIZE % size == 0
}

/// The sizes of the parts an upload holds, kept so that each new part is checked in
/// O(log parts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartSizes {
    /// part index -> length.
    by_part: BTreeMap<u32, usize>,
    /// length -> how many parts have it.
    by_len: BTreeMap<usize, u32>,
}

impl PartSizes {
    /// An upload with no parts.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes held, all parts together.
    pub fn total_len(&self) -> u64 {
        self.by_part.values().map(|&len| len as u64).sum()
    }

    /// How many parts are held.
    pub fn count(&self) -> usize {
        self.by_part.len()
    }

    /// The length of part `part`, if held.
    pub fn get(&self, part: u32) -> Option<usize> {
        self.by_part.get(&part).copied()
    }

    /// Checks that storing `len` bytes as part `part` keeps the sizes consistent, without
    /// storing it. `last` is the last index when the number of parts is known (big files).
    pub fn check(&self, part: u32, len: usize, last: Option<u32>) -> Result<(), FileError> {
        if len == 0 {
            return Err(FileError::FilePartEmpty);
        }
        if len > MAX_PART_SIZE {
            return Err(FileError::FilePartTooBig);
        }
        let mut by_len = self.by_len.clone();
        if let Some(old) = self.by_part.get(&part) {
            if let Some(count) = by_len.get_mut(old) {
                *count -= 1;
                if *count == 0 {
                    by_len.remove(old);
                }
            }
        }
        *by_len.entry(len).or_default() += 1;
        let total: u32 = by_len.values().sum();
        let mut sizes = by_len.iter().rev();
        let full = sizes.next().map(|(&size, &count)| (size, count));
        let short = sizes.next().map(|(&size, &count)| (size, count));
        if sizes.next().is_some() {
            return Err(FileError::FilePartSizeChanged);
        }
        if let Some((_, count)) = short {
            // The smaller size is the last part's: only one part may have it.
            if count > 1 {
                return Err(FileError::FilePartSizeChanged);
            }
        }
        // With more than one part, the common size must be a valid part size.
        if let Some((size, _)) = full {
            if total > 1 && !is_valid_part_size(size) {
                return Err(FileError::FilePartSizeInvalid);
            }
        }
        // Known last index: only it may be short.
        if let (Some(last), Some((short_len, _))) = (last, short) {
            let short_part = if len == short_len {
                Some(part)
            } else {
                self.by_part
                    .iter()
                    .find(|&(&index, &size)| size == short_len && index != part)
                    .map(|(&index, _)| index)
            };
            if short_part != Some(last) {
                return Err(FileError::FilePartSizeChanged);
            }
        }
        Ok(())
    }

    /// Records part `part` as `len` bytes (after [`Self::check`]).
    pub fn insert(&mut self, part: u32, len: usize) {
        if let Some(old) = self.by_part.insert(part, len) {
            if let Some(count) = self.by_len.get_mut(&old) {
                *count -= 1;
                if *count == 0 {
                    self.by_len.remove(&old);
                }
            }
        }
        *self.by_len.entry(len).or_default() += 1;
    }

    /// Checks a finish with `parts` parts: every index present (else the lowest missing
    /// one), and only the last part short. Returns the file's size.
    pub fn finish(&self, parts: u32) -> Result<u64, FileError> {
        if parts == 0 {
            return Err(FileError::FilePartsInvalid);
        }
        for part in 0..parts {
            if !self.by_part.contains_key(&part) {
                return Err(FileError::FilePartMissing(part));
            }
        }
        let common = self.by_len.keys().next_back().copied().unwrap_or(0);
        let mut size = 0u64;
        for (&part, &len) in self.by_part.range(..parts) {
            if len != common && part + 1 != parts {
                return Err(FileError::FilePartSizeChanged);
            }
            size += len as u64;
        }
        Ok(size)
    }
}

/// Checks a part index for an upload with at most `max_parts` parts (and `total_parts`
/// announced, for big files).
pub fn check_part_index(
    part: i32,
    total_parts: Option<i32>,
    max_parts: u32,
) -> Result<u32, FileError> {
    if let Some(total) = total_parts {
        let total = u32::try_from(total).map_err(|_| FileError::FilePartsInvalid)?;
        if total == 0 || total > max_parts {
            return Err(FileError::FilePartsInvalid);
        }
        let part = u32::try_from(part).map_err(|_| FileError::FilePartInvalid)?;
        if part >= total {
            return Err(FileError::FilePartInvalid);
        }
        return Ok(part);
    }
    let part = u32::try_from(part).map_err(|_| FileError::FilePartInvalid)?;
    if part >= max_parts {
        return Err(FileError::FilePartInvalid);
    }
    Ok(part)
}

/// Checks an `upload.getFile` range; returns it as (offset, limit).
pub fn check_download(offset: i64, limit: i32, precise: bool) -> Result<(u64, u64), FileError> {
    let offset = u64::try_from(offset).map_err(|_| FileError::OffsetInvalid)?;
    let limit = u64::try_from(limit).map_err(|_| FileError::LimitInvalid)?;
    if limit == 0 {
        return Err(FileError::LimitInvalid);
    }
    if precise {
        if offset % 1024 != 0 {
            return Err(FileError::OffsetInvalid);
        }
        if limit % 1024 != 0 || limit > DOWNLOAD_WINDOW {
            return Err(FileError::LimitInvalid);
        }
    } else {
        if offset % 4096 != 0 {
            return Err(FileError::OffsetInvalid);
        }
        if limit % 4096 != 0 || DOWNLOAD_WINDOW % limit != 0 {
            return Err(FileError::LimitInvalid);
        }
    }
    // One window: the first and the last byte in the same 1 MiB.
    let last = offset
        .checked_add(limit - 1)
        .ok_or(FileError::OffsetInvalid)?;
    if offset / DOWNLOAD_WINDOW != last / DOWNLOAD_WINDOW {
        return Err(FileError::LimitInvalid);
    }
    Ok((offset, limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K: usize = 1024;

    #[test]
    fn part_sizes_are_multiples_of_1k_dividing_512k() {
        let valid: Vec<usize> = (1..=512)
            .map(|k| k * K)
            .filter(|&s| is_valid_part_size(s))
            .collect();
        assert_eq!(
            valid,
            vec![
                K,
                2 * K,
                4 * K,
                8 * K,
                16 * K,
                32 * K,
                64 * K,
                128 * K,
                256 * K,
                512 * K
            ]
        );
        assert!(!is_valid_part_size(0));
        assert!(!is_valid_part_size(3 * K));
        assert!(!is_valid_part_size(1000));
    }

    #[test]
    fn parts_in_any_order_with_one_short_last() {
        let mut sizes = PartSizes::new();
        for (part, len) in [(2u32, 100usize), (0, 4 * K), (1, 4 * K)] {
            sizes.check(part, len, None).unwrap();
            sizes.insert(part, len);
        }
        assert_eq!(sizes.finish(3), Ok((8 * K + 100) as u64));
        assert_eq!(sizes.finish(4), Err(FileError::FilePartMissing(3)));
        // The short part is not the last one.
        assert_eq!(sizes.finish(2), Ok((8 * K) as u64), "parts 0..2 only");
        let mut misplaced = PartSizes::new();
        for (part, len) in [(0u32, 100usize), (1, 4 * K), (2, 4 * K)] {
            misplaced.insert(part, len);
        }
        assert_eq!(misplaced.finish(3), Err(FileError::FilePartSizeChanged));
    }

    #[test]
    fn sizes_that_cannot_be_one_file_are_refused() {
        let mut sizes = PartSizes::new();
        sizes.insert(0, 4 * K);
        sizes.insert(1, 100);
        assert_eq!(
            sizes.check(2, 200, None),
            Err(FileError::FilePartSizeChanged),
            "two short parts"
        );
        assert_eq!(
            sizes.check(2, 8 * K, None),
            Err(FileError::FilePartSizeChanged),
            "three sizes"
        );
        let mut odd = PartSizes::new();
        odd.insert(0, 3 * K);
        assert_eq!(
            odd.check(1, 3 * K, None),
            Err(FileError::FilePartSizeInvalid)
        );
        assert!(
            odd.check(0, 5000, None).is_ok(),
            "a single part may be any size (replacing it)"
        );
        assert_eq!(sizes.check(5, 0, None), Err(FileError::FilePartEmpty));
        assert_eq!(
            sizes.check(5, MAX_PART_SIZE + 1, None),
            Err(FileError::FilePartTooBig)
        );
        // Big files: the last index is known.
        let mut big = PartSizes::new();
        big.insert(0, 512 * K);
        assert_eq!(
            big.check(1, 100, Some(3)),
            Err(FileError::FilePartSizeChanged),
            "not the last"
        );
        assert!(big.check(3, 100, Some(3)).is_ok());
        assert_eq!(
            big.check(3, 512 * K + 1, Some(3)),
            Err(FileError::FilePartTooBig)
        );
    }

    #[test]
    fn a_repeated_part_replaces_the_old_one() {
        let mut sizes = PartSizes::new();
        sizes.insert(0, 4 * K);
        sizes.insert(1, 100);
        // Part 1 again, now full size, then a short part 2.
        sizes.check(1, 4 * K, None).unwrap();
        sizes.insert(1, 4 * K);
        sizes.check(2, 10, None).unwrap();
        sizes.insert(2, 10);
        assert_eq!(sizes.finish(3), Ok((8 * K + 10) as u64));
    }

    #[test]
    fn part_indexes_and_counts() {
        assert_eq!(check_part_index(0, None, 4000), Ok(0));
        assert_eq!(check_part_index(3999, None, 4000), Ok(3999));
        assert_eq!(
            check_part_index(4000, None, 4000),
            Err(FileError::FilePartInvalid)
        );
        assert_eq!(
            check_part_index(-1, None, 4000),
            Err(FileError::FilePartInvalid)
        );
        assert_eq!(
            check_part_index(0, Some(0), 4000),
            Err(FileError::FilePartsInvalid)
        );
        assert_eq!(
            check_part_index(0, Some(4001), 4000),
            Err(FileError::FilePartsInvalid)
        );
        assert_eq!(
            check_part_index(5, Some(5), 4000),
            Err(FileError::FilePartInvalid)
        );
        assert_eq!(check_part_index(4, Some(5), 4000), Ok(4));
    }

    #[test]
    fn download_ranges() {
        assert_eq!(check_download(0, 1024 * 1024, false), Ok((0, 1024 * 1024)));
        assert_eq!(check_download(4096, 4096, false), Ok((4096, 4096)));
        assert_eq!(
            check_download(1024, 4096, false),
            Err(FileError::OffsetInvalid)
        );
        assert_eq!(
            check_download(0, 12 * 1024, false),
            Err(FileError::LimitInvalid),
            "does not divide 1 MiB"
        );
        assert_eq!(
            check_download(512 * 1024, 1024 * 1024, false),
            Err(FileError::LimitInvalid),
            "crosses a window"
        );
        assert_eq!(check_download(1024, 3 * 1024, true), Ok((1024, 3 * 1024)));
        assert_eq!(
            check_download(1023 * 1024, 2 * 1024, true),
            Err(FileError::LimitInvalid),
            "crosses a window"
        );
        assert_eq!(check_download(0, 0, true), Err(FileError::LimitInvalid));
        assert_eq!(
            check_download(-4096, 4096, false),
            Err(FileError::OffsetInvalid)
        );
        // Far past any file: a valid range (the file has no bytes there), and no overflow.
        assert!(check_download(i64::MAX - 4095, 4096, false).is_ok());
    }

    #[test]
    fn error_names_are_telegram_s() {
        assert_eq!(
            FileError::FilePartMissing(3).rpc_error(),
            (400, "FILE_PART_3_MISSING".to_owned())
        );
        assert_eq!(
            FileError::Md5ChecksumInvalid.rpc_error(),
            (400, "MD5_CHECKSUM_INVALID".to_owned())
        );
        assert_eq!(
            FileError::Backend(crate::BackendError::new("disk"))
                .rpc_error()
                .0,
            500
        );
    }

    proptest! {
        /// Any file cut by the rules, its parts sent in any order (some twice), is accepted
        /// and finishes with its size.
        #[test]
        fn well_formed_uploads_always_pass(size_exp in 0u32..10, full_parts in 0u32..20, tail in 0usize..1024 * 512, order in any::<u64>()) {
            let part_size = K << size_exp;
            let tail = tail % part_size;
            let mut parts: Vec<(u32, usize)> = (0..full_parts).map(|i| (i, part_size)).collect();
            if tail > 0 || parts.is_empty() {
                parts.push((full_parts, tail.max(1)));
            }
            let count = u32::try_from(parts.len()).unwrap();
            // A deterministic shuffle, with the first part repeated at the end.
            let mut shuffled = parts.clone();
            let mut state = order;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            if let Some(first) = shuffled.first().copied() {
                shuffled.push(first);
            }
            let mut sizes = PartSizes::new();
            for (part, len) in shuffled {
                prop_assert_eq!(sizes.check(part, len, None), Ok(()));
                sizes.insert(part, len);
            }
            let expected: u64 = parts.iter().map(|(_, len)| *len as u64).sum();
            prop_assert_eq!(sizes.finish(count), Ok(expected));
        }
    }
}
