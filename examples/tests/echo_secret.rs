//! Secret chats on the echo server, in-process over real loopback TCP and real RocksDB: a
//! client running `columba-mtproto`'s end-to-end layer opens a secret chat with `@echo`,
//! exchanges texts and a file with it through the relay, lives through a re-key the echo
//! starts, and closes the chat; two users' devices find their queue again after a restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::time::Duration;

use columba_examples::client::EchoClient;
use columba_mtproto::crypto::DhGroup;
use columba_mtproto::e2e::chat::ChatLimits;
use columba_mtproto::e2e::file::trim_to_size;
use columba_mtproto::e2e::{FileCipher, FileKey, KeyRequest, Outgoing, SecretChat, Side};
use columba_mtproto::tl::api::{enums, functions, types};
use columba_mtproto::tl::secret as e2e_tl;

const CODE: &str = "31415";
const WAIT: Duration = Duration::from_secs(10);

/// A client's end of one secret chat.
struct End {
    client: EchoClient,
    chat: SecretChat,
    peer: enums::InputEncryptedChat,
    chat_id: i32,
    /// Encrypted messages received, in queue order, with their files.
    inbox: Vec<(Vec<u8>, enums::EncryptedFile)>,
    last_qts: i32,
}

async fn signed_in(running: &common::Running, phone: &str) -> (EchoClient, types::User) {
    let client = EchoClient::connect(&running.target, None).await.unwrap();
    let me = client.sign_in(phone, CODE).await.unwrap();
    (client, me)
}

/// The DH group the relay gives, checked in full as a client must.
async fn group(client: &EchoClient) -> (DhGroup, Vec<u8>) {
    let config = client
        .call(&functions::messages::GetDhConfig {
            version: 0,
            random_length: 256,
        })
        .await
        .unwrap();
    let enums::messages::DhConfig::DhConfig(config) = config else {
        panic!("a first ask gets the group");
    };
    let group = DhGroup::checked(
        &config.p,
        u32::try_from(config.g).unwrap(),
        &mut rand::rng(),
    )
    .expect("the relay's group passes the full check");
    (group, config.random)
}

/// Waits for an update the predicate picks (others are dropped).
async fn wait_for<T>(
    client: &mut EchoClient,
    mut pick: impl FnMut(&enums::Update) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let updates = client
            .next_update(left)
            .await
            .expect("the awaited update came in time");
        let list = match updates {
            enums::Updates::Updates(updates) => updates.updates,
            enums::Updates::UpdateShort(short) => vec![short.update],
            _ => Vec::new(),
        };
        for update in &list {
            if let Some(found) = pick(update) {
                return found;
            }
        }
    }
}

impl End {
    async fn send(&self, outgoing: Outgoing) {
        if outgoing.service {
            self.client
                .call(&functions::messages::SendEncryptedService {
                    peer: self.peer.clone(),
                    random_id: outgoing.random_id,
                    data: outgoing.data,
                })
                .await
                .unwrap();
        } else {
            self.client
                .call(&functions::messages::SendEncrypted {
                    silent: false,
                    peer: self.peer.clone(),
                    random_id: outgoing.random_id,
                    data: outgoing.data,
                })
                .await
                .unwrap();
        }
    }

    /// Takes pushed messages until one for the application comes; answers what the chat
    /// asks to send (Resend, re-keying) on the way.
    async fn next_message(&mut self) -> (e2e_tl::enums::DecryptedMessage, enums::EncryptedFile) {
        loop {
            let chat_id = self.chat_id;
            let (data, file, qts) = wait_for(&mut self.client, |update| match update {
                enums::Update::UpdateNewEncryptedMessage(update) => match &update.message {
                    enums::EncryptedMessage::EncryptedMessage(m) if m.chat_id == chat_id => {
                        Some((m.bytes.clone(), m.file.clone(), update.qts))
                    }
                    enums::EncryptedMessage::EncryptedMessageService(m) if m.chat_id == chat_id => {
                        Some((
                            m.bytes.clone(),
                            types::EncryptedFileEmpty {}.into(),
                            update.qts,
                        ))
                    }
                    _ => None,
                },
                _ => None,
            })
            .await;
            assert!(
                qts > self.last_qts,
                "qts grows: {qts} after {}",
                self.last_qts
            );
            self.last_qts = qts;
            self.inbox.push((data.clone(), file.clone()));
            let received = self
                .chat
                .receive(&data, &mut rand::rng())
                .expect("the chat keeps its rules")
                .expect("the message decrypts");
            // Acknowledged only once the message is taken.
            self.client
                .call(&functions::messages::ReceivedQueue { max_qts: qts })
                .await
                .unwrap();
            for outgoing in received.send {
                self.send(outgoing).await;
            }
            if let Some(message) = received.messages.into_iter().next() {
                return (message, file);
            }
        }
    }
}

/// Opens a secret chat from `client` to `user`; the requester's end once the other side
/// accepted (its `updateEncryption` with `g_b`).
async fn open_chat(client: EchoClient, user: enums::InputUser, id: i32) -> End {
    let mut client = client;
    let (group, random) = group(&client).await;
    let request = KeyRequest::new(group.clone(), &random, &mut rand::rng());
    let waiting = client
        .call(&functions::messages::RequestEncryption {
            user_id: user,
            random_id: id,
            g_a: request.g_a().to_vec(),
        })
        .await
        .unwrap();
    let enums::EncryptedChat::EncryptedChatWaiting(waiting) = waiting else {
        panic!("the requester waits: {waiting:?}");
    };
    assert_eq!(waiting.id, id);
    let ready = wait_for(&mut client, |update| match update {
        enums::Update::UpdateEncryption(update) => match &update.chat {
            enums::EncryptedChat::EncryptedChat(chat) if chat.id == id => Some(chat.clone()),
            _ => None,
        },
        _ => None,
    })
    .await;
    let key = request
        .complete(&ready.g_a_or_b, ready.key_fingerprint)
        .expect("the key's fingerprint matches");
    let mut chat = SecretChat::new(Side::Creator, key, group, ChatLimits::default());
    let notify = chat.notify_layer(&mut rand::rng()).unwrap();
    let end = End {
        client,
        chat,
        peer: types::InputEncryptedChat {
            chat_id: id,
            access_hash: waiting.access_hash,
        }
        .into(),
        chat_id: id,
        inbox: Vec::new(),
        last_qts: 0,
    };
    end.send(notify).await;
    end
}

/// The echo user, as `requestEncryption` names it.
async fn echo_user(client: &EchoClient) -> enums::InputUser {
    let enums::InputPeer::InputPeerUser(echo) = client.echo_peer().await.unwrap() else {
        panic!("the echo is a user");
    };
    types::InputUser {
        user_id: echo.user_id,
        access_hash: echo.access_hash,
    }
    .into()
}

/// Sends `text` and checks that the echo sends it back.
async fn round_trip(end: &mut End, text: &str) {
    let outgoing = end.chat.send_text(text, &mut rand::rng()).unwrap();
    end.send(outgoing).await;
    let (echoed, _) = end.next_message().await;
    assert_eq!(text_of(&echoed), text);
}

fn text_of(message: &e2e_tl::enums::DecryptedMessage) -> &str {
    match message {
        e2e_tl::enums::DecryptedMessage::DecryptedMessage(m) => &m.message,
        other => panic!("a layer-144 message: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_answers_in_a_secret_chat_through_a_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let running = common::start(dir.path(), CODE).await;
    let (client, _) = signed_in(&running, "15550701").await;
    let echo_user = echo_user(&client).await;
    let mut end = open_chat(client, echo_user, 4242).await;

    // Texts, each answered with the same text, past the re-key the echo starts after 100
    // messages under one key.
    for round in 0..60 {
        round_trip(&mut end, &format!("secret {round}")).await;
    }
    assert!(
        end.chat.key_generation() >= 1,
        "the echo re-keyed the chat after 100 messages"
    );

    // A file: encrypted here with its own key, uploaded, sent; echoed with the same file,
    // which downloads and decrypts to what was sent.
    let file_key = FileKey::generate(&mut rand::rng());
    let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut padded = plain.clone();
    padded.resize(plain.len().div_ceil(16) * 16, 0);
    FileCipher::encryptor(&file_key).apply(&mut padded).unwrap();
    let file_id = 0x5ec2e7;
    let parts: Vec<&[u8]> = padded.chunks(128 * 1024).collect();
    for (index, part) in parts.iter().enumerate() {
        assert!(
            end.client
                .call(&functions::upload::SaveFilePart {
                    file_id,
                    file_part: i32::try_from(index).unwrap(),
                    bytes: part.to_vec(),
                })
                .await
                .unwrap()
        );
    }
    // The key and IV travel inside the encrypted message, never to the relay.
    let media = e2e_tl::types::DecryptedMessageMediaDocument {
        thumb: Vec::new(),
        thumb_w: 0,
        thumb_h: 0,
        mime_type: "application/octet-stream".to_owned(),
        size: i64::try_from(plain.len()).unwrap(),
        key: file_key.key().to_vec(),
        iv: file_key.iv().to_vec(),
        attributes: Vec::new(),
        caption: String::new(),
    };
    let message = e2e_tl::types::DecryptedMessage {
        no_webpage: false,
        silent: false,
        random_id: 77,
        ttl: 0,
        message: "a file".to_owned(),
        media: Some(media.into()),
        entities: None,
        via_bot_name: None,
        reply_to_random_id: None,
        grouped_id: None,
    };
    let outgoing = end.chat.send(message.into(), &mut rand::rng()).unwrap();
    end.client
        .call(&functions::messages::SendEncryptedFile {
            silent: false,
            peer: end.peer.clone(),
            random_id: outgoing.random_id,
            data: outgoing.data,
            file: types::InputEncryptedFileUploaded {
                id: file_id,
                parts: i32::try_from(parts.len()).unwrap(),
                md5_checksum: String::new(),
                key_fingerprint: file_key.fingerprint(),
            }
            .into(),
        })
        .await
        .unwrap();
    let (echoed, file) = end.next_message().await;
    assert_eq!(text_of(&echoed), "a file");
    let enums::EncryptedFile::EncryptedFile(file) = file else {
        panic!("the echo sent the file back: {file:?}");
    };
    let e2e_tl::enums::DecryptedMessage::DecryptedMessage(echoed) = echoed else {
        unreachable!()
    };
    let Some(e2e_tl::enums::DecryptedMessageMedia::DecryptedMessageMediaDocument(document)) =
        echoed.media
    else {
        panic!("the echo's message names the document");
    };
    let echoed_key = FileKey::from_slices(&document.key, &document.iv).unwrap();
    echoed_key.check(file.key_fingerprint).unwrap();
    let mut downloaded = Vec::new();
    while downloaded.len() < usize::try_from(file.size).unwrap() {
        let got = end
            .client
            .call(&functions::upload::GetFile {
                precise: false,
                cdn_supported: false,
                location: types::InputEncryptedFileLocation {
                    id: file.id,
                    access_hash: file.access_hash,
                }
                .into(),
                offset: i64::try_from(downloaded.len()).unwrap(),
                limit: 128 * 1024,
            })
            .await
            .unwrap();
        let enums::upload::File::File(got) = got else {
            panic!("bytes");
        };
        assert!(!got.bytes.is_empty());
        downloaded.extend_from_slice(&got.bytes);
    }
    FileCipher::decryptor(&echoed_key)
        .apply(&mut downloaded)
        .unwrap();
    assert_eq!(
        trim_to_size(downloaded, u64::try_from(document.size).unwrap()).unwrap(),
        plain
    );
    // The relay never saw the plaintext.
    assert!(
        end.inbox
            .iter()
            .all(|(data, _)| !data.windows(8).any(|w| w == b"secret 1")),
    );

    // Closing.
    assert!(
        end.client
            .call(&functions::messages::DiscardEncryption {
                delete_history: true,
                chat_id: end.chat_id,
            })
            .await
            .unwrap()
    );
    let outgoing = end.chat.send_text("after", &mut rand::rng()).unwrap();
    let refused = end
        .client
        .call(&functions::messages::SendEncrypted {
            silent: false,
            peer: end.peer.clone(),
            random_id: outgoing.random_id,
            data: outgoing.data,
        })
        .await;
    assert!(
        format!("{refused:?}").contains("ENCRYPTION_DECLINED"),
        "{refused:?}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_chat_with_the_echo_goes_on_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let running = common::start(dir.path(), CODE).await;
    let (client, _) = signed_in(&running, "15550702").await;
    let saved = client.saved_key();
    let echo_user = echo_user(&client).await;
    let mut end = open_chat(client, echo_user, 777).await;
    for round in 0..3 {
        round_trip(&mut end, &format!("before {round}")).await;
    }
    end.client.close().await;
    running.stop().await;

    // The same data directory: the relay's chat and the echo's saved device state are there.
    let running = common::start(dir.path(), CODE).await;
    let client = EchoClient::connect(&running.target, Some(saved))
        .await
        .unwrap();
    end.client = client;
    for round in 0..3 {
        round_trip(&mut end, &format!("after {round}")).await;
    }
    running.stop().await;
}
