//! Secret-chat message encryption: MTProto 2.0 applied end to end.
//!
//! An encrypted secret message is `key_fingerprint (8) ‖ msg_key (16) ‖ AES-256-IGE(plaintext)`,
//! where the plaintext is `length (4, little-endian) ‖ payload ‖ padding (12..=1024 bytes)`, a
//! whole number of 16-byte blocks, and msg_key is bytes 8..24 of
//! `SHA-256(key[88 + x .. 120 + x] ‖ plaintext)`. The AES key and IV come from the same KDF as
//! cloud messages. `x` is 0 for messages written by the chat's creator and 8 for the other side,
//! so that a message reflected back to its writer fails its msg_key check
//! (<https://core.telegram.org/api/end-to-end>).
//!
//! Opening follows TDLib's order: the whole ciphertext is decrypted and hashed, msg_key is
//! compared in constant time, and only then are the length and padding looked at; every failure
//! from the msg_key check on is the one [`E2eError::Undecryptable`], so that a relay probing
//! with altered messages learns nothing from which check refused them.

use rand_core::{CryptoRng, RngCore};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use zeroize::Zeroize;

use crate::crypto::{self, AuthKey, Direction};

/// Bytes before the ciphertext: the key fingerprint and msg_key.
pub const HEADER_LEN: usize = 8 + 16;
/// The fewest padding bytes a plaintext carries.
pub const MIN_PADDING: usize = 12;
/// The most padding bytes a plaintext may carry.
pub const MAX_PADDING: usize = 1024;
/// The longest payload [`encrypt`] takes: with its header, length word and the most padding,
/// the message still fits a TL byte string.
pub const MAX_PAYLOAD_LEN: usize = crate::tl::MAX_BYTES_LEN - HEADER_LEN - 4 - MAX_PADDING;
/// The shortest encrypted message: the header and one padded plaintext of 16 bytes
/// (4 bytes of length and 12 of padding).
pub const MIN_MESSAGE_LEN: usize = HEADER_LEN + 16;

/// Padded plaintext sizes a message is rounded up to, after TDLib
/// (`td/mtproto/Transport.cpp`, `do_calc_crypto_size2_basic`): hiding the exact length of short
/// messages from the relay. Past the last size, plaintexts grow in steps of
/// [`SIZE_STEP_PAST_BUCKETS`].
const SIZE_BUCKETS: [usize; 9] = [64, 128, 192, 256, 384, 512, 768, 1024, 1280];
/// The step of padded sizes past the last bucket.
const SIZE_STEP_PAST_BUCKETS: usize = 448;

/// Which side of a secret chat wrote a message: it selects `x` in the key derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The user who requested the chat (its "admin"): x = 0.
    Creator,
    /// The user who accepted it: x = 8.
    Participant,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Self {
        match self {
            Self::Creator => Self::Participant,
            Self::Participant => Self::Creator,
        }
    }

    /// The cloud direction with the same `x`: the creator's messages are derived as a client's
    /// (x = 0), the participant's as a server's (x = 8).
    fn direction(self) -> Direction {
        match self {
            Self::Creator => Direction::ClientToServer,
            Self::Participant => Direction::ServerToClient,
        }
    }
}

/// A secret chat's 256-byte shared key, with its fingerprint; wiped from memory on drop, and
/// never printed by `Debug`.
#[derive(Clone)]
pub struct ChatKey {
    key: AuthKey,
}

impl core::fmt::Debug for ChatKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChatKey")
            .field("fingerprint", &format_args!("{:016x}", self.fingerprint()))
            .finish_non_exhaustive()
    }
}

impl ChatKey {
    /// Wraps the 256 bytes of `g^ab mod p`, big-endian and left-padded with zeros.
    pub fn from_bytes(key: [u8; 256]) -> Self {
        Self {
            key: AuthKey::from_bytes(key),
        }
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 256] {
        self.key.as_bytes()
    }

    /// `key_fingerprint`: the low 64 bits of SHA-1(key) (digest bytes 12..20, read as a
    /// little-endian `long`), as the chat and every message carry it. A check against bugs, not
    /// an authentication: two users compare [`visualization`](Self::visualization) instead.
    pub fn fingerprint(&self) -> i64 {
        self.key.id()
    }

    /// The 36 bytes a client shows as the chat's key picture (an image and hex):
    /// `SHA-1(key)[0..16] ‖ SHA-256(key)[0..20]`, for a chat made at layer 46 or later (the
    /// key in use then is the initial key). 288 bits, so that a relay cannot find two key
    /// exchanges with the same picture (<https://core.telegram.org/api/end-to-end/pfs>).
    pub fn visualization(&self) -> [u8; 36] {
        visualization(self, self)
    }

    /// The underlying key, for the KDF.
    pub(crate) fn auth_key(&self) -> &AuthKey {
        &self.key
    }
}

/// The key picture of a chat whose key has been replaced since: SHA-1 of the `initial` key
/// (the first 16 bytes), SHA-256 of the key that was in use when the chat reached layer 46
/// (the first 20). For chats made at layer 46 or later both are the initial key.
pub fn visualization(initial: &ChatKey, at_layer_46: &ChatKey) -> [u8; 36] {
    let sha1: [u8; 20] = Sha1::digest(initial.as_bytes()).into();
    let sha256: [u8; 32] = Sha256::digest(at_layer_46.as_bytes()).into();
    let mut out = [0u8; 36];
    let (first, second) = out.split_at_mut(16);
    first.copy_from_slice(sha1.get(..16).unwrap_or_default());
    second.copy_from_slice(sha256.get(..20).unwrap_or_default());
    out
}

/// Why an encrypted secret message was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum E2eError {
    /// Shorter than any message, or its ciphertext is not a whole number of blocks: refused
    /// before any key is used (these facts are public).
    #[error("encrypted message of {len} bytes is malformed")]
    Malformed {
        /// The message's length.
        len: usize,
    },
    /// Its key fingerprint names another key than the one tried (the fingerprint is public: a
    /// caller with several keys, during a re-key, picks by [`fingerprint_of`]).
    #[error("encrypted message is for key {fingerprint:016x}")]
    OtherKey {
        /// The fingerprint the message carries.
        fingerprint: i64,
    },
    /// Its msg_key does not match the decrypted bytes, or the length or padding inside is wrong.
    /// One error for all of these, on purpose.
    #[error("encrypted message failed its checks")]
    Undecryptable,
    /// The payload to encrypt is longer than a TL byte string can carry.
    #[error("payload of {len} bytes is too long to encrypt")]
    TooLong {
        /// The payload's length.
        len: usize,
    },
}

/// The key fingerprint an encrypted message names, if it is long enough to carry one.
pub fn fingerprint_of(data: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = data.get(..8)?.try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

/// The padded plaintext size for a payload of `payload_len` bytes: the length word, the
/// payload and at least [`MIN_PADDING`] bytes, rounded up to a block and then to a size
/// bucket. The padding stays within `12..=1024` bytes.
pub fn padded_len(payload_len: usize) -> Option<usize> {
    let minimum = 4usize.checked_add(payload_len)?.checked_add(MIN_PADDING)?;
    let blocks = minimum.checked_add(15)? / 16 * 16;
    if let Some(bucket) = SIZE_BUCKETS.iter().find(|&&size| blocks <= size) {
        return Some(*bucket);
    }
    let last = SIZE_BUCKETS.last().copied().unwrap_or(0);
    let beyond = blocks - last;
    let steps = beyond.checked_add(SIZE_STEP_PAST_BUCKETS - 1)? / SIZE_STEP_PAST_BUCKETS;
    last.checked_add(steps.checked_mul(SIZE_STEP_PAST_BUCKETS)?)
}

/// Encrypts `payload` (a serialized `decryptedMessageLayer`) as `writer` of the chat, with
/// random padding up to the next size bucket.
pub fn encrypt<R: RngCore + CryptoRng + ?Sized>(
    key: &ChatKey,
    writer: Side,
    payload: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, E2eError> {
    let too_long = E2eError::TooLong { len: payload.len() };
    let length = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len as usize <= MAX_PAYLOAD_LEN)
        .ok_or(too_long)?;
    let total = padded_len(payload.len()).ok_or(too_long)?;
    let mut plaintext = Vec::with_capacity(total);
    plaintext.extend_from_slice(&length.to_le_bytes());
    plaintext.extend_from_slice(payload);
    let mut padding = vec![0u8; total - plaintext.len()];
    rng.fill_bytes(&mut padding);
    plaintext.extend_from_slice(&padding);
    seal(key, writer, plaintext)
}

/// Encrypts a plaintext already laid out and padded (length word, payload, padding; a whole
/// number of blocks). [`encrypt`] builds the plaintext; this is its second half, and what the
/// known-answer tests drive with fixed padding.
pub fn seal(key: &ChatKey, writer: Side, mut plaintext: Vec<u8>) -> Result<Vec<u8>, E2eError> {
    if plaintext.len() % 16 != 0 || plaintext.len() < 16 {
        return Err(E2eError::Malformed {
            len: plaintext.len(),
        });
    }
    let direction = writer.direction();
    let msg_key = crypto::msg_key(key.auth_key(), direction, &plaintext);
    let keys = crypto::message_key_iv(key.auth_key(), &msg_key, direction);
    crypto::encrypt_ige(&mut plaintext, &keys.key, &keys.iv).map_err(|_| E2eError::Malformed {
        len: plaintext.len(),
    })?;
    let mut data = Vec::with_capacity(HEADER_LEN + plaintext.len());
    data.extend_from_slice(&key.fingerprint().to_le_bytes());
    data.extend_from_slice(&msg_key);
    data.extend_from_slice(&plaintext);
    Ok(data)
}

/// Opens a message written by `writer` of the chat under `key`, and returns its payload (the
/// serialized `decryptedMessageLayer`, without length and padding).
pub fn decrypt(key: &ChatKey, writer: Side, data: &[u8]) -> Result<Vec<u8>, E2eError> {
    let malformed = E2eError::Malformed { len: data.len() };
    if data.len() < MIN_MESSAGE_LEN || (data.len() - HEADER_LEN) % 16 != 0 {
        return Err(malformed);
    }
    let (fingerprint, rest) = data.split_at_checked(8).ok_or(malformed)?;
    let (msg_key, ciphertext) = rest.split_at_checked(16).ok_or(malformed)?;
    let fingerprint = i64::from_le_bytes(fingerprint.try_into().map_err(|_| malformed)?);
    if fingerprint != key.fingerprint() {
        return Err(E2eError::OtherKey { fingerprint });
    }
    let msg_key: [u8; 16] = msg_key.try_into().map_err(|_| malformed)?;
    let direction = writer.direction();
    let keys = crypto::message_key_iv(key.auth_key(), &msg_key, direction);
    let mut plaintext = ciphertext.to_vec();
    let large = crypto::decrypt_and_msg_key_large(key.auth_key(), direction, &keys, &mut plaintext)
        .map_err(|_| malformed)?;
    // From here on every failure is the same error.
    let expected = crypto::msg_key_from_large(&large);
    let authentic = crypto::ct_eq(&expected, &msg_key);
    match (authentic, payload_len(&plaintext)) {
        (true, Some(length)) => {
            // The payload moved to the front in place: no second buffer.
            plaintext.truncate(4 + length);
            plaintext.drain(..4);
            Ok(plaintext)
        }
        _ => {
            // What a forged message decrypted to is noise, but a genuine message with a bad
            // length is not: wipe it either way.
            plaintext.zeroize();
            Err(E2eError::Undecryptable)
        }
    }
}

/// The payload length of a decrypted plaintext, if its length word is a multiple of 4 that
/// fits and leaves 12..=1024 bytes of padding.
fn payload_len(plaintext: &[u8]) -> Option<usize> {
    let (length, rest) = plaintext.split_at_checked(4)?;
    let length = u32::from_le_bytes(length.try_into().ok()?) as usize;
    if length % 4 != 0 || length > rest.len() {
        return None;
    }
    let padding = rest.len() - length;
    (MIN_PADDING..=MAX_PADDING)
        .contains(&padding)
        .then_some(length)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use crate::crypto::tests::hex;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// The key of the reference's vectors: bytes 0..=255.
    fn counting_key() -> ChatKey {
        let mut key = [0u8; 256];
        for (index, byte) in key.iter_mut().enumerate() {
            *byte = index as u8;
        }
        ChatKey::from_bytes(key)
    }

    /// The reference's 80-byte plaintext (`../shared/reference/e2e.md` §1.9): the length 0x38,
    /// a `decryptedMessageLayer` (16 random bytes of 0x11, layer 144, in 0, out 1) around a
    /// `decryptedMessageService` with NotifyLayer(144), then 20 bytes of 0x22 padding.
    fn reference_plaintext() -> Vec<u8> {
        let mut plaintext = hex("38000000");
        plaintext.extend(hex(
            "8917e31b1011111111111111111111111111111111000000900000000000000001000000604116730807060504030201838804f390000000",
        ));
        plaintext.extend([0x22u8; 20]);
        plaintext
    }

    #[test]
    fn fingerprint_and_visualization_known_answers() {
        // Cross-checked by the reference against tg-secret 0.1.3 and Telethon 1.45.
        let key = counting_key();
        assert_eq!(
            key.fingerprint().to_le_bytes().to_vec(),
            hex("32d1586ea457dfc8")
        );
        assert_eq!(key.fingerprint(), -3_972_359_982_579_920_590);
        assert_eq!(
            key.visualization().to_vec(),
            hex("4916d6bdb7f78e6803698cab32d1586e40aff2e9d2d8922e47afd4648e6967497158785f")
        );
    }

    #[test]
    fn creator_side_known_answer() {
        let data = seal(&counting_key(), Side::Creator, reference_plaintext()).unwrap();
        assert_eq!(
            data,
            hex(
                "32d1586ea457dfc8f33f36d130bfa6d9f4fffa4deaf89723e204cd287bd99e633f733977049cbe9073d79f5870dd17736d75e6ecb98cd40973472638644ff6cd679edad9c303f1c952d652e94b3c815daa5680131171fd7b3aa792980edeab20db46214f169566cd"
            )
        );
        let payload = decrypt(&counting_key(), Side::Creator, &data).unwrap();
        assert_eq!(payload, reference_plaintext()[4..60].to_vec());
    }

    #[test]
    fn participant_side_known_answer() {
        let data = seal(&counting_key(), Side::Participant, reference_plaintext()).unwrap();
        assert_eq!(
            data,
            hex(
                "32d1586ea457dfc82582d8349bb9e653ca40370a26599665b83ca49de629848233f2fa9c71ab348b447d1382400caf719e9cd0c4f8ee75a40dc81374f452c54190a4ac6e178430a91d54e4eb87673c54f2d50fa3fd21cd8bbfcb75409455096859f2bce108352560"
            )
        );
    }

    #[test]
    fn a_reflected_message_fails_its_check() {
        // Mirroring: a message the creator wrote, sent back to the creator as if the other
        // side had written it, is derived with the other x and fails.
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let data = encrypt(&counting_key(), Side::Creator, b"abcdefgh", &mut rng).unwrap();
        assert_eq!(
            decrypt(&counting_key(), Side::Participant, &data),
            Err(E2eError::Undecryptable)
        );
        assert_eq!(
            decrypt(&counting_key(), Side::Creator, &data).unwrap(),
            b"abcdefgh".to_vec()
        );
    }

    #[test]
    fn every_altered_byte_is_refused_with_one_error() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let data = encrypt(&counting_key(), Side::Participant, &[7u8; 40], &mut rng).unwrap();
        for index in 8..data.len() {
            let mut altered = data.clone();
            altered[index] ^= 0x01;
            assert_eq!(
                decrypt(&counting_key(), Side::Participant, &altered),
                Err(E2eError::Undecryptable),
                "byte {index}"
            );
        }
        let mut other_key = data;
        other_key[0] ^= 1;
        assert!(matches!(
            decrypt(&counting_key(), Side::Participant, &other_key),
            Err(E2eError::OtherKey { .. })
        ));
    }

    /// Seals a plaintext with a valid msg_key whatever its inside says, to reach the checks
    /// behind the msg_key.
    fn sealed_with(length: u32, payload_and_padding: &[u8]) -> Vec<u8> {
        let mut plaintext = length.to_le_bytes().to_vec();
        plaintext.extend_from_slice(payload_and_padding);
        seal(&counting_key(), Side::Creator, plaintext).unwrap()
    }

    #[test]
    fn length_and_padding_are_checked_after_the_msg_key() {
        // 60 bytes after the length word.
        let body = [0u8; 60];
        // Good: 48 bytes of payload, 12 of padding.
        assert!(decrypt(&counting_key(), Side::Creator, &sealed_with(48, &body)).is_ok());
        // Length not a multiple of 4.
        assert_eq!(
            decrypt(&counting_key(), Side::Creator, &sealed_with(46, &body)),
            Err(E2eError::Undecryptable)
        );
        // Length beyond the plaintext.
        assert_eq!(
            decrypt(&counting_key(), Side::Creator, &sealed_with(64, &body)),
            Err(E2eError::Undecryptable)
        );
        // Padding under 12 bytes.
        assert_eq!(
            decrypt(&counting_key(), Side::Creator, &sealed_with(52, &body)),
            Err(E2eError::Undecryptable)
        );
        // Padding over 1024 bytes.
        // 1052 bytes after the length word: 28 of payload leave 1024 of padding, 24 leave 1028.
        let long = vec![0u8; 1052];
        assert!(decrypt(&counting_key(), Side::Creator, &sealed_with(28, &long)).is_ok());
        assert_eq!(
            decrypt(&counting_key(), Side::Creator, &sealed_with(24, &long)),
            Err(E2eError::Undecryptable)
        );
    }

    #[test]
    fn short_or_unaligned_messages_are_malformed() {
        let key = counting_key();
        for len in [0, 8, 24, 39, 41, 55] {
            assert_eq!(
                decrypt(&key, Side::Creator, &vec![0u8; len]),
                Err(E2eError::Malformed { len })
            );
        }
    }

    #[test]
    fn padded_sizes_follow_the_buckets_and_keep_padding_in_range() {
        assert_eq!(padded_len(0), Some(64));
        assert_eq!(padded_len(48), Some(64));
        assert_eq!(padded_len(49), Some(128));
        assert_eq!(padded_len(1264), Some(1280));
        assert_eq!(padded_len(1265), Some(1728));
        for payload in 0..5000usize {
            let total = padded_len(payload).unwrap();
            let padding = total - 4 - payload;
            assert_eq!(total % 16, 0);
            assert!((MIN_PADDING..=MAX_PADDING).contains(&padding), "{payload}");
        }
    }
}
