//! What can go wrong while decoding TL. Every variant is the peer's fault: the bytes do not
//! form a value of the expected type.

/// A TL value could not be decoded from the given bytes.
///
/// After an error the [`Reader`](super::Reader) that produced it is positioned somewhere inside
/// the value; the whole enclosing message should be treated as malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("unexpected end of input: {needed} more bytes needed, {remaining} left")]
    UnexpectedEnd {
        /// Bytes the next read needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A constructor id that the expected type does not have. Ids are open: this is a value to
    /// report (for example as an unsupported method), not a reason to crash.
    #[error("unknown constructor {id:#010x} for {type_name}")]
    UnknownConstructor {
        /// The TL type that was expected.
        type_name: &'static str,
        /// The id found on the wire.
        id: u32,
    },
    /// A vector declares more items than the remaining bytes could possibly hold, or a negative
    /// count. Checked before anything is allocated.
    #[error("vector declares {declared} items but only {remaining} bytes are left")]
    VectorTooLong {
        /// The declared item count, as sent.
        declared: i32,
        /// Bytes left after the count.
        remaining: usize,
    },
    /// A `Bool` that is neither `boolTrue` nor `boolFalse`.
    #[error("invalid Bool constructor {0:#010x}")]
    InvalidBool(u32),
    /// A `string` that is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A length prefix or padding in a form no conforming encoder produces (a 4-byte length
    /// below 254, a 0xff length byte, non-zero padding). Rejected so that every accepted
    /// value re-encodes to exactly the bytes it came from.
    #[error("non-canonical encoding: {0}")]
    NonCanonical(&'static str),
    /// Flag bits that no field of the constructor uses (a newer layer, or garbage).
    #[error("unknown flag bits {flags:#010x} in {type_name}")]
    UnknownFlags {
        /// The constructor.
        type_name: &'static str,
        /// The whole flags word.
        flags: u32,
    },
    /// Boxed values nested deeper than the reader allows (see
    /// [`Reader::with_max_depth`](super::Reader::with_max_depth)).
    #[error("values nested deeper than {limit}")]
    TooDeep {
        /// The limit in force.
        limit: u32,
    },
    /// Bytes left over after a value that should have filled the whole input.
    #[error("{count} bytes left over after the value")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A length that is negative, unaligned or larger than what contains it.
    #[error("invalid length {0}")]
    InvalidLength(i64),
    /// A protocol limit, such as the 1024 messages of a container, was exceeded.
    #[error("{what}: {value} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// How many were sent.
        value: usize,
        /// The limit.
        limit: usize,
    },
    /// A `msg_container` inside a `msg_container`, which the protocol forbids.
    #[error("a container nested inside a container")]
    NestedContainer,
}
