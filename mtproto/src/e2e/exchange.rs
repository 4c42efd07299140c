//! The Diffie-Hellman exchange that makes a secret chat's key, and every later key (re-keying
//! uses the same steps inside the chat): the requester sends `g_a`, the accepter answers
//! `g_b` with the fingerprint of `g_ab`, the requester computes `g_ab` and compares.
//!
//! Every public value is checked to lie in `[2^1984, p - 2^1984]`; the group (p, g) must have
//! passed [`DhGroup::checked`](crate::crypto::DhGroup::checked) (or be Telegram's own). The
//! server's `random` from `messages.getDhConfig` is mixed into the secret exponent, never used
//! alone: a server that chose it could otherwise choose the key (the 2013 flaw behind
//! Telegram's $100,000 prize).

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::cipher::ChatKey;
use crate::crypto::{self, DH_LEN, DhError, DhGroup};

/// Why a key exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The other side's public value is out of range (`DH_G_A_INVALID`, `DH_G_B_INVALID`).
    #[error(transparent)]
    Dh(#[from] DhError),
    /// The key computed here does not have the fingerprint the other side announced.
    #[error("the key's fingerprint differs from the one announced")]
    FingerprintMismatch,
}

/// A secret exponent: the caller's random bytes XOR the server's.
fn secret_exponent<R: RngCore + CryptoRng + ?Sized>(
    rng: &mut R,
    server_random: &[u8],
) -> Zeroizing<[u8; DH_LEN]> {
    let mut secret = Zeroizing::new([0u8; DH_LEN]);
    rng.fill_bytes(secret.as_mut_slice());
    for (byte, mix) in secret.iter_mut().zip(server_random) {
        *byte ^= mix;
    }
    secret
}

/// The requester's half of an exchange, kept until the answer comes.
pub struct KeyRequest {
    group: DhGroup,
    secret: Zeroizing<[u8; DH_LEN]>,
    g_a: [u8; DH_LEN],
}

impl core::fmt::Debug for KeyRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyRequest").finish_non_exhaustive()
    }
}

impl KeyRequest {
    /// Starts an exchange in `group`, mixing `server_random` into the exponent.
    pub fn new<R: RngCore + CryptoRng + ?Sized>(
        group: DhGroup,
        server_random: &[u8],
        rng: &mut R,
    ) -> Self {
        loop {
            let secret = secret_exponent(rng, server_random);
            let g_a = group.public_value(&secret);
            // Out of range with probability about 2^-63: draw again.
            if group.check_public(&g_a).is_ok() {
                return Self { group, secret, g_a };
            }
        }
    }

    /// Restores a request from its persisted secret (the exponent `a`, 256 bytes).
    pub fn restore(group: DhGroup, secret: [u8; DH_LEN]) -> Self {
        let secret = Zeroizing::new(secret);
        let g_a = group.public_value(&secret);
        Self { group, secret, g_a }
    }

    /// The secret exponent, to persist with the chat (it is key material).
    pub fn secret(&self) -> &[u8; DH_LEN] {
        &self.secret
    }

    /// `g_a`, to send.
    pub fn g_a(&self) -> &[u8; DH_LEN] {
        &self.g_a
    }

    /// Completes the exchange with the other side's `g_b` and the fingerprint it announced.
    pub fn complete(&self, g_b: &[u8], fingerprint: i64) -> Result<ChatKey, ExchangeError> {
        let shared = self.group.shared_secret(g_b, &self.secret)?;
        let key = ChatKey::from_bytes(*shared);
        if !crypto::ct_eq(&key.fingerprint().to_le_bytes(), &fingerprint.to_le_bytes()) {
            return Err(ExchangeError::FingerprintMismatch);
        }
        Ok(key)
    }
}

/// The accepter's half: answers `g_a` with `g_b` and has the key at once.
pub fn accept<R: RngCore + CryptoRng + ?Sized>(
    group: &DhGroup,
    g_a: &[u8],
    server_random: &[u8],
    rng: &mut R,
) -> Result<(ChatKey, [u8; DH_LEN]), ExchangeError> {
    group.check_public(g_a)?;
    let request = KeyRequest::new(group.clone(), server_random, rng);
    let shared = group.shared_secret(g_a, &request.secret)?;
    Ok((ChatKey::from_bytes(*shared), request.g_a))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn both_sides_reach_one_key() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let group = DhGroup::telegram();
        let request = KeyRequest::new(group.clone(), &[0xab; 256], &mut rng);
        let (accepted, g_b) = accept(&group, request.g_a(), &[0x5a; 256], &mut rng).unwrap();
        let completed = request.complete(&g_b, accepted.fingerprint()).unwrap();
        assert_eq!(completed.as_bytes(), accepted.as_bytes());
        // Restored from its secret, the request completes the same way.
        let restored = KeyRequest::restore(group, *request.secret());
        assert_eq!(restored.g_a(), request.g_a());
        assert!(restored.complete(&g_b, accepted.fingerprint()).is_ok());
    }

    #[test]
    fn a_wrong_fingerprint_or_value_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let group = DhGroup::telegram();
        let request = KeyRequest::new(group.clone(), &[], &mut rng);
        let (accepted, g_b) = accept(&group, request.g_a(), &[], &mut rng).unwrap();
        assert_eq!(
            request.complete(&g_b, accepted.fingerprint() ^ 1).err(),
            Some(ExchangeError::FingerprintMismatch)
        );
        // 1, p - 1 and values just outside the bounds.
        let mut one = [0u8; 256];
        one[255] = 1;
        let mut p_minus_1 = *group.prime();
        p_minus_1[255] -= 1;
        // 2^1984 - 1: every bit below 2^1984 set.
        let mut below = [0u8; 256];
        below[8..].fill(0xff);
        for value in [one, p_minus_1, below] {
            assert_eq!(
                accept(&group, &value, &[], &mut rng).err(),
                Some(ExchangeError::Dh(DhError::PublicValueOutOfRange))
            );
            assert_eq!(
                request.complete(&value, 0).err(),
                Some(ExchangeError::Dh(DhError::PublicValueOutOfRange))
            );
        }
    }

    #[test]
    fn the_server_random_cannot_choose_the_exponent() {
        // The same server random with two different local generators gives two exponents;
        // with the same local generator, two server randoms give two exponents.
        let group = DhGroup::telegram();
        let a = KeyRequest::new(group.clone(), &[7; 256], &mut ChaCha20Rng::seed_from_u64(1));
        let b = KeyRequest::new(group.clone(), &[7; 256], &mut ChaCha20Rng::seed_from_u64(2));
        let c = KeyRequest::new(group, &[8; 256], &mut ChaCha20Rng::seed_from_u64(1));
        assert_ne!(a.secret(), b.secret());
        assert_ne!(a.secret(), c.secret());
        assert_ne!(a.secret(), &[7; 256]);
    }
}
