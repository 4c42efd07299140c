//! [`SecretStore`](crate::secret::SecretStore) on RocksDB: the rows of [`crate::secret`]'s
//! shared rules in one instance of their own.
//!
//! Writes are serialised by one mutex (each send reads the receiving device's counters and
//! the chat it must check) and each is one synced `WriteBatch`, so a queued message and its
//! qts, its expiry row and its send record appear together or not at all, whenever the
//! process dies. Reads take a snapshot and never lock. Rows (`docs/storage-format.md`): `30`
//! to `37`.

use std::path::Path;
use std::sync::Mutex;

use super::instance::{Instance, SECRET_FAMILIES, Tuning};
use super::shards::{Durability, OpenError};
use crate::BackendError;
use crate::message::MessageError;
use crate::rows::{Plan, Rows};
use crate::secret::plan::secret_store_over_rows;
use crate::secret::{SecretError, SecretStoreConfig};

/// The secret relay's chats and queues in a RocksDB database of their own.
#[derive(Debug)]
pub struct RocksSecretStore {
    config: SecretStoreConfig,
    instance: Instance,
    writer: Mutex<()>,
}

fn backend(error: MessageError) -> SecretError {
    match error {
        MessageError::Backend(cause) => SecretError::Backend(cause),
        MessageError::Poisoned { cause, .. } => SecretError::Poisoned(cause),
        other => SecretError::Backend(BackendError::with_source("secret store", other)),
    }
}

impl RocksSecretStore {
    /// Opens (or creates) the secret store at `path`. With [`Durability::Sync`] every change
    /// is on disk before the call returns; [`Durability::Periodic`] leaves the sync to
    /// RocksDB's write-ahead log flushes (a power failure may lose the last changes, a
    /// process crash does not).
    pub fn open(
        path: impl AsRef<Path>,
        config: SecretStoreConfig,
        durability: Durability,
    ) -> Result<Self, OpenError> {
        std::fs::create_dir_all(path.as_ref())?;
        let cache = rocksdb::Cache::new_lru_cache(16 << 20);
        let tuning = Tuning {
            statistics: false,
            write_buffer_bytes: 16 << 20,
            sync: durability == Durability::Sync,
        };
        let instance = Instance::open_with(path.as_ref(), 0, &cache, tuning, SECRET_FAMILIES)
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

    fn read<T>(
        &self,
        f: impl FnOnce(&dyn Rows) -> Result<T, SecretError>,
    ) -> Result<T, SecretError> {
        f(&self.instance.snapshot())
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Plan<'_>) -> Result<T, SecretError>,
    ) -> Result<T, SecretError> {
        // Guards nothing but the order of writers: each plan reads the latest state, which
        // no other writer changes while it is held.
        let _writer = crate::lock(&self.writer);
        self.instance.check_writable().map_err(backend)?;
        let reader = self.instance.latest();
        let mut plan = Plan::new(&reader);
        let result = f(&mut plan)?;
        let ops = plan.into_ops();
        if !ops.is_empty() {
            self.instance.write(&ops, false).map_err(backend)?;
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

secret_store_over_rows!(RocksSecretStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocks_store_passes_the_conformance_suite() {
        let dirs = Mutex::new(Vec::new());
        crate::secret::conformance::run_all(&|config| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let store = RocksSecretStore::open(dir.path(), config, Durability::Sync)
                .expect("the store opens");
            crate::lock(&dirs).push(dir);
            Box::new(store)
        });
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 16, ..Default::default() })]

        /// The model check of the memory backend, on RocksDB.
        #[test]
        fn rocks_store_agrees_with_the_model(ops in crate::secret::conformance::ops()) {
            let dirs = Mutex::new(Vec::new());
            crate::secret::conformance::model_agrees(
                &|config| {
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    let store = RocksSecretStore::open(dir.path(), config, Durability::Periodic(std::time::Duration::from_secs(1)))
                        .expect("the store opens");
                    crate::lock(&dirs).push(dir);
                    Box::new(store)
                },
                &ops,
            );
        }
    }
}
