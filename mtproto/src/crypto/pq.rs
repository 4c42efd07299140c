//! The handshake's proof of work: a server picks `pq`, the product of two random primes, and
//! the client factors it.
//!
//! Primality of 64-bit numbers is decided exactly by Miller-Rabin with the first twelve prime
//! bases (enough for every n < 3.3 * 10^24). Factoring uses Pollard's rho with Brent's cycle
//! detection and batched gcds: a few milliseconds for Telegram-sized pq (about 2^62).

use rand_core::{CryptoRng, RngCore};

/// `a * b mod m` without overflow.
fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    (u128::from(a) * u128::from(b) % u128::from(m)) as u64
}

fn pow_mod(mut base: u64, mut exp: u64, m: u64) -> u64 {
    let mut result = 1 % m;
    base %= m;
    while exp > 0 {
        if exp & 1 == 1 {
            result = mul_mod(result, base, m);
        }
        base = mul_mod(base, base, m);
        exp >>= 1;
    }
    result
}

/// Whether `n` is prime (deterministic for every `u64`).
pub fn is_prime_u64(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for p in BASES {
        if n % p == 0 {
            return n == p;
        }
    }
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'bases: for a in BASES {
        let mut x = pow_mod(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul_mod(x, x, n);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Montgomery multiplication modulo an odd `n < 2^63` with R = 2^64: no division in the
/// rho loop, which runs tens of thousands of times.
struct Montgomery64 {
    n: u64,
    /// `-n^-1 mod 2^64`.
    n_neg_inv: u64,
}

impl Montgomery64 {
    fn new(n: u64) -> Self {
        let mut inv = 1u64;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(n.wrapping_mul(inv)));
        }
        Self {
            n,
            n_neg_inv: inv.wrapping_neg(),
        }
    }

    /// `a * b / 2^64 mod n` for `a, b < n`.
    #[inline(always)]
    fn mul(&self, a: u64, b: u64) -> u64 {
        let t = u128::from(a) * u128::from(b);
        let m = (t as u64).wrapping_mul(self.n_neg_inv);
        // t + m * n < 2^128 because n < 2^63.
        let reduced = ((t + u128::from(m) * u128::from(self.n)) >> 64) as u64;
        if reduced >= self.n {
            reduced - self.n
        } else {
            reduced
        }
    }
}

/// A non-trivial factor of an odd composite `n` (Pollard-Brent with batched gcds, in
/// Montgomery form), or `None` after the attempt budget.
fn rho_factor(n: u64) -> Option<u64> {
    if n % 2 == 0 {
        return Some(2);
    }
    if n >= 1 << 63 {
        return rho_factor_slow(n);
    }
    let mont = Montgomery64::new(n);
    const BATCH: u64 = 128;
    for c in 1..64u64 {
        // Any constant works for rho; it need not be converted into Montgomery form.
        let f = |x: u64| {
            let y = mont.mul(x, x) + c;
            if y >= n { y - n } else { y }
        };
        let (mut y, mut r, mut q) = (2u64, 1u64, 1u64);
        let mut g = 1u64;
        let mut x = y;
        let mut ys = y;
        while g == 1 {
            x = y;
            for _ in 0..r {
                y = f(y);
            }
            let mut k = 0;
            while k < r && g == 1 {
                ys = y;
                for _ in 0..BATCH.min(r - k) {
                    y = f(y);
                    q = mont.mul(q, x.abs_diff(y));
                }
                g = gcd(q, n);
                k += BATCH;
            }
            r *= 2;
            if r > 1 << 26 {
                break;
            }
        }
        if g == n || g == 0 {
            // The batch overshot: step one at a time from the saved point.
            loop {
                ys = f(ys);
                g = gcd(x.abs_diff(ys), n);
                if g > 1 {
                    break;
                }
            }
        }
        if g > 1 && g < n {
            return Some(g);
        }
    }
    None
}

/// The same search with plain (dividing) arithmetic, for `n >= 2^63`.
fn rho_factor_slow(n: u64) -> Option<u64> {
    for c in 1..64u64 {
        let f = |x: u64| (mul_mod(x, x, n) + c) % n;
        let (mut x, mut y) = (2u64, 2u64);
        for _ in 0..(1u64 << 22) {
            x = f(x);
            y = f(f(y));
            let g = gcd(x.abs_diff(y), n);
            if g == n {
                break;
            }
            if g > 1 {
                return Some(g);
            }
        }
    }
    None
}

/// Splits `pq` into its two prime factors `p < q`, as the client must; `None` unless pq is
/// the product of exactly two distinct odd primes.
pub fn factorize_pq(pq: u64) -> Option<(u64, u64)> {
    if pq < 15 || pq % 2 == 0 || is_prime_u64(pq) {
        return None;
    }
    let factor = rho_factor(pq)?;
    let (p, q) = (factor.min(pq / factor), factor.max(pq / factor));
    (p != q && p.checked_mul(q) == Some(pq) && is_prime_u64(p) && is_prime_u64(q)).then_some((p, q))
}

/// A random prime in `[2^30, 2^31)`.
fn random_prime_31<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> u64 {
    loop {
        let candidate = u64::from(rng.next_u32() >> 1) | (1 << 30) | 1;
        if is_prime_u64(candidate) {
            return candidate;
        }
    }
}

/// A fresh `(p, q, pq)` with random primes `p < q` in `[2^30, 2^31)`, so that `pq` stays
/// below 2^62, within the signed range clients expect.
pub fn random_pq<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> (u64, u64, u64) {
    loop {
        let a = random_prime_31(rng);
        let b = random_prime_31(rng);
        if a != b {
            let (p, q) = (a.min(b), a.max(b));
            return (p, q, p * q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn official_sample_pq_factors() {
        // core.telegram.org/mtproto/samples-auth_key: 0x17ED48941A08F981 = 1229739323 * 1402015859
        // in the older transcript, and pq = 2694724800268887959 in the current one.
        assert_eq!(
            factorize_pq(0x17ED_4894_1A08_F981),
            Some((1_229_739_323, 1_402_015_859))
        );
        assert_eq!(
            factorize_pq(2_694_724_800_268_887_959),
            Some((1_513_098_571, 1_780_931_429))
        );
    }

    #[test]
    fn non_semiprimes_are_refused() {
        for bad in [
            0,
            1,
            2,
            9,
            15 * 7,
            1_000_000_007,
            1_000_000_007 * 1_000_000_007,
            4 * 1_000_000_007,
        ] {
            assert_eq!(factorize_pq(bad), None, "{bad}");
        }
    }

    #[test]
    fn primality_agrees_with_trial_division_on_small_numbers() {
        for n in 0..20_000u64 {
            let trial = n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0);
            assert_eq!(is_prime_u64(n), trial, "{n}");
        }
        // Strong pseudoprimes to several bases.
        assert!(!is_prime_u64(3_215_031_751));
        assert!(!is_prime_u64(3_825_123_056_546_413_051));
        assert!(is_prime_u64(18_446_744_073_709_551_557));
    }

    proptest! {
        #[test]
        fn random_pq_factors_back(seed in any::<u64>()) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let (p, q, pq) = random_pq(&mut rng);
            prop_assert!(p < q && pq < 1 << 62);
            prop_assert_eq!(factorize_pq(pq), Some((p, q)));
        }
    }
}
