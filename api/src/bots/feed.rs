//! Where a front inside the server (the Bot API's HTTP front) hears of a bot's updates: a
//! change of the bot's box wakes it (it reads the change from the box's update log), and a
//! button press, which has no pts, is queued for it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::Notify;

/// Presses kept for one bot until its front takes them; past it the oldest go (their
/// persons time out, as with a bot that is away).
pub const MAX_QUEUED_PRESSES: usize = 1_000;

/// A person pressed a callback button of a bot's message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallbackPress {
    /// The query's id, to answer with.
    pub query_id: i64,
    /// Who pressed.
    pub user_id: i64,
    /// The message, by its id in the bot's box.
    pub msg_id: i32,
    /// The chat's `chat_instance`.
    pub chat_instance: i64,
    /// The button's data.
    pub data: Vec<u8>,
    /// When (Unix seconds).
    pub date: i32,
}

/// One bot's feed: woken on every change, with the presses not taken yet.
#[derive(Debug, Default)]
pub struct BotFeed {
    wake: Notify,
    presses: Mutex<VecDeque<CallbackPress>>,
}

impl BotFeed {
    /// Waits for the next change or press after this call (or one that came since the last
    /// wait ended: a wake is never lost).
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// The presses queued, oldest first; the queue is emptied.
    pub fn take_presses(&self) -> Vec<CallbackPress> {
        self.presses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }

    fn wake(&self) {
        // Every waiter wakes (a poll and a webhook's delivery may both wait, one of them
        // about to end), and `notify_one` keeps a permit when nobody waits, so that a change
        // between two polls wakes the next one at once. A spurious wake only costs a look.
        self.wake.notify_waiters();
        self.wake.notify_one();
    }
}

/// The feeds of bots that have a front, by bot id.
#[derive(Debug, Default)]
pub struct BotFeeds {
    feeds: RwLock<HashMap<i64, Arc<BotFeed>>>,
    // Read first, so that a server with no front pays one atomic load per change.
    count: AtomicUsize,
}

impl BotFeeds {
    /// The feed of bot `bot`, made on first use.
    pub fn subscribe(&self, bot: i64) -> Arc<BotFeed> {
        let mut feeds = self.feeds.write().unwrap_or_else(PoisonError::into_inner);
        let feed = feeds.entry(bot).or_default().clone();
        self.count.store(feeds.len(), Ordering::Release);
        feed
    }

    /// Drops the feed of bot `bot` (its front went: logOut, a webhook removed).
    pub fn unsubscribe(&self, bot: i64) {
        let mut feeds = self.feeds.write().unwrap_or_else(PoisonError::into_inner);
        feeds.remove(&bot);
        self.count.store(feeds.len(), Ordering::Release);
    }

    fn feed(&self, bot: i64) -> Option<Arc<BotFeed>> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.feeds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&bot)
            .cloned()
    }

    /// The box of user `owner` changed: its feed, if it has one, wakes.
    pub fn box_changed(&self, owner: i64) {
        if let Some(feed) = self.feed(owner) {
            feed.wake();
        }
    }

    /// A press for bot `bot`: queued in its feed, if it has one (`false` otherwise).
    pub fn pressed(&self, bot: i64, press: CallbackPress) -> bool {
        let Some(feed) = self.feed(bot) else {
            return false;
        };
        {
            let mut presses = feed.presses.lock().unwrap_or_else(PoisonError::into_inner);
            if presses.len() >= MAX_QUEUED_PRESSES {
                presses.pop_front();
            }
            presses.push_back(press);
        }
        feed.wake();
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_feed_wakes_on_changes_and_queues_presses() {
        let feeds = BotFeeds::default();
        feeds.box_changed(7);
        let press = CallbackPress {
            query_id: 1,
            user_id: 2,
            msg_id: 3,
            chat_instance: 4,
            data: b"x".to_vec(),
            date: 5,
        };
        assert!(!feeds.pressed(7, press.clone()), "no front, no queue");
        let feed = feeds.subscribe(7);
        // A change before the wait is not lost.
        feeds.box_changed(7);
        tokio::time::timeout(Duration::from_secs(1), feed.changed())
            .await
            .unwrap_or_else(|_| unreachable!("woken"));
        for n in 0..MAX_QUEUED_PRESSES + 1 {
            let mut press = press.clone();
            press.query_id = i64::try_from(n).unwrap_or_default();
            assert!(feeds.pressed(7, press));
        }
        let taken = feed.take_presses();
        assert_eq!(taken.len(), MAX_QUEUED_PRESSES, "bounded");
        assert_eq!(
            taken.first().map(|press| press.query_id),
            Some(1),
            "oldest dropped"
        );
        assert!(feed.take_presses().is_empty());
        feeds.unsubscribe(7);
        assert!(!feeds.pressed(7, press));
    }
}
