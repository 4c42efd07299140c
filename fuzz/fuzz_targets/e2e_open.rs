//! Opens secret-chat messages against a fixed chat key.
//!
//! The first byte picks a mode:
//! - even: the rest is a message as a relay could send it, with the key's fingerprint written
//!   over its first 8 bytes (so that it reaches the decryption). It must never panic and never
//!   be accepted from either side: accepting bytes that `encrypt` did not produce would be a
//!   forgery.
//! - odd: the rest is a payload (cut to a multiple of 4), its last two bytes a position and a
//!   bit pattern. The payload is encrypted by the creator's side; if the pattern is non-zero
//!   one byte is flipped. Decryption must give back exactly the payload of the untouched
//!   message, and refuse every altered one.

#![no_main]

use columba_mtproto::e2e::cipher::{self, ChatKey, Side};
use libfuzzer_sys::fuzz_target;
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

fn key() -> ChatKey {
    ChatKey::from_bytes(core::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(3)))
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let key = key();
    if mode % 2 == 0 {
        let mut message = rest.to_vec();
        if let Some(head) = message.get_mut(..8) {
            head.copy_from_slice(&key.fingerprint().to_le_bytes());
        }
        for side in [Side::Creator, Side::Participant] {
            let result = cipher::decrypt(&key, side, &message);
            assert!(result.is_err(), "accepted a message never encrypted: {result:?}");
        }
        return;
    }
    let [payload @ .., position, flip] = rest else { return };
    let payload = &payload[..payload.len() / 4 * 4];
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(*mode));
    let mut message = cipher::encrypt(&key, Side::Creator, payload, &mut rng).expect("encrypts");
    let tampered = *flip != 0;
    if tampered {
        let at = usize::from(*position) % message.len();
        message[at] ^= *flip;
    }
    match cipher::decrypt(&key, Side::Creator, &message) {
        Ok(opened) => {
            assert!(!tampered, "accepted an altered message");
            assert_eq!(opened, payload);
        }
        Err(error) => assert!(tampered, "refused an intact message: {error}"),
    }
});
