//! Reads a secret chat's saved state (`SecretChat::load`), as a device reads its own storage
//! back, which may be damaged.
//!
//! Invariants: loading never panics and allocates only what the input holds; whatever loads
//! saves to bytes that load again and save to themselves (the first save may normalise: held
//! messages in order, TL re-encoded).

#![no_main]

use columba_mtproto::e2e::SecretChat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(chat) = SecretChat::load(data) {
        let saved = chat.save();
        let again = SecretChat::load(&saved).expect("a saved chat loads");
        assert_eq!(again.save(), saved);
    }
});
