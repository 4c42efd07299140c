//! Server salts, derived statelessly.
//!
//! A server salt is valid for a 30-minute slot ([`SALT_PERIOD`]) and, after the slot ends,
//! for [`SALT_GRACE`] more, so that messages in flight across the change are not refused
//! (core.telegram.org/mtproto/description#server-salt). The server here does not store salts:
//! the salt of slot `n` for an auth key is the first 8 bytes of
//! `SHA-256(secret || auth_key_id || n)`, with a 32-byte secret the server keeps. Every node
//! that shares the secret computes the same salts, nothing is written per session, and
//! `get_future_salts` is the same computation for later slots. With fixed-length inputs and a
//! truncated output, the secret-prefix SHA-256 is a pseudo-random function (no length extension
//! applies).
//!
//! The salt the handshake produced (new_nonce XOR server_nonce) is valid for the first slot of
//! the key's life; the session layer accepts it until then.

use std::time::Duration;

use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// How long one salt is current.
pub const SALT_PERIOD: Duration = Duration::from_secs(1800);
/// How long a salt stays accepted after its slot ends.
pub const SALT_GRACE: Duration = Duration::from_secs(1800);
/// The most salts one `get_future_salts` returns.
pub const MAX_FUTURE_SALTS: usize = 64;

/// One salt and the time it is valid (Unix seconds), as `future_salt` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FutureSalt {
    /// Start of the slot.
    pub valid_since: i64,
    /// End of the slot (the grace period comes on top).
    pub valid_until: i64,
    /// The salt.
    pub salt: i64,
}

/// Derives salts from a server secret.
pub struct SaltSource {
    secret: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for SaltSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SaltSource { .. }")
    }
}

fn slot_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(SALT_PERIOD.as_secs() as i64)
}

impl SaltSource {
    /// A source with this secret (share it between the nodes of one server).
    pub fn new(secret: [u8; 32]) -> Self {
        Self {
            secret: Zeroizing::new(secret),
        }
    }

    /// A source with a fresh random secret.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        Self::new(secret)
    }

    fn salt_of_slot(&self, auth_key_id: i64, slot: i64) -> i64 {
        let mut hasher = Sha256::new();
        hasher.update(self.secret.as_slice());
        hasher.update(auth_key_id.to_le_bytes());
        hasher.update(slot.to_le_bytes());
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
        i64::from_le_bytes(first)
    }

    fn future_salt(&self, auth_key_id: i64, slot: i64) -> FutureSalt {
        let period = SALT_PERIOD.as_secs() as i64;
        FutureSalt {
            valid_since: slot * period,
            valid_until: (slot + 1) * period,
            salt: self.salt_of_slot(auth_key_id, slot),
        }
    }

    /// The salt to use now (what `bad_server_salt` carries).
    pub fn current(&self, auth_key_id: i64, now_unix: i64) -> FutureSalt {
        self.future_salt(auth_key_id, slot_of(now_unix))
    }

    /// Whether `salt` is accepted now: the current slot's, or an earlier slot's within its
    /// grace period.
    pub fn is_valid(&self, auth_key_id: i64, salt: i64, now_unix: i64) -> bool {
        let grace_slots = SALT_GRACE.as_secs().div_ceil(SALT_PERIOD.as_secs()) as i64;
        let current = slot_of(now_unix);
        // Newest first: almost every message carries the current salt, so one hash decides.
        (current - grace_slots..=current).rev().any(|slot| {
            let candidate = self.future_salt(auth_key_id, slot);
            candidate.salt == salt && now_unix < candidate.valid_until + SALT_GRACE.as_secs() as i64
        })
    }

    /// `get_future_salts(num)`: the current salt and the following ones, `num` clamped to
    /// 1..=[`MAX_FUTURE_SALTS`].
    pub fn future_salts(&self, auth_key_id: i64, now_unix: i64, num: i32) -> Vec<FutureSalt> {
        let count = usize::try_from(num).unwrap_or(1).clamp(1, MAX_FUTURE_SALTS);
        let first = slot_of(now_unix);
        (0..count as i64)
            .map(|i| self.future_salt(auth_key_id, first + i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000;

    #[test]
    fn salts_change_every_slot_and_keep_a_grace_period() {
        let source = SaltSource::new([7; 32]);
        let now = source.current(1, T);
        assert!(now.valid_since <= T && T < now.valid_until);
        assert_eq!(now.valid_until - now.valid_since, 1800);
        let next = source.current(1, now.valid_until);
        assert_ne!(now.salt, next.salt);
        // The old salt: accepted through the next slot (the grace), not after.
        assert!(source.is_valid(1, now.salt, now.valid_until + 1799));
        assert!(!source.is_valid(1, now.salt, now.valid_until + 1800));
        // A salt of the future is not accepted early.
        assert!(!source.is_valid(1, next.salt, T));
        // Another key, another salt; another secret, another salt.
        assert_ne!(source.current(2, T).salt, now.salt);
        assert_ne!(SaltSource::new([8; 32]).current(1, T).salt, now.salt);
        assert!(!source.is_valid(1, now.salt ^ 1, T));
    }

    #[test]
    fn future_salts_follow_the_slots_and_are_clamped() {
        let source = SaltSource::new([9; 32]);
        let salts = source.future_salts(5, T, 3);
        assert_eq!(salts.len(), 3);
        assert_eq!(salts[0], source.current(5, T));
        for pair in salts.windows(2) {
            assert_eq!(pair[0].valid_until, pair[1].valid_since);
        }
        assert_eq!(source.future_salts(5, T, 0).len(), 1);
        assert_eq!(source.future_salts(5, T, -3).len(), 1);
        assert_eq!(source.future_salts(5, T, 1000).len(), MAX_FUTURE_SALTS);
        // Every future salt is valid in its own slot.
        for salt in source.future_salts(5, T, 64) {
            assert!(source.is_valid(5, salt.salt, salt.valid_since));
        }
    }
}
