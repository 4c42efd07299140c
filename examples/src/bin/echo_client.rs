//! A client of the echo server: connects over a chosen transport, creates or reuses its auth
//! key, signs in, sends messages to `@echo` and prints the replies, then uploads a file and
//! downloads the echoed copy, checking its SHA-256.
//!
//! ```text
//! echo-client --key server.pem [--server 127.0.0.1:4430] [--transport abridged|intermediate|padded|full]
//!             [--obfuscated] [--phone 15550001] [--code 12345] [--session client.session]
//!             [--messages 3] [--file PATH | --file-size BYTES]
//! ```
//!
//! `server.pem` is the public key the server printed. Without `--code` the code is read from
//! standard input (the server prints it in its log). `--session` keeps the auth key between
//! runs (created readable by its owner only); with a signed-in key no code is needed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use columba_examples::cli;
use columba_examples::client::{CallError, EchoClient, Target, new_messages};
use columba_mtproto::crypto::{AuthKey, RsaPublicKey};
use columba_mtproto::tl::api::{enums, functions, types};
use columba_mtproto::transport::Framing;
use columba_session::runtime::SavedKey;
use rand::{Rng as _, RngCore as _};
use sha2::{Digest as _, Sha256};

const USAGE: &str = "usage: echo-client --key SERVER_PEM [--server ADDR] [--transport abridged|intermediate|padded|full] [--obfuscated] [--phone DIGITS] [--code DIGITS] [--session FILE] [--messages N] [--file PATH | --file-size BYTES]";

struct Options {
    server: SocketAddr,
    key: PathBuf,
    framing: Framing,
    obfuscated: bool,
    phone: String,
    code: Option<String>,
    session: Option<PathBuf>,
    messages: usize,
    file: Option<PathBuf>,
    file_size: usize,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        server: SocketAddr::from(([127, 0, 0, 1], 4430)),
        key: PathBuf::new(),
        framing: Framing::Intermediate,
        obfuscated: false,
        phone: "15550001".to_owned(),
        code: None,
        session: None,
        messages: 3,
        file: None,
        file_size: 1 << 20,
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
            "--transport" => {
                options.framing = match value()?.as_str() {
                    "abridged" => Framing::Abridged,
                    "intermediate" => Framing::Intermediate,
                    "padded" => Framing::PaddedIntermediate,
                    "full" => Framing::Full,
                    other => return Err(format!("--transport: {other}?")),
                }
            }
            "--obfuscated" => options.obfuscated = true,
            "--phone" => options.phone = value()?,
            "--code" => options.code = Some(value()?),
            "--session" => options.session = Some(PathBuf::from(value()?)),
            "--messages" => {
                options.messages = value()?.parse().map_err(|_| "--messages: a count")?;
            }
            "--file" => options.file = Some(PathBuf::from(value()?)),
            "--file-size" => {
                options.file_size = value()?.parse().map_err(|_| "--file-size: bytes")?;
            }
            _ => return Err(USAGE.to_owned()),
        }
    }
    if options.key.as_os_str().is_empty() {
        return Err(format!("--key is required\n{USAGE}"));
    }
    if options.framing == Framing::Full && options.obfuscated {
        return Err("the full framing has no obfuscated form".to_owned());
    }
    Ok(options)
}

/// The session file: the auth key (256 bytes), the salt and the time offset (8 bytes each,
/// little-endian).
fn load_session(path: &PathBuf) -> Option<SavedKey> {
    let bytes = std::fs::read(path).ok()?;
    let key: [u8; 256] = bytes.get(..256)?.try_into().ok()?;
    let salt = i64::from_le_bytes(bytes.get(256..264)?.try_into().ok()?);
    let time_offset = i64::from_le_bytes(bytes.get(264..272)?.try_into().ok()?);
    Some(SavedKey {
        auth_key: AuthKey::from_bytes(key),
        salt,
        time_offset,
    })
}

fn save_session(path: &PathBuf, saved: &SavedKey) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut bytes = saved.auth_key.as_bytes().to_vec();
    bytes.extend_from_slice(&saved.salt.to_le_bytes());
    bytes.extend_from_slice(&saved.time_offset.to_le_bytes());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&bytes)?;
    file.sync_all()
}

async fn signed_in(client: &EchoClient) -> Result<Option<types::User>, CallError> {
    match client
        .call(&functions::users::GetUsers {
            id: vec![types::InputUserSelf {}.into()],
        })
        .await
    {
        Ok(users) => Ok(users.into_iter().find_map(|user| match user {
            enums::User::User(user) => Some(*user),
            enums::User::UserEmpty(_) => None,
        })),
        Err(CallError::Rpc(error)) if error.code == 401 => Ok(None),
        Err(error) => Err(error),
    }
}

async fn wait_for_echo(client: &mut EchoClient, text: &str) -> Result<types::Message, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(updates) = client.next_update(left).await else {
            break;
        };
        if let Some(message) = new_messages(&updates)
            .into_iter()
            .find(|message| !message.out && message.message == text)
        {
            return Ok(message);
        }
    }
    Err(format!("no echo of {text:?} within 30 s"))
}

async fn run(options: Options) -> Result<(), String> {
    let pem = std::fs::read_to_string(&options.key)
        .map_err(|error| format!("{}: {error}", options.key.display()))?;
    let key = RsaPublicKey::from_pem(&pem).map_err(|error| format!("the server key: {error}"))?;
    let target = Target {
        address: options.server,
        key,
        framing: options.framing,
        obfuscated: options.obfuscated,
        reconnect_attempts: 5,
    };
    let saved = options.session.as_ref().and_then(load_session);
    let reused = saved.is_some();
    let mut client = EchoClient::connect(&target, saved)
        .await
        .map_err(|error| error.to_string())?;
    println!(
        "connected to {} ({:?}{}), {} auth key",
        options.server,
        options.framing,
        if options.obfuscated {
            ", obfuscated"
        } else {
            ""
        },
        if reused { "saved" } else { "new" }
    );
    let me = match signed_in(&client)
        .await
        .map_err(|error| error.to_string())?
    {
        Some(me) => me,
        None => {
            let code = match &options.code {
                Some(code) => code.clone(),
                None => {
                    // The code is sent when asked for: request it, then read it.
                    println!(
                        "the login code for {} (see the server's log):",
                        options.phone
                    );
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .map_err(|error| error.to_string())?;
                    line.trim().to_owned()
                }
            };
            client
                .sign_in(&options.phone, &code)
                .await
                .map_err(|error| format!("sign-in: {error}"))?
        }
    };
    if let Some(path) = &options.session {
        save_session(path, &client.saved_key())
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    println!(
        "signed in as {} (id {})",
        me.first_name.as_deref().unwrap_or(""),
        me.id
    );
    let echo = client
        .echo_peer()
        .await
        .map_err(|error| error.to_string())?;
    for n in 1..=options.messages {
        let text = format!("message {n} of {}", options.messages);
        let started = Instant::now();
        client
            .send_text(&echo, &text, rand::rng().random())
            .await
            .map_err(|error| error.to_string())?;
        let reply = wait_for_echo(&mut client, &text).await?;
        println!(
            "echo {}: {:?} in {:.1} ms",
            reply.id,
            reply.message,
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    let (bytes, name) = match &options.file {
        Some(path) => (
            std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?,
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".to_owned()),
        ),
        None => {
            let mut bytes = vec![0u8; options.file_size];
            rand::rng().fill_bytes(&mut bytes);
            (bytes, "random.bin".to_owned())
        }
    };
    let started = Instant::now();
    let file = client
        .upload(&bytes, &name)
        .await
        .map_err(|error| format!("upload: {error}"))?;
    let caption = format!("file {name}");
    client
        .send_document(&echo, file, &caption, rand::rng().random())
        .await
        .map_err(|error| format!("sendMedia: {error}"))?;
    let uploaded = started.elapsed();
    let reply = wait_for_echo(&mut client, &caption).await?;
    let Some(enums::MessageMedia::MessageMediaDocument(media)) = &reply.media else {
        return Err("the echo has no document".to_owned());
    };
    let Some(enums::Document::Document(document)) = &media.document else {
        return Err("the echo has no document".to_owned());
    };
    let started = Instant::now();
    let copy = client
        .download(document)
        .await
        .map_err(|error| format!("download: {error}"))?;
    let (sent, got) = (Sha256::digest(&bytes), Sha256::digest(&copy));
    println!(
        "file of {} bytes: uploaded in {:.0} ms, echoed copy downloaded in {:.0} ms, SHA-256 {}",
        bytes.len(),
        uploaded.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64() * 1000.0,
        if sent == got { "matches" } else { "DIFFERS" }
    );
    client.close().await;
    if sent != got {
        return Err("the downloaded copy differs".to_owned());
    }
    Ok(())
}

fn main() -> ExitCode {
    match cli::arguments(parse(std::env::args().skip(1))) {
        Ok(options) => cli::run("echo-client", run(options)),
        Err(status) => status,
    }
}
