//! Example programs built only on the public APIs of `columba-mtproto`, `columba-session` and
//! `columba-store`; the library part holds what the binaries and their tests share.
//!
//! - [`echo`]: the echo server's application (a subset of the Telegram API over the stores).

pub mod echo;
