//! The Telegram API (layer 229) served over Columba's session runtime and stores.
//!
//! What every messenger backend would otherwise write itself, between the runtime's
//! `Service::call(RequestContext, Bytes)` and a working server: a typed [`Router`] over the
//! generated API functions, the `invokeWithLayer`/`initConnection` wrappers taken off once
//! (what they say kept per session as [`SessionInfo`]), a request context ([`Ctx`]) with the
//! caller, the session and a handle on the server, Telegram's error conventions
//! ([`ApiError`]), builders of Telegram objects from stored records ([`objects`]), the login
//! flow ([`auth`]) and one module per service. An application picks the modules it wants,
//! replaces or wraps any handler, and adds its own methods.
//!
//! A server with the stock modules and one method of its own:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use columba_api::auth::{Login, LoginOptions};
//! use columba_api::{AccessSecret, Api, ApiError, Backend, Ctx, DcList};
//! use columba_mtproto::crypto::RsaPrivateKey;
//! use columba_mtproto::handshake::ServerConfig;
//! use columba_mtproto::tl::api::{enums, functions, types};
//! use columba_session::plugins::{LoggingCodeSender, LoggingPushProvider};
//! use columba_session::runtime::{Server, ServerOptions, TcpAcceptor};
//! use columba_store::{MemoryAuthKeyStore, MemoryFileStore, MemoryMessageStore, MemoryUserStore};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = TcpAcceptor::bind("127.0.0.1:4430".parse().unwrap()).await?;
//!     let keys = Arc::new(MemoryAuthKeyStore::new());
//!     let backend = Backend::new(
//!         Arc::new(MemoryMessageStore::new()),
//!         Arc::new(MemoryFileStore::new()),
//!         keys.clone(),
//!         Arc::new(MemoryUserStore::new()),
//!         AccessSecret::generate(&mut rand::rng()),
//!         DcList::single(1, listener.local_addr()?),
//!     );
//!     let login = Login::new(backend.clone(), Arc::new(LoggingCodeSender), LoginOptions::default());
//!     // The stock modules, and one method of our own in place of the stock one.
//!     let router = columba_api::stock(backend, login).public(
//!         |_: Ctx, _: functions::help::GetNearestDc| async {
//!             Ok::<enums::NearestDc, ApiError>(
//!                 types::NearestDc { country: "NL".into(), this_dc: 1, nearest_dc: 1 }.into(),
//!             )
//!         },
//!     );
//!     let rsa = RsaPrivateKey::generate(&mut rand::rng());
//!     let options = ServerOptions::new(Arc::new(ServerConfig::new(vec![Arc::new(rsa)])));
//!     let server = Server::new(options, keys, Arc::new(Api::new(router)), Arc::new(LoggingPushProvider));
//!     server.serve(listener, std::future::pending()).await
//! }
//! ```
//!
//! Modules:
//! - [`Router`], [`Api`], [`Ctx`], [`ApiError`], [`SessionInfo`], [`Encoded`]: the framework.
//! - [`objects`]: users, messages, `updates`, `updates.Difference`, `config` from stored
//!   records.
//! - [`auth`]: the login flow over a `CodeSender`, and moving a sign-in to another key.
//! - [`push`]: notifications to registered devices for users with no live session.
//! - [`help`], [`account`], [`contacts`], [`users`], [`messages`], [`channels`], [`chats`],
//!   [`updates`], [`upload`]: the stock services.
//! - [`secret`]: the secret-chat relay (key exchange, per-device queues with their qts).
//! - [`bots`]: bot accounts and tokens, signing in as a bot, command menus, button presses
//!   and their answers, `/start` with a parameter; which methods bots and people may call.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod access;
pub mod account;
mod answer;
pub mod auth;
mod backend;
pub mod body;
pub mod bots;
pub mod channels;
pub mod chats;
pub mod contacts;
mod context;
mod error;
pub mod help;
mod image;
mod info;
pub mod messages;
pub mod objects;
pub mod photos;
pub mod push;
mod rate;
mod router;
pub mod secret;
mod service;
pub mod updates;
pub mod upload;
pub mod users;
mod wrappers;

pub use access::AccessSecret;
pub use answer::{Encoded, IntoAnswer};
pub use backend::Backend;
pub use context::Ctx;
pub use error::ApiError;
pub use info::{ClientInfo, SessionInfo, Subscription};
pub use objects::DcList;
pub use router::{BotLookup, Router};
pub use service::{Api, ApiOptions};

use std::sync::Arc;

/// Every stock module in one router, with the default limits: [`help`], [`auth`],
/// [`account`], [`contacts`], [`photos`], [`users`], [`messages`], [`channels`],
/// [`chats`], [`updates`], [`upload`], [`secret`], [`bots`] (with a person's methods closed
/// to bots: [`bots::people_only`]).
pub fn stock(backend: Arc<Backend>, login: Arc<auth::Login>) -> Router {
    let bots = bots::Bots::new(backend.clone(), login.clone(), bots::BotOptions::default());
    let router = help::router(backend.clone())
        .merge(auth::router(login))
        .merge(account::router(account::Accounts::new(
            backend.clone(),
            account::AccountOptions::default(),
        )))
        .merge(contacts::router(contacts::Contacts::new(
            backend.clone(),
            contacts::ContactsOptions::default(),
        )))
        .merge(photos::router(backend.clone()))
        .merge(users::router(backend.clone()))
        .merge(messages::router(backend.clone()))
        .merge(channels::router(backend.clone()))
        .merge(secret::router(backend.clone()))
        .merge(chats::router(backend.clone()))
        .merge(updates::router(backend.clone()))
        .merge(upload::router(backend))
        .merge(bots::router(bots));
    bots::people_only(router)
}
