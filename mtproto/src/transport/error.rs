//! Transport errors, split by who is at fault: the peer ([`TransportError`]) or the local
//! caller ([`EncodeError`]).

use super::Framing;

/// The peer sent bytes that break the framing. The stream cannot be resynchronised: close the
/// connection (a server may first send a transport error frame).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A length field above [`Config::max_frame_len`](super::Config::max_frame_len).
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The declared payload length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// A length that no valid frame has: zero, unaligned, or too short for its envelope.
    #[error("invalid frame length {len}")]
    BadLength {
        /// The declared length.
        len: u64,
    },
    /// Full framing: the CRC32 does not match.
    #[error("CRC32 mismatch: frame says {found:#010x}, computed {expected:#010x}")]
    BadCrc {
        /// Computed over the frame.
        expected: u32,
        /// Carried by the frame.
        found: u32,
    },
    /// Full framing: the per-connection sequence number is not the next one.
    #[error("sequence number {found}, expected {expected}")]
    BadSeqno {
        /// The next number due.
        expected: u32,
        /// What the frame carries.
        found: u32,
    },
    /// The connection starts like a protocol this transport does not speak (HTTP, TLS).
    #[error("unsupported protocol at connection start: {0}")]
    UnsupportedProtocol(&'static str),
    /// Server role: a plain connection while the configuration requires obfuscation.
    #[error("plain connection refused: obfuscation is required")]
    ObfuscationRequired,
    /// A frame kind this role never receives (a quick-ack token sent to a server, for example).
    #[error("unexpected frame: {0}")]
    Unexpected(&'static str),
    /// An earlier error made the stream unusable; nothing more is decoded.
    #[error("the transport failed earlier and decodes nothing more")]
    Closed,
}

/// The caller asked for something the framing or role cannot encode. Nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The payload is not a multiple of 4 bytes (required by all but padded intermediate).
    #[error("payload of {len} bytes is not a multiple of 4")]
    Unaligned {
        /// The payload length.
        len: usize,
    },
    /// The payload is empty or longer than the configured limit.
    #[error("payload of {len} bytes is empty or exceeds the limit of {max}")]
    BadSize {
        /// The payload length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The framing has no quick acks (full).
    #[error("the {0:?} framing has no quick acks")]
    QuickAckUnsupported(Framing),
    /// Quick-ack tokens have their top bit set; this one does not.
    #[error("quick-ack token {0:#010x} lacks its top bit")]
    InvalidQuickAckToken(u32),
    /// The frame kind belongs to the other role (a client sending a quick-ack token, a server
    /// asking for one).
    #[error("this frame cannot be sent by the {0}")]
    WrongRole(&'static str),
    /// Server role: nothing can be sent before the client's first bytes told the framing.
    #[error("the framing is not known yet: the client has not spoken")]
    NotDetected,
}
