//! Opens encrypted messages against a fixed auth key.
//!
//! The first byte picks a mode:
//! - even: the rest is a raw frame, opened as it is. It must never panic and never be
//!   accepted: accepting bytes that our own `seal` did not produce would be a forgery.
//! - odd: the rest is a body (truncated to a multiple of 4), its last two bytes a position and
//!   a bit pattern. The body is sealed with the fixed key; if the pattern is non-zero one byte
//!   is flipped. Open must accept exactly the untampered message, give back its header and
//!   body, and reject every tampered one with the one opaque error.

#![no_main]

use bytes::BytesMut;
use columba_mtproto::crypto::{AuthKey, Direction};
use columba_mtproto::message::{ENCRYPTED_HEADROOM, EncryptedHeader, OpenError, Padding, open, seal};
use libfuzzer_sys::fuzz_target;
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

fn key() -> AuthKey {
    AuthKey::from_bytes(core::array::from_fn(|i| (i as u8).wrapping_mul(31).wrapping_add(7)))
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let key = key();
    if mode % 2 == 0 {
        let mut frame = rest.to_vec();
        for direction in [Direction::ClientToServer, Direction::ServerToClient] {
            frame.copy_from_slice(rest);
            let result = open(&mut frame, &key, direction);
            assert!(result.is_err(), "accepted a frame that was never sealed: {result:?}");
        }
        return;
    }
    let [body @ .., position, flip] = rest else { return };
    let body = &body[..body.len() / 4 * 4];
    let header = EncryptedHeader { salt: 11, session_id: 22, msg_id: 33 << 2, seq_no: 5 };
    let mut buf = BytesMut::zeroed(ENCRYPTED_HEADROOM);
    buf.extend_from_slice(body);
    let padding = Padding::RandomBlocks { max: *mode >> 2 };
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(*mode));
    seal(&mut buf, &key, Direction::ClientToServer, &header, padding, &mut rng).expect("seal");
    if *flip != 0 {
        let at = usize::from(*position) * buf.len() / 256;
        buf[at] ^= flip;
        assert_eq!(open(&mut buf, &key, Direction::ClientToServer), Err(OpenError::Rejected));
    } else {
        let opened = open(&mut buf, &key, Direction::ClientToServer).expect("our own message");
        assert_eq!(opened.header, header);
        assert_eq!(opened.body, body);
    }
});
