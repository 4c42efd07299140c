//! The handshake's costly parts: the server's RSA private operation (RSA_PAD decode), the
//! client's RSA_PAD encode and pq factorization, and one complete exchange (both roles).
//!
//! Run: `cargo bench -p columba-mtproto --bench handshake`. The figure that compares with
//! OpenSSL is `cargo run --release -p columba-compare -- handshake`.

#![allow(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use columba_mtproto::crypto::{
    RsaPrivateKey, factorize_pq, random_pq, rsa_decrypt_handshake_data, rsa_pad_encrypt,
};
use columba_mtproto::handshake::{
    ClientConfig, ClientEvent, ClientHandshake, Now, ServerConfig, ServerEvent, ServerHandshake,
};
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn now() -> Now {
    Now {
        monotonic: Instant::now(),
        unix: Duration::from_secs(1_700_000_000),
    }
}

fn bench_handshake(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let key = Arc::new(RsaPrivateKey::generate(&mut rng));
    let mut group = c.benchmark_group("handshake");
    group.sample_size(20);

    let data = [0x5au8; 144];
    group.bench_function("rsa_pad encrypt (client)", |b| {
        b.iter(|| rsa_pad_encrypt(key.public_key(), black_box(&data), &mut rng))
    });
    let encrypted = rsa_pad_encrypt(key.public_key(), &data, &mut rng).unwrap_or([0; 256]);
    group.bench_function("rsa_pad decrypt (server, blinded CRT)", |b| {
        b.iter(|| rsa_decrypt_handshake_data(&key, black_box(&encrypted), &mut rng))
    });
    let pqs: Vec<u64> = (0..16).map(|_| random_pq(&mut rng).2).collect();
    let mut next = 0;
    group.bench_function("factorize pq", |b| {
        b.iter(|| {
            next = (next + 1) % pqs.len();
            factorize_pq(black_box(pqs.get(next).copied().unwrap_or(15)))
        })
    });

    let server_config = Arc::new(ServerConfig::new(vec![key.clone()]));
    let client_config = ClientConfig::new(vec![key.public_key().clone()], 2);
    group.bench_function("complete exchange (both roles)", |b| {
        b.iter(|| {
            let mut server = ServerHandshake::new(server_config.clone());
            let (mut client, mut message) =
                ClientHandshake::start(client_config.clone(), now(), &mut rng);
            for _ in 0..8 {
                let reply = match server.handle(&message, now(), &mut rng) {
                    Ok(ServerEvent::Reply(reply)) => reply,
                    Ok(ServerEvent::CheckAuthKeyId(_)) => {
                        match server.confirm_auth_key_id(false, now()) {
                            Ok(ServerEvent::Done { reply, .. }) => reply,
                            _ => return,
                        }
                    }
                    _ => return,
                };
                match client.handle(&reply, now(), &mut rng) {
                    Ok(ClientEvent::Send(next)) => message = next,
                    _ => return,
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_handshake);
criterion_main!(benches);
