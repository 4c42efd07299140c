//! The client side of one connection, sans-IO: the MTProto transport (framing, obfuscation),
//! key exchanges, and sealing and opening encrypted messages with the connection's key.
//!
//! The same shape as [`super::ServerConnection`]: bytes and time in
//! ([`ClientConnection::handle_input`]), events ([`ClientConnection::poll_event`]) and bytes
//! to write ([`ClientConnection::outgoing`]) out. The session ([`crate::ClientSession`]) is
//! not here: it outlives connections (a reconnect keeps it), so the driver hands opened
//! messages to it and seals its output with [`ClientConnection::send_message`].

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use columba_mtproto::crypto::{AuthKey, Direction};
use columba_mtproto::handshake::{self, ClientHandshake, ClientKey, HandshakeError};
use columba_mtproto::message::EncryptedHeader;
use columba_mtproto::time::Now;
use columba_mtproto::transport::{self, Frame, Transport, TransportError};
use rand_core::{CryptoRng, RngCore};

use super::{IncomingMessage, envelope};

/// What the client's driver acts on.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientConnectionEvent {
    /// The key exchange started with [`ClientConnection::start_key_exchange`] made a key.
    /// Messages are opened and sealed with the key given to [`ClientConnection::set_key`].
    KeyCreated(Box<ClientKey>),
    /// An encrypted message from the server, opened and authenticated.
    Message(IncomingMessage),
    /// The server acknowledged receipt of a message that asked for a quick ack.
    QuickAck(u32),
    /// The connection is over (write what is left, then close the stream).
    Closed(ClientCloseReason),
}

/// Why a client connection closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientCloseReason {
    /// The server broke the framing.
    #[error("framing: {0}")]
    Framing(#[from] TransportError),
    /// The server sent a transport error: -404 (it does not know the key: make a new one),
    /// -429 (too many connections or requests), -444 (wrong DC).
    #[error("transport error {0}")]
    TransportError(i32),
    /// The key exchange failed.
    #[error("key exchange failed: {0}")]
    KeyExchange(#[source] HandshakeError),
    /// An encrypted message came while the connection has no key, or under another key.
    #[error("message under an unknown key")]
    UnexpectedKey,
    /// An encrypted message did not authenticate. The guidelines advise reconnecting.
    #[error("message rejected")]
    Rejected,
    /// An unencrypted message came with no key exchange running.
    #[error("unexpected unencrypted message")]
    UnexpectedPlain,
    /// The driver closed it.
    #[error("closed by the client")]
    Local,
}

/// The client side of one connection.
pub struct ClientConnection {
    transport: Transport,
    handshake: Option<ClientHandshake>,
    key: Option<Arc<AuthKey>>,
    input: BytesMut,
    output: BytesMut,
    closed: bool,
    events: VecDeque<ClientConnectionEvent>,
}

impl std::fmt::Debug for ClientConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnection")
            .field("framing", &self.transport.framing())
            .field("closed", &self.closed)
            .field("outgoing", &self.output.len())
            .finish_non_exhaustive()
    }
}

impl ClientConnection {
    /// A connection in `config`'s framing (the obfuscation header, if any, goes out with the
    /// first bytes).
    pub fn new<R: RngCore + ?Sized>(config: transport::ClientConfig, rng: &mut R) -> Self {
        Self {
            transport: Transport::client(config, rng),
            handshake: None,
            key: None,
            input: BytesMut::with_capacity(16 * 1024),
            output: BytesMut::with_capacity(4096),
            closed: false,
            events: VecDeque::new(),
        }
    }

    /// Starts a key exchange; [`ClientConnectionEvent::KeyCreated`] comes when it is done.
    /// One at a time: a second call restarts it.
    pub fn start_key_exchange<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        config: handshake::ClientConfig,
        now: Now,
        rng: &mut R,
    ) {
        let (machine, first) = ClientHandshake::start(config, now, rng);
        self.handshake = Some(machine);
        self.send_payload(&first);
    }

    /// The key encrypted messages are sealed and opened with from now on.
    pub fn set_key(&mut self, key: Arc<AuthKey>) {
        self.key = Some(key);
    }

    /// The buffer the driver reads the stream into (then it calls [`Self::handle_input`]).
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// `bytes` came from the server: [`Self::input_buffer`] and [`Self::handle_input`] in one.
    pub fn handle_bytes<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        bytes: &[u8],
        now: Now,
        rng: &mut R,
    ) {
        if self.closed {
            return;
        }
        self.input.extend_from_slice(bytes);
        self.handle_input(now, rng);
    }

    /// Handles what the input buffer holds.
    pub fn handle_input<R: RngCore + CryptoRng + ?Sized>(&mut self, now: Now, rng: &mut R) {
        while !self.closed {
            let frame = match self.transport.decode(&mut self.input) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(error) => {
                    self.end(ClientCloseReason::Framing(error));
                    return;
                }
            };
            match frame {
                Frame::Payload { data, .. } => self.handle_payload(data, now, rng),
                Frame::QuickAck(token) => {
                    self.events
                        .push_back(ClientConnectionEvent::QuickAck(token));
                }
                Frame::TransportError(code) => {
                    self.end(ClientCloseReason::TransportError(code));
                }
            }
        }
    }

    /// Seals a message the session wrote into `message` (headroom, then body) with the
    /// connection's key and queues it for writing. `false` if there is no key, or it could
    /// not be sealed or framed (nothing is queued then).
    pub fn send_message<R: RngCore + ?Sized>(
        &mut self,
        header: &EncryptedHeader,
        message: &mut BytesMut,
        quick_ack: bool,
        rng: &mut R,
    ) -> bool {
        let Some(key) = self.key.as_deref() else {
            return false;
        };
        !self.closed
            && envelope::seal(
                &mut self.transport,
                &mut self.output,
                key,
                Direction::ClientToServer,
                header,
                message,
                quick_ack,
                rng,
            )
    }

    /// Closes the connection from the client's side.
    pub fn close(&mut self) {
        if !self.closed {
            self.end(ClientCloseReason::Local);
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientConnectionEvent> {
        self.events.pop_front()
    }

    /// The bytes waiting to be written to the stream.
    pub fn outgoing(&self) -> &[u8] {
        &self.output
    }

    /// `written` bytes of [`Self::outgoing`] went out.
    pub fn advance_outgoing(&mut self, written: usize) {
        let written = written.min(self.output.len());
        bytes::Buf::advance(&mut self.output, written);
    }

    /// Whether a key exchange is running.
    pub fn is_exchanging_keys(&self) -> bool {
        self.handshake.is_some()
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn handle_payload<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        data: BytesMut,
        now: Now,
        rng: &mut R,
    ) {
        let auth_key_id = data
            .first_chunk::<8>()
            .map_or(0, |id| i64::from_le_bytes(*id));
        if auth_key_id == 0 {
            let Some(machine) = self.handshake.as_mut() else {
                self.end(ClientCloseReason::UnexpectedPlain);
                return;
            };
            match machine.handle(&data, now, rng) {
                Ok(handshake::ClientEvent::Send(message)) => self.send_payload(&message),
                Ok(handshake::ClientEvent::Done(key)) => {
                    self.handshake = None;
                    self.events
                        .push_back(ClientConnectionEvent::KeyCreated(key));
                }
                Err(error) => {
                    self.handshake = None;
                    self.end(ClientCloseReason::KeyExchange(error));
                }
            }
            return;
        }
        let Some(key) = self.key.as_deref().filter(|key| key.id() == auth_key_id) else {
            self.end(ClientCloseReason::UnexpectedKey);
            return;
        };
        let Some(opened) = envelope::open(data, key, Direction::ServerToClient) else {
            self.end(ClientCloseReason::Rejected);
            return;
        };
        self.events
            .push_back(ClientConnectionEvent::Message(IncomingMessage {
                auth_key_id,
                header: opened.header,
                body: opened.body,
            }));
    }

    fn send_payload(&mut self, payload: &[u8]) {
        envelope::send_plain(&mut self.transport, &mut self.output, payload);
    }

    fn end(&mut self, reason: ClientCloseReason) {
        self.closed = true;
        self.input.clear();
        self.events.push_back(ClientConnectionEvent::Closed(reason));
    }
}
