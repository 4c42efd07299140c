//! Framing throughput: encode a batch of frames into one buffer, then decode them all, for each
//! framing, plain and obfuscated, at three payload sizes.
//!
//! The peer in the same run is tokio-util's `LengthDelimitedCodec` configured with a 4-byte
//! little-endian length, which is byte for byte the intermediate framing without its tag: the
//! ratio "Intermediate / peer" shows what the MTProto-specific checks cost.
//!
//! Run: `cargo bench -p columba-mtproto --bench transport`.

#![allow(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]

use bytes::{Bytes, BytesMut};
use columba_mtproto::transport::{ClientConfig, Config, Framing, Outgoing, Transport};
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

const BATCH: usize = 64;

fn bench_transport(c: &mut Criterion) {
    let mut group = c.benchmark_group("transport");
    for size in [64usize, 1024, 64 * 1024] {
        let payload = vec![0xa5u8; size];
        group.throughput(Throughput::Bytes((size * BATCH) as u64));
        let shared = Bytes::from(payload.clone());
        group.bench_with_input(
            BenchmarkId::new("peer: tokio-util LengthDelimitedCodec", size),
            &shared,
            |b, payload| {
                let mut codec = LengthDelimitedCodec::builder()
                    .little_endian()
                    .length_field_length(4)
                    .max_frame_length(16 * 1024 * 1024)
                    .new_codec();
                let mut wire = BytesMut::with_capacity((size + 80) * BATCH + 64);
                b.iter(|| {
                    for _ in 0..BATCH {
                        let _ = codec.encode(payload.clone(), &mut wire);
                    }
                    let mut frames = 0;
                    while let Ok(Some(frame)) = codec.decode(&mut wire) {
                        black_box(&frame);
                        frames += 1;
                    }
                    assert_eq!(frames, BATCH);
                    wire.reserve((size + 80) * BATCH);
                })
            },
        );
        for framing in Framing::ALL {
            for obfuscated in [false, true] {
                let name = format!("{framing:?}{}", if obfuscated { "+obfuscated" } else { "" });
                group.bench_with_input(BenchmarkId::new(name, size), &payload, |b, payload| {
                    let mut rng = ChaCha20Rng::seed_from_u64(1);
                    let mut client =
                        Transport::client(ClientConfig::new(framing, obfuscated), &mut rng);
                    let mut server = Transport::server(Config::default(), &mut rng);
                    let mut wire = BytesMut::with_capacity((size + 80) * BATCH + 64);
                    b.iter(|| {
                        for _ in 0..BATCH {
                            let item = Outgoing::Payload {
                                data: payload,
                                quick_ack: false,
                            };
                            let _ = client.encode(item, &mut wire);
                        }
                        let mut frames = 0;
                        while let Ok(Some(frame)) = server.decode(&mut wire) {
                            black_box(&frame);
                            frames += 1;
                        }
                        assert_eq!(frames, BATCH);
                        // Give the split-off capacity back so that each iteration reuses it.
                        wire.reserve((size + 80) * BATCH);
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_transport);
criterion_main!(benches);
