//! Diffie-Hellman over MTProto's 2048-bit safe-prime groups, with every check of
//! core.telegram.org/mtproto/security_guidelines.
//!
//! - The prime must be a safe 2048-bit prime: `2^2047 < p < 2^2048`, p and (p - 1) / 2
//!   prime (Miller-Rabin, [`PRIME_TEST_ROUNDS`] rounds each). The result is cached per prime
//!   ([`DhPrimeCache`]), and the prime Telegram publishes is known good from the start.
//! - g must be 2..=7 and generate the subgroup of order (p - 1) / 2, which the guidelines
//!   reduce to a condition on p modulo a small number per g.
//! - Public values (g_a, g_b) must lie in `[2^1984, p - 2^1984]`, on both sides.
//! - Secret exponents are 2048 random bits, and exponentiation with them is constant-time.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::bignum::{self, FixedBaseTable, Monty, U2048};

/// Bytes in a DH prime, a public value or a shared secret.
pub const DH_LEN: usize = 256;
/// Miller-Rabin rounds applied to an unknown prime and to (p - 1) / 2 (the guidelines ask for
/// at least 15).
pub const PRIME_TEST_ROUNDS: u32 = 24;
/// Distinct verified primes a [`DhPrimeCache`] remembers.
pub const PRIME_CACHE_CAPACITY: usize = 16;

/// The 2048-bit safe prime Telegram's servers use, printed in
/// core.telegram.org/mtproto/security_guidelines (and in the samples-auth_key transcript).
pub const TELEGRAM_DH_PRIME: [u8; DH_LEN] = hex_literal(
    "C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F\
     48198A0AA7C14058229493D22530F4DBFA336F6E0AC925139543AED44CCE7C37\
     20FD51F69458705AC68CD4FE6B6B13ABDC9746512969328454F18FAF8C595F64\
     2477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4\
     A4A695811051907E162753B56B0F6B410DBA74D8A84B2A14B3144E0EF1284754\
     FD17ED950D5965B4B9DD46582DB1178D169C6BC465B0D6FF9CA3928FEF5B9AE4\
     E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D956850CE929851F\
     0D8115F635B105EE2E4E15D04B2454BF6F4FADF034B10403119CD8E3B92FCC5B",
);

/// The generator Telegram pairs with [`TELEGRAM_DH_PRIME`].
pub const TELEGRAM_DH_G: u32 = 3;

/// Decodes a hex literal at compile time (whitespace skipped); a bad literal fails the build.
#[allow(
    clippy::indexing_slicing,
    clippy::panic,
    reason = "evaluated at compile time only"
)]
const fn hex_literal<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    let mut n = 0;
    let mut high: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        i += 1;
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => continue,
        };
        match high {
            None => high = Some(v),
            Some(h) => {
                out[n] = (h << 4) | v;
                n += 1;
                high = None;
            }
        }
    }
    assert!(n == N, "hex literal of the wrong length");
    out
}

/// Why DH parameters or a public value were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhError {
    /// The prime is not 2048 bits, or it or (p - 1) / 2 is composite.
    #[error("dh_prime is not a safe 2048-bit prime")]
    NotSafePrime,
    /// g is outside 2..=7 or does not generate the prime-order subgroup of this prime.
    #[error("g = {0} is not a valid generator for this dh_prime")]
    BadGenerator(u32),
    /// A public value (g_a or g_b) is outside [2^1984, p - 2^1984].
    #[error("DH public value out of range")]
    PublicValueOutOfRange,
}

/// Whether g generates the subgroup of order (p - 1) / 2 for a safe prime p, by the
/// guidelines' table of residues.
fn generator_condition(p: &U2048, g: u32) -> bool {
    match g {
        2 => p.rem_u32_vartime(8) == 7,
        3 => p.rem_u32_vartime(3) == 2,
        4 => true,
        5 => matches!(p.rem_u32_vartime(5), 1 | 4),
        6 => matches!(p.rem_u32_vartime(24), 19 | 23),
        7 => matches!(p.rem_u32_vartime(7), 3 | 5 | 6),
        _ => false,
    }
}

/// A checked DH group: a safe 2048-bit prime and a generator that passed its condition.
#[derive(Clone)]
pub struct DhGroup {
    prime: [u8; DH_LEN],
    g: u32,
    monty: Monty<32>,
    /// 2^1984 and p - 2^1984, the bounds for public values.
    low: U2048,
    high: U2048,
    /// Powers of g for [`Self::public_value`], built on first use and shared by clones (and,
    /// for Telegram's group, by every group in the process).
    powers_of_g: Arc<OnceLock<FixedBaseTable<32>>>,
}

/// The table of powers of g for Telegram's group, shared process-wide (2 MiB).
fn telegram_powers() -> Arc<OnceLock<FixedBaseTable<32>>> {
    static SHARED: OnceLock<Arc<OnceLock<FixedBaseTable<32>>>> = OnceLock::new();
    SHARED.get_or_init(|| Arc::new(OnceLock::new())).clone()
}

impl core::fmt::Debug for DhGroup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "DhGroup {{ g: {}, prime: {:02x}{:02x}..{:02x} }}",
            self.g,
            self.prime[0],
            self.prime[1],
            self.prime[DH_LEN - 1]
        )
    }
}

impl DhGroup {
    /// Telegram's group (g = 3 and [`TELEGRAM_DH_PRIME`]), known good.
    #[allow(
        clippy::expect_used,
        reason = "a constant, checked by the test telegram_group_is_valid"
    )]
    pub fn telegram() -> Self {
        Self::trusted(&TELEGRAM_DH_PRIME, TELEGRAM_DH_G)
            .expect("TELEGRAM_DH_PRIME is a valid group")
    }

    /// Checks `prime` and `g` in full (safe prime by Miller-Rabin, generator condition).
    /// Takes tens of milliseconds; clients go through [`DhPrimeCache`] instead.
    pub fn checked<R: RngCore + CryptoRng + ?Sized>(
        prime: &[u8],
        g: u32,
        rng: &mut R,
    ) -> Result<Self, DhError> {
        let group = Self::trusted(prime, g)?;
        let p = group.monty.modulus();
        let (p_minus_1, _) = p.sbb(&U2048::from_u64(1));
        let half = p_minus_1.shr1();
        if !bignum::is_probable_prime(&half, PRIME_TEST_ROUNDS, rng)
            || !bignum::is_probable_prime(p, PRIME_TEST_ROUNDS, rng)
        {
            return Err(DhError::NotSafePrime);
        }
        Ok(group)
    }

    /// The cheap checks only (size, oddness, generator condition): for primes already known
    /// to be safe (a group read back from this device's own saved state).
    pub(crate) fn trusted(prime: &[u8], g: u32) -> Result<Self, DhError> {
        let p = U2048::from_be_bytes(prime).ok_or(DhError::NotSafePrime)?;
        if p.bits_vartime() != 2048 {
            return Err(DhError::NotSafePrime);
        }
        if !(2..=7).contains(&g) || !generator_condition(&p, g) {
            return Err(DhError::BadGenerator(g));
        }
        let monty = Monty::new(p).ok_or(DhError::NotSafePrime)?;
        let mut low = U2048::ZERO;
        // 2^1984 = 2^(31 * 64): the lowest bit of the top limb.
        low.0[31] = 1;
        let (high, _) = p.sbb(&low);
        let mut bytes = [0u8; DH_LEN];
        p.write_be_bytes(&mut bytes).ok_or(DhError::NotSafePrime)?;
        let powers_of_g = if bytes == TELEGRAM_DH_PRIME && g == TELEGRAM_DH_G {
            telegram_powers()
        } else {
            Arc::new(OnceLock::new())
        };
        Ok(Self {
            prime: bytes,
            g,
            monty,
            low,
            high,
            powers_of_g,
        })
    }

    /// The prime, 256 bytes big-endian.
    pub fn prime(&self) -> &[u8; DH_LEN] {
        &self.prime
    }

    /// The generator.
    pub fn g(&self) -> u32 {
        self.g
    }

    /// Checks that a public value (`g_a`, `g_b`) lies in `[2^1984, p - 2^1984]`: what a
    /// relay checks before passing one on (`DH_G_A_INVALID`, `DH_G_B_INVALID`).
    pub fn check_public_value(&self, value: &[u8]) -> Result<(), DhError> {
        self.check_public(value).map(|_| ())
    }

    /// Checks that a public value lies in `[2^1984, p - 2^1984]`, and returns it as a number.
    pub(crate) fn check_public(&self, value: &[u8]) -> Result<U2048, DhError> {
        let x = U2048::from_be_bytes(value).ok_or(DhError::PublicValueOutOfRange)?;
        if x.lt_vartime(&self.low) || self.high.lt_vartime(&x) {
            return Err(DhError::PublicValueOutOfRange);
        }
        Ok(x)
    }

    /// A fresh secret exponent and its public value `g^secret mod p`, drawn again in the
    /// (negligible) case that the public value falls outside the allowed range.
    pub(crate) fn keypair<R: RngCore + CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> (Zeroizing<[u8; DH_LEN]>, [u8; DH_LEN]) {
        loop {
            let mut secret = Zeroizing::new([0u8; DH_LEN]);
            rng.fill_bytes(secret.as_mut_slice());
            let public = self.public_value(&secret);
            if self.check_public(&public).is_ok() {
                return (secret, public);
            }
        }
    }

    /// `g^secret mod p`, 256 bytes big-endian (constant time in the secret). Uses a table of
    /// powers of g (built once per group, about 10 ms), which makes this a quarter of the
    /// cost of a general exponentiation.
    pub(crate) fn public_value(&self, secret: &[u8; DH_LEN]) -> [u8; DH_LEN] {
        let table = self.powers_of_g.get_or_init(|| {
            let base = self.monty.convert_in(&U2048::from_u64(u64::from(self.g)));
            FixedBaseTable::new(&self.monty, &base, DH_LEN)
        });
        let value = self
            .monty
            .convert_out(&self.monty.pow_fixed_base_ct(table, secret));
        let mut out = [0u8; DH_LEN];
        // Below the 2048-bit prime, so it fits.
        let _ = value.write_be_bytes(&mut out);
        out
    }

    /// `peer^secret mod p` after checking the peer's value, 256 bytes big-endian (the auth
    /// key).
    pub(crate) fn shared_secret(
        &self,
        peer_public: &[u8],
        secret: &[u8; DH_LEN],
    ) -> Result<Zeroizing<[u8; DH_LEN]>, DhError> {
        let peer = self.check_public(peer_public)?;
        let mut value = self
            .monty
            .convert_out(&self.monty.pow_ct(&self.monty.convert_in(&peer), secret));
        let mut out = Zeroizing::new([0u8; DH_LEN]);
        let _ = value.write_be_bytes(out.as_mut_slice());
        zeroize::Zeroize::zeroize(&mut value);
        Ok(out)
    }
}

/// Remembers which (prime, g) pairs passed the full check, so that a client tests a server's
/// prime once (the guidelines' advice). Shared between handshakes through an `Arc`.
#[derive(Debug, Default)]
pub struct DhPrimeCache {
    verified: Mutex<Vec<DhGroup>>,
}

impl DhPrimeCache {
    /// A cache that knows Telegram's group.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            verified: Mutex::new(vec![DhGroup::telegram()]),
        })
    }

    /// The verified groups. A panic elsewhere while the lock was held cannot leave a group
    /// half-added (a push is the only change), so a poisoned lock is used as it is.
    fn verified(&self) -> MutexGuard<'_, Vec<DhGroup>> {
        match self.verified.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A group for (prime, g): from the cache when this pair passed before, else checked in
    /// full and remembered (the oldest entry is dropped beyond [`PRIME_CACHE_CAPACITY`]).
    pub fn group<R: RngCore + CryptoRng + ?Sized>(
        &self,
        prime: &[u8],
        g: u32,
        rng: &mut R,
    ) -> Result<DhGroup, DhError> {
        let significant = prime.iter().position(|&b| b != 0).unwrap_or(prime.len());
        let prime = prime.get(significant..).unwrap_or_default();
        {
            let verified = self.verified();
            if let Some(group) = verified
                .iter()
                .find(|group| group.g == g && group.prime.as_slice() == prime)
            {
                return Ok(group.clone());
            }
        }
        let group = DhGroup::checked(prime, g, rng)?;
        let mut verified = self.verified();
        if verified.len() >= PRIME_CACHE_CAPACITY {
            verified.remove(0);
        }
        verified.push(group.clone());
        Ok(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn telegram_group_is_valid() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let group = DhGroup::checked(&TELEGRAM_DH_PRIME, 3, &mut rng).unwrap();
        assert_eq!(group.prime(), DhGroup::telegram().prime());
        // g = 3 needs p mod 3 = 2; the other generators' conditions decide the rest.
        for g in [2, 4, 5, 6, 7] {
            let p = U2048::from_be_bytes(&TELEGRAM_DH_PRIME).unwrap();
            assert_eq!(
                DhGroup::trusted(&TELEGRAM_DH_PRIME, g).is_ok(),
                generator_condition(&p, g)
            );
        }
        assert_eq!(
            DhGroup::trusted(&TELEGRAM_DH_PRIME, 1).unwrap_err(),
            DhError::BadGenerator(1)
        );
        assert_eq!(
            DhGroup::trusted(&TELEGRAM_DH_PRIME, 8).unwrap_err(),
            DhError::BadGenerator(8)
        );
    }

    #[test]
    fn generator_conditions_follow_the_table() {
        // Residues chosen per rule; the numbers need not be prime for the table itself.
        let p = |residue: u64, modulus: u64| {
            let mut x = U2048::ZERO;
            x.0[31] = 1 << 63;
            let r = x.rem_u32_vartime(modulus as u32) as u64;
            x.adc(&U2048::from_u64((residue + modulus - r) % modulus)).0
        };
        assert!(generator_condition(&p(7, 8), 2));
        assert!(!generator_condition(&p(3, 8), 2));
        assert!(generator_condition(&p(2, 3), 3));
        assert!(!generator_condition(&p(1, 3), 3));
        assert!(generator_condition(&p(4, 5), 5));
        assert!(!generator_condition(&p(2, 5), 5));
        assert!(generator_condition(&p(19, 24), 6));
        assert!(!generator_condition(&p(11, 24), 6));
        assert!(generator_condition(&p(6, 7), 7));
        assert!(!generator_condition(&p(1, 7), 7));
    }

    #[test]
    fn composite_and_unsafe_primes_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        // p + 2 is odd, 2048 bits, divisible by 3 or otherwise composite with high probability;
        // (p - 1)/2 of a random odd number is almost surely composite.
        let mut candidate = TELEGRAM_DH_PRIME;
        candidate[255] = candidate[255].wrapping_add(6);
        assert_eq!(
            DhGroup::checked(&candidate, 4, &mut rng).unwrap_err(),
            DhError::NotSafePrime
        );
        // A 2047-bit number.
        let mut short = TELEGRAM_DH_PRIME;
        short[0] = 0x47;
        assert_eq!(
            DhGroup::checked(&short, 4, &mut rng).unwrap_err(),
            DhError::NotSafePrime
        );
    }

    #[test]
    fn public_values_must_lie_in_range() {
        let group = DhGroup::telegram();
        let mut value = [0u8; DH_LEN];
        // 2^1984 exactly is allowed; 2^1984 - 1 is not.
        value[DH_LEN - 249] = 1;
        assert!(group.check_public(&value).is_ok());
        let mut below = [0u8; DH_LEN];
        below[DH_LEN - 248..].fill(0xff);
        assert_eq!(
            group.check_public(&below).unwrap_err(),
            DhError::PublicValueOutOfRange
        );
        // p - 2^1984 is allowed, p - 2^1984 + 1 is not.
        let high = group.high.be_bytes_vec();
        assert!(group.check_public(&high).is_ok());
        let above = group.high.adc(&U2048::from_u64(1)).0.be_bytes_vec();
        assert_eq!(
            group.check_public(&above).unwrap_err(),
            DhError::PublicValueOutOfRange
        );
        assert!(group.check_public(&[1; 257]).is_err());
        assert!(group.check_public(&[]).is_err());
    }

    #[test]
    fn the_table_of_powers_of_g_gives_g_to_the_secret() {
        let group =
            DhGroup::checked(&TELEGRAM_DH_PRIME, 3, &mut ChaCha20Rng::seed_from_u64(12)).unwrap();
        for seed in 0..3u8 {
            let secret = [seed.wrapping_mul(77).wrapping_add(1); DH_LEN];
            let base = group.monty.convert_in(&U2048::from_u64(3));
            let general = group.monty.convert_out(&group.monty.pow_ct(&base, &secret));
            assert_eq!(group.public_value(&secret).to_vec(), general.be_bytes_vec());
        }
    }

    #[test]
    fn both_sides_agree_and_the_cache_remembers() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let cache = DhPrimeCache::new();
        let group = cache.group(&TELEGRAM_DH_PRIME, 3, &mut rng).unwrap();
        let (a, g_a) = group.keypair(&mut rng);
        let (b, g_b) = group.keypair(&mut rng);
        assert_eq!(
            *group.shared_secret(&g_b, &a).unwrap(),
            *group.shared_secret(&g_a, &b).unwrap()
        );
        assert_eq!(cache.verified.lock().unwrap().len(), 1);
    }
}
