//! Messages with Telegram's semantics: boxes, per-box message ids and pts, idempotent sends,
//! the pts update log, history pages and dialogs.
//!
//! - A **box** holds messages and has its own id sequence and pts: one common box per user
//!   (private chats and basic groups), one box per channel. A private message is stored once
//!   in each participant's box, with a different id in each; a basic-group message once in
//!   every member's box; a channel message once, in the channel's box
//!   (core.telegram.org/api/updates, "Message ID sequences").
//! - Every change to a box (new message, edit, delete, read) takes the next pts of that box
//!   and is appended to its **update log**, which `get_difference` replays; the log keeps the
//!   last [`MessageStoreConfig::max_log_entries`] entries, and a client further behind gets
//!   [`Difference::TooLong`].
//! - A send is **idempotent** on (sender, peer, random_id): a repeat returns the first result;
//!   a repeat while the first is still being written gets [`MessageError::RandomIdDuplicate`].
//! - Message bodies are opaque bytes: the application chooses their encoding.
//!
//! [`MessageStore`] is the trait every backend implements; [`MemoryMessageStore`] keeps
//! everything in memory; the conformance suite (feature `testing`) checks any backend.

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod history;
pub(crate) mod members;
mod memory;
mod reactions;

pub use history::{HistoryQuery, HistorySource, history_hash, select_history};
pub use members::{
    GroupCounts, Membership, Participant, ParticipantChange, ParticipantFilter, ParticipantPage,
    Role,
};
pub use memory::MemoryMessageStore;
#[cfg(feature = "rocksdb")]
pub(crate) use memory::targets;
pub(crate) use reactions::{check_reaction, set_reaction};

/// Where a message is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BoxId {
    /// A user's common box (private chats and basic groups).
    User(i64),
    /// A channel's box.
    Channel(i64),
}

/// Whom a message is to, as its sender named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// A user (a private chat; the sender's own id is Saved Messages).
    User(i64),
    /// A basic group.
    Chat(i64),
    /// A channel or supergroup.
    Channel(i64),
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// The sending user.
    pub sender: i64,
    /// Where it goes.
    pub peer: Peer,
    /// The sender's random id: a repeat of (sender, peer, random_id) is the same send.
    pub random_id: i64,
    /// Unix seconds.
    pub date: i32,
    /// The message, encoded as the application likes.
    pub body: Vec<u8>,
    /// A reference to a stored file, if the message carries media.
    pub media: Option<Vec<u8>>,
    /// Flags for the application (silent, noforwards, ...), stored as given.
    pub flags: u32,
    /// For a basic group: its members (each gets a copy in its common box); at least one.
    /// Ignored for users and channels.
    pub members: Vec<i64>,
    /// For a private chat: store the message in the sender's box only, never delivered (the
    /// recipient blocked the sender: Telegram keeps the message on the sender's side without
    /// telling them). Ignored for groups and channels.
    pub sender_only: bool,
}

/// Where one copy of a sent message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// The box.
    pub box_id: BoxId,
    /// The message id in that box.
    pub message_id: i32,
    /// The pts the new message took in that box.
    pub pts: i32,
}

/// The result of a send: one delivery per box the message reached, the sender's first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    /// The copies.
    pub deliveries: Vec<Delivery>,
    /// Whether this was a repeat of an earlier send (nothing new was stored).
    pub repeated: bool,
}

/// A message as stored in one box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id in this box.
    pub id: i32,
    /// The box.
    pub box_id: BoxId,
    /// The chat it belongs to, from this box's owner's point of view (for a private message
    /// in the recipient's box, the sender).
    pub peer: Peer,
    /// The sending user.
    pub from: i64,
    /// Whether the box's owner sent it.
    pub out: bool,
    /// Unix seconds.
    pub date: i32,
    /// When it was last edited.
    pub edit_date: Option<i32>,
    /// The sender's random id.
    pub random_id: i64,
    /// The body.
    pub body: Vec<u8>,
    /// The media reference.
    pub media: Option<Vec<u8>>,
    /// The application's flags.
    pub flags: u32,
    /// Whether it is pinned in this box's chat.
    pub pinned: bool,
    /// Its reactions in this box, one per user, oldest first.
    pub reactions: Vec<Reaction>,
}

/// One user's reaction to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// Who reacted.
    pub user_id: i64,
    /// The reaction, encoded as the application likes (an emoji's UTF-8 for Telegram's
    /// `reactionEmoji`).
    pub reaction: Vec<u8>,
    /// Unix seconds.
    pub date: i32,
}

/// What happened in a box, as its update log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateKind {
    /// A new message.
    NewMessage {
        /// Its id.
        id: i32,
    },
    /// A message was edited.
    EditMessage {
        /// Its id.
        id: i32,
    },
    /// Messages were deleted (`pts_count` is their number).
    DeleteMessages {
        /// Their ids.
        ids: Vec<i32>,
    },
    /// The box's owner read incoming messages of `peer` up to `max_id`.
    ReadInbox {
        /// The chat.
        peer: Peer,
        /// Up to this id.
        max_id: i32,
    },
    /// The other side read the owner's messages to `peer` up to `max_id`.
    ReadOutbox {
        /// The chat.
        peer: Peer,
        /// Up to this id.
        max_id: i32,
    },
    /// Messages of the chat `peer` were pinned (or unpinned).
    PinMessages {
        /// The chat.
        peer: Peer,
        /// The messages whose state changed.
        ids: Vec<i32>,
        /// Pinned, or unpinned.
        pinned: bool,
    },
}

/// One entry of a box's update log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateEntry {
    /// The box's pts after this change.
    pub pts: i32,
    /// How many pts the change took.
    pub pts_count: i32,
    /// What changed.
    pub kind: UpdateKind,
}

/// The answer to [`MessageStore::get_difference`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Nothing after the given pts; the box's pts.
    Empty {
        /// The box's pts.
        pts: i32,
    },
    /// Changes after the given pts, oldest first; `complete` when they reach the box's pts,
    /// otherwise ask again from the last entry's pts.
    Changes {
        /// The changes.
        entries: Vec<UpdateEntry>,
        /// The messages the new-message and edit entries refer to, still present.
        messages: Vec<StoredMessage>,
        /// Whether this reaches the box's current pts.
        complete: bool,
        /// The box's pts.
        pts: i32,
    },
    /// The given pts is older than the log keeps: refetch state and history.
    TooLong {
        /// The box's pts.
        pts: i32,
    },
}

/// A page of history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The messages, newest first.
    pub messages: Vec<StoredMessage>,
    /// How many messages the chat has in this box.
    pub count: usize,
    /// The position of the first message of the page in the whole list (newest first),
    /// `messages.messagesSlice`'s `offset_id_offset`.
    pub offset_id_offset: usize,
}

/// One chat in a user's dialog list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialog {
    /// The chat.
    pub peer: Peer,
    /// Its newest message in the user's box.
    pub top_message: i32,
    /// The date of that message.
    pub top_date: i32,
    /// Incoming messages up to this id are read.
    pub read_inbox_max_id: i32,
    /// The other side read the user's messages up to this id.
    pub read_outbox_max_id: i32,
    /// Incoming messages after `read_inbox_max_id`.
    pub unread_count: i32,
}

/// The pts consumed in one box by an edit, delete or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Affected {
    /// The box.
    pub box_id: BoxId,
    /// Its pts after the change.
    pub pts: i32,
    /// How many pts the change took.
    pub pts_count: i32,
}

/// A box's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BoxState {
    /// The latest pts.
    pub pts: i32,
    /// The highest message id given so far.
    pub max_id: i32,
}

/// Why a message operation failed. Names follow Telegram's RPC errors where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// `RANDOM_ID_DUPLICATE`: the same (sender, peer, random_id) is being sent right now.
    #[error("RANDOM_ID_DUPLICATE")]
    RandomIdDuplicate,
    /// `MESSAGE_ID_INVALID`: no such message in the box.
    #[error("MESSAGE_ID_INVALID")]
    MessageIdInvalid,
    /// `MESSAGE_AUTHOR_REQUIRED`: only the sender may edit a message.
    #[error("MESSAGE_AUTHOR_REQUIRED")]
    MessageAuthorRequired,
    /// `PEER_ID_INVALID`: a peer that cannot receive this (a basic group without members, a
    /// non-positive id).
    #[error("PEER_ID_INVALID")]
    PeerIdInvalid,
    /// `LIMIT_INVALID`: a limit outside what the call allows.
    #[error("LIMIT_INVALID")]
    LimitInvalid,
    /// `MESSAGE_TOO_LONG`: the body is larger than the store's limit.
    #[error("MESSAGE_TOO_LONG")]
    MessageTooLong,
    /// `MESSAGE_NOT_MODIFIED`: the change leaves the message as it was (the same reaction
    /// again, or none removed).
    #[error("MESSAGE_NOT_MODIFIED")]
    MessageNotModified,
    /// `REACTION_INVALID`: an empty or oversized reaction.
    #[error("REACTION_INVALID")]
    ReactionInvalid,
    /// `REACTIONS_TOO_MANY`: the message has as many reactions as the store allows.
    #[error("REACTIONS_TOO_MANY")]
    ReactionsTooMany,
    /// `USER_ID_INVALID`: a participant with a non-positive user id.
    #[error("USER_ID_INVALID")]
    UserIdInvalid,
    /// `ADMIN_RANK_INVALID`: an admin's title longer than the store allows.
    #[error("ADMIN_RANK_INVALID")]
    AdminRankInvalid,
    /// `USERS_TOO_MUCH`: the group has as many members as it may.
    #[error("USERS_TOO_MUCH")]
    UsersTooMuch,
    /// `CHANNELS_TOO_MUCH`: the user is in as many groups and channels as they may.
    #[error("CHANNELS_TOO_MUCH")]
    ChannelsTooMuch,
    /// The box has used every message id or pts (2^31 - 1).
    #[error("the box's id space is exhausted")]
    Exhausted,
    /// The storage engine failed.
    #[error("storage backend: {0}")]
    Backend(#[source] crate::BackendError),
    /// A write or sync of this RocksDB instance failed before: what reached the disk is
    /// unknown, so the instance refuses writes until the store is reopened (and recovered).
    #[error("instance {instance} refuses writes after a failed write; reopen the store")]
    Poisoned {
        /// The instance.
        instance: u32,
        /// The failure that poisoned it.
        #[source]
        cause: crate::BackendError,
    },
}

/// Limits of a message store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageStoreConfig {
    /// Update-log entries kept per common box (Telegram keeps about 5,000,000); older ones
    /// are dropped and a difference from before them is [`Difference::TooLong`].
    pub max_log_entries: usize,
    /// Update-log entries kept per channel box (Telegram keeps about 100,000: a client
    /// further behind refetches the channel).
    pub max_channel_log_entries: usize,
    /// The largest body (and media reference) accepted.
    pub max_body_len: usize,
    /// The most members a basic group may have, and a basic group send may reach (Telegram:
    /// 200).
    pub max_members: usize,
    /// The most reactions (one per user) a message keeps; beyond it a new reactor gets
    /// [`MessageError::ReactionsTooMany`]. A basic group's size by default.
    pub max_reactions: usize,
    /// The longest reaction accepted, in bytes.
    pub max_reaction_len: usize,
    /// The most members a channel may have (Telegram's supergroups: 200,000).
    pub max_channel_members: usize,
    /// The most groups and channels one user may be in (Telegram: 500, 1,000 with Premium);
    /// it also bounds what a user's dialog list reads of channels.
    pub max_groups_per_user: usize,
    /// The longest admin title (`rank`) accepted, in bytes (Telegram: 16 characters).
    pub max_rank_len: usize,
}

impl Default for MessageStoreConfig {
    fn default() -> Self {
        Self {
            max_log_entries: 5_000_000,
            max_channel_log_entries: 100_000,
            max_body_len: 1024 * 1024,
            max_members: 200,
            max_reactions: 200,
            max_reaction_len: 64,
            max_channel_members: 200_000,
            max_groups_per_user: 500,
            max_rank_len: 64,
        }
    }
}

impl MessageStoreConfig {
    /// Update-log entries kept in `box_id`'s log: [`Self::max_log_entries`] for a common
    /// box, [`Self::max_channel_log_entries`] for a channel's.
    pub fn log_entries_kept(&self, box_id: BoxId) -> usize {
        match box_id {
            BoxId::User(_) => self.max_log_entries,
            BoxId::Channel(_) => self.max_channel_log_entries,
        }
    }
}

/// The largest `limit` a history or difference call takes.
pub const MAX_PAGE: usize = 1000;

/// Storage of messages. Object-safe and shared between threads. Within each box every call is
/// atomic: it happens completely or (with an error) not at all, and readers of that box never
/// see part of it. A call that reaches several boxes may become visible in one box before
/// another (a sharded backend commits the sender's box first), but an acknowledged call is
/// never lost or applied twice in any box. Dates never go back within a box: a message dated
/// before the box's newest takes the newest's date, so that `offset_date` paging is defined.
pub trait MessageStore: Send + Sync {
    /// Sends a message: stores a copy in every box it reaches (the sender's first) with the
    /// next id and pts of each box. A repeat of (sender, peer, random_id) returns the first
    /// send's outcome with `repeated` set; a repeat while the first is still being written
    /// gets [`MessageError::RandomIdDuplicate`].
    fn send(&self, request: &SendRequest) -> Result<SendOutcome, MessageError>;

    /// Where the message `sender` sent to `peer` with `random_id` landed: its copies, the
    /// sender's first, or `None` if there was no such send. How a message in one box is found
    /// in another (a reply or a forward names a message by its id in the sender's box).
    fn sent(
        &self,
        sender: i64,
        peer: Peer,
        random_id: i64,
    ) -> Result<Option<Vec<Delivery>>, MessageError>;

    /// The messages with these ids in the box (missing ids are skipped), in the order asked.
    fn get_messages(&self, box_id: BoxId, ids: &[i32]) -> Result<Vec<StoredMessage>, MessageError>;

    /// A page of the chat `peer` in `box_id`, by `messages.getHistory`'s rules
    /// ([`HistoryQuery`]).
    fn get_history(
        &self,
        box_id: BoxId,
        peer: Peer,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, MessageError>;

    /// The box's changes after `pts`, at most `limit` (1..=[`MAX_PAGE`]) entries.
    fn get_difference(
        &self,
        box_id: BoxId,
        pts: i32,
        limit: usize,
    ) -> Result<Difference, MessageError>;

    /// The box's pts and highest message id.
    fn state(&self, box_id: BoxId) -> Result<BoxState, MessageError>;

    /// The user's chats in their common box (channels are in [`Self::channel_dialogs`]),
    /// the one with the newest top message first, at most `limit`; with
    /// `offset_id` above zero, only those whose top message is older than it (the
    /// `messages.getDialogs` offset: a client asks for the next page with the last top
    /// message it has; a top message's id is unique in the user's box).
    fn dialogs(
        &self,
        user_id: i64,
        offset_id: i32,
        limit: usize,
    ) -> Result<Vec<Dialog>, MessageError>;

    /// The user's chat with `peer`, if there is one. The provided method walks the dialog
    /// list a page at a time; backends with a per-chat summary read it directly.
    fn dialog(&self, user_id: i64, peer: Peer) -> Result<Option<Dialog>, MessageError> {
        if let Peer::Channel(_) = peer {
            return Ok(self
                .channel_dialogs(user_id)?
                .into_iter()
                .find(|dialog| dialog.peer == peer));
        }
        let mut offset_id = 0;
        loop {
            let page = self.dialogs(user_id, offset_id, MAX_PAGE)?;
            if let Some(dialog) = page.iter().find(|dialog| dialog.peer == peer) {
                return Ok(Some(*dialog));
            }
            match page.last() {
                Some(last) if page.len() == MAX_PAGE => offset_id = last.top_message,
                _ => return Ok(None),
            }
        }
    }

    /// How many chats the user has (the `count` of a `messages.dialogsSlice`).
    fn dialog_count(&self, user_id: i64) -> Result<usize, MessageError>;

    /// Replaces the body (and media) of message `id` in `editor`'s box and in every other
    /// copy of it; each box takes a pts. Only the sender may edit.
    fn edit(
        &self,
        editor: i64,
        box_id: BoxId,
        id: i32,
        body: Vec<u8>,
        media: Option<Vec<u8>>,
        edit_date: i32,
    ) -> Result<Vec<Affected>, MessageError>;

    /// Deletes messages from `box_id`; with `revoke`, every other copy of them too. Each box
    /// that lost messages takes `pts_count` = the number it lost. Unknown ids are skipped.
    fn delete(
        &self,
        box_id: BoxId,
        ids: &[i32],
        revoke: bool,
    ) -> Result<Vec<Affected>, MessageError>;

    /// Pins (or unpins) messages `ids` of the chat `peer` in `box_id` and, unless
    /// `one_side`, in every other copy of them. Each box where a message's state
    /// changed takes one pts and logs [`UpdateKind::PinMessages`] with its own ids; the boxes
    /// come back with their entries, `box_id` first (none when nothing changed). Ids not in that chat are skipped;
    /// none found is [`MessageError::MessageIdInvalid`].
    fn pin(
        &self,
        box_id: BoxId,
        peer: Peer,
        ids: &[i32],
        pinned: bool,
        one_side: bool,
    ) -> Result<Vec<(BoxId, UpdateEntry)>, MessageError>;

    /// The pinned messages of the chat `peer` in `box_id`, newest first, at most `limit`
    /// (1..=[`MAX_PAGE`]); with `offset_id` above zero, only those older than it.
    fn pinned(
        &self,
        box_id: BoxId,
        peer: Peer,
        offset_id: i32,
        limit: usize,
    ) -> Result<Vec<i32>, MessageError>;

    /// Sets `user_id`'s reaction to message `id` of `box_id` (replacing the user's earlier
    /// one), or with `None` removes it, in every copy of the message. Reactions take no pts,
    /// as Telegram's `updateMessageReactions` carries none. Returns the copies as they now
    /// are, this box's first. The same reaction again, or removing none, is
    /// [`MessageError::MessageNotModified`].
    fn react(
        &self,
        user_id: i64,
        box_id: BoxId,
        id: i32,
        reaction: Option<Vec<u8>>,
        date: i32,
    ) -> Result<Vec<StoredMessage>, MessageError>;

    /// `user_id` read the chat `peer` up to `max_id`: its inbox watermark moves (never back),
    /// and for a private chat the other side's outbox watermark follows. In a channel the
    /// reader's watermark there moves and takes no pts (Telegram's `channels.readHistory`):
    /// the answer is the channel's box at its current pts with a `pts_count` of 0, and the
    /// channel's read-outbox watermark follows.
    fn read_history(
        &self,
        user_id: i64,
        peer: Peer,
        max_id: i32,
    ) -> Result<Vec<Affected>, MessageError>;

    /// Creates a group: the next group id (basic groups and channels share one sequence,
    /// from 1), `info` kept for the application (its title and the like, opaque to the
    /// store, at most [`MessageStoreConfig::max_body_len`] bytes) and `creator` as its
    /// [`Role::Creator`] joined at `date`. Returns the group as a peer.
    fn create_group(
        &self,
        channel: bool,
        info: Vec<u8>,
        creator: i64,
        date: i32,
    ) -> Result<Peer, MessageError>;

    /// Replaces a group's info (`PEER_ID_INVALID` for a group never created).
    fn set_group_info(&self, group: Peer, info: Vec<u8>) -> Result<(), MessageError>;

    /// A group's info, if it was created.
    fn group_info(&self, group: Peer) -> Result<Option<Vec<u8>>, MessageError>;

    /// Sets `user_id`'s record in `group` (a basic group or a channel) to `participant` (a
    /// new member, a new role or rights, a ban), or with `None` drops it (the user left, or a
    /// ban was lifted). The group's counts, its index by join date and the user's list of
    /// groups follow. Joining a group that is full is [`MessageError::UsersTooMuch`]; joining
    /// one more group than [`MessageStoreConfig::max_groups_per_user`] is
    /// [`MessageError::ChannelsTooMuch`]. A channel member who stops being one loses their
    /// read state there. The group's side is authoritative: the user's list may show a change
    /// after the group does (a sharded backend writes the group's instance first and finishes
    /// the user's side at its next open if it crashed between them).
    fn set_participant(
        &self,
        group: Peer,
        user_id: i64,
        participant: Option<Participant>,
    ) -> Result<ParticipantChange, MessageError>;

    /// `user_id`'s record in `group`, if any.
    fn participant(&self, group: Peer, user_id: i64) -> Result<Option<Participant>, MessageError>;

    /// A page of `group`'s participants matched by `filter`, skipping the first `offset`, at
    /// most `limit` (1..=[`MAX_PAGE`]), with the number matched in all.
    fn participants(
        &self,
        group: Peer,
        filter: ParticipantFilter,
        offset: usize,
        limit: usize,
    ) -> Result<ParticipantPage, MessageError>;

    /// `group`'s counts (all zero for a group with nobody in it).
    fn group_counts(&self, group: Peer) -> Result<GroupCounts, MessageError>;

    /// The groups `user_id` is in (banned from ones included), basic groups first, each kind
    /// by id; at most [`MessageStoreConfig::max_groups_per_user`] of them are members.
    fn memberships(&self, user_id: i64) -> Result<Vec<Membership>, MessageError>;

    /// `user_id`'s dialogs of the channels they are a member of, read from each channel's
    /// box and the user's read watermark there (nothing is written per member when a channel
    /// gets a post), newest top message first. A channel without messages has a top message
    /// of 0 dated when the user joined.
    fn channel_dialogs(&self, user_id: i64) -> Result<Vec<Dialog>, MessageError>;

    /// The view counters of posts `ids` of `channel` (0 for unknown ids), each first raised
    /// by one with `increment` (`messages.getMessagesViews` with `increment`).
    fn views(&self, channel: i64, ids: &[i32], increment: bool) -> Result<Vec<u32>, MessageError>;
}
