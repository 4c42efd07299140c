//! Suite `e2e`: secret-chat messages encrypted and decrypted with `columba_mtproto::e2e`
//! against the same work done with grammers-crypto's MTProto 2.0 primitives, which fit a
//! secret message exactly: a secret message is the cloud format with the key fingerprint in
//! place of the auth_key_id, a length word in place of the cloud header, and x = 0 for the
//! chat's creator (grammers' client side), x = 8 for the other side (its server side).
//!
//! Ours pads to size buckets (a 128-byte payload becomes a 192-byte plaintext) where grammers
//! pads to the next block plus 12 to 27 bytes: ours hashes and encrypts more bytes, on purpose.
//!
//! `secret_queue_send`: the relay's queue, `RocksSecretStore::send` of a 192-byte ciphertext
//! from 64 devices at once into 64 chats, every send synced before it is answered. Peer
//! (`rocksdb_reads_and_writebatch_sync`): raw RocksDB doing the same I/O per send from 64
//! threads: the three point reads ours makes (the send record, the chat, the receiving
//! device's counters) under the same keys in a RocksDB holding the same chats, then one
//! synced `WriteBatch` of the same five rows (the queue entry, the device's counters, the
//! send record, and the expiry rows of both) with values of the same sizes. Raw RocksDB
//! groups concurrent synced writes by itself; ours groups them in its commit queue.
#![allow(
    clippy::expect_used,
    reason = "a benchmark that cannot set up has nothing to report: it stops and says why"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicI64, Ordering};

use columba_mtproto::e2e::cipher::{self, ChatKey, Side as ChatSide};
use columba_store::hooks::keys::{self, Prefix};
use columba_store::secret::{NewSecretChat, SecretChat, SecretKind, SecretSend, SecretStore as _};
use columba_store::{Durability, RocksSecretStore, SecretStoreConfig};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

use super::{Side, compare};

const PEER: &str = "grammers-crypto 0.11";

pub(crate) fn run() {
    ciphers();
    secret_queue_send();
}

fn ciphers() {
    let key_bytes: [u8; 256] = core::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(3));
    let ours_key = ChatKey::from_bytes(key_bytes);
    let peer_key = grammers_crypto::AuthKey::from_bytes(key_bytes);
    // A 128-byte payload (a serialized decryptedMessageLayer, as far as the cipher cares).
    let payload = [0x17u8; 128];
    let mut plaintext = Vec::new();
    plaintext.extend_from_slice(&128u32.to_le_bytes());
    plaintext.extend_from_slice(&payload);

    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut peer_out = grammers_crypto::DequeBuffer::with_capacity(1024, 64);
    compare(
        "e2e_encrypt_128b",
        "messages/s",
        PEER,
        Side::new(1.0, || {
            let data = cipher::encrypt(&ours_key, ChatSide::Creator, &payload, &mut rng);
            black_box(data.is_ok());
        }),
        Side::new(1.0, || {
            peer_out.clear();
            peer_out.extend(plaintext.iter().copied());
            grammers_crypto::encrypt_data_v2(&mut peer_out, &peer_key);
            black_box(&peer_out);
        }),
    );

    // Opening a message of the other side (x = 8, grammers' server side); the same bytes for
    // both, and each checks the length word inside as a secret-chat receiver must.
    let sealed = cipher::encrypt(&ours_key, ChatSide::Participant, &payload, &mut rng)
        .expect("a payload of 128 bytes encrypts");
    let mut peer_in = vec![0u8; sealed.len()];
    compare(
        "e2e_decrypt_128b",
        "messages/s",
        PEER,
        Side::new(1.0, || {
            let opened = cipher::decrypt(&ours_key, ChatSide::Participant, &sealed);
            black_box(opened.is_ok());
        }),
        Side::new(1.0, || {
            peer_in.copy_from_slice(&sealed);
            let opened = grammers_crypto::decrypt_data_v2(&mut peer_in, &peer_key)
                .ok()
                .and_then(|plain| {
                    let length = u32::from_le_bytes(plain.get(..4)?.try_into().ok()?) as usize;
                    let rest = plain.len().checked_sub(4)?;
                    (length % 4 == 0 && (12..=1024).contains(&rest.checked_sub(length)?))
                        .then(|| plain.get(4..4 + length).map(<[u8]>::to_vec))?
                });
            black_box(opened.is_some());
        }),
    );
}

/// Devices sending at once, and sends each makes per measured call.
const WRITERS: i64 = 64;
const SENDS_PER_CALL: i64 = 8;
/// A secret message's ciphertext: a 128-byte payload in its size bucket with its header.
const CIPHERTEXT: usize = 8 + 16 + 192;

fn secret_queue_send() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = RocksSecretStore::open(
        dir.path().join("ours"),
        SecretStoreConfig::default(),
        Durability::Sync,
    )
    .expect("a secret store");
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let peer = rocksdb::DB::open(&options, dir.path().join("peer")).expect("a peer RocksDB");
    let chats: Vec<SecretChat> = (0..WRITERS)
        .map(|writer| {
            let id = i32::try_from(writer + 1).expect("a small id");
            let chat = store
                .request(&NewSecretChat {
                    id,
                    access_hash: writer * 7 + 1,
                    date: 1_700_000_000,
                    admin_id: 1_000 + writer,
                    admin_key: 10_000 + writer,
                    participant_id: 2_000 + writer,
                    g_a: vec![3; 256],
                })
                .expect("a chat");
            let chat = store
                .accept(
                    id,
                    chat.access_hash,
                    chat.participant_id,
                    20_000 + writer,
                    &[4; 256],
                    5,
                    1_700_000_001,
                )
                .expect("an accepted chat");
            // The peer holds the same chat row (a chat's value is about 560 bytes).
            peer.put(
                keys::user_row(Prefix::SecretChat, &[i64::from(id), chat.access_hash]),
                vec![1u8; 560],
            )
            .expect("a peer write");
            chat
        })
        .collect();
    let data = vec![0x5au8; CIPHERTEXT];
    let next = AtomicI64::new(1);
    let ours = || {
        std::thread::scope(|scope| {
            for chat in &chats {
                let (store, next, data) = (&store, &next, &data);
                scope.spawn(move || {
                    for _ in 0..SENDS_PER_CALL {
                        let sent = store.send(&SecretSend {
                            sender: chat.admin_id,
                            sender_key: chat.admin_key,
                            chat_id: chat.id,
                            access_hash: chat.access_hash,
                            random_id: next.fetch_add(1, Ordering::Relaxed),
                            date: 1_700_000_002,
                            kind: SecretKind::Message,
                            data: data.clone(),
                            file: None,
                        });
                        black_box(sent.expect("a send"));
                    }
                });
            }
        });
    };
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    // Values of the sizes ours writes: the entry (its fields and the ciphertext), the
    // counters, the send record; expiry rows are empty.
    let entry_value = vec![1u8; 1 + 4 + 1 + 4 + 8 + 4 + 4 + CIPHERTEXT + 1];
    let state_value = vec![1u8; 1 + 4 + 4 + 4];
    let send_value = vec![1u8; 1 + 4 + 8 + 8 + 1];
    let peer_next = AtomicI64::new(1);
    let theirs = || {
        std::thread::scope(|scope| {
            for chat in &chats {
                let (peer, sync, next) = (&peer, &sync, &peer_next);
                let (entry_value, state_value, send_value) =
                    (&entry_value, &state_value, &send_value);
                scope.spawn(move || {
                    let device = keys::user_row(Prefix::SecretDevice, &[chat.admin_key + 10_000]);
                    let chat_key =
                        keys::user_row(Prefix::SecretChat, &[i64::from(chat.id), chat.access_hash]);
                    for _ in 0..SENDS_PER_CALL {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let record = keys::user_row(
                            Prefix::SecretSend,
                            &[chat.admin_key, i64::from(chat.id), n],
                        );
                        black_box(peer.get(&record).expect("a peer read"));
                        black_box(peer.get(&chat_key).expect("a peer read"));
                        black_box(peer.get(&device).expect("a peer read"));
                        let entry =
                            keys::user_row(Prefix::SecretQueue, &[chat.admin_key + 10_000, n]);
                        let mut expiry = keys::user_row(Prefix::SecretExpiry, &[1_700_604_802]);
                        let mut record_expiry = expiry.clone();
                        expiry.extend_from_slice(&entry);
                        record_expiry.extend_from_slice(&record);
                        let mut batch = rocksdb::WriteBatch::default();
                        batch.put(expiry, []);
                        batch.put(entry, entry_value);
                        batch.put(&device, state_value);
                        batch.put(record_expiry, []);
                        batch.put(record, send_value);
                        peer.write_opt(batch, sync).expect("a peer write");
                    }
                });
            }
        });
    };
    compare(
        "secret_queue_send",
        "sends/s",
        "rocksdb_reads_and_writebatch_sync",
        Side::new((WRITERS * SENDS_PER_CALL) as f64, ours),
        Side::new((WRITERS * SENDS_PER_CALL) as f64, theirs),
    );
}
