//! The server's side of one session.
//!
//! Sans-IO: the caller opens each encrypted message (with `columba_mtproto::message::open`)
//! and hands the header and body to [`ServerSession::handle_message`]; it takes what to send
//! from [`ServerSession::poll_transmit`] (and seals it), application work from
//! [`ServerSession::poll_event`], and drives timers with [`ServerSession::poll_timeout`] and
//! [`ServerSession::handle_timeout`]. Time is passed in; nothing here blocks or does I/O.
//!
//! Checks on every received message, in this order (core.telegram.org/mtproto/description,
//! /service_messages_about_messages, /security_guidelines):
//! 1. msg_id parity, the 300 s / 30 s time window, the window of recent ids, seq_no parity
//!    and order: a refusal gets bad_msg_notification with the spec's code; a duplicate is
//!    ignored (and acknowledged again, in case the first ack was lost).
//! 2. The server salt: a wrong one gets `bad_server_salt` with the current salt, and the
//!    message is not processed (the client re-sends it under a new msg_id).
//! 3. Containers: inner ids below the container's and distinct (else 64), then each inner
//!    message through step 1 on its own.
//! 4. `gzip_packed`: expanded within a cap; a bomb is dropped and counted.
//! 5. Id vectors of `msgs_ack`, `msgs_state_req`, `msg_resend_req` at most 8192 long, else
//!    [`ServerEvent::Flood`] (transport error -429).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use columba_mtproto::message::EncryptedHeader;
use columba_mtproto::time::Now;
use columba_mtproto::tl::Serializable;
use columba_mtproto::tl::mtproto::{enums, types};
use columba_mtproto::tl::service::MsgContainer;

use crate::config::SessionConfig;
use crate::container::check_container;
use crate::id_map::IdMap;
use crate::incoming::{Incoming, IncomingError, Inflater, parse_unpacked};
use crate::msg_id::{MsgIdChecker, MsgIdKind, MsgIdRejection};
use crate::outbox::{Outbox, Tag};
use crate::rpc::{RpcError, RpcOutcome, rpc_result_body};
use crate::salt::SaltSource;
use crate::stats::SessionStats;

/// Answers re-sent for one `msg_resend_ans_req`, at most.
const MAX_RESEND_ANSWERS: usize = 64;

/// Something the application (or the endpoint) must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// An API query. Answer it with [`ServerSession::answer`], under the same `msg_id`.
    /// `invokeAfterMsg` wrappers are already taken off and their order kept: `body` is the
    /// inner query, delivered once the messages it waits for have been answered.
    Request {
        /// The msg_id the answer refers to.
        msg_id: i64,
        /// The query (a TL function call).
        body: Bytes,
    },
    /// The client gave up on a running request (`rpc_drop_answer`); its answer, if one still
    /// comes, is discarded.
    Cancelled {
        /// The request's msg_id.
        msg_id: i64,
    },
    /// `destroy_session` for another session of this auth key: the endpoint forgets it and
    /// answers with [`ServerSession::answer_destroy_session`].
    DestroySession {
        /// The msg_id of the request.
        msg_id: i64,
        /// The session to destroy.
        session_id: i64,
    },
    /// `destroy_auth_key`: the endpoint answers with [`ServerSession::answer_destroy_auth_key`],
    /// sends it, and then forgets the key.
    DestroyAuthKey,
    /// The `ping_delay_disconnect` timer ran out: close the connection.
    Disconnect,
    /// A service-message limit was exceeded: send transport error -429 and close.
    Flood,
}

/// What the server knows of a client request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestState {
    /// Handed to the application (or waiting for `invokeAfterMsg`), not answered.
    Running,
    /// Answered; `failed` when the answer was an `rpc_error`.
    Answered { failed: bool },
    /// Dropped by the client while running. It still counts against
    /// `max_pending_requests` until the application gives its (discarded) answer, so that
    /// dropping cannot be used to run more requests at once than the limit.
    Dropped,
}

/// A query waiting for the messages it must follow.
#[derive(Debug, Clone)]
struct Waiting {
    msg_id: i64,
    after: Vec<i64>,
    query: Bytes,
    deadline: Instant,
}

/// The server's state of one session.
#[derive(Debug)]
pub struct ServerSession {
    auth_key_id: i64,
    session_id: i64,
    unique_id: i64,
    config: Arc<SessionConfig>,
    salts: Arc<SaltSource>,
    received: MsgIdChecker,
    out: Outbox,
    requests: IdMap<RequestState>,
    /// How many of `requests` are running (kept so that admission is O(1)).
    running: usize,
    waiting: Vec<Waiting>,
    events: VecDeque<ServerEvent>,
    created: bool,
    /// The salt of the current slot, derived once per slot rather than once per message.
    current_salt: Option<crate::salt::FutureSalt>,
    /// The salt the key exchange gave the client, and until when (Unix seconds) it is
    /// accepted, so that a new key's first messages need no `bad_server_salt` round trip.
    first_salt: Option<(i64, i64)>,
    /// What the `gzip_packed` objects of the message being handled may still expand to.
    inflater: Inflater,
    disconnect_at: Option<Instant>,
    /// Updates were dropped on a full queue and the client has not been told yet: it is
    /// sent `updatesTooLong` (fetch the difference) as soon as the queue has room.
    updates_lost: bool,
    /// The streams this session was told it lags in (their "too long" message queued), whose
    /// updates are skipped until the queue drains.
    lagging: Vec<i64>,
    stats: SessionStats,
}

/// What [`ServerSession::push_stream_update`] did with an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamPush {
    /// Queued.
    Queued,
    /// The session lags: the stream's "too long" message was queued instead.
    TooLong,
    /// Skipped: the session was told it lags in this stream already, or its queue is full.
    Skipped,
}

impl ServerSession {
    /// A new session `session_id` of the key `auth_key_id`. `unique_id` is a random number
    /// sent in `new_session_created`, so that the client can tell two creations apart.
    pub fn new(
        auth_key_id: i64,
        session_id: i64,
        unique_id: i64,
        config: Arc<SessionConfig>,
        salts: Arc<SaltSource>,
    ) -> Self {
        Self {
            auth_key_id,
            session_id,
            unique_id,
            received: MsgIdChecker::for_client_ids(config.msg_ids),
            out: Outbox::new(&config, MsgIdKind::ServerInitiated),
            config,
            salts,
            requests: IdMap::new(),
            running: 0,
            waiting: Vec::new(),
            events: VecDeque::new(),
            created: false,
            current_salt: None,
            first_salt: None,
            inflater: Inflater::default(),
            disconnect_at: None,
            updates_lost: false,
            lagging: Vec::new(),
            stats: SessionStats::default(),
        }
    }

    /// Also accepts `salt` until `valid_until` (Unix seconds): the first salt of a key, from
    /// its key exchange (`new_nonce[0..8] XOR server_nonce[0..8]`).
    pub fn accept_first_salt(&mut self, salt: i64, valid_until: i64) {
        self.first_salt = Some((salt, valid_until));
    }

    /// The session's id.
    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    /// The auth key the session belongs to.
    pub fn auth_key_id(&self) -> i64 {
        self.auth_key_id
    }

    /// Counters of refused and dropped messages.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Requests handed out (or waiting) and not answered yet.
    pub fn pending_requests(&self) -> usize {
        self.running
    }

    /// Whether [`Self::poll_transmit`] may have something to write (when `false`, it has
    /// nothing, whatever the time).
    pub fn has_output(&self) -> bool {
        self.out.may_transmit()
    }

    /// Content-related messages sent and not acknowledged yet.
    pub fn unacknowledged(&self) -> usize {
        self.out.unacked.len()
    }

    /// A new connection carries this session now: everything the client has not
    /// acknowledged is sent again, under new msg_ids, and the `ping_delay_disconnect` timer
    /// (which belonged to the old connection) stops.
    pub fn handle_new_connection(&mut self) {
        self.disconnect_at = None;
        self.out.resend_all(&mut self.stats);
    }

    /// Refuses msg_ids from before `since_epoch`, a Unix time (code 16): see
    /// [`EndpointConfig::refuse_msg_ids_before`](crate::EndpointConfig::refuse_msg_ids_before).
    pub fn refuse_msg_ids_before(&mut self, since_epoch: std::time::Duration) {
        self.received.refuse_before(since_epoch);
    }

    /// Handles one opened message of this session.
    pub fn handle_message(&mut self, header: &EncryptedHeader, body: &[u8], now: Now) {
        self.inflater.reset(self.config.max_unpacked_per_message);
        let incoming = match Incoming::parse(body) {
            Ok(incoming) => incoming,
            Err(error) => return self.refuse_body(error),
        };
        let relevance = incoming.relevance();
        if let Err(rejection) = self
            .received
            .check(header.msg_id, header.seq_no, relevance, now)
        {
            return self.refuse(header.msg_id, header.seq_no, rejection, now);
        }
        let now_secs = now.unix_secs();
        let current = self.current_salt(now_secs);
        let first = self
            .first_salt
            .is_some_and(|(salt, until)| salt == header.salt && now_secs < until);
        let valid = header.salt == current
            || first
            || self.salts.is_valid(self.auth_key_id, header.salt, now_secs);
        if !valid {
            self.stats.count_bad_msg(48);
            let salt = current;
            let notice = types::BadServerSalt {
                bad_msg_id: header.msg_id,
                bad_msg_seqno: header.seq_no,
                error_code: 48,
                new_server_salt: salt,
            };
            self.send_service(notice.to_bytes(), MsgIdKind::ServerReply);
            return;
        }
        self.received.record_checked(header.msg_id, header.seq_no);
        if !self.created {
            self.created = true;
            // The first message of the session: inside a container, its first inner one, so
            // that the client knows every message from this id on was seen.
            let first_msg_id = match &incoming {
                Incoming::Container(container) => container
                    .messages
                    .iter()
                    .map(|message| message.msg_id)
                    .min()
                    .unwrap_or(header.msg_id),
                _ => header.msg_id,
            };
            let created = types::NewSessionCreated {
                first_msg_id,
                unique_id: self.unique_id,
                server_salt: current,
            };
            self.out.push_front(
                Bytes::from(created.to_bytes()),
                true,
                MsgIdKind::ServerInitiated,
                Tag::Other,
            );
        }
        self.dispatch(header.msg_id, header.seq_no, incoming, now, true);
    }

    /// Answers the request `msg_id`. Returns `false` (and sends nothing) when there is no
    /// such running request: already answered, dropped by the client, or never received.
    pub fn answer(&mut self, msg_id: i64, outcome: RpcOutcome, now: Now) -> bool {
        match self.requests.get(&msg_id) {
            Some(RequestState::Running) => {}
            Some(RequestState::Dropped) => {
                self.set_request(
                    msg_id,
                    RequestState::Answered {
                        failed: outcome.is_err(),
                    },
                );
                self.release_waiting(now);
                return false;
            }
            _ => return false,
        }
        self.set_request(
            msg_id,
            RequestState::Answered {
                failed: outcome.is_err(),
            },
        );
        let body = rpc_result_body(msg_id, outcome, self.config.gzip_threshold);
        // The answer acknowledges the request (core.telegram.org/mtproto/service_messages):
        // no separate msgs_ack for it.
        self.out.acks.remove(msg_id);
        self.out
            .push(body, true, MsgIdKind::ServerReply, Tag::Answer(msg_id));
        self.release_waiting(now);
        true
    }

    /// Sends an update (any TL object the client did not ask for), as a server-initiated
    /// content-related message. Returns `false`, and drops the update, when the send queue
    /// is over [`SessionConfig::max_queued_bytes`] (a client that does not read); the
    /// client is then sent `updatesTooLong` once the queue has room, so that it fetches
    /// what it missed with `updates.getDifference` instead of silently lacking it.
    pub fn push_update(&mut self, body: Bytes) -> bool {
        self.tell_of_lost_updates();
        if self.out.queued_bytes() + body.len() > self.config.max_queued_bytes {
            self.stats.dropped_updates += 1;
            self.updates_lost = true;
            return false;
        }
        self.out
            .push(body, true, MsgIdKind::ServerInitiated, Tag::Other);
        true
    }

    /// Sends an update of stream `stream` (a channel's posts): queued like
    /// [`Self::push_update`] while the send queue holds less than
    /// [`SessionConfig::max_stream_lag_bytes`]; past it `too_long` (the stream's
    /// `updateChannelTooLong`) is queued once instead and the stream's updates are skipped
    /// until the queue is empty again, so that a client that falls behind refetches the
    /// stream rather than the server holding it all.
    pub fn push_stream_update(&mut self, stream: i64, body: Bytes, too_long: &Bytes) -> StreamPush {
        if self.out.queued_bytes() == 0 {
            self.lagging.clear();
        }
        if self.lagging.contains(&stream) {
            self.stats.dropped_updates += 1;
            return StreamPush::Skipped;
        }
        if self.out.queued_bytes() + body.len() <= self.config.max_stream_lag_bytes {
            return if self.push_update(body) {
                StreamPush::Queued
            } else {
                StreamPush::Skipped
            };
        }
        self.stats.dropped_updates += 1;
        if self.lagging.len() >= self.config.max_lagging_streams
            || !self.push_update(too_long.clone())
        {
            self.updates_lost = true;
            return StreamPush::Skipped;
        }
        self.lagging.push(stream);
        StreamPush::TooLong
    }

    /// Queues `updatesTooLong` if updates were dropped and there is room for it now.
    fn tell_of_lost_updates(&mut self) {
        // Checked first: this runs on every transmission.
        if !self.updates_lost {
            return;
        }
        let too_long = columba_mtproto::tl::api::types::UpdatesTooLong {}.to_bytes();
        if self.out.queued_bytes() + too_long.len() <= self.config.max_queued_bytes {
            self.updates_lost = false;
            self.out.push(
                Bytes::from(too_long),
                true,
                MsgIdKind::ServerInitiated,
                Tag::Other,
            );
        }
    }

    /// Answers a `destroy_session` request passed on as [`ServerEvent::DestroySession`].
    pub fn answer_destroy_session(&mut self, session_id: i64, existed: bool) {
        let body = if existed {
            types::DestroySessionOk { session_id }.to_bytes()
        } else {
            types::DestroySessionNone { session_id }.to_bytes()
        };
        self.send_service(body, MsgIdKind::ServerReply);
    }

    /// Answers `destroy_auth_key` ([`ServerEvent::DestroyAuthKey`]).
    pub fn answer_destroy_auth_key(&mut self, destroyed: bool) {
        let answer: enums::DestroyAuthKeyRes = if destroyed {
            types::DestroyAuthKeyOk {}.into()
        } else {
            types::DestroyAuthKeyFail {}.into()
        };
        self.send_service(answer.to_bytes(), MsgIdKind::ServerReply);
    }

    /// The next thing the application or endpoint must act on.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Writes the next message to send into `buf`: [`columba_mtproto::message::ENCRYPTED_HEADROOM`]
    /// bytes of room, then the body, ready for `seal`. Returns its header, or `None` when
    /// nothing is due.
    pub fn poll_transmit(&mut self, now: Now, buf: &mut BytesMut) -> Option<EncryptedHeader> {
        let written = self.out.poll_transmit(now, buf, &mut self.stats)?;
        // What was written left room in the queue.
        self.tell_of_lost_updates();
        Some(EncryptedHeader {
            salt: self.current_salt(now.unix_secs()),
            session_id: self.session_id,
            msg_id: written.msg_id,
            seq_no: written.seq_no,
        })
    }

    /// When [`Self::handle_timeout`] has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waits = self.waiting.iter().map(|waiting| waiting.deadline).min();
        [self.out.acks.poll_timeout(), self.disconnect_at, waits]
            .into_iter()
            .flatten()
            .min()
    }

    /// Like [`Self::poll_timeout`], leaving out the acknowledgement deadline: for a session
    /// with no connection, whose acks cannot go out until one comes.
    pub fn poll_timeout_detached(&self) -> Option<Instant> {
        let waits = self.waiting.iter().map(|waiting| waiting.deadline).min();
        [self.disconnect_at, waits].into_iter().flatten().min()
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        if self.disconnect_at.is_some_and(|at| now.monotonic >= at) {
            self.disconnect_at = None;
            self.events.push_back(ServerEvent::Disconnect);
        }
        let expired: Vec<i64> = self
            .waiting
            .iter()
            .filter(|waiting| now.monotonic >= waiting.deadline)
            .map(|waiting| waiting.msg_id)
            .collect();
        for msg_id in expired {
            self.waiting.retain(|waiting| waiting.msg_id != msg_id);
            self.answer(msg_id, Err(RpcError::new(400, "MSG_WAIT_TIMEOUT")), now);
        }
    }

    /// The current slot's salt, from the cache while the slot lasts.
    fn current_salt(&mut self, now_secs: i64) -> i64 {
        match self.current_salt {
            Some(salt) if salt.valid_since <= now_secs && now_secs < salt.valid_until => salt.salt,
            _ => {
                let salt = self.salts.current(self.auth_key_id, now_secs);
                self.current_salt = Some(salt);
                salt.salt
            }
        }
    }

    fn refuse_body(&mut self, error: IncomingError) {
        match error {
            IncomingError::Malformed => self.stats.malformed += 1,
            IncomingError::TooManyIds => {
                self.stats.oversized_vectors += 1;
                self.events.push_back(ServerEvent::Flood);
            }
        }
    }

    fn refuse(&mut self, msg_id: i64, seq_no: i32, rejection: MsgIdRejection, now: Now) {
        match rejection {
            MsgIdRejection::Duplicate => {
                self.stats.duplicates += 1;
                // The client may have missed our ack: acknowledge again.
                if seq_no & 1 == 1 && !self.out.acks.contains(msg_id) {
                    self.out.acks.push(msg_id, now.monotonic);
                }
            }
            other => {
                let code = other.bad_msg_code().unwrap_or(20);
                self.stats.count_bad_msg(code);
                let notice = types::BadMsgNotification {
                    bad_msg_id: msg_id,
                    bad_msg_seqno: seq_no,
                    error_code: code,
                };
                self.send_service(notice.to_bytes(), MsgIdKind::ServerReply);
            }
        }
    }

    fn send_service(&mut self, body: Vec<u8>, kind: MsgIdKind) {
        self.out.push(Bytes::from(body), false, kind, Tag::Other);
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
                self.handle_container(msg_id, &container, now);
            }
            Incoming::Gzip(packed) => {
                match self.inflater.unpack(&packed, self.config.max_unpacked_len) {
                    // The ack, if due, was queued above for the wrapper's msg_id.
                    Ok(inner) => {
                        if let Some(parsed) = parse_unpacked(&inner, &mut self.stats) {
                            self.dispatch_unacked(msg_id, parsed, now);
                        }
                    }
                    Err(_) => self.stats.gzip_refused += 1,
                }
            }
            other => self.dispatch_unacked(msg_id, other, now),
        }
    }

    fn handle_container(&mut self, container_id: i64, container: &MsgContainer, now: Now) {
        if let Err(error) = check_container(container_id, container) {
            let code = error.bad_msg_code();
            self.stats.count_bad_msg(code);
            let notice = types::BadMsgNotification {
                bad_msg_id: container_id,
                bad_msg_seqno: 0,
                error_code: code,
            };
            self.send_service(notice.to_bytes(), MsgIdKind::ServerReply);
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
            let relevance = incoming.relevance();
            match self
                .received
                .accept(message.msg_id, message.seqno, relevance, now)
            {
                Ok(()) => self.dispatch(message.msg_id, message.seqno, incoming, now, false),
                Err(rejection) => self.refuse(message.msg_id, message.seqno, rejection, now),
            }
        }
    }

    /// Acts on one accepted message (its ack already queued).
    fn dispatch_unacked(&mut self, msg_id: i64, incoming: Incoming<'_>, now: Now) {
        match incoming {
            Incoming::Ack(ack) => {
                for id in ack.msg_ids {
                    self.out.acknowledge(id);
                }
            }
            Incoming::Ping(ping) => self.pong(msg_id, ping.ping_id),
            Incoming::PingDelayDisconnect(ping) => {
                self.pong(msg_id, ping.ping_id);
                let delay = u64::try_from(ping.disconnect_delay).unwrap_or(0);
                let delay =
                    std::time::Duration::from_secs(delay).min(self.config.max_disconnect_delay);
                self.disconnect_at = (!delay.is_zero()).then(|| now.monotonic + delay);
            }
            Incoming::GetFutureSalts(request) => {
                let now_secs = now.unix_secs();
                let grace = i64::try_from(crate::salt::SALT_GRACE.as_secs()).unwrap_or(0);
                let salts = self
                    .salts
                    .future_salts(self.auth_key_id, now_secs, request.num)
                    .into_iter()
                    // valid_until is when the salt stops being accepted: the end of its slot
                    // plus the grace period, so consecutive salts overlap by the grace.
                    .map(|salt| types::FutureSalt {
                        valid_since: clamp_i32(salt.valid_since),
                        valid_until: clamp_i32(salt.valid_until.saturating_add(grace)),
                        salt: salt.salt,
                    })
                    .collect();
                let answer = types::FutureSalts {
                    req_msg_id: msg_id,
                    now: clamp_i32(now_secs),
                    salts,
                };
                self.send_service(answer.to_bytes(), MsgIdKind::ServerReply);
            }
            Incoming::StateReq(request) => {
                let info = request
                    .msg_ids
                    .iter()
                    .map(|&id| self.state_of(id, now))
                    .collect();
                let answer = types::MsgsStateInfo {
                    req_msg_id: msg_id,
                    info,
                };
                self.send_service(answer.to_bytes(), MsgIdKind::ServerReply);
            }
            Incoming::ResendReq(request) => {
                for id in request.msg_ids {
                    if !self.out.resend(id, &mut self.stats) {
                        self.stats.unrelated += 1;
                    }
                }
            }
            Incoming::ResendAnsReq(request) => {
                // Each id costs a scan of the re-send record: a few per message suffice.
                if request.msg_ids.len() > MAX_RESEND_ANSWERS {
                    self.stats.oversized_vectors += 1;
                }
                for req in request.msg_ids.into_iter().take(MAX_RESEND_ANSWERS) {
                    let answer = self
                        .out
                        .unacked
                        .iter()
                        .find(|(_, record)| record.tag == Tag::Answer(req))
                        .map(|(&id, _)| id);
                    match answer {
                        Some(id) => {
                            self.out.resend(id, &mut self.stats);
                        }
                        None => self.stats.unrelated += 1,
                    }
                }
            }
            Incoming::RpcDropAnswer(request) => self.drop_answer(msg_id, request.req_msg_id),
            Incoming::DestroySession(request) => {
                self.events.push_back(ServerEvent::DestroySession {
                    msg_id,
                    session_id: request.session_id,
                })
            }
            Incoming::DestroyAuthKey => self.events.push_back(ServerEvent::DestroyAuthKey),
            Incoming::InvokeAfter { after, query } => {
                if after.len() > self.config.max_invoke_after_ids {
                    self.set_request(msg_id, RequestState::Running);
                    self.answer(msg_id, Err(RpcError::new(400, "MSG_WAIT_TOO_MANY")), now);
                } else {
                    self.admit(msg_id, Bytes::copy_from_slice(query), after, now);
                }
            }
            Incoming::Other(body) => {
                self.admit(msg_id, Bytes::copy_from_slice(body), Vec::new(), now);
            }
            Incoming::Copy | Incoming::HttpWait => self.stats.unsupported += 1,
            Incoming::Container(_)
            | Incoming::Gzip(_)
            | Incoming::BadMsg(_)
            | Incoming::BadSalt(_)
            | Incoming::StateInfo(_)
            | Incoming::AllInfo
            | Incoming::DetailedInfo(_)
            | Incoming::NewDetailedInfo(_)
            | Incoming::RpcResult { .. }
            | Incoming::Pong(_)
            | Incoming::FutureSalts(_)
            | Incoming::NewSession(_)
            | Incoming::DestroySessionOk(_)
            | Incoming::DestroySessionNone(_) => self.stats.unrelated += 1,
        }
    }
}

impl ServerSession {
    fn pong(&mut self, msg_id: i64, ping_id: i64) {
        let pong = types::Pong { msg_id, ping_id };
        self.send_service(pong.to_bytes(), MsgIdKind::ServerReply);
    }

    /// The `msgs_state_info` byte for a client msg_id
    /// (core.telegram.org/mtproto/service_messages_about_messages).
    fn state_of(&self, msg_id: i64, now: Now) -> u8 {
        let request = self.requests.get(&msg_id).copied();
        let seq_no = self.received.seq_no_of(msg_id);
        // A request is remembered longer than the window of ids: it was received.
        if seq_no.is_some() || request.is_some() {
            let mut state = 4;
            if seq_no.is_some_and(|seq_no| seq_no & 1 == 0) {
                state |= 16;
            } else if !self.out.acks.contains(msg_id) {
                state |= 8;
            }
            match request {
                Some(RequestState::Running) => state |= 32,
                Some(RequestState::Answered { .. } | RequestState::Dropped) => state |= 32 | 64,
                None => {}
            }
            return state;
        }
        if self
            .received
            .window_floor()
            .is_some_and(|floor| msg_id <= floor)
        {
            return 1;
        }
        let future_limit =
            columba_mtproto::time::msg_id_at(now.unix + self.config.msg_ids.max_future);
        if msg_id > future_limit { 3 } else { 2 }
    }

    fn drop_answer(&mut self, msg_id: i64, req_msg_id: i64) {
        let answer: enums::RpcDropAnswer = match self.requests.get(&req_msg_id) {
            Some(RequestState::Running) => {
                self.set_request(req_msg_id, RequestState::Dropped);
                self.waiting.retain(|waiting| waiting.msg_id != req_msg_id);
                self.events
                    .push_back(ServerEvent::Cancelled { msg_id: req_msg_id });
                types::RpcAnswerDroppedRunning {}.into()
            }
            Some(RequestState::Answered { .. }) => {
                let sent = self
                    .out
                    .unacked
                    .iter()
                    .find(|(_, record)| record.tag == Tag::Answer(req_msg_id))
                    .map(|(&id, record)| (id, record.seq_no, record.body.len()));
                match sent {
                    Some((id, seq_no, len)) => {
                        self.out.acknowledge(id);
                        types::RpcAnswerDropped {
                            msg_id: id,
                            seq_no,
                            bytes: i32::try_from(len).unwrap_or(i32::MAX),
                        }
                        .into()
                    }
                    None => types::RpcAnswerUnknown {}.into(),
                }
            }
            _ => types::RpcAnswerUnknown {}.into(),
        };
        let outcome: RpcOutcome = Ok(Bytes::from(answer.to_bytes()));
        let body = rpc_result_body(msg_id, outcome, None);
        self.out
            .push(body, true, MsgIdKind::ServerReply, Tag::Other);
    }

    /// Takes in a query: refused when too many are pending, otherwise handed to the
    /// application now or once the messages in `after` are answered.
    fn admit(&mut self, msg_id: i64, query: Bytes, after: Vec<i64>, now: Now) {
        if self.pending_requests() >= self.config.max_pending_requests {
            self.stats.flood_refused += 1;
            self.set_request(msg_id, RequestState::Running);
            self.answer(msg_id, Err(RpcError::new(420, "FLOOD_WAIT_1")), now);
            self.prune_requests();
            return;
        }
        self.set_request(msg_id, RequestState::Running);
        self.prune_requests();
        if after.is_empty() {
            self.events.push_back(ServerEvent::Request {
                msg_id,
                body: query,
            });
            return;
        }
        self.waiting.push(Waiting {
            msg_id,
            after,
            query,
            deadline: now.monotonic + self.config.invoke_after_timeout,
        });
        self.release_waiting(now);
    }

    /// Whether the message `msg_id` that a query waits for is done: `Some(true)` answered
    /// (or not a request), `Some(false)` failed or dropped, `None` not yet.
    fn dependency(&self, msg_id: i64) -> Option<bool> {
        match self.requests.get(&msg_id) {
            Some(RequestState::Answered { failed }) => Some(!failed),
            Some(RequestState::Dropped) => Some(false),
            Some(RequestState::Running) => None,
            None if self.received.contains(msg_id) => Some(true),
            // Too old to know: the client waited long enough.
            None if self
                .received
                .window_floor()
                .is_some_and(|floor| msg_id <= floor) =>
            {
                Some(true)
            }
            None => None,
        }
    }

    /// Hands out the waiting queries whose dependencies are done, in msg_id order; fails
    /// those whose dependency failed.
    fn release_waiting(&mut self, now: Now) {
        loop {
            let mut ready = None;
            for (index, waiting) in self.waiting.iter().enumerate() {
                let states: Vec<Option<bool>> = waiting
                    .after
                    .iter()
                    .map(|&id| self.dependency(id))
                    .collect();
                if states.contains(&Some(false)) {
                    ready = Some((index, false));
                    break;
                }
                if states.iter().all(|state| *state == Some(true)) {
                    ready = Some((index, true));
                    break;
                }
            }
            let Some((index, ok)) = ready else {
                return;
            };
            let waiting = self.waiting.remove(index);
            if ok {
                self.events.push_back(ServerEvent::Request {
                    msg_id: waiting.msg_id,
                    body: waiting.query,
                });
            } else {
                self.answer(
                    waiting.msg_id,
                    Err(RpcError::new(400, "MSG_WAIT_FAILED")),
                    now,
                );
            }
        }
    }

    /// Records a request's state, keeping the count of running ones.
    fn set_request(&mut self, msg_id: i64, state: RequestState) {
        let occupies =
            |state: RequestState| matches!(state, RequestState::Running | RequestState::Dropped);
        let old = self.requests.insert(msg_id, state);
        if old.is_some_and(occupies) {
            self.running = self.running.saturating_sub(1);
        }
        if occupies(state) {
            self.running += 1;
        }
    }

    /// Caps what is remembered of finished requests at the window of received ids plus the
    /// running ones, forgetting the oldest finished first. Old entries sit at the front of
    /// the map (it is ordered by msg_id), so this costs a step or two per request.
    fn prune_requests(&mut self) {
        let cap = self.config.msg_ids.window + self.config.max_pending_requests;
        while self.requests.len() > cap {
            let oldest_finished = self
                .requests
                .iter()
                .find(|(_, state)| matches!(state, RequestState::Answered { .. }))
                .map(|(&id, _)| id);
            match oldest_finished {
                Some(id) => {
                    self.requests.remove(&id);
                }
                None => break,
            }
        }
    }
}

fn clamp_i32(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}
