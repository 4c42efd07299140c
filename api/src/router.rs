//! The typed router: one handler per generated function type, found by constructor id.
//!
//! A handler for function `F` takes the context and the decoded `F` and returns
//! `Result<F::Return, ApiError>` (or `Result<Encoded<F::Return>, ApiError>`, an answer encoded
//! ahead of time); the compiler checks through [`RemoteCall`] that it answers with the type
//! the schema says. Decoding, encoding, the access rule, and turning a handler's panic into
//! `500 INTERNAL` are the router's:
//!
//! - [`Router::route`] (and [`Router::route_with`], for a handler that takes a state):
//!   callable once signed in; before that the caller gets `401 AUTH_KEY_UNREGISTERED`.
//! - [`Router::public`] / [`Router::public_with`]: callable before sign-in as well (the
//!   login calls, `help.getConfig`, ...).
//! - [`Router::route_bots_with`]: callable by bots only (`400 USER_BOT_REQUIRED` for
//!   people); [`Router::people_only`] marks a route as closed to bots
//!   (`400 BOT_METHOD_INVALID`). Which callers are bots, the router learns from
//!   [`Router::with_bots`] (the stock router asks the backend).
//! - [`Router::raw`]: a handler of bytes for a constructor id, for methods an application
//!   decodes itself (a layer of its own, a method not in the schema).
//!
//! Routers merge ([`Router::merge`]): the stock modules each give one, an application
//! merges the ones it wants and its own on top, the later route for an id replacing the
//! earlier.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use columba_mtproto::tl::{Deserializable, Identifiable, RemoteCall};
use columba_session::plugins::BoxFuture;
use columba_session::{RpcError, RpcOutcome};

use crate::answer::IntoAnswer;
use crate::context::Ctx;
use crate::error::ApiError;

/// A route's handler with the types erased: bytes in, an outcome out.
type Erased = Arc<dyn Fn(Ctx, Bytes) -> BoxFuture<'static, RpcOutcome> + Send + Sync>;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone with a key, signed in or not.
    Anyone,
    /// Signed-in users only.
    SignedIn,
    /// Signed-in bots only.
    Bots,
    /// Signed-in people only (not bots).
    People,
}

/// Tells whether a user is a bot (`None`: the store could not tell). It may block on a
/// store read the first time it is asked about a user.
pub type BotLookup = Arc<dyn Fn(i64) -> Option<bool> + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) name: &'static str,
    pub(crate) access: Access,
    pub(crate) handler: Erased,
}

/// Handlers by constructor id.
#[derive(Clone, Default)]
pub struct Router {
    routes: HashMap<u32, Route>,
    bots: Option<BotLookup>,
    /// Constructors closed to bots, whichever route serves them (kept across merges).
    people: HashSet<u32>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.routes.values().map(|route| route.name).collect();
        names.sort_unstable();
        f.debug_struct("Router").field("routes", &names).finish()
    }
}

/// Runs a handler's future, catching a panic in it (`None`). Awaited inside the route's
/// future, so that a request costs one box.
async fn caught<Fut: Future>(future: Fut) -> Option<Fut::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(move |cx| {
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll.map(Some),
            Err(_) => Poll::Ready(None),
        }
    })
    .await
}

/// The error for a handler that panicked (the panic's message went to the panic hook).
pub(crate) fn panicked(name: &'static str) -> RpcError {
    tracing::error!(method = name, "handler panicked");
    RpcError::new(500, "INTERNAL")
}

fn typed<F, H, Fut, A>(handler: H) -> Erased
where
    F: RemoteCall + Deserializable + Identifiable + Send + 'static,
    H: Fn(Ctx, F) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<A, ApiError>> + Send + 'static,
    A: IntoAnswer<F::Return> + 'static,
{
    Arc::new(move |ctx, body: Bytes| match F::from_bytes(&body) {
        Ok(request) => {
            let future = handler(ctx, request);
            Box::pin(async move {
                match caught(future).await {
                    Some(Ok(answer)) => Ok(answer.into_answer()),
                    Some(Err(error)) => Err(error.into()),
                    None => Err(panicked(F::TL_NAME)),
                }
            })
        }
        Err(_) => Box::pin(std::future::ready(Err(ApiError::fetch_error().into()))),
    })
}

impl Router {
    /// A router with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert<F: Identifiable>(mut self, access: Access, handler: Erased) -> Self {
        self.routes.insert(
            F::CONSTRUCTOR_ID,
            Route {
                name: F::TL_NAME,
                access,
                handler,
            },
        );
        self
    }

    /// Routes function `F` to `handler`, for signed-in users. The handler answers with
    /// `F::Return` or an [`Encoded`](crate::Encoded) one; a closure that only ever fails
    /// names which (`Err::<F::Return, _>(..)`).
    pub fn route<F, H, Fut, A>(self, handler: H) -> Self
    where
        F: RemoteCall + Deserializable + Identifiable + Send + 'static,
        H: Fn(Ctx, F) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<A, ApiError>> + Send + 'static,
        A: IntoAnswer<F::Return> + 'static,
    {
        self.insert::<F>(Access::SignedIn, typed(handler))
    }

    /// Routes function `F` to `handler`, for anyone with a key (signed in or not).
    pub fn public<F, H, Fut, A>(self, handler: H) -> Self
    where
        F: RemoteCall + Deserializable + Identifiable + Send + 'static,
        H: Fn(Ctx, F) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<A, ApiError>> + Send + 'static,
        A: IntoAnswer<F::Return> + 'static,
    {
        self.insert::<F>(Access::Anyone, typed(handler))
    }

    /// [`Self::route`] for a handler that takes a state (cloned for each call): an
    /// `async fn(Ctx, S, F)` can be given as it is.
    pub fn route_with<S, F, H, Fut, A>(self, state: S, handler: H) -> Self
    where
        S: Clone + Send + Sync + 'static,
        F: RemoteCall + Deserializable + Identifiable + Send + 'static,
        H: Fn(Ctx, S, F) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<A, ApiError>> + Send + 'static,
        A: IntoAnswer<F::Return> + 'static,
    {
        self.route(move |ctx, request: F| handler(ctx, state.clone(), request))
    }

    /// Routes function `F` to `handler` (which takes a state), for bots only: people get
    /// `400 USER_BOT_REQUIRED`.
    pub fn route_bots_with<S, F, H, Fut, A>(self, state: S, handler: H) -> Self
    where
        S: Clone + Send + Sync + 'static,
        F: RemoteCall + Deserializable + Identifiable + Send + 'static,
        H: Fn(Ctx, S, F) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<A, ApiError>> + Send + 'static,
        A: IntoAnswer<F::Return> + 'static,
    {
        self.insert::<F>(
            Access::Bots,
            typed(move |ctx, request: F| handler(ctx, state.clone(), request)),
        )
    }

    /// Closes function `F` to bots: they get `400 BOT_METHOD_INVALID`, as Telegram answers
    /// them for a person's method. The mark stays whichever route serves `F`, one merged
    /// later included.
    pub fn people_only<F: Identifiable>(mut self) -> Self {
        self.people.insert(F::CONSTRUCTOR_ID);
        self
    }

    /// Who may call constructor `id`'s route: people only if [`Self::people_only`] marked
    /// it, else the route's own rule.
    pub(crate) fn access_of(&self, id: u32, route: &Route) -> Access {
        if route.access == Access::SignedIn && self.people.contains(&id) {
            Access::People
        } else {
            route.access
        }
    }

    /// How the router tells bots from people, for the routes of [`Self::route_bots_with`]
    /// and [`Self::people_only`]. Without it, every caller counts as a person.
    pub fn with_bots(mut self, lookup: BotLookup) -> Self {
        self.bots = Some(lookup);
        self
    }

    /// Whether `user` is a bot, as [`Self::with_bots`] tells (`None` without a lookup or
    /// when it could not tell).
    pub(crate) fn is_bot(&self, user: i64) -> Option<bool> {
        self.bots.as_ref().and_then(|lookup| lookup(user))
    }

    /// Whether [`Self::with_bots`] gave a lookup.
    pub(crate) fn has_bot_lookup(&self) -> bool {
        self.bots.is_some()
    }

    /// [`Self::public`] for a handler that takes a state.
    pub fn public_with<S, F, H, Fut, A>(self, state: S, handler: H) -> Self
    where
        S: Clone + Send + Sync + 'static,
        F: RemoteCall + Deserializable + Identifiable + Send + 'static,
        H: Fn(Ctx, S, F) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<A, ApiError>> + Send + 'static,
        A: IntoAnswer<F::Return> + 'static,
    {
        self.public(move |ctx, request: F| handler(ctx, state.clone(), request))
    }

    /// Routes constructor `id` to a handler of its bytes (the whole request, constructor id
    /// included), answering with the result's bytes. `signed_in`: whether the caller must be
    /// signed in.
    pub fn raw<H, Fut>(mut self, id: u32, name: &'static str, signed_in: bool, handler: H) -> Self
    where
        H: Fn(Ctx, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RpcOutcome> + Send + 'static,
    {
        let handler: Erased = Arc::new(move |ctx, body| {
            let future = handler(ctx, body);
            Box::pin(async move { caught(future).await.unwrap_or_else(|| Err(panicked(name))) })
        });
        let access = if signed_in {
            Access::SignedIn
        } else {
            Access::Anyone
        };
        self.routes.insert(
            id,
            Route {
                name,
                access,
                handler,
            },
        );
        self
    }

    /// Adds every route of `other`, replacing this router's routes for the same ids.
    pub fn merge(mut self, other: Self) -> Self {
        self.routes.extend(other.routes);
        self.people.extend(other.people);
        if other.bots.is_some() {
            self.bots = other.bots;
        }
        self
    }

    /// Drops the route of function `F`, if there is one (a stock module's method that an
    /// application does not want to serve).
    pub fn without<F: Identifiable>(mut self) -> Self {
        self.routes.remove(&F::CONSTRUCTOR_ID);
        self
    }

    /// Whether constructor `id` has a route.
    pub fn contains(&self, id: u32) -> bool {
        self.routes.contains_key(&id)
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub(crate) fn get(&self, id: u32) -> Option<&Route> {
        self.routes.get(&id)
    }
}
