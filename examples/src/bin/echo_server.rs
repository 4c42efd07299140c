//! The Columba echo server: a Telegram-compatible example server.
//!
//! ```text
//! echo-server [--listen 127.0.0.1:4430] [--data ./data] [--login-code 12345]
//!             [--max-connections-per-ip 64] [--bot USERNAME]... [--bot-api ADDR:PORT]
//! ```
//!
//! On first start it creates the data directory with an RSA key, and prints the public key
//! (PEM) and its fingerprint for clients. Login codes are printed in the log (stderr);
//! `--login-code` makes every code that one (tests and demos only). `--bot name_bot` makes
//! that bot if it is missing and prints its token (`bot name_bot token 123:ABC...`); people
//! make bots by talking to `@BotFather`. `--bot-api 127.0.0.1:8081` serves the Bot API over
//! HTTP there (`bot api listening on ...`). Ctrl-C stops it gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use columba_examples::cli;
use columba_examples::echo::{self, EchoOptions};

const USAGE: &str = "usage: echo-server [--listen ADDR:PORT] [--data DIR] [--login-code DIGITS] [--max-connections-per-ip N] [--bot USERNAME]... [--bot-api ADDR:PORT]";

fn parse(args: impl Iterator<Item = String>) -> Result<EchoOptions, String> {
    let mut options = EchoOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 4430)),
        data: PathBuf::from("data"),
        fixed_code: None,
        max_connections_per_ip: None,
        bots: Vec::new(),
        bot_api: None,
    };
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let text = value()?;
                options.listen = text
                    .parse()
                    .map_err(|_| format!("--listen: not an address: {text}"))?;
            }
            "--data" => options.data = PathBuf::from(value()?),
            "--login-code" => {
                let code = value()?;
                if code.is_empty() || code.len() > 8 || !code.chars().all(|c| c.is_ascii_digit()) {
                    return Err("--login-code: 1 to 8 digits".to_owned());
                }
                options.fixed_code = Some(code);
            }
            "--max-connections-per-ip" => {
                let text = value()?;
                options.max_connections_per_ip = Some(
                    text.parse()
                        .map_err(|_| format!("--max-connections-per-ip: {text}?"))?,
                );
            }
            "--bot" => options.bots.push(value()?),
            "--bot-api" => {
                let text = value()?;
                options.bot_api = Some(
                    text.parse()
                        .map_err(|_| format!("--bot-api: not an address: {text}"))?,
                );
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn main() -> ExitCode {
    let options = match cli::arguments(parse(std::env::args().skip(1))) {
        Ok(options) => options,
        Err(status) => return status,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    cli::run("echo-server", serve(options))
}

async fn serve(options: EchoOptions) -> Result<(), String> {
    let data = options.data.clone();
    let started = echo::start(options)
        .await
        .map_err(|error| format!("cannot start with data in {}: {error}", data.display()))?;
    let key = &started.public_key;
    println!(
        "{} RSA key, fingerprint {:016x} ({})",
        if started.new_key { "new" } else { "saved" },
        key.fingerprint() as u64,
        key.fingerprint()
    );
    print!("{}", key.to_pem());
    for (username, token) in &started.bot_tokens {
        println!("bot {username} token {token}");
    }
    if let Some(address) = started.bot_api_address {
        println!("bot api listening on {address}");
    }
    println!("listening on {}", started.address);
    started
        .serve(shutdown_signal())
        .await
        .map_err(|error| error.to_string())
}
