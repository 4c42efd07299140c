//! A bounded cache of file parts already checked against their SHA-256, for downloads.
//!
//! Only parts of finished contents enter it (they never change); an entry leaves when its
//! content is deleted, when the cache needs room (oldest first), or when a test rewrites the
//! part. Serving from it skips the disk read and the hash: the bytes were checked when they
//! came from the disk, and they have been in this process's memory since.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// (blob, part) → bytes, within a byte budget.
#[derive(Debug)]
pub(crate) struct PartCache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    parts: HashMap<(u64, u32), Arc<[u8]>>,
    /// Insertion order, for eviction (entries already removed are skipped).
    order: VecDeque<(u64, u32)>,
    bytes: usize,
}

impl PartCache {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change below keeps the map, the order and the byte count in step before it
        // can panic (it cannot): a poisoned lock is still consistent.
        crate::lock(&self.inner)
    }

    pub(crate) fn get(&self, blob: u64, part: u32) -> Option<Arc<[u8]>> {
        self.lock().parts.get(&(blob, part)).cloned()
    }

    pub(crate) fn insert(&self, blob: u64, part: u32, bytes: Arc<[u8]>) {
        if bytes.len() > self.budget {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.parts.insert((blob, part), bytes.clone()) {
            inner.bytes -= old.len();
        } else {
            inner.order.push_back((blob, part));
        }
        inner.bytes += bytes.len();
        while inner.bytes > self.budget {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(evicted) = inner.parts.remove(&oldest) {
                inner.bytes -= evicted.len();
            }
        }
    }

    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "used by the corruption hooks")
    )]
    pub(crate) fn remove(&self, blob: u64, part: u32) {
        let mut inner = self.lock();
        if let Some(old) = inner.parts.remove(&(blob, part)) {
            inner.bytes -= old.len();
            inner.order.retain(|key| *key != (blob, part));
        }
    }

    /// Drops every part of a blob (its content was deleted).
    pub(crate) fn remove_blob(&self, blob: u64) {
        let mut inner = self.lock();
        let mut freed = 0;
        inner.parts.retain(|(cached, _), bytes| {
            let keep = *cached != blob;
            if !keep {
                freed += bytes.len();
            }
            keep
        });
        inner.bytes -= freed;
        inner.order.retain(|(cached, _)| *cached != blob);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_and_the_oldest_go_first() {
        let cache = PartCache::new(10);
        cache.insert(1, 0, Arc::from(vec![0u8; 4]));
        cache.insert(1, 1, Arc::from(vec![1u8; 4]));
        cache.insert(2, 0, Arc::from(vec![2u8; 4]));
        assert!(cache.get(1, 0).is_none(), "evicted for room");
        assert_eq!(cache.get(2, 0).as_deref(), Some(&[2u8; 4][..]));
        cache.insert(3, 0, Arc::from(vec![3u8; 11]));
        assert!(cache.get(3, 0).is_none(), "larger than the whole budget");
        cache.remove_blob(1);
        assert!(cache.get(1, 1).is_none());
        cache.remove(2, 0);
        assert!(cache.get(2, 0).is_none());
        assert_eq!(cache.lock().bytes, 0);
    }
}
