//! Load generator for the echo server: many concurrent clients, each with a real key exchange
//! and session, in steady, burst and handshake-storm modes, plus hostile modes (slowloris
//! connections, malformed-frame spray, reconnect storm) run beside honest traffic. Prints one
//! report: operations, throughput, p50/p99/p99.9 latency, errors, and the server's RSS before
//! and after (with `--server-pid`).
//!
//! ```text
//! load --key server.pem [--server 127.0.0.1:4430] [--mode steady] [--clients 64]
//!      [--seconds 10] [--burst 10] [--code 12345] [--server-pid PID]
//! ```
//!
//! Modes: `steady` (each client sends a message to @echo and waits for the echo, again and
//! again), `burst` (every client sends `--burst` messages at once, waits for all echoes,
//! repeats), `handshake-storm` (every client creates keys one after another), `idle` (hold
//! `--clients` connections with keys and report the server's memory), `slowloris`, `spray`,
//! `reconnect` (the hostile ones; 8 honest clients run beside them and their latency is what
//! is reported). The server must run with `--login-code` (`--code` here, 12345 by default).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use columba_examples::cli;
use columba_examples::client::{EchoClient, Target, new_messages};
use columba_mtproto::crypto::RsaPublicKey;
use columba_mtproto::tl::api::{enums, functions};
use hdrhistogram::Histogram;
use rand::Rng as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

const USAGE: &str = "usage: load --key SERVER_PEM [--server ADDR] [--mode steady|burst|handshake-storm|idle|slowloris|spray|reconnect] [--clients N] [--seconds S] [--burst K] [--code DIGITS] [--server-pid PID]";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Steady,
    Burst,
    HandshakeStorm,
    Idle,
    Slowloris,
    Spray,
    Reconnect,
}

struct Options {
    server: SocketAddr,
    key: PathBuf,
    mode: Mode,
    clients: usize,
    seconds: u64,
    burst: usize,
    code: String,
    server_pid: Option<u32>,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        server: SocketAddr::from(([127, 0, 0, 1], 4430)),
        key: PathBuf::new(),
        mode: Mode::Steady,
        clients: 64,
        seconds: 10,
        burst: 10,
        code: "12345".to_owned(),
        server_pid: None,
    };
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => {
                let text = value()?;
                options.server = text.parse().map_err(|_| format!("--server: {text}?"))?;
            }
            "--key" => options.key = PathBuf::from(value()?),
            "--mode" => {
                options.mode = match value()?.as_str() {
                    "steady" => Mode::Steady,
                    "burst" => Mode::Burst,
                    "handshake-storm" => Mode::HandshakeStorm,
                    "idle" => Mode::Idle,
                    "slowloris" => Mode::Slowloris,
                    "spray" => Mode::Spray,
                    "reconnect" => Mode::Reconnect,
                    other => return Err(format!("--mode: {other}?\n{USAGE}")),
                }
            }
            "--clients" => options.clients = value()?.parse().map_err(|_| "--clients: a count")?,
            "--seconds" => options.seconds = value()?.parse().map_err(|_| "--seconds: a count")?,
            "--burst" => options.burst = value()?.parse().map_err(|_| "--burst: a count")?,
            "--code" => options.code = value()?,
            "--server-pid" => {
                options.server_pid = Some(value()?.parse().map_err(|_| "--server-pid: a pid")?);
            }
            _ => return Err(USAGE.to_owned()),
        }
    }
    if options.key.as_os_str().is_empty() {
        return Err(format!("--key is required\n{USAGE}"));
    }
    if options.clients == 0 || options.clients > 100_000 {
        return Err("--clients: 1 to 100000".to_owned());
    }
    Ok(options)
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// What the workers record.
struct Stats {
    latency: Mutex<Histogram<u64>>,
    ops: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

impl Stats {
    fn new() -> Result<Arc<Self>, String> {
        // Latencies from 1 µs to 60 s, 3 significant digits.
        let histogram =
            Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|error| error.to_string())?;
        Ok(Arc::new(Self {
            latency: Mutex::new(histogram),
            ops: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }))
    }

    async fn record(&self, started: Instant) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let _ = self.latency.lock().await.record(micros.max(1));
        self.ops.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

async fn signed_in(
    target: &Target,
    phone: &str,
    code: &str,
) -> Option<(EchoClient, enums::InputPeer)> {
    let client = EchoClient::connect(target, None).await.ok()?;
    client.sign_in(phone, code).await.ok()?;
    let echo = client.echo_peer().await.ok()?;
    Some((client, echo))
}

/// One message to @echo and its echo; the latency is recorded.
async fn echo_once(
    client: &mut EchoClient,
    echo: &enums::InputPeer,
    stats: &Stats,
    n: u64,
) -> bool {
    let text = format!("load {n} {}", rand::rng().random::<u32>());
    let random_id: i64 = rand::rng().random();
    let started = Instant::now();
    if client.send_text(echo, &text, random_id).await.is_err() {
        stats.error();
        return false;
    }
    loop {
        match client.next_update(Duration::from_secs(10)).await {
            Some(updates) => {
                if new_messages(&updates)
                    .iter()
                    .any(|message| !message.out && message.message == text)
                {
                    stats.record(started).await;
                    return true;
                }
            }
            None => {
                stats.error();
                return false;
            }
        }
    }
}

async fn steady_worker(target: Target, index: usize, code: String, stats: Arc<Stats>) {
    let Some((mut client, echo)) = signed_in(&target, &format!("1999{index:07}"), &code).await
    else {
        stats.error();
        return;
    };
    let mut n = 0;
    while !stats.stopped() {
        n += 1;
        if !echo_once(&mut client, &echo, &stats, n).await {
            break;
        }
    }
    client.close().await;
}

async fn burst_worker(target: Target, index: usize, code: String, burst: usize, stats: Arc<Stats>) {
    let Some((mut client, echo)) = signed_in(&target, &format!("1998{index:07}"), &code).await
    else {
        stats.error();
        return;
    };
    let mut round = 0u64;
    while !stats.stopped() {
        round += 1;
        let started = Instant::now();
        let mut texts = Vec::with_capacity(burst);
        for k in 0..burst {
            texts.push(format!("burst {round}-{k}"));
        }
        let random_ids: Vec<i64> = texts.iter().map(|_| rand::rng().random()).collect();
        let sends = texts
            .iter()
            .zip(&random_ids)
            .map(|(text, random_id)| client.send_text(&echo, text, *random_id))
            .collect();
        let sent = join_all(sends).await;
        if sent.iter().any(Result::is_err) {
            stats.error();
            break;
        }
        let mut waiting: std::collections::HashSet<String> = texts.into_iter().collect();
        while !waiting.is_empty() {
            let Some(updates) = client.next_update(Duration::from_secs(10)).await else {
                stats.error();
                return;
            };
            for message in new_messages(&updates) {
                if !message.out && waiting.remove(&message.message) {
                    stats.record(started).await;
                }
            }
        }
    }
    client.close().await;
}

/// Runs futures concurrently on this task; their results in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

async fn handshake_worker(target: Target, stats: Arc<Stats>) {
    while !stats.stopped() {
        let started = Instant::now();
        match EchoClient::connect(&target, None).await {
            Ok(client) => {
                stats.record(started).await;
                client.close().await;
            }
            Err(_) => stats.error(),
        }
    }
}

async fn reconnect_worker(target: Target, index: usize, code: String, stats: Arc<Stats>) {
    let Some((client, _)) = signed_in(&target, &format!("1997{index:07}"), &code).await else {
        stats.error();
        return;
    };
    let saved = client.saved_key();
    client.close().await;
    while !stats.stopped() {
        let started = Instant::now();
        match EchoClient::connect(&target, Some(saved.clone())).await {
            Ok(client) => {
                if client.echo_peer().await.is_ok() {
                    stats.record(started).await;
                } else {
                    stats.error();
                }
                client.close().await;
            }
            Err(_) => stats.error(),
        }
    }
}

/// A connection that announces a frame and then sends one byte a second.
async fn slowloris_worker(address: SocketAddr, closed: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return;
    };
    let mut start = vec![0xee; 4];
    start.extend_from_slice(&4096u32.to_le_bytes());
    if stream.write_all(&start).await.is_err() {
        closed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if stream.write_all(&[0]).await.is_err() {
            closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
}

/// Connections that send frames of random bytes, again and again.
async fn spray_worker(address: SocketAddr, closed: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(address).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mut frame = vec![0xee; 4];
        {
            let mut rng = rand::rng();
            let len: u32 = rng.random_range(8..2048) & !3;
            frame.extend_from_slice(&len.to_le_bytes());
            frame.extend((0..len).map(|_| rng.random::<u8>()));
        }
        let _ = stream.write_all(&frame).await;
        let mut sink = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut sink)).await;
        closed.fetch_add(1, Ordering::Relaxed);
    }
}

async fn run(options: Options) -> Result<(), String> {
    let pem = std::fs::read_to_string(&options.key)
        .map_err(|error| format!("{}: {error}", options.key.display()))?;
    let key = RsaPublicKey::from_pem(&pem).map_err(|error| format!("the server key: {error}"))?;
    let mut target = Target::new(options.server, key);
    target.reconnect_attempts = 0;
    let stats = Stats::new()?;
    let rss_before = rss_kib(options.server_pid);
    let hostile_stop = Arc::new(AtomicBool::new(false));
    let hostile_closed = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut held = Vec::new();
    let honest = match options.mode {
        Mode::Slowloris | Mode::Spray | Mode::Reconnect => 8,
        _ => options.clients,
    };
    match options.mode {
        Mode::Steady | Mode::Slowloris | Mode::Spray => {
            for index in 0..honest {
                tasks.spawn(steady_worker(
                    target.clone(),
                    index,
                    options.code.clone(),
                    stats.clone(),
                ));
            }
        }
        Mode::Burst => {
            for index in 0..honest {
                tasks.spawn(burst_worker(
                    target.clone(),
                    index,
                    options.code.clone(),
                    options.burst,
                    stats.clone(),
                ));
            }
        }
        Mode::HandshakeStorm => {
            for _ in 0..honest {
                tasks.spawn(handshake_worker(target.clone(), stats.clone()));
            }
        }
        Mode::Idle => {
            for _ in 0..options.clients {
                let started = Instant::now();
                // A key exchange and a first request: an authenticated, idle session.
                match EchoClient::connect(&target, None).await {
                    Ok(client) => {
                        match client.call(&functions::help::GetNearestDc {}).await {
                            Ok(_) => stats.record(started).await,
                            Err(_) => stats.error(),
                        }
                        held.push(client);
                    }
                    Err(_) => stats.error(),
                }
            }
        }
        Mode::Reconnect => {}
    }
    match options.mode {
        Mode::Slowloris => {
            for _ in 0..options.clients {
                tasks.spawn(slowloris_worker(
                    options.server,
                    hostile_closed.clone(),
                    hostile_stop.clone(),
                ));
            }
        }
        Mode::Spray => {
            for _ in 0..options.clients {
                tasks.spawn(spray_worker(
                    options.server,
                    hostile_closed.clone(),
                    hostile_stop.clone(),
                ));
            }
        }
        Mode::Reconnect => {
            for index in 0..options.clients {
                tasks.spawn(reconnect_worker(
                    target.clone(),
                    index,
                    options.code.clone(),
                    stats.clone(),
                ));
            }
        }
        _ => {}
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    let rss_loaded = rss_kib(options.server_pid);
    stats.stop.store(true, Ordering::Relaxed);
    hostile_stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let drain = tokio::time::sleep(Duration::from_secs(15));
    tokio::pin!(drain);
    loop {
        tokio::select! {
            joined = tasks.join_next() => if joined.is_none() { break },
            () = &mut drain => { tasks.abort_all(); break; }
        }
    }
    for client in held {
        client.close().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib(options.server_pid);
    let histogram = stats.latency.lock().await;
    let ops = stats.ops.load(Ordering::Relaxed);
    let rate = if options.mode == Mode::Idle {
        0.0
    } else {
        ops as f64 / elapsed.as_secs_f64()
    };
    let kib = |value: Option<u64>| value.map_or("null".to_owned(), |v| v.to_string());
    println!(
        "{{\"mode\":\"{:?}\",\"clients\":{},\"seconds\":{:.1},\"ops\":{ops},\"ops_per_sec\":{rate:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"errors\":{},\"hostile_closed\":{},\"server_rss_kib_before\":{},\"server_rss_kib_loaded\":{},\"server_rss_kib_after\":{}}}",
        options.mode,
        options.clients,
        elapsed.as_secs_f64(),
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max(),
        stats.errors.load(Ordering::Relaxed),
        hostile_closed.load(Ordering::Relaxed),
        kib(rss_before),
        kib(rss_loaded),
        kib(rss_after),
    );
    Ok(())
}

fn main() -> ExitCode {
    match cli::arguments(parse(std::env::args().skip(1))) {
        Ok(options) => cli::run("load", run(options)),
        Err(status) => status,
    }
}
