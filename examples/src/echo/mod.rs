//! The echo server's application: a subset of the Telegram API (layer 229) over Columba's
//! stores, with a user `@echo` that answers every message with the same text and media.
//!
//! - [`users`]: who is registered (phone numbers, the echo user).
//! - [`secrets`]: the RSA key and the secret behind access hashes.
//! - [`tl`]: Telegram objects built from stored records.
//! - [`service`]: the requests and their answers.
//! - [`client`]: a client of it over Columba's client runtime (tests, the load generator).
//! - [`image`]: the size of uploaded photos (JPEG and PNG headers).
//! - [`run`]: the data directory, the stores and the runtime put together.

pub mod client;
pub mod image;
pub mod run;
pub mod secrets;
pub mod service;
pub mod tl;
pub mod users;

pub use run::{EchoOptions, Started, start, start_with};
pub use service::{EchoApp, EchoService, EchoSettings};
