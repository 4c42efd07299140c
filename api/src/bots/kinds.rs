//! Which users are bots, remembered: an account never changes kind (a bot stays a bot, ids
//! are never given twice), so an answer once read from the store stays true.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use columba_store::UserStore;
use columba_store::user::UserError;

/// The most users remembered; past it the memory starts again (a cold read per user).
const CAPACITY: usize = 100_000;

/// Users known to be bots or people.
#[derive(Debug, Default)]
pub(crate) struct AccountKinds {
    known: Mutex<HashMap<i64, bool>>,
}

impl AccountKinds {
    /// Whether `id` is a bot's account (an unknown id is not). Blocking on a cold read.
    pub(crate) fn is_bot(&self, users: &dyn UserStore, id: i64) -> Result<bool, UserError> {
        if let Some(bot) = self.lock().get(&id) {
            return Ok(*bot);
        }
        let Some(account) = users.account(id)? else {
            // Not remembered: an id without an account may get one later.
            return Ok(false);
        };
        let bot = account.is_bot();
        let mut known = self.lock();
        if known.len() >= CAPACITY {
            known.clear();
        }
        known.insert(id, bot);
        Ok(bot)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, bool>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use columba_store::MemoryUserStore;
    use columba_store::user::BotProfile;

    use super::*;

    #[test]
    fn bots_and_people_are_told_apart_and_remembered() {
        let users = MemoryUserStore::new();
        let person = users.create_account("15550001", "Ann", "").unwrap();
        let bot = users
            .create_bot("Helper", "helper_bot", &BotProfile::default())
            .unwrap();
        let kinds = AccountKinds::default();
        assert!(!kinds.is_bot(&users, person.id).unwrap());
        assert!(kinds.is_bot(&users, bot.id).unwrap());
        assert!(!kinds.is_bot(&users, 424_242).unwrap());
        assert_eq!(kinds.lock().len(), 2, "unknown ids are not remembered");
        // Remembered: deleting the bot's account does not make it a person.
        users.delete_account(bot.id).unwrap();
        assert!(kinds.is_bot(&users, bot.id).unwrap());
    }
}
