//! Deterministic in-memory harnesses, everything random from one seed and time simulated:
//!
//! - [`Pair`]: one [`ClientSession`] and one [`ServerSession`] joined by two queues of
//!   sealed frames, with faults (loss, duplication, reordering, a frame-size limit) that a
//!   byte stream cannot have but sessions must survive (a frame lost with its connection, a
//!   re-send that crosses the answer). Frames are really encrypted and opened with the key.
//! - [`Wire`]: the runtime's types without its sockets: a [`crate::ClientConnection`] with a
//!   session on top, joined by one byte stream (every write cut into pieces of random
//!   length) to a [`crate::ServerConnection`] in front of an [`crate::Endpoint`] and a key
//!   store, with keys made by a real key exchange over the stream.
//!
//! Enabled by the `testing` feature (also used by the fuzz target and the `compare`
//! benchmark). Not a stable API.
#![allow(
    clippy::indexing_slicing,
    missing_docs,
    reason = "a test harness: its own invariants, documented by the tests that use it"
)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use columba_mtproto::crypto::{AuthKey, Direction};
use columba_mtproto::message::{EncryptedHeader, Padding, open, seal};
use columba_mtproto::time::Now;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::client::{ClientEvent, ClientSession};
use crate::config::SessionConfig;
use crate::salt::SaltSource;
use crate::server::{ServerEvent, ServerSession};

mod wire;
pub use wire::Wire;

/// What goes wrong on the way.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Faults {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame arrives twice.
    pub duplicate: f64,
    /// Probability that a frame is delivered after the next one.
    pub reorder: f64,
    /// Frames longer than this are dropped (a transport's max frame).
    pub max_frame: Option<usize>,
}

/// A client and a server session over simulated links.
pub struct Pair {
    pub client: ClientSession,
    pub server: ServerSession,
    pub key: AuthKey,
    pub salts: Arc<SaltSource>,
    /// Faults on frames from the client to the server.
    pub upstream: Faults,
    /// Faults on frames from the server to the client.
    pub downstream: Faults,
    /// The client's clock minus the server's, in seconds.
    pub client_skew: i64,
    /// Every server event seen, in order.
    pub server_events: Vec<ServerEvent>,
    /// Every client event seen, in order.
    pub client_events: Vec<ClientEvent>,
    /// Answer requests on the server by echoing their body (when true).
    pub echo: bool,
    /// Frames sent in each direction (after faults), for benchmarks.
    pub frames_up: usize,
    pub frames_down: usize,
    start: Instant,
    elapsed: Duration,
    unix_base: Duration,
    to_server: VecDeque<Vec<u8>>,
    to_client: VecDeque<Vec<u8>>,
    rng: ChaCha20Rng,
    buf: BytesMut,
}

impl Pair {
    /// A pair with a fresh key, default configs, and no faults.
    pub fn new(seed: u64) -> Self {
        Self::with_configs(seed, SessionConfig::default(), SessionConfig::default())
    }

    /// A pair with the given configs.
    pub fn with_configs(seed: u64, client: SessionConfig, server: SessionConfig) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut key = [0u8; 256];
        rng.fill_bytes(&mut key);
        let key = AuthKey::from_bytes(key);
        let salts = Arc::new(SaltSource::generate(&mut rng));
        let unix_base = Duration::from_secs(1_800_000_000);
        let now_secs = i64::try_from(unix_base.as_secs()).unwrap_or(i64::MAX);
        let salt = salts.current(key.id(), now_secs).salt;
        let session_id = i64::from_le_bytes(rng.next_u64().to_le_bytes());
        let client = ClientSession::new(session_id, salt, Some(0), Arc::new(client));
        let server = ServerSession::new(
            key.id(),
            session_id,
            i64::from_le_bytes(rng.next_u64().to_le_bytes()),
            Arc::new(server),
            salts.clone(),
        );
        Self {
            client,
            server,
            key,
            salts,
            upstream: Faults::default(),
            downstream: Faults::default(),
            client_skew: 0,
            server_events: Vec::new(),
            client_events: Vec::new(),
            echo: true,
            frames_up: 0,
            frames_down: 0,
            start: Instant::now(),
            elapsed: Duration::ZERO,
            unix_base,
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            rng,
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// The server's clock now.
    pub fn server_now(&self) -> Now {
        Now {
            monotonic: self.start + self.elapsed,
            unix: self.unix_base + self.elapsed,
        }
    }

    /// The client's clock now (the server's, skewed).
    pub fn client_now(&self) -> Now {
        let server = self.server_now();
        let skew = Duration::from_secs(self.client_skew.unsigned_abs());
        Now {
            monotonic: server.monotonic,
            unix: if self.client_skew >= 0 {
                server.unix + skew
            } else {
                server.unix.saturating_sub(skew)
            },
        }
    }

    /// Moves the clock and runs both sides' timers.
    pub fn advance(&mut self, by: Duration) {
        self.elapsed += by;
        let (client_now, server_now) = (self.client_now(), self.server_now());
        self.client.handle_timeout(client_now);
        self.server.handle_timeout(server_now);
        self.collect_events();
    }

    /// Seals everything both sides have to send and puts it on the links.
    pub fn flush(&mut self) {
        let now = self.client_now();
        while let Some(header) = self.client.poll_transmit(now, &mut self.buf) {
            let faults = self.upstream;
            self.send(&header, Direction::ClientToServer, faults);
        }
        let now = self.server_now();
        while let Some(header) = self.server.poll_transmit(now, &mut self.buf) {
            let faults = self.downstream;
            self.send(&header, Direction::ServerToClient, faults);
        }
    }

    /// Seals the message in `buf` and puts it on the link of `direction`.
    fn send(&mut self, header: &EncryptedHeader, direction: Direction, faults: Faults) {
        let sealed = seal(
            &mut self.buf,
            &self.key,
            direction,
            header,
            Padding::Minimal,
            &mut self.rng,
        );
        if sealed.is_err() {
            return;
        }
        let link = match direction {
            Direction::ClientToServer => &mut self.to_server,
            Direction::ServerToClient => &mut self.to_client,
        };
        Self::transmit(&mut self.rng, link, self.buf.to_vec(), faults);
    }

    fn transmit(
        rng: &mut ChaCha20Rng,
        link: &mut VecDeque<Vec<u8>>,
        frame: Vec<u8>,
        faults: Faults,
    ) {
        let mut roll = || f64::from(rng.next_u32()) / f64::from(u32::MAX);
        if faults.max_frame.is_some_and(|max| frame.len() > max) || roll() < faults.loss {
            return;
        }
        let duplicate = roll() < faults.duplicate;
        let reorder = roll() < faults.reorder;
        if reorder && !link.is_empty() {
            let last = link.len() - 1;
            link.insert(last, frame.clone());
        } else {
            link.push_back(frame.clone());
        }
        if duplicate {
            link.push_back(frame);
        }
    }

    /// Delivers every frame on the links (opening them with the key), answers requests when
    /// [`Self::echo`] is set, and collects events.
    pub fn deliver(&mut self) {
        while let Some(mut frame) = self.to_server.pop_front() {
            self.frames_up += 1;
            let now = self.server_now();
            if let Ok(opened) = open(&mut frame, &self.key, Direction::ClientToServer) {
                self.server.handle_message(&opened.header, opened.body, now);
            }
        }
        while let Some(mut frame) = self.to_client.pop_front() {
            self.frames_down += 1;
            let now = self.client_now();
            if let Ok(opened) = open(&mut frame, &self.key, Direction::ServerToClient) {
                self.client.handle_message(&opened.header, opened.body, now);
            }
        }
        self.collect_events();
    }

    fn collect_events(&mut self) {
        while let Some(event) = self.server.poll_event() {
            if self.echo {
                if let ServerEvent::Request { msg_id, body } = &event {
                    let now = self.server_now();
                    self.server.answer(*msg_id, Ok(body.clone()), now);
                }
            }
            self.server_events.push(event);
        }
        while let Some(event) = self.client.poll_event() {
            self.client_events.push(event);
        }
    }

    /// Flushes and delivers until both links are empty and nothing is queued (at most
    /// `rounds` times).
    pub fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.flush();
            if self.to_server.is_empty() && self.to_client.is_empty() {
                return;
            }
            self.deliver();
        }
    }

    /// A new connection: frames in flight are lost, and both sides re-send what is
    /// unacknowledged.
    pub fn reconnect(&mut self) {
        self.to_server.clear();
        self.to_client.clear();
        self.client.handle_new_connection();
        self.server.handle_new_connection();
    }

    /// Frames waiting on the links (to the server, to the client).
    pub fn in_flight(&self) -> (usize, usize) {
        (self.to_server.len(), self.to_client.len())
    }

    /// Takes the frames waiting for the server (to replay, reorder or drop them by hand).
    pub fn take_upstream(&mut self) -> Vec<Vec<u8>> {
        self.to_server.drain(..).collect()
    }

    /// Puts frames on the link to the server.
    pub fn inject_upstream(&mut self, frames: impl IntoIterator<Item = Vec<u8>>) {
        self.to_server.extend(frames);
    }

    /// Responses received so far, by request.
    pub fn responses(&self) -> Vec<(crate::client::RequestId, crate::rpc::RpcOutcome)> {
        self.client_events
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Response { id, outcome } => Some((*id, outcome.clone())),
                _ => None,
            })
            .collect()
    }

    /// Invokes `body` on the client.
    pub fn invoke(
        &mut self,
        body: &[u8],
    ) -> Result<crate::client::RequestId, crate::client::InvokeError> {
        self.client.invoke(Bytes::copy_from_slice(body))
    }
}
