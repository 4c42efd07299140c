//! AES-256-IGE, the block mode of MTProto, single-stream and batched.
//!
//! IGE (infinite garble extension): `c_i = E(p_i ⊕ c_{i-1}) ⊕ p_{i-1}`, with the 32-byte IV
//! holding `c_0` then `p_0` (MTProto's order). Each block depends on the previous one, so one
//! message cannot be parallelised; [`encrypt_ige_batch`] interleaves several independent
//! messages instead, which is where a server with many connections gains.
//!
//! With AES-NI (detected at run time) the work runs in `x86`, the crate's one `unsafe`
//! module; otherwise the `aes` crate's portable implementation is used. Both give identical
//! bytes, which the tests check.

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, consts::U16, generic_array::GenericArray};

use super::x86;

/// A buffer to encrypt or decrypt in place with its own key and IV, for the batch functions.
#[derive(Debug)]
pub struct IgeJob<'a> {
    /// The data, a multiple of 16 bytes.
    pub data: &'a mut [u8],
    /// The AES-256 key.
    pub key: &'a [u8; 32],
    /// The IGE IV: `c_0` then `p_0`.
    pub iv: &'a [u8; 32],
}

/// Input the cipher cannot take.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IgeError {
    /// IGE works on whole 16-byte blocks.
    #[error("{len} bytes is not a multiple of the 16-byte AES block")]
    Unaligned {
        /// The length given.
        len: usize,
    },
}

fn check(len: usize) -> Result<(), IgeError> {
    if len % 16 == 0 {
        Ok(())
    } else {
        Err(IgeError::Unaligned { len })
    }
}

/// Which implementation runs on this machine: `"aes-ni"` or `"portable"`.
pub fn ige_backend() -> &'static str {
    if x86::AesNi::detect().is_some() {
        "aes-ni"
    } else {
        "portable"
    }
}

/// Encrypts `data` in place with AES-256-IGE.
pub fn encrypt_ige(data: &mut [u8], key: &[u8; 32], iv: &[u8; 32]) -> Result<(), IgeError> {
    check(data.len())?;
    if let Some(cpu) = x86::AesNi::detect() {
        x86::ige_encrypt(cpu, data, key, iv);
    } else {
        encrypt_with(&aes::Aes256::new(key.into()), data, iv);
    }
    Ok(())
}

/// Decrypts `data` in place with AES-256-IGE.
pub fn decrypt_ige(data: &mut [u8], key: &[u8; 32], iv: &[u8; 32]) -> Result<(), IgeError> {
    check(data.len())?;
    if let Some(cpu) = x86::AesNi::detect() {
        x86::ige_decrypt(cpu, data, key, iv);
    } else {
        decrypt_with(&aes::Aes256::new(key.into()), data, iv);
    }
    Ok(())
}

/// Encrypts every job in place, interleaving up to 8 independent chains. Gives the same bytes
/// as [`encrypt_ige`] on each job. Nothing is written if any job is unaligned.
pub fn encrypt_ige_batch(jobs: &mut [IgeJob<'_>]) -> Result<(), IgeError> {
    run_batch(jobs, false)
}

/// Decrypts every job in place, interleaving up to 8 independent chains.
pub fn decrypt_ige_batch(jobs: &mut [IgeJob<'_>]) -> Result<(), IgeError> {
    run_batch(jobs, true)
}

fn run_batch(jobs: &mut [IgeJob<'_>], decrypt: bool) -> Result<(), IgeError> {
    for job in jobs.iter() {
        check(job.data.len())?;
    }
    if let Some(cpu) = x86::AesNi::detect() {
        x86::ige_batch(cpu, jobs, decrypt);
    } else {
        for job in jobs.iter_mut() {
            let cipher = aes::Aes256::new(job.key.into());
            if decrypt {
                decrypt_with(&cipher, job.data, job.iv);
            } else {
                encrypt_with(&cipher, job.data, job.iv);
            }
        }
    }
    Ok(())
}

type Block = GenericArray<u8, U16>;

fn xor(a: &Block, b: &Block) -> Block {
    let mut out = *a;
    for (o, x) in out.iter_mut().zip(b.iter()) {
        *o ^= x;
    }
    out
}

fn split_iv(iv: &[u8; 32]) -> (Block, Block) {
    let mut c0 = Block::default();
    let mut p0 = Block::default();
    let (a, b) = iv.split_at(16);
    c0.copy_from_slice(a);
    p0.copy_from_slice(b);
    (c0, p0)
}

/// Portable IGE encryption with any 128-bit block cipher (AES-256 in use; AES-128 for the
/// published test vectors). `data` must be a multiple of 16 bytes; a trailing partial block is
/// left untouched.
pub(crate) fn encrypt_with<C: BlockEncrypt<BlockSize = U16>>(
    cipher: &C,
    data: &mut [u8],
    iv: &[u8; 32],
) {
    let (mut prev_c, mut prev_p) = split_iv(iv);
    for chunk in data.chunks_exact_mut(16) {
        let p = Block::clone_from_slice(chunk);
        let mut x = xor(&p, &prev_c);
        cipher.encrypt_block(&mut x);
        let c = xor(&x, &prev_p);
        chunk.copy_from_slice(&c);
        prev_c = c;
        prev_p = p;
    }
}

/// Portable IGE decryption; see [`encrypt_with`].
pub(crate) fn decrypt_with<C: BlockDecrypt<BlockSize = U16>>(
    cipher: &C,
    data: &mut [u8],
    iv: &[u8; 32],
) {
    let (mut prev_c, mut prev_p) = split_iv(iv);
    for chunk in data.chunks_exact_mut(16) {
        let c = Block::clone_from_slice(chunk);
        let mut x = xor(&c, &prev_p);
        cipher.decrypt_block(&mut x);
        let p = xor(&x, &prev_c);
        chunk.copy_from_slice(&p);
        prev_c = c;
        prev_p = p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crypto::tests::{arr, hex};

    #[test]
    fn openssl_aes128_ige_vectors() {
        // openssl/openssl test/igetest.c `ige_test_vectors` (also used by gotd/ige and
        // RustCrypto's `ige`): AES-128, so they exercise the IGE chaining of the portable code.
        let key: [u8; 16] = arr("000102030405060708090a0b0c0d0e0f");
        let iv: [u8; 32] = arr("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        let cipher = aes::Aes128::new(&key.into());
        let mut data = [0u8; 32];
        encrypt_with(&cipher, &mut data, &iv);
        assert_eq!(
            data.to_vec(),
            hex("1a8519a6557be652e9da8e43da4ef4453cf456b4ca488aa383c79c98b34797cb")
        );
        decrypt_with(&cipher, &mut data, &iv);
        assert_eq!(data, [0u8; 32]);

        let key: [u8; 16] = *b"This is an imple";
        let iv: [u8; 32] = *b"mentation of IGE mode for OpenSS";
        let cipher = aes::Aes128::new(&key.into());
        let mut data = hex("4c2e204c6574277320686f70652042656e20676f74206974207269676874210a");
        decrypt_with(&cipher, &mut data, &iv);
        assert_eq!(
            data,
            hex("99706487a1cde613bc6de0b6f24b1c7aa448c8b9c3403e3467a8cad89340f53b")
        );
    }

    #[test]
    fn aes256_ige_vector() {
        // Lonami/grammers grammers-crypto/src/lib.rs tests (MIT/Apache-2.0): key = iv =
        // plaintext = bytes 0..31.
        let bytes: [u8; 32] = core::array::from_fn(|i| i as u8);
        let mut data = bytes;
        encrypt_ige(&mut data, &bytes, &bytes).unwrap();
        assert_eq!(
            data.to_vec(),
            hex("e28112a53e5c89c7b1ea8071c133699fd4e86b26c4bac9fc5af1ab8ce27a44a4")
        );
        decrypt_ige(&mut data, &bytes, &bytes).unwrap();
        assert_eq!(data, bytes);
    }

    #[test]
    fn official_handshake_ige_vector() {
        // https://core.telegram.org/mtproto/samples-auth_key, step 7.1: data_with_hash =
        // SHA1(data) + data + padding, encrypted with tmp_aes_key / tmp_aes_iv.
        use sha1::{Digest, Sha1};
        let data = hex(
            "54B64366406709F612FADFBEC3F0289D0AA67EEFE11DBC3BC97D91A26154F932AF0199430000000000000000FE000100A215D057BC6648453D68C2F418A38D9D4F4FA47E5D520AC7EBC2ADC3B00075090C10A1E9D96A5DDA127317F2DDC165C5F6C8C2854648C106D0D9DF684DAE70B0E6021658806245B494B762B1979E8BD597B5CC8E43A80F96CA47FB0765C98D40529F3D94C82113AE32C603AA24411EF8B330565A1D66EA6B89C9D4F8AFFEEA397C4B247564215D147B6AD0DF7F3FB4499E89E34304531D87448B91967B5BD53093F09386C0F78940C1DD6AA7C8667E15857453E6AAD275F94CD386468CF49108FB7C54282596A4D0314DCE9EFED4066A6E072471439AEAAA74157DB7DD53F01982982534DEE8740610BA433BF459B3DFE38674561F31991CE007BA112DDA6718",
        );
        let mut buf = Sha1::digest(&data).to_vec();
        buf.extend_from_slice(&data);
        buf.extend_from_slice(&hex("74876952857BA6AAA495A20D"));
        let key: [u8; 32] = arr("5EA702F743E850F5546E857F08B7D5337BBAEDF9B61248751594851BE2E8C297");
        let iv: [u8; 32] = arr("1CEF8E372A63D97EBFA805C0DBB018BC7C1E0931693FBCB1A1AFC0C0A8BBC849");
        let plain = buf.clone();
        encrypt_ige(&mut buf, &key, &iv).unwrap();
        assert_eq!(buf.len(), 336);
        assert_eq!(
            buf,
            hex(
                "14D185E575255986C29BE3A0437D525BA22430CBA0CD755225945AD3A1ACEFB536518514F5086892E6E3FA84D1CBB644BC8F7BEBCDE74E31BA8A073F47623EBB6E7D94B3A676A4C1AFD4689C52D05F73D21C33F64FE6AEABD04273D9117CD064E467E1F8E6C887BCAE4679E0399AD35DB1302A80629618F8C8485248D89A4E3568B464FF7B608CBE24B51EEB81B65D76224B62A1669EAA48A99C122E5E8A778E13DD441DC52175160088A498F186A2B99C736FE8C5C3E274D804C629564A0F15DDABC5B449356A7990900652A7432AFB1499C7CE09246F6B29006425DF2926465B04F17C0077B6A336A50E46B675AD5607F05818F84EADEC1F4847BF311027E742F8B1E183C01810C4CE964F2A0F36E257849C144C9B0B93B4A7A9E57391DB0CCB0D757A2B7A77257C8FF55553D66B6E1D45E9D8CA88E5A47B16322FF2ED5F5ABE099E7006B2D29C829D746B704130B1"
            )
        );
        decrypt_ige(&mut buf, &key, &iv).unwrap();
        assert_eq!(buf, plain);
    }

    #[test]
    fn unaligned_input_is_refused() {
        let mut data = [0u8; 17];
        assert_eq!(
            encrypt_ige(&mut data, &[0; 32], &[0; 32]),
            Err(IgeError::Unaligned { len: 17 })
        );
        assert_eq!(data, [0u8; 17]);
    }

    mod proptests {
        use super::super::*;
        use proptest::prelude::*;

        fn message() -> impl Strategy<Value = (Vec<u8>, [u8; 32], [u8; 32])> {
            (
                0usize..40,
                any::<[u8; 32]>(),
                any::<[u8; 32]>(),
                any::<u8>(),
            )
                .prop_map(|(blocks, key, iv, fill)| {
                    let data = (0..blocks * 16)
                        .map(|i| fill.wrapping_add((i as u8).wrapping_mul(7)))
                        .collect();
                    (data, key, iv)
                })
        }

        proptest! {
            #[test]
            fn fast_path_matches_portable_and_round_trips((data, key, iv) in message()) {
                let mut ours = data.clone();
                encrypt_ige(&mut ours, &key, &iv).unwrap();
                let mut portable = data.clone();
                encrypt_with(&aes::Aes256::new(&key.into()), &mut portable, &iv);
                prop_assert_eq!(&ours, &portable);
                decrypt_ige(&mut ours, &key, &iv).unwrap();
                prop_assert_eq!(&ours, &data);
                decrypt_with(&aes::Aes256::new(&key.into()), &mut portable, &iv);
                prop_assert_eq!(&portable, &data);
            }

            #[test]
            fn batch_matches_single_stream(messages in proptest::collection::vec(message(), 0..20)) {
                let mut expected = Vec::new();
                for (data, key, iv) in &messages {
                    let mut one = data.clone();
                    encrypt_ige(&mut one, key, iv).unwrap();
                    expected.push(one);
                }
                let mut buffers: Vec<Vec<u8>> = messages.iter().map(|m| m.0.clone()).collect();
                let mut jobs: Vec<IgeJob<'_>> = buffers
                    .iter_mut()
                    .zip(&messages)
                    .map(|(data, (_, key, iv))| IgeJob { data, key, iv })
                    .collect();
                encrypt_ige_batch(&mut jobs).unwrap();
                drop(jobs);
                prop_assert_eq!(&buffers, &expected);
                let mut jobs: Vec<IgeJob<'_>> = buffers
                    .iter_mut()
                    .zip(&messages)
                    .map(|(data, (_, key, iv))| IgeJob { data, key, iv })
                    .collect();
                decrypt_ige_batch(&mut jobs).unwrap();
                drop(jobs);
                for (buffer, (data, _, _)) in buffers.iter().zip(&messages) {
                    prop_assert_eq!(buffer, data);
                }
            }
        }
    }
}
