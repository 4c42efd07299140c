//! Persistence for Columba: auth keys, messages and file parts.
//!
//! Every persistence trait here is free of storage-engine types, so that an application can
//! bring its own backend; each comes with an in-memory backend and a conformance suite that
//! every backend must pass (feature `testing`).
//!
//! - [`auth_key`]: [`AuthKeyStore`], authorization keys with the temporary-to-permanent
//!   binding of perfect forward secrecy, and [`MemoryAuthKeyStore`].
//!
//! To come with the storage work: `MessageStore` (Telegram's boxes, ids and pts, idempotent
//! sends keyed by `random_id`, `getHistory` and `getDifference` rules), `FileStore` (chunked
//! uploads) and the sharded RocksDB backend (feature `rocksdb`). Message bodies are opaque
//! bytes to this crate.
#![forbid(unsafe_code)]

pub mod auth_key;

pub use auth_key::{
    AuthKeyError, AuthKeyRecord, AuthKeyStore, KeyLifetime, MemoryAuthKeyStore, ResolvedKey,
};
