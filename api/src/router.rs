//! The typed router: one handler per generated function type, found by constructor id.
//!
//! A handler for function `F` takes the context and the decoded `F` and returns
//! `Result<F::Return, ApiError>`; the compiler checks through [`RemoteCall`] that it answers
//! with the type the schema says. Decoding, encoding and the access rule are the router's:
//!
//! - [`Router::route`] (and [`Router::route_with`], for a handler that takes a state):
//!   callable once signed in; before that the caller gets `401 AUTH_KEY_UNREGISTERED`.
//! - [`Router::public`] / [`Router::public_with`]: callable before sign-in as well (the
//!   login calls, `help.getConfig`, ...).
//! - [`Router::raw`]: a handler of bytes for a constructor id, for methods an application
//!   decodes itself (a layer of its own, a method not in the schema).
//!
//! Routers merge ([`Router::merge`]): the stock modules each give one, an application
//! merges the ones it wants and its own on top, the later route for an id replacing the
//! earlier.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use columba_mtproto::tl::{Deserializable, Identifiable, RemoteCall, Serializable};
use columba_session::RpcOutcome;
use columba_session::plugins::BoxFuture;

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
}

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
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.routes.values().map(|route| route.name).collect();
        names.sort_unstable();
        f.debug_struct("Router").field("routes", &names).finish()
    }
}

/// The answer's bytes, or the error for the client.
fn encode<R: Serializable>(result: Result<R, ApiError>) -> RpcOutcome {
    match result {
        Ok(value) => Ok(Bytes::from(value.to_bytes())),
        Err(error) => Err(error.into()),
    }
}

fn typed<F, H, Fut>(handler: H) -> Erased
where
    F: RemoteCall + Deserializable + Send + 'static,
    F::Return: Serializable,
    H: Fn(Ctx, F) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<F::Return, ApiError>> + Send + 'static,
{
    Arc::new(move |ctx, body: Bytes| match F::from_bytes(&body) {
        Ok(request) => {
            let future = handler(ctx, request);
            Box::pin(async move { encode(future.await) })
        }
        Err(_) => Box::pin(async { Err(ApiError::fetch_error().into()) }),
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

    /// Routes function `F` to `handler`, for signed-in users.
    pub fn route<F, H, Fut>(self, handler: H) -> Self
    where
        F: RemoteCall + Deserializable + Identifiable + Send + 'static,
        F::Return: Serializable,
        H: Fn(Ctx, F) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<F::Return, ApiError>> + Send + 'static,
    {
        self.insert::<F>(Access::SignedIn, typed(handler))
    }

    /// Routes function `F` to `handler`, for anyone with a key (signed in or not).
    pub fn public<F, H, Fut>(self, handler: H) -> Self
    where
        F: RemoteCall + Deserializable + Identifiable + Send + 'static,
        F::Return: Serializable,
        H: Fn(Ctx, F) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<F::Return, ApiError>> + Send + 'static,
    {
        self.insert::<F>(Access::Anyone, typed(handler))
    }

    /// [`Self::route`] for a handler that takes a state (cloned for each call): an
    /// `async fn(Ctx, S, F)` can be given as it is.
    pub fn route_with<S, F, H, Fut>(self, state: S, handler: H) -> Self
    where
        S: Clone + Send + Sync + 'static,
        F: RemoteCall + Deserializable + Identifiable + Send + 'static,
        F::Return: Serializable,
        H: Fn(Ctx, S, F) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<F::Return, ApiError>> + Send + 'static,
    {
        self.route(move |ctx, request: F| handler(ctx, state.clone(), request))
    }

    /// [`Self::public`] for a handler that takes a state.
    pub fn public_with<S, F, H, Fut>(self, state: S, handler: H) -> Self
    where
        S: Clone + Send + Sync + 'static,
        F: RemoteCall + Deserializable + Identifiable + Send + 'static,
        F::Return: Serializable,
        H: Fn(Ctx, S, F) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<F::Return, ApiError>> + Send + 'static,
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
        let handler: Erased = Arc::new(move |ctx, body| Box::pin(handler(ctx, body)));
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
