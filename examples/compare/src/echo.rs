//! Suite `echo`: a message through the whole server and its stores.
//!
//! - `echo_full_64`: 64 signed-in clients over loopback TCP, each sending a text message to
//!   `@echo` and waiting for the echo's reply as a pushed update, again and again: the echo
//!   server as it ships (the stock API and the echo bot on RocksDB message, user, key and
//!   file stores, every send synced, in a temporary directory). Peer
//!   (`echo_without_storing`): the same server, clients and sign-ins, with a service in
//!   front that answers `messages.sendMessage` itself, without storing: the same answer
//!   (`updateMessageID` and `updateNewMessage`) and the same pushed reply, built and encoded
//!   per message. The ratio is what storing the two messages of an echo (and the API's work
//!   around them) leaves of the server's throughput.
//!
//! Both servers and both sets of clients run on one multi-threaded tokio runtime, measured
//! interleaved.
#![allow(
    clippy::expect_used,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use columba_examples::client::{EchoClient, Target, new_messages};
use columba_examples::echo::{ECHO_USER_ID, EchoOptions, start, start_wrapped};
use columba_mtproto::tl::api::{enums, functions, types};
use columba_mtproto::tl::{Deserializable as _, Identifiable as _, Reader, Serializable as _};
use columba_session::plugins::{BoxFuture, Service};
use columba_session::runtime::ServerHandle;
use columba_session::{RequestContext, RpcOutcome};
use tokio::sync::Mutex;

use super::{Side, compare};

const CLIENTS: usize = 64;
/// Echoes per client in one timed batch.
const ROUNDS: usize = 10;
const CODE: &str = "24680";

/// Answers `messages.sendMessage` without storing: the sender's answer and the echo's reply,
/// built and encoded for each message; everything else goes to the echo's own service.
struct WithoutStoring {
    inner: Arc<dyn Service>,
    server: OnceLock<ServerHandle>,
    next_id: AtomicI32,
}

impl WithoutStoring {
    fn echo(&self, context: &RequestContext, request: &Bytes) -> Option<Bytes> {
        let user = context.user_id?;
        let send = functions::messages::SendMessage::from_bytes(request).ok()?;
        let date = 1_700_000_000;
        let id = self.next_id.fetch_add(2, Ordering::Relaxed);
        let users = || -> Vec<enums::User> {
            [user, ECHO_USER_ID]
                .into_iter()
                .map(|id| {
                    types::User {
                        id,
                        access_hash: Some(id),
                        first_name: Some("User".to_owned()),
                        ..Default::default()
                    }
                    .into()
                })
                .collect()
        };
        let message = |id: i32, out: bool, from: i64| -> enums::Message {
            let mut message = types::Message::new(
                id,
                types::PeerUser {
                    user_id: if out { ECHO_USER_ID } else { from },
                }
                .into(),
                date,
                send.message.clone(),
            );
            message.out = out;
            message.from_id = Some(types::PeerUser { user_id: from }.into());
            message.into()
        };
        let answer: enums::Updates = types::Updates {
            updates: vec![
                types::UpdateMessageID {
                    id,
                    random_id: send.random_id,
                }
                .into(),
                types::UpdateNewMessage {
                    message: message(id, true, user),
                    pts: id,
                    pts_count: 1,
                }
                .into(),
            ],
            users: users(),
            chats: Vec::new(),
            date,
            seq: 0,
        }
        .into();
        let reply: enums::Updates = types::Updates {
            updates: vec![
                types::UpdateNewMessage {
                    message: message(id + 1, false, ECHO_USER_ID),
                    pts: id + 1,
                    pts_count: 1,
                }
                .into(),
            ],
            users: users(),
            chats: Vec::new(),
            date,
            seq: 0,
        }
        .into();
        if let Some(server) = self.server.get() {
            server.send_update(user, Bytes::from(reply.to_bytes()));
        }
        Some(Bytes::from(answer.to_bytes()))
    }
}

impl Service for WithoutStoring {
    fn call(&self, context: RequestContext, request: Bytes) -> BoxFuture<'_, RpcOutcome> {
        let is_send = Reader::new(&request).peek_u32()
            == Some(functions::messages::SendMessage::CONSTRUCTOR_ID);
        if is_send {
            if let Some(answer) = self.echo(&context, &request) {
                return Box::pin(async move { Ok(answer) });
            }
        }
        self.inner.call(context, request)
    }

    fn bind(&self, server: ServerHandle) {
        let _ = self.server.set(server.clone());
        self.inner.bind(server);
    }
}

/// A signed-in client with `@echo` resolved.
struct Echoer {
    client: Mutex<EchoClient>,
    echo: enums::InputPeer,
}

async fn clients(target: &Target, prefix: &str) -> Vec<Arc<Echoer>> {
    let mut connecting = tokio::task::JoinSet::new();
    for index in 0..CLIENTS {
        let target = target.clone();
        let phone = format!("{prefix}{index:06}");
        connecting.spawn(async move {
            let client = EchoClient::connect(&target, None).await.expect("a client");
            client.sign_in(&phone, CODE).await.expect("a sign-in");
            let echo = client.echo_peer().await.expect("the echo");
            Arc::new(Echoer {
                client: Mutex::new(client),
                echo,
            })
        });
    }
    let mut clients = Vec::with_capacity(CLIENTS);
    while let Some(client) = connecting.join_next().await {
        clients.push(client.expect("a connecting task"));
    }
    clients
}

/// Every client's rounds at once; the time until all are done.
fn batch(
    runtime: &tokio::runtime::Runtime,
    clients: &[Arc<Echoer>],
    round: &AtomicI32,
) -> Duration {
    let first = round.fetch_add(1, Ordering::Relaxed);
    runtime.block_on(async {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (index, echoer) in clients.iter().enumerate() {
            let echoer = Arc::clone(echoer);
            tasks.spawn(async move {
                let mut client = echoer.client.lock().await;
                for n in 0..ROUNDS {
                    let text = format!("echo {first} {index} {n}");
                    let random_id = i64::from(first) << 32 | (index * ROUNDS + n) as i64;
                    client
                        .send_text(&echoer.echo, &text, random_id)
                        .await
                        .expect("a send");
                    loop {
                        let updates = client
                            .next_update(Duration::from_secs(30))
                            .await
                            .expect("the echo within 30 s");
                        if new_messages(&updates)
                            .iter()
                            .any(|message| !message.out && message.message == text)
                        {
                            break;
                        }
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("a client's task");
        }
        started.elapsed()
    })
}

pub(crate) fn run() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = |name: &str| EchoOptions {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data: dir.path().join(name),
        fixed_code: Some(CODE.to_owned()),
        max_connections_per_ip: Some(CLIENTS * 4),
        bots: Vec::new(),
        bot_api: None,
    };
    let (ours, theirs) = runtime.block_on(async {
        let ours = start(options("ours")).await.expect("the echo server");
        let theirs = start_wrapped(options("without-storing"), |inner| {
            Arc::new(WithoutStoring {
                inner,
                server: OnceLock::new(),
                next_id: AtomicI32::new(1),
            })
        })
        .await
        .expect("the echo server without storing");
        let targets = [
            Target::new(ours.address, ours.public_key.clone()),
            Target::new(theirs.address, theirs.public_key.clone()),
        ];
        for started in [ours, theirs] {
            tokio::spawn(async move {
                let _ = started.serve(std::future::pending()).await;
            });
        }
        let [ours, theirs] = targets;
        (clients(&ours, "1990").await, clients(&theirs, "1991").await)
    });
    let round = AtomicI32::new(1);
    let work = (CLIENTS * ROUNDS) as f64;
    compare(
        "echo_full_64",
        "echoes/s",
        "echo_without_storing",
        Side::timed(work, || batch(&runtime, &ours, &round)),
        Side::timed(work, || batch(&runtime, &theirs, &round)),
    );
    runtime.shutdown_timeout(Duration::from_secs(1));
}
