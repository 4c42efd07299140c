//! The Telegram Bot API over HTTP, served from inside a Columba server.
//!
//! Bots whose logic runs elsewhere talk to a messenger over HTTP: `/bot<token>/<method>` with
//! parameters in the query string or a form, JSON or multipart body, answers as
//! `{"ok": ..., "result": ...}`, updates by long polling (`getUpdates`) or pushed to a
//! webhook, files at `/file/bot<token>/<file_path>`. Unmodified bot frameworks
//! (python-telegram-bot, aiogram, Telegraf, grammY, teloxide) are pointed at it with their
//! `base_url`/`apiRoot` setting.
//!
//! Unlike Telegram's own Bot API server, which is an MTProto client per bot, this front
//! lives in the server: it checks tokens against the user store ([`columba_api::bots`]),
//! calls the stock handlers of [`columba_api`] as the bot, and reads the bot's updates from
//! its box's log, woken through [`columba_api::bots::BotFeeds`]. A bot may use the Bot API
//! and MTProto at once, as on Telegram.
//!
//! ```no_run
//! # async fn run(backend: std::sync::Arc<columba_api::Backend>, server: columba_session::runtime::ServerHandle) -> std::io::Result<()> {
//! use columba_botapi::{BotApi, BotApiOptions};
//!
//! let api = BotApi::new(backend, server, BotApiOptions::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! api.serve(listener, std::future::pending()).await
//! # }
//! ```
//!
//! Methods served: `getMe`, `logOut`, `close`, `getUpdates`, `setWebhook`, `deleteWebhook`,
//! `getWebhookInfo`, `sendMessage`, `forwardMessage`, `copyMessage`, `sendPhoto`,
//! `sendDocument`, `sendChatAction`, `editMessageText`, `editMessageCaption`,
//! `editMessageReplyMarkup`, `deleteMessage`, `answerCallbackQuery`, `setMyCommands`,
//! `getMyCommands`, `deleteMyCommands`, `getChat`, `getChatMember`, `getFile`; others answer
//! `404 Not Found: method not found`. Chats are private chats (bots are not in groups yet).
//!
//! Limits ([`BotApiOptions`]): request bodies, parameters and files per request, long polls
//! (capped at 50 s, one per bot: a second ends the first with `409 Conflict`), queued
//! updates per bot and their age, requests in flight, bots in memory. Nothing a client sends
//! can panic the server; a malformed request gets `400 Bad Request`, a wrong token `401`.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod entities;
pub mod files;
mod instance;
pub mod markup;
mod methods;
pub mod objects;
pub mod reply;
pub mod request;
mod server;
mod webhook;

pub use reply::BotApiError;
pub use request::{Limits, Params, Route};
pub use server::BotApi;

use std::path::PathBuf;
use std::time::Duration;

/// Limits and settings of the Bot API front.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BotApiOptions {
    /// The largest request body, in bytes (uploads included; the public Bot API takes 50 MB).
    pub max_body_bytes: usize,
    /// The largest file `getFile` hands out (the public Bot API's limit: 20 MB).
    pub max_download_bytes: u64,
    /// Parameters, names and files per request.
    pub limits: Limits,
    /// The longest long poll (the official server's cap: 50 s).
    pub max_poll: Duration,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
    /// Whether webhooks may point at loopback, private and link-local addresses (a
    /// deployment's own machines, tests). Off by default: a bot could otherwise make the
    /// server probe its own network.
    pub allow_local_webhooks: bool,
    /// Updates waiting per bot; past it the oldest go.
    pub max_queued_updates: usize,
    /// How long an update waits to be taken (the Bot API keeps them 24 hours).
    pub update_ttl: Duration,
    /// Requests handled at once; more wait for a turn.
    pub max_in_flight: usize,
    /// Bots with a front in memory at once; past it `429` until some log out or close.
    pub max_bots: usize,
    /// Where each bot's confirmed position is kept across restarts (`None`: in memory).
    pub state_dir: Option<PathBuf>,
    /// How long a webhook delivery may take.
    pub webhook_timeout: Duration,
    /// The longest wait between two tries of a failed webhook delivery.
    pub webhook_max_backoff: Duration,
}

impl Default for BotApiOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 50 * 1024 * 1024,
            max_download_bytes: 20 * 1024 * 1024,
            limits: Limits::default(),
            max_poll: Duration::from_secs(50),
            body_timeout: Duration::from_secs(60),
            allow_local_webhooks: false,
            max_queued_updates: 10_000,
            update_ttl: Duration::from_secs(24 * 3600),
            max_in_flight: 4096,
            max_bots: 10_000,
            state_dir: None,
            webhook_timeout: Duration::from_secs(30),
            webhook_max_backoff: Duration::from_secs(60),
        }
    }
}
