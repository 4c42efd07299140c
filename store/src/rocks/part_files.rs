//! Part bytes in plain files, one per upload, beside the file store's RocksDB.
//!
//! RocksDB would write every part twice (its write-ahead log, then a blob or table file at
//! flush) and checksum it twice more on the way; a part file takes the bytes once. Each
//! part has two fixed slots of [`SLOT_BYTES`] in its upload's file, at
//! `(2 · part + slot) · SLOT_BYTES`: a part stored again goes to the slot its row does not
//! name, so a write torn by a crash never damages bytes that a committed row still refers
//! to. The files are sparse: a slot costs disk space only once written.
//!
//! The order of every change is what keeps the files and the rows consistent: bytes are
//! written and synced before the row naming them commits, and a file is removed only after
//! the rows naming it are gone. A crash between the two leaves a file no row names, which
//! [`PartFiles::remove_orphans`] reclaims when the store opens.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// The stride of part slots: the largest part Telegram allows (512 KiB).
pub(crate) const SLOT_BYTES: u64 = 512 * 1024;

/// The file name's suffix.
const SUFFIX: &str = ".parts";

/// The directory of part files.
#[derive(Debug)]
pub(crate) struct PartFiles {
    dir: PathBuf,
}

impl PartFiles {
    /// Opens (or creates) the directory.
    pub(crate) fn open(dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, blob: u64) -> PathBuf {
        self.dir.join(format!("{blob:016x}{SUFFIX}"))
    }

    /// Where a part's slot starts in its file.
    fn offset(part: u32, slot: u8) -> u64 {
        (u64::from(part) * 2 + u64::from(slot & 1)) * SLOT_BYTES
    }

    /// Writes a part's bytes into its slot and syncs them (and, for a new file, the
    /// directory entry) before returning.
    pub(crate) fn write(&self, blob: u64, part: u32, slot: u8, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() as u64 > SLOT_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a part is larger than its slot",
            ));
        }
        let path = self.path(blob);
        let (file, created) = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => (file, true),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                (OpenOptions::new().write(true).open(&path)?, false)
            }
            Err(error) => return Err(error),
        };
        file.write_all_at(bytes, Self::offset(part, slot))?;
        // fdatasync also persists the size the write gave the file.
        file.sync_data()?;
        if created {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Reads `len` bytes of a part's slot. A file that is missing or too short is an
    /// `UnexpectedEof`/`NotFound` error, which the caller reports as corruption.
    pub(crate) fn read(&self, blob: u64, part: u32, slot: u8, len: u32) -> io::Result<Vec<u8>> {
        let file = File::open(self.path(blob))?;
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let mut out = vec![0u8; len];
        file.read_exact_at(&mut out, Self::offset(part, slot))?;
        Ok(out)
    }

    /// Removes an upload's file; a file already gone is not an error.
    pub(crate) fn remove(&self, blob: u64) -> io::Result<()> {
        match std::fs::remove_file(self.path(blob)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// The blob numbers that have a file (names this module did not write are left alone).
    pub(crate) fn blobs(&self) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(stem) = name.to_str().and_then(|name| name.strip_suffix(SUFFIX)) else {
                continue;
            };
            if stem.len() == 16
                && let Ok(blob) = u64::from_str_radix(stem, 16)
            {
                out.push(blob);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Removes the files whose blob `named` says no row refers to; returns how many.
    pub(crate) fn remove_orphans(
        &self,
        mut named: impl FnMut(u64) -> io::Result<bool>,
    ) -> io::Result<usize> {
        let mut removed = 0;
        for blob in self.blobs()? {
            if !named(blob)? {
                self.remove(blob)?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Flips one bit of a stored byte, to test that corruption is caught.
    #[cfg(feature = "testing")]
    pub(crate) fn flip(&self, blob: u64, part: u32, slot: u8, at: u64) -> io::Result<()> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(blob))?;
        let offset = Self::offset(part, slot) + at;
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, offset)?;
        let [bit] = &mut byte;
        *bit ^= 0x40;
        file.write_all_at(&byte, offset)?;
        file.sync_data()
    }
}

/// Makes a directory's entries (a created or removed file) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn slots_of_a_part_are_apart() {
        let dir = tempfile::tempdir().unwrap();
        let files = PartFiles::open(dir.path().join("parts")).unwrap();
        files.write(7, 3, 0, b"first").unwrap();
        files.write(7, 3, 1, b"second").unwrap();
        assert_eq!(files.read(7, 3, 0, 5).unwrap(), b"first");
        assert_eq!(files.read(7, 3, 1, 6).unwrap(), b"second");
        // Past what was written: an error, not zeros made up.
        assert!(files.read(7, 4, 1, 6).is_err());
        assert!(files.read(8, 0, 0, 1).is_err());
        assert_eq!(files.blobs().unwrap(), vec![7]);
    }

    #[test]
    fn orphans_go_and_named_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let files = PartFiles::open(dir.path().to_path_buf()).unwrap();
        for blob in 1..=4 {
            files.write(blob, 0, 0, &[1u8; 1024]).unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();
        let removed = files.remove_orphans(|blob| Ok(blob % 2 == 0)).unwrap();
        assert_eq!(removed, 2);
        assert_eq!(files.blobs().unwrap(), vec![2, 4]);
        assert!(dir.path().join("notes.txt").exists());
        files.remove(2).unwrap();
        files.remove(2).unwrap();
        assert_eq!(files.blobs().unwrap(), vec![4]);
    }

    #[test]
    fn a_part_larger_than_a_slot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = PartFiles::open(dir.path().to_path_buf()).unwrap();
        let big = vec![0u8; usize::try_from(SLOT_BYTES).unwrap() + 1];
        assert!(files.write(1, 0, 0, &big).is_err());
        assert!(files.blobs().unwrap().is_empty());
    }
}
