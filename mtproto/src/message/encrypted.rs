//! Encrypted MTProto 2.0 messages: [`seal`] and [`open`].

use bytes::BytesMut;
use rand_core::RngCore;
use subtle::ConstantTimeEq;

use crate::crypto::{
    AuthKey, Direction, decrypt_and_msg_key_large, encrypt_ige, message_key_iv, msg_key_from_large,
    msg_key_large, quick_ack_token,
};

/// auth_key_id and msg_key, in clear.
const OUTER_LEN: usize = 24;
/// salt, session_id, msg_id, seq_no, length: the encrypted header.
const INNER_LEN: usize = 32;
/// The room [`seal`] needs in front of the body: the outer and the inner header.
pub const ENCRYPTED_HEADROOM: usize = OUTER_LEN + INNER_LEN;
/// The padding MTProto 2.0 requires.
const MIN_PADDING: usize = 12;
const MAX_PADDING: usize = 1024;

/// The encrypted header of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EncryptedHeader {
    /// The server salt.
    pub salt: i64,
    /// The session the message belongs to.
    pub session_id: i64,
    /// The message id.
    pub msg_id: i64,
    /// The message sequence number.
    pub seq_no: i32,
}

/// The caller's buffer cannot be sealed. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The buffer is shorter than [`ENCRYPTED_HEADROOM`].
    #[error("buffer of {len} bytes lacks the {ENCRYPTED_HEADROOM} bytes of headroom")]
    NoHeadroom {
        /// The buffer's length.
        len: usize,
    },
    /// The body is not a multiple of 4 bytes (every TL object is).
    #[error("body of {len} bytes is not a multiple of 4")]
    Unaligned {
        /// The body's length.
        len: usize,
    },
    /// The body does not fit the 32-bit length field.
    #[error("body of {len} bytes is too large")]
    TooLarge {
        /// The body's length.
        len: usize,
    },
}

/// Why an encrypted message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The frame did not authenticate: wrong auth_key_id, wrong msg_key, or a frame too short
    /// or unaligned to be a message. Deliberately one error, whatever the cause.
    #[error("message rejected")]
    Rejected,
    /// Authenticated, but the length field is negative or past the plaintext.
    #[error("length {length} does not fit {available} bytes of plaintext")]
    BadLength {
        /// The length field.
        length: i32,
        /// Plaintext bytes after the header.
        available: usize,
    },
    /// Authenticated, but the length is not a multiple of 4.
    #[error("length {0} is not a multiple of 4")]
    UnalignedLength(i32),
    /// Authenticated, but the padding is outside 12..=1024 bytes.
    #[error("{0} bytes of padding, outside 12..=1024")]
    BadPadding(usize),
}

/// How much padding [`seal`] adds. The bytes are always random; this is about their number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Padding {
    /// 12..=27 bytes: the least that reaches a 16-byte multiple (what TDLib and grammers send).
    #[default]
    Minimal,
    /// The minimum plus 0..=`max` extra 16-byte blocks drawn at random, so that message sizes
    /// reveal less about their content (gotd's option; 12..=267 bytes with `max = 15`). `max`
    /// above 62 is treated as 62, which keeps padding within the spec's 1024 bytes.
    RandomBlocks {
        /// The most extra blocks.
        max: u8,
    },
}

/// An opened message, borrowing its body from the decrypted frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The decrypted header.
    pub header: EncryptedHeader,
    /// The TL object (padding removed).
    pub body: &'a [u8],
    /// The quick-ack token of this message (what a server sends back if asked).
    pub quick_ack_token: u32,
}

/// Seals the message in `buf`: on entry `buf` holds [`ENCRYPTED_HEADROOM`] bytes (any value)
/// followed by the body; on return it holds the whole encrypted message. Random padding (see
/// [`Padding`]) is appended within the buffer's capacity when it has room, so a reused buffer
/// needs no allocation. Returns the message's quick-ack token.
pub fn seal<R: RngCore + ?Sized>(
    buf: &mut BytesMut,
    auth_key: &AuthKey,
    direction: Direction,
    header: &EncryptedHeader,
    padding: Padding,
    rng: &mut R,
) -> Result<u32, SealError> {
    let len = buf.len();
    let body_len = len
        .checked_sub(ENCRYPTED_HEADROOM)
        .ok_or(SealError::NoHeadroom { len })?;
    if body_len % 4 != 0 {
        return Err(SealError::Unaligned { len: body_len });
    }
    let length = i32::try_from(body_len).map_err(|_| SealError::TooLarge { len: body_len })?;

    let mut inner = [0u8; INNER_LEN];
    inner[..8].copy_from_slice(&header.salt.to_le_bytes());
    inner[8..16].copy_from_slice(&header.session_id.to_le_bytes());
    inner[16..24].copy_from_slice(&header.msg_id.to_le_bytes());
    inner[24..28].copy_from_slice(&header.seq_no.to_le_bytes());
    inner[28..].copy_from_slice(&length.to_le_bytes());
    if let Some(slot) = buf.get_mut(OUTER_LEN..ENCRYPTED_HEADROOM) {
        slot.copy_from_slice(&inner);
    }

    let unpadded = INNER_LEN + body_len;
    let extra_blocks = match padding {
        Padding::Minimal => 0,
        Padding::RandomBlocks { max } => (rng.next_u32() % (u32::from(max.min(62)) + 1)) as usize,
    };
    let padding = MIN_PADDING + (16 - (unpadded + MIN_PADDING) % 16) % 16 + 16 * extra_blocks;
    buf.resize(len + padding, 0);
    if let Some(pad) = buf.get_mut(len..) {
        rng.fill_bytes(pad);
    }

    let plaintext = buf.get_mut(OUTER_LEN..).unwrap_or_default();
    let large = msg_key_large(auth_key, direction, plaintext);
    let msg_key = msg_key_from_large(&large);
    let keys = message_key_iv(auth_key, &msg_key, direction);
    // The plaintext is a multiple of 16 bytes by construction of the padding.
    let _ = encrypt_ige(plaintext, &keys.key, &keys.iv);
    if let Some(outer) = buf.first_chunk_mut::<OUTER_LEN>() {
        outer[..8].copy_from_slice(&auth_key.id_bytes());
        outer[8..].copy_from_slice(&msg_key);
    }
    Ok(quick_ack_token(&large))
}

/// Opens an encrypted message in place: `frame` is decrypted where it lies (its contents are
/// unspecified after an error). `direction` is the sender's: a server opens client messages
/// with [`Direction::ClientToServer`]. Bytes after the last whole 16-byte block (padded
/// intermediate's transport padding) are ignored.
///
/// See the module documentation for the order of checks.
pub fn open<'a>(
    frame: &'a mut [u8],
    auth_key: &AuthKey,
    direction: Direction,
) -> Result<Opened<'a>, OpenError> {
    // Public length checks: the smallest message has 32 bytes of header and 12 of padding,
    // rounded up to 48.
    let blocks = frame.len().saturating_sub(OUTER_LEN) / 16;
    if blocks < 3 {
        return Err(OpenError::Rejected);
    }
    let (outer, rest) = frame.split_at_mut(OUTER_LEN);
    let plaintext = rest.get_mut(..blocks * 16).ok_or(OpenError::Rejected)?;
    let outer: &[u8; OUTER_LEN] = (&*outer).try_into().map_err(|_| OpenError::Rejected)?;
    let (key_id, msg_key) = outer.split_at(8);
    let mut msg_key_arr = [0u8; 16];
    msg_key_arr.copy_from_slice(msg_key);

    // Decrypt everything and hash everything before deciding anything.
    let keys = message_key_iv(auth_key, &msg_key_arr, direction);
    // The plaintext is a whole number of blocks: the length check above made it so.
    let large = decrypt_and_msg_key_large(auth_key, direction, &keys, plaintext)
        .map_err(|_| OpenError::Rejected)?;
    let expected = msg_key_from_large(&large);
    let authentic = key_id.ct_eq(&auth_key.id_bytes()) & expected.ct_eq(&msg_key_arr);
    if !bool::from(authentic) {
        return Err(OpenError::Rejected);
    }

    let plaintext: &'a [u8] = plaintext;
    let word = |at: usize| -> [u8; 8] {
        plaintext
            .get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .unwrap_or_default()
    };
    let half = |at: usize| -> [u8; 4] {
        plaintext
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .unwrap_or_default()
    };
    let header = EncryptedHeader {
        salt: i64::from_le_bytes(word(0)),
        session_id: i64::from_le_bytes(word(8)),
        msg_id: i64::from_le_bytes(word(16)),
        seq_no: i32::from_le_bytes(half(24)),
    };
    let length = i32::from_le_bytes(half(28));
    let available = plaintext.len() - INNER_LEN;
    let body_len = usize::try_from(length)
        .ok()
        .filter(|len| *len <= available)
        .ok_or(OpenError::BadLength { length, available })?;
    if body_len % 4 != 0 {
        return Err(OpenError::UnalignedLength(length));
    }
    let padding = available - body_len;
    if !(MIN_PADDING..=MAX_PADDING).contains(&padding) {
        return Err(OpenError::BadPadding(padding));
    }
    let body = plaintext
        .get(INNER_LEN..INNER_LEN + body_len)
        .ok_or(OpenError::Rejected)?;
    Ok(Opened {
        header,
        body,
        quick_ack_token: quick_ack_token(&large),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

    fn key(seed: u8) -> AuthKey {
        AuthKey::from_bytes(core::array::from_fn(|i| (i as u8).wrapping_mul(seed)))
    }

    const HEADER: EncryptedHeader = EncryptedHeader {
        salt: 7,
        session_id: -3,
        msg_id: 0x6000_0000_0000_0004,
        seq_no: 1,
    };

    fn sealed(body: &[u8], direction: Direction) -> (BytesMut, u32) {
        let mut buf = BytesMut::zeroed(ENCRYPTED_HEADROOM);
        buf.extend_from_slice(body);
        let token = seal(
            &mut buf,
            &key(3),
            direction,
            &HEADER,
            Padding::RandomBlocks { max: 15 },
            &mut ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap();
        (buf, token)
    }

    #[test]
    fn seal_then_open() {
        for direction in [Direction::ClientToServer, Direction::ServerToClient] {
            let (mut buf, token) = sealed(&[1, 2, 3, 4, 5, 6, 7, 8], direction);
            assert_eq!((buf.len() - OUTER_LEN) % 16, 0);
            assert_eq!(&buf[..8], &key(3).id_bytes());
            let opened = open(&mut buf, &key(3), direction).unwrap();
            assert_eq!(opened.header, HEADER);
            assert_eq!(opened.body, &[1, 2, 3, 4, 5, 6, 7, 8]);
            assert_eq!(opened.quick_ack_token, token);
        }
    }

    #[test]
    fn wrong_key_direction_or_length_is_the_one_error() {
        let (buf, _) = sealed(&[0; 16], Direction::ClientToServer);
        assert_eq!(
            open(&mut buf.clone(), &key(5), Direction::ClientToServer),
            Err(OpenError::Rejected)
        );
        assert_eq!(
            open(&mut buf.clone(), &key(3), Direction::ServerToClient),
            Err(OpenError::Rejected)
        );
        assert_eq!(
            open(&mut buf.clone()[..60], &key(3), Direction::ClientToServer),
            Err(OpenError::Rejected)
        );
        assert_eq!(
            open(&mut [0u8; 10], &key(3), Direction::ClientToServer),
            Err(OpenError::Rejected)
        );
        // Transport padding after the message is ignored.
        let mut padded = buf;
        padded.extend_from_slice(&[9; 15]);
        assert!(open(&mut padded, &key(3), Direction::ClientToServer).is_ok());
    }

    /// Encrypts an arbitrary plaintext properly, so that field checks after msg_key run.
    fn authentic(plaintext: &[u8]) -> Vec<u8> {
        let k = key(3);
        let large = msg_key_large(&k, Direction::ClientToServer, plaintext);
        let mk = msg_key_from_large(&large);
        let keys = message_key_iv(&k, &mk, Direction::ClientToServer);
        let mut body = plaintext.to_vec();
        encrypt_ige(&mut body, &keys.key, &keys.iv).unwrap();
        let mut out = k.id_bytes().to_vec();
        out.extend_from_slice(&mk);
        out.extend_from_slice(&body);
        out
    }

    fn plaintext_with(length: i32, total: usize) -> Vec<u8> {
        let mut p = vec![0u8; total];
        p[28..32].copy_from_slice(&length.to_le_bytes());
        p
    }

    #[test]
    fn field_errors_after_authentication_are_typed() {
        let open_it = |p: Vec<u8>| {
            open(&mut authentic(&p), &key(3), Direction::ClientToServer).map(|o| o.body.len())
        };
        assert_eq!(
            open_it(plaintext_with(-4, 64)),
            Err(OpenError::BadLength {
                length: -4,
                available: 32
            })
        );
        assert_eq!(
            open_it(plaintext_with(36, 64)),
            Err(OpenError::BadLength {
                length: 36,
                available: 32
            })
        );
        assert_eq!(
            open_it(plaintext_with(6, 64)),
            Err(OpenError::UnalignedLength(6))
        );
        assert_eq!(
            open_it(plaintext_with(28, 64)),
            Err(OpenError::BadPadding(4))
        );
        assert_eq!(
            open_it(plaintext_with(0, 32 + 1040)),
            Err(OpenError::BadPadding(1040))
        );
        assert_eq!(open_it(plaintext_with(20, 64)), Ok(20));
        assert_eq!(open_it(plaintext_with(0, 32 + 1024)), Ok(0));
    }

    #[test]
    fn seal_refuses_misuse() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut short = BytesMut::zeroed(10);
        assert_eq!(
            seal(
                &mut short,
                &key(3),
                Direction::ClientToServer,
                &HEADER,
                Padding::Minimal,
                &mut rng
            ),
            Err(SealError::NoHeadroom { len: 10 })
        );
        let mut odd = BytesMut::zeroed(ENCRYPTED_HEADROOM + 3);
        assert_eq!(
            seal(
                &mut odd,
                &key(3),
                Direction::ClientToServer,
                &HEADER,
                Padding::Minimal,
                &mut rng
            ),
            Err(SealError::Unaligned { len: 3 })
        );
    }

    #[test]
    fn padding_stays_within_bounds() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        for (policy, most) in [
            (Padding::Minimal, 27),
            (Padding::RandomBlocks { max: 15 }, 267),
            (Padding::RandomBlocks { max: 255 }, 1019),
        ] {
            let mut largest = 0;
            for body in (0..64).step_by(4) {
                for _ in 0..40 {
                    let mut buf = BytesMut::zeroed(ENCRYPTED_HEADROOM + body);
                    seal(
                        &mut buf,
                        &key(3),
                        Direction::ServerToClient,
                        &HEADER,
                        policy,
                        &mut rng,
                    )
                    .unwrap();
                    let padding = buf.len() - ENCRYPTED_HEADROOM - body;
                    assert!((12..=most).contains(&padding), "{policy:?}: {padding}");
                    assert_eq!((buf.len() - OUTER_LEN) % 16, 0);
                    largest = largest.max(padding);
                }
            }
            assert!(
                largest > most - 16,
                "{policy:?} never reached its upper range: {largest}"
            );
        }
    }
}
