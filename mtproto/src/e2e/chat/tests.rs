//! Tests of [`SecretChat`]: two chats on one key, talking through a relay.

use super::*;
use crate::crypto::DhGroup;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn key() -> ChatKey {
    ChatKey::from_bytes(core::array::from_fn(|i| {
        (i as u8).wrapping_mul(13).wrapping_add(1)
    }))
}

fn pair() -> (SecretChat, SecretChat) {
    (
        SecretChat::new(
            Side::Creator,
            key(),
            DhGroup::telegram(),
            ChatLimits::default(),
        ),
        SecretChat::new(
            Side::Participant,
            key(),
            DhGroup::telegram(),
            ChatLimits::default(),
        ),
    )
}

fn text_of(message: &enums::DecryptedMessage) -> Option<&str> {
    match message {
        enums::DecryptedMessage::DecryptedMessage(m) => Some(&m.message),
        _ => None,
    }
}

fn texts(received: &Received) -> Vec<&str> {
    received.messages.iter().filter_map(text_of).collect()
}

#[test]
fn layers_are_announced_and_texts_arrive() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (mut creator, mut participant) = pair();
    let notify = participant.notify_layer(&mut rng).unwrap();
    assert!(notify.service);
    let received = creator.receive(&notify.data, &mut rng).unwrap().unwrap();
    assert!(received.messages.is_empty());
    assert_eq!(creator.peer_layer(), SECRET_LAYER);
    let hello = creator.send_text("hello", &mut rng).unwrap();
    assert!(!hello.service);
    let received = participant.receive(&hello.data, &mut rng).unwrap().unwrap();
    assert_eq!(texts(&received), ["hello"]);
    assert_eq!(random_id_of(&received.messages[0]), hello.random_id);
}

#[test]
fn a_reflected_message_is_dropped() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let (mut creator, _) = pair();
    let mine = creator.send_text("mine", &mut rng).unwrap();
    assert!(matches!(
        creator.receive(&mine.data, &mut rng),
        Ok(Err(Dropped::Undecryptable(E2eError::Undecryptable)))
    ));
}

#[test]
fn a_hole_is_asked_for_and_filled_from_the_outbox() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (mut creator, mut participant) = pair();
    let first = creator.send_text("one", &mut rng).unwrap();
    let _lost = creator.send_text("two", &mut rng).unwrap();
    let third = creator.send_text("three", &mut rng).unwrap();
    assert_eq!(
        texts(&participant.receive(&first.data, &mut rng).unwrap().unwrap()),
        ["one"]
    );
    let held = participant.receive(&third.data, &mut rng).unwrap().unwrap();
    assert!(held.messages.is_empty());
    let [resend] = held.send.as_slice() else {
        panic!("one Resend expected: {held:?}");
    };
    assert!(resend.service);
    // The creator serves the Resend with the stored message, then the hole fills.
    let served = creator.receive(&resend.data, &mut rng).unwrap().unwrap();
    assert_eq!(served.send.len(), 1);
    let filled = participant
        .receive(&served.send[0].data, &mut rng)
        .unwrap()
        .unwrap();
    assert_eq!(texts(&filled), ["two", "three"]);
    // Nothing is open any more.
    assert_eq!(participant.ask_again(&mut rng).unwrap(), None);
}

#[test]
fn the_outbox_keeps_what_is_not_acknowledged() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let limits = ChatLimits {
        max_outbox: 2,
        ..ChatLimits::default()
    };
    let mut creator = SecretChat::new(Side::Creator, key(), DhGroup::telegram(), limits);
    let (_, mut participant) = pair();
    let one = creator.send_text("one", &mut rng).unwrap();
    let two = creator.send_text("two", &mut rng).unwrap();
    // Two unacknowledged: a third waits, and no sequence number is spent on it.
    assert_eq!(
        creator.send_text("three", &mut rng),
        Err(ChatError::OutboxFull(2))
    );
    assert_eq!(creator.seq.counts().sent, 2);
    pass(&mut participant, &one, &mut rng);
    pass(&mut participant, &two, &mut rng);
    // The participant writes: its in_seq_no acknowledges both.
    let reply = participant.send_text("got them", &mut rng).unwrap();
    assert_eq!(texts(&pass(&mut creator, &reply, &mut rng)), ["got them"]);
    let three = creator.send_text("three", &mut rng).unwrap();
    assert_eq!(texts(&pass(&mut participant, &three, &mut rng)), ["three"]);
    // A Resend for an acknowledged (forgotten) message ends the chat.
    let action = types::DecryptedMessageActionResend {
        start_seq_no: 1,
        end_seq_no: 1,
    };
    let resend = participant.send_action(action.into(), &mut rng).unwrap();
    assert_eq!(
        creator.receive(&resend.data, &mut rng).unwrap_err(),
        ChatError::ResendUnavailable { first: 0, last: 0 }
    );
}

#[test]
fn a_peer_may_wrap_at_an_older_layer_than_it_announces() {
    // TDLib announces 144 inside a layer-73 wrapper and keeps wrapping at 73 until it hears
    // from us.
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (mut creator, mut participant) = pair();
    for message in [
        enums::DecryptedMessage::from(types::DecryptedMessageService {
            random_id: 1,
            action: types::DecryptedMessageActionNotifyLayer { layer: 144 }.into(),
        }),
        types::DecryptedMessageService {
            random_id: 2,
            action: types::DecryptedMessageActionFlushHistory {}.into(),
        }
        .into(),
    ] {
        let numbers = participant.seq.next_out().unwrap();
        let payload = layer::wrap(message, 73, numbers.in_seq_no, numbers.out_seq_no, &mut rng);
        let data = cipher::encrypt(&key(), Side::Participant, &payload, &mut rng).unwrap();
        creator.receive(&data, &mut rng).unwrap().unwrap();
    }
    assert_eq!(creator.peer_layer(), 144);
}

#[test]
fn a_layer_going_back_ends_the_chat() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let (mut creator, mut participant) = pair();
    let notify = participant.notify_layer(&mut rng).unwrap();
    creator.receive(&notify.data, &mut rng).unwrap().unwrap();
    // A message wrapped at layer 73 after the participant announced 144.
    let numbers = participant.seq.next_out().unwrap();
    let message = types::DecryptedMessageService {
        random_id: 9,
        action: types::DecryptedMessageActionFlushHistory {}.into(),
    };
    let payload = layer::wrap(
        message.into(),
        73,
        numbers.in_seq_no,
        numbers.out_seq_no,
        &mut rng,
    );
    let data = cipher::encrypt(&key(), Side::Participant, &payload, &mut rng).unwrap();
    assert_eq!(
        creator.receive(&data, &mut rng).unwrap_err(),
        ChatError::LayerWentBack {
            before: 144,
            now: 73
        }
    );
}

/// Delivers `outgoing` to `reader` and returns what it sends back.
fn pass(reader: &mut SecretChat, outgoing: &Outgoing, rng: &mut ChaCha20Rng) -> Received {
    reader.receive(&outgoing.data, rng).unwrap().unwrap()
}

#[test]
fn keys_are_replaced_inside_the_chat() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let (mut creator, mut participant) = pair();
    let initial = creator.key().fingerprint();
    let request = creator.start_rekey(&mut rng).unwrap().unwrap();
    // One exchange at a time.
    assert_eq!(creator.start_rekey(&mut rng).unwrap(), None);
    let accepted = pass(&mut participant, &request, &mut rng);
    let [accept] = accepted.send.as_slice() else {
        panic!("an AcceptKey expected: {accepted:?}");
    };
    // The creator commits under the old key, then switches.
    let committed = pass(&mut creator, accept, &mut rng);
    let [commit] = committed.send.as_slice() else {
        panic!("a CommitKey expected: {committed:?}");
    };
    assert_eq!(cipher::fingerprint_of(&commit.data), Some(initial));
    assert_ne!(creator.key().fingerprint(), initial);
    assert_eq!(creator.key_generation(), 1);
    // The participant switches on the commit and answers under the new key.
    let switched = pass(&mut participant, commit, &mut rng);
    assert_eq!(participant.key().as_bytes(), creator.key().as_bytes());
    let [noop] = switched.send.as_slice() else {
        panic!("a Noop expected: {switched:?}");
    };
    assert_eq!(
        cipher::fingerprint_of(&noop.data),
        Some(creator.key().fingerprint())
    );
    assert!(pass(&mut creator, noop, &mut rng).messages.is_empty());
    // Texts flow under the new key; the old key is gone on both sides.
    let text = creator.send_text("after", &mut rng).unwrap();
    assert_eq!(texts(&pass(&mut participant, &text, &mut rng)), ["after"]);
    assert!(creator.old_key.is_none());
    assert!(participant.old_key.is_none());
}

#[test]
fn a_late_message_under_the_old_key_still_opens() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (mut creator, mut participant) = pair();
    let request = creator.start_rekey(&mut rng).unwrap().unwrap();
    let accepted = pass(&mut participant, &request, &mut rng);
    // The participant writes before the commit reaches it: under the old key.
    let late = participant.send_text("late", &mut rng).unwrap();
    let committed = pass(&mut creator, &accepted.send[0], &mut rng);
    assert_eq!(texts(&pass(&mut creator, &late, &mut rng)), ["late"]);
    let switched = pass(&mut participant, &committed.send[0], &mut rng);
    pass(&mut creator, &switched.send[0], &mut rng);
    assert!(creator.old_key.is_none());
}

#[test]
fn crossing_requests_keep_the_larger_exchange_id() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let (mut creator, mut participant) = pair();
    let from_creator = creator.start_rekey(&mut rng).unwrap().unwrap();
    let from_participant = participant.start_rekey(&mut rng).unwrap().unwrap();
    let at_participant = pass(&mut participant, &from_creator, &mut rng);
    let at_creator = pass(&mut creator, &from_participant, &mut rng);
    // Exactly one side accepts the other's request.
    let mut answers: Vec<(bool, Outgoing)> = at_participant
        .send
        .into_iter()
        .map(|outgoing| (true, outgoing))
        .chain(
            at_creator
                .send
                .into_iter()
                .map(|outgoing| (false, outgoing)),
        )
        .collect();
    assert_eq!(answers.len(), 1);
    // Run the exchange to its end.
    while let Some((to_creator, outgoing)) = answers.pop() {
        let reader = if to_creator {
            &mut creator
        } else {
            &mut participant
        };
        let received = pass(reader, &outgoing, &mut rng);
        answers.extend(received.send.into_iter().map(|next| (!to_creator, next)));
    }
    assert_eq!(creator.key().as_bytes(), participant.key().as_bytes());
    assert_eq!(creator.key_generation(), 1);
    assert_eq!(participant.key_generation(), 1);
}

#[test]
fn rekeying_is_due_after_a_hundred_messages_or_a_week() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let (mut creator, mut participant) = pair();
    assert!(!creator.needs_rekey(0));
    // A week old but nothing encrypted yet: not due.
    assert!(!creator.needs_rekey(REKEY_AFTER_SECS + 1));
    for _ in 0..50 {
        let text = creator.send_text("x", &mut rng).unwrap();
        pass(&mut participant, &text, &mut rng);
        let text = participant.send_text("y", &mut rng).unwrap();
        pass(&mut creator, &text, &mut rng);
    }
    assert!(!creator.needs_rekey(0));
    assert!(creator.needs_rekey(REKEY_AFTER_SECS + 1));
    let text = creator.send_text("x", &mut rng).unwrap();
    pass(&mut participant, &text, &mut rng);
    assert!(creator.needs_rekey(0));
    assert!(participant.needs_rekey(0));
}

#[test]
fn an_unexpected_commit_ends_the_chat() {
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let (mut creator, mut participant) = pair();
    let commit = creator
        .send_action(
            types::DecryptedMessageActionCommitKey {
                exchange_id: 1,
                key_fingerprint: 2,
            }
            .into(),
            &mut rng,
        )
        .unwrap();
    assert_eq!(
        participant.receive(&commit.data, &mut rng).unwrap_err(),
        ChatError::Rekey("a commit for no accepted key")
    );
}

/// What the relay does to one message in flight.
#[derive(Debug, Clone)]
enum Fate {
    Deliver,
    Drop,
    Duplicate,
    Delay(usize),
    /// One bit flipped at this position (modulo the length).
    Alter(usize, u8),
    /// An old message of the same direction delivered again first.
    Replay(usize),
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        8 => Just(Fate::Deliver),
        1 => Just(Fate::Drop),
        1 => Just(Fate::Duplicate),
        1 => (1usize..6).prop_map(Fate::Delay),
        1 => (any::<usize>(), 1u8..).prop_map(|(at, bits)| Fate::Alter(at, bits)),
        1 => any::<usize>().prop_map(Fate::Replay),
    ]
}

/// One direction of the relay: lane `i` carries what chat `i` wrote (0: the creator, 1: the
/// participant) to the other chat.
#[derive(Default)]
struct Lane {
    flight: VecDeque<Vec<u8>>,
    seen: Vec<Vec<u8>>,
}

/// What a quiet side writes: a new `Resend` for an open hole (its timer), else a `Noop`, so
/// that a dropped last message shows.
fn nudge(chat: &mut SecretChat, rng: &mut ChaCha20Rng) -> Vec<u8> {
    let outgoing = match chat.ask_again(rng).unwrap() {
        Some(outgoing) => outgoing,
        None => chat
            .send_action(types::DecryptedMessageActionNoop {}.into(), rng)
            .unwrap(),
    };
    outgoing.data
}

/// Hands `data` from lane `lane` to the other chat, queues what it sends back, and returns
/// the texts it delivered.
fn hand_over(
    chats: &mut [SecretChat; 2],
    lanes: &mut [Lane; 2],
    lane: usize,
    data: &[u8],
    rng: &mut ChaCha20Rng,
) -> Vec<String> {
    let back = 1 - lane;
    match chats[back].receive(data, rng).unwrap() {
        Ok(received) => {
            for outgoing in received.send {
                lanes[back].flight.push_back(outgoing.data);
            }
            received
                .messages
                .iter()
                .filter_map(text_of)
                .map(str::to_owned)
                .collect()
        }
        Err(Dropped::Undecryptable(_)) => Vec::new(),
    }
}

/// Two chats write to each other through a relay that drops, repeats, reorders, replays and
/// alters for a while (its `fates`), then behaves; each side starts a re-keying at the step
/// `rekey_at` gives, if any. Each side must get the other's texts once, in order, and never a
/// text that was not sent; holes are asked for again when traffic stops.
fn converse(
    fates: Vec<Fate>,
    seed: u64,
    rekey_at: [Option<usize>; 2],
) -> Result<(), TestCaseError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (creator, participant) = pair();
    let mut chats = [creator, participant];
    let mut lanes = [Lane::default(), Lane::default()];
    let mut fates = fates.into_iter();
    let total = 25;
    let mut sent = [0usize; 2];
    let mut got: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut steps = 0;
    while (got[0].len() < total || got[1].len() < total) && steps < 20_000 {
        steps += 1;
        for side in [0usize, 1] {
            if rekey_at[side] == Some(steps) {
                if let Some(outgoing) = chats[side].start_rekey(&mut rng).unwrap() {
                    lanes[side].flight.push_back(outgoing.data);
                }
            }
            if sent[side] < total && rng.next_u32() % 2 == 0 {
                let text = format!("{side}:{}", sent[side]);
                let outgoing = chats[side].send_text(&text, &mut rng).unwrap();
                lanes[side].flight.push_back(outgoing.data);
                sent[side] += 1;
            }
        }
        if lanes.iter().all(|lane| lane.flight.is_empty()) {
            for side in [0usize, 1] {
                let data = nudge(&mut chats[side], &mut rng);
                lanes[side].flight.push_back(data);
            }
        }
        for lane in [0usize, 1] {
            let Some(mut data) = lanes[lane].flight.pop_front() else {
                continue;
            };
            lanes[lane].seen.push(data.clone());
            match fates.next().unwrap_or(Fate::Deliver) {
                Fate::Deliver => {}
                Fate::Drop => continue,
                Fate::Duplicate => lanes[lane].flight.push_back(data.clone()),
                Fate::Delay(by) => {
                    let at = by.min(lanes[lane].flight.len());
                    lanes[lane].flight.insert(at, data);
                    continue;
                }
                Fate::Alter(at, bits) => {
                    let at = at % data.len();
                    data[at] ^= bits;
                }
                Fate::Replay(which) => {
                    let old = lanes[lane].seen[which % lanes[lane].seen.len()].clone();
                    lanes[lane].flight.push_front(data);
                    data = old;
                }
            }
            let texts = hand_over(&mut chats, &mut lanes, lane, &data, &mut rng);
            got[lane].extend(texts);
        }
    }
    let expected = |side: usize| {
        (0..total)
            .map(|n| format!("{side}:{n}"))
            .collect::<Vec<_>>()
    };
    prop_assert_eq!(&got[0], &expected(0));
    prop_assert_eq!(&got[1], &expected(1));
    // The relay now passes what is left; any exchange started must end with one key.
    let settled =
        |chat: &SecretChat| matches!(chat.rekey, Rekey::Idle) && chat.seq.open_hole().is_none();
    for _ in 0..1000 {
        if lanes.iter().all(|lane| lane.flight.is_empty()) {
            if chats.iter().all(settled) {
                break;
            }
            for side in [0usize, 1] {
                let data = nudge(&mut chats[side], &mut rng);
                lanes[side].flight.push_back(data);
            }
        }
        for lane in [0usize, 1] {
            if let Some(data) = lanes[lane].flight.pop_front() {
                hand_over(&mut chats, &mut lanes, lane, &data, &mut rng);
            }
        }
    }
    prop_assert_eq!(chats[0].key().as_bytes(), chats[1].key().as_bytes());
    let rekeyed = rekey_at.iter().any(|at| at.is_some_and(|at| at <= steps));
    prop_assert_eq!(chats[0].key_generation() >= 1, rekeyed);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn a_hostile_relay_cannot_lose_repeat_reorder_or_forge(
        fates in proptest::collection::vec(fate(), 0..150),
        seed in any::<u64>(),
    ) {
        converse(fates, seed, [None, None])?;
    }
}

proptest! {
    // Each case runs one or two key exchanges (slow big-number arithmetic in debug builds).
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// The same across a re-keying by either side or both at once.
    #[test]
    fn a_hostile_relay_cannot_break_a_rekeying(
        fates in proptest::collection::vec(fate(), 0..150),
        seed in any::<u64>(),
        creator_at in proptest::option::of(1usize..40),
        participant_at in proptest::option::of(1usize..40),
    ) {
        converse(fates, seed, [creator_at, participant_at])?;
    }
}

#[test]
fn a_saved_chat_goes_on_as_the_one_it_was_saved_from() {
    let mut rng = ChaCha20Rng::seed_from_u64(40);
    let (mut creator, mut participant) = pair();
    // A held message (behind a lost one), kept ciphertexts, and an exchange in progress.
    let one = creator.send_text("one", &mut rng).unwrap();
    let lost = creator.send_text("two", &mut rng).unwrap();
    let three = creator.send_text("three", &mut rng).unwrap();
    participant.receive(&one.data, &mut rng).unwrap().unwrap();
    let asked = participant.receive(&three.data, &mut rng).unwrap().unwrap();
    assert_eq!(asked.send.len(), 1, "a Resend for the hole");
    let request = participant.start_rekey(&mut rng).unwrap().unwrap();
    let saved = participant.save();
    let mut loaded = SecretChat::load(&saved).unwrap();
    assert_eq!(loaded.save(), saved, "saving again gives the same bytes");
    // The original and the loaded chat answer the same input in the same way.
    let mut rng_a = ChaCha20Rng::seed_from_u64(41);
    let mut rng_b = ChaCha20Rng::seed_from_u64(41);
    let a = participant
        .receive(&lost.data, &mut rng_a)
        .unwrap()
        .unwrap();
    let b = loaded.receive(&lost.data, &mut rng_b).unwrap().unwrap();
    assert_eq!(
        texts(&a),
        ["two", "three"],
        "the hole filled, the held one released"
    );
    assert_eq!(a, b);
    // The exchange the saved chat had started completes on the loaded one (the creator
    // takes the Resend first, and its answer is not needed: the hole was filled).
    creator
        .receive(&asked.send[0].data, &mut rng)
        .unwrap()
        .unwrap();
    let accepted = creator.receive(&request.data, &mut rng).unwrap().unwrap();
    assert!(!accepted.send.is_empty(), "an AcceptKey");
    for outgoing in accepted.send {
        let mut rng_c = ChaCha20Rng::seed_from_u64(42);
        let mut rng_d = ChaCha20Rng::seed_from_u64(42);
        let a = participant
            .receive(&outgoing.data, &mut rng_c)
            .unwrap()
            .unwrap();
        let b = loaded.receive(&outgoing.data, &mut rng_d).unwrap().unwrap();
        assert_eq!(a, b);
        for commit in b.send {
            creator.receive(&commit.data, &mut rng).unwrap().unwrap();
        }
    }
    assert_eq!(loaded.key_generation(), 1);
    assert_eq!(loaded.key().as_bytes(), creator.key().as_bytes());
    let after = loaded.send_text("after", &mut rng).unwrap();
    assert_eq!(
        texts(&creator.receive(&after.data, &mut rng).unwrap().unwrap()),
        ["after"]
    );
}

#[test]
fn saved_state_is_read_without_trusting_it() {
    let mut rng = ChaCha20Rng::seed_from_u64(43);
    let (mut creator, mut participant) = pair();
    let one = creator.send_text("one", &mut rng).unwrap();
    let _lost = creator.send_text("two", &mut rng).unwrap();
    let three = creator.send_text("three", &mut rng).unwrap();
    participant.receive(&one.data, &mut rng).unwrap().unwrap();
    participant.receive(&three.data, &mut rng).unwrap().unwrap();
    let saved = participant.save();
    for len in 0..saved.len() {
        assert!(SecretChat::load(&saved[..len]).is_err(), "cut at {len}");
    }
    let mut longer = saved.clone();
    longer.push(0);
    assert_eq!(
        SecretChat::load(&longer).err(),
        Some(LoadError("trailing bytes"))
    );
    let mut other_version = saved;
    other_version[0] = 9;
    assert_eq!(
        SecretChat::load(&other_version).err(),
        Some(LoadError("version"))
    );
}

proptest! {
    /// Any bytes: an error or a chat, never a panic (the `e2e_saved_chat` fuzz target runs
    /// the same).
    #[test]
    fn any_bytes_load_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = SecretChat::load(&bytes);
    }
}
