//! Hostile input against the echo server (in-process, real loopback TCP and RocksDB): random
//! bytes, a truncated frame, an absurd length, an unknown key, a replayed encrypted message, a
//! stale msg_id, connections beyond the per-address limit and two thousand idle connections.
//! Each gets the spec's answer (closed, ignored, -404, -429, bad_msg_notification), the
//! server's memory stays bounded, and an honest client is served throughout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use columba_examples::client::{EchoClient, Target, new_messages};
use columba_mtproto::crypto::{AuthKey, Direction};
use columba_mtproto::message::{ENCRYPTED_HEADROOM, EncryptedHeader, Padding, open, seal};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

const CODE: &str = "16180";
const PING: u32 = 0x7abe_77ec;
const PONG: u32 = 0x3477_73c5;
const CONTAINER: u32 = 0x73f1_f8dc;
const BAD_MSG: u32 = 0xa7ef_f811;
const BAD_SALT: u32 = 0xedab_447b;
const INTERMEDIATE: [u8; 4] = [0xee; 4];

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Raises the soft limit on open files (both ends of every connection live in this process).
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to and read from a valid rlimit.
    #[allow(
        unsafe_code,
        reason = "getrlimit/setrlimit have no safe wrapper in std"
    )]
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(65_536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

async fn connect_from(source: [u8; 4], address: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(address).await
}

/// Reads one intermediate frame: `Ok(Err(code))` for a transport error.
async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Result<Vec<u8>, i32>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    if len == 4 {
        return Ok(Err(i32::from_le_bytes(body.try_into().unwrap())));
    }
    Ok(Ok(body))
}

async fn write_frame(stream: &mut TcpStream, payload: &[u8]) {
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(payload);
    stream.write_all(&frame).await.unwrap();
}

/// Whether the server closes the connection within `wait` (reading and dropping anything it
/// sends first).
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut sink = [0u8; 4096];
    tokio::time::timeout(wait, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn honest_echo(target: &Target, phone: &str, text: &str) {
    let mut client = EchoClient::connect(target, None).await.unwrap();
    client.sign_in(phone, CODE).await.unwrap();
    let echo = client.echo_peer().await.unwrap();
    client.send_text(&echo, text, rand::random()).await.unwrap();
    loop {
        let updates = client
            .next_update(Duration::from_secs(10))
            .await
            .expect("the echo answers an honest client");
        if new_messages(&updates)
            .iter()
            .any(|message| message.message == text && !message.out)
        {
            break;
        }
    }
    client.close().await;
}

/// An encrypted session of our own on a raw connection, to send exactly the bytes we choose.
struct RawSession {
    stream: TcpStream,
    key: AuthKey,
    salt: i64,
    session_id: i64,
    time_offset: i64,
    seq: i32,
    last_msg_id: i64,
}

impl RawSession {
    fn msg_id(&mut self, seconds_back: i64) -> i64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let secs = now.as_secs() as i64 + self.time_offset - seconds_back;
        let mut id = (secs << 32) | (i64::from(now.subsec_nanos()) << 2 & 0xffff_fffc);
        if seconds_back == 0 {
            id = id.max(self.last_msg_id + 4);
            self.last_msg_id = id;
        }
        id
    }

    fn seal(&mut self, body: &[u8], msg_id: i64) -> Vec<u8> {
        let mut buf = BytesMut::zeroed(ENCRYPTED_HEADROOM);
        buf.extend_from_slice(body);
        self.seq += 1;
        let header = EncryptedHeader {
            salt: self.salt,
            session_id: self.session_id,
            msg_id,
            seq_no: self.seq * 2 - 1,
        };
        seal(
            &mut buf,
            &self.key,
            Direction::ClientToServer,
            &header,
            Padding::Minimal,
            &mut rand::rng(),
        )
        .unwrap();
        buf.to_vec()
    }

    /// The server's messages (containers opened) until `want` says stop, or 3 s pass.
    async fn read_until(
        &mut self,
        mut want: impl FnMut(u32, &[u8]) -> bool,
    ) -> Vec<(u32, Vec<u8>)> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let frame = tokio::time::timeout_at(deadline, read_frame(&mut self.stream)).await;
            let Ok(Ok(Ok(mut frame))) = frame else {
                return seen;
            };
            let opened = open(&mut frame, &self.key, Direction::ServerToClient).unwrap();
            let mut objects = Vec::new();
            let body = opened.body;
            if u32::from_le_bytes(body[..4].try_into().unwrap()) == CONTAINER {
                let count = u32::from_le_bytes(body[4..8].try_into().unwrap()) as usize;
                let mut at = 8;
                for _ in 0..count {
                    let len =
                        u32::from_le_bytes(body[at + 12..at + 16].try_into().unwrap()) as usize;
                    objects.push(body[at + 16..at + 16 + len].to_vec());
                    at += 16 + len;
                }
            } else {
                objects.push(body.to_vec());
            }
            let mut done = false;
            for object in objects {
                let id = u32::from_le_bytes(object[..4].try_into().unwrap());
                if id == BAD_SALT {
                    self.salt = i64::from_le_bytes(object[24..32].try_into().unwrap());
                }
                done |= want(id, &object);
                seen.push((id, object));
            }
            if done {
                return seen;
            }
        }
    }
}

fn ping(ping_id: i64) -> Vec<u8> {
    let mut body = PING.to_le_bytes().to_vec();
    body.extend_from_slice(&ping_id.to_le_bytes());
    body
}

fn pong_of(object: &[u8]) -> Option<i64> {
    (u32::from_le_bytes(object[..4].try_into().unwrap()) == PONG)
        .then(|| i64::from_le_bytes(object[12..20].try_into().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_the_specs_answers_and_honest_clients_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let running = common::start(dir.path(), CODE).await;
    let address = running.target.address;
    honest_echo(&running.target, "15550900", "before").await;

    // Random bytes: the connection is closed.
    let mut stream = TcpStream::connect(address).await.unwrap();
    let junk: Vec<u8> = (0..65_536).map(|_| rand::random::<u8>()).collect();
    let _ = stream.write_all(&junk).await;
    assert!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "random bytes"
    );

    // An absurd length: refused before anything is allocated for it, the connection closed.
    let before = rss_kib();
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(&INTERMEDIATE).await.unwrap();
    stream
        .write_all(&0x7fff_fff0u32.to_le_bytes())
        .await
        .unwrap();
    stream.write_all(&[0u8; 1024]).await.unwrap();
    assert!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "absurd length"
    );
    assert!(rss_kib() < before + 64 * 1024, "an absurd length allocated");

    // A truncated frame, then the peer goes away: nothing breaks.
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(&INTERMEDIATE).await.unwrap();
    stream.write_all(&1000u32.to_le_bytes()).await.unwrap();
    stream.write_all(&[7u8; 10]).await.unwrap();
    drop(stream);

    // An unknown auth key: transport error -404, then the connection closes.
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(&INTERMEDIATE).await.unwrap();
    let mut frame = 0x1234_5678_9abc_def0u64.to_le_bytes().to_vec();
    frame.extend_from_slice(&[0x55; 16 + 48]);
    write_frame(&mut stream, &frame).await;
    assert_eq!(read_frame(&mut stream).await.unwrap(), Err(-404));
    assert!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "unknown key"
    );

    // A key of our own on a raw connection: a replayed message is ignored, a stale msg_id
    // gets bad_msg_notification 16.
    let keyed = EchoClient::connect(&running.target, None).await.unwrap();
    let saved = keyed.saved_key();
    keyed.close().await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(&INTERMEDIATE).await.unwrap();
    let mut raw = RawSession {
        stream,
        key: saved.auth_key.clone(),
        salt: saved.salt,
        session_id: rand::random(),
        time_offset: saved.time_offset,
        seq: 0,
        last_msg_id: 0,
    };
    let mut accepted = None;
    for attempt in 0..3 {
        let msg_id = raw.msg_id(0);
        let bytes = raw.seal(&ping(100 + attempt), msg_id);
        write_frame(&mut raw.stream, &bytes).await;
        let seen = raw
            .read_until(|id, object| id == BAD_SALT || pong_of(object).is_some())
            .await;
        if seen
            .iter()
            .any(|(_, object)| pong_of(object) == Some(100 + attempt))
        {
            accepted = Some((bytes, 100 + attempt));
            break;
        }
    }
    let (replayed, first_ping) = accepted.expect("a ping answered on the raw session");
    write_frame(&mut raw.stream, &replayed).await;
    let msg_id = raw.msg_id(0);
    let fresh = raw.seal(&ping(777), msg_id);
    write_frame(&mut raw.stream, &fresh).await;
    let seen = raw
        .read_until(|_, object| pong_of(object) == Some(777))
        .await;
    assert!(
        seen.iter().any(|(_, object)| pong_of(object) == Some(777)),
        "the fresh ping"
    );
    assert!(
        !seen
            .iter()
            .any(|(_, object)| pong_of(object) == Some(first_ping)),
        "the replayed ping was answered again"
    );
    let stale_id = raw.msg_id(600);
    let stale = raw.seal(&ping(888), stale_id);
    write_frame(&mut raw.stream, &stale).await;
    let seen = raw.read_until(|id, _| id == BAD_MSG).await;
    let (_, notification) = seen
        .iter()
        .find(|(id, _)| *id == BAD_MSG)
        .expect("bad_msg_notification for a stale msg_id");
    assert_eq!(
        i64::from_le_bytes(notification[4..12].try_into().unwrap()),
        stale_id
    );
    assert_eq!(
        i32::from_le_bytes(notification[16..20].try_into().unwrap()),
        16
    );
    assert!(!seen.iter().any(|(_, object)| pong_of(object) == Some(888)));

    // More connections from one address than allowed: the extra ones get -429.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..70 {
        let mut stream = connect_from([127, 0, 0, 2], address).await.unwrap();
        stream.write_all(&INTERMEDIATE).await.unwrap();
        held.push(stream);
    }
    // Read them all at once: the refused ones have -429 waiting, the others stay silent.
    let mut reads = tokio::task::JoinSet::new();
    for mut stream in held {
        reads.spawn(async move {
            let mut buf = [0u8; 8];
            let read =
                tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut buf)).await;
            (matches!(read, Ok(Ok(8))).then_some(buf), stream)
        });
    }
    let mut held = Vec::new();
    while let Some(joined) = reads.join_next().await {
        let (answer, stream) = joined.unwrap();
        if let Some(buf) = answer {
            assert_eq!(i32::from_le_bytes(buf[4..8].try_into().unwrap()), -429);
            refused += 1;
        }
        held.push(stream);
    }
    assert_eq!(refused, 70 - 64, "the per-address limit is 64");
    drop(held);

    // Two thousand idle connections (50 per address): memory stays bounded and an honest
    // client is served.
    let limit = raise_fd_limit();
    let idle_count: usize = if limit >= 8_192 { 2_000 } else { 500 };
    let rss_before = rss_kib();
    let mut idle = Vec::with_capacity(idle_count);
    for index in 0..idle_count {
        let source = [127, 0, 1 + (index / 50) as u8, 1];
        let mut stream = connect_from(source, address).await.unwrap();
        stream.write_all(&INTERMEDIATE).await.unwrap();
        idle.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open_now = running.server.stats().connections;
    assert!(open_now >= idle_count, "{open_now} connections open");
    honest_echo(&running.target, "15550901", "during").await;
    let grown = rss_kib().saturating_sub(rss_before);
    println!(
        "{idle_count} idle connections: the process grew by {} KiB ({} bytes a connection, both ends)",
        grown,
        grown * 1024 / idle_count as u64
    );
    assert!(grown < 256 * 1024, "idle connections cost {grown} KiB");
    drop(idle);

    honest_echo(&running.target, "15550902", "after").await;
    running.stop().await;
}
