//! Suite `users`: the RocksDB user store against raw RocksDB doing the same reads and writes.
//!
//! - `contacts_import_1000`: `import_contacts` of 1,000 phones by a new owner, half of them
//!   phones of existing accounts (they become contacts) and half unknown (they go into the
//!   phone book), synced. Peer (`rocksdb_reads_and_writebatch_sync`): for each phone the same
//!   point reads ours makes (the phone index; then the contact row, or the phone-book row and
//!   the scan of the phone's importers), under the same keys in a RocksDB holding the same
//!   phone index, then one synced `WriteBatch` of the same rows with values of the same
//!   sizes. Only the import (or the peer's reads and write) is timed, not the owner's
//!   creation.
//! - `contacts_page`: an owner's 1,000 contacts read and decoded (what `contacts.getContacts`
//!   reads before it builds users). Peer (`rocksdb_range_scan`): a raw iterator over the same
//!   1,000 rows under the same keys, each value copied out.
//!
//! Both stores live in a temporary directory, deleted at the end.
#![allow(
    clippy::expect_used,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]

use std::cell::Cell;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use columba_store::hooks::keys::{self, Prefix};
use columba_store::user::ImportContact;
use columba_store::{Durability, RocksUserStore, UserStore, UserStoreConfig};

use super::{Side, compare};

/// Accounts whose phones are imported.
const KNOWN: i64 = 500;
/// Phones imported per call.
const IMPORT: i64 = 1000;
/// Contacts of the paged owner.
const PAGE: i64 = 1000;
const FIRST_NAME: &str = "Contact";
const LAST_NAME: &str = "Name";

fn phone(n: i64) -> String {
    format!("1555{n:07}")
}

/// The entries of one import: the known phones, then `IMPORT - KNOWN` unknown ones, unique
/// to `round`.
fn entries(round: i64) -> Vec<ImportContact> {
    (0..IMPORT)
        .map(|n| {
            let number = if n < KNOWN {
                phone(n)
            } else {
                format!("1666{round:05}{n:04}")
            };
            ImportContact {
                client_id: n,
                phone: number,
                first_name: FIRST_NAME.to_owned(),
                last_name: LAST_NAME.to_owned(),
            }
        })
        .collect()
}

fn raw_db(path: &Path) -> rocksdb::DB {
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    rocksdb::DB::open(&options, path).expect("a RocksDB for the peer")
}

/// A value of a user-store row's length: version byte, then `fields` bytes.
fn value(fields: usize) -> Vec<u8> {
    vec![1; 1 + fields]
}

pub(crate) fn run() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = RocksUserStore::open(
        dir.path().join("ours"),
        UserStoreConfig::default(),
        Durability::Sync,
    )
    .expect("a user store");
    let peer = raw_db(&dir.path().join("peer"));
    let mut known = Vec::new();
    for n in 0..KNOWN.max(PAGE) {
        let account = store
            .create_account(&phone(n), "Known", "")
            .expect("an account");
        known.push(account.id);
        peer.put(
            keys::text_row(Prefix::Phone, &phone(n)),
            account.id.to_le_bytes(),
        )
        .expect("a peer write");
    }
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    let names = 4 + FIRST_NAME.len() + 4 + LAST_NAME.len();
    let contact_value = value(8 + names + 4);
    let book_value = value(names + 4);

    let round = Cell::new(0i64);
    let ours_import = || {
        round.set(round.get() + 1);
        let owner = store
            .create_account(&format!("1777{:07}", round.get()), "Owner", "")
            .expect("an owner");
        let entries = entries(round.get());
        let started = Instant::now();
        let outcome = store
            .import_contacts(owner.id, &entries, 1_700_000_000)
            .expect("an import");
        let spent = started.elapsed();
        black_box(outcome);
        spent
    };
    let peer_round = Cell::new(0i64);
    let peer_import = || {
        peer_round.set(peer_round.get() + 1);
        let owner = 2_000_000 + peer_round.get();
        let entries = entries(100_000 + peer_round.get());
        let started = Instant::now();
        let mut batch = rocksdb::WriteBatch::default();
        for entry in &entries {
            let found = peer
                .get(keys::text_row(Prefix::Phone, &entry.phone))
                .expect("a peer read");
            match found {
                Some(id) => {
                    let id = i64::from_le_bytes(id.as_slice().try_into().unwrap_or([0; 8]));
                    black_box(
                        peer.get(keys::user_row(Prefix::Contact, &[owner, id]))
                            .expect("a peer read"),
                    );
                    batch.put(
                        keys::user_row(Prefix::Contact, &[owner, id]),
                        &contact_value,
                    );
                    batch.put(keys::user_row(Prefix::ContactOf, &[id, owner]), []);
                }
                None => {
                    let mut book = keys::user_row(Prefix::PhoneBook, &[owner]);
                    book.extend_from_slice(entry.phone.as_bytes());
                    black_box(peer.get(&book).expect("a peer read"));
                    let importers = keys::text_row(Prefix::Importer, &format!("{}\0", entry.phone));
                    black_box(peer.prefix_iterator(&importers).take(1).count());
                    batch.put(book, &book_value);
                    batch.put(keys::text_id_row(Prefix::Importer, &entry.phone, owner), []);
                }
            }
        }
        peer.write_opt(batch, &sync).expect("a peer write");
        started.elapsed()
    };
    compare(
        "contacts_import_1000",
        "contacts/s",
        "rocksdb_reads_and_writebatch_sync",
        Side::timed(IMPORT as f64, ours_import),
        Side::timed(IMPORT as f64, peer_import),
    );

    // One owner with 1,000 contacts, in both.
    let owner = store
        .create_account("17770000000", "Paged", "")
        .expect("an owner");
    let page_entries: Vec<ImportContact> = (0..PAGE)
        .map(|n| ImportContact {
            client_id: n,
            phone: phone(n),
            first_name: FIRST_NAME.to_owned(),
            last_name: LAST_NAME.to_owned(),
        })
        .collect();
    let outcome = store
        .import_contacts(owner.id, &page_entries, 1_700_000_000)
        .expect("an import");
    assert_eq!(outcome.imported.len(), known.len().min(PAGE as usize));
    let mut batch = rocksdb::WriteBatch::default();
    for id in &known {
        batch.put(
            keys::user_row(Prefix::Contact, &[owner.id, *id]),
            &contact_value,
        );
    }
    peer.write(batch).expect("a peer write");
    let prefix = keys::user_row(Prefix::Contact, &[owner.id]);
    compare(
        "contacts_page",
        "contacts/s",
        "rocksdb_range_scan",
        Side::new(PAGE as f64, || {
            let contacts = store.contacts(owner.id).expect("contacts");
            assert_eq!(contacts.len(), PAGE as usize);
            black_box(contacts);
        }),
        Side::new(PAGE as f64, || {
            let mut rows = Vec::with_capacity(PAGE as usize);
            let mut walk = peer.raw_iterator();
            walk.seek(&prefix);
            while let Some((key, value)) = walk.item() {
                if !key.starts_with(&prefix) {
                    break;
                }
                rows.push(value.to_vec());
                walk.next();
            }
            assert_eq!(rows.len(), PAGE as usize);
            black_box(rows);
        }),
    );
}
