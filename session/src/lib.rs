//! The MTProto session layer of Columba, for both roles.
//!
//! One sans-IO state machine per session and role: [`ServerSession`] and [`ClientSession`].
//! The caller opens and seals the encrypted envelopes (`columba_mtproto::message`) and passes
//! time in; the sessions do the rest of the protocol: msg_id generation and checking, seq_no,
//! salts, acks, containers, `gzip_packed`, `rpc_result` correlation, every service message,
//! re-sends under new msg_ids, and time-offset correction. Every refusal maps to what the
//! spec says the peer gets (a bad_msg_notification code, a transport error, or a silent
//! drop) and is counted in [`SessionStats`].
//!
//! Above the sessions, still sans-IO: a [`ServerConnection`] per byte stream (framing,
//! key exchanges, quick acks, opening and sealing) and the [`Endpoint`] that routes opened
//! messages to sessions by key and session id and holds the server's key cache, told about
//! keys by the driver (it never calls a store). Around them, behind the `tokio` feature, the
//! runtime that drives both over real byte streams.
//!
//! It is not a codec (framing and TL live in `columba-mtproto`) and not storage (the
//! persistence traits live in `columba-store`).
//!
//! Modules:
//! - [`server`] and [`client`]: the two roles of a session.
//! - [`connection`]: one connection's protocol below the sessions, in each role.
//! - [`endpoint`]: the server's sessions and key cache; requests out as events, answers and
//!   updates in, messages out per connection, the sessions' timers.
//! - [`plugins`]: the traits an application implements ([`plugins::Service`],
//!   [`plugins::PushProvider`], [`plugins::CodeSender`], [`plugins::UpdateBus`]).
//! - `runtime` (feature `tokio`): the server's accept loop and connection tasks, the client,
//!   and the application's transports (`Listener`, `Connector`).
//! - [`config`]: every limit, with its default and what crossing it costs the peer: msg_id
//!   checks ([`MsgIdPolicy`]: parity, time window, the window of recent ids, seq_no parity
//!   and order, each refusal a [`MsgIdRejection`] with its bad_msg_notification code),
//!   acknowledgements ([`AckPolicy`]: batched by count and delay, at most [`MAX_ACK_IDS`] a
//!   batch), containers (checked on the way in, packed by count and size on the way out).
//! - [`SaltSource`]: server salts derived from a secret per 30-minute slot
//!   ([`SALT_PERIOD`]), with their grace period and `get_future_salts`.
//! - [`rpc`]: `rpc_result`/`rpc_error` and gzip on results.
//! - `testing` (feature `testing`): a deterministic in-memory harness of a client and a
//!   server with a simulated clock and faults.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod ack;
pub mod client;
pub mod config;
pub mod connection;
mod container;
pub mod endpoint;
mod id_map;
mod incoming;
mod msg_id;
mod outbox;
pub mod plugins;
pub mod rpc;
#[cfg(feature = "tokio")]
pub mod runtime;
mod salt;
pub mod server;
pub mod stats;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use ack::{AckPolicy, MAX_ACK_IDS};
pub use client::{ClientEvent, ClientSession, InvokeError, RequestFailure, RequestId};
pub use config::SessionConfig;
pub use connection::{
    ClientCloseReason, ClientConnection, ClientConnectionEvent, CloseReason, ConnectionEvent,
    IncomingMessage, ServerConnection,
};
pub use container::DEFAULT_MAX_CONTAINER_BYTES;
pub use endpoint::{
    ConnectionId, Endpoint, EndpointConfig, EndpointEvent, KeyEntry, KeyLookup, RequestContext,
    SessionKey, key_record, load_key,
};
pub use msg_id::{
    DEFAULT_MAX_FUTURE, DEFAULT_MAX_PAST, DEFAULT_WINDOW, MsgIdPolicy, MsgIdRejection,
};
pub use outbox::BodyBuilder;
pub use rpc::{RpcError, RpcOutcome};
pub use salt::{FutureSalt, MAX_FUTURE_SALTS, SALT_GRACE, SALT_PERIOD, SaltSource};
pub use server::{ServerEvent, ServerSession, StreamPush};
pub use stats::SessionStats;

#[cfg(test)]
mod tests;
