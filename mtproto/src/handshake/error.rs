//! Why a handshake failed.

use crate::crypto::DhError;
use crate::message::PlainError;
use crate::transport::{ERROR_AUTH_KEY_NOT_FOUND, ERROR_INVALID_DC};

/// Why a handshake step failed. Every variant but the last group is the peer's fault; the
/// server answers all of them with a transport error ([`Self::transport_error`]) and stays
/// failed; the client should close the connection and start over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The frame is not a valid unencrypted message.
    #[error("not an unencrypted message: {0}")]
    Plain(#[from] PlainError),
    /// A client message id that is not divisible by 4, or a server one that is not odd.
    #[error("msg_id {0:#x} has the wrong parity for its sender")]
    BadMsgId(i64),
    /// A message that does not parse as what this step expects (or is unknown).
    #[error("unexpected message (constructor {constructor:#010x}) while {state}")]
    Unexpected {
        /// The constructor id that arrived (0 if the body was shorter than 4 bytes).
        constructor: u32,
        /// What the machine was waiting for.
        state: &'static str,
    },
    /// `nonce` differs from the one this handshake started with.
    #[error("nonce mismatch")]
    NonceMismatch,
    /// `server_nonce` differs from the one the server issued.
    #[error("server_nonce mismatch")]
    ServerNonceMismatch,
    /// `p`, `q` or `pq` differ from the ones the server issued, or pq is not a product of
    /// two distinct odd primes (client side).
    #[error("p, q or pq do not match the issued values")]
    PqMismatch,
    /// The client used a key fingerprint the server does not have.
    #[error("unknown RSA key fingerprint {0:#018x}")]
    UnknownFingerprint(i64),
    /// None of the server's fingerprints belong to a key the client knows.
    #[error("the server offered no known RSA key")]
    NoKnownFingerprint,
    /// The RSA-encrypted inner data did not decrypt to a valid message (one error for every
    /// reason).
    #[error("encrypted inner data rejected")]
    EncryptedDataRejected,
    /// The SHA-1 inside an AES-encrypted handshake message does not match, or the padding is
    /// longer than 15 bytes.
    #[error("SHA-1 of the encrypted handshake data does not match")]
    AnswerHashMismatch,
    /// A DH parameter or public value failed its check.
    #[error(transparent)]
    Dh(#[from] DhError),
    /// `new_nonce_hash` (in dh_gen_* or server_DH_params_fail) does not match.
    #[error("new_nonce_hash mismatch")]
    NewNonceHashMismatch,
    /// `retry_id` is not 0 on the first attempt or not the previous key's aux hash after
    /// `dh_gen_retry`.
    #[error("retry_id does not match")]
    BadRetryId,
    /// A temporary key with `expires_in` not above zero.
    #[error("expires_in {0} is not positive")]
    BadExpiresIn(i32),
    /// The client asked for a test DC on a production server, or the reverse (-444).
    #[error("dc {0} is on the wrong side of test/production")]
    WrongDc(i32),
    /// The server answered `server_DH_params_fail`.
    #[error("server refused the DH parameters")]
    ServerDhParamsFail,
    /// The server answered `dh_gen_fail`.
    #[error("server answered dh_gen_fail")]
    DhGenFail,

    /// The handshake took longer than its deadline.
    #[error("handshake deadline exceeded")]
    DeadlineExceeded,
    /// More key exchanges on one connection than allowed.
    #[error("too many handshake attempts on this connection")]
    TooManyAttempts,
    /// More `dh_gen_retry` rounds than allowed.
    #[error("too many dh_gen_retry rounds")]
    TooManyRetries,
    /// An earlier step failed; the handshake accepts nothing more.
    #[error("handshake already failed")]
    Poisoned,
    /// A method called out of order by the caller (not the peer), such as confirming an
    /// auth_key_id that was never asked about.
    #[error("called in the wrong state: {0}")]
    WrongState(&'static str),
}

impl HandshakeError {
    /// The transport error code the server sends before closing: -444 for a test/production
    /// DC mismatch, -404 otherwise (the spec's answer to any incorrect handshake query).
    pub fn transport_error(&self) -> i32 {
        match self {
            Self::WrongDc(_) => ERROR_INVALID_DC,
            _ => ERROR_AUTH_KEY_NOT_FOUND,
        }
    }
}
