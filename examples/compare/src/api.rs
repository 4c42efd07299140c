//! Suite `api`: what the API layer (`columba-api`) costs on a full round trip.
//!
//! - `api_roundtrip`: 64 runtime clients over loopback TCP, each sending, one after
//!   another, `invokeWithLayer(initConnection(help.getConfig))` and `help.getNearestDc`
//!   alternately, to a server whose service is `columba_api::Api` with the stock `help`
//!   module (the wrappers taken off and kept per session, the route found by constructor id,
//!   the request decoded, the handler run, the answer encoded). Peer
//!   (`raw_bytes_service`): the same server and clients with a service of bytes that answers
//!   each of the two requests with the same answer, encoded once beforehand.
//!
//! Both servers and both sets of clients run on one multi-threaded tokio runtime, measured
//! interleaved. The ratio says what share of the raw service's throughput the API layer
//! keeps (goal: at least 0.9).
#![allow(
    clippy::expect_used,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use columba_api::{AccessSecret, Api, Backend, DcList};
use columba_mtproto::crypto::RsaPrivateKey;
use columba_mtproto::handshake;
use columba_mtproto::tl::api::functions;
use columba_mtproto::tl::{Identifiable as _, RawObject, Reader, Serializable as _};
use columba_mtproto::transport::{ClientConfig as FramingConfig, Framing};
use columba_session::plugins::{BoxFuture, LoggingPushProvider, Service};
use columba_session::runtime::{
    Client, ClientOptions, Server, ServerOptions, TcpAcceptor, TcpConnector,
};
use columba_session::{RequestContext, RpcOutcome};
use columba_store::{MemoryAuthKeyStore, MemoryFileStore, MemoryMessageStore};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use super::{Side, compare};

const CONNECTIONS: usize = 64;
/// Requests per connection in one timed batch (half of each kind).
const ROUNDS: usize = 20;

/// The two requests, as a client sends them.
fn requests() -> [Bytes; 2] {
    let wrapped = functions::InvokeWithLayer {
        layer: columba_mtproto::tl::API_LAYER,
        query: RawObject(
            functions::InitConnection {
                api_id: 6,
                device_model: "bench".to_owned(),
                system_version: "Linux".to_owned(),
                app_version: "1.0".to_owned(),
                system_lang_code: "en".to_owned(),
                lang_pack: String::new(),
                lang_code: "en".to_owned(),
                proxy: None,
                params: None,
                query: RawObject(functions::help::GetConfig {}.to_bytes()),
            }
            .to_bytes(),
        ),
    };
    [
        Bytes::from(wrapped.to_bytes()),
        Bytes::from(functions::help::GetNearestDc {}.to_bytes()),
    ]
}

/// Answers the two requests with answers encoded once.
struct RawBytes {
    config: Bytes,
    nearest: Bytes,
}

impl Service for RawBytes {
    fn call(&self, _: RequestContext, request: Bytes) -> BoxFuture<'_, RpcOutcome> {
        let wrapped = Reader::new(&request).peek_u32()
            == Some(functions::InvokeWithLayer::<RawObject>::CONSTRUCTOR_ID);
        let answer = if wrapped {
            self.config.clone()
        } else {
            self.nearest.clone()
        };
        Box::pin(async move { Ok(answer) })
    }
}

async fn serve(service: Arc<dyn Service>, key: &Arc<RsaPrivateKey>) -> Vec<Arc<Client>> {
    let mut options = ServerOptions::new(Arc::new(handshake::ServerConfig::new(vec![key.clone()])));
    options.max_connections_per_ip = CONNECTIONS * 4;
    let server = Server::new(
        options,
        Arc::new(MemoryAuthKeyStore::new()),
        service,
        Arc::new(LoggingPushProvider),
    );
    let listener = TcpAcceptor::bind("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("a listener");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = server.serve(listener, std::future::pending()).await;
    });
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let options = ClientOptions::new(
            FramingConfig::new(Framing::Intermediate, false),
            handshake::ClientConfig::new(vec![key.public_key().clone()], 1),
        );
        connecting.spawn(async move {
            Client::connect(Arc::new(TcpConnector::new(address)), options, None)
                .await
                .expect("a client")
        });
    }
    let mut clients = Vec::with_capacity(CONNECTIONS);
    while let Some(client) = connecting.join_next().await {
        clients.push(Arc::new(client.expect("a connecting task")));
    }
    clients
}

/// Every client's rounds at once; the time until all are done.
fn batch(
    runtime: &tokio::runtime::Runtime,
    clients: &[Arc<Client>],
    expected: [usize; 2],
) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for client in clients {
            let client = Arc::clone(client);
            tasks.spawn(async move {
                let requests = requests();
                for round in 0..ROUNDS {
                    let kind = round % 2;
                    let request = requests.get(kind).cloned().expect("two kinds");
                    let answer = client.invoke(request).await.expect("an answer");
                    let answer = answer.expect("not an error");
                    assert_eq!(Some(&answer.len()), expected.get(kind), "answer size");
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
    let key = Arc::new(RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(9)));
    let address = "127.0.0.1:4430".parse().expect("an address");
    let backend = Backend::new(
        Arc::new(MemoryMessageStore::new()),
        Arc::new(MemoryFileStore::new()),
        Arc::new(MemoryAuthKeyStore::new()),
        Arc::new(columba_store::MemoryUserStore::new()),
        AccessSecret::new([5; 32]),
        DcList::single(1, address),
    );
    let api: Arc<dyn Service> = Arc::new(Api::new(columba_api::help::router(backend.clone())));
    // The raw service's answers: what the stock handlers answer, encoded once.
    let config = Bytes::from(columba_api::objects::config(&backend.dcs, 1_700_000_000).to_bytes());
    let nearest = runtime.block_on(async {
        let ctx = columba_api::Ctx::detached(1, None);
        let answer = columba_api::help::get_nearest_dc(
            ctx,
            backend.clone(),
            functions::help::GetNearestDc {},
        )
        .await
        .expect("an answer");
        Bytes::from(answer.to_bytes())
    });
    let expected = [config.len(), nearest.len()];
    let raw: Arc<dyn Service> = Arc::new(RawBytes { config, nearest });
    let ours = runtime.block_on(serve(api, &key));
    let theirs = runtime.block_on(serve(raw, &key));
    let work = (CONNECTIONS * ROUNDS) as f64;
    compare(
        "api_roundtrip",
        "requests/s",
        "raw_bytes_service",
        Side::timed(work, || batch(&runtime, &ours, expected)),
        Side::timed(work, || batch(&runtime, &theirs, expected)),
    );
}
