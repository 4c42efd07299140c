//! People on the echo server, in-process over real loopback TCP and real RocksDB: a push to
//! the registered device of a user with no live session, and what bad input gets (wrong
//! peers, foreign access hashes, oversized names, abusive rates): Telegram's error each, and
//! nothing stored.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use columba_api::push::RecordingPusher;
use columba_examples::client::{CallError, EchoClient};
use columba_mtproto::tl::api::{enums, functions, types};

const CODE: &str = "27182";

fn rpc_error(result: Result<impl std::fmt::Debug, CallError>) -> (i32, String) {
    match result {
        Err(CallError::Rpc(error)) => (error.code, error.message),
        other => panic!("expected an rpc error, got {other:?}"),
    }
}

fn input_peer(user: &types::User) -> enums::InputPeer {
    types::InputPeerUser {
        user_id: user.id,
        access_hash: user.access_hash.unwrap(),
    }
    .into()
}

fn input_user(user: &types::User) -> enums::InputUser {
    types::InputUser {
        user_id: user.id,
        access_hash: user.access_hash.unwrap(),
    }
    .into()
}

async fn signed_in(running: &common::Running, phone: &str) -> (EchoClient, types::User) {
    let client = EchoClient::connect(&running.target, None).await.unwrap();
    let me = client.sign_in(phone, CODE).await.unwrap();
    (client, me)
}

fn import(phone: &str, client_id: i64) -> functions::contacts::ImportContacts {
    functions::contacts::ImportContacts {
        contacts: vec![
            types::InputPhoneContact {
                client_id,
                phone: phone.to_owned(),
                first_name: "Friend".to_owned(),
                last_name: String::new(),
                note: None,
            }
            .into(),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_user_is_pushed_to_their_device() {
    let dir = tempfile::tempdir().unwrap();
    let pusher = RecordingPusher::new();
    let running = common::start_with_pusher(dir.path(), CODE, Arc::new(pusher.clone())).await;
    let (ann, ann_user) = signed_in(&running, "15550301").await;
    let (bo, bo_user) = signed_in(&running, "15550302").await;
    let registered = bo
        .call(&functions::account::RegisterDevice {
            no_muted: false,
            token_type: 2,
            token: "fcm-token-of-bo".to_owned(),
            app_sandbox: false,
            secret: Vec::new(),
            other_uids: Vec::new(),
        })
        .await
        .unwrap();
    assert!(registered);
    // While Bo is connected, a message reaches his session and nobody is pushed.
    ann.send_text(&input_peer(&bo_user), "while online", 1)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pusher.sent().is_empty(), "{:?}", pusher.sent());
    bo.close().await;
    // Once the server has seen Bo go, the next message is pushed to his device.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut random_id = 2;
    let pushed = loop {
        ann.send_text(&input_peer(&bo_user), "while away", random_id)
            .await
            .unwrap();
        random_id += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(push) = pusher.sent().into_iter().next() {
            break push;
        }
        assert!(Instant::now() < deadline, "no push within 10 s");
    };
    let (device, payload) = pushed;
    assert_eq!(
        (device.token_type, device.token.as_str()),
        (2, "fcm-token-of-bo")
    );
    assert_eq!(payload.loc_key, "MESSAGE_TEXT");
    assert_eq!(payload.loc_args[1], "while away");
    assert_eq!(
        (payload.user_id, payload.from_id),
        (bo_user.id, ann_user.id)
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_telegram_errors_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let running = common::start(dir.path(), CODE).await;
    let (ann, ann_user) = signed_in(&running, "15550401").await;
    let (_bo, bo_user) = signed_in(&running, "15550402").await;
    // The sign-in is listed, with the address it came from.
    let listed = ann
        .call(&functions::account::GetAuthorizations {})
        .await
        .unwrap();
    let enums::account::Authorizations::Authorizations(listed) = listed;
    let [enums::Authorization::Authorization(current)] = listed.authorizations.as_slice() else {
        panic!("one authorization: {listed:?}")
    };
    assert!(current.current);
    assert_eq!(current.ip, "127.0.0.1");

    // A foreign access hash: the peer does not check.
    let mut forged = bo_user.clone();
    forged.access_hash = Some(bo_user.access_hash.unwrap() ^ 1);
    assert_eq!(
        rpc_error(ann.send_text(&input_peer(&forged), "hi", 1).await),
        (400, "PEER_ID_INVALID".to_owned())
    );
    assert_eq!(
        rpc_error(
            ann.call(&functions::contacts::AddContact {
                add_phone_privacy_exception: false,
                id: input_user(&forged),
                first_name: "Bo".to_owned(),
                last_name: String::new(),
                phone: String::new(),
                note: None,
            })
            .await
        ),
        (400, "USER_ID_INVALID".to_owned())
    );
    assert_eq!(
        rpc_error(
            ann.call(&functions::contacts::Block {
                my_stories_from: false,
                id: input_peer(&forged),
            })
            .await
        ),
        (400, "PEER_ID_INVALID".to_owned())
    );
    // Oneself is nobody's contact.
    assert_eq!(
        rpc_error(
            ann.call(&functions::contacts::AddContact {
                add_phone_privacy_exception: false,
                id: types::InputUserSelf {}.into(),
                first_name: "Me".to_owned(),
                last_name: String::new(),
                phone: String::new(),
                note: None,
            })
            .await
        ),
        (400, "CONTACT_ID_INVALID".to_owned())
    );
    // Oversized names and about, bad usernames: refused, the profile unchanged.
    let long = "x".repeat(65);
    for (change, error) in [
        (
            functions::account::UpdateProfile {
                first_name: Some(long.clone()),
                last_name: None,
                about: None,
            },
            "FIRSTNAME_INVALID",
        ),
        (
            functions::account::UpdateProfile {
                first_name: None,
                last_name: Some(long.clone()),
                about: None,
            },
            "LASTNAME_INVALID",
        ),
        (
            functions::account::UpdateProfile {
                first_name: None,
                last_name: None,
                about: Some("y".repeat(71)),
            },
            "ABOUT_TOO_LONG",
        ),
    ] {
        assert_eq!(rpc_error(ann.call(&change).await), (400, error.to_owned()));
    }
    for bad in ["abc", "1abcde", "abc def", &"a".repeat(33)] {
        assert_eq!(
            rpc_error(
                ann.call(&functions::account::UpdateUsername {
                    username: bad.to_owned()
                })
                .await
            ),
            (400, "USERNAME_INVALID".to_owned()),
            "{bad:?}"
        );
    }
    assert_eq!(
        rpc_error(
            ann.call(&functions::account::CheckUsername {
                username: "echo".to_owned()
            })
            .await
        ),
        (400, "USERNAME_INVALID".to_owned()),
        "the echo's own short name is not one a user may take"
    );
    let full = ann
        .call(&functions::users::GetFullUser {
            id: types::InputUserSelf {}.into(),
        })
        .await
        .unwrap();
    let enums::users::UserFull::UserFull(full) = full;
    let enums::User::User(me) = &full.users[0] else {
        panic!("{full:?}")
    };
    assert_eq!(me.first_name.as_deref(), ann_user.first_name.as_deref());
    assert_eq!(me.username, None);
    let enums::UserFull::UserFull(details) = full.full_user;
    assert_eq!(details.about, None);
    // An import of a bad phone is a retry, not a contact; nothing is stored.
    let outcome = ann.call(&import("not a phone", 9)).await.unwrap();
    let enums::contacts::ImportedContacts::ImportedContacts(outcome) = outcome;
    assert_eq!(outcome.retry_contacts, vec![9]);
    let contacts = ann
        .call(&functions::contacts::GetContacts { hash: 0 })
        .await
        .unwrap();
    let enums::contacts::Contacts::Contacts(contacts) = contacts else {
        panic!("{contacts:?}")
    };
    assert!(contacts.contacts.is_empty());
    // Username checks are rate-limited: past the budget, FLOOD_WAIT.
    let mut flood = None;
    for n in 0..150 {
        match ann
            .call(&functions::account::CheckUsername {
                username: format!("free_name_{n}"),
            })
            .await
        {
            Ok(free) => assert!(free),
            Err(CallError::Rpc(error)) => {
                flood = Some((n, error.code, error.message));
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    let (after, code, name) = flood.expect("a flood wait within 150 checks");
    assert_eq!(code, 420);
    assert!(name.starts_with("FLOOD_WAIT_"), "{name}");
    // The budget (100 per 10 minutes) was spent by the checks above and these.
    assert!(after <= 100, "{after}");
    // And contacts imports: a burst past the daily budget gets FLOOD_WAIT.
    let many = functions::contacts::ImportContacts {
        contacts: (0..1000)
            .map(|n| {
                types::InputPhoneContact {
                    client_id: n,
                    phone: format!("1999{n:07}"),
                    first_name: "Walk".to_owned(),
                    last_name: String::new(),
                    note: None,
                }
                .into()
            })
            .collect(),
    };
    let mut refused = None;
    for round in 0..10 {
        match ann.call(&many).await {
            Ok(_) => {}
            Err(CallError::Rpc(error)) => {
                refused = Some((round, error.code, error.message));
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    let (round, code, name) = refused.expect("imports are limited");
    assert_eq!(code, 420);
    assert!(name.starts_with("FLOOD_WAIT_"), "{name}");
    // 5,000 phones a day, one spent on the bad phone above: the fifth thousand is refused.
    assert_eq!(round, 4);
    running.stop().await;
}

/// Pins and reactions with bad input: each a Telegram error, the message left as it was.
#[tokio::test]
async fn pins_and_reactions_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let running = common::start(dir.path(), CODE).await;
    let (ann, _) = signed_in(&running, "15550411").await;
    let (_bo, bo_user) = signed_in(&running, "15550412").await;
    let bo = input_peer(&bo_user);
    let sent = ann.send_text(&bo, "react to me", 1).await.unwrap();
    let react = |msg_id: i32, reaction: Vec<enums::Reaction>| functions::messages::SendReaction {
        big: false,
        add_to_recent: false,
        peer: bo.clone(),
        msg_id,
        reaction: Some(reaction),
    };
    let emoji = |emoticon: &str| -> enums::Reaction {
        types::ReactionEmoji {
            emoticon: emoticon.to_owned(),
        }
        .into()
    };
    let custom: enums::Reaction = types::ReactionCustomEmoji { document_id: 5 }.into();
    let long = "x".repeat(65);
    for (request, error) in [
        (react(sent.id, vec![custom]), "REACTION_INVALID"),
        (
            react(sent.id, vec![emoji("👍"), emoji("🔥")]),
            "REACTIONS_TOO_MANY",
        ),
        (react(sent.id, vec![emoji("")]), "REACTION_EMPTY"),
        (react(sent.id, vec![emoji(&long)]), "REACTION_INVALID"),
        (react(sent.id + 50, vec![emoji("👍")]), "MESSAGE_ID_INVALID"),
        (react(sent.id, Vec::new()), "MESSAGE_NOT_MODIFIED"),
    ] {
        assert_eq!(
            rpc_error(ann.call(&request).await),
            (400, error.to_owned()),
            "{request:?}"
        );
    }
    let mut forged = bo_user.clone();
    forged.access_hash = Some(bo_user.access_hash.unwrap() ^ 1);
    let pin = |peer: enums::InputPeer, id: i32| functions::messages::UpdatePinnedMessage {
        silent: false,
        unpin: false,
        pm_oneside: false,
        peer,
        id,
    };
    assert_eq!(
        rpc_error(ann.call(&pin(bo.clone(), sent.id + 50)).await),
        (400, "MESSAGE_ID_INVALID".to_owned())
    );
    assert_eq!(
        rpc_error(ann.call(&pin(input_peer(&forged), sent.id)).await),
        (400, "PEER_ID_INVALID".to_owned())
    );
    let messages = ann
        .call(&functions::messages::GetMessages {
            id: vec![types::InputMessageID { id: sent.id }.into()],
        })
        .await
        .unwrap();
    let enums::messages::Messages::Messages(messages) = messages else {
        panic!("{messages:?}")
    };
    let [enums::Message::Message(stored)] = messages.messages.as_slice() else {
        panic!("{messages:?}")
    };
    assert!(!stored.pinned);
    assert_eq!(stored.reactions, None);
}

async fn pts(client: &EchoClient) -> i32 {
    let enums::updates::State::State(state) =
        client.call(&functions::updates::GetState {}).await.unwrap();
    state.pts
}

/// A message to someone who blocked the sender is stored on the sender's side only: the
/// send answers as usual, the recipient's box does not change; unblocked, messages arrive.
#[tokio::test]
async fn a_message_to_someone_who_blocked_the_sender_is_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let running = common::start(dir.path(), CODE).await;
    let (ann, ann_user) = signed_in(&running, "15550421").await;
    let (bo, bo_user) = signed_in(&running, "15550422").await;
    bo.call(&functions::contacts::Block {
        my_stories_from: false,
        id: input_peer(&ann_user),
    })
    .await
    .unwrap();
    let before = pts(&bo).await;
    let sent = ann
        .send_text(&input_peer(&bo_user), "unseen", 1)
        .await
        .unwrap();
    assert!(sent.out);
    assert_eq!(pts(&bo).await, before, "nothing reached the blocker's box");
    bo.call(&functions::contacts::Unblock {
        my_stories_from: false,
        id: input_peer(&ann_user),
    })
    .await
    .unwrap();
    ann.send_text(&input_peer(&bo_user), "seen", 2)
        .await
        .unwrap();
    assert_eq!(pts(&bo).await, before + 1, "delivered once unblocked");
}
