//! Binding a temporary key to a permanent one: `auth.bindTempAuthKey`
//! (core.telegram.org/method/auth.bindTempAuthKey).
//!
//! The client sends, over the temporary key, `auth.bindTempAuthKey(perm_auth_key_id, nonce,
//! expires_at, encrypted_message)`. `encrypted_message` proves possession of the permanent key:
//! it is `bind_auth_key_inner(nonce, temp_auth_key_id, perm_auth_key_id, temp_session_id,
//! expires_at)` encrypted "the usual way, but with MTProto v1" under the permanent key:
//! `random:int128 + msg_id + seqno (0) + length (40) + inner`, msg_key = the low 128 bits of
//! SHA1 of that (before padding), padding to 16 bytes, the v1 SHA-1 key derivation with x = 0,
//! AES-256-IGE, and `perm_auth_key_id + msg_key` in front. The msg_id is the one of the
//! `auth.bindTempAuthKey` request itself.
//!
//! [`verify_binding`] checks all of it for the server: the permanent key decrypts the message,
//! msg_key matches (constant time), and every field agrees with the outer request and the
//! connection (temporary key, session, msg_id). Recording the binding, and refusing expired or
//! unbound temporary keys afterwards, is the key store's work (`columba-store`'s
//! `AuthKeyStore`).

use rand_core::{CryptoRng, RngCore};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::crypto::{AesKeyIv, AuthKey, ct_eq, decrypt_ige, encrypt_ige};
use crate::tl::mtproto::{enums, types};
use crate::tl::{Deserializable, Serializable};

/// Length of the binding plaintext before padding: random (16), msg_id (8), seqno (4),
/// length (4), bind_auth_key_inner (40).
const PLAINTEXT_LEN: usize = 72;
/// Padded to a multiple of 16.
const PADDED_LEN: usize = 80;
/// perm_auth_key_id (8) + msg_key (16) + ciphertext.
pub const ENCRYPTED_MESSAGE_LEN: usize = 24 + PADDED_LEN;
/// bind_auth_key_inner's serialized length.
const INNER_LEN: i32 = 40;

/// The parameters of an `auth.bindTempAuthKey` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindRequest {
    /// The permanent key's id.
    pub perm_auth_key_id: i64,
    /// A random number, repeated inside the encrypted message.
    pub nonce: i64,
    /// When the binding (and the temporary key) expires, Unix seconds.
    pub expires_at: i32,
    /// The binding message encrypted with the permanent key.
    pub encrypted_message: Vec<u8>,
}

#[cfg(feature = "api")]
impl From<crate::tl::api::functions::auth::BindTempAuthKey> for BindRequest {
    fn from(function: crate::tl::api::functions::auth::BindTempAuthKey) -> Self {
        Self {
            perm_auth_key_id: function.perm_auth_key_id,
            nonce: function.nonce,
            expires_at: function.expires_at,
            encrypted_message: function.encrypted_message,
        }
    }
}

#[cfg(feature = "api")]
impl BindRequest {
    /// The `auth.bindTempAuthKey` function to send (over the temporary key).
    pub fn to_function(&self) -> crate::tl::api::functions::auth::BindTempAuthKey {
        crate::tl::api::functions::auth::BindTempAuthKey {
            perm_auth_key_id: self.perm_auth_key_id,
            nonce: self.nonce,
            expires_at: self.expires_at,
            encrypted_message: self.encrypted_message.clone(),
        }
    }
}

/// A binding the server verified; store it with the key store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedBinding {
    /// The temporary key.
    pub temp_auth_key_id: i64,
    /// The permanent key it now stands for.
    pub perm_auth_key_id: i64,
    /// When the binding expires, Unix seconds.
    pub expires_at: i64,
}

/// Why a binding was refused; the names are the RPC errors Telegram answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// `ENCRYPTED_MESSAGE_INVALID`: the message does not decrypt under the permanent key, or
    /// a field inside disagrees with the request or the connection.
    #[error("ENCRYPTED_MESSAGE_INVALID")]
    EncryptedMessageInvalid,
    /// `EXPIRES_AT_INVALID`: already past, or later than the temporary key may live.
    #[error("EXPIRES_AT_INVALID")]
    ExpiresAtInvalid,
}

impl BindError {
    /// The RPC error code and message to answer with.
    pub fn rpc_error(&self) -> (i32, &'static str) {
        match self {
            Self::EncryptedMessageInvalid => (400, "ENCRYPTED_MESSAGE_INVALID"),
            Self::ExpiresAtInvalid => (400, "EXPIRES_AT_INVALID"),
        }
    }
}

/// MTProto v1's key derivation (x = 0, client to server), kept only for the binding message.
fn v1_key_iv(auth_key: &AuthKey, msg_key: &[u8; 16]) -> AesKeyIv {
    let part = |start: usize, len: usize| {
        auth_key
            .as_bytes()
            .get(start..start + len)
            .unwrap_or_default()
    };
    let sha1 = |pieces: &[&[u8]]| {
        let mut hasher = Sha1::new();
        for piece in pieces {
            hasher.update(piece);
        }
        let digest: [u8; 20] = hasher.finalize().into();
        Zeroizing::new(digest)
    };
    let a = sha1(&[msg_key, part(0, 32)]);
    let b = sha1(&[part(32, 16), msg_key, part(48, 16)]);
    let c = sha1(&[part(64, 32), msg_key]);
    let d = sha1(&[msg_key, part(96, 32)]);
    // aes_key = a[0..8] + b[8..20] + c[4..16]; aes_iv = a[8..20] + b[0..8] + c[16..20] + d[0..8].
    let pieces = |parts: [(&[u8; 20], usize, usize); 4]| {
        let mut out = [0u8; 32];
        let mut at = 0;
        for (digest, start, end) in parts {
            let piece = digest.get(start..end).unwrap_or_default();
            if let Some(slot) = out.get_mut(at..at + piece.len()) {
                slot.copy_from_slice(piece);
            }
            at += piece.len();
        }
        out
    };
    let key = pieces([(&a, 0, 8), (&b, 8, 20), (&c, 4, 16), (&d, 0, 0)]);
    let iv = pieces([(&a, 8, 20), (&b, 0, 8), (&c, 16, 20), (&d, 0, 8)]);
    AesKeyIv { key, iv }
}

/// Builds the `auth.bindTempAuthKey` parameters (client side). `msg_id` must be the msg_id
/// the request will be sent with, and `temp_session_id` the session it is sent in.
pub fn bind_temp_auth_key<R: RngCore + CryptoRng + ?Sized>(
    perm_key: &AuthKey,
    temp_key: &AuthKey,
    temp_session_id: i64,
    msg_id: i64,
    expires_at: i32,
    rng: &mut R,
) -> BindRequest {
    let nonce = i64::from_le_bytes({
        let mut bytes = [0u8; 8];
        rng.fill_bytes(&mut bytes);
        bytes
    });
    let inner = types::BindAuthKeyInner {
        nonce,
        temp_auth_key_id: temp_key.id(),
        perm_auth_key_id: perm_key.id(),
        temp_session_id,
        expires_at,
    };
    let mut plain = Zeroizing::new(Vec::with_capacity(PADDED_LEN));
    let mut random = [0u8; 16];
    rng.fill_bytes(&mut random);
    plain.extend_from_slice(&random);
    plain.extend_from_slice(&msg_id.to_le_bytes());
    plain.extend_from_slice(&0i32.to_le_bytes());
    plain.extend_from_slice(&INNER_LEN.to_le_bytes());
    inner.serialize(&mut *plain);
    let digest = Sha1::digest(plain.as_slice());
    let mut msg_key = [0u8; 16];
    msg_key.copy_from_slice(digest.get(4..20).unwrap_or(&[0; 16]));
    let mut padding = [0u8; PADDED_LEN - PLAINTEXT_LEN];
    rng.fill_bytes(&mut padding);
    plain.extend_from_slice(&padding);
    let key_iv = v1_key_iv(perm_key, &msg_key);
    // 80 bytes: a multiple of 16.
    let _ = encrypt_ige(&mut plain, &key_iv.key, &key_iv.iv);
    let mut encrypted_message = Vec::with_capacity(ENCRYPTED_MESSAGE_LEN);
    encrypted_message.extend_from_slice(&perm_key.id_bytes());
    encrypted_message.extend_from_slice(&msg_key);
    encrypted_message.extend_from_slice(&plain);
    BindRequest {
        perm_auth_key_id: perm_key.id(),
        nonce,
        expires_at,
        encrypted_message,
    }
}

/// Verifies a binding (server side).
///
/// - `perm_key`: the key named by `request.perm_auth_key_id` (looked up by the caller);
/// - `temp_auth_key_id`, `temp_session_id`, `msg_id`: the key, session and msg_id the request
///   arrived with;
/// - `temp_key_expires_at`: the temporary key's own expiry from its handshake, which the
///   binding may not outlive;
/// - `now_unix`: the current time.
pub fn verify_binding(
    perm_key: &AuthKey,
    request: &BindRequest,
    temp_auth_key_id: i64,
    temp_session_id: i64,
    msg_id: i64,
    temp_key_expires_at: Option<i64>,
    now_unix: i64,
) -> Result<VerifiedBinding, BindError> {
    let invalid = BindError::EncryptedMessageInvalid;
    if request.perm_auth_key_id != perm_key.id()
        || request.encrypted_message.len() != ENCRYPTED_MESSAGE_LEN
    {
        return Err(invalid);
    }
    let (key_id, rest) = request.encrypted_message.split_at(8);
    let (msg_key, ciphertext) = rest.split_at(16);
    let msg_key: [u8; 16] = msg_key.try_into().map_err(|_| invalid)?;
    if key_id != perm_key.id_bytes() {
        return Err(invalid);
    }
    let key_iv = v1_key_iv(perm_key, &msg_key);
    let mut plain = Zeroizing::new(ciphertext.to_vec());
    decrypt_ige(&mut plain, &key_iv.key, &key_iv.iv).map_err(|_| invalid)?;
    let digest = Sha1::digest(plain.get(..PLAINTEXT_LEN).unwrap_or_default());
    if !ct_eq(digest.get(4..20).unwrap_or_default(), &msg_key) {
        return Err(invalid);
    }
    // Authentic from here on: the fields may be read.
    let field = |start: usize| -> [u8; 8] {
        let mut out = [0u8; 8];
        out.copy_from_slice(plain.get(start..start + 8).unwrap_or(&[0; 8]));
        out
    };
    let inner_msg_id = i64::from_le_bytes(field(16));
    let seq_and_len = field(24);
    let (seq_no, length) = seq_and_len.split_at(4);
    if inner_msg_id != msg_id || seq_no != [0; 4] || length != INNER_LEN.to_le_bytes() {
        return Err(invalid);
    }
    let inner =
        enums::BindAuthKeyInner::from_bytes(plain.get(32..PLAINTEXT_LEN).unwrap_or_default())
            .map_err(|_| invalid)?;
    let enums::BindAuthKeyInner::BindAuthKeyInner(inner) = inner;
    if inner.nonce != request.nonce
        || inner.temp_auth_key_id != temp_auth_key_id
        || inner.perm_auth_key_id != request.perm_auth_key_id
        || inner.temp_session_id != temp_session_id
        || inner.expires_at != request.expires_at
    {
        return Err(invalid);
    }
    let expires_at = i64::from(request.expires_at);
    if expires_at <= now_unix || temp_key_expires_at.is_some_and(|limit| expires_at > limit) {
        return Err(BindError::ExpiresAtInvalid);
    }
    Ok(VerifiedBinding {
        temp_auth_key_id,
        perm_auth_key_id: request.perm_auth_key_id,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn keys() -> (AuthKey, AuthKey) {
        let mut perm = [0u8; 256];
        let mut temp = [0u8; 256];
        for (i, (p, t)) in perm.iter_mut().zip(temp.iter_mut()).enumerate() {
            *p = i as u8;
            *t = (i as u8).wrapping_mul(7).wrapping_add(1);
        }
        (AuthKey::from_bytes(perm), AuthKey::from_bytes(temp))
    }

    #[test]
    fn a_binding_verifies_and_every_field_matters() {
        let (perm, temp) = keys();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let request = bind_temp_auth_key(
            &perm,
            &temp,
            77,
            0x1234_5678_0000_0004,
            2_000_000_000,
            &mut rng,
        );
        assert_eq!(request.encrypted_message.len(), ENCRYPTED_MESSAGE_LEN);
        let ok = verify_binding(
            &perm,
            &request,
            temp.id(),
            77,
            0x1234_5678_0000_0004,
            None,
            1_900_000_000,
        )
        .unwrap();
        assert_eq!(
            ok,
            VerifiedBinding {
                temp_auth_key_id: temp.id(),
                perm_auth_key_id: perm.id(),
                expires_at: 2_000_000_000
            }
        );

        let check = |req: &BindRequest, temp_id, session, msg_id, limit, now| {
            verify_binding(&perm, req, temp_id, session, msg_id, limit, now)
        };
        let invalid = Err(BindError::EncryptedMessageInvalid);
        assert_eq!(
            check(&request, temp.id() ^ 1, 77, 0x1234_5678_0000_0004, None, 0),
            invalid
        );
        assert_eq!(
            check(&request, temp.id(), 78, 0x1234_5678_0000_0004, None, 0),
            invalid
        );
        assert_eq!(
            check(&request, temp.id(), 77, 0x1234_5678_0000_0008, None, 0),
            invalid
        );
        let mut other_nonce = request.clone();
        other_nonce.nonce ^= 1;
        assert_eq!(
            check(&other_nonce, temp.id(), 77, 0x1234_5678_0000_0004, None, 0),
            invalid
        );
        let mut other_expiry = request.clone();
        other_expiry.expires_at += 1;
        assert_eq!(
            check(&other_expiry, temp.id(), 77, 0x1234_5678_0000_0004, None, 0),
            invalid
        );
        for index in [0, 8, 30, 103] {
            let mut flipped = request.clone();
            flipped.encrypted_message[index] ^= 0x80;
            assert_eq!(
                check(&flipped, temp.id(), 77, 0x1234_5678_0000_0004, None, 0),
                invalid,
                "{index}"
            );
        }
        // The wrong permanent key.
        assert_eq!(
            verify_binding(
                &temp,
                &request,
                temp.id(),
                77,
                0x1234_5678_0000_0004,
                None,
                0
            ),
            invalid
        );
        // Expiry: in the past, or beyond the temporary key's own expiry.
        assert_eq!(
            check(
                &request,
                temp.id(),
                77,
                0x1234_5678_0000_0004,
                None,
                2_000_000_000
            ),
            Err(BindError::ExpiresAtInvalid)
        );
        assert_eq!(
            check(
                &request,
                temp.id(),
                77,
                0x1234_5678_0000_0004,
                Some(1_999_999_999),
                0
            ),
            Err(BindError::ExpiresAtInvalid)
        );
    }
}
