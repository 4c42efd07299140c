//! The RocksDB user store: the shared conformance suite and model test, plus what only a
//! store on disk has: people that outlive the process, and a failed write that leaves
//! nothing half-done.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::cell::RefCell;

use columba_store::rocks::Fault;
use columba_store::user::conformance::{self, entry, phone};
use columba_store::user::{Presence, ProfileChange};
use columba_store::{Durability, RocksUserStore, UserError, UserStore, UserStoreConfig};
use proptest::prelude::*;

/// Opens stores in temporary directories, kept until the test ends.
#[derive(Default)]
struct Stores {
    dirs: RefCell<Vec<tempfile::TempDir>>,
}

impl Stores {
    fn open(&self, config: UserStoreConfig) -> Box<dyn UserStore> {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksUserStore::open(dir.path(), config, Durability::Sync).unwrap();
        self.dirs.borrow_mut().push(dir);
        Box::new(store)
    }
}

#[test]
fn rocksdb_user_store_passes_the_conformance_suite() {
    let stores = Stores::default();
    conformance::run_all(&|| stores.open(UserStoreConfig::default()));
    conformance::run_all_with_limits(&|config| stores.open(config));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn rocksdb_user_store_agrees_with_the_model(ops in conformance::ops()) {
        let stores = Stores::default();
        conformance::model_agrees(&|| stores.open(UserStoreConfig::default()), &ops);
    }
}

#[test]
fn people_outlive_the_process_and_ids_are_never_given_twice() {
    let dir = tempfile::tempdir().unwrap();
    let open =
        || RocksUserStore::open(dir.path(), UserStoreConfig::default(), Durability::Sync).unwrap();
    let (ann, bo) = {
        let store = open();
        let ann = store.create_account(&phone(1), "Ann", "Lee").unwrap();
        let bo = store.create_account(&phone(2), "Bo", "").unwrap();
        store.set_username(ann.id, Some("Ann_L")).unwrap();
        store
            .import_contacts(bo.id, &[entry(7, &phone(1), "Annie", "")], 10)
            .unwrap();
        store
            .import_contacts(bo.id, &[entry(8, &phone(3), "Later", "")], 11)
            .unwrap();
        store.block(ann.id, bo.id, 12).unwrap();
        store
            .set_presence(ann.id, Presence::Online { expires: 99 })
            .unwrap();
        (store.account(ann.id).unwrap().unwrap(), bo)
    };
    let store = open();
    assert_eq!(store.account(ann.id).unwrap().as_ref(), Some(&ann));
    assert_eq!(store.by_username("ann_l").unwrap().unwrap().id, ann.id);
    assert_eq!(store.contacts(bo.id).unwrap().len(), 1);
    assert!(store.is_blocked(ann.id, bo.id).unwrap());
    // The next id follows the last one given, and the phone book waited on disk.
    let third = store.create_account(&phone(3), "Cy", "").unwrap();
    assert_eq!(third.id, bo.id + 1);
    assert_eq!(
        store
            .contact(bo.id, third.id)
            .unwrap()
            .map(|c| c.first_name),
        Some("Later".to_owned())
    );
}

#[test]
fn a_failed_write_changes_nothing_and_refuses_more_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let open =
        || RocksUserStore::open(dir.path(), UserStoreConfig::default(), Durability::Sync).unwrap();
    let ann = {
        let store = open();
        let ann = store.create_account(&phone(1), "Ann", "").unwrap();
        store.inject_fault(0, Fault::FailWrite);
        let mut change = ProfileChange::default();
        change.first_name = Some("Anna".to_owned());
        let failed = store.update_profile(ann.id, &change);
        assert!(matches!(failed, Err(UserError::Backend(_))), "{failed:?}");
        // Reads go on; writes are refused until the store is reopened.
        assert_eq!(store.account(ann.id).unwrap().unwrap().first_name, "Ann");
        assert!(matches!(
            store.create_account(&phone(2), "Bo", ""),
            Err(UserError::Poisoned(_))
        ));
        ann
    };
    let store = open();
    let read = store.account(ann.id).unwrap().unwrap();
    assert_eq!(
        read.first_name, "Ann",
        "the failed change left nothing behind"
    );
    assert_eq!(store.search("anna", 10).unwrap(), Vec::new());
    assert_eq!(store.search("ann", 10).unwrap(), vec![read]);
    store.create_account(&phone(2), "Bo", "").unwrap();
}
