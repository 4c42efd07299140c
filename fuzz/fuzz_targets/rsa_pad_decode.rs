//! RSA_PAD and the legacy RSA form, server side.
//!
//! The first byte picks a mode:
//! - even: the rest is an encrypted block (any length). Decoding must not panic and must
//!   reject it: a block that decodes was made with the public key, which the fuzzer does not
//!   use.
//! - odd: the rest (at most 144 bytes) is data to RSA_PAD-encrypt with the public key; the
//!   server must decode it back to the same bytes (with random padding after them).

#![no_main]

use std::sync::OnceLock;

use columba_mtproto::crypto::{
    RSA_PAD_MAX_DATA, RsaEncoding, RsaPrivateKey, rsa_decrypt_handshake_data, rsa_pad_encrypt,
};
use libfuzzer_sys::fuzz_target;
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

fn key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(2)))
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(*mode));
    if mode % 2 == 0 {
        let result = rsa_decrypt_handshake_data(key(), rest, &mut rng);
        assert!(result.is_err(), "decoded a block the fuzzer made without the key");
        return;
    }
    let data = &rest[..rest.len().min(RSA_PAD_MAX_DATA)];
    let encrypted = rsa_pad_encrypt(key().public_key(), data, &mut rng).expect("at most 144 bytes");
    let (plain, encoding) =
        rsa_decrypt_handshake_data(key(), &encrypted, &mut rng).expect("our own block");
    assert_eq!(encoding, RsaEncoding::Pad);
    assert_eq!(&plain[..data.len()], data);
});
