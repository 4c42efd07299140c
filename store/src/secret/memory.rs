//! The in-memory [`SecretStore`](super::SecretStore): the rows of [`super::plan`] in a
//! `BTreeMap` behind a mutex.

use super::plan::secret_store_over_rows;
use super::{SecretError, SecretStoreConfig};
use crate::rows::{MemoryRows, Plan, Rows};

/// The secret relay's state in memory: for tests and for servers that do not need it to
/// survive a restart.
#[derive(Debug, Default)]
pub struct MemorySecretStore {
    config: SecretStoreConfig,
    rows: MemoryRows,
}

impl MemorySecretStore {
    /// An empty store with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with these limits.
    pub fn with_config(config: SecretStoreConfig) -> Self {
        Self {
            config,
            rows: MemoryRows::default(),
        }
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&dyn Rows) -> Result<T, SecretError>,
    ) -> Result<T, SecretError> {
        self.rows.read(f)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Plan<'_>) -> Result<T, SecretError>,
    ) -> Result<T, SecretError> {
        self.rows.write(f)
    }

    fn send_one(&self, send: &super::SecretSend) -> Result<super::SecretSent, SecretError> {
        let config = self.config;
        self.write(|plan| super::plan::send(plan, &config, send))
    }
}

secret_store_over_rows!(MemorySecretStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        super::super::conformance::run_all(&|config| {
            Box::new(MemorySecretStore::with_config(config))
        });
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Random sends (with repeats), acknowledgements (some past the end) and purges
        /// agree with a model of the two queues after every step.
        #[test]
        fn memory_store_agrees_with_the_model(ops in super::super::conformance::ops()) {
            super::super::conformance::model_agrees(
                &|config| Box::new(MemorySecretStore::with_config(config)),
                &ops,
            );
        }
    }
}
