//! What the server keeps secret in its data directory: its RSA key (generated on first
//! start) and the 32-byte [`AccessSecret`] that makes access hashes and file references
//! unguessable.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use columba_api::AccessSecret;
use columba_mtproto::crypto::RsaPrivateKey;

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

/// The secret behind access hashes from `path`, or a new one saved there.
pub fn load_or_create_access_secret(path: &Path) -> io::Result<AccessSecret> {
    if path.exists() {
        let bytes = fs::read(path)?;
        let secret: [u8; 32] = bytes
            .try_into()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "secret: not 32 bytes"))?;
        return Ok(AccessSecret::new(secret));
    }
    let secret = AccessSecret::generate(&mut rand::rng());
    write_private(path, &secret.to_bytes())?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn secrets_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let first = load_or_create_access_secret(&path).unwrap();
        let again = load_or_create_access_secret(&path).unwrap();
        assert_eq!(first.user_hash(7), again.user_hash(7));
        fs::write(dir.path().join("short"), [1u8; 5]).unwrap();
        assert!(load_or_create_access_secret(&dir.path().join("short")).is_err());
    }
}
