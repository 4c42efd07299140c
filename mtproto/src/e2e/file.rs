//! Encrypted files of secret chats: each file has its own random AES-256 key and IGE IV, the
//! whole file is one IGE stream (the chaining runs on from part to part), and the relay only
//! ever stores ciphertext. The key and IV travel inside the end-to-end message that names the
//! file; the relay sees only their 32-bit fingerprint
//! (<https://core.telegram.org/api/end-to-end#sending-encrypted-files>).
//!
//! Telethon 1.45 restarts IGE with the same key and IV on every part of an upload: its
//! multi-part secret files do not decrypt as one stream. The cipher here follows the
//! specification and TDLib (and tg-secret): one stream.

use md5::{Digest, Md5};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::crypto;

/// A file's key and IV, wiped from memory on drop; compared in constant time.
#[derive(Clone)]
pub struct FileKey {
    /// The AES-256 key.
    pub key: [u8; 32],
    /// The IGE IV at the start of the file.
    pub iv: [u8; 32],
}

impl core::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FileKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl PartialEq for FileKey {
    fn eq(&self, other: &Self) -> bool {
        crypto::ct_eq(&self.key, &other.key) & crypto::ct_eq(&self.iv, &other.iv)
    }
}

impl Eq for FileKey {}

impl Drop for FileKey {
    fn drop(&mut self) {
        self.key.zeroize();
        self.iv.zeroize();
    }
}

/// Why a file key or a file part was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A key or IV of the wrong length (the message that carried it is malformed).
    #[error("file key or iv of {len} bytes, not 32")]
    KeyLength {
        /// The length found.
        len: usize,
    },
    /// The key and IV do not match the fingerprint the file carries.
    #[error("file key does not match the file's fingerprint")]
    FingerprintMismatch,
    /// A part that is not a whole number of 16-byte blocks before the last part.
    #[error("file part of {len} bytes is not a whole number of blocks")]
    Unaligned {
        /// The part's length.
        len: usize,
    },
    /// The decrypted file is shorter than the size the message gives.
    #[error("file of {have} bytes is shorter than its stated {stated}")]
    Short {
        /// Bytes decrypted.
        have: u64,
        /// The size the message states.
        stated: u64,
    },
}

impl FileKey {
    /// A fresh key and IV for one file.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = Self {
            key: [0; 32],
            iv: [0; 32],
        };
        rng.fill_bytes(&mut key.key);
        rng.fill_bytes(&mut key.iv);
        key
    }

    /// The key and IV a `decryptedMessageMedia*` carries (`key:bytes iv:bytes`).
    pub fn from_slices(key: &[u8], iv: &[u8]) -> Result<Self, FileError> {
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| FileError::KeyLength { len: key.len() })?;
        let iv: [u8; 32] = iv
            .try_into()
            .map_err(|_| FileError::KeyLength { len: iv.len() })?;
        Ok(Self { key, iv })
    }

    /// The key, as the message that names the file carries it (`key:bytes`).
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The IV, as the message that names the file carries it (`iv:bytes`).
    pub fn iv(&self) -> &[u8; 32] {
        &self.iv
    }

    /// The file's `key_fingerprint`: with `digest = MD5(key ‖ iv)`, the little-endian `int` of
    /// `digest[0..4] XOR digest[4..8]`.
    pub fn fingerprint(&self) -> i32 {
        let mut hasher = Md5::new();
        hasher.update(self.key);
        hasher.update(self.iv);
        let digest: [u8; 16] = hasher.finalize().into();
        let mut folded = [0u8; 4];
        for (index, byte) in folded.iter_mut().enumerate() {
            let low = digest.get(index).copied().unwrap_or(0);
            let high = digest.get(index + 4).copied().unwrap_or(0);
            *byte = low ^ high;
        }
        i32::from_le_bytes(folded)
    }

    /// Checks the key against the fingerprint the file carries (constant time: the key is
    /// secret, the fingerprint is not, but nothing is lost by it).
    pub fn check(&self, fingerprint: i32) -> Result<(), FileError> {
        if crypto::ct_eq(
            &self.fingerprint().to_le_bytes(),
            &fingerprint.to_le_bytes(),
        ) {
            Ok(())
        } else {
            Err(FileError::FingerprintMismatch)
        }
    }
}

/// Which way a [`FileCipher`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Encrypt,
    Decrypt,
}

/// One file's IGE stream, part by part: each part continues the chaining where the previous
/// one stopped, so that the parts together are the file encrypted as one.
pub struct FileCipher {
    key: [u8; 32],
    /// The IGE state: the previous ciphertext block, then the previous plaintext block.
    iv: [u8; 32],
    mode: Mode,
    /// Bytes processed so far.
    done: u64,
}

impl core::fmt::Debug for FileCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FileCipher")
            .field("mode", &self.mode)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Drop for FileCipher {
    fn drop(&mut self) {
        self.key.zeroize();
        self.iv.zeroize();
    }
}

impl FileCipher {
    /// Encrypts a file from its start.
    pub fn encryptor(key: &FileKey) -> Self {
        Self::new(key, Mode::Encrypt)
    }

    /// Decrypts a file from its start.
    pub fn decryptor(key: &FileKey) -> Self {
        Self::new(key, Mode::Decrypt)
    }

    fn new(key: &FileKey, mode: Mode) -> Self {
        Self {
            key: key.key,
            iv: key.iv,
            mode,
            done: 0,
        }
    }

    /// Bytes processed so far.
    pub fn processed(&self) -> u64 {
        self.done
    }

    /// Encrypts or decrypts the next part in place. Every part is a whole number of blocks: the
    /// sender pads the file's end to 16 bytes (the relay's size is the padded size; the true
    /// size travels in the message).
    pub fn apply(&mut self, part: &mut [u8]) -> Result<(), FileError> {
        if part.len() % 16 != 0 {
            return Err(FileError::Unaligned { len: part.len() });
        }
        let Some(start) = part.len().checked_sub(16) else {
            return Ok(());
        };
        let (last_in, last_out) = match self.mode {
            Mode::Encrypt => {
                let plain: [u8; 16] = block_at(part, start);
                crypto::encrypt_ige(part, &self.key, &self.iv)
                    .map_err(|_| FileError::Unaligned { len: part.len() })?;
                (block_at(part, start), plain)
            }
            Mode::Decrypt => {
                let cipher: [u8; 16] = block_at(part, start);
                crypto::decrypt_ige(part, &self.key, &self.iv)
                    .map_err(|_| FileError::Unaligned { len: part.len() })?;
                (cipher, block_at(part, start))
            }
        };
        // IGE's state after a part: its last ciphertext block and its last plaintext block.
        let (ciphertext, plaintext) = self.iv.split_at_mut(16);
        ciphertext.copy_from_slice(&last_in);
        plaintext.copy_from_slice(&last_out);
        self.done = self.done.saturating_add(part.len() as u64);
        Ok(())
    }
}

/// The 16 bytes at `start` (zeros if the slice is shorter: callers check lengths first).
fn block_at(data: &[u8], start: usize) -> [u8; 16] {
    data.get(start..start + 16)
        .and_then(|block| block.try_into().ok())
        .unwrap_or([0; 16])
}

/// Checks a decrypted file against the size its message states, and cuts the padding off.
pub fn trim_to_size(mut file: Vec<u8>, stated: u64) -> Result<Vec<u8>, FileError> {
    let have = file.len() as u64;
    if have < stated {
        return Err(FileError::Short { have, stated });
    }
    file.truncate(usize::try_from(stated).unwrap_or(file.len()));
    Ok(file)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use crate::crypto::tests::hex;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn counting_file_key() -> FileKey {
        let bytes: Vec<u8> = (0u8..64).collect();
        FileKey::from_slices(&bytes[..32], &bytes[32..]).unwrap()
    }

    #[test]
    fn fingerprint_known_answer() {
        // `../shared/reference/e2e.md` §1.9: MD5 b2d3f56bc197fd985d5965079b5e7148,
        // fingerprint -217561997 (little-endian bytes 734408f3).
        let key = counting_file_key();
        assert_eq!(key.fingerprint(), -217_561_997);
        assert_eq!(key.fingerprint().to_le_bytes().to_vec(), hex("734408f3"));
        assert!(key.check(-217_561_997).is_ok());
        assert_eq!(key.check(1), Err(FileError::FingerprintMismatch));
    }

    #[test]
    fn parts_chain_into_one_stream() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let key = FileKey::generate(&mut rng);
        let mut file = vec![0u8; 16 * 100];
        rng.fill_bytes(&mut file);
        // Encrypted in one go...
        let mut whole = file.clone();
        crypto::encrypt_ige(&mut whole, &key.key, &key.iv).unwrap();
        // ...and in uneven parts: the same bytes.
        let mut parted = file.clone();
        let mut cipher = FileCipher::encryptor(&key);
        let (a, rest) = parted.split_at_mut(16 * 7);
        let (b, c) = rest.split_at_mut(16 * 50);
        for part in [a, b, c] {
            cipher.apply(part).unwrap();
        }
        assert_eq!(parted, whole);
        assert_eq!(cipher.processed(), file.len() as u64);
        // Decrypted in other parts: the file.
        let mut decipher = FileCipher::decryptor(&key);
        for part in parted.chunks_mut(16 * 9) {
            decipher.apply(part).unwrap();
        }
        assert_eq!(parted, file);
    }

    #[test]
    fn restarting_each_part_is_not_the_same_stream() {
        // What Telethon does: a second part encrypted from the file's IV again differs from
        // the chained stream, so a chained decryptor does not recover it.
        let key = counting_file_key();
        let file = vec![5u8; 64];
        let mut chained = file.clone();
        FileCipher::encryptor(&key).apply(&mut chained).unwrap();
        let mut restarted = file;
        for part in restarted.chunks_mut(32) {
            crypto::encrypt_ige(part, &key.key, &key.iv).unwrap();
        }
        assert_eq!(chained[..32], restarted[..32]);
        assert_ne!(chained[32..], restarted[32..]);
    }

    #[test]
    fn unaligned_parts_and_short_files_are_refused() {
        let key = counting_file_key();
        let mut part = vec![0u8; 17];
        assert_eq!(
            FileCipher::encryptor(&key).apply(&mut part),
            Err(FileError::Unaligned { len: 17 })
        );
        assert_eq!(
            trim_to_size(vec![0; 32], 33),
            Err(FileError::Short {
                have: 32,
                stated: 33
            })
        );
        assert_eq!(trim_to_size(vec![1; 32], 20).unwrap().len(), 20);
        assert_eq!(
            FileKey::from_slices(&[0; 31], &[0; 32]),
            Err(FileError::KeyLength { len: 31 })
        );
    }
}
