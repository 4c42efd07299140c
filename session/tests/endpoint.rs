//! The endpoint against a real key store, driven the way a runtime drives it: frames sealed
//! and opened with the key, several sessions per key, sessions moving between connections.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use columba_mtproto::crypto::{AuthKey, Direction};
use columba_mtproto::message::{Padding, open, seal};
use columba_mtproto::time::Now;
use columba_mtproto::tl::Serializable;
use columba_mtproto::tl::mtproto::functions;
use columba_session::SaltSource;
use columba_session::{
    ClientEvent, ClientSession, ConnectionId, Endpoint, EndpointConfig, EndpointEvent, KeyLookup,
    SessionConfig, SessionKey, load_key,
};
use columba_store::{AuthKeyRecord, AuthKeyStore, KeyLifetime, MemoryAuthKeyStore};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

struct World {
    endpoint: Endpoint,
    store: Arc<MemoryAuthKeyStore>,
    key: AuthKey,
    rng: ChaCha20Rng,
    now: Now,
}

fn world() -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let mut bytes = [0u8; 256];
    rng.fill_bytes(&mut bytes);
    let key = AuthKey::from_bytes(bytes);
    let store = Arc::new(MemoryAuthKeyStore::new());
    store
        .insert(AuthKeyRecord {
            auth_key_id: key.id(),
            key: bytes,
            lifetime: KeyLifetime::Permanent,
            created_at: 0,
            dc: Some(1),
            user_id: None,
        })
        .unwrap();
    store.set_user(key.id(), Some(777)).unwrap();
    let salts = Arc::new(SaltSource::generate(&mut rng));
    let endpoint = Endpoint::new(salts, EndpointConfig::default());
    World {
        endpoint,
        store,
        key,
        rng,
        now: Now {
            monotonic: Instant::now(),
            unix: Duration::from_secs(1_800_000_000),
        },
    }
}

impl World {
    /// The key of a frame, the way a driver gets it: from the endpoint's cache, or read from
    /// the store and handed over (again if a change voided the load). `None`: -404.
    fn key(&mut self, id: i64) -> Option<Arc<AuthKey>> {
        let mut lookup = self.endpoint.lookup_key(id, self.now);
        loop {
            match lookup {
                KeyLookup::Ready(key) => return Some(key),
                KeyLookup::Refused => return None,
                KeyLookup::Missing { generation } => {
                    let entry = load_key(&*self.store, id, self.now.unix_secs()).unwrap()?;
                    lookup = self.endpoint.insert_key(id, entry, generation, self.now);
                }
            }
        }
    }

    fn client(&mut self) -> ClientSession {
        let salt = self
            .endpoint
            .salts()
            .current(self.key.id(), self.now.unix_secs())
            .salt;
        let mut config = SessionConfig::default();
        config.future_salts = 0;
        ClientSession::new(self.rng.next_u64() as i64, salt, Some(0), Arc::new(config))
    }

    /// Client to server over `connection`; returns the endpoint's events (requests are
    /// answered by echoing them).
    fn up(&mut self, client: &mut ClientSession, connection: ConnectionId) -> Vec<EndpointEvent> {
        let mut buf = BytesMut::new();
        while let Some(header) = client.poll_transmit(self.now, &mut buf) {
            seal(
                &mut buf,
                &self.key,
                Direction::ClientToServer,
                &header,
                Padding::Minimal,
                &mut self.rng,
            )
            .unwrap();
            let mut frame = buf.to_vec();
            let key_id = i64::from_le_bytes(frame[..8].try_into().unwrap());
            let key = self.key(key_id).unwrap();
            let opened = open(&mut frame, &key, Direction::ClientToServer).unwrap();
            self.endpoint.handle_message(
                connection,
                key_id,
                &opened.header,
                opened.body,
                self.now,
                &mut self.rng,
            );
        }
        let mut events = Vec::new();
        while let Some(event) = self.endpoint.poll_event() {
            match &event {
                EndpointEvent::Request {
                    context,
                    msg_id,
                    body,
                } => {
                    self.endpoint
                        .answer(context.session, *msg_id, Ok(body.clone()), self.now);
                }
                EndpointEvent::DestroyKey { session } => {
                    let destroyed = self.store.remove(session.auth_key_id).unwrap();
                    self.endpoint.key_destroyed(*session, destroyed);
                }
                _ => {}
            }
            events.push(event);
        }
        events
    }

    /// Server to client: what the endpoint has for `connection`, delivered to `client`
    /// (`None` loses it). Returns the number of frames.
    fn down(&mut self, client: Option<&mut ClientSession>, connection: ConnectionId) -> usize {
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        while let Some((key, header)) = self.endpoint.poll_transmit(connection, self.now, &mut buf)
        {
            seal(
                &mut buf,
                &key,
                Direction::ServerToClient,
                &header,
                Padding::Minimal,
                &mut self.rng,
            )
            .unwrap();
            frames.push(buf.to_vec());
        }
        let count = frames.len();
        if let Some(client) = client {
            for mut frame in frames {
                let opened = open(&mut frame, &self.key, Direction::ServerToClient).unwrap();
                client.handle_message(&opened.header, opened.body, self.now);
            }
        }
        count
    }
}

fn responses(client: &mut ClientSession) -> Vec<Bytes> {
    std::iter::from_fn(|| client.poll_event())
        .filter_map(|event| match event {
            ClientEvent::Response { outcome, .. } => outcome.ok(),
            _ => None,
        })
        .collect()
}

fn query(n: u8) -> Bytes {
    Bytes::from(vec![0x78, 0x56, 0x34, 0x12, n, 0, 0, 0])
}

#[test]
fn unknown_and_expired_keys_are_404() {
    let mut w = world();
    assert!(w.key(12345).is_none());
    let mut temp = AuthKeyRecord {
        auth_key_id: 999,
        key: [1; 256],
        lifetime: KeyLifetime::Temporary {
            expires_at: w.now.unix_secs() + 10,
        },
        created_at: 0,
        dc: None,
        user_id: None,
    };
    temp.auth_key_id = AuthKey::from_bytes(temp.key).id();
    w.store.insert(temp.clone()).unwrap();
    assert!(w.key(temp.auth_key_id).is_some(), "unbound but valid");
    w.now.unix += Duration::from_secs(11);
    assert!(matches!(
        w.endpoint.lookup_key(temp.auth_key_id, w.now),
        KeyLookup::Refused
    ));
    assert!(w.key(temp.auth_key_id).is_none(), "and not loaded again");
}

#[test]
fn two_sessions_of_one_key_are_kept_apart() {
    let mut w = world();
    let mut a = w.client();
    let mut b = w.client();
    a.invoke(query(1)).unwrap();
    b.invoke(query(2)).unwrap();
    let events_a = w.up(&mut a, ConnectionId(1));
    let events_b = w.up(&mut b, ConnectionId(1));
    let context = |events: &[EndpointEvent]| match &events[0] {
        EndpointEvent::Request { context, .. } => *context,
        other => panic!("{other:?}"),
    };
    let (ca, cb) = (context(&events_a), context(&events_b));
    assert_ne!(ca.session, cb.session);
    assert_eq!(ca.user_id, Some(777));
    assert_eq!(ca.perm_auth_key_id, Some(w.key.id()));
    assert_eq!(w.endpoint.session_count(), 2);
    // Both sessions answer over the one connection; each client takes only its own.
    w.down(Some(&mut a), ConnectionId(1));
    assert_eq!(responses(&mut a), vec![query(1)]);
    assert_eq!(a.stats().unrelated, 1, "b's answer is not a's");
}

#[test]
fn a_session_outlives_its_connection() {
    let mut w = world();
    let mut client = w.client();
    client.invoke(query(1)).unwrap();
    w.up(&mut client, ConnectionId(1));
    // The answer is lost with the connection.
    assert!(w.down(None, ConnectionId(1)) > 0);
    w.endpoint.connection_closed(ConnectionId(1));
    // The client comes back on a new connection, in the same session.
    client.handle_new_connection();
    w.up(&mut client, ConnectionId(2));
    w.down(Some(&mut client), ConnectionId(2));
    w.up(&mut client, ConnectionId(2));
    w.down(Some(&mut client), ConnectionId(2));
    assert_eq!(responses(&mut client), vec![query(1)]);
    assert_eq!(w.endpoint.session_count(), 1);
}

#[test]
fn destroy_session_forgets_another_session() {
    let mut w = world();
    let mut a = w.client();
    let mut b = w.client();
    b.invoke(query(1)).unwrap();
    w.up(&mut b, ConnectionId(2));
    assert_eq!(w.endpoint.session_count(), 1);
    let request = functions::DestroySession {
        session_id: b.session_id(),
    };
    a.invoke(Bytes::from(request.to_bytes())).unwrap();
    w.up(&mut a, ConnectionId(1));
    w.down(Some(&mut a), ConnectionId(1));
    let answers: Vec<ClientEvent> = std::iter::from_fn(|| a.poll_event()).collect();
    assert!(
        answers.iter().any(
            |event| matches!(event, ClientEvent::Response { outcome: Ok(bytes), .. }
        if bytes[..4] == 0xe220_45fcu32.to_le_bytes())
        ),
        "destroy_session_ok: {answers:?}"
    );
    assert!(
        w.endpoint
            .session(SessionKey {
                auth_key_id: w.key.id(),
                session_id: b.session_id()
            })
            .is_none()
    );
}

#[test]
fn updates_reach_live_sessions_of_the_user_only() {
    let mut w = world();
    let mut a = w.client();
    a.invoke(query(1)).unwrap();
    w.up(&mut a, ConnectionId(1));
    w.down(Some(&mut a), ConnectionId(1));
    let update = query(9);
    assert_eq!(w.endpoint.push_update(777, &update), 1);
    assert_eq!(w.endpoint.push_update(778, &update), 0, "another user");
    w.down(Some(&mut a), ConnectionId(1));
    let got: Vec<ClientEvent> = std::iter::from_fn(|| a.poll_event()).collect();
    assert!(got.contains(&ClientEvent::Update {
        body: update.clone()
    }));
    w.endpoint.connection_closed(ConnectionId(1));
    assert_eq!(
        w.endpoint.push_update(777, &update),
        0,
        "no live connection"
    );
}

#[test]
fn destroy_auth_key_answers_then_forgets_the_key() {
    let mut w = world();
    let mut a = w.client();
    a.invoke(Bytes::from(functions::DestroyAuthKey {}.to_bytes()))
        .unwrap();
    let events = w.up(&mut a, ConnectionId(1));
    let session = events
        .iter()
        .find_map(|event| match event {
            EndpointEvent::DestroyKey { session } => Some(*session),
            _ => None,
        })
        .unwrap();
    assert_eq!(session.auth_key_id, w.key.id());
    assert!(
        w.down(Some(&mut a), ConnectionId(1)) > 0,
        "the answer still goes out"
    );
    assert!(w.store.get(w.key.id()).unwrap().is_none());
    let id = w.key.id();
    assert!(w.key(id).is_none());
}

#[test]
fn a_session_without_connection_does_not_keep_a_timer_in_the_past() {
    let mut w = world();
    let mut client = w.client();
    client
        .invoke(Bytes::from(functions::Ping { ping_id: 1 }.to_bytes()))
        .unwrap();
    w.up(&mut client, ConnectionId(1));
    // The ping's ack is pending; the connection goes before it is sent.
    w.endpoint.connection_closed(ConnectionId(1));
    w.now.monotonic += Duration::from_secs(120);
    w.endpoint.handle_timeout(w.now);
    let next = w.endpoint.poll_timeout().unwrap();
    assert!(next > w.now.monotonic, "the next timer is in the future");
}

#[test]
fn a_destroyed_key_is_refused_at_once() {
    let mut w = world();
    let mut a = w.client();
    let mut b = w.client();
    // b has an answer the client never acknowledges.
    b.invoke(query(1)).unwrap();
    w.up(&mut b, ConnectionId(2));
    w.down(None, ConnectionId(2));
    a.invoke(Bytes::from(functions::DestroyAuthKey {}.to_bytes()))
        .unwrap();
    w.up(&mut a, ConnectionId(1));
    assert!(matches!(
        w.endpoint.lookup_key(w.key.id(), w.now),
        KeyLookup::Refused
    ));
    assert!(
        w.down(Some(&mut a), ConnectionId(1)) > 0,
        "the last answer is still sealed"
    );
}

#[test]
fn answers_go_out_after_a_sign_in_changed_the_key() {
    let mut w = world();
    let mut client = w.client();
    client.invoke(query(1)).unwrap();
    w.up(&mut client, ConnectionId(1));
    // A sign-in changed the key between the answer and the flush.
    w.store.set_user(w.key.id(), Some(778)).unwrap();
    w.endpoint.set_user(w.key.id(), Some(778));
    assert!(w.down(Some(&mut client), ConnectionId(1)) > 0);
    assert_eq!(responses(&mut client), vec![query(1)]);
}

#[test]
fn a_new_key_s_first_salt_is_accepted_without_a_round_trip() {
    for noted in [true, false] {
        let mut w = world();
        let handshake_salt = 0x0123_4567_89ab_cdef;
        if noted {
            w.endpoint
                .note_first_salt(w.key.id(), handshake_salt, w.now);
        }
        let mut config = SessionConfig::default();
        config.future_salts = 0;
        let mut client = ClientSession::new(7, handshake_salt, Some(0), Arc::new(config));
        client.invoke(query(1)).unwrap();
        w.up(&mut client, ConnectionId(1));
        let session = SessionKey {
            auth_key_id: w.key.id(),
            session_id: 7,
        };
        let bad_salts = w
            .endpoint
            .session(session)
            .unwrap()
            .stats()
            .bad_msg_count(48);
        assert_eq!(bad_salts, u64::from(!noted), "noted: {noted}");
    }
}

/// A server that restarted remembers no session: a message captured before the restart is
/// refused with 16 in the new session (so it cannot run twice), and the client, corrected by
/// the notification, sends its request again and gets its answer.
#[test]
fn messages_from_before_a_restart_cannot_run_again() {
    let mut w = world();
    let mut client = w.client();
    client.invoke(query(1)).unwrap();
    // The client's frames, as an eavesdropper records them.
    let mut captured = Vec::new();
    let mut buf = BytesMut::new();
    while let Some(header) = client.poll_transmit(w.now, &mut buf) {
        seal(
            &mut buf,
            &w.key,
            Direction::ClientToServer,
            &header,
            Padding::Minimal,
            &mut w.rng,
        )
        .unwrap();
        captured.push(buf.to_vec());
    }
    let feed = |w: &mut World, frames: &[Vec<u8>]| -> usize {
        for frame in frames {
            let mut frame = frame.clone();
            let id = w.key.id();
            let key = w.key(id).unwrap();
            let opened = open(&mut frame, &key, Direction::ClientToServer).unwrap();
            w.endpoint.handle_message(
                ConnectionId(1),
                w.key.id(),
                &opened.header,
                opened.body,
                w.now,
                &mut w.rng,
            );
        }
        std::iter::from_fn(|| w.endpoint.poll_event())
            .filter(|event| matches!(event, EndpointEvent::Request { .. }))
            .count()
    };
    assert_eq!(feed(&mut w, &captured), 1, "run once before the restart");
    // The restart: a new endpoint (no sessions) that started a second after the capture.
    let salts = w.endpoint.salts().clone();
    let mut config = EndpointConfig::default();
    config.refuse_msg_ids_before = Some(w.now.unix + Duration::from_secs(1));
    w.endpoint = Endpoint::new(salts, config);
    w.now.unix += Duration::from_secs(3);
    w.now.monotonic += Duration::from_secs(3);
    assert_eq!(feed(&mut w, &captured), 0, "the replay runs nothing");
    // The honest client hears 16, corrects itself and sends again.
    w.down(Some(&mut client), ConnectionId(1));
    let events = w.up(&mut client, ConnectionId(1));
    assert!(
        events
            .iter()
            .any(|event| matches!(event, EndpointEvent::Request { .. })),
        "{events:?}"
    );
    w.down(Some(&mut client), ConnectionId(1));
    assert_eq!(responses(&mut client), vec![query(1)]);
}

#[test]
fn a_sign_in_reaches_a_quiet_session_so_updates_find_it() {
    let mut w = world();
    let mut a = w.client();
    a.invoke(query(1)).unwrap();
    w.up(&mut a, ConnectionId(1));
    w.down(Some(&mut a), ConnectionId(1));
    // The key signs in as another user; the client stays quiet.
    w.store.set_user(w.key.id(), Some(778)).unwrap();
    w.endpoint.set_user(w.key.id(), Some(778));
    let update = query(9);
    assert_eq!(w.endpoint.push_update(778, &update), 1);
    assert_eq!(w.endpoint.push_update(777, &update), 0, "the user it had");
    // And a sign-out takes it away.
    w.endpoint.set_user(w.key.id(), None);
    assert_eq!(w.endpoint.push_update(778, &update), 0);
}

/// A load that read the store before a sign-in and reaches the endpoint after it must not
/// cache the old user: the endpoint asks for a new load.
#[test]
fn a_load_that_raced_a_change_is_refused_and_done_again() {
    let mut w = world();
    let id = w.key.id();
    let KeyLookup::Missing { generation } = w.endpoint.lookup_key(id, w.now) else {
        panic!("not cached yet");
    };
    let stale = load_key(&*w.store, id, w.now.unix_secs()).unwrap().unwrap();
    assert_eq!(stale.user_id, Some(777));
    // Meanwhile the key signs in as another user on another connection.
    w.store.set_user(id, Some(778)).unwrap();
    w.endpoint.set_user(id, Some(778));
    let KeyLookup::Missing { generation: again } =
        w.endpoint.insert_key(id, stale, generation, w.now)
    else {
        panic!("a stale load was cached");
    };
    assert_ne!(again, generation);
    let fresh = load_key(&*w.store, id, w.now.unix_secs()).unwrap().unwrap();
    assert!(matches!(
        w.endpoint.insert_key(id, fresh, again, w.now),
        KeyLookup::Ready(_)
    ));
    let mut a = w.client();
    a.invoke(query(1)).unwrap();
    w.up(&mut a, ConnectionId(1));
    let update = query(9);
    assert_eq!(w.endpoint.push_update(778, &update), 1);
    assert_eq!(w.endpoint.push_update(777, &update), 0);
}

#[test]
fn a_forgotten_key_loses_its_sessions_and_gets_404() {
    let mut w = world();
    let mut a = w.client();
    a.invoke(query(1)).unwrap();
    w.up(&mut a, ConnectionId(1));
    assert_eq!(w.endpoint.session_count(), 1);
    w.store.remove(w.key.id()).unwrap();
    w.endpoint.forget_key(w.key.id());
    assert_eq!(w.endpoint.session_count(), 0);
    assert_eq!(w.endpoint.push_update(777, &query(9)), 0);
    let id = w.key.id();
    assert!(w.key(id).is_none());
}

#[test]
fn a_destroyed_key_s_answer_survives_another_connection_s_poll() {
    let mut w = world();
    let mut a = w.client();
    let mut b = w.client();
    b.invoke(query(1)).unwrap();
    w.up(&mut b, ConnectionId(2));
    w.down(Some(&mut b), ConnectionId(2));
    a.invoke(Bytes::from(functions::DestroyAuthKey {}.to_bytes()))
        .unwrap();
    w.up(&mut a, ConnectionId(1));
    // Another connection of the key polls before connection 1 sends the answer: the key's
    // sessions (and the answer queued in one) must not be forgotten yet.
    w.down(None, ConnectionId(2));
    assert!(
        w.down(Some(&mut a), ConnectionId(1)) > 0,
        "the answer to destroy_auth_key still goes out"
    );
}

#[test]
fn the_timers_forget_idle_sessions_when_they_are_due_and_not_before() {
    let mut w = world();
    let idle = EndpointConfig::default().session_idle_timeout;
    let mut clients: Vec<ClientSession> = (0..20).map(|_| w.client()).collect();
    for (index, client) in clients.iter_mut().enumerate() {
        client.invoke(query(1)).unwrap();
        let connection = ConnectionId(index as u64);
        w.up(client, connection);
        w.down(Some(client), connection);
    }
    assert_eq!(w.endpoint.session_count(), 20);
    // Half lose their connections at once; the rest stay connected.
    let closed_at = w.now.monotonic;
    for index in 0..10 {
        w.endpoint.connection_closed(ConnectionId(index));
    }
    let next = w.endpoint.poll_timeout().unwrap();
    assert!(
        next <= closed_at + idle,
        "the earliest deadline is no later than the first idle session's"
    );
    // Timers run often in between (they are due for the connected sessions' acks).
    for _ in 0..10 {
        w.now.monotonic += idle / 20;
        w.endpoint.handle_timeout(w.now);
        for index in 10..20 {
            let connection = ConnectionId(index);
            w.down(Some(&mut clients[index as usize]), connection);
        }
    }
    w.now.monotonic = closed_at + idle - Duration::from_secs(1);
    w.endpoint.handle_timeout(w.now);
    assert_eq!(w.endpoint.session_count(), 20, "not idle long enough yet");
    w.now.monotonic = closed_at + idle;
    w.endpoint.handle_timeout(w.now);
    assert_eq!(w.endpoint.session_count(), 10, "the detached ones are gone");
    // A connected session is asked again and answers: the survivors are the live ones.
    clients[15].invoke(query(2)).unwrap();
    w.up(&mut clients[15], ConnectionId(15));
    assert!(w.down(Some(&mut clients[15]), ConnectionId(15)) > 0);
    assert_eq!(responses(&mut clients[15]).last().unwrap(), &query(2));
}

#[test]
fn updates_go_to_the_most_recent_session_of_a_key_that_takes_them() {
    let mut w = world();
    let mut files = w.client();
    let mut main = w.client();
    files.invoke(query(1)).unwrap();
    let events = w.up(&mut files, ConnectionId(1));
    let files_session = events
        .iter()
        .find_map(|event| match event {
            EndpointEvent::Request { context, .. } => Some(context.session),
            _ => None,
        })
        .unwrap();
    w.down(Some(&mut files), ConnectionId(1));
    w.now.monotonic += Duration::from_millis(10);
    main.invoke(query(2)).unwrap();
    w.up(&mut main, ConnectionId(2));
    w.down(Some(&mut main), ConnectionId(2));

    assert_eq!(
        w.endpoint.push_update(777, &query(8)),
        1,
        "one session of the key takes an update: the most recent"
    );
    // The older session speaks: it is the most recent now.
    w.now.monotonic += Duration::from_millis(10);
    files.invoke(query(3)).unwrap();
    w.up(&mut files, ConnectionId(1));
    w.down(Some(&mut files), ConnectionId(1));
    assert_eq!(w.endpoint.push_update(777, &query(10)), 1);
    assert!(w.endpoint.set_receives_updates(files_session, false));
    assert_eq!(w.endpoint.push_update(777, &query(9)), 1);
    w.down(Some(&mut files), ConnectionId(1));
    w.down(Some(&mut main), ConnectionId(2));
    let updates = |client: &mut ClientSession| -> Vec<Bytes> {
        std::iter::from_fn(|| client.poll_event())
            .filter_map(|event| match event {
                ClientEvent::Update { body } => Some(body),
                _ => None,
            })
            .collect()
    };
    assert_eq!(updates(&mut files), vec![query(10)]);
    assert_eq!(updates(&mut main), vec![query(8), query(9)]);
    let gone = SessionKey {
        auth_key_id: w.key.id(),
        session_id: 12345,
    };
    assert!(
        !w.endpoint.set_receives_updates(gone, false),
        "no such session"
    );
}
