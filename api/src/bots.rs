//! Bots over MTProto: bot accounts and their tokens, signing in with a token
//! (`auth.importBotAuthorization`), command menus (`bots.setBotCommands`,
//! `getBotCommands`, `resetBotCommands`), buttons pressed by people and answered by bots
//! (`messages.getBotCallbackAnswer`, `setBotCallbackAnswer`), and `/start` with a
//! deep-link parameter (`messages.startBot`).
//!
//! A bot is an account with a [`BotProfile`]: no phone, a username ending in `bot`, the
//! user who made it, and the SHA-256 of its token's secret. A token is `<bot id>:<secret>`,
//! the secret [`SECRET_LEN`] characters of `A-Za-z0-9_-` derived from the server's secret
//! ([`create_bot`], [`token_of`], [`revoke_token`]), and checked against the stored hash in
//! constant time.
//!
//! Telegram's rules on who may call what are kept by the router: methods only bots may call
//! answer people `400 USER_BOT_REQUIRED`, and a person's methods ([`people_only`]: dialogs,
//! history, contacts, secret chats, ...) answer bots `400 BOT_METHOD_INVALID`.
//!
//! A button press waits for the bot's answer at most [`BotOptions::callback_timeout`]
//! (then `400 BOT_RESPONSE_TIMEOUT`), and presses waiting at once are bounded in all and per
//! person. The bot learns of a press from `updateBotCallbackQuery`, pushed to its live
//! sessions: like Telegram, a press made while the bot is away is not kept for it.
//!
//! Errors (Telegram's names): `ACCESS_TOKEN_INVALID` (a token that is malformed, of no bot,
//! or with the wrong secret), `BOT_COMMAND_INVALID`, `BOT_COMMAND_DESCRIPTION_INVALID`,
//! `BOT_INVALID` (`startBot` of a user who is not a bot), `START_PARAM_INVALID`,
//! `DATA_INVALID` (a press of a button the message does not have), `MESSAGE_ID_INVALID`,
//! `QUERY_ID_INVALID` (an answer to a press that is not waiting, or is another bot's),
//! `MESSAGE_TOO_LONG` (an answer's text over [`MAX_ANSWER_CHARS`]), `BOT_RESPONSE_TIMEOUT`.
//! Command menus other than the default one (other scopes or languages) are not kept:
//! `bots.getBotCommands` answers them with no commands and `bots.setBotCommands` refuses
//! them with `400 BOT_COMMAND_SCOPE_UNSUPPORTED` (Columba's name: Telegram has them).

use std::sync::Arc;
use std::time::Duration;

use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::user::{Account, BotCommand, BotProfile, bot_command_valid};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::auth::Login;
use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::router::Router;

pub(crate) mod callbacks;
pub mod feed;
pub(crate) mod kinds;
#[cfg(test)]
mod tests;

pub use callbacks::{PressAnswer, answer_press, get_bot_callback_answer, set_bot_callback_answer};
pub use feed::{BotFeed, BotFeeds, CallbackPress};

/// The length of a token's secret, in characters (Telegram's are 35).
pub const SECRET_LEN: usize = 35;
/// The longest token accepted (the official Bot API server's limit).
pub const MAX_TOKEN_LEN: usize = 80;
/// The longest text of a callback answer, in characters (Telegram's limit: 200).
pub const MAX_ANSWER_CHARS: usize = 200;
/// The longest `start` parameter (Telegram's limit: 64).
pub const MAX_START_PARAM_LEN: usize = 64;

/// Limits of the bots module.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BotOptions {
    /// How long a person's button press waits for the bot's answer (Telegram gives bots a
    /// few seconds; the default is 10).
    pub callback_timeout: Duration,
    /// Presses waiting for an answer at once, in all.
    pub max_pending_callbacks: usize,
    /// Presses waiting for an answer at once, per person.
    pub max_pending_per_user: usize,
}

impl Default for BotOptions {
    fn default() -> Self {
        Self {
            callback_timeout: Duration::from_secs(10),
            max_pending_callbacks: 10_000,
            max_pending_per_user: 8,
        }
    }
}

/// The bots module's state: give it to [`router`].
pub struct Bots {
    backend: Arc<Backend>,
    login: Arc<Login>,
    options: BotOptions,
}

impl std::fmt::Debug for Bots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bots")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Bots {
    /// The module over `backend`, signing bots in through `login`.
    pub fn new(backend: Arc<Backend>, login: Arc<Login>, options: BotOptions) -> Arc<Self> {
        Arc::new(Self {
            backend,
            login,
            options,
        })
    }
}

/// Every method of this module, and the router's way of telling bots from people.
pub fn router(bots: Arc<Bots>) -> Router {
    let backend = bots.backend.clone();
    Router::new()
        .public_with(bots.clone(), import_bot_authorization)
        .route_bots_with(bots.clone(), set_bot_commands)
        .route_bots_with(bots.clone(), get_bot_commands)
        .route_bots_with(bots.clone(), reset_bot_commands)
        .route_bots_with(bots.clone(), set_bot_callback_answer)
        .route_with(bots.clone(), get_bot_callback_answer)
        .route_with(bots, start_bot)
        .people_only::<functions::messages::GetBotCallbackAnswer>()
        .people_only::<functions::messages::StartBot>()
        .with_bots(Arc::new(move |user| backend.is_bot(user).ok()))
}

/// Closes a person's methods to bots (`400 BOT_METHOD_INVALID`), as Telegram does: the
/// dialog list, history and search, contacts, the phone book and blocking, secret chats,
/// making groups and channels and joining them, and the login calls of people.
pub fn people_only(router: Router) -> Router {
    use functions::{account, channels, contacts, messages};
    router
        .people_only::<messages::GetDialogs>()
        .people_only::<messages::GetHistory>()
        .people_only::<messages::Search>()
        .people_only::<messages::GetPeerDialogs>()
        .people_only::<messages::ReadHistory>()
        .people_only::<messages::CreateChat>()
        .people_only::<messages::RequestEncryption>()
        .people_only::<messages::AcceptEncryption>()
        .people_only::<messages::SendEncrypted>()
        .people_only::<messages::SendEncryptedFile>()
        .people_only::<messages::SendEncryptedService>()
        .people_only::<channels::CreateChannel>()
        .people_only::<channels::JoinChannel>()
        .people_only::<contacts::GetContacts>()
        .people_only::<contacts::ImportContacts>()
        .people_only::<contacts::AddContact>()
        .people_only::<contacts::DeleteContacts>()
        .people_only::<contacts::Search>()
        .people_only::<contacts::Block>()
        .people_only::<contacts::GetBlocked>()
        .people_only::<account::UpdateUsername>()
        .people_only::<account::GetAuthorizations>()
        .people_only::<account::RegisterDevice>()
}

/// The SHA-256 of a token's secret, as [`BotProfile::token_hash`] keeps it.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A token's two halves, if it is shaped as one (the official Bot API server's checks): at
/// most [`MAX_TOKEN_LEN`] characters, no `/`, a bot id of digits not starting with `0` and
/// below 2^54, a colon, and a non-empty secret.
pub fn parse_token(token: &str) -> Option<(i64, &str)> {
    if token.len() > MAX_TOKEN_LEN || token.contains('/') {
        return None;
    }
    let (id, secret) = token.split_once(':')?;
    let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0');
    let id: i64 = id.parse().ok().filter(|_| digits)?;
    (id < 1 << 54 && !secret.is_empty()).then_some((id, secret))
}

/// The live bot whose token this is: `ACCESS_TOKEN_INVALID` for anything else (a token that
/// is malformed, of no bot, or with another secret). The secret's hash is compared in
/// constant time. Blocking.
pub fn check_token(backend: &Backend, token: &str) -> Result<Account, ApiError> {
    let invalid = || ApiError::bad_request("ACCESS_TOKEN_INVALID");
    let (id, secret) = parse_token(token).ok_or_else(invalid)?;
    let account = backend
        .users
        .account(id)?
        .filter(|account| !account.deleted)
        .ok_or_else(invalid)?;
    let profile = account.bot.as_ref().ok_or_else(invalid)?;
    if bool::from(profile.token_hash.ct_eq(&secret_hash(secret))) {
        Ok(account)
    } else {
        Err(invalid())
    }
}

/// Makes a bot for `owner` (`0`: the operator) with this display name and username, and
/// gives its token. Telegram's errors for the name and username (`FIRSTNAME_INVALID`,
/// `USERNAME_INVALID` when it does not end in `bot`, `USERNAME_OCCUPIED`). Blocking.
///
/// Tokens come from [`AccessSecret::bot_token_secret`](crate::AccessSecret::bot_token_secret)
/// (the bot's id and token generation under the server's secret), so [`token_of`] can show
/// them again; the store keeps only their hash. The account is made with a random hash
/// first (its id is not known before), then given its token's: a crash between the two
/// leaves a bot whose token [`token_of`] sets.
pub fn create_bot(
    backend: &Backend,
    owner: i64,
    name: &str,
    username: &str,
) -> Result<(Account, String), ApiError> {
    let placeholder: [u8; 32] = rand::random();
    let account = backend
        .users
        .create_bot(name, username, &BotProfile::new(owner, placeholder))?;
    let token = token_of(backend, account.id)?;
    let account = backend.live_user(account.id)?;
    Ok((account, token))
}

/// Bot `id`'s current token (its generation's), its hash stored if it was not yet.
/// `BOT_INVALID` for an account that is not a live bot. Blocking.
pub fn token_of(backend: &Backend, id: i64) -> Result<String, ApiError> {
    let account = backend.live_user(id)?;
    let profile = account
        .bot
        .ok_or_else(|| ApiError::bad_request("BOT_INVALID"))?;
    let secret = backend
        .access
        .bot_token_secret(id, profile.token_generation);
    let hash = secret_hash(&secret);
    if !bool::from(profile.token_hash.ct_eq(&hash)) {
        backend.users.update_bot(id, &mut |profile| {
            profile.token_hash = hash;
        })?;
    }
    Ok(format!("{id}:{secret}"))
}

/// Gives bot `id` a new token (the next generation's); the old one stops working at once
/// (sessions signed in with it stay, as in Telegram). Blocking.
pub fn revoke_token(backend: &Backend, id: i64) -> Result<String, ApiError> {
    let mut token = String::new();
    backend.users.update_bot(id, &mut |profile| {
        profile.token_generation = profile.token_generation.wrapping_add(1);
        let secret = backend
            .access
            .bot_token_secret(id, profile.token_generation);
        profile.token_hash = secret_hash(&secret);
        token = format!("{id}:{secret}");
    })?;
    Ok(token)
}

/// `auth.importBotAuthorization`: the caller's permanent key is signed in as the bot whose
/// token it gives.
pub async fn import_bot_authorization(
    ctx: Ctx,
    bots: Arc<Bots>,
    request: functions::auth::ImportBotAuthorization,
) -> Result<enums::auth::Authorization, ApiError> {
    ctx.perm_auth_key_id()?;
    let backend = bots.backend.clone();
    let token = request.bot_auth_token;
    let account = ctx.blocking(move || check_token(&backend, &token)).await?;
    bots.login.authorize(&ctx, account).await
}

/// The default menu only: other scopes and languages are not kept.
fn is_default_menu(scope: &enums::BotCommandScope, lang_code: &str) -> bool {
    matches!(scope, enums::BotCommandScope::BotCommandScopeDefault(_)) && lang_code.is_empty()
}

fn scope_unsupported() -> ApiError {
    ApiError::bad_request("BOT_COMMAND_SCOPE_UNSUPPORTED")
}

/// `bots.setBotCommands`: the bot's menu (checked: `BOT_COMMAND_INVALID`,
/// `BOT_COMMAND_DESCRIPTION_INVALID`; more than 100 commands is `BOT_COMMAND_INVALID` too).
pub async fn set_bot_commands(
    ctx: Ctx,
    bots: Arc<Bots>,
    request: functions::bots::SetBotCommands,
) -> Result<bool, ApiError> {
    let bot = ctx.user()?;
    if !is_default_menu(&request.scope, &request.lang_code) {
        return Err(scope_unsupported());
    }
    let commands = checked_commands(request.commands)?;
    let backend = bots.backend.clone();
    ctx.blocking(move || set_commands(&backend, bot, commands))
        .await?;
    Ok(true)
}

/// Telegram's checks of a menu: each command 1 to 32 of `a-z0-9_` (a leading `/` and upper
/// case are forgiven, as Telegram lowercases them), each description 1 to 256 characters,
/// at most 100 commands.
pub fn checked_commands(commands: Vec<enums::BotCommand>) -> Result<Vec<BotCommand>, ApiError> {
    use columba_store::user::rules::{MAX_BOT_COMMAND_DESCRIPTION_CHARS, MAX_BOT_COMMANDS};
    if commands.len() > MAX_BOT_COMMANDS {
        return Err(ApiError::bad_request("BOT_COMMAND_INVALID"));
    }
    commands
        .into_iter()
        .map(|command| {
            let enums::BotCommand::BotCommand(command) = command;
            let name = command
                .command
                .strip_prefix('/')
                .unwrap_or(&command.command)
                .to_ascii_lowercase();
            if !bot_command_valid(&name) {
                return Err(ApiError::bad_request("BOT_COMMAND_INVALID"));
            }
            let described = command.description.trim().chars().count();
            if !(1..=MAX_BOT_COMMAND_DESCRIPTION_CHARS).contains(&described) {
                return Err(ApiError::bad_request("BOT_COMMAND_DESCRIPTION_INVALID"));
            }
            Ok(BotCommand {
                command: name,
                description: command.description.trim().to_owned(),
            })
        })
        .collect()
}

/// Stores bot `bot`'s menu and raises its info version. Blocking.
pub fn set_commands(
    backend: &Backend,
    bot: i64,
    commands: Vec<BotCommand>,
) -> Result<(), ApiError> {
    let mut commands = Some(commands);
    backend.users.update_bot(bot, &mut |profile| {
        if let Some(commands) = commands.take() {
            profile.commands = commands;
        }
        profile.info_version = profile.info_version.wrapping_add(1);
    })?;
    Ok(())
}

/// The menu of bot `bot`. Blocking.
pub fn commands_of(backend: &Backend, bot: i64) -> Result<Vec<BotCommand>, ApiError> {
    Ok(backend
        .live_user(bot)?
        .bot
        .map(|profile| profile.commands)
        .unwrap_or_default())
}

/// A menu as `botCommand`s.
pub fn command_objects(commands: &[BotCommand]) -> Vec<enums::BotCommand> {
    commands
        .iter()
        .map(|command| {
            types::BotCommand {
                ephemeral: false,
                command: command.command.clone(),
                description: command.description.clone(),
            }
            .into()
        })
        .collect()
}

/// `bots.getBotCommands`: the bot's default menu (other menus are empty).
pub async fn get_bot_commands(
    ctx: Ctx,
    bots: Arc<Bots>,
    request: functions::bots::GetBotCommands,
) -> Result<Vec<enums::BotCommand>, ApiError> {
    let bot = ctx.user()?;
    if !is_default_menu(&request.scope, &request.lang_code) {
        return Ok(Vec::new());
    }
    let backend = bots.backend.clone();
    let commands = ctx.blocking(move || commands_of(&backend, bot)).await?;
    Ok(command_objects(&commands))
}

/// `bots.resetBotCommands`: the bot's default menu is emptied.
pub async fn reset_bot_commands(
    ctx: Ctx,
    bots: Arc<Bots>,
    request: functions::bots::ResetBotCommands,
) -> Result<bool, ApiError> {
    let bot = ctx.user()?;
    if !is_default_menu(&request.scope, &request.lang_code) {
        return Err(scope_unsupported());
    }
    let backend = bots.backend.clone();
    ctx.blocking(move || set_commands(&backend, bot, Vec::new()))
        .await?;
    Ok(true)
}

/// `botInfo` of a bot's account, for its `userFull`.
pub fn bot_info(account: &Account) -> Option<enums::BotInfo> {
    let profile = account.bot.as_ref()?;
    Some(
        types::BotInfo {
            user_id: Some(account.id),
            description: Some(profile.description.clone()),
            commands: Some(command_objects(&profile.commands)),
            ..Default::default()
        }
        .into(),
    )
}

/// Whether `param` may follow `/start`: 1 to 64 of `A-Za-z0-9_-`.
fn start_param_valid(param: &str) -> bool {
    (1..=MAX_START_PARAM_LEN).contains(&param.len())
        && param
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `messages.startBot` in the private chat with the bot: the person sends it `/start`, with
/// the deep link's parameter after a space when there is one.
pub async fn start_bot(
    ctx: Ctx,
    bots: Arc<Bots>,
    request: functions::messages::StartBot,
) -> Result<enums::Updates, ApiError> {
    let user = ctx.user()?;
    if !request.start_param.is_empty() && !start_param_valid(&request.start_param) {
        return Err(ApiError::bad_request("START_PARAM_INVALID"));
    }
    let backend = bots.backend.clone();
    let sent = ctx
        .blocking(move || {
            let bot = backend.input_user(user, &request.bot)?;
            if !backend.is_bot(bot)? {
                return Err(ApiError::bad_request("BOT_INVALID"));
            }
            if backend.input_peer(user, &request.peer)? != bot {
                // Adding a bot to a group with a parameter is not done here.
                return Err(ApiError::bad_request("PEER_ID_INVALID"));
            }
            let text = if request.start_param.is_empty() {
                "/start".to_owned()
            } else {
                format!("/start {}", request.start_param)
            };
            crate::messages::send_blocking(
                &backend,
                user,
                crate::messages::Outgoing::new(bot, request.random_id, text, None),
            )
        })
        .await?;
    sent.notify_recipient(&ctx, &bots.backend);
    Ok(sent.updates)
}
