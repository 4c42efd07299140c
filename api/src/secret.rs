//! The secret-chat relay: `messages.getDhConfig`, `requestEncryption`, `acceptEncryption`,
//! `discardEncryption`, `sendEncrypted`, `sendEncryptedService`, `sendEncryptedFile`,
//! `uploadEncryptedFile`, `receivedQueue`, `readEncryptedHistory`, `setEncryptedTyping`,
//! `reportEncryptedSpam`, and the secret queue's part of `updates.getState` and
//! `updates.getDifference` ([`with_secret_queue`]).
//!
//! The relay never sees a key or a plaintext (core.telegram.org/api/end-to-end): it checks
//! the public values of the key exchange (`DH_G_A_INVALID`, `DH_G_B_INVALID`), binds a chat
//! to the device (permanent auth key) that requested it and to the one that accepted it, and
//! queues each ciphertext for the other device under its next `qts`, keeping whether it was
//! sent as a message or a service message. The rules of the reference
//! (`reference/e2e.md` §2) and where this relay differs:
//!
//! - the chat id is the requester's `random_id` (TDLib refuses any other); a request whose
//!   id either user has already gets `RANDOM_ID_DUPLICATE`;
//! - `acceptEncryption` answers `encryptedChat` with `g_a_or_b = g_a`; the requesting device
//!   alone is told `encryptedChat` with `g_b`; the acceptor's other devices are told
//!   `encryptedChatDiscarded`;
//! - events without a qts field (`updateEncryption`, `updateEncryptedMessagesRead`,
//!   `updateEncryptedChatTyping`) take no qts; a device's qts starts at 1;
//! - a service message, a typing notice and a read receipt never cause a push notification;
//!   a request and a message for a device with no live session do (through the runtime's
//!   `PushProvider`);
//! - `updateEncryption` has no qts: `getDifference` tells again, as `updateEncryption`s, the
//!   chats changed since the client's state date (the reference's proposal, §2.3), so that a
//!   device offline when its chat was accepted or closed learns it.
//!
//! Limits (from [`SecretStoreConfig`](columba_store::SecretStoreConfig) and the constants
//! below): ciphertexts of at most 1 MiB (`DATA_TOO_LONG`; Telegram publishes no
//! figure), 100,000 unacknowledged entries per device (then `FLOOD_WAIT_60` to the sender),
//! 1,000 open chats per user, counted against the requester until the other side accepts
//! (then `FLOOD_WAIT_60`; an unaccepted request lapses after the retention period),
//! `getDhConfig` randoms of at most [`MAX_DH_RANDOM`] bytes, [`DIFFERENCE_QTS_LIMIT`] entries
//! per difference.

use std::sync::Arc;

use bytes::Bytes;
use columba_mtproto::crypto::DhGroup;
use columba_mtproto::tl::api::{enums, functions, types};
use columba_mtproto::tl::{Deserializable as _, Serializable as _};
use columba_session::runtime::ServerHandle;
use columba_store::file::{ContentId, FinishRequest};
use columba_store::secret::{
    NewSecretChat, QueuedSecret, SecretChat, SecretChatState, SecretError, SecretKind, SecretSend,
    SecretSent,
};
use rand::RngCore as _;

use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects::now_unix;
use crate::router::Router;
use crate::upload::document_id;

/// The longest `random` a `messages.getDhConfig` gives (piltover's figure; TDLib asks for
/// 256 bytes).
pub const MAX_DH_RANDOM: i32 = 1024;
/// The version of the DH group this relay gives (Telegram's prime with g = 3).
pub const DH_VERSION: i32 = 1;
/// Secret-queue entries one `updates.getDifference` carries at most.
pub const DIFFERENCE_QTS_LIMIT: usize = 100;
/// The DC files are said to be in.
const FILE_DC: i32 = 1;

/// What the relay's handlers share.
#[derive(Debug)]
pub struct Relay {
    backend: Arc<Backend>,
    group: DhGroup,
}

impl Relay {
    /// The relay over `backend`, giving Telegram's DH group.
    pub fn new(backend: Arc<Backend>) -> Arc<Self> {
        Arc::new(Self {
            backend,
            group: DhGroup::telegram(),
        })
    }

    /// The DH group `messages.getDhConfig` gives.
    pub fn group(&self) -> &DhGroup {
        &self.group
    }
}

/// Every method of the relay.
pub fn router(backend: Arc<Backend>) -> Router {
    let relay = Relay::new(backend);
    Router::new()
        .route_with(relay.clone(), get_dh_config)
        .route_with(relay.clone(), request_encryption)
        .route_with(relay.clone(), accept_encryption)
        .route_with(relay.clone(), discard_encryption)
        .route_with(relay.clone(), send_encrypted)
        .route_with(relay.clone(), send_encrypted_service)
        .route_with(relay.clone(), send_encrypted_file)
        .route_with(relay.clone(), upload_encrypted_file)
        .route_with(relay.clone(), received_queue)
        .route_with(relay.clone(), read_encrypted_history)
        .route_with(relay.clone(), set_encrypted_typing)
        .route_with(relay, report_encrypted_spam)
}

impl From<SecretError> for ApiError {
    fn from(error: SecretError) -> Self {
        let name = match error {
            SecretError::ChatIdInvalid => "CHAT_ID_INVALID",
            SecretError::EncryptionIdInvalid => "ENCRYPTION_ID_INVALID",
            SecretError::EncryptionAlreadyAccepted => "ENCRYPTION_ALREADY_ACCEPTED",
            SecretError::EncryptionAlreadyDeclined => "ENCRYPTION_ALREADY_DECLINED",
            SecretError::EncryptionDeclined => "ENCRYPTION_DECLINED",
            SecretError::DataInvalid => "DATA_INVALID",
            SecretError::DataTooLong => "DATA_TOO_LONG",
            SecretError::MaxQtsInvalid => "MAX_QTS_INVALID",
            SecretError::RandomIdDuplicate => "RANDOM_ID_DUPLICATE",
            // Telegram publishes no error for these; a flood wait is what a client retries.
            SecretError::TooManyChats | SecretError::QueueFull => return Self::flood_wait(60),
            _ => return Self::internal(&error),
        };
        Self::bad_request(name)
    }
}

/// The chat as one device of one of its users sees it.
pub fn chat_object(chat: &SecretChat, viewer: i64, viewer_key: i64) -> enums::EncryptedChat {
    match chat.state {
        SecretChatState::Discarded {
            history_deleted, ..
        } => types::EncryptedChatDiscarded {
            history_deleted,
            id: chat.id,
        }
        .into(),
        SecretChatState::Waiting if viewer == chat.admin_id => types::EncryptedChatWaiting {
            id: chat.id,
            access_hash: chat.access_hash,
            date: chat.date,
            admin_id: chat.admin_id,
            participant_id: chat.participant_id,
        }
        .into(),
        SecretChatState::Waiting => types::EncryptedChatRequested {
            folder_id: None,
            id: chat.id,
            access_hash: chat.access_hash,
            date: chat.date,
            admin_id: chat.admin_id,
            participant_id: chat.participant_id,
            g_a: chat.g_a.clone(),
        }
        .into(),
        SecretChatState::Ready if viewer_key == chat.admin_key => types::EncryptedChat {
            id: chat.id,
            access_hash: chat.access_hash,
            date: chat.date,
            admin_id: chat.admin_id,
            participant_id: chat.participant_id,
            g_a_or_b: chat.g_b.clone(),
            key_fingerprint: chat.key_fingerprint,
        }
        .into(),
        SecretChatState::Ready if Some(viewer_key) == chat.participant_key => {
            types::EncryptedChat {
                id: chat.id,
                access_hash: chat.access_hash,
                date: chat.date,
                admin_id: chat.admin_id,
                participant_id: chat.participant_id,
                g_a_or_b: chat.g_a.clone(),
                key_fingerprint: chat.key_fingerprint,
            }
            .into()
        }
        // Another device of a user in the chat: it is not theirs.
        SecretChatState::Ready => types::EncryptedChatDiscarded {
            history_deleted: false,
            id: chat.id,
        }
        .into(),
    }
}

/// An `updates` of one update with both users of `chat` as `viewer` sees them. Blocking.
fn updates_for(
    backend: &Backend,
    chat: &SecretChat,
    viewer: i64,
    update: enums::Update,
) -> Result<Bytes, ApiError> {
    let users = backend.user_objects([chat.admin_id, chat.participant_id], viewer)?;
    let updates: enums::Updates = types::Updates {
        updates: vec![update],
        users,
        chats: Vec::new(),
        date: now_unix(),
        seq: 0,
    }
    .into();
    Ok(Bytes::from(updates.to_bytes()))
}

/// `updateEncryption` with the chat as `viewer`'s device `viewer_key` sees it.
fn encryption_update(chat: &SecretChat, viewer: i64, viewer_key: i64) -> enums::Update {
    types::UpdateEncryption {
        chat: chat_object(chat, viewer, viewer_key),
        date: now_unix(),
    }
    .into()
}

/// `messages.getDhConfig`: Telegram's prime with g = 3, and `random_length` bytes from the
/// OS's generator (clients mix them into their exponent; they are never the key).
pub async fn get_dh_config(
    _: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::GetDhConfig,
) -> Result<enums::messages::DhConfig, ApiError> {
    if !(0..=MAX_DH_RANDOM).contains(&request.random_length) {
        return Err(ApiError::bad_request("RANDOM_LENGTH_INVALID"));
    }
    let mut random = vec![0u8; usize::try_from(request.random_length).unwrap_or(0)];
    rand::rng().fill_bytes(&mut random);
    if request.version == DH_VERSION {
        return Ok(types::messages::DhConfigNotModified { random }.into());
    }
    Ok(types::messages::DhConfig {
        g: i32::try_from(relay.group.g()).unwrap_or(3),
        p: relay.group.prime().to_vec(),
        version: DH_VERSION,
        random,
    }
    .into())
}

/// `messages.requestEncryption`: a waiting chat with the id the requester chose; every
/// device of the invited user is told `encryptedChatRequested`.
pub async fn request_encryption(
    ctx: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::RequestEncryption,
) -> Result<enums::EncryptedChat, ApiError> {
    let user = ctx.user()?;
    let key = ctx.perm_auth_key_id()?;
    if relay.group.check_public_value(&request.g_a).is_err() {
        return Err(ApiError::bad_request("DH_G_A_INVALID"));
    }
    let server = ctx.server().clone();
    let backend = relay.backend.clone();
    ctx.blocking(move || {
        let target = backend.input_user(user, &request.user_id)?;
        if target == user {
            return Err(ApiError::bad_request("USER_ID_INVALID"));
        }
        backend.recipient(target)?;
        if backend.users.is_blocked(target, user)? {
            return Err(ApiError::forbidden("USER_IS_BLOCKED"));
        }
        let access_hash = i64::from_le_bytes(rand::rng().next_u64().to_le_bytes());
        let chat = backend.secrets.request(&NewSecretChat {
            id: request.random_id,
            access_hash,
            date: now_unix(),
            admin_id: user,
            admin_key: key,
            participant_id: target,
            g_a: request.g_a,
        })?;
        if chat.state == SecretChatState::Waiting {
            // The invited user's devices: any of them may accept (the key is not known yet).
            let update = encryption_update(&chat, target, 0);
            server.send_update(target, updates_for(&backend, &chat, target, update)?);
        }
        Ok(chat_object(&chat, user, key))
    })
    .await
}

/// `messages.acceptEncryption`: the chat is bound to the accepting device; the requesting
/// device gets `encryptedChat` with `g_b`, the acceptor's other devices lose it.
pub async fn accept_encryption(
    ctx: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::AcceptEncryption,
) -> Result<enums::EncryptedChat, ApiError> {
    let user = ctx.user()?;
    let key = ctx.perm_auth_key_id()?;
    if relay.group.check_public_value(&request.g_b).is_err() {
        return Err(ApiError::bad_request("DH_G_B_INVALID"));
    }
    let enums::InputEncryptedChat::InputEncryptedChat(peer) = request.peer;
    let server = ctx.server().clone();
    let backend = relay.backend.clone();
    ctx.blocking(move || {
        let chat = accept_as(
            &server,
            &backend,
            Device { user, key },
            peer.chat_id,
            peer.access_hash,
            &request.g_b,
            request.key_fingerprint,
        )?;
        Ok(chat_object(&chat, user, key))
    })
    .await
}

/// A device: a user and the permanent auth key of one of their clients (or an id the
/// application gives a device of its own, such as a bot's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device {
    /// The user.
    pub user: i64,
    /// The permanent auth_key_id (the device's identity for the relay).
    pub key: i64,
}

/// `messages.acceptEncryption` by `device`, whose `g_b` the caller checked: the chat is
/// bound to it, the requesting device gets `encryptedChat` with `g_b`, the acceptor's other
/// devices lose it. Blocking. Public for applications with devices of their own.
pub fn accept_as(
    server: &ServerHandle,
    backend: &Backend,
    device: Device,
    chat_id: i32,
    access_hash: i64,
    g_b: &[u8],
    key_fingerprint: i64,
) -> Result<SecretChat, ApiError> {
    let Device { user, key } = device;
    let chat = backend.secrets.accept(
        chat_id,
        access_hash,
        user,
        key,
        g_b,
        key_fingerprint,
        now_unix(),
    )?;
    let admin_update = encryption_update(&chat, chat.admin_id, chat.admin_key);
    server.send_device_update(
        chat.admin_id,
        chat.admin_key,
        updates_for(backend, &chat, chat.admin_id, admin_update)?,
        true,
    );
    let others = encryption_update(&chat, user, 0);
    server.send_other_devices_update(user, key, updates_for(backend, &chat, user, others)?);
    Ok(chat)
}

/// Tells the other side of `chat`, closed by `by`, that it is closed: its device once
/// accepted, every device of the invited user for a request cancelled before. Blocking.
fn tell_closed(server: &ServerHandle, backend: &Backend, chat: &SecretChat, by: i64) {
    let other = chat.other_user(by);
    let update = encryption_update(chat, other, 0);
    let Ok(bytes) = updates_for(backend, chat, other, update) else {
        return;
    };
    let other_key = if other == chat.admin_id {
        Some(chat.admin_key)
    } else {
        chat.participant_key
    };
    match other_key {
        Some(key) => server.send_device_update(other, key, bytes, false),
        None => server.send_update(other, bytes),
    }
}

/// `messages.discardEncryption`: declines, cancels or closes the chat; the other side is
/// told `encryptedChatDiscarded` (with `history_deleted` as asked).
pub async fn discard_encryption(
    ctx: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::DiscardEncryption,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    if request.chat_id == 0 {
        return Err(ApiError::bad_request("CHAT_ID_EMPTY"));
    }
    let server = ctx.server().clone();
    let backend = relay.backend.clone();
    ctx.blocking(move || {
        discard_as(
            &server,
            &backend,
            user,
            request.chat_id,
            request.delete_history,
        )?;
        Ok(true)
    })
    .await
}

/// `messages.discardEncryption` by `user`: the chat is closed and the other side told.
/// Blocking. Public for applications with devices of their own.
pub fn discard_as(
    server: &ServerHandle,
    backend: &Backend,
    user: i64,
    chat_id: i32,
    delete_history: bool,
) -> Result<SecretChat, ApiError> {
    let chat = backend
        .secrets
        .discard(user, chat_id, delete_history, now_unix())?;
    tell_closed(server, backend, &chat, user);
    Ok(chat)
}

/// The `encryptedMessage` or `encryptedMessageService` of a queue entry.
pub fn encrypted_message(entry: &QueuedSecret) -> enums::EncryptedMessage {
    match entry.kind {
        SecretKind::Service => types::EncryptedMessageService {
            random_id: entry.random_id,
            chat_id: entry.chat_id,
            date: entry.date,
            bytes: entry.data.clone(),
        }
        .into(),
        // Any other kind the store may grow is a message with its file.
        _ => types::EncryptedMessage {
            random_id: entry.random_id,
            chat_id: entry.chat_id,
            date: entry.date,
            bytes: entry.data.clone(),
            file: stored_file(entry.file.as_deref()),
        }
        .into(),
    }
}

/// The `EncryptedFile` stored with a message.
fn stored_file(bytes: Option<&[u8]>) -> enums::EncryptedFile {
    bytes
        .and_then(|bytes| enums::EncryptedFile::from_bytes(bytes).ok())
        .unwrap_or_else(|| types::EncryptedFileEmpty {}.into())
}

/// One ciphertext to relay ([`send_as`]).
#[derive(Debug, Clone)]
pub struct Ciphertext {
    /// The chat.
    pub chat_id: i32,
    /// Its access hash.
    pub access_hash: i64,
    /// The send's random id.
    pub random_id: i64,
    /// The encrypted message.
    pub data: Vec<u8>,
    /// A message or a service message.
    pub kind: SecretKind,
}

/// Queues one ciphertext from `device` with `file` (an `EncryptedFile` made by
/// [`input_file_as`]) and tells the receiving device (with a push notification if it has no
/// live session and `push`). Blocking. Public for applications with devices of their own.
pub fn send_as(
    server: &ServerHandle,
    backend: &Backend,
    device: Device,
    message: Ciphertext,
    file: Option<enums::EncryptedFile>,
    push: bool,
) -> Result<SecretSent, ApiError> {
    let Device { user, key } = device;
    let Ciphertext {
        chat_id,
        access_hash,
        random_id,
        data,
        kind,
    } = message;
    let send = SecretSend {
        sender: user,
        sender_key: key,
        chat_id,
        access_hash,
        random_id,
        date: now_unix(),
        kind,
        data,
        file: file.map(|file| file.to_bytes()),
    };
    let sent = backend.secrets.send(&send)?;
    if let Some(qts) = sent.qts {
        let entry = QueuedSecret {
            qts,
            kind,
            chat_id,
            random_id,
            date: sent.date,
            data: send.data,
            file: sent.file.clone(),
        };
        let update: enums::Updates = types::UpdateShort {
            update: types::UpdateNewEncryptedMessage {
                message: encrypted_message(&entry),
                qts,
            }
            .into(),
            date: sent.date,
        }
        .into();
        server.send_device_update(
            sent.recipient,
            sent.recipient_key,
            Bytes::from(update.to_bytes()),
            push,
        );
    }
    Ok(sent)
}

/// What the three send methods share: the caller's device sends `message` (with the file of
/// `file`, if any) and is answered `sentEncryptedMessage`, or `sentEncryptedFile` when it
/// sent a file.
async fn send_from(
    ctx: Ctx,
    relay: Arc<Relay>,
    message: Ciphertext,
    file: Option<enums::InputEncryptedFile>,
    push: bool,
) -> Result<enums::messages::SentEncryptedMessage, ApiError> {
    let user = ctx.user()?;
    let key = ctx.perm_auth_key_id()?;
    let server = ctx.server().clone();
    let backend = relay.backend.clone();
    ctx.blocking(move || {
        let encrypted = match &file {
            Some(file) => input_file_as(&backend, user, file)?,
            None => None,
        };
        let sent = send_as(
            &server,
            &backend,
            Device { user, key },
            message,
            encrypted,
            push,
        )?;
        Ok(match file {
            Some(_) => types::messages::SentEncryptedFile {
                date: sent.date,
                file: stored_file(sent.file.as_deref()),
            }
            .into(),
            None => types::messages::SentEncryptedMessage { date: sent.date }.into(),
        })
    })
    .await
}

/// `messages.sendEncrypted`: an `encryptedMessage` without a file for the other device.
pub async fn send_encrypted(
    ctx: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::SendEncrypted,
) -> Result<enums::messages::SentEncryptedMessage, ApiError> {
    let message = ciphertext(
        &request.peer,
        request.random_id,
        request.data,
        SecretKind::Message,
    );
    send_from(ctx, relay, message, None, !request.silent).await
}

/// `messages.sendEncryptedService`: an `encryptedMessageService` (never a push).
pub async fn send_encrypted_service(
    ctx: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::SendEncryptedService,
) -> Result<enums::messages::SentEncryptedMessage, ApiError> {
    let message = ciphertext(
        &request.peer,
        request.random_id,
        request.data,
        SecretKind::Service,
    );
    send_from(ctx, relay, message, None, false).await
}

/// The chat, random id and data of a send method's request.
fn ciphertext(
    peer: &enums::InputEncryptedChat,
    random_id: i64,
    data: Vec<u8>,
    kind: SecretKind,
) -> Ciphertext {
    let enums::InputEncryptedChat::InputEncryptedChat(peer) = peer;
    Ciphertext {
        chat_id: peer.chat_id,
        access_hash: peer.access_hash,
        random_id,
        data,
        kind,
    }
}

/// The `EncryptedFile` of an `InputEncryptedFile` of `user`: an upload finished now (its
/// parts are the client's ciphertext, opaque here), or a file sent before
/// (`inputEncryptedFile`, checked). Blocking. Public for applications with devices of their
/// own.
pub fn input_file_as(
    backend: &Backend,
    user: i64,
    file: &enums::InputEncryptedFile,
) -> Result<Option<enums::EncryptedFile>, ApiError> {
    let (file_id, parts, md5_checksum, key_fingerprint) = match file {
        enums::InputEncryptedFile::InputEncryptedFileEmpty(_) => return Ok(None),
        enums::InputEncryptedFile::InputEncryptedFileUploaded(file) => (
            file.id,
            file.parts,
            Some(file.md5_checksum.clone()),
            file.key_fingerprint,
        ),
        enums::InputEncryptedFile::InputEncryptedFileBigUploaded(file) => {
            (file.id, file.parts, None, file.key_fingerprint)
        }
        enums::InputEncryptedFile::InputEncryptedFile(file) => {
            let found = reference_of(backend, file.id, file.access_hash)?;
            return Ok(Some(found.object(backend)));
        }
    };
    let info = match backend.files.file(user, file_id)? {
        Some(info) => info,
        None => backend.files.finish(
            &FinishRequest {
                owner: user,
                file_id,
                parts,
                name: String::new(),
                md5_checksum,
            },
            i64::from(now_unix()),
        )?,
    };
    let reference = FileReference {
        content: info.content,
        size: info.size,
        key_fingerprint,
    };
    let id = document_id(&info.content);
    backend
        .secrets
        .put_file(id, &reference.encode(), now_unix())?;
    Ok(Some(reference.object(backend)))
}

/// What the relay keeps of an encrypted file: where its bytes are, its size, and the key
/// fingerprint its sender gave.
struct FileReference {
    content: ContentId,
    size: u64,
    key_fingerprint: i32,
}

impl FileReference {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(44);
        out.extend_from_slice(&self.content.0);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.key_fingerprint.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (content, rest) = bytes.split_first_chunk::<32>()?;
        let (size, rest) = rest.split_first_chunk::<8>()?;
        let (fingerprint, rest) = rest.split_first_chunk::<4>()?;
        rest.is_empty().then(|| Self {
            content: ContentId(*content),
            size: u64::from_le_bytes(*size),
            key_fingerprint: i32::from_le_bytes(*fingerprint),
        })
    }

    fn object(&self, backend: &Backend) -> enums::EncryptedFile {
        types::EncryptedFile {
            id: document_id(&self.content),
            access_hash: backend.access.document_hash(&self.content),
            size: i64::try_from(self.size).unwrap_or(i64::MAX),
            dc_id: FILE_DC,
            key_fingerprint: self.key_fingerprint,
        }
        .into()
    }
}

/// The file `id` with this access hash: `FILE_ID_INVALID` otherwise. Blocking.
fn reference_of(backend: &Backend, id: i64, access_hash: i64) -> Result<FileReference, ApiError> {
    let invalid = || ApiError::bad_request("FILE_ID_INVALID");
    let reference = backend
        .secrets
        .file(id)?
        .and_then(|bytes| FileReference::decode(&bytes))
        .ok_or_else(invalid)?;
    if !backend
        .access
        .check_document_hash(&reference.content, access_hash)
    {
        return Err(invalid());
    }
    Ok(reference)
}

/// The content of the encrypted file at `inputEncryptedFileLocation`, checked: what
/// `upload.getFile` reads. Blocking.
pub fn encrypted_file_content(
    backend: &Backend,
    id: i64,
    access_hash: i64,
) -> Result<ContentId, ApiError> {
    reference_of(backend, id, access_hash).map(|reference| reference.content)
}

/// `messages.sendEncryptedFile`: an `encryptedMessage` with the file uploaded (or sent
/// before) for the other device.
pub async fn send_encrypted_file(
    ctx: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::SendEncryptedFile,
) -> Result<enums::messages::SentEncryptedMessage, ApiError> {
    let message = ciphertext(
        &request.peer,
        request.random_id,
        request.data,
        SecretKind::Message,
    );
    send_from(ctx, relay, message, Some(request.file), !request.silent).await
}

/// The chat an `InputEncryptedChat` names, with the caller's device at one end: the other
/// user and device. Blocking.
fn other_end(
    backend: &Backend,
    key: i64,
    peer: &enums::InputEncryptedChat,
) -> Result<(SecretChat, i64, i64), ApiError> {
    let enums::InputEncryptedChat::InputEncryptedChat(peer) = peer;
    let invalid = || ApiError::bad_request("CHAT_ID_INVALID");
    let chat = backend
        .secrets
        .chat(peer.chat_id, peer.access_hash)?
        .ok_or_else(invalid)?;
    let other_key = chat.other_key(key).ok_or_else(invalid)?;
    let other = if other_key == chat.admin_key {
        chat.admin_id
    } else {
        chat.participant_id
    };
    Ok((chat, other, other_key))
}

/// `messages.uploadEncryptedFile`: finishes an upload into an `EncryptedFile` of the chat.
pub async fn upload_encrypted_file(
    ctx: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::UploadEncryptedFile,
) -> Result<enums::EncryptedFile, ApiError> {
    let user = ctx.user()?;
    let key = ctx.perm_auth_key_id()?;
    let backend = relay.backend.clone();
    ctx.blocking(move || {
        other_end(&backend, key, &request.peer)?;
        Ok(input_file_as(&backend, user, &request.file)?
            .unwrap_or_else(|| types::EncryptedFileEmpty {}.into()))
    })
    .await
}

/// `messages.receivedQueue`: drops the caller's entries up to `max_qts`; their random ids.
pub async fn received_queue(
    ctx: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::ReceivedQueue,
) -> Result<Vec<i64>, ApiError> {
    ctx.user()?;
    let key = ctx.perm_auth_key_id()?;
    let backend = relay.backend.clone();
    ctx.blocking(move || Ok(backend.secrets.acknowledge(key, request.max_qts)?))
        .await
}

/// `messages.readEncryptedHistory`: the other device is told
/// `updateEncryptedMessagesRead`.
pub async fn read_encrypted_history(
    ctx: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::ReadEncryptedHistory,
) -> Result<bool, ApiError> {
    ctx.user()?;
    let key = ctx.perm_auth_key_id()?;
    let now = now_unix();
    // A little slack for clocks that run ahead.
    if request.max_date > now.saturating_add(60) {
        return Err(ApiError::bad_request("MAX_DATE_INVALID"));
    }
    let server = ctx.server().clone();
    let backend = relay.backend.clone();
    ctx.blocking(move || {
        let (chat, other, other_key) = other_end(&backend, key, &request.peer)?;
        let update = types::UpdateEncryptedMessagesRead {
            chat_id: chat.id,
            max_date: request.max_date,
            date: now,
        };
        server.send_device_update(
            other,
            other_key,
            updates_for(&backend, &chat, other, update.into())?,
            false,
        );
        Ok(true)
    })
    .await
}

/// `messages.setEncryptedTyping`: the other device is told `updateEncryptedChatTyping`
/// (transient: no qts, no push).
pub async fn set_encrypted_typing(
    ctx: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::SetEncryptedTyping,
) -> Result<bool, ApiError> {
    ctx.user()?;
    let key = ctx.perm_auth_key_id()?;
    let server = ctx.server().clone();
    let backend = relay.backend.clone();
    ctx.blocking(move || {
        let (chat, other, other_key) = other_end(&backend, key, &request.peer)?;
        if request.typing {
            let update: enums::Updates = types::UpdateShort {
                update: types::UpdateEncryptedChatTyping { chat_id: chat.id }.into(),
                date: now_unix(),
            }
            .into();
            server.send_device_update(other, other_key, Bytes::from(update.to_bytes()), false);
        }
        Ok(true)
    })
    .await
}

/// `messages.reportEncryptedSpam`: accepted (the relay keeps no reports; the chat is
/// checked).
pub async fn report_encrypted_spam(
    ctx: Ctx,
    relay: Arc<Relay>,
    request: functions::messages::ReportEncryptedSpam,
) -> Result<bool, ApiError> {
    ctx.user()?;
    let key = ctx.perm_auth_key_id()?;
    let backend = relay.backend.clone();
    ctx.blocking(move || {
        other_end(&backend, key, &request.peer)?;
        Ok(true)
    })
    .await
}

/// The device `key` was signed out: its queue goes and every chat it is an end of is
/// closed, the other sides told. Blocking.
pub fn device_signed_out(
    server: &ServerHandle,
    backend: &Backend,
    key: i64,
) -> Result<(), ApiError> {
    for chat in backend.secrets.remove_device(key, now_unix())? {
        if let SecretChatState::Discarded { by, .. } = chat.state {
            tell_closed(server, backend, &chat, by);
        }
    }
    Ok(())
}

/// Where a `getDifference` stands: the caller's device, and the client's pts, qts and date.
#[derive(Debug, Clone, Copy)]
pub struct DifferenceFrom {
    /// The user.
    pub user: i64,
    /// The device (permanent auth key).
    pub key: i64,
    /// The client's pts (kept when the difference is made of secret-chat events alone).
    pub pts: i32,
    /// The client's qts: entries up to it are acknowledged.
    pub qts: i32,
    /// The client's state date: chats changed since are told again.
    pub date: i32,
}

/// `updateEncryption` for each of `user`'s chats changed at or after `date`, as device `key`
/// sees it, with the users they name: `updateEncryption` has no qts, so a device that was
/// offline when its chat was accepted or closed would never learn it otherwise (clients take
/// a repeated state as the state it is). Blocking.
fn chat_news(
    backend: &Backend,
    user: i64,
    key: i64,
    date: i32,
) -> Result<(Vec<enums::Update>, Vec<i64>), ApiError> {
    let mut updates = Vec::new();
    let mut users = Vec::new();
    for chat in backend.secrets.chats_of(user)? {
        if chat.changed < date {
            continue;
        }
        // A request by another device of this user is not this device's.
        if chat.state == SecretChatState::Waiting && chat.admin_id == user && chat.admin_key != key
        {
            continue;
        }
        updates.push(encryption_update(&chat, user, key));
        users.push(chat.other_user(user));
    }
    Ok((updates, users))
}

/// `answer` with the secret-chat part of the device's difference: entries of its queue up to
/// the client's qts are acknowledged (a qts of 0 or less acknowledges nothing, as Telethon and
/// Kurigram send when they know none), the next ones (at most [`DIFFERENCE_QTS_LIMIT`]) are
/// added as `new_encrypted_messages`, the chats changed since the client's date as
/// `updateEncryption`s ([`chat_news`]), and the state's qts is the last entry given (the
/// device's when none is). An empty difference with any of these becomes a difference at the
/// client's pts. Blocking.
pub fn with_secret_queue(
    backend: &Backend,
    from: DifferenceFrom,
    answer: enums::updates::Difference,
) -> Result<enums::updates::Difference, ApiError> {
    let state = backend.secrets.queue_state(from.key)?;
    if from.qts > 0 {
        backend
            .secrets
            .acknowledge(from.key, from.qts.min(state.qts))?;
    }
    let after = from.qts.max(0);
    let entries = backend
        .secrets
        .queue(from.key, after, DIFFERENCE_QTS_LIMIT + 1)?;
    let more = entries.len() > DIFFERENCE_QTS_LIMIT;
    let given: Vec<&QueuedSecret> = entries.iter().take(DIFFERENCE_QTS_LIMIT).collect();
    // The state's qts is the last entry given (a send may have landed after the counters
    // were read: the entries read are what the client gets, and the qts must match them).
    let last = given.last().map(|entry| entry.qts);
    let qts = match last {
        Some(last) if more => last,
        Some(last) => last.max(state.qts),
        None => state.qts,
    };
    let messages: Vec<enums::EncryptedMessage> =
        given.iter().map(|entry| encrypted_message(entry)).collect();
    let (news, named) = chat_news(backend, from.user, from.key, from.date)?;
    let users = if named.is_empty() {
        Vec::new()
    } else {
        backend.user_objects(named, from.user)?
    };
    let with_qts = |state: &mut enums::updates::State| {
        let enums::updates::State::State(state) = state;
        state.qts = qts;
    };
    // A difference made of these alone, with the client's pts.
    let alone = |date: i32, messages, news, users| -> enums::updates::Difference {
        let mut state = crate::objects::state(from.pts, date);
        with_qts(&mut state);
        if more {
            types::updates::DifferenceSlice {
                new_messages: Vec::new(),
                new_encrypted_messages: messages,
                other_updates: news,
                chats: Vec::new(),
                users,
                intermediate_state: state,
            }
            .into()
        } else {
            types::updates::Difference {
                new_messages: Vec::new(),
                new_encrypted_messages: messages,
                other_updates: news,
                chats: Vec::new(),
                users,
                state,
            }
            .into()
        }
    };
    Ok(match answer {
        enums::updates::Difference::DifferenceEmpty(empty)
            if !messages.is_empty() || !news.is_empty() =>
        {
            alone(empty.date, messages, news, users)
        }
        enums::updates::Difference::Difference(mut difference) => {
            difference.new_encrypted_messages = messages;
            difference.other_updates.extend(news);
            difference.users.extend(users);
            with_qts(&mut difference.state);
            if more {
                types::updates::DifferenceSlice {
                    new_messages: difference.new_messages,
                    new_encrypted_messages: difference.new_encrypted_messages,
                    other_updates: difference.other_updates,
                    chats: difference.chats,
                    users: difference.users,
                    intermediate_state: difference.state,
                }
                .into()
            } else {
                enums::updates::Difference::Difference(difference)
            }
        }
        enums::updates::Difference::DifferenceSlice(mut slice) => {
            slice.new_encrypted_messages = messages;
            slice.other_updates.extend(news);
            slice.users.extend(users);
            with_qts(&mut slice.intermediate_state);
            enums::updates::Difference::DifferenceSlice(slice)
        }
        other => other,
    })
}

#[cfg(test)]
mod tests;
