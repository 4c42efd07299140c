//! What the crash tests share: a replayable generator, running a child writer and killing
//! it with SIGKILL, and a `main` that is either the parent or the child.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A small deterministic generator (xorshift64*), so that a failing cycle can be replayed.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The cycles to run: `COLUMBA_CRASH_CYCLES`, or `default`.
pub fn cycles(default: u64) -> u64 {
    std::env::var("COLUMBA_CRASH_CYCLES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Runs this executable as the child writer on `dir` for cycle `cycle`, kills it with
/// SIGKILL after `kill_after`, and returns the lines it printed (its acknowledgements).
pub fn run_and_kill(dir: &Path, cycle: u64, kill_after: Duration) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .arg(dir)
        .arg(cycle.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    std::thread::sleep(kill_after);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "cycle {cycle}: the child ended by itself: {status:?}"
    );
    reader.join().unwrap()
}

/// The test's `main`: the child when called as `child <dir> <cycle>`, else the parent (one
/// test, listed as `name` for `--list`).
pub fn main(name: &str, child: fn(&Path, u64), parent: fn()) {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let dir = args.get(2).expect("a directory");
        let cycle = args
            .get(3)
            .and_then(|c| c.parse().ok())
            .expect("a cycle number");
        child(Path::new(dir), cycle);
        return;
    }
    if args.iter().any(|arg| arg == "--list") {
        println!("{name}: test");
        return;
    }
    parent();
}
