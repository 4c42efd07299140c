//! Key derivation: msg_key, the MTProto 2.0 message keys, and the handshake's derived values.
//!
//! From <https://core.telegram.org/mtproto/description> (message key and KDF) and
//! <https://core.telegram.org/mtproto/auth_key> (temporary key, new_nonce hashes, first salt).

use sha1::{Digest, Sha1};
use sha2::Sha256;
use zeroize::Zeroize;

use super::AuthKey;

/// Which way a message travels; it selects the auth-key bytes each direction uses (x = 0 from
/// client to server, x = 8 from server to client), so that a message cannot be reflected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server, x = 0.
    ClientToServer,
    /// Server to client, x = 8.
    ServerToClient,
}

impl Direction {
    fn x(self) -> usize {
        match self {
            Self::ClientToServer => 0,
            Self::ServerToClient => 8,
        }
    }
}

/// An AES-256 key and IGE IV, wiped from memory on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKeyIv {
    /// The AES-256 key.
    pub key: [u8; 32],
    /// The IGE IV.
    pub iv: [u8; 32],
}

impl Drop for AesKeyIv {
    fn drop(&mut self) {
        self.key.zeroize();
        self.iv.zeroize();
    }
}

impl core::fmt::Debug for AesKeyIv {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AesKeyIv { .. }")
    }
}

/// msg_key_large = SHA-256(auth_key[88 + x .. 120 + x] ‖ plaintext), over the whole padded
/// plaintext. Its bytes 8..24 are the msg_key; its first 4 bytes make the quick-ack token.
pub fn msg_key_large(auth_key: &AuthKey, direction: Direction, plaintext: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(auth_key.slice(88 + direction.x(), 32));
    hasher.update(plaintext);
    hasher.finalize().into()
}

/// Decrypts an encrypted message's body in place with `keys` and returns its msg_key_large,
/// in one pass where the CPU allows (the hash of each 64 bytes overlaps the decryption of the
/// next). Equivalent to [`decrypt_ige`](super::decrypt_ige) then [`msg_key_large`].
pub fn decrypt_and_msg_key_large(
    auth_key: &AuthKey,
    direction: Direction,
    keys: &AesKeyIv,
    ciphertext: &mut [u8],
) -> Result<[u8; 32], super::IgeError> {
    if ciphertext.len() % 16 != 0 {
        return Err(super::IgeError::Unaligned {
            len: ciphertext.len(),
        });
    }
    if let (Some(cpu), true) = (super::x86::AesNi::detect(), ciphertext.len() >= 32) {
        let mut prefix = [0u8; 32];
        prefix.copy_from_slice(auth_key.slice(88 + direction.x(), 32));
        return Ok(super::x86::ige_decrypt_hash(
            cpu, ciphertext, &keys.key, &keys.iv, &prefix,
        ));
    }
    super::decrypt_ige(ciphertext, &keys.key, &keys.iv)?;
    Ok(msg_key_large(auth_key, direction, ciphertext))
}

/// msg_key: bytes 8..24 of [`msg_key_large`].
pub fn msg_key(auth_key: &AuthKey, direction: Direction, plaintext: &[u8]) -> [u8; 16] {
    msg_key_from_large(&msg_key_large(auth_key, direction, plaintext))
}

/// Bytes 8..24 of a msg_key_large.
pub fn msg_key_from_large(large: &[u8; 32]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&large[8..24]);
    out
}

/// The quick-ack token of a message: the first 32 bits of msg_key_large, little-endian, with
/// the top bit set.
pub fn quick_ack_token(large: &[u8; 32]) -> u32 {
    u32::from_le_bytes([large[0], large[1], large[2], large[3]]) | 0x8000_0000
}

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
pub(crate) const SHA256_H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The one padded block of a 52-byte message (`first ‖ second`).
fn padded_52(first: &[u8], second: &[u8]) -> [u8; 64] {
    let mut block = [0u8; 64];
    let (head, _) = block.split_at_mut(52);
    if first.len() + second.len() == 52 {
        let (a, b) = head.split_at_mut(first.len());
        a.copy_from_slice(first);
        b.copy_from_slice(second);
    }
    block[52] = 0x80;
    block[56..].copy_from_slice(&(52u64 * 8).to_be_bytes());
    block
}

/// A SHA-256 state as the big-endian digest bytes.
pub(crate) fn digest_bytes(state: [u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// SHA-256 of two independent 52-byte messages, each one compression of a block padded by
/// hand. With SHA-NI both compressions run interleaved; otherwise one after the other. The
/// KDF's two inputs are always 16 + 36 or 36 + 16 bytes.
fn sha256_52_twice(a: (&[u8], &[u8]), b: (&[u8], &[u8])) -> ([u8; 32], [u8; 32]) {
    let block_a = padded_52(a.0, a.1);
    let block_b = padded_52(b.0, b.1);
    let mut state_a = SHA256_H0;
    let mut state_b = SHA256_H0;
    match super::x86::ShaNi::detect() {
        Some(cpu) => {
            super::x86::sha256_compress_two(cpu, [&mut state_a, &mut state_b], [&block_a, &block_b])
        }
        None => {
            sha2::compress256(&mut state_a, &[block_a.into()]);
            sha2::compress256(&mut state_b, &[block_b.into()]);
        }
    }
    (digest_bytes(state_a), digest_bytes(state_b))
}

/// The MTProto 2.0 KDF: the AES key and IV of a message from the auth key and its msg_key.
pub fn message_key_iv(auth_key: &AuthKey, msg_key: &[u8; 16], direction: Direction) -> AesKeyIv {
    let x = direction.x();
    // sha256_a = SHA256(msg_key ‖ auth_key[x .. x + 36]),
    // sha256_b = SHA256(auth_key[40 + x .. 76 + x] ‖ msg_key).
    let (a, b) = sha256_52_twice(
        (msg_key, auth_key.slice(x, 36)),
        (auth_key.slice(40 + x, 36), msg_key),
    );
    let mut out = AesKeyIv {
        key: [0; 32],
        iv: [0; 32],
    };
    out.key[..8].copy_from_slice(&a[..8]);
    out.key[8..24].copy_from_slice(&b[8..24]);
    out.key[24..].copy_from_slice(&a[24..]);
    out.iv[..8].copy_from_slice(&b[..8]);
    out.iv[8..24].copy_from_slice(&a[8..24]);
    out.iv[24..].copy_from_slice(&b[24..]);
    out
}

/// The handshake's temporary AES key and IV, which protect server_DH_inner_data and
/// client_DH_inner_data:
/// `key = SHA1(new_nonce ‖ server_nonce) ‖ SHA1(server_nonce ‖ new_nonce)[0..12]`,
/// `iv = SHA1(server_nonce ‖ new_nonce)[12..20] ‖ SHA1(new_nonce ‖ new_nonce) ‖ new_nonce[0..4]`.
pub fn handshake_key_iv(new_nonce: &[u8; 32], server_nonce: &[u8; 16]) -> AesKeyIv {
    let ns: [u8; 20] = Sha1::new()
        .chain_update(new_nonce)
        .chain_update(server_nonce)
        .finalize()
        .into();
    let sn: [u8; 20] = Sha1::new()
        .chain_update(server_nonce)
        .chain_update(new_nonce)
        .finalize()
        .into();
    let nn: [u8; 20] = Sha1::new()
        .chain_update(new_nonce)
        .chain_update(new_nonce)
        .finalize()
        .into();
    let mut out = AesKeyIv {
        key: [0; 32],
        iv: [0; 32],
    };
    out.key[..20].copy_from_slice(&ns);
    out.key[20..].copy_from_slice(&sn[..12]);
    out.iv[..8].copy_from_slice(&sn[12..]);
    out.iv[8..28].copy_from_slice(&nn);
    out.iv[28..].copy_from_slice(&new_nonce[..4]);
    out
}

/// new_nonce_hash1/2/3: the lower 128 bits of SHA1(new_nonce ‖ number ‖ auth_key_aux_hash),
/// with number 1 for dh_gen_ok, 2 for dh_gen_retry, 3 for dh_gen_fail.
pub fn new_nonce_hash(new_nonce: &[u8; 32], number: u8, aux_hash: &[u8; 8]) -> [u8; 16] {
    let digest: [u8; 20] = Sha1::new()
        .chain_update(new_nonce)
        .chain_update([number])
        .chain_update(aux_hash)
        .finalize()
        .into();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[4..]);
    out
}

/// The first server salt: new_nonce[0..8] XOR server_nonce[0..8], as a little-endian `long`.
pub fn first_server_salt(new_nonce: &[u8; 32], server_nonce: &[u8; 16]) -> i64 {
    let mut salt = [0u8; 8];
    for ((byte, a), b) in salt.iter_mut().zip(new_nonce).zip(server_nonce) {
        *byte = a ^ b;
    }
    i64::from_le_bytes(salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_decrypt_and_hash_matches_two_passes() {
        let key = AuthKey::from_bytes(core::array::from_fn(|i| (i as u8).wrapping_mul(5)));
        for blocks in 0..40usize {
            let plain: Vec<u8> = (0..blocks * 16)
                .map(|i| (i as u8).wrapping_mul(3))
                .collect();
            let keys = message_key_iv(&key, &[7; 16], Direction::ServerToClient);
            let mut cipher = plain.clone();
            super::super::encrypt_ige(&mut cipher, &keys.key, &keys.iv).unwrap();
            let mut one = cipher.clone();
            let hash = decrypt_and_msg_key_large(&key, Direction::ServerToClient, &keys, &mut one)
                .unwrap();
            assert_eq!(one, plain, "{blocks} blocks");
            assert_eq!(
                hash,
                msg_key_large(&key, Direction::ServerToClient, &plain),
                "{blocks} blocks"
            );
        }
    }

    #[test]
    fn two_lane_sha256_matches_the_general_digest() {
        for seed in 0..64u8 {
            let x: Vec<u8> = (0..52u8)
                .map(|i| i.wrapping_mul(13).wrapping_add(seed))
                .collect();
            let y: Vec<u8> = (0..52u8)
                .map(|i| i.wrapping_mul(seed).wrapping_add(7))
                .collect();
            let (hx, hy) = sha256_52_twice((&x[..16], &x[16..]), (&y[..36], &y[36..]));
            assert_eq!(hx, <[u8; 32]>::from(Sha256::digest(&x)));
            assert_eq!(hy, <[u8; 32]>::from(Sha256::digest(&y)));
        }
    }
}
