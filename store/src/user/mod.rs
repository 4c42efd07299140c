//! People: accounts (phone, names, about, username, profile photos, presence, deletion), each
//! user's contacts, phone-book entries and blocked users, authorizations (one per signed-in
//! permanent key) and push devices.
//!
//! Rules kept by every backend (the conformance suite checks them):
//! - a phone number names at most one live account, and so does a username, compared without
//!   regard to case ([`username_key`]); a deleted account frees both;
//! - names, usernames and the about text follow Telegram's limits ([`rules`]) and a change
//!   that breaks one is refused with Telegram's error name, nothing stored;
//! - ids of new accounts come from one counter and are never given twice, not even after a
//!   crash; an account inserted with its own id moves the counter past it;
//! - an imported phone that has no account yet is kept in the importer's phone book; when an
//!   account gets that phone (created or stored with it), it becomes the importer's contact
//!   in the same commit (unless the importer's contacts are full: the entry then just goes);
//! - every list a peer can grow (contacts, phone book, blocked users, authorizations,
//!   devices, photos) is bounded by [`UserStoreConfig`]; a write past a bound is refused or,
//!   for photos, drops the oldest.
//!
//! Each call is atomic: it happens completely or (with an error) not at all.

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod memory;
pub(crate) mod plan;
pub mod rules;
pub(crate) mod values;

pub use memory::MemoryUserStore;
pub use rules::{
    bot_command_valid, contacts_hash, normalize_phone, user_username_key, username_key,
};

use crate::file::ContentId;

/// A user's presence as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Presence {
    /// Never reported (a new account).
    #[default]
    Unknown,
    /// Online until `expires` (Unix seconds), unless it reports again.
    Online {
        /// Unix seconds.
        expires: i32,
    },
    /// Went offline at `was_online` (Unix seconds).
    Offline {
        /// Unix seconds.
        was_online: i32,
    },
}

/// A profile photo: a finished file of the file store, with what `photo` needs to describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfilePhoto {
    /// The photo's id, as clients see it (unique per user).
    pub photo_id: i64,
    /// The file's content.
    pub content: ContentId,
    /// Its size in bytes.
    pub size: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// When it was set (Unix seconds).
    pub date: i32,
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// The user id.
    pub id: i64,
    /// The phone number, digits only; empty for an account without one (a bot, a service
    /// user, a deleted account).
    pub phone: String,
    /// First name (never empty for a live account).
    pub first_name: String,
    /// Last name (may be empty).
    pub last_name: String,
    /// The profile's about text (may be empty).
    pub about: String,
    /// The username as its owner spelled it, if any.
    pub username: Option<String>,
    /// The current profile photo (the newest of [`UserStore::photos`]).
    pub photo: Option<ProfilePhoto>,
    /// Last reported presence.
    pub presence: Presence,
    /// The account was deleted: its phone and username are free, its names empty.
    pub deleted: bool,
    /// For a bot, what a bot has besides a user's; `None` for a person.
    pub bot: Option<BotProfile>,
}

/// One command of a bot's menu (`botCommand`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotCommand {
    /// The command without its slash: 1 to [`rules::MAX_BOT_COMMAND_LEN`] of `a-z`, `0-9`
    /// and `_`.
    pub command: String,
    /// What it does: 1 to [`rules::MAX_BOT_COMMAND_DESCRIPTION_CHARS`] characters.
    pub description: String,
}

/// What a bot account has besides a person's: who made it, its token's secret (hashed), and
/// what clients show of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BotProfile {
    /// The user who made it (`0`: the server's operator).
    pub owner: i64,
    /// SHA-256 of the secret half of its token (`<bot id>:<secret>`). The secret is long
    /// and unguessable, so a plain hash keeps the store alone from giving the token away;
    /// callers compare in constant time.
    pub token_hash: [u8; 32],
    /// Raised each time the token is replaced (an application may derive tokens from it).
    pub token_generation: u32,
    /// Raised on each change of what clients show (`bot_info_version`).
    pub info_version: i32,
    /// The description shown in an empty chat with it (`botInfo.description`).
    pub description: String,
    /// Its command menu, for every chat and language.
    pub commands: Vec<BotCommand>,
}

impl BotProfile {
    /// A new bot's profile: its owner and token hash, nothing else yet.
    pub fn new(owner: i64, token_hash: [u8; 32]) -> Self {
        Self {
            owner,
            token_hash,
            ..Self::default()
        }
    }
}

impl Account {
    /// A live account with a phone number and a first name, nothing else.
    pub fn new(id: i64, phone: impl Into<String>, first_name: impl Into<String>) -> Self {
        Self {
            id,
            phone: phone.into(),
            first_name: first_name.into(),
            last_name: String::new(),
            about: String::new(),
            username: None,
            photo: None,
            presence: Presence::Unknown,
            deleted: false,
            bot: None,
        }
    }

    /// Whether this is a bot's account.
    pub fn is_bot(&self) -> bool {
        self.bot.is_some()
    }

    /// The same account with a last name.
    pub fn with_last_name(mut self, last_name: impl Into<String>) -> Self {
        self.last_name = last_name.into();
        self
    }

    /// The same account with a username.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }
}

/// A change of profile (`account.updateProfile`): each `Some` field is replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfileChange {
    /// A new first name.
    pub first_name: Option<String>,
    /// A new last name.
    pub last_name: Option<String>,
    /// A new about text.
    pub about: Option<String>,
}

/// One entry of `contacts.importContacts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportContact {
    /// The client's id for the entry, echoed in the answer.
    pub client_id: i64,
    /// The phone number as the client sent it.
    pub phone: String,
    /// The first name the importer gives the contact.
    pub first_name: String,
    /// The last name the importer gives the contact.
    pub last_name: String,
}

/// What an import did, entry by entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOutcome {
    /// Entries whose phone has an account, now the importer's contacts: (client_id, user).
    pub imported: Vec<(i64, i64)>,
    /// Entries kept in the phone book (no account has the phone yet): (client_id, how many
    /// users have imported that phone), for `popular_invites`.
    pub phone_book: Vec<(i64, u32)>,
    /// Entries refused because the importer's contacts or phone book are full, or the phone
    /// is not a phone number: the client may retry them later (`retry_contacts`).
    pub retry: Vec<i64>,
}

/// One contact of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The contact's user id.
    pub user_id: i64,
    /// The first name the owner gave the contact.
    pub first_name: String,
    /// The last name the owner gave the contact.
    pub last_name: String,
    /// When it was added (Unix seconds).
    pub date: i32,
    /// The owner found the contact by its phone number (an import, or the phone book): the
    /// owner knows the phone, so it may be shown to them. A contact added by user id alone
    /// (`contacts.addContact`) does not reveal it.
    pub phone_known: bool,
}

/// One blocked user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// The blocked user.
    pub user_id: i64,
    /// When the block was made (Unix seconds).
    pub date: i32,
}

/// One signed-in permanent key of a user, with what `initConnection` said of its app
/// (`authorization` in `account.getAuthorizations`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Authorization {
    /// The permanent key.
    pub auth_key_id: i64,
    /// The id clients name it by (`account.resetAuthorization`); chosen by the caller, kept
    /// from the first record.
    pub hash: i64,
    /// `initConnection.api_id`.
    pub api_id: i32,
    /// `initConnection.device_model`.
    pub device_model: String,
    /// The platform (the system's name, or what `initConnection` tells of it).
    pub platform: String,
    /// `initConnection.system_version`.
    pub system_version: String,
    /// `initConnection.app_version`.
    pub app_version: String,
    /// The address the key was last used from.
    pub ip: String,
    /// When the key signed in (Unix seconds); kept from the first record.
    pub created: i32,
    /// When it was last used (Unix seconds).
    pub active: i32,
}

impl Authorization {
    /// A record of `auth_key_id` with this hash, created and active at `now`, with empty
    /// app details.
    pub fn new(auth_key_id: i64, hash: i64, now: i32) -> Self {
        Self {
            auth_key_id,
            hash,
            api_id: 0,
            device_model: String::new(),
            platform: String::new(),
            system_version: String::new(),
            app_version: String::new(),
            ip: String::new(),
            created: now,
            active: now,
        }
    }
}

/// A push device (`account.registerDevice`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Device {
    /// The permanent key that registered it (the device goes with the key's authorization).
    pub auth_key_id: i64,
    /// Telegram's token type (1 APNs, 2 FCM, 4 Simple Push, 10 Web Push, ...).
    pub token_type: i32,
    /// The token.
    pub token: String,
    /// APNs sandbox.
    pub app_sandbox: bool,
    /// The secret used to encrypt payloads (may be empty).
    pub secret: Vec<u8>,
    /// Other users signed in on the same device, whose pushes it also takes.
    pub other_uids: Vec<i64>,
}

impl Device {
    /// A device registered by `auth_key_id` with this token and nothing else.
    pub fn new(auth_key_id: i64, token_type: i32, token: impl Into<String>) -> Self {
        Self {
            auth_key_id,
            token_type,
            token: token.into(),
            app_sandbox: false,
            secret: Vec::new(),
            other_uids: Vec::new(),
        }
    }
}

/// Who has a username: usernames are one namespace for accounts and channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameOwner {
    /// The live account with this id.
    User(i64),
    /// The channel with this id.
    Channel(i64),
}

/// Why a user-store call failed. The variants named in capitals are Telegram's errors for
/// the same refusal; [`UserError::Backend`] and [`UserError::Poisoned`] are the store's own
/// fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// `USER_ID_INVALID`: no live account with this id.
    #[error("USER_ID_INVALID")]
    UserIdInvalid,
    /// `PHONE_NUMBER_INVALID`: not a phone number.
    #[error("PHONE_NUMBER_INVALID")]
    PhoneNumberInvalid,
    /// `PHONE_NUMBER_OCCUPIED`: another account has the phone; its id.
    #[error("PHONE_NUMBER_OCCUPIED")]
    PhoneNumberOccupied(i64),
    /// `FIRSTNAME_INVALID`: empty, too long, or of control characters.
    #[error("FIRSTNAME_INVALID")]
    FirstNameInvalid,
    /// `LASTNAME_INVALID`: too long, or of control characters.
    #[error("LASTNAME_INVALID")]
    LastNameInvalid,
    /// `ABOUT_TOO_LONG`.
    #[error("ABOUT_TOO_LONG")]
    AboutTooLong,
    /// `USERNAME_INVALID`: outside Telegram's username rules.
    #[error("USERNAME_INVALID")]
    UsernameInvalid,
    /// `USERNAME_OCCUPIED`: another account has it.
    #[error("USERNAME_OCCUPIED")]
    UsernameOccupied,
    /// `USERNAME_NOT_MODIFIED`: the account has this username already.
    #[error("USERNAME_NOT_MODIFIED")]
    UsernameNotModified,
    /// `CHANNEL_INVALID`: not a channel id (ids are positive).
    #[error("CHANNEL_INVALID")]
    ChannelInvalid,
    /// `CONTACT_ID_INVALID`: a user cannot be their own contact.
    #[error("CONTACT_ID_INVALID")]
    ContactIdInvalid,
    /// `CONTACTS_TOO_MUCH`: the owner has the most contacts allowed.
    #[error("CONTACTS_TOO_MUCH")]
    ContactsTooMuch,
    /// `BLOCKED_TOO_MUCH`: the owner has blocked the most users allowed.
    #[error("BLOCKED_TOO_MUCH")]
    BlockedTooMuch,
    /// `PHOTO_INVALID`: a photo id the user has already.
    #[error("PHOTO_INVALID")]
    PhotoInvalid,
    /// `BOT_INVALID`: not a bot's account, or a bot's profile past the limits of [`rules`]
    /// (a description too long, too many commands).
    #[error("BOT_INVALID")]
    BotInvalid,
    /// `BOT_COMMAND_INVALID`: a command outside [`rules::bot_command_valid`].
    #[error("BOT_COMMAND_INVALID")]
    BotCommandInvalid,
    /// `TOKEN_INVALID`: an empty or too long push token, or a device with a secret or
    /// `other_uids` past their limits ([`rules::MAX_SECRET_LEN`], [`rules::MAX_OTHER_UIDS`]).
    #[error("TOKEN_INVALID")]
    TokenInvalid,
    /// The user has the most authorizations or devices allowed.
    #[error("too many authorizations or devices")]
    TooMany,
    /// The counter of account ids is exhausted.
    #[error("the account id space is exhausted")]
    Exhausted,
    /// The storage engine failed.
    #[error("storage backend: {0}")]
    Backend(#[source] crate::BackendError),
    /// A write failed before and the store refuses more until it is reopened.
    #[error("the user store refuses writes after a failed write; reopen it")]
    Poisoned(#[source] crate::BackendError),
}

impl From<crate::BackendError> for UserError {
    /// A row that could not be read: the engine's fault.
    fn from(cause: crate::BackendError) -> Self {
        Self::Backend(cause)
    }
}

/// Limits of a user store. Every list a peer can grow has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserStoreConfig {
    /// The id the first created account gets.
    pub first_user_id: i64,
    /// Contacts per user (Telegram's figure is in the thousands).
    pub max_contacts: usize,
    /// Phone-book entries (imported phones without an account) per user.
    pub max_phone_book: usize,
    /// Blocked users per user.
    pub max_blocked: usize,
    /// Authorizations per user.
    pub max_authorizations: usize,
    /// Push devices per user.
    pub max_devices: usize,
    /// Profile photos kept per user (the oldest goes past it).
    pub max_photos: usize,
}

impl Default for UserStoreConfig {
    fn default() -> Self {
        Self {
            first_user_id: 1_000_001,
            max_contacts: 10_000,
            max_phone_book: 10_000,
            max_blocked: 10_000,
            max_authorizations: 100,
            max_devices: 100,
            max_photos: 100,
        }
    }
}

/// The most results [`UserStore::search`] gives.
pub const MAX_SEARCH: usize = 100;

/// Storage of people. Object-safe, shared between threads; each call is atomic. Calls may
/// block on disk: async callers run them on a blocking pool.
pub trait UserStore: Send + Sync {
    /// Creates an account for `phone` (normalised, [`normalize_phone`]) with these names, with
    /// the next id. Importers who had the phone in their phone book get the account as a
    /// contact in the same commit. [`UserError::PhoneNumberOccupied`] names the account that
    /// has the phone.
    fn create_account(
        &self,
        phone: &str,
        first_name: &str,
        last_name: &str,
    ) -> Result<Account, UserError>;

    /// Creates a bot's account with the next id: no phone, `first_name`, `username` (which
    /// must end in `bot`, any case: [`UserError::UsernameInvalid`] otherwise, and be free)
    /// and the bot's `profile`.
    fn create_bot(
        &self,
        first_name: &str,
        username: &str,
        profile: &BotProfile,
    ) -> Result<Account, UserError>;

    /// Changes the profile of bot `id` with `change`, atomically with any other change of
    /// it (the profile is read, changed and written in one commit): [`UserError::BotInvalid`]
    /// for an account that is not a live bot, or a changed profile past the limits.
    fn update_bot(
        &self,
        id: i64,
        change: &mut dyn FnMut(&mut BotProfile),
    ) -> Result<Account, UserError>;

    /// Stores an account as it is, its own id included (service users, bots, imports),
    /// replacing any account with that id; its names and phone are checked as for a change,
    /// its username by the rules of the server's own accounts (from
    /// [`rules::MIN_SERVICE_USERNAME_LEN`] characters), and none may be another account's.
    fn put_account(&self, account: &Account) -> Result<(), UserError>;

    /// The account with this id (deleted ones included).
    fn account(&self, id: i64) -> Result<Option<Account>, UserError>;

    /// The live account with this phone number (as [`normalize_phone`] gives it).
    fn by_phone(&self, phone: &str) -> Result<Option<Account>, UserError>;

    /// The live account with this username (any case).
    fn by_username(&self, username: &str) -> Result<Option<Account>, UserError>;

    /// Live accounts whose username, first name or last name (any word of them) starts with
    /// `query` (any case), at most `limit` (up to [`MAX_SEARCH`]): the account whose username
    /// is `query` first, then by id.
    fn search(&self, query: &str, limit: usize) -> Result<Vec<Account>, UserError>;

    /// Changes names and about text; returns the account as it is now.
    fn update_profile(&self, id: i64, change: &ProfileChange) -> Result<Account, UserError>;

    /// Sets (or with `None` removes) the username: [`UserError::UsernameNotModified`] when it
    /// is the account's already (same spelling), [`UserError::UsernameOccupied`] when another
    /// account or a channel has it.
    fn set_username(&self, id: i64, username: Option<&str>) -> Result<Account, UserError>;

    /// Sets (or with `None` removes) the public username of channel `channel`: usernames are
    /// one namespace for accounts and channels, so [`UserError::UsernameOccupied`] when an
    /// account or another channel has it; [`UserError::UsernameNotModified`] when the channel
    /// has it already (same spelling); [`UserError::UsernameInvalid`] outside the rules a user
    /// follows; [`UserError::ChannelInvalid`] for an id that is not positive. The store does
    /// not know channels otherwise: the caller checks that the channel exists and who may
    /// name it.
    fn set_channel_username(&self, channel: i64, username: Option<&str>) -> Result<(), UserError>;

    /// The public username of channel `channel`, as spelled, if it has one.
    fn channel_username(&self, channel: i64) -> Result<Option<String>, UserError>;

    /// Who has `username` (any case): an account (live) or a channel.
    fn username_owner(&self, username: &str) -> Result<Option<UsernameOwner>, UserError>;

    /// Records the presence the user reported. Not synced to disk on its own: a crash may
    /// lose the last reports, never anything else.
    fn set_presence(&self, id: i64, presence: Presence) -> Result<(), UserError>;

    /// Deletes the account: its phone and username are freed, names, about and photos
    /// removed, and with them its contacts, phone book, blocks, authorizations and devices.
    /// Other users' contacts of it stay (they see a deleted account).
    fn delete_account(&self, id: i64) -> Result<(), UserError>;

    /// Adds a profile photo, which becomes the current one; past
    /// [`UserStoreConfig::max_photos`] the oldest is dropped.
    fn add_photo(&self, id: i64, photo: ProfilePhoto) -> Result<Account, UserError>;

    /// The user's photos, the current (newest) first.
    fn photos(&self, id: i64) -> Result<Vec<ProfilePhoto>, UserError>;

    /// Deletes these photos of the user (unknown ids skipped); returns the ids deleted. The
    /// newest photo left becomes the current one.
    fn delete_photos(&self, id: i64, photo_ids: &[i64]) -> Result<Vec<i64>, UserError>;

    /// `contacts.importContacts`: each entry whose phone has a live account (other than the
    /// owner's) becomes, or renames, a contact; the others go into the phone book.
    fn import_contacts(
        &self,
        owner: i64,
        entries: &[ImportContact],
        date: i32,
    ) -> Result<ImportOutcome, UserError>;

    /// `contacts.addContact`: adds (or renames) the live account `user_id` as a contact.
    fn add_contact(
        &self,
        owner: i64,
        user_id: i64,
        first_name: &str,
        last_name: &str,
        date: i32,
    ) -> Result<(), UserError>;

    /// Removes these contacts (unknown ids skipped); returns the ids removed.
    fn delete_contacts(&self, owner: i64, user_ids: &[i64]) -> Result<Vec<i64>, UserError>;

    /// Removes the contacts and phone-book entries with these phones (normalised); returns
    /// the user ids of the contacts removed.
    fn delete_by_phones(&self, owner: i64, phones: &[String]) -> Result<Vec<i64>, UserError>;

    /// The owner's contacts, by user id.
    fn contacts(&self, owner: i64) -> Result<Vec<Contact>, UserError>;

    /// One contact of the owner.
    fn contact(&self, owner: i64, user_id: i64) -> Result<Option<Contact>, UserError>;

    /// Users who have `user_id` as a contact, by id, at most `limit` (whom its presence is
    /// pushed to).
    fn contact_of(&self, user_id: i64, limit: usize) -> Result<Vec<i64>, UserError>;

    /// Blocks `user_id`; `false` if it was blocked already (its date is kept).
    fn block(&self, owner: i64, user_id: i64, date: i32) -> Result<bool, UserError>;

    /// Unblocks `user_id`; `false` if it was not blocked.
    fn unblock(&self, owner: i64, user_id: i64) -> Result<bool, UserError>;

    /// Whether the owner blocked `user_id`.
    fn is_blocked(&self, owner: i64, user_id: i64) -> Result<bool, UserError>;

    /// A page of the owner's blocked users, by user id, and how many there are in all.
    fn blocked(
        &self,
        owner: i64,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Blocked>, usize), UserError>;

    /// Records an authorization of `user_id`, or refreshes the one of its key (the hash and
    /// creation date of the first record are kept).
    fn put_authorization(
        &self,
        user_id: i64,
        authorization: &Authorization,
    ) -> Result<Authorization, UserError>;

    /// The user's authorizations, by key id.
    fn authorizations(&self, user_id: i64) -> Result<Vec<Authorization>, UserError>;

    /// Removes the authorization of this key and the devices it registered; returns it.
    fn remove_authorization(
        &self,
        user_id: i64,
        auth_key_id: i64,
    ) -> Result<Option<Authorization>, UserError>;

    /// Registers a push device (replacing one with the same token type and token).
    fn register_device(&self, user_id: i64, device: &Device) -> Result<(), UserError>;

    /// Unregisters a device; `false` if it was not registered.
    fn unregister_device(
        &self,
        user_id: i64,
        token_type: i32,
        token: &str,
    ) -> Result<bool, UserError>;

    /// The user's push devices, by token type and token.
    fn devices(&self, user_id: i64) -> Result<Vec<Device>, UserError>;
}
