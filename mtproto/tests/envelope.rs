//! Encrypted envelopes: round trips, tampering, and a cross-check against an independent
//! implementation (grammers-crypto) in both directions.

#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed assertion or an out-of-range index is a test failure"
)]

use bytes::BytesMut;
use columba_mtproto::crypto::{AuthKey, Direction};
use columba_mtproto::message::{
    ENCRYPTED_HEADROOM, EncryptedHeader, OpenError, Padding, open, seal,
};
use proptest::prelude::*;
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

fn header_strategy() -> impl Strategy<Value = EncryptedHeader> {
    (any::<i64>(), any::<i64>(), any::<i64>(), any::<i32>()).prop_map(
        |(salt, session_id, msg_id, seq_no)| EncryptedHeader {
            salt,
            session_id,
            msg_id,
            seq_no,
        },
    )
}

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    (0usize..300).prop_flat_map(|words| proptest::collection::vec(any::<u8>(), words * 4))
}

fn seal_body(
    key: &AuthKey,
    direction: Direction,
    header: &EncryptedHeader,
    body: &[u8],
    seed: u64,
) -> BytesMut {
    let mut buf = BytesMut::zeroed(ENCRYPTED_HEADROOM);
    buf.extend_from_slice(body);
    seal(
        &mut buf,
        key,
        direction,
        header,
        Padding::RandomBlocks { max: 15 },
        &mut ChaCha20Rng::seed_from_u64(seed),
    )
    .unwrap();
    buf
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_messages_round_trip(
        key in any::<[u8; 32]>(),
        header in header_strategy(),
        body in body_strategy(),
        seed in any::<u64>(),
        server in any::<bool>(),
    ) {
        let key = AuthKey::from_bytes(core::array::from_fn(|i| key[i % 32] ^ i as u8));
        let direction = if server { Direction::ServerToClient } else { Direction::ClientToServer };
        let mut frame = seal_body(&key, direction, &header, &body, seed);
        let opened = open(&mut frame, &key, direction).unwrap();
        prop_assert_eq!(opened.header, header);
        prop_assert_eq!(opened.body, &body[..]);
    }

    #[test]
    fn any_tampered_byte_is_rejected_with_the_one_error(
        body in body_strategy(),
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let key = AuthKey::from_bytes([7; 256]);
        let header = EncryptedHeader { salt: 1, session_id: 2, msg_id: 4, seq_no: 1 };
        let mut frame = seal_body(&key, Direction::ClientToServer, &header, &body, 3);
        // Every byte, the auth_key_id included (changing it is also refused).
        let at = index.index(frame.len());
        frame[at] ^= flip;
        prop_assert_eq!(open(&mut frame, &key, Direction::ClientToServer), Err(OpenError::Rejected));
    }

    #[test]
    fn ige_and_batch_match_grammers(
        messages in proptest::collection::vec(
            (any::<[u8; 32]>(), any::<[u8; 32]>(), (0usize..64).prop_flat_map(|b| proptest::collection::vec(any::<u8>(), b * 16))),
            1..12,
        ),
    ) {
        // Single stream, both directions, against grammers' IGE.
        for (key, iv, data) in &messages {
            let mut ours = data.clone();
            columba_mtproto::crypto::encrypt_ige(&mut ours, key, iv).unwrap();
            let mut theirs = data.clone();
            grammers_crypto::aes::ige_encrypt(&mut theirs, key, iv);
            prop_assert_eq!(&ours, &theirs);
            columba_mtproto::crypto::decrypt_ige(&mut ours, key, iv).unwrap();
            prop_assert_eq!(&ours, data);
        }
        // The batch API gives grammers' bytes for every message.
        let mut buffers: Vec<Vec<u8>> = messages.iter().map(|m| m.2.clone()).collect();
        let mut jobs: Vec<columba_mtproto::crypto::IgeJob<'_>> = buffers
            .iter_mut()
            .zip(&messages)
            .map(|(data, (key, iv, _))| columba_mtproto::crypto::IgeJob { data, key, iv })
            .collect();
        columba_mtproto::crypto::encrypt_ige_batch(&mut jobs).unwrap();
        drop(jobs);
        for (ours, (key, iv, data)) in buffers.iter().zip(&messages) {
            let mut theirs = data.clone();
            grammers_crypto::aes::ige_encrypt(&mut theirs, key, iv);
            prop_assert_eq!(ours, &theirs);
        }
    }

    #[test]
    fn grammers_opens_what_we_seal_and_we_open_what_it_seals(
        key in any::<[u8; 32]>(),
        body in body_strategy(),
        seed in any::<u64>(),
    ) {
        let key_bytes: [u8; 256] = core::array::from_fn(|i| key[i % 32].wrapping_add(i as u8));
        let ours = AuthKey::from_bytes(key_bytes);
        let theirs = grammers_crypto::AuthKey::from_bytes(key_bytes);
        let header = EncryptedHeader { salt: 5, session_id: 6, msg_id: 7 << 32 | 1, seq_no: 3 };

        // We seal as a server; grammers' decrypt_data_v2 opens server messages.
        let mut frame = seal_body(&ours, Direction::ServerToClient, &header, &body, seed);
        let plaintext = grammers_crypto::decrypt_data_v2(&mut frame, &theirs)
            .map_err(|e| TestCaseError::fail(format!("grammers refused our message: {e:?}")))?;
        prop_assert_eq!(&plaintext[..8], &5i64.to_le_bytes());
        prop_assert_eq!(&plaintext[28..32], &(body.len() as i32).to_le_bytes());
        prop_assert_eq!(&plaintext[32..32 + body.len()], &body[..]);

        // grammers seals as a client (encrypt_data_v2); we open client messages.
        let mut plain = Vec::new();
        plain.extend_from_slice(&5i64.to_le_bytes());
        plain.extend_from_slice(&6i64.to_le_bytes());
        plain.extend_from_slice(&(7i64 << 32 | 4).to_le_bytes());
        plain.extend_from_slice(&3i32.to_le_bytes());
        plain.extend_from_slice(&(body.len() as i32).to_le_bytes());
        plain.extend_from_slice(&body);
        let mut buffer = grammers_crypto::DequeBuffer::with_capacity(plain.len() + 64, 64);
        buffer.extend(plain.iter().copied());
        grammers_crypto::encrypt_data_v2(&mut buffer, &theirs);
        let mut frame = buffer[..].to_vec();
        let opened = open(&mut frame, &ours, Direction::ClientToServer)
            .map_err(|e| TestCaseError::fail(format!("we refused grammers' message: {e}")))?;
        prop_assert_eq!(opened.header.msg_id, 7i64 << 32 | 4);
        prop_assert_eq!(opened.body, &body[..]);
    }
}
