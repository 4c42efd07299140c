//! AES-256-IGE throughput: single stream over 1 MiB, and 8 independent 4 KiB messages, batched
//! and one after another (the ratio is what interleaving gains).
//!
//! Run: `cargo bench -p columba-mtproto --bench crypto`.

#![allow(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]

use columba_mtproto::crypto::{
    AuthKey, Direction, IgeJob, decrypt_ige, encrypt_ige, encrypt_ige_batch, ige_backend,
    message_key_iv, msg_key_large,
};
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};

fn bench_ige(c: &mut Criterion) {
    eprintln!("IGE backend: {}", ige_backend());
    let key = [0x42u8; 32];
    let iv = [0x24u8; 32];
    let mut group = c.benchmark_group("ige");

    let mut big = vec![0x5au8; 1 << 20];
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("encrypt 1 MiB", |b| {
        b.iter(|| encrypt_ige(black_box(&mut big), &key, &iv))
    });
    group.bench_function("decrypt 1 MiB", |b| {
        b.iter(|| decrypt_ige(black_box(&mut big), &key, &iv))
    });

    let keys: Vec<[u8; 32]> = (0..8u8).map(|i| [i; 32]).collect();
    let mut messages = vec![vec![0x33u8; 4096]; 8];
    group.throughput(Throughput::Bytes(8 * 4096));
    group.bench_function("batch 8 x 4 KiB", |b| {
        b.iter(|| {
            let mut jobs: Vec<IgeJob<'_>> = messages
                .iter_mut()
                .zip(&keys)
                .map(|(data, key)| IgeJob { data, key, iv: &iv })
                .collect();
            encrypt_ige_batch(black_box(&mut jobs))
        })
    });
    group.bench_function("one by one 8 x 4 KiB", |b| {
        b.iter(|| {
            for (data, key) in messages.iter_mut().zip(&keys) {
                let _ = encrypt_ige(black_box(data), key, &iv);
            }
        })
    });
    group.finish();
}

/// Where the time of opening a small message goes: the three SHA-256 (KDF and msg_key) against
/// the IGE decryption, on the 192-byte plaintext of a 128-byte body with minimal padding.
fn bench_envelope_parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope parts, 192-byte plaintext");
    let key = AuthKey::from_bytes([3; 256]);
    let msg_key = [9u8; 16];
    let mut plaintext = [0x44u8; 192];
    group.bench_function("KDF (2 x SHA-256)", |b| {
        b.iter(|| message_key_iv(&key, black_box(&msg_key), Direction::ServerToClient))
    });
    group.bench_function("msg_key (SHA-256 over 224 bytes)", |b| {
        b.iter(|| msg_key_large(&key, Direction::ServerToClient, black_box(&plaintext)))
    });
    group.bench_function("IGE decrypt, key schedule included", |b| {
        b.iter(|| decrypt_ige(black_box(&mut plaintext), &[1; 32], &[2; 32]))
    });
    group.finish();
}

criterion_group!(benches, bench_ige, bench_envelope_parts);
criterion_main!(benches);
