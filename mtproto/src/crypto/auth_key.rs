//! The authorization key: 2048 bits shared by client and server, wiped from memory on drop.

use core::fmt;

use sha1::{Digest, Sha1};
use zeroize::Zeroize;

/// A 256-byte MTProto authorization key, with its id and aux hash computed once.
///
/// The key bytes are zeroized when the value is dropped, and `Debug` shows only the id. Copies
/// the caller makes with [`as_bytes`](Self::as_bytes) are the caller's to protect.
#[derive(Clone)]
pub struct AuthKey {
    key: [u8; 256],
    id: [u8; 8],
    aux_hash: [u8; 8],
}

impl AuthKey {
    /// Wraps key bytes (big-endian, as the DH exchange produces them).
    pub fn from_bytes(key: [u8; 256]) -> Self {
        let digest: [u8; 20] = Sha1::digest(key).into();
        let mut id = [0u8; 8];
        let mut aux_hash = [0u8; 8];
        id.copy_from_slice(&digest[12..20]);
        aux_hash.copy_from_slice(&digest[..8]);
        Self { key, id, aux_hash }
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 256] {
        &self.key
    }

    /// auth_key_id: the lower 64 bits of SHA-1(key), i.e. digest bytes 12..20, as they appear
    /// at the start of every encrypted message.
    pub fn id_bytes(&self) -> [u8; 8] {
        self.id
    }

    /// auth_key_id as the little-endian `long` it is on the wire.
    pub fn id(&self) -> i64 {
        i64::from_le_bytes(self.id)
    }

    /// auth_key_aux_hash: the upper 64 bits of SHA-1(key), digest bytes 0..8 (used by the
    /// handshake's new_nonce hashes and retry_id).
    pub fn aux_hash(&self) -> [u8; 8] {
        self.aux_hash
    }

    /// The 32 key bytes at `at..at + 32` for msg_key (`at` = 88 + x) or 36 bytes for the KDF.
    pub(crate) fn slice(&self, at: usize, len: usize) -> &[u8] {
        self.key.get(at..at + len).unwrap_or_default()
    }
}

impl Drop for AuthKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl PartialEq for AuthKey {
    /// Constant time over the key bytes.
    fn eq(&self, other: &Self) -> bool {
        super::ct_eq(&self.key, &other.key)
    }
}

impl Eq for AuthKey {}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthKey {{ id: {:#018x} }}", self.id() as u64)
    }
}
