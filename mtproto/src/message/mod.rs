//! Message envelopes: unencrypted messages (the handshake) and encrypted MTProto 2.0 messages.
//!
//! ```text
//! unencrypted: auth_key_id = 0 (8) | msg_id (8) | length (4) | body
//! encrypted:   auth_key_id (8) | msg_key (16) | AES-256-IGE( salt (8) | session_id (8) |
//!              msg_id (8) | seq_no (4) | length (4) | body | padding 12..1024 )
//! ```
//!
//! [`seal`] builds an encrypted message in the caller's buffer, which holds
//! [`ENCRYPTED_HEADROOM`] bytes of room followed by the body; [`open`] checks and decrypts one
//! in place. Neither allocates: with a reused buffer, the steady state makes no heap
//! allocation per message (a test counts them).
//!
//! # The order of checks in [`open`]
//!
//! As TDLib does and <https://core.telegram.org/mtproto/security_guidelines> asks: the frame's
//! length is checked (it is public), then every block is decrypted and the whole plaintext is
//! hashed, and the msg_key is compared in constant time. Every failure up to and including
//! that comparison (wrong auth_key_id, wrong msg_key, a frame too short or unaligned) is the
//! same [`OpenError::Rejected`], with no exit between decryption and the comparison, so that
//! nothing about the plaintext leaks before it is authenticated. Only then are the fields read,
//! and their errors are typed (the session layer answers some of them).

mod encrypted;
mod plain;

pub use encrypted::{
    ENCRYPTED_HEADROOM, EncryptedHeader, OpenError, Opened, Padding, SealError, open, seal,
};
pub use plain::{PLAIN_HEADER_LEN, PlainError, PlainMessage, read_plain, write_plain};
