//! MTProto 2.0 cryptography: AES-256-IGE, the key derivations, the authorization key, and the
//! handshake's RSA, Diffie-Hellman and pq.
//!
//! - [`encrypt_ige`] / [`decrypt_ige`]: AES-256-IGE in place, and [`encrypt_ige_batch`] /
//!   [`decrypt_ige_batch`] for several independent messages at once (up to 8 chains
//!   interleaved, the way a server with many connections gains throughput);
//! - [`msg_key`], [`message_key_iv`] (the MTProto 2.0 KDF), [`quick_ack_token`];
//! - the handshake's derived values: [`handshake_key_iv`], [`new_nonce_hash`],
//!   [`first_server_salt`];
//! - [`AuthKey`], which computes auth_key_id and the aux hash and zeroizes itself on drop;
//! - [`ct_eq`], the constant-time comparison used for every hash or key that a peer sent;
//! - RSA-2048 for the handshake ([`RsaPrivateKey`], [`RsaPublicKey`], [`rsa_pad_encrypt`],
//!   [`rsa_decrypt_handshake_data`]): PKCS#1 PEM, Telegram's fingerprint, a blinded,
//!   constant-time private operation;
//! - Diffie-Hellman groups with every check of the security guidelines ([`DhGroup`],
//!   [`DhPrimeCache`]);
//! - pq: [`random_pq`] for servers, [`factorize_pq`] for clients.
//!
//! Threat model notes: derived AES keys ([`AesKeyIv`]) and auth keys are wiped on drop and
//! never printed by `Debug`. Comparisons against peer-supplied hashes must go through
//! [`ct_eq`] so that their timing does not reveal how many bytes matched.

mod auth_key;
pub(crate) mod bignum;
mod dh;
mod ige;
mod kdf;
mod pem;
mod pq;
mod rsa;
mod x86;

pub use auth_key::AuthKey;
pub use dh::{
    DH_LEN, DhError, DhGroup, DhPrimeCache, PRIME_CACHE_CAPACITY, PRIME_TEST_ROUNDS, TELEGRAM_DH_G,
    TELEGRAM_DH_PRIME,
};
pub use ige::{
    IgeError, IgeJob, decrypt_ige, decrypt_ige_batch, encrypt_ige, encrypt_ige_batch, ige_backend,
};
pub use kdf::{
    AesKeyIv, Direction, decrypt_and_msg_key_large, first_server_salt, handshake_key_iv,
    message_key_iv, msg_key, msg_key_from_large, msg_key_large, new_nonce_hash, quick_ack_token,
};
pub use pq::{factorize_pq, is_prime_u64, random_pq};
pub use rsa::{
    BLINDING_REFRESH, DEFAULT_PUBLIC_EXPONENT, RSA_BLOCK_LEN, RSA_PAD_MAX_DATA, RsaEncoding,
    RsaKeyError, RsaPadError, RsaPrivateKey, RsaPublicKey, rsa_decrypt_handshake_data,
    rsa_legacy_encrypt, rsa_pad_encrypt,
};

/// Compares two byte strings in constant time (for equal lengths; different lengths compare
/// unequal at once, lengths being public).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// A big-endian number's bytes without its leading zeros, keeping at least one byte (how
/// TL, DER and the handshake write numbers).
pub(crate) fn minimal_be(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .take_while(|&&b| b == 0)
        .count()
        .min(bytes.len().saturating_sub(1));
    bytes.get(skip..).unwrap_or(bytes)
}

#[cfg(test)]
pub(crate) mod tests;
