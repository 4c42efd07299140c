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

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use crate::endpoint::{Endpoint, EndpointConfig};
use crate::salt::SaltSource;

/// The most shards: the timers and a shutdown visit every shard.
pub(super) const MAX_SHARDS: usize = 4096;

/// When the timer loop sleeps until, and the way to wake it sooner: a shard whose earliest
/// deadline moved before that time wakes it as its lock is released, so the loop sleeps
/// until the next deadline (however far) and is never late for a new, earlier one.
struct TimerWatch {
    /// What `sleeping_until` counts from.
    base: Instant,
    /// Nanoseconds from `base` to the time the timer loop sleeps until.
    sleeping_until: AtomicU64,
    /// Wakes the timer loop (a wake-up while it is not waiting is kept for its next wait).
    wake: Notify,
}

impl TimerWatch {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The endpoint's shards.
pub(super) struct Shards {
    shards: Box<[Mutex<Endpoint>]>,
    timers: TimerWatch,
}

/// A shard, locked. On release it wakes the timer loop if the shard's earliest deadline is
/// now before the time the loop sleeps until.
pub(super) struct ShardGuard<'a> {
    endpoint: MutexGuard<'a, Endpoint>,
    timers: &'a TimerWatch,
}

impl Deref for ShardGuard<'_> {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl DerefMut for ShardGuard<'_> {
    fn deref_mut(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }
}

impl Drop for ShardGuard<'_> {
    fn drop(&mut self) {
        if let Some(at) = self.endpoint.poll_timeout() {
            if self.timers.nanos(at) < self.timers.sleeping_until.load(Ordering::SeqCst) {
                self.timers.wake.notify_one();
            }
        }
    }
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
        Self {
            shards,
            timers: TimerWatch {
                base: Instant::now(),
                // Not known yet: any deadline wakes the loop, which then reads them all.
                sleeping_until: AtomicU64::new(u64::MAX),
                wake: Notify::new(),
            },
        }
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
    pub(super) fn of(&self, auth_key_id: i64) -> ShardGuard<'_> {
        self.at(self.index(auth_key_id))
    }

    /// Shard `index` (from [`Self::index`]), locked. An index out of range wraps.
    #[allow(
        clippy::indexing_slicing,
        reason = "in range: taken modulo the length, which `new` makes one or more"
    )]
    pub(super) fn at(&self, index: usize) -> ShardGuard<'_> {
        self.guard(&self.shards[index % self.shards.len()])
    }

    fn guard<'a>(&'a self, shard: &'a Mutex<Endpoint>) -> ShardGuard<'a> {
        ShardGuard {
            endpoint: lock(shard),
            timers: &self.timers,
        }
    }

    /// How many shards there are.
    pub(super) fn len(&self) -> usize {
        self.shards.len()
    }

    /// Every shard, to lock one at a time (never two at once: no lock order to keep).
    pub(super) fn each(&self) -> impl Iterator<Item = ShardGuard<'_>> {
        self.shards.iter().map(|shard| self.guard(shard))
    }

    /// Waits until some shard may have a timer due: sleeps until the earliest deadline of
    /// all, woken sooner by a shard whose deadline moves before it ([`ShardGuard`]). With no
    /// deadline at all it waits for the first.
    pub(super) async fn wait_for_timers(&self) {
        loop {
            let next = self.earliest();
            let target = next.map_or(u64::MAX, |at| self.timers.nanos(at));
            self.timers.sleeping_until.store(target, Ordering::SeqCst);
            // A deadline set while the shards were read (after its shard was read, before
            // the store) was compared with the old target: reading them again finds it.
            if self
                .earliest()
                .is_some_and(|at| self.timers.nanos(at) < target)
            {
                continue;
            }
            // A wake-up from here on is kept by `Notify` until this waits.
            let woken = self.timers.wake.notified();
            match next {
                Some(at) => tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => return,
                    () = woken => {}
                },
                None => woken.await,
            }
        }
    }

    /// The earliest deadline of any shard.
    fn earliest(&self) -> Option<Instant> {
        self.shards
            .iter()
            .filter_map(|shard| lock(shard).poll_timeout())
            .min()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use std::time::Duration;

    use columba_mtproto::crypto::AuthKey;
    use columba_mtproto::message::EncryptedHeader;
    use columba_mtproto::time::Now;

    use super::*;
    use crate::endpoint::{ConnectionId, KeyEntry, KeyLookup};

    /// Gives `shard` a session whose connection closed, so that it has a deadline
    /// `idle` from now (forgetting the idle session).
    fn idle_session(shards: &Shards, index: usize) {
        let mut endpoint = shards.at(index);
        let key = Arc::new(AuthKey::from_bytes([index as u8 + 1; 256]));
        let id = key.id();
        let now = Now {
            monotonic: Instant::now(),
            unix: Duration::from_secs(1_800_000_000),
        };
        let KeyLookup::Missing { generation } = endpoint.lookup_key(id, now) else {
            unreachable!("a new key is not cached");
        };
        let _ = endpoint.insert_key(id, KeyEntry::permanent(key, None), generation, now);
        let header = EncryptedHeader {
            salt: 0,
            session_id: 9,
            msg_id: 1_800_000_000 << 32,
            seq_no: 1,
        };
        let ping = [0xec, 0x77, 0xbe, 0x7a, 1, 0, 0, 0, 0, 0, 0, 0];
        endpoint.handle_message(ConnectionId(1), id, &header, &ping, now, &mut rand::rng());
        endpoint.connection_closed(ConnectionId(1));
        assert!(
            endpoint.poll_timeout().is_some(),
            "the idle session has a deadline"
        );
    }

    #[tokio::test]
    async fn the_timer_loop_sleeps_until_a_deadline_set_while_it_waits() {
        let config = EndpointConfig {
            session_idle_timeout: Duration::from_millis(300),
            ..EndpointConfig::default()
        };
        let shards = Arc::new(shards(3, &config));
        let waiter = tokio::spawn({
            let shards = shards.clone();
            async move { shards.wait_for_timers().await }
        });
        // No deadline anywhere: the loop waits, however long.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "nothing is due");
        let set = Instant::now();
        idle_session(&shards, 2);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken for the new deadline")
            .unwrap();
        let slept = set.elapsed();
        assert!(
            slept >= Duration::from_millis(250),
            "it slept until the deadline, not just woke ({slept:?})"
        );
        // Due now: waiting again returns at once.
        tokio::time::timeout(Duration::from_secs(1), shards.wait_for_timers())
            .await
            .expect("a due deadline does not wait");
    }

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
