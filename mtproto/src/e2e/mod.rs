//! Secret chats: the end-to-end layer of Telegram's MTProto 2.0, for one device.
//!
//! A secret chat is between two devices (authorization keys), not two accounts. The two
//! devices agree on a 2048-bit key by Diffie-Hellman through the server, which relays the public
//! values and, afterwards, opaque encrypted messages; it never holds the key and cannot read,
//! alter, reorder or replay a message without the receiving device noticing
//! (<https://core.telegram.org/api/end-to-end>).
//!
//! This module has the parts that need no I/O:
//!
//! - [`chat`]: one established chat: sending (numbered, wrapped, encrypted, kept for a
//!   `Resend`) and receiving (decrypted, checked, put in order; `Resend` and `NotifyLayer`
//!   handled);
//! - `device` (feature `api`): all secret chats of one device as one state machine: the
//!   key exchange through the relay, the calls to make in order, the events, the saved state
//!   and the queue acknowledged only once saved;
//! - [`cipher`]: message encryption and decryption with the chat key (MTProto 2.0 KDF with
//!   x = 0 for the chat's creator and 8 for the other side), the key fingerprint and the 36-byte
//!   key picture users compare;
//! - [`exchange`]: the Diffie-Hellman exchange of a chat's key (and of each re-key), with the
//!   range checks, the server's random mixed in and the fingerprint compared;
//! - [`layer`]: the `decryptedMessageLayer` wrapper every message travels in;
//! - [`file`]: per-file keys, their fingerprint and the IGE stream chained over a whole file;
//! - [`seq`]: sequence numbers, which make a dropped, repeated, reordered or reflected message
//!   visible, with the messages held behind a hole and the `Resend` requests that fill it.
//!
//! The end-to-end schema itself is generated into [`crate::tl::secret`].
//!
//! # Threat model
//!
//! The relay (the server) is the adversary here: it sees who talks to whom, when, and how
//! much (lengths are rounded up to size buckets to blur that), and it can drop, delay,
//! duplicate, reorder, replay or alter messages. Encryption and the msg_key check make altered
//! or reflected messages fail as one indistinguishable error; the sequence numbers inside the
//! wrapper make drops, replays and reordering visible. Users who compare the key picture out
//! of band rule out a relay in the middle of the key exchange; the 64-bit key fingerprint
//! alone does not.

pub mod chat;
pub mod cipher;
#[cfg(feature = "api")]
pub mod device;
pub mod exchange;
pub mod file;
pub mod layer;
pub mod seq;

pub use chat::{ChatError, ChatLimits, Dropped, LoadError, Outgoing, Received, SecretChat};
pub use cipher::{ChatKey, E2eError, Side};
#[cfg(feature = "api")]
pub use device::{CloseReason, DeviceError, Event, Rpc, Saved, SecretChats};
pub use exchange::{ExchangeError, KeyRequest};
pub use file::{FileCipher, FileError, FileKey};
pub use layer::{LayerError, Layered};
pub use seq::{Arrival, SeqError, Sequence};
