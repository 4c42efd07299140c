//! Suite `handshake`: complete key exchanges per second for each role on one core, against the
//! same big-number work done by OpenSSL (through the `openssl` crate) in the same run.
//!
//! Only the measured role's own calls are timed (the other role runs too, untimed, to produce
//! its messages). The OpenSSL side does what dominates that role's work:
//! - server: one RSA-2048 private operation (raw, CRT, OpenSSL's blinding on) and two 2048-bit
//!   modular exponentiations with 2048-bit secret exponents (g^a and g_b^a), constant-time;
//! - client: one RSA-2048 public operation and two such exponentiations (g^b and g_a^b).
//!
//! OpenSSL does none of the protocol work around them (TL, SHA-1, AES-IGE, pq factoring, range
//! checks), so the ratio slightly favours the peer.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use columba_mtproto::crypto::{RsaPrivateKey, TELEGRAM_DH_PRIME};
use columba_mtproto::handshake::{
    ClientConfig, ClientEvent, ClientHandshake, ServerConfig, ServerEvent, ServerHandshake,
};
use openssl::bn::{BigNum, BigNumContext};
use openssl::rsa::{Padding, Rsa};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

use super::{Side, compare, now};

const PEER: &str = "OpenSSL (big-number work only)";

/// Which side's calls to time.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Server,
    Client,
}

/// Runs one complete exchange and returns the time spent in `role`'s calls.
fn exchange(
    role: Role,
    server_config: &Arc<ServerConfig>,
    client_config: &ClientConfig,
    rng: &mut ChaCha20Rng,
) -> Duration {
    let mut spent = Duration::ZERO;
    let mut timed = |who: Role, f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        if who == role {
            spent += start.elapsed();
        }
    };
    let mut server = ServerHandshake::new(server_config.clone());
    let mut client_and_first = None;
    timed(Role::Client, &mut || {
        client_and_first = Some(ClientHandshake::start(client_config.clone(), now(), rng))
    });
    let Some((mut client, mut to_server)) = client_and_first else {
        return spent;
    };
    loop {
        let mut event = None;
        timed(Role::Server, &mut || {
            event = server.handle(&to_server, now(), rng).ok()
        });
        let reply = match event {
            Some(ServerEvent::Reply(reply)) => reply,
            Some(ServerEvent::CheckAuthKeyId(_)) => {
                let mut done = None;
                timed(Role::Server, &mut || {
                    done = server.confirm_auth_key_id(false, now()).ok()
                });
                match done {
                    Some(ServerEvent::Done { reply, .. }) => reply,
                    _ => return spent,
                }
            }
            _ => return spent,
        };
        let mut next = None;
        timed(Role::Client, &mut || {
            next = client.handle(&reply, now(), rng).ok()
        });
        match next {
            Some(ClientEvent::Send(message)) => to_server = message,
            _ => return spent,
        }
    }
}

pub(crate) fn run() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let key = Arc::new(RsaPrivateKey::generate(&mut rng));
    let server_config = Arc::new(ServerConfig::new(vec![key.clone()]));
    let client_config = ClientConfig::new(vec![key.public_key().clone()], 2);

    // OpenSSL's side: a fresh RSA-2048 key and Telegram's prime.
    let (Ok(ssl_rsa), Ok(prime), Ok(mut ctx)) = (
        Rsa::generate(2048),
        BigNum::from_slice(&TELEGRAM_DH_PRIME),
        BigNumContext::new(),
    ) else {
        eprintln!("handshake: OpenSSL setup failed");
        return;
    };
    let secret = |seed: u8| {
        let mut bytes = [seed; 256];
        bytes[0] = 0x7f;
        let mut n = BigNum::from_slice(&bytes).ok()?;
        n.set_const_time();
        Some(n)
    };
    let (Some(a), Some(b), Ok(g)) = (secret(0x5a), secret(0xa5), BigNum::from_u32(3)) else {
        return;
    };
    let mut block = [0x11u8; 256];
    block[0] = 0;
    let mut encrypted = vec![0u8; 256];
    if ssl_rsa
        .public_encrypt(&block, &mut encrypted, Padding::NONE)
        .is_err()
    {
        return;
    }
    let (Ok(mut public), Ok(mut shared)) = (BigNum::new(), BigNum::new()) else {
        return;
    };
    let mut out = vec![0u8; 256];
    // One role's big-number work: the server's RSA private operation with secret a, or the
    // client's public operation with secret b; then g^secret and (g^secret)^secret.
    let mut ssl_work = |server: bool| {
        let _ = if server {
            ssl_rsa.private_decrypt(&encrypted, &mut out, Padding::NONE)
        } else {
            ssl_rsa.public_encrypt(&block, &mut out, Padding::NONE)
        };
        let secret = if server { &a } else { &b };
        let _ = public.mod_exp(&g, secret, &prime, &mut ctx);
        let _ = shared.mod_exp(&public, secret, &prime, &mut ctx);
        black_box(&shared);
    };
    for (bench, role, seed) in [
        ("handshake_server", Role::Server, 8),
        ("handshake_client", Role::Client, 9),
    ] {
        let mut ours_rng = ChaCha20Rng::seed_from_u64(seed);
        compare(
            bench,
            "exchanges/s",
            PEER,
            Side::timed(1.0, || {
                exchange(role, &server_config, &client_config, &mut ours_rng)
            }),
            Side::new(1.0, || ssl_work(role == Role::Server)),
        );
    }
}
