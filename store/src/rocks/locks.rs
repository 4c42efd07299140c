//! Striped locks on boxes: a writer holds the locks of every box it changes from reading
//! their counters to committing, so that ids and pts are given in commit order while writers
//! of other boxes proceed (and share the write-ahead log's syncs).
//!
//! Each stripe also caches the counters and dialog summaries of the few boxes last written
//! under it, so that a send does not read them back from RocksDB. The cache is only read and
//! written under its stripe's lock, filled only after a write committed, and dropped for a
//! box by any other kind of change.

use std::sync::{Mutex, MutexGuard};

use crate::codec::{BoxMeta, DialogRecord};
use crate::message::{BoxId, Peer};
use crate::shard::logical_shard;

/// Entries of each kind a stripe keeps.
const CACHED: usize = 4;

/// What one stripe remembers of its boxes.
#[derive(Debug, Default)]
pub(crate) struct StripeCache {
    metas: Vec<(BoxId, BoxMeta)>,
    dialogs: Vec<((BoxId, Peer), DialogRecord)>,
}

impl StripeCache {
    fn meta(&self, box_id: BoxId) -> Option<BoxMeta> {
        self.metas
            .iter()
            .find(|(cached, _)| *cached == box_id)
            .map(|(_, meta)| *meta)
    }

    fn dialog(&self, box_id: BoxId, peer: Peer) -> Option<DialogRecord> {
        self.dialogs
            .iter()
            .find(|(key, _)| *key == (box_id, peer))
            .map(|(_, dialog)| *dialog)
    }

    fn put_meta(&mut self, box_id: BoxId, meta: BoxMeta) {
        self.metas.retain(|(cached, _)| *cached != box_id);
        if self.metas.len() >= CACHED {
            self.metas.remove(0);
        }
        self.metas.push((box_id, meta));
    }

    fn put_dialog(&mut self, box_id: BoxId, peer: Peer, dialog: DialogRecord) {
        self.dialogs.retain(|(key, _)| *key != (box_id, peer));
        if self.dialogs.len() >= CACHED {
            self.dialogs.remove(0);
        }
        self.dialogs.push(((box_id, peer), dialog));
    }

    fn forget(&mut self, box_id: BoxId) {
        self.metas.retain(|(cached, _)| *cached != box_id);
        self.dialogs.retain(|((cached, _), _)| *cached != box_id);
    }
}

/// A fixed table of mutexes; a box maps to one by the shard hash.
#[derive(Debug)]
pub(crate) struct BoxLocks {
    stripes: Vec<Mutex<StripeCache>>,
}

/// The locks a writer holds, released when dropped, with the caches they guard.
pub(crate) struct Held<'a> {
    stripes: u32,
    /// (stripe index, its guard), ascending.
    guards: Vec<(u32, MutexGuard<'a, StripeCache>)>,
}

impl Held<'_> {
    fn cache(&mut self, box_id: BoxId) -> Option<&mut StripeCache> {
        let index = logical_shard(box_id, self.stripes);
        // The guards are in ascending stripe order (how they were taken).
        let at = self
            .guards
            .binary_search_by_key(&index, |(held, _)| *held)
            .ok()?;
        self.guards.get_mut(at).map(|(_, guard)| &mut **guard)
    }

    /// The cached counters of a locked box.
    pub(crate) fn meta(&mut self, box_id: BoxId) -> Option<BoxMeta> {
        self.cache(box_id)?.meta(box_id)
    }

    /// The cached summary of a chat in a locked box.
    pub(crate) fn dialog(&mut self, box_id: BoxId, peer: Peer) -> Option<DialogRecord> {
        self.cache(box_id)?.dialog(box_id, peer)
    }

    /// Remembers a locked box's counters and chat summaries as just committed.
    pub(crate) fn remember(
        &mut self,
        box_id: BoxId,
        meta: BoxMeta,
        dialogs: &[(Peer, DialogRecord)],
    ) {
        if let Some(cache) = self.cache(box_id) {
            cache.put_meta(box_id, meta);
            for (peer, dialog) in dialogs {
                cache.put_dialog(box_id, *peer, *dialog);
            }
        }
    }

    /// Forgets what is cached of a locked box (before changing it another way).
    pub(crate) fn forget(&mut self, box_id: BoxId) {
        if let Some(cache) = self.cache(box_id) {
            cache.forget(box_id);
        }
    }
}

impl BoxLocks {
    pub(crate) fn new(stripes: u32) -> Self {
        Self {
            stripes: (0..stripes.max(1))
                .map(|_| Mutex::new(StripeCache::default()))
                .collect(),
        }
    }

    fn count(&self) -> u32 {
        u32::try_from(self.stripes.len()).unwrap_or(u32::MAX)
    }

    fn guard(stripe: &Mutex<StripeCache>) -> MutexGuard<'_, StripeCache> {
        // A panic while a stripe was held may leave a cache entry out of date: drop them.
        stripe.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            *guard = StripeCache::default();
            guard
        })
    }

    /// Locks the stripes of `boxes`, always in ascending order so that two writers can never
    /// wait on each other.
    pub(crate) fn lock(&self, boxes: &[BoxId]) -> Held<'_> {
        let mut indices: Vec<u32> = boxes
            .iter()
            .map(|box_id| logical_shard(*box_id, self.count()))
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let guards = indices
            .into_iter()
            .filter_map(|index| {
                let stripe = self.stripes.get(usize::try_from(index).ok()?)?;
                Some((index, Self::guard(stripe)))
            })
            .collect();
        Held {
            stripes: self.count(),
            guards,
        }
    }

    /// Every stripe: no writer runs while this is held (a consistent checkpoint).
    pub(crate) fn lock_all(&self) -> Vec<MutexGuard<'_, StripeCache>> {
        self.stripes.iter().map(Self::guard).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_sharing_a_stripe_lock_it_once() {
        let locks = BoxLocks::new(1);
        let held = locks.lock(&[BoxId::User(1), BoxId::User(2), BoxId::Channel(3)]);
        assert_eq!(
            held.guards.len(),
            1,
            "one stripe, taken once (a second lock would deadlock)"
        );
        drop(held);
        let locks = BoxLocks::new(4096);
        assert_eq!(
            locks.lock(&[BoxId::User(1), BoxId::User(1)]).guards.len(),
            1
        );
    }

    #[test]
    fn the_cache_keeps_the_last_few_and_forgets_on_demand() {
        let locks = BoxLocks::new(1);
        let mut held = locks.lock(&[BoxId::User(1)]);
        let meta = |pts| BoxMeta {
            state: crate::message::BoxState { pts, max_id: pts },
            ..BoxMeta::default()
        };
        for user in 1..=6 {
            held.remember(BoxId::User(user), meta(i32::try_from(user).unwrap()), &[]);
        }
        assert_eq!(held.meta(BoxId::User(1)), None, "evicted");
        assert_eq!(held.meta(BoxId::User(6)), Some(meta(6)));
        let dialog = DialogRecord {
            top_id: 9,
            ..DialogRecord::default()
        };
        held.remember(BoxId::User(6), meta(7), &[(Peer::User(2), dialog)]);
        assert_eq!(held.dialog(BoxId::User(6), Peer::User(2)), Some(dialog));
        held.forget(BoxId::User(6));
        assert_eq!(held.meta(BoxId::User(6)), None);
        assert_eq!(held.dialog(BoxId::User(6), Peer::User(2)), None);
    }

    #[test]
    fn opposite_orders_do_not_deadlock() {
        let locks = std::sync::Arc::new(BoxLocks::new(64));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let locks = locks.clone();
                std::thread::spawn(move || {
                    for i in 0..2000i64 {
                        let (a, b) = if t % 2 == 0 { (i, i + 1) } else { (i + 1, i) };
                        let _held = locks.lock(&[BoxId::User(a % 50), BoxId::User(b % 50)]);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
}
