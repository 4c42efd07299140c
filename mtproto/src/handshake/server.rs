//! The server role of the key exchange.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::{
    HandshakeError, KeyKind, Now, be_bytes_minimal, be_to_u64, decrypt_with_hash,
    encrypt_with_hash, plain_message,
};
use crate::crypto::{
    AesKeyIv, AuthKey, DH_LEN, DhGroup, RsaPrivateKey, first_server_salt, handshake_key_iv,
    new_nonce_hash, random_pq, rsa_decrypt_handshake_data,
};
use crate::message::read_plain;
use crate::time::{MsgIdGenerator, MsgIdKind};
use crate::tl::mtproto::{enums, functions, types};
use crate::tl::{Deserializable, Identifiable, Serializable};

/// Default time a client has to complete the exchange, from its first `req_pq_multi`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// Default number of key exchanges one connection may start (a client may create a
/// permanent and a temporary key, and retry once or twice).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
/// Default number of `dh_gen_retry` rounds before `dh_gen_fail`.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default upper bound on a temporary key's lifetime (longer requests are shortened).
pub const DEFAULT_MAX_TEMP_KEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the server side needs, shared by every connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The server's RSA keys; `resPQ` offers all their fingerprints.
    pub rsa_keys: Vec<Arc<RsaPrivateKey>>,
    /// The DH group (default: Telegram's prime with g = 3).
    pub dh_group: DhGroup,
    /// Time allowed from the first `req_pq_multi` to the key.
    pub deadline: Duration,
    /// Key exchanges allowed on one connection.
    pub max_attempts: u32,
    /// `dh_gen_retry` rounds allowed before `dh_gen_fail`.
    pub max_retries: u32,
    /// Whether this is a test server: clients asking for a test DC (dc +10000) on a
    /// production server, or the reverse, get -444.
    pub test_mode: bool,
    /// Upper bound on temporary keys' lifetimes.
    pub max_temp_key_lifetime: Duration,
    /// Ask for another `g_b` (`dh_gen_retry`) when the key's first byte is zero. Some clients
    /// (Telethon 1.x) encode `g_ab` without its leading zero bytes and so derive a different
    /// key, and a different auth_key_id, in 1 exchange of 256; another round costs the client
    /// one more exponentiation and removes 1/256 of a 2048-bit key space. On by default.
    pub refuse_short_keys: bool,
}

impl ServerConfig {
    /// A configuration with the given keys and every other setting at its default.
    pub fn new(rsa_keys: Vec<Arc<RsaPrivateKey>>) -> Self {
        Self {
            rsa_keys,
            dh_group: DhGroup::telegram(),
            deadline: DEFAULT_DEADLINE,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_retries: DEFAULT_MAX_RETRIES,
            test_mode: false,
            max_temp_key_lifetime: DEFAULT_MAX_TEMP_KEY_LIFETIME,
            refuse_short_keys: true,
        }
    }
}

/// A key the server created.
#[derive(Debug)]
pub struct NewAuthKey {
    /// The authorization key.
    pub auth_key: AuthKey,
    /// The first server salt: new_nonce[0..8] XOR server_nonce[0..8].
    pub server_salt: i64,
    /// Permanent, or temporary with the lifetime granted.
    pub kind: KeyKind,
    /// For a temporary key, when it expires (Unix seconds).
    pub expires_at: Option<i64>,
    /// The DC the client named (`None` for the inner-data forms without one).
    pub dc: Option<i32>,
    /// The server_time sent to the client (Unix seconds).
    pub created_at: i64,
}

/// What the caller does next.
///
/// Exhaustive on purpose: a key exchange step either sends a message or ends with a key
/// (failures are errors), and a driver must handle both.
#[derive(Debug)]
pub enum ServerEvent {
    /// Send this unencrypted message.
    Reply(Vec<u8>),
    /// A key was computed: check whether its auth_key_id is already in use (for example with
    /// an `AuthKeyStore`) and call [`ServerHandshake::confirm_auth_key_id`].
    CheckAuthKeyId(i64),
    /// Send this last message (`dh_gen_ok`); the key is ready.
    Done {
        /// The `dh_gen_ok` message.
        reply: Vec<u8>,
        /// The key and its metadata.
        key: Box<NewAuthKey>,
    },
    /// Send this message (`dh_gen_fail`); the handshake is over without a key.
    Failed(Vec<u8>),
}

/// What the server remembers between `resPQ` and `req_DH_params`.
struct Issued {
    nonce: [u8; 16],
    server_nonce: [u8; 16],
    p: u64,
    q: u64,
    pq: u64,
}

/// What the server remembers between `server_DH_params_ok` and `set_client_DH_params`.
struct DhSent {
    nonce: [u8; 16],
    server_nonce: [u8; 16],
    new_nonce: Zeroizing<[u8; 32]>,
    secret: Zeroizing<[u8; DH_LEN]>,
    key_iv: AesKeyIv,
    kind: KeyKind,
    dc: Option<i32>,
    server_time: i64,
    expected_retry_id: i64,
    retries: u32,
}

enum State {
    Idle,
    SentResPq(Issued),
    SentDhParams(Box<DhSent>),
    /// Waiting for the caller's answer about the auth_key_id.
    KeyPending(Box<DhSent>, Box<AuthKey>),
    Done,
    Failed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::Idle => "waiting for req_pq_multi",
            Self::SentResPq(_) => "waiting for req_DH_params",
            Self::SentDhParams(_) => "waiting for set_client_DH_params",
            Self::KeyPending(..) => "waiting for the auth_key_id check",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// The server side of one connection's key exchanges.
pub struct ServerHandshake {
    config: Arc<ServerConfig>,
    state: State,
    started: Option<Instant>,
    attempts: u32,
    msg_ids: MsgIdGenerator,
    /// The last request that got an answer and that answer's body: an identical request
    /// (a client re-sending after a lost reply) gets the identical answer.
    last_exchange: Option<(Vec<u8>, Vec<u8>)>,
}

impl core::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("state", &self.state.name())
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl ServerHandshake {
    /// A handshake for a new connection.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            config,
            state: State::Idle,
            started: None,
            attempts: 0,
            msg_ids: MsgIdGenerator::new(),
            last_exchange: None,
        }
    }

    /// Whether a key was created and the handshake is over.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the handshake failed; it accepts nothing more.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// The instant after which [`Self::handle`] fails with `DeadlineExceeded`, once started.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|started| started + self.config.deadline)
    }

    /// Handles one unencrypted message from the client. On error the handshake is failed
    /// for good; send [`HandshakeError::transport_error`] and close.
    pub fn handle<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        message: &[u8],
        now: Now,
        rng: &mut R,
    ) -> Result<ServerEvent, HandshakeError> {
        if matches!(self.state, State::Failed) {
            return Err(HandshakeError::Poisoned);
        }
        let result = self.step(message, now, rng);
        if result.is_err() {
            self.state = State::Failed;
            self.last_exchange = None;
        }
        result
    }

    fn step<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        message: &[u8],
        now: Now,
        rng: &mut R,
    ) -> Result<ServerEvent, HandshakeError> {
        if let Some(deadline) = self.deadline() {
            if now.monotonic > deadline && !matches!(self.state, State::Done | State::Idle) {
                return Err(HandshakeError::DeadlineExceeded);
            }
        }
        let plain = read_plain(message)?;
        if plain.msg_id % 4 != 0 {
            return Err(HandshakeError::BadMsgId(plain.msg_id));
        }
        let body = plain.body;
        if let Some((request, reply)) = &self.last_exchange {
            if request.as_slice() == body {
                let reply = reply.clone();
                return Ok(ServerEvent::Reply(self.wrap(&reply, &now)));
            }
        }
        let constructor = body
            .first_chunk::<4>()
            .map_or(0, |id| u32::from_le_bytes(*id));
        match constructor {
            functions::ReqPqMulti::CONSTRUCTOR_ID | functions::ReqPq::CONSTRUCTOR_ID => {
                self.on_req_pq(body, constructor, now, rng)
            }
            functions::ReqDHParams::CONSTRUCTOR_ID => self.on_req_dh_params(body, now, rng),
            functions::SetClientDHParams::CONSTRUCTOR_ID => self.on_set_client_dh_params(body),
            _ => Err(HandshakeError::Unexpected {
                constructor,
                state: self.state.name(),
            }),
        }
    }

    fn wrap(&mut self, body: &[u8], now: &Now) -> Vec<u8> {
        let msg_id = self.msg_ids.next(*now, MsgIdKind::ServerReply);
        plain_message(msg_id, body)
    }

    fn remember_and_wrap(&mut self, request: &[u8], reply: Vec<u8>, now: &Now) -> Vec<u8> {
        let message = self.wrap(&reply, now);
        self.last_exchange = Some((request.to_vec(), reply));
        message
    }

    fn on_req_pq<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        body: &[u8],
        constructor: u32,
        now: Now,
        rng: &mut R,
    ) -> Result<ServerEvent, HandshakeError> {
        if matches!(self.state, State::KeyPending(..)) {
            return Err(HandshakeError::Unexpected {
                constructor,
                state: self.state.name(),
            });
        }
        let nonce = if constructor == functions::ReqPqMulti::CONSTRUCTOR_ID {
            functions::ReqPqMulti::from_bytes(body).map(|r| r.nonce)
        } else {
            functions::ReqPq::from_bytes(body).map(|r| r.nonce)
        }
        .map_err(|_| HandshakeError::Unexpected {
            constructor,
            state: self.state.name(),
        })?;
        self.attempts += 1;
        if self.attempts > self.config.max_attempts {
            return Err(HandshakeError::TooManyAttempts);
        }
        let mut server_nonce = [0u8; 16];
        rng.fill_bytes(&mut server_nonce);
        let (p, q, pq) = random_pq(rng);
        let reply = types::ResPQ {
            nonce,
            server_nonce,
            pq: be_bytes_minimal(pq),
            server_public_key_fingerprints: self
                .config
                .rsa_keys
                .iter()
                .map(|key| key.public_key().fingerprint())
                .collect(),
        }
        .to_bytes();
        self.state = State::SentResPq(Issued {
            nonce,
            server_nonce,
            p,
            q,
            pq,
        });
        self.started = Some(now.monotonic);
        Ok(ServerEvent::Reply(
            self.remember_and_wrap(body, reply, &now),
        ))
    }

    fn on_req_dh_params<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        body: &[u8],
        now: Now,
        rng: &mut R,
    ) -> Result<ServerEvent, HandshakeError> {
        let State::SentResPq(issued) = &self.state else {
            return Err(HandshakeError::Unexpected {
                constructor: functions::ReqDHParams::CONSTRUCTOR_ID,
                state: self.state.name(),
            });
        };
        let request =
            functions::ReqDHParams::from_bytes(body).map_err(|_| HandshakeError::Unexpected {
                constructor: functions::ReqDHParams::CONSTRUCTOR_ID,
                state: "parsing req_DH_params",
            })?;
        if request.nonce != issued.nonce {
            return Err(HandshakeError::NonceMismatch);
        }
        if request.server_nonce != issued.server_nonce {
            return Err(HandshakeError::ServerNonceMismatch);
        }
        if be_to_u64(&request.p) != Some(issued.p) || be_to_u64(&request.q) != Some(issued.q) {
            return Err(HandshakeError::PqMismatch);
        }
        let key = self
            .config
            .rsa_keys
            .iter()
            .find(|key| key.public_key().fingerprint() == request.public_key_fingerprint)
            .ok_or(HandshakeError::UnknownFingerprint(
                request.public_key_fingerprint,
            ))?;
        let (data, _encoding) = rsa_decrypt_handshake_data(key, &request.encrypted_data, rng)
            .map_err(|_| HandshakeError::EncryptedDataRejected)?;
        let inner = enums::PQInnerData::deserialize(&mut crate::tl::Reader::new(&data))
            .map_err(|_| HandshakeError::EncryptedDataRejected)?;
        let fields = InnerFields::from(inner);
        if fields.nonce != issued.nonce {
            return Err(HandshakeError::NonceMismatch);
        }
        if fields.server_nonce != issued.server_nonce {
            return Err(HandshakeError::ServerNonceMismatch);
        }
        if be_to_u64(&fields.pq) != Some(issued.pq)
            || be_to_u64(&fields.p) != Some(issued.p)
            || be_to_u64(&fields.q) != Some(issued.q)
        {
            return Err(HandshakeError::PqMismatch);
        }
        if let Some(dc) = fields.dc {
            let test_dc = dc.unsigned_abs() >= 10_000;
            if test_dc != self.config.test_mode {
                return Err(HandshakeError::WrongDc(dc));
            }
        }
        let kind = match fields.expires_in {
            None => KeyKind::Permanent,
            Some(expires_in) if expires_in > 0 => {
                let cap =
                    i32::try_from(self.config.max_temp_key_lifetime.as_secs()).unwrap_or(i32::MAX);
                KeyKind::Temporary {
                    expires_in: expires_in.min(cap),
                }
            }
            Some(expires_in) => return Err(HandshakeError::BadExpiresIn(expires_in)),
        };

        let group = &self.config.dh_group;
        let (secret, g_a) = group.keypair(rng);
        let server_time = now.unix_secs();
        let answer = types::ServerDHInnerData {
            nonce: issued.nonce,
            server_nonce: issued.server_nonce,
            g: i32::try_from(group.g()).unwrap_or(3),
            dh_prime: group.prime().to_vec(),
            g_a: g_a.to_vec(),
            server_time: i32::try_from(server_time).unwrap_or(i32::MAX),
        }
        .to_bytes();
        let key_iv = handshake_key_iv(&fields.new_nonce, &issued.server_nonce);
        let encrypted_answer = encrypt_with_hash(&answer, &key_iv, rng);
        let reply = types::ServerDHParamsOk {
            nonce: issued.nonce,
            server_nonce: issued.server_nonce,
            encrypted_answer,
        }
        .to_bytes();
        self.state = State::SentDhParams(Box::new(DhSent {
            nonce: issued.nonce,
            server_nonce: issued.server_nonce,
            new_nonce: Zeroizing::new(fields.new_nonce),
            secret,
            key_iv,
            kind,
            dc: fields.dc,
            server_time,
            expected_retry_id: 0,
            retries: 0,
        }));
        Ok(ServerEvent::Reply(
            self.remember_and_wrap(body, reply, &now),
        ))
    }

    fn on_set_client_dh_params(&mut self, body: &[u8]) -> Result<ServerEvent, HandshakeError> {
        let constructor = functions::SetClientDHParams::CONSTRUCTOR_ID;
        let State::SentDhParams(sent) = &self.state else {
            return Err(HandshakeError::Unexpected {
                constructor,
                state: self.state.name(),
            });
        };
        let request = functions::SetClientDHParams::from_bytes(body).map_err(|_| {
            HandshakeError::Unexpected {
                constructor,
                state: "parsing set_client_DH_params",
            }
        })?;
        if request.nonce != sent.nonce {
            return Err(HandshakeError::NonceMismatch);
        }
        if request.server_nonce != sent.server_nonce {
            return Err(HandshakeError::ServerNonceMismatch);
        }
        let (inner, _) =
            decrypt_with_hash::<enums::ClientDHInnerData>(&request.encrypted_data, &sent.key_iv)?;
        let enums::ClientDHInnerData::ClientDHInnerData(inner) = inner;
        if inner.nonce != sent.nonce {
            return Err(HandshakeError::NonceMismatch);
        }
        if inner.server_nonce != sent.server_nonce {
            return Err(HandshakeError::ServerNonceMismatch);
        }
        if inner.retry_id != sent.expected_retry_id {
            return Err(HandshakeError::BadRetryId);
        }
        let shared = self
            .config
            .dh_group
            .shared_secret(&inner.g_b, &sent.secret)?;
        let auth_key = AuthKey::from_bytes(*shared);
        let id = auth_key.id();
        let State::SentDhParams(sent) = core::mem::replace(&mut self.state, State::Failed) else {
            return Err(HandshakeError::WrongState("state changed"));
        };
        self.state = State::KeyPending(sent, Box::new(auth_key));
        // A repeated set_client_DH_params must not produce a second key.
        self.last_exchange = None;
        Ok(ServerEvent::CheckAuthKeyId(id))
    }

    /// Answers [`ServerEvent::CheckAuthKeyId`]: `in_use` says whether another key already has
    /// this auth_key_id. A free id completes the handshake (`dh_gen_ok`); a taken one (or a
    /// key starting with a zero byte, see [`ServerConfig::refuse_short_keys`]) asks the
    /// client for another g_b (`dh_gen_retry`), up to the retry cap (then `dh_gen_fail`).
    pub fn confirm_auth_key_id(
        &mut self,
        in_use: bool,
        now: Now,
    ) -> Result<ServerEvent, HandshakeError> {
        let State::KeyPending(mut sent, auth_key) =
            core::mem::replace(&mut self.state, State::Failed)
        else {
            // Restore nothing: calling this out of order is the caller's bug, and the
            // handshake cannot continue safely.
            return Err(HandshakeError::WrongState(
                "no auth_key_id is waiting for a check",
            ));
        };
        let aux_hash = auth_key.aux_hash();
        if !needs_another_g_b(&self.config, in_use, &auth_key) {
            let reply = types::DhGenOk {
                nonce: sent.nonce,
                server_nonce: sent.server_nonce,
                new_nonce_hash1: new_nonce_hash(&sent.new_nonce, 1, &aux_hash),
            }
            .to_bytes();
            let expires_at = match sent.kind {
                KeyKind::Temporary { expires_in } => Some(sent.server_time + i64::from(expires_in)),
                KeyKind::Permanent => None,
            };
            let key = NewAuthKey {
                server_salt: first_server_salt(&sent.new_nonce, &sent.server_nonce),
                auth_key: *auth_key,
                kind: sent.kind,
                expires_at,
                dc: sent.dc,
                created_at: sent.server_time,
            };
            self.state = State::Done;
            return Ok(ServerEvent::Done {
                reply: self.wrap(&reply, &now),
                key: Box::new(key),
            });
        }
        sent.retries += 1;
        if sent.retries > self.config.max_retries {
            let reply = types::DhGenFail {
                nonce: sent.nonce,
                server_nonce: sent.server_nonce,
                new_nonce_hash3: new_nonce_hash(&sent.new_nonce, 3, &aux_hash),
            }
            .to_bytes();
            return Ok(ServerEvent::Failed(self.wrap(&reply, &now)));
        }
        let reply = types::DhGenRetry {
            nonce: sent.nonce,
            server_nonce: sent.server_nonce,
            new_nonce_hash2: new_nonce_hash(&sent.new_nonce, 2, &aux_hash),
        }
        .to_bytes();
        sent.expected_retry_id = i64::from_le_bytes(aux_hash);
        self.state = State::SentDhParams(sent);
        Ok(ServerEvent::Reply(self.wrap(&reply, &now)))
    }
}

/// Whether the server asks for another `g_b` rather than accept `key`: its id is taken, or it
/// starts with a zero byte and [`ServerConfig::refuse_short_keys`] is on.
pub(crate) fn needs_another_g_b(config: &ServerConfig, in_use: bool, key: &AuthKey) -> bool {
    in_use || (config.refuse_short_keys && key.as_bytes().first() == Some(&0))
}

/// The fields shared by the four inner-data constructors.
struct InnerFields {
    pq: Vec<u8>,
    p: Vec<u8>,
    q: Vec<u8>,
    nonce: [u8; 16],
    server_nonce: [u8; 16],
    new_nonce: [u8; 32],
    dc: Option<i32>,
    expires_in: Option<i32>,
}

/// Moves the shared fields out of one inner-data constructor, with its `dc` and `expires_in`
/// when it has them.
macro_rules! inner_fields {
    ($boxed:expr $(, dc: $dc:ident)? $(, expires_in: $expires:ident)?) => {{
        let x = *$boxed;
        InnerFields {
            pq: x.pq,
            p: x.p,
            q: x.q,
            nonce: x.nonce,
            server_nonce: x.server_nonce,
            new_nonce: x.new_nonce,
            dc: None $(.or(Some(x.$dc)))?,
            expires_in: None $(.or(Some(x.$expires)))?,
        }
    }};
}

impl From<enums::PQInnerData> for InnerFields {
    fn from(inner: enums::PQInnerData) -> Self {
        match inner {
            enums::PQInnerData::PQInnerData(x) => inner_fields!(x),
            enums::PQInnerData::PQInnerDataDc(x) => inner_fields!(x, dc: dc),
            enums::PQInnerData::PQInnerDataTemp(x) => inner_fields!(x, expires_in: expires_in),
            enums::PQInnerData::PQInnerDataTempDc(x) => {
                inner_fields!(x, dc: dc, expires_in: expires_in)
            }
        }
    }
}

impl Drop for InnerFields {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.new_nonce);
    }
}
