//! AES-256-IGE: decryption inverts encryption, and the batch API gives the same bytes as the
//! single-stream one, for arbitrary keys, IVs and data split into up to 8 messages.

#![no_main]

use columba_mtproto::crypto::{IgeJob, decrypt_ige, decrypt_ige_batch, encrypt_ige, encrypt_ige_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((key, rest)) = data.split_first_chunk::<32>() else { return };
    let Some((iv, rest)) = rest.split_first_chunk::<32>() else { return };
    let Some((&split, rest)) = rest.split_first() else { return };
    let plain = &rest[..rest.len() / 16 * 16];

    let mut single = plain.to_vec();
    encrypt_ige(&mut single, key, iv).expect("aligned");
    let mut back = single.clone();
    decrypt_ige(&mut back, key, iv).expect("aligned");
    assert_eq!(back, plain);

    // Cut the blocks into up to 8 messages, each with a key and IV derived from the inputs.
    let pieces = usize::from(split % 8) + 1;
    let blocks = plain.len() / 16;
    let mut messages: Vec<Vec<u8>> = (0..pieces)
        .map(|i| plain[blocks * i / pieces * 16..blocks * (i + 1) / pieces * 16].to_vec())
        .collect();
    let keys: Vec<[u8; 32]> = (0..pieces).map(|i| key.map(|b| b ^ i as u8)).collect();
    let ivs: Vec<[u8; 32]> = (0..pieces).map(|i| iv.map(|b| b.wrapping_add(i as u8))).collect();
    let expected: Vec<Vec<u8>> = messages
        .iter()
        .zip(keys.iter().zip(&ivs))
        .map(|(m, (k, v))| {
            let mut one = m.clone();
            encrypt_ige(&mut one, k, v).expect("aligned");
            one
        })
        .collect();
    let originals = messages.clone();
    let mut jobs: Vec<IgeJob<'_>> = messages
        .iter_mut()
        .zip(keys.iter().zip(&ivs))
        .map(|(data, (key, iv))| IgeJob { data, key, iv })
        .collect();
    encrypt_ige_batch(&mut jobs).expect("aligned");
    drop(jobs);
    assert_eq!(messages, expected);
    let mut jobs: Vec<IgeJob<'_>> = messages
        .iter_mut()
        .zip(keys.iter().zip(&ivs))
        .map(|(data, (key, iv))| IgeJob { data, key, iv })
        .collect();
    decrypt_ige_batch(&mut jobs).expect("aligned");
    drop(jobs);
    assert_eq!(messages, originals);
});
