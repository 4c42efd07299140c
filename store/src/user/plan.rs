//! The user store's rules, written once over ordered rows: a backend gives a read view
//! ([`Rows`]) and commits the writes a [`Plan`] collects in one atomic batch. The in-memory
//! backend keeps the rows in a `BTreeMap`, the RocksDB backend in its instance; both run this
//! code, so they cannot disagree on a rule. Keys are [`crate::keys`]' user rows, values
//! [`super::values`].

use crate::BackendError;
use crate::codec::ValueError;
use crate::keys::{self, Prefix};
pub(crate) use crate::rows::{Plan, RowList, Rows};

use super::rules::{self, MAX_DETAIL_LEN, MAX_OTHER_UIDS, MAX_SECRET_LEN, MAX_TOKEN_LEN};
use super::values::{self, PhoneBookEntry};
use super::{
    Account, Authorization, Blocked, Contact, Device, ImportContact, ImportOutcome, MAX_SEARCH,
    Presence, ProfileChange, ProfilePhoto, UserError, UserStoreConfig, UsernameOwner,
};

/// The most importers of one phone that an account created for it adopts in one commit.
pub(crate) const MAX_ADOPTING_IMPORTERS: usize = 1000;
/// The most importers of one phone counted for `popular_invites`.
pub(crate) const MAX_COUNTED_IMPORTERS: usize = 1000;

/// A row that does not decode: the store's fault.
pub(crate) fn corrupt(error: ValueError) -> UserError {
    UserError::Backend(BackendError::with_source("user store", error))
}

fn corrupt_key(error: keys::KeyError) -> UserError {
    UserError::Backend(BackendError::with_source("user store", error))
}

// --- reads ---

pub(crate) fn account(rows: &dyn Rows, id: i64) -> Result<Option<Account>, UserError> {
    rows.get(&keys::user_row(Prefix::Account, &[id]))?
        .map(|value| values::decode_account(&value).map_err(corrupt))
        .transpose()
}

fn live(rows: &dyn Rows, id: i64) -> Result<Account, UserError> {
    match account(rows, id)? {
        Some(account) if !account.deleted => Ok(account),
        _ => Err(UserError::UserIdInvalid),
    }
}

fn id_row(rows: &dyn Rows, key: &[u8]) -> Result<Option<i64>, UserError> {
    rows.get(key)?
        .map(|value| values::decode_i64(&value).map_err(corrupt))
        .transpose()
}

pub(crate) fn by_phone(rows: &dyn Rows, phone: &str) -> Result<Option<Account>, UserError> {
    let Some(phone) = rules::normalize_phone(phone) else {
        return Ok(None);
    };
    match id_row(rows, &keys::text_row(Prefix::Phone, &phone))? {
        Some(id) => account(rows, id),
        None => Ok(None),
    }
}

pub(crate) fn by_username(rows: &dyn Rows, username: &str) -> Result<Option<Account>, UserError> {
    let Some(key) = rules::username_key(username) else {
        return Ok(None);
    };
    match id_row(rows, &keys::text_row(Prefix::Username, &key))? {
        Some(id) => account(rows, id),
        None => Ok(None),
    }
}

pub(crate) fn search(
    rows: &dyn Rows,
    query: &str,
    limit: usize,
) -> Result<Vec<Account>, UserError> {
    let query = query.trim().to_lowercase();
    let limit = limit.min(MAX_SEARCH);
    if query.is_empty() || limit == 0 || query.contains('\0') {
        return Ok(Vec::new());
    }
    // Candidates by username and by name word, each a bounded page; the first `limit` of
    // them by id are the answer.
    let mut ids = std::collections::BTreeSet::new();
    for (_, value) in rows.scan(&keys::text_row(Prefix::Username, &query), MAX_SEARCH * 4)? {
        ids.insert(values::decode_i64(&value).map_err(corrupt)?);
    }
    // A word may be shared by many accounts: read a bounded page of them.
    for (key, _) in rows.scan(&keys::text_row(Prefix::NameWord, &query), MAX_SEARCH * 4)? {
        let (_, id) = keys::decode_text_id_row(Prefix::NameWord, &key).map_err(corrupt_key)?;
        ids.insert(id);
    }
    // An exact username comes first, however many lower ids match otherwise.
    let mut found: Vec<Account> = by_username(rows, &query)?
        .filter(|account| !account.deleted)
        .into_iter()
        .collect();
    for id in ids {
        if found.len() == limit {
            break;
        }
        if found.first().is_some_and(|exact| exact.id == id) {
            continue;
        }
        if let Some(account) = account(rows, id)?.filter(|account| !account.deleted) {
            found.push(account);
        }
    }
    Ok(found)
}

pub(crate) fn photos(rows: &dyn Rows, id: i64) -> Result<Vec<(Vec<u8>, ProfilePhoto)>, UserError> {
    let mut photos = rows
        .scan(&keys::user_row(Prefix::Photo, &[id]), usize::MAX)?
        .into_iter()
        .map(|(key, value)| Ok((key, values::decode_photo(&value).map_err(corrupt)?)))
        .collect::<Result<Vec<_>, UserError>>()?;
    // Newest first: keys run by sequence number.
    photos.reverse();
    Ok(photos)
}

pub(crate) fn contacts(rows: &dyn Rows, owner: i64) -> Result<Vec<Contact>, UserError> {
    let mut contacts = Vec::new();
    rows.visit_values(&keys::user_row(Prefix::Contact, &[owner]), &mut |value| {
        let contact = values::decode_contact(value)
            .map_err(|error| BackendError::with_source("user store", error))?;
        contacts.push(contact);
        Ok(())
    })?;
    Ok(contacts)
}

pub(crate) fn contact(
    rows: &dyn Rows,
    owner: i64,
    user_id: i64,
) -> Result<Option<Contact>, UserError> {
    rows.get(&keys::user_row(Prefix::Contact, &[owner, user_id]))?
        .map(|value| values::decode_contact(&value).map_err(corrupt))
        .transpose()
}

pub(crate) fn contact_of(
    rows: &dyn Rows,
    user_id: i64,
    limit: usize,
) -> Result<Vec<i64>, UserError> {
    rows.scan(&keys::user_row(Prefix::ContactOf, &[user_id]), limit)?
        .into_iter()
        .map(|(key, _)| {
            let [_, owner] =
                keys::decode_user_row::<2>(Prefix::ContactOf, &key).map_err(corrupt_key)?;
            Ok(owner)
        })
        .collect()
}

pub(crate) fn is_blocked(rows: &dyn Rows, owner: i64, user_id: i64) -> Result<bool, UserError> {
    Ok(rows
        .get(&keys::user_row(Prefix::Blocked, &[owner, user_id]))?
        .is_some())
}

pub(crate) fn blocked(
    rows: &dyn Rows,
    owner: i64,
    offset: usize,
    limit: usize,
) -> Result<(Vec<Blocked>, usize), UserError> {
    let all = rows.scan(&keys::user_row(Prefix::Blocked, &[owner]), usize::MAX)?;
    let total = all.len();
    let page = all
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(key, value)| {
            let [_, user_id] =
                keys::decode_user_row::<2>(Prefix::Blocked, &key).map_err(corrupt_key)?;
            let date = values::decode_i32(&value).map_err(corrupt)?;
            Ok(Blocked { user_id, date })
        })
        .collect::<Result<_, UserError>>()?;
    Ok((page, total))
}

pub(crate) fn authorizations(
    rows: &dyn Rows,
    user_id: i64,
) -> Result<Vec<Authorization>, UserError> {
    rows.scan(
        &keys::user_row(Prefix::Authorization, &[user_id]),
        usize::MAX,
    )?
    .into_iter()
    .map(|(_, value)| values::decode_authorization(&value).map_err(corrupt))
    .collect()
}

pub(crate) fn devices(rows: &dyn Rows, user_id: i64) -> Result<Vec<Device>, UserError> {
    rows.scan(&keys::user_row(Prefix::Device, &[user_id]), usize::MAX)?
        .into_iter()
        .map(|(_, value)| values::decode_device(&value).map_err(corrupt))
        .collect()
}

fn count(rows: &dyn Rows, prefix: Prefix, owner: i64, max: usize) -> Result<usize, UserError> {
    // Bounded: a list never holds more than its maximum.
    Ok(rows
        .scan(&keys::user_row(prefix, &[owner]), max.saturating_add(1))?
        .len())
}

// --- writes ---

/// Replaces `old` (if any) by `new`, with the phone, username and name-word indexes.
fn write_account(plan: &mut Plan<'_>, old: Option<&Account>, new: &Account) {
    // A deleted account's index rows went with its deletion (its phone or username may be
    // another account's now).
    if let Some(old) = old.filter(|old| !old.deleted) {
        if !old.phone.is_empty() {
            plan.delete(keys::text_row(Prefix::Phone, &old.phone));
        }
        if let Some(key) = old.username.as_deref().and_then(rules::username_key) {
            plan.delete(keys::text_row(Prefix::Username, &key));
        }
        for word in rules::name_words(&old.first_name, &old.last_name) {
            plan.delete(keys::text_id_row(Prefix::NameWord, &word, old.id));
        }
    }
    if !new.deleted {
        if !new.phone.is_empty() {
            plan.put(
                keys::text_row(Prefix::Phone, &new.phone),
                values::encode_i64(new.id),
            );
        }
        if let Some(key) = new.username.as_deref().and_then(rules::username_key) {
            plan.put(
                keys::text_row(Prefix::Username, &key),
                values::encode_i64(new.id),
            );
        }
        for word in rules::name_words(&new.first_name, &new.last_name) {
            plan.put(
                keys::text_id_row(Prefix::NameWord, &word, new.id),
                Vec::new(),
            );
        }
    }
    plan.put(
        keys::user_row(Prefix::Account, &[new.id]),
        values::encode_account(new),
    );
}

fn next_id(plan: &Plan<'_>, config: &UserStoreConfig) -> Result<i64, UserError> {
    Ok(id_row(plan, &keys::user_row(Prefix::NextUserId, &[]))?
        .unwrap_or(config.first_user_id)
        .max(config.first_user_id))
}

fn set_next_id(plan: &mut Plan<'_>, next: i64) {
    plan.put(
        keys::user_row(Prefix::NextUserId, &[]),
        values::encode_i64(next),
    );
}

fn put_contact(plan: &mut Plan<'_>, owner: i64, contact: &Contact) {
    plan.put(
        keys::user_row(Prefix::Contact, &[owner, contact.user_id]),
        values::encode_contact(contact),
    );
    plan.put(
        keys::user_row(Prefix::ContactOf, &[contact.user_id, owner]),
        Vec::new(),
    );
}

fn remove_contact(plan: &mut Plan<'_>, owner: i64, user_id: i64) {
    plan.delete(keys::user_row(Prefix::Contact, &[owner, user_id]));
    plan.delete(keys::user_row(Prefix::ContactOf, &[user_id, owner]));
}

fn phone_book_key(owner: i64, phone: &str) -> Vec<u8> {
    let mut key = keys::user_row(Prefix::PhoneBook, &[owner]);
    key.extend_from_slice(phone.as_bytes());
    key
}

fn remove_phone_book(plan: &mut Plan<'_>, owner: i64, phone: &str) {
    plan.delete(phone_book_key(owner, phone));
    plan.delete(keys::text_id_row(Prefix::Importer, phone, owner));
}

/// A name from a phone book, made acceptable: control characters become spaces, cut to
/// [`rules::MAX_NAME_CHARS`] characters.
fn imported_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(rules::MAX_NAME_CHARS)
        .collect()
}

pub(crate) fn create_account(
    plan: &mut Plan<'_>,
    config: &UserStoreConfig,
    phone: &str,
    first_name: &str,
    last_name: &str,
) -> Result<Account, UserError> {
    let phone = rules::normalize_phone(phone).ok_or(UserError::PhoneNumberInvalid)?;
    rules::check_first_name(first_name)?;
    rules::check_last_name(last_name)?;
    if let Some(taken) = id_row(plan, &keys::text_row(Prefix::Phone, &phone))? {
        return Err(UserError::PhoneNumberOccupied(taken));
    }
    let id = next_id(plan, config)?;
    let after = id.checked_add(1).ok_or(UserError::Exhausted)?;
    set_next_id(plan, after);
    let account = Account::new(id, phone.clone(), first_name).with_last_name(last_name);
    write_account(plan, None, &account);
    adopt_phone_book(plan, config, &phone, id)?;
    Ok(account)
}

/// Whoever had `phone` in their phone book gets account `id`, which now has the phone, as a
/// contact (with the names and date of the entry), and the entries go. An importer whose
/// contacts are full loses the entry without the contact: it is a hint, not a promise.
fn adopt_phone_book(
    plan: &mut Plan<'_>,
    config: &UserStoreConfig,
    phone: &str,
    id: i64,
) -> Result<(), UserError> {
    let importers = plan.scan(
        &keys::text_row(Prefix::Importer, &format!("{phone}\0")),
        // Bounded: a phone imported by very many users (a short service number) adopts its
        // first importers only; the others' entries stay until they import it again.
        MAX_ADOPTING_IMPORTERS,
    )?;
    for (key, _) in importers {
        let (_, owner) = keys::decode_text_id_row(Prefix::Importer, &key).map_err(corrupt_key)?;
        let entry = plan
            .get(&phone_book_key(owner, phone))?
            .map(|value| values::decode_phone_book(&value).map_err(corrupt))
            .transpose()?;
        remove_phone_book(plan, owner, phone);
        let Some(entry) = entry else { continue };
        if owner != id
            && count(plan, Prefix::Contact, owner, config.max_contacts)? < config.max_contacts
        {
            let contact = Contact {
                user_id: id,
                first_name: entry.first_name,
                last_name: entry.last_name,
                date: entry.date,
                phone_known: true,
            };
            put_contact(plan, owner, &contact);
        }
    }
    Ok(())
}

fn check_account(account: &Account) -> Result<(), UserError> {
    if !account.deleted {
        rules::check_first_name(&account.first_name)?;
    }
    rules::check_last_name(&account.last_name)?;
    rules::check_about(&account.about)?;
    if let Some(name) = &account.username {
        rules::username_key(name).ok_or(UserError::UsernameInvalid)?;
    }
    if !account.phone.is_empty()
        && rules::normalize_phone(&account.phone).as_deref() != Some(account.phone.as_str())
    {
        return Err(UserError::PhoneNumberInvalid);
    }
    if let Some(profile) = &account.bot {
        rules::check_bot(profile)?;
    }
    Ok(())
}

pub(crate) fn create_bot(
    plan: &mut Plan<'_>,
    config: &UserStoreConfig,
    first_name: &str,
    username: &str,
    profile: &crate::user::BotProfile,
) -> Result<Account, UserError> {
    rules::check_first_name(first_name)?;
    rules::check_bot(profile)?;
    let key = rules::user_username_key(username)
        .filter(|_| rules::is_bot_username(username))
        .ok_or(UserError::UsernameInvalid)?;
    if id_row(plan, &keys::text_row(Prefix::Username, &key))?.is_some()
        || channel_holds(plan, &key)?
    {
        return Err(UserError::UsernameOccupied);
    }
    let id = next_id(plan, config)?;
    let after = id.checked_add(1).ok_or(UserError::Exhausted)?;
    set_next_id(plan, after);
    let mut account = Account::new(id, "", first_name).with_username(username);
    account.bot = Some(profile.clone());
    write_account(plan, None, &account);
    Ok(account)
}

pub(crate) fn update_bot(
    plan: &mut Plan<'_>,
    id: i64,
    change: &mut dyn FnMut(&mut crate::user::BotProfile),
) -> Result<Account, UserError> {
    let old = live(plan, id).map_err(|_| UserError::BotInvalid)?;
    let mut new = old.clone();
    let profile = new.bot.as_mut().ok_or(UserError::BotInvalid)?;
    change(profile);
    rules::check_bot(profile)?;
    write_account(plan, Some(&old), &new);
    Ok(new)
}

pub(crate) fn put_account(
    plan: &mut Plan<'_>,
    config: &UserStoreConfig,
    account: &Account,
) -> Result<(), UserError> {
    check_account(account)?;
    if !account.deleted {
        if !account.phone.is_empty() {
            if let Some(taken) = id_row(plan, &keys::text_row(Prefix::Phone, &account.phone))? {
                if taken != account.id {
                    return Err(UserError::PhoneNumberOccupied(taken));
                }
            }
        }
        if let Some(key) = account.username.as_deref().and_then(rules::username_key) {
            if id_row(plan, &keys::text_row(Prefix::Username, &key))?
                .is_some_and(|taken| taken != account.id)
                || channel_holds(plan, &key)?
            {
                return Err(UserError::UsernameOccupied);
            }
        }
    }
    let old = self::account(plan, account.id)?;
    write_account(plan, old.as_ref(), account);
    let had_phone = old
        .as_ref()
        .is_some_and(|old| !old.deleted && old.phone == account.phone);
    if !account.deleted && !account.phone.is_empty() && !had_phone {
        adopt_phone_book(plan, config, &account.phone, account.id)?;
    }
    let next = next_id(plan, config)?;
    if account.id >= next {
        set_next_id(plan, account.id.saturating_add(1));
    }
    Ok(())
}

pub(crate) fn update_profile(
    plan: &mut Plan<'_>,
    id: i64,
    change: &ProfileChange,
) -> Result<Account, UserError> {
    let old = live(plan, id)?;
    let mut new = old.clone();
    if let Some(first) = &change.first_name {
        rules::check_first_name(first)?;
        new.first_name.clone_from(first);
    }
    if let Some(last) = &change.last_name {
        rules::check_last_name(last)?;
        new.last_name.clone_from(last);
    }
    if let Some(about) = &change.about {
        rules::check_about(about)?;
        new.about.clone_from(about);
    }
    write_account(plan, Some(&old), &new);
    Ok(new)
}

pub(crate) fn set_username(
    plan: &mut Plan<'_>,
    id: i64,
    username: Option<&str>,
) -> Result<Account, UserError> {
    let old = live(plan, id)?;
    if old.username.as_deref() == username {
        return Err(UserError::UsernameNotModified);
    }
    if let Some(name) = username {
        let key = rules::user_username_key(name).ok_or(UserError::UsernameInvalid)?;
        if id_row(plan, &keys::text_row(Prefix::Username, &key))?.is_some_and(|taken| taken != id)
            || channel_holds(plan, &key)?
        {
            return Err(UserError::UsernameOccupied);
        }
    }
    let mut new = old.clone();
    new.username = username.map(str::to_owned);
    write_account(plan, Some(&old), &new);
    Ok(new)
}

/// Whether a channel has the username whose key is `key`.
fn channel_holds(rows: &dyn Rows, key: &str) -> Result<bool, UserError> {
    Ok(rows
        .get(&keys::text_row(Prefix::ChannelUsername, key))?
        .is_some())
}

pub(crate) fn channel_username(rows: &dyn Rows, channel: i64) -> Result<Option<String>, UserError> {
    rows.get(&keys::user_row(Prefix::ChannelName, &[channel]))?
        .map(|value| {
            String::from_utf8(value).map_err(|_| corrupt(ValueError("a channel's username")))
        })
        .transpose()
}

pub(crate) fn username_owner(
    rows: &dyn Rows,
    username: &str,
) -> Result<Option<UsernameOwner>, UserError> {
    let Some(key) = rules::username_key(username) else {
        return Ok(None);
    };
    if let Some(channel) = id_row(rows, &keys::text_row(Prefix::ChannelUsername, &key))? {
        return Ok(Some(UsernameOwner::Channel(channel)));
    }
    Ok(by_username(rows, username)?
        .filter(|account| !account.deleted)
        .map(|account| UsernameOwner::User(account.id)))
}

pub(crate) fn set_channel_username(
    plan: &mut Plan<'_>,
    channel: i64,
    username: Option<&str>,
) -> Result<(), UserError> {
    if channel <= 0 {
        return Err(UserError::ChannelInvalid);
    }
    let old = channel_username(plan, channel)?;
    if old.as_deref() == username {
        return Err(UserError::UsernameNotModified);
    }
    if let Some(name) = username {
        let key = rules::user_username_key(name).ok_or(UserError::UsernameInvalid)?;
        let taken_by_channel = id_row(plan, &keys::text_row(Prefix::ChannelUsername, &key))?
            .is_some_and(|holder| holder != channel);
        if taken_by_channel || id_row(plan, &keys::text_row(Prefix::Username, &key))?.is_some() {
            return Err(UserError::UsernameOccupied);
        }
    }
    if let Some(key) = old.as_deref().and_then(rules::username_key) {
        plan.delete(keys::text_row(Prefix::ChannelUsername, &key));
    }
    let name_row = keys::user_row(Prefix::ChannelName, &[channel]);
    match username {
        Some(name) => {
            let key = rules::username_key(name).ok_or(UserError::UsernameInvalid)?;
            plan.put(
                keys::text_row(Prefix::ChannelUsername, &key),
                values::encode_i64(channel),
            );
            plan.put(name_row, name.as_bytes().to_vec());
        }
        None => plan.delete(name_row),
    }
    Ok(())
}

pub(crate) fn set_presence(
    plan: &mut Plan<'_>,
    id: i64,
    presence: Presence,
) -> Result<(), UserError> {
    let mut account = live(plan, id)?;
    account.presence = presence;
    plan.put(
        keys::user_row(Prefix::Account, &[id]),
        values::encode_account(&account),
    );
    Ok(())
}

fn delete_all(plan: &mut Plan<'_>, prefix: Vec<u8>) -> Result<RowList, UserError> {
    let rows = plan.scan(&prefix, usize::MAX)?;
    for (key, _) in &rows {
        plan.delete(key.clone());
    }
    Ok(rows)
}

pub(crate) fn delete_account(plan: &mut Plan<'_>, id: i64) -> Result<(), UserError> {
    let old = live(plan, id)?;
    let mut new = Account::new(id, "", "");
    new.deleted = true;
    write_account(plan, Some(&old), &new);
    delete_all(plan, keys::user_row(Prefix::Photo, &[id]))?;
    for contact in contacts(plan, id)? {
        remove_contact(plan, id, contact.user_id);
    }
    let book = delete_all(plan, keys::user_row(Prefix::PhoneBook, &[id]))?;
    for (key, _) in book {
        let ([_], phone) =
            keys::decode_user_row_tail::<1>(Prefix::PhoneBook, &key).map_err(corrupt_key)?;
        let phone = String::from_utf8(phone.to_vec())
            .map_err(|_| corrupt_key(keys::KeyError(Prefix::PhoneBook)))?;
        plan.delete(keys::text_id_row(Prefix::Importer, &phone, id));
    }
    delete_all(plan, keys::user_row(Prefix::Blocked, &[id]))?;
    delete_all(plan, keys::user_row(Prefix::Authorization, &[id]))?;
    delete_all(plan, keys::user_row(Prefix::Device, &[id]))?;
    Ok(())
}

pub(crate) fn add_photo(
    plan: &mut Plan<'_>,
    config: &UserStoreConfig,
    id: i64,
    photo: ProfilePhoto,
) -> Result<Account, UserError> {
    let mut account = live(plan, id)?;
    let existing = photos(plan, id)?;
    if existing.iter().any(|(_, p)| p.photo_id == photo.photo_id) {
        return Err(UserError::PhotoInvalid);
    }
    let seq = match existing.first() {
        Some((key, _)) => {
            let [_, seq] = keys::decode_user_row::<2>(Prefix::Photo, key).map_err(corrupt_key)?;
            seq.checked_add(1).ok_or(UserError::Exhausted)?
        }
        None => 0,
    };
    plan.put(
        keys::user_row(Prefix::Photo, &[id, seq]),
        values::encode_photo(&photo),
    );
    // Past the bound, the oldest go (`existing` is newest first).
    let keep = config.max_photos.saturating_sub(1);
    for (key, _) in existing.iter().skip(keep) {
        plan.delete(key.clone());
    }
    account.photo = (config.max_photos > 0).then_some(photo);
    if config.max_photos == 0 {
        plan.delete(keys::user_row(Prefix::Photo, &[id, seq]));
    }
    plan.put(
        keys::user_row(Prefix::Account, &[id]),
        values::encode_account(&account),
    );
    Ok(account)
}

pub(crate) fn delete_photos(
    plan: &mut Plan<'_>,
    id: i64,
    photo_ids: &[i64],
) -> Result<Vec<i64>, UserError> {
    let mut account = live(plan, id)?;
    let mut deleted = Vec::new();
    let mut newest_left = None;
    for (key, photo) in photos(plan, id)? {
        if photo_ids.contains(&photo.photo_id) {
            plan.delete(key);
            deleted.push(photo.photo_id);
        } else if newest_left.is_none() {
            newest_left = Some(photo);
        }
    }
    if !deleted.is_empty() {
        account.photo = newest_left;
        plan.put(
            keys::user_row(Prefix::Account, &[id]),
            values::encode_account(&account),
        );
    }
    Ok(deleted)
}

pub(crate) fn import_contacts(
    plan: &mut Plan<'_>,
    config: &UserStoreConfig,
    owner: i64,
    entries: &[ImportContact],
    date: i32,
) -> Result<ImportOutcome, UserError> {
    live(plan, owner)?;
    let mut contacts = count(plan, Prefix::Contact, owner, config.max_contacts)?;
    let mut book = count(plan, Prefix::PhoneBook, owner, config.max_phone_book)?;
    let mut outcome = ImportOutcome::default();
    for entry in entries {
        let Some(phone) = rules::normalize_phone(&entry.phone) else {
            outcome.retry.push(entry.client_id);
            continue;
        };
        let first_name = imported_name(&entry.first_name);
        let last_name = imported_name(&entry.last_name);
        match id_row(plan, &keys::text_row(Prefix::Phone, &phone))? {
            // One's own number is nobody's contact.
            Some(user_id) if user_id == owner => {}
            Some(user_id) => {
                let known = contact(plan, owner, user_id)?;
                if known.is_none() && contacts >= config.max_contacts {
                    outcome.retry.push(entry.client_id);
                    continue;
                }
                if known.is_none() {
                    contacts += 1;
                }
                let contact = Contact {
                    user_id,
                    first_name,
                    last_name,
                    date: known.map_or(date, |known| known.date),
                    phone_known: true,
                };
                put_contact(plan, owner, &contact);
                outcome.imported.push((entry.client_id, user_id));
            }
            None => {
                let key = phone_book_key(owner, &phone);
                let known = plan
                    .get(&key)?
                    .map(|value| values::decode_phone_book(&value).map_err(corrupt))
                    .transpose()?;
                if known.is_none() && book >= config.max_phone_book {
                    outcome.retry.push(entry.client_id);
                    continue;
                }
                if known.is_none() {
                    book += 1;
                }
                // A renamed entry keeps its first date, as a renamed contact does.
                let row = PhoneBookEntry {
                    first_name,
                    last_name,
                    date: known.map_or(date, |known| known.date),
                };
                plan.put(key, values::encode_phone_book(&row));
                plan.put(
                    keys::text_id_row(Prefix::Importer, &phone, owner),
                    Vec::new(),
                );
                let importers = plan
                    .scan(
                        &keys::text_row(Prefix::Importer, &format!("{phone}\0")),
                        // Counted up to a bound: `popular_invites` is a hint.
                        MAX_COUNTED_IMPORTERS,
                    )?
                    .len();
                outcome.phone_book.push((
                    entry.client_id,
                    u32::try_from(importers).unwrap_or(u32::MAX),
                ));
            }
        }
    }
    Ok(outcome)
}

pub(crate) fn add_contact(
    plan: &mut Plan<'_>,
    config: &UserStoreConfig,
    owner: i64,
    user_id: i64,
    first_name: &str,
    last_name: &str,
    date: i32,
) -> Result<(), UserError> {
    live(plan, owner)?;
    if user_id == owner {
        return Err(UserError::ContactIdInvalid);
    }
    live(plan, user_id)?;
    rules::check_first_name(first_name)?;
    rules::check_last_name(last_name)?;
    let known = contact(plan, owner, user_id)?;
    if known.is_none()
        && count(plan, Prefix::Contact, owner, config.max_contacts)? >= config.max_contacts
    {
        return Err(UserError::ContactsTooMuch);
    }
    let contact = Contact {
        user_id,
        first_name: first_name.to_owned(),
        last_name: last_name.to_owned(),
        phone_known: known.as_ref().is_some_and(|known| known.phone_known),
        date: known.map_or(date, |known| known.date),
    };
    put_contact(plan, owner, &contact);
    Ok(())
}

pub(crate) fn delete_contacts(
    plan: &mut Plan<'_>,
    owner: i64,
    user_ids: &[i64],
) -> Result<Vec<i64>, UserError> {
    let mut removed = Vec::new();
    for &user_id in user_ids {
        if !removed.contains(&user_id) && contact(plan, owner, user_id)?.is_some() {
            remove_contact(plan, owner, user_id);
            removed.push(user_id);
        }
    }
    Ok(removed)
}

pub(crate) fn delete_by_phones(
    plan: &mut Plan<'_>,
    owner: i64,
    phones: &[String],
) -> Result<Vec<i64>, UserError> {
    let mut removed = Vec::new();
    for phone in phones {
        let Some(phone) = rules::normalize_phone(phone) else {
            continue;
        };
        remove_phone_book(plan, owner, &phone);
        if let Some(user_id) = id_row(plan, &keys::text_row(Prefix::Phone, &phone))? {
            if !removed.contains(&user_id) && contact(plan, owner, user_id)?.is_some() {
                remove_contact(plan, owner, user_id);
                removed.push(user_id);
            }
        }
    }
    Ok(removed)
}

pub(crate) fn block(
    plan: &mut Plan<'_>,
    config: &UserStoreConfig,
    owner: i64,
    user_id: i64,
    date: i32,
) -> Result<bool, UserError> {
    live(plan, owner)?;
    if user_id == owner {
        return Err(UserError::ContactIdInvalid);
    }
    if account(plan, user_id)?.is_none() {
        return Err(UserError::UserIdInvalid);
    }
    if is_blocked(plan, owner, user_id)? {
        return Ok(false);
    }
    if count(plan, Prefix::Blocked, owner, config.max_blocked)? >= config.max_blocked {
        return Err(UserError::BlockedTooMuch);
    }
    plan.put(
        keys::user_row(Prefix::Blocked, &[owner, user_id]),
        values::encode_i32(date),
    );
    Ok(true)
}

pub(crate) fn unblock(plan: &mut Plan<'_>, owner: i64, user_id: i64) -> Result<bool, UserError> {
    if !is_blocked(plan, owner, user_id)? {
        return Ok(false);
    }
    plan.delete(keys::user_row(Prefix::Blocked, &[owner, user_id]));
    Ok(true)
}

pub(crate) fn put_authorization(
    plan: &mut Plan<'_>,
    config: &UserStoreConfig,
    user_id: i64,
    authorization: &Authorization,
) -> Result<Authorization, UserError> {
    live(plan, user_id)?;
    let key = keys::user_row(Prefix::Authorization, &[user_id, authorization.auth_key_id]);
    let known = plan
        .get(&key)?
        .map(|value| values::decode_authorization(&value).map_err(corrupt))
        .transpose()?;
    if known.is_none()
        && count(
            plan,
            Prefix::Authorization,
            user_id,
            config.max_authorizations,
        )? >= config.max_authorizations
    {
        return Err(UserError::TooMany);
    }
    let mut row = authorization.clone();
    for text in [
        &mut row.device_model,
        &mut row.platform,
        &mut row.system_version,
        &mut row.app_version,
        &mut row.ip,
    ] {
        *text = rules::clip(text, MAX_DETAIL_LEN);
    }
    if let Some(known) = known {
        row.hash = known.hash;
        row.created = known.created;
    }
    plan.put(key, values::encode_authorization(&row));
    Ok(row)
}

pub(crate) fn remove_authorization(
    plan: &mut Plan<'_>,
    user_id: i64,
    auth_key_id: i64,
) -> Result<Option<Authorization>, UserError> {
    let key = keys::user_row(Prefix::Authorization, &[user_id, auth_key_id]);
    let Some(value) = plan.get(&key)? else {
        return Ok(None);
    };
    let row = values::decode_authorization(&value).map_err(corrupt)?;
    plan.delete(key);
    for device in devices(plan, user_id)? {
        if device.auth_key_id == auth_key_id {
            plan.delete(keys::device(user_id, device.token_type, &device.token));
        }
    }
    Ok(Some(row))
}

pub(crate) fn register_device(
    plan: &mut Plan<'_>,
    config: &UserStoreConfig,
    user_id: i64,
    device: &Device,
) -> Result<(), UserError> {
    live(plan, user_id)?;
    if device.token.is_empty()
        || device.token.len() > MAX_TOKEN_LEN
        || device.secret.len() > MAX_SECRET_LEN
        || device.other_uids.len() > MAX_OTHER_UIDS
    {
        return Err(UserError::TokenInvalid);
    }
    let key = keys::device(user_id, device.token_type, &device.token);
    if plan.get(&key)?.is_none()
        && count(plan, Prefix::Device, user_id, config.max_devices)? >= config.max_devices
    {
        return Err(UserError::TooMany);
    }
    plan.put(key, values::encode_device(device));
    Ok(())
}

pub(crate) fn unregister_device(
    plan: &mut Plan<'_>,
    user_id: i64,
    token_type: i32,
    token: &str,
) -> Result<bool, UserError> {
    let key = keys::device(user_id, token_type, token);
    if plan.get(&key)?.is_none() {
        return Ok(false);
    }
    plan.delete(key);
    Ok(true)
}

/// Implements [`super::UserStore`] for a backend with two methods: `read(|rows| ..)` runs a
/// read on a consistent view, and `write(sync, |plan| ..)` runs a change and commits its
/// plan atomically (synced to disk unless `sync` is false).
macro_rules! user_store_over_rows {
    ($backend:ty) => {
        impl $crate::user::UserStore for $backend {
            fn create_account(
                &self,
                phone: &str,
                first_name: &str,
                last_name: &str,
            ) -> Result<$crate::user::Account, $crate::user::UserError> {
                let config = self.config;
                self.write(true, |plan| {
                    plan::create_account(plan, &config, phone, first_name, last_name)
                })
            }
            fn create_bot(
                &self,
                first_name: &str,
                username: &str,
                profile: &$crate::user::BotProfile,
            ) -> Result<$crate::user::Account, $crate::user::UserError> {
                let config = self.config;
                self.write(true, |plan| {
                    plan::create_bot(plan, &config, first_name, username, profile)
                })
            }
            fn update_bot(
                &self,
                id: i64,
                change: &mut dyn FnMut(&mut $crate::user::BotProfile),
            ) -> Result<$crate::user::Account, $crate::user::UserError> {
                self.write(true, |plan| plan::update_bot(plan, id, &mut *change))
            }
            fn put_account(
                &self,
                account: &$crate::user::Account,
            ) -> Result<(), $crate::user::UserError> {
                let config = self.config;
                self.write(true, |plan| plan::put_account(plan, &config, account))
            }
            fn account(
                &self,
                id: i64,
            ) -> Result<Option<$crate::user::Account>, $crate::user::UserError> {
                self.read(|rows| plan::account(rows, id))
            }
            fn by_phone(
                &self,
                phone: &str,
            ) -> Result<Option<$crate::user::Account>, $crate::user::UserError> {
                self.read(|rows| plan::by_phone(rows, phone))
            }
            fn by_username(
                &self,
                username: &str,
            ) -> Result<Option<$crate::user::Account>, $crate::user::UserError> {
                self.read(|rows| plan::by_username(rows, username))
            }
            fn search(
                &self,
                query: &str,
                limit: usize,
            ) -> Result<Vec<$crate::user::Account>, $crate::user::UserError> {
                self.read(|rows| plan::search(rows, query, limit))
            }
            fn update_profile(
                &self,
                id: i64,
                change: &$crate::user::ProfileChange,
            ) -> Result<$crate::user::Account, $crate::user::UserError> {
                self.write(true, |plan| plan::update_profile(plan, id, change))
            }
            fn set_username(
                &self,
                id: i64,
                username: Option<&str>,
            ) -> Result<$crate::user::Account, $crate::user::UserError> {
                self.write(true, |plan| plan::set_username(plan, id, username))
            }
            fn set_channel_username(
                &self,
                channel: i64,
                username: Option<&str>,
            ) -> Result<(), $crate::user::UserError> {
                self.write(true, |plan| {
                    plan::set_channel_username(plan, channel, username)
                })
            }
            fn channel_username(
                &self,
                channel: i64,
            ) -> Result<Option<String>, $crate::user::UserError> {
                self.read(|rows| plan::channel_username(rows, channel))
            }
            fn username_owner(
                &self,
                username: &str,
            ) -> Result<Option<$crate::user::UsernameOwner>, $crate::user::UserError> {
                self.read(|rows| plan::username_owner(rows, username))
            }
            fn set_presence(
                &self,
                id: i64,
                presence: $crate::user::Presence,
            ) -> Result<(), $crate::user::UserError> {
                self.write(false, |plan| plan::set_presence(plan, id, presence))
            }
            fn delete_account(&self, id: i64) -> Result<(), $crate::user::UserError> {
                self.write(true, |plan| plan::delete_account(plan, id))
            }
            fn add_photo(
                &self,
                id: i64,
                photo: $crate::user::ProfilePhoto,
            ) -> Result<$crate::user::Account, $crate::user::UserError> {
                let config = self.config;
                self.write(true, |plan| plan::add_photo(plan, &config, id, photo))
            }
            fn photos(
                &self,
                id: i64,
            ) -> Result<Vec<$crate::user::ProfilePhoto>, $crate::user::UserError> {
                self.read(|rows| {
                    Ok(plan::photos(rows, id)?
                        .into_iter()
                        .map(|(_, photo)| photo)
                        .collect())
                })
            }
            fn delete_photos(
                &self,
                id: i64,
                photo_ids: &[i64],
            ) -> Result<Vec<i64>, $crate::user::UserError> {
                self.write(true, |plan| plan::delete_photos(plan, id, photo_ids))
            }
            fn import_contacts(
                &self,
                owner: i64,
                entries: &[$crate::user::ImportContact],
                date: i32,
            ) -> Result<$crate::user::ImportOutcome, $crate::user::UserError> {
                let config = self.config;
                self.write(true, |plan| {
                    plan::import_contacts(plan, &config, owner, entries, date)
                })
            }
            fn add_contact(
                &self,
                owner: i64,
                user_id: i64,
                first_name: &str,
                last_name: &str,
                date: i32,
            ) -> Result<(), $crate::user::UserError> {
                let config = self.config;
                self.write(true, |plan| {
                    plan::add_contact(plan, &config, owner, user_id, first_name, last_name, date)
                })
            }
            fn delete_contacts(
                &self,
                owner: i64,
                user_ids: &[i64],
            ) -> Result<Vec<i64>, $crate::user::UserError> {
                self.write(true, |plan| plan::delete_contacts(plan, owner, user_ids))
            }
            fn delete_by_phones(
                &self,
                owner: i64,
                phones: &[String],
            ) -> Result<Vec<i64>, $crate::user::UserError> {
                self.write(true, |plan| plan::delete_by_phones(plan, owner, phones))
            }
            fn contacts(
                &self,
                owner: i64,
            ) -> Result<Vec<$crate::user::Contact>, $crate::user::UserError> {
                self.read(|rows| plan::contacts(rows, owner))
            }
            fn contact(
                &self,
                owner: i64,
                user_id: i64,
            ) -> Result<Option<$crate::user::Contact>, $crate::user::UserError> {
                self.read(|rows| plan::contact(rows, owner, user_id))
            }
            fn contact_of(
                &self,
                user_id: i64,
                limit: usize,
            ) -> Result<Vec<i64>, $crate::user::UserError> {
                self.read(|rows| plan::contact_of(rows, user_id, limit))
            }
            fn block(
                &self,
                owner: i64,
                user_id: i64,
                date: i32,
            ) -> Result<bool, $crate::user::UserError> {
                let config = self.config;
                self.write(true, |plan| {
                    plan::block(plan, &config, owner, user_id, date)
                })
            }
            fn unblock(&self, owner: i64, user_id: i64) -> Result<bool, $crate::user::UserError> {
                self.write(true, |plan| plan::unblock(plan, owner, user_id))
            }
            fn is_blocked(
                &self,
                owner: i64,
                user_id: i64,
            ) -> Result<bool, $crate::user::UserError> {
                self.read(|rows| plan::is_blocked(rows, owner, user_id))
            }
            fn blocked(
                &self,
                owner: i64,
                offset: usize,
                limit: usize,
            ) -> Result<(Vec<$crate::user::Blocked>, usize), $crate::user::UserError> {
                self.read(|rows| plan::blocked(rows, owner, offset, limit))
            }
            fn put_authorization(
                &self,
                user_id: i64,
                authorization: &$crate::user::Authorization,
            ) -> Result<$crate::user::Authorization, $crate::user::UserError> {
                let config = self.config;
                self.write(true, |plan| {
                    plan::put_authorization(plan, &config, user_id, authorization)
                })
            }
            fn authorizations(
                &self,
                user_id: i64,
            ) -> Result<Vec<$crate::user::Authorization>, $crate::user::UserError> {
                self.read(|rows| plan::authorizations(rows, user_id))
            }
            fn remove_authorization(
                &self,
                user_id: i64,
                auth_key_id: i64,
            ) -> Result<Option<$crate::user::Authorization>, $crate::user::UserError> {
                self.write(true, |plan| {
                    plan::remove_authorization(plan, user_id, auth_key_id)
                })
            }
            fn register_device(
                &self,
                user_id: i64,
                device: &$crate::user::Device,
            ) -> Result<(), $crate::user::UserError> {
                let config = self.config;
                self.write(true, |plan| {
                    plan::register_device(plan, &config, user_id, device)
                })
            }
            fn unregister_device(
                &self,
                user_id: i64,
                token_type: i32,
                token: &str,
            ) -> Result<bool, $crate::user::UserError> {
                self.write(true, |plan| {
                    plan::unregister_device(plan, user_id, token_type, token)
                })
            }
            fn devices(
                &self,
                user_id: i64,
            ) -> Result<Vec<$crate::user::Device>, $crate::user::UserError> {
                self.read(|rows| plan::devices(rows, user_id))
            }
        }
    };
}
pub(crate) use user_store_over_rows;
