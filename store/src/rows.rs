//! Ordered rows under a store's rules: a backend gives a read view ([`Rows`]) and commits the
//! writes a [`Plan`] collects in one atomic batch. The in-memory backends keep their rows in a
//! `BTreeMap`, the RocksDB backends in an instance; the rules are written once over these
//! types (the user store's in `user::plan`, the secret relay's in `secret::plan`), so two
//! backends cannot disagree on a rule. A row read can fail only for the engine's reasons, so
//! every error here is a [`BackendError`]; each store wraps it in its own error type.

use std::collections::BTreeMap;

use crate::BackendError;
use crate::codec::BatchOp;

/// Rows as a scan returns them: keys and values, in key order.
pub(crate) type RowList = Vec<(Vec<u8>, Vec<u8>)>;

/// An ordered view of the rows.
pub(crate) trait Rows {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    /// The rows whose keys start with `prefix` and are at or after `start`, in key order,
    /// at most `limit` (a page that does not read what comes before it).
    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize)
    -> Result<RowList, BackendError>;

    /// The rows whose keys start with `prefix`, in key order, at most `limit`.
    fn scan(&self, prefix: &[u8], limit: usize) -> Result<RowList, BackendError> {
        self.scan_from(prefix, prefix, limit)
    }

    /// Hands the values of the rows whose keys start with `prefix` to `visit`, in key order,
    /// without copying them where the backend can lend them (reads of whole lists).
    fn visit_values(
        &self,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        for (_, value) in self.scan(prefix, usize::MAX)? {
            visit(&value)?;
        }
        Ok(())
    }
}

impl Rows for BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(Self::get(self, key).cloned())
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<RowList, BackendError> {
        let start = if start > prefix { start } else { prefix };
        Ok(self
            .range(start.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }
}

/// The writes of one call, over the rows as they were, read back as if made.
pub(crate) struct Plan<'a> {
    rows: &'a dyn Rows,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Plan<'a> {
    pub(crate) fn new(rows: &'a dyn Rows) -> Self {
        Self {
            rows,
            writes: BTreeMap::new(),
        }
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// The batch to commit.
    pub(crate) fn into_ops(self) -> Vec<BatchOp> {
        self.writes
            .into_iter()
            .map(|(key, value)| BatchOp { key, value })
            .collect()
    }
}

impl Rows for Plan<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.rows.get(key),
        }
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<RowList, BackendError> {
        let start = if start > prefix { start } else { prefix };
        let written: Vec<_> = self
            .writes
            .range(start.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .collect();
        // Rows this plan deleted may hide as many stored ones: read that many more.
        let hidden = written.iter().filter(|(_, value)| value.is_none()).count();
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self
            .rows
            .scan_from(prefix, start, limit.saturating_add(hidden))?
            .into_iter()
            .collect();
        for (key, value) in written {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }
}

/// Rows in memory: a `BTreeMap` behind a mutex, changed by whole plans (what the in-memory
/// backends keep their rows in).
#[derive(Debug, Default)]
pub(crate) struct MemoryRows(std::sync::Mutex<BTreeMap<Vec<u8>, Vec<u8>>>);

impl MemoryRows {
    /// Runs `f` over the rows as they are.
    pub(crate) fn read<T, E>(&self, f: impl FnOnce(&dyn Rows) -> Result<T, E>) -> Result<T, E> {
        // Every change is applied in one step after its plan succeeded: a panic cannot leave
        // the map half-changed, so a poisoned lock is safe to take.
        f(&*crate::lock(&self.0))
    }

    /// Plans a change with `f` and applies it whole if `f` succeeds.
    pub(crate) fn write<T, E>(
        &self,
        f: impl FnOnce(&mut Plan<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut rows = crate::lock(&self.0);
        let mut plan = Plan::new(&*rows);
        let result = f(&mut plan)?;
        for op in plan.into_ops() {
            match op.value {
                Some(value) => rows.insert(op.key, value),
                None => rows.remove(&op.key),
            };
        }
        Ok(result)
    }
}
