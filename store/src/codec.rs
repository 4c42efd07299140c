//! Value encodings: how records are written as bytes, and read back without trusting them.
//!
//! Every value starts with a one-byte version (1), then its fields: integers little-endian,
//! byte strings with a 4-byte length, options with a presence byte, boxes and peers as in
//! [`crate::keys`] (a tag byte and an id). Reading checks every length against what is left
//! before allocating, refuses unknown versions and tags and trailing bytes, and never panics:
//! a corrupted value is an error, not a crash. Layouts are in `docs/storage-format.md`.

use crate::auth_key::{AUTH_KEY_LEN, AuthKeyRecord, KeyLifetime};
use crate::file::{ContentId, FileInfo};
use crate::message::{
    BoxId, BoxState, Delivery, GroupCounts, Membership, Participant, Peer, Reaction, Role,
    StoredMessage, UpdateEntry, UpdateKind,
};

/// The version byte every value starts with.
pub const VALUE_VERSION: u8 = 1;

/// A value that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0} value")]
pub struct ValueError(pub &'static str);

/// Writes fields.
#[derive(Debug, Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    /// A value of the current version.
    pub fn new() -> Self {
        Self(vec![VALUE_VERSION])
    }
    /// The bytes.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }
    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    pub(crate) fn i32(&mut self, value: i32) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    pub(crate) fn i64(&mut self, value: i64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    pub(crate) fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(value);
        self
    }
    fn box_id(&mut self, value: BoxId) -> &mut Self {
        match value {
            BoxId::User(id) => self.u8(0).i64(id),
            BoxId::Channel(id) => self.u8(1).i64(id),
        }
    }
    fn peer(&mut self, value: Peer) -> &mut Self {
        match value {
            Peer::User(id) => self.u8(0).i64(id),
            Peer::Chat(id) => self.u8(1).i64(id),
            Peer::Channel(id) => self.u8(2).i64(id),
        }
    }
}

/// Reads fields, checking each against what is left.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Starts reading a value of kind `what` (for errors); checks the version.
    pub fn new(value: &'a [u8], what: &'static str) -> Result<Self, ValueError> {
        match value.split_first() {
            Some((&VALUE_VERSION, rest)) => Ok(Self { rest, what }),
            _ => Err(ValueError(what)),
        }
    }
    pub(crate) fn error(&self) -> ValueError {
        ValueError(self.what)
    }
    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], ValueError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(ValueError(self.what))?;
        self.rest = rest;
        Ok(*head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, ValueError> {
        Ok(self.take::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, ValueError> {
        Ok(u32::from_le_bytes(self.take::<4>()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, ValueError> {
        Ok(i32::from_le_bytes(self.take::<4>()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, ValueError> {
        Ok(i64::from_le_bytes(self.take::<8>()?))
    }
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, ValueError> {
        let len = usize::try_from(self.u32()?).map_err(|_| self.error())?;
        if len > self.rest.len() {
            return Err(self.error());
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head.to_vec())
    }
    pub(crate) fn count(&mut self, min_item: usize) -> Result<usize, ValueError> {
        let count = usize::try_from(self.u32()?).map_err(|_| self.error())?;
        if count.saturating_mul(min_item) > self.rest.len() {
            return Err(self.error());
        }
        Ok(count)
    }
    fn box_id(&mut self) -> Result<BoxId, ValueError> {
        match (self.u8()?, self.i64()?) {
            (0, id) => Ok(BoxId::User(id)),
            (1, id) => Ok(BoxId::Channel(id)),
            _ => Err(self.error()),
        }
    }
    fn peer(&mut self) -> Result<Peer, ValueError> {
        match (self.u8()?, self.i64()?) {
            (0, id) => Ok(Peer::User(id)),
            (1, id) => Ok(Peer::Chat(id)),
            (2, id) => Ok(Peer::Channel(id)),
            _ => Err(self.error()),
        }
    }
    /// Whether every byte has been read (for a value whose last fields are optional).
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Checks that nothing is left.
    pub fn end(self) -> Result<(), ValueError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ValueError(self.what))
        }
    }
}

/// A stored copy of a message, as the RocksDB backend keeps it under its chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// The message.
    pub message: StoredMessage,
    /// Where the other copies of it are (box, id).
    pub others: Vec<(BoxId, i32)>,
    /// Its ordinal in its chat in this box: 1 for the chat's first message, never reused
    /// (positions in the history are counted from ordinals and the deleted ones).
    pub ordinal: i32,
}

/// Writes a [`MessageRecord`].
pub fn encode_message(record: &MessageRecord) -> Vec<u8> {
    let MessageRecord {
        message,
        others,
        ordinal,
    } = record;
    let mut w = Writer::new();
    w.i32(message.id)
        .box_id(message.box_id)
        .peer(message.peer)
        .i64(message.from)
        .u8(u8::from(message.out))
        .i32(message.date);
    match message.edit_date {
        Some(date) => w.u8(1).i32(date),
        None => w.u8(0),
    };
    w.i64(message.random_id).bytes(&message.body);
    match &message.media {
        Some(media) => w.u8(1).bytes(media),
        None => w.u8(0),
    };
    w.u32(message.flags)
        .i32(*ordinal)
        .u32(u32::try_from(others.len()).unwrap_or(u32::MAX));
    for (box_id, id) in others {
        w.box_id(*box_id).i32(*id);
    }
    w.u8(u8::from(message.pinned))
        .u32(u32::try_from(message.reactions.len()).unwrap_or(u32::MAX));
    for reaction in &message.reactions {
        w.i64(reaction.user_id)
            .bytes(&reaction.reaction)
            .i32(reaction.date);
    }
    w.finish()
}

/// Reads [`encode_message`].
pub fn decode_message(value: &[u8]) -> Result<MessageRecord, ValueError> {
    let mut r = Reader::new(value, "message")?;
    let id = r.i32()?;
    let box_id = r.box_id()?;
    let peer = r.peer()?;
    let from = r.i64()?;
    let out = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(r.error()),
    };
    let date = r.i32()?;
    let edit_date = match r.u8()? {
        0 => None,
        1 => Some(r.i32()?),
        _ => return Err(r.error()),
    };
    let random_id = r.i64()?;
    let body = r.bytes()?;
    let media = match r.u8()? {
        0 => None,
        1 => Some(r.bytes()?),
        _ => return Err(r.error()),
    };
    let flags = r.u32()?;
    let ordinal = r.i32()?;
    let count = r.count(13)?;
    let mut others = Vec::with_capacity(count);
    for _ in 0..count {
        others.push((r.box_id()?, r.i32()?));
    }
    let pinned = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(r.error()),
    };
    // user i64, reaction length u32, date i32: 16 bytes at least.
    let count = r.count(16)?;
    let mut reactions = Vec::with_capacity(count);
    for _ in 0..count {
        reactions.push(Reaction {
            user_id: r.i64()?,
            reaction: r.bytes()?,
            date: r.i32()?,
        });
    }
    r.end()?;
    Ok(MessageRecord {
        message: StoredMessage {
            id,
            box_id,
            peer,
            from,
            out,
            date,
            edit_date,
            random_id,
            body,
            media,
            flags,
            pinned,
            reactions,
        },
        others,
        ordinal,
    })
}

/// Writes where a message id lives (the `01` row): its chat.
pub fn encode_location(peer: Peer) -> Vec<u8> {
    let mut w = Writer::new();
    w.peer(peer);
    w.finish()
}

/// Reads [`encode_location`].
pub fn decode_location(value: &[u8]) -> Result<Peer, ValueError> {
    let mut r = Reader::new(value, "location")?;
    let peer = r.peer()?;
    r.end()?;
    Ok(peer)
}

/// A chat's summary in one box (the `05` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DialogRecord {
    /// Incoming messages up to this id are read.
    pub read_inbox_max_id: i32,
    /// The other side read the box owner's messages up to this id.
    pub read_outbox_max_id: i32,
    /// The newest message (0 when the chat has none left).
    pub top_id: i32,
    /// Its date.
    pub top_date: i32,
    /// Messages the chat has.
    pub count: u32,
    /// Messages the chat ever had: the last ordinal given.
    pub ordinals: i32,
    /// Incoming messages above `read_inbox_max_id`.
    pub unread: u32,
}

/// Writes a [`DialogRecord`].
pub fn encode_dialog(dialog: &DialogRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(dialog.read_inbox_max_id)
        .i32(dialog.read_outbox_max_id)
        .i32(dialog.top_id)
        .i32(dialog.top_date)
        .u32(dialog.count)
        .i32(dialog.ordinals)
        .u32(dialog.unread);
    w.finish()
}

/// Reads [`encode_dialog`].
pub fn decode_dialog(value: &[u8]) -> Result<DialogRecord, ValueError> {
    let mut r = Reader::new(value, "dialog")?;
    let dialog = DialogRecord {
        read_inbox_max_id: r.i32()?,
        read_outbox_max_id: r.i32()?,
        top_id: r.i32()?,
        top_date: r.i32()?,
        count: r.u32()?,
        ordinals: r.i32()?,
        unread: r.u32()?,
    };
    r.end()?;
    Ok(dialog)
}

/// Writes an authorization key record (the `0a` row). The key is stored as it is: the
/// database is as secret as the keys (see `docs/security.md`).
pub fn encode_auth_key(record: &AuthKeyRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.i64(record.auth_key_id);
    w.0.extend_from_slice(&record.key);
    match record.lifetime {
        KeyLifetime::Permanent => w.u8(0),
        KeyLifetime::Temporary { expires_at } => w.u8(1).i64(expires_at),
    };
    w.i64(record.created_at);
    match record.dc {
        Some(dc) => w.u8(1).i32(dc),
        None => w.u8(0),
    };
    match record.user_id {
        Some(user) => w.u8(1).i64(user),
        None => w.u8(0),
    };
    w.finish()
}

/// Reads [`encode_auth_key`].
pub fn decode_auth_key(value: &[u8]) -> Result<AuthKeyRecord, ValueError> {
    let mut r = Reader::new(value, "auth key")?;
    let auth_key_id = r.i64()?;
    let key = r.take::<AUTH_KEY_LEN>()?;
    let lifetime = match r.u8()? {
        0 => KeyLifetime::Permanent,
        1 => KeyLifetime::Temporary {
            expires_at: r.i64()?,
        },
        _ => return Err(r.error()),
    };
    let created_at = r.i64()?;
    let dc = match r.u8()? {
        0 => None,
        1 => Some(r.i32()?),
        _ => return Err(r.error()),
    };
    let user_id = match r.u8()? {
        0 => None,
        1 => Some(r.i64()?),
        _ => return Err(r.error()),
    };
    r.end()?;
    Ok(AuthKeyRecord {
        auth_key_id,
        key,
        lifetime,
        created_at,
        dc,
        user_id,
    })
}

/// Writes a temporary key's binding (the `0b` row): the permanent key and until when.
pub fn encode_binding(perm_auth_key_id: i64, expires_at: i64) -> Vec<u8> {
    let mut w = Writer::new();
    w.i64(perm_auth_key_id).i64(expires_at);
    w.finish()
}

/// Reads [`encode_binding`].
pub fn decode_binding(value: &[u8]) -> Result<(i64, i64), ValueError> {
    let mut r = Reader::new(value, "binding")?;
    let binding = (r.i64()?, r.i64()?);
    r.end()?;
    Ok(binding)
}

/// Writes one auth_key_id (the `0c` row: a permanent key's temporary key).
pub fn encode_key_id(auth_key_id: i64) -> Vec<u8> {
    let mut w = Writer::new();
    w.i64(auth_key_id);
    w.finish()
}

/// Reads [`encode_key_id`].
pub fn decode_key_id(value: &[u8]) -> Result<i64, ValueError> {
    let mut r = Reader::new(value, "key id")?;
    let id = r.i64()?;
    r.end()?;
    Ok(id)
}

/// An upload in progress (the `11` row).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadRecord {
    /// The number under which its parts are stored (`10 | blob | part`).
    pub blob: u64,
    /// `saveBigFilePart`'s total, for a big file.
    pub total: Option<u32>,
    /// When its last part came (Unix seconds).
    pub touched: i64,
    /// Each part held and its length, by index.
    pub sizes: Vec<(u32, u32)>,
}

/// Writes an [`UploadRecord`].
pub fn encode_upload(upload: &UploadRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.0.extend_from_slice(&upload.blob.to_le_bytes());
    match upload.total {
        Some(total) => w.u8(1).u32(total),
        None => w.u8(0),
    };
    w.i64(upload.touched)
        .u32(u32::try_from(upload.sizes.len()).unwrap_or(u32::MAX));
    for (part, len) in &upload.sizes {
        w.u32(*part).u32(*len);
    }
    w.finish()
}

/// Reads [`encode_upload`].
pub fn decode_upload(value: &[u8]) -> Result<UploadRecord, ValueError> {
    let mut r = Reader::new(value, "upload")?;
    let blob = u64::from_le_bytes(r.take::<8>()?);
    let total = match r.u8()? {
        0 => None,
        1 => Some(r.u32()?),
        _ => return Err(r.error()),
    };
    let touched = r.i64()?;
    let count = r.count(8)?;
    let mut sizes = Vec::with_capacity(count);
    for _ in 0..count {
        sizes.push((r.u32()?, r.u32()?));
    }
    r.end()?;
    Ok(UploadRecord {
        blob,
        total,
        touched,
        sizes,
    })
}

/// A finished content (the `13` row): where its bytes are and how many files use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRecord {
    /// The upload whose parts hold the bytes.
    pub blob: u64,
    /// The size of every part but the last.
    pub part_size: u32,
    /// The content's size in bytes.
    pub size: u64,
    /// Files that refer to it.
    pub refs: u64,
}

/// Writes a [`ContentRecord`].
pub fn encode_content(content: &ContentRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.0.extend_from_slice(&content.blob.to_le_bytes());
    w.u32(content.part_size);
    w.0.extend_from_slice(&content.size.to_le_bytes());
    w.0.extend_from_slice(&content.refs.to_le_bytes());
    w.finish()
}

/// Reads [`encode_content`].
pub fn decode_content(value: &[u8]) -> Result<ContentRecord, ValueError> {
    let mut r = Reader::new(value, "content")?;
    let content = ContentRecord {
        blob: u64::from_le_bytes(r.take::<8>()?),
        part_size: r.u32()?,
        size: u64::from_le_bytes(r.take::<8>()?),
        refs: u64::from_le_bytes(r.take::<8>()?),
    };
    r.end()?;
    Ok(content)
}

/// Writes a finished file as its owner saved it (the `14` row).
pub fn encode_file(info: &FileInfo) -> Vec<u8> {
    let mut w = Writer::new();
    w.0.extend_from_slice(&info.content.0);
    w.0.extend_from_slice(&info.size.to_le_bytes());
    w.bytes(info.name.as_bytes())
        .i64(info.owner)
        .i64(info.file_id);
    w.finish()
}

/// Reads [`encode_file`].
pub fn decode_file(value: &[u8]) -> Result<FileInfo, ValueError> {
    let mut r = Reader::new(value, "file")?;
    let content = ContentId(r.take::<32>()?);
    let size = u64::from_le_bytes(r.take::<8>()?);
    let name = String::from_utf8(r.bytes()?).map_err(|_| ValueError("file"))?;
    let info = FileInfo {
        content,
        size,
        name,
        owner: r.i64()?,
        file_id: r.i64()?,
    };
    r.end()?;
    Ok(info)
}

/// A stored part (the `10` row): where its bytes are in the upload's part file and how to
/// check them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartRecord {
    /// Which of the part's two slots holds the bytes (0 or 1): a replacement goes to the
    /// other one, so a torn write never touches bytes a row still names.
    pub slot: u8,
    /// The part's length in bytes.
    pub len: u32,
    /// SHA-256 of each 128 KiB piece of the part, in order (one for a part of 128 KiB or
    /// less).
    pub hashes: Vec<[u8; 32]>,
}

/// Writes a [`PartRecord`].
pub fn encode_part(part: &PartRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(part.slot).u32(part.len);
    w.u32(u32::try_from(part.hashes.len()).unwrap_or(u32::MAX));
    for hash in &part.hashes {
        w.0.extend_from_slice(hash);
    }
    w.finish()
}

/// Reads [`encode_part`].
pub fn decode_part(value: &[u8]) -> Result<PartRecord, ValueError> {
    let mut r = Reader::new(value, "part")?;
    let slot = r.u8()?;
    if slot > 1 {
        return Err(r.error());
    }
    let len = r.u32()?;
    let count = r.count(32)?;
    let mut hashes = Vec::with_capacity(count);
    for _ in 0..count {
        hashes.push(r.take::<32>()?);
    }
    r.end()?;
    Ok(PartRecord { slot, len, hashes })
}

/// Writes a list of SHA-256 hashes (the `17` row).
pub fn encode_hashes(hashes: &[[u8; 32]]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(u32::try_from(hashes.len()).unwrap_or(u32::MAX));
    for hash in hashes {
        w.0.extend_from_slice(hash);
    }
    w.finish()
}

/// Reads [`encode_hashes`].
pub fn decode_hashes(value: &[u8]) -> Result<Vec<[u8; 32]>, ValueError> {
    let mut r = Reader::new(value, "hashes")?;
    let count = r.count(32)?;
    let mut hashes = Vec::with_capacity(count);
    for _ in 0..count {
        hashes.push(r.take::<32>()?);
    }
    r.end()?;
    Ok(hashes)
}

/// Writes a participant record (the `18` row; the user is in the key).
pub fn encode_participant(participant: &Participant) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(participant.role.code())
        .i32(participant.date)
        .i64(participant.inviter)
        .u32(participant.admin_rights)
        .u32(participant.banned_rights)
        .i32(participant.until)
        .bytes(participant.rank.as_bytes());
    w.finish()
}

/// Reads [`encode_participant`], for the user `user_id` of its key.
pub fn decode_participant(user_id: i64, value: &[u8]) -> Result<Participant, ValueError> {
    let mut r = Reader::new(value, "participant")?;
    let role = Role::from_code(r.u8()?).ok_or(r.error())?;
    let participant = Participant {
        user_id,
        role,
        date: r.i32()?,
        inviter: r.i64()?,
        admin_rights: r.u32()?,
        banned_rights: r.u32()?,
        until: r.i32()?,
        rank: String::from_utf8(r.bytes()?).map_err(|_| ValueError("participant"))?,
    };
    r.end()?;
    Ok(participant)
}

/// Writes a user's membership (the `1b` row; user and group are in the key).
pub fn encode_membership(membership: &Membership) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(membership.role.code()).i32(membership.date);
    w.finish()
}

/// Reads [`encode_membership`], for the group of its key.
pub fn decode_membership(group: Peer, value: &[u8]) -> Result<Membership, ValueError> {
    let mut r = Reader::new(value, "membership")?;
    let role = Role::from_code(r.u8()?).ok_or(r.error())?;
    let membership = Membership {
        group,
        role,
        date: r.i32()?,
    };
    r.end()?;
    Ok(membership)
}

/// Writes a group's counts (the `1d` row).
pub fn encode_group_counts(counts: &GroupCounts) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(counts.members)
        .u32(counts.admins)
        .u32(counts.banned)
        .u32(counts.restricted)
        .i32(counts.read_outbox_max_id);
    w.finish()
}

/// Reads [`encode_group_counts`].
pub fn decode_group_counts(value: &[u8]) -> Result<GroupCounts, ValueError> {
    let mut r = Reader::new(value, "group counts")?;
    let counts = GroupCounts {
        members: r.u32()?,
        admins: r.u32()?,
        banned: r.u32()?,
        restricted: r.u32()?,
        read_outbox_max_id: r.i32()?,
    };
    r.end()?;
    Ok(counts)
}

/// Writes one number (a read watermark `1a`, a view counter `1c`).
pub fn encode_number(value: u32) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(value);
    w.finish()
}

/// Reads [`encode_number`].
pub fn decode_number(value: &[u8]) -> Result<u32, ValueError> {
    let mut r = Reader::new(value, "number")?;
    let number = r.u32()?;
    r.end()?;
    Ok(number)
}

/// One write of a deferred batch: a key (whose prefix names its column family) and the value
/// to put, or `None` to delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOp {
    /// The key.
    pub key: Vec<u8>,
    /// The value, or `None` for a delete.
    pub value: Option<Vec<u8>>,
}

impl BatchOp {
    /// Puts `value` under `key`.
    pub fn put(key: Vec<u8>, value: Vec<u8>) -> Self {
        Self {
            key,
            value: Some(value),
        }
    }

    /// Deletes `key`.
    pub fn delete(key: Vec<u8>) -> Self {
        Self { key, value: None }
    }
}

/// Writes a deferred batch (the `07` row): the writes still to make on another instance.
pub fn encode_ops(ops: &[BatchOp]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(u32::try_from(ops.len()).unwrap_or(u32::MAX));
    for op in ops {
        w.bytes(&op.key);
        match &op.value {
            Some(value) => w.u8(1).bytes(value),
            None => w.u8(0),
        };
    }
    w.finish()
}

/// Reads [`encode_ops`].
pub fn decode_ops(value: &[u8]) -> Result<Vec<BatchOp>, ValueError> {
    let mut r = Reader::new(value, "deferred batch")?;
    let count = r.count(5)?;
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        let key = r.bytes()?;
        let value = match r.u8()? {
            0 => None,
            1 => Some(r.bytes()?),
            _ => return Err(r.error()),
        };
        ops.push(BatchOp { key, value });
    }
    r.end()?;
    Ok(ops)
}

/// A box's counters and the oldest pts its log still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BoxMeta {
    /// pts and highest id.
    pub state: BoxState,
    /// The pts before the oldest log entry kept (a difference from before it is TooLong).
    pub log_floor: i32,
    /// Log entries kept.
    pub log_len: u32,
    /// The newest message's date: a box's dates never go back.
    pub last_date: i32,
}

/// Writes [`BoxMeta`].
pub fn encode_box_meta(meta: &BoxMeta) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(meta.state.pts)
        .i32(meta.state.max_id)
        .i32(meta.log_floor)
        .u32(meta.log_len)
        .i32(meta.last_date);
    w.finish()
}

/// Reads [`encode_box_meta`].
pub fn decode_box_meta(value: &[u8]) -> Result<BoxMeta, ValueError> {
    let mut r = Reader::new(value, "box meta")?;
    let meta = BoxMeta {
        state: BoxState {
            pts: r.i32()?,
            max_id: r.i32()?,
        },
        log_floor: r.i32()?,
        log_len: r.u32()?,
        last_date: r.i32()?,
    };
    r.end()?;
    Ok(meta)
}

/// Writes an update-log entry.
pub fn encode_update(entry: &UpdateEntry) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(entry.pts).i32(entry.pts_count);
    match &entry.kind {
        UpdateKind::NewMessage { id } => w.u8(0).i32(*id),
        UpdateKind::EditMessage { id } => w.u8(1).i32(*id),
        UpdateKind::DeleteMessages { ids } => {
            w.u8(2).u32(u32::try_from(ids.len()).unwrap_or(u32::MAX));
            for id in ids {
                w.i32(*id);
            }
            &mut w
        }
        UpdateKind::ReadInbox { peer, max_id } => w.u8(3).peer(*peer).i32(*max_id),
        UpdateKind::ReadOutbox { peer, max_id } => w.u8(4).peer(*peer).i32(*max_id),
        UpdateKind::PinMessages { peer, ids, pinned } => {
            w.u8(5)
                .peer(*peer)
                .u8(u8::from(*pinned))
                .u32(u32::try_from(ids.len()).unwrap_or(u32::MAX));
            for id in ids {
                w.i32(*id);
            }
            &mut w
        }
    };
    w.finish()
}

/// Reads [`encode_update`].
pub fn decode_update(value: &[u8]) -> Result<UpdateEntry, ValueError> {
    let mut r = Reader::new(value, "update")?;
    let pts = r.i32()?;
    let pts_count = r.i32()?;
    let kind = match r.u8()? {
        0 => UpdateKind::NewMessage { id: r.i32()? },
        1 => UpdateKind::EditMessage { id: r.i32()? },
        2 => {
            let count = r.count(4)?;
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(r.i32()?);
            }
            UpdateKind::DeleteMessages { ids }
        }
        3 => UpdateKind::ReadInbox {
            peer: r.peer()?,
            max_id: r.i32()?,
        },
        4 => UpdateKind::ReadOutbox {
            peer: r.peer()?,
            max_id: r.i32()?,
        },
        5 => {
            let peer = r.peer()?;
            let pinned = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(r.error()),
            };
            let count = r.count(4)?;
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(r.i32()?);
            }
            UpdateKind::PinMessages { peer, ids, pinned }
        }
        _ => return Err(r.error()),
    };
    r.end()?;
    Ok(UpdateEntry {
        pts,
        pts_count,
        kind,
    })
}

/// Writes the deliveries of a send (the idempotency record).
pub fn encode_deliveries(deliveries: &[Delivery]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(u32::try_from(deliveries.len()).unwrap_or(u32::MAX));
    for delivery in deliveries {
        w.box_id(delivery.box_id)
            .i32(delivery.message_id)
            .i32(delivery.pts);
    }
    w.finish()
}

/// Reads [`encode_deliveries`].
pub fn decode_deliveries(value: &[u8]) -> Result<Vec<Delivery>, ValueError> {
    let mut r = Reader::new(value, "deliveries")?;
    let count = r.count(17)?;
    let mut deliveries = Vec::with_capacity(count);
    for _ in 0..count {
        deliveries.push(Delivery {
            box_id: r.box_id()?,
            message_id: r.i32()?,
            pts: r.i32()?,
        });
    }
    r.end()?;
    Ok(deliveries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::{box_id, peer};
    use proptest::prelude::*;

    prop_compose! {
        fn message()(
            id in any::<i32>(), box_id in box_id(), peer in peer(), from in any::<i64>(), out in any::<bool>(),
            date in any::<i32>(), edit_date in proptest::option::of(any::<i32>()), random_id in any::<i64>(),
            body in proptest::collection::vec(any::<u8>(), 0..64), media in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            flags in any::<u32>(), pinned in any::<bool>(),
            reactions in proptest::collection::vec((any::<i64>(), proptest::collection::vec(any::<u8>(), 0..8), any::<i32>()), 0..3),
        ) -> StoredMessage {
            let reactions = reactions.into_iter().map(|(user_id, reaction, date)| Reaction { user_id, reaction, date }).collect();
            StoredMessage { id, box_id, peer, from, out, date, edit_date, random_id, body, media, flags, pinned, reactions }
        }
    }

    fn kind() -> impl Strategy<Value = UpdateKind> {
        prop_oneof![
            any::<i32>().prop_map(|id| UpdateKind::NewMessage { id }),
            any::<i32>().prop_map(|id| UpdateKind::EditMessage { id }),
            proptest::collection::vec(any::<i32>(), 0..8)
                .prop_map(|ids| UpdateKind::DeleteMessages { ids }),
            (peer(), any::<i32>())
                .prop_map(|(peer, max_id)| UpdateKind::ReadInbox { peer, max_id }),
            (peer(), any::<i32>())
                .prop_map(|(peer, max_id)| UpdateKind::ReadOutbox { peer, max_id }),
            (
                peer(),
                proptest::collection::vec(any::<i32>(), 0..8),
                any::<bool>()
            )
                .prop_map(|(peer, ids, pinned)| UpdateKind::PinMessages {
                    peer,
                    ids,
                    pinned
                }),
        ]
    }

    proptest! {
        #[test]
        fn values_round_trip(
            m in message(), others in proptest::collection::vec((box_id(), any::<i32>()), 0..4),
            pts in any::<i32>(), count in any::<i32>(), kind in kind(),
            deliveries in proptest::collection::vec((box_id(), any::<i32>(), any::<i32>()), 0..4),
            meta in (any::<i32>(), any::<i32>(), any::<i32>(), any::<u32>(), any::<i32>()),
            ordinal in any::<i32>(), peer in peer(),
            dialog in (any::<i32>(), any::<i32>(), any::<i32>(), any::<i32>(), any::<u32>(), any::<i32>(), any::<u32>()),
            ops in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..8), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8))), 0..4),
        ) {
            let record = MessageRecord { message: m, others, ordinal };
            prop_assert_eq!(decode_message(&encode_message(&record)), Ok(record));
            prop_assert_eq!(decode_location(&encode_location(peer)), Ok(peer));
            let dialog = DialogRecord {
                read_inbox_max_id: dialog.0, read_outbox_max_id: dialog.1, top_id: dialog.2, top_date: dialog.3,
                count: dialog.4, ordinals: dialog.5, unread: dialog.6,
            };
            prop_assert_eq!(decode_dialog(&encode_dialog(&dialog)), Ok(dialog));
            let auth = AuthKeyRecord {
                auth_key_id: pts.into(), key: [count as u8; AUTH_KEY_LEN],
                lifetime: if ordinal % 2 == 0 { KeyLifetime::Permanent } else { KeyLifetime::Temporary { expires_at: ordinal.into() } },
                created_at: 5, dc: (ordinal % 3 == 0).then_some(ordinal), user_id: (ordinal % 5 == 0).then_some(7),
            };
            prop_assert_eq!(decode_auth_key(&encode_auth_key(&auth)), Ok(auth));
            prop_assert_eq!(decode_binding(&encode_binding(pts.into(), count.into())), Ok((pts.into(), count.into())));
            prop_assert_eq!(decode_key_id(&encode_key_id(pts.into())), Ok(i64::from(pts)));
            let upload = UploadRecord { blob: pts as u64, total: (ordinal % 2 == 0).then_some(count as u32), touched: 9, sizes: vec![(1, 1024), (0, ordinal as u32)] };
            prop_assert_eq!(decode_upload(&encode_upload(&upload)), Ok(upload));
            let content = ContentRecord { blob: 1, part_size: 512 * 1024, size: pts as u64, refs: count as u64 };
            prop_assert_eq!(decode_content(&encode_content(&content)), Ok(content));
            let file = FileInfo { content: ContentId([count as u8; 32]), size: 5, name: format!("f{ordinal}"), owner: pts.into(), file_id: count.into() };
            prop_assert_eq!(decode_file(&encode_file(&file)), Ok(file));
            let hashes = vec![[pts as u8; 32]; (count as usize) % 9];
            prop_assert_eq!(decode_hashes(&encode_hashes(&hashes)), Ok(hashes));
            let part = PartRecord { slot: (count & 1) as u8, len: pts as u32, hashes: vec![[count as u8; 32]; (pts as usize) % 5] };
            prop_assert_eq!(decode_part(&encode_part(&part)), Ok(part));
            let ops: Vec<BatchOp> = ops.into_iter().map(|(key, value)| BatchOp { key, value }).collect();
            prop_assert_eq!(decode_ops(&encode_ops(&ops)), Ok(ops));
            let entry = UpdateEntry { pts, pts_count: count, kind };
            prop_assert_eq!(decode_update(&encode_update(&entry)), Ok(entry));
            let deliveries: Vec<Delivery> = deliveries.into_iter().map(|(box_id, message_id, pts)| Delivery { box_id, message_id, pts }).collect();
            prop_assert_eq!(decode_deliveries(&encode_deliveries(&deliveries)), Ok(deliveries));
            let meta = BoxMeta { state: BoxState { pts: meta.0, max_id: meta.1 }, log_floor: meta.2, log_len: meta.3, last_date: meta.4 };
            prop_assert_eq!(decode_box_meta(&encode_box_meta(&meta)), Ok(meta));
            let (rights, more) = (dialog.count, dialog.unread);
            let roles = [Role::Creator, Role::Admin, Role::Member, Role::Banned];
            let role = roles[(count as usize) % roles.len()];
            let participant = Participant {
                user_id: pts.into(), role, date: count, inviter: ordinal.into(), admin_rights: rights,
                banned_rights: more, until: dialog.top_id, rank: format!("r{ordinal}"),
            };
            prop_assert_eq!(decode_participant(pts.into(), &encode_participant(&participant)), Ok(participant));
            let membership = Membership { group: peer, role, date: count };
            prop_assert_eq!(decode_membership(peer, &encode_membership(&membership)), Ok(membership));
            let counts = GroupCounts { members: rights, admins: more, banned: count as u32, restricted: pts as u32, read_outbox_max_id: ordinal };
            prop_assert_eq!(decode_group_counts(&encode_group_counts(&counts)), Ok(counts));
            prop_assert_eq!(decode_number(&encode_number(rights)), Ok(rights));
        }

        #[test]
        fn garbage_is_an_error_not_a_crash(value in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = decode_message(&value);
            let _ = decode_update(&value);
            let _ = decode_deliveries(&value);
            let _ = decode_box_meta(&value);
            let _ = decode_location(&value);
            let _ = decode_dialog(&value);
            let _ = decode_participant(1, &value);
            let _ = decode_membership(Peer::Chat(1), &value);
            let _ = decode_group_counts(&value);
            let _ = decode_number(&value);
            let _ = decode_ops(&value);
            let _ = decode_auth_key(&value);
            let _ = decode_upload(&value);
            let _ = decode_content(&value);
            let _ = decode_file(&value);
            let _ = decode_hashes(&value);
            let _ = decode_part(&value);
            let _ = decode_binding(&value);
            let _ = decode_key_id(&value);
        }

        #[test]
        fn every_truncation_is_refused(m in message()) {
            let value = encode_message(&MessageRecord { message: m, others: Vec::new(), ordinal: 1 });
            for len in 0..value.len() {
                prop_assert!(decode_message(value.get(..len).unwrap_or_default()).is_err());
            }
        }
    }

    #[test]
    fn huge_declared_lengths_allocate_nothing() {
        // A body claiming 4 GiB in a value of a few bytes.
        let mut value = encode_message(&MessageRecord {
            message: StoredMessage {
                id: 1,
                box_id: BoxId::User(1),
                peer: Peer::User(2),
                from: 1,
                out: true,
                date: 0,
                edit_date: None,
                random_id: 0,
                body: Vec::new(),
                media: None,
                flags: 0,
                pinned: false,
                reactions: Vec::new(),
            },
            others: Vec::new(),
            ordinal: 1,
        });
        // The body length sits after id(4) box(9) peer(9) from(8) out(1) date(4) edit(1) random(8).
        let at = 1 + 4 + 9 + 9 + 8 + 1 + 4 + 1 + 8;
        if let Some(len) = value.get_mut(at..at + 4) {
            len.copy_from_slice(&u32::MAX.to_le_bytes());
        }
        assert_eq!(decode_message(&value), Err(ValueError("message")));
        assert_eq!(
            decode_deliveries(&[1, 0xff, 0xff, 0xff, 0xff]),
            Err(ValueError("deliveries"))
        );
        assert_eq!(
            decode_ops(&[1, 0xff, 0xff, 0xff, 0xff]),
            Err(ValueError("deferred batch"))
        );
        assert_eq!(
            decode_box_meta(&[2, 0, 0, 0, 0]),
            Err(ValueError("box meta")),
            "unknown version"
        );
    }
}
