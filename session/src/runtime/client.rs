//! The client runtime: one task drives a [`ClientSession`] over a stream from a
//! [`Connector`], creating the auth key first when there is none, and reconnecting (same
//! session, unacknowledged messages re-sent) when the stream breaks.
//!
//! ```text
//! Client::connect(connector, options, saved key?) -> Client
//! client.invoke(request bytes).await -> Ok(result bytes) | Err(rpc_error) | Err(ClientError)
//! client.updates() -> a receiver of updates (TL bytes)
//! client.saved_key() -> what to keep to reuse the key next time
//! ```

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use columba_mtproto::crypto::AuthKey;
use columba_mtproto::handshake::{self, HandshakeError};
use columba_mtproto::transport;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::io::{ByteStream, Connector};
use super::now;
use crate::client::{ClientEvent, ClientSession, RequestFailure, RequestId};
use crate::config::SessionConfig;
use crate::connection::{ClientCloseReason, ClientConnection, ClientConnectionEvent};
use crate::rpc::{RpcError, RpcOutcome};
use columba_mtproto::handshake::bind::bind_temp_auth_key;
use columba_mtproto::time::Now;
use columba_mtproto::tl::Serializable;

/// How a client connects and behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The framing, and whether to obfuscate.
    pub transport: transport::ClientConfig,
    /// The key exchange: the server's RSA keys, the DC, the kind of key.
    pub handshake: handshake::ClientConfig,
    /// The session's limits.
    pub session: SessionConfig,
    /// Reconnection attempts after a broken stream before requests fail.
    pub reconnect_attempts: u32,
    /// The pause before the first reconnection attempt; doubled after each failure.
    pub reconnect_delay: Duration,
    /// How long connecting and the key exchange may take.
    pub connect_timeout: Duration,
    /// A request with no answer after this long fails with [`ClientError::Timeout`], and
    /// the server is asked to drop its answer.
    pub request_timeout: Duration,
    /// Updates buffered for the application; beyond it the oldest are dropped (clients catch
    /// up with `updates.getDifference`).
    pub updates_capacity: usize,
    /// Perfect forward secrecy: on each [`Client::connect`], create a temporary key valid
    /// this long, bind it to the permanent key (`auth.bindTempAuthKey`) and encrypt the
    /// session with it. The permanent key then only signs the binding.
    pub temporary_key: Option<Duration>,
}

impl ClientOptions {
    /// Defaults for `transport` and `handshake`.
    pub fn new(transport: transport::ClientConfig, handshake: handshake::ClientConfig) -> Self {
        Self {
            transport,
            handshake,
            // Results (not requests) may be large: the client's cap is the largest frame.
            session: SessionConfig {
                max_unpacked_len: transport::DEFAULT_MAX_FRAME_LEN,
                max_unpacked_per_message: transport::DEFAULT_MAX_FRAME_LEN,
                ..SessionConfig::default()
            },
            reconnect_attempts: 5,
            reconnect_delay: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            updates_capacity: 1024,
            temporary_key: None,
        }
    }
}

/// An auth key to keep between runs, with the state that goes with it.
#[derive(Debug, Clone)]
pub struct SavedKey {
    /// The key.
    pub auth_key: AuthKey,
    /// The last server salt used.
    pub salt: i64,
    /// Server time minus local time, in seconds.
    pub time_offset: i64,
}

/// Why the client cannot reach the server, or lost its connection.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The application's transport failed (connect, read or write).
    #[error("i/o: {0}")]
    Io(#[source] Arc<io::Error>),
    /// Connecting took longer than [`ClientOptions::connect_timeout`].
    #[error("timed out")]
    TimedOut,
    /// The server closed the stream.
    #[error("the server closed the connection")]
    ServerClosed,
    /// The connection's protocol broke (framing, a message that did not authenticate).
    #[error(transparent)]
    Connection(#[from] ClientCloseReason),
}

impl From<io::Error> for LinkError {
    fn from(error: io::Error) -> Self {
        Self::Io(Arc::new(error))
    }
}

/// Compared by kind (an I/O error by its `ErrorKind`): what tests and retry policies ask.
impl PartialEq for LinkError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Io(a), Self::Io(b)) => a.kind() == b.kind(),
            (Self::TimedOut, Self::TimedOut) | (Self::ServerClosed, Self::ServerClosed) => true,
            (Self::Connection(a), Self::Connection(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for LinkError {}

/// Why the server did not bind the temporary key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindFailure {
    /// It answered with an error (`ENCRYPTED_MESSAGE_INVALID`, `TEMP_AUTH_KEY_EMPTY`, ...).
    #[error(transparent)]
    Refused(#[from] RpcError),
    /// It answered something other than `boolTrue`.
    #[error("unexpected answer")]
    UnexpectedAnswer,
}

/// Why a request or the connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Could not connect (or reconnect) to the server.
    #[error("cannot reach the server: {0}")]
    Unreachable(#[source] LinkError),
    /// The key exchange failed.
    #[error("key exchange failed: {0}")]
    Handshake(#[source] HandshakeError),
    /// The server does not know the key (transport error -404): make a new one.
    #[error("the server does not know this auth key")]
    KeyRejected,
    /// The server sent a transport error.
    #[error("transport error {0}")]
    TransportError(i32),
    /// The request will get no answer (refused by the server, or an unreadable result).
    #[error("request failed: {0}")]
    RequestFailed(#[source] RequestFailure),
    /// Too many requests are waiting for answers.
    #[error("too many requests are waiting")]
    TooManyPending,
    /// No answer within [`ClientOptions::request_timeout`].
    #[error("no answer in time")]
    Timeout,
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// The server refused to bind the temporary key.
    #[error("binding the temporary key failed: {0}")]
    Bind(#[source] BindFailure),
}

enum Command {
    Invoke {
        body: Bytes,
        reply: oneshot::Sender<Result<RpcOutcome, ClientError>>,
    },
    Close,
}

/// A connected client.
#[derive(Debug)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    /// Why the driver stopped, once it has.
    ended: Arc<std::sync::Mutex<Option<ClientError>>>,
    updates: std::sync::Mutex<Option<mpsc::Receiver<Bytes>>>,
    saved: Arc<std::sync::Mutex<SavedKey>>,
}

impl Client {
    /// Connects, creates an auth key unless `key` is given, and starts the session.
    pub async fn connect(
        connector: Arc<dyn Connector>,
        options: ClientOptions,
        key: Option<SavedKey>,
    ) -> Result<Self, ClientError> {
        let connect = async {
            let stream = connector
                .connect()
                .await
                .map_err(|error| ClientError::Unreachable(error.into()))?;
            let mut link = Link::new(stream, &options);
            let key = match key {
                Some(key) => key,
                None => {
                    let mut config = options.handshake.clone();
                    config.kind = handshake::KeyKind::Permanent;
                    link.handshake(config).await?.0
                }
            };
            let temporary = match options.temporary_key {
                None => None,
                Some(lifetime) => {
                    let mut config = options.handshake.clone();
                    config.kind = handshake::KeyKind::Temporary {
                        expires_in: i32::try_from(lifetime.as_secs()).unwrap_or(i32::MAX),
                    };
                    Some(link.handshake(config).await?)
                }
            };
            Ok::<_, ClientError>((link, key, temporary))
        };
        let (link, key, temporary) = tokio::time::timeout(options.connect_timeout, connect)
            .await
            .map_err(|_| ClientError::Unreachable(LinkError::TimedOut))??;
        let session_id = i64::from_le_bytes(rand::rng().next_u64().to_le_bytes());
        // The session runs on the temporary key when there is one.
        let (session_key, salt, offset) = match &temporary {
            Some((temp, _)) => (temp.auth_key.clone(), temp.salt, temp.time_offset),
            None => (key.auth_key.clone(), key.salt, key.time_offset),
        };
        let session_key = Arc::new(session_key);
        let mut link = link;
        link.connection.set_key(session_key.clone());
        let mut session = ClientSession::new(
            session_id,
            salt,
            Some(offset),
            Arc::new(options.session.clone()),
        );
        let bind = match &temporary {
            Some((temp, expires_at)) => {
                let perm = key.auth_key.clone();
                let temp = temp.auth_key.clone();
                let expires_at = i32::try_from(expires_at.unwrap_or(0)).unwrap_or(i32::MAX);
                let build: crate::outbox::BodyBuilder = Arc::new(move |msg_id| {
                    let request = bind_temp_auth_key(
                        &perm,
                        &temp,
                        session_id,
                        msg_id,
                        expires_at,
                        &mut rand::rng(),
                    );
                    Bytes::from(request.to_function().to_bytes())
                });
                Some(
                    session
                        .invoke_built(build)
                        .map_err(|_| ClientError::TooManyPending)?,
                )
            }
            None => None,
        };
        let (commands, receiver) = mpsc::channel(256);
        let (updates_tx, updates_rx) = mpsc::channel(options.updates_capacity.max(1));
        let saved = Arc::new(std::sync::Mutex::new(key.clone()));
        let ended = Arc::new(std::sync::Mutex::new(None));
        let (bind_reply, bind_answer) = oneshot::channel();
        let mut waiting = HashMap::new();
        if let Some(id) = bind {
            let deadline = Instant::now() + options.request_timeout;
            waiting.insert(
                id,
                Waiting {
                    reply: bind_reply,
                    deadline,
                },
            );
        }
        let driver = Driver {
            ended: ended.clone(),
            connector,
            options,
            key: session_key,
            session,
            link,
            commands: receiver,
            updates: updates_tx,
            waiting,
            saved: saved.clone(),
            published: None,
        };
        tokio::spawn(driver.run());
        let client = Self {
            commands,
            ended,
            updates: std::sync::Mutex::new(Some(updates_rx)),
            saved,
        };
        if bind.is_some() {
            let answer = bind_answer.await.map_err(|_| client.end_reason())??;
            match answer {
                Ok(result)
                    if result.as_ref() == columba_mtproto::tl::BOOL_TRUE_ID.to_le_bytes() => {}
                Ok(_) => return Err(ClientError::Bind(BindFailure::UnexpectedAnswer)),
                Err(error) => return Err(ClientError::Bind(error.into())),
            }
        }
        Ok(client)
    }

    /// Sends a request and waits for its answer: `Ok(Ok(bytes))` for a result,
    /// `Ok(Err(rpc_error))` for an error from the server's application.
    pub async fn invoke(&self, body: Bytes) -> Result<RpcOutcome, ClientError> {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::Invoke { body, reply })
            .await
            .is_err()
        {
            return Err(self.end_reason());
        }
        answer.await.map_err(|_| self.end_reason())?
    }

    /// Why the client stopped working ([`ClientError::Closed`] if it was closed).
    fn end_reason(&self) -> ClientError {
        self.ended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or(ClientError::Closed)
    }

    /// The stream of updates (only the first call gets it).
    pub fn updates(&self) -> Option<mpsc::Receiver<Bytes>> {
        self.updates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// The key and its state, to save and pass to [`Self::connect`] next time.
    pub fn saved_key(&self) -> SavedKey {
        self.saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Closes the connection; waiting requests fail with [`ClientError::Closed`].
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
    }
}

/// One stream and the connection's protocol on it.
struct Link {
    stream: Box<dyn ByteStream>,
    connection: ClientConnection,
}

impl Link {
    fn new(stream: Box<dyn ByteStream>, options: &ClientOptions) -> Self {
        Self {
            stream,
            connection: ClientConnection::new(options.transport.clone(), &mut rand::rng()),
        }
    }

    async fn write(&mut self) -> Result<(), ClientError> {
        let pending = self.connection.outgoing();
        if !pending.is_empty() {
            let len = pending.len();
            self.stream
                .write_all(pending)
                .await
                .map_err(|error| ClientError::Unreachable(error.into()))?;
            self.connection.advance_outgoing(len);
        }
        Ok(())
    }

    /// The connection's next event, reading as needed. Cancel-safe: what was read stays in
    /// the connection's buffer.
    async fn event(&mut self) -> Result<ClientConnectionEvent, ClientError> {
        loop {
            if let Some(event) = self.connection.poll_event() {
                return Ok(event);
            }
            self.read().await?;
        }
    }

    /// Runs a key exchange on this stream; returns the key and, for a temporary key, its
    /// expiry (server time).
    async fn handshake(
        &mut self,
        config: handshake::ClientConfig,
    ) -> Result<(SavedKey, Option<i64>), ClientError> {
        self.connection
            .start_key_exchange(config, now(), &mut rand::rng());
        loop {
            // The exchange's messages are written as the connection makes them (they come
            // with no event).
            self.write().await?;
            let event = self.event_or_output().await?;
            let Some(event) = event else {
                continue;
            };
            match event {
                ClientConnectionEvent::KeyCreated(key) => {
                    return Ok((
                        SavedKey {
                            auth_key: key.auth_key,
                            salt: key.server_salt,
                            time_offset: key.time_offset,
                        },
                        key.expires_at,
                    ));
                }
                ClientConnectionEvent::Closed(reason) => return Err(reason.into()),
                _ => {}
            }
        }
    }

    /// The connection's next event, or `None` as soon as it has bytes to write.
    async fn event_or_output(&mut self) -> Result<Option<ClientConnectionEvent>, ClientError> {
        loop {
            if let Some(event) = self.connection.poll_event() {
                return Ok(Some(event));
            }
            if !self.connection.outgoing().is_empty() {
                return Ok(None);
            }
            self.read().await?;
        }
    }

    async fn read(&mut self) -> Result<(), ClientError> {
        let read = self
            .stream
            .read_buf(self.connection.input_buffer())
            .await
            .map_err(|error| ClientError::Unreachable(error.into()))?;
        if read == 0 {
            return Err(ClientError::Unreachable(LinkError::ServerClosed));
        }
        // Bound in its own statement: the thread's generator must not live across an
        // await (the future would not be `Send`).
        self.connection.handle_input(now(), &mut rand::rng());
        Ok(())
    }
}

impl From<ClientCloseReason> for ClientError {
    fn from(reason: ClientCloseReason) -> Self {
        match reason {
            ClientCloseReason::TransportError(transport::ERROR_AUTH_KEY_NOT_FOUND) => {
                Self::KeyRejected
            }
            ClientCloseReason::TransportError(code) => Self::TransportError(code),
            ClientCloseReason::KeyExchange(error) => Self::Handshake(error),
            ClientCloseReason::Local => Self::Closed,
            // A frame that does not authenticate is dropped and nothing in it is used; the
            // guidelines suggest reconnecting, which this does.
            other => Self::Unreachable(other.into()),
        }
    }
}

/// A request waiting for its answer.
struct Waiting {
    reply: oneshot::Sender<Result<RpcOutcome, ClientError>>,
    deadline: Instant,
}

/// The task behind a [`Client`].
struct Driver {
    ended: Arc<std::sync::Mutex<Option<ClientError>>>,
    connector: Arc<dyn Connector>,
    options: ClientOptions,
    key: Arc<AuthKey>,
    session: ClientSession,
    link: Link,
    commands: mpsc::Receiver<Command>,
    updates: mpsc::Sender<Bytes>,
    waiting: HashMap<RequestId, Waiting>,
    saved: Arc<std::sync::Mutex<SavedKey>>,
    /// The salt and time offset last written to `saved` (which is locked only when they
    /// change).
    published: Option<(i64, i64)>,
}

impl Driver {
    async fn run(mut self) {
        let error = loop {
            match self.serve().await {
                Ok(()) => break ClientError::Closed,
                Err(ClientError::Unreachable(_)) => {
                    if let Err(error) = self.reconnect().await {
                        break error;
                    }
                }
                Err(error) => break error,
            }
        };
        *self
            .ended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error.clone());
        for (_, waiting) in self.waiting.drain() {
            let _ = waiting.reply.send(Err(error.clone()));
        }
    }

    /// Serves one stream until it breaks (`Unreachable`), the client closes (`Ok`), or a
    /// fatal error.
    async fn serve(&mut self) -> Result<(), ClientError> {
        let mut scratch = BytesMut::with_capacity(4096);
        // One timer, moved earlier when something falls due sooner and pushed far away when
        // it fires: a timer that fires early finds nothing due, and requests (whose deadlines
        // only come later) cost no timer updates.
        let far = || Instant::now() + Duration::from_secs(3600);
        let mut armed = far();
        let timer = tokio::time::sleep_until(armed.into());
        tokio::pin!(timer);
        // The clocks are read once per turn, when something happened: the work it causes and
        // the flush after it share that time.
        let mut now = now();
        loop {
            self.flush(&mut scratch, now).await?;
            let deadline = self.waiting.values().map(|waiting| waiting.deadline).min();
            let due = [self.session.poll_timeout(), deadline]
                .into_iter()
                .flatten()
                .min();
            if let Some(due) = due.filter(|due| *due < armed) {
                armed = due;
                timer.as_mut().reset(armed.into());
            }
            tokio::select! {
                command = self.commands.recv() => {
                    now = super::now();
                    match command {
                        Some(Command::Invoke { body, reply }) => match self.session.invoke(body) {
                            Ok(id) => {
                                let deadline = now.monotonic + self.options.request_timeout;
                                self.waiting.insert(id, Waiting { reply, deadline });
                            }
                            Err(_) => {
                                let _ = reply.send(Err(ClientError::TooManyPending));
                            }
                        },
                        Some(Command::Close) | None => return Ok(()),
                    }
                }
                event = self.link.event() => {
                    now = super::now();
                    self.handle_connection_event(event?, now)?;
                }
                () = &mut timer => {
                    now = super::now();
                    self.session.handle_timeout(now);
                    self.expire_requests();
                    armed = far();
                    timer.as_mut().reset(armed.into());
                }
            }
            self.take_events();
        }
    }

    fn handle_connection_event(
        &mut self,
        event: ClientConnectionEvent,
        now: Now,
    ) -> Result<(), ClientError> {
        match event {
            ClientConnectionEvent::Message(message) => {
                self.session
                    .handle_message(&message.header, &message.body, now);
                Ok(())
            }
            ClientConnectionEvent::Closed(reason) => Err(reason.into()),
            _ => Ok(()),
        }
    }

    fn take_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                ClientEvent::Response { id, outcome } => {
                    if let Some(waiting) = self.waiting.remove(&id) {
                        let _ = waiting.reply.send(Ok(outcome));
                    }
                }
                ClientEvent::Failed { id, reason } => {
                    if let Some(waiting) = self.waiting.remove(&id) {
                        let _ = waiting.reply.send(Err(ClientError::RequestFailed(reason)));
                    }
                }
                ClientEvent::Update { body } => {
                    if self.updates.try_send(body).is_err() {
                        tracing::warn!("update dropped: the application is not reading them");
                    }
                }
                ClientEvent::SessionCreated { .. } => {
                    tracing::debug!("the server created the session anew");
                }
            }
        }
        let current = (self.session.salt(), self.session.time_offset());
        if self.published == Some(current) {
            return;
        }
        self.published = Some(current);
        let mut saved = self
            .saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Salts are per key: only the permanent key's own session updates the saved one.
        if saved.auth_key.id() == self.key.id() {
            saved.salt = current.0;
        }
        saved.time_offset = current.1;
    }

    /// Fails the requests past their deadline, and tells the server to drop their answers.
    fn expire_requests(&mut self) {
        let now = Instant::now();
        let expired: Vec<RequestId> = self
            .waiting
            .iter()
            .filter(|(_, waiting)| waiting.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.session.cancel(id);
            if let Some(waiting) = self.waiting.remove(&id) {
                let _ = waiting.reply.send(Err(ClientError::Timeout));
            }
        }
    }

    async fn flush(&mut self, scratch: &mut BytesMut, now: Now) -> Result<(), ClientError> {
        while let Some(header) = self.session.poll_transmit(now, scratch) {
            // A message that cannot be sealed or framed is dropped; the session sends it
            // again when the server does not acknowledge it.
            self.link
                .connection
                .send_message(&header, scratch, false, &mut rand::rng());
        }
        self.link.write().await
    }

    async fn reconnect(&mut self) -> Result<(), ClientError> {
        let mut delay = self.options.reconnect_delay;
        let mut last = LinkError::TimedOut;
        for _ in 0..self.options.reconnect_attempts {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
            match tokio::time::timeout(self.options.connect_timeout, self.connector.connect()).await
            {
                Ok(Ok(stream)) => {
                    self.link = Link::new(stream, &self.options);
                    self.link.connection.set_key(self.key.clone());
                    self.session.handle_new_connection();
                    return Ok(());
                }
                Ok(Err(error)) => last = error.into(),
                Err(_) => last = LinkError::TimedOut,
            }
        }
        Err(ClientError::Unreachable(last))
    }
}
