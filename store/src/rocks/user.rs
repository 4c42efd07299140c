//! [`UserStore`](crate::UserStore) on RocksDB: the rows of [`crate::user`]'s shared rules in
//! one instance of their own.
//!
//! Writes are serialised by one mutex (people change at human speed, and each change reads
//! indexes it must keep unique) and each is one `WriteBatch`, synced but for presence reports;
//! reads take a snapshot and never lock. Rows (`docs/storage-format.md`): `20` to `2b` and
//! `2f`.

use std::path::Path;
use std::sync::Mutex;

use super::instance::{Instance, Tuning, USER_FAMILIES};
use super::shards::{Durability, OpenError};
use crate::BackendError;
use crate::message::MessageError;
use crate::user::plan::{self, Plan, Rows, user_store_over_rows};
use crate::user::{UserError, UserStoreConfig};

/// People in a RocksDB database of their own.
#[derive(Debug)]
pub struct RocksUserStore {
    config: UserStoreConfig,
    instance: Instance,
    writer: Mutex<()>,
}

fn backend(error: MessageError) -> UserError {
    match error {
        MessageError::Backend(cause) => UserError::Backend(cause),
        MessageError::Poisoned { cause, .. } => UserError::Poisoned(cause),
        other => UserError::Backend(BackendError::with_source("user store", other)),
    }
}

impl RocksUserStore {
    /// Opens (or creates) the user store at `path`. With [`Durability::Sync`] every change
    /// but a presence report is on disk before the call returns; [`Durability::Periodic`]
    /// leaves the sync to RocksDB's write-ahead log flushes (a power failure may lose the
    /// last changes, a process crash does not).
    pub fn open(
        path: impl AsRef<Path>,
        config: UserStoreConfig,
        durability: Durability,
    ) -> Result<Self, OpenError> {
        std::fs::create_dir_all(path.as_ref())?;
        let cache = rocksdb::Cache::new_lru_cache(16 << 20);
        let tuning = Tuning {
            statistics: false,
            write_buffer_bytes: 8 << 20,
            sync: durability == Durability::Sync,
        };
        let instance = Instance::open_with(path.as_ref(), 0, &cache, tuning, USER_FAMILIES)
            .map_err(|error| OpenError::Engine {
                instance: 0,
                message: error.to_string(),
            })?;
        Ok(Self {
            config,
            instance,
            writer: Mutex::new(()),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&dyn Rows) -> Result<T, UserError>) -> Result<T, UserError> {
        f(&self.instance.snapshot())
    }

    fn write<T>(
        &self,
        sync: bool,
        f: impl FnOnce(&mut Plan<'_>) -> Result<T, UserError>,
    ) -> Result<T, UserError> {
        // Guards nothing but the order of writers: each plan reads the latest state, which
        // no other writer changes while it is held.
        let _writer = crate::lock(&self.writer);
        self.instance.check_writable().map_err(backend)?;
        let reader = self.instance.latest();
        let mut plan = Plan::new(&reader);
        let result = f(&mut plan)?;
        let ops = plan.into_ops();
        if !ops.is_empty() {
            if sync {
                self.instance.write(&ops, false).map_err(backend)?;
            } else {
                self.instance.write_unsynced(&ops).map_err(backend)?;
            }
        }
        Ok(result)
    }

    /// Makes the next writes fail as `fault` says, after `after_writes` good ones (tests of
    /// what a failed write leaves behind).
    #[cfg(feature = "testing")]
    pub fn inject_fault(&self, after_writes: u64, fault: super::Fault) {
        self.instance.set_fault(after_writes, fault);
    }
}

user_store_over_rows!(RocksUserStore);
