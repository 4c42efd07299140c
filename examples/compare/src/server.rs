//! Suite `server`: encrypted echo round trips through the server runtime over loopback TCP,
//! against a plain tokio TCP echo of the same payload sizes.
//!
//! - `echo_rtt_256conn`: 256 connections, each with its own auth key and session, invoke a
//!   64-byte query over the intermediate framing, one after another, concurrently; the server
//!   runtime (`columba_session::runtime::Server`) opens each message, routes it through the
//!   endpoint to a service that answers with the query's bytes, and seals the `rpc_result`.
//!   Each client is one task driving a `ClientSession` and a `ClientConnection` over its own
//!   socket (seal, write, read, open, match), as each of the peer's clients is one task doing its own I/O. Peer
//!   (`plain_tcp_echo`): 256 tokio TCP connections, each sending a length-prefixed 64-byte
//!   payload and reading back the echo, to a tokio echo server, on the same runtime.
//! - `echo_rtt_256conn_runtime_client`: the same with the client runtime
//!   (`columba_session::runtime::Client`: a driver task per connection, requests and answers
//!   handed over by channels), against the same peer.
//!
//! - `push_one_user_10k`: see [`super::push`].
//!
//! Everything runs on one multi-threaded tokio runtime (a worker per core), clients and
//! servers alike. The p99 of each side's round trips is printed on stderr.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use columba_mtproto::crypto::RsaPrivateKey;
use columba_mtproto::handshake;
use columba_mtproto::time::Now;
use columba_mtproto::transport::{ClientConfig as FramingConfig, Framing};
use columba_session::RpcOutcome;
use columba_session::plugins::{BoxFuture, LoggingPushProvider, Service};
use columba_session::runtime::{
    Client, ClientOptions, SavedKey, Server, ServerOptions, TcpAcceptor, TcpConnector,
};
use columba_session::{ClientConnection, ClientConnectionEvent};
use columba_session::{ClientEvent, ClientSession, RequestContext};
use columba_store::MemoryAuthKeyStore;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::{Side, compare, now};

const CONNECTIONS: usize = 256;
/// Round trips per connection in one timed batch.
const ROUNDS: usize = 20;
const PAYLOAD: usize = 64;

/// Answers every query with its own bytes.
pub(crate) struct Echo;

impl Service for Echo {
    fn call(&self, _: RequestContext, request: Bytes) -> BoxFuture<'_, RpcOutcome> {
        Box::pin(async move { Ok(request) })
    }
}

/// The query's bytes: a constructor id, then filler.
static QUERY: [u8; PAYLOAD] = {
    let mut body = [0x5a; PAYLOAD];
    let id = 0x1234_5678u32.to_le_bytes();
    body[0] = id[0];
    body[1] = id[1];
    body[2] = id[2];
    body[3] = id[3];
    body
};

/// The query, made once: both sides send bytes they already have.
pub(crate) fn query() -> Bytes {
    Bytes::from_static(&QUERY)
}

/// A client that is one task: its session, its connection (the same sans-IO
/// `ClientConnection` the client runtime drives), its socket.
struct Lean {
    stream: TcpStream,
    connection: ClientConnection,
    session: ClientSession,
    scratch: BytesMut,
    rng: ChaCha20Rng,
}

impl Lean {
    async fn connect(
        address: SocketAddr,
        options: &ClientOptions,
        saved: SavedKey,
        seed: u64,
    ) -> Self {
        let stream = TcpStream::connect(address).await.expect("a connection");
        stream.set_nodelay(true).expect("nodelay");
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut connection = ClientConnection::new(options.transport.clone(), &mut rng);
        connection.set_key(Arc::new(saved.auth_key));
        Self {
            stream,
            connection,
            session: ClientSession::new(
                rng.next_u64() as i64,
                saved.salt,
                Some(saved.time_offset),
                Arc::new(options.session.clone()),
            ),
            rng,
            scratch: BytesMut::with_capacity(4096),
        }
    }

    /// Seals and writes what the session has to send (the clocks read once by the caller).
    async fn flush(&mut self, now: Now) {
        while let Some(header) = self.session.poll_transmit(now, &mut self.scratch) {
            assert!(
                self.connection
                    .send_message(&header, &mut self.scratch, false, &mut self.rng),
                "sealed and framed"
            );
        }
        let pending = self.connection.outgoing().len();
        if pending > 0 {
            self.stream
                .write_all(self.connection.outgoing())
                .await
                .expect("a write");
            self.connection.advance_outgoing(pending);
        }
    }

    /// One query and its answer.
    async fn round_trip(&mut self) -> Duration {
        let sent = Instant::now();
        let id = self.session.invoke(query()).expect("invoked");
        self.flush(now()).await;
        loop {
            while let Some(event) = self.session.poll_event() {
                if let ClientEvent::Response {
                    id: answered,
                    outcome,
                } = event
                    && answered == id
                {
                    assert_eq!(outcome.expect("not an error").len(), PAYLOAD);
                    return sent.elapsed();
                }
            }
            let message = loop {
                match self.connection.poll_event() {
                    Some(ClientConnectionEvent::Message(message)) => break message,
                    Some(ClientConnectionEvent::Closed(reason)) => {
                        panic!("the connection closed: {reason}")
                    }
                    Some(_) => continue,
                    None => {}
                }
                let read = self
                    .stream
                    .read_buf(self.connection.input_buffer())
                    .await
                    .expect("a read");
                assert!(read > 0, "the server closed the connection");
                self.connection.handle_input(now(), &mut self.rng);
            };
            let now = now();
            self.session
                .handle_message(&message.header, &message.body, now);
            // Acknowledgements ride along when the session has some to send.
            self.flush(now).await;
        }
    }
}

fn p99(samples: &mut [Duration]) -> f64 {
    samples.sort_unstable();
    let index = (samples.len() * 99 / 100).min(samples.len().saturating_sub(1));
    samples.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

async fn plain_echo_server(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4 + PAYLOAD];
            loop {
                if stream.read_exact(&mut buf).await.is_err() {
                    return;
                }
                if stream.write_all(&buf).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Round-trip times, gathered from every connection's task.
type Samples = Arc<std::sync::Mutex<Vec<Duration>>>;

/// Which of our clients a bench uses.
#[derive(Clone, Copy)]
enum Ours<'a> {
    Lean(&'a [Arc<tokio::sync::Mutex<Lean>>]),
    Runtime(&'a [Arc<Client>]),
}

/// Runs `rounds` for every connection at once; the time until all are done.
fn batch<T, F, Fut>(
    runtime: &tokio::runtime::Runtime,
    connections: &[T],
    latency: &Samples,
    rounds: F,
) -> Duration
where
    T: Clone,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Vec<Duration>> + Send + 'static,
{
    runtime.block_on(async {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for connection in connections.iter().cloned() {
            tasks.spawn(rounds(connection));
        }
        let mut samples = Vec::with_capacity(connections.len() * ROUNDS);
        while let Some(done) = tasks.join_next().await {
            samples.extend(done.expect("a connection's task"));
        }
        let elapsed = started.elapsed();
        latency.lock().expect("samples").extend(samples);
        elapsed
    })
}

async fn lean_rounds(lean: Arc<tokio::sync::Mutex<Lean>>) -> Vec<Duration> {
    let mut lean = lean.lock().await;
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        samples.push(lean.round_trip().await);
    }
    samples
}

async fn client_rounds(client: Arc<Client>) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let sent = Instant::now();
        let answer = client.invoke(query()).await.expect("an answer");
        assert_eq!(answer.expect("not an error").len(), PAYLOAD);
        samples.push(sent.elapsed());
    }
    samples
}

async fn peer_rounds(peer: Arc<tokio::sync::Mutex<TcpStream>>) -> Vec<Duration> {
    let mut stream = peer.lock().await;
    let mut frame = (PAYLOAD as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&query());
    let mut back = vec![0u8; frame.len()];
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let sent = Instant::now();
        stream.write_all(&frame).await.expect("a write");
        stream.read_exact(&mut back).await.expect("a read");
        samples.push(sent.elapsed());
    }
    samples
}

pub(crate) fn run() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let key = Arc::new(RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(7)));

    // Ours: the runtime's server and 256 clients, each with its own key.
    let clients = runtime.block_on(async {
        let mut options =
            ServerOptions::new(Arc::new(handshake::ServerConfig::new(vec![key.clone()])));
        options.max_connections_per_ip = CONNECTIONS * 4;
        let server = Server::new(
            options,
            Arc::new(MemoryAuthKeyStore::new()),
            Arc::new(Echo),
            Arc::new(LoggingPushProvider),
        );
        let listener = TcpAcceptor::bind("127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("a listener");
        let address = listener.local_addr().expect("its address");
        let serving = server.clone();
        tokio::spawn(async move {
            let _ = serving.serve(listener, std::future::pending()).await;
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
        (clients, server, address)
    });
    let (clients, _server, address) = (clients.0, clients.1, clients.2);
    // The lean clients: each a new session on one of the keys made above.
    let leans: Vec<Arc<tokio::sync::Mutex<Lean>>> = runtime.block_on(async {
        let options = ClientOptions::new(
            FramingConfig::new(Framing::Intermediate, false),
            handshake::ClientConfig::new(vec![key.public_key().clone()], 1),
        );
        let mut leans = Vec::with_capacity(CONNECTIONS);
        for (seed, client) in clients.iter().enumerate() {
            let lean = Lean::connect(address, &options, client.saved_key(), seed as u64).await;
            leans.push(Arc::new(tokio::sync::Mutex::new(lean)));
        }
        leans
    });

    // Peer: a plain echo server and 256 connections to it.
    let peers: Vec<Arc<tokio::sync::Mutex<TcpStream>>> = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a listener");
        let address: SocketAddr = listener.local_addr().expect("its address");
        tokio::spawn(plain_echo_server(listener));
        let mut peers = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let stream = TcpStream::connect(address)
                .await
                .expect("a peer connection");
            let _ = stream.set_nodelay(true);
            peers.push(Arc::new(tokio::sync::Mutex::new(stream)));
        }
        peers
    });

    let work = (CONNECTIONS * ROUNDS) as f64;
    for (bench, ours) in [
        ("echo_rtt_256conn", Ours::Lean(&leans)),
        ("echo_rtt_256conn_runtime_client", Ours::Runtime(&clients)),
    ] {
        let ours_latency = Samples::default();
        let peer_latency = Samples::default();
        compare(
            bench,
            "round trips/s",
            "plain_tcp_echo",
            Side::timed(work, || match ours {
                Ours::Lean(leans) => batch(&runtime, leans, &ours_latency, lean_rounds),
                Ours::Runtime(clients) => batch(&runtime, clients, &ours_latency, client_rounds),
            }),
            Side::timed(work, || batch(&runtime, &peers, &peer_latency, peer_rounds)),
        );
        let ours = p99(&mut ours_latency.lock().expect("samples"));
        let peer = p99(&mut peer_latency.lock().expect("samples"));
        eprintln!("{bench} p99: ours {ours:.0} µs, plain_tcp_echo {peer:.0} µs");
    }
    super::push::run(&runtime, &key);
}
