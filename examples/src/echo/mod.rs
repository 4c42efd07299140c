//! The echo server: the stock modules of `columba-api` over RocksDB stores, and a user
//! `@echo` that answers every message with the same text and media.
//!
//! - [`bot`]: the echo user's behaviour (the stock sends, wrapped).
//! - [`botfather`]: `@BotFather`, the bot that makes bots.
//! - `groups`: the echo in basic groups and supergroups, answering what mentions it.
//! - [`secret_peer`]: the echo in secret chats, as a device of its own.
//! - [`users`]: the user store and the echo user in it.
//! - [`secrets`]: the RSA key and the secret behind access hashes.
//! - [`run`]: the data directory, the stores and the runtime put together.

pub mod bot;
pub mod botfather;
mod groups;
pub mod run;
pub mod secret_peer;
pub mod secrets;
pub mod users;

pub use bot::Echo;
pub use run::{
    ECHO_CATCH_UP, EchoOptions, Started, start, start_with, start_with_pusher, start_wrapped,
};
pub use users::{ECHO_USER_ID, ECHO_USERNAME, open_users};

/// The DC this server says it is.
pub const THIS_DC: i32 = 1;
