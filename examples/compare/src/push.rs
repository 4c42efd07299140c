//! `push_one_user_10k` (suite `server`): what an update to one user costs while many other
//! sessions are connected.
//!
//! Ours: a server runtime with 10,000 other signed-in users connected (one session each,
//! over the in-memory transport) besides the target user; one update at a time is pushed
//! to the target user (`Server::send_update`) and awaited on its client's update stream.
//! Peer (`push_one_user_10_others`): the same with 10 other sessions. A ratio near 1 says
//! that pushing to one user costs what that user's sessions cost, not what every session
//! on the server costs.
#![allow(
    clippy::expect_used,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use columba_mtproto::crypto::{AuthKey, RsaPrivateKey};
use columba_mtproto::handshake;
use columba_mtproto::transport::{ClientConfig as FramingConfig, Framing};
use columba_session::plugins::LoggingPushProvider;
use columba_session::runtime::{
    Client, ClientOptions, SavedKey, Server, ServerOptions, memory_transport,
};
use columba_store::MemoryAuthKeyStore;
use columba_store::auth_key::{AuthKeyRecord, AuthKeyStore as _, KeyLifetime};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore as _, SeedableRng};
use tokio::sync::mpsc;

use super::{Side, compare};

/// Pushes in one timed batch.
const PUSHES: usize = 200;
/// The user the updates are for.
const TARGET: i64 = 1;

/// A server with the target user's client and `others` other users' clients connected.
struct Setup {
    server: Server,
    updates: mpsc::Receiver<Bytes>,
    /// Kept connected.
    _clients: Vec<Arc<Client>>,
}

async fn setup(key: &Arc<RsaPrivateKey>, others: usize, seed: u64) -> Setup {
    let keys = Arc::new(MemoryAuthKeyStore::new());
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut saved = Vec::with_capacity(others + 1);
    for user in 0..=others {
        let mut bytes = [0u8; 256];
        rng.fill_bytes(&mut bytes);
        let auth_key = AuthKey::from_bytes(bytes);
        keys.insert(AuthKeyRecord {
            auth_key_id: auth_key.id(),
            key: bytes,
            lifetime: KeyLifetime::Permanent,
            created_at: 0,
            dc: None,
            user_id: Some(TARGET + user as i64),
        })
        .expect("a key");
        saved.push(SavedKey {
            auth_key,
            salt: 0,
            time_offset: 0,
        });
    }
    let mut options = ServerOptions::new(Arc::new(handshake::ServerConfig::new(vec![key.clone()])));
    options.max_connections = others + 100;
    let server = Server::new(
        options,
        keys,
        Arc::new(super::server::Echo),
        Arc::new(LoggingPushProvider),
    );
    let (listener, connector) = memory_transport(64 * 1024);
    let connector = Arc::new(connector);
    let serving = server.clone();
    tokio::spawn(async move {
        let _ = serving.serve(listener, std::future::pending()).await;
    });
    // Every client sends one request, so that the server has its session.
    let mut connecting = tokio::task::JoinSet::new();
    let mut clients = Vec::with_capacity(saved.len());
    for (index, saved) in saved.into_iter().enumerate() {
        let options = ClientOptions::new(
            FramingConfig::new(Framing::Intermediate, false),
            handshake::ClientConfig::new(vec![key.public_key().clone()], 1),
        );
        let connector = connector.clone();
        connecting.spawn(async move {
            let client = Client::connect(connector, options, Some(saved))
                .await
                .expect("a client");
            client
                .invoke(super::server::query())
                .await
                .expect("an answer")
                .expect("not an error");
            (index, Arc::new(client))
        });
        // A few hundred at a time, so that the memory transport's queue keeps up.
        if connecting.len() >= 256 {
            clients.push(
                connecting
                    .join_next()
                    .await
                    .expect("a task")
                    .expect("connected"),
            );
        }
    }
    while let Some(done) = connecting.join_next().await {
        clients.push(done.expect("connected"));
    }
    clients.sort_by_key(|(index, _)| *index);
    let updates = clients
        .first()
        .and_then(|(_, client)| client.updates())
        .expect("the target's updates");
    Setup {
        server,
        updates,
        _clients: clients.into_iter().map(|(_, client)| client).collect(),
    }
}

fn pushes(runtime: &tokio::runtime::Runtime, setup: &mut Setup, update: &Bytes) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..PUSHES {
            setup.server.send_update(TARGET, update.clone());
            let got = setup.updates.recv().await.expect("an update");
            assert_eq!(got.len(), update.len());
        }
        started.elapsed()
    })
}

pub(crate) fn run(runtime: &tokio::runtime::Runtime, key: &Arc<RsaPrivateKey>) {
    // `updatesTooLong`: any update will do, the server does not look into it.
    const TOO_LONG: [u8; 4] = 0xe317_af7e_u32.to_le_bytes();
    let update = Bytes::from_static(&TOO_LONG);
    let started = Instant::now();
    let mut many = runtime.block_on(setup(key, 10_000, 1));
    let mut few = runtime.block_on(setup(key, 10, 2));
    eprintln!(
        "push_one_user_10k: set up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    compare(
        "push_one_user_10k",
        "updates/s",
        "push_one_user_10_others",
        Side::timed(PUSHES as f64, || pushes(runtime, &mut many, &update)),
        Side::timed(PUSHES as f64, || pushes(runtime, &mut few, &update)),
    );
}
