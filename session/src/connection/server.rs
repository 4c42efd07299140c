//! The server side of one connection, sans-IO: the MTProto transport (framing detection,
//! obfuscation), the key exchanges, quick acks, and opening and sealing encrypted messages.
//!
//! In the shape of quinn-proto's `Connection`: bytes and time in ([`ServerConnection::handle_input`]),
//! events ([`ServerConnection::poll_event`]) and bytes to write
//! ([`ServerConnection::outgoing`]) out. What needs the outside world is an event the driver
//! answers before the connection reads on: whether a new key's id is taken
//! ([`ConnectionEvent::CheckAuthKeyId`]), storing a new key ([`ConnectionEvent::KeyCreated`]),
//! the key of an encrypted frame ([`ConnectionEvent::KeyNeeded`]). Sessions are not here: an
//! opened message ([`ConnectionEvent::Message`]) goes to the [`crate::Endpoint`], whose answers
//! the driver seals with [`ServerConnection::send_message`].
//!
//! Security: any failure of an encrypted frame before or at its msg_key check is one outcome,
//! [`CloseReason::Rejected`], with nothing sent (R2 and R4 in `reference/security.md`).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use columba_mtproto::crypto::{AuthKey, Direction};
use columba_mtproto::handshake::{self, HandshakeError, ServerHandshake};
use columba_mtproto::message::EncryptedHeader;
use columba_mtproto::time::Now;
use columba_mtproto::transport::{
    self, ERROR_AUTH_KEY_NOT_FOUND, Frame, Framing, Outgoing, Transport, TransportError,
};
use columba_store::auth_key::AuthKeyRecord;
use rand_core::{CryptoRng, RngCore};

use super::envelope;

/// An encrypted message, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncomingMessage {
    /// The key it was encrypted with.
    pub auth_key_id: i64,
    /// Its header (salt, session, msg_id, seq_no).
    pub header: EncryptedHeader,
    /// The TL object it carries, cut from the frame without copying.
    pub body: Bytes,
}

/// What the driver acts on.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A key exchange computed a key: say whether its id is already in use (in the key
    /// store) with [`ServerConnection::confirm_auth_key_id`]. Nothing more is read until then.
    CheckAuthKeyId(i64),
    /// A key exchange made a key: store `record`, then call
    /// [`ServerConnection::key_stored`], which sends the client its `dh_gen_ok` (so that a
    /// client never uses a key the server could lose). Nothing more is read until then.
    KeyCreated {
        /// The record to store (no user yet).
        record: Box<AuthKeyRecord>,
        /// The first server salt the client was given, which the key's sessions should
        /// accept at once ([`crate::Endpoint::note_first_salt`]).
        server_salt: i64,
    },
    /// An encrypted frame came with this key: give the key with
    /// [`ServerConnection::provide_key`] (`None` for a key that is unknown or refused). Nothing
    /// more is read until then.
    KeyNeeded(i64),
    /// An encrypted message, opened and authenticated: hand it to the endpoint.
    Message(IncomingMessage),
    /// The connection is over: write what [`ServerConnection::outgoing`] still holds (a
    /// transport error, a last handshake reply), then close the stream.
    Closed(CloseReason),
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer broke the framing (nothing is sent back).
    #[error("framing: {0}")]
    Framing(#[from] TransportError),
    /// A frame too short to hold an auth_key_id.
    #[error("frame too short")]
    TooShort,
    /// A key exchange message was malformed or out of order (the peer got a transport error).
    #[error("bad key exchange message: {0}")]
    BadKeyExchange(#[source] HandshakeError),
    /// A key exchange ended with `dh_gen_fail`.
    #[error("key exchange failed")]
    KeyExchangeFailed,
    /// The server could not store a new key (its own fault; the client retries).
    #[error("new key not stored")]
    KeyNotStored,
    /// A frame came with a key the server does not have or refuses (the peer got -404).
    #[error("unknown auth key")]
    UnknownKey,
    /// An encrypted frame did not authenticate.
    #[error("message rejected")]
    Rejected,
    /// The driver closed it ([`ServerConnection::close`]).
    #[error("closed by the server")]
    Local,
}

impl CloseReason {
    /// Whether the peer is at fault (as opposed to the server or its operator).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, Self::KeyNotStored | Self::Local)
    }
}

/// What the connection waits for before it reads on.
#[derive(Debug)]
enum Wait {
    /// Nothing: input is read.
    Nothing,
    /// [`ServerConnection::confirm_auth_key_id`].
    KeyIdCheck,
    /// [`ServerConnection::key_stored`], then this `dh_gen_ok` goes out.
    KeyStored(Vec<u8>),
    /// [`ServerConnection::provide_key`] for this frame.
    Key {
        auth_key_id: i64,
        frame: BytesMut,
        quick_ack: bool,
    },
    /// Closed: nothing more happens.
    Closed,
}

/// The server side of one connection.
pub struct ServerConnection {
    transport: Transport,
    handshake_config: Arc<handshake::ServerConfig>,
    handshake: Option<ServerHandshake>,
    input: BytesMut,
    output: BytesMut,
    wait: Wait,
    established: bool,
    /// Set by [`ServerConnection::refuse`]: the transport error sent as soon as the framing
    /// is known.
    refusal: Option<i32>,
    events: VecDeque<ConnectionEvent>,
}

impl std::fmt::Debug for ServerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConnection")
            .field("framing", &self.transport.framing())
            .field("established", &self.established)
            .field("outgoing", &self.output.len())
            .finish_non_exhaustive()
    }
}

impl ServerConnection {
    /// A connection whose framing is detected from its first bytes, with these framing
    /// limits and key-exchange configuration.
    pub fn new<R: RngCore + ?Sized>(
        transport: transport::Config,
        handshake: Arc<handshake::ServerConfig>,
        rng: &mut R,
    ) -> Self {
        Self {
            transport: Transport::server(transport, rng),
            handshake_config: handshake,
            handshake: None,
            input: BytesMut::with_capacity(16 * 1024),
            output: BytesMut::with_capacity(16 * 1024),
            wait: Wait::Nothing,
            established: false,
            refusal: None,
            events: VecDeque::new(),
        }
    }

    /// The buffer the driver reads the stream into (then it calls [`Self::handle_input`]),
    /// so that bytes are not copied on their way in. Frames are cut from it as they complete;
    /// its growth is bounded by the largest frame the transport accepts, as long as the
    /// driver reads only while [`Self::wants_input`].
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// `bytes` came from the peer: [`Self::input_buffer`] and [`Self::handle_input`] in one.
    pub fn handle_bytes<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        bytes: &[u8],
        now: Now,
        rng: &mut R,
    ) {
        // Nothing is kept once closed; while an event waits for its answer, input is kept
        // (the driver bounds it by reading only while `wants_input`).
        if self.is_closed() {
            return;
        }
        self.input.extend_from_slice(bytes);
        self.handle_input(now, rng);
    }

    /// Handles what the input buffer holds, as far as it can without an answer from the
    /// driver: events and bytes to write come out.
    pub fn handle_input<R: RngCore + CryptoRng + ?Sized>(&mut self, now: Now, rng: &mut R) {
        while matches!(self.wait, Wait::Nothing) {
            let decoded = self.transport.decode(&mut self.input);
            if let Some(code) = self.refusal {
                if decoded.is_err() {
                    self.end(CloseReason::Local);
                } else if self.transport.framing().is_some() {
                    self.close(Some(code));
                }
                return;
            }
            let frame = match decoded {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(error) => {
                    self.end(CloseReason::Framing(error));
                    return;
                }
            };
            let Frame::Payload { data, quick_ack } = frame else {
                // Quick acks and transport errors only travel to clients.
                continue;
            };
            let Some(auth_key_id) = data.first_chunk::<8>().map(|id| i64::from_le_bytes(*id))
            else {
                self.end(CloseReason::TooShort);
                return;
            };
            if auth_key_id == 0 {
                self.handle_plain(&data, now, rng);
            } else {
                self.wait = Wait::Key {
                    auth_key_id,
                    frame: data,
                    quick_ack,
                };
                self.events
                    .push_back(ConnectionEvent::KeyNeeded(auth_key_id));
            }
        }
    }

    /// Answers [`ConnectionEvent::CheckAuthKeyId`], then reads on.
    pub fn confirm_auth_key_id<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        in_use: bool,
        now: Now,
        rng: &mut R,
    ) {
        if !matches!(self.wait, Wait::KeyIdCheck) {
            return;
        }
        self.wait = Wait::Nothing;
        let Some(handshake) = self.handshake.as_mut() else {
            return;
        };
        let event = handshake.confirm_auth_key_id(in_use, now);
        self.handle_handshake_event(event);
        self.handle_input(now, rng);
    }

    /// Answers [`ConnectionEvent::KeyCreated`]: whether the key is stored. Stored, the
    /// client gets its `dh_gen_ok` and the connection reads on; not stored, it closes
    /// ([`CloseReason::KeyNotStored`]) and the client makes another key elsewhen.
    pub fn key_stored<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        stored: bool,
        now: Now,
        rng: &mut R,
    ) {
        let Wait::KeyStored(reply) = std::mem::replace(&mut self.wait, Wait::Nothing) else {
            return;
        };
        if !stored {
            self.end(CloseReason::KeyNotStored);
            return;
        }
        self.established = true;
        self.send_payload(&reply);
        self.handle_input(now, rng);
    }

    /// Answers [`ConnectionEvent::KeyNeeded`] with the key (`None`: unknown or refused, and
    /// the client gets -404), then reads on.
    pub fn provide_key<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        key: Option<&AuthKey>,
        now: Now,
        rng: &mut R,
    ) {
        let Wait::Key {
            auth_key_id,
            frame,
            quick_ack,
        } = std::mem::replace(&mut self.wait, Wait::Nothing)
        else {
            return;
        };
        let Some(key) = key else {
            self.send_transport_error(ERROR_AUTH_KEY_NOT_FOUND);
            self.end(CloseReason::UnknownKey);
            return;
        };
        let Some(opened) = envelope::open(frame, key, Direction::ClientToServer) else {
            self.end(CloseReason::Rejected);
            return;
        };
        self.established = true;
        if quick_ack {
            // Only a framing that has quick acks sets the flag, so this cannot fail; the
            // message goes on either way.
            let _ = self
                .transport
                .encode(Outgoing::QuickAck(opened.quick_ack_token), &mut self.output);
        }
        self.events
            .push_back(ConnectionEvent::Message(IncomingMessage {
                auth_key_id,
                header: opened.header,
                body: opened.body,
            }));
        self.handle_input(now, rng);
    }

    /// Seals a message the endpoint wrote into `message` (headroom, then body, as
    /// [`crate::Endpoint::poll_transmit`] leaves it) with `key` and queues it for writing.
    /// `false` if it could not be sealed or framed (nothing is queued then).
    pub fn send_message<R: RngCore + ?Sized>(
        &mut self,
        key: &AuthKey,
        header: &EncryptedHeader,
        message: &mut BytesMut,
        rng: &mut R,
    ) -> bool {
        !matches!(self.wait, Wait::Closed)
            && envelope::seal(
                &mut self.transport,
                &mut self.output,
                key,
                Direction::ServerToClient,
                header,
                message,
                false,
                rng,
            )
    }

    /// Closes the connection from the server's side, with a transport error first if one
    /// is given (-429 for a flood). What is queued still goes out.
    pub fn close(&mut self, error: Option<i32>) {
        if matches!(self.wait, Wait::Closed) {
            return;
        }
        if let Some(code) = error {
            self.send_transport_error(code);
        }
        self.end(CloseReason::Local);
    }

    /// Refuses the connection (over a limit): no frame is handled; as soon as the client's
    /// first bytes show its framing (which a transport error must be sent in), `code` goes out
    /// and the connection closes. Call it before any input.
    pub fn refuse(&mut self, code: i32) {
        self.refusal = Some(code);
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ConnectionEvent> {
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

    /// Whether the connection reads input now: not while it waits for the driver's answer
    /// to an event, and not once closed.
    pub fn wants_input(&self) -> bool {
        matches!(self.wait, Wait::Nothing)
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.wait, Wait::Closed)
    }

    /// Whether the peer has made a key or sent an authentic encrypted message: the driver's
    /// deadline for the first key ends there.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The framing the peer chose, once its first bytes came.
    pub fn framing(&self) -> Option<Framing> {
        self.transport.framing()
    }

    fn handle_plain<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        data: &[u8],
        now: Now,
        rng: &mut R,
    ) {
        let config = &self.handshake_config;
        let handshake = self
            .handshake
            .get_or_insert_with(|| ServerHandshake::new(config.clone()));
        let event = handshake.handle(data, now, rng);
        self.handle_handshake_event(event);
    }

    fn handle_handshake_event(&mut self, event: Result<handshake::ServerEvent, HandshakeError>) {
        match event {
            Ok(handshake::ServerEvent::Reply(reply)) => self.send_payload(&reply),
            Ok(handshake::ServerEvent::Failed(reply)) => {
                self.send_payload(&reply);
                self.end(CloseReason::KeyExchangeFailed);
            }
            Ok(handshake::ServerEvent::CheckAuthKeyId(id)) => {
                self.wait = Wait::KeyIdCheck;
                self.events.push_back(ConnectionEvent::CheckAuthKeyId(id));
            }
            Ok(handshake::ServerEvent::Done { reply, key }) => {
                self.wait = Wait::KeyStored(reply);
                self.events.push_back(ConnectionEvent::KeyCreated {
                    record: Box::new(crate::endpoint::key_record(&key)),
                    server_salt: key.server_salt,
                });
            }
            Err(error) => {
                self.send_transport_error(error.transport_error());
                self.end(CloseReason::BadKeyExchange(error));
            }
        }
    }

    fn send_payload(&mut self, payload: &[u8]) {
        envelope::send_plain(&mut self.transport, &mut self.output, payload);
    }

    fn send_transport_error(&mut self, code: i32) {
        let _ = self
            .transport
            .encode(Outgoing::TransportError(code), &mut self.output);
    }

    fn end(&mut self, reason: CloseReason) {
        self.wait = Wait::Closed;
        self.input.clear();
        self.events.push_back(ConnectionEvent::Closed(reason));
    }
}
