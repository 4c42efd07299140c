//! End-to-end crash test of the echo server: the server runs as a child process; clients send
//! messages to `@echo` (and now and then a file) and record every acknowledged one; the server
//! is killed with SIGKILL at a random moment and restarted on the same data directory. A
//! message whose send was cut off is sent again with the same random id after the restart,
//! as a client would. At the end every acknowledged message is in the sender's history exactly
//! once and in order, no message is there twice, and every file acknowledged as sent
//! downloads intact.
//!
//! A second test does the same in a supergroup: members join, post, now and then leave and
//! join again, across SIGKILLs; at the end every acknowledged post is in the channel once and
//! in order, and the participants and each member's dialogs agree with the acknowledged joins
//! and leaves.
//!
//! Cycles: `COLUMBA_CRASH_CYCLES` (default 30).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use columba_examples::client::{CallError, EchoClient, Target};
use columba_mtproto::crypto::RsaPublicKey;
use columba_mtproto::tl::api::{enums, functions, types};
use columba_mtproto::transport::Framing;
use columba_session::runtime::SavedKey;

const CODE: &str = "27182";
const CLIENTS: usize = 3;

struct Server {
    child: Child,
    target: Target,
}

fn start(data: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo-server"))
        .args(["--listen", "127.0.0.1:0", "--login-code", CODE, "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut pem = String::new();
    let address = loop {
        let line = lines.next().expect("the server's output ended").unwrap();
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.parse().unwrap();
        }
        if line.starts_with("-----") || !pem.is_empty() && !line.contains("fingerprint") {
            pem.push_str(&line);
            pem.push('\n');
        }
    };
    // Keep reading (and dropping) its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        target: Target {
            address,
            key: RsaPublicKey::from_pem(&pem).unwrap(),
            framing: Framing::Abridged,
            obfuscated: false,
            // A killed server is gone: calls fail at once instead of retrying.
            reconnect_attempts: 0,
        },
    }
}

/// What one client knows it sent.
#[derive(Default)]
struct Ledger {
    key: Option<SavedKey>,
    /// Acknowledged texts, in the order sent.
    acked: Vec<String>,
    /// A send that got no answer: sent again, same random id, after the restart.
    pending: Option<(String, i64)>,
    next: u64,
    /// Acknowledged files: caption → bytes.
    files: BTreeMap<String, Vec<u8>>,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn connect(
    target: &Target,
    ledger: &mut Ledger,
    phone: &str,
) -> Result<EchoClient, CallError> {
    let client = EchoClient::connect(target, ledger.key.clone()).await?;
    let signed_in = matches!(
        client
            .call(&functions::users::GetUsers {
                id: vec![types::InputUserSelf {}.into()],
            })
            .await,
        Ok(users) if matches!(users.first(), Some(enums::User::User(_)))
    );
    if !signed_in {
        client.sign_in(phone, CODE).await?;
    }
    ledger.key = Some(client.saved_key());
    Ok(client)
}

/// Sends until the server goes away.
async fn work(target: Target, mut ledger: Ledger, index: usize, seed: u64) -> Ledger {
    let phone = format!("1555070{index}");
    let Ok(client) = connect(&target, &mut ledger, &phone).await else {
        return ledger;
    };
    let Ok(echo) = client.echo_peer().await else {
        return ledger;
    };
    let mut rng = Rng(seed | 1);
    if let Some((text, random_id)) = ledger.pending.clone() {
        match client.send_text(&echo, &text, random_id).await {
            Ok(_) => {
                ledger.acked.push(text);
                ledger.pending = None;
            }
            Err(_) => return ledger,
        }
    }
    loop {
        ledger.next += 1;
        let n = ledger.next;
        let random_id = ((index as i64) << 48) | n as i64;
        if rng.next() % 10 == 0 {
            let caption = format!("file {index}-{n}");
            let len = 1 + (rng.next() % 300_000) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + n) as u8).collect();
            let Ok(file) = client.upload(&bytes, "f.bin").await else {
                return ledger;
            };
            match client.send_document(&echo, file, &caption, random_id).await {
                Ok(_) => {
                    ledger.files.insert(caption.clone(), bytes);
                    ledger.acked.push(caption);
                }
                // Not acknowledged: it may or may not be there; never sent again.
                Err(_) => return ledger,
            }
        } else {
            let text = format!("text {index}-{n}");
            ledger.pending = Some((text.clone(), random_id));
            match client.send_text(&echo, &text, random_id).await {
                Ok(_) => {
                    ledger.acked.push(text);
                    ledger.pending = None;
                }
                Err(_) => return ledger,
            }
        }
    }
}

/// The texts of the user's messages to @echo, oldest first, with their documents.
async fn history(client: &EchoClient) -> Vec<(String, Option<types::Document>)> {
    let echo = client.echo_peer().await.unwrap();
    let mut out = Vec::new();
    let mut offset_id = 0;
    loop {
        let page = client
            .call(&functions::messages::GetHistory {
                peer: echo.clone(),
                offset_id,
                offset_date: 0,
                add_offset: 0,
                limit: 100,
                max_id: 0,
                min_id: 0,
                hash: 0,
            })
            .await
            .unwrap();
        let messages = match page {
            enums::messages::Messages::Messages(page) => page.messages,
            enums::messages::Messages::MessagesSlice(page) => page.messages,
            other => panic!("{other:?}"),
        };
        if messages.is_empty() {
            break;
        }
        for message in &messages {
            let enums::Message::Message(message) = message else {
                continue;
            };
            offset_id = message.id;
            if message.out {
                let document = match &message.media {
                    Some(enums::MessageMedia::MessageMediaDocument(media)) => match &media.document
                    {
                        Some(enums::Document::Document(document)) => Some((**document).clone()),
                        _ => None,
                    },
                    _ => None,
                };
                out.push((message.message.clone(), document));
            }
        }
    }
    out.reverse();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_and_files_survive_sigkill() {
    let cycles: u64 = std::env::var("COLUMBA_CRASH_CYCLES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut ledgers: Vec<Ledger> = (0..CLIENTS).map(|_| Ledger::default()).collect();
    let mut rng = Rng(0x5eed_1234_5678_9abc);
    // A first start where every client makes its key and signs in before any kill: a key
    // exchange of a debug build takes about a second on a small machine with the clients
    // side by side, longer than most kill windows below, and the cycles are about what was
    // acknowledged surviving, not about interrupted key exchanges (those have tests of their
    // own, in the session runtime and the hostile-input test).
    {
        let mut server = start(dir.path());
        for (index, ledger) in ledgers.iter_mut().enumerate() {
            let client = connect(&server.target, ledger, &format!("1555070{index}"))
                .await
                .unwrap();
            client.close().await;
        }
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    }
    for cycle in 0..cycles {
        let mut server = start(dir.path());
        let tasks: Vec<_> = ledgers
            .drain(..)
            .enumerate()
            .map(|(index, ledger)| {
                let target = server.target.clone();
                tokio::spawn(work(target, ledger, index, cycle * 100 + index as u64 + 1))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + rng.next() % 700)).await;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        for task in tasks {
            ledgers.push(task.await.unwrap());
        }
    }
    // The last start: everything acknowledged is there, once, in order.
    let mut server = start(dir.path());
    let mut acked_total = 0;
    let mut files_total = 0;
    for (index, ledger) in ledgers.iter_mut().enumerate() {
        let client = connect(&server.target, ledger, &format!("1555070{index}"))
            .await
            .unwrap();
        let stored = history(&client).await;
        let texts: Vec<&str> = stored.iter().map(|(text, _)| text.as_str()).collect();
        let mut seen = std::collections::HashSet::new();
        for text in &texts {
            assert!(
                seen.insert(*text),
                "client {index}: {text:?} is stored twice"
            );
        }
        let mut position = 0;
        for acked in &ledger.acked {
            let found = texts[position..]
                .iter()
                .position(|text| text == acked)
                .unwrap_or_else(|| {
                    panic!("client {index}: acknowledged {acked:?} is missing or out of order")
                });
            position += found + 1;
        }
        for (caption, bytes) in &ledger.files {
            let document = stored
                .iter()
                .find(|(text, _)| text == caption)
                .and_then(|(_, document)| document.clone())
                .unwrap_or_else(|| panic!("client {index}: file {caption:?} has no document"));
            assert_eq!(
                &client.download(&document).await.unwrap(),
                bytes,
                "{caption}"
            );
        }
        acked_total += ledger.acked.len();
        files_total += ledger.files.len();
        client.close().await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(
        acked_total > cycles as usize,
        "the clients got almost nothing acknowledged"
    );
    println!(
        "echo crash test: {cycles} SIGKILL cycles, {acked_total} acknowledged messages ({files_total} files) present once and in order, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// What one member of the supergroup knows it did.
#[derive(Default)]
struct Member {
    key: Option<SavedKey>,
    /// Acknowledged posts, in the order sent.
    acked: Vec<String>,
    /// A post that got no answer: sent again, same random id, after the restart.
    pending: Option<(String, i64)>,
    next: u64,
    /// Whether the last acknowledged join or leave was a join.
    joined: bool,
    /// A join (`true`) or leave (`false`) that got no answer: done again after the restart
    /// (a repeat's refusal, already in or not in, means the first one happened).
    pending_membership: Option<bool>,
}

fn rpc_name(error: &CallError) -> Option<&str> {
    match error {
        CallError::Rpc(error) => Some(error.message.as_str()),
        _ => None,
    }
}

/// Joins (`true`) or leaves; `Ok(())` when the membership is as asked now.
async fn set_membership(
    client: &EchoClient,
    channel: &enums::InputChannel,
    join: bool,
) -> Result<(), CallError> {
    let result = if join {
        client
            .call(&functions::channels::JoinChannel {
                channel: channel.clone(),
            })
            .await
            .map(|_| ())
    } else {
        client
            .call(&functions::channels::LeaveChannel {
                channel: channel.clone(),
            })
            .await
            .map(|_| ())
    };
    match result {
        Err(error)
            if rpc_name(&error)
                == Some(if join {
                    "USER_ALREADY_PARTICIPANT"
                } else {
                    "USER_NOT_PARTICIPANT"
                }) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Joins, posts, and now and then leaves and joins again, until the server goes away.
async fn member_work(
    target: Target,
    mut member: Member,
    channel: enums::InputChannel,
    index: usize,
    seed: u64,
) -> Member {
    let phone = format!("1555071{index}");
    let mut ledger = Ledger {
        key: member.key.clone(),
        ..Ledger::default()
    };
    let Ok(client) = connect(&target, &mut ledger, &phone).await else {
        return member;
    };
    member.key = ledger.key;
    let enums::InputChannel::InputChannel(input) = &channel else {
        unreachable!()
    };
    let peer: enums::InputPeer = types::InputPeerChannel {
        channel_id: input.channel_id,
        access_hash: input.access_hash,
    }
    .into();
    let mut rng = Rng(seed | 1);
    loop {
        if let Some(join) = member.pending_membership {
            if set_membership(&client, &channel, join).await.is_err() {
                return member;
            }
            member.joined = join;
            member.pending_membership = None;
        }
        if !member.joined {
            member.pending_membership = Some(true);
            continue;
        }
        if let Some((text, random_id)) = member.pending.clone() {
            if client.send_text(&peer, &text, random_id).await.is_err() {
                return member;
            }
            member.acked.push(text);
            member.pending = None;
        }
        if rng.next() % 8 == 0 {
            member.pending_membership = Some(false);
            continue;
        }
        member.next += 1;
        let n = member.next;
        let text = format!("post {index}-{n}");
        member.pending = Some((text, ((index as i64) << 48) | n as i64));
    }
}

/// The channel's posts (texts of plain messages), oldest first.
async fn channel_history(client: &EchoClient, peer: &enums::InputPeer) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset_id = 0;
    loop {
        let page = client
            .call(&functions::messages::GetHistory {
                peer: peer.clone(),
                offset_id,
                offset_date: 0,
                add_offset: 0,
                limit: 100,
                max_id: 0,
                min_id: 0,
                hash: 0,
            })
            .await
            .unwrap();
        let enums::messages::Messages::ChannelMessages(page) = page else {
            panic!("{page:?}")
        };
        if page.messages.is_empty() {
            break;
        }
        for message in &page.messages {
            match message {
                enums::Message::Message(message) => {
                    offset_id = message.id;
                    let from = match &message.from_id {
                        Some(enums::Peer::PeerUser(user)) => user.user_id,
                        _ => 0,
                    };
                    out.push((from, message.message.clone()));
                }
                enums::Message::MessageService(service) => offset_id = service.id,
                enums::Message::MessageEmpty(_) => {}
            }
        }
    }
    out.reverse();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_posts_joins_and_leaves_survive_sigkill() {
    let cycles: u64 = std::env::var("COLUMBA_CRASH_CYCLES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut members: Vec<Member> = (0..CLIENTS).map(|_| Member::default()).collect();
    let mut rng = Rng(0x5eed_9876_5432_1abc);
    // The owner creates the supergroup; the members sign in (keys first, as above).
    let mut owner = Ledger::default();
    let channel: enums::InputChannel = {
        let mut server = start(dir.path());
        let client = connect(&server.target, &mut owner, "15550719")
            .await
            .unwrap();
        let created = client
            .call(&functions::channels::CreateChannel {
                broadcast: false,
                megagroup: true,
                for_import: false,
                forum: false,
                title: "crash".to_owned(),
                about: String::new(),
                geo_point: None,
                address: None,
                ttl_period: None,
            })
            .await
            .unwrap();
        let enums::Updates::Updates(created) = created else {
            panic!("{created:?}")
        };
        let enums::Chat::Channel(made) = &created.chats[0] else {
            panic!("{:?}", created.chats)
        };
        for (index, member) in members.iter_mut().enumerate() {
            let mut ledger = Ledger::default();
            let client = connect(&server.target, &mut ledger, &format!("1555071{index}"))
                .await
                .unwrap();
            member.key = ledger.key;
            client.close().await;
        }
        client.close().await;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        types::InputChannel {
            channel_id: made.id,
            access_hash: made.access_hash.unwrap(),
        }
        .into()
    };
    for cycle in 0..cycles {
        let mut server = start(dir.path());
        let tasks: Vec<_> = members
            .drain(..)
            .enumerate()
            .map(|(index, member)| {
                let target = server.target.clone();
                tokio::spawn(member_work(
                    target,
                    member,
                    channel.clone(),
                    index,
                    cycle * 100 + index as u64 + 7,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + rng.next() % 700)).await;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        for task in tasks {
            members.push(task.await.unwrap());
        }
    }
    // The last start: finish what was cut off, then check.
    let mut server = start(dir.path());
    let enums::InputChannel::InputChannel(input) = &channel else {
        unreachable!()
    };
    let peer: enums::InputPeer = types::InputPeerChannel {
        channel_id: input.channel_id,
        access_hash: input.access_hash,
    }
    .into();
    let mut ids = Vec::new();
    for (index, member) in members.iter_mut().enumerate() {
        let mut ledger = Ledger {
            key: member.key.clone(),
            ..Ledger::default()
        };
        let client = connect(&server.target, &mut ledger, &format!("1555071{index}"))
            .await
            .unwrap();
        if let Some(join) = member.pending_membership.take() {
            set_membership(&client, &channel, join).await.unwrap();
            member.joined = join;
        }
        let me = client
            .call(&functions::users::GetUsers {
                id: vec![types::InputUserSelf {}.into()],
            })
            .await
            .unwrap();
        let enums::User::User(me) = &me[0] else {
            panic!("{me:?}")
        };
        ids.push(me.id);
        // The member's own side: the channel is in their dialogs exactly when they are in it.
        let dialogs = client
            .call(&functions::messages::GetDialogs {
                exclude_pinned: false,
                folder_id: None,
                offset_date: 0,
                offset_id: 0,
                offset_peer: types::InputPeerEmpty {}.into(),
                limit: 100,
                hash: 0,
            })
            .await
            .unwrap();
        let listed = match &dialogs {
            enums::messages::Dialogs::Dialogs(d) => d
                .chats
                .iter()
                .any(|c| matches!(c, enums::Chat::Channel(ch) if ch.id == input.channel_id)),
            enums::messages::Dialogs::DialogsSlice(d) => d
                .chats
                .iter()
                .any(|c| matches!(c, enums::Chat::Channel(ch) if ch.id == input.channel_id)),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            listed, member.joined,
            "member {index}: dialogs against joined"
        );
        client.close().await;
    }
    let owner_client = connect(&server.target, &mut owner, "15550719")
        .await
        .unwrap();
    let stored = channel_history(&owner_client, &peer).await;
    let mut acked_total = 0;
    for (index, member) in members.iter().enumerate() {
        let texts: Vec<&str> = stored
            .iter()
            .filter(|(from, _)| *from == ids[index])
            .map(|(_, text)| text.as_str())
            .collect();
        let mut seen = std::collections::HashSet::new();
        for text in &texts {
            assert!(
                seen.insert(*text),
                "member {index}: {text:?} is stored twice"
            );
        }
        let mut position = 0;
        for acked in &member.acked {
            let found = texts[position..]
                .iter()
                .position(|text| text == acked)
                .unwrap_or_else(|| {
                    panic!("member {index}: acknowledged {acked:?} is missing or out of order")
                });
            position += found + 1;
        }
        acked_total += member.acked.len();
    }
    // The channel's side: its participants are the owner and the members who are in.
    let participants = owner_client
        .call(&functions::channels::GetParticipants {
            channel: channel.clone(),
            filter: types::ChannelParticipantsRecent {}.into(),
            offset: 0,
            limit: 200,
            hash: 0,
        })
        .await
        .unwrap();
    let enums::channels::ChannelParticipants::ChannelParticipants(participants) = participants
    else {
        panic!("{participants:?}")
    };
    let expected = 1 + members.iter().filter(|m| m.joined).count();
    assert_eq!(participants.count as usize, expected, "participants' count");
    assert_eq!(
        participants.participants.len(),
        expected,
        "participants listed"
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(
        acked_total > cycles as usize,
        "the members got almost nothing acknowledged"
    );
    println!(
        "channel crash test: {cycles} SIGKILL cycles, {acked_total} acknowledged posts present once and in order, memberships consistent, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
