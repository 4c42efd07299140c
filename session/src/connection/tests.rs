//! The server connection against a real client's framing, handshake and envelopes.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use columba_mtproto::crypto::{AuthKey, Direction, RsaPrivateKey};
use columba_mtproto::handshake::{self, ClientHandshake};
use columba_mtproto::message::{ENCRYPTED_HEADROOM, EncryptedHeader, Padding, open, seal};
use columba_mtproto::time::Now;
use columba_mtproto::transport::{self, ClientConfig, Frame, Framing, Outgoing, Transport};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{CloseReason, ConnectionEvent, ServerConnection};

fn now() -> Now {
    Now {
        monotonic: Instant::now(),
        unix: Duration::from_secs(1_800_000_000),
    }
}

struct Peer {
    rng: ChaCha20Rng,
    client: Transport,
    server: ServerConnection,
    key: AuthKey,
    msg_id: i64,
}

fn peer(framing: Framing, obfuscated: bool) -> Peer {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let rsa = Arc::new(RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(4)));
    let server = ServerConnection::new(
        transport::Config::default(),
        Arc::new(handshake::ServerConfig::new(vec![rsa])),
        &mut rng,
    );
    Peer {
        client: Transport::client(ClientConfig::new(framing, obfuscated), &mut rng),
        server,
        key: AuthKey::from_bytes([7; 256]),
        rng,
        msg_id: 4,
    }
}

impl Peer {
    /// A sealed message with `body`, framed as the client frames it.
    fn sealed(&mut self, body: &[u8], quick_ack: bool) -> BytesMut {
        self.msg_id += 4;
        let header = EncryptedHeader {
            salt: 1,
            session_id: 2,
            msg_id: self.msg_id,
            seq_no: 1,
        };
        let mut message = BytesMut::zeroed(ENCRYPTED_HEADROOM);
        message.extend_from_slice(body);
        seal(
            &mut message,
            &self.key,
            Direction::ClientToServer,
            &header,
            Padding::Minimal,
            &mut self.rng,
        )
        .unwrap();
        let mut framed = BytesMut::new();
        self.client
            .encode(
                Outgoing::Payload {
                    data: &message,
                    quick_ack,
                },
                &mut framed,
            )
            .unwrap();
        framed
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.server.handle_bytes(bytes, now(), &mut self.rng);
    }

    fn events(&mut self) -> Vec<ConnectionEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// What the server wrote, as the client reads it.
    fn frames(&mut self) -> Vec<Frame> {
        let mut out = BytesMut::from(self.server.outgoing());
        let len = out.len();
        self.server.advance_outgoing(len);
        std::iter::from_fn(|| self.client.decode(&mut out).unwrap()).collect()
    }
}

#[test]
fn a_message_opens_once_its_key_is_given_and_a_quick_ack_goes_back() {
    for (framing, obfuscated) in [
        (Framing::Abridged, false),
        (Framing::Intermediate, true),
        (Framing::Full, false),
    ] {
        let mut p = peer(framing, obfuscated);
        let frame = p.sealed(b"body", framing.has_quick_ack());
        p.feed(&frame);
        let events = p.events();
        assert!(
            matches!(events[..], [ConnectionEvent::KeyNeeded(id)] if id == p.key.id()),
            "{events:?}"
        );
        assert!(!p.server.wants_input());
        assert!(!p.server.is_established());
        let key = AuthKey::from_bytes([7; 256]);
        p.server.provide_key(Some(&key), now(), &mut p.rng);
        let events = p.events();
        let [ConnectionEvent::Message(message)] = &events[..] else {
            panic!("{events:?}");
        };
        assert_eq!(&message.body[..], b"body");
        assert_eq!(message.auth_key_id, key.id());
        assert!(p.server.is_established());
        let frames = p.frames();
        if !framing.has_quick_ack() {
            // The full framing has no quick acks: the flag cannot be set.
            assert!(frames.is_empty());
        } else {
            assert!(
                matches!(frames[..], [Frame::QuickAck(token)] if token & 0x8000_0000 != 0),
                "{frames:?}"
            );
        }
    }
}

#[test]
fn frames_wait_while_a_key_is_looked_up() {
    let mut p = peer(Framing::Intermediate, false);
    let mut both = p.sealed(b"one!", false);
    both.extend_from_slice(&p.sealed(b"two!", false));
    p.feed(&both);
    assert_eq!(p.events().len(), 1, "one frame at a time");
    let key = AuthKey::from_bytes([7; 256]);
    p.server.provide_key(Some(&key), now(), &mut p.rng);
    let events = p.events();
    assert!(
        matches!(
            events[..],
            [ConnectionEvent::Message(_), ConnectionEvent::KeyNeeded(_)]
        ),
        "{events:?}"
    );
    p.server.provide_key(Some(&key), now(), &mut p.rng);
    let events = p.events();
    let [ConnectionEvent::Message(message)] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(&message.body[..], b"two!");
}

#[test]
fn a_forged_message_closes_the_connection_without_a_word() {
    let mut p = peer(Framing::Abridged, false);
    let mut frame = p.sealed(b"body", false);
    let last = frame.len() - 1;
    frame[last] ^= 1;
    p.feed(&frame);
    p.events();
    let key = AuthKey::from_bytes([7; 256]);
    p.server.provide_key(Some(&key), now(), &mut p.rng);
    let events = p.events();
    assert!(
        matches!(events[..], [ConnectionEvent::Closed(CloseReason::Rejected)]),
        "{events:?}"
    );
    assert!(p.server.outgoing().is_empty(), "nothing tells a forger why");
    assert!(p.server.is_closed());
    // Nothing more is read.
    let frame = p.sealed(b"more", false);
    p.feed(&frame);
    assert!(p.events().is_empty());
}

#[test]
fn an_unknown_key_gets_404() {
    let mut p = peer(Framing::Intermediate, false);
    let frame = p.sealed(b"body", false);
    p.feed(&frame);
    p.events();
    p.server.provide_key(None, now(), &mut p.rng);
    let events = p.events();
    assert!(
        matches!(
            events[..],
            [ConnectionEvent::Closed(CloseReason::UnknownKey)]
        ),
        "{events:?}"
    );
    assert!(matches!(p.frames()[..], [Frame::TransportError(-404)]));
}

#[test]
fn a_refused_connection_gets_429_in_its_own_framing() {
    let mut p = peer(Framing::Intermediate, true);
    p.server.refuse(-429);
    let frame = p.sealed(b"body", false);
    // The obfuscation header alone shows the framing.
    p.feed(&frame[..64]);
    let events = p.events();
    assert!(
        matches!(events[..], [ConnectionEvent::Closed(CloseReason::Local)]),
        "{events:?}"
    );
    assert!(matches!(p.frames()[..], [Frame::TransportError(-429)]));
}

#[test]
fn broken_framing_closes_the_connection() {
    let mut p = peer(Framing::Abridged, false);
    // An abridged frame of 0x7f-encoded length beyond the limit.
    p.feed(&[0xef, 0x7f, 0xff, 0xff, 0xff]);
    let events = p.events();
    assert!(
        matches!(
            events[..],
            [ConnectionEvent::Closed(CloseReason::Framing(_))]
        ),
        "{events:?}"
    );
}

/// A whole key exchange through the connection, then a message under the new key: the key
/// is announced for storing, `dh_gen_ok` waits until it is stored, and a store that failed
/// closes the connection before the client can use the key.
#[test]
fn a_key_exchange_through_the_connection() {
    for stored in [true, false] {
        let mut p = peer(Framing::Intermediate, false);
        let rsa = Arc::new(RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(4)));
        let config = handshake::ClientConfig::new(vec![rsa.public_key().clone()], 2);
        let (mut client, mut message) = ClientHandshake::start(config, now(), &mut p.rng);
        let client_key = loop {
            let mut framed = BytesMut::new();
            p.client
                .encode(
                    Outgoing::Payload {
                        data: &message,
                        quick_ack: false,
                    },
                    &mut framed,
                )
                .unwrap();
            p.feed(&framed);
            let mut closed = false;
            while let Some(event) = p.server.poll_event() {
                match event {
                    ConnectionEvent::CheckAuthKeyId(_) => {
                        p.server.confirm_auth_key_id(false, now(), &mut p.rng);
                    }
                    ConnectionEvent::KeyCreated { .. } => {
                        assert!(
                            p.server.outgoing().is_empty(),
                            "dh_gen_ok waits for the store"
                        );
                        p.server.key_stored(stored, now(), &mut p.rng);
                    }
                    ConnectionEvent::Closed(CloseReason::KeyNotStored) => closed = true,
                    other => panic!("{other:?}"),
                }
            }
            if closed {
                assert!(!stored);
                assert!(
                    p.server.outgoing().is_empty(),
                    "the client never gets the key"
                );
                break None;
            }
            let frames = p.frames();
            let [Frame::Payload { data, .. }] = &frames[..] else {
                panic!("{frames:?}");
            };
            match client.handle(data, now(), &mut p.rng).unwrap() {
                handshake::ClientEvent::Send(next) => message = next,
                handshake::ClientEvent::Done(key) => break Some(key.auth_key),
            }
        };
        let Some(client_key) = client_key else {
            assert!(!stored);
            continue;
        };
        assert!(stored);
        assert!(p.server.is_established());
        p.key = client_key;
        let frame = p.sealed(b"ping", false);
        p.feed(&frame);
        p.events();
        let key = AuthKey::from_bytes(*p.key.as_bytes());
        p.server.provide_key(Some(&key), now(), &mut p.rng);
        assert!(matches!(p.events()[..], [ConnectionEvent::Message(_)]));
    }
}

/// What the server seals, the client opens.
#[test]
fn sealed_answers_open_on_the_client() {
    let mut p = peer(Framing::Abridged, false);
    // The framing is detected from the client's first bytes.
    let frame = p.sealed(b"body", false);
    p.feed(&frame);
    let key = AuthKey::from_bytes([7; 256]);
    p.events();
    p.server.provide_key(Some(&key), now(), &mut p.rng);
    p.events();
    let header = EncryptedHeader {
        salt: 1,
        session_id: 2,
        msg_id: 5,
        seq_no: 1,
    };
    let mut message = BytesMut::zeroed(ENCRYPTED_HEADROOM);
    message.extend_from_slice(b"answer!!");
    assert!(
        p.server
            .send_message(&key, &header, &mut message, &mut p.rng)
    );
    let frames = p.frames();
    let [Frame::Payload { data, .. }] = &frames[..] else {
        panic!("{frames:?}");
    };
    let mut data = data.clone();
    let opened = open(&mut data, &key, Direction::ServerToClient).unwrap();
    assert_eq!(opened.body, b"answer!!");
    assert_eq!(opened.header, header);
}
