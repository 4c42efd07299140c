//! The server handshake against a real key store: auth_key_id collisions become dh_gen_retry,
//! and perfect forward secrecy works end to end (permanent key, temporary key, binding,
//! resolution, expiry).
#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use columba_mtproto::crypto::{AuthKey, RsaPrivateKey};
use columba_mtproto::handshake::bind::{bind_temp_auth_key, verify_binding};
use columba_mtproto::handshake::{
    ClientConfig, ClientEvent, ClientHandshake, KeyKind, NewAuthKey, Now, ServerConfig,
    ServerEvent, ServerHandshake,
};
use columba_store::{AuthKeyError, AuthKeyRecord, AuthKeyStore, KeyLifetime, MemoryAuthKeyStore};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

const T0: u64 = 1_700_000_000;

fn at(base: Instant, secs: u64) -> Now {
    Now {
        monotonic: base + Duration::from_secs(secs),
        unix: Duration::from_secs(T0 + secs),
    }
}

/// One exchange; the server checks ids against `store` and stores the new key there.
/// Returns the client's key, the server's key and how many dh_gen_retry rounds happened.
fn exchange(
    server_config: &Arc<ServerConfig>,
    client_config: ClientConfig,
    store: &dyn AuthKeyStore,
    seed: u64,
) -> (AuthKey, NewAuthKey, u32) {
    let base = Instant::now();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut server = ServerHandshake::new(server_config.clone());
    let (mut client, mut message) = ClientHandshake::start(client_config, at(base, 0), &mut rng);
    let mut retries = 0;
    loop {
        let mut event = server.handle(&message, at(base, 1), &mut rng).unwrap();
        let (reply, done) = loop {
            match event {
                ServerEvent::Reply(reply) => break (reply, None),
                ServerEvent::CheckAuthKeyId(id) => {
                    let in_use = store.contains(id).unwrap();
                    retries += u32::from(in_use);
                    event = server.confirm_auth_key_id(in_use, at(base, 1)).unwrap();
                }
                ServerEvent::Done { reply, key } => break (reply, Some(key)),
                ServerEvent::Failed(_) => panic!("dh_gen_fail"),
            }
        };
        if let Some(key) = &done {
            store.insert(columba_session::key_record(key)).unwrap();
        }
        match client.handle(&reply, at(base, 1), &mut rng).unwrap() {
            ClientEvent::Send(next) => message = next,
            ClientEvent::Done(client_key) => return (client_key.auth_key, *done.unwrap(), retries),
        }
    }
}

fn configs() -> (Arc<ServerConfig>, ClientConfig) {
    let key = Arc::new(RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(99)));
    let client = ClientConfig::new(vec![key.public_key().clone()], 2);
    (Arc::new(ServerConfig::new(vec![key])), client)
}

#[test]
fn a_colliding_auth_key_id_is_retried_and_the_new_key_stored() {
    // Learn which key seed 7 produces, then replay it against a store that already has it.
    // (Fresh configurations each time: the RSA key's blinding state draws from the RNG.)
    let (server_config, client_config) = configs();
    let (first, _, retries) =
        exchange(&server_config, client_config, &MemoryAuthKeyStore::new(), 7);
    assert_eq!(retries, 0);
    let store = MemoryAuthKeyStore::new();
    let mut squatter = AuthKeyRecord {
        auth_key_id: first.id(),
        key: [1; 256],
        lifetime: KeyLifetime::Permanent,
        created_at: 0,
        dc: None,
        user_id: None,
    };
    squatter.user_id = Some(5);
    store.insert(squatter).unwrap();
    let (server_config, client_config) = configs();
    let (client_key, server_key, retries) = exchange(&server_config, client_config, &store, 7);
    assert_eq!(retries, 1);
    assert_ne!(client_key.id(), first.id());
    assert_eq!(client_key.as_bytes(), server_key.auth_key.as_bytes());
    // Both keys are stored, and the first owner's record is untouched.
    assert_eq!(store.get(first.id()).unwrap().unwrap().user_id, Some(5));
    assert_eq!(
        store.get(client_key.id()).unwrap().unwrap().key,
        *client_key.as_bytes()
    );
}

#[test]
fn perfect_forward_secrecy_end_to_end() {
    let (server_config, client_config) = configs();
    let store = MemoryAuthKeyStore::new();
    let (perm, _, _) = exchange(&server_config, client_config.clone(), &store, 11);
    let mut temp_config = client_config;
    temp_config.kind = KeyKind::Temporary { expires_in: 3600 };
    let (temp, temp_server, _) = exchange(&server_config, temp_config, &store, 12);
    let temp_expires = temp_server.expires_at.unwrap();
    assert_eq!(temp_expires, (T0 + 1 + 3600) as i64);
    let now = (T0 + 10) as i64;

    // Unbound: usable only for the binding itself.
    assert_eq!(
        store.resolve(temp.id(), now),
        Err(AuthKeyError::Unbound(temp.id()))
    );

    // The client binds, in session 555, with the msg_id of its auth.bindTempAuthKey request.
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let msg_id = (now << 32) | 0x100;
    let request = bind_temp_auth_key(&perm, &temp, 555, msg_id, temp_expires as i32, &mut rng);

    // The server looks the permanent key up, verifies, records.
    let perm_record = store.get(request.perm_auth_key_id).unwrap().unwrap();
    let perm_on_server = AuthKey::from_bytes(perm_record.key);
    let verified = verify_binding(
        &perm_on_server,
        &request,
        temp.id(),
        555,
        msg_id,
        Some(temp_expires),
        now,
    )
    .unwrap();
    store
        .bind_temp(
            verified.temp_auth_key_id,
            verified.perm_auth_key_id,
            verified.expires_at,
            now,
        )
        .unwrap();
    store.set_user(perm.id(), Some(1000)).unwrap();

    let resolved = store.resolve(temp.id(), now).unwrap();
    assert_eq!(
        (resolved.perm_auth_key_id, resolved.user_id),
        (perm.id(), Some(1000))
    );
    // Expired: refused, then swept.
    assert_eq!(
        store.resolve(temp.id(), temp_expires),
        Err(AuthKeyError::Expired(temp.id()))
    );
    assert_eq!(store.remove_expired(temp_expires).unwrap(), 1);
    assert!(!store.contains(temp.id()).unwrap());
    assert!(store.contains(perm.id()).unwrap());

    // A binding made with the wrong permanent key does not verify.
    let forged = bind_temp_auth_key(&temp, &temp, 555, msg_id, temp_expires as i32, &mut rng);
    assert!(verify_binding(&perm_on_server, &forged, temp.id(), 555, msg_id, None, now).is_err());
}
