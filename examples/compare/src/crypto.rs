//! Suite `crypto`: AES-256-IGE and whole MTProto 2.0 envelopes against grammers-crypto, with
//! the same inputs on both sides.

use std::hint::black_box;

use bytes::BytesMut;
use columba_mtproto::crypto::{self, AuthKey, Direction, IgeJob};
use columba_mtproto::message::{ENCRYPTED_HEADROOM, EncryptedHeader, Padding, open, seal};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

use super::{Side, compare};

const PEER: &str = "grammers-crypto 0.11";
const MIB: usize = 1 << 20;

fn megabytes(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

pub(crate) fn run() {
    let key = [0x42u8; 32];
    let iv = [0x24u8; 32];

    // Single stream over 1 MiB.
    let mut ours_buf = vec![0x5au8; MIB];
    let mut peer_buf = vec![0x5au8; MIB];
    compare(
        "ige_encrypt_1mib",
        "MB/s",
        PEER,
        Side::new(megabytes(MIB), || {
            let _ = crypto::encrypt_ige(black_box(&mut ours_buf), &key, &iv);
        }),
        Side::new(megabytes(MIB), || {
            grammers_crypto::aes::ige_encrypt(black_box(&mut peer_buf), &key, &iv)
        }),
    );
    compare(
        "ige_decrypt_1mib",
        "MB/s",
        PEER,
        Side::new(megabytes(MIB), || {
            let _ = crypto::decrypt_ige(black_box(&mut ours_buf), &key, &iv);
        }),
        Side::new(megabytes(MIB), || {
            grammers_crypto::aes::ige_decrypt(black_box(&mut peer_buf), &key, &iv)
        }),
    );

    // Eight independent 4 KiB messages with their own keys: our batch API against the peer's
    // single stream over the same bytes.
    let keys: Vec<[u8; 32]> = (0..8u8).map(|i| [i.wrapping_mul(37); 32]).collect();
    let ivs: Vec<[u8; 32]> = (0..8u8).map(|i| [i.wrapping_mul(11); 32]).collect();
    let mut ours_msgs = vec![vec![0x33u8; 4096]; 8];
    let mut peer_msgs = vec![vec![0x33u8; 4096]; 8];
    compare(
        "ige_batch_8x4kib",
        "MB/s",
        PEER,
        Side::new(megabytes(8 * 4096), || {
            let mut jobs: [IgeJob<'_>; 8] = {
                let mut it = ours_msgs.iter_mut().zip(keys.iter().zip(&ivs));
                std::array::from_fn(|_| match it.next() {
                    Some((data, (key, iv))) => IgeJob { data, key, iv },
                    None => IgeJob {
                        data: &mut [],
                        key: &[0; 32],
                        iv: &[0; 32],
                    },
                })
            };
            let _ = crypto::encrypt_ige_batch(black_box(&mut jobs));
        }),
        Side::new(megabytes(8 * 4096), || {
            for (data, (key, iv)) in peer_msgs.iter_mut().zip(keys.iter().zip(&ivs)) {
                grammers_crypto::aes::ige_encrypt(black_box(data), key, iv);
            }
        }),
    );

    // Whole envelopes of a 128-byte body: KDF, msg_key, padding, IGE. grammers seals client
    // messages and opens server messages, so each side does the same direction as the peer.
    let key_bytes: [u8; 256] = core::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(3));
    let ours_key = AuthKey::from_bytes(key_bytes);
    let peer_key = grammers_crypto::AuthKey::from_bytes(key_bytes);
    let body = [0x17u8; 128];
    let header = EncryptedHeader {
        salt: 1,
        session_id: 2,
        msg_id: 0x6000_0000_0000_0004,
        seq_no: 1,
    };
    let mut plaintext = Vec::new();
    plaintext.extend_from_slice(&1i64.to_le_bytes());
    plaintext.extend_from_slice(&2i64.to_le_bytes());
    plaintext.extend_from_slice(&0x6000_0000_0000_0004i64.to_le_bytes());
    plaintext.extend_from_slice(&1i32.to_le_bytes());
    plaintext.extend_from_slice(&128i32.to_le_bytes());
    plaintext.extend_from_slice(&body);

    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut ours_out = BytesMut::with_capacity(1024);
    let mut peer_out = grammers_crypto::DequeBuffer::with_capacity(1024, 64);
    compare(
        "encrypt_msg_128b",
        "messages/s",
        PEER,
        Side::new(1.0, || {
            ours_out.clear();
            ours_out.resize(ENCRYPTED_HEADROOM, 0);
            ours_out.extend_from_slice(&body);
            let _ = seal(
                &mut ours_out,
                &ours_key,
                Direction::ClientToServer,
                &header,
                Padding::Minimal,
                &mut rng,
            );
            black_box(&ours_out);
        }),
        Side::new(1.0, || {
            peer_out.clear();
            peer_out.extend(plaintext.iter().copied());
            grammers_crypto::encrypt_data_v2(&mut peer_out, &peer_key);
            black_box(&peer_out);
        }),
    );

    // Opening a server message (the same sealed bytes for both sides, copied in first).
    let mut sealed = BytesMut::zeroed(ENCRYPTED_HEADROOM);
    sealed.extend_from_slice(&body);
    let _ = seal(
        &mut sealed,
        &ours_key,
        Direction::ServerToClient,
        &header,
        Padding::Minimal,
        &mut rng,
    );
    let mut ours_in = vec![0u8; sealed.len()];
    let mut peer_in = vec![0u8; sealed.len()];
    compare(
        "decrypt_msg_128b",
        "messages/s",
        PEER,
        Side::new(1.0, || {
            ours_in.copy_from_slice(&sealed);
            let opened = open(&mut ours_in, &ours_key, Direction::ServerToClient);
            black_box(opened.is_ok());
        }),
        Side::new(1.0, || {
            peer_in.copy_from_slice(&sealed);
            let opened = grammers_crypto::decrypt_data_v2(&mut peer_in, &peer_key);
            black_box(opened.is_ok());
        }),
    );
}
