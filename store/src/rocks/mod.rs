//! The sharded RocksDB backend (feature `rocksdb`).
//!
//! - **Sharding.** Boxes hash to [`LOGICAL_SHARDS`](crate::shard::LOGICAL_SHARDS) logical
//!   shards, spread over a configured number of RocksDB instances by jump consistent hash;
//!   the `MANIFEST` at the store's root records the layout, and a store opened with another
//!   instance count refuses to start rather than look for boxes in the wrong place. A box
//!   never spans instances.
//! - **Atomicity.** Every change to a box (its rows, update-log entry, counters, dialog
//!   summary, idempotency record) is one `WriteBatch`. Ids and pts are given under the box's
//!   lock and committed before it is released, so they appear in order; readers use
//!   snapshots and never see part of a change.
//! - **Sends across instances.** The sender's instance commits its copy with a pending
//!   record holding the other instance's whole batch; that batch is then written with a
//!   marker; the pending record goes last. Opening the store writes every pending batch whose
//!   marker is missing, so an acknowledged send is never lost or doubled, wherever the process
//!   died. Edits, deletes and reads that reach two instances write the other boxes first: if
//!   the process dies between, the caller had no answer and a retry completes the change.
//! - **Durability.** [`Durability::Sync`] by default (group commit shares syncs between
//!   concurrent writers); [`Durability::Periodic`] trades the last period's writes on power
//!   failure for speed. A failed write or sync poisons its instance: it refuses writes with
//!   [`MessageError::Backend`](crate::MessageError::Backend) until the store is reopened.
//! - **Operations.** [`RocksMessageStore::checkpoint`] copies a consistent store for backups;
//!   [`RocksMessageStore::metrics`] exposes RocksDB's statistics.
//!
//! [`RocksFileStore`] keeps file rows in a RocksDB of its own and part bytes in one plain
//! file per upload beside it.
//!
//! [`RocksAuthKeyStore`] keeps authorization keys (with their bindings and an expiry index)
//! in a RocksDB of its own, every change synced.
//!
//! [`RocksUserStore`] keeps people (accounts and their indexes, contacts, blocks,
//! authorizations, devices) in a RocksDB of its own, every change but presence synced.
//!
//! [`RocksSecretStore`] keeps the secret-chat relay (chats, per-device queues with their qts,
//! send records) in a RocksDB of its own, every change synced.
//!
//! The byte layout is in `docs/storage-format.md`.

mod auth_key;
mod commit_queue;
mod file;
mod instance;
mod locks;
mod members;
mod message;
mod part_cache;
mod part_files;
mod plan;
mod row_db;
mod secret;
mod shards;
mod upload_hashes;
mod user;

pub use auth_key::RocksAuthKeyStore;
pub use file::{DEFAULT_PART_CACHE_BYTES, RocksFileStore};
pub use instance::Fault;
pub use message::RocksMessageStore;
pub use secret::RocksSecretStore;
pub use shards::{Durability, OpenError, RocksOptions};
pub use user::RocksUserStore;
