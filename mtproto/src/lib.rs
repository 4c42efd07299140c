//! Sans-IO MTProto 2.0: the lowest layer of Columba.
//!
//! Bytes and time go in, frames and values come out. This crate opens no sockets, reads no
//! clock, spawns nothing and uses no async runtime; randomness comes from an RNG the caller
//! passes in. That makes every part of it deterministic under test and usable from any I/O
//! model (tokio, blocking, an event loop, a fuzzer).
//!
//! What it has:
//!
//! - [`tl`]: the TL binary codec and the types generated from the MTProto service schema and
//!   (feature `api`) the Telegram API schema, layer 229;
//! - [`transport`]: MTProto's transports (framings): abridged, intermediate, padded
//!   intermediate and full, each optionally obfuscated, with server-side detection, quick acks
//!   and transport errors;
//! - [`crypto`]: AES-256-IGE, the MTProto 2.0 KDF, auth keys, RSA-2048 and DH on constant-time
//!   arithmetic of its own, pq;
//! - [`message`]: unencrypted and encrypted envelopes;
//! - [`e2e`]: secret chats' end-to-end encryption, layer wrapper and file cipher;
//! - [`handshake`]: the key exchange, server and client, permanent and temporary keys, and the
//!   temporary key's binding;
//! - [`time`]: how time is passed in ([`time::Now`]).
//!
//! What it is not: a session layer (msg_id windows, acks, salts, containers on send: see
//! `columba-session`), storage (`columba-store`), or a network transport. MTProto calls its
//! framings "transports"; where the bytes actually travel (TCP, WebSocket, a test pipe) is the
//! application's business and is called a `Listener`/`Connector` elsewhere in Columba.
//!
//! Nothing a peer sends can panic this crate: the library code is built with `unwrap`,
//! `expect`, `panic` and slice indexing denied, every length is checked before it is used or
//! allocated, and every limit is configurable.
//!
//! # Features
//!
//! - `api`: generate the Telegram API schema (`tl::api`); adds compile time.
//! - `tokio-util`: `tokio_util::codec::{Decoder, Encoder}` for [`transport::Transport`].
//! - `testing`: value generators and round-trip checks for property tests and fuzzing
//!   (unstable).

#![warn(unreachable_pub)]

pub mod crypto;
pub mod e2e;
pub mod handshake;
pub mod message;
pub mod time;
pub mod tl;
pub mod transport;
