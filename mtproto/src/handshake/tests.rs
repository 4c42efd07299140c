//! Client against server in memory, and one negative test per check.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::danger::{InnerDataForm, RsaEncoding};
use super::*;
use crate::crypto::{
    DhGroup, RsaPrivateKey, TELEGRAM_DH_PRIME, handshake_key_iv, new_nonce_hash,
    rsa_decrypt_handshake_data, rsa_pad_encrypt,
};
use crate::message::read_plain;
use crate::tl::mtproto::{enums, functions, types};
use crate::tl::{Identifiable, Serializable};

/// One RSA key for the whole test binary (generation is the slow part).
fn server_key() -> Arc<RsaPrivateKey> {
    static KEY: OnceLock<Arc<RsaPrivateKey>> = OnceLock::new();
    KEY.get_or_init(|| {
        Arc::new(RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(
            1234,
        )))
    })
    .clone()
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn at(secs: u64) -> Now {
    Now {
        monotonic: base() + Duration::from_secs(secs),
        unix: Duration::from_secs(1_700_000_000 + secs),
    }
}

fn server_config() -> ServerConfig {
    ServerConfig::new(vec![server_key()])
}

fn client_config() -> ClientConfig {
    ClientConfig::new(vec![server_key().public_key().clone()], 2)
}

/// Runs a whole exchange; `in_use` answers the server's auth_key_id checks.
fn run(
    client: ClientConfig,
    server: ServerConfig,
    seed: u64,
    mut in_use: impl FnMut(i64) -> bool,
) -> Result<(ClientKey, NewAuthKey), HandshakeError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut server = ServerHandshake::new(Arc::new(server));
    let (mut client, mut to_server) = ClientHandshake::start(client, at(0), &mut rng);
    for _ in 0..20 {
        let mut event = server.handle(&to_server, at(1), &mut rng)?;
        let to_client = loop {
            match event {
                ServerEvent::Reply(reply) => break (reply, None),
                ServerEvent::CheckAuthKeyId(id) => {
                    event = server.confirm_auth_key_id(in_use(id), at(1))?
                }
                ServerEvent::Done { reply, key } => break (reply, Some(key)),
                ServerEvent::Failed(reply) => break (reply, None),
            }
        };
        match client.handle(&to_client.0, at(2), &mut rng)? {
            ClientEvent::Send(message) => to_server = message,
            ClientEvent::Done(key) => {
                let server_key = to_client
                    .1
                    .ok_or(HandshakeError::WrongState("client done first"))?;
                return Ok((*key, *server_key));
            }
        }
    }
    Err(HandshakeError::WrongState("did not finish"))
}

#[test]
fn every_inner_data_form_and_rsa_encoding_completes() {
    for (i, kind) in [KeyKind::Permanent, KeyKind::Temporary { expires_in: 3600 }]
        .into_iter()
        .enumerate()
    {
        for (j, form) in [InnerDataForm::WithDc, InnerDataForm::WithoutDc]
            .into_iter()
            .enumerate()
        {
            for (k, encoding) in [RsaEncoding::Pad, RsaEncoding::LegacySha1]
                .into_iter()
                .enumerate()
            {
                let mut config = client_config();
                config.kind = kind;
                config.inner_data_form = form;
                config.rsa_encoding = encoding;
                let seed = (i * 4 + j * 2 + k) as u64;
                let (client, server) = run(config, server_config(), seed, |_| false).unwrap();
                assert_eq!(client.auth_key.as_bytes(), server.auth_key.as_bytes());
                assert_eq!(client.server_salt, server.server_salt);
                assert_eq!(server.kind, kind);
                assert_eq!(server.dc, (form == InnerDataForm::WithDc).then_some(2));
                match kind {
                    KeyKind::Permanent => assert_eq!(server.expires_at, None),
                    KeyKind::Temporary { .. } => {
                        assert_eq!(server.expires_at, Some(1_700_000_001 + 3600));
                        assert_eq!(client.expires_at, server.expires_at);
                    }
                }
                // The server's clock read 1 s when it answered; the client's 2 s.
                assert_eq!(client.time_offset, -1);
            }
        }
    }
}

#[test]
fn temporary_key_lifetime_is_capped() {
    let mut config = client_config();
    config.kind = KeyKind::Temporary {
        expires_in: i32::MAX,
    };
    let mut server = server_config();
    server.max_temp_key_lifetime = Duration::from_secs(100);
    let (_, key) = run(config, server, 3, |_| false).unwrap();
    assert_eq!(key.kind, KeyKind::Temporary { expires_in: 100 });
}

#[test]
fn auth_key_id_collision_gets_dh_gen_retry_with_the_right_retry_id() {
    let mut checks = Vec::new();
    let (client, server) = run(client_config(), server_config(), 4, |id| {
        checks.push(id);
        checks.len() < 3
    })
    .unwrap();
    assert_eq!(checks.len(), 3);
    assert_eq!(client.auth_key.id(), server.auth_key.id());
    assert_eq!(checks.last(), Some(&server.auth_key.id()));
    // Every round produced a different key.
    checks.dedup();
    assert_eq!(checks.len(), 3);
}

#[test]
fn a_key_starting_with_zero_needs_another_g_b() {
    use super::server::needs_another_g_b;
    use crate::crypto::AuthKey;
    let mut short = [0x5a; 256];
    short[0] = 0;
    let short = AuthKey::from_bytes(short);
    let full = AuthKey::from_bytes([0x5a; 256]);
    let mut config = server_config();
    assert!(needs_another_g_b(&config, false, &short));
    assert!(!needs_another_g_b(&config, false, &full));
    assert!(needs_another_g_b(&config, true, &full));
    config.refuse_short_keys = false;
    assert!(!needs_another_g_b(&config, false, &short));
}

#[test]
fn endless_collisions_end_in_dh_gen_fail() {
    let mut server = server_config();
    server.max_retries = 2;
    let err = run(client_config(), server, 5, |_| true).unwrap_err();
    assert_eq!(err, HandshakeError::DhGenFail);
}

#[test]
fn client_gives_up_after_its_retry_cap() {
    let mut client = client_config();
    client.max_retries = 1;
    let err = run(client, server_config(), 6, |_| true).unwrap_err();
    assert_eq!(err, HandshakeError::TooManyRetries);
}

// ---- A hand-driven client, so that each field can be tampered with. ----

struct ManualClient {
    rng: ChaCha20Rng,
    server: ServerHandshake,
    msg_id: i64,
    nonce: [u8; 16],
    res_pq: Option<types::ResPQ>,
    new_nonce: [u8; 32],
    g_a: Vec<u8>,
}

impl ManualClient {
    fn new(config: ServerConfig, seed: u64) -> Self {
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
            server: ServerHandshake::new(Arc::new(config)),
            msg_id: 0x6000_0000_0000_0000,
            nonce: [7; 16],
            res_pq: None,
            new_nonce: [9; 32],
            g_a: Vec::new(),
        }
    }

    fn send(&mut self, body: &[u8]) -> Result<ServerEvent, HandshakeError> {
        self.msg_id += 4;
        let message = plain_message(self.msg_id, body);
        self.server.handle(&message, at(1), &mut self.rng)
    }

    fn reply_body(event: ServerEvent) -> Vec<u8> {
        let ServerEvent::Reply(message) = event else {
            panic!("expected a reply, got {event:?}")
        };
        read_plain(&message).unwrap().body.to_vec()
    }

    fn req_pq(&mut self) {
        let body = functions::ReqPqMulti { nonce: self.nonce }.to_bytes();
        let reply = Self::reply_body(self.send(&body).unwrap());
        let enums::ResPQ::ResPQ(res_pq) = enums::ResPQ::from_bytes(&reply).unwrap();
        assert_eq!(res_pq.nonce, self.nonce);
        self.res_pq = Some(res_pq);
    }

    fn pq(&self) -> (u64, u64, u64) {
        let pq = be_to_u64(&self.res_pq.as_ref().unwrap().pq).unwrap();
        let (p, q) = crate::crypto::factorize_pq(pq).unwrap();
        (p, q, pq)
    }

    fn server_nonce(&self) -> [u8; 16] {
        self.res_pq.as_ref().unwrap().server_nonce
    }

    fn inner(&self) -> types::PQInnerDataDc {
        let (p, q, pq) = self.pq();
        types::PQInnerDataDc {
            pq: be_bytes_minimal(pq),
            p: be_bytes_minimal(p),
            q: be_bytes_minimal(q),
            nonce: self.nonce,
            server_nonce: self.server_nonce(),
            new_nonce: self.new_nonce,
            dc: 2,
        }
    }

    fn req_dh_params_with(
        &mut self,
        inner: &enums::PQInnerData,
        edit: impl FnOnce(&mut functions::ReqDHParams),
    ) -> Result<ServerEvent, HandshakeError> {
        let (p, q, _) = self.pq();
        let key = server_key();
        let encrypted =
            rsa_pad_encrypt(key.public_key(), &inner.to_bytes(), &mut self.rng).unwrap();
        let mut request = functions::ReqDHParams {
            nonce: self.nonce,
            server_nonce: self.server_nonce(),
            p: be_bytes_minimal(p),
            q: be_bytes_minimal(q),
            public_key_fingerprint: key.public_key().fingerprint(),
            encrypted_data: encrypted.to_vec(),
        };
        edit(&mut request);
        self.send(&request.to_bytes())
    }

    fn req_dh_params(&mut self) {
        let inner = self.inner().into();
        let reply = Self::reply_body(self.req_dh_params_with(&inner, |_| {}).unwrap());
        let enums::ServerDHParams::ServerDHParamsOk(ok) =
            enums::ServerDHParams::from_bytes(&reply).unwrap()
        else {
            panic!("server_DH_params_fail")
        };
        let key_iv = handshake_key_iv(&self.new_nonce, &self.server_nonce());
        let (enums::ServerDHInnerData::ServerDHInnerData(answer), _) =
            decrypt_with_hash::<enums::ServerDHInnerData>(&ok.encrypted_answer, &key_iv).unwrap();
        assert_eq!(answer.dh_prime, TELEGRAM_DH_PRIME.to_vec());
        assert_eq!(answer.g, 3);
        assert_eq!(answer.server_time, 1_700_000_001);
        self.g_a = answer.g_a;
    }

    /// A `set_client_DH_params` request for this exchange, encrypted correctly.
    fn client_dh_request(&mut self, retry_id: i64, g_b: Vec<u8>) -> functions::SetClientDHParams {
        let inner = types::ClientDHInnerData {
            nonce: self.nonce,
            server_nonce: self.server_nonce(),
            retry_id,
            g_b,
        }
        .to_bytes();
        let key_iv = handshake_key_iv(&self.new_nonce, &self.server_nonce());
        let encrypted_data = encrypt_with_hash(&inner, &key_iv, &mut self.rng);
        functions::SetClientDHParams {
            nonce: self.nonce,
            server_nonce: self.server_nonce(),
            encrypted_data,
        }
    }

    fn set_client_dh_params(
        &mut self,
        retry_id: i64,
        g_b: Vec<u8>,
    ) -> Result<ServerEvent, HandshakeError> {
        let request = self.client_dh_request(retry_id, g_b);
        self.send(&request.to_bytes())
    }

    fn valid_g_b(&mut self) -> Vec<u8> {
        DhGroup::telegram().keypair(&mut self.rng).1.to_vec()
    }

    /// The error a bad message gets, checking that the server is poisoned afterwards.
    fn assert_fails(
        &mut self,
        result: Result<ServerEvent, HandshakeError>,
        expected: HandshakeError,
    ) {
        let err = result.unwrap_err();
        assert_eq!(err, expected);
        assert!(self.server.is_failed());
        // Even a correct query now gets -404 and no key.
        let body = functions::ReqPqMulti { nonce: self.nonce }.to_bytes();
        let later = self.send(&body).unwrap_err();
        assert_eq!(later, HandshakeError::Poisoned);
        assert_eq!(later.transport_error(), -404);
    }
}

#[test]
fn manual_client_reaches_a_key_and_hashes_match() {
    let mut c = ManualClient::new(server_config(), 10);
    c.req_pq();
    c.req_dh_params();
    let g_b = c.valid_g_b();
    let ServerEvent::CheckAuthKeyId(id) = c.set_client_dh_params(0, g_b).unwrap() else {
        panic!()
    };
    let ServerEvent::Done { reply, key } = c.server.confirm_auth_key_id(false, at(1)).unwrap()
    else {
        panic!()
    };
    assert_eq!(key.auth_key.id(), id);
    let body = read_plain(&reply).unwrap().body.to_vec();
    let enums::SetClientDHParamsAnswer::DhGenOk(ok) =
        enums::SetClientDHParamsAnswer::from_bytes(&body).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        ok.new_nonce_hash1,
        new_nonce_hash(&c.new_nonce, 1, &key.auth_key.aux_hash())
    );
    assert_eq!(
        key.server_salt,
        crate::crypto::first_server_salt(&c.new_nonce, &c.server_nonce())
    );
}

#[test]
fn identical_requests_get_identical_answers() {
    let mut c = ManualClient::new(server_config(), 11);
    let body = functions::ReqPqMulti { nonce: c.nonce }.to_bytes();
    let first = ManualClient::reply_body(c.send(&body).unwrap());
    let second = ManualClient::reply_body(c.send(&body).unwrap());
    assert_eq!(first, second);
}

/// One test per check of `req_DH_params`' outer fields: wrong nonce, wrong server_nonce,
/// p and q swapped, an unknown fingerprint, tampered RSA data.
#[test]
fn wrong_fields_in_req_dh_params() {
    type Edit = fn(&mut functions::ReqDHParams);
    let cases: [(Edit, HandshakeError); 5] = [
        (|r| r.nonce[0] ^= 1, HandshakeError::NonceMismatch),
        (
            |r| r.server_nonce[0] ^= 1,
            HandshakeError::ServerNonceMismatch,
        ),
        (
            |r| core::mem::swap(&mut r.p, &mut r.q),
            HandshakeError::PqMismatch,
        ),
        (
            |r| r.public_key_fingerprint = 42,
            HandshakeError::UnknownFingerprint(42),
        ),
        (
            |r| r.encrypted_data[100] ^= 1,
            HandshakeError::EncryptedDataRejected,
        ),
    ];
    for (seed, (edit, expected)) in cases.into_iter().enumerate() {
        let mut c = ManualClient::new(server_config(), 12 + seed as u64);
        c.req_pq();
        let inner = c.inner().into();
        let result = c.req_dh_params_with(&inner, edit);
        c.assert_fails(result, expected);
    }
}

#[test]
fn wrong_values_inside_the_encrypted_inner_data() {
    type Edit = fn(&mut types::PQInnerDataDc);
    let cases: [(Edit, HandshakeError); 5] = [
        (|x| x.nonce[3] ^= 1, HandshakeError::NonceMismatch),
        (
            |x| x.server_nonce[3] ^= 1,
            HandshakeError::ServerNonceMismatch,
        ),
        (|x| x.pq.push(0), HandshakeError::PqMismatch),
        (
            |x| core::mem::swap(&mut x.p, &mut x.q),
            HandshakeError::PqMismatch,
        ),
        (|x| x.dc = 10_002, HandshakeError::WrongDc(10_002)),
    ];
    for (seed, (edit, expected)) in cases.into_iter().enumerate() {
        let mut c = ManualClient::new(server_config(), 20 + seed as u64);
        c.req_pq();
        let mut inner = c.inner();
        edit(&mut inner);
        let result = c.req_dh_params_with(&inner.into(), |_| {});
        let is_wrong_dc = matches!(expected, HandshakeError::WrongDc(_));
        c.assert_fails(result, expected);
        if is_wrong_dc {
            assert_eq!(HandshakeError::WrongDc(10_002).transport_error(), -444);
        }
    }
}

#[test]
fn temporary_key_with_non_positive_lifetime() {
    let mut c = ManualClient::new(server_config(), 30);
    c.req_pq();
    let x = c.inner();
    let inner = types::PQInnerDataTempDc {
        pq: x.pq,
        p: x.p,
        q: x.q,
        nonce: x.nonce,
        server_nonce: x.server_nonce,
        new_nonce: x.new_nonce,
        dc: 2,
        expires_in: 0,
    };
    let result = c.req_dh_params_with(&inner.into(), |_| {});
    c.assert_fails(result, HandshakeError::BadExpiresIn(0));
}

#[test]
fn bad_sha1_in_set_client_dh_params() {
    let mut c = ManualClient::new(server_config(), 31);
    c.req_pq();
    c.req_dh_params();
    let g_b = c.valid_g_b();
    let mut request = c.client_dh_request(0, g_b);
    // Flip a bit of the SHA-1's block: the hash no longer matches.
    request.encrypted_data[5] ^= 1;
    let result = c.send(&request.to_bytes());
    c.assert_fails(result, HandshakeError::AnswerHashMismatch);
}

#[test]
fn g_b_out_of_range() {
    let p = crate::crypto::bignum::U2048::from_be_bytes(&TELEGRAM_DH_PRIME).unwrap();
    let bad_values = [
        vec![1u8],
        {
            // 2^1984 - 1
            let mut v = vec![0u8; 256];
            v[256 - 248..].fill(0xff);
            v
        },
        // p - 1
        p.sbb(&crate::crypto::bignum::U2048::from_u64(1))
            .0
            .be_bytes_vec(),
        TELEGRAM_DH_PRIME.to_vec(),
        vec![0xff; 257],
    ];
    for (seed, g_b) in bad_values.into_iter().enumerate() {
        let mut c = ManualClient::new(server_config(), 40 + seed as u64);
        c.req_pq();
        c.req_dh_params();
        let result = c.set_client_dh_params(0, g_b);
        c.assert_fails(
            result,
            HandshakeError::Dh(crate::crypto::DhError::PublicValueOutOfRange),
        );
    }
}

#[test]
fn wrong_retry_id() {
    let mut c = ManualClient::new(server_config(), 50);
    c.req_pq();
    c.req_dh_params();
    let g_b = c.valid_g_b();
    let result = c.set_client_dh_params(1, g_b);
    c.assert_fails(result, HandshakeError::BadRetryId);
}

#[test]
fn wrong_nonces_in_set_client_dh_params() {
    for (seed, edit_nonce) in [true, false].into_iter().enumerate() {
        let mut c = ManualClient::new(server_config(), 51 + seed as u64);
        c.req_pq();
        c.req_dh_params();
        let g_b = c.valid_g_b();
        let mut request = c.client_dh_request(0, g_b);
        let expected = if edit_nonce {
            request.nonce[0] ^= 1;
            HandshakeError::NonceMismatch
        } else {
            request.server_nonce[0] ^= 1;
            HandshakeError::ServerNonceMismatch
        };
        let result = c.send(&request.to_bytes());
        c.assert_fails(result, expected);
    }
}

#[test]
fn replayed_set_client_dh_params_makes_no_second_key() {
    let mut c = ManualClient::new(server_config(), 53);
    c.req_pq();
    c.req_dh_params();
    let g_b = c.valid_g_b();
    let body = c.client_dh_request(0, g_b).to_bytes();
    assert!(matches!(
        c.send(&body).unwrap(),
        ServerEvent::CheckAuthKeyId(_)
    ));
    assert!(matches!(
        c.server.confirm_auth_key_id(false, at(1)).unwrap(),
        ServerEvent::Done { .. }
    ));
    let result = c.send(&body);
    c.assert_fails(
        result,
        HandshakeError::Unexpected {
            constructor: functions::SetClientDHParams::CONSTRUCTOR_ID,
            state: "done",
        },
    );
}

#[test]
fn out_of_order_and_unknown_messages() {
    let mut c = ManualClient::new(server_config(), 54);
    let body = functions::SetClientDHParams {
        nonce: c.nonce,
        server_nonce: [0; 16],
        encrypted_data: vec![0; 32],
    }
    .to_bytes();
    let result = c.send(&body);
    c.assert_fails(
        result,
        HandshakeError::Unexpected {
            constructor: functions::SetClientDHParams::CONSTRUCTOR_ID,
            state: "waiting for req_pq_multi",
        },
    );
    let mut c = ManualClient::new(server_config(), 55);
    let result = c.send(&[1, 2, 3, 4, 5, 6, 7, 8]);
    c.assert_fails(
        result,
        HandshakeError::Unexpected {
            constructor: 0x0403_0201,
            state: "waiting for req_pq_multi",
        },
    );
    // A client msg_id not divisible by 4.
    let mut c = ManualClient::new(server_config(), 56);
    c.msg_id += 1;
    let body = functions::ReqPqMulti { nonce: c.nonce }.to_bytes();
    let result = c.send(&body);
    c.assert_fails(result, HandshakeError::BadMsgId(c.msg_id));
    // An encrypted-looking frame.
    let mut c = ManualClient::new(server_config(), 57);
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let err = c.server.handle(&[1u8; 40], at(0), &mut rng).unwrap_err();
    assert!(matches!(err, HandshakeError::Plain(_)));
    // Confirming with no key pending is the caller's mistake.
    let mut fresh = ServerHandshake::new(Arc::new(server_config()));
    assert!(matches!(
        fresh.confirm_auth_key_id(false, at(0)),
        Err(HandshakeError::WrongState(_))
    ));
}

#[test]
fn deadline_and_attempt_cap() {
    let mut config = server_config();
    config.deadline = Duration::from_secs(10);
    let mut server = ServerHandshake::new(Arc::new(config));
    let mut rng = ChaCha20Rng::seed_from_u64(60);
    let body = functions::ReqPqMulti { nonce: [1; 16] }.to_bytes();
    server
        .handle(&plain_message(4, &body), at(0), &mut rng)
        .unwrap();
    assert_eq!(
        server.deadline(),
        Some(at(0).monotonic + Duration::from_secs(10))
    );
    let later = functions::ReqDHParams {
        nonce: [1; 16],
        server_nonce: [0; 16],
        p: vec![1],
        q: vec![1],
        public_key_fingerprint: 0,
        encrypted_data: vec![],
    }
    .to_bytes();
    assert_eq!(
        server
            .handle(&plain_message(8, &later), at(11), &mut rng)
            .unwrap_err(),
        HandshakeError::DeadlineExceeded
    );

    let mut config = server_config();
    config.max_attempts = 2;
    let mut server = ServerHandshake::new(Arc::new(config));
    for (i, nonce) in [[1u8; 16], [2; 16]].into_iter().enumerate() {
        let body = functions::ReqPqMulti { nonce }.to_bytes();
        server
            .handle(&plain_message(4 * (i as i64 + 1), &body), at(0), &mut rng)
            .unwrap();
    }
    let body = functions::ReqPqMulti { nonce: [3; 16] }.to_bytes();
    assert_eq!(
        server
            .handle(&plain_message(12, &body), at(0), &mut rng)
            .unwrap_err(),
        HandshakeError::TooManyAttempts
    );
}

#[test]
fn each_handshake_gets_a_fresh_pq() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..8 {
        let mut c = ManualClient::new(server_config(), 70 + seed);
        c.req_pq();
        assert!(seen.insert(c.pq().2));
    }
}

// ---- A hand-driven server, to check the client's checks. ----

/// Runs the real server up to its `server_DH_params_ok` and lets the test rewrite that reply
/// from the decrypted parts (the test holds the RSA key, so it can read new_nonce).
struct ServerSide {
    rng: ChaCha20Rng,
    client: ClientHandshake,
    nonce: [u8; 16],
    server_nonce: [u8; 16],
    new_nonce: [u8; 32],
}

fn plain_body(message: &[u8]) -> Vec<u8> {
    read_plain(message).unwrap().body.to_vec()
}

fn server_reply(body: &[u8]) -> Vec<u8> {
    plain_message(0x6000_0000_0000_0001, body)
}

impl ServerSide {
    fn new(seed: u64) -> (Self, Vec<u8>) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (client, first) = ClientHandshake::start(client_config(), at(0), &mut rng);
        let req = functions::ReqPqMulti::from_bytes(&plain_body(&first)).unwrap();
        (
            Self {
                rng,
                client,
                nonce: req.nonce,
                server_nonce: [5; 16],
                new_nonce: [0; 32],
            },
            first,
        )
    }

    fn res_pq(&self, pq: u64, fingerprints: Vec<i64>) -> Vec<u8> {
        server_reply(
            &types::ResPQ {
                nonce: self.nonce,
                server_nonce: self.server_nonce,
                pq: be_bytes_minimal(pq),
                server_public_key_fingerprints: fingerprints,
            }
            .to_bytes(),
        )
    }

    fn feed(&mut self, message: &[u8]) -> Result<ClientEvent, HandshakeError> {
        self.client.handle(message, at(1), &mut self.rng)
    }

    /// Answers resPQ properly and reads new_nonce out of the client's req_DH_params.
    fn through_req_dh_params(&mut self) {
        let key = server_key();
        let message = self.res_pq(
            1_513_098_571 * 1_780_931_429,
            vec![key.public_key().fingerprint()],
        );
        let ClientEvent::Send(req) = self.feed(&message).unwrap() else {
            panic!()
        };
        let req = functions::ReqDHParams::from_bytes(&plain_body(&req)).unwrap();
        assert_eq!(
            (be_to_u64(&req.p), be_to_u64(&req.q)),
            (Some(1_513_098_571), Some(1_780_931_429))
        );
        let (data, encoding) =
            rsa_decrypt_handshake_data(&key, &req.encrypted_data, &mut self.rng).unwrap();
        assert_eq!(encoding, RsaEncoding::Pad);
        let enums::PQInnerData::PQInnerDataDc(inner) =
            enums::PQInnerData::deserialize(&mut Reader::new(&data)).unwrap()
        else {
            panic!("client should send p_q_inner_data_dc")
        };
        assert_eq!(inner.dc, 2);
        self.new_nonce = inner.new_nonce;
    }

    fn dh_params_ok(&mut self, answer: &types::ServerDHInnerData, padding: usize) -> Vec<u8> {
        let key_iv = handshake_key_iv(&self.new_nonce, &self.server_nonce);
        let object = answer.to_bytes();
        let mut plain = Vec::new();
        plain.extend_from_slice(&Sha1::digest(&object));
        plain.extend_from_slice(&object);
        plain.resize(plain.len() + padding, 0xaa);
        assert_eq!(plain.len() % 16, 0, "choose a padding that aligns");
        encrypt_ige(&mut plain, &key_iv.key, &key_iv.iv).unwrap();
        server_reply(
            &types::ServerDHParamsOk {
                nonce: self.nonce,
                server_nonce: self.server_nonce,
                encrypted_answer: plain,
            }
            .to_bytes(),
        )
    }

    fn answer(&mut self, prime: &[u8], g: i32) -> types::ServerDHInnerData {
        let (_, g_a) = DhGroup::telegram().keypair(&mut self.rng);
        types::ServerDHInnerData {
            nonce: self.nonce,
            server_nonce: self.server_nonce,
            g,
            dh_prime: prime.to_vec(),
            g_a: g_a.to_vec(),
            server_time: 1_700_000_500,
        }
    }

    fn aligned_padding(answer: &types::ServerDHInnerData) -> usize {
        (16 - (20 + answer.to_bytes().len()) % 16) % 16
    }

    fn assert_fails(&mut self, message: &[u8], expected: HandshakeError) {
        assert_eq!(self.feed(message).unwrap_err(), expected);
        assert_eq!(self.feed(message).unwrap_err(), HandshakeError::Poisoned);
    }
}

#[test]
fn client_rejects_a_bad_res_pq() {
    type MakeReply = fn(&ServerSide) -> Vec<u8>;
    let cases: [(MakeReply, HandshakeError); 4] = [
        (
            |s| {
                let mut m = s.res_pq(
                    1_513_098_571 * 1_780_931_429,
                    vec![server_key().public_key().fingerprint()],
                );
                m[20 + 4] ^= 1;
                m
            },
            HandshakeError::NonceMismatch,
        ),
        (
            |s| {
                s.res_pq(
                    1_000_000_007 * 1_000_000_007,
                    vec![server_key().public_key().fingerprint()],
                )
            },
            HandshakeError::PqMismatch,
        ),
        (
            |s| s.res_pq(1_000_000_007, vec![server_key().public_key().fingerprint()]),
            HandshakeError::PqMismatch,
        ),
        (
            |s| s.res_pq(1_513_098_571 * 1_780_931_429, vec![1, 2, 3]),
            HandshakeError::NoKnownFingerprint,
        ),
    ];
    for (seed, (make, expected)) in cases.into_iter().enumerate() {
        let (mut side, _) = ServerSide::new(80 + seed as u64);
        let message = make(&side);
        side.assert_fails(&message, expected);
    }
}

#[test]
fn client_checks_the_answer_hash_and_padding() {
    let (mut side, _) = ServerSide::new(90);
    side.through_req_dh_params();
    let answer = side.answer(&TELEGRAM_DH_PRIME, 3);
    let padding = ServerSide::aligned_padding(&answer);
    let mut message = side.dh_params_ok(&answer, padding);
    let len = message.len();
    message[len - 40] ^= 1;
    side.assert_fails(&message, HandshakeError::AnswerHashMismatch);

    // 16 or more bytes of padding are refused even with a correct hash.
    let (mut side, _) = ServerSide::new(91);
    side.through_req_dh_params();
    let answer = side.answer(&TELEGRAM_DH_PRIME, 3);
    let padding = ServerSide::aligned_padding(&answer) + 16;
    let message = side.dh_params_ok(&answer, padding);
    side.assert_fails(&message, HandshakeError::AnswerHashMismatch);
}

#[test]
fn client_refuses_unsafe_primes_bad_generators_and_out_of_range_g_a() {
    // Not a safe prime: Telegram's prime + 2 (even-free, but composite).
    let mut composite = TELEGRAM_DH_PRIME;
    composite[255] = composite[255].wrapping_add(2);
    let mut short = TELEGRAM_DH_PRIME;
    short[0] = 0x47;
    /// (dh_prime, g, g_a replacement, the error expected)
    type Case = (Vec<u8>, i32, Option<Vec<u8>>, HandshakeError);
    let cases: Vec<Case> = vec![
        (
            composite.to_vec(),
            4,
            None,
            HandshakeError::Dh(crate::crypto::DhError::NotSafePrime),
        ),
        (
            short.to_vec(),
            4,
            None,
            HandshakeError::Dh(crate::crypto::DhError::NotSafePrime),
        ),
        // p mod 8 = 3 for Telegram's prime, so g = 2 fails its condition; 8 is out of range.
        (
            TELEGRAM_DH_PRIME.to_vec(),
            2,
            None,
            HandshakeError::Dh(crate::crypto::DhError::BadGenerator(2)),
        ),
        (
            TELEGRAM_DH_PRIME.to_vec(),
            8,
            None,
            HandshakeError::Dh(crate::crypto::DhError::BadGenerator(8)),
        ),
        (
            TELEGRAM_DH_PRIME.to_vec(),
            -1,
            None,
            HandshakeError::Dh(crate::crypto::DhError::BadGenerator(0)),
        ),
        (
            TELEGRAM_DH_PRIME.to_vec(),
            3,
            Some(vec![2]),
            HandshakeError::Dh(crate::crypto::DhError::PublicValueOutOfRange),
        ),
    ];
    for (seed, (prime, g, g_a, expected)) in cases.into_iter().enumerate() {
        let (mut side, _) = ServerSide::new(100 + seed as u64);
        side.through_req_dh_params();
        let mut answer = side.answer(&prime, g);
        if let Some(g_a) = g_a {
            answer.g_a = g_a;
        }
        let padding = ServerSide::aligned_padding(&answer);
        let message = side.dh_params_ok(&answer, padding);
        side.assert_fails(&message, expected);
    }
}

#[test]
fn client_checks_new_nonce_hash_and_nonces_in_dh_gen() {
    for case in 0..3 {
        let (mut side, _) = ServerSide::new(110 + case);
        side.through_req_dh_params();
        let answer = side.answer(&TELEGRAM_DH_PRIME, 3);
        let padding = ServerSide::aligned_padding(&answer);
        let message = side.dh_params_ok(&answer, padding);
        let ClientEvent::Send(_) = side.feed(&message).unwrap() else {
            panic!()
        };
        let mut ok = types::DhGenOk {
            nonce: side.nonce,
            server_nonce: side.server_nonce,
            new_nonce_hash1: [0; 16],
        };
        let expected = match case {
            0 => HandshakeError::NewNonceHashMismatch,
            1 => {
                ok.nonce[0] ^= 1;
                HandshakeError::NonceMismatch
            }
            _ => {
                ok.server_nonce[0] ^= 1;
                HandshakeError::ServerNonceMismatch
            }
        };
        side.assert_fails(&server_reply(&ok.to_bytes()), expected);
    }
}

#[test]
fn client_reports_server_dh_params_fail_only_with_the_right_hash() {
    let (mut side, _) = ServerSide::new(120);
    side.through_req_dh_params();
    let digest = Sha1::digest(side.new_nonce);
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&digest[4..20]);
    let fail = types::ServerDHParamsFail {
        nonce: side.nonce,
        server_nonce: side.server_nonce,
        new_nonce_hash: hash,
    };
    side.assert_fails(
        &server_reply(&fail.to_bytes()),
        HandshakeError::ServerDhParamsFail,
    );

    let (mut side, _) = ServerSide::new(121);
    side.through_req_dh_params();
    let fail = types::ServerDHParamsFail {
        nonce: side.nonce,
        server_nonce: side.server_nonce,
        new_nonce_hash: [1; 16],
    };
    side.assert_fails(
        &server_reply(&fail.to_bytes()),
        HandshakeError::NewNonceHashMismatch,
    );
}

#[test]
fn client_msg_ids_and_server_parity() {
    let (mut side, first) = ServerSide::new(130);
    assert_eq!(read_plain(&first).unwrap().msg_id % 4, 0);
    // A server message with an even msg_id is refused.
    let message = plain_message(
        0x6000_0000_0000_0004,
        &types::ResPQ {
            nonce: side.nonce,
            server_nonce: [0; 16],
            pq: vec![1],
            server_public_key_fingerprints: vec![],
        }
        .to_bytes(),
    );
    side.assert_fails(&message, HandshakeError::BadMsgId(0x6000_0000_0000_0004));
}

// ---- The official transcript (core.telegram.org/mtproto/samples-auth_key), steps 6 to 9. ----

fn sample(name: &str) -> Vec<u8> {
    let text = include_str!("../../tests/data/samples_auth_key.txt");
    let value = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.split_once(" = ")
                .filter(|(key, _)| *key == name)
                .map(|(_, v)| v)
        })
        .unwrap_or_else(|| panic!("no {name} in the sample file"));
    (0..value.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&value[i..i + 2], 16).unwrap())
        .collect()
}

/// An RNG that plays back fixed bytes (the sample's padding), then zeros.
struct Replay(Vec<u8>);

impl RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for byte in dst {
            *byte = if self.0.is_empty() {
                0
            } else {
                self.0.remove(0)
            };
        }
    }
}

impl CryptoRng for Replay {}

#[test]
fn official_sample_transcript() {
    let nonce: [u8; 16] = sample("nonce").try_into().unwrap();
    let server_nonce: [u8; 16] = sample("server_nonce").try_into().unwrap();
    let new_nonce: [u8; 32] = sample("new_nonce").try_into().unwrap();
    let key_iv = handshake_key_iv(&new_nonce, &server_nonce);

    // Step 6: the answer decrypts, its SHA-1 is the printed one, and it carries Telegram's group.
    let encrypted_answer = sample("encrypted_answer");
    let (enums::ServerDHInnerData::ServerDHInnerData(answer), object) =
        decrypt_with_hash::<enums::ServerDHInnerData>(&encrypted_answer, &key_iv).unwrap();
    assert_eq!(&Sha1::digest(&*object)[..], &sample("answer_sha1")[..]);
    assert_eq!(
        (answer.nonce, answer.server_nonce, answer.g),
        (nonce, server_nonce, 3)
    );
    assert_eq!(answer.dh_prime, TELEGRAM_DH_PRIME.to_vec());
    assert_eq!(answer.g_a, sample("g_a"));
    assert_eq!(answer.server_time, 1_707_425_105);
    let group = group_for(&answer.dh_prime, answer.g);
    group.check_public(&answer.g_a).unwrap();

    // Step 7: g_b from b, and the client's DH data encrypts to the printed bytes.
    let b: [u8; 256] = sample("b").try_into().unwrap();
    assert_eq!(group.public_value(&b).to_vec(), sample("g_b"));
    let inner = types::ClientDHInnerData {
        nonce,
        server_nonce,
        retry_id: 0,
        g_b: sample("g_b"),
    }
    .to_bytes();
    let mut padding = sample("client_padding");
    padding.resize(16, 0);
    let encrypted_data = encrypt_with_hash(&inner, &key_iv, &mut Replay(padding));
    assert_eq!(encrypted_data, sample("encrypted_data"));
    // The server side reads it back.
    let (enums::ClientDHInnerData::ClientDHInnerData(read), _) =
        decrypt_with_hash::<enums::ClientDHInnerData>(&encrypted_data, &key_iv).unwrap();
    assert_eq!((read.retry_id, read.g_b), (0, sample("g_b")));

    // Step 8: the auth key.
    let auth_key = group.shared_secret(&answer.g_a, &b).unwrap();
    assert_eq!(auth_key.to_vec(), sample("auth_key"));

    // Step 9: new_nonce_hash1, and the derived id and salt.
    let key = crate::crypto::AuthKey::from_bytes(*auth_key);
    assert_eq!(
        new_nonce_hash(&new_nonce, 1, &key.aux_hash()).to_vec(),
        sample("new_nonce_hash1")
    );
    assert_eq!(key.id(), 5_654_532_459_904_850_021);
    assert_eq!(
        crate::crypto::first_server_salt(&new_nonce, &server_nonce),
        -3_585_621_112_631_548_343
    );
}

/// The group for a transcript's prime, through the same cache clients use.
fn group_for(prime: &[u8], g: i32) -> DhGroup {
    crate::crypto::DhPrimeCache::new()
        .group(prime, g as u32, &mut ChaCha20Rng::seed_from_u64(0))
        .unwrap()
}
