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
//! - `channel_fanout_1k_1k` and `channel_fanout_100k_1k`: the same supergroup and clients
//!   with 1,000 members (all online) before the 9,000 are added, and with 100,000 members
//!   after 90,000 more: what a post costs must not grow with the members who are offline.
//! - With `COLUMBA_CHANNEL_EXTRA=1` (a few minutes more), printed rather than compared:
//!   a burst of 100 posts a second for 10 seconds to the 100,000-member group, each post
//!   sent without waiting for the last one's deliveries (every delivery counted, the time
//!   from the last post to the last delivery, the deliveries per second over the burst);
//!   and a reconnect storm: the 1,000 clients, each a member of 20 channels (19 more are
//!   added), drop their connections at once and connect again with their keys (time until
//!   all have answered `updates.getState`), then the first post after it (which brings the
//!   lists of present members up to date) against a post before it.
#![allow(
    clippy::expect_used,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
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
/// The member counts measured, in order (the same group grows).
const MEMBER_STEPS: [(usize, &str); 3] = [
    (1_000, "channel_fanout_1k_1k"),
    (10_000, "channel_fanout_10k_1k"),
    (100_000, "channel_fanout_100k_1k"),
];
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
    /// Count every post whose text starts with `text` (a burst), not only the one that
    /// is it.
    prefix: AtomicBool,
}

impl Round {
    fn new() -> Self {
        Self {
            text: std::sync::Mutex::new(String::new()),
            seen: AtomicUsize::new(0),
            wanted: AtomicUsize::new(usize::MAX),
            done: Notify::new(),
            body_len: AtomicUsize::new(0),
            prefix: AtomicBool::new(false),
        }
    }

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
async fn ours(dir: &std::path::Path) -> (Ours, Arc<Round>) {
    let started = start(EchoOptions {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data: dir.join("ours"),
        fixed_code: Some(CODE.to_owned()),
        max_connections_per_ip: Some(ONLINE * 2),
        bots: Vec::new(),
        bot_api: None,
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
    let ours = Ours {
        storm: tokio::sync::watch::channel(0).0,
        reconnected: Arc::new(Round::new()),
        poster: Arc::new(poster),
        poster_id,
        peer,
        group: Peer::Channel(channel.id),
        backend,
    };
    let members: Vec<i64> = clients.iter().map(|(_, id)| *id).collect();
    ours.add_members(members).await;
    let round = Arc::new(Round::new());
    for (client, _) in clients {
        tokio::spawn(read(
            client,
            target.clone(),
            round.clone(),
            (ours.storm.subscribe(), ours.reconnected.clone()),
        ));
    }
    (ours, round)
}

/// A reader: counts the posts of the round; on each new storm generation it drops its
/// connection, connects again with its key, asks for `updates.getState` and reports to
/// `reconnected` (through the round's `arrived`).
async fn read(
    mut client: EchoClient,
    target: Target,
    round: Arc<Round>,
    (mut storm, reconnected): (tokio::sync::watch::Receiver<u64>, Arc<Round>),
) {
    loop {
        let updates = tokio::select! {
            updates = client.next_update(Duration::from_secs(3600)) => updates,
            changed = storm.changed() => {
                if changed.is_err() {
                    return;
                }
                let key = client.saved_key();
                drop(client);
                client = EchoClient::connect(&target, Some(key)).await.expect("a reconnection");
                client.call(&functions::updates::GetState {}).await.expect("updates.getState");
                reconnected.arrived();
                continue;
            }
        };
        let Some(updates) = updates else {
            return;
        };
        let text = round.text.lock().map(|t| t.clone()).unwrap_or_default();
        let prefix = round.prefix.load(Ordering::Acquire);
        for message in new_messages(&updates) {
            let counts = if prefix {
                message.message.starts_with(&text)
            } else {
                message.message == text
            };
            if !counts {
                continue;
            }
            if round.body_len.load(Ordering::Relaxed) == 0 {
                round
                    .body_len
                    .store(updates.to_bytes().len(), Ordering::Relaxed);
            }
            round.arrived();
        }
    }
}

/// Our side: the poster, the group and the server's stores.
struct Ours {
    /// Each new value makes every reader reconnect.
    storm: tokio::sync::watch::Sender<u64>,
    /// Counts reconnections in a storm.
    reconnected: Arc<Round>,
    poster: Arc<EchoClient>,
    poster_id: i64,
    peer: enums::InputPeer,
    group: Peer,
    backend: Arc<columba_api::Backend>,
}

impl Ours {
    /// Adds `users` as members, straight into the store (one synced write each).
    async fn add_members(&self, users: Vec<i64>) {
        let (backend, group, inviter) = (self.backend.clone(), self.group, self.poster_id);
        let date = 1_700_000_000;
        tokio::task::spawn_blocking(move || {
            for user in users {
                backend
                    .messages
                    .set_participant(group, user, Some(Participant::member(user, date, inviter)))
                    .expect("a member");
            }
        })
        .await
        .expect("the members");
    }
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
    let round = Arc::new(Round::new());
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
    let (ours, round) = runtime.block_on(ours(dir.path()));
    let (poster, peer) = (&*ours.poster, &ours.peer);
    eprintln!(
        "channels: {ONLINE} clients signed in and members in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let next = AtomicI64::new(1);
    // The first post builds the channel's list of present members: timed apart.
    let first = post(&runtime, poster, peer, &round, &next);
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
    let mut members = ONLINE;
    let mut offline = OFFLINE_BASE;
    for (count, bench) in MEMBER_STEPS {
        if count > members {
            let more = i64::try_from(count - members).expect("a count");
            let added = Instant::now();
            runtime.block_on(ours.add_members((offline..offline + more).collect()));
            offline += more;
            members = count;
            eprintln!(
                "channels: {members} members now ({:.1} s to add)",
                added.elapsed().as_secs_f64()
            );
        }
        compare(
            bench,
            "deliveries/s",
            "raw_tokio_writes_1k",
            Side::timed(work, || post(&runtime, poster, peer, &round, &next)),
            Side::timed(ONLINE as f64, || raw_round(&runtime, &mut peer_side)),
        );
    }
    if std::env::var_os("COLUMBA_CHANNEL_EXTRA").is_some() {
        burst(&runtime, &ours, &round, &next);
        storm(&runtime, &ours, &round, &next);
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// Channels each client is in for the storm.
const STORM_CHANNELS: usize = 20;

/// The reconnect storm: every reader reconnects at once; then one post, timed.
fn storm(runtime: &tokio::runtime::Runtime, ours: &Ours, round: &Round, next: &AtomicI64) {
    let members: Vec<i64> = runtime.block_on(async {
        let backend = ours.backend.clone();
        let group = ours.group;
        tokio::task::spawn_blocking(move || {
            columba_api::channels::member_ids(
                &backend,
                match group {
                    Peer::Channel(id) => id,
                    _ => 0,
                },
                usize::MAX,
            )
            .expect("the members")
        })
        .await
        .expect("the members")
    });
    let online: Vec<i64> = members
        .into_iter()
        .filter(|id| *id < OFFLINE_BASE)
        .collect();
    let added = Instant::now();
    for n in 1..STORM_CHANNELS {
        let backend = ours.backend.clone();
        let (creator, online) = (ours.poster_id, online.clone());
        runtime.block_on(async move {
            tokio::task::spawn_blocking(move || {
                let info = columba_api::channels::ChannelInfo::new(
                    format!("storm {n}"),
                    false,
                    creator,
                    1_700_000_000,
                );
                let group = backend
                    .messages
                    .create_group(true, info.encode(), creator, 1_700_000_000)
                    .expect("a channel");
                for user in online {
                    if user == creator {
                        continue;
                    }
                    backend
                        .messages
                        .set_participant(
                            group,
                            user,
                            Some(Participant::member(user, 1_700_000_000, creator)),
                        )
                        .expect("a member");
                }
            })
            .await
            .expect("a channel");
        });
    }
    eprintln!(
        "channels: storm: {} more channels of the {} clients in {:.1} s",
        STORM_CHANNELS - 1,
        ONLINE - 1,
        added.elapsed().as_secs_f64()
    );
    let before = post(runtime, &ours.poster, &ours.peer, round, next);
    let reconnected = ours.reconnected.clone();
    reconnected.seen.store(0, Ordering::Release);
    reconnected.wanted.store(ONLINE - 1, Ordering::Release);
    let took = runtime.block_on(async {
        let waiting = reconnected.done.notified();
        let started = Instant::now();
        ours.storm.send_modify(|generation| *generation += 1);
        tokio::time::timeout(Duration::from_secs(300), waiting)
            .await
            .is_ok()
            .then(|| started.elapsed())
    });
    match took {
        Some(took) => eprintln!(
            "channels: storm: {} clients in {STORM_CHANNELS} channels each reconnected and answered in {:.2} s",
            ONLINE - 1,
            took.as_secs_f64()
        ),
        None => eprintln!(
            "channels: storm: only {} of {} reconnected within 300 s",
            reconnected.seen.load(Ordering::Acquire),
            ONLINE - 1
        ),
    }
    let after = post(runtime, &ours.poster, &ours.peer, round, next);
    let steady = post(runtime, &ours.poster, &ours.peer, round, next);
    eprintln!(
        "channels: storm: post before {:.1} ms, first after {:.1} ms, next {:.1} ms",
        before.as_secs_f64() * 1e3,
        after.as_secs_f64() * 1e3,
        steady.as_secs_f64() * 1e3
    );
}

/// Posts sent in the burst (100 a second for 10 seconds).
const BURST_POSTS: usize = 1000;
const BURST_INTERVAL: Duration = Duration::from_millis(10);

/// 100 posts a second for 10 seconds, each sent without waiting for the deliveries of the
/// last; prints whether every delivery came, the lag after the last post and the rate.
fn burst(runtime: &tokio::runtime::Runtime, ours: &Ours, round: &Round, next: &AtomicI64) {
    // Every reader counts every post whose text starts with the burst's mark.
    let mark = format!("burst {}", next.fetch_add(1, Ordering::Relaxed));
    if let Ok(mut current) = round.text.lock() {
        current.clone_from(&mark);
    }
    round.seen.store(0, Ordering::Release);
    round
        .wanted
        .store(BURST_POSTS * (ONLINE - 1), Ordering::Release);
    round.prefix.store(true, Ordering::Release);
    let (started, last_sent, finished) = runtime.block_on(async {
        let waiting = round.done.notified();
        let started = Instant::now();
        let mut ticker = tokio::time::interval(BURST_INTERVAL);
        let mut sends = tokio::task::JoinSet::new();
        let poster = ours.poster.clone();
        for n in 0..BURST_POSTS {
            ticker.tick().await;
            let (poster, peer, text) = (poster.clone(), ours.peer.clone(), format!("{mark} {n}"));
            let random_id = next.fetch_add(1, Ordering::Relaxed);
            sends.spawn(async move { poster.send_text(&peer, &text, random_id).await.is_ok() });
        }
        let last_sent = Instant::now();
        let finished = tokio::time::timeout(Duration::from_secs(120), waiting)
            .await
            .is_ok()
            .then(Instant::now);
        let mut answered = 0;
        while let Some(ok) = sends.join_next().await {
            answered += usize::from(ok.unwrap_or(false));
        }
        eprintln!("channels: burst: {answered} of {BURST_POSTS} posts answered");
        (started, last_sent, finished)
    });
    round.prefix.store(false, Ordering::Release);
    let seen = round.seen.load(Ordering::Acquire);
    let wanted = BURST_POSTS * (ONLINE - 1);
    match finished {
        Some(finished) => eprintln!(
            "channels: burst of {BURST_POSTS} posts at 100/s to {ONLINE} online of 100,000: \
             {seen} of {wanted} deliveries; last delivery {:.0} ms after the last post; \
             {:.0} deliveries/s over the burst",
            finished.saturating_duration_since(last_sent).as_secs_f64() * 1e3,
            seen as f64 / finished.saturating_duration_since(started).as_secs_f64()
        ),
        None => eprintln!(
            "channels: burst: only {seen} of {wanted} deliveries within 120 s of the last post"
        ),
    }
}
