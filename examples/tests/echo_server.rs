//! The echo server in-process over real loopback TCP and real RocksDB, driven by Columba's
//! own client: sign-in, the echo's answer as a pushed update, `getDifference`, history, files
//! through the file store, messages between two users, errors, and a restart on the same
//! data directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::path::Path;

use common::Running;
use std::time::Duration;

use bytes::Bytes;
use columba_examples::client::{CallError, EchoClient, new_messages};
use columba_mtproto::tl::api::{enums, functions, types};

const CODE: &str = "31415";

async fn start(data: &Path) -> Running {
    common::start(data, CODE).await
}

async fn stop(running: Running) {
    running.stop().await;
}

/// The next pushed message whose text is `text`.
async fn pushed_message(client: &mut EchoClient, text: &str) -> types::Message {
    loop {
        let updates = client
            .next_update(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no update with {text:?} in 10 s"));
        if let Some(message) = new_messages(&updates)
            .into_iter()
            .find(|message| message.message == text)
        {
            return message;
        }
    }
}

fn rpc_error(result: Result<impl std::fmt::Debug, CallError>) -> (i32, String) {
    match result {
        Err(CallError::Rpc(error)) => (error.code, error.message),
        other => panic!("expected an rpc error, got {other:?}"),
    }
}

/// The newest ten messages of the chat with `peer`, newest first.
async fn history_of(client: &EchoClient, peer: &enums::InputPeer) -> Vec<types::Message> {
    let history = client
        .call(&functions::messages::GetHistory {
            peer: peer.clone(),
            offset_id: 0,
            offset_date: 0,
            add_offset: 0,
            limit: 10,
            max_id: 0,
            min_id: 0,
            hash: 0,
        })
        .await
        .unwrap();
    let enums::messages::Messages::Messages(history) = history else {
        panic!("the whole history fits one page: {history:?}");
    };
    history
        .messages
        .into_iter()
        .map(|message| match message {
            enums::Message::Message(message) => *message,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// `messages.getDialogs` for a page of `limit` below `offset_id`.
fn dialogs_page(offset_id: i32, limit: i32) -> functions::messages::GetDialogs {
    functions::messages::GetDialogs {
        exclude_pinned: false,
        folder_id: None,
        offset_date: 0,
        offset_id,
        offset_peer: types::InputPeerEmpty {}.into(),
        limit,
        hash: 0,
    }
}

/// The user ids of the chats in a list of dialogs.
fn dialog_peers(dialogs: &[enums::Dialog]) -> Vec<i64> {
    dialogs
        .iter()
        .map(|dialog| match dialog {
            enums::Dialog::Dialog(dialog) => match dialog.peer {
                enums::Peer::PeerUser(ref peer) => peer.user_id,
                ref other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect()
}

fn document_of(message: &types::Message) -> types::Document {
    match &message.media {
        Some(enums::MessageMedia::MessageMediaDocument(media)) => match &media.document {
            Some(enums::Document::Document(document)) => (**document).clone(),
            other => panic!("no document: {other:?}"),
        },
        other => panic!("no document media: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_echo_files_history_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;

    // Before signing in: only the login calls work.
    let mut alice = EchoClient::connect(&running.target, None).await.unwrap();
    assert_eq!(
        rpc_error(alice.call(&functions::updates::GetState {}).await),
        (401, "AUTH_KEY_UNREGISTERED".to_owned())
    );
    let wrong = alice.sign_in("+1 555 0100", "00000").await;
    assert_eq!(rpc_error(wrong), (400, "PHONE_CODE_INVALID".to_owned()));
    let me = alice.sign_in("+1 555 0100", CODE).await.unwrap();
    assert!(me.self_);
    assert_eq!(me.phone.as_deref(), Some("15550100"));
    let unknown = alice.call_raw(Bytes::from_static(&[1, 2, 3, 4])).await;
    assert_eq!(rpc_error(unknown), (400, "INPUT_METHOD_INVALID".to_owned()));

    // A message to @echo comes back as a pushed update, from the echo user.
    let echo_peer = alice.echo_peer().await.unwrap();
    let sent = alice.send_text(&echo_peer, "hello", 11).await.unwrap();
    assert!(sent.out);
    let reply = pushed_message(&mut alice, "hello").await;
    assert!(!reply.out);
    assert_eq!(reply.id, sent.id + 1);
    assert!(matches!(reply.from_id, Some(enums::Peer::PeerUser(ref peer)) if peer.user_id == 100));

    // A repeated random_id is the same send: no second message, no second echo.
    let again = alice.send_text(&echo_peer, "hello", 11).await.unwrap();
    assert_eq!(again.id, sent.id);

    // getDifference from before the send has both messages.
    let difference = alice
        .call(&functions::updates::GetDifference {
            pts: 0,
            pts_limit: None,
            pts_total_limit: None,
            date: 0,
            qts: 0,
            qts_limit: None,
        })
        .await
        .unwrap();
    let enums::updates::Difference::Difference(difference) = difference else {
        panic!("not a complete difference: {difference:?}");
    };
    assert_eq!(difference.new_messages.len(), 2);
    let enums::updates::State::State(state) = difference.state;
    assert_eq!(state.pts, 2);

    // A file, echoed with the same media, downloads intact.
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 1000) as u8).collect();
    let file = alice.upload(&bytes, "notes.bin").await.unwrap();
    let media = alice
        .send_document(&echo_peer, file, "a file", 12)
        .await
        .unwrap();
    let mine = document_of(&new_messages(&media)[0]);
    let echoed = pushed_message(&mut alice, "a file").await;
    let document = document_of(&echoed);
    assert_eq!(document.id, mine.id, "the echo carries the same media");
    assert_eq!(document.size, 300_000);
    assert_eq!(alice.download(&document).await.unwrap(), bytes);
    // A forged access hash reads nothing.
    let mut forged = document.clone();
    forged.access_hash ^= 1;
    assert_eq!(
        rpc_error(alice.download(&forged).await),
        (400, "FILE_REFERENCE_INVALID".to_owned())
    );

    // Two users: a message from one reaches the other's live session.
    let mut bob = EchoClient::connect(&running.target, None).await.unwrap();
    let bob_user = bob.sign_in("15550200", CODE).await.unwrap();
    let bob_peer: enums::InputPeer = types::InputPeerUser {
        user_id: bob_user.id,
        access_hash: bob_user.access_hash.unwrap(),
    }
    .into();
    alice.send_text(&bob_peer, "hi bob", 13).await.unwrap();
    let got = pushed_message(&mut bob, "hi bob").await;
    assert!(matches!(got.peer_id, enums::Peer::PeerUser(ref peer) if peer.user_id == me.id));
    // A made-up access hash is refused.
    let forged_peer: enums::InputPeer = types::InputPeerUser {
        user_id: bob_user.id,
        access_hash: bob_user.access_hash.unwrap() ^ 1,
    }
    .into();
    assert_eq!(
        rpc_error(alice.send_text(&forged_peer, "x", 14).await),
        (400, "PEER_ID_INVALID".to_owned())
    );

    // Bob reads the chat: his box takes the read, Alice's live session is told.
    let bob_sees_alice: enums::InputPeer = types::InputPeerUser {
        user_id: me.id,
        access_hash: me.access_hash.unwrap(),
    }
    .into();
    let read = bob
        .call(&functions::messages::ReadHistory {
            peer: bob_sees_alice,
            max_id: got.id,
        })
        .await
        .unwrap();
    let enums::messages::AffectedMessages::AffectedMessages(read) = read;
    assert_eq!(read.pts_count, 1);
    let outbox_read = loop {
        let updates = alice
            .next_update(Duration::from_secs(10))
            .await
            .expect("the read reaches the sender");
        let enums::Updates::Updates(updates) = updates else {
            continue;
        };
        if let Some(update) = updates.updates.into_iter().find_map(|update| match update {
            enums::Update::UpdateReadHistoryOutbox(update) => Some(update),
            _ => None,
        }) {
            break update;
        }
    };
    assert!(
        matches!(outbox_read.peer, enums::Peer::PeerUser(ref peer) if peer.user_id == bob_user.id)
    );

    // Saved Messages: a message to oneself is kept, once.
    let note = alice
        .send_text(&types::InputPeerSelf {}.into(), "note to self", 15)
        .await
        .unwrap();
    assert!(matches!(note.peer_id, enums::Peer::PeerUser(ref peer) if peer.user_id == me.id));

    // Dialogs: the three chats, newest first, with their top messages and users.
    let dialogs = alice.call(&dialogs_page(0, 20)).await.unwrap();
    let enums::messages::Dialogs::Dialogs(dialogs) = dialogs else {
        panic!("{dialogs:?}");
    };
    assert_eq!(dialog_peers(&dialogs.dialogs), [me.id, bob_user.id, 100]);
    assert_eq!(dialogs.messages.len(), 3);
    assert!(dialogs.users.len() >= 3);

    // In pages of two: a slice with the whole count, then the rest below its last top
    // message.
    let first = alice.call(&dialogs_page(0, 2)).await.unwrap();
    let enums::messages::Dialogs::DialogsSlice(first) = first else {
        panic!("a slice: {first:?}");
    };
    assert_eq!(first.count, 3);
    assert_eq!(first.dialogs.len(), 2);
    let last_top = match first.dialogs.last() {
        Some(enums::Dialog::Dialog(dialog)) => dialog.top_message,
        other => panic!("{other:?}"),
    };
    let rest = alice.call(&dialogs_page(last_top, 2)).await.unwrap();
    let enums::messages::Dialogs::DialogsSlice(rest) = rest else {
        panic!("a slice: {rest:?}");
    };
    assert_eq!(rest.count, 3);
    assert_eq!(dialog_peers(&rest.dialogs), [100]);

    // The full profile of the echo user.
    let full = alice
        .call(&functions::users::GetFullUser {
            id: types::InputUser {
                user_id: 100,
                access_hash: match &echo_peer {
                    enums::InputPeer::InputPeerUser(peer) => peer.access_hash,
                    other => panic!("{other:?}"),
                },
            }
            .into(),
        })
        .await
        .unwrap();
    let enums::users::UserFull::UserFull(full) = full;
    let enums::UserFull::UserFull(profile) = full.full_user;
    assert_eq!(profile.id, 100);
    assert!(
        matches!(&full.users[..], [enums::User::User(user)] if user.username.as_deref() == Some("echo"))
    );

    let stats = running.server.stats();
    assert!(stats.requests >= 20, "{stats:?}");
    assert_eq!(stats.rejected_frames, 0, "{stats:?}");

    let saved = alice.saved_key();
    alice.close().await;
    bob.close().await;
    stop(running).await;

    // Restarted on the same data: the key is still signed in, the history is there.
    let running = start(dir.path()).await;
    let alice = EchoClient::connect(&running.target, Some(saved))
        .await
        .unwrap();
    let users = alice
        .call(&functions::users::GetUsers {
            id: vec![types::InputUserSelf {}.into()],
        })
        .await
        .unwrap();
    assert!(matches!(&users[..], [enums::User::User(user)] if user.id == me.id));
    let texts: Vec<String> = history_of(&alice, &echo_peer)
        .await
        .into_iter()
        .map(|message| message.message)
        .collect();
    assert_eq!(texts, ["a file", "a file", "hello", "hello"]);
    alice.close().await;
    stop(running).await;
}

/// The server stopped after storing a message to @echo and before the echo's reply: the
/// next start makes the reply up (once), and the client's resend of the message (same
/// random_id, no answer seen) stores neither a second message nor a second reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_makes_up_the_echo_a_stop_cut_off() {
    use columba_store::{MessageStore, Peer, RocksMessageStore, RocksOptions, SendRequest};

    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let alice = EchoClient::connect(&running.target, None).await.unwrap();
    let me = alice.sign_in("+1 555 0177", CODE).await.unwrap();
    let echo_peer = alice.echo_peer().await.unwrap();
    let saved = alice.saved_key();
    alice.close().await;
    stop(running).await;

    // What the server had done when it stopped: the message stored, no reply.
    let cut_off = {
        let messages =
            RocksMessageStore::open(dir.path().join("messages"), RocksOptions::default()).unwrap();
        let outcome = messages
            .send(&SendRequest {
                sender: me.id,
                peer: Peer::User(100),
                random_id: 21,
                date: 1_700_000_000,
                body: b"cut off".to_vec(),
                media: None,
                flags: 0,
                members: Vec::new(),
                sender_only: false,
            })
            .unwrap();
        assert!(!outcome.repeated);
        outcome.deliveries[0].message_id
    };

    let running = start(dir.path()).await;
    let alice = EchoClient::connect(&running.target, Some(saved))
        .await
        .unwrap();
    let history = async || {
        history_of(&alice, &echo_peer)
            .await
            .into_iter()
            .map(|message| (message.id, message.out, message.message))
            .collect::<Vec<_>>()
    };
    let expected = vec![
        (cut_off + 1, false, "cut off".to_owned()),
        (cut_off, true, "cut off".to_owned()),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while history().await != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "no reply made up in 10 s: {:?}",
            history().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client's resend is the same message, and the reply there is not stored again.
    let again = alice.send_text(&echo_peer, "cut off", 21).await.unwrap();
    assert_eq!(again.id, cut_off);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(history().await, expected);
    alice.close().await;
    stop(running).await;
}
