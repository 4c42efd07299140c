//! TL encode and decode throughput on representative objects.
//!
//! Run: `cargo bench -p columba-mtproto --features api,testing --bench tl`.

#![allow(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]

use columba_mtproto::tl::{
    Deserializable, Serializable,
    api::{enums, functions, types},
    mtproto,
    testing::{Gen, Generate},
};
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};

/// A `messages.messages` answer holding 100 generated messages (fixed seeds, so every run
/// measures the same bytes).
fn history() -> enums::messages::Messages {
    let messages = (0..100u64)
        .map(|seed| types::Message::generate(&mut Gen::new(seed)).into())
        .collect();
    enums::messages::Messages::Messages(types::messages::Messages {
        messages,
        topics: vec![],
        chats: vec![],
        users: (0..20u64)
            .map(|seed| enums::User::generate(&mut Gen::new(1000 + seed)))
            .collect(),
    })
}

fn send_message() -> functions::messages::SendMessage {
    let mut request = functions::messages::SendMessage::generate(&mut Gen::new(7));
    request.message = "Hello from the benchmark, a typical short chat message.".to_owned();
    request
}

fn bench_decode<T: Deserializable>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    bytes: &[u8],
) {
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function(format!("decode {name}"), |b| {
        b.iter(|| black_box(T::from_bytes(black_box(bytes)).is_ok()))
    });
}

fn bench_tl(c: &mut Criterion) {
    let mut group = c.benchmark_group("tl");
    let history = history();
    let history_bytes = history.to_bytes();
    bench_decode::<enums::messages::Messages>(&mut group, "messages.messages x100", &history_bytes);
    bench_decode::<functions::messages::SendMessage>(
        &mut group,
        "messages.sendMessage",
        &send_message().to_bytes(),
    );
    let acks = mtproto::types::MsgsAck {
        msg_ids: (0..8192i64).map(|i| (i << 32) | 4).collect(),
    };
    bench_decode::<mtproto::enums::MsgsAck>(&mut group, "msgs_ack x8192", &acks.to_bytes());

    group.throughput(Throughput::Bytes(history_bytes.len() as u64));
    let mut out = Vec::with_capacity(history_bytes.len());
    group.bench_function("encode messages.messages x100", |b| {
        b.iter(|| {
            out.clear();
            black_box(&history).serialize(&mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_tl);
criterion_main!(benches);
