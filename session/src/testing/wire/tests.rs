//! The wire harness: real key exchanges, sessions and connections over a stream cut into
//! random pieces.
#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

use std::sync::{Arc, OnceLock};

use columba_mtproto::crypto::RsaPrivateKey;
use columba_mtproto::transport::{ClientConfig, ERROR_AUTH_KEY_NOT_FOUND, Framing};
use columba_store::AuthKeyStore as _;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::Wire;
use crate::connection::{ClientCloseReason, CloseReason};

fn rsa() -> Arc<RsaPrivateKey> {
    static KEY: OnceLock<Arc<RsaPrivateKey>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(21))))
        .clone()
}

fn configs() -> Vec<ClientConfig> {
    let mut configs = Vec::new();
    for framing in Framing::ALL {
        configs.push(ClientConfig::new(framing, false));
        if framing != Framing::Full {
            configs.push(ClientConfig::new(framing, true));
        }
    }
    configs
}

fn body(len: usize, tag: u8) -> Vec<u8> {
    // A constructor id the echo does not interpret, then filler: any TL-shaped bytes do.
    let mut body = 0x1234_5678u32.to_le_bytes().to_vec();
    body.extend((0..len.max(4) - 4).map(|i| tag.wrapping_add(i as u8)));
    body.truncate(len.max(4) / 4 * 4);
    body
}

/// Sends the bodies, runs the wire, and checks each came back once, in order of request.
fn round_trips(wire: &mut Wire, lens: &[usize]) {
    let mut sent = Vec::new();
    for (tag, len) in lens.iter().enumerate() {
        let body = body(*len, tag as u8);
        let id = wire.invoke(&body).unwrap().unwrap();
        sent.push((id, body));
    }
    wire.run(10_000);
    let mut got = wire.responses.clone();
    got.sort_by_key(|(id, _)| id.0);
    assert_eq!(got.len(), sent.len(), "every request answered once");
    for ((id, outcome), (sent_id, body)) in got.iter().zip(&sent) {
        assert_eq!(id, sent_id);
        assert_eq!(outcome.as_ref().unwrap().as_ref(), body.as_slice());
    }
}

#[test]
fn every_framing_makes_a_key_and_carries_requests_in_pieces_of_one_to_seven_bytes() {
    for (n, config) in configs().into_iter().enumerate() {
        let mut wire = Wire::new(n as u64, config.clone(), rsa());
        wire.max_write = 1 + n % 7;
        assert!(wire.exchange_keys(), "{config:?}: a key");
        let id = wire.key().unwrap().id();
        assert!(wire.keys.contains(id).unwrap(), "the server stored the key");
        round_trips(&mut wire, &[8, 100, 1_000, 3_000]);
        assert!(
            wire.writes_up > wire.requests.len() * 4,
            "{config:?}: frames went in pieces"
        );
        assert_eq!(wire.server.framing(), Some(config.framing));
        assert!(wire.server_closed.is_none() && wire.client_closed.is_none());
        assert!(
            wire.requests
                .iter()
                .all(|(ctx, _)| ctx.session.auth_key_id == id)
        );
    }
}

#[test]
fn a_lost_stream_is_made_good_by_the_session_on_the_next_connection() {
    let mut wire = Wire::new(7, ClientConfig::new(Framing::Intermediate, true), rsa());
    assert!(wire.exchange_keys());
    let first = wire.invoke(&body(40, 1)).unwrap().unwrap();
    let lost = wire.lose_upstream();
    assert!(lost > 40, "the request was on the stream ({lost} bytes)");
    assert!(wire.requests.is_empty());
    wire.reconnect();
    wire.run(1_000);
    assert_eq!(wire.requests.len(), 1, "re-sent on the new connection");
    assert_eq!(wire.responses.len(), 1);
    assert_eq!(wire.responses[0].0, first);
    // The key was read back from the store for the new connection's first frame: drop it
    // from the endpoint's cache and the store both, and the next frame gets -404.
    let id = wire.key().unwrap().id();
    assert!(wire.keys.remove(id).unwrap());
    wire.endpoint.forget_key(id);
    wire.reconnect();
    let _ = wire.invoke(&body(8, 2)).unwrap().unwrap();
    wire.run(1_000);
    assert_eq!(wire.server_closed, Some(CloseReason::UnknownKey));
    assert_eq!(
        wire.client_closed,
        Some(ClientCloseReason::TransportError(ERROR_AUTH_KEY_NOT_FOUND))
    );
}

#[test]
fn a_key_from_another_server_is_refused_with_404() {
    let mut wire = Wire::new(9, ClientConfig::new(Framing::Abridged, false), rsa());
    assert!(wire.exchange_keys());
    // Another server with its own (empty) store, the same client and key.
    let mut other = Wire::new(10, ClientConfig::new(Framing::Abridged, false), rsa());
    other.client.set_key(wire.key().unwrap().clone());
    other.session = wire.session.take();
    let _ = other.invoke(&body(8, 3)).unwrap().unwrap();
    other.run(1_000);
    assert!(other.requests.is_empty());
    assert_eq!(other.server_closed, Some(CloseReason::UnknownKey));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn any_cut_of_the_stream_carries_the_same_requests(
        seed in any::<u64>(),
        config in 0usize..7,
        max_write in 1usize..400,
        lens in proptest::collection::vec(4usize..2_000, 1..12),
    ) {
        let config = configs()[config].clone();
        let mut wire = Wire::new(seed, config, rsa());
        wire.max_write = max_write;
        prop_assert!(wire.exchange_keys());
        round_trips(&mut wire, &lens);
    }
}
