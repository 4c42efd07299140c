//! What the echo server's in-process tests share: a server on a free loopback port over a
//! data directory, stopped gracefully.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::path::Path;
use std::sync::Arc;

use columba_api::push::{DevicePusher, LoggingPusher};
use columba_session::plugins::LoggingCodeSender;

use columba_examples::client::Target;
use columba_examples::echo::{self, EchoOptions};
use columba_session::runtime::Server;
use tokio::sync::oneshot;

/// A serving echo server.
pub struct Running {
    /// How to reach it.
    pub target: Target,
    /// Its runtime (statistics).
    #[allow(dead_code, reason = "not every test file reads it")]
    pub server: Server,
    /// The stores and settings behind its API.
    #[allow(dead_code, reason = "not every test file reads it")]
    pub backend: Arc<columba_api::Backend>,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

/// Starts a server over `data` whose login code is always `code`.
#[allow(dead_code, reason = "not every test file starts it this way")]
pub async fn start(data: &Path, code: &str) -> Running {
    start_with_pusher(data, code, Arc::new(LoggingPusher)).await
}

/// [`start`] with pushes to devices going to `pusher`.
pub async fn start_with_pusher(data: &Path, code: &str, pusher: Arc<dyn DevicePusher>) -> Running {
    let started = echo::start_with_pusher(
        EchoOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            data: data.to_path_buf(),
            fixed_code: Some(code.to_owned()),
            max_connections_per_ip: None,
            bots: Vec::new(),
            bot_api: None,
        },
        Arc::new(LoggingCodeSender),
        pusher,
    )
    .await
    .unwrap();
    let target = Target::new(started.address, started.public_key.clone());
    let server = started.server().clone();
    let backend = started.backend();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        started
            .serve(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running {
        target,
        server,
        backend,
        stop,
        done,
    }
}

impl Running {
    /// Shuts it down and waits until its stores are closed.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.done.await.unwrap();
    }
}
