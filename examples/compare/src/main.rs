//! Columba against its peers, side by side.
//!
//! `cargo run --release -p columba-compare -- [suite]` runs one suite, or every suite with no
//! argument, and prints one JSON object a line on stdout, nothing else:
//!
//! ```text
//! {"bench":"<name>","unit":"<unit>","ours":<n>,"peer":"<peer>","peer_value":<n>,"ratio":<ours/peer>}
//! ```
//!
//! Every figure is a throughput (higher is better). Ours and the peer's are measured in the
//! same run, interleaved (ours, peer, ours, peer, ...), and the best of several repetitions
//! after a warm-up is kept, so that a noisy, shared machine penalises both alike.

use std::hint::black_box;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod api;
mod botapi;
mod channels;
mod crypto;
mod e2e;
mod echo;
mod files;
mod handshake;
mod push;
mod server;
mod session;
mod store;
mod users;

/// How long one measurement runs.
const MEASURE: Duration = Duration::from_millis(300);
/// Measurements per side, after one warm-up each.
const REPETITIONS: usize = 5;

/// The clocks now, as the sans-IO layers take them.
fn now() -> columba_mtproto::time::Now {
    columba_mtproto::time::Now {
        monotonic: Instant::now(),
        unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    }
}

/// One side of a comparison: a closure doing `work` units per call, returning the time that
/// counts (for closures that also do untimed setup), or `None` to count the whole call.
struct Side<'a> {
    run: Box<dyn FnMut() -> Option<Duration> + 'a>,
    work: f64,
}

impl<'a> Side<'a> {
    fn new(work: f64, mut run: impl FnMut() + 'a) -> Self {
        Self {
            run: Box::new(move || {
                run();
                None
            }),
            work,
        }
    }

    /// A side whose closure times the part that counts itself.
    fn timed(work: f64, mut run: impl FnMut() -> Duration + 'a) -> Self {
        Self {
            run: Box::new(move || Some(run())),
            work,
        }
    }

    /// Units per second over one measurement of at least [`MEASURE`].
    fn measure(&mut self) -> f64 {
        let start = Instant::now();
        let mut calls = 0u64;
        let mut counted = Duration::ZERO;
        let mut self_timed = false;
        while start.elapsed() < MEASURE {
            for _ in 0..4 {
                if let Some(spent) = (self.run)() {
                    counted += spent;
                    self_timed = true;
                }
            }
            calls += 4;
        }
        black_box(calls);
        let elapsed = if self_timed { counted } else { start.elapsed() };
        self.work * calls as f64 / elapsed.as_secs_f64().max(1e-9)
    }
}

/// Measures both sides interleaved and prints the JSON line.
fn compare(bench: &str, unit: &str, peer: &str, mut ours: Side<'_>, mut theirs: Side<'_>) {
    ours.measure();
    theirs.measure();
    let (mut best_ours, mut best_peer) = (0f64, 0f64);
    for _ in 0..REPETITIONS {
        best_ours = best_ours.max(ours.measure());
        best_peer = best_peer.max(theirs.measure());
    }
    let ratio = if best_peer > 0.0 {
        best_ours / best_peer
    } else {
        0.0
    };
    let line = format!(
        "{{\"bench\":\"{bench}\",\"unit\":\"{unit}\",\"ours\":{best_ours:.1},\"peer\":\"{peer}\",\"peer_value\":{best_peer:.1},\"ratio\":{ratio:.3}}}"
    );
    // A reader that went away (`| head`) ends the run quietly rather than with a panic.
    if writeln!(std::io::stdout(), "{line}").is_err() {
        std::process::exit(0);
    }
}

const SUITES: &[(&str, fn())] = &[
    ("crypto", crypto::run),
    ("e2e", e2e::run),
    ("handshake", handshake::run),
    ("session", session::run),
    ("store", store::run),
    ("files", files::run),
    ("server", server::run),
    ("api", api::run),
    ("users", users::run),
    ("echo", echo::run),
    ("channels", channels::run),
    ("botapi", botapi::run),
];

fn main() -> ExitCode {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    for name in &wanted {
        if !SUITES.iter().any(|(suite, _)| suite == name) {
            let names: Vec<&str> = SUITES.iter().map(|(suite, _)| *suite).collect();
            eprintln!("unknown suite `{name}`; suites: {}", names.join(", "));
            return ExitCode::from(2);
        }
    }
    for (suite, run) in SUITES {
        if wanted.is_empty() || wanted.iter().any(|w| w == suite) {
            run();
        }
    }
    ExitCode::SUCCESS
}
