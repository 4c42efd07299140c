//! Suite `session`: encrypted RPC round trips through a client and a server session in
//! memory, against the bare cryptography of the same envelopes.
//!
//! Ours: the client invokes a 128-byte query; its message is sealed, opened by the server,
//! checked and routed by the server session, answered (`rpc_result` with the 128 bytes),
//! sealed, opened and matched to its request by the client session. Acks ride along as the
//! sessions decide (the client acknowledges every 16 answers, piggybacked on a request).
//!
//! Peer (`envelopes_only`): sealing and opening a 128-byte request and a 140-byte answer
//! (the `rpc_result` around 128 bytes) with the same key and our own crypto, and nothing
//! else: the ratio is what the session layer costs on top of the cryptography.

use std::hint::black_box;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use columba_mtproto::crypto::{AuthKey, Direction};
use columba_mtproto::message::{ENCRYPTED_HEADROOM, EncryptedHeader, Padding, open, seal};
use columba_session::SaltSource;
use columba_session::{ClientEvent, ClientSession, ServerEvent, ServerSession, SessionConfig};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::{Side, compare, now};

/// A client and a server session with everything one round trip needs.
struct Loop {
    client: ClientSession,
    server: ServerSession,
    key: AuthKey,
    rng: ChaCha20Rng,
    buf: BytesMut,
    query: Bytes,
}

impl Loop {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut bytes = [0u8; 256];
        rng.fill_bytes(&mut bytes);
        let key = AuthKey::from_bytes(bytes);
        let salts = Arc::new(SaltSource::generate(&mut rng));
        let config = Arc::new(SessionConfig::default());
        let salt = salts.current(key.id(), now().unix_secs()).salt;
        let session_id = 0x5e55_1011;
        let client = ClientSession::new(session_id, salt, Some(0), config.clone());
        let server = ServerSession::new(key.id(), session_id, 7, config, salts);
        let mut query = 0x1234_5678u32.to_le_bytes().to_vec();
        query.resize(128, 0x5a);
        Self {
            client,
            server,
            key,
            rng,
            buf: BytesMut::with_capacity(4096),
            query: Bytes::from(query),
        }
    }

    /// One request and its answer; returns whether the answer came back.
    fn round_trip(&mut self) -> bool {
        let _ = self.client.invoke(self.query.clone());
        let t = now();
        while let Some(header) = self.client.poll_transmit(t, &mut self.buf) {
            let _ = seal(
                &mut self.buf,
                &self.key,
                Direction::ClientToServer,
                &header,
                Padding::Minimal,
                &mut self.rng,
            );
            if let Ok(opened) = open(&mut self.buf, &self.key, Direction::ClientToServer) {
                self.server.handle_message(&opened.header, opened.body, t);
            }
        }
        while let Some(event) = self.server.poll_event() {
            if let ServerEvent::Request { msg_id, body } = event {
                self.server.answer(msg_id, Ok(body), t);
            }
        }
        while let Some(header) = self.server.poll_transmit(t, &mut self.buf) {
            let _ = seal(
                &mut self.buf,
                &self.key,
                Direction::ServerToClient,
                &header,
                Padding::Minimal,
                &mut self.rng,
            );
            if let Ok(opened) = open(&mut self.buf, &self.key, Direction::ServerToClient) {
                self.client.handle_message(&opened.header, opened.body, t);
            }
        }
        let mut answered = false;
        while let Some(event) = self.client.poll_event() {
            answered |= matches!(event, ClientEvent::Response { outcome: Ok(_), .. });
        }
        answered
    }
}

/// Seals `body` into `buf` and opens it again.
fn envelope(
    buf: &mut BytesMut,
    body: &[u8],
    key: &AuthKey,
    direction: Direction,
    rng: &mut ChaCha20Rng,
) {
    buf.clear();
    buf.resize(ENCRYPTED_HEADROOM, 0);
    buf.extend_from_slice(body);
    let header = EncryptedHeader {
        salt: 1,
        session_id: 2,
        msg_id: 3 << 32,
        seq_no: 1,
    };
    let _ = seal(buf, key, direction, &header, Padding::Minimal, rng);
    let _ = black_box(open(buf, key, direction));
}

pub(crate) fn run() {
    let mut ours = Loop::new();
    // Settle the session first: the salt fetch and new_session_created happen once.
    for _ in 0..64 {
        ours.round_trip();
    }
    assert!(ours.round_trip(), "the session loop must answer");
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let key = ours.key.clone();
    let request = vec![0x5au8; 128];
    let answer = vec![0x5au8; 140];
    let mut buf = BytesMut::with_capacity(4096);
    compare(
        "rpc_roundtrip_128b",
        "round trips/s",
        "envelopes_only",
        Side::new(1.0, || {
            black_box(ours.round_trip());
        }),
        Side::new(1.0, || {
            envelope(
                &mut buf,
                &request,
                &key,
                Direction::ClientToServer,
                &mut rng,
            );
            envelope(&mut buf, &answer, &key, Direction::ServerToClient, &mut rng);
        }),
    );
}
