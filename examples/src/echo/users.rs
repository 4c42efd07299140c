//! The users the echo server knows: the `@echo` user, and everyone who signed in, kept in
//! memory and in an append-only file (one line per user, synced before the sign-in answers).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The echo user's id.
pub const ECHO_USER_ID: i64 = 100;
/// The echo user's username.
pub const ECHO_USERNAME: &str = "echo";
/// The id the first registered user gets.
const FIRST_USER_ID: i64 = 1_000_001;
/// The longest phone number accepted (digits).
const MAX_PHONE_DIGITS: usize = 20;

/// One user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user id.
    pub id: i64,
    /// Digits only (empty for the echo user).
    pub phone: String,
    /// The name shown.
    pub first_name: String,
    /// The username, if any.
    pub username: Option<String>,
}

#[derive(Debug)]
struct Inner {
    by_id: HashMap<i64, UserRecord>,
    by_phone: HashMap<String, i64>,
    next_id: i64,
    file: File,
}

/// The registry.
#[derive(Debug)]
pub struct Users {
    inner: Mutex<Inner>,
}

/// The phone number as the registry keeps it (digits only), if it is one.
pub fn normalize_phone(phone: &str) -> Option<String> {
    let digits: String = phone
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')'))
        .collect();
    let valid = !digits.is_empty()
        && digits.len() <= MAX_PHONE_DIGITS
        && digits.chars().all(|c| c.is_ascii_digit());
    valid.then_some(digits)
}

impl Users {
    /// Opens (or creates) the registry file. A last line cut short by a crash is ignored
    /// (its sign-in never answered); any other malformed line is an error.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut by_id = HashMap::new();
        let mut by_phone = HashMap::new();
        by_id.insert(
            ECHO_USER_ID,
            UserRecord {
                id: ECHO_USER_ID,
                phone: String::new(),
                first_name: "Echo".to_owned(),
                username: Some(ECHO_USERNAME.to_owned()),
            },
        );
        let mut next_id = FIRST_USER_ID;
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
                let mut fields = line.trim_end().split('\t');
                let (Some(id), Some(phone), None) = (fields.next(), fields.next(), fields.next())
                else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "users: bad line",
                    ));
                };
                let id: i64 = id
                    .parse()
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "users: bad id"))?;
                let phone = normalize_phone(phone).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "users: bad phone")
                })?;
                next_id = next_id.max(id + 1);
                by_phone.insert(phone.clone(), id);
                by_id.insert(id, Self::record(id, phone));
                good_len += read as u64;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        // Drop a torn last line so that the next one starts clean.
        file.set_len(good_len)?;
        Ok(Self {
            inner: Mutex::new(Inner {
                by_id,
                by_phone,
                next_id,
                file,
            }),
        })
    }

    fn record(id: i64, phone: String) -> UserRecord {
        let tail: String = phone
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        UserRecord {
            id,
            first_name: format!("User {tail}"),
            phone,
            username: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A user by id.
    pub fn get(&self, id: i64) -> Option<UserRecord> {
        self.lock().by_id.get(&id).cloned()
    }

    /// The ids of every registered user, the echo user's included.
    pub fn ids(&self) -> Vec<i64> {
        self.lock().by_id.keys().copied().collect()
    }

    /// A user by username (case-insensitive).
    pub fn by_username(&self, username: &str) -> Option<UserRecord> {
        self.lock()
            .by_id
            .values()
            .find(|user| {
                user.username
                    .as_deref()
                    .is_some_and(|name| name.eq_ignore_ascii_case(username))
            })
            .cloned()
    }

    /// The user with this phone number (digits only), registered now if new.
    pub fn sign_in(&self, phone: &str) -> io::Result<UserRecord> {
        let mut inner = self.lock();
        if let Some(user) = inner.by_phone.get(phone).and_then(|id| inner.by_id.get(id)) {
            return Ok(user.clone());
        }
        let id = inner.next_id;
        inner
            .file
            .write_all(format!("{id}\t{phone}\n").as_bytes())?;
        inner.file.sync_data()?;
        inner.next_id += 1;
        let user = Self::record(id, phone.to_owned());
        inner.by_phone.insert(phone.to_owned(), id);
        inner.by_id.insert(id, user.clone());
        Ok(user)
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
        let first = {
            let users = Users::open(&path).unwrap();
            let first = users.sign_in("15550001").unwrap();
            assert_eq!(users.sign_in("15550001").unwrap(), first);
            assert_eq!(users.sign_in("15550002").unwrap().id, first.id + 1);
            first
        };
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"1000099\t1555")
            .unwrap();
        let users = Users::open(&path).unwrap();
        assert_eq!(users.get(first.id), Some(first.clone()));
        assert_eq!(users.sign_in("15550003").unwrap().id, first.id + 2);
        assert_eq!(users.by_username("ECHO").unwrap().id, ECHO_USER_ID);
        drop(users);
        let users = Users::open(&path).unwrap();
        assert_eq!(users.sign_in("15550003").unwrap().id, first.id + 2);
    }

    #[test]
    fn phone_numbers_are_digits() {
        assert_eq!(
            normalize_phone("+1 (555) 000-1"),
            Some("15550001".to_owned())
        );
        assert_eq!(normalize_phone("12ab"), None);
        assert_eq!(normalize_phone(""), None);
        assert_eq!(normalize_phone(&"1".repeat(21)), None);
    }
}
