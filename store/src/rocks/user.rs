//! [`UserStore`](crate::UserStore) on RocksDB: the rows of [`crate::user`]'s shared rules in
//! one instance of their own.
//!
//! Writes are serialised by one mutex (people change at human speed, and each change reads
//! indexes it must keep unique) and each is one `WriteBatch`, synced but for presence reports;
//! reads take a snapshot and never lock. Rows (`docs/storage-format.md`): `20` to `2b` and
//! `2f`.

use std::path::Path;

use super::instance::USER_FAMILIES;
use super::row_db::RowDb;
use super::shards::{Durability, OpenError};
use crate::BackendError;
use crate::message::MessageError;
use crate::user::plan::{self, Plan, Rows, user_store_over_rows};
use crate::user::{UserError, UserStoreConfig};

/// People in a RocksDB database of their own.
#[derive(Debug)]
pub struct RocksUserStore {
    config: UserStoreConfig,
    db: RowDb,
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
        Ok(Self {
            config,
            db: RowDb::open(path.as_ref(), USER_FAMILIES, 8 << 20, durability)?,
        })
    }

    fn read<T>(&self, f: impl FnOnce(&dyn Rows) -> Result<T, UserError>) -> Result<T, UserError> {
        self.db.read(f)
    }

    fn write<T>(
        &self,
        sync: bool,
        f: impl FnOnce(&mut Plan<'_>) -> Result<T, UserError>,
    ) -> Result<T, UserError> {
        self.db.write(sync, backend, f)
    }

    /// Makes the next writes fail as `fault` says, after `after_writes` good ones (tests of
    /// what a failed write leaves behind).
    #[cfg(feature = "testing")]
    pub fn inject_fault(&self, after_writes: u64, fault: super::Fault) {
        self.db.instance().set_fault(after_writes, fault);
    }
}

user_store_over_rows!(RocksUserStore);
