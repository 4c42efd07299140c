//! Tests of [`SecretChats`]: two devices through a relay written here (what the relay
//! answers and pushes, in the reference's rules), in memory.

use super::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const ALICE: i64 = 1;
const BOB: i64 = 2;
const NOW: u64 = 1_700_000_000;

fn dh_config() -> enums::messages::DhConfig {
    let group = DhGroup::telegram();
    types::messages::DhConfig {
        g: 3,
        p: group.prime().to_vec(),
        version: 1,
        random: vec![0x42; 256],
    }
    .into()
}

/// A relay between two devices: it answers their calls and pushes to the other one.
struct Relay {
    devices: [SecretChats; 2],
    /// Per device: the next qts, and what it was pushed and not yet handed in.
    qts: [i32; 2],
    pushed: [Vec<enums::Update>; 2],
    /// Per device: the qts it acknowledged.
    acknowledged: [i32; 2],
    access_hash: i64,
    rng: ChaCha20Rng,
}

fn user_of(index: usize) -> i64 {
    if index == 0 { ALICE } else { BOB }
}

impl Relay {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mut devices = [
            SecretChats::new(ALICE, ChatLimits::default()),
            SecretChats::new(BOB, ChatLimits::default()),
        ];
        for device in &mut devices {
            device.handle_dh_config(&dh_config(), &mut rng).unwrap();
        }
        Self {
            devices,
            qts: [1, 1],
            pushed: [Vec::new(), Vec::new()],
            acknowledged: [0, 0],
            access_hash: 99,
            rng,
        }
    }

    fn push_message(&mut self, to: usize, message: enums::EncryptedMessage) {
        self.qts[to] += 1;
        self.pushed[to].push(
            types::UpdateNewEncryptedMessage {
                message,
                qts: self.qts[to],
            }
            .into(),
        );
    }

    /// Carries out every call of device `from`.
    fn run_calls(&mut self, from: usize) {
        let to = 1 - from;
        while let Some(rpc) = self.devices[from].poll_rpc() {
            match rpc {
                Rpc::RequestEncryption(request) => {
                    let waiting: enums::EncryptedChat = types::EncryptedChatWaiting {
                        id: request.random_id,
                        access_hash: self.access_hash,
                        date: 0,
                        admin_id: user_of(from),
                        participant_id: user_of(to),
                    }
                    .into();
                    let mut rng = self.rng.clone();
                    self.devices[from].handle_chat(&waiting, NOW, &mut rng);
                    self.pushed[to].push(
                        types::UpdateEncryption {
                            chat: types::EncryptedChatRequested {
                                folder_id: None,
                                id: request.random_id,
                                access_hash: self.access_hash,
                                date: 0,
                                admin_id: user_of(from),
                                participant_id: user_of(to),
                                g_a: request.g_a,
                            }
                            .into(),
                            date: 0,
                        }
                        .into(),
                    );
                }
                Rpc::AcceptEncryption(accept) => {
                    let enums::InputEncryptedChat::InputEncryptedChat(peer) = accept.peer;
                    self.pushed[to].push(
                        types::UpdateEncryption {
                            chat: types::EncryptedChat {
                                id: peer.chat_id,
                                access_hash: peer.access_hash,
                                date: 0,
                                admin_id: user_of(to),
                                participant_id: user_of(from),
                                g_a_or_b: accept.g_b,
                                key_fingerprint: accept.key_fingerprint,
                            }
                            .into(),
                            date: 0,
                        }
                        .into(),
                    );
                }
                Rpc::DiscardEncryption(discard) => self.pushed[to].push(
                    types::UpdateEncryption {
                        chat: types::EncryptedChatDiscarded {
                            history_deleted: discard.delete_history,
                            id: discard.chat_id,
                        }
                        .into(),
                        date: 0,
                    }
                    .into(),
                ),
                Rpc::SendEncrypted(send) => {
                    let enums::InputEncryptedChat::InputEncryptedChat(peer) = send.peer;
                    self.push_message(
                        to,
                        types::EncryptedMessage {
                            random_id: send.random_id,
                            chat_id: peer.chat_id,
                            date: 0,
                            bytes: send.data,
                            file: types::EncryptedFileEmpty {}.into(),
                        }
                        .into(),
                    );
                }
                Rpc::SendEncryptedService(send) => {
                    let enums::InputEncryptedChat::InputEncryptedChat(peer) = send.peer;
                    self.push_message(
                        to,
                        types::EncryptedMessageService {
                            random_id: send.random_id,
                            chat_id: peer.chat_id,
                            date: 0,
                            bytes: send.data,
                        }
                        .into(),
                    );
                }
                Rpc::ReceivedQueue(ack) => self.acknowledged[from] = ack.max_qts,
                other => panic!("a call this relay does not carry: {other:?}"),
            }
        }
    }

    /// Hands each device what was pushed to it, until both are quiet.
    fn settle(&mut self) {
        loop {
            self.run_calls(0);
            self.run_calls(1);
            if self.pushed.iter().all(Vec::is_empty) {
                return;
            }
            for index in 0..2 {
                let updates = std::mem::take(&mut self.pushed[index]);
                for update in &updates {
                    let mut rng = self.rng.clone();
                    self.devices[index].handle_update(update, NOW, &mut rng);
                    self.rng = rng;
                    self.rng.next_u32();
                }
            }
        }
    }

    fn events(&mut self, index: usize) -> Vec<Event> {
        std::iter::from_fn(|| self.devices[index].poll_event()).collect()
    }

    /// Alice asks Bob, Bob accepts: the chat's id.
    fn open(&mut self) -> i32 {
        let bob: enums::InputUser = types::InputUser {
            user_id: BOB,
            access_hash: 5,
        }
        .into();
        let mut rng = self.rng.clone();
        let id = self.devices[0].request(bob, BOB, &mut rng).unwrap();
        self.settle();
        assert_eq!(
            self.events(1),
            vec![Event::Requested {
                chat_id: id,
                user_id: ALICE
            }]
        );
        self.devices[1].accept(id, NOW, &mut rng).unwrap();
        self.rng = rng;
        self.settle();
        id
    }
}

fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Message {
                message: e2e::DecryptedMessage::DecryptedMessage(m),
                ..
            } => Some(m.message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_chat_is_opened_used_and_closed() {
    let mut relay = Relay::new();
    let id = relay.open();
    let alice = relay.events(0);
    let bob = relay.events(1);
    let picture = |events: &[Event]| {
        events.iter().find_map(|event| match event {
            Event::Ready { visualization, .. } => Some(*visualization),
            _ => None,
        })
    };
    assert!(picture(&alice).is_some(), "{alice:?}");
    assert_eq!(
        picture(&alice),
        picture(&bob),
        "both sides show the same key picture"
    );
    assert!(
        alice
            .iter()
            .any(|event| matches!(event, Event::LayerChanged { layer: 144, .. })),
        "Bob's NotifyLayer reached Alice"
    );
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    relay.devices[0]
        .send_text(id, "hello Bob", NOW, &mut rng)
        .unwrap();
    relay.devices[1]
        .send_text(id, "hello Alice", NOW, &mut rng)
        .unwrap();
    relay.settle();
    assert_eq!(texts(&relay.events(1)), ["hello Bob"]);
    assert_eq!(texts(&relay.events(0)), ["hello Alice"]);
    relay.devices[0].close(id, true).unwrap();
    relay.settle();
    assert_eq!(
        relay.events(0),
        vec![Event::Closed {
            chat_id: id,
            reason: CloseReason::Local
        }]
    );
    assert_eq!(
        relay.events(1),
        vec![Event::Closed {
            chat_id: id,
            reason: CloseReason::Remote {
                history_deleted: true
            }
        }]
    );
    assert_eq!(
        relay.devices[1].send_text(id, "late", NOW, &mut rng),
        Err(DeviceError::NoChat(id))
    );
}

#[test]
fn the_queue_is_acknowledged_only_once_saved() {
    let mut relay = Relay::new();
    let id = relay.open();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    for n in 0..3 {
        relay.devices[0]
            .send_text(id, &format!("m{n}"), NOW, &mut rng)
            .unwrap();
    }
    relay.settle();
    assert_eq!(
        relay.acknowledged[1], 0,
        "nothing acknowledged before a save"
    );
    let saved = relay.devices[1].save();
    assert_eq!(
        saved.qts, relay.qts[1],
        "the save covers every message taken"
    );
    relay.devices[1].saved(saved.qts);
    relay.settle();
    assert_eq!(relay.acknowledged[1], saved.qts);
    // A save of before, confirmed late, acknowledges nothing more.
    relay.devices[1].saved(saved.qts - 1);
    assert_eq!(relay.devices[1].poll_rpc(), None);
}

#[test]
fn a_repeated_qts_is_taken_once() {
    let mut relay = Relay::new();
    let id = relay.open();
    relay.events(1);
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    relay.devices[0]
        .send_text(id, "once", NOW, &mut rng)
        .unwrap();
    relay.run_calls(0);
    let update = relay.pushed[1].pop().unwrap();
    relay.devices[1].handle_update(&update, NOW, &mut rng);
    relay.devices[1].handle_update(&update, NOW, &mut rng);
    assert_eq!(texts(&relay.events(1)), ["once"]);
}

#[test]
fn a_saved_device_loads_and_goes_on() {
    let mut relay = Relay::new();
    let id = relay.open();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    relay.devices[0]
        .send_text(id, "before", NOW, &mut rng)
        .unwrap();
    relay.settle();
    let saved = relay.devices[1].save();
    relay.devices[1] = SecretChats::load(&saved.bytes).unwrap();
    assert_eq!(
        relay.devices[1].save(),
        saved,
        "saving the loaded device gives the same"
    );
    relay.devices[0]
        .send_text(id, "after", NOW, &mut rng)
        .unwrap();
    relay.settle();
    assert_eq!(texts(&relay.events(1)), ["after"]);
    relay.devices[1]
        .send_text(id, "back", NOW, &mut rng)
        .unwrap();
    relay.settle();
    assert!(texts(&relay.events(0)).contains(&"back".to_owned()));
    for len in 0..saved.bytes.len() {
        assert!(
            SecretChats::load(&saved.bytes[..len]).is_err(),
            "cut at {len}"
        );
    }
}

#[test]
fn keys_are_replaced_after_a_hundred_messages() {
    let mut relay = Relay::new();
    let id = relay.open();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let mut rekeyed = [0u32; 2];
    for round in 0..60 {
        relay.devices[0]
            .send_text(id, &format!("a{round}"), NOW, &mut rng)
            .unwrap();
        relay.devices[1]
            .send_text(id, &format!("b{round}"), NOW, &mut rng)
            .unwrap();
        relay.settle();
        for (index, last) in rekeyed.iter_mut().enumerate() {
            for event in relay.events(index) {
                if let Event::Rekeyed { generation, .. } = event {
                    *last = generation;
                }
            }
        }
    }
    assert!(rekeyed[0] >= 1 && rekeyed[0] == rekeyed[1], "{rekeyed:?}");
}

#[test]
fn a_wrong_fingerprint_ends_the_chat() {
    let mut relay = Relay::new();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let bob: enums::InputUser = types::InputUserEmpty {}.into();
    let id = relay.devices[0].request(bob, BOB, &mut rng).unwrap();
    relay.devices[0].poll_rpc();
    let forged: enums::EncryptedChat = types::EncryptedChat {
        id,
        access_hash: 1,
        date: 0,
        admin_id: ALICE,
        participant_id: BOB,
        g_a_or_b: {
            let (_, g_b) =
                exchange::accept(&DhGroup::telegram(), &[0x33; 256], &[], &mut rng).unwrap();
            g_b.to_vec()
        },
        key_fingerprint: 12345,
    }
    .into();
    relay.devices[0].handle_chat(&forged, NOW, &mut rng);
    assert_eq!(
        relay.events(0),
        vec![Event::Closed {
            chat_id: id,
            reason: CloseReason::KeyExchange
        }]
    );
    assert!(matches!(
        relay.devices[0].poll_rpc(),
        Some(Rpc::DiscardEncryption(_))
    ));
}

#[test]
fn commands_wait_for_the_dh_config() {
    let mut device = SecretChats::new(ALICE, ChatLimits::default());
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let user: enums::InputUser = types::InputUserEmpty {}.into();
    assert_eq!(
        device.request(user.clone(), BOB, &mut rng),
        Err(DeviceError::NoDhConfig)
    );
    assert!(matches!(device.poll_rpc(), Some(Rpc::GetDhConfig(_))));
    // A group that fails the checks is refused (an even "prime"; and p + 2, odd, not a
    // safe prime: the full test runs for a prime that is not Telegram's).
    for flip in [1u8, 2] {
        let mut bad = dh_config();
        if let enums::messages::DhConfig::DhConfig(config) = &mut bad {
            config.p[255] ^= flip;
        }
        assert!(device.handle_dh_config(&bad, &mut rng).is_err());
    }
    device.handle_dh_config(&dh_config(), &mut rng).unwrap();
    assert!(device.request(user, BOB, &mut rng).is_ok());
}

#[test]
fn service_actions_become_their_events() {
    let mut relay = Relay::new();
    let id = relay.open();
    relay.events(1);
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let actions: Vec<e2e::DecryptedMessageAction> = vec![
        crate::tl::secret::types::DecryptedMessageActionDeleteMessages {
            random_ids: vec![1, 2],
        }
        .into(),
        crate::tl::secret::types::DecryptedMessageActionFlushHistory {}.into(),
        crate::tl::secret::types::DecryptedMessageActionSetMessageTTL { ttl_seconds: 30 }.into(),
        crate::tl::secret::types::DecryptedMessageActionReadMessages {
            random_ids: vec![3],
        }
        .into(),
        crate::tl::secret::types::DecryptedMessageActionScreenshotMessages {
            random_ids: vec![4],
        }
        .into(),
    ];
    for (n, action) in actions.into_iter().enumerate() {
        let message = crate::tl::secret::types::DecryptedMessageService {
            random_id: 100 + n as i64,
            action,
        };
        relay.devices[0]
            .send(id, message.into(), NOW, &mut rng)
            .unwrap();
    }
    relay.settle();
    assert_eq!(
        relay.events(1),
        vec![
            Event::Deleted {
                chat_id: id,
                random_ids: vec![1, 2]
            },
            Event::HistoryFlushed { chat_id: id },
            Event::TtlChanged {
                chat_id: id,
                ttl_seconds: 30
            },
            Event::Opened {
                chat_id: id,
                random_ids: vec![3]
            },
            Event::Screenshot {
                chat_id: id,
                random_ids: vec![4]
            },
        ]
    );
}

#[test]
fn messages_past_a_qts_hole_wait_for_it() {
    let mut relay = Relay::new();
    let id = relay.open();
    relay.events(1);
    let mut rng = ChaCha20Rng::seed_from_u64(16);
    relay.devices[0]
        .send_text(id, "first", NOW, &mut rng)
        .unwrap();
    relay.devices[0]
        .send_text(id, "second", NOW, &mut rng)
        .unwrap();
    relay.run_calls(0);
    let second = relay.pushed[1].pop().unwrap();
    let first = relay.pushed[1].pop().unwrap();
    relay.devices[1].handle_update(&second, NOW, &mut rng);
    assert!(texts(&relay.events(1)).is_empty(), "held behind the hole");
    assert!(relay.devices[1].needs_difference());
    let saved = relay.devices[1].save();
    assert!(
        saved.qts < relay.qts[1],
        "a save does not cover what is held past a hole"
    );
    relay.devices[1].handle_update(&first, NOW, &mut rng);
    assert_eq!(texts(&relay.events(1)), ["first", "second"]);
    assert!(!relay.devices[1].needs_difference());
    let saved = relay.devices[1].save();
    relay.devices[1].saved(saved.qts);
    assert_eq!(relay.devices[1].difference_qts(), relay.qts[1]);
}

#[test]
fn messages_before_the_acceptance_wait_for_it() {
    let mut relay = Relay::new();
    let bob: enums::InputUser = types::InputUser {
        user_id: BOB,
        access_hash: 5,
    }
    .into();
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let id = relay.devices[0].request(bob, BOB, &mut rng).unwrap();
    relay.settle();
    relay.events(1);
    relay.devices[1].accept(id, NOW, &mut rng).unwrap();
    relay.devices[1]
        .send_text(id, "right away", NOW, &mut rng)
        .unwrap();
    relay.run_calls(1);
    // Alice sees Bob's messages before his acceptance.
    relay.pushed[0].rotate_left(1);
    relay.settle();
    let events = relay.events(0);
    assert!(
        events
            .iter()
            .any(|event| matches!(event, Event::Ready { .. }))
    );
    assert_eq!(texts(&events), ["right away"]);
}

#[test]
fn self_destruct_timers_start_when_read_on_both_sides() {
    let mut relay = Relay::new();
    let id = relay.open();
    relay.events(0);
    relay.events(1);
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    let message = crate::tl::secret::types::DecryptedMessage {
        no_webpage: false,
        silent: false,
        random_id: 4242,
        ttl: 5,
        message: "gone soon".to_owned(),
        media: None,
        entities: None,
        via_bot_name: None,
        reply_to_random_id: None,
        grouped_id: None,
    };
    relay.devices[0]
        .send(id, message.into(), NOW, &mut rng)
        .unwrap();
    relay.settle();
    assert_eq!(texts(&relay.events(1)), ["gone soon"]);
    assert_eq!(relay.devices[1].poll_timeout(), None, "not read yet");
    assert_eq!(relay.devices[0].poll_timeout(), None);
    relay.devices[1]
        .open_messages(id, &[4242, 999], NOW, &mut rng)
        .unwrap();
    assert_eq!(relay.devices[1].poll_timeout(), Some(NOW + 5));
    relay.settle();
    // The reading reached Alice: her copy's timer runs too.
    assert_eq!(relay.devices[0].poll_timeout(), Some(NOW + 5));
    relay.devices[1].handle_timeout(NOW + 4);
    assert!(relay.events(1).is_empty());
    for index in 0..2 {
        relay.devices[index].handle_timeout(NOW + 5);
        assert!(
            relay.events(index).contains(&Event::Expired {
                chat_id: id,
                random_id: 4242
            }),
            "device {index}"
        );
    }
    // Saved and loaded, a running timer still runs.
    relay.devices[0]
        .send(
            id,
            crate::tl::secret::types::DecryptedMessage {
                no_webpage: false,
                silent: false,
                random_id: 4343,
                ttl: 9,
                message: "later".to_owned(),
                media: None,
                entities: None,
                via_bot_name: None,
                reply_to_random_id: None,
                grouped_id: None,
            }
            .into(),
            NOW,
            &mut rng,
        )
        .unwrap();
    relay.settle();
    relay.devices[1]
        .open_messages(id, &[4343], NOW, &mut rng)
        .unwrap();
    let saved = relay.devices[1].save();
    let loaded = SecretChats::load(&saved.bytes).unwrap();
    assert_eq!(loaded.poll_timeout(), Some(NOW + 9));
}
