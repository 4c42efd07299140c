//! Crash test of the RocksDB user store: a child process creates accounts, gives them
//! usernames, makes them each other's contacts and fills phone books, from several threads,
//! printing each acknowledged change; the parent kills it with SIGKILL at a random moment,
//! reopens the store and checks that every acknowledged change is there, that the phone,
//! username and contact indexes agree with the accounts, and that no account id was given
//! twice. Then again, on the same store.
//!
//! Its own `main` (no libtest harness): run with no arguments it is the parent; the parent
//! runs this same executable with `child <dir> <cycle>` as the writer. Cycles:
//! `COLUMBA_CRASH_CYCLES` (default 30).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod crash_harness;

use crash_harness::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use columba_store::user::ImportContact;
use columba_store::{Durability, RocksUserStore, UserStore, UserStoreConfig};

const THREADS: u64 = 4;

fn open(dir: &Path) -> RocksUserStore {
    RocksUserStore::open(dir, UserStoreConfig::default(), Durability::Sync).unwrap()
}

/// The phone of step `i` of `thread` in `cycle`: unique over the whole test.
fn phone(cycle: u64, thread: u64, i: u64) -> String {
    format!("7{cycle:03}{thread}{i:06}")
}

/// The writer: until killed (or for 30 s), per thread: create an account, name it, make the
/// thread's previous account its contact, and put the phone of its next account in its
/// phone book. One line per acknowledged change.
fn child(dir: &Path, cycle: u64) {
    let store = Arc::new(open(dir));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = store.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                let say = |line: String| {
                    let mut out = out.lock().unwrap();
                    writeln!(out, "{line}").unwrap();
                    out.flush().unwrap();
                };
                let started = Instant::now();
                let mut previous: Option<i64> = None;
                let mut i = 0;
                while started.elapsed() < Duration::from_secs(30) {
                    let phone = phone(cycle, thread, i);
                    let account = store.create_account(&phone, "Crash", "Test").unwrap();
                    say(format!("account {} {phone}", account.id));
                    let username = format!("u{}", account.id);
                    store.set_username(account.id, Some(&username)).unwrap();
                    say(format!("username {} {username}", account.id));
                    // The other way round from the phone book's contact (previous -> this).
                    if let Some(previous) = previous {
                        store
                            .add_contact(account.id, previous, "Before", "", 1)
                            .unwrap();
                        say(format!("contact {} {previous}", account.id));
                    }
                    let next = phone_of_next(cycle, thread, i);
                    let entry = ImportContact {
                        client_id: 1,
                        phone: next.clone(),
                        first_name: "Later".to_owned(),
                        last_name: String::new(),
                    };
                    store.import_contacts(account.id, &[entry], 1).unwrap();
                    say(format!("book {} {next}", account.id));
                    previous = Some(account.id);
                    i += 1;
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// The phone an account puts in its phone book: the one its thread creates next.
fn phone_of_next(cycle: u64, thread: u64, i: u64) -> String {
    phone(cycle, thread, i + 1)
}

#[derive(Default)]
struct Acked {
    /// account id -> phone
    accounts: BTreeMap<i64, String>,
    /// account id -> username
    usernames: BTreeMap<i64, String>,
    /// (owner, contact)
    contacts: BTreeSet<(i64, i64)>,
    /// (owner, phone) put in the phone book
    books: BTreeSet<(i64, String)>,
}

impl Acked {
    fn read(&mut self, line: &str, cycle: u64) {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["account", id, phone] => {
                let id: i64 = id.parse().unwrap();
                let fresh = self.accounts.insert(id, (*phone).to_owned()).is_none();
                assert!(fresh, "cycle {cycle}: account id {id} given twice");
            }
            ["username", id, name] => {
                self.usernames
                    .insert(id.parse().unwrap(), (*name).to_owned());
            }
            ["contact", owner, contact] => {
                self.contacts
                    .insert((owner.parse().unwrap(), contact.parse().unwrap()));
            }
            ["book", owner, phone] => {
                self.books
                    .insert((owner.parse().unwrap(), (*phone).to_owned()));
            }
            _ => panic!("cycle {cycle}: a line the child cannot print: {line:?}"),
        }
    }
}

fn verify(store: &RocksUserStore, acked: &Acked, cycle: u64) {
    for (id, phone) in &acked.accounts {
        let account = store.account(*id).unwrap();
        assert_eq!(
            account.as_ref().map(|a| a.phone.as_str()),
            Some(phone.as_str()),
            "cycle {cycle}: acknowledged account {id}"
        );
        assert_eq!(
            store.by_phone(phone).unwrap().map(|a| a.id),
            Some(*id),
            "cycle {cycle}: the phone index of {id}"
        );
        // The username index agrees with the account, acknowledged or not.
        if let Some(name) = account.and_then(|a| a.username) {
            assert_eq!(store.by_username(&name).unwrap().map(|a| a.id), Some(*id));
        }
    }
    for (id, name) in &acked.usernames {
        assert_eq!(
            store.by_username(name).unwrap().map(|a| a.id),
            Some(*id),
            "cycle {cycle}: acknowledged username {name}"
        );
    }
    for (owner, contact) in &acked.contacts {
        assert!(
            store.contact(*owner, *contact).unwrap().is_some(),
            "cycle {cycle}: acknowledged contact {owner} -> {contact}"
        );
        assert!(store.contact_of(*contact, 100).unwrap().contains(owner));
    }
    // A phone put in a book became a contact if its account exists (created after), and
    // an account created for it adopted it.
    for (owner, phone) in &acked.books {
        if let Some(account) = store.by_phone(phone).unwrap() {
            assert!(
                store.contact(*owner, account.id).unwrap().is_some(),
                "cycle {cycle}: {owner}'s book entry {phone} was not adopted by {}",
                account.id
            );
        }
    }
}

fn parent() {
    let cycles = crash_harness::cycles(30);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0005_eed0_0ae7);
    let mut acked = Acked::default();
    let started = Instant::now();
    for cycle in 1..=cycles {
        let kill_after = Duration::from_millis(20 + rng.below(400));
        for line in crash_harness::run_and_kill(dir.path(), cycle, kill_after) {
            acked.read(&line, cycle);
        }
        let store = open(dir.path());
        verify(&store, &acked, cycle);
        // The next id is past every id given, acknowledged or not.
        let highest = acked.accounts.keys().last().copied().unwrap_or(0);
        let probe = store
            .create_account(&format!("6{cycle:06}"), "Probe", "")
            .unwrap();
        assert!(
            probe.id > highest,
            "cycle {cycle}: id {} given again",
            probe.id
        );
        acked.accounts.insert(probe.id, format!("6{cycle:06}"));
    }
    assert!(
        acked.accounts.len() > usize::try_from(cycles).unwrap() * 2,
        "the child acknowledged almost nothing"
    );
    println!(
        "user crash test: {cycles} SIGKILL cycles, {} accounts, {} usernames, {} contacts and {} phone-book entries acknowledged and found, {:.1} s",
        acked.accounts.len(),
        acked.usernames.len(),
        acked.contacts.len(),
        acked.books.len(),
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    crash_harness::main("acknowledged_people_survive_sigkill", child, parent);
}
