//! Suite `botapi`: a bot's sends and updates through the Bot API's HTTP front against the
//! same over MTProto, on one echo server (RocksDB stores, every send synced).
//!
//! - `botapi_send_message`: 64 keep-alive HTTP connections, each sending `sendMessage`
//!   (a short text to one person) again and again, waiting for each answer. Peer
//!   (`mtproto_bot_send_message`): 64 MTProto sessions of the same bot (signed in with its
//!   token) sending the same `messages.sendMessage`. Both store the same two messages per
//!   send (the bot's and the person's copies) and tell the person's session; the ratio is
//!   what HTTP, JSON and the Bot API's objects cost against MTProto's framing, encryption and
//!   TL.
//! - `botapi_update_delivery`: a person sends the bot a message and waits until the bot has
//!   it, one at a time, the bot waiting in a long `getUpdates`; peer
//!   (`mtproto_bot_update_delivery`): the same, the bot getting the message as an update
//!   pushed to its MTProto session. Deliveries per second; the mean delivery latency is its
//!   inverse.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]
#![allow(
    clippy::indexing_slicing,
    reason = "indexing a serde_json::Value gives Null for what is missing; it does not panic"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use columba_examples::client::{EchoClient, Target, new_messages};
use columba_examples::echo::{EchoOptions, start};
use columba_mtproto::tl::api::{enums, functions, types};
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::Mutex;

use super::{Side, compare};

const CONNECTIONS: usize = 64;
/// Sends per connection in one timed batch.
const ROUNDS: usize = 10;
/// Deliveries in one timed batch.
const DELIVERIES: usize = 20;
const CODE: &str = "24680";
const BOT: &str = "bench_bot";

/// One keep-alive HTTP connection.
type Connection = Mutex<http1::SendRequest<Full<Bytes>>>;

async fn connection(address: SocketAddr) -> Connection {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("a connection to the Bot API");
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("an HTTP handshake");
    tokio::spawn(connection);
    Mutex::new(sender)
}

async fn post(connection: &Connection, path: &str, body: String) -> serde_json::Value {
    let mut sender = connection.lock().await;
    sender.ready().await.expect("a ready connection");
    let request = Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a request");
    let response = sender.send_request(request).await.expect("an answer");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(value["ok"], serde_json::json!(true), "{value}");
    value
}

struct Setup {
    http: Vec<Arc<Connection>>,
    token: String,
    person: i64,
    bots: Vec<Arc<Mutex<EchoClient>>>,
    person_peer: enums::InputPeer,
    person_client: Mutex<EchoClient>,
    bot_peer: enums::InputPeer,
    poller: Arc<Connection>,
    offset: AtomicI64,
}

pub(crate) fn run() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let setup = runtime.block_on(async {
        let started = start(EchoOptions {
            listen: "127.0.0.1:0".parse().expect("an address"),
            data: dir.path().join("server"),
            fixed_code: Some(CODE.to_owned()),
            max_connections_per_ip: Some(CONNECTIONS * 4),
            bots: vec![BOT.to_owned()],
            bot_api: Some("127.0.0.1:0".parse().expect("an address")),
        })
        .await
        .expect("the echo server");
        let target = Target::new(started.address, started.public_key.clone());
        let api = started.bot_api_address.expect("the Bot API's address");
        let token = started
            .bot_tokens
            .first()
            .expect("the bot's token")
            .1
            .clone();
        let backend = started.backend();
        tokio::spawn(async move {
            let _ = started.serve(std::future::pending()).await;
        });
        // The person starts the conversation (bots do not).
        let person_client = EchoClient::connect(&target, None).await.expect("a client");
        let person = person_client
            .sign_in("19920000", CODE)
            .await
            .expect("a sign-in")
            .id;
        let found = person_client
            .call(&functions::contacts::ResolveUsername {
                username: BOT.to_owned(),
                referer: None,
            })
            .await
            .expect("the bot");
        let enums::contacts::ResolvedPeer::ResolvedPeer(found) = found;
        let Some(enums::User::User(bot_user)) = found.users.first().cloned() else {
            panic!("the bot's user");
        };
        let bot_peer: enums::InputPeer = types::InputPeerUser {
            user_id: bot_user.id,
            access_hash: bot_user.access_hash.unwrap_or_default(),
        }
        .into();
        person_client
            .send_text(&bot_peer, "/start", 1)
            .await
            .expect("/start");
        let mut bots = Vec::with_capacity(CONNECTIONS);
        // The person as the bot knows them (from the /start it got).
        let person_peer: enums::InputPeer = types::InputPeerUser {
            user_id: person,
            access_hash: backend.access.user_hash(person),
        }
        .into();
        for _ in 0..CONNECTIONS {
            let bot = EchoClient::connect(&target, None)
                .await
                .expect("a bot client");
            let authorization = bot
                .call(&functions::auth::ImportBotAuthorization {
                    flags: 0,
                    api_id: 1,
                    api_hash: String::new(),
                    bot_auth_token: token.clone(),
                })
                .await
                .expect("the bot's sign-in");
            drop(authorization);
            bots.push(Arc::new(Mutex::new(bot)));
        }
        let mut http = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            http.push(Arc::new(connection(api).await));
        }
        let poller = Arc::new(connection(api).await);
        Setup {
            http,
            token,
            person,
            bots,
            person_peer,
            person_client: Mutex::new(person_client),
            bot_peer,
            poller,
            offset: AtomicI64::new(0),
        }
    });
    let setup = Arc::new(setup);
    let random = AtomicI64::new(1 << 40);
    let work = (CONNECTIONS * ROUNDS) as f64;
    compare(
        "botapi_send_message",
        "sends/s",
        "mtproto_bot_send_message",
        Side::timed(work, || http_sends(&runtime, &setup)),
        Side::timed(work, || mtproto_sends(&runtime, &setup, &random)),
    );
    compare(
        "botapi_update_delivery",
        "deliveries/s",
        "mtproto_bot_update_delivery",
        Side::timed(DELIVERIES as f64, || polled(&runtime, &setup, &random)),
        Side::timed(DELIVERIES as f64, || pushed(&runtime, &setup, &random)),
    );
    runtime.shutdown_timeout(Duration::from_secs(1));
}

fn http_sends(runtime: &tokio::runtime::Runtime, setup: &Arc<Setup>) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (index, connection) in setup.http.iter().enumerate() {
            let (connection, setup) = (connection.clone(), setup.clone());
            tasks.spawn(async move {
                let path = format!("/bot{}/sendMessage", setup.token);
                for n in 0..ROUNDS {
                    let body = serde_json::json!({"chat_id": setup.person, "text": format!("http {index} {n}")});
                    post(&connection, &path, body.to_string()).await;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("a sender");
        }
        started.elapsed()
    })
}

fn mtproto_sends(
    runtime: &tokio::runtime::Runtime,
    setup: &Arc<Setup>,
    random: &AtomicI64,
) -> Duration {
    let first = random.fetch_add((CONNECTIONS * ROUNDS) as i64, Ordering::Relaxed);
    runtime.block_on(async {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (index, bot) in setup.bots.iter().enumerate() {
            let (bot, setup) = (bot.clone(), setup.clone());
            tasks.spawn(async move {
                let bot = bot.lock().await;
                for n in 0..ROUNDS {
                    let random_id = first + (index * ROUNDS + n) as i64;
                    bot.send_text(
                        &setup.person_peer,
                        &format!("mtproto {index} {n}"),
                        random_id,
                    )
                    .await
                    .expect("a send");
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("a sender");
        }
        started.elapsed()
    })
}

/// The person's messages reach the bot through `getUpdates`, one at a time.
fn polled(runtime: &tokio::runtime::Runtime, setup: &Arc<Setup>, random: &AtomicI64) -> Duration {
    runtime.block_on(async {
        let path = format!("/bot{}/getUpdates", setup.token);
        let started = Instant::now();
        for _ in 0..DELIVERIES {
            let n = random.fetch_add(2, Ordering::Relaxed);
            let text = format!("poll {n}");
            let poll = {
                let (setup, path, text) = (setup.clone(), path.clone(), text.clone());
                tokio::spawn(async move {
                    loop {
                        let offset = setup.offset.load(Ordering::Relaxed);
                        let body = serde_json::json!({"offset": offset, "timeout": 10});
                        let answer = post(&setup.poller, &path, body.to_string()).await;
                        let updates = answer["result"].as_array().cloned().unwrap_or_default();
                        let mut found = false;
                        for update in &updates {
                            let id = update["update_id"].as_i64().unwrap_or_default();
                            setup.offset.fetch_max(id + 1, Ordering::Relaxed);
                            found |= update["message"]["text"].as_str() == Some(text.as_str());
                        }
                        if found {
                            return;
                        }
                    }
                })
            };
            setup
                .person_client
                .lock()
                .await
                .send_text(&setup.bot_peer, &text, n)
                .await
                .expect("the person's send");
            poll.await.expect("the poller");
        }
        started.elapsed()
    })
}

/// The person's messages reach the bot's MTProto session as pushed updates.
fn pushed(runtime: &tokio::runtime::Runtime, setup: &Arc<Setup>, random: &AtomicI64) -> Duration {
    runtime.block_on(async {
        let bot = setup.bots.first().expect("a bot session").clone();
        let started = Instant::now();
        for _ in 0..DELIVERIES {
            let n = random.fetch_add(2, Ordering::Relaxed);
            let text = format!("push {n}");
            setup
                .person_client
                .lock()
                .await
                .send_text(&setup.bot_peer, &text, n)
                .await
                .expect("the person's send");
            let mut bot = bot.lock().await;
            loop {
                let updates = bot
                    .next_update(Duration::from_secs(30))
                    .await
                    .expect("the update within 30 s");
                if new_messages(&updates)
                    .iter()
                    .any(|message| !message.out && message.message == text)
                {
                    break;
                }
            }
        }
        started.elapsed()
    })
}
