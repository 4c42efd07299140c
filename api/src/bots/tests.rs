#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use columba_mtproto::tl::api::{enums, functions, types};
use columba_mtproto::tl::{Deserializable as _, Serializable as _};
use columba_session::plugins::RecordingCodeSender;
use columba_session::{ConnectionId, RequestContext, RpcOutcome, SessionKey};
use columba_store::auth_key::{AuthKeyRecord, AuthKeyStore as _, KeyLifetime, MemoryAuthKeyStore};
use columba_store::message::{BoxId, HistoryQuery, Peer};
use columba_store::{MemoryFileStore, MemoryMessageStore, MemoryUserStore};

use super::*;
use crate::auth::LoginOptions;
use crate::messages::{Outgoing, send_blocking};
use crate::{AccessSecret, Api, DcList, Router};

struct Fixture {
    backend: Arc<Backend>,
    bots: Arc<Bots>,
    api: Api,
    keys: Arc<MemoryAuthKeyStore>,
    person: i64,
}

fn fixture(options: BotOptions) -> Fixture {
    let keys = Arc::new(MemoryAuthKeyStore::new());
    let backend = Backend::new(
        Arc::new(MemoryMessageStore::new()),
        Arc::new(MemoryFileStore::new()),
        keys.clone(),
        Arc::new(MemoryUserStore::new()),
        AccessSecret::new([9; 32]),
        DcList::single(1, "127.0.0.1:1".parse().unwrap()),
    );
    let login = Login::new(
        backend.clone(),
        Arc::new(RecordingCodeSender::new()),
        LoginOptions::default(),
    );
    let bots = Bots::new(backend.clone(), login.clone(), options);
    let api = Api::new(crate::stock(backend.clone(), login));
    let person = backend
        .users
        .create_account("15550001", "Ann", "")
        .unwrap()
        .id;
    Fixture {
        backend,
        bots,
        api,
        keys,
        person,
    }
}

impl Fixture {
    /// Calls the stock API as `user` on key `key`.
    async fn call(&self, key: i64, user: Option<i64>, body: Vec<u8>) -> RpcOutcome {
        let context = RequestContext {
            session: SessionKey {
                auth_key_id: key,
                session_id: 1,
            },
            perm_auth_key_id: Some(key),
            user_id: user,
            connection: ConnectionId(1),
        };
        self.api.handle(context, Bytes::from(body)).await
    }

    fn bot(&self, username: &str) -> (i64, String) {
        let (account, token) = create_bot(&self.backend, self.person, "Helper", username).unwrap();
        (account.id, token)
    }
}

fn error_name(outcome: RpcOutcome) -> String {
    outcome.unwrap_err().message
}

#[test]
fn tokens_are_checked_by_shape_and_secret() {
    let f = fixture(BotOptions::default());
    let (bot, token) = f.bot("helper_bot");
    let (id, secret) = parse_token(&token).unwrap();
    assert_eq!((id, secret.len()), (bot, SECRET_LEN));
    assert_eq!(check_token(&f.backend, &token).unwrap().id, bot);
    let wrong = format!("{bot}:{}", "A".repeat(SECRET_LEN));
    let other = format!("{}:{secret}", f.person);
    for bad in [
        wrong.as_str(),
        other.as_str(),
        "",
        ":abc",
        "0123:abc",
        "12a:abc",
        "123:",
        "123:a/b",
        "99999999999999999999:abc",
        &"1".repeat(81),
    ] {
        assert_eq!(
            check_token(&f.backend, bad).unwrap_err().to_string(),
            ApiError::bad_request("ACCESS_TOKEN_INVALID").to_string(),
            "{bad:?}"
        );
    }
    assert_eq!(token_of(&f.backend, bot).unwrap(), token, "shown again");
    // A new token stops the old one at once.
    let new = revoke_token(&f.backend, bot).unwrap();
    assert_ne!(new, token);
    assert!(check_token(&f.backend, &token).is_err());
    assert_eq!(check_token(&f.backend, &new).unwrap().id, bot);
    assert_eq!(token_of(&f.backend, bot).unwrap(), new);
    // Another bot's token is another.
    let (_, second) = f.bot("second_bot");
    assert_ne!(
        parse_token(&second).unwrap().1,
        parse_token(&new).unwrap().1
    );
    assert!(
        revoke_token(&f.backend, f.person).is_err(),
        "a person has no token"
    );
}

#[tokio::test]
async fn a_bot_signs_in_with_its_token_and_is_a_bot_to_everyone() {
    let f = fixture(BotOptions::default());
    let (bot, token) = f.bot("helper_bot");
    f.keys
        .insert(AuthKeyRecord {
            auth_key_id: 5,
            key: [1; 256],
            lifetime: KeyLifetime::Permanent,
            created_at: 0,
            dc: None,
            user_id: None,
        })
        .unwrap();
    let import = |token: &str| functions::auth::ImportBotAuthorization {
        flags: 0,
        api_id: 1,
        api_hash: String::new(),
        bot_auth_token: token.to_owned(),
    };
    let refused = f.call(5, None, import("1:nope").to_bytes()).await;
    assert_eq!(error_name(refused), "ACCESS_TOKEN_INVALID");
    let answer = f.call(5, None, import(&token).to_bytes()).await.unwrap();
    let enums::auth::Authorization::Authorization(authorization) =
        enums::auth::Authorization::from_bytes(&answer).unwrap()
    else {
        panic!("an authorization");
    };
    let enums::User::User(user) = authorization.user else {
        panic!("a user");
    };
    assert!(user.bot && user.self_);
    assert_eq!((user.id, user.bot_info_version), (bot, Some(0)));
    assert_eq!(f.keys.get(5).unwrap().unwrap().user_id, Some(bot));
    // The person sees a bot too.
    let seen = f.backend.user_object(bot, f.person).unwrap().unwrap();
    assert!(matches!(seen, enums::User::User(user) if user.bot));
}

#[tokio::test]
async fn bots_and_people_keep_to_their_own_methods() {
    let f = fixture(BotOptions::default());
    let (bot, _) = f.bot("helper_bot");
    let dialogs = functions::messages::GetDialogs {
        exclude_pinned: false,
        folder_id: None,
        offset_date: 0,
        offset_id: 0,
        offset_peer: types::InputPeerEmpty {}.into(),
        limit: 10,
        hash: 0,
    };
    let outcome = f.call(5, Some(bot), dialogs.to_bytes()).await;
    assert_eq!(error_name(outcome), "BOT_METHOD_INVALID");
    f.call(6, Some(f.person), dialogs.to_bytes()).await.unwrap();
    let commands = functions::bots::GetBotCommands {
        scope: types::BotCommandScopeDefault {}.into(),
        lang_code: String::new(),
    };
    let outcome = f.call(6, Some(f.person), commands.to_bytes()).await;
    assert_eq!(error_name(outcome), "USER_BOT_REQUIRED");
    f.call(5, Some(bot), commands.to_bytes()).await.unwrap();
    let outcome = f.call(6, None, commands.to_bytes()).await;
    assert_eq!(error_name(outcome), "AUTH_KEY_UNREGISTERED");
    // A route merged over a person's method stays closed to bots.
    let merged = Api::new(
        crate::stock(f.backend.clone(), f.bots.login.clone())
            .merge(Router::new().route_with(f.backend.clone(), crate::messages::get_dialogs)),
    );
    let context = RequestContext {
        session: SessionKey {
            auth_key_id: 5,
            session_id: 1,
        },
        perm_auth_key_id: Some(5),
        user_id: Some(bot),
        connection: ConnectionId(1),
    };
    let outcome = merged
        .handle(context, Bytes::from(dialogs.to_bytes()))
        .await;
    assert_eq!(error_name(outcome), "BOT_METHOD_INVALID");
    // Bots write to people who started a chat, never to bots.
    let (other, _) = f.bot("other_bot");
    let to_person = Outgoing::new(f.person, 9, "hi".into(), None);
    let refused = send_blocking(&f.backend, bot, to_person).unwrap_err();
    assert_eq!(refused.name(), "PEER_ID_INVALID");
    let to_bot = Outgoing::new(other, 9, "hi".into(), None);
    assert_eq!(
        send_blocking(&f.backend, bot, to_bot).unwrap_err().name(),
        "USER_IS_BOT"
    );
}

fn command(name: &str, description: &str) -> enums::BotCommand {
    types::BotCommand {
        ephemeral: false,
        command: name.to_owned(),
        description: description.to_owned(),
    }
    .into()
}

#[tokio::test]
async fn command_menus_are_checked_kept_and_shown_in_the_full_user() {
    let f = fixture(BotOptions::default());
    let (bot, _) = f.bot("helper_bot");
    let ctx = Ctx::detached(5, Some(bot));
    let set = |commands| functions::bots::SetBotCommands {
        scope: types::BotCommandScopeDefault {}.into(),
        lang_code: String::new(),
        commands,
    };
    for (commands, error) in [
        (vec![command("bad command", "x")], "BOT_COMMAND_INVALID"),
        (vec![command("ok", "")], "BOT_COMMAND_DESCRIPTION_INVALID"),
        (
            (0..101).map(|n| command(&format!("c{n}"), "x")).collect(),
            "BOT_COMMAND_INVALID",
        ),
    ] {
        let refused = set_bot_commands(ctx.clone(), f.bots.clone(), set(commands)).await;
        assert_eq!(
            refused.unwrap_err().to_string(),
            ApiError::bad_request(error).to_string()
        );
    }
    let menu = vec![command("/Start", "begin"), command("help", "what I do")];
    assert!(
        set_bot_commands(ctx.clone(), f.bots.clone(), set(menu))
            .await
            .unwrap()
    );
    let get = |scope: enums::BotCommandScope| functions::bots::GetBotCommands {
        scope,
        lang_code: String::new(),
    };
    let menu = get_bot_commands(
        ctx.clone(),
        f.bots.clone(),
        get(types::BotCommandScopeDefault {}.into()),
    )
    .await
    .unwrap();
    assert_eq!(
        menu,
        vec![command("start", "begin"), command("help", "what I do")]
    );
    let other = get_bot_commands(
        ctx.clone(),
        f.bots.clone(),
        get(types::BotCommandScopeUsers {}.into()),
    )
    .await
    .unwrap();
    assert!(other.is_empty());
    // The person's full view of the bot has its menu and a new info version.
    let full = crate::users::get_full_user(
        Ctx::detached(6, Some(f.person)),
        f.backend.clone(),
        functions::users::GetFullUser {
            id: types::InputUser {
                user_id: bot,
                access_hash: f.backend.access.user_hash(bot),
            }
            .into(),
        },
    )
    .await
    .unwrap();
    let enums::users::UserFull::UserFull(full) = full;
    let enums::UserFull::UserFull(full_user) = full.full_user;
    let Some(enums::BotInfo::BotInfo(info)) = full_user.bot_info else {
        panic!("a bot's full user has its info");
    };
    assert_eq!(info.commands.unwrap().len(), 2);
    let enums::User::User(user) = &full.users[0] else {
        panic!("a user");
    };
    assert_eq!(user.bot_info_version, Some(1));
    reset_bot_commands(
        ctx.clone(),
        f.bots.clone(),
        functions::bots::ResetBotCommands {
            scope: types::BotCommandScopeDefault {}.into(),
            lang_code: String::new(),
        },
    )
    .await
    .unwrap();
    assert!(commands_of(&f.backend, bot).unwrap().is_empty());
}

fn keyboard(data: &[u8]) -> enums::ReplyMarkup {
    types::ReplyInlineMarkup {
        force_reply: false,
        rows: vec![
            types::KeyboardInlineButtonRow {
                buttons: vec![
                    types::KeyboardInlineButton {
                        style: None,
                        text: "Press".into(),
                        r#type: types::InlineButtonTypeCallback {
                            requires_password: false,
                            data: data.to_vec(),
                        }
                        .into(),
                    }
                    .into(),
                ],
            }
            .into(),
        ],
    }
    .into()
}

/// The bot sends the person a message with a button carrying `data`; the message's id in
/// the person's box.
fn message_with_button(f: &Fixture, bot: i64, data: &[u8]) -> i32 {
    // The person starts the chat (bots do not).
    let hello = Outgoing::new(bot, rand::random(), "/start".into(), None);
    send_blocking(&f.backend, f.person, hello).unwrap();
    let outgoing = Outgoing::new(f.person, rand::random(), "menu".into(), None)
        .with_markup(Some(keyboard(data)), None);
    send_blocking(&f.backend, bot, outgoing).unwrap();
    let history = f
        .backend
        .messages
        .get_history(BoxId::User(f.person), Peer::User(bot), &latest())
        .unwrap();
    let stored = history.messages.first().unwrap();
    let body = crate::body::Body::decode(&stored.body);
    assert!(body.reply_markup.is_some(), "a bot's buttons are kept");
    stored.id
}

fn latest() -> HistoryQuery {
    HistoryQuery {
        limit: 1,
        ..HistoryQuery::default()
    }
}

fn press(bot: i64, msg_id: i32, data: &[u8]) -> functions::messages::GetBotCallbackAnswer {
    functions::messages::GetBotCallbackAnswer {
        game: false,
        peer: types::InputPeerUser {
            user_id: bot,
            access_hash: AccessSecret::new([9; 32]).user_hash(bot),
        }
        .into(),
        msg_id,
        data: Some(data.to_vec()),
        password: None,
    }
}

#[tokio::test]
async fn a_pressed_button_waits_for_the_bot_s_answer() {
    let f = fixture(BotOptions::default());
    let (bot, _) = f.bot("helper_bot");
    let msg_id = message_with_button(&f, bot, b"yes");
    let person = Ctx::detached(6, Some(f.person));
    let waiting = tokio::spawn(get_bot_callback_answer(
        person.clone(),
        f.bots.clone(),
        press(bot, msg_id, b"yes"),
    ));
    let query_id = loop {
        if let Some(id) = f.backend.presses.waiting_ids().first().copied() {
            break id;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let answer = |bot_user: i64, query_id: i64| {
        set_bot_callback_answer(
            Ctx::detached(5, Some(bot_user)),
            f.bots.clone(),
            functions::messages::SetBotCallbackAnswer {
                alert: true,
                query_id,
                message: Some("done".into()),
                url: None,
                cache_time: 3,
            },
        )
    };
    let (other_bot, _) = f.bot("other_bot");
    assert!(
        answer(other_bot, query_id).await.is_err(),
        "another bot's press"
    );
    assert!(answer(bot, query_id ^ 1).await.is_err(), "no such press");
    assert!(answer(bot, query_id).await.unwrap());
    let enums::messages::BotCallbackAnswer::BotCallbackAnswer(got) =
        waiting.await.unwrap().unwrap();
    assert!(got.alert);
    assert_eq!((got.message.as_deref(), got.cache_time), (Some("done"), 3));
    assert!(f.backend.presses.waiting_ids().is_empty());
    assert_eq!(
        answer(bot, query_id).await.unwrap_err().to_string(),
        ApiError::bad_request("QUERY_ID_INVALID").to_string(),
        "answered once"
    );
    // A button the message does not have.
    let refused = get_bot_callback_answer(person, f.bots.clone(), press(bot, msg_id, b"no")).await;
    assert_eq!(
        refused.unwrap_err().to_string(),
        ApiError::bad_request("DATA_INVALID").to_string()
    );
}

#[tokio::test]
async fn an_unanswered_press_times_out_and_is_forgotten() {
    let options = BotOptions {
        callback_timeout: Duration::from_millis(50),
        ..BotOptions::default()
    };
    let f = fixture(options);
    let (bot, _) = f.bot("helper_bot");
    let msg_id = message_with_button(&f, bot, b"x");
    let outcome = get_bot_callback_answer(
        Ctx::detached(6, Some(f.person)),
        f.bots.clone(),
        press(bot, msg_id, b"x"),
    )
    .await;
    assert_eq!(
        outcome.unwrap_err().to_string(),
        ApiError::bad_request("BOT_RESPONSE_TIMEOUT").to_string()
    );
    assert!(f.backend.presses.waiting_ids().is_empty());
}

#[tokio::test]
async fn a_person_s_buttons_are_dropped_and_start_sends_its_parameter() {
    let f = fixture(BotOptions::default());
    let (bot, _) = f.bot("helper_bot");
    let outgoing = Outgoing::new(bot, 1, "hi".into(), None).with_markup(Some(keyboard(b"x")), None);
    send_blocking(&f.backend, f.person, outgoing).unwrap();
    let last = |owner: i64, peer: i64| {
        f.backend
            .messages
            .get_history(BoxId::User(owner), Peer::User(peer), &latest())
            .unwrap()
            .messages
            .remove(0)
    };
    assert_eq!(
        crate::body::Body::decode(&last(bot, f.person).body).reply_markup,
        None
    );
    let start = |param: &str| functions::messages::StartBot {
        bot: types::InputUser {
            user_id: bot,
            access_hash: f.backend.access.user_hash(bot),
        }
        .into(),
        peer: types::InputPeerUser {
            user_id: bot,
            access_hash: f.backend.access.user_hash(bot),
        }
        .into(),
        random_id: rand::random(),
        start_param: param.to_owned(),
    };
    let person = Ctx::detached(6, Some(f.person));
    start_bot(person.clone(), f.bots.clone(), start("ref-42_x"))
        .await
        .unwrap();
    assert_eq!(
        crate::body::Body::decode(&last(bot, f.person).body).text,
        "/start ref-42_x"
    );
    for bad in ["a b", &"x".repeat(65), "é"] {
        let refused = start_bot(person.clone(), f.bots.clone(), start(bad)).await;
        assert_eq!(
            refused.unwrap_err().to_string(),
            ApiError::bad_request("START_PARAM_INVALID").to_string()
        );
    }
}
