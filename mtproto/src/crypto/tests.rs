//! Known answers for the derivations, from the official sample and from grammers' tests.

use super::*;

/// Hex to bytes, for known answers (shared with the other crypto test modules).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Hex to a fixed-size array.
pub(super) fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

/// auth_key = bytes 0..255, as in grammers' vectors.
fn counting_key() -> AuthKey {
    AuthKey::from_bytes(core::array::from_fn(|i| i as u8))
}

#[test]
fn kdf_vectors() {
    // Lonami/grammers grammers-crypto/src/lib.rs tests (MIT/Apache-2.0), recomputed
    // independently in ../shared/reference/protocol.md section 6.3.
    let key = counting_key();
    let msg_key: [u8; 16] = core::array::from_fn(|i| i as u8);
    let c2s = message_key_iv(&key, &msg_key, Direction::ClientToServer);
    assert_eq!(
        c2s.key,
        arr("704ed09c8b41668ae8f99d244738f71dbddc44469b6bbd4aa8573dd042bd059e")
    );
    assert_eq!(
        c2s.iv,
        arr("4d266000a550edabbf4c7ce40fd0043cc92230184cd317a5cc9c2482fd3b9318")
    );
    let s2c = message_key_iv(&key, &msg_key, Direction::ServerToClient);
    assert_eq!(
        s2c.key,
        arr("217725799b245806458174a1fcfbc883906807b15033fdd0ea2b4d69cf9c364e")
    );
    assert_eq!(
        s2c.iv,
        arr("669a6538917a4fa56ca32360a431c9160be4ad887140980dab91ce7bdc47ffbc")
    );
}

#[test]
fn whole_client_message_vector() {
    // grammers' `encrypt_data_v2` vector: auth_key 0..255, the plaintext below plus 19 zero
    // padding bytes, client to server. Output: auth_key_id ‖ msg_key ‖ ciphertext.
    let key = counting_key();
    let mut plaintext = b"Hello, world! This data should remain secure!".to_vec();
    plaintext.resize(64, 0);
    let msg_key = msg_key(&key, Direction::ClientToServer, &plaintext);
    let keys = message_key_iv(&key, &msg_key, Direction::ClientToServer);
    let mut body = plaintext.clone();
    encrypt_ige(&mut body, &keys.key, &keys.iv).unwrap();
    let mut wire = key.id_bytes().to_vec();
    wire.extend_from_slice(&msg_key);
    wire.extend_from_slice(&body);
    assert_eq!(
        wire,
        hex(
            "32d1586ea457dfc8a81729d46db54019a2bfd7f744f9b96c4f716cfdc4477db2a2c15f6ddb85235fb9552f1d8407c6aaea00cc844c5a1bf6ac44b79b5edc2a23868b3d6073a590992c0f2975243d563ea180d218ee757c9a"
        )
    );
}

/// https://core.telegram.org/mtproto/samples-auth_key: the example's values.
const NEW_NONCE: &str = "A8BBC849512DAC6C67B6EFD9157D6CA7377A1776307D84265C6BE9BDCF802AC1";
const SERVER_NONCE: &str = "E11DBC3BC97D91A26154F932AF019943";
const SAMPLE_AUTH_KEY: &str = "ACA2547BAA3B4B3E6AD9129ADEE796042FC4ACAAABA40DCE7A1196640595829E2BA85C5E68E5D2B7B713B28720CCD0E65DA3B80CD8A9282BDE895755B924F4CBBCED119DEE057D3066D7095C25771A53D9AD6EC3464EE0E7FE1A4D9851F17B6CC7D6E636E0BDEA7D66153CF37005835A528E65673C1F5ADAA27465964BA89AA6FD045108B25B1DC9AB2D979864858C9EACBFA4A399CDBF2154D2CC6743C5CAA40683343D80A36C7F1289DC5AC5EE585DEA1E1CD296444EA6CD8F6C3564B2D355B310A3C02608EEA5EC36D38E941BF811489AB7A24C069E44FF54714CB4A45EEE2F310FDDC0A1B08BD3DFF8801E27C8508EFD7AD51EF3C13EF1D9A02EE4601741";

#[test]
fn official_sample_handshake_derivations() {
    let new_nonce: [u8; 32] = arr(NEW_NONCE);
    let server_nonce: [u8; 16] = arr(SERVER_NONCE);
    let tmp = handshake_key_iv(&new_nonce, &server_nonce);
    assert_eq!(
        tmp.key,
        arr("5EA702F743E850F5546E857F08B7D5337BBAEDF9B61248751594851BE2E8C297")
    );
    assert_eq!(
        tmp.iv,
        arr("1CEF8E372A63D97EBFA805C0DBB018BC7C1E0931693FBCB1A1AFC0C0A8BBC849")
    );

    let key = AuthKey::from_bytes(arr(SAMPLE_AUTH_KEY));
    // The page prints new_nonce_hash1 of dh_gen_ok; it checks the aux hash too.
    assert_eq!(
        new_nonce_hash(&new_nonce, 1, &key.aux_hash()),
        arr("1142871352165E59E1124036B48B97D3")
    );
    // Derived in ../shared/reference/protocol.md section 6.1 and consistent with the above.
    assert_eq!(key.aux_hash(), arr("20B5C361A4F5A3D0"));
    assert_eq!(key.id_bytes(), arr("65588B3350EF784E"));
    assert_eq!(key.id(), 5_654_532_459_904_850_021);
    assert_eq!(
        first_server_salt(&new_nonce, &server_nonce),
        -3_585_621_112_631_548_343
    );
}

#[test]
fn auth_key_debug_hides_the_key() {
    let key = AuthKey::from_bytes(arr(SAMPLE_AUTH_KEY));
    let shown = format!("{key:?}");
    assert!(shown.contains("0x4e78ef50338b5865"), "{shown}");
    assert!(!shown.to_lowercase().contains("aca2547b"));
    assert_eq!(
        format!("{:?}", handshake_key_iv(&[0; 32], &[0; 16])),
        "AesKeyIv { .. }"
    );
}

#[test]
fn msg_key_direction_and_quick_ack() {
    let key = counting_key();
    let plaintext = [7u8; 64];
    let c2s = msg_key_large(&key, Direction::ClientToServer, &plaintext);
    let s2c = msg_key_large(&key, Direction::ServerToClient, &plaintext);
    assert_ne!(c2s, s2c);
    assert_eq!(
        msg_key_from_large(&c2s),
        msg_key(&key, Direction::ClientToServer, &plaintext)
    );
    let token = quick_ack_token(&c2s);
    assert_eq!(
        token & 0x7fff_ffff,
        u32::from_le_bytes(c2s[..4].try_into().unwrap()) & 0x7fff_ffff
    );
    assert!(token & 0x8000_0000 != 0);
}

#[test]
fn constant_time_equality() {
    assert!(ct_eq(b"abc", b"abc"));
    assert!(!ct_eq(b"abc", b"abd"));
    assert!(!ct_eq(b"abc", b"ab"));
    assert_eq!(counting_key(), counting_key());
}
