//! The server's router: messages in by auth_key_id and session_id, messages out by
//! connection.
//!
//! Sans-IO, like the sessions it holds, and free of storage: the endpoint never calls a store.
//! The driver (the tokio runtime, the harness, or an application's own loop) reads the
//! auth_key_id of a frame and asks [`Endpoint::lookup_key`]; a key that is not cached is
//! read from the store by the driver, outside whatever lock guards the endpoint
//! ([`load_key`]), and handed over with [`Endpoint::insert_key`]. The driver opens the frame,
//! passes the header and body to [`Endpoint::handle_message`] with the connection it came
//! on, and seals what [`Endpoint::poll_transmit`] gives for that connection. Changes to a key
//! made in the store elsewhere (a sign-in, a binding, a removal) are told to the endpoint
//! after the store has them: [`Endpoint::set_user`], [`Endpoint::bind_key`],
//! [`Endpoint::forget_key`].
//!
//! Loads race with those changes: a load that read the store before a change and reaches the
//! endpoint after it would cache what is no longer true. Every change bumps the endpoint's
//! *generation*; a load carries the generation it started at, and [`Endpoint::insert_key`]
//! refuses it (asking for a new load) when a change came in between.
//!
//! Sessions and connections: one auth key may have several sessions, and a session may use
//! several connections; answers go to the connection the session last heard from. A session
//! outlives its connections: when a connection closes, its sessions keep what the client has
//! not acknowledged, and send it again on the next connection that carries them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use columba_mtproto::crypto::AuthKey;
use columba_mtproto::message::EncryptedHeader;
use columba_mtproto::time::Now;
use columba_mtproto::transport::ERROR_FLOOD;
use columba_store::auth_key::{AuthKeyError, AuthKeyStore, KeyLifetime};

use rand_core::RngCore;

use crate::config::SessionConfig;
use crate::rpc::RpcOutcome;
use crate::salt::SaltSource;
use crate::server::{ServerEvent, ServerSession};

/// The record to store for a key a server handshake just created (no user yet): what a
/// driver of [`columba_mtproto::handshake::ServerHandshake`] inserts into its key store.
pub fn key_record(
    key: &columba_mtproto::handshake::NewAuthKey,
) -> columba_store::auth_key::AuthKeyRecord {
    columba_store::auth_key::AuthKeyRecord {
        auth_key_id: key.auth_key.id(),
        key: *key.auth_key.as_bytes(),
        lifetime: match key.expires_at {
            Some(expires_at) => KeyLifetime::Temporary { expires_at },
            None => KeyLifetime::Permanent,
        },
        created_at: key.created_at,
        dc: key.dc,
        user_id: None,
    }
}

/// A connection, as the driver numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// A session: the auth key it uses and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey {
    /// The key messages of this session are encrypted with.
    pub auth_key_id: i64,
    /// The session id the client chose.
    pub session_id: i64,
}

/// Who a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestContext {
    /// The session (and the key it is encrypted with, possibly temporary).
    pub session: SessionKey,
    /// The permanent key behind it: the key itself, the permanent key a temporary key is
    /// bound to, or `None` for a temporary key not bound yet (which may only bind itself).
    pub perm_auth_key_id: Option<i64>,
    /// The user signed in on the permanent key.
    pub user_id: Option<i64>,
    /// The connection the request came on.
    pub connection: ConnectionId,
}

/// What the application or the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointEvent {
    /// An API query. Answer with [`Endpoint::answer`].
    Request {
        /// Who asks.
        context: RequestContext,
        /// The msg_id the answer refers to.
        msg_id: i64,
        /// The query.
        body: Bytes,
    },
    /// The client dropped a running request (`rpc_drop_answer`).
    Cancelled {
        /// The session.
        session: SessionKey,
        /// The request.
        msg_id: i64,
    },
    /// Close the connection, after sending the transport error if there is one (-429 for a
    /// flood of service messages; none for `ping_delay_disconnect`).
    Close {
        /// The connection.
        connection: ConnectionId,
        /// The transport error to send first.
        error: Option<i32>,
    },
    /// The owner of a key asked to destroy it (`destroy_auth_key`): remove it from the store,
    /// then tell the endpoint with [`Endpoint::key_destroyed`], which answers the client.
    DestroyKey {
        /// The session that asked (its key is the one to destroy).
        session: SessionKey,
    },
}

/// What the endpoint knows about the key of a frame.
///
/// Exhaustive on purpose: a driver must answer each case (use the key, refuse with -404, or
/// load it from the store and hand it over).
#[derive(Debug, Clone)]
pub enum KeyLookup {
    /// Cached: open the frame with it.
    Ready(Arc<AuthKey>),
    /// Not usable: destroyed, or a temporary key past its expiry. The client gets transport
    /// error -404.
    Refused,
    /// Not cached: read it from the store ([`load_key`]) and give it with
    /// [`Endpoint::insert_key`], with this generation.
    Missing {
        /// The endpoint's generation when the key was found missing.
        generation: u64,
    },
}

/// A key as the endpoint caches it: the key and what it is bound to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KeyEntry {
    /// The key.
    pub key: Arc<AuthKey>,
    /// For a temporary key, when it expires (Unix seconds).
    pub expires_at: Option<i64>,
    /// The permanent key behind it: itself, the permanent key a temporary key is bound to,
    /// or `None` for a temporary key not bound yet.
    pub perm_auth_key_id: Option<i64>,
    /// The user signed in on the permanent key.
    pub user_id: Option<i64>,
}

impl KeyEntry {
    /// A permanent key, with the user signed in on it.
    pub fn permanent(key: Arc<AuthKey>, user_id: Option<i64>) -> Self {
        let perm_auth_key_id = Some(key.id());
        Self {
            key,
            expires_at: None,
            perm_auth_key_id,
            user_id,
        }
    }

    /// A temporary key expiring at `expires_at`, bound to `perm_auth_key_id` (with its
    /// user) or not bound yet.
    pub fn temporary(
        key: Arc<AuthKey>,
        expires_at: i64,
        perm_auth_key_id: Option<i64>,
        user_id: Option<i64>,
    ) -> Self {
        Self {
            key,
            expires_at: Some(expires_at),
            perm_auth_key_id,
            user_id,
        }
    }
}

/// Reads what the endpoint needs about a key from `store`, as of `now_secs`: `Ok(None)` for
/// a key the store does not have, a temporary key past its expiry, or one bound to a
/// permanent key that is gone. The driver calls it outside the endpoint's lock (it is
/// blocking I/O for a durable store).
pub fn load_key(
    store: &dyn AuthKeyStore,
    auth_key_id: i64,
    now_secs: i64,
) -> Result<Option<KeyEntry>, AuthKeyError> {
    let Some(record) = store.get(auth_key_id)? else {
        return Ok(None);
    };
    let key = Arc::new(AuthKey::from_bytes(record.key));
    match record.lifetime {
        KeyLifetime::Permanent => Ok(Some(KeyEntry::permanent(key, record.user_id))),
        KeyLifetime::Temporary { expires_at } => {
            if now_secs >= expires_at {
                return Ok(None);
            }
            match store.resolve(auth_key_id, now_secs) {
                Ok(resolved) => Ok(Some(KeyEntry::temporary(
                    key,
                    expires_at,
                    Some(resolved.perm_auth_key_id),
                    resolved.user_id,
                ))),
                Err(AuthKeyError::Unbound(_)) => {
                    Ok(Some(KeyEntry::temporary(key, expires_at, None, None)))
                }
                Err(AuthKeyError::Expired(_) | AuthKeyError::NotFound(_)) => Ok(None),
                Err(other) => Err(other),
            }
        }
    }
}

/// Limits of an [`Endpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointConfig {
    /// The configuration of every session.
    pub session: Arc<SessionConfig>,
    /// Sessions one auth key may have; a new one beyond it evicts the key's least recently
    /// active session (the client then gets `new_session_created` if it comes back).
    pub max_sessions_per_key: usize,
    /// Sessions in all; beyond it the least recently active session is evicted.
    pub max_sessions: usize,
    /// A session with no connection and no activity for this long is forgotten.
    pub session_idle_timeout: Duration,
    /// Keys kept decoded in memory.
    pub max_cached_keys: usize,
    /// The Unix time before which no msg_id is accepted in a new session (code 16, so that the
    /// client corrects its clock and sends again). Sessions live in memory: set this to the
    /// server's start (the runtime does), and a message captured before a restart cannot be
    /// replayed into a session made after it.
    pub refuse_msg_ids_before: Option<Duration>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            session: Arc::new(SessionConfig::default()),
            max_sessions_per_key: 32,
            max_sessions: 100_000,
            session_idle_timeout: Duration::from_secs(3600),
            max_cached_keys: 100_000,
            refuse_msg_ids_before: None,
        }
    }
}

#[derive(Debug, Clone)]
struct CachedKey {
    key: Arc<AuthKey>,
    /// Destroyed by its owner: kept only to seal the last answers, refused for anything new.
    destroyed: bool,
    perm_auth_key_id: Option<i64>,
    user_id: Option<i64>,
    expires_at: Option<i64>,
}

impl From<KeyEntry> for CachedKey {
    fn from(entry: KeyEntry) -> Self {
        Self {
            key: entry.key,
            destroyed: false,
            perm_auth_key_id: entry.perm_auth_key_id,
            user_id: entry.user_id,
            expires_at: entry.expires_at,
        }
    }
}

#[derive(Debug)]
struct Slot {
    session: ServerSession,
    connection: Option<ConnectionId>,
    last_active: Instant,
    /// The deadline this session has in [`Endpoint::timers`], if any: never later than
    /// its true next deadline (an entry that comes due early is looked at and put back).
    scheduled: Option<Instant>,
    /// Whether updates are pushed to it: the application turns it off for a session
    /// that asked for none (`invokeWithoutUpdates`: file transfers on a session of their
    /// own).
    receives_updates: bool,
}

/// The server's sessions, by key and session id.
///
/// Invariant: every key that has sessions is cached (a key with sessions is never evicted,
/// and forgetting a key forgets its sessions), so that a session's answers can always be
/// sealed.
pub struct Endpoint {
    salts: Arc<SaltSource>,
    config: EndpointConfig,
    keys: HashMap<i64, CachedKey>,
    /// Bumped by every change told to the endpoint ([`Self::set_user`], [`Self::bind_key`],
    /// [`Self::forget_key`]): a load that started before it may be stale.
    generation: u64,
    sessions: HashMap<SessionKey, Slot>,
    /// The sessions each connection carries (entries whose session moved away or went are
    /// dropped lazily), so that a connection's work does not scan every session.
    by_connection: HashMap<ConnectionId, Vec<SessionKey>>,
    /// The session ids of each key.
    of_key: HashMap<i64, Vec<i64>>,
    /// The cached keys of each signed-in user, so that an update for one user visits that
    /// user's sessions only.
    of_user: HashMap<i64, Vec<i64>>,
    /// Users who appeared in `of_user` (`true`) or left it (`false`) since the last
    /// [`Self::take_user_changes`]: what keeps the runtime's index of users by shard.
    user_changes: Vec<(i64, bool)>,
    /// The first salt of keys created recently (auth_key_id -> salt, valid until).
    first_salts: HashMap<i64, (i64, i64)>,
    /// Keys destroyed, whose last answer has yet to go out.
    doomed: Vec<i64>,
    /// The sessions' deadlines, earliest first, so that a timer visits the sessions due
    /// and not every session. An entry is current when it equals its slot's `scheduled`;
    /// the others (a session gone, or given an earlier entry) are dropped when they come
    /// up, and the heap is rebuilt when they outnumber the sessions.
    timers: BinaryHeap<Reverse<(Instant, SessionKey)>>,
    events: std::collections::VecDeque<EndpointEvent>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("keys", &self.keys.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint with salts from `salts`.
    pub fn new(salts: Arc<SaltSource>, config: EndpointConfig) -> Self {
        Self {
            salts,
            config,
            keys: HashMap::new(),
            generation: 0,
            sessions: HashMap::new(),
            by_connection: HashMap::new(),
            of_key: HashMap::new(),
            of_user: HashMap::new(),
            user_changes: Vec::new(),
            first_salts: HashMap::new(),
            doomed: Vec::new(),
            timers: BinaryHeap::new(),
            events: std::collections::VecDeque::new(),
        }
    }

    /// The salts the endpoint issues (the handshake's first salt must come from them too).
    pub fn salts(&self) -> &Arc<SaltSource> {
        &self.salts
    }

    /// The endpoint's limits.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Whether the key is in use here: cached, or carrying sessions.
    pub fn has_key(&self, auth_key_id: i64) -> bool {
        self.keys.contains_key(&auth_key_id) || self.of_key.contains_key(&auth_key_id)
    }

    /// Sessions held.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The session `key`, to inspect it.
    pub fn session(&self, key: SessionKey) -> Option<&ServerSession> {
        self.sessions.get(&key).map(|slot| &slot.session)
    }

    /// The key to open a frame with, if it is cached. A destroyed key, or a temporary key
    /// past its expiry, is [`KeyLookup::Refused`] (-404; the expired key's sessions are
    /// forgotten).
    pub fn lookup_key(&mut self, auth_key_id: i64, now: Now) -> KeyLookup {
        let Some(cached) = self.keys.get(&auth_key_id) else {
            return KeyLookup::Missing {
                generation: self.generation,
            };
        };
        if cached.destroyed {
            return KeyLookup::Refused;
        }
        if cached.expires_at.is_none_or(|at| now.unix_secs() < at) {
            return KeyLookup::Ready(cached.key.clone());
        }
        self.drop_key(auth_key_id);
        KeyLookup::Refused
    }

    /// Caches a key the driver read from the store ([`load_key`]) after
    /// [`Self::lookup_key`] found it [`KeyLookup::Missing`] at `generation`. What a frame
    /// may do with it is the answer: [`KeyLookup::Missing`] again (with the new generation)
    /// when a change came since the load started, so that the driver reads the store again;
    /// a key cached meanwhile by another connection is kept and answered.
    pub fn insert_key(
        &mut self,
        auth_key_id: i64,
        entry: KeyEntry,
        generation: u64,
        now: Now,
    ) -> KeyLookup {
        if generation != self.generation {
            return KeyLookup::Missing {
                generation: self.generation,
            };
        }
        if !self.keys.contains_key(&auth_key_id) {
            if self.keys.len() >= self.config.max_cached_keys {
                self.evict_a_key();
            }
            self.cache_key(auth_key_id, entry.into());
        }
        self.lookup_key(auth_key_id, now)
    }

    /// The user signed in on the permanent key `perm_auth_key_id` changed (a sign-in, or
    /// `None` for a sign-out), after the store recorded it: the key and the temporary keys
    /// bound to it carry the new user for requests and updates from now on.
    pub fn set_user(&mut self, perm_auth_key_id: i64, user_id: Option<i64>) {
        self.generation = self.generation.wrapping_add(1);
        let changed: Vec<i64> = self
            .keys
            .iter()
            .filter(|&(&id, cached)| {
                id == perm_auth_key_id || cached.perm_auth_key_id == Some(perm_auth_key_id)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in changed {
            self.rekey_user(id, user_id);
        }
    }

    /// The temporary key `temp_auth_key_id` was bound to `perm_auth_key_id` (whose user is
    /// `user_id`), after the store recorded it.
    pub fn bind_key(&mut self, temp_auth_key_id: i64, perm_auth_key_id: i64, user_id: Option<i64>) {
        self.generation = self.generation.wrapping_add(1);
        if let Some(cached) = self.keys.get_mut(&temp_auth_key_id) {
            cached.perm_auth_key_id = Some(perm_auth_key_id);
        }
        self.rekey_user(temp_auth_key_id, user_id);
    }

    /// The key is gone from the store (removed, or its authorization reset): its sessions
    /// are forgotten and its next frame gets -404. Temporary keys bound to a forgotten
    /// permanent key are forgotten too.
    pub fn forget_key(&mut self, auth_key_id: i64) {
        self.generation = self.generation.wrapping_add(1);
        let bound: Vec<i64> = self
            .keys
            .iter()
            .filter(|(_, cached)| cached.perm_auth_key_id == Some(auth_key_id))
            .map(|(&id, _)| id)
            .collect();
        self.drop_key(auth_key_id);
        for id in bound {
            self.drop_key(id);
        }
    }

    /// Answers a [`EndpointEvent::DestroyKey`]: whether the store removed the key. A
    /// destroyed key refuses every new frame; it stays only to seal its last answers, then
    /// goes with its sessions.
    pub fn key_destroyed(&mut self, session: SessionKey, destroyed: bool) {
        self.generation = self.generation.wrapping_add(1);
        if let Some(slot) = self.sessions.get_mut(&session) {
            slot.session.answer_destroy_auth_key(destroyed);
        }
        if destroyed {
            if let Some(cached) = self.keys.get_mut(&session.auth_key_id) {
                cached.destroyed = true;
            }
            if !self.doomed.contains(&session.auth_key_id) {
                self.doomed.push(session.auth_key_id);
            }
        }
        self.collect(session);
    }

    /// A key exchange just created `auth_key_id` and gave the client `salt`: the key's
    /// sessions accept it for one salt period ([`crate::salt::SALT_PERIOD`]), as they do
    /// their own salts, so that the client's first messages go through at once.
    pub fn note_first_salt(&mut self, auth_key_id: i64, salt: i64, now: Now) {
        let now_secs = now.unix_secs();
        let period = i64::try_from(crate::salt::SALT_PERIOD.as_secs()).unwrap_or(1800);
        // Bounded: expired entries go whenever one is added.
        self.first_salts.retain(|_, (_, until)| *until > now_secs);
        if self.first_salts.len() < self.config.max_cached_keys {
            self.first_salts
                .insert(auth_key_id, (salt, now_secs.saturating_add(period)));
        }
    }

    /// Handles an opened message that came on `connection`, encrypted with `auth_key_id`
    /// (which [`Self::lookup_key`] or [`Self::insert_key`] gave). A message whose key was
    /// forgotten since is dropped.
    pub fn handle_message<R: RngCore + ?Sized>(
        &mut self,
        connection: ConnectionId,
        auth_key_id: i64,
        header: &EncryptedHeader,
        body: &[u8],
        now: Now,
        rng: &mut R,
    ) {
        let key = SessionKey {
            auth_key_id,
            session_id: header.session_id,
        };
        if !self.keys.contains_key(&auth_key_id) {
            return;
        }
        if !self.sessions.contains_key(&key) {
            self.make_room(auth_key_id);
            let unique_id = i64::from_le_bytes(rng.next_u64().to_le_bytes());
            let mut session = ServerSession::new(
                auth_key_id,
                header.session_id,
                unique_id,
                self.config.session.clone(),
                self.salts.clone(),
            );
            if let Some(&(salt, until)) = self.first_salts.get(&auth_key_id) {
                session.accept_first_salt(salt, until);
            }
            if let Some(start) = self.config.refuse_msg_ids_before {
                session.refuse_msg_ids_before(start);
            }
            self.of_key
                .entry(auth_key_id)
                .or_default()
                .push(header.session_id);
            self.sessions.insert(
                key,
                Slot {
                    session,
                    connection: None,
                    last_active: now.monotonic,
                    scheduled: None,
                    receives_updates: true,
                },
            );
        }
        let Some(slot) = self.sessions.get_mut(&key) else {
            return;
        };
        let moved = match slot.connection {
            // Back after its connection closed: re-send what is owed.
            None => {
                slot.session.handle_new_connection();
                true
            }
            Some(current) => current != connection,
        };
        if moved {
            slot.connection = Some(connection);
            let carried = self.by_connection.entry(connection).or_default();
            if !carried.contains(&key) {
                carried.push(key);
            }
        }
        let Some(slot) = self.sessions.get_mut(&key) else {
            return;
        };
        slot.last_active = now.monotonic;
        slot.session.handle_message(header, body, now);
        self.collect(key);
    }

    /// Answers a request from [`EndpointEvent::Request`]; `false` if the session or the
    /// request is gone (evicted, dropped by the client, or answered already).
    pub fn answer(
        &mut self,
        session: SessionKey,
        msg_id: i64,
        outcome: RpcOutcome,
        now: Now,
    ) -> bool {
        let Some(slot) = self.sessions.get_mut(&session) else {
            return false;
        };
        let answered = slot.session.answer(msg_id, outcome, now);
        self.collect(session);
        answered
    }

    /// Sends `body` as an update to every session of `user_id` that has a live connection.
    /// Returns how many sessions got it: zero means the user has no live session (the
    /// runtime then turns to the push provider).
    pub fn push_update(&mut self, user_id: i64, body: &Bytes) -> usize {
        let mut connections = Vec::new();
        self.push_update_to(user_id, body, &mut connections)
    }

    /// [`Self::push_update`], adding to `connections` the connection of each session that
    /// took the update (once each), so that only those are woken. Visits the user's own
    /// sessions only (through an index of the cached keys by user), whatever the number of
    /// other sessions.
    pub fn push_update_to(
        &mut self,
        user_id: i64,
        body: &Bytes,
        connections: &mut Vec<ConnectionId>,
    ) -> usize {
        self.push_to(user_id, None, body, None, connections)
    }

    /// [`Self::push_update_to`] for the sessions of one device only: the permanent key
    /// `perm_auth_key_id` and the temporary keys bound to it (a secret chat's messages
    /// belong to one device, not to every session of its user).
    pub fn push_update_to_device(
        &mut self,
        user_id: i64,
        perm_auth_key_id: i64,
        body: &Bytes,
        connections: &mut Vec<ConnectionId>,
    ) -> usize {
        self.push_to(
            user_id,
            Some((perm_auth_key_id, true)),
            body,
            None,
            connections,
        )
    }

    /// [`Self::push_update_to`] for the sessions of every device of `user_id` but one (the
    /// permanent key `perm_auth_key_id` and the temporary keys bound to it): what the
    /// user's other devices are told when one of them took a secret chat.
    pub fn push_update_to_other_devices(
        &mut self,
        user_id: i64,
        perm_auth_key_id: i64,
        body: &Bytes,
        connections: &mut Vec<ConnectionId>,
    ) -> usize {
        self.push_to(
            user_id,
            Some((perm_auth_key_id, false)),
            body,
            None,
            connections,
        )
    }

    /// [`Self::push_update_to`] for an update of stream `stream` (a channel's posts): each
    /// session takes it through [`crate::ServerSession::push_stream_update`], so that one
    /// that lags gets `too_long` once instead. Counts the sessions that took either.
    pub fn push_stream_update_to(
        &mut self,
        user_id: i64,
        body: &Bytes,
        stream: i64,
        too_long: &Bytes,
        connections: &mut Vec<ConnectionId>,
    ) -> usize {
        self.push_to(user_id, None, body, Some((stream, too_long)), connections)
    }

    fn push_to(
        &mut self,
        user_id: i64,
        device: Option<(i64, bool)>,
        body: &Bytes,
        stream: Option<(i64, &Bytes)>,
        connections: &mut Vec<ConnectionId>,
    ) -> usize {
        let Some(keys) = self.of_user.get(&user_id) else {
            return 0;
        };
        let idle = self.config.session_idle_timeout;
        let mut delivered = 0;
        for &auth_key_id in keys {
            // `device`: one permanent key, and whether to reach only it or all but it.
            if let Some((device, only)) = device {
                let on_device = self
                    .keys
                    .get(&auth_key_id)
                    .and_then(|cached| cached.perm_auth_key_id)
                    == Some(device);
                if on_device != only {
                    continue;
                }
            }
            let Some(session_ids) = self.of_key.get(&auth_key_id) else {
                continue;
            };
            // One session per key takes an update: the most recently active of those
            // connected and taking updates (Telegram: "only one notification will be sent
            // at a time, per key, to the most recent session"). A client with several
            // sessions on one key would otherwise see each update once per session.
            let newest = session_ids
                .iter()
                .filter_map(|&session_id| {
                    let key = SessionKey {
                        auth_key_id,
                        session_id,
                    };
                    let slot = self.sessions.get(&key)?;
                    (slot.connection.is_some() && slot.receives_updates)
                        .then_some((slot.last_active, key))
                })
                .max();
            if let Some((_, key)) = newest {
                let Some(slot) = self.sessions.get_mut(&key) else {
                    continue;
                };
                let Some(connection) = slot.connection else {
                    continue;
                };
                let took = match stream {
                    None => slot.session.push_update(body.clone()),
                    Some((stream, too_long)) => {
                        slot.session
                            .push_stream_update(stream, body.clone(), too_long)
                            != crate::server::StreamPush::Skipped
                    }
                };
                if took {
                    delivered += 1;
                    if !connections.contains(&connection) {
                        connections.push(connection);
                    }
                    Self::schedule(&mut self.timers, idle, key, slot);
                }
            }
        }
        delivered
    }

    /// Whether updates are pushed to `session` (all sessions are, until told otherwise):
    /// off for a session that asked for none with `invokeWithoutUpdates`. `false` if the
    /// session is not here.
    pub fn set_receives_updates(&mut self, session: SessionKey, receives: bool) -> bool {
        let Some(slot) = self.sessions.get_mut(&session) else {
            return false;
        };
        slot.receives_updates = receives;
        true
    }

    /// The connection `session` answers on, if it has one.
    pub fn connection_of(&self, session: SessionKey) -> Option<ConnectionId> {
        self.sessions.get(&session).and_then(|slot| slot.connection)
    }

    /// Writes the next message for `connection` into `buf` (headroom, then body) and returns
    /// the key to seal it with and its header.
    pub fn poll_transmit(
        &mut self,
        connection: ConnectionId,
        now: Now,
        buf: &mut BytesMut,
    ) -> Option<(Arc<AuthKey>, EncryptedHeader)> {
        // Taken out of the index for the scan (not copied) and put back after; the entry
        // stays, so that putting it back is a lookup, not an insertion.
        let Some(mut carried) = self.by_connection.get_mut(&connection).map(std::mem::take) else {
            self.finish_doomed(connection);
            return None;
        };
        let mut stale = false;
        let mut found = None;
        for key in &carried {
            let Some(slot) = self.sessions.get(key) else {
                stale = true;
                continue;
            };
            if slot.connection != Some(connection) {
                stale = true;
                continue;
            }
            if !slot.session.has_output() {
                continue;
            }
            // The key first, so that a message is never numbered and then left unsent (a
            // destroyed key's entry is still used, to seal its last answers). A key with
            // sessions is always cached.
            let Some(auth_key) = self
                .keys
                .get(&key.auth_key_id)
                .map(|cached| cached.key.clone())
            else {
                continue;
            };
            let Some(slot) = self.sessions.get_mut(key) else {
                continue;
            };
            if let Some(header) = slot.session.poll_transmit(now, buf) {
                let idle = self.config.session_idle_timeout;
                Self::schedule(&mut self.timers, idle, *key, slot);
                found = Some((auth_key, header));
                break;
            }
        }
        if stale {
            let sessions = &self.sessions;
            carried.retain(|key| {
                sessions
                    .get(key)
                    .is_some_and(|slot| slot.connection == Some(connection))
            });
        }
        if let Some(entry) = self.by_connection.get_mut(&connection) {
            *entry = carried;
        }
        if found.is_some() {
            return found;
        }
        self.finish_doomed(connection);
        None
    }

    /// The connection is gone: its sessions wait for the next one.
    pub fn connection_closed(&mut self, connection: ConnectionId) {
        let idle = self.config.session_idle_timeout;
        for key in self.by_connection.remove(&connection).unwrap_or_default() {
            if let Some(slot) = self.sessions.get_mut(&key) {
                if slot.connection == Some(connection) {
                    slot.connection = None;
                    // From now on it has an idle deadline.
                    Self::schedule(&mut self.timers, idle, key, slot);
                }
            }
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Runs the timers due: the sessions' own, and forgetting idle sessions. Returns the
    /// connections that may now have something to send. Visits the sessions whose
    /// deadline came, not every session.
    pub fn handle_timeout(&mut self, now: Now) -> Vec<ConnectionId> {
        let idle = self.config.session_idle_timeout;
        // Everything due is taken off first: handling a session puts its next deadline
        // back, which may be due already (acks wait for the connection to send them).
        let mut due = Vec::new();
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now.monotonic {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.sessions.get_mut(&key) else {
                continue;
            };
            if slot.scheduled == Some(at) {
                slot.scheduled = None;
                due.push(key);
            }
        }
        let mut wake = Vec::new();
        for key in due {
            let Some(slot) = self.sessions.get_mut(&key) else {
                continue;
            };
            if slot.connection.is_none() && now.monotonic >= slot.last_active + idle {
                self.remove_session(key);
                continue;
            }
            slot.session.handle_timeout(now);
            wake.extend(slot.connection);
            // Which gives the session its next entry.
            self.collect(key);
        }
        if self.timers.len() > 2 * self.sessions.len() + 1024 {
            self.rebuild_timers();
        }
        wake.sort_unstable();
        wake.dedup();
        wake
    }

    /// The next deadline of a session: its own timers, and with no connection, the time
    /// it is forgotten (acks wait: they cannot go out until a connection comes).
    fn deadline(slot: &Slot, idle: Duration) -> Option<Instant> {
        match slot.connection {
            Some(_) => slot.session.poll_timeout(),
            None => {
                let forgotten = slot.last_active + idle;
                let own = slot.session.poll_timeout_detached();
                Some(own.map_or(forgotten, |own| own.min(forgotten)))
            }
        }
    }

    /// Gives the session an entry in the timers if its next deadline is earlier than the
    /// one it has (a later one waits for the earlier entry to come up and be renewed).
    fn schedule(
        timers: &mut BinaryHeap<Reverse<(Instant, SessionKey)>>,
        idle: Duration,
        key: SessionKey,
        slot: &mut Slot,
    ) {
        let Some(at) = Self::deadline(slot, idle) else {
            return;
        };
        if slot.scheduled.is_none_or(|scheduled| at < scheduled) {
            slot.scheduled = Some(at);
            timers.push(Reverse((at, key)));
        }
    }

    /// The timers again from the sessions' current entries, dropping the stale ones.
    fn rebuild_timers(&mut self) {
        self.timers = self
            .sessions
            .iter()
            .filter_map(|(key, slot)| slot.scheduled.map(|at| Reverse((at, *key))))
            .collect();
    }

    /// Turns a session's events into the endpoint's.
    /// Then renews the session's entry in the timers, as whatever made the events may
    /// have moved its deadline.
    fn collect(&mut self, key: SessionKey) {
        let idle = self.config.session_idle_timeout;
        loop {
            let Some(slot) = self.sessions.get_mut(&key) else {
                return;
            };
            let Some(event) = slot.session.poll_event() else {
                Self::schedule(&mut self.timers, idle, key, slot);
                return;
            };
            let connection = slot.connection;
            match event {
                ServerEvent::Request { msg_id, body } => {
                    let cached = self.keys.get(&key.auth_key_id);
                    let context = RequestContext {
                        session: key,
                        perm_auth_key_id: cached.and_then(|c| c.perm_auth_key_id),
                        user_id: cached.and_then(|c| c.user_id),
                        connection: connection.unwrap_or(ConnectionId(u64::MAX)),
                    };
                    self.events.push_back(EndpointEvent::Request {
                        context,
                        msg_id,
                        body,
                    });
                }
                ServerEvent::Cancelled { msg_id } => {
                    self.events.push_back(EndpointEvent::Cancelled {
                        session: key,
                        msg_id,
                    });
                }
                ServerEvent::DestroySession { session_id, .. } => {
                    let target = SessionKey {
                        auth_key_id: key.auth_key_id,
                        session_id,
                    };
                    let existed = target != key && self.remove_session(target);
                    if let Some(slot) = self.sessions.get_mut(&key) {
                        slot.session.answer_destroy_session(session_id, existed);
                    }
                }
                ServerEvent::DestroyAuthKey => {
                    self.events
                        .push_back(EndpointEvent::DestroyKey { session: key });
                }
                ServerEvent::Disconnect => {
                    if let Some(connection) = connection {
                        self.events.push_back(EndpointEvent::Close {
                            connection,
                            error: None,
                        });
                    }
                }
                ServerEvent::Flood => {
                    if let Some(connection) = connection {
                        self.events.push_back(EndpointEvent::Close {
                            connection,
                            error: Some(ERROR_FLOOD),
                        });
                    }
                }
            }
        }
    }

    /// After the last answer on `connection` went out, forget the keys destroyed there.
    fn finish_doomed(&mut self, connection: ConnectionId) {
        if self.doomed.is_empty() {
            return;
        }
        let doomed = std::mem::take(&mut self.doomed);
        for auth_key_id in doomed {
            // Waiting on another connection: a message not acknowledged yet, or one not even
            // sent (the answer `destroy_auth_key_ok` itself is not content-related, so it is
            // never counted as unacknowledged).
            let pending = self.sessions.iter().any(|(key, slot)| {
                key.auth_key_id == auth_key_id
                    && slot.connection != Some(connection)
                    && (slot.session.unacknowledged() > 0 || slot.session.has_output())
            });
            if pending {
                self.doomed.push(auth_key_id);
                continue;
            }
            for session_id in self.of_key.get(&auth_key_id).cloned().unwrap_or_default() {
                self.remove_session(SessionKey {
                    auth_key_id,
                    session_id,
                });
            }
            self.uncache_key(auth_key_id);
        }
    }

    /// Forgets a session; whether it existed.
    fn remove_session(&mut self, key: SessionKey) -> bool {
        if let Some(ids) = self.of_key.get_mut(&key.auth_key_id) {
            ids.retain(|id| *id != key.session_id);
            if ids.is_empty() {
                self.of_key.remove(&key.auth_key_id);
            }
        }
        self.sessions.remove(&key).is_some()
    }

    /// Makes room for one more session of `auth_key_id`: the key's least recently active
    /// session goes when the key has its maximum (a short scan of its own sessions); the
    /// least recently active of all when the endpoint has its maximum (a scan of every
    /// session, which only a server at its session limit pays).
    fn make_room(&mut self, auth_key_id: i64) {
        let own = self.of_key.get(&auth_key_id).cloned().unwrap_or_default();
        if own.len() >= self.config.max_sessions_per_key.max(1) {
            let oldest = own
                .iter()
                .map(|&session_id| SessionKey {
                    auth_key_id,
                    session_id,
                })
                .filter_map(|key| self.sessions.get(&key).map(|slot| (key, slot.last_active)))
                .min_by_key(|(_, at)| *at)
                .map(|(key, _)| key);
            if let Some(key) = oldest {
                self.remove_session(key);
            }
        }
        if self.sessions.len() >= self.config.max_sessions.max(1) {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, slot)| slot.last_active)
                .map(|(key, _)| *key);
            if let Some(key) = oldest {
                self.remove_session(key);
            }
        }
    }

    /// Drops one cached key that no session uses. When every cached key has sessions the
    /// cache may exceed its size by as many keys as there are sessions, which
    /// `max_sessions` bounds.
    fn evict_a_key(&mut self) {
        let unused = self
            .keys
            .keys()
            .copied()
            .find(|id| !self.of_key.contains_key(id));
        if let Some(id) = unused {
            self.uncache_key(id);
        }
    }

    /// Caches a key, and indexes it under its user.
    fn cache_key(&mut self, auth_key_id: i64, cached: CachedKey) {
        self.uncache_key(auth_key_id);
        if let Some(user_id) = cached.user_id {
            self.index_user(auth_key_id, user_id);
        }
        self.keys.insert(auth_key_id, cached);
    }

    fn index_user(&mut self, auth_key_id: i64, user_id: i64) {
        let keys = self.of_user.entry(user_id).or_default();
        if keys.is_empty() {
            self.user_changes.push((user_id, true));
        }
        keys.push(auth_key_id);
    }

    /// Moves the users who appeared in this endpoint's index of users (`true`: a key of
    /// theirs is cached here now) or left it (`false`) since the last call into `out`, in
    /// order. The runtime keeps its index of users by shard with them.
    pub fn take_user_changes(&mut self, out: &mut Vec<(i64, bool)>) {
        out.append(&mut self.user_changes);
    }

    /// Whether any user appeared in or left the index since the last
    /// [`Self::take_user_changes`].
    pub fn has_user_changes(&self) -> bool {
        !self.user_changes.is_empty()
    }

    /// Changes the user a cached key is indexed under.
    fn rekey_user(&mut self, auth_key_id: i64, user_id: Option<i64>) {
        let Some(cached) = self.keys.get_mut(&auth_key_id) else {
            return;
        };
        let old = std::mem::replace(&mut cached.user_id, user_id);
        if old == user_id {
            return;
        }
        self.unindex_user(auth_key_id, old);
        if let Some(user_id) = user_id {
            self.index_user(auth_key_id, user_id);
        }
    }

    /// Forgets a key and its sessions.
    fn drop_key(&mut self, auth_key_id: i64) {
        for session_id in self.of_key.get(&auth_key_id).cloned().unwrap_or_default() {
            self.remove_session(SessionKey {
                auth_key_id,
                session_id,
            });
        }
        self.doomed.retain(|&id| id != auth_key_id);
        self.uncache_key(auth_key_id);
    }

    /// Drops a key from the cache and from its user's index.
    fn uncache_key(&mut self, auth_key_id: i64) {
        if let Some(old) = self.keys.remove(&auth_key_id) {
            self.unindex_user(auth_key_id, old.user_id);
        }
    }

    fn unindex_user(&mut self, auth_key_id: i64, user_id: Option<i64>) {
        let Some(user_id) = user_id else { return };
        if let Some(keys) = self.of_user.get_mut(&user_id) {
            keys.retain(|id| *id != auth_key_id);
            if keys.is_empty() {
                self.of_user.remove(&user_id);
                self.user_changes.push((user_id, false));
            }
        }
    }
}
