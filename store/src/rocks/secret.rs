//! [`SecretStore`](crate::secret::SecretStore) on RocksDB: the rows of [`crate::secret`]'s
//! shared rules in one instance of their own.
//!
//! Writes are serialised by one mutex (each send reads the receiving device's counters and
//! the chat it must check) and each is one synced `WriteBatch`, so a queued message and its
//! qts, its expiry row and its send record appear together or not at all, whenever the
//! process dies. Sends commit in groups ([`super::commit_queue`]): the sends queued while a
//! group syncs are planned one after the other over one view (each sees the ones before it)
//! and written in one batch with one sync, and none is answered before it is durable. Reads
//! take a snapshot and never lock. Rows (`docs/storage-format.md`): `30`
//! to `37`.

use std::path::Path;

use super::commit_queue::CommitQueue;
use super::instance::SECRET_FAMILIES;
use super::row_db::RowDb;
use super::shards::{Durability, OpenError};
use crate::BackendError;
use crate::message::MessageError;
use crate::rows::{Plan, Rows};
use crate::secret::plan::secret_store_over_rows;
use crate::secret::{SecretError, SecretSend, SecretSent, SecretStoreConfig};

/// Sends in one group at most, and the ciphertext bytes they may hold together.
const MAX_GROUP: usize = 256;
const MAX_GROUP_BYTES: usize = 8 << 20;

/// The secret relay's chats and queues in a RocksDB database of their own.
#[derive(Debug)]
pub struct RocksSecretStore {
    config: SecretStoreConfig,
    db: RowDb,
    sends: CommitQueue<SecretSend, Result<SecretSent, SecretError>>,
}

fn backend(error: MessageError) -> SecretError {
    match error {
        MessageError::Backend(cause) => SecretError::Backend(cause),
        MessageError::Poisoned { cause, .. } => SecretError::Poisoned(cause),
        other => SecretError::Backend(BackendError::with_source("secret store", other)),
    }
}

impl RocksSecretStore {
    /// Opens (or creates) the secret store at `path`. With [`Durability::Sync`] every change
    /// is on disk before the call returns; [`Durability::Periodic`] leaves the sync to
    /// RocksDB's write-ahead log flushes (a power failure may lose the last changes, a
    /// process crash does not).
    pub fn open(
        path: impl AsRef<Path>,
        config: SecretStoreConfig,
        durability: Durability,
    ) -> Result<Self, OpenError> {
        Ok(Self {
            config,
            db: RowDb::open(path.as_ref(), SECRET_FAMILIES, 16 << 20, durability)?,
            sends: CommitQueue::new(MAX_GROUP, MAX_GROUP_BYTES),
        })
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&dyn Rows) -> Result<T, SecretError>,
    ) -> Result<T, SecretError> {
        self.db.read(f)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Plan<'_>) -> Result<T, SecretError>,
    ) -> Result<T, SecretError> {
        self.db.write(true, backend, f)
    }

    fn send_one(&self, send: &SecretSend) -> Result<SecretSent, SecretError> {
        let weight = send
            .data
            .len()
            .saturating_add(send.file.as_ref().map_or(0, Vec::len));
        self.sends.run(
            send.clone(),
            weight,
            |group| self.commit_sends(&group),
            || {
                Err(SecretError::Backend(BackendError::new(
                    "the leader of a group commit panicked",
                )))
            },
        )
    }

    /// Plans `group` in order over one view and commits it with one sync; one result per
    /// send (a refused send wrote nothing, `plan::send`).
    fn commit_sends(&self, group: &[SecretSend]) -> Vec<Result<SecretSent, SecretError>> {
        let _writer = self.db.writer();
        let all_failed = |error: SecretError| group.iter().map(|_| Err(error.clone())).collect();
        let instance = self.db.instance();
        if let Err(error) = instance.check_writable() {
            return all_failed(backend(error));
        }
        let reader = instance.latest();
        let mut plan = Plan::new(&reader);
        let results: Vec<_> = group
            .iter()
            .map(|send| crate::secret::plan::send(&mut plan, &self.config, send))
            .collect();
        let ops = plan.into_ops();
        if !ops.is_empty()
            && let Err(error) = instance.write(&ops, false)
        {
            return all_failed(backend(error));
        }
        results
    }

    /// Makes the next writes fail as `fault` says, after `after_writes` good ones (tests of
    /// what a failed write leaves behind).
    #[cfg(feature = "testing")]
    pub fn inject_fault(&self, after_writes: u64, fault: super::Fault) {
        self.db.instance().set_fault(after_writes, fault);
    }
}

secret_store_over_rows!(RocksSecretStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocks_store_passes_the_conformance_suite() {
        let dirs = std::sync::Mutex::new(Vec::new());
        crate::secret::conformance::run_all(&|config| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let store = RocksSecretStore::open(dir.path(), config, Durability::Sync)
                .expect("the store opens");
            crate::lock(&dirs).push(dir);
            Box::new(store)
        });
    }

    #[test]
    fn concurrent_sends_commit_in_groups_each_once() {
        use crate::secret::{NewSecretChat, SecretKind, SecretStore as _};
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store =
            RocksSecretStore::open(dir.path(), SecretStoreConfig::default(), Durability::Sync)
                .expect("the store opens");
        // Four chats, each from its own device to its own device.
        let mut chats = Vec::new();
        for id in 1..=4i32 {
            let chat = store
                .request(&NewSecretChat {
                    id,
                    access_hash: i64::from(id),
                    date: 1,
                    admin_id: 1,
                    admin_key: i64::from(id) * 10,
                    participant_id: 2,
                    g_a: vec![1; 256],
                })
                .expect("a request");
            store
                .accept(
                    id,
                    chat.access_hash,
                    2,
                    i64::from(id) * 100,
                    &[2; 256],
                    3,
                    2,
                )
                .expect("an accept");
            chats.push(chat);
        }
        std::thread::scope(|scope| {
            for thread in 0..16i64 {
                let (store, chats) = (&store, &chats);
                scope.spawn(move || {
                    let chat = &chats[usize::try_from(thread % 4).unwrap_or(0)];
                    for n in 0..50i64 {
                        // Each send twice: the repeat may land in the same group.
                        let send = SecretSend {
                            sender: 1,
                            sender_key: chat.admin_key,
                            chat_id: chat.id,
                            access_hash: chat.access_hash,
                            random_id: thread * 1000 + n,
                            date: 3,
                            kind: SecretKind::Message,
                            data: vec![7; 100],
                            file: None,
                        };
                        let first = store.send(&send).expect("a send");
                        let again = store.send(&send).expect("a repeat");
                        assert!(first.qts.is_some());
                        assert_eq!(again.qts, None);
                    }
                });
            }
        });
        for chat in &chats {
            let key = i64::from(chat.id) * 100;
            let entries = store.queue(key, 0, 1000).expect("the queue");
            assert_eq!(entries.len(), 200, "four threads of 50 sends per chat");
            let qts: Vec<i32> = entries.iter().map(|entry| entry.qts).collect();
            let expected: Vec<i32> = (2..202).collect();
            assert_eq!(qts, expected, "qts without holes or repeats");
            let mut ids: Vec<i64> = entries.iter().map(|entry| entry.random_id).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), 200);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 16, ..Default::default() })]

        /// The model check of the memory backend, on RocksDB.
        #[test]
        fn rocks_store_agrees_with_the_model(ops in crate::secret::conformance::ops()) {
            let dirs = std::sync::Mutex::new(Vec::new());
            crate::secret::conformance::model_agrees(
                &|config| {
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    let store = RocksSecretStore::open(dir.path(), config, Durability::Periodic(std::time::Duration::from_secs(1)))
                        .expect("the store opens");
                    crate::lock(&dirs).push(dir);
                    Box::new(store)
                },
                &ops,
            );
        }
    }
}
