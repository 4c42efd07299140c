//! Who the users are: the [`Accounts`] trait the stock modules read accounts through (and
//! register them with on sign-up), and [`MemoryAccounts`], a backend in memory.
//!
//! This is the narrow seam the login, users and messages modules need; an application puts
//! its own user database behind it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The longest phone number accepted, in digits (E.164 allows 15; some test numbers are
/// longer).
pub const MAX_PHONE_DIGITS: usize = 20;

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// The user id.
    pub id: i64,
    /// The phone number, digits only (empty for accounts without one, such as bots).
    pub phone: String,
    /// First name (never empty for a registered user).
    pub first_name: String,
    /// Last name (may be empty).
    pub last_name: String,
    /// The username, if any.
    pub username: Option<String>,
}

impl Account {
    /// An account with a phone number and a first name, no last name or username.
    pub fn new(id: i64, phone: impl Into<String>, first_name: impl Into<String>) -> Self {
        Self {
            id,
            phone: phone.into(),
            first_name: first_name.into(),
            last_name: String::new(),
            username: None,
        }
    }

    /// The same account with a username.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }
}

/// Why an account operation failed: the backend's failure, with its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountsError {
    /// The storage behind the accounts failed.
    #[error("account storage failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<AccountsError> for crate::ApiError {
    fn from(error: AccountsError) -> Self {
        Self::internal(&error)
    }
}

/// The accounts the stock modules know. Calls may block (a database): the modules call them
/// from the blocking pool.
pub trait Accounts: Send + Sync + 'static {
    /// The account with this id.
    fn get(&self, id: i64) -> Result<Option<Account>, AccountsError>;

    /// The account with this phone number (digits only, as [`normalize_phone`] gives it).
    fn by_phone(&self, phone: &str) -> Result<Option<Account>, AccountsError>;

    /// The account with this username (compared without regard to ASCII case).
    fn by_username(&self, username: &str) -> Result<Option<Account>, AccountsError>;

    /// Registers a new account for `phone` with these names and returns it; a phone number
    /// registered already returns its account unchanged.
    fn register(
        &self,
        phone: &str,
        first_name: &str,
        last_name: &str,
    ) -> Result<Account, AccountsError>;
}

/// A phone number as accounts keep it (digits only; spaces, dashes, brackets and a leading
/// `+` dropped), if it is one.
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

#[derive(Debug)]
struct Table {
    by_id: HashMap<i64, Account>,
    by_phone: HashMap<String, i64>,
    next_id: i64,
}

/// Accounts in memory (tests, examples): lost when the process ends.
#[derive(Debug)]
pub struct MemoryAccounts {
    table: Mutex<Table>,
}

impl MemoryAccounts {
    /// No accounts; registered ones get ids from `first_id` up.
    pub fn new(first_id: i64) -> Self {
        Self {
            table: Mutex::new(Table {
                by_id: HashMap::new(),
                by_phone: HashMap::new(),
                next_id: first_id,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds (or replaces) an account as it is, id included.
    pub fn insert(&self, account: Account) {
        let mut table = self.lock();
        if !account.phone.is_empty() {
            table.by_phone.insert(account.phone.clone(), account.id);
        }
        table.next_id = table.next_id.max(account.id.saturating_add(1));
        table.by_id.insert(account.id, account);
    }

    /// Every account's id.
    pub fn ids(&self) -> Vec<i64> {
        self.lock().by_id.keys().copied().collect()
    }
}

impl Accounts for MemoryAccounts {
    fn get(&self, id: i64) -> Result<Option<Account>, AccountsError> {
        Ok(self.lock().by_id.get(&id).cloned())
    }

    fn by_phone(&self, phone: &str) -> Result<Option<Account>, AccountsError> {
        let table = self.lock();
        Ok(table
            .by_phone
            .get(phone)
            .and_then(|id| table.by_id.get(id))
            .cloned())
    }

    fn by_username(&self, username: &str) -> Result<Option<Account>, AccountsError> {
        Ok(self
            .lock()
            .by_id
            .values()
            .find(|account| {
                account
                    .username
                    .as_deref()
                    .is_some_and(|name| name.eq_ignore_ascii_case(username))
            })
            .cloned())
    }

    fn register(
        &self,
        phone: &str,
        first_name: &str,
        last_name: &str,
    ) -> Result<Account, AccountsError> {
        let mut table = self.lock();
        if let Some(account) = table.by_phone.get(phone).and_then(|id| table.by_id.get(id)) {
            return Ok(account.clone());
        }
        let mut account = Account::new(table.next_id, phone, first_name);
        account.last_name = last_name.to_owned();
        table.next_id += 1;
        table.by_phone.insert(phone.to_owned(), account.id);
        table.by_id.insert(account.id, account.clone());
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn memory_accounts_register_once_per_phone() {
        let accounts = MemoryAccounts::new(10);
        accounts.insert(Account::new(5, "", "Echo").with_username("echo"));
        let first = accounts.register("1555", "Ann", "").unwrap();
        assert_eq!(first.id, 10);
        assert_eq!(accounts.register("1555", "Other", "Name").unwrap(), first);
        assert_eq!(accounts.register("1556", "Bo", "B").unwrap().id, 11);
        assert_eq!(accounts.by_username("ECHO").unwrap().unwrap().id, 5);
        assert_eq!(accounts.by_phone("1556").unwrap().unwrap().last_name, "B");
        assert_eq!(accounts.get(99).unwrap(), None);
    }
}
