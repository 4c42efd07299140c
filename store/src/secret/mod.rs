//! The secret-chat relay's storage: chats between two devices, and one queue of encrypted
//! messages per device with its `qts` (core.telegram.org/api/end-to-end, "Working with an
//! update box").
//!
//! The relay never holds a key: what it keeps is the key exchange's public half (`g_a`,
//! `g_b`, the fingerprint the acceptor announced), who is in the chat and on which device, and
//! opaque ciphertexts.
//!
//! - A **chat** has the id its requester chose (the `random_id` of
//!   `messages.requestEncryption`: TDLib refuses any other), an access hash, the requesting
//!   user and device (permanent auth key), the invited user and, once accepted, the accepting
//!   device. It is waiting, ready or discarded. Each user has at most
//!   [`SecretStoreConfig::max_chats_per_user`] chats that are not discarded; a discarded chat
//!   stays [`SecretStoreConfig::retention_secs`] so that late sends get
//!   `ENCRYPTION_DECLINED`, then [`SecretStore::purge_expired`] removes it.
//! - A **queue** belongs to one device. Every message sent into a chat is appended to the
//!   other device's queue under the next `qts` (the first event of a device takes qts 2: its
//!   state starts at 1, as clients read a qts of 0 as "unknown"). Entries keep their kind
//!   (message or service message, as they were sent: clients tell them apart), stay until
//!   acknowledged ([`SecretStore::acknowledge`]) or for the retention period, and go when the
//!   device is removed ([`SecretStore::remove_device`]).
//! - A **send is idempotent** on (sending device, chat, `random_id`): a repeat gets the first
//!   send's date and file, and nothing is queued twice.
//!
//! Each call is atomic. [`MemorySecretStore`] keeps the rows in memory; the RocksDB backend
//! (`rocks::RocksSecretStore`) in an instance of its own. The rules are written once, over
//! rows, and the conformance suite (feature `testing`) checks any backend.

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod memory;
pub(crate) mod plan;
pub(crate) mod values;

pub use memory::MemorySecretStore;

/// Where a secret chat is in its life (the protocol's three states: closed on purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretChatState {
    /// Requested, not yet accepted.
    Waiting,
    /// Accepted: both devices are known and messages flow.
    Ready,
    /// Declined, cancelled or closed.
    Discarded {
        /// Whether the side that closed it asked for the history to be deleted.
        history_deleted: bool,
        /// The user who closed it.
        by: i64,
    },
}

/// A secret chat as the relay keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretChat {
    /// The id, as the requester chose it.
    pub id: i32,
    /// Its access hash.
    pub access_hash: i64,
    /// When it was requested (Unix seconds).
    pub date: i32,
    /// When it last changed state.
    pub changed: i32,
    /// The requesting user.
    pub admin_id: i64,
    /// The requesting device (permanent auth_key_id).
    pub admin_key: i64,
    /// The invited user.
    pub participant_id: i64,
    /// The accepting device, once accepted.
    pub participant_key: Option<i64>,
    /// The requester's public value.
    pub g_a: Vec<u8>,
    /// The acceptor's public value (empty until accepted).
    pub g_b: Vec<u8>,
    /// The key fingerprint the acceptor announced (0 until accepted).
    pub key_fingerprint: i64,
    /// The state.
    pub state: SecretChatState,
}

impl SecretChat {
    /// The other user of the chat, as `user` sees it.
    pub fn other_user(&self, user: i64) -> i64 {
        if user == self.admin_id {
            self.participant_id
        } else {
            self.admin_id
        }
    }

    /// The device at the other end from `key`, if `key` is one of the chat's two devices and
    /// the other one is known.
    pub fn other_key(&self, key: i64) -> Option<i64> {
        if key == self.admin_key {
            self.participant_key
        } else if Some(key) == self.participant_key {
            Some(self.admin_key)
        } else {
            None
        }
    }
}

/// A chat to create ([`SecretStore::request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecretChat {
    /// The id the requester chose.
    pub id: i32,
    /// The access hash the relay gives it.
    pub access_hash: i64,
    /// Unix seconds.
    pub date: i32,
    /// The requesting user.
    pub admin_id: i64,
    /// The requesting device.
    pub admin_key: i64,
    /// The invited user.
    pub participant_id: i64,
    /// The requester's public value.
    pub g_a: Vec<u8>,
}

/// What a secret message was sent as: clients need the kind kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// `messages.sendEncrypted` or `sendEncryptedFile`: an `encryptedMessage`.
    Message,
    /// `messages.sendEncryptedService`: an `encryptedMessageService`.
    Service,
}

/// An encrypted message to relay ([`SecretStore::send`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSend {
    /// The sending user.
    pub sender: i64,
    /// The sending device.
    pub sender_key: i64,
    /// The chat.
    pub chat_id: i32,
    /// Its access hash, as the sender gave it.
    pub access_hash: i64,
    /// The sender's random id (the send's identity).
    pub random_id: i64,
    /// Unix seconds.
    pub date: i32,
    /// How it was sent.
    pub kind: SecretKind,
    /// The ciphertext, opaque.
    pub data: Vec<u8>,
    /// The attached file, encoded as the application likes (opaque to the store).
    pub file: Option<Vec<u8>>,
}

/// What a send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSent {
    /// The date the message carries (the first send's, for a repeat).
    pub date: i32,
    /// The file as stored with the message (the first send's, for a repeat).
    pub file: Option<Vec<u8>>,
    /// The receiving user.
    pub recipient: i64,
    /// The receiving device.
    pub recipient_key: i64,
    /// The qts the message took in the receiver's queue; `None` for a repeat.
    pub qts: Option<i32>,
}

/// One entry of a device's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedSecret {
    /// Its qts.
    pub qts: i32,
    /// How it was sent.
    pub kind: SecretKind,
    /// The chat.
    pub chat_id: i32,
    /// The sender's random id.
    pub random_id: i64,
    /// Unix seconds.
    pub date: i32,
    /// The ciphertext.
    pub data: Vec<u8>,
    /// The attached file, as the sender's call stored it.
    pub file: Option<Vec<u8>>,
}

/// A device's queue counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    /// The qts of the last event given to the device (1 before any).
    pub qts: i32,
    /// The highest qts the device acknowledged.
    pub acknowledged: i32,
    /// How many entries its queue holds.
    pub pending: u32,
}

/// The qts a device's state starts at (its first event takes the next one).
pub const INITIAL_QTS: i32 = 1;

/// Why a secret-store call failed. The variants named in capitals are Telegram's errors for
/// the same refusal; the others say which rule refused it, and the application chooses the
/// answer (the API module's mapping is documented with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// `CHAT_ID_INVALID`: no such chat with this access hash, or the caller is not in it.
    #[error("CHAT_ID_INVALID")]
    ChatIdInvalid,
    /// `ENCRYPTION_ID_INVALID`: the caller has no chat with this id, or it is not ready.
    #[error("ENCRYPTION_ID_INVALID")]
    EncryptionIdInvalid,
    /// `ENCRYPTION_ALREADY_ACCEPTED`.
    #[error("ENCRYPTION_ALREADY_ACCEPTED")]
    EncryptionAlreadyAccepted,
    /// `ENCRYPTION_ALREADY_DECLINED`.
    #[error("ENCRYPTION_ALREADY_DECLINED")]
    EncryptionAlreadyDeclined,
    /// `ENCRYPTION_DECLINED`: the chat was closed.
    #[error("ENCRYPTION_DECLINED")]
    EncryptionDeclined,
    /// `DATA_INVALID`: an empty message.
    #[error("DATA_INVALID")]
    DataInvalid,
    /// `DATA_TOO_LONG`: longer than [`SecretStoreConfig::max_data_len`].
    #[error("DATA_TOO_LONG")]
    DataTooLong,
    /// `MAX_QTS_INVALID`: an acknowledgement past the last qts given.
    #[error("MAX_QTS_INVALID")]
    MaxQtsInvalid,
    /// `RANDOM_ID_DUPLICATE`: the requester or the invited user has a chat with this id
    /// already (a new request must pick another `random_id`).
    #[error("RANDOM_ID_DUPLICATE")]
    RandomIdDuplicate,
    /// A user has [`SecretStoreConfig::max_chats_per_user`] chats that are not discarded.
    #[error("too many secret chats")]
    TooManyChats,
    /// The receiving device has [`SecretStoreConfig::max_queue_len`] unacknowledged entries.
    #[error("the receiver's secret queue is full")]
    QueueFull,
    /// The storage engine failed.
    #[error("storage backend: {0}")]
    Backend(#[source] crate::BackendError),
    /// A write failed before and the store refuses more until it is reopened.
    #[error("the secret store refuses writes after a failed write; reopen it")]
    Poisoned(#[source] crate::BackendError),
}

impl From<crate::BackendError> for SecretError {
    /// A row that could not be read: the engine's fault.
    fn from(cause: crate::BackendError) -> Self {
        Self::Backend(cause)
    }
}

/// Limits of a secret store. Every list a peer can grow has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretStoreConfig {
    /// Chats per user that are not discarded (Telegram publishes no figure).
    pub max_chats_per_user: usize,
    /// Unacknowledged entries per device queue.
    pub max_queue_len: usize,
    /// The longest ciphertext of one message. Telegram publishes no figure; the default
    /// holds the largest E2E payload a TL string carries.
    pub max_data_len: usize,
    /// The longest public value (`g_a`, `g_b`): a 2048-bit group's is 256 bytes.
    pub max_public_len: usize,
    /// How long queue entries, send records and discarded chats are kept (the spec's seven
    /// days).
    pub retention_secs: i32,
}

impl Default for SecretStoreConfig {
    fn default() -> Self {
        Self {
            max_chats_per_user: 1_000,
            max_queue_len: 100_000,
            max_data_len: 1 << 20,
            max_public_len: 256,
            retention_secs: 7 * 86_400,
        }
    }
}

/// The most entries one [`SecretStore::queue`] call returns.
pub const MAX_QUEUE_PAGE: usize = 1_000;

/// Storage of the secret-chat relay. Object-safe, shared between threads; each call is
/// atomic. Calls may block on disk: async callers run them on a blocking pool.
pub trait SecretStore: Send + Sync {
    /// Creates a waiting chat. A repeat of the same request (same requester, device, id,
    /// invited user and `g_a`) returns the chat as it is now; another chat with the id on
    /// either user's side is [`SecretError::RandomIdDuplicate`].
    fn request(&self, chat: &NewSecretChat) -> Result<SecretChat, SecretError>;

    /// The chat `id` with this access hash.
    fn chat(&self, id: i32, access_hash: i64) -> Result<Option<SecretChat>, SecretError>;

    /// The chat `id` of `user` (either side).
    fn chat_of(&self, user: i64, id: i32) -> Result<Option<SecretChat>, SecretError>;

    /// `user`'s chats (either side, discarded ones still kept included), by id.
    fn chats_of(&self, user: i64) -> Result<Vec<SecretChat>, SecretError>;

    /// Accepts the waiting chat on device `key` of its invited user `user`.
    #[allow(clippy::too_many_arguments, reason = "the fields of acceptEncryption")]
    fn accept(
        &self,
        id: i32,
        access_hash: i64,
        user: i64,
        key: i64,
        g_b: &[u8],
        key_fingerprint: i64,
        date: i32,
    ) -> Result<SecretChat, SecretError>;

    /// Closes the chat `id` of `user` (declining, cancelling or ending it).
    fn discard(
        &self,
        user: i64,
        id: i32,
        history_deleted: bool,
        date: i32,
    ) -> Result<SecretChat, SecretError>;

    /// Queues a message for the other device of a ready chat (idempotent, see the module).
    fn send(&self, send: &SecretSend) -> Result<SecretSent, SecretError>;

    /// Device `key`'s queue entries after `after_qts`, oldest first, at most `limit` (and at
    /// most [`MAX_QUEUE_PAGE`]).
    fn queue(
        &self,
        key: i64,
        after_qts: i32,
        limit: usize,
    ) -> Result<Vec<QueuedSecret>, SecretError>;

    /// Device `key`'s counters.
    fn queue_state(&self, key: i64) -> Result<QueueState, SecretError>;

    /// Drops device `key`'s entries up to `max_qts` and returns their random ids. A
    /// `max_qts` of 0 or less acknowledges nothing.
    fn acknowledge(&self, key: i64, max_qts: i32) -> Result<Vec<i64>, SecretError>;

    /// Removes device `key` (logged out): its queue, and every chat it is an end of, which
    /// is discarded and returned (the application tells the other sides).
    fn remove_device(&self, key: i64, date: i32) -> Result<Vec<SecretChat>, SecretError>;

    /// Keeps `reference` (what the application needs to serve the file: opaque to the
    /// store) under the encrypted file `id` for the retention period from `date`; a later
    /// call for the same id replaces it and starts the period again.
    fn put_file(&self, id: i64, reference: &[u8], date: i32) -> Result<(), SecretError>;

    /// The reference kept under the encrypted file `id`.
    fn file(&self, id: i64) -> Result<Option<Vec<u8>>, SecretError>;

    /// Removes what the retention period is over for at `now`: queue entries, send records,
    /// discarded chats, files; at most `limit` rows a call. Returns how many went.
    fn purge_expired(&self, now: i32, limit: usize) -> Result<usize, SecretError>;
}
