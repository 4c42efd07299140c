//! Value generators and round-trip checks shared by property tests and fuzz targets.
//!
//! Unstable (feature `testing`): not covered by semver. Every generated schema item implements
//! [`Generate`]; the generated `round_trip_every_type` and `decode_reencode` functions of each
//! schema module call [`check_round_trip`] and [`decode_reencode`] for every item.
//!
//! [`Gen`] is a small deterministic generator (SplitMix64) seeded by the caller, usually from a
//! proptest-chosen `u64`, so a failing case is reproduced from its seed alone.

use core::fmt;

use super::service::{Message, MsgContainer};
use super::{Deserializable, Identifiable, RawObject, Reader, Serializable};

/// A seeded source of test values with a nesting budget.
#[derive(Clone, Debug)]
pub struct Gen {
    state: u64,
    depth: u32,
    max_depth: u32,
}

impl Gen {
    /// A generator with the default nesting budget (3 levels of boxed values).
    pub fn new(seed: u64) -> Self {
        Self::with_max_depth(seed, 3)
    }

    /// A generator that stops nesting optional values and vectors after `max_depth` levels.
    pub fn with_max_depth(seed: u64, max_depth: u32) -> Self {
        Self {
            state: seed,
            depth: 0,
            max_depth,
        }
    }

    /// The next 64 random bits (SplitMix64).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// Whether an optional field is present: a coin, but always absent once too deep.
    pub fn present(&mut self) -> bool {
        !self.too_deep() && self.coin()
    }

    /// Whether the nesting budget is spent.
    pub fn too_deep(&self) -> bool {
        self.depth >= self.max_depth
    }

    /// Enters a boxed value.
    pub fn enter(&mut self) {
        self.depth += 1;
    }

    /// Leaves a boxed value.
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// A variant index in `0..n`, or `leaf` (the one that ends recursion) once too deep.
    pub fn pick(&mut self, n: usize, leaf: usize) -> usize {
        if self.too_deep() { leaf } else { self.below(n) }
    }

    /// A vector length: 0..=2, or 0 once too deep.
    pub fn vec_len(&mut self) -> usize {
        if self.too_deep() { 0 } else { self.below(3) }
    }

    /// A byte-string length that often crosses TL's 1-byte/4-byte length boundary (254).
    pub fn byte_len(&mut self) -> usize {
        match self.below(8) {
            0 => 250 + self.below(10),
            1 => self.below(600),
            _ => self.below(9),
        }
    }
}

/// A type whose values [`Gen`] can make up.
pub trait Generate: Sized {
    /// A value drawn from `g`.
    fn generate(g: &mut Gen) -> Self;
}

impl Generate for i32 {
    fn generate(g: &mut Gen) -> Self {
        match g.below(4) {
            0 => [0, -1, Self::MIN, Self::MAX]
                .get(g.below(4))
                .copied()
                .unwrap_or(0),
            _ => g.next_u64() as Self,
        }
    }
}

impl Generate for i64 {
    fn generate(g: &mut Gen) -> Self {
        match g.below(4) {
            0 => [0, -1, Self::MIN, Self::MAX]
                .get(g.below(4))
                .copied()
                .unwrap_or(0),
            _ => g.next_u64() as Self,
        }
    }
}

impl Generate for f64 {
    fn generate(g: &mut Gen) -> Self {
        let value = Self::from_bits(g.next_u64());
        // NaN never equals itself, which would fail the value comparison, not the codec.
        if value.is_nan() { 0.5 } else { value }
    }
}

impl Generate for bool {
    fn generate(g: &mut Gen) -> Self {
        g.coin()
    }
}

impl<const N: usize> Generate for [u8; N] {
    fn generate(g: &mut Gen) -> Self {
        let mut out = [0u8; N];
        for byte in &mut out {
            *byte = g.next_u64() as u8;
        }
        out
    }
}

impl Generate for String {
    fn generate(g: &mut Gen) -> Self {
        const CHARS: &[char] = &['a', 'Z', '0', ' ', '\0', 'é', 'я', '中', '😀'];
        let len = g.byte_len() / 2;
        (0..len)
            .map(|_| CHARS.get(g.below(CHARS.len())).copied().unwrap_or('a'))
            .collect()
    }
}

impl Generate for Vec<u8> {
    fn generate(g: &mut Gen) -> Self {
        let len = g.byte_len();
        (0..len).map(|_| g.next_u64() as u8).collect()
    }
}

impl<T: Generate> Generate for Vec<T> {
    fn generate(g: &mut Gen) -> Self {
        let len = g.vec_len();
        (0..len).map(|_| T::generate(g)).collect()
    }
}

impl<T: Generate> Generate for Box<T> {
    fn generate(g: &mut Gen) -> Self {
        Self::new(T::generate(g))
    }
}

impl Generate for RawObject {
    fn generate(g: &mut Gen) -> Self {
        let words = g.below(8);
        Self((0..words * 4).map(|_| g.next_u64() as u8).collect())
    }
}

impl Generate for Message {
    fn generate(g: &mut Gen) -> Self {
        let mut body: Vec<u8> = (0..g.below(6) * 4).map(|_| g.next_u64() as u8).collect();
        if body.get(..4) == Some(&MsgContainer::CONSTRUCTOR_ID.to_le_bytes()[..]) {
            body.clear();
        }
        Self {
            msg_id: i64::generate(g),
            seqno: i32::generate(g),
            body,
        }
    }
}

impl Generate for MsgContainer {
    fn generate(g: &mut Gen) -> Self {
        let len = g.below(4);
        Self {
            messages: (0..len).map(|_| Message::generate(g)).collect(),
        }
    }
}

/// A value that did not survive encoding and decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundTripFailure {
    /// The Rust type involved.
    pub type_name: &'static str,
    /// What went wrong, with the value or bytes involved.
    pub detail: String,
}

impl fmt::Display for RoundTripFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.type_name, self.detail)
    }
}

impl std::error::Error for RoundTripFailure {}

/// Generates a `T`, encodes it, decodes it, and checks that the result equals the value and
/// that nothing was left over.
pub fn check_round_trip<T>(g: &mut Gen) -> Result<(), RoundTripFailure>
where
    T: Generate + Serializable + Deserializable + PartialEq + fmt::Debug,
{
    let type_name = core::any::type_name::<T>();
    let value = T::generate(g);
    let bytes = value.to_bytes();
    let mut r = Reader::new(&bytes);
    let decoded = T::deserialize(&mut r).map_err(|e| RoundTripFailure {
        type_name,
        detail: format!("decode failed: {e}; value {value:?}; bytes {bytes:02x?}"),
    })?;
    if !r.is_empty() {
        return Err(RoundTripFailure {
            type_name,
            detail: format!("{} bytes left over; value {value:?}", r.remaining()),
        });
    }
    if decoded != value {
        return Err(RoundTripFailure {
            type_name,
            detail: format!("decoded {decoded:?}, expected {value:?}"),
        });
    }
    Ok(())
}

/// Decodes a `T` from the start of `input`; if that succeeds, checks that re-encoding gives
/// exactly the bytes consumed. `Ok(None)` when `input` does not decode.
pub fn decode_reencode<T>(input: &[u8]) -> Result<Option<usize>, RoundTripFailure>
where
    T: Serializable + Deserializable + fmt::Debug,
{
    let type_name = core::any::type_name::<T>();
    let mut r = Reader::new(input);
    let Ok(value) = T::deserialize(&mut r) else {
        return Ok(None);
    };
    let consumed = r.position();
    let Some(original) = input.get(..consumed) else {
        return Err(RoundTripFailure {
            type_name,
            detail: format!("consumed {consumed} bytes of {}", input.len()),
        });
    };
    let again = value.to_bytes();
    if again != original {
        return Err(RoundTripFailure {
            type_name,
            detail: format!(
                "re-encoded {again:02x?}, decoded from {original:02x?}; value {value:?}"
            ),
        });
    }
    Ok(Some(consumed))
}
