//! Suite `e2e`: secret-chat messages encrypted and decrypted with `columba_mtproto::e2e`
//! against the same work done with grammers-crypto's MTProto 2.0 primitives, which fit a
//! secret message exactly: a secret message is the cloud format with the key fingerprint in
//! place of the auth_key_id, a length word in place of the cloud header, and x = 0 for the
//! chat's creator (grammers' client side), x = 8 for the other side (its server side).
//!
//! Ours pads to size buckets (a 128-byte payload becomes a 192-byte plaintext) where grammers
//! pads to the next block plus 12 to 27 bytes: ours hashes and encrypts more bytes, on purpose.
#![allow(
    clippy::expect_used,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]

use std::hint::black_box;

use columba_mtproto::e2e::cipher::{self, ChatKey, Side as ChatSide};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

use super::{Side, compare};

const PEER: &str = "grammers-crypto 0.11";

pub(crate) fn run() {
    let key_bytes: [u8; 256] = core::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(3));
    let ours_key = ChatKey::from_bytes(key_bytes);
    let peer_key = grammers_crypto::AuthKey::from_bytes(key_bytes);
    // A 128-byte payload (a serialized decryptedMessageLayer, as far as the cipher cares).
    let payload = [0x17u8; 128];
    let mut plaintext = Vec::new();
    plaintext.extend_from_slice(&128u32.to_le_bytes());
    plaintext.extend_from_slice(&payload);

    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut peer_out = grammers_crypto::DequeBuffer::with_capacity(1024, 64);
    compare(
        "e2e_encrypt_128b",
        "messages/s",
        PEER,
        Side::new(1.0, || {
            let data = cipher::encrypt(&ours_key, ChatSide::Creator, &payload, &mut rng);
            black_box(data.is_ok());
        }),
        Side::new(1.0, || {
            peer_out.clear();
            peer_out.extend(plaintext.iter().copied());
            grammers_crypto::encrypt_data_v2(&mut peer_out, &peer_key);
            black_box(&peer_out);
        }),
    );

    // Opening a message of the other side (x = 8, grammers' server side); the same bytes for
    // both, and each checks the length word inside as a secret-chat receiver must.
    let sealed = cipher::encrypt(&ours_key, ChatSide::Participant, &payload, &mut rng)
        .expect("a payload of 128 bytes encrypts");
    let mut peer_in = vec![0u8; sealed.len()];
    compare(
        "e2e_decrypt_128b",
        "messages/s",
        PEER,
        Side::new(1.0, || {
            let opened = cipher::decrypt(&ours_key, ChatSide::Participant, &sealed);
            black_box(opened.is_ok());
        }),
        Side::new(1.0, || {
            peer_in.copy_from_slice(&sealed);
            let opened = grammers_crypto::decrypt_data_v2(&mut peer_in, &peer_key)
                .ok()
                .and_then(|plain| {
                    let length = u32::from_le_bytes(plain.get(..4)?.try_into().ok()?) as usize;
                    let rest = plain.len().checked_sub(4)?;
                    (length % 4 == 0 && (12..=1024).contains(&rest.checked_sub(length)?))
                        .then(|| plain.get(4..4 + length).map(<[u8]>::to_vec))?
                });
            black_box(opened.is_some());
        }),
    );
}
