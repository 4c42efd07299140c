//! Persistence for Columba: auth keys, messages and file parts.
//!
//! Every persistence trait here is free of storage-engine types, so that an application can
//! bring its own backend; each comes with an in-memory backend and a conformance suite that
//! every backend must pass (feature `testing`).
//!
//! - [`auth_key`]: [`AuthKeyStore`], authorization keys with the temporary-to-permanent
//!   binding of perfect forward secrecy, and [`MemoryAuthKeyStore`].
//! - [`message`]: [`MessageStore`], Telegram's boxes with per-box ids and pts, idempotent
//!   sends keyed by `random_id`, the pts update log with `getDifference`, `getHistory`'s
//!   paging rules, dialogs, edits, deletes and read markers; [`MemoryMessageStore`].
//! - [`file`](mod@file): [`FileStore`], file parts under Telegram's upload and download rules (with
//!   their error names), SHA-256 per part checked on read, content-addressed finished files
//!   with reference counts, expiry of unfinished uploads; [`MemoryFileStore`].
//!
//! - [`user`]: [`UserStore`], people: accounts with Telegram's rules for phones, names and
//!   usernames, profile photos and presence, contacts and the phone book, blocked users,
//!   authorizations and push devices; [`MemoryUserStore`].
//!
//! - [`secret`]: [`SecretStore`], the secret-chat relay: chats between two devices, one
//!   queue of opaque ciphertexts per device with its qts, idempotent sends, retention;
//!   [`MemorySecretStore`].
//!
//! The storage keys, value encodings and shard map the RocksDB backend uses are internal; their
//! byte layout is documented in `docs/storage-format.md`, and a manifest error is a
//! [`ManifestError`].
//!
//! - [`rocks`] (feature `rocksdb`, on by default): [`RocksMessageStore`], the sharded,
//!   crash-safe RocksDB backend of [`MessageStore`], and [`RocksAuthKeyStore`].
//!
//! Message bodies are opaque bytes to this crate.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

/// Locks a mutex whose holders never leave its data half-changed (each changes it in one
/// step, or guards nothing but an order), so that a panic elsewhere does not poison it.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub mod auth_key;
mod codec;
mod error;
pub mod file;
mod keys;
pub mod message;
#[cfg(feature = "rocksdb")]
pub mod rocks;
mod rows;
pub mod secret;
#[cfg_attr(
    not(feature = "rocksdb"),
    allow(dead_code, reason = "the shard map serves the RocksDB backend")
)]
mod shard;
pub mod user;

/// Not a stable API: the storage keys and value encodings, for the fuzz targets and
/// benchmarks (their byte layout is `docs/storage-format.md`).
#[doc(hidden)]
pub mod hooks {
    /// The value encodings.
    pub mod codec {
        pub use crate::codec::*;
    }
    /// The storage keys.
    pub mod keys {
        pub use crate::keys::*;
    }
    /// The user store's value encodings.
    pub mod user_values {
        pub use crate::user::values::*;
    }
}
#[cfg(test)]
mod strategies;

pub use auth_key::{
    AuthKeyError, AuthKeyRecord, AuthKeyStore, KeyLifetime, MemoryAuthKeyStore, ResolvedKey,
};
pub use error::BackendError;
pub use file::{FileError, FileStore, MemoryFileStore};
pub use message::{
    BoxId, MemoryMessageStore, MessageError, MessageStore, MessageStoreConfig, Peer, SendRequest,
};
#[cfg(feature = "rocksdb")]
pub use rocks::{
    Durability, OpenError, RocksAuthKeyStore, RocksFileStore, RocksMessageStore, RocksOptions,
    RocksSecretStore, RocksUserStore,
};
pub use secret::{MemorySecretStore, SecretError, SecretStore, SecretStoreConfig};
pub use shard::{FORMAT_VERSION, LOGICAL_SHARDS, ManifestError, OLDEST_READABLE_FORMAT};
pub use user::{MemoryUserStore, UserError, UserStore, UserStoreConfig, UsernameOwner};
