//! File parts with Telegram's upload and download rules.
//!
//! A client uploads a file in parts (`upload.saveFilePart`, or `upload.saveBigFilePart` for
//! files over 10 MB), keyed by (owner, file_id, part); the owner is whatever the application
//! says (an auth key, a user), and another owner can neither add to nor finish someone's
//! upload. Each part is kept with its SHA-256, checked whenever it is read. Finishing
//! (`inputFile` / `inputFileBig`) checks that every part is there (else
//! `FILE_PART_X_MISSING`) and the MD5 when given, and turns the parts into a
//! content-addressed file (SHA-256 of the whole): identical content is stored once, with a
//! reference count. Unfinished uploads expire ([`FileStoreConfig::upload_ttl`]) and
//! [`FileStore::sweep`] reclaims them. Downloads follow `upload.getFile`'s ranges, and
//! `upload.getFileHashes` gives a SHA-256 per 128 KiB.

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod memory;
pub mod rules;

pub use memory::MemoryFileStore;
pub use rules::FileError;

/// A finished file's address: the SHA-256 of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId(pub [u8; 32]);

/// A finished file, as its owner saved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Where its bytes are.
    pub content: ContentId,
    /// Its size in bytes.
    pub size: u64,
    /// The name the client gave.
    pub name: String,
    /// Who saved it.
    pub owner: i64,
    /// The client's file id.
    pub file_id: i64,
}

/// A SHA-256 over one range of a file, as `fileHash` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHash {
    /// Where the range starts.
    pub offset: u64,
    /// Its length (128 KiB but for the file's end).
    pub limit: u32,
    /// SHA-256 of the range.
    pub hash: [u8; 32],
}

/// What a finish names: `inputFile` (with its MD5, lower-case hex, possibly empty) or
/// `inputFileBig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishRequest {
    /// The owner.
    pub owner: i64,
    /// The client's file id.
    pub file_id: i64,
    /// How many parts the client says it sent.
    pub parts: i32,
    /// The file name.
    pub name: String,
    /// `inputFile`'s `md5_checksum`: checked when not empty. `None` for `inputFileBig`.
    pub md5_checksum: Option<String>,
}

/// Limits of a file store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileStoreConfig {
    /// Parts per upload (`upload_max_fileparts_default`; 4000 parts of 512 KiB is 2000 MiB).
    pub max_parts: u32,
    /// Seconds an unfinished upload lives after its last part.
    pub upload_ttl: i64,
}

impl Default for FileStoreConfig {
    fn default() -> Self {
        Self {
            max_parts: 4000,
            upload_ttl: 3 * 3600,
        }
    }
}

/// Storage of file parts and finished files. Object-safe, shared between threads; each call
/// is atomic. Times are Unix seconds, passed in.
pub trait FileStore: Send + Sync {
    /// `upload.saveFilePart`: stores (or replaces) part `part` of a small file.
    fn save_part(
        &self,
        owner: i64,
        file_id: i64,
        part: i32,
        bytes: &[u8],
        now: i64,
    ) -> Result<(), FileError>;

    /// `upload.saveBigFilePart`: stores (or replaces) part `part` of a big file of
    /// `total_parts` parts; `total_parts` must stay the same for the upload.
    fn save_big_part(
        &self,
        owner: i64,
        file_id: i64,
        part: i32,
        total_parts: i32,
        bytes: &[u8],
        now: i64,
    ) -> Result<(), FileError>;

    /// Finishes an upload into a file (the parts are checked and released).
    fn finish(&self, request: &FinishRequest, now: i64) -> Result<FileInfo, FileError>;

    /// A finished file of `owner`.
    fn file(&self, owner: i64, file_id: i64) -> Result<Option<FileInfo>, FileError>;

    /// `upload.getFile`: the bytes of `content` in the range (fewer at the file's end, none
    /// past it).
    fn get_file(
        &self,
        content: ContentId,
        offset: i64,
        limit: i32,
        precise: bool,
    ) -> Result<Vec<u8>, FileError>;

    /// `upload.getFileHashes`: SHA-256 of the 128 KiB ranges of the 1 MiB window holding
    /// `offset`, from the range holding it.
    fn get_file_hashes(&self, content: ContentId, offset: i64) -> Result<Vec<FileHash>, FileError>;

    /// Drops `owner`'s file; its content goes when no file refers to it. Whether it existed.
    fn delete_file(&self, owner: i64, file_id: i64) -> Result<bool, FileError>;

    /// Removes the unfinished uploads whose last part is older than the TTL at `now`;
    /// returns how many.
    fn sweep(&self, now: i64) -> Result<usize, FileError>;
}
