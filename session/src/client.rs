//! The client's side of one session.
//!
//! Sans-IO like [`crate::server`]: opened messages in through [`ClientSession::handle_message`],
//! messages to seal out of [`ClientSession::poll_transmit`], answers and updates out of
//! [`ClientSession::poll_event`], timers through [`ClientSession::poll_timeout`] and
//! [`ClientSession::handle_timeout`].
//!
//! What the client checks and does (core.telegram.org/mtproto/description,
//! /service_messages_about_messages, /security_guidelines):
//! - a message of another session is dropped;
//! - server msg_ids must be odd, not seen before and not below the window; once the clock is
//!   synchronised, within 300 s past / 30 s future of the corrected clock. The notifications
//!   that correct the clock or the salt (`bad_msg_notification`, `bad_server_salt`) skip the
//!   time window, so that they get through exactly when the clock is wrong, and are acted on
//!   only when they name a message this client really sent;
//! - codes 16 and 17 set the time offset from the notification's own msg_id (the server's
//!   clock), code 48 takes the new salt, and codes 20, 32, 33, 64 re-send; every re-send gets
//!   a new msg_id. Codes 18, 19, 34 and 35 mean a bug on this side: the request fails;
//! - `rpc_result`, `pong`, `future_salts`, `msgs_state_info` are matched to the request they
//!   answer (under any msg_id it was sent with); anything unmatched is counted and dropped;
//! - `new_session_created` takes its salt, re-sends the requests the server cannot have seen,
//!   and is reported, since updates may have been missed;
//! - salts: future salts are fetched and the next one is used before the current expires.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use columba_mtproto::message::EncryptedHeader;
use columba_mtproto::time::Now;
use columba_mtproto::tl::Serializable;
use columba_mtproto::tl::mtproto::{functions, types};
use columba_mtproto::tl::service::MsgContainer;

use crate::config::SessionConfig;
use crate::container::check_container;
use crate::id_map::IdMap;
use crate::incoming::{Incoming, IncomingError, Inflater, parse_unpacked};
use crate::msg_id::{MsgIdChecker, MsgIdKind, MsgIdRejection};
use crate::outbox::{BodyBuilder, Outbox, Tag};
use crate::rpc::{RpcOutcome, maybe_gzip, read_result};
use crate::stats::SessionStats;

/// A request's handle: stable across the re-sends that give it new msg_ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Why a request failed without an answer from the application on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestFailure {
    /// The server refused the message with a bad_msg_notification code that re-sending
    /// cannot fix (18, 19, 34, 35): a bug on this side.
    #[error("the server refused the message with bad_msg_notification {0}")]
    Refused(i32),
    /// The result could not be read (corrupt `gzip_packed`, or larger than the cap).
    #[error("the result could not be read")]
    BadResult,
    /// The server could not say whether it received the request (it is too old): it may
    /// or may not have run. Not re-sent, since that could run it twice.
    #[error("the server does not know whether it received the request")]
    Unknown,
    /// Cancelled on this side ([`ClientSession::cancel`]).
    #[error("cancelled")]
    Cancelled,
}

/// A request could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// `max_pending_requests` requests already wait for answers.
    #[error("too many requests are waiting for answers")]
    TooManyPending,
}

/// Something the application must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The answer to a request: the result's bytes, or an `rpc_error`. For service requests
    /// (`ping`, `get_future_salts`, `msgs_state_req`, `destroy_session`) the bytes are the
    /// service answer (`pong`, `future_salts`, ...).
    Response {
        /// The request.
        id: RequestId,
        /// Its outcome.
        outcome: RpcOutcome,
    },
    /// A request that will get no answer.
    Failed {
        /// The request.
        id: RequestId,
        /// Why.
        reason: RequestFailure,
    },
    /// A message the server sent on its own (an update).
    Update {
        /// The TL object.
        body: Bytes,
    },
    /// The server created the session anew: updates sent before may have been missed.
    SessionCreated {
        /// The first msg_id of this client the new session saw.
        first_msg_id: i64,
        /// The server's random id of this creation.
        unique_id: i64,
    },
}

#[derive(Clone)]
struct Pending {
    body: Bytes,
    build: Option<BodyBuilder>,
    msg_ids: Aliases,
    /// Internal requests (salt fetching) answer the session, not the application.
    internal: bool,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("len", &self.body.len())
            .field("internal", &self.internal)
            .finish_non_exhaustive()
    }
}

/// Pending requests by id (ids are handed out in increasing order, so an [`IdMap`]).
#[derive(Debug, Default)]
struct RequestMap(IdMap<Pending>);

impl RequestMap {
    fn key(id: &RequestId) -> i64 {
        i64::try_from(id.0).unwrap_or(i64::MAX)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, id: &RequestId) -> Option<&Pending> {
        self.0.get(&Self::key(id))
    }
    fn get_mut(&mut self, id: &RequestId) -> Option<&mut Pending> {
        self.0.get_mut(&Self::key(id))
    }
    fn insert(&mut self, id: RequestId, pending: Pending) {
        self.0.insert(Self::key(&id), pending);
    }
    fn remove(&mut self, id: &RequestId) -> Option<Pending> {
        self.0.remove(&Self::key(id))
    }
}

/// Msg_ids remembered per request across re-sends.
const MAX_ALIASES: usize = 16;

/// The msg_ids a request was sent under, newest last, kept inline (no allocation per
/// request); beyond [`MAX_ALIASES`] the oldest is forgotten.
#[derive(Debug, Clone, Copy, Default)]
struct Aliases {
    ids: [i64; MAX_ALIASES],
    len: usize,
}

impl Aliases {
    /// Adds an id; returns the one forgotten to make room.
    fn push(&mut self, id: i64) -> Option<i64> {
        if self.len < MAX_ALIASES {
            if let Some(slot) = self.ids.get_mut(self.len) {
                *slot = id;
            }
            self.len += 1;
            return None;
        }
        let oldest = self.ids.first().copied();
        self.ids.rotate_left(1);
        if let Some(slot) = self.ids.last_mut() {
            *slot = id;
        }
        oldest
    }

    fn last(&self) -> Option<i64> {
        self.len
            .checked_sub(1)
            .and_then(|at| self.ids.get(at))
            .copied()
    }

    fn iter(&self) -> impl Iterator<Item = &i64> {
        self.ids.iter().take(self.len)
    }
}
/// A salt is used only from this long after its start, in case the clocks differ a little
/// (TDLib and grammers wait 60 s).
const SALT_START_DELAY: i64 = 60;
/// How often (server seconds) the salt list is looked at when nothing changed it.
const SALT_CHECK_INTERVAL: i64 = 5;

/// A salt and the time it is valid in, in server seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KnownSalt {
    valid_since: i64,
    valid_until: i64,
    salt: i64,
}

/// The client's state of one session.
#[derive(Debug)]
pub struct ClientSession {
    session_id: i64,
    config: Arc<SessionConfig>,
    salt: i64,
    salts: Vec<KnownSalt>,
    salt_request: Option<RequestId>,
    /// When the salts were last looked at (server seconds): they change on a scale of
    /// minutes, so once every few seconds is enough.
    salt_checked_at: Option<i64>,
    received: MsgIdChecker,
    out: Outbox,
    next_request: u64,
    requests: RequestMap,
    by_msg_id: IdMap<RequestId>,
    destroy_requests: HashMap<i64, RequestId>,
    /// Internal `msgs_state_req` requests and the msg_ids they ask about.
    state_checks: HashMap<RequestId, Vec<i64>>,
    /// The highest msg_id of ours the server has acknowledged or answered: after a clock
    /// correction, new ids stay above it so that the server's seq_no order still holds.
    confirmed: i64,
    /// The `unique_id` of the server's last `new_session_created`.
    unique_id: Option<i64>,
    /// Expands the `gzip_packed` objects of the message being handled.
    inflater: Inflater,
    events: VecDeque<ClientEvent>,
    stats: SessionStats,
}

impl ClientSession {
    /// A new session with a random `session_id`, starting with `salt` (the handshake's, or a
    /// stored one). `time_offset` is server time minus local time in seconds when known (a
    /// fresh handshake gives it): with it, the time window on server msg_ids applies at once;
    /// without it, from the first correction on.
    pub fn new(
        session_id: i64,
        salt: i64,
        time_offset: Option<i64>,
        config: Arc<SessionConfig>,
    ) -> Self {
        let mut received = MsgIdChecker::for_server_ids(config.msg_ids);
        let mut out = Outbox::new(&config, MsgIdKind::Client);
        if let Some(offset) = time_offset {
            received.synchronise(offset);
            out.ids.set_time_offset(offset);
        }
        Self {
            session_id,
            salt,
            salts: Vec::new(),
            salt_request: None,
            salt_checked_at: None,
            received,
            out,
            config,
            next_request: 0,
            requests: RequestMap::default(),
            by_msg_id: IdMap::new(),
            destroy_requests: HashMap::new(),
            state_checks: HashMap::new(),
            confirmed: 0,
            unique_id: None,
            inflater: Inflater::default(),
            events: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// The session's id.
    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    /// The salt outgoing messages carry.
    pub fn salt(&self) -> i64 {
        self.salt
    }

    /// Server time minus local time, in seconds, as corrected so far.
    pub fn time_offset(&self) -> i64 {
        self.out.ids.time_offset()
    }

    /// Counters of refused and dropped messages.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Requests waiting for an answer.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// Queues an API query (or a service function such as `ping`); its answer comes as
    /// [`ClientEvent::Response`] with the returned id.
    pub fn invoke(&mut self, body: Bytes) -> Result<RequestId, InvokeError> {
        self.invoke_inner(body, false)
    }

    fn invoke_inner(&mut self, body: Bytes, internal: bool) -> Result<RequestId, InvokeError> {
        if self.requests.len() >= self.config.max_pending_requests {
            return Err(InvokeError::TooManyPending);
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let body = maybe_gzip(body, self.config.gzip_threshold);
        if let Ok(destroy) =
            <functions::DestroySession as columba_mtproto::tl::Deserializable>::from_bytes(&body)
        {
            self.destroy_requests.insert(destroy.session_id, id);
        }
        self.requests.insert(
            id,
            Pending {
                body: body.clone(),
                build: None,
                msg_ids: Aliases::default(),
                internal,
            },
        );
        self.out
            .push(body, true, MsgIdKind::Client, Tag::Request(id.0));
        Ok(id)
    }

    /// Queues a request whose body depends on the msg_id it goes out with
    /// (`auth.bindTempAuthKey` encrypts its own msg_id): `build` is called with each msg_id
    /// the request is sent under, re-sends included. Never gzip-packed.
    pub fn invoke_built(&mut self, build: BodyBuilder) -> Result<RequestId, InvokeError> {
        if self.requests.len() >= self.config.max_pending_requests {
            return Err(InvokeError::TooManyPending);
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let body = build(0);
        self.requests.insert(
            id,
            Pending {
                body: body.clone(),
                build: Some(build.clone()),
                msg_ids: Aliases::default(),
                internal: false,
            },
        );
        self.out
            .push_built(body, build, MsgIdKind::Client, Tag::Request(id.0));
        Ok(id)
    }

    /// Gives up on a request: it is forgotten here, and if it was sent, the server is asked
    /// to drop its answer (`rpc_drop_answer`). Returns whether it was pending.
    pub fn cancel(&mut self, id: RequestId) -> bool {
        let Some(last) = self.requests.get(&id).map(|pending| pending.msg_ids.last()) else {
            return false;
        };
        self.finish_request(id);
        if let Some(msg_id) = last {
            let drop = functions::RpcDropAnswer { req_msg_id: msg_id };
            let _ = self.invoke_inner(Bytes::from(drop.to_bytes()), true);
        }
        true
    }

    /// A new connection carries this session: whatever the server has not acknowledged is
    /// sent again under new msg_ids. Requests are checked first: a `msgs_state_req` asks the
    /// server which of them it has (the acks may be what was lost), and only those it does
    /// not have are re-sent, so that a request is not run twice
    /// (core.telegram.org/mtproto/service_messages_about_messages: "wrap it in a container
    /// or first check it with msgs_state_req").
    pub fn handle_new_connection(&mut self) {
        // Answers to the service questions in flight (msgs_state_info, future_salts) are not
        // re-sent by the server, so questions that were not answered on the old connection
        // are asked again.
        let questions: Vec<RequestId> = self
            .state_checks
            .keys()
            .copied()
            .chain(self.salt_request)
            .collect();
        for id in questions {
            self.finish_request(id);
        }
        let unacked: Vec<i64> = self.out.unacked.keys().copied().collect();
        self.recheck(unacked);
    }

    /// Re-sends the unacknowledged messages among `ids`, asking about requests first.
    fn recheck(&mut self, ids: Vec<i64>) {
        let mut ask = Vec::new();
        for id in ids {
            let Some(record) = self.out.unacked.get(&id) else {
                continue;
            };
            let is_request = match record.tag {
                Tag::Request(raw) => self
                    .requests
                    .get(&RequestId(raw))
                    .is_some_and(|pending| !pending.internal),
                _ => false,
            };
            if is_request {
                // Already asked about and the answer not in yet: the question itself is
                // re-sent, not asked anew.
                let asked = self.state_checks.values().any(|ids| ids.contains(&id));
                if !asked {
                    ask.push(id);
                }
            } else {
                self.out.resend(id, &mut self.stats);
            }
        }
        for chunk in ask.chunks(crate::config::MAX_IDS_PER_VECTOR) {
            let request = types::MsgsStateReq {
                msg_ids: chunk.to_vec(),
            };
            match self.invoke_inner(Bytes::from(request.to_bytes()), true) {
                Ok(id) => {
                    self.state_checks.insert(id, chunk.to_vec());
                }
                Err(_) => {
                    // No room to ask: re-send, accepting the risk of a repeat.
                    for &id in chunk {
                        self.out.resend(id, &mut self.stats);
                    }
                }
            }
        }
    }

    /// The server's answer about messages this side asked after.
    fn take_state_info(&mut self, asked: &[i64], info: &[u8]) {
        for (&id, &state) in asked.iter().zip(info) {
            match state & 7 {
                // The server has it; its answer will come (re-sent if it was lost).
                4 => {
                    self.out.acknowledge(id);
                }
                // Not received: send it again.
                2 | 3 => {
                    self.out.resend(id, &mut self.stats);
                }
                // Nothing known (too old for the server to tell): re-sending could run it
                // twice, so the application decides.
                _ => {
                    if self.out.acknowledge(id).is_some() {
                        if let Some(request) = self.finish(id) {
                            self.events.push_back(ClientEvent::Failed {
                                id: request,
                                reason: RequestFailure::Unknown,
                            });
                        }
                    }
                }
            }
        }
    }

    /// The next thing the application must act on.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Writes the next message to send into `buf` (room for the encrypted header, then the
    /// body) and returns its header, or `None` when nothing is due.
    pub fn poll_transmit(&mut self, now: Now, buf: &mut BytesMut) -> Option<EncryptedHeader> {
        self.rotate_salt(now);
        let written = self.out.poll_transmit(now, buf, &mut self.stats)?;
        // Taken and put back, so that the vector keeps its capacity.
        let mut assigned = std::mem::take(&mut self.out.assigned);
        for &(msg_id, tag) in &assigned {
            if let Tag::Request(raw) = tag {
                let id = RequestId(raw);
                if let Some(pending) = self.requests.get_mut(&id) {
                    if let Some(old) = pending.msg_ids.push(msg_id) {
                        self.by_msg_id.remove(&old);
                    }
                    self.by_msg_id.insert(msg_id, id);
                }
            }
        }
        assigned.clear();
        self.out.assigned = assigned;
        Some(EncryptedHeader {
            salt: self.salt,
            session_id: self.session_id,
            msg_id: written.msg_id,
            seq_no: written.seq_no,
        })
    }

    /// When [`Self::handle_timeout`] has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let resend = self
            .config
            .resend_after
            .and_then(|after| self.out.oldest_unacked().map(|at| at + after));
        [self.out.acks.poll_timeout(), resend]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers due at `now`: re-sends of unacknowledged messages (when configured).
    /// Acks due are sent by the next [`Self::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Now) {
        if let Some(after) = self.config.resend_after {
            if let Some(before) = now.monotonic.checked_sub(after) {
                let old: Vec<i64> = self
                    .out
                    .unacked
                    .iter()
                    .filter(|(_, record)| record.sent_at < before)
                    .map(|(&id, _)| id)
                    .collect();
                // Asked about now: not again until another interval has passed.
                self.out.touch(&old, now.monotonic);
                self.recheck(old);
            }
        }
    }

    /// Handles one opened message.
    pub fn handle_message(&mut self, header: &EncryptedHeader, body: &[u8], now: Now) {
        if header.session_id != self.session_id {
            self.stats.unrelated += 1;
            return;
        }
        let incoming = match Incoming::parse(body) {
            Ok(incoming) => incoming,
            Err(error) => return self.refuse_body(error),
        };
        self.notice_new_session(header.msg_id, &incoming);
        self.inflater.reset(self.config.max_unpacked_per_message);
        let accepted = self.accept(header.msg_id, header.seq_no, &incoming, now);
        if accepted {
            self.dispatch(header.msg_id, header.seq_no, incoming, now, true);
        }
    }

    /// A `new_session_created` newer than anything received, with a new `unique_id`, means
    /// the server made the session anew and counts seq_no from zero again: the received-id
    /// state restarts (keeping every old id refused). An old one replayed changes nothing.
    fn notice_new_session(&mut self, msg_id: i64, incoming: &Incoming<'_>) {
        let created = |body: &[u8]| match Incoming::parse(body) {
            Ok(Incoming::NewSession(created)) => Some(created),
            _ => None,
        };
        let newer = |id: i64| self.received.highest().is_none_or(|highest| id > highest);
        let found = match incoming {
            Incoming::NewSession(created) if newer(msg_id) => Some(created.clone()),
            Incoming::Container(container) => container
                .messages
                .iter()
                .find_map(|message| created(&message.body).filter(|_| newer(message.msg_id))),
            _ => None,
        };
        if let Some(created) = found {
            if self
                .unique_id
                .is_some_and(|unique| unique != created.unique_id)
            {
                self.received.restart_seq_no();
            }
            self.unique_id = Some(created.unique_id);
        }
    }

    fn accept(&mut self, msg_id: i64, seq_no: i32, incoming: &Incoming<'_>, now: Now) -> bool {
        let relevance = incoming.relevance();
        // A container's own id is checked without the time window: it may carry the very
        // notification that corrects the clock; its messages are checked one by one, with
        // the window unless they are such notifications.
        let untimed = incoming.is_correction() || matches!(incoming, Incoming::Container(_));
        let result = if untimed {
            self.received.accept_untimed(msg_id, seq_no, relevance)
        } else {
            self.received.accept(msg_id, seq_no, relevance, now)
        };
        match result {
            Ok(()) => true,
            Err(MsgIdRejection::Duplicate) => {
                self.stats.duplicates += 1;
                false
            }
            Err(MsgIdRejection::BelowWindow) => {
                self.stats.below_window += 1;
                false
            }
            Err(other) => {
                // A client does not answer the server with bad_msg_notification; it drops
                // the message and counts it.
                self.stats
                    .count_bad_msg(other.bad_msg_code().unwrap_or_default());
                false
            }
        }
    }

    fn refuse_body(&mut self, error: IncomingError) {
        match error {
            IncomingError::Malformed => self.stats.malformed += 1,
            IncomingError::TooManyIds => self.stats.oversized_vectors += 1,
        }
    }

    fn dispatch(
        &mut self,
        msg_id: i64,
        seq_no: i32,
        incoming: Incoming<'_>,
        now: Now,
        outer: bool,
    ) {
        self.stats.accepted += 1;
        if seq_no & 1 == 1 {
            self.out.acks.push(msg_id, now.monotonic);
        }
        match incoming {
            Incoming::Container(container) if outer => {
                self.handle_container(msg_id, &container, now)
            }
            Incoming::Gzip(packed) => {
                match self.inflater.unpack(&packed, self.config.max_unpacked_len) {
                    Ok(inner) => {
                        if let Some(parsed) = parse_unpacked(&inner, &mut self.stats) {
                            self.act(msg_id, parsed, now);
                        }
                    }
                    Err(_) => self.stats.gzip_refused += 1,
                }
            }
            other => self.act(msg_id, other, now),
        }
    }

    fn handle_container(&mut self, container_id: i64, container: &MsgContainer, now: Now) {
        if check_container(container_id, container).is_err() {
            self.stats.count_bad_msg(64);
            return;
        }
        for message in &container.messages {
            let incoming = match Incoming::parse(&message.body) {
                Ok(Incoming::Container(_)) => {
                    self.stats.malformed += 1;
                    continue;
                }
                Ok(incoming) => incoming,
                Err(error) => {
                    self.refuse_body(error);
                    continue;
                }
            };
            if self.accept(message.msg_id, message.seqno, &incoming, now) {
                self.dispatch(message.msg_id, message.seqno, incoming, now, false);
            }
        }
    }

    fn act(&mut self, msg_id: i64, incoming: Incoming<'_>, now: Now) {
        match incoming {
            Incoming::Ack(ack) => {
                for id in ack.msg_ids {
                    if self.out.acknowledge(id).is_some() {
                        self.confirmed = self.confirmed.max(id);
                    }
                }
            }
            Incoming::RpcResult { req_msg_id, result } => {
                let outcome = read_result(result, self.config.max_unpacked_len);
                match outcome {
                    Ok(outcome) => self.complete(req_msg_id, outcome),
                    Err(_) => {
                        if let Some(id) = self.finish(req_msg_id) {
                            self.events.push_back(ClientEvent::Failed {
                                id,
                                reason: RequestFailure::BadResult,
                            });
                        }
                    }
                }
            }
            Incoming::Pong(pong) => {
                self.complete(pong.msg_id, Ok(Bytes::from(pong.to_bytes())));
            }
            Incoming::FutureSalts(salts) => {
                let own = self
                    .by_msg_id
                    .get(&salts.req_msg_id)
                    .is_some_and(|id| Some(*id) == self.salt_request);
                let answered = self.by_msg_id.contains_key(&salts.req_msg_id);
                if answered {
                    // Only salts that answer a request of ours are taken (the spec asks the
                    // client to check req_msg_id).
                    self.take_salts(&salts, now);
                }
                if own {
                    self.salt_request = None;
                    self.salt_checked_at = None;
                    self.finish(salts.req_msg_id);
                } else {
                    self.complete(salts.req_msg_id, Ok(Bytes::from(salts.to_bytes())));
                }
            }
            Incoming::StateInfo(info) => {
                let check = self
                    .by_msg_id
                    .get(&info.req_msg_id)
                    .and_then(|id| self.state_checks.remove(id));
                match check {
                    Some(asked) => {
                        self.take_state_info(&asked, &info.info);
                        self.finish(info.req_msg_id);
                    }
                    None => self.complete(info.req_msg_id, Ok(Bytes::from(info.to_bytes()))),
                }
            }
            Incoming::DestroySessionOk(answer) => {
                if let Some(id) = self.destroy_requests.remove(&answer.session_id) {
                    self.complete_id(id, Ok(Bytes::from(answer.to_bytes())));
                } else {
                    self.stats.unrelated += 1;
                }
            }
            Incoming::DestroySessionNone(answer) => {
                if let Some(id) = self.destroy_requests.remove(&answer.session_id) {
                    self.complete_id(id, Ok(Bytes::from(answer.to_bytes())));
                } else {
                    self.stats.unrelated += 1;
                }
            }
            Incoming::BadMsg(notice) => {
                self.handle_bad_msg(msg_id, notice.bad_msg_id, notice.error_code, None, now);
            }
            Incoming::BadSalt(notice) => self.handle_bad_msg(
                msg_id,
                notice.bad_msg_id,
                notice.error_code,
                Some(notice.new_server_salt),
                now,
            ),
            Incoming::NewSession(created) => {
                self.salt = created.server_salt;
                self.salts.clear();
                self.salt_checked_at = None;
                // The server has a new session: requests sent only before its first
                // message were never seen by it (or were seen by a session it forgot, whose
                // answers are lost). Send them again, acknowledged or not.
                let before: Vec<(RequestId, bool)> = self
                    .requests
                    .0
                    .iter()
                    .filter(|(_, pending)| {
                        pending
                            .msg_ids
                            .iter()
                            .max()
                            .is_some_and(|&last| last < created.first_msg_id)
                    })
                    .map(|(&key, pending)| (RequestId(key.unsigned_abs()), pending.internal))
                    .collect();
                for (id, _) in before {
                    let Some(last) = self.requests.get(&id).and_then(|p| p.msg_ids.last()) else {
                        continue;
                    };
                    if self.out.resend(last, &mut self.stats) || self.out.holds(Tag::Request(id.0))
                    {
                        continue;
                    }
                    self.requeue(id);
                }
                self.events.push_back(ClientEvent::SessionCreated {
                    first_msg_id: created.first_msg_id,
                    unique_id: created.unique_id,
                });
            }
            Incoming::StateReq(request) => {
                let info = request
                    .msg_ids
                    .iter()
                    .map(|&id| if self.received.contains(id) { 4 } else { 2 })
                    .collect();
                let answer = types::MsgsStateInfo {
                    req_msg_id: msg_id,
                    info,
                };
                self.out.push(
                    Bytes::from(answer.to_bytes()),
                    false,
                    MsgIdKind::Client,
                    Tag::Other,
                );
            }
            Incoming::ResendReq(request) => {
                for id in request.msg_ids {
                    if !self.out.resend(id, &mut self.stats) {
                        self.stats.unrelated += 1;
                    }
                }
            }
            Incoming::DetailedInfo(types::MsgDetailedInfo { answer_msg_id, .. })
            | Incoming::NewDetailedInfo(types::MsgNewDetailedInfo { answer_msg_id, .. }) => {
                if self.received.contains(answer_msg_id) {
                    self.out.acks.push(answer_msg_id, now.monotonic);
                } else {
                    let request = types::MsgResendReq {
                        msg_ids: vec![answer_msg_id],
                    };
                    self.out.push(
                        Bytes::from(request.to_bytes()),
                        false,
                        MsgIdKind::Client,
                        Tag::Other,
                    );
                }
            }
            Incoming::Other(body) => self.events.push_back(ClientEvent::Update {
                body: Bytes::copy_from_slice(body),
            }),
            Incoming::Copy | Incoming::HttpWait | Incoming::AllInfo => {
                self.stats.unsupported += 1;
            }
            Incoming::Container(_)
            | Incoming::Gzip(_)
            | Incoming::ResendAnsReq(_)
            | Incoming::Ping(_)
            | Incoming::PingDelayDisconnect(_)
            | Incoming::GetFutureSalts(_)
            | Incoming::RpcDropAnswer(_)
            | Incoming::DestroySession(_)
            | Incoming::DestroyAuthKey
            | Incoming::InvokeAfter { .. } => self.stats.unrelated += 1,
        }
    }

    /// Completes the request sent as `req_msg_id` with `outcome`.
    fn complete(&mut self, req_msg_id: i64, outcome: RpcOutcome) {
        match self.finish(req_msg_id) {
            Some(id) => self.events.push_back(ClientEvent::Response { id, outcome }),
            None => self.stats.unrelated += 1,
        }
    }

    fn complete_id(&mut self, id: RequestId, outcome: RpcOutcome) {
        if let Some(msg_id) = self.requests.get(&id).and_then(|p| p.msg_ids.last()) {
            self.complete(msg_id, outcome);
        }
    }

    /// Forgets the request sent as `req_msg_id`; returns it unless it was internal.
    fn finish(&mut self, req_msg_id: i64) -> Option<RequestId> {
        let id = self.by_msg_id.get(&req_msg_id).copied()?;
        self.finish_request(id)
    }

    /// Forgets request `id`, sent or not; returns it unless it was internal.
    fn finish_request(&mut self, id: RequestId) -> Option<RequestId> {
        let pending = self.requests.remove(&id)?;
        for msg_id in pending.msg_ids.iter() {
            self.by_msg_id.remove(msg_id);
        }
        // An answer acknowledges the request.
        self.out.forget(|tag| tag == Tag::Request(id.0));
        self.state_checks.remove(&id);
        if self.salt_request == Some(id) {
            self.salt_request = None;
        }
        if let Some(&highest) = pending.msg_ids.iter().max() {
            self.confirmed = self.confirmed.max(highest);
        }
        (!pending.internal).then_some(id)
    }

    fn handle_bad_msg(
        &mut self,
        notice_msg_id: i64,
        bad_msg_id: i64,
        code: i32,
        new_salt: Option<i64>,
        now: Now,
    ) {
        let targets: Vec<i64> = if let Some(inner) = self.out.container_contents(bad_msg_id) {
            inner.to_vec()
        } else if self.out.unacked.contains_key(&bad_msg_id)
            || self.by_msg_id.contains_key(&bad_msg_id)
        {
            vec![bad_msg_id]
        } else {
            // Not a message of ours: nothing in it may be used (no clock or salt change).
            self.stats.unrelated += 1;
            return;
        };
        match code {
            16 | 17 => {
                let server_secs = notice_msg_id >> 32;
                let offset = server_secs - now.unix_secs();
                self.out.ids.resynchronise(offset, self.confirmed);
                self.received.synchronise(offset);
            }
            48 => {
                if let Some(salt) = new_salt {
                    self.salt = salt;
                    self.salts.clear();
                    self.salt_checked_at = None;
                }
            }
            20 | 32 | 33 | 64 => {}
            _ => {
                for target in targets {
                    if let Some(id) = self.finish(target) {
                        self.events.push_back(ClientEvent::Failed {
                            id,
                            reason: RequestFailure::Refused(code),
                        });
                    }
                }
                return;
            }
        }
        for target in targets {
            if self.out.resend(target, &mut self.stats) {
                continue;
            }
            // Not in the re-send record: forgotten for lack of room, or already re-sent for
            // another reason (new_session_created, an earlier notification). Re-queue the
            // request from its body only in the first case, so that it never goes twice.
            let Some(id) = self.by_msg_id.get(&target).copied() else {
                continue;
            };
            if self.out.holds(Tag::Request(id.0)) {
                continue;
            }
            self.requeue(id);
        }
    }

    /// Queues a pending request again from its body (or its builder).
    fn requeue(&mut self, id: RequestId) {
        let Some(pending) = self.requests.get(&id) else {
            return;
        };
        self.stats.resent += 1;
        match &pending.build {
            Some(build) => {
                self.out.push_built(
                    pending.body.clone(),
                    build.clone(),
                    MsgIdKind::Client,
                    Tag::Request(id.0),
                );
            }
            None => self.out.push(
                pending.body.clone(),
                true,
                MsgIdKind::Client,
                Tag::Request(id.0),
            ),
        }
    }

    fn take_salts(&mut self, salts: &types::FutureSalts, now: Now) {
        // `now` in the answer is the server's clock; the salts' times are on it.
        let _ = now;
        self.salts = salts
            .salts
            .iter()
            .map(|salt| KnownSalt {
                valid_since: i64::from(salt.valid_since),
                valid_until: i64::from(salt.valid_until),
                salt: salt.salt,
            })
            .collect();
        self.salts.sort_by_key(|salt| salt.valid_since);
        self.salt_checked_at = None;
    }

    /// Uses the next salt before the current one expires, and asks for more when the last
    /// known one is close to expiry.
    fn rotate_salt(&mut self, now: Now) {
        let server_now = now.unix_secs() + self.time_offset();
        if self
            .salt_checked_at
            .is_some_and(|at| (at..at + SALT_CHECK_INTERVAL).contains(&server_now))
        {
            return;
        }
        self.salt_checked_at = Some(server_now);
        let margin = i64::try_from(self.config.salt_margin.as_secs()).unwrap_or(i64::MAX);
        self.salts
            .retain(|salt| salt.valid_until - margin > server_now);
        // The newest salt already in force lasts longest.
        if let Some(usable) = self
            .salts
            .iter()
            .rev()
            .find(|salt| salt.valid_since + SALT_START_DELAY <= server_now)
        {
            self.salt = usable.salt;
        }
        let running_out = self
            .salts
            .last()
            .is_none_or(|last| last.valid_until - server_now < 2 * margin);
        if running_out && self.salt_request.is_none() && self.config.future_salts > 0 {
            let request = functions::GetFutureSalts {
                num: self.config.future_salts.clamp(1, 64),
            };
            if let Ok(id) = self.invoke_inner(Bytes::from(request.to_bytes()), true) {
                self.salt_request = Some(id);
            }
        }
    }
}
