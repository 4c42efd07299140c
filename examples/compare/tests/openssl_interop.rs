//! Our RSA keys and OpenSSL's, both ways: PKCS#1 PEM written by one is read by the other with
//! the same numbers, and a block one side encrypts the other decrypts. OpenSSL is an
//! independent implementation of the same arithmetic, so agreement here checks our DER, PEM,
//! CRT and blinding code against it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use columba_mtproto::crypto::{
    RsaPrivateKey, RsaPublicKey, rsa_decrypt_handshake_data, rsa_pad_encrypt,
};
use openssl::bn::BigNum;
use openssl::rsa::{Padding, Rsa};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

#[test]
fn openssl_reads_our_keys_and_decrypts_what_we_encrypt() {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let ours = RsaPrivateKey::generate(&mut rng);
    let theirs =
        Rsa::private_key_from_pem(ours.to_pem().as_bytes()).expect("OpenSSL parses our PKCS#1 PEM");
    assert!(
        theirs.check_key().unwrap(),
        "OpenSSL finds our key consistent"
    );
    assert_eq!(theirs.n().to_vec(), ours.public_key().modulus().to_vec());
    assert_eq!(
        theirs.e().to_vec(),
        BigNum::from_u32(65_537).unwrap().to_vec()
    );
    let public = Rsa::public_key_from_pem_pkcs1(ours.public_key().to_pem().as_bytes()).unwrap();
    assert_eq!(public.n().to_vec(), theirs.n().to_vec());

    let data = [0x42u8; 144];
    let block = rsa_pad_encrypt(ours.public_key(), &data, &mut rng).unwrap();
    let mut plain = vec![0u8; 256];
    let len = theirs
        .private_decrypt(&block, &mut plain, Padding::NONE)
        .unwrap();
    assert_eq!(len, 256);
    // And ours agrees with OpenSSL on the same block.
    let (decoded, _) = rsa_decrypt_handshake_data(&ours, &block, &mut rng).unwrap();
    assert_eq!(&decoded[..144], &data[..]);
}

#[test]
fn we_read_openssl_keys_and_decrypt_what_it_encrypts() {
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let theirs = Rsa::generate(2048).unwrap();
    let ours = RsaPrivateKey::from_pem(
        std::str::from_utf8(&theirs.private_key_to_pem().unwrap()).unwrap(),
    )
    .expect("we parse OpenSSL's PKCS#1 PEM");
    assert_eq!(ours.public_key().modulus().to_vec(), theirs.n().to_vec());
    let public = RsaPublicKey::from_pem(
        std::str::from_utf8(&theirs.public_key_to_pem_pkcs1().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(&public, ours.public_key());

    // OpenSSL applies raw RSA to an RSA_PAD block we build with its public key; we decode it.
    let data = [0x17u8; 100];
    let block = rsa_pad_encrypt(&public, &data, &mut rng).unwrap();
    let mut plain = vec![0u8; 256];
    theirs
        .private_decrypt(&block, &mut plain, Padding::NONE)
        .unwrap();
    let mut again = vec![0u8; 256];
    theirs
        .public_encrypt(&plain, &mut again, Padding::NONE)
        .unwrap();
    assert_eq!(again, block.to_vec());
    let (decoded, _) = rsa_decrypt_handshake_data(&ours, &again, &mut rng).unwrap();
    assert_eq!(&decoded[..100], &data[..]);
    // Our decryption of many blocks (across blinding refreshes) agrees with OpenSSL's.
    for round in 0..40u8 {
        let data = [round; 144];
        let block = rsa_pad_encrypt(&public, &data, &mut rng).unwrap();
        let (decoded, _) = rsa_decrypt_handshake_data(&ours, &block, &mut rng).unwrap();
        assert_eq!(&decoded[..144], &data[..]);
    }
}
