//! [`RateLimit`]: how much of something each user may do per window of time, answered with
//! Telegram's `FLOOD_WAIT_X` beyond it (X the seconds until the window lets the request
//! through).
//!
//! Each user has a fixed window that starts with their first request after the last one
//! ended; the table of users is bounded ([`RateLimit::new`]'s `max_users`): when it is full,
//! windows that have ended are dropped first, then the new user is refused as if over the
//! limit, so that a flood of new users cannot grow it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    used: u64,
}

/// A per-user budget of `per_window` units each `window`.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_window: u64,
    window: Duration,
    max_users: usize,
    users: Mutex<HashMap<i64, Window>>,
}

impl RateLimit {
    /// `per_window` units per `window` for each user; at most `max_users` users tracked.
    pub(crate) fn new(per_window: u64, window: Duration, max_users: usize) -> Self {
        Self {
            per_window,
            window,
            max_users,
            users: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` units of `user`'s budget at `now`, or answers `FLOOD_WAIT_X` (nothing
    /// taken) when they would go past it.
    pub(crate) fn take(&self, user: i64, cost: u64, now: Instant) -> Result<(), ApiError> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if !users.contains_key(&user) && users.len() >= self.max_users {
            let window = self.window;
            users.retain(|_, entry| now.saturating_duration_since(entry.started) < window);
            if users.len() >= self.max_users {
                return Err(ApiError::flood_wait(self.window.as_secs()));
            }
        }
        let entry = users.entry(user).or_insert(Window {
            started: now,
            used: 0,
        });
        if now.saturating_duration_since(entry.started) >= self.window {
            *entry = Window {
                started: now,
                used: 0,
            };
        }
        let used = entry.used.saturating_add(cost);
        if used > self.per_window {
            let left = self
                .window
                .saturating_sub(now.saturating_duration_since(entry.started));
            return Err(ApiError::flood_wait(left.as_secs().saturating_add(1)));
        }
        entry.used = used;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn a_budget_refills_after_its_window() {
        let limit = RateLimit::new(10, Duration::from_secs(60), 100);
        let start = Instant::now();
        limit.take(1, 6, start).unwrap();
        limit.take(1, 4, start).unwrap();
        let refused = limit
            .take(1, 1, start + Duration::from_secs(20))
            .unwrap_err();
        assert_eq!(refused.name(), "FLOOD_WAIT_41");
        // Another user has a budget of their own.
        limit.take(2, 10, start).unwrap();
        limit.take(1, 10, start + Duration::from_secs(60)).unwrap();
        // A cost larger than the whole budget is never taken.
        assert!(limit.take(3, 11, start).is_err());
    }

    #[test]
    fn the_table_of_users_is_bounded() {
        let limit = RateLimit::new(10, Duration::from_secs(60), 2);
        let start = Instant::now();
        limit.take(1, 1, start).unwrap();
        limit.take(2, 1, start).unwrap();
        assert!(limit.take(3, 1, start).is_err(), "full: a third is refused");
        // Once the first windows ended, their users make room.
        limit.take(3, 1, start + Duration::from_secs(61)).unwrap();
    }
}
