//! Persistence for Columba: auth keys, messages and file parts.
//!
//! This crate will hold every persistence trait (`AuthKeyStore`, `MessageStore`, `FileStore`)
//! with no storage-engine type in them, an in-memory backend, the sharded RocksDB backend
//! (feature `rocksdb`), and one conformance suite run against every backend. Message semantics
//! are Telegram's: per-user and per-channel boxes with their own ids and pts, idempotent sends
//! keyed by `random_id`, `getHistory` and `getDifference` rules.
//!
//! It is not a protocol crate: message bodies are opaque bytes here. Its contents arrive with
//! the storage work; today it only fixes the crate's place in the workspace.
