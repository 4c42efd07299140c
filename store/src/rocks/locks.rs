//! Striped locks on boxes: a writer holds the locks of every box it changes from reading
//! their counters to committing, so that ids and pts are given in commit order while writers
//! of other boxes proceed (and share the write-ahead log's syncs).

use std::sync::{Mutex, MutexGuard};

use crate::message::BoxId;
use crate::shard::logical_shard;

/// A fixed table of mutexes; a box maps to one by the shard hash.
#[derive(Debug)]
pub(crate) struct BoxLocks {
    stripes: Vec<Mutex<()>>,
}

/// The locks a writer holds, released when dropped.
pub(crate) type Held<'a> = Vec<MutexGuard<'a, ()>>;

impl BoxLocks {
    pub(crate) fn new(stripes: u32) -> Self {
        Self {
            stripes: (0..stripes.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    fn count(&self) -> u32 {
        u32::try_from(self.stripes.len()).unwrap_or(u32::MAX)
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
        indices
            .into_iter()
            .filter_map(|index| self.stripes.get(usize::try_from(index).ok()?))
            .map(|stripe| {
                // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
                stripe
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            })
            .collect()
    }

    /// Every stripe: no writer runs while this is held (a consistent checkpoint).
    pub(crate) fn lock_all(&self) -> Held<'_> {
        self.stripes
            .iter()
            .map(|stripe| {
                stripe
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            })
            .collect()
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
            held.len(),
            1,
            "one stripe, taken once (a second lock would deadlock)"
        );
        drop(held);
        let locks = BoxLocks::new(4096);
        assert_eq!(locks.lock(&[BoxId::User(1), BoxId::User(1)]).len(), 1);
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
