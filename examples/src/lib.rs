//! Example programs built only on the public APIs of Columba's crates; the library part
//! holds what the binaries and their tests share.
//!
//! - [`echo`]: the echo server (the stock modules of `columba-api` and the `@echo` user).
//! - [`client`]: a client of it over Columba's client runtime (tests, the load generator).
//! - [`cli`]: what the binaries share (arguments, the runtime, the exit status).

pub mod cli;
pub mod client;
pub mod echo;
