//! Self-destruct timers (<https://core.telegram.org/api/end-to-end#self-destructing-messages>):
//! a message with a TTL is deleted that many seconds after it was read. The receiver's timer
//! starts when its user opens the message (and the other side is told with
//! `decryptedMessageActionReadMessages`); the sender's when that notice comes back.

use std::collections::{BTreeMap, BTreeSet};

use crate::e2e::chat::LoadError;
use crate::e2e::chat::saved::{In, Out};
use crate::tl::secret::enums as e2e;

/// Messages with a TTL tracked at most (more are not timed: their deletion is then the
/// application's own).
pub(crate) const MAX_TIMED: usize = 10_000;

/// The TTL of a message, if it has one.
pub(crate) fn ttl_of(message: &e2e::DecryptedMessage) -> i32 {
    match message {
        e2e::DecryptedMessage::DecryptedMessage(m) => m.ttl,
        e2e::DecryptedMessage::DecryptedMessage46(m) => m.ttl,
        e2e::DecryptedMessage::DecryptedMessage23(m) => m.ttl,
        _ => 0,
    }
}

/// The timers of one device.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Timers {
    /// Messages not read yet: (chat, random id) -> (TTL in seconds, received here).
    waiting: BTreeMap<(i32, i64), (i32, bool)>,
    /// Running timers: (deadline, chat, random id).
    running: BTreeSet<(u64, i32, i64)>,
}

impl Timers {
    fn len(&self) -> usize {
        self.waiting.len().saturating_add(self.running.len())
    }

    /// A message with `ttl` seconds (if positive) was received or sent.
    pub(crate) fn track(&mut self, chat_id: i32, random_id: i64, ttl: i32, received: bool) {
        if ttl > 0 && self.len() < MAX_TIMED {
            self.waiting.insert((chat_id, random_id), (ttl, received));
        }
    }

    fn start(&mut self, chat_id: i32, random_ids: &[i64], now: u64, received: bool) -> Vec<i64> {
        let mut started = Vec::new();
        for &random_id in random_ids {
            let key = (chat_id, random_id);
            if let Some(&(ttl, was_received)) = self.waiting.get(&key)
                && was_received == received
            {
                self.waiting.remove(&key);
                let seconds = u64::try_from(ttl).unwrap_or(0);
                self.running
                    .insert((now.saturating_add(seconds), chat_id, random_id));
                started.push(random_id);
            }
        }
        started
    }

    /// This device's user read received messages: their timers start; the ones that had a
    /// TTL.
    pub(crate) fn opened_here(&mut self, chat_id: i32, random_ids: &[i64], now: u64) -> Vec<i64> {
        self.start(chat_id, random_ids, now, true)
    }

    /// The other side read messages sent from here: their timers start.
    pub(crate) fn opened_there(&mut self, chat_id: i32, random_ids: &[i64], now: u64) {
        self.start(chat_id, random_ids, now, false);
    }

    /// The next deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.running.first().map(|(deadline, _, _)| *deadline)
    }

    /// The messages whose time is up at `now`, oldest deadline first.
    pub(crate) fn expire(&mut self, now: u64) -> Vec<(i32, i64)> {
        let mut due = Vec::new();
        while let Some(&(deadline, chat_id, random_id)) = self.running.first() {
            if deadline > now {
                break;
            }
            self.running.pop_first();
            due.push((chat_id, random_id));
        }
        due
    }

    /// A chat ended: its timers go with it.
    pub(crate) fn forget_chat(&mut self, chat_id: i32) {
        self.waiting.retain(|(chat, _), _| *chat != chat_id);
        self.running.retain(|(_, chat, _)| *chat != chat_id);
    }

    pub(crate) fn save_into(&self, out: &mut Out) {
        out.u32(u32::try_from(self.waiting.len()).unwrap_or(u32::MAX));
        for (&(chat_id, random_id), &(ttl, received)) in &self.waiting {
            out.i32(chat_id);
            out.i64(random_id);
            out.i32(ttl);
            out.u8(u8::from(received));
        }
        out.u32(u32::try_from(self.running.len()).unwrap_or(u32::MAX));
        for &(deadline, chat_id, random_id) in &self.running {
            out.i64(i64::try_from(deadline).unwrap_or(i64::MAX));
            out.i32(chat_id);
            out.i64(random_id);
        }
    }

    pub(crate) fn load_from(input: &mut In<'_>) -> Result<Self, LoadError> {
        let mut timers = Self::default();
        let waiting = input.count(4 + 8 + 4 + 1, "timers")?;
        for _ in 0..waiting {
            let key = (input.i32("timer chat")?, input.i64("timer message")?);
            let ttl = input.i32("timer ttl")?;
            let received = input.bool("timer side")?;
            timers.waiting.insert(key, (ttl, received));
        }
        let running = input.count(8 + 4 + 8, "timers")?;
        for _ in 0..running {
            let deadline =
                u64::try_from(input.i64("deadline")?).map_err(|_| LoadError("deadline"))?;
            timers.running.insert((
                deadline,
                input.i32("timer chat")?,
                input.i64("timer message")?,
            ));
        }
        if timers.len() > MAX_TIMED {
            return Err(LoadError("timers"));
        }
        Ok(timers)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::tl::Reader;

    #[test]
    fn timers_start_when_read_and_run_out_in_order() {
        let mut timers = Timers::default();
        timers.track(1, 10, 5, true);
        timers.track(1, 11, 2, false);
        timers.track(1, 12, 0, true);
        assert_eq!(timers.next_deadline(), None, "nothing read yet");
        assert_eq!(timers.opened_here(1, &[10, 11, 12], 100), vec![10]);
        timers.opened_there(1, &[11], 101);
        assert_eq!(timers.next_deadline(), Some(103));
        assert!(timers.expire(102).is_empty());
        assert_eq!(timers.expire(105), vec![(1, 11), (1, 10)]);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn timers_are_saved_and_forgotten_with_their_chat() {
        let mut timers = Timers::default();
        timers.track(1, 10, 5, true);
        timers.track(2, 20, 5, true);
        timers.opened_here(2, &[20], 50);
        let mut out = Out::default();
        timers.save_into(&mut out);
        let loaded = Timers::load_from(&mut In(Reader::new(&out.0))).unwrap();
        assert_eq!(loaded, timers);
        timers.forget_chat(2);
        assert_eq!(timers.next_deadline(), None);
        for len in 0..out.0.len() {
            assert!(Timers::load_from(&mut In(Reader::new(&out.0[..len]))).is_err());
        }
    }
}
