//! [`Ctx`]: what a handler gets besides its request.

use std::sync::Arc;

use columba_session::runtime::ServerHandle;
use columba_session::{ConnectionId, RequestContext, SessionKey};

use crate::error::ApiError;
use crate::info::SessionInfo;

/// The request's context: who asks, on which session, what the client said about itself,
/// and the server the request came through. Cheap to clone (a handler may move it into a
/// task of its own).
#[derive(Debug, Clone)]
pub struct Ctx {
    request: RequestContext,
    info: Arc<SessionInfo>,
    server: ServerHandle,
}

impl Ctx {
    pub(crate) fn new(
        request: RequestContext,
        info: Arc<SessionInfo>,
        server: ServerHandle,
    ) -> Self {
        Self {
            request,
            info,
            server,
        }
    }

    /// A context outside any runtime, for calling handlers directly (tests, tools): a
    /// session of `auth_key_id` with id 1 signed in as `user_id`, and a server handle that
    /// does nothing.
    pub fn detached(auth_key_id: i64, user_id: Option<i64>) -> Self {
        Self::new(
            RequestContext {
                session: SessionKey {
                    auth_key_id,
                    session_id: 1,
                },
                perm_auth_key_id: Some(auth_key_id),
                user_id,
                connection: ConnectionId(0),
            },
            Arc::new(SessionInfo::default()),
            ServerHandle::detached(),
        )
    }

    /// A context for calls the server makes on a user's behalf outside any MTProto
    /// session: a front of its own (the Bot API's HTTP front) calling the stock handlers
    /// as a bot. There is no key (`auth_key_id` 0, no permanent key), so methods that need
    /// one answer `AUTH_KEY_PERM_EMPTY`; `server` is the one whose users are told of changes.
    pub fn on_behalf_of(server: ServerHandle, user_id: i64) -> Self {
        Self::new(
            RequestContext {
                session: SessionKey {
                    auth_key_id: 0,
                    session_id: 0,
                },
                perm_auth_key_id: None,
                user_id: Some(user_id),
                connection: ConnectionId(0),
            },
            Arc::new(SessionInfo::default()),
            server,
        )
    }

    /// The signed-in user, if any.
    pub fn user_id(&self) -> Option<i64> {
        self.request.user_id
    }

    /// The signed-in user, or `401 AUTH_KEY_UNREGISTERED`. Handlers of routes that need a
    /// user are only called with one, so there this never fails.
    pub fn user(&self) -> Result<i64, ApiError> {
        self.request
            .user_id
            .ok_or_else(ApiError::auth_key_unregistered)
    }

    /// The session (and the key its messages are encrypted with, possibly temporary).
    pub fn session(&self) -> SessionKey {
        self.request.session
    }

    /// The permanent key behind the session: `401 AUTH_KEY_PERM_EMPTY` for a temporary key
    /// not bound yet.
    pub fn perm_auth_key_id(&self) -> Result<i64, ApiError> {
        self.request
            .perm_auth_key_id
            .ok_or_else(|| ApiError::unauthorized("AUTH_KEY_PERM_EMPTY"))
    }

    /// The connection the request came on.
    pub fn connection(&self) -> ConnectionId {
        self.request.connection
    }

    /// What the client said about itself (layer, `initConnection`).
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The server: push updates to users, refresh keys after a sign-in or out.
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// Runs `work` on the blocking pool (store calls that sync to disk), so that the
    /// connection's task and the other requests on its worker thread go on meanwhile. A
    /// panic in `work` is answered as `500 INTERNAL`.
    pub async fn blocking<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result,
            Err(error) => Err(ApiError::internal(&error)),
        }
    }

    /// Runs `work` on the blocking pool after the answer, without waiting for it: what
    /// follows a change (telling other users' sessions) must not delay the caller's answer.
    pub fn after<F>(&self, work: F)
    where
        F: FnOnce() + Send + 'static,
    {
        // Outside a runtime (a detached context in a test) the work runs here and now.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(work);
            }
            Err(_) => work(),
        }
    }
}
