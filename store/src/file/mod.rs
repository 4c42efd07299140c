//! File parts: Telegram's upload and download rules ([`rules`]). The `FileStore` trait and
//! its backends come with the file-store work.

pub mod rules;

pub use rules::FileError;
