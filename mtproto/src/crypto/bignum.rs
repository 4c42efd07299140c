//! Fixed-size unsigned integers and constant-time Montgomery arithmetic, for RSA and DH.
//!
//! Only what the handshake needs: numbers of a fixed count of 64-bit limbs (16 for RSA's
//! 1024-bit CRT halves, 32 for 2048-bit moduli), Montgomery multiplication (CIOS) with a
//! masked final subtraction, and two constant-time exponentiations: fixed windows of
//! `WINDOW` (5) bits over a table of the base's powers, and for a base known in advance (the
//! DH generator) a table of its powers by every 4-bit digit position, one multiplication per
//! digit and no squarings. Every table read scans every entry. Secret operands never steer a
//! branch or an address: the loops run
//! a count fixed by the size, the carries are arithmetic, the selections are masks.
//! Functions whose names end in `_vartime` branch on their inputs and are only used on public
//! values (moduli, public exponents, Miller-Rabin on public primes).
//!
//! Why our own and not a crate: the handshake's cost is three 2048-bit exponentiations, and
//! the available constant-time crates measured at about half of OpenSSL's speed on this work
//! (see `docs/performance.md`); a CIOS kernel over const-size arrays lets LLVM unroll and keep
//! the carries in registers.
// The kernels index fixed-size arrays with loop counters bounded by the array's own const
// length; iterator forms of the carry chains (two arrays read, one written, offset by one)
// would be harder to check than the indices.
#![allow(clippy::indexing_slicing, clippy::needless_range_loop)]

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

/// An unsigned integer of `N` 64-bit limbs, least significant limb first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Uint<const N: usize>(pub(crate) [u64; N]);

/// 1024 bits: one RSA-2048 prime.
pub(crate) type U1024 = Uint<16>;
/// 2048 bits: RSA-2048 moduli and MTProto's DH numbers.
pub(crate) type U2048 = Uint<32>;

impl<const N: usize> core::fmt::Debug for Uint<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Values may be secret; print the size only.
        write!(f, "Uint<{N}>(..)")
    }
}

impl<const N: usize> Zeroize for Uint<N> {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

/// All ones if `bit` is 1, zero if it is 0 (`bit` must be 0 or 1).
#[inline(always)]
fn mask_from_bit(bit: u64) -> u64 {
    0u64.wrapping_sub(bit)
}

impl<const N: usize> Uint<N> {
    /// Zero.
    pub(crate) const ZERO: Self = Self([0; N]);
    /// The size in bytes.
    pub(crate) const BYTES: usize = N * 8;

    /// A small value.
    pub(crate) fn from_u64(value: u64) -> Self {
        let mut limbs = [0; N];
        if let Some(first) = limbs.first_mut() {
            *first = value;
        }
        Self(limbs)
    }

    /// Reads a big-endian byte string of any length; `None` if the value needs more than `N`
    /// limbs (leading zero bytes are fine).
    pub(crate) fn from_be_bytes(bytes: &[u8]) -> Option<Self> {
        let significant = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        let bytes = bytes.get(significant..)?;
        if bytes.len() > Self::BYTES {
            return None;
        }
        let mut limbs = [0u64; N];
        for (i, chunk) in bytes.rchunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[8 - chunk.len()..].copy_from_slice(chunk);
            limbs[i] = u64::from_be_bytes(word);
        }
        Some(Self(limbs))
    }

    /// Writes the value big-endian into `out`, left-padded with zeros; `None` if it does not
    /// fit.
    pub(crate) fn write_be_bytes(&self, out: &mut [u8]) -> Option<()> {
        let needed = self.bytes_vartime();
        if needed > out.len() {
            return None;
        }
        out.fill(0);
        for (i, limb) in self.0.iter().enumerate() {
            for (j, byte) in limb.to_le_bytes().iter().enumerate() {
                let at = i * 8 + j;
                if at < out.len() {
                    let index = out.len() - 1 - at;
                    out[index] = *byte;
                }
            }
        }
        Some(())
    }

    /// The value as exactly `8 * N` big-endian bytes.
    pub(crate) fn be_bytes_vec(self) -> Vec<u8> {
        let mut out = vec![0u8; Self::BYTES];
        for (i, limb) in self.0.iter().rev().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// The number of significant bits (variable time).
    pub(crate) fn bits_vartime(&self) -> u32 {
        for (i, limb) in self.0.iter().enumerate().rev() {
            if *limb != 0 {
                return (i as u32) * 64 + (64 - limb.leading_zeros());
            }
        }
        0
    }

    fn bytes_vartime(&self) -> usize {
        (self.bits_vartime() as usize).div_ceil(8)
    }

    /// Whether bit `index` is set (variable time in `index` only).
    pub(crate) fn bit(&self, index: u32) -> bool {
        let limb = (index / 64) as usize;
        self.0
            .get(limb)
            .is_some_and(|l| (l >> (index % 64)) & 1 == 1)
    }

    /// Whether the value is zero (variable time).
    pub(crate) fn is_zero_vartime(&self) -> bool {
        self.0.iter().all(|&l| l == 0)
    }

    /// Whether the value is odd.
    pub(crate) fn is_odd(&self) -> bool {
        self.0.first().is_some_and(|l| l & 1 == 1)
    }

    /// `self - rhs` and the borrow out (1 when `rhs > self`), in constant time.
    pub(crate) fn sbb(&self, rhs: &Self) -> (Self, u64) {
        let mut out = [0u64; N];
        let mut borrow = 0u64;
        for i in 0..N {
            let (d1, b1) = self.0[i].overflowing_sub(rhs.0[i]);
            let (d2, b2) = d1.overflowing_sub(borrow);
            out[i] = d2;
            borrow = u64::from(b1 | b2);
        }
        (Self(out), borrow)
    }

    /// `self + rhs` and the carry out, in constant time.
    pub(crate) fn adc(&self, rhs: &Self) -> (Self, u64) {
        let mut out = [0u64; N];
        let mut carry = 0u64;
        for i in 0..N {
            let sum = u128::from(self.0[i]) + u128::from(rhs.0[i]) + u128::from(carry);
            out[i] = sum as u64;
            carry = (sum >> 64) as u64;
        }
        (Self(out), carry)
    }

    /// `a` where `mask` is all ones, `b` where it is zero.
    #[inline(always)]
    pub(crate) fn select(mask: u64, a: &Self, b: &Self) -> Self {
        let mut out = [0u64; N];
        for i in 0..N {
            out[i] = (a.0[i] & mask) | (b.0[i] & !mask);
        }
        Self(out)
    }

    /// `self < rhs` (variable time: for public values).
    pub(crate) fn lt_vartime(&self, rhs: &Self) -> bool {
        for i in (0..N).rev() {
            if self.0[i] != rhs.0[i] {
                return self.0[i] < rhs.0[i];
            }
        }
        false
    }

    /// Shifts right by one bit.
    pub(crate) fn shr1(&self) -> Self {
        let mut out = [0u64; N];
        for i in 0..N {
            let high = if i + 1 < N { self.0[i + 1] << 63 } else { 0 };
            out[i] = (self.0[i] >> 1) | high;
        }
        Self(out)
    }

    /// Shifts left by one bit, returning the bit shifted out.
    fn shl1(&self) -> (Self, u64) {
        let mut out = [0u64; N];
        let mut carry = 0u64;
        for i in 0..N {
            out[i] = (self.0[i] << 1) | carry;
            carry = self.0[i] >> 63;
        }
        (Self(out), carry)
    }

    /// The remainder of a division by a small number (variable time: public values only).
    pub(crate) fn rem_u32_vartime(&self, divisor: u32) -> u32 {
        let divisor = u128::from(divisor);
        let mut rem = 0u128;
        for limb in self.0.iter().rev() {
            rem = ((rem << 64) | u128::from(*limb)) % divisor;
        }
        rem as u32
    }

    /// `self * small + add`, and the limb carried out.
    pub(crate) fn mul_small_add(&self, small: u64, add: u64) -> (Self, u64) {
        let mut out = [0u64; N];
        let mut carry = add;
        for i in 0..N {
            let product = u128::from(self.0[i]) * u128::from(small) + u128::from(carry);
            out[i] = product as u64;
            carry = (product >> 64) as u64;
        }
        (Self(out), carry)
    }

    /// A uniformly random value below `bound` (rejection sampling; `bound` is public and non-zero).
    pub(crate) fn random_below<R: RngCore + CryptoRng + ?Sized>(rng: &mut R, bound: &Self) -> Self {
        let bits = bound.bits_vartime();
        let top_limb = (bits.saturating_sub(1) / 64) as usize;
        let top_mask = if bits % 64 == 0 {
            u64::MAX
        } else {
            (1u64 << (bits % 64)) - 1
        };
        loop {
            let mut limbs = [0u64; N];
            for (i, limb) in limbs.iter_mut().enumerate() {
                if i <= top_limb {
                    *limb = rng.next_u64();
                }
            }
            limbs[top_limb.min(N.saturating_sub(1))] &= top_mask;
            let candidate = Self(limbs);
            if candidate.lt_vartime(bound) {
                return candidate;
            }
        }
    }
}

/// The product of two 1024-bit numbers.
pub(crate) fn mul_wide(a: &U1024, b: &U1024) -> U2048 {
    let mut out = [0u64; 32];
    for i in 0..16 {
        let mut carry = 0u64;
        for j in 0..16 {
            let t = u128::from(out[i + j])
                + u128::from(a.0[j]) * u128::from(b.0[i])
                + u128::from(carry);
            out[i + j] = t as u64;
            carry = (t >> 64) as u64;
        }
        out[i + 16] = carry;
    }
    Uint(out)
}

/// The low and high halves of a 2048-bit number.
pub(crate) fn split(value: &U2048) -> (U1024, U1024) {
    let mut low = [0u64; 16];
    let mut high = [0u64; 16];
    low.copy_from_slice(&value.0[..16]);
    high.copy_from_slice(&value.0[16..]);
    (Uint(low), Uint(high))
}

/// Widens a 1024-bit number to 2048 bits.
pub(crate) fn widen(value: &U1024) -> U2048 {
    let mut out = [0u64; 32];
    out[..16].copy_from_slice(&value.0);
    Uint(out)
}

/// A three-word (192-bit) sum of 64 x 64-bit products, for product scanning.
#[derive(Default, Clone, Copy)]
struct Accumulator {
    low: u128,
    high: u64,
}

impl Accumulator {
    /// Adds `x * y`.
    #[inline(always)]
    fn mac(&mut self, x: u64, y: u64) {
        let (sum, overflow) = self.low.overflowing_add(u128::from(x) * u128::from(y));
        self.low = sum;
        self.high += u64::from(overflow);
    }

    /// Adds twice `other`.
    #[inline(always)]
    fn add_doubled(&mut self, other: &Self) {
        let doubled_low = other.low << 1;
        let doubled_high = (other.high << 1) | ((other.low >> 127) as u64);
        let (sum, overflow) = self.low.overflowing_add(doubled_low);
        self.low = sum;
        self.high += doubled_high + u64::from(overflow);
    }

    /// The lowest word.
    #[inline(always)]
    fn low(&self) -> u64 {
        self.low as u64
    }

    /// Drops the lowest word (the column is done) and moves the rest down.
    #[inline(always)]
    fn shift(&mut self) {
        self.low = (self.low >> 64) | (u128::from(self.high) << 64);
        self.high = 0;
    }
}

/// Montgomery arithmetic modulo an odd `m`, with `R = 2^(64 N)`.
#[derive(Clone)]
pub(crate) struct Monty<const N: usize> {
    modulus: Uint<N>,
    /// `-m^-1 mod 2^64`.
    m0_inv: u64,
    /// `R mod m`: one, in Montgomery form.
    one: Uint<N>,
    /// `R^2 mod m`: converts into Montgomery form.
    r2: Uint<N>,
}

impl<const N: usize> Zeroize for Monty<N> {
    fn zeroize(&mut self) {
        self.modulus.zeroize();
        self.m0_inv.zeroize();
        self.one.zeroize();
        self.r2.zeroize();
    }
}

impl<const N: usize> core::fmt::Debug for Monty<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Monty<{N}>(..)")
    }
}

impl<const N: usize> Monty<N> {
    /// Parameters for an odd modulus greater than one; `None` otherwise. Constant time in the
    /// modulus except for its bit length.
    pub(crate) fn new(modulus: Uint<N>) -> Option<Self> {
        if !modulus.is_odd() || modulus.bits_vartime() < 2 {
            return None;
        }
        // Newton's iteration doubles the correct low bits each round: 1 -> 64 in six rounds.
        let m0 = modulus.0[0];
        let mut inv = 1u64;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(m0.wrapping_mul(inv)));
        }
        // R mod m by doubling from the highest power of two below m; R^2 by doubling on.
        let bits = modulus.bits_vartime();
        let mut x = Uint::<N>::ZERO;
        x.0[((bits - 1) / 64) as usize] = 1u64 << ((bits - 1) % 64);
        let double = |x: &Uint<N>| {
            let (shifted, carry) = x.shl1();
            let (reduced, borrow) = shifted.sbb(&modulus);
            // Subtract when the shifted value overflowed or is at least m.
            let take = mask_from_bit(carry | (borrow ^ 1));
            Uint::select(take, &reduced, &shifted)
        };
        let total = 64 * N as u32;
        for _ in (bits - 1)..total {
            x = double(&x);
        }
        let one = x;
        for _ in 0..total {
            x = double(&x);
        }
        Some(Self {
            modulus,
            m0_inv: inv.wrapping_neg(),
            one,
            r2: x,
        })
    }

    /// The modulus.
    pub(crate) fn modulus(&self) -> &Uint<N> {
        &self.modulus
    }

    /// One in Montgomery form.
    pub(crate) fn one(&self) -> Uint<N> {
        self.one
    }

    /// `a * b / R mod m` for `a, b < m`, constant time.
    ///
    /// Product scanning with the reduction interleaved (Koc, Acar and Kaliski's "FIPS"
    /// form): each output column sums its `a[j] * b[k - j]` and `q[j] * m[k - j]` in a
    /// three-word accumulator held in registers. Loop bounds depend only on `N`.
    #[inline]
    pub(crate) fn mul(&self, a: &Uint<N>, b: &Uint<N>) -> Uint<N> {
        let m = &self.modulus.0;
        let a = &a.0;
        let b = &b.0;
        let mut q = [0u64; N];
        let mut t = [0u64; N];
        let mut acc = Accumulator::default();
        for k in 0..N {
            for j in 0..k {
                acc.mac(a[j], b[k - j]);
                acc.mac(q[j], m[k - j]);
            }
            acc.mac(a[k], b[0]);
            // Choose q[k] so that the column's low word becomes zero.
            let qk = acc.low().wrapping_mul(self.m0_inv);
            q[k] = qk;
            acc.mac(qk, m[0]);
            acc.shift();
        }
        for k in N..2 * N {
            for j in (k - N + 1)..N {
                acc.mac(a[j], b[k - j]);
                acc.mac(q[j], m[k - j]);
            }
            t[k - N] = acc.low();
            acc.shift();
        }
        self.final_subtract(t, acc.low())
    }

    /// `a * a / R mod m` for `a < m`: [`Self::mul`] with each off-diagonal product computed
    /// once and doubled, a quarter fewer multiplications.
    #[inline]
    pub(crate) fn sqr(&self, a: &Uint<N>) -> Uint<N> {
        let m = &self.modulus.0;
        let a = &a.0;
        let mut q = [0u64; N];
        let mut t = [0u64; N];
        let mut acc = Accumulator::default();
        for k in 0..2 * N {
            let low = if k < N { 0 } else { k - N + 1 };
            let high = if k < N { k } else { N - 1 };
            // Off-diagonal pairs a[j] * a[k - j] with j < k - j, doubled.
            let mut twice = Accumulator::default();
            // j < k - j, that is j < (k + 1) / 2.
            for j in low..k.div_ceil(2).min(high + 1) {
                twice.mac(a[j], a[k - j]);
            }
            acc.add_doubled(&twice);
            if k % 2 == 0 {
                // low <= k / 2 <= high holds for every even column.
                acc.mac(a[k / 2], a[k / 2]);
            }
            // The reduction terms q[j] * m[k - j] for the q already chosen.
            let q_high = if k < N { k } else { N };
            for j in low..q_high {
                acc.mac(q[j], m[k - j]);
            }
            if k < N {
                let qk = acc.low().wrapping_mul(self.m0_inv);
                q[k] = qk;
                acc.mac(qk, m[0]);
            } else {
                t[k - N] = acc.low();
            }
            acc.shift();
        }
        self.final_subtract(t, acc.low())
    }

    /// The result `t + t_hi * R`, known to be below `2m`, reduced below `m`.
    #[inline(always)]
    fn final_subtract(&self, t: [u64; N], t_hi: u64) -> Uint<N> {
        let result = Uint(t);
        let (reduced, borrow) = result.sbb(&self.modulus);
        // Subtract m once when the value overflowed the limbs or is at least m.
        let take = mask_from_bit((t_hi & 1) | (borrow ^ 1));
        Uint::select(take, &reduced, &result)
    }

    /// Reduces any `x < 2m` below `m` in constant time.
    pub(crate) fn reduce_once(&self, x: &Uint<N>) -> Uint<N> {
        let (reduced, borrow) = x.sbb(&self.modulus);
        Uint::select(mask_from_bit(borrow ^ 1), &reduced, x)
    }

    /// Into Montgomery form (`x < m`).
    pub(crate) fn convert_in(&self, x: &Uint<N>) -> Uint<N> {
        self.mul(x, &self.r2)
    }

    /// Out of Montgomery form.
    pub(crate) fn convert_out(&self, x: &Uint<N>) -> Uint<N> {
        self.mul(x, &Uint::from_u64(1))
    }

    /// `(a + b) mod m` for `a, b < m`, constant time.
    pub(crate) fn add(&self, a: &Uint<N>, b: &Uint<N>) -> Uint<N> {
        let (sum, carry) = a.adc(b);
        let (reduced, borrow) = sum.sbb(&self.modulus);
        Uint::select(mask_from_bit(carry | (borrow ^ 1)), &reduced, &sum)
    }

    /// `(a - b) mod m` for `a, b < m`, constant time.
    pub(crate) fn sub(&self, a: &Uint<N>, b: &Uint<N>) -> Uint<N> {
        let (diff, borrow) = a.sbb(b);
        let (wrapped, _) = diff.adc(&self.modulus);
        Uint::select(mask_from_bit(borrow), &wrapped, &diff)
    }

    /// `base^exponent` with both in and out in Montgomery form; `exponent` is big-endian bytes
    /// and may be secret: the sequence of operations and memory accesses depends only on its
    /// length. Fixed windows of [`WINDOW`] bits; every table lookup reads the whole table.
    pub(crate) fn pow_ct(&self, base: &Uint<N>, exponent: &[u8]) -> Uint<N> {
        let mut table = [self.one; TABLE];
        table[1] = *base;
        for i in 2..TABLE {
            table[i] = if i % 2 == 0 {
                self.sqr(&table[i / 2])
            } else {
                self.mul(&table[i - 1], base)
            };
        }
        let total_bits = exponent.len() * 8;
        // The first window takes the bits left over so that the rest are whole windows.
        let first = match total_bits % WINDOW {
            0 => WINDOW,
            rest => rest,
        };
        let mut acc = self.one;
        let mut position = 0;
        let mut width = first;
        while position < total_bits {
            if position > 0 {
                for _ in 0..width {
                    acc = self.sqr(&acc);
                }
            }
            let index = window_bits(exponent, position, width);
            let selected = select_from_table(&table, index);
            acc = self.mul(&acc, &selected);
            position += width;
            width = WINDOW;
        }
        table.zeroize();
        acc
    }

    /// `base^exponent` (Montgomery form in and out) for a public exponent: square and multiply
    /// with branches on the exponent's bits.
    pub(crate) fn pow_vartime<const E: usize>(
        &self,
        base: &Uint<N>,
        exponent: &Uint<E>,
    ) -> Uint<N> {
        let bits = exponent.bits_vartime();
        let mut acc = self.one;
        for index in (0..bits).rev() {
            acc = self.sqr(&acc);
            if exponent.bit(index) {
                acc = self.mul(&acc, base);
            }
        }
        acc
    }
}

/// Powers of a fixed base for [`Monty::pow_fixed_base_ct`]: row `i` holds
/// `base^(d * 16^i)` for `d` in 0..16, in Montgomery form, for exponents of `BYTES` bytes.
///
/// With the table, `base^e` is one multiplication per 4-bit digit of `e` and no squaring: a
/// quarter of the work of [`Monty::pow_ct`]. It costs `2 * BYTES * 16` numbers of memory
/// (2 MiB for a 2048-bit modulus and a 256-byte exponent) and as many multiplications to
/// build, so it is only worth it for a base used again and again (DH's generator).
pub(crate) struct FixedBaseTable<const N: usize> {
    rows: Vec<[Uint<N>; 16]>,
}

impl<const N: usize> FixedBaseTable<N> {
    /// Builds the table for `base` (Montgomery form) and exponents of `bytes` bytes.
    pub(crate) fn new(monty: &Monty<N>, base: &Uint<N>, bytes: usize) -> Self {
        let mut rows = Vec::with_capacity(bytes * 2);
        // power = base^(16^i)
        let mut power = *base;
        for _ in 0..bytes * 2 {
            let mut row = [monty.one(); 16];
            row[1] = power;
            for d in 2..16 {
                row[d] = monty.mul(&row[d - 1], &power);
            }
            // base^(16^(i + 1)) = (base^(16^i))^16 = row[15] * power
            power = monty.mul(&row[15], &power);
            rows.push(row);
        }
        Self { rows }
    }
}

impl<const N: usize> Monty<N> {
    /// `base^exponent` for the base `table` was built from (Montgomery form out); `exponent`
    /// is big-endian bytes and may be secret. Constant time: one multiplication per digit and
    /// a full scan of each row. Exponents longer than the table are cut to its length (from
    /// the least significant end), so callers pass exactly the length it was built for.
    pub(crate) fn pow_fixed_base_ct(&self, table: &FixedBaseTable<N>, exponent: &[u8]) -> Uint<N> {
        let mut acc = self.one;
        // Digit i (from the least significant end) uses row i.
        for (i, row) in table.rows.iter().enumerate() {
            let byte_index = exponent.len().checked_sub(1 + i / 2);
            let byte = byte_index
                .and_then(|at| exponent.get(at))
                .copied()
                .unwrap_or(0);
            let digit = if i % 2 == 0 { byte & 0x0f } else { byte >> 4 };
            acc = self.mul(&acc, &select_from_table(row, usize::from(digit)));
        }
        acc
    }
}

/// Bits per exponent window in [`Monty::pow_ct`].
const WINDOW: usize = 5;
/// Entries in its table.
const TABLE: usize = 1 << WINDOW;

/// `width` bits of a big-endian byte string starting `position` bits from its most
/// significant end (the positions are public; the bits are not, and are not branched on).
#[inline(always)]
fn window_bits(bytes: &[u8], position: usize, width: usize) -> usize {
    let mut value = 0usize;
    for bit in position..position + width {
        let byte = bytes.get(bit / 8).copied().unwrap_or(0);
        value = (value << 1) | usize::from((byte >> (7 - bit % 8)) & 1);
    }
    value
}

/// Reads `table[index]` by touching every entry and keeping one through masks.
#[inline(always)]
fn select_from_table<const N: usize>(table: &[Uint<N>], index: usize) -> Uint<N> {
    let mut out = [0u64; N];
    for (i, entry) in table.iter().enumerate() {
        // Equal iff (i ^ index) == 0; computed without a comparison's branch.
        let diff = (i ^ index) as u64;
        let equal = ((diff | diff.wrapping_neg()) >> 63) ^ 1;
        let mask = mask_from_bit(equal);
        for k in 0..N {
            out[k] |= entry.0[k] & mask;
        }
    }
    Uint(out)
}

/// Small primes for trial division before Miller-Rabin.
const SMALL_PRIMES: [u32; 64] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191, 193,
    197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263, 269, 271, 277, 281, 283, 293, 307,
    311, 313,
];

/// Whether `n` is divisible by one of the small primes (and is not that prime).
pub(crate) fn has_small_factor<const N: usize>(n: &Uint<N>) -> bool {
    SMALL_PRIMES
        .iter()
        .any(|&p| n.rem_u32_vartime(p) == 0 && *n != Uint::from_u64(u64::from(p)))
}

/// Miller-Rabin with `rounds` random bases: `false` means composite for certain, `true` means
/// prime except with probability at most `4^-rounds`. Variable time: for public numbers, or
/// for fresh RSA candidates whose rejected values are thrown away.
pub(crate) fn is_probable_prime<const N: usize, R: RngCore + CryptoRng + ?Sized>(
    n: &Uint<N>,
    rounds: u32,
    rng: &mut R,
) -> bool {
    if n.bits_vartime() < 2 {
        return false;
    }
    if *n == Uint::from_u64(2) {
        return true;
    }
    if !n.is_odd() || has_small_factor(n) {
        return false;
    }
    // Below the square of the next prime, trial division has decided.
    if n.lt_vartime(&Uint::from_u64(317 * 317)) {
        return true;
    }
    let Some(monty) = Monty::new(*n) else {
        return false;
    };
    // n - 1 = d * 2^s with d odd.
    let (n_minus_1, _) = n.sbb(&Uint::from_u64(1));
    let mut d = n_minus_1;
    let mut s = 0u32;
    while !d.is_odd() && !d.is_zero_vartime() {
        d = d.shr1();
        s += 1;
    }
    let one = monty.one();
    let minus_one = monty.sub(&Uint::ZERO, &one);
    let (bound, _) = n.sbb(&Uint::from_u64(3));
    for _ in 0..rounds {
        // A base in [2, n - 2].
        let (base, _) = Uint::random_below(rng, &bound).adc(&Uint::from_u64(2));
        let mut x = monty.pow_vartime(&monty.convert_in(&base), &d);
        if x == one || x == minus_one {
            continue;
        }
        let mut witness = true;
        for _ in 1..s {
            x = monty.sqr(&x);
            if x == minus_one {
                witness = false;
                break;
            }
        }
        if witness {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn to_big<const N: usize>(x: &Uint<N>) -> BigUint {
        BigUint::from_bytes_be(&x.be_bytes_vec())
    }

    fn from_big<const N: usize>(x: &BigUint) -> Uint<N> {
        Uint::from_be_bytes(&x.to_bytes_be()).unwrap()
    }

    fn odd_modulus<const N: usize>(bytes: &[u8]) -> Uint<N> {
        let mut m = Uint::<N>::from_be_bytes(bytes).unwrap();
        m.0[0] |= 1;
        if m.bits_vartime() < 2 {
            m.0[0] = 3;
        }
        m
    }

    proptest! {
        #[test]
        fn montgomery_multiplication_matches_num_bigint(
            m in proptest::collection::vec(any::<u8>(), 1..=128),
            a in proptest::collection::vec(any::<u8>(), 0..=128),
            b in proptest::collection::vec(any::<u8>(), 0..=128),
        ) {
            let m: U1024 = odd_modulus(&m);
            let monty = Monty::new(m).unwrap();
            let big_m = to_big(&m);
            let a_big = BigUint::from_bytes_be(&a) % &big_m;
            let b_big = BigUint::from_bytes_be(&b) % &big_m;
            let am = monty.convert_in(&from_big(&a_big));
            let bm = monty.convert_in(&from_big(&b_big));
            let product = monty.convert_out(&monty.mul(&am, &bm));
            prop_assert_eq!(to_big(&product), (&a_big * &b_big) % &big_m);
            prop_assert_eq!(to_big(&monty.convert_out(&monty.add(&am, &bm))), (&a_big + &b_big) % &big_m);
            prop_assert_eq!(
                to_big(&monty.convert_out(&monty.sub(&am, &bm))),
                (&a_big + &big_m - &b_big) % &big_m
            );
        }

        #[test]
        fn exponentiation_matches_num_bigint(
            m in proptest::collection::vec(any::<u8>(), 1..=256),
            base in proptest::collection::vec(any::<u8>(), 0..=256),
            exponent in proptest::collection::vec(any::<u8>(), 0..=40),
        ) {
            let m: U2048 = odd_modulus(&m);
            let monty = Monty::new(m).unwrap();
            let big_m = to_big(&m);
            let base_big = BigUint::from_bytes_be(&base) % &big_m;
            let bm = monty.convert_in(&from_big(&base_big));
            let expected = base_big.modpow(&BigUint::from_bytes_be(&exponent), &big_m);
            prop_assert_eq!(&to_big(&monty.convert_out(&monty.pow_ct(&bm, &exponent))), &expected);
            let e: U2048 = Uint::from_be_bytes(&exponent).unwrap();
            prop_assert_eq!(&to_big(&monty.convert_out(&monty.pow_vartime(&bm, &e))), &expected);
        }

        #[test]
        fn bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..=128)) {
            let x = U1024::from_be_bytes(&bytes).unwrap();
            prop_assert_eq!(to_big(&x), BigUint::from_bytes_be(&bytes));
            let mut out = vec![0u8; 128];
            x.write_be_bytes(&mut out).unwrap();
            prop_assert_eq!(BigUint::from_bytes_be(&out), BigUint::from_bytes_be(&bytes));
        }

        #[test]
        fn wide_and_small_arithmetic(
            a in proptest::collection::vec(any::<u8>(), 0..=128),
            b in proptest::collection::vec(any::<u8>(), 0..=128),
            small in 1u64..,
        ) {
            let x = U1024::from_be_bytes(&a).unwrap();
            let y = U1024::from_be_bytes(&b).unwrap();
            prop_assert_eq!(to_big(&mul_wide(&x, &y)), to_big(&x) * to_big(&y));
            let (product, carry) = x.mul_small_add(small, 5);
            prop_assert_eq!(
                to_big(&product) + (BigUint::from(carry) << 1024u32),
                to_big(&x) * small + 5u8
            );
            prop_assert_eq!(BigUint::from(x.rem_u32_vartime(small as u32 | 1)), to_big(&x) % (small as u32 | 1));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn fixed_base_exponentiation_matches(
            m in proptest::collection::vec(any::<u8>(), 1..=128),
            base in proptest::collection::vec(any::<u8>(), 0..=128),
            exponent in proptest::collection::vec(any::<u8>(), 0..=16),
        ) {
            let m: U1024 = odd_modulus(&m);
            let monty = Monty::new(m).unwrap();
            let big_m = to_big(&m);
            let base_big = BigUint::from_bytes_be(&base) % &big_m;
            let bm = monty.convert_in(&from_big(&base_big));
            let table = FixedBaseTable::new(&monty, &bm, 16);
            let mut padded = vec![0u8; 16 - exponent.len()];
            padded.extend_from_slice(&exponent);
            let expected = base_big.modpow(&BigUint::from_bytes_be(&exponent), &big_m);
            prop_assert_eq!(&to_big(&monty.convert_out(&monty.pow_fixed_base_ct(&table, &padded))), &expected);
        }
    }

    #[test]
    fn too_long_values_are_refused() {
        assert!(U1024::from_be_bytes(&[1u8; 129]).is_none());
        let mut padded = vec![0u8; 10];
        padded.extend_from_slice(&[0xff; 128]);
        assert!(U1024::from_be_bytes(&padded).is_some());
        let x = U1024::from_u64(0x1_0000);
        assert!(x.write_be_bytes(&mut [0u8; 2]).is_none());
        assert!(Monty::new(U1024::from_u64(10)).is_none());
        assert!(Monty::new(U1024::from_u64(1)).is_none());
    }

    #[test]
    fn miller_rabin_separates_primes_from_composites() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        // 2^127 - 1 is a Mersenne prime; 2^128 + 1 = 59649589127497217 * 5704689200685129054721.
        let m127 = Uint::<4>::from_be_bytes(&(BigUint::from(1u8) << 127u32).to_bytes_be())
            .unwrap()
            .sbb(&Uint::from_u64(1))
            .0;
        assert!(is_probable_prime(&m127, 20, &mut rng));
        let f7: Uint<4> = from_big(&((BigUint::from(1u8) << 128u32) + 1u8));
        assert!(!is_probable_prime(&f7, 20, &mut rng));
        // A Carmichael number fools Fermat but not Miller-Rabin.
        assert!(!is_probable_prime(&Uint::<4>::from_u64(561), 20, &mut rng));
        assert!(is_probable_prime(&Uint::<4>::from_u64(313), 20, &mut rng));
        assert!(!is_probable_prime(&Uint::<4>::from_u64(1), 20, &mut rng));
    }
}
