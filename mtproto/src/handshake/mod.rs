//! Authorization-key creation (core.telegram.org/mtproto/auth_key), both roles, sans-IO.
//!
//! [`ServerHandshake`] and [`ClientHandshake`] are state machines: unencrypted messages (the
//! payload of a transport frame) go in, unencrypted messages come out. The caller passes the
//! time ([`Now`]) and a cryptographic RNG into every step, so a test with a seeded RNG and a
//! fixed clock replays the same bytes. Neither machine panics or allocates without bound on
//! what a peer sends; every check fails with a [`HandshakeError`] that says which rule broke.
//!
//! The exchange:
//!
//! ```text
//! client                                   server
//! req_pq_multi(nonce)                 -->
//!                                     <--  resPQ(nonce, server_nonce, pq, fingerprints)
//! req_DH_params(p, q, fingerprint,
//!   RSA(p_q_inner_data*))             -->
//!                                     <--  server_DH_params_ok(AES(g, dh_prime, g_a, time))
//! set_client_DH_params(AES(g_b))      -->
//!                                          (caller checks the new auth_key_id is unused)
//!                                     <--  dh_gen_ok | dh_gen_retry | dh_gen_fail
//! ```
//!
//! Server-side rules, from the spec and the security guidelines: a fresh random `pq` per
//! handshake; `p`, `q`, `pq`, `nonce` and `server_nonce` must be the ones issued; RSA_PAD's
//! SHA-256 and the client's SHA-1 are compared in constant time; g_b must lie in
//! `[2^1984, p - 2^1984]`; an auth_key_id that is already in use gets `dh_gen_retry` (the
//! machine asks its caller through [`ServerEvent::CheckAuthKeyId`], since the key store is
//! not this crate's business). After any bad query, the machine is poisoned: that query and
//! every later one get [`HandshakeError::transport_error`], -404 (or -444 for a client that
//! asked for a test DC on a production server, or the reverse). A deadline and a cap on
//! attempts bound what one connection can cost.
//!
//! Client-side rules: every check of core.telegram.org/mtproto/security_guidelines (safe
//! 2048-bit prime, cached; g in 2..=7 with its condition; g_a and g_b ranges; the SHA-1 of the
//! answer with at most 15 bytes of padding; every nonce and new_nonce_hash) and the time
//! offset from server_time.
//!
//! Temporary keys (perfect forward secrecy) come from the same exchange with
//! `p_q_inner_data_temp_dc`; [`bind`] builds and verifies `auth.bindTempAuthKey`'s binding
//! message.

pub mod bind;
mod client;
mod error;
mod server;

pub use client::{ClientConfig, ClientEvent, ClientHandshake, ClientKey};
pub use error::HandshakeError;
pub use server::{
    DEFAULT_DEADLINE, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_RETRIES, DEFAULT_MAX_TEMP_KEY_LIFETIME,
    NewAuthKey, ServerConfig, ServerEvent, ServerHandshake,
};

pub use crate::time::Now;

use bytes::BytesMut;
use rand_core::{CryptoRng, RngCore};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::crypto::{AesKeyIv, ct_eq, decrypt_ige, encrypt_ige};
use crate::message::write_plain;
use crate::tl::{Deserializable, Reader};

/// What kind of key a handshake creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A permanent key (`p_q_inner_data_dc`).
    Permanent,
    /// A temporary key for perfect forward secrecy (`p_q_inner_data_temp_dc`), valid for
    /// `expires_in` seconds.
    Temporary {
        /// Seconds the key should live.
        expires_in: i32,
    },
}

/// Dangerous settings: only for tests and for talking to old peers.
pub mod danger {
    pub use crate::crypto::RsaEncoding;

    /// Which inner-data constructor a client sends. Current clients send the `_dc` forms;
    /// the forms without `dc` exist so that a server can be tested against old clients.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum InnerDataForm {
        /// `p_q_inner_data_dc` / `p_q_inner_data_temp_dc` (the default).
        WithDc,
        /// `p_q_inner_data` / `p_q_inner_data_temp`.
        WithoutDc,
    }
}

/// Wraps a TL body in an unencrypted message.
pub(crate) fn plain_message(msg_id: i64, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(crate::message::PLAIN_HEADER_LEN + body.len());
    write_plain(msg_id, body, &mut out);
    out.to_vec()
}

/// `SHA1(object) + object + 0..15 random bytes` to a multiple of 16, AES-256-IGE encrypted
/// with the handshake's temporary key.
pub(crate) fn encrypt_with_hash<R: RngCore + CryptoRng + ?Sized>(
    object: &[u8],
    key_iv: &AesKeyIv,
    rng: &mut R,
) -> Vec<u8> {
    let unpadded = 20 + object.len();
    let total = unpadded.div_ceil(16) * 16;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&Sha1::digest(object));
    out.extend_from_slice(object);
    let mut padding = [0u8; 16];
    rng.fill_bytes(&mut padding);
    out.extend_from_slice(padding.get(..total - unpadded).unwrap_or_default());
    // The length is a multiple of 16 by construction.
    let _ = encrypt_ige(&mut out, &key_iv.key, &key_iv.iv);
    out
}

/// Inverts [`encrypt_with_hash`] for an object of type `T`: the SHA-1 must match (constant
/// time) and the padding must be at most 15 bytes. Returns the object and its bytes.
pub(crate) fn decrypt_with_hash<T: Deserializable>(
    encrypted: &[u8],
    key_iv: &AesKeyIv,
) -> Result<(T, Zeroizing<Vec<u8>>), HandshakeError> {
    if encrypted.is_empty() || encrypted.len() % 16 != 0 {
        return Err(HandshakeError::AnswerHashMismatch);
    }
    let mut plain = Zeroizing::new(encrypted.to_vec());
    decrypt_ige(&mut plain, &key_iv.key, &key_iv.iv)
        .map_err(|_| HandshakeError::AnswerHashMismatch)?;
    let (hash, rest) = plain
        .split_at_checked(20)
        .ok_or(HandshakeError::AnswerHashMismatch)?;
    let mut reader = Reader::new(rest);
    let parsed = T::deserialize(&mut reader);
    let length = reader.position().min(rest.len());
    let object = rest.get(..length).unwrap_or_default();
    // Hash first, parse result second: the SHA-1 is the integrity check.
    let hash_ok = ct_eq(&Sha1::digest(object), hash);
    let padding = rest.len() - length;
    match parsed {
        Ok(value) if hash_ok && padding < 16 => Ok((value, Zeroizing::new(object.to_vec()))),
        _ => Err(HandshakeError::AnswerHashMismatch),
    }
}

/// Big-endian bytes of a number, without leading zeros (how p, q and pq travel).
pub(crate) fn be_bytes_minimal(value: u64) -> Vec<u8> {
    crate::crypto::minimal_be(&value.to_be_bytes()).to_vec()
}

/// A big-endian number of at most 8 bytes.
pub(crate) fn be_to_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

#[cfg(test)]
mod tests;
