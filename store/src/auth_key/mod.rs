//! Authorization keys: permanent and temporary keys, the binding of a temporary key to a
//! permanent one (perfect forward secrecy, `auth.bindTempAuthKey`), the user a key is signed
//! in as.
//!
//! Rules kept by every backend (the conformance suite checks them):
//! - an auth_key_id names at most one key: [`AuthKeyStore::insert`] refuses a taken id, which
//!   is how a server detects the collision the handshake answers with `dh_gen_retry`;
//! - a temporary key is usable for authorized work only while it is bound to a permanent key
//!   and not expired ([`AuthKeyStore::resolve`]);
//! - a permanent key is bound to at most one temporary key at a time: binding a new one
//!   replaces the old binding; a temporary key bound to one permanent key cannot be bound to
//!   another (`TEMP_AUTH_KEY_ALREADY_BOUND`);
//! - [`AuthKeyStore::remove_expired`] deletes expired temporary keys and their bindings.
//!
//! Key material is secret: records zeroize it on drop and never print it.

mod memory;

pub use memory::MemoryAuthKeyStore;

use zeroize::Zeroize;

/// Bytes in an authorization key.
pub const AUTH_KEY_LEN: usize = 256;

/// Whether a key is permanent or temporary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLifetime {
    /// A permanent key.
    Permanent,
    /// A temporary key that expires at this Unix time (seconds).
    Temporary {
        /// Unix seconds.
        expires_at: i64,
    },
}

/// One stored key.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKeyRecord {
    /// The key's id (the low 64 bits of SHA-1 of the key, as MTProto computes it).
    pub auth_key_id: i64,
    /// The key itself.
    pub key: [u8; AUTH_KEY_LEN],
    /// Permanent or temporary.
    pub lifetime: KeyLifetime,
    /// When the key was created (Unix seconds).
    pub created_at: i64,
    /// The DC the client named in the handshake, if it named one.
    pub dc: Option<i32>,
    /// The user signed in with this key (permanent keys only), if any.
    pub user_id: Option<i64>,
}

impl core::fmt::Debug for AuthKeyRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AuthKeyRecord")
            .field("auth_key_id", &self.auth_key_id)
            .field("lifetime", &self.lifetime)
            .field("created_at", &self.created_at)
            .field("dc", &self.dc)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl Drop for AuthKeyRecord {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// What a key stands for when a message arrives with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedKey {
    /// The key the message was encrypted with.
    pub auth_key_id: i64,
    /// The permanent key whose identity it carries (itself for a permanent key).
    pub perm_auth_key_id: i64,
    /// The user signed in on the permanent key, if any.
    pub user_id: Option<i64>,
}

/// Why a key operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthKeyError {
    /// No key with this id.
    #[error("unknown auth_key_id {0}")]
    NotFound(i64),
    /// The id is already taken (the handshake must retry with another key).
    #[error("auth_key_id {0} already exists")]
    AlreadyExists(i64),
    /// The temporary key has expired.
    #[error("temporary key {0} expired")]
    Expired(i64),
    /// The temporary key is not bound to a permanent key.
    #[error("temporary key {0} is not bound")]
    Unbound(i64),
    /// A permanent key was given where a temporary one is needed.
    #[error("key {0} is not temporary")]
    NotTemporary(i64),
    /// A temporary key was given where a permanent one is needed.
    #[error("key {0} is not permanent")]
    NotPermanent(i64),
    /// `TEMP_AUTH_KEY_ALREADY_BOUND`: the temporary key is bound to another permanent key.
    #[error("TEMP_AUTH_KEY_ALREADY_BOUND")]
    AlreadyBound(i64),
    /// The storage engine failed.
    #[error("storage backend: {0}")]
    Backend(#[source] crate::BackendError),
    /// A write failed before and the store refuses more until it is reopened (what reached
    /// the disk is unknown).
    #[error("the key store refuses writes after a failed write; reopen it")]
    Poisoned(#[source] crate::BackendError),
}

/// Storage of authorization keys. Object-safe, shared between threads; each call is atomic.
pub trait AuthKeyStore: Send + Sync {
    /// Stores a new key; [`AuthKeyError::AlreadyExists`] if the id is taken.
    fn insert(&self, record: AuthKeyRecord) -> Result<(), AuthKeyError>;

    /// Whether a key with this id exists (expired temporary keys included, until removed).
    fn contains(&self, auth_key_id: i64) -> Result<bool, AuthKeyError>;

    /// The key with this id.
    fn get(&self, auth_key_id: i64) -> Result<Option<AuthKeyRecord>, AuthKeyError>;

    /// Deletes a key and any binding it takes part in (`destroy_auth_key`); whether it existed.
    fn remove(&self, auth_key_id: i64) -> Result<bool, AuthKeyError>;

    /// Binds a temporary key to a permanent one until `expires_at` (Unix seconds), after
    /// `auth.bindTempAuthKey` verified. Replaces the permanent key's previous binding.
    fn bind_temp(
        &self,
        temp_auth_key_id: i64,
        perm_auth_key_id: i64,
        expires_at: i64,
        now: i64,
    ) -> Result<(), AuthKeyError>;

    /// What a key stands for at `now`: a permanent key for itself; a temporary key for the
    /// permanent key it is bound to, or [`AuthKeyError::Expired`] / [`AuthKeyError::Unbound`].
    fn resolve(&self, auth_key_id: i64, now: i64) -> Result<ResolvedKey, AuthKeyError>;

    /// Records the user signed in on a permanent key (`None` to sign out).
    fn set_user(&self, perm_auth_key_id: i64, user_id: Option<i64>) -> Result<(), AuthKeyError>;

    /// Deletes temporary keys (and bindings) expired at `now`; how many keys went.
    fn remove_expired(&self, now: i64) -> Result<usize, AuthKeyError>;

    /// Deletes permanent keys that never had a user signed in and were created before
    /// `created_before` (Unix seconds), except those `in_use` says are (a live session), with
    /// their bindings; how many keys went. An anonymous handshake flood must not grow the
    /// store without bound: Telegram drops such keys too. Backends may scan every key, so
    /// call it on a schedule, not per request. `in_use` is called with none of the store's
    /// locks held (it may take its own, such as a runtime's endpoint locks, under which the
    /// store is called); a key signed in after it was checked stays.
    fn remove_unsigned(
        &self,
        created_before: i64,
        in_use: &dyn Fn(i64) -> bool,
    ) -> Result<usize, AuthKeyError>;
}

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
