//! [`Api`]: a [`Router`] served as the session runtime's [`Service`].
//!
//! Per request: the wrappers come off (what they say is kept in the session's
//! [`SessionInfo`](crate::SessionInfo)), the constructor id finds the route (none:
//! `400 INPUT_METHOD_INVALID`), the access rule is applied (`401 AUTH_KEY_UNREGISTERED`
//! before sign-in), the handler runs, and a handler that panics is answered with
//! `500 INTERNAL` (and logged) instead of taking the connection down.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use bytes::Bytes;
use columba_mtproto::tl::Reader;
use columba_session::plugins::{BoxFuture, Service};
use columba_session::runtime::ServerHandle;
use columba_session::{RequestContext, RpcError, RpcOutcome};

use crate::context::Ctx;
use crate::error::ApiError;
use crate::info::{SessionInfos, Subscription, is_file_method};
use crate::router::{Access, Router, panicked};
use crate::wrappers;

/// Limits of the API layer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiOptions {
    /// Wrappers (`invokeWithLayer`, `initConnection`, ...) taken off one request at most;
    /// deeper nesting is refused with `INPUT_REQUEST_TOO_LONG`. Default 8.
    pub max_wrappers: usize,
    /// Sessions whose [`SessionInfo`](crate::SessionInfo) is kept; beyond it the oldest
    /// entries go. Default 100,000 (a few hundred bytes each).
    pub max_session_infos: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            max_wrappers: 8,
            max_session_infos: 100_000,
        }
    }
}

/// The API: give it to [`columba_session::runtime::Server::new`] as the service.
pub struct Api {
    router: Router,
    options: ApiOptions,
    infos: SessionInfos,
    server: OnceLock<ServerHandle>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("router", &self.router)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// The API of `router` with default options.
    pub fn new(router: Router) -> Self {
        Self::with_options(router, ApiOptions::default())
    }

    /// The API of `router` with these options.
    pub fn with_options(router: Router, options: ApiOptions) -> Self {
        Self {
            infos: SessionInfos::new(options.max_session_infos),
            router,
            options,
            server: OnceLock::new(),
        }
    }

    /// The router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Forgets what is kept about the sessions of a key (it was destroyed).
    pub fn forget_key(&self, auth_key_id: i64) {
        self.infos.forget_key(auth_key_id);
    }

    /// Answers one request (what the runtime calls; public for tests that drive the API
    /// without sockets).
    pub fn handle(
        &self,
        context: RequestContext,
        request: Bytes,
    ) -> BoxFuture<'static, RpcOutcome> {
        let unwrapped = match wrappers::unwrap(request, self.options.max_wrappers) {
            Ok(unwrapped) => unwrapped,
            Err(error) => return ready(Err(error)),
        };
        let Some(id) = Reader::new(&unwrapped.body).peek_u32() else {
            return ready(Err(ApiError::fetch_error()));
        };
        let current = self.infos.get(context.session);
        let file_query = is_file_method(id);
        let subscription = match current.subscription {
            Subscription::Unknown if file_query => Subscription::FilesOnly,
            Subscription::Unknown | Subscription::FilesOnly if !file_query => {
                Subscription::Subscribed
            }
            other => other,
        };
        let without_updates = unwrapped.without_updates || current.without_updates;
        if let Some(server) = self.server.get() {
            if without_updates || subscription == Subscription::FilesOnly {
                // The session asked for no updates, or has made file transfers only (it
                // would be the key's most recent session and take the updates from the one
                // that wants them). Told on every query: the runtime forgets an idle
                // session's flag with the session, and a client may take it up again.
                server.set_receives_updates(context.session, false);
            } else if subscription != current.subscription {
                server.set_receives_updates(context.session, true);
            }
        }
        // Clients repeat the wrappers (every request of some, every connection of all): the
        // table changes only when what they say does.
        let info = if unwrapped.changes(&current) || subscription != current.subscription {
            self.infos.update(context.session, |info| {
                if unwrapped.layer.is_some() {
                    info.layer = unwrapped.layer;
                }
                if let Some(client) = &unwrapped.client {
                    info.client = Some(client.clone());
                }
                info.without_updates |= unwrapped.without_updates;
                info.subscription = subscription;
            })
        } else {
            current
        };
        let body = unwrapped.body;
        let Some(route) = self.router.get(id) else {
            tracing::debug!(constructor = format_args!("{id:#010x}"), "no route");
            return ready(Err(ApiError::method_invalid()));
        };
        let access = self.router.access_of(id, route);
        let restricted = matches!(access, Access::Bots | Access::People);
        match (context.user_id, access) {
            (_, Access::Anyone) => {}
            (None, _) => return ready(Err(ApiError::auth_key_unregistered())),
            (Some(user), _) if restricted => {
                // Without a lookup every caller is a person; a lookup that cannot tell
                // (the store failed) refuses rather than guesses.
                let bot = match self.router.is_bot(user) {
                    Some(bot) => bot,
                    None if self.router.has_bot_lookup() => {
                        return ready(Err(ApiError::new(500, "INTERNAL")));
                    }
                    None => false,
                };
                if access == Access::Bots && !bot {
                    return ready(Err(ApiError::bad_request("USER_BOT_REQUIRED")));
                }
                if access == Access::People && bot {
                    return ready(Err(ApiError::bad_request("BOT_METHOD_INVALID")));
                }
            }
            (Some(_), _) => {}
        }
        let server = self.server.get().cloned().unwrap_or_default();
        let ctx = Ctx::new(context, info, server);
        // The handler's own code runs inside the guard too: a panic while it builds its
        // future is caught like one while the future runs (which the route's future
        // catches itself).
        match catch_unwind(AssertUnwindSafe(|| (route.handler)(ctx, body))) {
            Ok(future) => future,
            Err(_) => Box::pin(std::future::ready(Err(panicked(route.name)))),
        }
    }
}

fn ready(outcome: Result<Bytes, ApiError>) -> BoxFuture<'static, RpcOutcome> {
    Box::pin(std::future::ready(outcome.map_err(RpcError::from)))
}

impl Service for Api {
    fn call(&self, context: RequestContext, request: Bytes) -> BoxFuture<'_, RpcOutcome> {
        self.handle(context, request)
    }

    fn bind(&self, server: ServerHandle) {
        // The first runtime wins: one API serves one server.
        let _ = self.server.set(server);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

    use columba_mtproto::tl::api::{enums, functions, types};
    use columba_mtproto::tl::{Deserializable as _, RawObject, Serializable as _};
    use columba_session::{ConnectionId, SessionKey};

    use super::*;

    fn context(user_id: Option<i64>) -> RequestContext {
        RequestContext {
            session: SessionKey {
                auth_key_id: 5,
                session_id: 6,
            },
            perm_auth_key_id: Some(5),
            user_id,
            connection: ConnectionId(1),
        }
    }

    fn nearest(country: &str) -> enums::NearestDc {
        types::NearestDc {
            country: country.to_owned(),
            this_dc: 1,
            nearest_dc: 1,
        }
        .into()
    }

    fn api() -> Api {
        let router = Router::new()
            .public(|ctx: Ctx, _: functions::help::GetNearestDc| async move {
                // The layer the session's first request named, seen by a later one.
                let layer = ctx.info().layer.unwrap_or(0);
                Ok(nearest(&format!("L{layer}")))
            })
            .route(|ctx: Ctx, request: functions::users::GetUsers| async move {
                assert_eq!(ctx.user_id(), Some(42));
                Ok(Vec::<enums::User>::with_capacity(request.id.len()))
            })
            .public(|_: Ctx, _: functions::help::GetConfig| async move {
                if true {
                    panic!("a bug in a handler");
                }
                Err::<enums::Config, _>(ApiError::internal(&std::fmt::Error))
            })
            .raw(
                0x1234_5678,
                "custom.echo",
                false,
                |_, body: Bytes| async move { Ok(body) },
            );
        Api::new(router)
    }

    async fn call(api: &Api, user: Option<i64>, body: Vec<u8>) -> RpcOutcome {
        api.handle(context(user), Bytes::from(body)).await
    }

    #[tokio::test]
    async fn a_session_of_file_transfers_subscribes_only_with_another_query() {
        let api = api();
        let session = context(Some(42)).session;
        assert_eq!(api.infos.get(session).subscription, Subscription::Unknown);
        // A file method (no route here: the refusal still counts the query).
        let part = functions::upload::SaveFilePart {
            file_id: 1,
            file_part: 0,
            bytes: vec![1],
        };
        let _ = call(&api, Some(42), part.to_bytes()).await;
        assert_eq!(api.infos.get(session).subscription, Subscription::FilesOnly);
        let _ = call(&api, Some(42), part.to_bytes()).await;
        assert_eq!(api.infos.get(session).subscription, Subscription::FilesOnly);
        call(&api, Some(42), functions::help::GetNearestDc {}.to_bytes())
            .await
            .unwrap();
        assert_eq!(
            api.infos.get(session).subscription,
            Subscription::Subscribed
        );
        // Once subscribed, file transfers do not take it back.
        let _ = call(&api, Some(42), part.to_bytes()).await;
        assert_eq!(
            api.infos.get(session).subscription,
            Subscription::Subscribed
        );
    }

    fn error(outcome: RpcOutcome) -> (i32, String) {
        let error = outcome.unwrap_err();
        (error.code, error.message)
    }

    #[tokio::test]
    async fn typed_routes_decode_answer_and_keep_the_session_s_layer() {
        let api = api();
        let wrapped = functions::InvokeWithLayer {
            layer: 229,
            query: RawObject(functions::help::GetNearestDc {}.to_bytes()),
        };
        let answer = call(&api, None, wrapped.to_bytes()).await.unwrap();
        assert_eq!(
            enums::NearestDc::from_bytes(&answer).unwrap(),
            nearest("L229")
        );
        let answer = call(&api, None, functions::help::GetNearestDc {}.to_bytes())
            .await
            .unwrap();
        assert_eq!(
            enums::NearestDc::from_bytes(&answer).unwrap(),
            nearest("L229")
        );
        let users = functions::users::GetUsers { id: Vec::new() }.to_bytes();
        let answer = call(&api, Some(42), users).await.unwrap();
        assert_eq!(Vec::<enums::User>::from_bytes(&answer).unwrap(), Vec::new());
        let raw = 0x1234_5678u32.to_le_bytes().to_vec();
        assert_eq!(
            call(&api, None, raw.clone()).await.unwrap().as_ref(),
            raw.as_slice()
        );
    }

    #[tokio::test]
    async fn telegram_errors_for_what_no_handler_can_answer() {
        let api = api();
        let users = functions::users::GetUsers { id: Vec::new() }.to_bytes();
        assert_eq!(
            error(call(&api, None, users.clone()).await),
            (401, "AUTH_KEY_UNREGISTERED".to_owned())
        );
        let mut cut = users;
        cut.truncate(6);
        assert_eq!(
            error(call(&api, Some(42), cut).await),
            (400, "INPUT_FETCH_ERROR".to_owned())
        );
        assert_eq!(
            error(
                call(
                    &api,
                    Some(42),
                    functions::help::GetTermsOfServiceUpdate {}.to_bytes()
                )
                .await
            ),
            (400, "INPUT_METHOD_INVALID".to_owned())
        );
        assert_eq!(
            error(call(&api, None, vec![1, 2]).await),
            (400, "INPUT_FETCH_ERROR".to_owned())
        );
        assert_eq!(
            error(call(&api, None, functions::help::GetConfig {}.to_bytes()).await),
            (500, "INTERNAL".to_owned()),
            "a panicking handler is an internal error, not a crash"
        );
    }

    #[tokio::test]
    async fn merged_routes_replace_and_without_removes() {
        let replaced = api().router().clone().merge(
            Router::new()
                .public(|_: Ctx, _: functions::help::GetNearestDc| async { Ok(nearest("XX")) }),
        );
        assert_eq!(replaced.len(), api().router().len());
        let api = Api::new(replaced.without::<functions::users::GetUsers>());
        let answer = call(&api, None, functions::help::GetNearestDc {}.to_bytes())
            .await
            .unwrap();
        assert_eq!(
            enums::NearestDc::from_bytes(&answer).unwrap(),
            nearest("XX")
        );
        let users = functions::users::GetUsers { id: Vec::new() }.to_bytes();
        assert_eq!(
            error(call(&api, Some(42), users).await),
            (400, "INPUT_METHOD_INVALID".to_owned())
        );
    }
}
