//! `contacts`: the address book (import by phone, add, delete, list with Telegram's `hash`
//! rule, statuses), finding people (search by name and username prefix, by username, by
//! phone), and blocking.
//!
//! Imports are limited twice, as Telegram limits them: at most
//! [`ContactsOptions::max_import_per_call`] entries of one call are looked at (the rest come
//! back in `retry_contacts`), and a user imports at most
//! [`ContactsOptions::imports_per_window`] phones a [`ContactsOptions::import_window`]
//! (`FLOOD_WAIT_X` beyond), so that nobody can walk the phone-number space to find out who
//! has an account.

use std::sync::Arc;
use std::time::{Duration, Instant};

use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::user::{ImportContact, contacts_hash};

use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects::{self, now_unix};
use crate::rate::RateLimit;
use crate::router::Router;

/// The most results of one `contacts.search`.
pub const MAX_SEARCH: usize = 50;
/// The most users of one `contacts.deleteContacts` or phones of one `deleteByPhones`.
pub const MAX_DELETE: usize = 1000;
/// The most blocked users in one page of `contacts.getBlocked`.
pub const MAX_BLOCKED_PAGE: usize = 100;

/// Limits of the contacts module.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ContactsOptions {
    /// Entries of one `contacts.importContacts` looked at; the rest are answered in
    /// `retry_contacts`. Default 1,000.
    pub max_import_per_call: usize,
    /// Phones one user may import per [`Self::import_window`]. Default 5,000.
    pub imports_per_window: u64,
    /// The window of [`Self::imports_per_window`]. Default one day.
    pub import_window: Duration,
    /// `contacts.search` and `resolvePhone` calls per user per [`Self::search_window`].
    /// Default 200.
    pub searches_per_window: u64,
    /// The window of [`Self::searches_per_window`]. Default 10 minutes.
    pub search_window: Duration,
    /// Users whose rates are tracked at once (each limit). Default 100,000.
    pub max_tracked_users: usize,
}

impl Default for ContactsOptions {
    fn default() -> Self {
        Self {
            max_import_per_call: 1000,
            imports_per_window: 5000,
            import_window: Duration::from_secs(24 * 3600),
            searches_per_window: 200,
            search_window: Duration::from_secs(600),
            max_tracked_users: 100_000,
        }
    }
}

/// The contacts module: its backend and its rate limits.
#[derive(Debug)]
pub struct Contacts {
    backend: Arc<Backend>,
    options: ContactsOptions,
    imports: RateLimit,
    searches: RateLimit,
}

impl Contacts {
    /// The module over `backend` with these limits.
    pub fn new(backend: Arc<Backend>, options: ContactsOptions) -> Arc<Self> {
        Arc::new(Self {
            imports: RateLimit::new(
                options.imports_per_window,
                options.import_window,
                options.max_tracked_users,
            ),
            searches: RateLimit::new(
                options.searches_per_window,
                options.search_window,
                options.max_tracked_users,
            ),
            backend,
            options,
        })
    }
}

/// Every method of this module.
pub fn router(contacts: Arc<Contacts>) -> Router {
    Router::new()
        .route_with(contacts.clone(), import_contacts)
        .route_with(contacts.clone(), add_contact)
        .route_with(contacts.clone(), delete_contacts)
        .route_with(contacts.clone(), delete_by_phones)
        .route_with(contacts.clone(), get_contacts)
        .route_with(contacts.clone(), get_statuses)
        .route_with(contacts.clone(), search)
        .route_with(contacts.clone(), resolve_phone)
        .route_with(contacts.clone(), block)
        .route_with(contacts.clone(), unblock)
        .route_with(contacts, get_blocked)
}

/// `contacts.importContacts`: entries whose phone has an account become contacts
/// (`imported`, with the users), the others wait in the phone book (`popular_invites` with
/// how many users imported that phone); entries past the per-call limit, with a bad phone,
/// or past a full list come back in `retry_contacts`.
pub async fn import_contacts(
    ctx: Ctx,
    contacts: Arc<Contacts>,
    request: functions::contacts::ImportContacts,
) -> Result<enums::contacts::ImportedContacts, ApiError> {
    let owner = ctx.user()?;
    let cut = request
        .contacts
        .len()
        .min(contacts.options.max_import_per_call);
    let (looked_at, later) = request.contacts.split_at(cut);
    contacts
        .imports
        .take(owner, looked_at.len() as u64, Instant::now())?;
    let entries: Vec<ImportContact> = looked_at
        .iter()
        .map(|contact| {
            let enums::InputContact::InputPhoneContact(contact) = contact;
            ImportContact {
                client_id: contact.client_id,
                phone: contact.phone.clone(),
                first_name: contact.first_name.clone(),
                last_name: contact.last_name.clone(),
            }
        })
        .collect();
    let mut retry: Vec<i64> = later
        .iter()
        .map(|contact| {
            let enums::InputContact::InputPhoneContact(contact) = contact;
            contact.client_id
        })
        .collect();
    let backend = contacts.backend.clone();
    ctx.blocking(move || {
        let outcome = backend.users.import_contacts(owner, &entries, now_unix())?;
        retry.extend(outcome.retry.iter().copied());
        let users = backend.user_objects(outcome.imported.iter().map(|(_, user)| *user), owner)?;
        Ok(types::contacts::ImportedContacts {
            imported: outcome
                .imported
                .iter()
                .map(|&(client_id, user_id)| types::ImportedContact { user_id, client_id }.into())
                .collect(),
            popular_invites: outcome
                .phone_book
                .iter()
                .map(|&(client_id, importers)| {
                    types::PopularContact {
                        client_id,
                        importers: i32::try_from(importers).unwrap_or(i32::MAX),
                    }
                    .into()
                })
                .collect(),
            retry_contacts: retry,
            users,
        }
        .into())
    })
    .await
}

/// `contacts.addContact`: the user becomes (or is renamed as) a contact; the answer is an
/// `updates` with the user as the caller now sees it.
pub async fn add_contact(
    ctx: Ctx,
    contacts: Arc<Contacts>,
    request: functions::contacts::AddContact,
) -> Result<enums::Updates, ApiError> {
    let owner = ctx.user()?;
    let backend = contacts.backend.clone();
    ctx.blocking(move || {
        let user_id = backend.input_user(owner, &request.id)?;
        if user_id == owner {
            return Err(ApiError::bad_request("CONTACT_ID_INVALID"));
        }
        let first_name = request.first_name.trim();
        backend.users.add_contact(
            owner,
            user_id,
            first_name,
            request.last_name.trim(),
            now_unix(),
        )?;
        let users = backend.user_objects([user_id], owner)?;
        Ok(objects::updates(Vec::new(), users, now_unix()))
    })
    .await
}

/// `contacts.deleteContacts`: an `updates` with the users as the caller now sees them.
pub async fn delete_contacts(
    ctx: Ctx,
    contacts: Arc<Contacts>,
    request: functions::contacts::DeleteContacts,
) -> Result<enums::Updates, ApiError> {
    let owner = ctx.user()?;
    if request.id.len() > MAX_DELETE {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    let backend = contacts.backend.clone();
    ctx.blocking(move || {
        let ids = request
            .id
            .iter()
            .filter_map(|input| backend.input_user(owner, input).ok())
            .collect::<Vec<_>>();
        let removed = backend.users.delete_contacts(owner, &ids)?;
        let users = backend.user_objects(removed, owner)?;
        Ok(objects::updates(Vec::new(), users, now_unix()))
    })
    .await
}

/// `contacts.deleteByPhones`.
pub async fn delete_by_phones(
    ctx: Ctx,
    contacts: Arc<Contacts>,
    request: functions::contacts::DeleteByPhones,
) -> Result<bool, ApiError> {
    let owner = ctx.user()?;
    if request.phones.len() > MAX_DELETE {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    let backend = contacts.backend.clone();
    ctx.blocking(move || {
        backend.users.delete_by_phones(owner, &request.phones)?;
        Ok(true)
    })
    .await
}

/// `contacts.getContacts`: every contact with its user, or `contacts.contactsNotModified`
/// when the client's `hash` is the list's. The hash is Telegram's (core.telegram.org,
/// `contacts.getContacts`): the usual hash of `saved_count` (always 0 here) followed by the
/// contacts' user ids in ascending order.
pub async fn get_contacts(
    ctx: Ctx,
    contacts: Arc<Contacts>,
    request: functions::contacts::GetContacts,
) -> Result<enums::contacts::Contacts, ApiError> {
    let owner = ctx.user()?;
    let backend = contacts.backend.clone();
    ctx.blocking(move || {
        let list = backend.users.contacts(owner)?;
        let hash =
            contacts_hash(std::iter::once(0).chain(list.iter().map(|contact| contact.user_id)));
        if request.hash != 0 && request.hash == hash {
            return Ok(types::contacts::ContactsNotModified {}.into());
        }
        // The users carry whether each contact has the owner too: no second read per contact.
        let users = backend.user_objects(list.iter().map(|contact| contact.user_id), owner)?;
        let entries = list
            .iter()
            .map(|contact| {
                types::Contact {
                    user_id: contact.user_id,
                    mutual: relation_flag(&users, contact.user_id, |user| user.mutual_contact),
                }
                .into()
            })
            .collect();
        Ok(types::contacts::Contacts {
            contacts: entries,
            saved_count: 0,
            users,
        }
        .into())
    })
    .await
}

/// A relation flag (`contact`, `mutual_contact`) of user `id` among `users` (as
/// [`Backend::user_objects`] gives them: by id), as the viewer sees them; `false` for a user
/// not among them.
fn relation_flag(users: &[enums::User], id: i64, flag: impl Fn(&types::User) -> bool) -> bool {
    let id_of = |user: &enums::User| match user {
        enums::User::User(user) => user.id,
        enums::User::UserEmpty(user) => user.id,
    };
    users
        .binary_search_by_key(&id, id_of)
        .ok()
        .and_then(|index| users.get(index))
        .is_some_and(|user| matches!(user, enums::User::User(user) if flag(user)))
}

/// `contacts.getStatuses`: the status of each contact that has one.
pub async fn get_statuses(
    ctx: Ctx,
    contacts: Arc<Contacts>,
    _: functions::contacts::GetStatuses,
) -> Result<Vec<enums::ContactStatus>, ApiError> {
    let owner = ctx.user()?;
    let backend = contacts.backend.clone();
    ctx.blocking(move || {
        let now = now_unix();
        let mut statuses = Vec::new();
        for contact in backend.users.contacts(owner)? {
            let Some(account) = backend.users.account(contact.user_id)? else {
                continue;
            };
            if let Some(status) = objects::user_status(account.presence, now) {
                statuses.push(
                    types::ContactStatus {
                        user_id: contact.user_id,
                        status,
                    }
                    .into(),
                );
            }
        }
        Ok(statuses)
    })
    .await
}

/// `contacts.search`: contacts whose name or username starts with the query in
/// `my_results`, everyone else found in `results` (`QUERY_TOO_SHORT` for an empty query).
pub async fn search(
    ctx: Ctx,
    contacts: Arc<Contacts>,
    request: functions::contacts::Search,
) -> Result<enums::contacts::Found, ApiError> {
    let viewer = ctx.user()?;
    let query = request.q.trim().trim_start_matches('@').to_owned();
    if query.is_empty() {
        return Err(ApiError::bad_request("QUERY_TOO_SHORT"));
    }
    contacts.searches.take(viewer, 1, Instant::now())?;
    let limit = usize::try_from(request.limit)
        .unwrap_or(0)
        .clamp(1, MAX_SEARCH);
    let backend = contacts.backend.clone();
    ctx.blocking(move || {
        let found = backend.users.search(&query, limit)?;
        let users = backend.user_objects(found.iter().map(|account| account.id), viewer)?;
        let (mine, others): (Vec<i64>, Vec<i64>) = found
            .iter()
            .map(|account| account.id)
            .filter(|id| *id != viewer)
            .partition(|id| relation_flag(&users, *id, |user| user.contact));
        Ok(types::contacts::Found {
            my_results: mine.into_iter().map(objects::peer_user).collect(),
            results: others.into_iter().map(objects::peer_user).collect(),
            chats: Vec::new(),
            users,
        }
        .into())
    })
    .await
}

/// `contacts.resolvePhone`: the user with this phone (`PHONE_NOT_OCCUPIED` when none).
pub async fn resolve_phone(
    ctx: Ctx,
    contacts: Arc<Contacts>,
    request: functions::contacts::ResolvePhone,
) -> Result<enums::contacts::ResolvedPeer, ApiError> {
    let viewer = ctx.user()?;
    contacts.searches.take(viewer, 1, Instant::now())?;
    let backend = contacts.backend.clone();
    ctx.blocking(move || {
        let not_occupied = || ApiError::bad_request("PHONE_NOT_OCCUPIED");
        let account = backend
            .users
            .by_phone(&request.phone)?
            .ok_or_else(not_occupied)?;
        let user = backend
            .user_object(account.id, viewer)?
            .ok_or_else(not_occupied)?;
        Ok(types::contacts::ResolvedPeer {
            peer: objects::peer_user(account.id),
            chats: Vec::new(),
            users: vec![user],
        }
        .into())
    })
    .await
}

/// `contacts.block`.
pub async fn block(
    ctx: Ctx,
    contacts: Arc<Contacts>,
    request: functions::contacts::Block,
) -> Result<bool, ApiError> {
    let owner = ctx.user()?;
    let backend = contacts.backend.clone();
    ctx.blocking(move || {
        let target = backend.input_peer(owner, &request.id)?;
        backend.users.block(owner, target, now_unix())?;
        Ok(true)
    })
    .await
}

/// `contacts.unblock`.
pub async fn unblock(
    ctx: Ctx,
    contacts: Arc<Contacts>,
    request: functions::contacts::Unblock,
) -> Result<bool, ApiError> {
    let owner = ctx.user()?;
    let backend = contacts.backend.clone();
    ctx.blocking(move || {
        let target = backend.input_peer(owner, &request.id)?;
        backend.users.unblock(owner, target)?;
        Ok(true)
    })
    .await
}

/// `contacts.getBlocked`: a page of blocked users (`contacts.blockedSlice` with the count
/// when there are more).
pub async fn get_blocked(
    ctx: Ctx,
    contacts: Arc<Contacts>,
    request: functions::contacts::GetBlocked,
) -> Result<enums::contacts::Blocked, ApiError> {
    let owner = ctx.user()?;
    let offset =
        usize::try_from(request.offset).map_err(|_| ApiError::bad_request("OFFSET_INVALID"))?;
    let limit = usize::try_from(request.limit)
        .unwrap_or(0)
        .clamp(1, MAX_BLOCKED_PAGE);
    let backend = contacts.backend.clone();
    ctx.blocking(move || {
        let (page, total) = backend.users.blocked(owner, offset, limit)?;
        let users = backend.user_objects(page.iter().map(|row| row.user_id), owner)?;
        let blocked = page
            .iter()
            .map(|row| {
                types::PeerBlocked {
                    peer_id: objects::peer_user(row.user_id),
                    date: row.date,
                }
                .into()
            })
            .collect::<Vec<_>>();
        if offset == 0 && blocked.len() == total {
            Ok(types::contacts::Blocked {
                blocked,
                chats: Vec::new(),
                users,
            }
            .into())
        } else {
            Ok(types::contacts::BlockedSlice {
                count: i32::try_from(total).unwrap_or(i32::MAX),
                blocked,
                chats: Vec::new(),
                users,
            }
            .into())
        }
    })
    .await
}
