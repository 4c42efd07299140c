//! The HTTP side: routes, bodies, tokens, the bots' fronts in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use columba_api::Backend;
use columba_api::bots;
use columba_session::runtime::ServerHandle;
use columba_store::user::Account;
use tokio::sync::Semaphore;

use crate::BotApiOptions;
use crate::files;
use crate::instance::Instance;
use crate::methods;
use crate::reply::{self, BotApiError};
use crate::request::{self, Params, Route};

/// What every request shares.
pub(crate) struct Shared {
    pub(crate) backend: Arc<Backend>,
    pub(crate) server: ServerHandle,
    pub(crate) options: BotApiOptions,
    instances: Mutex<HashMap<i64, Arc<Instance>>>,
    in_flight: Semaphore,
    pub(crate) client: crate::webhook::Client,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The Bot API front: give it to [`BotApi::serve`], or take its [`BotApi::router`] into an
/// application's own HTTP server.
#[derive(Debug, Clone)]
pub struct BotApi {
    shared: Arc<Shared>,
}

impl BotApi {
    /// A front over `backend`, telling people's sessions of changes through `server`.
    pub fn new(backend: Arc<Backend>, server: ServerHandle, options: BotApiOptions) -> Self {
        if let Some(dir) = &options.state_dir {
            if let Err(error) = std::fs::create_dir_all(dir) {
                tracing::warn!(%error, "the Bot API's state directory cannot be made");
            }
        }
        let in_flight = Semaphore::new(options.max_in_flight.max(1));
        Self {
            shared: Arc::new(Shared {
                backend,
                server,
                options,
                instances: Mutex::new(HashMap::new()),
                in_flight,
                client: crate::webhook::client(),
            }),
        }
    }

    /// The routes, as an `axum` router.
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(handle)
            .with_state(self.shared.clone())
    }

    /// Serves HTTP on `listener` until `shutdown` completes (requests in progress finish).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

impl Shared {
    /// The bot a token is of, and its front: `401 Unauthorized` for anything else.
    /// Blocking (a store read).
    pub(crate) fn front(
        self: &Arc<Self>,
        token: &str,
    ) -> Result<(Account, Arc<Instance>), BotApiError> {
        let bot =
            bots::check_token(&self.backend, token).map_err(|_| BotApiError::unauthorized())?;
        let mut instances = self
            .instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(instance) = instances.get(&bot.id) {
            return Ok((bot, instance.clone()));
        }
        if instances.len() >= self.options.max_bots {
            return Err(BotApiError::too_many(60));
        }
        let instance = Arc::new(Instance::new(
            &self.backend,
            bot.id,
            self.options.state_dir.as_ref(),
        ));
        instances.insert(bot.id, instance.clone());
        Ok((bot, instance))
    }

    /// Forgets a bot's front (`logOut`, `close`).
    pub(crate) fn forget(&self, bot: i64) {
        let mut instances = self
            .instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(instance) = instances.remove(&bot) {
            // Its webhook's delivery stops; the feed goes under the lock, so that a new front
            // made meanwhile cannot be left with a feed nobody wakes.
            instance
                .webhook
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            self.backend.bot_feeds.unsubscribe(bot);
        }
    }
}

/// Runs blocking work on the pool; a panic in it is a 500.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, BotApiError>
where
    F: FnOnce() -> Result<T, BotApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| Err(BotApiError::internal()))
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let Ok(_permit) = shared.in_flight.acquire().await else {
        return BotApiError::internal().into_response();
    };
    let (parts, body) = request.into_parts();
    let Some(route) = request::route(parts.uri.path()) else {
        return BotApiError::not_found().into_response();
    };
    let token = match &route {
        Route::Method { token, .. } | Route::File { token, .. } => token.clone(),
    };
    // The token first: nobody without one makes the server read a body.
    let front = {
        let shared = shared.clone();
        blocking(move || shared.front(&token)).await
    };
    let (bot, instance) = match front {
        Ok(front) => front,
        Err(error) => return error.into_response(),
    };
    let read = axum::body::to_bytes(body, shared.options.max_body_bytes);
    let body = match tokio::time::timeout(shared.options.body_timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return BotApiError::too_large().into_response(),
        Err(_) => {
            return BotApiError::bad_request("the request body came too slowly").into_response();
        }
    };
    let outcome = match route {
        Route::Method { method, .. } => {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok());
            match Params::read(
                &shared.options.limits,
                parts.uri.query(),
                content_type,
                body,
            )
            .await
            {
                Ok(params) => methods::call(&shared, &instance, bot, &method, params).await,
                Err(error) => Err(error),
            }
        }
        Route::File { path, .. } => {
            if parts.method != Method::GET && parts.method != Method::HEAD {
                return BotApiError::not_found().into_response();
            }
            return download(&shared, path)
                .await
                .unwrap_or_else(IntoResponse::into_response);
        }
    };
    match outcome {
        Ok(result) => reply::ok(result),
        Err(error) => error.into_response(),
    }
}

/// `GET /file/bot<token>/<file_path>`: the file's bytes.
async fn download(shared: &Arc<Shared>, path: String) -> Result<Response, BotApiError> {
    let content = files::content_of_path(&path).ok_or_else(BotApiError::not_found)?;
    let shared = shared.clone();
    let limit = shared.options.max_download_bytes;
    let bytes = blocking(move || {
        // Read in the file store's windows, to the end or the limit.
        const WINDOW: i32 = 1024 * 1024;
        let mut bytes = Vec::new();
        loop {
            let offset = i64::try_from(bytes.len()).map_err(|_| BotApiError::too_large())?;
            let chunk = shared
                .backend
                .files
                .get_file(content, offset, WINDOW, false)
                .map_err(|_| BotApiError::not_found())?;
            let done = chunk.len() < usize::try_from(WINDOW).unwrap_or(0);
            bytes.extend_from_slice(&chunk);
            if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
                return Err(BotApiError::bad_request("file is too big"));
            }
            if done {
                return Ok(bytes);
            }
        }
    })
    .await?;
    let mut response = Body::from(bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}
