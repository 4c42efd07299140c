//! What the server keeps secret in its data directory: its RSA key (generated on first
//! start) and a 32-byte secret that makes access hashes and file references unguessable.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use columba_mtproto::crypto::RsaPrivateKey;
use columba_store::file::ContentId;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Writes `bytes` to a new file readable by its owner only, synced; an existing file is
/// left alone (another process won the race) and reported as `AlreadyExists`.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The server's RSA key from `path`, or a new one saved there. Returns whether it is new.
pub fn load_or_create_rsa_key(path: &Path) -> io::Result<(RsaPrivateKey, bool)> {
    if path.exists() {
        let text = fs::read_to_string(path)?;
        let key = RsaPrivateKey::from_pem(&text)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
        return Ok((key, false));
    }
    let key = RsaPrivateKey::generate(&mut rand::rng());
    write_private(path, key.to_pem().as_bytes())?;
    Ok((key, true))
}

/// The keyed hashes of one server.
#[derive(Clone)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The secret in `path`, or a new one saved there.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        if path.exists() {
            let bytes = fs::read(path)?;
            let secret: [u8; 32] = bytes
                .try_into()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "secret: not 32 bytes"))?;
            return Ok(Self(secret));
        }
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        write_private(path, &secret)?;
        Ok(Self(secret))
    }

    /// A secret for tests.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> i64 {
        let digest = Sha256::new()
            .chain_update(self.0)
            .chain_update(label)
            .chain_update(data)
            .finalize();
        let mut head = [0u8; 8];
        for (out, byte) in head.iter_mut().zip(digest.iter()) {
            *out = *byte;
        }
        i64::from_le_bytes(head)
    }

    /// The access hash of a user (the same for every viewer, in this example).
    pub fn user_hash(&self, user_id: i64) -> i64 {
        self.mac(b"user", &user_id.to_le_bytes())
    }

    /// Whether `hash` is the user's access hash (constant time).
    pub fn check_user_hash(&self, user_id: i64, hash: i64) -> bool {
        bool::from(
            self.user_hash(user_id)
                .to_le_bytes()
                .ct_eq(&hash.to_le_bytes()),
        )
    }

    /// The access hash of a document whose file reference is its content id.
    pub fn document_hash(&self, content: &ContentId) -> i64 {
        self.mac(b"document", &content.0)
    }

    /// Whether `hash` is the document's access hash (constant time).
    pub fn check_document_hash(&self, content: &ContentId, hash: i64) -> bool {
        bool::from(
            self.document_hash(content)
                .to_le_bytes()
                .ct_eq(&hash.to_le_bytes()),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn secrets_persist_and_hashes_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let first = Secret::load_or_create(&path).unwrap();
        let again = Secret::load_or_create(&path).unwrap();
        assert_eq!(first.user_hash(7), again.user_hash(7));
        assert!(first.check_user_hash(7, first.user_hash(7)));
        assert!(!first.check_user_hash(8, first.user_hash(7)));
        let other = Secret::from_bytes([1; 32]);
        assert!(!other.check_user_hash(7, first.user_hash(7)));
        let content = ContentId([3; 32]);
        assert!(first.check_document_hash(&content, first.document_hash(&content)));
        assert!(!first.check_document_hash(&ContentId([4; 32]), first.document_hash(&content)));
        fs::write(dir.path().join("short"), [1u8; 5]).unwrap();
        assert!(Secret::load_or_create(&dir.path().join("short")).is_err());
    }
}
