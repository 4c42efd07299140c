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

use std::collections::HashMap;
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

/// Which shards hold a cached key of each signed-in user (so that an update for many users
/// locks each shard once and visits only the shards of those users), and the users who came
/// (their first key cached in any shard) and went (their last one dropped) since the service
/// last asked.
struct UserIndex {
    shards_of: Mutex<HashMap<i64, Vec<u16>>>,
    presence: Mutex<Presence>,
}

/// Users who came and went, oldest first, bounded: past `cap` the list is dropped and
/// `overflowed` set, and the service starts again from the current state.
struct Presence {
    changes: Vec<(i64, bool)>,
    overflowed: bool,
    cap: usize,
}

impl UserIndex {
    /// Applies one shard's changes (`shard` is its index).
    fn apply(&self, shard: usize, changes: &[(i64, bool)]) {
        let shard = u16::try_from(shard).unwrap_or(u16::MAX);
        let mut transitions = Vec::new();
        {
            let mut shards_of = lock_map(&self.shards_of);
            for &(user_id, present) in changes {
                if present {
                    let shards = shards_of.entry(user_id).or_default();
                    if shards.is_empty() {
                        transitions.push((user_id, true));
                    }
                    if !shards.contains(&shard) {
                        shards.push(shard);
                    }
                } else if let Some(shards) = shards_of.get_mut(&user_id) {
                    shards.retain(|held| *held != shard);
                    if shards.is_empty() {
                        shards_of.remove(&user_id);
                        transitions.push((user_id, false));
                    }
                }
            }
        }
        if transitions.is_empty() {
            return;
        }
        let mut presence = lock_map(&self.presence);
        if presence.changes.len() + transitions.len() > presence.cap {
            presence.changes.clear();
            presence.overflowed = true;
        } else {
            presence.changes.extend(transitions);
        }
    }
}

fn lock_map<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Updated in single steps under the lock: a poisoned lock is still consistent.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The endpoint's shards.
pub(super) struct Shards {
    shards: Box<[Mutex<Endpoint>]>,
    timers: TimerWatch,
    users: UserIndex,
}

/// A shard, locked. On release it wakes the timer loop if the shard's earliest deadline is
/// now before the time the loop sleeps until, and passes the users who came to or left the
/// shard to the index of users by shard.
pub(super) struct ShardGuard<'a> {
    endpoint: MutexGuard<'a, Endpoint>,
    timers: &'a TimerWatch,
    users: &'a UserIndex,
    index: usize,
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
        if self.endpoint.has_user_changes() {
            let mut changes = Vec::new();
            self.endpoint.take_user_changes(&mut changes);
            self.users.apply(self.index, &changes);
        }
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
    pub(super) fn new(
        salts: &Arc<SaltSource>,
        config: &EndpointConfig,
        count: usize,
        presence_backlog: usize,
    ) -> Self {
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
            users: UserIndex {
                shards_of: Mutex::new(HashMap::new()),
                presence: Mutex::new(Presence {
                    changes: Vec::new(),
                    overflowed: false,
                    cap: presence_backlog,
                }),
            },
        }
    }

    /// `users` grouped by the shards holding their keys (a user in several shards is in
    /// each of their groups; users with no key cached anywhere are left out), shard indexes
    /// ascending.
    pub(super) fn group_by_shard(&self, users: &[i64]) -> Vec<(usize, Vec<i64>)> {
        let mut groups: HashMap<u16, Vec<i64>> = HashMap::new();
        {
            let shards_of = lock_map(&self.users.shards_of);
            for user_id in users {
                for shard in shards_of.get(user_id).into_iter().flatten() {
                    groups.entry(*shard).or_default().push(*user_id);
                }
            }
        }
        let mut groups: Vec<(usize, Vec<i64>)> = groups
            .into_iter()
            .map(|(shard, users)| (usize::from(shard), users))
            .collect();
        groups.sort_unstable_by_key(|(shard, _)| *shard);
        groups
    }

    /// Whether a key of `user_id` is cached in some shard.
    pub(super) fn has_user(&self, user_id: i64) -> bool {
        lock_map(&self.users.shards_of).contains_key(&user_id)
    }

    /// Moves the users who came (`true`) and went (`false`) since the last call into `out`;
    /// `false` when some were lost to the backlog's bound (start again from [`Self::has_user`]).
    pub(super) fn take_presence(&self, out: &mut Vec<(i64, bool)>) -> bool {
        let mut presence = lock_map(&self.users.presence);
        out.append(&mut presence.changes);
        !std::mem::take(&mut presence.overflowed)
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
        let index = index % self.shards.len();
        self.guard(index, &self.shards[index])
    }

    fn guard<'a>(&'a self, index: usize, shard: &'a Mutex<Endpoint>) -> ShardGuard<'a> {
        ShardGuard {
            endpoint: lock(shard),
            timers: &self.timers,
            users: &self.users,
            index,
        }
    }

    /// How many shards there are.
    pub(super) fn len(&self) -> usize {
        self.shards.len()
    }

    /// Every shard, to lock one at a time (never two at once: no lock order to keep).
    pub(super) fn each(&self) -> impl Iterator<Item = ShardGuard<'_>> {
        self.shards
            .iter()
            .enumerate()
            .map(|(index, shard)| self.guard(index, shard))
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
        Shards::new(&salts, config, count, 1 << 20)
    }

    /// Caches a permanent key of `user_id` (made from `seed`) in its shard; its id.
    fn signed_in_key(shards: &Shards, seed: u8, user_id: i64) -> i64 {
        let key = Arc::new(AuthKey::from_bytes([seed; 256]));
        let id = key.id();
        let now = Now {
            monotonic: Instant::now(),
            unix: Duration::from_secs(1_800_000_000),
        };
        let mut endpoint = shards.of(id);
        let KeyLookup::Missing { generation } = endpoint.lookup_key(id, now) else {
            unreachable!("a new key is not cached");
        };
        let _ = endpoint.insert_key(id, KeyEntry::permanent(key, Some(user_id)), generation, now);
        id
    }

    #[test]
    fn users_are_indexed_by_the_shards_of_their_keys_and_their_comings_and_goings_kept() {
        let shards = shards(8, &EndpointConfig::default());
        let first = signed_in_key(&shards, 1, 7);
        let mut second_seed = 2;
        while shards.index(AuthKey::from_bytes([second_seed; 256]).id()) == shards.index(first) {
            second_seed += 1;
        }
        let second = signed_in_key(&shards, second_seed, 7);
        signed_in_key(&shards, 200, 9);
        let groups = shards.group_by_shard(&[7, 9, 11]);
        let with_seven: Vec<usize> = groups
            .iter()
            .filter(|(_, users)| users.contains(&7))
            .map(|(shard, _)| *shard)
            .collect();
        let mut expected = vec![shards.index(first), shards.index(second)];
        expected.sort_unstable();
        assert_eq!(with_seven, expected, "user 7 is in the shards of both keys");
        assert!(
            groups.iter().all(|(_, users)| !users.contains(&11)),
            "11 is nowhere"
        );
        assert!(shards.has_user(9) && !shards.has_user(11));
        let mut presence = Vec::new();
        assert!(shards.take_presence(&mut presence));
        assert_eq!(presence, vec![(7, true), (9, true)], "7 came once");
        // Signing out of one key keeps 7 present; of both, 7 goes.
        shards.of(first).set_user(first, None);
        presence.clear();
        assert!(shards.take_presence(&mut presence));
        assert!(presence.is_empty());
        assert!(shards.has_user(7));
        shards.of(second).set_user(second, None);
        assert!(shards.take_presence(&mut presence));
        assert_eq!(presence, vec![(7, false)]);
        assert!(!shards.has_user(7));
    }

    #[test]
    fn a_presence_backlog_past_its_bound_says_so() {
        let salts = Arc::new(SaltSource::generate(&mut rand::rng()));
        let shards = Shards::new(&salts, &EndpointConfig::default(), 2, 1);
        signed_in_key(&shards, 1, 7);
        signed_in_key(&shards, 2, 8);
        let mut presence = Vec::new();
        assert!(!shards.take_presence(&mut presence), "one was lost");
        assert!(shards.take_presence(&mut presence), "and the flag is reset");
        assert!(
            shards.has_user(7) && shards.has_user(8),
            "the index itself is whole"
        );
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
