//! The people the echo server knows, in a RocksDB user store in the data directory, and the
//! `@echo` user and `@BotFather` among them.

use std::io;
use std::path::Path;

use columba_store::user::{Account, UserStore as _, UserStoreConfig};
use columba_store::{Durability, RocksUserStore};

/// The echo user's id.
pub const ECHO_USER_ID: i64 = 100;
/// The echo user's username.
pub const ECHO_USERNAME: &str = "echo";

/// Opens (or creates) the user store at `path` and makes sure the echo user is in it.
pub fn open_users(path: &Path) -> io::Result<RocksUserStore> {
    let users = RocksUserStore::open(path, UserStoreConfig::default(), Durability::Sync)
        .map_err(|error| io::Error::other(error.to_string()))?;
    let echo = Account::new(ECHO_USER_ID, "", "Echo").with_username(ECHO_USERNAME);
    let stored = users.account(ECHO_USER_ID).map_err(io::Error::other)?;
    if stored
        .as_ref()
        .is_none_or(|stored| stored.username != echo.username)
    {
        users.put_account(&echo).map_err(io::Error::other)?;
    }
    // @BotFather is stored once: its profile (a random token hash nobody knows) stays.
    let father = super::botfather::account();
    let stored = users.account(father.id).map_err(io::Error::other)?;
    if stored
        .as_ref()
        .is_none_or(|stored| stored.username != father.username || !stored.is_bot())
    {
        users.put_account(&father).map_err(io::Error::other)?;
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn users_survive_a_reopen_with_the_echo_user() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let users = open_users(dir.path()).unwrap();
            let first = users.create_account("15550001", "Ann", "").unwrap();
            assert!(first.id > ECHO_USER_ID);
            first
        };
        let users = open_users(dir.path()).unwrap();
        assert_eq!(users.by_phone("15550001").unwrap(), Some(first.clone()));
        assert_eq!(users.by_username("ECHO").unwrap().unwrap().id, ECHO_USER_ID);
        assert_eq!(
            users.create_account("15550002", "Bo", "").unwrap().id,
            first.id + 1
        );
    }
}
