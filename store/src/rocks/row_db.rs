//! A RocksDB instance of ordered rows for a store whose rules are written over
//! [`crate::rows`] (the user store, the secret relay's store): reads on a snapshot, writes
//! planned over the latest state under one writer lock and committed as one batch.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::instance::{Instance, Tuning};
use super::shards::{Durability, OpenError};
use crate::message::MessageError;
use crate::rows::{Plan, Rows};

/// One instance, and the lock that orders its writers.
#[derive(Debug)]
pub(crate) struct RowDb {
    instance: Instance,
    writer: Mutex<()>,
}

impl RowDb {
    /// Opens (or creates) the instance at `path` with these column families.
    pub(crate) fn open(
        path: &Path,
        families: &'static [&'static str],
        write_buffer_bytes: usize,
        durability: Durability,
    ) -> Result<Self, OpenError> {
        std::fs::create_dir_all(path)?;
        let cache = rocksdb::Cache::new_lru_cache(16 << 20);
        let tuning = Tuning {
            statistics: false,
            write_buffer_bytes,
            sync: durability == Durability::Sync,
        };
        let instance = Instance::open_with(path, 0, &cache, tuning, families).map_err(|error| {
            OpenError::Engine {
                instance: 0,
                message: error.to_string(),
            }
        })?;
        Ok(Self {
            instance,
            writer: Mutex::new(()),
        })
    }

    /// The instance.
    pub(crate) fn instance(&self) -> &Instance {
        &self.instance
    }

    /// The writer lock: it guards nothing but the order of writers (each plan reads the
    /// latest state, which no other writer changes while it is held).
    pub(crate) fn writer(&self) -> MutexGuard<'_, ()> {
        crate::lock(&self.writer)
    }

    /// Runs `f` on a snapshot.
    pub(crate) fn read<T, E>(&self, f: impl FnOnce(&dyn Rows) -> Result<T, E>) -> Result<T, E> {
        f(&self.instance.snapshot())
    }

    /// Plans a change with `f` over the latest state and commits it as one batch (synced,
    /// with `sync`), the engine's failures made the store's errors by `backend`.
    pub(crate) fn write<T, E>(
        &self,
        sync: bool,
        backend: fn(MessageError) -> E,
        f: impl FnOnce(&mut Plan<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let _writer = self.writer();
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
}
