//! Message identifiers: generating them and checking the peer's.
//!
//! A msg_id is the sender's clock: Unix seconds in the high 32 bits, the fraction of a second
//! below. Its two lowest bits say who sent it: 0 for the client, 1 for a server reply, 3 for a
//! message the server started (core.telegram.org/mtproto/description#message-identifier-msg-id).
//! Ids from one sender strictly increase.
//!
//! Checking a peer's ids (core.telegram.org/mtproto/security_guidelines and
//! /service_messages_about_messages):
//! - the parity must match the sender (bad_msg_notification 18 otherwise);
//! - once the clocks agree, an id more than 300 s in the past (16) or 30 s in the future (17)
//!   is refused; the server applies this from the first message, the client only after it has
//!   synchronised its clock, so that the notification that fixes its clock gets through;
//! - the last [`DEFAULT_WINDOW`] ids are remembered: an id already seen is a duplicate (ignored),
//!   and once the window is full an id at or below its smallest member cannot be told apart
//!   from an old one (20 on the server, ignored on the client);
//! - seq_no must be odd for content-related messages and even for the others (35 and 34), and
//!   agree in order with the msg_ids around it (32 when a lower id carries a higher seq_no, or
//!   the same odd one; 33 when a higher id carries a lower seq_no, or the same odd one).
//!
//! [`SeqNoGenerator`] produces seq_no: twice the number of content-related messages sent
//! before, plus one for a content-related message.

use std::collections::VecDeque;
use std::time::Duration;

use columba_mtproto::time::Now;
pub(crate) use columba_mtproto::time::{MsgIdGenerator, MsgIdKind};

/// Ids remembered for duplicate detection.
pub const DEFAULT_WINDOW: usize = 1000;
/// How far in the past an id may lie.
pub const DEFAULT_MAX_PAST: Duration = Duration::from_secs(300);
/// How far in the future an id may lie.
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(30);

/// Limits for [`MsgIdChecker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MsgIdPolicy {
    /// Ids remembered.
    pub window: usize,
    /// How far in the past an id may lie.
    pub max_past: Duration,
    /// How far in the future an id may lie.
    pub max_future: Duration,
}

impl Default for MsgIdPolicy {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            max_past: DEFAULT_MAX_PAST,
            max_future: DEFAULT_MAX_FUTURE,
        }
    }
}

/// Why a peer's msg_id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsgIdRejection {
    /// Seen before (within the window): ignore the message (answer again if it was a request
    /// that was answered).
    #[error("msg_id already received")]
    Duplicate,
    /// At or below the full window's smallest id: too old to tell whether it was seen.
    #[error("msg_id too old to check")]
    BelowWindow,
    /// More than the allowed time in the past.
    #[error("msg_id too low")]
    TooLow,
    /// More than the allowed time in the future.
    #[error("msg_id too high")]
    TooHigh,
    /// The two lowest bits do not match the sender.
    #[error("msg_id has the wrong parity")]
    BadParity,
    /// A message with a lower msg_id has a higher seq_no, or the same odd one.
    #[error("seq_no too low")]
    SeqNoTooLow,
    /// A message with a higher msg_id has a lower seq_no, or the same odd one.
    #[error("seq_no too high")]
    SeqNoTooHigh,
    /// An odd seq_no on a message that is not content-related.
    #[error("even seq_no expected")]
    EvenSeqNoExpected,
    /// An even seq_no on a content-related message.
    #[error("odd seq_no expected")]
    OddSeqNoExpected,
}

impl MsgIdRejection {
    /// The bad_msg_notification code a server answers with, if any (a duplicate is ignored).
    pub fn bad_msg_code(&self) -> Option<i32> {
        match self {
            Self::Duplicate => None,
            Self::TooLow => Some(16),
            Self::TooHigh => Some(17),
            Self::BadParity => Some(18),
            Self::BelowWindow => Some(20),
            Self::SeqNoTooLow => Some(32),
            Self::SeqNoTooHigh => Some(33),
            Self::EvenSeqNoExpected => Some(34),
            Self::OddSeqNoExpected => Some(35),
        }
    }
}

/// Which seq_no parity a received message must have.
///
/// API queries and their answers are content-related (odd seq_no); `msgs_ack`, containers and
/// `gzip_packed` wrappers are not (even). The spec leaves the service messages in between
/// (pings, salts, state requests, notifications) to the sender, and clients differ, so those
/// are checked for order only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Relevance {
    /// Must carry an odd seq_no (bad_msg_notification 35 otherwise).
    ContentRelated,
    /// Must carry an even seq_no (bad_msg_notification 34 otherwise).
    NotContentRelated,
    /// Either parity; the seq_no's own parity says which it is.
    Either,
}

impl From<bool> for Relevance {
    fn from(content_related: bool) -> Self {
        if content_related {
            Self::ContentRelated
        } else {
            Self::NotContentRelated
        }
    }
}

/// Checks the ids one peer sends, and remembers the last ones.
#[derive(Debug, Clone)]
pub(crate) struct MsgIdChecker {
    policy: MsgIdPolicy,
    /// Whose ids these are.
    from_server: bool,
    /// Whether the time window applies (always on the server; on the client once synchronised).
    check_time: bool,
    /// Added to the local clock before comparing (the client's correction).
    offset_secs: i64,
    /// Ids at or below this are refused (set when the peer restarts its seq_no).
    floor: i64,
    /// Ids below this are refused as too low (16): a server's start, before which it cannot
    /// know what it already ran.
    time_floor: i64,
    /// Recent msg_ids and their seq_no, sorted by msg_id. Ids almost always arrive in
    /// order, so the common insertion is a push at the back and an eviction at the front;
    /// lookups are binary searches.
    seen: VecDeque<(i64, i32)>,
}

impl MsgIdChecker {
    /// A checker for ids the client sends (used by the server): the time window applies
    /// from the start.
    pub(crate) fn for_client_ids(policy: MsgIdPolicy) -> Self {
        Self {
            policy,
            from_server: false,
            check_time: true,
            offset_secs: 0,
            floor: i64::MIN,
            time_floor: i64::MIN,
            seen: VecDeque::new(),
        }
    }

    /// A checker for ids the server sends (used by the client): the time window applies once
    /// [`Self::synchronise`] has been called.
    pub(crate) fn for_server_ids(policy: MsgIdPolicy) -> Self {
        Self {
            policy,
            from_server: true,
            check_time: false,
            offset_secs: 0,
            floor: i64::MIN,
            time_floor: i64::MIN,
            seen: VecDeque::new(),
        }
    }

    /// Turns the time window on, with the local clock corrected by `offset_secs`.
    pub(crate) fn synchronise(&mut self, offset_secs: i64) {
        self.check_time = true;
        self.offset_secs = offset_secs;
    }

    /// Whether `msg_id` was accepted before and is still in the window.
    pub(crate) fn contains(&self, msg_id: i64) -> bool {
        self.position(msg_id).is_ok()
    }

    /// The peer started counting seq_no again (a server that forgot a session and made it
    /// anew): the ids seen so far are forgotten, except that nothing at or below the
    /// highest of them is accepted any more, so replays stay impossible.
    pub(crate) fn restart_seq_no(&mut self) {
        if let Some(&(last, _)) = self.seen.back() {
            self.floor = self.floor.max(last);
        }
        self.seen.clear();
    }

    /// Refuses ids from before `since_epoch` (a Unix time) as too low (16), whatever the window: a server
    /// sets it to its start, so that a message captured before a restart (which no session
    /// remembers) cannot be run again, and an honest client resynchronises its clock and
    /// sends again with a new id.
    pub(crate) fn refuse_before(&mut self, since_epoch: Duration) {
        let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX >> 32) << 32;
        // The fraction of a second as msg_id's 32 low bits.
        let fraction = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
        let floor = secs | i64::try_from(fraction).unwrap_or(0);
        self.time_floor = self.time_floor.max(floor);
    }

    /// The highest id accepted so far.
    pub(crate) fn highest(&self) -> Option<i64> {
        self.seen.back().map(|&(id, _)| id)
    }

    /// The smallest id remembered, once the window is full (ids at or below it are refused).
    pub(crate) fn window_floor(&self) -> Option<i64> {
        (self.seen.len() >= self.policy.window)
            .then(|| self.seen.front().map(|&(id, _)| id))
            .flatten()
    }

    /// The seq_no remembered for `msg_id`, if it was accepted and is still in the window.
    pub(crate) fn seq_no_of(&self, msg_id: i64) -> Option<i32> {
        let at = self.position(msg_id).ok()?;
        self.seen.get(at).map(|&(_, seq_no)| seq_no)
    }

    /// Checks a message's `msg_id` and `seq_no` without remembering them.
    pub(crate) fn check(
        &self,
        msg_id: i64,
        seq_no: i32,
        relevance: impl Into<Relevance>,
        now: Now,
    ) -> Result<(), MsgIdRejection> {
        self.check_at(msg_id, seq_no, relevance.into(), Some(now))
    }

    fn check_at(
        &self,
        msg_id: i64,
        seq_no: i32,
        relevance: Relevance,
        now: Option<Now>,
    ) -> Result<(), MsgIdRejection> {
        let parity_ok = if self.from_server {
            msg_id & 1 == 1
        } else {
            msg_id & 3 == 0
        };
        if !parity_ok {
            return Err(MsgIdRejection::BadParity);
        }
        if let Some(now) = now.filter(|_| self.check_time) {
            let local = i128::try_from(now.unix.as_nanos()).unwrap_or(i128::MAX)
                + i128::from(self.offset_secs) * 1_000_000_000;
            // The id's time in nanoseconds: seconds, and the 32-bit fraction scaled.
            let id_nanos = i128::from(msg_id >> 32) * 1_000_000_000
                + ((i128::from(msg_id & 0xffff_ffff) * 1_000_000_000) >> 32);
            if id_nanos < local - self.policy.max_past.as_nanos() as i128 {
                return Err(MsgIdRejection::TooLow);
            }
            if id_nanos > local + self.policy.max_future.as_nanos() as i128 {
                return Err(MsgIdRejection::TooHigh);
            }
        }
        if msg_id < self.time_floor {
            return Err(MsgIdRejection::TooLow);
        }
        if msg_id <= self.floor {
            return Err(MsgIdRejection::BelowWindow);
        }
        let position = self.position(msg_id);
        if position.is_ok() {
            return Err(MsgIdRejection::Duplicate);
        }
        if self.seen.len() >= self.policy.window
            && self.seen.front().is_some_and(|&(min, _)| msg_id <= min)
        {
            return Err(MsgIdRejection::BelowWindow);
        }
        let odd = seq_no & 1 == 1;
        match relevance {
            Relevance::ContentRelated if !odd => return Err(MsgIdRejection::OddSeqNoExpected),
            Relevance::NotContentRelated if odd => {
                return Err(MsgIdRejection::EvenSeqNoExpected);
            }
            _ => {}
        }
        // The neighbours in msg_id order must be in seq_no order too; the stored ids already
        // are, so the nearest one on each side decides.
        let at = position.unwrap_or_else(|insert_at| insert_at);
        let before = at
            .checked_sub(1)
            .and_then(|i| self.seen.get(i))
            .map(|&(_, seq)| seq);
        let after = self.seen.get(at).map(|&(_, seq)| seq);
        if let Some(before) = before {
            if before > seq_no || (before == seq_no && odd) {
                return Err(MsgIdRejection::SeqNoTooLow);
            }
        }
        if let Some(after) = after {
            if after < seq_no || (after == seq_no && odd) {
                return Err(MsgIdRejection::SeqNoTooHigh);
            }
        }
        Ok(())
    }

    /// Checks a message and, if it passes, remembers its ids (forgetting the smallest msg_id
    /// beyond the window's size).
    pub(crate) fn accept(
        &mut self,
        msg_id: i64,
        seq_no: i32,
        relevance: impl Into<Relevance>,
        now: Now,
    ) -> Result<(), MsgIdRejection> {
        self.check_at(msg_id, seq_no, relevance.into(), Some(now))?;
        self.remember(msg_id, seq_no);
        Ok(())
    }

    /// Like [`Self::accept`] but without the time window: for the notifications that correct
    /// the receiver's clock or salt (`bad_msg_notification`, `bad_server_salt`), which must
    /// get through precisely when the clocks disagree. Parity, duplicates, the window and
    /// seq_no still apply, and the caller acts on such a message only if it refers to a
    /// message it really sent.
    pub(crate) fn accept_untimed(
        &mut self,
        msg_id: i64,
        seq_no: i32,
        relevance: impl Into<Relevance>,
    ) -> Result<(), MsgIdRejection> {
        self.check_at(msg_id, seq_no, relevance.into(), None)?;
        self.remember(msg_id, seq_no);
        Ok(())
    }

    /// Where `msg_id` is in `seen`, or where it would go. Checks the back first: the next id
    /// is nearly always the highest.
    fn position(&self, msg_id: i64) -> Result<usize, usize> {
        match self.seen.back() {
            None => Err(0),
            Some(&(last, _)) if msg_id > last => Err(self.seen.len()),
            Some(_) => self.seen.binary_search_by_key(&msg_id, |&(id, _)| id),
        }
    }

    /// Remembers a message [`Self::check`] accepted just before (nothing may have been
    /// remembered in between), without checking it again.
    pub(crate) fn record_checked(&mut self, msg_id: i64, seq_no: i32) {
        self.remember(msg_id, seq_no);
    }

    fn remember(&mut self, msg_id: i64, seq_no: i32) {
        match self.position(msg_id) {
            Ok(at) => {
                if let Some(slot) = self.seen.get_mut(at) {
                    slot.1 = seq_no;
                }
            }
            Err(at) if at == self.seen.len() => self.seen.push_back((msg_id, seq_no)),
            Err(at) => self.seen.insert(at, (msg_id, seq_no)),
        }
        while self.seen.len() > self.policy.window.max(1) {
            self.seen.pop_front();
        }
    }
}

/// Produces seq_no for the messages one side sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SeqNoGenerator {
    content_related_sent: i32,
}

impl SeqNoGenerator {
    /// A generator for a new session.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The seq_no of the next message: odd and counted if it is content-related.
    pub(crate) fn next(&mut self, content_related: bool) -> i32 {
        let base = self.content_related_sent.wrapping_mul(2);
        if content_related {
            self.content_related_sent = self.content_related_sent.wrapping_add(1);
            base | 1
        } else {
            base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Instant;

    fn at(unix: Duration) -> Now {
        Now {
            monotonic: Instant::now(),
            unix,
        }
    }

    const T: Duration = Duration::from_secs(1_700_000_000);

    #[test]
    fn the_server_refuses_bad_parity_and_ids_out_of_time() {
        let mut checker = MsgIdChecker::for_client_ids(MsgIdPolicy::default());
        let now = at(T);
        let id = |secs: i64| secs << 32;
        let base = T.as_secs() as i64;
        assert_eq!(
            checker.accept(id(base) | 1, 0, false, now),
            Err(MsgIdRejection::BadParity)
        );
        assert_eq!(
            checker.accept(id(base) | 2, 0, false, now),
            Err(MsgIdRejection::BadParity)
        );
        assert_eq!(
            checker.accept(id(base - 301), 0, false, now),
            Err(MsgIdRejection::TooLow)
        );
        assert_eq!(
            checker.accept(id(base + 31), 0, false, now),
            Err(MsgIdRejection::TooHigh)
        );
        checker.accept(id(base - 299), 0, false, now).unwrap();
        checker.accept(id(base + 29), 0, false, now).unwrap();
        assert_eq!(
            checker.accept(id(base + 29), 0, false, now),
            Err(MsgIdRejection::Duplicate)
        );
        assert_eq!(MsgIdRejection::TooLow.bad_msg_code(), Some(16));
        assert_eq!(MsgIdRejection::TooHigh.bad_msg_code(), Some(17));
        assert_eq!(MsgIdRejection::BadParity.bad_msg_code(), Some(18));
        assert_eq!(MsgIdRejection::BelowWindow.bad_msg_code(), Some(20));
        assert_eq!(MsgIdRejection::Duplicate.bad_msg_code(), None);
    }

    #[test]
    fn the_client_checks_time_only_once_synchronised() {
        let mut checker = MsgIdChecker::for_server_ids(MsgIdPolicy::default());
        // An hour ahead: the client's clock is wrong, the message must get through.
        let ahead = ((T.as_secs() as i64 + 3600) << 32) | 1;
        checker.accept(ahead, 0, false, at(T)).unwrap();
        checker.synchronise(3600);
        checker.accept(ahead + 4, 0, false, at(T)).unwrap();
        let stale = ((T.as_secs() as i64 - 1000) << 32) | 3;
        assert_eq!(
            checker.accept(stale, 0, false, at(T)),
            Err(MsgIdRejection::TooLow)
        );
        assert_eq!(
            checker.accept(ahead + 1, 0, false, at(T)),
            Err(MsgIdRejection::BadParity)
        );
    }

    #[test]
    fn a_full_window_refuses_ids_at_or_below_its_minimum() {
        let policy = MsgIdPolicy {
            window: 4,
            ..MsgIdPolicy::default()
        };
        let mut checker = MsgIdChecker::for_client_ids(policy);
        let base = (T.as_secs() as i64) << 32;
        for i in [10, 20, 30, 40] {
            checker.accept(base + i * 4, 0, false, at(T)).unwrap();
        }
        // Not seen but below the minimum: cannot be told from an old one.
        assert_eq!(
            checker.accept(base + 5 * 4, 0, false, at(T)),
            Err(MsgIdRejection::BelowWindow)
        );
        assert_eq!(
            checker.accept(base + 10 * 4, 0, false, at(T)),
            Err(MsgIdRejection::Duplicate)
        );
        // Inside the window and new: fine, and the smallest id leaves.
        checker.accept(base + 15 * 4, 0, false, at(T)).unwrap();
        assert!(!checker.contains(base + 10 * 4));
        assert_eq!(
            checker.accept(base + 12 * 4, 0, false, at(T)),
            Err(MsgIdRejection::BelowWindow)
        );
    }

    #[test]
    fn seq_no_parity_and_order() {
        let mut checker = MsgIdChecker::for_client_ids(MsgIdPolicy::default());
        let base = (T.as_secs() as i64) << 32;
        let now = at(T);
        assert_eq!(
            checker.accept(base + 4, 2, true, now),
            Err(MsgIdRejection::OddSeqNoExpected)
        );
        assert_eq!(
            checker.accept(base + 4, 1, false, now),
            Err(MsgIdRejection::EvenSeqNoExpected)
        );
        checker.accept(base + 40, 5, true, now).unwrap();
        // A lower id with a higher seq_no, or the same odd one: 33 (the later message says less).
        assert_eq!(
            checker.accept(base + 20, 7, true, now),
            Err(MsgIdRejection::SeqNoTooHigh)
        );
        assert_eq!(
            checker.accept(base + 20, 5, true, now),
            Err(MsgIdRejection::SeqNoTooHigh)
        );
        // A higher id with a lower seq_no, or the same odd one: 32.
        assert_eq!(
            checker.accept(base + 60, 3, true, now),
            Err(MsgIdRejection::SeqNoTooLow)
        );
        assert_eq!(
            checker.accept(base + 60, 5, true, now),
            Err(MsgIdRejection::SeqNoTooLow)
        );
        // Even seq_no may repeat (acks, containers between two content messages).
        checker.accept(base + 60, 6, false, now).unwrap();
        checker.accept(base + 64, 6, false, now).unwrap();
        checker.accept(base + 68, 7, true, now).unwrap();
        checker.accept(base + 20, 3, true, now).unwrap();
        assert_eq!(MsgIdRejection::SeqNoTooLow.bad_msg_code(), Some(32));
        assert_eq!(MsgIdRejection::SeqNoTooHigh.bad_msg_code(), Some(33));
        assert_eq!(MsgIdRejection::EvenSeqNoExpected.bad_msg_code(), Some(34));
        assert_eq!(MsgIdRejection::OddSeqNoExpected.bad_msg_code(), Some(35));
    }

    #[test]
    fn seq_no_generator_counts_content_related_messages() {
        let mut seq = SeqNoGenerator::new();
        let sent: Vec<i32> = [true, false, true, true, false, false, true]
            .iter()
            .map(|&c| seq.next(c))
            .collect();
        assert_eq!(sent, [1, 2, 3, 5, 6, 6, 7]);
    }

    proptest! {
        /// What one side generates, the other side accepts, in any order of arrival within
        /// the window, and never twice.
        #[test]
        fn generated_messages_are_accepted_in_any_order(
            kinds in proptest::collection::vec(any::<bool>(), 1..60),
            order in proptest::collection::vec(any::<u16>(), 60),
        ) {
            let mut ids = MsgIdGenerator::new();
            let mut seq = SeqNoGenerator::new();
            let messages: Vec<(i64, i32, bool)> = kinds
                .iter()
                .map(|&content| (ids.next(at(T), MsgIdKind::Client), seq.next(content), content))
                .collect();
            let mut shuffled = messages.clone();
            for (i, key) in order.iter().enumerate().take(shuffled.len()) {
                let j = usize::from(*key) % shuffled.len();
                shuffled.swap(i, j);
            }
            let mut checker = MsgIdChecker::for_client_ids(MsgIdPolicy::default());
            for &(msg_id, seq_no, content) in &shuffled {
                prop_assert_eq!(checker.accept(msg_id, seq_no, content, at(T)), Ok(()));
            }
            for &(msg_id, seq_no, content) in &messages {
                prop_assert_eq!(checker.accept(msg_id, seq_no, content, at(T)), Err(MsgIdRejection::Duplicate));
            }
        }

        #[test]
        fn no_id_is_accepted_twice_and_the_window_stays_bounded(
            offsets in proptest::collection::vec(0i64..64, 1..300),
            window in 1usize..32,
        ) {
            let mut checker = MsgIdChecker::for_client_ids(MsgIdPolicy { window, ..MsgIdPolicy::default() });
            let base = (T.as_secs() as i64) << 32;
            let mut accepted = std::collections::HashSet::new();
            for offset in offsets {
                let id = base + offset * 4;
                if checker.accept(id, 0, false, at(T)).is_ok() {
                    prop_assert!(accepted.insert(id), "accepted {} twice", id);
                }
                prop_assert!(checker.seen.len() <= window);
            }
        }
    }
}
