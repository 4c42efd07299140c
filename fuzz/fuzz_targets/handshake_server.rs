//! Drives the server role of the key exchange with hostile input.
//!
//! The first byte picks a mode:
//! - even: the rest is a sequence of messages (a 2-byte little-endian length, then that many
//!   bytes; the low bit of the mode says whether each is wrapped as an unencrypted message or
//!   passed raw). The server must never panic, must stay failed once it failed, and must never
//!   get as far as a key: that needs inner data encrypted to its RSA key.
//! - odd: a real client runs the exchange (seeded from the second byte) while the rest of the
//!   input, read in triples (message number, offset, xor mask), corrupts the client's
//!   messages on their way. Whenever the server ends with a key, the client must end with the
//!   same key: the server never accepts an exchange the client did not complete.

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use columba_mtproto::crypto::RsaPrivateKey;
use columba_mtproto::handshake::{
    ClientConfig, ClientEvent, ClientHandshake, KeyKind, Now, ServerConfig, ServerEvent, ServerHandshake,
};
use columba_mtproto::message::write_plain;
use libfuzzer_sys::fuzz_target;
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

fn key() -> Arc<RsaPrivateKey> {
    static KEY: OnceLock<Arc<RsaPrivateKey>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(1)))).clone()
}

fn now(base: Instant) -> Now {
    Now { monotonic: base, unix: Duration::from_secs(1_700_000_000) }
}

fn raw_mode(wrap: bool, mut rest: &[u8]) {
    let base = Instant::now();
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let mut server = ServerHandshake::new(Arc::new(ServerConfig::new(vec![key()])));
    let mut failed = false;
    let mut msg_id = 4i64;
    for _ in 0..16 {
        let [lo, hi, tail @ ..] = rest else { return };
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (body, after) = tail.split_at(len);
        rest = after;
        let message = if wrap {
            let mut out = BytesMut::new();
            write_plain(msg_id, body, &mut out);
            msg_id += 4;
            out.to_vec()
        } else {
            body.to_vec()
        };
        match server.handle(&message, now(base), &mut rng) {
            Ok(ServerEvent::Reply(_)) => assert!(!failed, "answered after failing"),
            Ok(other) => panic!("reached {other:?} without a valid exchange"),
            Err(err) => {
                failed = true;
                assert!(matches!(err.transport_error(), -404 | -444));
            }
        }
    }
}

fn client_mode(seed: u8, corruptions: &[u8]) {
    let base = Instant::now();
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(seed));
    let mut server = ServerHandshake::new(Arc::new(ServerConfig::new(vec![key()])));
    let mut config = ClientConfig::new(vec![key().public_key().clone()], 2);
    if seed % 2 == 1 {
        config.kind = KeyKind::Temporary { expires_in: 600 };
    }
    let (mut client, mut message) = ClientHandshake::start(config, now(base), &mut rng);
    for number in 0u8..8 {
        for triple in corruptions.chunks_exact(3) {
            if triple[0] % 8 == number && !message.is_empty() {
                let at = usize::from(triple[1]) * message.len() / 256;
                message[at] ^= triple[2];
            }
        }
        let mut event = match server.handle(&message, now(base), &mut rng) {
            Ok(event) => event,
            Err(_) => return,
        };
        let reply = loop {
            match event {
                ServerEvent::Reply(reply) => break (reply, None),
                ServerEvent::CheckAuthKeyId(_) => {
                    let in_use = corruptions.first().is_some_and(|b| b & 0x80 != 0) && number < 4;
                    event = server.confirm_auth_key_id(in_use, now(base)).expect("a key is pending");
                }
                ServerEvent::Done { reply, key } => break (reply, Some(key)),
                ServerEvent::Failed(reply) => break (reply, None),
            }
        };
        match (client.handle(&reply.0, now(base), &mut rng), reply.1) {
            (Ok(ClientEvent::Send(next)), None) => message = next,
            (Ok(ClientEvent::Done(client_key)), Some(server_key)) => {
                assert_eq!(client_key.auth_key.as_bytes(), server_key.auth_key.as_bytes());
                return;
            }
            (Err(_), None) => return,
            (client_side, Some(_)) => panic!("server made a key the client did not: {client_side:?}"),
            (Ok(ClientEvent::Done(_)), None) => panic!("client made a key the server did not"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    if mode % 2 == 0 {
        raw_mode(mode & 2 == 0, rest);
    } else if let [seed, corruptions @ ..] = rest {
        client_mode(*seed, corruptions);
    }
});
