//! `account`: the profile (names, about, username), presence, the signed-in devices
//! (`authorization`s) and push devices, and deleting the account.
//!
//! Changes others see are pushed to the users who have the caller as a contact: a name or
//! username change as `updateUserName`, a presence report as `updateUserStatus`. Username
//! checks are rate-limited like contact searches ([`AccountOptions::checks_per_window`]), so
//! that the username space cannot be walked quickly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use columba_mtproto::tl::Serializable as _;
use columba_mtproto::tl::api::{enums, functions, types};
use columba_session::runtime::ServerHandle;
use columba_store::user::{Account, Authorization, Device, Presence, ProfileChange};

use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::info::ClientInfo;
use crate::objects::{self, now_unix};
use crate::rate::RateLimit;
use crate::router::Router;

/// How long a user counts as online after reporting it (`online_cloud_timeout_ms` of the
/// config: 300 s).
pub const ONLINE_FOR: i32 = 300;
/// The most users told of one presence or name change.
pub const MAX_WATCHERS: usize = 10_000;

/// Limits of the account module.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccountOptions {
    /// `account.checkUsername` and `account.updateUsername` calls per user per
    /// [`Self::check_window`]. Default 100.
    pub checks_per_window: u64,
    /// The window of [`Self::checks_per_window`]. Default 10 minutes.
    pub check_window: Duration,
    /// Users whose rates are tracked at once. Default 100,000.
    pub max_tracked_users: usize,
    /// Days an unused authorization lives (`authorization_ttl_days`). Default 180.
    pub authorization_ttl_days: i32,
}

impl Default for AccountOptions {
    fn default() -> Self {
        Self {
            checks_per_window: 100,
            check_window: Duration::from_secs(600),
            max_tracked_users: 100_000,
            authorization_ttl_days: 180,
        }
    }
}

/// The account module: its backend and its limits.
#[derive(Debug)]
pub struct Accounts {
    backend: Arc<Backend>,
    options: AccountOptions,
    checks: RateLimit,
}

impl Accounts {
    /// The module over `backend` with these limits.
    pub fn new(backend: Arc<Backend>, options: AccountOptions) -> Arc<Self> {
        Arc::new(Self {
            checks: RateLimit::new(
                options.checks_per_window,
                options.check_window,
                options.max_tracked_users,
            ),
            backend,
            options,
        })
    }
}

/// Every method of this module.
pub fn router(accounts: Arc<Accounts>) -> Router {
    Router::new()
        .route_with(accounts.clone(), update_profile)
        .route_with(accounts.clone(), update_username)
        .route_with(accounts.clone(), check_username)
        .route_with(accounts.clone(), update_status)
        .route_with(accounts.clone(), get_authorizations)
        .route_with(accounts.clone(), reset_authorization)
        .route_with(accounts.clone(), register_device)
        .route_with(accounts.clone(), unregister_device)
        .route_with(accounts, delete_account)
}

/// Sends `update` (as `updateShort`) to every user who has `user` as a contact. Blocking.
pub fn tell_watchers(server: &ServerHandle, backend: &Backend, user: i64, update: enums::Update) {
    let watchers = match backend.users.contact_of(user, MAX_WATCHERS) {
        Ok(watchers) => watchers,
        Err(error) => {
            tracing::warn!(%error, user, "watchers unreadable");
            return;
        }
    };
    if watchers.is_empty() {
        return;
    }
    let short: enums::Updates = types::UpdateShort {
        update,
        date: now_unix(),
    }
    .into();
    let bytes = Bytes::from(short.to_bytes());
    for watcher in watchers {
        server.send_update(watcher, bytes.clone());
    }
}

fn name_update(account: &Account) -> enums::Update {
    types::UpdateUserName {
        user_id: account.id,
        first_name: account.first_name.clone(),
        last_name: account.last_name.clone(),
        usernames: account
            .username
            .iter()
            .map(|username| {
                types::Username {
                    editable: true,
                    active: true,
                    username: username.clone(),
                }
                .into()
            })
            .collect(),
    }
    .into()
}

/// The caller as they see themselves.
fn own_user(backend: &Backend, account: &Account) -> enums::User {
    objects::user(
        account,
        account.id,
        objects::Relation::default(),
        &backend.access,
        &backend.dcs,
        now_unix(),
    )
}

/// `account.updateProfile`: the new names and about text (`FIRSTNAME_INVALID`,
/// `LASTNAME_INVALID`, `ABOUT_TOO_LONG`); watchers get `updateUserName`.
pub async fn update_profile(
    ctx: Ctx,
    accounts: Arc<Accounts>,
    request: functions::account::UpdateProfile,
) -> Result<enums::User, ApiError> {
    let user = ctx.user()?;
    let backend = accounts.backend.clone();
    let mut change = ProfileChange::default();
    change.first_name = request.first_name.map(|name| name.trim().to_owned());
    change.last_name = request.last_name.map(|name| name.trim().to_owned());
    change.about = request.about;
    let server = ctx.server().clone();
    ctx.blocking(move || {
        let before = backend.live_user(user)?;
        let account = backend.users.update_profile(user, &change)?;
        if (&before.first_name, &before.last_name) != (&account.first_name, &account.last_name) {
            tell_watchers(&server, &backend, user, name_update(&account));
        }
        Ok(own_user(&backend, &account))
    })
    .await
}

/// `account.updateUsername`: an empty username removes it (`USERNAME_INVALID`,
/// `USERNAME_OCCUPIED`, `USERNAME_NOT_MODIFIED`); watchers get `updateUserName`.
pub async fn update_username(
    ctx: Ctx,
    accounts: Arc<Accounts>,
    request: functions::account::UpdateUsername,
) -> Result<enums::User, ApiError> {
    let user = ctx.user()?;
    accounts.checks.take(user, 1, Instant::now())?;
    let backend = accounts.backend.clone();
    let server = ctx.server().clone();
    ctx.blocking(move || {
        let username = (!request.username.is_empty()).then_some(request.username.as_str());
        let account = backend.users.set_username(user, username)?;
        tell_watchers(&server, &backend, user, name_update(&account));
        Ok(own_user(&backend, &account))
    })
    .await
}

/// `account.checkUsername`: `true` when the username is free or the caller's
/// (`USERNAME_INVALID` when it breaks the rules, `USERNAME_OCCUPIED` when someone else has
/// it).
pub async fn check_username(
    ctx: Ctx,
    accounts: Arc<Accounts>,
    request: functions::account::CheckUsername,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    accounts.checks.take(user, 1, Instant::now())?;
    if columba_store::user::user_username_key(&request.username).is_none() {
        return Err(ApiError::bad_request("USERNAME_INVALID"));
    }
    let backend = accounts.backend.clone();
    ctx.blocking(
        move || match backend.users.by_username(&request.username)? {
            Some(holder) if holder.id != user => Err(ApiError::bad_request("USERNAME_OCCUPIED")),
            _ => Ok(true),
        },
    )
    .await
}

/// `account.updateStatus`: online for [`ONLINE_FOR`] seconds, or offline now; watchers get
/// `updateUserStatus`, and the session's authorization its last activity.
pub async fn update_status(
    ctx: Ctx,
    accounts: Arc<Accounts>,
    request: functions::account::UpdateStatus,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    let offline = request.offline;
    let backend = accounts.backend.clone();
    let perm = ctx.perm_auth_key_id()?;
    let server = ctx.server().clone();
    ctx.blocking(move || {
        let now = now_unix();
        let presence = if offline {
            Presence::Offline { was_online: now }
        } else {
            Presence::Online {
                expires: now.saturating_add(ONLINE_FOR),
            }
        };
        backend.users.set_presence(user, presence)?;
        refresh_activity(&backend, user, perm, now)?;
        if let Some(status) = objects::user_status(presence, now) {
            tell_watchers(
                &server,
                &backend,
                user,
                types::UpdateUserStatus {
                    user_id: user,
                    status,
                }
                .into(),
            );
        }
        Ok(true)
    })
    .await
}

/// Moves the authorization's last activity to `now` when it is more than an hour old (one
/// synced write an hour per device, not one per status report).
fn refresh_activity(backend: &Backend, user: i64, perm: i64, now: i32) -> Result<(), ApiError> {
    let rows = backend.users.authorizations(user)?;
    if let Some(row) = rows.iter().find(|row| row.auth_key_id == perm) {
        if now.saturating_sub(row.active) > 3600 {
            let mut row = row.clone();
            row.active = now;
            backend.users.put_authorization(user, &row)?;
        }
    }
    Ok(())
}

/// `account.getAuthorizations`: every signed-in key of the user, the caller's own marked
/// `current` with hash 0 (as Telegram shows it).
pub async fn get_authorizations(
    ctx: Ctx,
    accounts: Arc<Accounts>,
    _: functions::account::GetAuthorizations,
) -> Result<enums::account::Authorizations, ApiError> {
    let user = ctx.user()?;
    let perm = ctx.perm_auth_key_id()?;
    let backend = accounts.backend.clone();
    let ttl_days = accounts.options.authorization_ttl_days;
    ctx.blocking(move || {
        let rows = backend.users.authorizations(user)?;
        let authorizations = rows
            .iter()
            .map(|row| {
                let current = row.auth_key_id == perm;
                types::Authorization {
                    current,
                    hash: if current { 0 } else { row.hash },
                    device_model: row.device_model.clone(),
                    platform: row.platform.clone(),
                    system_version: row.system_version.clone(),
                    api_id: row.api_id,
                    app_version: row.app_version.clone(),
                    date_created: row.created,
                    date_active: row.active,
                    ip: row.ip.clone(),
                    ..Default::default()
                }
                .into()
            })
            .collect();
        Ok(types::account::Authorizations {
            authorization_ttl_days: ttl_days,
            authorizations,
        }
        .into())
    })
    .await
}

/// `account.resetAuthorization`: the device with this hash is signed out (its key loses its
/// user, its sessions get `AUTH_KEY_UNREGISTERED`, its push devices go). The caller's own
/// (hash 0) cannot be reset this way (`HASH_INVALID`, as for an unknown hash).
pub async fn reset_authorization(
    ctx: Ctx,
    accounts: Arc<Accounts>,
    request: functions::account::ResetAuthorization,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    let perm = ctx.perm_auth_key_id()?;
    let backend = accounts.backend.clone();
    let server = ctx.server().clone();
    let key = ctx
        .blocking(move || {
            let invalid = || ApiError::bad_request("HASH_INVALID");
            if request.hash == 0 {
                return Err(invalid());
            }
            let row = backend
                .users
                .authorizations(user)?
                .into_iter()
                .find(|row| row.hash == request.hash && row.auth_key_id != perm)
                .ok_or_else(invalid)?;
            sign_out(&server, &backend, user, row.auth_key_id)?;
            Ok(row.auth_key_id)
        })
        .await?;
    ctx.server().set_user(key, None);
    Ok(true)
}

/// Signs `key` out of `user`: its authorization and devices go, its secret chats close
/// (the other sides are told), the key store forgets its user. Blocking. The caller tells the runtime (`ServerHandle::set_user`).
pub fn sign_out(
    server: &ServerHandle,
    backend: &Backend,
    user: i64,
    key: i64,
) -> Result<(), ApiError> {
    backend.users.remove_authorization(user, key)?;
    crate::secret::device_signed_out(server, backend, key)?;
    match backend.keys.set_user(key, None) {
        // A key the store no longer has is signed out already.
        Ok(()) | Err(columba_store::AuthKeyError::NotFound(_)) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Records the sign-in of `key` as `user` with what the session's `initConnection` said
/// (`client`) and the address it came from (`ip`). When the user has the most authorizations the store keeps, the one used
/// longest ago is signed out to make room (as a session limit would); the keys signed out
/// are returned, for the caller to tell the runtime. Blocking.
pub fn record_sign_in(
    server: &ServerHandle,
    backend: &Backend,
    client: Option<&ClientInfo>,
    ip: Option<std::net::IpAddr>,
    user: i64,
    key: i64,
) -> Result<Vec<i64>, ApiError> {
    // Any id but 0, which names the caller's own authorization.
    let mut row = Authorization::new(key, rand::random::<i64>() | 1, now_unix());
    row.ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
    if let Some(client) = client {
        row.api_id = client.api_id;
        row.device_model.clone_from(&client.device_model);
        row.system_version.clone_from(&client.system_version);
        row.app_version.clone_from(&client.app_version);
        // Official apps name their platform in `lang_pack` ("android", "ios", "tdesktop");
        // others only their system.
        row.platform = if client.lang_pack.is_empty() {
            client.system_version.clone()
        } else {
            client.lang_pack.clone()
        };
    }
    let mut evicted = Vec::new();
    loop {
        match backend.users.put_authorization(user, &row) {
            Ok(_) => return Ok(evicted),
            Err(columba_store::UserError::TooMany) if evicted.len() < 4 => {
                let oldest = backend
                    .users
                    .authorizations(user)?
                    .into_iter()
                    .filter(|other| other.auth_key_id != key)
                    .min_by_key(|other| other.active)
                    .ok_or_else(|| ApiError::flood_wait(60))?;
                sign_out(server, backend, user, oldest.auth_key_id)?;
                evicted.push(oldest.auth_key_id);
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// `account.registerDevice`: the token (`TOKEN_INVALID` when empty or too long) is kept
/// with the caller's key, for pushes to the user.
pub async fn register_device(
    ctx: Ctx,
    accounts: Arc<Accounts>,
    request: functions::account::RegisterDevice,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    let perm = ctx.perm_auth_key_id()?;
    let backend = accounts.backend.clone();
    ctx.blocking(move || {
        let mut device = Device::new(perm, request.token_type, request.token);
        device.app_sandbox = request.app_sandbox;
        device.secret = request.secret;
        device.other_uids = request.other_uids;
        backend.users.register_device(user, &device)?;
        Ok(true)
    })
    .await
}

/// `account.unregisterDevice`.
pub async fn unregister_device(
    ctx: Ctx,
    accounts: Arc<Accounts>,
    request: functions::account::UnregisterDevice,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    let backend = accounts.backend.clone();
    ctx.blocking(move || {
        Ok(backend
            .users
            .unregister_device(user, request.token_type, &request.token)?)
    })
    .await
}

/// `account.deleteAccount`: the account goes (its phone and username are free again, its
/// contacts, blocks, devices and photos removed) and every key signed in as it is signed
/// out; its messages stay in the other users' boxes, as Telegram keeps them.
pub async fn delete_account(
    ctx: Ctx,
    accounts: Arc<Accounts>,
    _: functions::account::DeleteAccount,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    let perm = ctx.perm_auth_key_id()?;
    let backend = accounts.backend.clone();
    let server = ctx.server().clone();
    let keys = ctx
        .blocking(move || {
            // The caller's key too, had its sign-in not been recorded.
            let mut keys: Vec<i64> = backend
                .users
                .authorizations(user)?
                .iter()
                .map(|row| row.auth_key_id)
                .chain([perm])
                .collect();
            keys.sort_unstable();
            keys.dedup();
            backend.users.delete_account(user)?;
            for key in &keys {
                sign_out(&server, &backend, user, *key)?;
            }
            Ok(keys)
        })
        .await?;
    for key in keys {
        ctx.server().set_user(key, None);
    }
    Ok(true)
}
