//! The traits an application implements to plug its own services into the runtime, and
//! the implementations shipped with them (logging ones for development, recording ones for
//! tests).
//!
//! Every trait is object-safe and `Send + Sync + 'static`, so that the runtime can hold an
//! `Arc<dyn Trait>`. Methods that may wait on the network return a boxed future
//! ([`BoxFuture`]), which keeps them object-safe without an executor in the trait.
//!
//! The application's transports (`Listener` and `Connector`) live in [`crate::runtime`],
//! since they hand out tokio byte streams.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::endpoint::RequestContext;
use crate::rpc::RpcOutcome;

/// A boxed future that can move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The application's API: every message that is not a service message ends up here.
pub trait Service: Send + Sync + 'static {
    /// Answers one query. `request` is a TL function call (with `invokeAfterMsg` wrappers
    /// already taken off and their order kept); the answer is the result's TL bytes or an
    /// `rpc_error` in Telegram's convention (code 400 and `SOMETHING_INVALID`, 420 and
    /// `FLOOD_WAIT_X`, ...). Queries of one session may run concurrently; the runtime waits
    /// for running queries on graceful shutdown. The future must not hold locks across
    /// awaits that the same session's other queries need.
    fn call(&self, context: RequestContext, request: Bytes) -> BoxFuture<'_, RpcOutcome>;

    /// Called once by the runtime that will call this service, with a weak handle on it (to
    /// push updates and refresh keys). The handle does not keep the server alive, so a
    /// service may keep it without making a reference cycle. Does nothing by default.
    #[cfg(feature = "tokio")]
    fn bind(&self, server: crate::runtime::ServerHandle) {
        let _ = server;
    }
}

/// A notification for a user who has no live session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Notification {
    /// The user to notify.
    pub user_id: i64,
    /// The update that could not be delivered (TL bytes), for the provider to summarise.
    pub update: Bytes,
}

impl Notification {
    /// A notification of `update` (TL bytes) for `user_id`.
    pub fn new(user_id: i64, update: Bytes) -> Self {
        Self { user_id, update }
    }
}

/// Why a notification, a login code or an update could not be delivered, saying whose fault
/// it is and keeping the provider's own error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The provider refused this delivery (an unknown device token, an invalid number):
    /// sending it again will not help.
    #[error("delivery refused: {0}")]
    Refused(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The provider could not be reached or failed (a timeout, an outage, a full queue): it
    /// may work later.
    #[error("delivery failed: {0}")]
    Unavailable(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
}

impl DeliveryError {
    /// [`Self::Refused`], with its cause.
    pub fn refused(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Refused(Arc::new(cause))
    }

    /// [`Self::Unavailable`], with its cause.
    pub fn unavailable(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Arc::new(cause))
    }
}

/// Push notifications (APNs, FCM, a webhook) for users with no live session.
pub trait PushProvider: Send + Sync + 'static {
    /// Sends one notification. Called once per update that reached no live session of the
    /// user; a failure is logged by the runtime and not retried (the client catches up with
    /// `updates.getDifference` when it connects).
    fn push(&self, notification: Notification) -> BoxFuture<'_, Result<(), DeliveryError>>;
}

/// Login codes (an SMS gateway, a messaging API).
pub trait CodeSender: Send + Sync + 'static {
    /// Sends `code` to `phone` (international format, digits only). The application decides
    /// the code and checks it later; the sender only delivers it.
    fn send_code(&self, phone: &str, code: &str) -> BoxFuture<'_, Result<(), DeliveryError>>;
}

/// Fan-out of updates between the nodes of a deployment: each node publishes the updates it
/// produces and delivers those it receives to its own live sessions.
pub trait UpdateBus: Send + Sync + 'static {
    /// Publishes an update for `user_id` to every subscriber (this node's included).
    /// Delivery is at most once: a subscriber that lags may miss updates, and clients
    /// recover with `updates.getDifference`.
    fn publish(&self, user_id: i64, update: Bytes) -> Result<(), DeliveryError>;

    /// A new subscription that sees every update published after this call.
    fn subscribe(&self) -> Box<dyn UpdateSubscription>;
}

/// One subscriber's view of an [`UpdateBus`].
pub trait UpdateSubscription: Send + 'static {
    /// The next update (`user_id`, bytes), or `None` once the bus is closed.
    fn next(&mut self) -> BoxFuture<'_, Option<(i64, Bytes)>>;
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A recorder's state stays consistent even if a holder panicked: take it anyway.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Logs notifications (user id and size only) instead of sending them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingPushProvider;

impl PushProvider for LoggingPushProvider {
    fn push(&self, notification: Notification) -> BoxFuture<'_, Result<(), DeliveryError>> {
        tracing::info!(
            user_id = notification.user_id,
            bytes = notification.update.len(),
            "push notification"
        );
        Box::pin(async { Ok(()) })
    }
}

/// Keeps every notification, for tests.
#[derive(Debug, Clone, Default)]
pub struct RecordingPushProvider {
    sent: Arc<Mutex<Vec<Notification>>>,
}

impl RecordingPushProvider {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The notifications so far.
    pub fn sent(&self) -> Vec<Notification> {
        lock(&self.sent).clone()
    }
}

impl PushProvider for RecordingPushProvider {
    fn push(&self, notification: Notification) -> BoxFuture<'_, Result<(), DeliveryError>> {
        lock(&self.sent).push(notification);
        Box::pin(async { Ok(()) })
    }
}

/// Prints login codes to the log: for development servers only, since anyone who reads the
/// log can sign in.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingCodeSender;

impl CodeSender for LoggingCodeSender {
    fn send_code(&self, phone: &str, code: &str) -> BoxFuture<'_, Result<(), DeliveryError>> {
        tracing::info!(phone, code, "login code");
        Box::pin(async { Ok(()) })
    }
}

/// Keeps every code sent, for tests.
#[derive(Debug, Clone, Default)]
pub struct RecordingCodeSender {
    sent: Arc<Mutex<Vec<(String, String)>>>,
}

impl RecordingCodeSender {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// (phone, code) pairs so far.
    pub fn sent(&self) -> Vec<(String, String)> {
        lock(&self.sent).clone()
    }

    /// The last code sent to `phone`.
    pub fn last_code(&self, phone: &str) -> Option<String> {
        lock(&self.sent)
            .iter()
            .rev()
            .find(|(to, _)| to == phone)
            .map(|(_, code)| code.clone())
    }
}

impl CodeSender for RecordingCodeSender {
    fn send_code(&self, phone: &str, code: &str) -> BoxFuture<'_, Result<(), DeliveryError>> {
        lock(&self.sent).push((phone.to_owned(), code.to_owned()));
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(future: BoxFuture<'_, T>) -> T {
        // The shipped implementations finish at once: one poll is enough.
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = future;
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => unreachable!("the recorders never wait"),
        }
    }

    #[test]
    fn recorders_keep_what_they_are_given() {
        let codes = RecordingCodeSender::new();
        let sender: Arc<dyn CodeSender> = Arc::new(codes.clone());
        assert!(block_on(sender.send_code("15550001", "12345")).is_ok());
        assert!(block_on(sender.send_code("15550001", "67890")).is_ok());
        assert_eq!(codes.last_code("15550001").as_deref(), Some("67890"));
        assert_eq!(codes.last_code("15550002"), None);
        assert_eq!(codes.sent().len(), 2);

        let pushes = RecordingPushProvider::new();
        let provider: Arc<dyn PushProvider> = Arc::new(pushes.clone());
        let notification = Notification {
            user_id: 7,
            update: Bytes::from_static(b"\x01\x02\x03\x04"),
        };
        assert!(block_on(provider.push(notification.clone())).is_ok());
        assert_eq!(pushes.sent(), vec![notification]);
    }

    #[test]
    fn logging_implementations_accept_everything() {
        let provider: Arc<dyn PushProvider> = Arc::new(LoggingPushProvider);
        let sender: Arc<dyn CodeSender> = Arc::new(LoggingCodeSender);
        assert!(
            block_on(provider.push(Notification {
                user_id: 1,
                update: Bytes::new()
            }))
            .is_ok()
        );
        assert!(block_on(sender.send_code("1", "2")).is_ok());
    }
}
