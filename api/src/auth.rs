//! The login flow over a [`CodeSender`]: `auth.sendCode`, `auth.resendCode`,
//! `auth.cancelCode`, `auth.signIn`, `auth.signUp` (when the phone number has no account
//! and the options ask for it, as Telegram does), `auth.logOut`.
//!
//! A sign-in binds the permanent key behind the session (and through it its temporary
//! keys) to the user, in the key store, and tells the runtime. Codes are random, compared in
//! constant time with their hashes, live [`LoginOptions::code_ttl`], allow
//! [`LoginOptions::max_attempts`] wrong guesses, and a phone number gets at most
//! [`LoginOptions::codes_per_window`] codes a [`LoginOptions::code_window`]
//! (`FLOOD_WAIT_X` beyond).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use columba_mtproto::tl::api::{enums, functions, types};
use columba_session::plugins::CodeSender;
use rand::Rng as _;
use subtle::ConstantTimeEq as _;

use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects;
use crate::router::Router;
use columba_store::UserError;
use columba_store::user::{Account, normalize_phone};

/// The longest first or last name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// What a sign-in with a phone number that has no account does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignUp {
    /// Answer `auth.authorizationSignUpRequired`; the client then calls `auth.signUp` with
    /// the names (Telegram's behaviour).
    Required,
    /// Register the number at once, named `User <last four digits>` (demos, tests, and
    /// clients that only call `auth.signIn`).
    Automatic,
}

/// The login flow's limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoginOptions {
    /// How long a code lives. Default 5 minutes.
    pub code_ttl: Duration,
    /// Wrong codes before the code is dropped (`PHONE_CODE_EXPIRED` after). Default 5.
    pub max_attempts: u32,
    /// Codes sent to one phone number per [`Self::code_window`]. Default 10.
    pub codes_per_window: usize,
    /// The window of [`Self::codes_per_window`]. Default 1 hour.
    pub code_window: Duration,
    /// Phone numbers with a pending code or a recent send, at most; one more sendCode gets
    /// `FLOOD_WAIT_60`. Default 10,000.
    pub max_pending: usize,
    /// Digits of a code. Default 5.
    pub code_digits: u32,
    /// Sign-in of a number with no account. Default [`SignUp::Required`].
    pub sign_up: SignUp,
    /// How long an `auth.exportAuthorization` token may be imported. Default 60 s.
    pub export_ttl: Duration,
    /// Exported tokens not yet imported, at most; one more export gets `FLOOD_WAIT_X`.
    /// Default 10,000.
    pub max_exports: usize,
    fixed_code: Option<String>,
}

impl Default for LoginOptions {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(300),
            max_attempts: 5,
            codes_per_window: 10,
            code_window: Duration::from_secs(3600),
            max_pending: 10_000,
            code_digits: 5,
            sign_up: SignUp::Required,
            export_ttl: Duration::from_secs(60),
            max_exports: 10_000,
            fixed_code: None,
        }
    }
}

/// Settings that lower the login's security: for tests and demos only.
pub mod danger {
    use super::LoginOptions;

    /// Every code is `code` (anyone who knows it signs in as any phone number).
    pub fn fixed_code(mut options: LoginOptions, code: impl Into<String>) -> LoginOptions {
        options.fixed_code = Some(code.into());
        options
    }
}

/// A code waiting for its sign-in.
struct Pending {
    hash: String,
    code: String,
    sent: Instant,
    attempts: u32,
    /// The code was right but the number has no account: waiting for `auth.signUp`.
    verified: bool,
}

#[derive(Default)]
struct Phone {
    pending: Option<Pending>,
    /// When codes were sent, within the window.
    sends: VecDeque<Instant>,
}

/// The clock of the login flow: real, moved forward by tests.
struct Clock {
    base: Instant,
    #[cfg(test)]
    offset: Mutex<Duration>,
}

impl Clock {
    fn now(&self) -> Instant {
        #[cfg(test)]
        {
            self.base + *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
        }
        #[cfg(not(test))]
        {
            let _ = self.base;
            Instant::now()
        }
    }
}

/// The login module's state: give it to [`router`].
pub struct Login {
    backend: Arc<Backend>,
    sender: Arc<dyn CodeSender>,
    options: LoginOptions,
    phones: Mutex<HashMap<String, Phone>>,
    exports: Mutex<HashMap<[u8; 32], transfer::Export>>,
    clock: Clock,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// `auth.sendCode`, `resendCode`, `cancelCode`, `signIn`, `signUp`, `importAuthorization`
/// (callable before sign-in), `auth.exportAuthorization` and `auth.logOut`.
pub fn router(login: Arc<Login>) -> Router {
    Router::new()
        .public_with(login.clone(), send_code)
        .public_with(login.clone(), resend_code)
        .public_with(login.clone(), cancel_code)
        .public_with(login.clone(), sign_in)
        .public_with(login.clone(), sign_up)
        .public_with(login.clone(), import_authorization)
        .route_with(login.clone(), export_authorization)
        .route_with(login, log_out)
}

/// Why a code check failed.
fn code_expired() -> ApiError {
    ApiError::bad_request("PHONE_CODE_EXPIRED")
}

impl Login {
    /// The login flow over `backend`, sending codes with `sender`.
    pub fn new(
        backend: Arc<Backend>,
        sender: Arc<dyn CodeSender>,
        options: LoginOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            backend,
            sender,
            options,
            phones: Mutex::new(HashMap::new()),
            exports: Mutex::new(HashMap::new()),
            clock: Clock {
                base: Instant::now(),
                #[cfg(test)]
                offset: Mutex::new(Duration::ZERO),
            },
        })
    }

    fn phones(&self) -> MutexGuard<'_, HashMap<String, Phone>> {
        self.phones.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_code(&self) -> String {
        if let Some(code) = &self.options.fixed_code {
            return code.clone();
        }
        let digits = self.options.code_digits.clamp(4, 9);
        let bound = 10u32.pow(digits);
        format!(
            "{:0width$}",
            rand::rng().random_range(0..bound),
            width = digits as usize
        )
    }

    /// Records a new code for `phone` (with `hash`, or a new one) and returns (code, hash),
    /// after the per-number and global limits.
    fn issue(&self, phone: &str, hash: Option<String>) -> Result<(String, String), ApiError> {
        let now = self.clock.now();
        let options = &self.options;
        let mut phones = self.phones();
        if !phones.contains_key(phone) && phones.len() >= options.max_pending {
            phones.retain(|_, state| {
                state
                    .sends
                    .retain(|sent| now.duration_since(*sent) < options.code_window);
                let live = state
                    .pending
                    .as_ref()
                    .is_some_and(|pending| now.duration_since(pending.sent) < options.code_ttl);
                live || !state.sends.is_empty()
            });
            if phones.len() >= options.max_pending {
                return Err(ApiError::flood_wait(60));
            }
        }
        let state = phones.entry(phone.to_owned()).or_default();
        state
            .sends
            .retain(|sent| now.duration_since(*sent) < options.code_window);
        if state.sends.len() >= options.codes_per_window {
            let oldest = state.sends.front().copied().unwrap_or(now);
            let wait = options
                .code_window
                .saturating_sub(now.duration_since(oldest));
            return Err(ApiError::flood_wait(wait.as_secs().max(1)));
        }
        state.sends.push_back(now);
        let hash = hash.unwrap_or_else(|| {
            let mut rng = rand::rng();
            (0..16)
                .map(|_| format!("{:x}", rng.random_range(0..16u8)))
                .collect()
        });
        let code = self.new_code();
        state.pending = Some(Pending {
            hash: hash.clone(),
            code: code.clone(),
            sent: now,
            attempts: 0,
            verified: false,
        });
        Ok((code, hash))
    }

    async fn deliver(
        &self,
        phone: &str,
        code: &str,
        hash: String,
        sms: bool,
    ) -> Result<enums::auth::SentCode, ApiError> {
        if let Err(error) = self.sender.send_code(phone, code).await {
            tracing::warn!(%error, "the code sender failed");
            return Err(ApiError::new(500, "SEND_CODE_UNAVAILABLE"));
        }
        let length = i32::try_from(code.len()).unwrap_or(5);
        let r#type = if sms {
            types::auth::SentCodeTypeSms { length }.into()
        } else {
            types::auth::SentCodeTypeApp { length }.into()
        };
        Ok(types::auth::SentCode {
            r#type,
            phone_code_hash: hash,
            next_type: Some(types::auth::CodeTypeSms {}.into()),
            timeout: None,
        }
        .into())
    }

    /// Checks `hash` and `code` for `phone`. `Ok(())` leaves the code verified (kept for a
    /// sign-up that follows).
    fn check_code(&self, phone: &str, hash: &str, code: &str) -> Result<(), ApiError> {
        if hash.is_empty() {
            return Err(ApiError::bad_request("PHONE_CODE_HASH_EMPTY"));
        }
        if code.is_empty() {
            return Err(ApiError::bad_request("PHONE_CODE_EMPTY"));
        }
        let now = self.clock.now();
        let mut phones = self.phones();
        let state = phones.get_mut(phone).ok_or_else(code_expired)?;
        let pending = state
            .pending
            .as_mut()
            .filter(|pending| now.duration_since(pending.sent) < self.options.code_ttl)
            .ok_or_else(code_expired)?;
        if !bool::from(pending.hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(ApiError::bad_request("PHONE_CODE_HASH_INVALID"));
        }
        if !bool::from(pending.code.as_bytes().ct_eq(code.as_bytes())) {
            pending.attempts += 1;
            if pending.attempts >= self.options.max_attempts {
                state.pending = None;
            }
            return Err(ApiError::bad_request("PHONE_CODE_INVALID"));
        }
        pending.verified = true;
        Ok(())
    }

    /// Takes the verified code of `phone` with `hash` (for `auth.signUp`).
    fn take_verified(&self, phone: &str, hash: &str) -> Result<(), ApiError> {
        let now = self.clock.now();
        let mut phones = self.phones();
        let state = phones.get_mut(phone).ok_or_else(code_expired)?;
        let pending = state
            .pending
            .as_ref()
            .filter(|pending| now.duration_since(pending.sent) < self.options.code_ttl)
            .ok_or_else(code_expired)?;
        if !bool::from(pending.hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(ApiError::bad_request("PHONE_CODE_HASH_INVALID"));
        }
        if !pending.verified {
            return Err(ApiError::bad_request("PHONE_CODE_EMPTY"));
        }
        state.pending = None;
        Ok(())
    }

    fn drop_code(&self, phone: &str) {
        if let Some(state) = self.phones().get_mut(phone) {
            state.pending = None;
        }
    }

    /// Binds the session's permanent key to `account` and answers `auth.authorization`.
    pub(crate) async fn authorize(
        &self,
        ctx: &Ctx,
        account: Account,
    ) -> Result<enums::auth::Authorization, ApiError> {
        let perm = ctx.perm_auth_key_id()?;
        let backend = self.backend.clone();
        let user = account.id;
        let client = ctx.info().client.clone();
        let ip = ctx
            .server()
            .peer_address(ctx.connection())
            .map(|address| address.ip());
        // The authorization is recorded before the key is bound, so that a bound key is
        // always listed (and can be reset); a key signed in as someone else before loses
        // that user's records first.
        let server = ctx.server().clone();
        let evicted = ctx
            .blocking(move || {
                let previous = backend.keys.get(perm)?.and_then(|record| record.user_id);
                if let Some(previous) = previous.filter(|previous| *previous != user) {
                    backend.users.remove_authorization(previous, perm)?;
                    crate::secret::device_signed_out(&server, &backend, perm)?;
                }
                let evicted = crate::account::record_sign_in(
                    &server,
                    &backend,
                    client.as_ref(),
                    ip,
                    user,
                    perm,
                )?;
                backend.keys.set_user(perm, Some(user))?;
                Ok(evicted)
            })
            .await?;
        for key in evicted {
            ctx.server().set_user(key, None);
        }
        ctx.server().set_user(perm, Some(user));
        tracing::info!(user_id = user, "signed in");
        Ok(types::auth::Authorization {
            setup_password_required: false,
            otherwise_relogin_days: None,
            tmp_sessions: None,
            future_auth_token: None,
            user: objects::user(
                &account,
                user,
                objects::Relation::default(),
                &self.backend.access,
                &self.backend.dcs,
                objects::now_unix(),
            ),
        }
        .into())
    }
}

fn phone_of(number: &str) -> Result<String, ApiError> {
    normalize_phone(number).ok_or_else(|| ApiError::bad_request("PHONE_NUMBER_INVALID"))
}

/// `auth.sendCode`: a new code for the number, through the code sender.
pub async fn send_code(
    _: Ctx,
    login: Arc<Login>,
    request: functions::auth::SendCode,
) -> Result<enums::auth::SentCode, ApiError> {
    let phone = phone_of(&request.phone_number)?;
    let (code, hash) = login.issue(&phone, None)?;
    login.deliver(&phone, &code, hash, false).await
}

/// `auth.resendCode`: a new code under the same hash (the attempts start again).
pub async fn resend_code(
    _: Ctx,
    login: Arc<Login>,
    request: functions::auth::ResendCode,
) -> Result<enums::auth::SentCode, ApiError> {
    let phone = phone_of(&request.phone_number)?;
    if request.phone_code_hash.is_empty() {
        return Err(ApiError::bad_request("PHONE_CODE_HASH_EMPTY"));
    }
    let known = login
        .phones()
        .get(&phone)
        .and_then(|state| state.pending.as_ref())
        .is_some_and(|pending| {
            bool::from(
                pending
                    .hash
                    .as_bytes()
                    .ct_eq(request.phone_code_hash.as_bytes()),
            )
        });
    if !known {
        return Err(code_expired());
    }
    let (code, hash) = login.issue(&phone, Some(request.phone_code_hash))?;
    login.deliver(&phone, &code, hash, true).await
}

/// `auth.cancelCode`: the number's code is dropped.
pub async fn cancel_code(
    _: Ctx,
    login: Arc<Login>,
    request: functions::auth::CancelCode,
) -> Result<bool, ApiError> {
    let phone = phone_of(&request.phone_number)?;
    let mut phones = login.phones();
    let state = phones.get_mut(&phone).ok_or_else(code_expired)?;
    let matches = state.pending.as_ref().is_some_and(|pending| {
        bool::from(
            pending
                .hash
                .as_bytes()
                .ct_eq(request.phone_code_hash.as_bytes()),
        )
    });
    if !matches {
        return Err(code_expired());
    }
    state.pending = None;
    Ok(true)
}

/// `auth.signIn` with the code: `auth.authorization`, or
/// `auth.authorizationSignUpRequired` for a number with no account (under
/// [`SignUp::Required`]).
pub async fn sign_in(
    ctx: Ctx,
    login: Arc<Login>,
    request: functions::auth::SignIn,
) -> Result<enums::auth::Authorization, ApiError> {
    let phone = phone_of(&request.phone_number)?;
    ctx.perm_auth_key_id()?;
    let code = request.phone_code.unwrap_or_default();
    login.check_code(&phone, &request.phone_code_hash, &code)?;
    let backend = login.backend.clone();
    let automatic = login.options.sign_up == SignUp::Automatic;
    let number = phone.clone();
    let account = ctx
        .blocking(move || {
            if let Some(account) = backend.users.by_phone(&number)? {
                return Ok(Some(account));
            }
            if !automatic {
                return Ok(None);
            }
            let tail: String = number
                .chars()
                .skip(number.len().saturating_sub(4))
                .collect();
            match backend
                .users
                .create_account(&number, &format!("User {tail}"), "")
            {
                Ok(account) => Ok(Some(account)),
                // Registered by a sign-in running at the same time: that account.
                Err(UserError::PhoneNumberOccupied(id)) => Ok(backend.users.account(id)?),
                Err(error) => Err(error.into()),
            }
        })
        .await?;
    let Some(account) = account else {
        // The code stays, verified, for the sign-up.
        return Ok(types::auth::AuthorizationSignUpRequired {
            terms_of_service: None,
        }
        .into());
    };
    login.drop_code(&phone);
    login.authorize(&ctx, account).await
}

/// `auth.signUp` after a sign-in that asked for it: the account is registered with the
/// names (`FIRSTNAME_INVALID`, `LASTNAME_INVALID`) and signed in.
pub async fn sign_up(
    ctx: Ctx,
    login: Arc<Login>,
    request: functions::auth::SignUp,
) -> Result<enums::auth::Authorization, ApiError> {
    let phone = phone_of(&request.phone_number)?;
    ctx.perm_auth_key_id()?;
    let first_name = request.first_name.trim().to_owned();
    let last_name = request.last_name.trim().to_owned();
    if first_name.is_empty() || first_name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request("FIRSTNAME_INVALID"));
    }
    if last_name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request("LASTNAME_INVALID"));
    }
    login.take_verified(&phone, &request.phone_code_hash)?;
    let backend = login.backend.clone();
    let account = ctx
        .blocking(move || {
            Ok(backend
                .users
                .create_account(&phone, &first_name, &last_name)?)
        })
        .await?;
    login.authorize(&ctx, account).await
}

/// `auth.logOut`: the permanent key loses its user (its sessions get
/// `401 AUTH_KEY_UNREGISTERED` from now on) and its secret chats and queue.
pub async fn log_out(
    ctx: Ctx,
    login: Arc<Login>,
    _: functions::auth::LogOut,
) -> Result<enums::auth::LoggedOut, ApiError> {
    let perm = ctx.perm_auth_key_id()?;
    let backend = login.backend.clone();
    let user = ctx.user_id();
    let server = ctx.server().clone();
    ctx.blocking(move || {
        if let Some(user) = user {
            backend.users.remove_authorization(user, perm)?;
            crate::secret::device_signed_out(&server, &backend, perm)?;
        }
        Ok(backend.keys.set_user(perm, None)?)
    })
    .await?;
    ctx.server().set_user(perm, None);
    Ok(types::auth::LoggedOut {
        future_auth_token: None,
    }
    .into())
}

#[cfg(test)]
impl Login {
    fn advance(&self, by: Duration) {
        *self
            .clock
            .offset
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += by;
    }
}

#[cfg(test)]
mod tests;
mod transfer;

pub use transfer::{export_authorization, import_authorization};
