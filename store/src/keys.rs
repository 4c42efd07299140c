//! Every storage key, built in one place.
//!
//! A key is a one-byte prefix naming the kind of record, then its fields, each encoded so
//! that byte order is numeric order: signed integers big-endian with the sign bit flipped,
//! boxes and peers as a tag byte and an id. A range scan over a prefix therefore walks
//! records in numeric order (a chat's messages by id, a box's log by pts). Each encoder has a
//! decoder, and tests check both the round trip and the order.
//!
//! The layouts are documented byte by byte in `docs/storage-format.md`; changing one is a
//! format change (bump [`crate::shard::FORMAT_VERSION`]).

use crate::message::{BoxId, Peer};

/// The kinds of record, as their key prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Prefix {
    /// Where a message id lives: box, id (the value names its chat).
    Message = 0x01,
    /// A message, under its chat: box, peer, id (the history of one chat in one box is one
    /// range).
    Chat = 0x02,
    /// An update-log entry: box, pts.
    Log = 0x03,
    /// A box's counters: box.
    BoxMeta = 0x04,
    /// A chat's summary in a box (read watermarks, top message, counts): box, peer.
    Dialog = 0x05,
    /// An idempotent send: sender, peer, random_id.
    Send = 0x06,
    /// A delivery to another shard not yet confirmed: sender, peer, random_id, target box.
    Pending = 0x07,
    /// A box's dialogs in order of their top message: box, top id, peer.
    DialogOrder = 0x08,
    /// A deleted message's place in its chat: box, peer, ordinal.
    Deleted = 0x09,
    /// An authorization key: auth_key_id.
    AuthKey = 0x0a,
    /// A temporary key's binding: temporary auth_key_id.
    TempBinding = 0x0b,
    /// A permanent key's current temporary key: permanent auth_key_id.
    PermBinding = 0x0c,
    /// A temporary key's expiry: expires_at, auth_key_id.
    KeyExpiry = 0x0d,
    /// A pinned message of a chat.
    Pinned = 0x0e,
    /// The next group id (one row, on instance 0).
    NextGroupId = 0x12,
    /// A group's information, opaque to the store: group.
    GroupInfo = 0x16,
    /// A participant of a group (basic group or channel): group, user.
    Participant = 0x18,
    /// A group's members by join date, newest first: group, date (descending), user.
    MemberByDate = 0x19,
    /// A member's read watermark in a channel: group, user.
    MemberRead = 0x1a,
    /// A group a user is in: user, group.
    UserGroup = 0x1b,
    /// A channel post's view counter: group, message id.
    PostViews = 0x1c,
    /// A group's counts: group.
    GroupCounts = 0x1d,
    /// A group's participants of one class (admins, banned, restricted): group, class, user.
    ParticipantClass = 0x1e,
    /// A membership change whose user side is not yet written: group, user.
    MemberPending = 0x1f,
    /// A file part's bytes: blob, part.
    Part = 0x10,
    /// An upload in progress: owner, file_id.
    Upload = 0x11,
    /// A finished file's content: its SHA-256.
    Content = 0x13,
    /// A finished file as its owner saved it: owner, file_id.
    FileRow = 0x14,
    /// Uploads by the time of their last part: touched, owner, file_id.
    UploadExpiry = 0x15,
    /// The SHA-256 of a content's 128 KiB ranges, per 1 MiB window: content, window.
    RangeHashes = 0x17,
    /// An account: user id.
    Account = 0x20,
    /// A live account's phone: the phone's digits.
    Phone = 0x21,
    /// A live account's username: the username in lower case.
    Username = 0x22,
    /// A word of a live account's names: the word in lower case, `00`, user id.
    NameWord = 0x23,
    /// A profile photo: user id, sequence number.
    Photo = 0x24,
    /// A contact: owner, contact's user id.
    Contact = 0x25,
    /// Who has a user as contact: user id, owner.
    ContactOf = 0x26,
    /// An imported phone without an account: owner, the phone's digits.
    PhoneBook = 0x27,
    /// Who imported a phone without an account: the phone's digits, `00`, owner.
    Importer = 0x28,
    /// A blocked user: owner, blocked user id.
    Blocked = 0x29,
    /// An authorization: user id, permanent auth_key_id.
    Authorization = 0x2a,
    /// A push device: user id, token type, token.
    Device = 0x2b,
    /// A channel's public username: the username in lower case (the channel's id).
    ChannelUsername = 0x2c,
    /// The public username of a channel as it was spelled: channel id.
    ChannelName = 0x2d,
    /// The next account id (one row).
    NextUserId = 0x2f,
    /// A secret chat: chat id, access hash.
    SecretChat = 0x30,
    /// A user's secret chat (either side): user id, chat id (its access hash).
    SecretUserChat = 0x31,
    /// A device's secret chat (either end): auth_key_id, chat id, access hash.
    SecretKeyChat = 0x32,
    /// An entry of a device's secret queue: auth_key_id, qts.
    SecretQueue = 0x33,
    /// A device's secret-queue counters: auth_key_id.
    SecretDevice = 0x34,
    /// A relayed secret send: sending auth_key_id, chat id, random_id.
    SecretSend = 0x35,
    /// When a secret row's retention ends: the end (Unix seconds), then the row's whole key.
    SecretExpiry = 0x36,
    /// How many of a user's secret chats are not discarded: user id.
    SecretUserLive = 0x37,
    /// A file sent in a secret chat: its id.
    SecretFile = 0x38,
}

impl Prefix {
    /// The prefix a key starts with, if it is one of ours.
    pub fn of(key: &[u8]) -> Option<Self> {
        match key.first()? {
            0x01 => Some(Self::Message),
            0x02 => Some(Self::Chat),
            0x03 => Some(Self::Log),
            0x04 => Some(Self::BoxMeta),
            0x05 => Some(Self::Dialog),
            0x06 => Some(Self::Send),
            0x07 => Some(Self::Pending),
            0x08 => Some(Self::DialogOrder),
            0x09 => Some(Self::Deleted),
            0x0a => Some(Self::AuthKey),
            0x0b => Some(Self::TempBinding),
            0x0c => Some(Self::PermBinding),
            0x0d => Some(Self::KeyExpiry),
            0x0e => Some(Self::Pinned),
            0x12 => Some(Self::NextGroupId),
            0x16 => Some(Self::GroupInfo),
            0x18 => Some(Self::Participant),
            0x19 => Some(Self::MemberByDate),
            0x1a => Some(Self::MemberRead),
            0x1b => Some(Self::UserGroup),
            0x1c => Some(Self::PostViews),
            0x1d => Some(Self::GroupCounts),
            0x1e => Some(Self::ParticipantClass),
            0x1f => Some(Self::MemberPending),
            0x10 => Some(Self::Part),
            0x11 => Some(Self::Upload),
            0x13 => Some(Self::Content),
            0x14 => Some(Self::FileRow),
            0x15 => Some(Self::UploadExpiry),
            0x17 => Some(Self::RangeHashes),
            0x20 => Some(Self::Account),
            0x21 => Some(Self::Phone),
            0x22 => Some(Self::Username),
            0x23 => Some(Self::NameWord),
            0x24 => Some(Self::Photo),
            0x25 => Some(Self::Contact),
            0x26 => Some(Self::ContactOf),
            0x27 => Some(Self::PhoneBook),
            0x28 => Some(Self::Importer),
            0x29 => Some(Self::Blocked),
            0x2a => Some(Self::Authorization),
            0x2b => Some(Self::Device),
            0x2c => Some(Self::ChannelUsername),
            0x2d => Some(Self::ChannelName),
            0x2f => Some(Self::NextUserId),
            0x30 => Some(Self::SecretChat),
            0x31 => Some(Self::SecretUserChat),
            0x32 => Some(Self::SecretKeyChat),
            0x33 => Some(Self::SecretQueue),
            0x34 => Some(Self::SecretDevice),
            0x35 => Some(Self::SecretSend),
            0x36 => Some(Self::SecretExpiry),
            0x37 => Some(Self::SecretUserLive),
            0x38 => Some(Self::SecretFile),
            _ => None,
        }
    }
}

/// The largest key this module builds.
pub const MAX_KEY_LEN: usize = 1 + 9 + 9 + 8 + 9;

/// Why a key could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0:?} key")]
pub struct KeyError(pub Prefix);

fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&((value as u64) ^ (1 << 63)).to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&((value as u32) ^ (1 << 31)).to_be_bytes());
}

fn put_box(out: &mut Vec<u8>, box_id: BoxId) {
    let (tag, id) = match box_id {
        BoxId::User(id) => (0u8, id),
        BoxId::Channel(id) => (1u8, id),
    };
    out.push(tag);
    put_i64(out, id);
}

fn put_peer(out: &mut Vec<u8>, peer: Peer) {
    let (tag, id) = match peer {
        Peer::User(id) => (0u8, id),
        Peer::Chat(id) => (1u8, id),
        Peer::Channel(id) => (2u8, id),
    };
    out.push(tag);
    put_i64(out, id);
}

/// A date in descending order: later dates sort first.
fn put_i32_desc(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&(!((value as u32) ^ (1 << 31))).to_be_bytes());
}

/// Reads fields off a key, front to back.
struct Fields<'a> {
    rest: &'a [u8],
    prefix: Prefix,
}

impl<'a> Fields<'a> {
    fn new(key: &'a [u8], prefix: Prefix) -> Result<Self, KeyError> {
        match key.split_first() {
            Some((&first, rest)) if first == prefix as u8 => Ok(Self { rest, prefix }),
            _ => Err(KeyError(prefix)),
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], KeyError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(KeyError(self.prefix))?;
        self.rest = rest;
        Ok(*head)
    }

    fn i64(&mut self) -> Result<i64, KeyError> {
        Ok((u64::from_be_bytes(self.take::<8>()?) ^ (1 << 63)) as i64)
    }

    fn i32(&mut self) -> Result<i32, KeyError> {
        Ok((u32::from_be_bytes(self.take::<4>()?) ^ (1 << 31)) as i32)
    }

    fn i32_desc(&mut self) -> Result<i32, KeyError> {
        Ok(((!u32::from_be_bytes(self.take::<4>()?)) ^ (1 << 31)) as i32)
    }

    fn u8(&mut self) -> Result<u8, KeyError> {
        let [byte] = self.take::<1>()?;
        Ok(byte)
    }

    fn box_id(&mut self) -> Result<BoxId, KeyError> {
        let [tag] = self.take::<1>()?;
        let id = self.i64()?;
        match tag {
            0 => Ok(BoxId::User(id)),
            1 => Ok(BoxId::Channel(id)),
            _ => Err(KeyError(self.prefix)),
        }
    }

    fn peer(&mut self) -> Result<Peer, KeyError> {
        let [tag] = self.take::<1>()?;
        let id = self.i64()?;
        match tag {
            0 => Ok(Peer::User(id)),
            1 => Ok(Peer::Chat(id)),
            2 => Ok(Peer::Channel(id)),
            _ => Err(KeyError(self.prefix)),
        }
    }

    fn end(self) -> Result<(), KeyError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(KeyError(self.prefix))
        }
    }
}

fn start(prefix: Prefix) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_KEY_LEN);
    out.push(prefix as u8);
    out
}

/// `01 | box | id`: a message.
pub fn message(box_id: BoxId, id: i32) -> Vec<u8> {
    let mut out = start(Prefix::Message);
    put_box(&mut out, box_id);
    put_i32(&mut out, id);
    out
}

/// Reads a [`message`] key.
pub fn decode_message(key: &[u8]) -> Result<(BoxId, i32), KeyError> {
    let mut fields = Fields::new(key, Prefix::Message)?;
    let decoded = (fields.box_id()?, fields.i32()?);
    fields.end()?;
    Ok(decoded)
}

/// `02 | box | peer | id`: a chat's index entry.
pub fn chat(box_id: BoxId, peer: Peer, id: i32) -> Vec<u8> {
    let mut out = chat_prefix(box_id, peer);
    put_i32(&mut out, id);
    out
}

/// `02 | box | peer`: the prefix of a chat's index entries (for range scans).
pub fn chat_prefix(box_id: BoxId, peer: Peer) -> Vec<u8> {
    let mut out = start(Prefix::Chat);
    put_box(&mut out, box_id);
    put_peer(&mut out, peer);
    out
}

/// Reads a [`chat`] key.
pub fn decode_chat(key: &[u8]) -> Result<(BoxId, Peer, i32), KeyError> {
    let mut fields = Fields::new(key, Prefix::Chat)?;
    let decoded = (fields.box_id()?, fields.peer()?, fields.i32()?);
    fields.end()?;
    Ok(decoded)
}

/// `03 | box | pts`: an update-log entry.
pub fn log(box_id: BoxId, pts: i32) -> Vec<u8> {
    let mut out = start(Prefix::Log);
    put_box(&mut out, box_id);
    put_i32(&mut out, pts);
    out
}

/// Reads a [`log`] key.
pub fn decode_log(key: &[u8]) -> Result<(BoxId, i32), KeyError> {
    let mut fields = Fields::new(key, Prefix::Log)?;
    let decoded = (fields.box_id()?, fields.i32()?);
    fields.end()?;
    Ok(decoded)
}

/// `04 | box`: a box's counters.
pub fn box_meta(box_id: BoxId) -> Vec<u8> {
    let mut out = start(Prefix::BoxMeta);
    put_box(&mut out, box_id);
    out
}

/// Reads a [`box_meta`] key.
pub fn decode_box_meta(key: &[u8]) -> Result<BoxId, KeyError> {
    let mut fields = Fields::new(key, Prefix::BoxMeta)?;
    let decoded = fields.box_id()?;
    fields.end()?;
    Ok(decoded)
}

/// `05 | box | peer`: a chat's summary in a box.
pub fn dialog(box_id: BoxId, peer: Peer) -> Vec<u8> {
    let mut out = start(Prefix::Dialog);
    put_box(&mut out, box_id);
    put_peer(&mut out, peer);
    out
}

/// Reads a [`dialog`] key.
pub fn decode_dialog(key: &[u8]) -> Result<(BoxId, Peer), KeyError> {
    let mut fields = Fields::new(key, Prefix::Dialog)?;
    let decoded = (fields.box_id()?, fields.peer()?);
    fields.end()?;
    Ok(decoded)
}

/// `06 | sender | peer | random_id`: an idempotent send.
pub fn send(sender: i64, peer: Peer, random_id: i64) -> Vec<u8> {
    let mut out = start(Prefix::Send);
    put_i64(&mut out, sender);
    put_peer(&mut out, peer);
    put_i64(&mut out, random_id);
    out
}

/// Reads a [`send`] key.
pub fn decode_send(key: &[u8]) -> Result<(i64, Peer, i64), KeyError> {
    let mut fields = Fields::new(key, Prefix::Send)?;
    let decoded = (fields.i64()?, fields.peer()?, fields.i64()?);
    fields.end()?;
    Ok(decoded)
}

/// `07 | sender | peer | random_id | target box`: a delivery to another shard, recorded with
/// the sender's copy and removed once delivered.
pub fn pending(sender: i64, peer: Peer, random_id: i64, target: BoxId) -> Vec<u8> {
    let mut out = start(Prefix::Pending);
    put_i64(&mut out, sender);
    put_peer(&mut out, peer);
    put_i64(&mut out, random_id);
    put_box(&mut out, target);
    out
}

/// Reads a [`pending`] key.
pub fn decode_pending(key: &[u8]) -> Result<(i64, Peer, i64, BoxId), KeyError> {
    let mut fields = Fields::new(key, Prefix::Pending)?;
    let decoded = (
        fields.i64()?,
        fields.peer()?,
        fields.i64()?,
        fields.box_id()?,
    );
    fields.end()?;
    Ok(decoded)
}

/// `prefix | group`: the prefix of one group's rows of a per-group kind (participants,
/// members by date, read watermarks, post views, classes), or a group's counts row.
pub fn group_prefix(prefix: Prefix, group: Peer) -> Vec<u8> {
    let mut out = start(prefix);
    put_peer(&mut out, group);
    out
}

/// `prefix | group | user`: a participant (`18`), a member's read watermark (`1a`) or a
/// membership change to finish (`1f`).
pub fn group_user(prefix: Prefix, group: Peer, user_id: i64) -> Vec<u8> {
    let mut out = group_prefix(prefix, group);
    put_i64(&mut out, user_id);
    out
}

/// Reads a [`group_user`] key.
pub fn decode_group_user(prefix: Prefix, key: &[u8]) -> Result<(Peer, i64), KeyError> {
    let mut fields = Fields::new(key, prefix)?;
    let decoded = (fields.peer()?, fields.i64()?);
    fields.end()?;
    Ok(decoded)
}

/// `19 | group | date (descending) | user`: a member's place in the newest-first list.
pub fn member_by_date(group: Peer, date: i32, user_id: i64) -> Vec<u8> {
    let mut out = group_prefix(Prefix::MemberByDate, group);
    put_i32_desc(&mut out, date);
    put_i64(&mut out, user_id);
    out
}

/// Reads a [`member_by_date`] key.
pub fn decode_member_by_date(key: &[u8]) -> Result<(Peer, i32, i64), KeyError> {
    let mut fields = Fields::new(key, Prefix::MemberByDate)?;
    let decoded = (fields.peer()?, fields.i32_desc()?, fields.i64()?);
    fields.end()?;
    Ok(decoded)
}

/// `1b | user | group`: a group the user is in.
pub fn user_group(user_id: i64, group: Peer) -> Vec<u8> {
    let mut out = user_groups_prefix(user_id);
    put_peer(&mut out, group);
    out
}

/// `1b | user`: the prefix of a user's groups.
pub fn user_groups_prefix(user_id: i64) -> Vec<u8> {
    let mut out = start(Prefix::UserGroup);
    put_i64(&mut out, user_id);
    out
}

/// Reads a [`user_group`] key.
pub fn decode_user_group(key: &[u8]) -> Result<(i64, Peer), KeyError> {
    let mut fields = Fields::new(key, Prefix::UserGroup)?;
    let decoded = (fields.i64()?, fields.peer()?);
    fields.end()?;
    Ok(decoded)
}

/// `1c | group | id`: a post's view counter.
pub fn post_views(group: Peer, id: i32) -> Vec<u8> {
    let mut out = group_prefix(Prefix::PostViews, group);
    put_i32(&mut out, id);
    out
}

/// `1e | group | class`: the prefix of one class of a group's participants.
pub fn participant_class_prefix(group: Peer, class: u8) -> Vec<u8> {
    let mut out = group_prefix(Prefix::ParticipantClass, group);
    out.push(class);
    out
}

/// `1e | group | class | user`: a participant of one class.
pub fn participant_class(group: Peer, class: u8, user_id: i64) -> Vec<u8> {
    let mut out = participant_class_prefix(group, class);
    put_i64(&mut out, user_id);
    out
}

/// Reads a [`participant_class`] key.
pub fn decode_participant_class(key: &[u8]) -> Result<(Peer, u8, i64), KeyError> {
    let mut fields = Fields::new(key, Prefix::ParticipantClass)?;
    let decoded = (fields.peer()?, fields.u8()?, fields.i64()?);
    fields.end()?;
    Ok(decoded)
}

/// `08 | box | top id | peer`: a dialog's place in its box's list (newest top last).
pub fn dialog_order(box_id: BoxId, top_id: i32, peer: Peer) -> Vec<u8> {
    let mut out = box_prefix(Prefix::DialogOrder, box_id);
    put_i32(&mut out, top_id);
    put_peer(&mut out, peer);
    out
}

/// The [`dialog_order`] keys of `box_id` with a top id below `top_id` all sort before this
/// (the prefix and the id, without a peer), and those at or above it after.
pub fn dialog_order_bound(box_id: BoxId, top_id: i32) -> Vec<u8> {
    let mut out = box_prefix(Prefix::DialogOrder, box_id);
    put_i32(&mut out, top_id);
    out
}

/// Reads a [`dialog_order`] key.
pub fn decode_dialog_order(key: &[u8]) -> Result<(BoxId, i32, Peer), KeyError> {
    let mut fields = Fields::new(key, Prefix::DialogOrder)?;
    let decoded = (fields.box_id()?, fields.i32()?, fields.peer()?);
    fields.end()?;
    Ok(decoded)
}

/// `09 | box | peer | ordinal`: a deleted message's ordinal in its chat (counting positions).
pub fn deleted(box_id: BoxId, peer: Peer, ordinal: i32) -> Vec<u8> {
    let mut out = start(Prefix::Deleted);
    put_box(&mut out, box_id);
    put_peer(&mut out, peer);
    put_i32(&mut out, ordinal);
    out
}

/// `09 | box | peer`: the prefix of a chat's deleted ordinals.
pub fn deleted_prefix(box_id: BoxId, peer: Peer) -> Vec<u8> {
    let mut out = start(Prefix::Deleted);
    put_box(&mut out, box_id);
    put_peer(&mut out, peer);
    out
}

/// Reads a [`deleted`] key.
pub fn decode_deleted(key: &[u8]) -> Result<(BoxId, Peer, i32), KeyError> {
    let mut fields = Fields::new(key, Prefix::Deleted)?;
    let decoded = (fields.box_id()?, fields.peer()?, fields.i32()?);
    fields.end()?;
    Ok(decoded)
}

/// `0e | box | peer | id`: a pinned message of a chat.
pub fn pinned(box_id: BoxId, peer: Peer, id: i32) -> Vec<u8> {
    let mut out = pinned_prefix(box_id, peer);
    put_i32(&mut out, id);
    out
}

/// `0e | box | peer`: the prefix of a chat's pinned messages.
pub fn pinned_prefix(box_id: BoxId, peer: Peer) -> Vec<u8> {
    let mut out = start(Prefix::Pinned);
    put_box(&mut out, box_id);
    put_peer(&mut out, peer);
    out
}

/// Reads a [`pinned`] key.
pub fn decode_pinned(key: &[u8]) -> Result<(BoxId, Peer, i32), KeyError> {
    let mut fields = Fields::new(key, Prefix::Pinned)?;
    let decoded = (fields.box_id()?, fields.peer()?, fields.i32()?);
    fields.end()?;
    Ok(decoded)
}

/// `0a | auth_key_id`, `0b | temporary id` or `0c | permanent id`: a key-store record
/// keyed by one auth_key_id (`prefix` is one of those three).
pub fn auth_key(prefix: Prefix, auth_key_id: i64) -> Vec<u8> {
    let mut out = start(prefix);
    put_i64(&mut out, auth_key_id);
    out
}

/// Reads an [`auth_key`] key of this prefix.
pub fn decode_auth_key(prefix: Prefix, key: &[u8]) -> Result<i64, KeyError> {
    let mut fields = Fields::new(key, prefix)?;
    let decoded = fields.i64()?;
    fields.end()?;
    Ok(decoded)
}

/// `0d | expires_at | auth_key_id`: temporary keys in order of expiry.
pub fn key_expiry(expires_at: i64, auth_key_id: i64) -> Vec<u8> {
    let mut out = start(Prefix::KeyExpiry);
    put_i64(&mut out, expires_at);
    put_i64(&mut out, auth_key_id);
    out
}

/// Reads a [`key_expiry`] key.
pub fn decode_key_expiry(key: &[u8]) -> Result<(i64, i64), KeyError> {
    let mut fields = Fields::new(key, Prefix::KeyExpiry)?;
    let decoded = (fields.i64()?, fields.i64()?);
    fields.end()?;
    Ok(decoded)
}

/// `10 | blob | part`: a part's bytes (`blob` numbers one upload's parts; u64 and u32
/// big-endian).
pub fn part(blob: u64, part: u32) -> Vec<u8> {
    let mut out = part_prefix(blob);
    out.extend_from_slice(&part.to_be_bytes());
    out
}

/// `10 | blob`: the prefix of one upload's parts.
pub fn part_prefix(blob: u64) -> Vec<u8> {
    let mut out = start(Prefix::Part);
    out.extend_from_slice(&blob.to_be_bytes());
    out
}

/// Reads a [`part`] key.
pub fn decode_part(key: &[u8]) -> Result<(u64, u32), KeyError> {
    let mut fields = Fields::new(key, Prefix::Part)?;
    let blob = u64::from_be_bytes(fields.take::<8>()?);
    let part = u32::from_be_bytes(fields.take::<4>()?);
    fields.end()?;
    Ok((blob, part))
}

/// `11 | owner | file_id` (an upload) or `14 | owner | file_id` (a finished file).
pub fn owned_file(prefix: Prefix, owner: i64, file_id: i64) -> Vec<u8> {
    let mut out = start(prefix);
    put_i64(&mut out, owner);
    put_i64(&mut out, file_id);
    out
}

/// Reads an [`owned_file`] key of this prefix.
pub fn decode_owned_file(prefix: Prefix, key: &[u8]) -> Result<(i64, i64), KeyError> {
    let mut fields = Fields::new(key, prefix)?;
    let decoded = (fields.i64()?, fields.i64()?);
    fields.end()?;
    Ok(decoded)
}

/// `13 | content`: a finished content's record.
pub fn content(content: &[u8; 32]) -> Vec<u8> {
    let mut out = start(Prefix::Content);
    out.extend_from_slice(content);
    out
}

/// `17 | content | window`: the range hashes of one 1 MiB window of a content.
pub fn range_hashes(content: &[u8; 32], window: u32) -> Vec<u8> {
    let mut out = start(Prefix::RangeHashes);
    out.extend_from_slice(content);
    out.extend_from_slice(&window.to_be_bytes());
    out
}

/// `15 | touched | owner | file_id`: uploads in order of their last part.
pub fn upload_expiry(touched: i64, owner: i64, file_id: i64) -> Vec<u8> {
    let mut out = start(Prefix::UploadExpiry);
    put_i64(&mut out, touched);
    put_i64(&mut out, owner);
    put_i64(&mut out, file_id);
    out
}

/// Reads an [`upload_expiry`] key.
pub fn decode_upload_expiry(key: &[u8]) -> Result<(i64, i64, i64), KeyError> {
    let mut fields = Fields::new(key, Prefix::UploadExpiry)?;
    let decoded = (fields.i64()?, fields.i64()?, fields.i64()?);
    fields.end()?;
    Ok(decoded)
}

/// `prefix | box`: the start of every record of one kind in one box (for range scans).
pub fn box_prefix(prefix: Prefix, box_id: BoxId) -> Vec<u8> {
    let mut out = start(prefix);
    put_box(&mut out, box_id);
    out
}

/// A key of a user-store row: the prefix, then `parts` (ids as [`put_i64`] writes them).
pub fn user_row(prefix: Prefix, ids: &[i64]) -> Vec<u8> {
    let mut out = start(prefix);
    for id in ids {
        put_i64(&mut out, *id);
    }
    out
}

/// A key of a user-store row named by text (a phone, a username): the prefix, then the
/// text's bytes. Text with a `00` byte is refused by the callers (phones and usernames are
/// ASCII letters and digits).
pub fn text_row(prefix: Prefix, text: &str) -> Vec<u8> {
    let mut out = start(prefix);
    out.extend_from_slice(text.as_bytes());
    out
}

/// A key of a user-store row named by text and an id: the prefix, the text's bytes, `00`,
/// the id. Every key of one text shares the prefix `text_row(prefix, text) + 00`; a prefix
/// of the text (a search) is a prefix of the key.
pub fn text_id_row(prefix: Prefix, text: &str, id: i64) -> Vec<u8> {
    let mut out = text_row(prefix, text);
    out.push(0);
    put_i64(&mut out, id);
    out
}

/// Reads a [`text_id_row`] key: the text and the id.
pub fn decode_text_id_row(prefix: Prefix, key: &[u8]) -> Result<(String, i64), KeyError> {
    let rest = match key.split_first() {
        Some((first, rest)) if *first == prefix as u8 => rest,
        _ => return Err(KeyError(prefix)),
    };
    let cut = rest.len().checked_sub(9).ok_or(KeyError(prefix))?;
    let (text, tail) = rest.split_at(cut);
    let mut fields = Fields { rest: tail, prefix };
    if fields.take::<1>()? != [0] {
        return Err(KeyError(prefix));
    }
    let id = fields.i64()?;
    fields.end()?;
    let text = String::from_utf8(text.to_vec()).map_err(|_| KeyError(prefix))?;
    Ok((text, id))
}

/// Reads the ids of a [`user_row`] key of this prefix with `N` ids.
pub fn decode_user_row<const N: usize>(prefix: Prefix, key: &[u8]) -> Result<[i64; N], KeyError> {
    let mut fields = Fields::new(key, prefix)?;
    let mut ids = [0i64; N];
    for id in &mut ids {
        *id = fields.i64()?;
    }
    fields.end()?;
    Ok(ids)
}

/// Reads the ids of a [`user_row`] key of this prefix whose first `N` fields are ids and
/// the rest (returned) is free bytes.
pub fn decode_user_row_tail<const N: usize>(
    prefix: Prefix,
    key: &[u8],
) -> Result<([i64; N], &[u8]), KeyError> {
    let mut fields = Fields::new(key, prefix)?;
    let mut ids = [0i64; N];
    for id in &mut ids {
        *id = fields.i64()?;
    }
    Ok((ids, fields.rest))
}

/// The key of a push device: user id, token type, token.
pub fn device(user_id: i64, token_type: i32, token: &str) -> Vec<u8> {
    let mut out = user_row(Prefix::Device, &[user_id]);
    put_i32(&mut out, token_type);
    out.extend_from_slice(token.as_bytes());
    out
}

/// The smallest key greater than every key that starts with `prefix` (an exclusive upper
/// bound for a range scan), or `None` when there is none (all bytes 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::{box_id, peer};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_key_decodes_to_what_built_it(
            b in box_id(), p in peer(), id in any::<i32>(), sender in any::<i64>(), random in any::<i64>(), t in box_id()
        ) {
            prop_assert_eq!(decode_message(&message(b, id)), Ok((b, id)));
            prop_assert_eq!(decode_chat(&chat(b, p, id)), Ok((b, p, id)));
            prop_assert_eq!(decode_log(&log(b, id)), Ok((b, id)));
            prop_assert_eq!(decode_box_meta(&box_meta(b)), Ok(b));
            prop_assert_eq!(decode_dialog(&dialog(b, p)), Ok((b, p)));
            prop_assert_eq!(decode_auth_key(Prefix::AuthKey, &auth_key(Prefix::AuthKey, sender)), Ok(sender));
            prop_assert_eq!(decode_key_expiry(&key_expiry(sender, random)), Ok((sender, random)));
            prop_assert_eq!(decode_part(&part(sender as u64, id as u32)), Ok((sender as u64, id as u32)));
            prop_assert_eq!(decode_owned_file(Prefix::Upload, &owned_file(Prefix::Upload, sender, random)), Ok((sender, random)));
            prop_assert_eq!(decode_upload_expiry(&upload_expiry(sender, random, sender)), Ok((sender, random, sender)));
            prop_assert_eq!(decode_dialog_order(&dialog_order(b, id, p)), Ok((b, id, p)));
            prop_assert_eq!(decode_deleted(&deleted(b, p, id)), Ok((b, p, id)));
            prop_assert_eq!(decode_pinned(&pinned(b, p, id)), Ok((b, p, id)));
            prop_assert!(pinned(b, p, id).starts_with(&pinned_prefix(b, p)));
            prop_assert!(dialog_order(b, id, p).starts_with(&box_prefix(Prefix::DialogOrder, b)));
            prop_assert!(deleted(b, p, id).starts_with(&deleted_prefix(b, p)));
            prop_assert_eq!(decode_send(&send(sender, p, random)), Ok((sender, p, random)));
            prop_assert_eq!(decode_pending(&pending(sender, p, random, t)), Ok((sender, p, random, t)));
            prop_assert!(pending(sender, p, random, t).len() <= MAX_KEY_LEN);
            for prefix in [Prefix::Participant, Prefix::MemberRead, Prefix::MemberPending] {
                prop_assert_eq!(decode_group_user(prefix, &group_user(prefix, p, sender)), Ok((p, sender)));
                prop_assert!(group_user(prefix, p, sender).starts_with(&group_prefix(prefix, p)));
            }
            prop_assert_eq!(decode_member_by_date(&member_by_date(p, id, sender)), Ok((p, id, sender)));
            prop_assert_eq!(decode_user_group(&user_group(sender, p)), Ok((sender, p)));
            prop_assert!(user_group(sender, p).starts_with(&user_groups_prefix(sender)));
            prop_assert_eq!(decode_participant_class(&participant_class(p, 2, sender)), Ok((p, 2, sender)));
            prop_assert!(participant_class(p, 2, sender).starts_with(&participant_class_prefix(p, 2)));
            prop_assert!(post_views(p, id).starts_with(&group_prefix(Prefix::PostViews, p)));
            prop_assert!(member_by_date(p, id, sender).len() <= MAX_KEY_LEN);
        }

        #[test]
        fn byte_order_is_numeric_order(b in box_id(), p in peer(), x in any::<i32>(), y in any::<i32>(), u in any::<i64>(), v in any::<i64>()) {
            prop_assert_eq!(message(b, x).cmp(&message(b, y)), x.cmp(&y));
            prop_assert_eq!(chat(b, p, x).cmp(&chat(b, p, y)), x.cmp(&y));
            prop_assert_eq!(log(b, x).cmp(&log(b, y)), x.cmp(&y));
            prop_assert_eq!(box_meta(BoxId::User(u)).cmp(&box_meta(BoxId::User(v))), u.cmp(&v));
            prop_assert_eq!(send(u, p, 0).cmp(&send(v, p, 0)), u.cmp(&v));
            prop_assert_eq!(dialog_order(b, x, p).cmp(&dialog_order(b, y, p)), x.cmp(&y));
            prop_assert_eq!(deleted(b, p, x).cmp(&deleted(b, p, y)), x.cmp(&y));
            prop_assert_eq!(pinned(b, p, x).cmp(&pinned(b, p, y)), x.cmp(&y));
            prop_assert_eq!(member_by_date(p, x, u).cmp(&member_by_date(p, y, u)), y.cmp(&x));
            prop_assert_eq!(member_by_date(p, x, u).cmp(&member_by_date(p, x, v)), u.cmp(&v));
            prop_assert_eq!(post_views(p, x).cmp(&post_views(p, y)), x.cmp(&y));
            prop_assert_eq!(key_expiry(u, 0).cmp(&key_expiry(v, 0)), u.cmp(&v));
            prop_assert_eq!(part(u as u64, 0).cmp(&part(v as u64, 0)), (u as u64).cmp(&(v as u64)));
            prop_assert_eq!(part(0, x as u32).cmp(&part(0, y as u32)), (x as u32).cmp(&(y as u32)));
            prop_assert_eq!(upload_expiry(u, 0, 0).cmp(&upload_expiry(v, 0, 0)), u.cmp(&v));
        }

        #[test]
        fn a_chat_s_entries_share_its_prefix(b in box_id(), p in peer(), x in any::<i32>()) {
            prop_assert!(chat(b, p, x).starts_with(&chat_prefix(b, p)));
        }

        #[test]
        fn garbage_never_panics(key in proptest::collection::vec(any::<u8>(), 0..48)) {
            let _ = decode_message(&key);
            let _ = decode_chat(&key);
            let _ = decode_log(&key);
            let _ = decode_box_meta(&key);
            let _ = decode_dialog(&key);
            let _ = decode_dialog_order(&key);
            let _ = decode_deleted(&key);
            let _ = decode_pinned(&key);
            let _ = decode_auth_key(Prefix::AuthKey, &key);
            let _ = decode_key_expiry(&key);
            let _ = decode_part(&key);
            let _ = decode_owned_file(Prefix::FileRow, &key);
            let _ = decode_upload_expiry(&key);
            let _ = decode_send(&key);
            let _ = decode_pending(&key);
        }
    }

    #[test]
    fn wrong_prefixes_trailing_bytes_and_tags_are_refused() {
        let mut key = message(BoxId::User(1), 2);
        assert!(decode_log(&key).is_err(), "another kind's prefix");
        key.push(0);
        assert!(decode_message(&key).is_err(), "a trailing byte");
        let mut bad_tag = box_meta(BoxId::User(1));
        if let Some(tag) = bad_tag.get_mut(1) {
            *tag = 9;
        }
        assert_eq!(decode_box_meta(&bad_tag), Err(KeyError(Prefix::BoxMeta)));
        assert!(decode_message(&[]).is_err());
    }

    #[test]
    fn prefix_ends_bound_their_ranges() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        let prefix = chat_prefix(BoxId::User(-1), Peer::User(i64::MAX));
        let end = prefix_end(&prefix).unwrap();
        assert!(chat(BoxId::User(-1), Peer::User(i64::MAX), i32::MAX) < end);
        assert_eq!(Prefix::of(&end), Some(Prefix::Chat));
        assert_eq!(Prefix::of(&[0x0f]), None);
    }
}
