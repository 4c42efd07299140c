//! A cursor over borrowed bytes that never panics and never reads past its input.

use super::DecodeError;

/// Reads TL values from a byte slice.
///
/// Every read checks the remaining length first and fails with a typed [`DecodeError`]; nothing
/// indexes the slice directly. The reader also counts how deeply boxed values are nested, so
/// that a peer cannot exhaust the stack with a deeply recursive object (the API schema has
/// recursive types such as `RichText` and `PageBlock`).
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    depth: u32,
    max_depth: u32,
}

impl<'a> Reader<'a> {
    /// How deeply boxed values may nest by default. Real Telegram objects stay well below it
    /// (an update holding a message with a web page, its page blocks and styled text is about
    /// a dozen levels).
    pub const DEFAULT_MAX_DEPTH: u32 = 32;

    /// A reader over `data` with the default nesting limit.
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            depth: 0,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }

    /// Sets how deeply boxed values may nest before [`DecodeError::TooDeep`].
    #[must_use]
    pub fn with_max_depth(mut self, max_depth: u32) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `len` bytes, borrowed from the input.
    pub fn read_slice(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(len);
        match end.and_then(|end| self.data.get(self.pos..end)) {
            Some(slice) => {
                self.pos += len;
                Ok(slice)
            }
            None => Err(DecodeError::UnexpectedEnd {
                needed: len,
                remaining: self.remaining(),
            }),
        }
    }

    /// The next `N` bytes as an array (`int128` is `[u8; 16]`, `int256` is `[u8; 32]`).
    pub fn read_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let slice = self.read_slice(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    /// A little-endian `u32` (constructor ids, flags).
    pub fn read_u32(&mut self) -> Result<u32, DecodeError> {
        self.read_array().map(u32::from_le_bytes)
    }

    /// A little-endian `int`.
    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        self.read_array().map(i32::from_le_bytes)
    }

    /// A little-endian `long`.
    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        self.read_array().map(i64::from_le_bytes)
    }

    /// A little-endian IEEE 754 `double`.
    pub fn read_f64(&mut self) -> Result<f64, DecodeError> {
        self.read_array().map(f64::from_le_bytes)
    }

    /// The next `u32` without consuming it.
    pub fn peek_u32(&self) -> Option<u32> {
        let end = self.pos.checked_add(4)?;
        let bytes = self.data.get(self.pos..end)?;
        let mut word = [0u8; 4];
        word.copy_from_slice(bytes);
        Some(u32::from_le_bytes(word))
    }

    /// A TL `bytes`/`string` payload: a 1-byte length (0..=253) or 0xfe and a 3-byte length
    /// (254 and above), the data, then zero padding to a multiple of 4. Only the canonical form
    /// is accepted (see [`DecodeError::NonCanonical`]).
    pub fn read_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let [first] = self.read_array::<1>()?;
        let (header, len) = match first {
            0..=253 => (1usize, usize::from(first)),
            254 => {
                let [a, b, c] = self.read_array::<3>()?;
                let len = u32::from_le_bytes([a, b, c, 0]) as usize;
                if len < 254 {
                    return Err(DecodeError::NonCanonical(
                        "4-byte length for fewer than 254 bytes",
                    ));
                }
                (4, len)
            }
            255 => return Err(DecodeError::NonCanonical("length byte 0xff")),
        };
        let data = self.read_slice(len)?;
        let padding = (4 - (header + len) % 4) % 4;
        if self.read_slice(padding)?.iter().any(|&b| b != 0) {
            return Err(DecodeError::NonCanonical("non-zero padding"));
        }
        Ok(data)
    }

    /// Everything not read yet; the reader is then empty.
    pub fn read_rest(&mut self) -> &'a [u8] {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        self.pos = self.data.len();
        rest
    }

    /// Reads a constructor id and checks that it is `id`.
    pub fn expect_constructor(
        &mut self,
        id: u32,
        type_name: &'static str,
    ) -> Result<(), DecodeError> {
        let found = self.read_u32()?;
        if found == id {
            Ok(())
        } else {
            Err(DecodeError::UnknownConstructor {
                type_name,
                id: found,
            })
        }
    }

    /// Enters one level of nesting; fails once the limit is reached. Generated code calls it
    /// for every boxed value; a hand-written recursive type should too.
    pub fn enter(&mut self) -> Result<(), DecodeError> {
        if self.depth >= self.max_depth {
            return Err(DecodeError::TooDeep {
                limit: self.max_depth,
            });
        }
        self.depth += 1;
        Ok(())
    }

    /// Leaves a level entered with [`enter`](Self::enter).
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_fail_without_moving() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(
            r.read_u32(),
            Err(DecodeError::UnexpectedEnd {
                needed: 4,
                remaining: 3
            })
        );
        assert_eq!(r.position(), 0);
        assert!(r.read_slice(usize::MAX).is_err());
        assert_eq!(r.read_slice(3).unwrap(), &[1, 2, 3]);
        assert!(r.is_empty());
    }

    #[test]
    fn bytes_short_and_long_forms() {
        let mut r = Reader::new(&[3, b'a', b'b', b'c']);
        assert_eq!(r.read_bytes().unwrap(), b"abc");
        let mut long = vec![254, 0, 1, 0];
        long.extend(std::iter::repeat_n(7u8, 256));
        let mut r = Reader::new(&long);
        assert_eq!(r.read_bytes().unwrap().len(), 256);
        assert!(r.is_empty());
    }

    #[test]
    fn non_canonical_bytes_are_rejected() {
        // 4-byte form for a short string.
        let mut r = Reader::new(&[254, 3, 0, 0, b'a', b'b', b'c', 0]);
        assert!(matches!(r.read_bytes(), Err(DecodeError::NonCanonical(_))));
        // Non-zero padding.
        let mut r = Reader::new(&[1, b'a', 0, 9]);
        assert!(matches!(r.read_bytes(), Err(DecodeError::NonCanonical(_))));
        // 0xff length byte.
        let mut r = Reader::new(&[255, 0, 0, 0]);
        assert!(matches!(r.read_bytes(), Err(DecodeError::NonCanonical(_))));
        // A declared length beyond the input.
        let mut r = Reader::new(&[254, 0xff, 0xff, 0xff, 1, 2]);
        assert!(matches!(
            r.read_bytes(),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
    }

    #[test]
    fn depth_is_limited() {
        let mut r = Reader::new(&[]).with_max_depth(2);
        r.enter().unwrap();
        r.enter().unwrap();
        assert_eq!(r.enter(), Err(DecodeError::TooDeep { limit: 2 }));
        r.leave();
        r.enter().unwrap();
    }
}
