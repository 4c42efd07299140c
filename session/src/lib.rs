//! The MTProto session layer of Columba, for both roles.
//!
//! This crate will hold one sans-IO state machine per session (msg_id generation and checking,
//! seq_no, salts, acks, containers, `gzip_packed`, `rpc_result` correlation and every service
//! message), an `Endpoint` that routes frames by auth_key_id and session_id, the plug-in traits
//! that applications implement (`Listener`/`Connector`, `PushProvider`, `CodeSender`,
//! `UpdateBus`), and, behind a `tokio` feature, the runtime that drives them.
//!
//! It is not a codec (framing and TL live in `columba-mtproto`) and not storage (the
//! persistence traits live in `columba-store`).
//!
//! What is here so far:
//! - [`msg_id`]: generating msg_ids and seq_no, and checking a peer's (parity, time window, the window of
//!   recent ids, seq_no parity and order, each refusal with its bad_msg_notification code).
//! - [`ack`]: acknowledgements batched by count and delay, at most 8192 ids a batch.
//! - [`container`]: received containers checked (inner ids below the container's, distinct);
//!   outgoing messages packed by count and size.
//! - [`salt`]: server salts derived from a secret per 30-minute slot, with their grace period
//!   and `get_future_salts`.
#![forbid(unsafe_code)]

pub mod ack;
pub mod container;
pub mod msg_id;
pub mod salt;
