//! obfuscated2: a 64-byte random init, then AES-256-CTR over each direction.
//!
//! From <https://core.telegram.org/mtproto/mtproto-transports#transport-obfuscation>: the
//! client's init avoids every prefix that would look like another protocol, carries the
//! framing's tag at offset 56 (and, for MTProxy, the DC id at offset 60), and both directions'
//! keys come from it: bytes 8..40 and 40..56 of the init are the client's encryption key and IV,
//! the same offsets of the reversed init its decryption key and IV. With an MTProxy secret each
//! key becomes SHA-256(key ‖ secret). The client sends init[0..56] in clear and bytes 56..64
//! encrypted, and the counters continue over the whole connection.

use aes::cipher::{KeyIvInit, StreamCipher};
use rand_core::RngCore;
use sha2::{Digest, Sha256};

use super::Framing;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// Connecting through an MTProxy: its secret and the DC to reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtProxy {
    /// The 16-byte secret (drop the leading `dd`/`ee` marker byte of a 17-byte secret).
    pub secret: [u8; 16],
    /// The DC id as MTProxy encodes it: +10000 for test DCs, negative for media DCs.
    pub dc_id: i16,
}

impl MtProxy {
    /// Reads a secret as distributed in proxy links: 16 bytes, or 17 with a leading marker
    /// byte (usually `dd`) that asks for the padded intermediate framing. Returns the proxy and
    /// the framing the secret requires, if any. Fake-TLS secrets (`ee` followed by a domain) are
    /// not supported and give `None`, as does any other length.
    pub fn from_secret(secret: &[u8], dc_id: i16) -> Option<(Self, Option<Framing>)> {
        match secret {
            [0xee, _, ..] if secret.len() > 17 => None,
            [_marker, rest @ ..] if rest.len() == 16 => {
                let mut key = [0u8; 16];
                key.copy_from_slice(rest);
                Some((
                    Self { secret: key, dc_id },
                    Some(Framing::PaddedIntermediate),
                ))
            }
            _ if secret.len() == 16 => {
                let mut key = [0u8; 16];
                key.copy_from_slice(secret);
                Some((Self { secret: key, dc_id }, None))
            }
            _ => None,
        }
    }
}

/// First ints (little-endian) that an init must not start with: HTTP methods, a TLS record,
/// and the intermediate tags (from the spec's pseudocode).
const FORBIDDEN_FIRST_INTS: [u32; 7] = [
    0x4441_4548,
    0x5453_4f50,
    0x2054_4547,
    0x4954_504f,
    0x0201_0316,
    0xdddd_dddd,
    0xeeee_eeee,
];

/// The tags a server recognises at offset 56 of a decrypted init.
pub(crate) const KNOWN_TAGS: [([u8; 4], Framing); 3] = [
    ([0xef; 4], Framing::Abridged),
    ([0xee; 4], Framing::Intermediate),
    ([0xdd; 4], Framing::PaddedIntermediate),
];

/// A client's 64-byte init, as generated before encryption (what the peer recovers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObfuscationInit(pub [u8; 64]);

impl ObfuscationInit {
    /// Draws a random init for `framing` that no server could mistake for another protocol.
    ///
    /// The full framing has no tag; its init keeps random bytes at offset 56 that are not one
    /// of the three tags, and a server takes an unrecognised tag to mean full.
    pub fn generate<R: RngCore + ?Sized>(
        framing: Framing,
        dc_id: Option<i16>,
        rng: &mut R,
    ) -> Self {
        loop {
            let mut init = [0u8; 64];
            rng.fill_bytes(&mut init);
            if let (Some(tag), Some(slot)) = (framing.obfuscated_tag(), init.get_mut(56..60)) {
                slot.copy_from_slice(&tag);
            }
            if let (Some(dc), Some(slot)) = (dc_id, init.get_mut(60..62)) {
                slot.copy_from_slice(&dc.to_le_bytes());
            }
            if Self::acceptable(&init, framing) {
                return Self(init);
            }
        }
    }

    fn acceptable(init: &[u8; 64], framing: Framing) -> bool {
        let first = u32::from_le_bytes([init[0], init[1], init[2], init[3]]);
        let second = u32::from_le_bytes([init[4], init[5], init[6], init[7]]);
        let tag = [init[56], init[57], init[58], init[59]];
        init[0] != 0xef
            && !FORBIDDEN_FIRST_INTS.contains(&first)
            && second != 0
            && (framing != Framing::Full || KNOWN_TAGS.iter().all(|(known, _)| *known != tag))
    }
}

/// The two AES-256-CTR streams of an obfuscated connection.
pub(crate) struct Obfuscation {
    encrypt: Aes256Ctr,
    decrypt: Aes256Ctr,
}

impl core::fmt::Debug for Obfuscation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        f.write_str("Obfuscation { .. }")
    }
}

fn cipher(material: &[u8; 64], secret: Option<&[u8; 16]>) -> Aes256Ctr {
    let mut key = [0u8; 32];
    let mut iv = [0u8; 16];
    key.copy_from_slice(&material[8..40]);
    iv.copy_from_slice(&material[40..56]);
    if let Some(secret) = secret {
        let mut hasher = Sha256::new();
        hasher.update(key);
        hasher.update(secret);
        key = hasher.finalize().into();
    }
    Aes256Ctr::new(&key.into(), &iv.into())
}

fn reversed(init: &[u8; 64]) -> [u8; 64] {
    let mut out = *init;
    out.reverse();
    out
}

impl Obfuscation {
    /// Client side: the ciphers for `init`, and the 64 bytes to send first.
    pub(crate) fn client(init: &ObfuscationInit, secret: Option<&[u8; 16]>) -> (Self, [u8; 64]) {
        let mut encrypt = cipher(&init.0, secret);
        let decrypt = cipher(&reversed(&init.0), secret);
        let mut encrypted = init.0;
        encrypt.apply_keystream(&mut encrypted);
        let mut first = init.0;
        first[56..].copy_from_slice(&encrypted[56..]);
        (Self { encrypt, decrypt }, first)
    }

    /// Server side: the ciphers for the 64 bytes received, and the init's last 8 bytes (tag,
    /// DC id, 2 random bytes), the only ones that travel encrypted.
    pub(crate) fn server(received: &[u8; 64], secret: Option<&[u8; 16]>) -> (Self, [u8; 8]) {
        let mut decrypt = cipher(received, secret);
        let encrypt = cipher(&reversed(received), secret);
        let mut whole = *received;
        // Run the keystream over all 64 bytes so that the counter continues from byte 64.
        decrypt.apply_keystream(&mut whole);
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&whole[56..]);
        (Self { encrypt, decrypt }, tail)
    }

    pub(crate) fn encrypt(&mut self, data: &mut [u8]) {
        self.encrypt.apply_keystream(data);
    }

    pub(crate) fn decrypt(&mut self, data: &mut [u8]) {
        self.decrypt.apply_keystream(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

    #[test]
    fn generated_inits_avoid_forbidden_prefixes_and_carry_the_tag() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for framing in Framing::ALL {
            for _ in 0..2000 {
                let ObfuscationInit(init) = ObfuscationInit::generate(framing, Some(-4), &mut rng);
                assert_ne!(init[0], 0xef);
                assert_ne!(&init[4..8], &[0, 0, 0, 0]);
                let first = u32::from_le_bytes(init[..4].try_into().unwrap());
                assert!(!FORBIDDEN_FIRST_INTS.contains(&first));
                assert_eq!(&init[60..62], &(-4i16).to_le_bytes());
                match framing.obfuscated_tag() {
                    Some(tag) => assert_eq!(&init[56..60], &tag),
                    None => assert!(KNOWN_TAGS.iter().all(|(t, _)| t != &init[56..60])),
                }
            }
        }
    }

    #[test]
    fn secrets_in_their_distributed_forms() {
        let plain = [0x99u8; 16];
        assert_eq!(
            MtProxy::from_secret(&plain, 2),
            Some((
                MtProxy {
                    secret: plain,
                    dc_id: 2
                },
                None
            ))
        );
        let mut dd = vec![0xdd];
        dd.extend_from_slice(&plain);
        assert_eq!(
            MtProxy::from_secret(&dd, -4),
            Some((
                MtProxy {
                    secret: plain,
                    dc_id: -4
                },
                Some(Framing::PaddedIntermediate)
            ))
        );
        let mut ee = vec![0xee];
        ee.extend_from_slice(&plain);
        ee.extend_from_slice(b"example.com");
        assert_eq!(MtProxy::from_secret(&ee, 2), None);
        assert_eq!(MtProxy::from_secret(&[1, 2, 3], 2), None);
    }

    #[test]
    fn the_rejection_rule_refuses_each_forbidden_form() {
        let mut good = [0x11u8; 64];
        good[56..60].copy_from_slice(&[0xee; 4]);
        assert!(ObfuscationInit::acceptable(&good, Framing::Intermediate));
        let mut bad = good;
        bad[0] = 0xef;
        assert!(!ObfuscationInit::acceptable(&bad, Framing::Intermediate));
        for word in FORBIDDEN_FIRST_INTS {
            let mut bad = good;
            bad[..4].copy_from_slice(&word.to_le_bytes());
            assert!(!ObfuscationInit::acceptable(&bad, Framing::Intermediate));
        }
        let mut bad = good;
        bad[4..8].fill(0);
        assert!(!ObfuscationInit::acceptable(&bad, Framing::Intermediate));
        assert!(!ObfuscationInit::acceptable(&good, Framing::Full));
    }

    #[test]
    fn server_recovers_the_init_and_streams_match() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for secret in [None, Some([0x99u8; 16])] {
            let init = ObfuscationInit::generate(Framing::PaddedIntermediate, Some(-4), &mut rng);
            let (mut client, first) = Obfuscation::client(&init, secret.as_ref());
            // Only bytes 56..64 travel encrypted.
            assert_eq!(&first[..56], &init.0[..56]);
            assert_ne!(&first[56..], &init.0[56..]);
            let (mut server, tail) = Obfuscation::server(&first, secret.as_ref());
            assert_eq!(&tail[..], &init.0[56..]);
            let mut data = *b"client to server, continuing the counter";
            client.encrypt(&mut data);
            server.decrypt(&mut data);
            assert_eq!(&data, b"client to server, continuing the counter");
            let mut back = *b"server to client";
            server.encrypt(&mut back);
            client.decrypt(&mut back);
            assert_eq!(&back, b"server to client");
        }
    }
}
