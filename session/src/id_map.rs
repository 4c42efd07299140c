//! A map keyed by msg_id, for keys that arrive almost always in increasing order.
//!
//! Sessions keep several such maps (requests received, messages sent and not acknowledged).
//! Their keys are msg_ids, which grow with time, so nearly every insertion goes at the end
//! and nearly every eviction happens at the front. A sorted `VecDeque` makes those O(1) with
//! no allocation in the steady state, where a `BTreeMap` allocates and frees nodes as it
//! empties and fills; lookups are binary searches. An insertion out of order shifts at most
//! the map's length, which every user bounds.

use std::collections::VecDeque;

/// A sorted map from msg_id to `V`.
#[derive(Debug, Clone)]
pub(crate) struct IdMap<V> {
    entries: VecDeque<(i64, V)>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
        }
    }
}

impl<V> IdMap<V> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Where `key` is, or where it would go. The ends are checked first: the newest key
    /// (an answer to the latest request) and the oldest (an acknowledgement of the oldest
    /// message sent) are the common cases, and a binary search of a long map costs a cache
    /// miss per step.
    fn position(&self, key: i64) -> Result<usize, usize> {
        // The back first, and the front only when needed: in a long map the front is
        // usually out of the cache, and an insertion at the back need not touch it.
        let Some(&(last, _)) = self.entries.back() else {
            return Err(0);
        };
        let len = self.entries.len();
        if key > last {
            return Err(len);
        }
        if key == last {
            return Ok(len - 1);
        }
        match self.entries.front() {
            Some(&(first, _)) if key < first => Err(0),
            Some(&(first, _)) if key == first => Ok(0),
            _ => self.entries.binary_search_by_key(&key, |&(k, _)| k),
        }
    }

    pub(crate) fn get(&self, key: &i64) -> Option<&V> {
        let at = self.position(*key).ok()?;
        self.entries.get(at).map(|(_, value)| value)
    }

    pub(crate) fn get_mut(&mut self, key: &i64) -> Option<&mut V> {
        let at = self.position(*key).ok()?;
        self.entries.get_mut(at).map(|(_, value)| value)
    }

    pub(crate) fn contains_key(&self, key: &i64) -> bool {
        self.position(*key).is_ok()
    }

    /// Inserts or replaces; returns the old value.
    pub(crate) fn insert(&mut self, key: i64, value: V) -> Option<V> {
        match self.position(key) {
            Ok(at) => self
                .entries
                .get_mut(at)
                .map(|slot| std::mem::replace(&mut slot.1, value)),
            Err(at) => {
                if at == self.entries.len() {
                    self.entries.push_back((key, value));
                } else {
                    self.entries.insert(at, (key, value));
                }
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &i64) -> Option<V> {
        let at = self.position(*key).ok()?;
        self.entries.remove(at).map(|(_, value)| value)
    }

    pub(crate) fn pop_first(&mut self) -> Option<(i64, V)> {
        self.entries.pop_front()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &i64> {
        self.entries.iter().map(|(key, _)| key)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, value)| value)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&i64, &V)> {
        self.entries.iter().map(|(key, value)| (key, value))
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&i64, &mut V) -> bool) {
        self.entries.retain_mut(|(key, value)| keep(key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// The same answers as a `BTreeMap` under any sequence of operations.
        #[test]
        fn behaves_like_a_btree_map(ops in proptest::collection::vec((0u8..4, -50i64..50, any::<u16>()), 0..200)) {
            let mut ours = IdMap::new();
            let mut model = BTreeMap::new();
            for (op, key, value) in ops {
                match op {
                    0 => prop_assert_eq!(ours.insert(key, value), model.insert(key, value)),
                    1 => prop_assert_eq!(ours.remove(&key), model.remove(&key)),
                    2 => prop_assert_eq!(ours.pop_first(), model.pop_first()),
                    _ => {
                        ours.retain(|k, _| k % 3 != 0);
                        model.retain(|k, _| k % 3 != 0);
                    }
                }
                prop_assert_eq!(ours.get(&key), model.get(&key));
                prop_assert_eq!(ours.len(), model.len());
                let ours_items: Vec<(i64, u16)> = ours.iter().map(|(k, v)| (*k, *v)).collect();
                let model_items: Vec<(i64, u16)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(ours_items, model_items);
            }
        }
    }
}
