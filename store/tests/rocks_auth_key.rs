//! The RocksDB key store: the shared conformance suite, and keys that outlive the process.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use columba_store::auth_key::conformance::{self, record};
use columba_store::{
    AuthKeyError, AuthKeyRecord, AuthKeyStore, Durability, KeyLifetime, OpenError, ResolvedKey,
    RocksAuthKeyStore,
};

/// A store in a temporary directory that goes with it.
struct TempStore {
    store: RocksAuthKeyStore,
    _dir: tempfile::TempDir,
}

impl AuthKeyStore for TempStore {
    fn insert(&self, record: AuthKeyRecord) -> Result<(), AuthKeyError> {
        self.store.insert(record)
    }
    fn contains(&self, auth_key_id: i64) -> Result<bool, AuthKeyError> {
        self.store.contains(auth_key_id)
    }
    fn get(&self, auth_key_id: i64) -> Result<Option<AuthKeyRecord>, AuthKeyError> {
        self.store.get(auth_key_id)
    }
    fn remove(&self, auth_key_id: i64) -> Result<bool, AuthKeyError> {
        self.store.remove(auth_key_id)
    }
    fn bind_temp(
        &self,
        temp: i64,
        perm: i64,
        expires_at: i64,
        now: i64,
    ) -> Result<(), AuthKeyError> {
        self.store.bind_temp(temp, perm, expires_at, now)
    }
    fn resolve(&self, auth_key_id: i64, now: i64) -> Result<ResolvedKey, AuthKeyError> {
        self.store.resolve(auth_key_id, now)
    }
    fn set_user(&self, perm: i64, user_id: Option<i64>) -> Result<(), AuthKeyError> {
        self.store.set_user(perm, user_id)
    }
    fn remove_expired(&self, now: i64) -> Result<usize, AuthKeyError> {
        self.store.remove_expired(now)
    }
    fn remove_unsigned(
        &self,
        created_before: i64,
        in_use: &dyn Fn(i64) -> bool,
    ) -> Result<usize, AuthKeyError> {
        self.store.remove_unsigned(created_before, in_use)
    }
}

#[test]
fn rocksdb_key_store_passes_the_conformance_suite() {
    conformance::run_all(&|| {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksAuthKeyStore::open(dir.path(), Durability::Sync).unwrap();
        Box::new(TempStore { store, _dir: dir })
    });
}

#[test]
fn keys_bindings_and_users_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let temp = KeyLifetime::Temporary { expires_at: 5_000 };
    {
        let store = RocksAuthKeyStore::open(dir.path(), Durability::Sync).unwrap();
        store.insert(record(1, KeyLifetime::Permanent)).unwrap();
        store.insert(record(2, temp)).unwrap();
        store
            .insert(record(3, KeyLifetime::Temporary { expires_at: 1_500 }))
            .unwrap();
        store.bind_temp(2, 1, 4_000, 1_000).unwrap();
        store.set_user(1, Some(77)).unwrap();
    }
    let store = RocksAuthKeyStore::open(dir.path(), Durability::Sync).unwrap();
    assert_eq!(store.get(1).unwrap().unwrap(), record_with_user(1, 77));
    assert_eq!(
        store.resolve(2, 2_000).unwrap(),
        ResolvedKey {
            auth_key_id: 2,
            perm_auth_key_id: 1,
            user_id: Some(77)
        }
    );
    assert_eq!(
        store.resolve(2, 4_000),
        Err(AuthKeyError::Expired(2)),
        "the binding's expiry"
    );
    // The sweep finds the expired temporary key through the expiry index.
    assert_eq!(store.remove_expired(2_000).unwrap(), 1);
    assert!(!store.contains(3).unwrap());
    assert!(store.contains(2).unwrap());
    assert_eq!(store.remove_expired(6_000).unwrap(), 1);
    assert_eq!(
        store.resolve(1, 6_000).unwrap().user_id,
        Some(77),
        "the permanent key stays"
    );
}

fn record_with_user(id: i64, user: i64) -> AuthKeyRecord {
    let mut record = record(id, KeyLifetime::Permanent);
    record.user_id = Some(user);
    record
}

#[test]
fn relaxed_durability_is_refused_for_keys() {
    let dir = tempfile::tempdir().unwrap();
    let refused = RocksAuthKeyStore::open(
        dir.path(),
        Durability::Periodic(std::time::Duration::from_secs(1)),
    );
    assert!(matches!(refused, Err(OpenError::Options(_))));
}

/// The bytes of the directory's table files and write-ahead logs: what holds the keys (the
/// info logs and option files beside them grow with every open, whatever is stored).
fn data_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".sst") || name.ends_with(".log") && !name.starts_with("LOG")
        })
        .map(|entry| entry.metadata().unwrap().len())
        .sum()
}

/// An anonymous handshake flood (thousands of keys that never sign in) does not grow the
/// data directory for ever: the sweep, with a clock past the keys' age, gives the space back.
#[test]
fn a_sweep_of_unsigned_keys_gives_the_space_back() {
    let dir = tempfile::tempdir().unwrap();
    const FLOOD: i64 = 5_000;
    {
        let store = RocksAuthKeyStore::open(dir.path(), Durability::Sync).unwrap();
        for id in 1..=FLOOD {
            store.insert(record(id, KeyLifetime::Permanent)).unwrap();
        }
        store.insert(record_with_user(FLOOD + 1, 77)).unwrap();
    }
    // Reopened, so that what the flood wrote is in table files, not only the log.
    let flooded = {
        let _store = RocksAuthKeyStore::open(dir.path(), Durability::Sync).unwrap();
        data_size(dir.path())
    };
    {
        let store = RocksAuthKeyStore::open(dir.path(), Durability::Sync).unwrap();
        // `record` keys are created at 1 000; the simulated clock is past their age.
        assert_eq!(
            store.remove_unsigned(1_001, &|_| false).unwrap(),
            FLOOD as usize
        );
        assert!(
            store.contains(FLOOD + 1).unwrap(),
            "the signed-in key stays"
        );
    }
    let swept = {
        let _store = RocksAuthKeyStore::open(dir.path(), Durability::Sync).unwrap();
        data_size(dir.path())
    };
    assert!(
        flooded > 1_000_000 && swept * 100 < flooded,
        "{flooded} bytes after the flood, {swept} after the sweep: {:?}",
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (entry.file_name(), entry.metadata().unwrap().len())
            })
            .collect::<Vec<_>>()
    );
}
