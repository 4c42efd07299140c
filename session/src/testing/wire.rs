//! [`Wire`]: a client and a server joined by one simulated byte stream, driven through the
//! same sans-IO types as the runtime. The client is a [`ClientConnection`] with a
//! [`ClientSession`] on top; the server is a [`ServerConnection`] in front of an
//! [`Endpoint`], with its keys in an in-memory [`AuthKeyStore`] (the store's place in the
//! runtime) read with [`load_key`] as the runtime reads them. Keys come from a real key
//! exchange over the wire; time is simulated; every write is cut into pieces of random
//! length, so that frames arrive split anywhere, as over TCP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use columba_mtproto::crypto::{AuthKey, RsaPrivateKey};
use columba_mtproto::handshake;
use columba_mtproto::time::Now;
use columba_mtproto::transport;
use columba_store::{AuthKeyStore, MemoryAuthKeyStore};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::client::{ClientEvent, ClientSession, InvokeError, RequestId};
use crate::config::SessionConfig;
use crate::connection::{
    ClientCloseReason, ClientConnection, ClientConnectionEvent, CloseReason, ConnectionEvent,
    ServerConnection,
};
use crate::endpoint::{
    ConnectionId, Endpoint, EndpointConfig, EndpointEvent, KeyLookup, RequestContext, load_key,
};
use crate::rpc::RpcOutcome;
use crate::salt::SaltSource;

/// How many times a key is read from the store before a frame gives up (a change raced
/// every read), as in the runtime.
const MAX_KEY_LOADS: usize = 4;

/// A client and a server over one simulated stream.
pub struct Wire {
    /// The client's side of the stream.
    pub client: ClientConnection,
    /// The client's session, once it has a key.
    pub session: Option<ClientSession>,
    /// The server's side of the stream.
    pub server: ServerConnection,
    /// The server's sessions and key cache.
    pub endpoint: Endpoint,
    /// The server's key store.
    pub keys: Arc<MemoryAuthKeyStore>,
    /// Writes in each direction are cut into pieces of 1 to `max_write` bytes (random).
    pub max_write: usize,
    /// Answer requests by echoing their body (when true).
    pub echo: bool,
    /// Requests the server got, in order.
    pub requests: Vec<(RequestContext, Bytes)>,
    /// Responses the client got, in order.
    pub responses: Vec<(RequestId, RpcOutcome)>,
    /// Every other event of the client's session, in order.
    pub client_events: Vec<ClientEvent>,
    /// Quick-ack tokens the client got.
    pub quick_acks: Vec<u32>,
    /// Why the server closed its side, once it has.
    pub server_closed: Option<CloseReason>,
    /// Why the client closed its side, once it has.
    pub client_closed: Option<ClientCloseReason>,
    /// Pieces written from the client to the server so far.
    pub writes_up: usize,
    /// Pieces written from the server to the client so far.
    pub writes_down: usize,
    key: Option<Arc<AuthKey>>,
    framing: transport::ClientConfig,
    client_handshake: handshake::ClientConfig,
    server_handshake: Arc<handshake::ServerConfig>,
    session_config: Arc<SessionConfig>,
    connection: ConnectionId,
    start: Instant,
    elapsed: Duration,
    rng: ChaCha20Rng,
    scratch: BytesMut,
}

impl Wire {
    /// A client in `framing` and a server with `rsa`, not connected yet by a key: call
    /// [`Self::exchange_keys`] first. Everything random comes from `seed`.
    pub fn new(seed: u64, framing: transport::ClientConfig, rsa: Arc<RsaPrivateKey>) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let client_handshake = handshake::ClientConfig::new(vec![rsa.public_key().clone()], 1);
        let server_handshake = Arc::new(handshake::ServerConfig::new(vec![rsa]));
        let salts = Arc::new(SaltSource::generate(&mut rng));
        let client = ClientConnection::new(framing.clone(), &mut rng);
        let server = ServerConnection::new(
            transport::Config::default(),
            server_handshake.clone(),
            &mut rng,
        );
        Self {
            client,
            session: None,
            server,
            endpoint: Endpoint::new(salts, EndpointConfig::default()),
            keys: Arc::new(MemoryAuthKeyStore::new()),
            max_write: 64,
            echo: true,
            requests: Vec::new(),
            responses: Vec::new(),
            client_events: Vec::new(),
            quick_acks: Vec::new(),
            server_closed: None,
            client_closed: None,
            writes_up: 0,
            writes_down: 0,
            key: None,
            framing,
            client_handshake,
            server_handshake,
            session_config: Arc::new(SessionConfig::default()),
            connection: ConnectionId(1),
            start: Instant::now(),
            elapsed: Duration::ZERO,
            rng,
            scratch: BytesMut::with_capacity(4096),
        }
    }

    /// The clock now (both sides share it).
    pub fn now(&self) -> Now {
        Now {
            monotonic: self.start + self.elapsed,
            unix: Duration::from_secs(1_800_000_000) + self.elapsed,
        }
    }

    /// The key the client uses, once it has one.
    pub fn key(&self) -> Option<&Arc<AuthKey>> {
        self.key.as_ref()
    }

    /// Runs a key exchange over the wire; the client's session starts with the new key.
    /// `true` when the key was made (and stored by the server).
    pub fn exchange_keys(&mut self) -> bool {
        let now = self.now();
        self.client
            .start_key_exchange(self.client_handshake.clone(), now, &mut self.rng);
        self.run(64);
        self.key.is_some()
    }

    /// Invokes `body` on the client's session (`None` before it has a key).
    pub fn invoke(&mut self, body: &[u8]) -> Option<Result<RequestId, InvokeError>> {
        let session = self.session.as_mut()?;
        Some(session.invoke(Bytes::copy_from_slice(body)))
    }

    /// Seals what the client's session has to send and loses it, with anything else on
    /// the client's stream (the connection broke before the server read it). Returns how
    /// many bytes were lost.
    pub fn lose_upstream(&mut self) -> usize {
        self.client_output();
        let lost = self.client.outgoing().len();
        self.client.advance_outgoing(lost);
        lost
    }

    /// Moves the clock and runs both sides' timers.
    pub fn advance(&mut self, by: Duration) {
        self.elapsed += by;
        let now = self.now();
        if let Some(session) = self.session.as_mut() {
            session.handle_timeout(now);
        }
        self.endpoint.handle_timeout(now);
    }

    /// A new stream: both connections are replaced (what was in flight is lost), the
    /// server's endpoint hears that the old one closed, and the client's session re-sends
    /// what is unanswered on the new one, with the same key.
    pub fn reconnect(&mut self) {
        self.endpoint.connection_closed(self.connection);
        self.connection = ConnectionId(self.connection.0.wrapping_add(1));
        self.client = ClientConnection::new(self.framing.clone(), &mut self.rng);
        self.server = ServerConnection::new(
            transport::Config::default(),
            self.server_handshake.clone(),
            &mut self.rng,
        );
        self.server_closed = None;
        self.client_closed = None;
        if let Some(key) = &self.key {
            self.client.set_key(key.clone());
        }
        if let Some(session) = self.session.as_mut() {
            session.handle_new_connection();
        }
    }

    /// Moves bytes both ways and handles what they bring until nothing moves (at most
    /// `rounds` times).
    pub fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.client_output();
            let up = self.carry_up();
            self.server_events();
            self.server_output();
            let down = self.carry_down();
            self.client_events();
            if !up && !down {
                return;
            }
        }
    }

    /// The session's messages, sealed onto the client's stream.
    fn client_output(&mut self) {
        let now = self.now();
        let Some(session) = self.session.as_mut() else {
            return;
        };
        while let Some(header) = session.poll_transmit(now, &mut self.scratch) {
            self.client
                .send_message(&header, &mut self.scratch, false, &mut self.rng);
        }
    }

    /// The endpoint's messages for this connection, sealed onto the server's stream.
    fn server_output(&mut self) {
        let now = self.now();
        while let Some((key, header)) =
            self.endpoint
                .poll_transmit(self.connection, now, &mut self.scratch)
        {
            self.server
                .send_message(&key, &header, &mut self.scratch, &mut self.rng);
        }
    }

    /// A random piece length for a write of `left` bytes.
    fn piece(&mut self, left: usize) -> usize {
        let max = self.max_write.clamp(1, left.max(1));
        let roll = usize::try_from(self.rng.next_u32()).unwrap_or(0);
        1 + roll % max
    }

    /// Client to server, piece by piece, while the server reads. Whether anything moved.
    fn carry_up(&mut self) -> bool {
        let mut moved = false;
        while !self.client.outgoing().is_empty() && self.server.wants_input() {
            let len = self.piece(self.client.outgoing().len());
            let piece = self.client.outgoing()[..len].to_vec();
            self.client.advance_outgoing(len);
            self.writes_up += 1;
            moved = true;
            let now = self.now();
            self.server.handle_bytes(&piece, now, &mut self.rng);
            // The server's events are answered before it reads on, as in the runtime.
            self.server_events();
        }
        moved
    }

    /// Server to client, piece by piece. Whether anything moved.
    fn carry_down(&mut self) -> bool {
        let mut moved = false;
        while !self.server.outgoing().is_empty() && !self.client.is_closed() {
            let len = self.piece(self.server.outgoing().len());
            let piece = self.server.outgoing()[..len].to_vec();
            self.server.advance_outgoing(len);
            self.writes_down += 1;
            moved = true;
            let now = self.now();
            self.client.handle_bytes(&piece, now, &mut self.rng);
            self.client_events();
        }
        moved
    }

    /// Answers what the server's connection and endpoint ask, as the runtime does.
    fn server_events(&mut self) {
        loop {
            let now = self.now();
            if let Some(event) = self.server.poll_event() {
                self.server_event(event, now);
                continue;
            }
            let Some(event) = self.endpoint.poll_event() else {
                return;
            };
            match event {
                EndpointEvent::Request {
                    context,
                    msg_id,
                    body,
                } => {
                    if self.echo {
                        self.endpoint
                            .answer(context.session, msg_id, Ok(body.clone()), now);
                    }
                    self.requests.push((context, body));
                }
                EndpointEvent::Close { error, .. } => self.server.close(error),
                EndpointEvent::DestroyKey { session } => {
                    let removed = self.keys.remove(session.auth_key_id).unwrap_or(false);
                    self.endpoint.key_destroyed(session, removed);
                }
                // Nothing to stop: the echo answers at once.
                EndpointEvent::Cancelled { .. } => {}
            }
        }
    }

    fn server_event(&mut self, event: ConnectionEvent, now: Now) {
        match event {
            ConnectionEvent::CheckAuthKeyId(id) => {
                let in_use = self.keys.contains(id).unwrap_or(true);
                self.server.confirm_auth_key_id(in_use, now, &mut self.rng);
            }
            ConnectionEvent::KeyCreated {
                record,
                server_salt,
            } => {
                let id = record.auth_key_id;
                let stored = self.keys.insert(*record).is_ok();
                if stored {
                    self.endpoint.note_first_salt(id, server_salt, now);
                }
                self.server.key_stored(stored, now, &mut self.rng);
            }
            ConnectionEvent::KeyNeeded(id) => {
                let key = self.lookup(id, now);
                self.server.provide_key(key.as_deref(), now, &mut self.rng);
            }
            ConnectionEvent::Message(message) => {
                self.endpoint.handle_message(
                    self.connection,
                    message.auth_key_id,
                    &message.header,
                    &message.body,
                    now,
                    &mut self.rng,
                );
            }
            ConnectionEvent::Closed(reason) => {
                self.endpoint.connection_closed(self.connection);
                self.server_closed = Some(reason);
            }
        }
    }

    /// The key of a frame: cached, or read from the store and cached.
    fn lookup(&mut self, id: i64, now: Now) -> Option<Arc<AuthKey>> {
        let mut lookup = self.endpoint.lookup_key(id, now);
        for _ in 0..MAX_KEY_LOADS {
            match lookup {
                KeyLookup::Ready(key) => return Some(key),
                KeyLookup::Refused => return None,
                KeyLookup::Missing { generation } => {
                    let entry = load_key(self.keys.as_ref(), id, now.unix_secs()).ok()??;
                    lookup = self.endpoint.insert_key(id, entry, generation, now);
                }
            }
        }
        None
    }

    /// Handles what the client's connection and session say.
    fn client_events(&mut self) {
        let now = self.now();
        while let Some(event) = self.client.poll_event() {
            match event {
                ClientConnectionEvent::KeyCreated(made) => {
                    let key = Arc::new(made.auth_key);
                    self.client.set_key(key.clone());
                    self.key = Some(key);
                    let session_id = i64::from_le_bytes(self.rng.next_u64().to_le_bytes());
                    self.session = Some(ClientSession::new(
                        session_id,
                        made.server_salt,
                        Some(made.time_offset),
                        self.session_config.clone(),
                    ));
                }
                ClientConnectionEvent::Message(message) => {
                    if let Some(session) = self.session.as_mut() {
                        session.handle_message(&message.header, &message.body, now);
                    }
                }
                ClientConnectionEvent::QuickAck(token) => self.quick_acks.push(token),
                ClientConnectionEvent::Closed(reason) => self.client_closed = Some(reason),
            }
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        while let Some(event) = session.poll_event() {
            match event {
                ClientEvent::Response { id, outcome } => self.responses.push((id, outcome)),
                other => self.client_events.push(other),
            }
        }
    }
}

#[cfg(test)]
mod tests;
