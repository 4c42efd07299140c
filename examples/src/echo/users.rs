//! The users the echo server knows: the `@echo` user, and everyone who signed in, kept in
//! memory ([`MemoryAccounts`]) and in an append-only file (one line per user, synced before
//! the sign-in answers).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use columba_api::accounts::{Account, Accounts, AccountsError, MemoryAccounts, normalize_phone};

/// The echo user's id.
pub const ECHO_USER_ID: i64 = 100;
/// The echo user's username.
pub const ECHO_USERNAME: &str = "echo";
/// The id the first registered user gets.
const FIRST_USER_ID: i64 = 1_000_001;

/// The registry: an [`Accounts`] backend over a file.
#[derive(Debug)]
pub struct Users {
    accounts: MemoryAccounts,
    /// Held while registering, so that lines are written in id order.
    file: Mutex<File>,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("users: {what}"))
}

/// A name as one field of a line.
fn field(name: &str) -> String {
    name.replace(['\t', '\n', '\r'], " ")
}

impl Users {
    /// Opens (or creates) the registry file. A last line cut short by a crash is ignored
    /// (its sign-in never answered); any other malformed line is an error. Lines are
    /// `id, phone[, first name, last name]`, tab-separated.
    pub fn open(path: &Path) -> io::Result<Self> {
        let accounts = MemoryAccounts::new(FIRST_USER_ID);
        accounts.insert(Account::new(ECHO_USER_ID, "", "Echo").with_username(ECHO_USERNAME));
        let mut good_len = 0u64;
        if path.exists() {
            let mut reader = BufReader::new(File::open(path)?);
            let mut line = String::new();
            loop {
                line.clear();
                let read = reader.read_line(&mut line)?;
                if read == 0 || !line.ends_with('\n') {
                    break;
                }
                let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
                let (id, phone, first, last) = match fields.as_slice() {
                    [id, phone] => (*id, *phone, None, ""),
                    [id, phone, first, last] => (*id, *phone, Some(*first), *last),
                    _ => return Err(bad("bad line")),
                };
                let id: i64 = id.parse().map_err(|_| bad("bad id"))?;
                let phone = normalize_phone(phone).ok_or_else(|| bad("bad phone"))?;
                let first = first.map_or_else(|| default_name(&phone), str::to_owned);
                let mut account = Account::new(id, phone, first);
                account.last_name = last.to_owned();
                accounts.insert(account);
                good_len += read as u64;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        // Drop a torn last line so that the next one starts clean.
        file.set_len(good_len)?;
        Ok(Self {
            accounts,
            file: Mutex::new(file),
        })
    }

    /// The ids of every registered user, the echo user's included.
    pub fn ids(&self) -> Vec<i64> {
        self.accounts.ids()
    }
}

/// The name of a user registered by sign-in alone: `User` and the number's last digits.
fn default_name(phone: &str) -> String {
    let tail: String = phone.chars().skip(phone.len().saturating_sub(4)).collect();
    format!("User {tail}")
}

impl Accounts for Users {
    fn get(&self, id: i64) -> Result<Option<Account>, AccountsError> {
        self.accounts.get(id)
    }

    fn by_phone(&self, phone: &str) -> Result<Option<Account>, AccountsError> {
        self.accounts.by_phone(phone)
    }

    fn by_username(&self, username: &str) -> Result<Option<Account>, AccountsError> {
        self.accounts.by_username(username)
    }

    fn register(&self, phone: &str, first: &str, last: &str) -> Result<Account, AccountsError> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(account) = self.accounts.by_phone(phone)? {
            return Ok(account);
        }
        let id = self
            .accounts
            .ids()
            .into_iter()
            .max()
            .unwrap_or(0)
            .max(FIRST_USER_ID - 1)
            + 1;
        let line = format!("{id}\t{phone}\t{}\t{}\n", field(first), field(last));
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|error| AccountsError::Backend(Box::new(error)))?;
        let mut account = Account::new(id, phone, field(first));
        account.last_name = field(last);
        self.accounts.insert(account.clone());
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn users_survive_a_reopen_and_a_torn_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        // A line of the format before names were kept.
        std::fs::write(&path, "1000001\t15550001\n").unwrap();
        let first = {
            let users = Users::open(&path).unwrap();
            let first = users.by_phone("15550001").unwrap().unwrap();
            assert_eq!(first.first_name, "User 0001");
            assert_eq!(users.register("15550001", "X", "").unwrap(), first);
            assert_eq!(
                users.register("15550002", "Ann\tB", "C").unwrap().id,
                first.id + 1
            );
            first
        };
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"1000099\t1555")
            .unwrap();
        let users = Users::open(&path).unwrap();
        assert_eq!(users.get(first.id).unwrap(), Some(first.clone()));
        assert_eq!(
            users.by_phone("15550002").unwrap().unwrap().first_name,
            "Ann B"
        );
        assert_eq!(
            users.register("15550003", "D", "").unwrap().id,
            first.id + 2
        );
        assert_eq!(users.by_username("ECHO").unwrap().unwrap().id, ECHO_USER_ID);
        drop(users);
        let users = Users::open(&path).unwrap();
        assert_eq!(
            users.by_phone("15550003").unwrap().unwrap().id,
            first.id + 2
        );
    }
}
