//! Channels on the echo server, in-process over real loopback TCP and real RocksDB: a member
//! who stops reading while a supergroup floods does not hold the server's memory or slow the
//! others; when they read again they find one `updateChannelTooLong` after what was queued,
//! and `updates.getChannelDifference` gives them the rest, with no gap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use columba_examples::client::{EchoClient, Target};
use columba_mtproto::tl::api::{enums, functions, types};
use columba_session::plugins::BoxFuture;
use columba_session::runtime::{ByteStream, Connector};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

const CODE: &str = "31415";
/// Posts in the flood, each of `POST_CHARS` characters: more than the loopback buffers
/// of both ends and the server's lag bound together.
const POSTS: usize = 4000;
const POST_CHARS: usize = 4000;

/// Holds a stream's reads while set.
#[derive(Default)]
struct Gate {
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }
}

/// A TCP stream whose reads stop while its gate is closed (writes go on).
struct Stalling {
    inner: TcpStream,
    gate: Arc<Gate>,
}

impl AsyncRead for Stalling {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.gate.closed.load(Ordering::SeqCst) {
            *self.gate.waker.lock().unwrap() = Some(cx.waker().clone());
            // Opened meanwhile: read now rather than wait for a wake that came before.
            if self.gate.closed.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stalling {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct StallingConnector {
    address: std::net::SocketAddr,
    gate: Arc<Gate>,
}

impl Connector for StallingConnector {
    fn connect(&self) -> BoxFuture<'_, io::Result<Box<dyn ByteStream>>> {
        Box::pin(async move {
            let inner = TcpStream::connect(self.address).await?;
            Ok(Box::new(Stalling {
                inner,
                gate: self.gate.clone(),
            }) as Box<dyn ByteStream>)
        })
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn signed_in(client: EchoClient, phone: &str, username: &str) -> EchoClient {
    client.sign_in(phone, CODE).await.unwrap();
    client
        .call(&functions::account::UpdateUsername {
            username: username.to_owned(),
        })
        .await
        .unwrap();
    client
}

async fn resolve(client: &EchoClient, username: &str) -> enums::InputUser {
    let enums::contacts::ResolvedPeer::ResolvedPeer(resolved) = client
        .call(&functions::contacts::ResolveUsername {
            username: username.to_owned(),
            referer: None,
        })
        .await
        .unwrap();
    match &resolved.users[0] {
        enums::User::User(user) => types::InputUser {
            user_id: user.id,
            access_hash: user.access_hash.unwrap(),
        }
        .into(),
        other => panic!("{other:?}"),
    }
}

/// A supergroup `title` created by `creator`, with the users of these usernames invited:
/// its `InputChannel` and `InputPeer`.
async fn supergroup(
    creator: &EchoClient,
    title: &str,
    invited: &[&str],
) -> (enums::InputChannel, enums::InputPeer) {
    let created = creator
        .call(&functions::channels::CreateChannel {
            broadcast: false,
            megagroup: true,
            for_import: false,
            forum: false,
            title: title.to_owned(),
            about: String::new(),
            geo_point: None,
            address: None,
            ttl_period: None,
        })
        .await
        .unwrap();
    let enums::Updates::Updates(created) = created else {
        panic!("{created:?}")
    };
    let enums::Chat::Channel(channel) = &created.chats[0] else {
        panic!("{:?}", created.chats)
    };
    let (channel_id, access_hash) = (channel.id, channel.access_hash.unwrap());
    let input_channel: enums::InputChannel = types::InputChannel {
        channel_id,
        access_hash,
    }
    .into();
    let mut users = Vec::new();
    for username in invited {
        users.push(resolve(creator, username).await);
    }
    creator
        .call(&functions::channels::InviteToChannel {
            channel: input_channel.clone(),
            users,
        })
        .await
        .unwrap();
    let peer = types::InputPeerChannel {
        channel_id,
        access_hash,
    }
    .into();
    (input_channel, peer)
}

/// The channel posts and `updateChannelTooLong`s of an `Updates`: (text, pts) of each post,
/// and whether it said too long.
fn channel_news(updates: &enums::Updates) -> (Vec<(String, i32)>, bool) {
    let list: Vec<enums::Update> = match updates {
        enums::Updates::Updates(updates) => updates.updates.clone(),
        enums::Updates::UpdateShort(short) => vec![short.update.clone()],
        _ => Vec::new(),
    };
    let mut posts = Vec::new();
    let mut too_long = false;
    for update in list {
        match update {
            enums::Update::UpdateNewChannelMessage(update) => {
                if let enums::Message::Message(message) = &update.message {
                    posts.push((message.message.clone(), update.pts));
                }
            }
            enums::Update::UpdateChannelTooLong(_) => too_long = true,
            _ => {}
        }
    }
    (posts, too_long)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_stops_reading_gets_one_channel_too_long_and_catches_up_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), CODE).await;
    let target: Target = server.target.clone();
    let gate = Arc::new(Gate::default());
    let alice = signed_in(
        EchoClient::connect(&target, None).await.unwrap(),
        "15550401",
        "alice_flood",
    )
    .await;
    let mut bob = signed_in(
        EchoClient::connect(&target, None).await.unwrap(),
        "15550402",
        "bob_flood",
    )
    .await;
    let connector = Arc::new(StallingConnector {
        address: target.address,
        gate: gate.clone(),
    });
    let mut mallory = signed_in(
        EchoClient::connect_through(connector, &target, None)
            .await
            .unwrap(),
        "15550403",
        "mallory_flood",
    )
    .await;
    let (input_channel, peer) = supergroup(&alice, "flood", &["bob_flood", "mallory_flood"]).await;
    // Whatever the invitation pushed, read now.
    while bob.next_update(Duration::from_millis(300)).await.is_some() {}
    while mallory
        .next_update(Duration::from_millis(300))
        .await
        .is_some()
    {}

    gate.close();
    let rss_before = rss_kib();
    // Bob reads as it comes, noting when the last post arrives.
    let bob_reader = tokio::spawn(async move {
        let mut seen = 0;
        while seen < POSTS {
            let updates = bob
                .next_update(Duration::from_secs(60))
                .await
                .expect("bob's posts keep coming");
            seen += channel_news(&updates).0.len();
        }
        Instant::now()
    });
    let filler = "x".repeat(POST_CHARS - 12);
    for n in 0..POSTS {
        alice
            .send_text(&peer, &format!("{n:08} {filler}"), n as i64 + 1)
            .await
            .unwrap();
    }
    let last_sent = Instant::now();
    let bob_done = tokio::time::timeout(Duration::from_secs(60), bob_reader)
        .await
        .expect("bob got every post")
        .unwrap();
    let rss_after = rss_kib();
    let bob_lag = bob_done.saturating_duration_since(last_sent);
    eprintln!(
        "flood of {POSTS} posts: bob's last post {bob_lag:?} after it was sent; RSS {} -> {} MiB",
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        bob_lag < Duration::from_secs(10),
        "bob was held up: {bob_lag:?}"
    );
    // All the posts are ~16 MiB: a server that queued them all for Mallory would hold that
    // much more. The bound leaves room for RocksDB's memtables and the allocator.
    assert!(
        rss_after.saturating_sub(rss_before) < 96 * 1024,
        "memory grew from {rss_before} to {rss_after} KiB"
    );

    // Mallory reads again: what was queued, then one updateChannelTooLong, then nothing.
    gate.open();
    let mut received: Vec<(String, i32)> = Vec::new();
    let mut too_long = 0;
    while let Some(updates) = mallory.next_update(Duration::from_secs(2)).await {
        let (posts, said_too_long) = channel_news(&updates);
        received.extend(posts);
        too_long += usize::from(said_too_long);
    }
    assert_eq!(too_long, 1, "one updateChannelTooLong");
    assert!(
        received.len() < POSTS,
        "the server held back posts after the lag ({} of {POSTS} queued)",
        received.len()
    );
    // The rest through getChannelDifference, from the last pts she has, with no gap.
    let mut pts = received.last().map_or(1, |(_, pts)| *pts);
    loop {
        let difference = mallory
            .call(&functions::updates::GetChannelDifference {
                force: false,
                channel: input_channel.clone(),
                filter: types::ChannelMessagesFilterEmpty {}.into(),
                pts,
                limit: 1000,
            })
            .await
            .unwrap();
        match difference {
            enums::updates::ChannelDifference::ChannelDifference(difference) => {
                for message in &difference.new_messages {
                    if let enums::Message::Message(message) = message {
                        received.push((message.message.clone(), 0));
                    }
                }
                pts = difference.pts;
                if difference.r#final {
                    break;
                }
            }
            enums::updates::ChannelDifference::ChannelDifferenceEmpty(_) => break,
            other => panic!("{other:?}"),
        }
    }
    let numbers: Vec<usize> = received
        .iter()
        .filter_map(|(text, _)| text.get(..8)?.parse().ok())
        .collect();
    assert_eq!(
        numbers,
        (0..POSTS).collect::<Vec<_>>(),
        "every post once, in order"
    );
    server.stop().await;
}

/// The texts of the channel posts `client` is pushed within `wait` (after which nothing
/// more came for 300 ms).
async fn pushed_posts(client: &mut EchoClient, wait: Duration) -> Vec<String> {
    let mut texts = Vec::new();
    let mut first = true;
    loop {
        let window = if first {
            wait
        } else {
            Duration::from_millis(300)
        };
        first = false;
        let Some(updates) = client.next_update(window).await else {
            return texts;
        };
        texts.extend(channel_news(&updates).0.into_iter().map(|(text, _)| text));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_threshold_only_active_members_get_posts_in_real_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), CODE).await;
    let target: Target = server.target.clone();
    let alice = signed_in(
        EchoClient::connect(&target, None).await.unwrap(),
        "15550411",
        "alice_passive",
    )
    .await;
    let mut bob = signed_in(
        EchoClient::connect(&target, None).await.unwrap(),
        "15550412",
        "bob_passive",
    )
    .await;
    let mut carol = signed_in(
        EchoClient::connect(&target, None).await.unwrap(),
        "15550413",
        "carol_passive",
    )
    .await;
    let (input_channel, peer) = supergroup(&alice, "big", &["bob_passive", "carol_passive"]).await;
    // Below the threshold (the default, 5,000), everyone present gets every post.
    alice.send_text(&peer, "for all", 1).await.unwrap();
    assert!(
        pushed_posts(&mut bob, Duration::from_secs(10))
            .await
            .contains(&"for all".to_owned())
    );
    assert!(
        pushed_posts(&mut carol, Duration::from_secs(10))
            .await
            .contains(&"for all".to_owned())
    );

    // Past it (one present member), only members active in the last minute get posts.
    server
        .backend
        .present
        .set_passive(columba_api::channels::PassivePolicy {
            online_threshold: 1,
            active_window_secs: 60,
        });
    alice.send_text(&peer, "for the active", 2).await.unwrap();
    assert_eq!(
        pushed_posts(&mut bob, Duration::from_secs(1)).await,
        Vec::<String>::new()
    );
    assert_eq!(
        pushed_posts(&mut carol, Duration::from_secs(1)).await,
        Vec::<String>::new()
    );

    // Bob opens the channel (reads its history): he gets the next post, Carol does not.
    bob.call(&functions::messages::GetHistory {
        peer: peer.clone(),
        offset_id: 0,
        offset_date: 0,
        add_offset: 0,
        limit: 10,
        max_id: 0,
        min_id: 0,
        hash: 0,
    })
    .await
    .unwrap();
    alice.send_text(&peer, "bob is here", 3).await.unwrap();
    assert_eq!(
        pushed_posts(&mut bob, Duration::from_secs(10)).await,
        vec!["bob is here".to_owned()]
    );
    assert_eq!(
        pushed_posts(&mut carol, Duration::from_secs(1)).await,
        Vec::<String>::new()
    );

    // Carol opens it through its difference: she finds both posts she was not pushed, and
    // gets the next one in real time.
    let difference = carol
        .call(&functions::updates::GetChannelDifference {
            force: false,
            channel: input_channel.clone(),
            filter: types::ChannelMessagesFilterEmpty {}.into(),
            pts: 1,
            limit: 100,
        })
        .await
        .unwrap();
    let enums::updates::ChannelDifference::ChannelDifference(difference) = difference else {
        panic!("{difference:?}")
    };
    let caught_up: Vec<String> = difference
        .new_messages
        .iter()
        .filter_map(|message| match message {
            enums::Message::Message(message) => Some(message.message.clone()),
            _ => None,
        })
        .collect();
    assert!(
        caught_up.ends_with(&["for the active".to_owned(), "bob is here".to_owned()]),
        "{caught_up:?}"
    );
    alice.send_text(&peer, "both here", 4).await.unwrap();
    assert_eq!(
        pushed_posts(&mut bob, Duration::from_secs(10)).await,
        vec!["both here".to_owned()]
    );
    assert_eq!(
        pushed_posts(&mut carol, Duration::from_secs(10)).await,
        vec!["both here".to_owned()]
    );
    server.stop().await;
}
