//! MTProto transports: how MTProto payloads are framed on a byte stream.
//!
//! <https://core.telegram.org/mtproto/mtproto-transports> defines four framings, all handled
//! here for both roles (what a client encodes, the server decodes, and the reverse):
//!
//! | [`Framing`] | first bytes from the client | envelope |
//! |---|---|---|
//! | [`Abridged`](Framing::Abridged) | `ef` | length/4 in 1 byte, or `7f` + 3 bytes |
//! | [`Intermediate`](Framing::Intermediate) | `ee ee ee ee` | 4-byte length |
//! | [`PaddedIntermediate`](Framing::PaddedIntermediate) | `dd dd dd dd` | 4-byte length, 0..15 random padding bytes |
//! | [`Full`](Framing::Full) | none | length, per-connection seqno, CRC32 |
//!
//! Any of them can be **obfuscated** (obfuscated2): the client starts with a 64-byte random
//! init that carries the framing's tag at offset 56, and AES-256-CTR runs over the rest of the
//! connection in each direction, with an optional MTProxy secret mixed into the keys. A
//! server detects the framing and obfuscation from the first bytes ([`detect`]).
//!
//! Quick acks (a client asks for one by setting a length bit; the server answers with a
//! 4-byte token) exist in the abridged and both intermediate framings; the full framing has
//! none. Transport errors (-404, -429, -444) are 4-byte payloads from the server, decoded as
//! [`Frame::TransportError`].
//!
//! # Shape
//!
//! [`Transport`] follows `tokio_util::codec`: [`Transport::decode`] takes the connection's
//! receive buffer and returns a whole [`Frame`] or `None`, removing bytes from the buffer only
//! together with a whole frame; [`Transport::encode`] appends one frame to a send buffer. With
//! the `tokio-util` feature it also implements `Decoder` and `Encoder` and can sit in a
//! `Framed`. It performs no I/O itself.
//!
//! # Limits and failure
//!
//! A frame longer than [`Config::max_frame_len`] (16 MiB by default) is refused from its
//! length field, before anything is reserved or allocated. Any malformed input (a bad length,
//! CRC or seqno, an HTTP or TLS request) is a [`TransportError`], and the transport refuses to
//! decode anything after it: the stream's framing is lost and the connection must be closed.
//! A server may still encode a transport error frame to send before closing.
//!
//! MTProto calls these framings "transports"; where the bytes travel (TCP, WebSocket, a test
//! pipe) is a different thing, supplied by the application.

mod detect;
mod error;
mod framing;
mod obfuscation;
mod state;
#[cfg(feature = "tokio-util")]
mod tokio_codec;

use bytes::BytesMut;

pub use detect::{Detected, Prefix, detect};
pub use error::{EncodeError, TransportError};
pub use obfuscation::{MtProxy, ObfuscationInit};
pub use state::Transport;
#[cfg(feature = "tokio-util")]
pub use tokio_codec::CodecError;

/// The default limit on one frame's payload: 16 MiB, as in gotd (gotd/td#412: messages larger
/// than 1 MiB exist).
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Transport error code: auth key not found, or a malformed query or handshake.
pub const ERROR_AUTH_KEY_NOT_FOUND: i32 = -404;
/// Transport error code: transport flood, or container/service-message limits reached.
pub const ERROR_FLOOD: i32 = -429;
/// Transport error code: invalid DC.
pub const ERROR_INVALID_DC: i32 = -444;

/// One of MTProto's four framings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    /// 1- or 4-byte length in words; the lightest.
    Abridged,
    /// 4-byte length in bytes.
    Intermediate,
    /// 4-byte length, then 0..15 random padding bytes after the payload.
    PaddedIntermediate,
    /// Length, per-connection sequence number and CRC32.
    Full,
}

impl Framing {
    /// All four framings.
    pub const ALL: [Self; 4] = [
        Self::Abridged,
        Self::Intermediate,
        Self::PaddedIntermediate,
        Self::Full,
    ];

    /// The 4-byte tag as written in an obfuscated init at offset 56 (`None` for full, which has
    /// no tag).
    pub fn obfuscated_tag(self) -> Option<[u8; 4]> {
        match self {
            Self::Abridged => Some([0xef; 4]),
            Self::Intermediate => Some([0xee; 4]),
            Self::PaddedIntermediate => Some([0xdd; 4]),
            Self::Full => None,
        }
    }

    /// The bytes a client sends first on a plain (not obfuscated) connection.
    pub fn plain_tag(self) -> &'static [u8] {
        match self {
            Self::Abridged => &[0xef],
            Self::Intermediate => &[0xee; 4],
            Self::PaddedIntermediate => &[0xdd; 4],
            Self::Full => &[],
        }
    }

    /// Whether a client can ask for quick acks in this framing.
    pub fn has_quick_ack(self) -> bool {
        !matches!(self, Self::Full)
    }
}

/// Which end of the connection a [`Transport`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends the tag or init first; may ask for quick acks; receives quick-ack tokens and
    /// transport errors.
    Client,
    /// Detects the framing from the first bytes; answers quick acks; sends transport errors.
    Server,
}

/// Limits and options shared by both roles.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest payload accepted or sent, in bytes. Checked against length fields before
    /// anything is allocated.
    pub max_frame_len: usize,
    /// Server role: refuse plain (not obfuscated) connections.
    pub require_obfuscation: bool,
    /// Server role: the MTProxy secret that obfuscated clients mix into their keys. With a
    /// secret set, obfuscated clients that do not use it cannot connect.
    pub mtproxy_secret: Option<[u8; 16]>,
}

impl Config {
    /// The default options with another frame limit.
    pub fn with_max_frame_len(max_frame_len: usize) -> Self {
        Self {
            max_frame_len,
            ..Self::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            require_obfuscation: false,
            mtproxy_secret: None,
        }
    }
}

/// How a client connects.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The framing to use.
    pub framing: Framing,
    /// Whether to obfuscate the connection.
    pub obfuscated: bool,
    /// Connect through an MTProxy (implies obfuscation).
    pub mtproxy: Option<MtProxy>,
    /// Limits.
    pub config: Config,
}

impl ClientConfig {
    /// A plain or obfuscated connection with the default limits.
    pub fn new(framing: Framing, obfuscated: bool) -> Self {
        Self {
            framing,
            obfuscated,
            mtproxy: None,
            config: Config::default(),
        }
    }
}

/// A frame taken off the stream.
///
/// Exhaustive on purpose: these are all the kinds of frame MTProto's transports carry, and a
/// driver must handle each one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// An MTProto payload (an encrypted or unencrypted message).
    ///
    /// With padded intermediate, `data` ends with the sender's 0..15 padding bytes: the framing
    /// cannot tell them apart from the payload, and the message layer ignores them (an
    /// encrypted message's size is 24 + 16k; an unencrypted one states its length).
    Payload {
        /// The payload, cut from the receive buffer without copying.
        data: BytesMut,
        /// Server role: the client asked for a quick ack of this payload.
        quick_ack: bool,
    },
    /// Client role: a quick-ack token from the server (its top bit is set).
    QuickAck(u32),
    /// Client role: a transport error from the server, such as -404.
    TransportError(i32),
}

/// A frame to put on the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outgoing<'a> {
    /// An MTProto payload; `quick_ack` asks the server for a quick ack (client role only).
    Payload {
        /// The payload (a multiple of 4 bytes for every framing but padded intermediate).
        data: &'a [u8],
        /// Ask for a quick ack.
        quick_ack: bool,
    },
    /// Server role: a quick-ack token (top bit set) answering a payload.
    QuickAck(u32),
    /// Server role: a transport error code such as [`ERROR_AUTH_KEY_NOT_FOUND`].
    TransportError(i32),
}
