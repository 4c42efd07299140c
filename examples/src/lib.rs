//! Example programs built only on the public APIs of `columba-mtproto`, `columba-session` and
//! `columba-store`; the library part holds what the binaries and their tests share.
//!
//! - [`echo`]: the echo server's application (a subset of the Telegram API over the stores),
//!   and a client of it.
//! - [`cli`]: what the binaries share (arguments, the runtime, the exit status).

pub mod cli;
pub mod echo;
