//! The tokio runtime over real loopback TCP (and the in-memory transport): key exchange,
//! thousands of RPCs over every MTProto framing with and without obfuscation, key reuse,
//! reconnection, limits, updates and graceful shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use columba_mtproto::crypto::RsaPrivateKey;
use columba_mtproto::handshake;
use columba_mtproto::transport::{ClientConfig as FramingConfig, Framing};
use columba_session::RequestContext;
use columba_session::plugins::{BoxFuture, RecordingPushProvider, Service};
use columba_session::runtime::{
    Client, ClientError, ClientOptions, Server, ServerOptions, TcpAcceptor, TcpConnector,
    memory_transport,
};
use columba_session::{RpcError, RpcOutcome};
use columba_store::{AuthKeyStore, MemoryAuthKeyStore};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tokio::sync::oneshot;

fn rsa_key() -> Arc<RsaPrivateKey> {
    static KEY: OnceLock<Arc<RsaPrivateKey>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(5))))
        .clone()
}

/// Echoes the request; a request starting with 0xdead fails; 0x51ee sleeps 300 ms first;
/// 0xc01d answers the permanent key id behind the session, 0xc11d the key the session uses,
/// 0x055e the user signed in (0 for none).
struct Echo;

impl Service for Echo {
    fn call(&self, context: RequestContext, request: Bytes) -> BoxFuture<'_, RpcOutcome> {
        Box::pin(async move {
            match request.get(..2) {
                // Who am I: the permanent key behind the session.
                Some([0x1d, 0xc0]) => Ok(Bytes::copy_from_slice(
                    &context.perm_auth_key_id.unwrap_or(0).to_le_bytes(),
                )),
                Some([0x1d, 0xc1]) => Ok(Bytes::copy_from_slice(
                    &context.session.auth_key_id.to_le_bytes(),
                )),
                Some([0x5e, 0x05]) => Ok(Bytes::copy_from_slice(
                    &context.user_id.unwrap_or(0).to_le_bytes(),
                )),
                Some([0xad, 0xde]) => Err(RpcError::new(400, "REQUEST_INVALID")),
                Some([0xee, 0x51]) => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok(request)
                }
                _ => Ok(request),
            }
        })
    }
}

struct Running {
    server: Server,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    store: Arc<MemoryAuthKeyStore>,
}

async fn start(options: impl FnOnce(&mut ServerOptions)) -> Running {
    let mut config = ServerOptions::new(Arc::new(handshake::ServerConfig::new(vec![rsa_key()])));
    options(&mut config);
    let store = Arc::new(MemoryAuthKeyStore::new());
    let server = Server::new(
        config,
        store.clone(),
        Arc::new(Echo),
        Arc::new(RecordingPushProvider::new()),
    );
    let listener = TcpAcceptor::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = server.clone();
    let done = tokio::spawn(async move {
        serving
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running {
        server,
        addr,
        stop: Some(stop),
        done,
        store,
    }
}

fn client_options(framing: Framing, obfuscated: bool) -> ClientOptions {
    let key = rsa_key();
    let public = key.public_key();
    ClientOptions::new(
        FramingConfig::new(framing, obfuscated),
        handshake::ClientConfig::new(vec![public.clone()], 2),
    )
}

/// Waits until `condition` holds (at most 10 s, then fails).
async fn eventually(condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn request(n: u32) -> Bytes {
    let mut body = vec![0x78, 0x56, 0x34, 0x12];
    body.extend_from_slice(&n.to_le_bytes());
    Bytes::from(body)
}

/// Connecting can be spawned on a multi-threaded runtime (a compile-time check).
#[test]
fn the_client_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let (_, connector) = memory_transport(1);
    let connect = Client::connect(
        Arc::new(connector),
        client_options(Framing::Abridged, false),
        None,
    );
    send(&connect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_rpcs_over_every_framing() {
    let running = start(|_| {}).await;
    let framings = [
        Framing::Abridged,
        Framing::Intermediate,
        Framing::PaddedIntermediate,
        Framing::Full,
    ];
    for framing in framings {
        for obfuscated in [false, true] {
            if framing == Framing::Full && obfuscated {
                continue; // the full framing has no obfuscated form
            }
            let client = Arc::new(
                Client::connect(
                    Arc::new(TcpConnector::new(running.addr)),
                    client_options(framing, obfuscated),
                    None,
                )
                .await
                .unwrap(),
            );
            let mut tasks = Vec::new();
            for worker in 0..16u32 {
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    for n in 0..125u32 {
                        let body = request(worker * 1000 + n);
                        let answer = client.invoke(body.clone()).await.unwrap();
                        assert_eq!(answer.unwrap(), body);
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            let failed = client
                .invoke(Bytes::from_static(&[0xad, 0xde, 0, 0]))
                .await
                .unwrap();
            assert_eq!(
                failed,
                Err(RpcError::new(400, "REQUEST_INVALID")),
                "{framing:?}"
            );
            client.close().await;
        }
    }
    assert_eq!(running.server.stats().requests, 7 * 2001);
    assert_eq!(running.store.as_ref().remove_expired(i64::MAX).unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_key_is_reused_and_an_unknown_key_is_rejected() {
    let running = start(|_| {}).await;
    let connector = Arc::new(TcpConnector::new(running.addr));
    let options = client_options(Framing::Intermediate, false);
    let first = Client::connect(connector.clone(), options.clone(), None)
        .await
        .unwrap();
    first.invoke(request(1)).await.unwrap().unwrap();
    let saved = first.saved_key();
    first.close().await;
    let second = Client::connect(connector.clone(), options.clone(), Some(saved.clone()))
        .await
        .unwrap();
    assert_eq!(
        second.invoke(request(2)).await.unwrap().unwrap(),
        request(2)
    );
    // The server forgets the key: the client hears -404.
    running.store.remove(saved.auth_key.id()).unwrap();
    running.server.forget_key(saved.auth_key.id());
    let third = Client::connect(connector, options, Some(saved))
        .await
        .unwrap();
    assert_eq!(
        third.invoke(request(3)).await,
        Err(ClientError::KeyRejected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_and_keeps_its_session() {
    // Long enough for a debug-build key exchange on a busy machine (the client computes
    // between its messages), short enough to expire while the test waits.
    let running = start(|options| options.idle_timeout = Duration::from_millis(1500)).await;
    let client = Client::connect(
        Arc::new(TcpConnector::new(running.addr)),
        client_options(Framing::Abridged, true),
        None,
    )
    .await
    .unwrap();
    client.invoke(request(1)).await.unwrap().unwrap();
    // The server closes the idle connection; the next request goes over a new one.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        client.invoke(request(2)).await.unwrap().unwrap(),
        request(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_address_limit_get_429() {
    let running = start(|options| options.max_connections_per_ip = 1).await;
    let connector = Arc::new(TcpConnector::new(running.addr));
    let options = client_options(Framing::Intermediate, false);
    let first = Client::connect(connector.clone(), options.clone(), None)
        .await
        .unwrap();
    first.invoke(request(1)).await.unwrap().unwrap();
    let second = Client::connect(connector, options, None).await;
    assert_eq!(second.err(), Some(ClientError::TransportError(-429)));
    assert_eq!(running.server.stats().refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_running_requests() {
    let mut running = start(|_| {}).await;
    let client = Arc::new(
        Client::connect(
            Arc::new(TcpConnector::new(running.addr)),
            client_options(Framing::PaddedIntermediate, false),
            None,
        )
        .await
        .unwrap(),
    );
    let slow = Bytes::from_static(&[0xee, 0x51, 0, 0]);
    let pending = {
        let client = client.clone();
        let slow = slow.clone();
        tokio::spawn(async move { client.invoke(slow).await })
    };
    // Loaded CI machines are slow: wait for the condition rather than a fixed time.
    eventually(|| running.server.stats().running == 1).await;
    running.stop.take().unwrap().send(()).unwrap();
    let answer = pending.await.unwrap();
    assert_eq!(
        answer.unwrap().unwrap(),
        slow,
        "answered before the connection closed"
    );
    tokio::time::timeout(Duration::from_secs(10), &mut running.done)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_reach_live_clients_and_push_otherwise() {
    let store = Arc::new(MemoryAuthKeyStore::new());
    let push = RecordingPushProvider::new();
    let options = ServerOptions::new(Arc::new(handshake::ServerConfig::new(vec![rsa_key()])));
    let server = Server::new(
        options,
        store.clone(),
        Arc::new(Echo),
        Arc::new(push.clone()),
    );
    let (listener, connector) = memory_transport(64 * 1024);
    let serving = server.clone();
    tokio::spawn(async move { serving.serve(listener, std::future::pending()).await });
    let client = Client::connect(
        Arc::new(connector),
        client_options(Framing::Intermediate, false),
        None,
    )
    .await
    .unwrap();
    let mut updates = client.updates().unwrap();
    client.invoke(request(1)).await.unwrap().unwrap();
    // Sign the key in as user 5.
    let key_id = client.saved_key().auth_key.id();
    store.set_user(key_id, Some(5)).unwrap();
    server.set_user(key_id, Some(5));
    client.invoke(request(2)).await.unwrap().unwrap();
    server.send_update(5, request(77));
    let update = tokio::time::timeout(Duration::from_secs(5), updates.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(update, request(77));
    server.send_update(6, request(78));
    eventually(|| !push.sent().is_empty()).await;
    let sent = push.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].user_id, sent[0].update.clone()), (6, request(78)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_and_are_dropped_on_the_server() {
    let running = start(|_| {}).await;
    let mut options = client_options(Framing::Intermediate, false);
    options.request_timeout = Duration::from_millis(100);
    let client = Client::connect(Arc::new(TcpConnector::new(running.addr)), options, None)
        .await
        .unwrap();
    let slow = Bytes::from_static(&[0xee, 0x51, 0, 0]);
    assert_eq!(client.invoke(slow).await, Err(ClientError::Timeout));
    // The server was asked to drop the answer: the call is aborted and its place freed.
    eventually(|| running.server.stats().running == 0).await;
    assert_eq!(
        client.invoke(request(1)).await.unwrap().unwrap(),
        request(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_keys_are_bound_to_the_permanent_key() {
    let running = start(|_| {}).await;
    let mut options = client_options(Framing::Intermediate, true);
    options.temporary_key = Some(Duration::from_secs(3600));
    let connector = Arc::new(TcpConnector::new(running.addr));
    let client = Client::connect(connector.clone(), options.clone(), None)
        .await
        .unwrap();
    let perm = client.saved_key().auth_key.id();
    let who = client
        .invoke(Bytes::from_static(&[0x1d, 0xc0, 0, 0]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        who.as_ref(),
        perm.to_le_bytes(),
        "the session stands for the permanent key"
    );
    assert_eq!(
        client.invoke(request(5)).await.unwrap().unwrap(),
        request(5)
    );
    // A second connection with the saved permanent key binds a new temporary key.
    let again = Client::connect(connector, options, Some(client.saved_key()))
        .await
        .unwrap();
    let who = again
        .invoke(Bytes::from_static(&[0x1d, 0xc0, 0, 0]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(who.as_ref(), perm.to_le_bytes());
}

/// Asks the server for an `i64` the test service answers (`0xc11d`, `0x055e`).
async fn ask(client: &Client, what: [u8; 2]) -> i64 {
    let answer = client
        .invoke(Bytes::copy_from_slice(&[what[0], what[1], 0, 0]))
        .await
        .unwrap()
        .unwrap();
    i64::from_le_bytes(answer.as_ref().try_into().unwrap())
}

/// The endpoint is sharded by auth_key_id (the id modulo the shard count picks the shard): a
/// sign-in on the permanent key must reach what is cached about its temporary keys in other
/// shards, and updates for the user must find them there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_reaches_temporary_keys_in_other_shards() {
    const SHARDS: usize = 8;
    let running = start(|options| options.endpoint_shards = SHARDS).await;
    let mut options = client_options(Framing::Intermediate, false);
    options.temporary_key = Some(Duration::from_secs(3600));
    let connector = Arc::new(TcpConnector::new(running.addr));
    let shard = |id: i64| id as u64 % SHARDS as u64;
    let mut saved = None;
    let mut found = None;
    // A new temporary key per connection: one in another shard than the permanent key's
    // comes within a few tries (7 in 8 each).
    for _ in 0..32 {
        let client = Client::connect(connector.clone(), options.clone(), saved.clone())
            .await
            .unwrap();
        let perm = client.saved_key().auth_key.id();
        saved = Some(client.saved_key());
        let temp = ask(&client, [0x1d, 0xc1]).await;
        assert_ne!(temp, perm, "the session runs on a temporary key");
        if shard(temp) != shard(perm) {
            found = Some((client, perm));
            break;
        }
        client.close().await;
    }
    let (client, perm) = found.expect("a temporary key in another shard");
    let mut updates = client.updates().unwrap();
    assert_eq!(ask(&client, [0x5e, 0x05]).await, 0, "nobody signed in yet");

    running.store.set_user(perm, Some(7)).unwrap();
    running.server.set_user(perm, Some(7));
    assert_eq!(ask(&client, [0x5e, 0x05]).await, 7);
    running.server.send_update(7, request(99));
    let update = tokio::time::timeout(Duration::from_secs(5), updates.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(update, request(99));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_travel_through_the_update_bus() {
    use columba_session::SaltSource;
    use columba_session::runtime::InProcessUpdateBus;
    let store = Arc::new(MemoryAuthKeyStore::new());
    let bus = Arc::new(InProcessUpdateBus::new(64));
    let options = ServerOptions::new(Arc::new(handshake::ServerConfig::new(vec![rsa_key()])));
    let salts = Arc::new(SaltSource::new([3; 32]));
    let push = RecordingPushProvider::new();
    // Two nodes on one bus: the update is published on the first and delivered by the
    // second, which holds the client's session.
    let first = Server::with_salts(
        options.clone(),
        store.clone(),
        Arc::new(Echo),
        Arc::new(push.clone()),
        salts.clone(),
        Some(bus.clone()),
    );
    let second = Server::with_salts(
        options,
        store.clone(),
        Arc::new(Echo),
        Arc::new(push.clone()),
        salts,
        Some(bus.clone()),
    );
    let (listener, connector) = memory_transport(64 * 1024);
    let serving = second.clone();
    tokio::spawn(async move { serving.serve(listener, std::future::pending()).await });
    let (idle_listener, _unused) = memory_transport(1024);
    let serving = first.clone();
    tokio::spawn(async move { serving.serve(idle_listener, std::future::pending()).await });
    let client = Client::connect(
        Arc::new(connector),
        client_options(Framing::Abridged, false),
        None,
    )
    .await
    .unwrap();
    let mut updates = client.updates().unwrap();
    let key_id = client.saved_key().auth_key.id();
    store.set_user(key_id, Some(9)).unwrap();
    second.set_user(key_id, Some(9));
    client.invoke(request(1)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.send_update(9, request(99));
    let update = tokio::time::timeout(Duration::from_secs(5), updates.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(update, request(99));
}

/// The sweep, with a simulated clock: a connected client's key stays though it never signed
/// in, keys of a flood that went away go, a signed-in key and a young key stay, an expired
/// temporary key and an abandoned upload go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_what_nobody_uses_and_keeps_what_is_in_use() {
    use columba_store::auth_key::{AuthKeyRecord, KeyLifetime};
    use columba_store::{FileStore, MemoryFileStore};

    let files = Arc::new(MemoryFileStore::new());
    let sweep_files: Arc<dyn FileStore> = files.clone();
    let running = start(move |options| {
        options.housekeeping.files = Some(sweep_files);
        options.housekeeping.unsigned_key_age = Some(Duration::from_secs(3600));
    })
    .await;
    let connector = Arc::new(TcpConnector::new(running.addr));
    let client = Client::connect(
        connector,
        client_options(Framing::Intermediate, false),
        None,
    )
    .await
    .unwrap();
    client.invoke(request(1)).await.unwrap().unwrap();
    let connected = client.saved_key().auth_key.id();
    let created = running.store.get(connected).unwrap().unwrap().created_at;

    let record =
        |id: i64, lifetime: KeyLifetime, created_at: i64, user_id: Option<i64>| AuthKeyRecord {
            auth_key_id: id,
            key: [id as u8; 256],
            lifetime,
            created_at,
            dc: None,
            user_id,
        };
    for id in 1..=1000 {
        running
            .store
            .insert(record(id, KeyLifetime::Permanent, created, None))
            .unwrap();
    }
    running
        .store
        .insert(record(2001, KeyLifetime::Permanent, created, Some(7)))
        .unwrap();
    running
        .store
        .insert(record(
            2002,
            KeyLifetime::Permanent,
            created + 3 * 3600,
            None,
        ))
        .unwrap();
    let expires_at = created + 60;
    running
        .store
        .insert(record(
            2003,
            KeyLifetime::Temporary { expires_at },
            created,
            None,
        ))
        .unwrap();
    files.save_part(7, 99, 0, b"abandoned", created).unwrap();

    // Three hours and a second later: the unfinished upload (three hours) and the
    // unsigned keys (one hour) are old enough; key 2002, made just now, is not.
    let server = running.server.clone();
    let report = tokio::task::spawn_blocking(move || server.sweep(created + 3 * 3600 + 1))
        .await
        .unwrap();
    assert_eq!(report.unsigned_keys, 1000, "{report:?}");
    assert_eq!(report.expired_keys, 1, "{report:?}");
    assert_eq!(report.uploads, 1, "{report:?}");
    assert!(
        running.store.contains(connected).unwrap(),
        "the connected client's key stays"
    );
    assert!(
        running.store.contains(2001).unwrap(),
        "a signed-in key stays"
    );
    assert!(!running.store.contains(500).unwrap());
    assert!(running.store.contains(2002).unwrap(), "a young key stays");
    // The connected client goes on.
    client.invoke(request(2)).await.unwrap().unwrap();
    // And a sweep long after keeps the young key only while it is young.
    let server = running.server.clone();
    let later = tokio::task::spawn_blocking(move || server.sweep(created + 3 * 3600 + 3601))
        .await
        .unwrap();
    assert_eq!(later.unsigned_keys, 1);
    assert!(!running.store.contains(2002).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_one_message_still_sends_everything() {
    let running = start(|options| {
        options.transmit_batch = 1;
        options.close_linger = Duration::from_millis(50);
    })
    .await;
    let client = Arc::new(
        Client::connect(
            Arc::new(TcpConnector::new(running.addr)),
            client_options(Framing::Intermediate, false),
            None,
        )
        .await
        .unwrap(),
    );
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..200u32 {
        let client = client.clone();
        calls.spawn(async move { (n, client.invoke(request(n)).await.unwrap().unwrap()) });
    }
    let mut answered = 0;
    while let Some(done) = calls.join_next().await {
        let (n, answer) = done.unwrap();
        assert_eq!(answer, request(n));
        answered += 1;
    }
    assert_eq!(answered, 200);
}
