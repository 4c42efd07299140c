//! The in-memory [`UserStore`](super::UserStore): the rows of [`super::plan`] in a
//! `BTreeMap` behind a mutex.

use super::plan::{self, Plan, Rows, user_store_over_rows};
use super::{UserError, UserStoreConfig};
use crate::rows::MemoryRows;

/// People in memory: for tests and for servers that do not need them to survive a restart.
#[derive(Debug, Default)]
pub struct MemoryUserStore {
    config: UserStoreConfig,
    rows: MemoryRows,
}

impl MemoryUserStore {
    /// An empty store with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with these limits.
    pub fn with_config(config: UserStoreConfig) -> Self {
        Self {
            config,
            rows: MemoryRows::default(),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&dyn Rows) -> Result<T, UserError>) -> Result<T, UserError> {
        self.rows.read(f)
    }

    fn write<T>(
        &self,
        _sync: bool,
        f: impl FnOnce(&mut Plan<'_>) -> Result<T, UserError>,
    ) -> Result<T, UserError> {
        self.rows.write(f)
    }
}

user_store_over_rows!(MemoryUserStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        super::super::conformance::run_all(&|| Box::new(MemoryUserStore::new()));
    }

    #[test]
    fn memory_store_keeps_the_configured_limits() {
        super::super::conformance::run_all_with_limits(&|config| {
            Box::new(MemoryUserStore::with_config(config))
        });
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

        /// Random sign-ups, usernames, names, imports, contacts, blocks, deletions and reads
        /// agree with the reference model after every step.
        #[test]
        fn memory_store_agrees_with_the_model(ops in super::super::conformance::ops()) {
            super::super::conformance::model_agrees(
                &|| Box::new(MemoryUserStore::new()),
                &ops,
            );
        }
    }
}
