//! The server side of a connection (`ServerConnection`) with hostile bytes.
//!
//! The input is a script; the first byte of each step picks what the peer does:
//! - 0: raw bytes (a length byte, then that many), whatever they are;
//! - 1: an encrypted message sealed with the one key the server has, its body taken from
//!   the input, framed as an abridged client frames it;
//! - 2: the same with one byte of the sealed message flipped (a forgery);
//! - 3: the server closes with -429.
//!
//! The events are answered as a driver would (the key id is free, the key is stored, the key
//! of a frame is given when it is the server's key). Checked: no panic; nothing happens after
//! `Closed`; every opened message is one the script sealed with the key (a flipped byte
//! never opens); what waits to be written stays bounded by what came in.

#![no_main]

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use columba_mtproto::crypto::{AuthKey, Direction, RsaPrivateKey};
use columba_mtproto::handshake::ServerConfig;
use columba_mtproto::message::{ENCRYPTED_HEADROOM, EncryptedHeader, Padding, seal};
use columba_mtproto::time::Now;
use columba_mtproto::transport::{self, ClientConfig, Framing, Outgoing, Transport};
use columba_session::{ConnectionEvent, ServerConnection};
use libfuzzer_sys::fuzz_target;
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

fn rsa() -> Arc<RsaPrivateKey> {
    static KEY: OnceLock<Arc<RsaPrivateKey>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(1)))).clone()
}

fuzz_target!(|data: &[u8]| {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let key = AuthKey::from_bytes([0x5a; 256]);
    let now = Now { monotonic: Instant::now(), unix: Duration::from_secs(1_800_000_000) };
    let mut config = transport::Config::default();
    config.max_frame_len = 64 * 1024;
    let mut server = ServerConnection::new(config, Arc::new(ServerConfig::new(vec![rsa()])), &mut rng);
    let mut client = Transport::client(ClientConfig::new(Framing::Abridged, false), &mut rng);
    let mut sealed_bodies = HashSet::new();
    let mut fed = 0usize;
    let mut closed = false;
    let mut msg_id = 4i64;
    let mut rest = data;
    while let [op, tail @ ..] = rest {
        rest = tail;
        let mut bytes = BytesMut::new();
        match op % 4 {
            0 => {
                let [len, tail @ ..] = rest else { break };
                let len = usize::from(*len).min(tail.len());
                bytes.extend_from_slice(&tail[..len]);
                rest = &tail[len..];
            }
            op @ (1 | 2) => {
                let [len, tail @ ..] = rest else { break };
                // Bodies are whole words, as the envelope requires.
                let len = (usize::from(*len).min(tail.len())) & !3;
                let body = &tail[..len];
                rest = &tail[len..];
                msg_id += 4;
                let header = EncryptedHeader { salt: 1, session_id: 2, msg_id, seq_no: 1 };
                let mut message = BytesMut::zeroed(ENCRYPTED_HEADROOM);
                message.extend_from_slice(body);
                if seal(&mut message, &key, Direction::ClientToServer, &header, Padding::Minimal, &mut rng).is_err() {
                    continue;
                }
                if op == 2 {
                    let at = usize::from(body.first().copied().unwrap_or(0)) % message.len();
                    message[at] ^= 0x01;
                } else {
                    sealed_bodies.insert(body.to_vec());
                }
                let outgoing = Outgoing::Payload { data: &message, quick_ack: body.len() % 8 == 4 };
                if client.encode(outgoing, &mut bytes).is_err() {
                    continue;
                }
            }
            _ => server.close(Some(-429)),
        }
        fed += bytes.len();
        server.handle_bytes(&bytes, now, &mut rng);
        while let Some(event) = server.poll_event() {
            assert!(!closed, "an event after Closed: {event:?}");
            match event {
                ConnectionEvent::CheckAuthKeyId(_) => server.confirm_auth_key_id(false, now, &mut rng),
                ConnectionEvent::KeyCreated { .. } => server.key_stored(true, now, &mut rng),
                ConnectionEvent::KeyNeeded(id) => {
                    let given = (id == key.id()).then_some(&key);
                    server.provide_key(given, now, &mut rng);
                }
                ConnectionEvent::Message(message) => {
                    assert_eq!(message.auth_key_id, key.id());
                    assert!(sealed_bodies.contains(&message.body[..]), "a message nobody sealed opened");
                }
                ConnectionEvent::Closed(_) => closed = true,
                _ => {}
            }
        }
        assert_eq!(closed, server.is_closed());
        // Handshake replies are at most a few hundred bytes per message in, quick acks and
        // a transport error a few bytes each.
        assert!(server.outgoing().len() <= 2 * fed + 4096, "{} out for {fed} in", server.outgoing().len());
    }
});
