//! The server runtime's endpoint, split by auth_key_id into independently locked shards.
//!
//! Every frame needs the endpoint three times: the key to open it, routing, then the answer
//! together with the next transmission. Behind one mutex, the workers of a multi-threaded runtime queue on
//! each other for every frame of every connection, and a worker that blocks on the lock
//! sleeps in the kernel. A session belongs to one key and a connection nearly always carries
//! one key, so shards by key let frames of different connections run in parallel while
//! everything a session needs stays under one lock.
//!
//! What crosses keys is rare and visits every shard: an update for a user (whose keys may be
//! anywhere), refreshing a permanent key (its bound temporary keys may be anywhere), the
//! timers, a connection's close. The endpoint's global limits are divided among the shards
//! ([`Shards::new`]).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::endpoint::{Endpoint, EndpointConfig};
use crate::salt::SaltSource;

/// The most shards: the timers and a shutdown visit every shard.
pub(super) const MAX_SHARDS: usize = 4096;

/// The endpoint's shards.
pub(super) struct Shards {
    shards: Box<[Mutex<Endpoint>]>,
}

fn lock(mutex: &Mutex<Endpoint>) -> MutexGuard<'_, Endpoint> {
    // An endpoint's state is updated in single steps under its lock; a panic elsewhere cannot
    // leave it half-changed, so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shards {
    /// `count` shards (at least one, at most [`MAX_SHARDS`]).
    /// `config.max_sessions` and `config.max_cached_keys` are divided among them, rounded
    /// up: the totals stay within the configured figure plus the number of shards, and
    /// eviction works per shard (a full shard evicts its own least recently active session
    /// even when others have room).
    pub(super) fn new(salts: &Arc<SaltSource>, config: &EndpointConfig, count: usize) -> Self {
        let count = count.clamp(1, MAX_SHARDS);
        let mut per_shard = config.clone();
        per_shard.max_sessions = config.max_sessions.div_ceil(count);
        per_shard.max_cached_keys = config.max_cached_keys.div_ceil(count);
        let shards = (0..count)
            .map(|_| Mutex::new(Endpoint::new(salts.clone(), per_shard.clone())))
            .collect();
        Self { shards }
    }

    /// The shard `auth_key_id` lives in. Key ids are 64 bits of a SHA-1 of the key, spread
    /// evenly; a client can only choose its id by grinding key exchanges, and crowding one
    /// shard costs the sessions in it (waits for its lock, evictions within it) and no
    /// others.
    pub(super) fn index(&self, auth_key_id: i64) -> usize {
        let len = self.shards.len();
        // The modulus is below `len`, which is a `usize`.
        (auth_key_id as u64 % len as u64) as usize
    }

    /// The shard `auth_key_id` lives in, locked.
    pub(super) fn of(&self, auth_key_id: i64) -> MutexGuard<'_, Endpoint> {
        self.at(self.index(auth_key_id))
    }

    /// Shard `index` (from [`Self::index`]), locked. An index out of range wraps.
    #[allow(
        clippy::indexing_slicing,
        reason = "in range: taken modulo the length, which `new` makes one or more"
    )]
    pub(super) fn at(&self, index: usize) -> MutexGuard<'_, Endpoint> {
        lock(&self.shards[index % self.shards.len()])
    }

    /// How many shards there are.
    pub(super) fn len(&self) -> usize {
        self.shards.len()
    }

    /// Every shard, to lock one at a time (never two at once: no lock order to keep).
    pub(super) fn each(&self) -> impl Iterator<Item = MutexGuard<'_, Endpoint>> {
        self.shards.iter().map(lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(count: usize, config: &EndpointConfig) -> Shards {
        let salts = Arc::new(SaltSource::generate(&mut rand::rng()));
        Shards::new(&salts, config, count)
    }

    #[test]
    fn a_key_always_maps_to_the_same_shard_in_range() {
        let shards = shards(7, &EndpointConfig::default());
        for id in [0i64, 1, -1, i64::MIN, i64::MAX, 0x1234_5678_9abc_def0] {
            let index = shards.index(id);
            assert!(index < 7);
            assert_eq!(index, shards.index(id));
        }
        // Negative ids spread like positive ones (the id is read as unsigned).
        assert_eq!(shards.index(-1), (u64::MAX % 7) as usize);
    }

    #[test]
    fn the_count_is_kept_within_its_bounds() {
        let one = shards(0, &EndpointConfig::default());
        assert_eq!(one.len(), 1);
        assert_eq!(one.index(i64::MIN), 0);
        drop(one.at(5));
        let most = shards(MAX_SHARDS * 10, &EndpointConfig::default());
        assert_eq!(most.len(), MAX_SHARDS);
    }

    #[test]
    fn limits_are_divided_rounding_up() {
        let config = EndpointConfig {
            max_sessions: 10,
            max_cached_keys: 65,
            ..EndpointConfig::default()
        };
        let shards = shards(4, &config);
        assert_eq!(shards.len(), 4);
        for endpoint in shards.each() {
            assert_eq!(endpoint.config().max_sessions, 3);
            assert_eq!(endpoint.config().max_cached_keys, 17);
        }
    }
}
