//! Suite `channels`: a post to a big supergroup through the whole server.
//!
//! - `channel_fanout_10k_1k`: a supergroup of 10,000 members (1,000 signed-in clients, each
//!   its own key and loopback TCP connection, and 9,000 members without a session), on the
//!   echo server as it ships (RocksDB stores, every write synced). One client posts, one
//!   post at a time; the time counted is from the post to the last of the 999 other clients
//!   decoding it as a pushed `updateNewChannelMessage`. Unit: deliveries per second. Peer
//!   (`raw_tokio_writes_1k`): a plain tokio program in the same runtime with 1,000 loopback
//!   connections, writing a frame of the same size (the encrypted update as the clients
//!   receive it) to each and waiting until every reader has it: what the kernel and tokio
//!   alone cost. The clients of both sides run in the same process, on the same two cores,
//!   and ours decrypt and decode what they get.
#![allow(
    clippy::expect_used,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use columba_examples::client::{EchoClient, Target, new_messages};
use columba_examples::echo::{EchoOptions, start};
use columba_mtproto::tl::Serializable as _;
use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::{Participant, Peer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

use super::{Side, compare};

const ONLINE: usize = 1000;
const MEMBERS: usize = 10_000;
const CODE: &str = "24680";
/// The first id of the members without a session (far from the server's own ids).
const OFFLINE_BASE: i64 = 500_000_000;

/// What the readers of one post count: the text they wait for, how many have it, and who
/// to tell when all have.
struct Round {
    text: std::sync::Mutex<String>,
    seen: AtomicUsize,
    wanted: AtomicUsize,
    done: Notify,
    /// The size of the last update body a reader decoded (to size the peer's frames).
    body_len: AtomicUsize,
}

impl Round {
    fn arrived(&self) {
        if self.seen.fetch_add(1, Ordering::AcqRel) + 1 == self.wanted.load(Ordering::Acquire) {
            self.done.notify_one();
        }
    }
}

async fn signed_in(target: Target, phone: String) -> (EchoClient, i64) {
    let client = EchoClient::connect(&target, None).await.expect("a client");
    let user = client.sign_in(&phone, CODE).await.expect("a sign-in");
    (client, user.id)
}

/// Our side's setup: the server, the clients, the supergroup; the poster, the channel peer
/// and the round the readers report to.
async fn ours(dir: &std::path::Path) -> (EchoClient, enums::InputPeer, Arc<Round>) {
    let started = start(EchoOptions {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data: dir.join("ours"),
        fixed_code: Some(CODE.to_owned()),
        max_connections_per_ip: Some(ONLINE * 2),
    })
    .await
    .expect("the echo server");
    let target = Target::new(started.address, started.public_key.clone());
    let backend = started.backend();
    tokio::spawn(async move {
        let _ = started.serve(std::future::pending()).await;
    });
    // Signed in a few at a time: each is a key exchange.
    let mut clients = Vec::with_capacity(ONLINE);
    for chunk in (0..ONLINE).collect::<Vec<_>>().chunks(50) {
        let mut connecting = tokio::task::JoinSet::new();
        for index in chunk {
            connecting.spawn(signed_in(target.clone(), format!("1993{index:06}")));
        }
        while let Some(client) = connecting.join_next().await {
            clients.push(client.expect("a connecting task"));
        }
    }
    let (poster, poster_id) = clients.pop().expect("a poster");
    let created = poster
        .call(&functions::channels::CreateChannel {
            broadcast: false,
            megagroup: true,
            for_import: false,
            forum: false,
            title: "fan-out".to_owned(),
            about: String::new(),
            geo_point: None,
            address: None,
            ttl_period: None,
        })
        .await
        .expect("a supergroup");
    let channel = match &created {
        enums::Updates::Updates(created) => created.chats.iter().find_map(|chat| match chat {
            enums::Chat::Channel(channel) => Some(channel.clone()),
            _ => None,
        }),
        _ => None,
    }
    .expect("createChannel names the channel");
    let peer: enums::InputPeer = types::InputPeerChannel {
        channel_id: channel.id,
        access_hash: channel.access_hash.unwrap_or(0),
    }
    .into();
    let group = Peer::Channel(channel.id);
    let date = 1_700_000_000;
    let blocking = backend.clone();
    let members: Vec<i64> = clients.iter().map(|(_, id)| *id).collect();
    tokio::task::spawn_blocking(move || {
        for user in members
            .into_iter()
            .chain((0..(MEMBERS - ONLINE) as i64).map(|n| OFFLINE_BASE + n))
        {
            blocking
                .messages
                .set_participant(
                    group,
                    user,
                    Some(Participant::member(user, date, poster_id)),
                )
                .expect("a member");
        }
    })
    .await
    .expect("the members");
    let round = Arc::new(Round {
        text: std::sync::Mutex::new(String::new()),
        seen: AtomicUsize::new(0),
        wanted: AtomicUsize::new(usize::MAX),
        done: Notify::new(),
        body_len: AtomicUsize::new(0),
    });
    for (mut client, _) in clients {
        let round = round.clone();
        tokio::spawn(async move {
            while let Some(updates) = client.next_update(Duration::from_secs(3600)).await {
                let text = round.text.lock().map(|t| t.clone()).unwrap_or_default();
                if new_messages(&updates).iter().any(|m| m.message == text) {
                    if round.body_len.load(Ordering::Relaxed) == 0 {
                        round
                            .body_len
                            .store(updates.to_bytes().len(), Ordering::Relaxed);
                    }
                    round.arrived();
                }
            }
        });
    }
    (poster, peer, round)
}

/// One post, timed until every other online member has decoded it.
fn post(
    runtime: &tokio::runtime::Runtime,
    poster: &EchoClient,
    peer: &enums::InputPeer,
    round: &Round,
    next: &AtomicI64,
) -> Duration {
    let n = next.fetch_add(1, Ordering::Relaxed);
    let text = format!("post {n}");
    if let Ok(mut current) = round.text.lock() {
        current.clone_from(&text);
    }
    round.seen.store(0, Ordering::Release);
    round.wanted.store(ONLINE - 1, Ordering::Release);
    runtime.block_on(async {
        let started = Instant::now();
        let waiting = round.done.notified();
        poster.send_text(peer, &text, n).await.expect("a post");
        tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("every member within 60 s");
        started.elapsed()
    })
}

/// The peer: 1,000 loopback connections; per round, one frame written to each, and the time
/// until every reader has read it.
struct Raw {
    writers: Vec<tokio::net::tcp::OwnedWriteHalf>,
    round: Arc<Round>,
    frame: Vec<u8>,
}

async fn raw(frame_len: usize) -> Raw {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let address = listener.local_addr().expect("its address");
    let round = Arc::new(Round {
        text: std::sync::Mutex::new(String::new()),
        seen: AtomicUsize::new(0),
        wanted: AtomicUsize::new(usize::MAX),
        done: Notify::new(),
        body_len: AtomicUsize::new(0),
    });
    let mut writers = Vec::with_capacity(ONLINE);
    for _ in 0..ONLINE {
        let mut reader = tokio::net::TcpStream::connect(address)
            .await
            .expect("a connection");
        let (accepted, _) = listener.accept().await.expect("an accept");
        let (_, write) = accepted.into_split();
        writers.push(write);
        let round = round.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; frame_len];
            while reader.read_exact(&mut buf).await.is_ok() {
                round.arrived();
            }
        });
    }
    Raw {
        writers,
        round,
        frame: vec![0x5a; frame_len],
    }
}

fn raw_round(runtime: &tokio::runtime::Runtime, raw: &mut Raw) -> Duration {
    raw.round.seen.store(0, Ordering::Release);
    raw.round.wanted.store(ONLINE, Ordering::Release);
    runtime.block_on(async {
        let started = Instant::now();
        let waiting = raw.round.done.notified();
        for writer in &mut raw.writers {
            writer.write_all(&raw.frame).await.expect("a write");
        }
        tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("every reader within 60 s");
        started.elapsed()
    })
}

pub(crate) fn run() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let setup = Instant::now();
    let (poster, peer, round) = runtime.block_on(ours(dir.path()));
    eprintln!(
        "channels: {ONLINE} clients signed in and {MEMBERS} members added in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let next = AtomicI64::new(1);
    // The first post builds the channel's list of present members: timed apart.
    let first = post(&runtime, &poster, &peer, &round, &next);
    eprintln!(
        "channels: first post (builds the present members) {:.1} ms",
        first.as_secs_f64() * 1e3
    );
    // The frame our clients receive: the update's body in an encrypted message (32-byte
    // inner header, 12 to 27 bytes of padding to a multiple of 16, 24-byte outer header)
    // in the intermediate framing (4-byte length).
    let body = round.body_len.load(Ordering::Relaxed);
    let frame_len = 4 + 24 + (32 + body + 12).div_ceil(16) * 16;
    let mut peer_side = runtime.block_on(raw(frame_len));
    let work = (ONLINE - 1) as f64;
    compare(
        "channel_fanout_10k_1k",
        "deliveries/s",
        "raw_tokio_writes_1k",
        Side::timed(work, || post(&runtime, &poster, &peer, &round, &next)),
        Side::timed(ONLINE as f64, || raw_round(&runtime, &mut peer_side)),
    );
    runtime.shutdown_timeout(Duration::from_secs(1));
}
