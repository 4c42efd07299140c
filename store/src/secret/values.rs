//! How the secret store's rows are written as bytes, and read back without trusting them (the
//! conventions of [`crate::codec`]). Layouts are in `docs/storage-format.md`.

use crate::codec::{Reader, ValueError, Writer};

use super::{QueueState, QueuedSecret, SecretChat, SecretChatState, SecretKind};

fn write_option_bytes(w: &mut Writer, value: Option<&[u8]>) {
    match value {
        Some(bytes) => w.u8(1).bytes(bytes),
        None => w.u8(0),
    };
}

fn read_option_bytes(r: &mut Reader<'_>) -> Result<Option<Vec<u8>>, ValueError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.bytes()?)),
        _ => Err(r.error()),
    }
}

fn kind_tag(kind: SecretKind) -> u8 {
    match kind {
        SecretKind::Message => 0,
        SecretKind::Service => 1,
    }
}

fn read_kind(r: &mut Reader<'_>) -> Result<SecretKind, ValueError> {
    match r.u8()? {
        0 => Ok(SecretKind::Message),
        1 => Ok(SecretKind::Service),
        _ => Err(r.error()),
    }
}

/// Writes a chat (`30` row).
pub(crate) fn encode_chat(chat: &SecretChat) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(chat.id)
        .i64(chat.access_hash)
        .i32(chat.date)
        .i32(chat.changed)
        .i64(chat.admin_id)
        .i64(chat.admin_key)
        .i64(chat.participant_id);
    match chat.participant_key {
        Some(key) => w.u8(1).i64(key),
        None => w.u8(0),
    };
    w.bytes(&chat.g_a)
        .bytes(&chat.g_b)
        .i64(chat.key_fingerprint);
    match chat.state {
        SecretChatState::Waiting => w.u8(0),
        SecretChatState::Ready => w.u8(1),
        SecretChatState::Discarded {
            history_deleted,
            by,
        } => w.u8(2).u8(u8::from(history_deleted)).i64(by),
    };
    w.finish()
}

/// Reads [`encode_chat`].
pub(crate) fn decode_chat(value: &[u8]) -> Result<SecretChat, ValueError> {
    let mut r = Reader::new(value, "secret chat")?;
    let id = r.i32()?;
    let access_hash = r.i64()?;
    let date = r.i32()?;
    let changed = r.i32()?;
    let admin_id = r.i64()?;
    let admin_key = r.i64()?;
    let participant_id = r.i64()?;
    let participant_key = match r.u8()? {
        0 => None,
        1 => Some(r.i64()?),
        _ => return Err(r.error()),
    };
    let g_a = r.bytes()?;
    let g_b = r.bytes()?;
    let key_fingerprint = r.i64()?;
    let state = match r.u8()? {
        0 => SecretChatState::Waiting,
        1 => SecretChatState::Ready,
        2 => {
            let history_deleted = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(r.error()),
            };
            SecretChatState::Discarded {
                history_deleted,
                by: r.i64()?,
            }
        }
        _ => return Err(r.error()),
    };
    r.end()?;
    Ok(SecretChat {
        id,
        access_hash,
        date,
        changed,
        admin_id,
        admin_key,
        participant_id,
        participant_key,
        g_a,
        g_b,
        key_fingerprint,
        state,
    })
}

/// Writes a queue entry (`33` row).
pub(crate) fn encode_queued(entry: &QueuedSecret) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(entry.qts)
        .u8(kind_tag(entry.kind))
        .i32(entry.chat_id)
        .i64(entry.random_id)
        .i32(entry.date)
        .bytes(&entry.data);
    write_option_bytes(&mut w, entry.file.as_deref());
    w.finish()
}

/// Reads [`encode_queued`].
pub(crate) fn decode_queued(value: &[u8]) -> Result<QueuedSecret, ValueError> {
    let mut r = Reader::new(value, "secret queue entry")?;
    let entry = QueuedSecret {
        qts: r.i32()?,
        kind: read_kind(&mut r)?,
        chat_id: r.i32()?,
        random_id: r.i64()?,
        date: r.i32()?,
        data: r.bytes()?,
        file: read_option_bytes(&mut r)?,
    };
    r.end()?;
    Ok(entry)
}

/// Writes a device's counters (`34` row).
pub(crate) fn encode_state(state: QueueState) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(state.qts).i32(state.acknowledged).u32(state.pending);
    w.finish()
}

/// Reads [`encode_state`].
pub(crate) fn decode_state(value: &[u8]) -> Result<QueueState, ValueError> {
    let mut r = Reader::new(value, "secret queue state")?;
    let state = QueueState {
        qts: r.i32()?,
        acknowledged: r.i32()?,
        pending: r.u32()?,
    };
    r.end()?;
    Ok(state)
}

/// A relayed send as its record keeps it (`35` row): what a repeat is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SendRecord {
    pub(crate) date: i32,
    pub(crate) recipient: i64,
    pub(crate) recipient_key: i64,
    pub(crate) file: Option<Vec<u8>>,
}

/// Writes a send record.
pub(crate) fn encode_send(record: &SendRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(record.date)
        .i64(record.recipient)
        .i64(record.recipient_key);
    write_option_bytes(&mut w, record.file.as_deref());
    w.finish()
}

/// Reads [`encode_send`].
pub(crate) fn decode_send(value: &[u8]) -> Result<SendRecord, ValueError> {
    let mut r = Reader::new(value, "secret send")?;
    let record = SendRecord {
        date: r.i32()?,
        recipient: r.i64()?,
        recipient_key: r.i64()?,
        file: read_option_bytes(&mut r)?,
    };
    r.end()?;
    Ok(record)
}

/// Writes a file row (`38` row): the end of its retention, then the reference.
pub(crate) fn encode_file(until: i64, reference: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.i64(until).bytes(reference);
    w.finish()
}

/// Reads [`encode_file`].
pub(crate) fn decode_file(value: &[u8]) -> Result<(i64, Vec<u8>), ValueError> {
    let mut r = Reader::new(value, "secret file")?;
    let until = r.i64()?;
    let reference = r.bytes()?;
    r.end()?;
    Ok((until, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(state: SecretChatState, participant_key: Option<i64>) -> SecretChat {
        SecretChat {
            id: -7,
            access_hash: i64::MIN,
            date: 1_700_000_000,
            changed: 1_700_000_001,
            admin_id: 1,
            admin_key: -2,
            participant_id: 3,
            participant_key,
            g_a: vec![9; 256],
            g_b: vec![],
            key_fingerprint: 42,
            state,
        }
    }

    #[test]
    fn chats_round_trip_in_every_state() {
        for (state, key) in [
            (SecretChatState::Waiting, None),
            (SecretChatState::Ready, Some(5)),
            (
                SecretChatState::Discarded {
                    history_deleted: true,
                    by: 3,
                },
                Some(-5),
            ),
        ] {
            let value = chat(state, key);
            assert_eq!(decode_chat(&encode_chat(&value)), Ok(value));
        }
    }

    #[test]
    fn entries_states_and_sends_round_trip() {
        let entry = QueuedSecret {
            qts: 2,
            kind: SecretKind::Service,
            chat_id: 9,
            random_id: -1,
            date: 5,
            data: vec![1, 2, 3],
            file: Some(vec![4]),
        };
        assert_eq!(decode_queued(&encode_queued(&entry)), Ok(entry));
        let state = QueueState {
            qts: 7,
            acknowledged: 3,
            pending: 4,
        };
        assert_eq!(decode_state(&encode_state(state)), Ok(state));
        let record = SendRecord {
            date: 1,
            recipient: 2,
            recipient_key: 3,
            file: None,
        };
        assert_eq!(decode_send(&encode_send(&record)), Ok(record));
        assert_eq!(
            decode_file(&encode_file(-3, b"ref")),
            Ok((-3, b"ref".to_vec()))
        );
    }

    #[test]
    fn truncated_extended_or_mistagged_rows_are_errors() {
        let value = encode_chat(&chat(SecretChatState::Ready, Some(1)));
        for len in 0..value.len() {
            assert!(decode_chat(value.get(..len).unwrap_or_default()).is_err());
        }
        let mut longer = value;
        longer.push(0);
        assert!(decode_chat(&longer).is_err());
        let mut entry = encode_queued(&QueuedSecret {
            qts: 1,
            kind: SecretKind::Message,
            chat_id: 1,
            random_id: 1,
            date: 1,
            data: vec![],
            file: None,
        });
        // The kind byte follows the version byte and the qts.
        if let Some(kind) = entry.get_mut(5) {
            *kind = 7;
        }
        assert!(decode_queued(&entry).is_err());
    }
}
