#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;

use columba_mtproto::e2e::{KeyRequest, exchange};
use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::{
    MemoryAuthKeyStore, MemoryFileStore, MemoryMessageStore, MemorySecretStore, MemoryUserStore,
};

use super::*;
use crate::{AccessSecret, DcList};

const ALICE_KEY: i64 = 11;
const BOB_KEY: i64 = 22;

struct Fixture {
    backend: Arc<Backend>,
    relay: Arc<Relay>,
    alice: i64,
    bob: i64,
}

impl Fixture {
    fn new() -> Self {
        let backend = Backend::with_secrets(
            Arc::new(MemoryMessageStore::new()),
            Arc::new(MemoryFileStore::new()),
            Arc::new(MemoryAuthKeyStore::new()),
            Arc::new(MemoryUserStore::new()),
            Arc::new(MemorySecretStore::new()),
            AccessSecret::new([3; 32]),
            DcList::single(1, "127.0.0.1:1".parse().unwrap()),
        );
        let alice = backend
            .users
            .create_account("15550001", "Alice", "")
            .unwrap()
            .id;
        let bob = backend
            .users
            .create_account("15550002", "Bob", "")
            .unwrap()
            .id;
        Self {
            relay: Relay::new(backend.clone()),
            backend,
            alice,
            bob,
        }
    }

    fn alice(&self) -> Ctx {
        Ctx::detached(ALICE_KEY, Some(self.alice))
    }

    fn bob(&self) -> Ctx {
        Ctx::detached(BOB_KEY, Some(self.bob))
    }

    fn input_user(&self, id: i64) -> enums::InputUser {
        types::InputUser {
            user_id: id,
            access_hash: self.backend.access.user_hash(id),
        }
        .into()
    }

    async fn request(&self, id: i32, g_a: &[u8]) -> Result<enums::EncryptedChat, ApiError> {
        request_encryption(
            self.alice(),
            self.relay.clone(),
            functions::messages::RequestEncryption {
                user_id: self.input_user(self.bob),
                random_id: id,
                g_a: g_a.to_vec(),
            },
        )
        .await
    }

    async fn accept(
        &self,
        ctx: Ctx,
        peer: enums::InputEncryptedChat,
        g_b: &[u8],
        fingerprint: i64,
    ) -> Result<enums::EncryptedChat, ApiError> {
        accept_encryption(
            ctx,
            self.relay.clone(),
            functions::messages::AcceptEncryption {
                peer,
                g_b: g_b.to_vec(),
                key_fingerprint: fingerprint,
            },
        )
        .await
    }

    /// A ready chat `id` between Alice (requesting) and Bob; its input.
    async fn ready_chat(&self, id: i32) -> enums::InputEncryptedChat {
        let mut rng = rand::rng();
        let request = KeyRequest::new(DhGroup::telegram(), &[], &mut rng);
        let chat = self.request(id, request.g_a()).await.unwrap();
        let enums::EncryptedChat::EncryptedChatWaiting(waiting) = chat else {
            panic!("the requester sees a waiting chat: {chat:?}");
        };
        let peer: enums::InputEncryptedChat = types::InputEncryptedChat {
            chat_id: waiting.id,
            access_hash: waiting.access_hash,
        }
        .into();
        let (key, g_b) =
            exchange::accept(&DhGroup::telegram(), request.g_a(), &[], &mut rng).unwrap();
        self.accept(self.bob(), peer.clone(), &g_b, key.fingerprint())
            .await
            .unwrap();
        peer
    }

    async fn send(
        &self,
        ctx: Ctx,
        peer: &enums::InputEncryptedChat,
        random_id: i64,
    ) -> Result<enums::messages::SentEncryptedMessage, ApiError> {
        send_encrypted(
            ctx,
            self.relay.clone(),
            functions::messages::SendEncrypted {
                silent: false,
                peer: peer.clone(),
                random_id,
                data: random_id.to_le_bytes().to_vec(),
            },
        )
        .await
    }

    async fn difference(&self, ctx: Ctx, qts: i32) -> enums::updates::Difference {
        crate::updates::get_difference(
            ctx,
            self.backend.clone(),
            functions::updates::GetDifference {
                pts: 1,
                pts_limit: None,
                pts_total_limit: None,
                date: 0,
                qts,
                qts_limit: None,
            },
        )
        .await
        .unwrap()
    }
}

fn name(result: Result<impl std::fmt::Debug, ApiError>) -> String {
    result.unwrap_err().name().to_owned()
}

fn encrypted_of(difference: &enums::updates::Difference) -> (Vec<enums::EncryptedMessage>, i32) {
    match difference {
        enums::updates::Difference::Difference(d) => {
            let enums::updates::State::State(state) = &d.state;
            (d.new_encrypted_messages.clone(), state.qts)
        }
        enums::updates::Difference::DifferenceSlice(d) => {
            let enums::updates::State::State(state) = &d.intermediate_state;
            (d.new_encrypted_messages.clone(), state.qts)
        }
        _ => (Vec::new(), 0),
    }
}

#[tokio::test]
async fn dh_config_gives_telegrams_group_and_the_random_asked_for() {
    let f = Fixture::new();
    let ask = |version, random_length| {
        get_dh_config(
            f.alice(),
            f.relay.clone(),
            functions::messages::GetDhConfig {
                version,
                random_length,
            },
        )
    };
    let enums::messages::DhConfig::DhConfig(config) = ask(0, 256).await.unwrap() else {
        panic!("a first ask gets the group");
    };
    assert_eq!(config.g, 3);
    assert_eq!(config.p, DhGroup::telegram().prime().to_vec());
    assert_eq!(config.version, DH_VERSION);
    assert_eq!(config.random.len(), 256);
    let enums::messages::DhConfig::DhConfigNotModified(same) = ask(DH_VERSION, 16).await.unwrap()
    else {
        panic!("the current version is not sent again");
    };
    assert_eq!(same.random.len(), 16);
    assert_eq!(name(ask(0, -1).await), "RANDOM_LENGTH_INVALID");
    assert_eq!(
        name(ask(0, MAX_DH_RANDOM + 1).await),
        "RANDOM_LENGTH_INVALID"
    );
}

#[tokio::test]
async fn requests_are_checked() {
    let f = Fixture::new();
    let mut rng = rand::rng();
    let request = KeyRequest::new(DhGroup::telegram(), &[], &mut rng);
    // Out of range: 1, and p itself.
    let mut one = vec![0u8; 256];
    one[255] = 1;
    assert_eq!(name(f.request(1, &one).await), "DH_G_A_INVALID");
    assert_eq!(
        name(f.request(1, DhGroup::telegram().prime()).await),
        "DH_G_A_INVALID"
    );
    let to_self = request_encryption(
        f.alice(),
        f.relay.clone(),
        functions::messages::RequestEncryption {
            user_id: types::InputUserSelf {}.into(),
            random_id: 2,
            g_a: request.g_a().to_vec(),
        },
    )
    .await;
    assert_eq!(name(to_self), "USER_ID_INVALID");
    f.backend.users.block(f.bob, f.alice, 0).unwrap();
    assert_eq!(name(f.request(3, request.g_a()).await), "USER_IS_BLOCKED");
    f.backend.users.unblock(f.bob, f.alice).unwrap();
    let chat = f.request(4, request.g_a()).await.unwrap();
    let enums::EncryptedChat::EncryptedChatWaiting(waiting) = &chat else {
        panic!("waiting: {chat:?}");
    };
    assert_eq!(waiting.id, 4, "the chat id is the requester's random_id");
    assert_eq!((waiting.admin_id, waiting.participant_id), (f.alice, f.bob));
    assert_eq!(f.request(4, request.g_a()).await.unwrap(), chat, "a repeat");
    let other = KeyRequest::new(DhGroup::telegram(), &[], &mut rng);
    assert_eq!(name(f.request(4, other.g_a()).await), "RANDOM_ID_DUPLICATE");
}

#[tokio::test]
async fn accepting_answers_with_g_a_and_the_fingerprint() {
    let f = Fixture::new();
    let mut rng = rand::rng();
    let request = KeyRequest::new(DhGroup::telegram(), &[], &mut rng);
    let enums::EncryptedChat::EncryptedChatWaiting(waiting) =
        f.request(5, request.g_a()).await.unwrap()
    else {
        panic!("waiting");
    };
    let peer: enums::InputEncryptedChat = types::InputEncryptedChat {
        chat_id: 5,
        access_hash: waiting.access_hash,
    }
    .into();
    let (key, g_b) = exchange::accept(&DhGroup::telegram(), request.g_a(), &[], &mut rng).unwrap();
    // 1: far below 2^1984.
    let mut bad = [0u8; 256];
    bad[255] = 1;
    assert_eq!(
        name(f.accept(f.bob(), peer.clone(), &bad, 1).await),
        "DH_G_B_INVALID"
    );
    assert_eq!(
        name(f.accept(f.alice(), peer.clone(), &g_b, 1).await),
        "CHAT_ID_INVALID",
        "the requester cannot accept"
    );
    let accepted = f
        .accept(f.bob(), peer.clone(), &g_b, key.fingerprint())
        .await
        .unwrap();
    let enums::EncryptedChat::EncryptedChat(ready) = accepted else {
        panic!("ready");
    };
    assert_eq!(
        ready.g_a_or_b,
        request.g_a().to_vec(),
        "tg-secret checks this"
    );
    assert_eq!(ready.key_fingerprint, key.fingerprint());
    // The requester completes with what the relay kept.
    let chat = f
        .backend
        .secrets
        .chat(5, waiting.access_hash)
        .unwrap()
        .unwrap();
    let completed = request.complete(&chat.g_b, chat.key_fingerprint).unwrap();
    assert_eq!(completed.as_bytes(), key.as_bytes());
    assert_eq!(
        chat_object(&chat, f.alice, ALICE_KEY),
        types::EncryptedChat {
            id: 5,
            access_hash: waiting.access_hash,
            date: chat.date,
            admin_id: f.alice,
            participant_id: f.bob,
            g_a_or_b: g_b.to_vec(),
            key_fingerprint: key.fingerprint(),
        }
        .into(),
        "the requesting device is told g_b"
    );
    assert!(matches!(
        chat_object(&chat, f.bob, 999),
        enums::EncryptedChat::EncryptedChatDiscarded(_)
    ));
    assert_eq!(
        name(f.accept(f.bob(), peer, &g_b, key.fingerprint()).await),
        "ENCRYPTION_ALREADY_ACCEPTED"
    );
}

#[tokio::test]
async fn messages_reach_the_other_device_with_their_kind_and_qts() {
    let f = Fixture::new();
    let peer = f.ready_chat(6).await;
    let state =
        crate::updates::get_state(f.bob(), f.backend.clone(), functions::updates::GetState {})
            .await
            .unwrap();
    let enums::updates::State::State(state) = state;
    assert_eq!(state.qts, 1, "a device's qts starts at 1");
    let enums::messages::SentEncryptedMessage::SentEncryptedMessage(sent) =
        f.send(f.alice(), &peer, 100).await.unwrap()
    else {
        panic!("a message without a file");
    };
    assert_eq!(
        f.send(f.alice(), &peer, 100).await.unwrap(),
        sent.clone().into(),
        "a repeat"
    );
    send_encrypted_service(
        f.alice(),
        f.relay.clone(),
        functions::messages::SendEncryptedService {
            peer: peer.clone(),
            random_id: 101,
            data: vec![7; 32],
        },
    )
    .await
    .unwrap();
    let (messages, qts) = encrypted_of(&f.difference(f.bob(), 0).await);
    assert_eq!(qts, 3);
    assert_eq!(messages.len(), 2);
    assert!(matches!(
        &messages[0],
        enums::EncryptedMessage::EncryptedMessage(m) if m.random_id == 100 && m.chat_id == 6
            && m.bytes == 100i64.to_le_bytes().to_vec()
    ));
    assert!(matches!(
        &messages[1],
        enums::EncryptedMessage::EncryptedMessageService(m) if m.random_id == 101
    ));
    // Nothing went to Alice's queue.
    assert!(encrypted_of(&f.difference(f.alice(), 0).await).0.is_empty());
    // getDifference with qts 2 acknowledges the first; receivedQueue the second.
    let (messages, _) = encrypted_of(&f.difference(f.bob(), 2).await);
    assert_eq!(messages.len(), 1);
    let ask = |max_qts| {
        received_queue(
            f.bob(),
            f.relay.clone(),
            functions::messages::ReceivedQueue { max_qts },
        )
    };
    assert_eq!(name(ask(4).await), "MAX_QTS_INVALID");
    assert_eq!(ask(3).await.unwrap(), vec![101]);
    assert!(encrypted_of(&f.difference(f.bob(), 0).await).0.is_empty());
    // Only the chat's devices may send into it.
    assert_eq!(
        name(f.send(Ctx::detached(33, Some(f.bob)), &peer, 102).await),
        "CHAT_ID_INVALID"
    );
    let wrong: enums::InputEncryptedChat = types::InputEncryptedChat {
        chat_id: 6,
        access_hash: 1,
    }
    .into();
    assert_eq!(
        name(f.send(f.alice(), &wrong, 103).await),
        "CHAT_ID_INVALID"
    );
}

#[tokio::test]
async fn discarding_closes_the_chat_and_signing_out_closes_a_devices_chats() {
    let f = Fixture::new();
    let peer = f.ready_chat(7).await;
    let discard = |ctx: Ctx, chat_id| {
        discard_encryption(
            ctx,
            f.relay.clone(),
            functions::messages::DiscardEncryption {
                delete_history: true,
                chat_id,
            },
        )
    };
    assert_eq!(name(discard(f.bob(), 0).await), "CHAT_ID_EMPTY");
    assert_eq!(name(discard(f.bob(), 70).await), "ENCRYPTION_ID_INVALID");
    assert!(discard(f.bob(), 7).await.unwrap());
    assert_eq!(
        name(discard(f.alice(), 7).await),
        "ENCRYPTION_ALREADY_DECLINED"
    );
    assert_eq!(
        name(f.send(f.alice(), &peer, 1).await),
        "ENCRYPTION_DECLINED"
    );
    // A device signed out: its chats close.
    let peer = f.ready_chat(8).await;
    device_signed_out(&ServerHandle::detached(), &f.backend, BOB_KEY).unwrap();
    assert_eq!(
        name(f.send(f.alice(), &peer, 2).await),
        "ENCRYPTION_DECLINED"
    );
}

#[tokio::test]
async fn files_are_sent_kept_and_served_to_the_other_side() {
    let f = Fixture::new();
    let peer = f.ready_chat(9).await;
    let ciphertext = vec![0x5a; 1024];
    f.backend
        .files
        .save_part(f.alice, 555, 0, &ciphertext, i64::from(now_unix()))
        .unwrap();
    let sent = send_encrypted_file(
        f.alice(),
        f.relay.clone(),
        functions::messages::SendEncryptedFile {
            silent: false,
            peer: peer.clone(),
            random_id: 200,
            data: vec![1; 64],
            file: types::InputEncryptedFileUploaded {
                id: 555,
                parts: 1,
                md5_checksum: String::new(),
                key_fingerprint: -217_561_997,
            }
            .into(),
        },
    )
    .await
    .unwrap();
    let enums::messages::SentEncryptedMessage::SentEncryptedFile(sent) = sent else {
        panic!("a file send is answered with its file");
    };
    let enums::EncryptedFile::EncryptedFile(file) = sent.file else {
        panic!("a file");
    };
    assert_eq!(file.size, 1024);
    assert_eq!(file.key_fingerprint, -217_561_997);
    let (messages, _) = encrypted_of(&f.difference(f.bob(), 0).await);
    let enums::EncryptedMessage::EncryptedMessage(message) = &messages[0] else {
        panic!("a message");
    };
    assert_eq!(message.file, file.clone().into());
    let get = |id, access_hash| {
        crate::upload::get_file(
            f.bob(),
            f.backend.clone(),
            functions::upload::GetFile {
                precise: false,
                cdn_supported: false,
                location: types::InputEncryptedFileLocation { id, access_hash }.into(),
                offset: 0,
                limit: 1 << 20,
            },
        )
    };
    let enums::upload::File::File(got) = get(file.id, file.access_hash).await.unwrap() else {
        panic!("bytes");
    };
    assert_eq!(got.bytes, ciphertext);
    assert_eq!(
        name(get(file.id, file.access_hash ^ 1).await),
        "FILE_ID_INVALID"
    );
    // The same file sent again by reference.
    let again = send_encrypted_file(
        f.alice(),
        f.relay.clone(),
        functions::messages::SendEncryptedFile {
            silent: true,
            peer,
            random_id: 201,
            data: vec![2; 64],
            file: types::InputEncryptedFile {
                id: file.id,
                access_hash: file.access_hash,
            }
            .into(),
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        again,
        enums::messages::SentEncryptedMessage::SentEncryptedFile(again)
            if again.file == file.clone().into()
    ));
}

#[tokio::test]
async fn typing_reads_and_reports_need_the_chats_device() {
    let f = Fixture::new();
    let peer = f.ready_chat(10).await;
    let typing = |ctx| {
        set_encrypted_typing(
            ctx,
            f.relay.clone(),
            functions::messages::SetEncryptedTyping {
                peer: peer.clone(),
                typing: true,
            },
        )
    };
    assert!(typing(f.bob()).await.unwrap());
    assert_eq!(
        name(typing(Ctx::detached(44, Some(f.bob))).await),
        "CHAT_ID_INVALID"
    );
    let read = |max_date| {
        read_encrypted_history(
            f.bob(),
            f.relay.clone(),
            functions::messages::ReadEncryptedHistory {
                peer: peer.clone(),
                max_date,
            },
        )
    };
    assert!(read(now_unix()).await.unwrap());
    assert_eq!(name(read(now_unix() + 3600).await), "MAX_DATE_INVALID");
    assert!(
        report_encrypted_spam(
            f.bob(),
            f.relay.clone(),
            functions::messages::ReportEncryptedSpam { peer: peer.clone() },
        )
        .await
        .unwrap()
    );
}

#[tokio::test]
async fn a_difference_tells_again_what_changed_in_chats_and_keeps_the_clients_pts() {
    let f = Fixture::new();
    let peer = f.ready_chat(11).await;
    let enums::InputEncryptedChat::InputEncryptedChat(input) = &peer;
    let news = |difference: &enums::updates::Difference| -> Vec<enums::EncryptedChat> {
        let updates = match difference {
            enums::updates::Difference::Difference(d) => d.other_updates.clone(),
            enums::updates::Difference::DifferenceSlice(d) => d.other_updates.clone(),
            _ => Vec::new(),
        };
        updates
            .into_iter()
            .filter_map(|update| match update {
                enums::Update::UpdateEncryption(update) => Some(update.chat),
                _ => None,
            })
            .collect()
    };
    // Alice was offline when Bob accepted: her difference from before carries g_b.
    let difference = f.difference(f.alice(), 0).await;
    let chats = news(&difference);
    assert_eq!(chats.len(), 1);
    let chat = f
        .backend
        .secrets
        .chat(11, input.access_hash)
        .unwrap()
        .unwrap();
    assert_eq!(chats[0], chat_object(&chat, f.alice, ALICE_KEY));
    // From a date after the change: nothing to tell.
    let later = crate::updates::get_difference(
        f.alice(),
        f.backend.clone(),
        functions::updates::GetDifference {
            pts: 1,
            pts_limit: None,
            pts_total_limit: None,
            date: now_unix() + 10,
            qts: 0,
            qts_limit: None,
        },
    )
    .await
    .unwrap();
    assert!(news(&later).is_empty());
    // A difference made of the secret queue alone keeps the client's pts.
    f.send(f.alice(), &peer, 300).await.unwrap();
    let difference = crate::updates::get_difference(
        f.bob(),
        f.backend.clone(),
        functions::updates::GetDifference {
            pts: 0,
            pts_limit: None,
            pts_total_limit: None,
            date: now_unix() + 10,
            qts: 0,
            qts_limit: None,
        },
    )
    .await
    .unwrap();
    let enums::updates::Difference::Difference(difference) = difference else {
        panic!("a difference: {difference:?}");
    };
    let enums::updates::State::State(state) = &difference.state;
    assert_eq!(state.pts, 0);
    assert_eq!(difference.new_encrypted_messages.len(), 1);
    assert_eq!(state.qts, 2);
}
