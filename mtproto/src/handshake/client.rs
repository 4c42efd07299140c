//! The client role of the key exchange.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{CryptoRng, RngCore};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::danger::{InnerDataForm, RsaEncoding};
use super::{
    HandshakeError, KeyKind, Now, be_bytes_minimal, be_to_u64, decrypt_with_hash,
    encrypt_with_hash, plain_message,
};
use crate::crypto::{
    AesKeyIv, AuthKey, DH_LEN, DhGroup, DhPrimeCache, RsaPublicKey, ct_eq, factorize_pq,
    first_server_salt, handshake_key_iv, new_nonce_hash, rsa_legacy_encrypt, rsa_pad_encrypt,
};
use crate::message::read_plain;
use crate::time::{MsgIdGenerator, MsgIdKind};
use crate::tl::mtproto::{enums, functions, types};
use crate::tl::{Deserializable, Serializable};

/// What the client side needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The server RSA keys this client trusts (the first one the server offers is used).
    pub rsa_keys: Vec<RsaPublicKey>,
    /// The DC named in the inner data: +10000 for test DCs, negative for media DCs.
    pub dc: i32,
    /// Permanent or temporary key.
    pub kind: KeyKind,
    /// Verified DH primes, shared between handshakes.
    pub prime_cache: Arc<DhPrimeCache>,
    /// `dh_gen_retry` rounds to go through before giving up.
    pub max_retries: u32,
    /// Time allowed for the whole exchange.
    pub deadline: Duration,
    /// How the inner data is RSA-encrypted; RSA_PAD unless testing old servers.
    pub rsa_encoding: RsaEncoding,
    /// Which inner-data constructors to send; the `_dc` ones unless testing old servers.
    pub inner_data_form: InnerDataForm,
}

impl ClientConfig {
    /// A permanent-key configuration for `dc` with the given trusted keys.
    pub fn new(rsa_keys: Vec<RsaPublicKey>, dc: i32) -> Self {
        Self {
            rsa_keys,
            dc,
            kind: KeyKind::Permanent,
            prime_cache: DhPrimeCache::new(),
            max_retries: 5,
            deadline: Duration::from_secs(60),
            rsa_encoding: RsaEncoding::Pad,
            inner_data_form: InnerDataForm::WithDc,
        }
    }
}

/// The key a client obtained.
#[derive(Debug)]
pub struct ClientKey {
    /// The authorization key.
    pub auth_key: AuthKey,
    /// The first server salt.
    pub server_salt: i64,
    /// `server_time - local time` in seconds, to correct msg_ids with.
    pub time_offset: i64,
    /// Permanent, or temporary with the lifetime asked for.
    pub kind: KeyKind,
    /// For a temporary key, when it expires by the server's clock (Unix seconds).
    pub expires_at: Option<i64>,
}

/// What the caller does next.
///
/// Exhaustive on purpose: a key exchange step either sends a message or ends with a key
/// (failures are errors), and a driver must handle both.
#[derive(Debug)]
pub enum ClientEvent {
    /// Send this unencrypted message.
    Send(Vec<u8>),
    /// The key is ready.
    Done(Box<ClientKey>),
}

struct AfterResPq {
    server_nonce: [u8; 16],
    new_nonce: Zeroizing<[u8; 32]>,
}

struct AfterDhParams {
    server_nonce: [u8; 16],
    new_nonce: Zeroizing<[u8; 32]>,
    key_iv: AesKeyIv,
    group: DhGroup,
    g_a: Vec<u8>,
    time_offset: i64,
    server_time: i64,
    /// The key this attempt computed, whose hashes the server's answer must carry.
    auth_key: AuthKey,
    retries: u32,
}

enum State {
    SentReqPq,
    SentReqDhParams(AfterResPq),
    SentClientDhParams(Box<AfterDhParams>),
    Done,
    Failed,
}

/// The client side of one key exchange.
pub struct ClientHandshake {
    config: ClientConfig,
    nonce: [u8; 16],
    state: State,
    started: Instant,
    msg_ids: MsgIdGenerator,
}

impl core::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("dc", &self.config.dc)
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// Starts an exchange; returns the machine and the first message (`req_pq_multi`).
    pub fn start<R: RngCore + CryptoRng + ?Sized>(
        config: ClientConfig,
        now: Now,
        rng: &mut R,
    ) -> (Self, Vec<u8>) {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let mut machine = Self {
            config,
            nonce,
            state: State::SentReqPq,
            started: now.monotonic,
            msg_ids: MsgIdGenerator::new(),
        };
        let body = functions::ReqPqMulti { nonce }.to_bytes();
        let message = machine.wrap(&body, &now, 0);
        (machine, message)
    }

    fn wrap(&mut self, body: &[u8], now: &Now, offset: i64) -> Vec<u8> {
        self.msg_ids.set_time_offset(offset);
        let msg_id = self.msg_ids.next(*now, MsgIdKind::Client);
        plain_message(msg_id, body)
    }

    /// Handles one unencrypted message from the server. Any error ends the exchange.
    pub fn handle<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        message: &[u8],
        now: Now,
        rng: &mut R,
    ) -> Result<ClientEvent, HandshakeError> {
        if matches!(self.state, State::Failed | State::Done) {
            return Err(HandshakeError::Poisoned);
        }
        let result = self.step(message, now, rng);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn step<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        message: &[u8],
        now: Now,
        rng: &mut R,
    ) -> Result<ClientEvent, HandshakeError> {
        if now.monotonic > self.started + self.config.deadline {
            return Err(HandshakeError::DeadlineExceeded);
        }
        let plain = read_plain(message)?;
        if plain.msg_id % 2 == 0 {
            return Err(HandshakeError::BadMsgId(plain.msg_id));
        }
        let body = plain.body;
        // Parses the body as what the current state waits for.
        fn expect<T: Deserializable>(
            body: &[u8],
            state: &'static str,
        ) -> Result<T, HandshakeError> {
            T::from_bytes(body).map_err(|_| HandshakeError::Unexpected {
                constructor: body
                    .first_chunk::<4>()
                    .map_or(0, |id| u32::from_le_bytes(*id)),
                state,
            })
        }
        match core::mem::replace(&mut self.state, State::Failed) {
            State::SentReqPq => {
                let res_pq = expect::<enums::ResPQ>(body, "waiting for resPQ")?;
                self.on_res_pq(res_pq, now, rng)
            }
            State::SentReqDhParams(after) => {
                let params = expect::<enums::ServerDHParams>(body, "waiting for server_DH_params")?;
                self.on_server_dh_params(params, after, now, rng)
            }
            State::SentClientDhParams(after) => {
                let answer =
                    expect::<enums::SetClientDHParamsAnswer>(body, "waiting for dh_gen_*")?;
                self.on_dh_gen(answer, after, now, rng)
            }
            State::Done | State::Failed => Err(HandshakeError::Poisoned),
        }
    }

    fn on_res_pq<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        res_pq: enums::ResPQ,
        now: Now,
        rng: &mut R,
    ) -> Result<ClientEvent, HandshakeError> {
        let enums::ResPQ::ResPQ(res_pq) = res_pq;
        if res_pq.nonce != self.nonce {
            return Err(HandshakeError::NonceMismatch);
        }
        let pq = be_to_u64(&res_pq.pq).ok_or(HandshakeError::PqMismatch)?;
        let (p, q) = factorize_pq(pq).ok_or(HandshakeError::PqMismatch)?;
        let key = self
            .config
            .rsa_keys
            .iter()
            .find(|key| {
                res_pq
                    .server_public_key_fingerprints
                    .contains(&key.fingerprint())
            })
            .ok_or(HandshakeError::NoKnownFingerprint)?
            .clone();
        let mut new_nonce = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(new_nonce.as_mut_slice());
        let (pq_bytes, p_bytes, q_bytes) =
            (res_pq.pq.clone(), be_bytes_minimal(p), be_bytes_minimal(q));
        let (nonce, server_nonce, dc) = (self.nonce, res_pq.server_nonce, self.config.dc);
        let inner: enums::PQInnerData = match (self.config.kind, self.config.inner_data_form) {
            (KeyKind::Permanent, InnerDataForm::WithDc) => types::PQInnerDataDc {
                pq: pq_bytes,
                p: p_bytes,
                q: q_bytes,
                nonce,
                server_nonce,
                new_nonce: *new_nonce,
                dc,
            }
            .into(),
            (KeyKind::Permanent, InnerDataForm::WithoutDc) => types::PQInnerData {
                pq: pq_bytes,
                p: p_bytes,
                q: q_bytes,
                nonce,
                server_nonce,
                new_nonce: *new_nonce,
            }
            .into(),
            (KeyKind::Temporary { expires_in }, InnerDataForm::WithDc) => {
                types::PQInnerDataTempDc {
                    pq: pq_bytes,
                    p: p_bytes,
                    q: q_bytes,
                    nonce,
                    server_nonce,
                    new_nonce: *new_nonce,
                    dc,
                    expires_in,
                }
                .into()
            }
            (KeyKind::Temporary { expires_in }, InnerDataForm::WithoutDc) => {
                types::PQInnerDataTemp {
                    pq: pq_bytes,
                    p: p_bytes,
                    q: q_bytes,
                    nonce,
                    server_nonce,
                    new_nonce: *new_nonce,
                    expires_in,
                }
                .into()
            }
        };
        let data = Zeroizing::new(inner.to_bytes());
        let encrypted = match self.config.rsa_encoding {
            RsaEncoding::Pad => rsa_pad_encrypt(&key, &data, rng),
            RsaEncoding::LegacySha1 => rsa_legacy_encrypt(&key, &data, rng),
        }
        .map_err(|_| HandshakeError::EncryptedDataRejected)?;
        let request = functions::ReqDHParams {
            nonce,
            server_nonce,
            p: be_bytes_minimal(p),
            q: be_bytes_minimal(q),
            public_key_fingerprint: key.fingerprint(),
            encrypted_data: encrypted.to_vec(),
        }
        .to_bytes();
        self.state = State::SentReqDhParams(AfterResPq {
            server_nonce,
            new_nonce,
        });
        Ok(ClientEvent::Send(self.wrap(&request, &now, 0)))
    }

    fn on_server_dh_params<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        params: enums::ServerDHParams,
        after: AfterResPq,
        now: Now,
        rng: &mut R,
    ) -> Result<ClientEvent, HandshakeError> {
        let ok = match params {
            enums::ServerDHParams::ServerDHParamsFail(fail) => {
                if fail.nonce != self.nonce {
                    return Err(HandshakeError::NonceMismatch);
                }
                if fail.server_nonce != after.server_nonce {
                    return Err(HandshakeError::ServerNonceMismatch);
                }
                // new_nonce_hash: the low 128 bits of SHA1(new_nonce).
                let digest = Sha1::digest(after.new_nonce.as_slice());
                if !ct_eq(digest.get(4..20).unwrap_or_default(), &fail.new_nonce_hash) {
                    return Err(HandshakeError::NewNonceHashMismatch);
                }
                return Err(HandshakeError::ServerDhParamsFail);
            }
            enums::ServerDHParams::ServerDHParamsOk(ok) => ok,
        };
        if ok.nonce != self.nonce {
            return Err(HandshakeError::NonceMismatch);
        }
        if ok.server_nonce != after.server_nonce {
            return Err(HandshakeError::ServerNonceMismatch);
        }
        let key_iv = handshake_key_iv(&after.new_nonce, &after.server_nonce);
        let (inner, _) =
            decrypt_with_hash::<enums::ServerDHInnerData>(&ok.encrypted_answer, &key_iv)?;
        let enums::ServerDHInnerData::ServerDHInnerData(inner) = inner;
        if inner.nonce != self.nonce {
            return Err(HandshakeError::NonceMismatch);
        }
        if inner.server_nonce != after.server_nonce {
            return Err(HandshakeError::ServerNonceMismatch);
        }
        let g = u32::try_from(inner.g).map_err(|_| crate::crypto::DhError::BadGenerator(0))?;
        let group = self.config.prime_cache.group(&inner.dh_prime, g, rng)?;
        group.check_public(&inner.g_a)?;
        let server_time = i64::from(inner.server_time);
        let time_offset = server_time - now.unix_secs();
        let (g_b, auth_key) = client_dh(&group, &inner.g_a, rng)?;
        let after = AfterDhParams {
            server_nonce: after.server_nonce,
            new_nonce: after.new_nonce,
            key_iv,
            group,
            g_a: inner.g_a.clone(),
            time_offset,
            server_time,
            auth_key,
            retries: 0,
        };
        self.send_client_dh_params(after, &g_b, 0, now, rng)
    }

    /// Sends `set_client_DH_params` with `g_b`, for the key already in `after`.
    fn send_client_dh_params<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        after: AfterDhParams,
        g_b: &[u8],
        retry_id: i64,
        now: Now,
        rng: &mut R,
    ) -> Result<ClientEvent, HandshakeError> {
        let inner = Zeroizing::new(
            types::ClientDHInnerData {
                nonce: self.nonce,
                server_nonce: after.server_nonce,
                retry_id,
                g_b: g_b.to_vec(),
            }
            .to_bytes(),
        );
        let encrypted_data = encrypt_with_hash(&inner, &after.key_iv, rng);
        let request = functions::SetClientDHParams {
            nonce: self.nonce,
            server_nonce: after.server_nonce,
            encrypted_data,
        }
        .to_bytes();
        let offset = after.time_offset;
        self.state = State::SentClientDhParams(Box::new(after));
        Ok(ClientEvent::Send(self.wrap(&request, &now, offset)))
    }

    fn on_dh_gen<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        answer: enums::SetClientDHParamsAnswer,
        after: Box<AfterDhParams>,
        now: Now,
        rng: &mut R,
    ) -> Result<ClientEvent, HandshakeError> {
        let (nonce, server_nonce, number, hash) = match &answer {
            enums::SetClientDHParamsAnswer::DhGenOk(x) => {
                (x.nonce, x.server_nonce, 1, x.new_nonce_hash1)
            }
            enums::SetClientDHParamsAnswer::DhGenRetry(x) => {
                (x.nonce, x.server_nonce, 2, x.new_nonce_hash2)
            }
            enums::SetClientDHParamsAnswer::DhGenFail(x) => {
                (x.nonce, x.server_nonce, 3, x.new_nonce_hash3)
            }
        };
        if nonce != self.nonce {
            return Err(HandshakeError::NonceMismatch);
        }
        if server_nonce != after.server_nonce {
            return Err(HandshakeError::ServerNonceMismatch);
        }
        let aux_hash = after.auth_key.aux_hash();
        if !ct_eq(&new_nonce_hash(&after.new_nonce, number, &aux_hash), &hash) {
            return Err(HandshakeError::NewNonceHashMismatch);
        }
        let mut after = *after;
        match number {
            1 => {
                let expires_at = match self.config.kind {
                    KeyKind::Temporary { expires_in } => {
                        Some(after.server_time + i64::from(expires_in))
                    }
                    KeyKind::Permanent => None,
                };
                let key = ClientKey {
                    server_salt: first_server_salt(&after.new_nonce, &after.server_nonce),
                    auth_key: after.auth_key,
                    time_offset: after.time_offset,
                    kind: self.config.kind,
                    expires_at,
                };
                self.state = State::Done;
                Ok(ClientEvent::Done(Box::new(key)))
            }
            2 => {
                after.retries += 1;
                if after.retries > self.config.max_retries {
                    return Err(HandshakeError::TooManyRetries);
                }
                let (g_b, auth_key) = client_dh(&after.group, &after.g_a, rng)?;
                after.auth_key = auth_key;
                self.send_client_dh_params(after, &g_b, i64::from_le_bytes(aux_hash), now, rng)
            }
            _ => Err(HandshakeError::DhGenFail),
        }
    }
}

/// Picks a fresh secret b: returns g_b and the key g_a^b.
fn client_dh<R: RngCore + CryptoRng + ?Sized>(
    group: &DhGroup,
    g_a: &[u8],
    rng: &mut R,
) -> Result<([u8; DH_LEN], AuthKey), HandshakeError> {
    let (b, g_b) = group.keypair(rng);
    let shared = group.shared_secret(g_a, &b)?;
    Ok((g_b, AuthKey::from_bytes(*shared)))
}
