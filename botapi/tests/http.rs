//! The Bot API front over real loopback sockets with a real HTTP client: the happy path of
//! a bot (updates, sends, formatting, positions across a restart) and hostile clients
//! (wrong tokens, oversized bodies, endless and competing long polls).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use columba_api::messages::{Outgoing, send_blocking};
use columba_api::{AccessSecret, Backend, DcList, bots};
use columba_botapi::{BotApi, BotApiOptions};
use columba_session::runtime::ServerHandle;
use columba_store::{MemoryAuthKeyStore, MemoryFileStore, MemoryMessageStore, MemoryUserStore};
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

struct Front {
    address: SocketAddr,
    backend: Arc<Backend>,
    token: String,
    bot: i64,
    person: i64,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn backend() -> Arc<Backend> {
    Backend::new(
        Arc::new(MemoryMessageStore::new()),
        Arc::new(MemoryFileStore::new()),
        Arc::new(MemoryAuthKeyStore::new()),
        Arc::new(MemoryUserStore::new()),
        AccessSecret::new([5; 32]),
        DcList::single(1, "127.0.0.1:1".parse().unwrap()),
    )
}

async fn start(backend: Arc<Backend>, options: BotApiOptions) -> Front {
    let person = match backend.users.by_phone("15550001").unwrap() {
        Some(account) => account.id,
        None => {
            backend
                .users
                .create_account("15550001", "Ann", "")
                .unwrap()
                .id
        }
    };
    let token = match backend.users.by_username("test_bot").unwrap() {
        Some(bot) => bots::token_of(&backend, bot.id).unwrap(),
        None => {
            bots::create_bot(&backend, person, "Test", "test_bot")
                .unwrap()
                .1
        }
    };
    let bot = bots::parse_token(&token).unwrap().0;
    let api = BotApi::new(backend.clone(), ServerHandle::detached(), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(api.serve(listener, async move {
        let _ = stopped.await;
    }));
    Front {
        address,
        backend,
        token,
        bot,
        person,
        client: Client::builder(TokioExecutor::new()).build_http(),
        stop: Some(stop),
    }
}

impl Front {
    async fn raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let request = Request::post(format!("http://{}{path}", self.address))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn call(&self, method: &str, params: Value) -> (u16, Value) {
        let path = format!("/bot{}/{method}", self.token);
        self.raw(&path, "application/json", params.to_string().into_bytes())
            .await
    }

    async fn ok(&self, method: &str, params: Value) -> Value {
        let (status, body) = self.call(method, params).await;
        assert_eq!(
            (status, &body["ok"]),
            (200, &json!(true)),
            "{method}: {body}"
        );
        body["result"].clone()
    }

    /// The person sends the bot `text`.
    fn person_says(&self, text: &str) {
        let outgoing = Outgoing::new(self.bot, rand::random(), text.to_owned(), None);
        send_blocking(&self.backend, self.person, outgoing).unwrap();
        self.backend.bot_feeds.box_changed(self.bot);
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_gets_updates_and_answers_with_formatting() {
    let front = start(backend(), BotApiOptions::default()).await;
    let me = front.ok("getMe", json!({})).await;
    assert_eq!(
        (me["id"].as_i64(), me["is_bot"].as_bool()),
        (Some(front.bot), Some(true))
    );

    // Bots do not start conversations.
    let (status, body) = front
        .call(
            "sendMessage",
            json!({"chat_id": front.person, "text": "hi"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");

    front.person_says("/start ref");
    let updates = front.ok("getUpdates", json!({"timeout": 5})).await;
    let update = &updates[0];
    let first = update["update_id"].as_i64().unwrap();
    assert_eq!(update["message"]["text"], json!("/start ref"));
    assert_eq!(
        update["message"]["entities"],
        json!([{"type": "bot_command", "offset": 0, "length": 6}])
    );
    assert_eq!(update["message"]["chat"]["id"], json!(front.person));

    let sent = front
        .ok(
            "sendMessage",
            json!({
                "chat_id": front.person,
                "text": "<b>Hi</b> <a href=\"http://x.org\">there</a>",
                "parse_mode": "HTML",
                "reply_markup": {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]},
            }),
        )
        .await;
    assert_eq!(sent["text"], json!("Hi there"));
    assert_eq!(
        sent["entities"][0],
        json!({"type": "bold", "offset": 0, "length": 2})
    );
    assert_eq!(
        sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        json!("go")
    );
    let (status, body) = front
        .call(
            "sendMessage",
            json!({"chat_id": front.person, "text": "<b>open", "parse_mode": "HTML"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .contains("can't parse entities")
    );

    // Confirmed updates are not given again; new ones follow with the next id.
    front.person_says("second");
    let updates = front.ok("getUpdates", json!({"offset": first + 1})).await;
    assert_eq!(updates.as_array().unwrap().len(), 1);
    assert_eq!(updates[0]["update_id"], json!(first + 1));
    assert_eq!(updates[0]["message"]["text"], json!("second"));
    let none = front.ok("getUpdates", json!({"offset": first + 2})).await;
    assert_eq!(none, json!([]));

    let edited = front
        .ok(
            "editMessageText",
            json!({"chat_id": front.person, "message_id": sent["message_id"], "text": "*Bye*", "parse_mode": "MarkdownV2"}),
        )
        .await;
    assert_eq!(edited["text"], json!("Bye"));
    assert!(
        front
            .ok(
                "deleteMessage",
                json!({"chat_id": front.person, "message_id": sent["message_id"]})
            )
            .await
            .as_bool()
            .unwrap()
    );
    front
        .ok(
            "setMyCommands",
            json!({"commands": [{"command": "start", "description": "go"}]}),
        )
        .await;
    assert_eq!(
        front.ok("getMyCommands", json!({})).await,
        json!([{"command": "start", "description": "go"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend();
    let mut options = BotApiOptions::default();
    options.state_dir = Some(dir.path().to_path_buf());
    let second = {
        let front = start(backend.clone(), options.clone()).await;
        front.person_says("one");
        front.person_says("two");
        let updates = front.ok("getUpdates", json!({})).await;
        assert_eq!(updates.as_array().unwrap().len(), 2);
        let second = updates[1]["update_id"].as_i64().unwrap();
        // The first is confirmed, the second not.
        front
            .ok("getUpdates", json!({"offset": second, "limit": 1}))
            .await;
        second
    };
    let front = start(backend.clone(), options.clone()).await;
    let updates = front.ok("getUpdates", json!({})).await;
    assert_eq!(updates.as_array().unwrap().len(), 1, "{updates}");
    assert_eq!(updates[0]["update_id"], json!(second), "the same id again");
    assert_eq!(updates[0]["message"]["text"], json!("two"));
    // drop_pending_updates drops what waits and what the box holds.
    front.person_says("three");
    front
        .ok("deleteWebhook", json!({"drop_pending_updates": true}))
        .await;
    front.person_says("four");
    let updates = front.ok("getUpdates", json!({})).await;
    assert_eq!(updates.as_array().unwrap().len(), 1, "{updates}");
    assert_eq!(updates[0]["message"]["text"], json!("four"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_paths_and_methods_get_the_official_answers() {
    let front = start(backend(), BotApiOptions::default()).await;
    let wrong = format!("{}:{}", front.bot, "A".repeat(35));
    for token in [wrong.as_str(), "123:abc", "nonsense", "0:x"] {
        let (status, body) = front
            .raw(
                &format!("/bot{token}/getMe"),
                "application/json",
                Vec::new(),
            )
            .await;
        assert_eq!(status, 401, "{token}: {body}");
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
        );
    }
    let (status, _) = front.raw("/nothing/here", "text/plain", Vec::new()).await;
    assert_eq!(status, 404);
    let (status, body) = front.call("launchRockets", json!({})).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (404, Some("Not Found: method not found"))
    );
    // Method names are case-insensitive.
    front.ok("GETME", json!({})).await;
    let (status, _) = front
        .raw(
            &format!("/bot{}/sendMessage", front.token),
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let mut options = BotApiOptions::default();
    options.max_body_bytes = 4096;
    let front = start(backend(), options).await;
    let (status, body) = front
        .raw(
            &format!("/bot{}/sendMessage", front.token),
            "application/x-www-form-urlencoded",
            vec![b'a'; 100_000],
        )
        .await;
    assert_eq!(status, 413, "{body}");
    front.ok("getMe", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_are_capped_and_one_poller_wins() {
    let mut options = BotApiOptions::default();
    options.max_poll = Duration::from_millis(500);
    let backend = backend();
    {
        // By default a webhook may not point at the server's own network.
        let strict = start(backend.clone(), options.clone()).await;
        let (status, _) = strict
            .call("setWebhook", json!({"url": "http://127.0.0.1:9/hook"}))
            .await;
        assert_eq!(status, 400);
    }
    options.allow_local_webhooks = true;
    let front = Arc::new(start(backend, options).await);
    let began = Instant::now();
    assert_eq!(
        front.ok("getUpdates", json!({"timeout": 100_000})).await,
        json!([])
    );
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // Many polls at once from one address: each newer one ends the older (409); the last
    // one stands; the server answers on.
    let mut polls = Vec::new();
    for _ in 0..1000 {
        let front = front.clone();
        polls.push(tokio::spawn(async move {
            front.call("getUpdates", json!({"timeout": 100})).await.0
        }));
    }
    let mut statuses = Vec::new();
    for poll in polls {
        statuses.push(poll.await.unwrap());
    }
    assert!(
        statuses
            .iter()
            .all(|status| *status == 200 || *status == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&409), "older polls are ended");
    front.ok("getMe", json!({})).await;
    // A webhook and polling do not mix.
    front
        .ok("setWebhook", json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    let (status, _) = front.call("getUpdates", json!({})).await;
    assert_eq!(status, 409);
    let info = front.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["url"], json!("http://127.0.0.1:9/hook"));
    front.ok("deleteWebhook", json!({})).await;
    front.ok("getUpdates", json!({})).await;
}
