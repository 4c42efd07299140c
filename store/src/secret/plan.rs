//! The secret store's rules, written once over ordered rows ([`crate::rows`]): both backends
//! run this code. Keys are [`crate::keys`]' `30` to `37` rows, values [`super::values`].

use crate::BackendError;
use crate::codec::ValueError;
use crate::keys::{self, Prefix};
use crate::rows::{Plan, Rows};

use super::values::{self, SendRecord};
use super::{
    INITIAL_QTS, MAX_QUEUE_PAGE, NewSecretChat, QueueState, QueuedSecret, SecretChat,
    SecretChatState, SecretError, SecretSend, SecretSent, SecretStoreConfig,
};

/// Queue entries an acknowledgement reads at a time.
const ACK_PAGE: usize = 16;

/// The most chats one [`chats_of`] lists (live ones are bounded by the configuration; the
/// discarded ones kept for their retention by how fast a user can make them).
pub(crate) const MAX_CHATS_LISTED: usize = 10_000;

fn corrupt(error: ValueError) -> SecretError {
    SecretError::Backend(BackendError::with_source("secret store", error))
}

fn corrupt_key(error: keys::KeyError) -> SecretError {
    SecretError::Backend(BackendError::with_source("secret store", error))
}

fn chat_key(id: i32, access_hash: i64) -> Vec<u8> {
    keys::user_row(Prefix::SecretChat, &[i64::from(id), access_hash])
}

fn user_chat_key(user: i64, id: i32) -> Vec<u8> {
    keys::user_row(Prefix::SecretUserChat, &[user, i64::from(id)])
}

fn key_chat_key(key: i64, id: i32, access_hash: i64) -> Vec<u8> {
    keys::user_row(Prefix::SecretKeyChat, &[key, i64::from(id), access_hash])
}

fn queue_key(key: i64, qts: i32) -> Vec<u8> {
    keys::user_row(Prefix::SecretQueue, &[key, i64::from(qts)])
}

fn device_key(key: i64) -> Vec<u8> {
    keys::user_row(Prefix::SecretDevice, &[key])
}

fn send_key(sender_key: i64, chat_id: i32, random_id: i64) -> Vec<u8> {
    keys::user_row(
        Prefix::SecretSend,
        &[sender_key, i64::from(chat_id), random_id],
    )
}

fn live_key(user: i64) -> Vec<u8> {
    keys::user_row(Prefix::SecretUserLive, &[user])
}

/// The expiry row of `target`, whose retention ends at `at`.
fn expiry_key(at: i64, target: &[u8]) -> Vec<u8> {
    let mut key = keys::user_row(Prefix::SecretExpiry, &[at]);
    key.extend_from_slice(target);
    key
}

fn retention_end(config: &SecretStoreConfig, date: i32) -> i64 {
    i64::from(date).saturating_add(i64::from(config.retention_secs))
}

fn i64_row(rows: &dyn Rows, key: &[u8]) -> Result<Option<i64>, SecretError> {
    rows.get(key)?
        .map(|value| crate::user::values::decode_i64(&value).map_err(corrupt))
        .transpose()
}

// --- reads ---

pub(crate) fn chat(
    rows: &dyn Rows,
    id: i32,
    access_hash: i64,
) -> Result<Option<SecretChat>, SecretError> {
    rows.get(&chat_key(id, access_hash))?
        .map(|value| values::decode_chat(&value).map_err(corrupt))
        .transpose()
}

pub(crate) fn chat_of(
    rows: &dyn Rows,
    user: i64,
    id: i32,
) -> Result<Option<SecretChat>, SecretError> {
    match i64_row(rows, &user_chat_key(user, id))? {
        Some(access_hash) => chat(rows, id, access_hash),
        None => Ok(None),
    }
}

pub(crate) fn chats_of(rows: &dyn Rows, user: i64) -> Result<Vec<SecretChat>, SecretError> {
    let mut chats = Vec::new();
    for (key, value) in rows.scan(
        &keys::user_row(Prefix::SecretUserChat, &[user]),
        MAX_CHATS_LISTED,
    )? {
        let [_, id] =
            keys::decode_user_row::<2>(Prefix::SecretUserChat, &key).map_err(corrupt_key)?;
        let id =
            i32::try_from(id).map_err(|_| corrupt_key(keys::KeyError(Prefix::SecretUserChat)))?;
        let access_hash = crate::user::values::decode_i64(&value).map_err(corrupt)?;
        // An index row outlives its chat by nothing: both go in one batch.
        if let Some(found) = chat(rows, id, access_hash)? {
            chats.push(found);
        }
    }
    Ok(chats)
}

pub(crate) fn queue_state(rows: &dyn Rows, key: i64) -> Result<QueueState, SecretError> {
    Ok(rows
        .get(&device_key(key))?
        .map(|value| values::decode_state(&value).map_err(corrupt))
        .transpose()?
        .unwrap_or(QueueState {
            qts: INITIAL_QTS,
            acknowledged: INITIAL_QTS,
            pending: 0,
        }))
}

pub(crate) fn queue(
    rows: &dyn Rows,
    key: i64,
    after_qts: i32,
    limit: usize,
) -> Result<Vec<QueuedSecret>, SecretError> {
    let limit = limit.min(MAX_QUEUE_PAGE);
    let Some(first) = after_qts.max(0).checked_add(1) else {
        return Ok(Vec::new());
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    // Entries run by qts: the page starts at the first one past `after_qts`, nothing before
    // it is read.
    rows.scan_from(
        &keys::user_row(Prefix::SecretQueue, &[key]),
        &queue_key(key, first),
        limit,
    )?
    .into_iter()
    .map(|(_, value)| values::decode_queued(&value).map_err(corrupt))
    .collect()
}

// --- writes ---

fn write_chat(plan: &mut Plan<'_>, chat: &SecretChat) {
    plan.put(
        chat_key(chat.id, chat.access_hash),
        values::encode_chat(chat),
    );
}

fn at_limit(rows: &dyn Rows, config: &SecretStoreConfig, user: i64) -> Result<bool, SecretError> {
    let max = i64::try_from(config.max_chats_per_user).unwrap_or(i64::MAX);
    Ok(i64_row(rows, &live_key(user))?.unwrap_or(0) >= max)
}

fn add_live(plan: &mut Plan<'_>, user: i64, delta: i64) -> Result<i64, SecretError> {
    let count = i64_row(plan, &live_key(user))?
        .unwrap_or(0)
        .saturating_add(delta)
        .max(0);
    if count == 0 {
        plan.delete(live_key(user));
    } else {
        plan.put(live_key(user), crate::user::values::encode_i64(count));
    }
    Ok(count)
}

pub(crate) fn request(
    plan: &mut Plan<'_>,
    config: &SecretStoreConfig,
    new: &NewSecretChat,
) -> Result<SecretChat, SecretError> {
    if new.g_a.len() > config.max_public_len {
        return Err(SecretError::DataTooLong);
    }
    if let Some(existing) = chat_of(plan, new.admin_id, new.id)? {
        let same = existing.admin_id == new.admin_id
            && existing.admin_key == new.admin_key
            && existing.participant_id == new.participant_id
            && existing.g_a == new.g_a;
        return if same {
            Ok(existing)
        } else {
            Err(SecretError::RandomIdDuplicate)
        };
    }
    if plan
        .get(&user_chat_key(new.participant_id, new.id))?
        .is_some()
    {
        return Err(SecretError::RandomIdDuplicate);
    }
    // A request counts against its requester only: requests to a user cannot fill that
    // user's place (the invited user's count grows when they accept).
    if at_limit(plan, config, new.admin_id)? {
        return Err(SecretError::TooManyChats);
    }
    let chat = SecretChat {
        id: new.id,
        access_hash: new.access_hash,
        date: new.date,
        changed: new.date,
        admin_id: new.admin_id,
        admin_key: new.admin_key,
        participant_id: new.participant_id,
        participant_key: None,
        g_a: new.g_a.clone(),
        g_b: Vec::new(),
        key_fingerprint: 0,
        state: SecretChatState::Waiting,
    };
    write_chat(plan, &chat);
    let hash = crate::user::values::encode_i64(chat.access_hash);
    plan.put(user_chat_key(chat.admin_id, chat.id), hash.clone());
    plan.put(user_chat_key(chat.participant_id, chat.id), hash);
    plan.put(
        key_chat_key(chat.admin_key, chat.id, chat.access_hash),
        Vec::new(),
    );
    add_live(plan, chat.admin_id, 1)?;
    // A request not accepted within the retention period lapses.
    plan.put(
        expiry_key(
            retention_end(config, new.date),
            &chat_key(chat.id, chat.access_hash),
        ),
        Vec::new(),
    );
    Ok(chat)
}

#[allow(clippy::too_many_arguments, reason = "the fields of acceptEncryption")]
pub(crate) fn accept(
    plan: &mut Plan<'_>,
    config: &SecretStoreConfig,
    id: i32,
    access_hash: i64,
    user: i64,
    key: i64,
    g_b: &[u8],
    key_fingerprint: i64,
    date: i32,
) -> Result<SecretChat, SecretError> {
    if g_b.len() > config.max_public_len {
        return Err(SecretError::DataTooLong);
    }
    let mut chat = match chat(plan, id, access_hash)? {
        Some(chat) if chat.participant_id == user => chat,
        _ => return Err(SecretError::ChatIdInvalid),
    };
    match chat.state {
        SecretChatState::Waiting => {}
        SecretChatState::Ready => return Err(SecretError::EncryptionAlreadyAccepted),
        // A chat accepted and then closed was accepted, as far as this call is concerned.
        SecretChatState::Discarded { .. } if chat.participant_key.is_some() => {
            return Err(SecretError::EncryptionAlreadyAccepted);
        }
        SecretChatState::Discarded { .. } => return Err(SecretError::EncryptionAlreadyDeclined),
    }
    if at_limit(plan, config, user)? {
        return Err(SecretError::TooManyChats);
    }
    chat.state = SecretChatState::Ready;
    chat.participant_key = Some(key);
    chat.g_b = g_b.to_vec();
    chat.key_fingerprint = key_fingerprint;
    chat.changed = date;
    write_chat(plan, &chat);
    plan.put(key_chat_key(key, chat.id, chat.access_hash), Vec::new());
    add_live(plan, user, 1)?;
    Ok(chat)
}

/// Discards `chat` (not discarded yet) as `by` did at `date`.
fn close(
    plan: &mut Plan<'_>,
    config: &SecretStoreConfig,
    mut chat: SecretChat,
    by: i64,
    history_deleted: bool,
    date: i32,
) -> Result<SecretChat, SecretError> {
    chat.state = SecretChatState::Discarded {
        history_deleted,
        by,
    };
    chat.changed = date;
    write_chat(plan, &chat);
    add_live(plan, chat.admin_id, -1)?;
    // The invited user counted the chat only once they accepted it.
    if chat.participant_key.is_some() {
        add_live(plan, chat.participant_id, -1)?;
    }
    plan.put(
        expiry_key(
            retention_end(config, date),
            &chat_key(chat.id, chat.access_hash),
        ),
        Vec::new(),
    );
    Ok(chat)
}

pub(crate) fn discard(
    plan: &mut Plan<'_>,
    config: &SecretStoreConfig,
    user: i64,
    id: i32,
    history_deleted: bool,
    date: i32,
) -> Result<SecretChat, SecretError> {
    let Some(chat) = chat_of(plan, user, id)? else {
        return Err(SecretError::EncryptionIdInvalid);
    };
    if matches!(chat.state, SecretChatState::Discarded { .. }) {
        return Err(SecretError::EncryptionAlreadyDeclined);
    }
    close(plan, config, chat, user, history_deleted, date)
}

/// Every refusal comes before the first write, so that a refused send leaves `plan` as it
/// was: the RocksDB backend commits a group of sends in one plan and relies on it.
pub(crate) fn send(
    plan: &mut Plan<'_>,
    config: &SecretStoreConfig,
    send: &SecretSend,
) -> Result<SecretSent, SecretError> {
    if send.data.is_empty() {
        return Err(SecretError::DataInvalid);
    }
    if send.data.len() > config.max_data_len {
        return Err(SecretError::DataTooLong);
    }
    let record_key = send_key(send.sender_key, send.chat_id, send.random_id);
    if let Some(value) = plan.get(&record_key)? {
        let record = values::decode_send(&value).map_err(corrupt)?;
        return Ok(SecretSent {
            date: record.date,
            file: record.file,
            recipient: record.recipient,
            recipient_key: record.recipient_key,
            qts: None,
        });
    }
    let Some(chat) = chat(plan, send.chat_id, send.access_hash)? else {
        return Err(SecretError::ChatIdInvalid);
    };
    match chat.state {
        SecretChatState::Ready => {}
        SecretChatState::Waiting => return Err(SecretError::EncryptionIdInvalid),
        SecretChatState::Discarded { .. } => return Err(SecretError::EncryptionDeclined),
    }
    let Some(recipient_key) = chat.other_key(send.sender_key) else {
        return Err(SecretError::ChatIdInvalid);
    };
    let recipient = chat.other_user(send.sender);
    let mut state = queue_state(plan, recipient_key)?;
    if usize::try_from(state.pending).unwrap_or(usize::MAX) >= config.max_queue_len {
        return Err(SecretError::QueueFull);
    }
    let Some(qts) = state.qts.checked_add(1) else {
        return Err(SecretError::QueueFull);
    };
    state.qts = qts;
    state.pending = state.pending.saturating_add(1);
    let entry = QueuedSecret {
        qts,
        kind: send.kind,
        chat_id: send.chat_id,
        random_id: send.random_id,
        date: send.date,
        data: send.data.clone(),
        file: send.file.clone(),
    };
    let entry_key = queue_key(recipient_key, qts);
    let end = retention_end(config, send.date);
    plan.put(expiry_key(end, &entry_key), Vec::new());
    plan.put(entry_key, values::encode_queued(&entry));
    plan.put(device_key(recipient_key), values::encode_state(state));
    plan.put(expiry_key(end, &record_key), Vec::new());
    plan.put(
        record_key,
        values::encode_send(&SendRecord {
            date: send.date,
            recipient,
            recipient_key,
            file: send.file.clone(),
        }),
    );
    Ok(SecretSent {
        date: send.date,
        file: send.file.clone(),
        recipient,
        recipient_key,
        qts: Some(qts),
    })
}

/// Removes queue entry `qts` of `key` with its expiry row, if it is there; its random id.
fn drop_entry(
    plan: &mut Plan<'_>,
    config: &SecretStoreConfig,
    key: i64,
    qts: i32,
) -> Result<Option<i64>, SecretError> {
    let entry_key = queue_key(key, qts);
    let Some(value) = plan.get(&entry_key)? else {
        return Ok(None);
    };
    let entry = values::decode_queued(&value).map_err(corrupt)?;
    plan.delete(expiry_key(retention_end(config, entry.date), &entry_key));
    plan.delete(entry_key);
    Ok(Some(entry.random_id))
}

pub(crate) fn acknowledge(
    plan: &mut Plan<'_>,
    config: &SecretStoreConfig,
    key: i64,
    max_qts: i32,
) -> Result<Vec<i64>, SecretError> {
    if max_qts <= 0 {
        return Ok(Vec::new());
    }
    let mut state = queue_state(plan, key)?;
    if max_qts > state.qts {
        return Err(SecretError::MaxQtsInvalid);
    }
    let mut dropped = Vec::new();
    let prefix = keys::user_row(Prefix::SecretQueue, &[key]);
    let mut start = queue_key(key, 0);
    // In pages, each read from where the last ended: what is read at once stays bounded
    // whatever the queue holds (entries carry whole ciphertexts).
    'pages: loop {
        let page = plan.scan_from(&prefix, &start, ACK_PAGE)?;
        let full = page.len() == ACK_PAGE;
        for (row, value) in page {
            let entry = values::decode_queued(&value).map_err(corrupt)?;
            if entry.qts > max_qts {
                break 'pages;
            }
            plan.delete(expiry_key(retention_end(config, entry.date), &row));
            plan.delete(row);
            dropped.push(entry.random_id);
            start = queue_key(key, entry.qts.saturating_add(1));
        }
        if !full {
            break;
        }
    }
    state.pending = state
        .pending
        .saturating_sub(u32::try_from(dropped.len()).unwrap_or(u32::MAX));
    state.acknowledged = state.acknowledged.max(max_qts);
    plan.put(device_key(key), values::encode_state(state));
    Ok(dropped)
}

pub(crate) fn remove_device(
    plan: &mut Plan<'_>,
    config: &SecretStoreConfig,
    key: i64,
    date: i32,
) -> Result<Vec<SecretChat>, SecretError> {
    let mut closed = Vec::new();
    let prefix = keys::user_row(Prefix::SecretKeyChat, &[key]);
    let mut index = Vec::new();
    let mut start = prefix.clone();
    loop {
        let page = plan.scan_from(&prefix, &start, MAX_CHATS_LISTED)?;
        let full = page.len() == MAX_CHATS_LISTED;
        if let Some((last, _)) = page.last() {
            // The next page starts just past the last key of this one.
            start.clone_from(last);
            start.push(0);
        }
        index.extend(page);
        if !full {
            break;
        }
    }
    for (row, _) in index {
        let [_, id, access_hash] =
            keys::decode_user_row::<3>(Prefix::SecretKeyChat, &row).map_err(corrupt_key)?;
        plan.delete(row);
        let id =
            i32::try_from(id).map_err(|_| corrupt_key(keys::KeyError(Prefix::SecretKeyChat)))?;
        let Some(found) = chat(plan, id, access_hash)? else {
            continue;
        };
        if matches!(found.state, SecretChatState::Discarded { .. }) {
            continue;
        }
        let by = if found.admin_key == key {
            found.admin_id
        } else {
            found.participant_id
        };
        closed.push(close(plan, config, found, by, false, date)?);
    }
    let state = queue_state(plan, key)?;
    if state.qts > INITIAL_QTS {
        acknowledge(plan, config, key, state.qts)?;
    }
    plan.delete(device_key(key));
    Ok(closed)
}

fn file_key(id: i64) -> Vec<u8> {
    keys::user_row(Prefix::SecretFile, &[id])
}

pub(crate) fn put_file(
    plan: &mut Plan<'_>,
    config: &SecretStoreConfig,
    id: i64,
    reference: &[u8],
    date: i32,
) -> Result<(), SecretError> {
    if reference.len() > config.max_data_len {
        return Err(SecretError::DataTooLong);
    }
    let key = file_key(id);
    let end = retention_end(config, date);
    plan.put(expiry_key(end, &key), Vec::new());
    plan.put(key, values::encode_file(end, reference));
    Ok(())
}

pub(crate) fn file(rows: &dyn Rows, id: i64) -> Result<Option<Vec<u8>>, SecretError> {
    rows.get(&file_key(id))?
        .map(|value| {
            values::decode_file(&value)
                .map(|(_, reference)| reference)
                .map_err(corrupt)
        })
        .transpose()
}

pub(crate) fn purge_expired(
    plan: &mut Plan<'_>,
    config: &SecretStoreConfig,
    now: i32,
    limit: usize,
) -> Result<usize, SecretError> {
    let mut removed = 0;
    for (row, _) in plan.scan(&keys::user_row(Prefix::SecretExpiry, &[]), limit)? {
        let ([at], target) =
            keys::decode_user_row_tail::<1>(Prefix::SecretExpiry, &row).map_err(corrupt_key)?;
        if at > i64::from(now) {
            break;
        }
        let target = target.to_vec();
        plan.delete(row);
        removed += 1;
        match Prefix::of(&target) {
            Some(Prefix::SecretQueue) => {
                let [key, qts] = keys::decode_user_row::<2>(Prefix::SecretQueue, &target)
                    .map_err(corrupt_key)?;
                let qts = i32::try_from(qts)
                    .map_err(|_| corrupt_key(keys::KeyError(Prefix::SecretQueue)))?;
                if drop_entry(plan, config, key, qts)?.is_some() {
                    let mut state = queue_state(plan, key)?;
                    state.pending = state.pending.saturating_sub(1);
                    plan.put(device_key(key), values::encode_state(state));
                }
            }
            Some(Prefix::SecretChat) => {
                let [id, access_hash] =
                    keys::decode_user_row::<2>(Prefix::SecretChat, &target).map_err(corrupt_key)?;
                let id = i32::try_from(id)
                    .map_err(|_| corrupt_key(keys::KeyError(Prefix::SecretChat)))?;
                let Some(found) = chat(plan, id, access_hash)? else {
                    continue;
                };
                let due = match found.state {
                    // A request nobody accepted in time lapses.
                    SecretChatState::Waiting => {
                        add_live(plan, found.admin_id, -1)?;
                        true
                    }
                    // A closed chat goes at the end of its own retention (a request's row
                    // may come first).
                    SecretChatState::Discarded { .. } => {
                        retention_end(config, found.changed) <= i64::from(now)
                    }
                    // The request's row of a chat since accepted.
                    SecretChatState::Ready => false,
                };
                if due {
                    plan.delete(user_chat_key(found.admin_id, id));
                    plan.delete(user_chat_key(found.participant_id, id));
                    plan.delete(key_chat_key(found.admin_key, id, access_hash));
                    if let Some(key) = found.participant_key {
                        plan.delete(key_chat_key(key, id, access_hash));
                    }
                    plan.delete(target);
                }
            }
            Some(Prefix::SecretFile) => {
                // A file put again lives to its latest end: an earlier expiry row leaves it.
                let until = match plan.get(&target)? {
                    Some(value) => values::decode_file(&value).map_err(corrupt)?.0,
                    None => i64::MIN,
                };
                if until <= i64::from(now) {
                    plan.delete(target);
                }
            }
            _ => plan.delete(target),
        }
    }
    Ok(removed)
}

/// Implements [`super::SecretStore`] for a backend with `config`, `read(f)`, `write(f)` and
/// `send_one(send)` in the shape of [`super::MemorySecretStore`]'s.
macro_rules! secret_store_over_rows {
    ($backend:ty) => {
        impl $crate::secret::SecretStore for $backend {
            fn request(
                &self,
                chat: &$crate::secret::NewSecretChat,
            ) -> Result<$crate::secret::SecretChat, $crate::secret::SecretError> {
                let config = self.config;
                self.write(|plan| $crate::secret::plan::request(plan, &config, chat))
            }
            fn chat(
                &self,
                id: i32,
                access_hash: i64,
            ) -> Result<Option<$crate::secret::SecretChat>, $crate::secret::SecretError> {
                self.read(|rows| $crate::secret::plan::chat(rows, id, access_hash))
            }
            fn chat_of(
                &self,
                user: i64,
                id: i32,
            ) -> Result<Option<$crate::secret::SecretChat>, $crate::secret::SecretError> {
                self.read(|rows| $crate::secret::plan::chat_of(rows, user, id))
            }
            fn chats_of(
                &self,
                user: i64,
            ) -> Result<Vec<$crate::secret::SecretChat>, $crate::secret::SecretError> {
                self.read(|rows| $crate::secret::plan::chats_of(rows, user))
            }
            fn accept(
                &self,
                id: i32,
                access_hash: i64,
                user: i64,
                key: i64,
                g_b: &[u8],
                key_fingerprint: i64,
                date: i32,
            ) -> Result<$crate::secret::SecretChat, $crate::secret::SecretError> {
                let config = self.config;
                self.write(|plan| {
                    $crate::secret::plan::accept(
                        plan,
                        &config,
                        id,
                        access_hash,
                        user,
                        key,
                        g_b,
                        key_fingerprint,
                        date,
                    )
                })
            }
            fn discard(
                &self,
                user: i64,
                id: i32,
                history_deleted: bool,
                date: i32,
            ) -> Result<$crate::secret::SecretChat, $crate::secret::SecretError> {
                let config = self.config;
                self.write(|plan| {
                    $crate::secret::plan::discard(plan, &config, user, id, history_deleted, date)
                })
            }
            fn send(
                &self,
                send: &$crate::secret::SecretSend,
            ) -> Result<$crate::secret::SecretSent, $crate::secret::SecretError> {
                self.send_one(send)
            }
            fn queue(
                &self,
                key: i64,
                after_qts: i32,
                limit: usize,
            ) -> Result<Vec<$crate::secret::QueuedSecret>, $crate::secret::SecretError> {
                self.read(|rows| $crate::secret::plan::queue(rows, key, after_qts, limit))
            }
            fn queue_state(
                &self,
                key: i64,
            ) -> Result<$crate::secret::QueueState, $crate::secret::SecretError> {
                self.read(|rows| $crate::secret::plan::queue_state(rows, key))
            }
            fn acknowledge(
                &self,
                key: i64,
                max_qts: i32,
            ) -> Result<Vec<i64>, $crate::secret::SecretError> {
                let config = self.config;
                self.write(|plan| $crate::secret::plan::acknowledge(plan, &config, key, max_qts))
            }
            fn remove_device(
                &self,
                key: i64,
                date: i32,
            ) -> Result<Vec<$crate::secret::SecretChat>, $crate::secret::SecretError> {
                let config = self.config;
                self.write(|plan| $crate::secret::plan::remove_device(plan, &config, key, date))
            }
            fn put_file(
                &self,
                id: i64,
                reference: &[u8],
                date: i32,
            ) -> Result<(), $crate::secret::SecretError> {
                let config = self.config;
                self.write(|plan| {
                    $crate::secret::plan::put_file(plan, &config, id, reference, date)
                })
            }
            fn file(&self, id: i64) -> Result<Option<Vec<u8>>, $crate::secret::SecretError> {
                self.read(|rows| $crate::secret::plan::file(rows, id))
            }
            fn purge_expired(
                &self,
                now: i32,
                limit: usize,
            ) -> Result<usize, $crate::secret::SecretError> {
                let config = self.config;
                self.write(|plan| $crate::secret::plan::purge_expired(plan, &config, now, limit))
            }
        }
    };
}
pub(crate) use secret_store_over_rows;
