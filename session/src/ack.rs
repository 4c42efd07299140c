//! Acknowledgements: collecting the msg_ids of content-related messages received, and sending
//! them as `msgs_ack` in batches.
//!
//! The spec lets a receiver wait before acknowledging (the server should not be left waiting
//! longer than 60-120 s) and allows at most 8192 ids in one `msgs_ack`
//! (core.telegram.org/mtproto/service_messages_about_messages). [`AckQueue`] sends a batch when
//! more than [`AckPolicy::threshold`] ids are pending or the oldest has waited
//! [`AckPolicy::delay`]. A caller that is sending a message anyway gets the pending ids to
//! ride along in the same container once half the threshold or half the delay is reached
//! ([`AckQueue::poll_piggyback`]): acknowledging every message at once would make every
//! outgoing message a container for nothing. Sans-IO: the caller asks
//! [`AckQueue::poll_timeout`] when to come back.

use std::time::{Duration, Instant};

/// The most ids one `msgs_ack` may carry.
pub const MAX_ACK_IDS: usize = 8192;

/// When [`AckQueue`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AckPolicy {
    /// Send once more than this many ids are pending.
    pub threshold: usize,
    /// Send once the oldest pending id has waited this long.
    pub delay: Duration,
}

impl Default for AckPolicy {
    fn default() -> Self {
        Self {
            threshold: 16,
            delay: Duration::from_secs(60),
        }
    }
}

/// Pending acknowledgements of one session.
#[derive(Debug, Clone, Default)]
pub(crate) struct AckQueue {
    policy: AckPolicy,
    pending: Vec<i64>,
    oldest: Option<Instant>,
}

impl AckQueue {
    /// An empty queue.
    pub(crate) fn new(policy: AckPolicy) -> Self {
        Self {
            policy,
            pending: Vec::new(),
            oldest: None,
        }
    }

    /// Records a received content-related message to acknowledge.
    pub(crate) fn push(&mut self, msg_id: i64, now: Instant) {
        if self.pending.is_empty() {
            self.oldest = Some(now);
        }
        self.pending.push(msg_id);
    }

    /// Whether `msg_id` waits to be acknowledged.
    pub(crate) fn contains(&self, msg_id: i64) -> bool {
        self.pending.contains(&msg_id)
    }

    /// Drops `msg_id` from the pending ids (an answer to it acknowledges it already).
    pub(crate) fn remove(&mut self, msg_id: i64) {
        if let Some(at) = self.pending.iter().rposition(|id| *id == msg_id) {
            self.pending.swap_remove(at);
            if self.pending.is_empty() {
                self.oldest = None;
            }
        }
    }

    /// How many ids are pending.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// When [`Self::poll_ack`] will have a batch because of the delay, if anything is pending.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.oldest.map(|oldest| oldest + self.policy.delay)
    }

    /// A batch to send now, if the threshold or the delay says so (at most [`MAX_ACK_IDS`];
    /// call again for the rest).
    pub(crate) fn poll_ack(&mut self, now: Instant) -> Option<Vec<i64>> {
        let due = self.poll_timeout().is_some_and(|at| now >= at);
        if self.pending.len() > self.policy.threshold || (due && !self.pending.is_empty()) {
            self.take(now)
        } else {
            None
        }
    }

    /// A batch to send along with a message going out anyway: when [`Self::poll_ack`] would
    /// send one, or once half the threshold or half the delay is reached.
    pub(crate) fn poll_piggyback(&mut self, now: Instant) -> Option<Vec<i64>> {
        let half_due = self
            .oldest
            .is_some_and(|oldest| now >= oldest + self.policy.delay / 2);
        if self.pending.len() > self.policy.threshold / 2 || half_due {
            self.take(now)
        } else {
            None
        }
    }

    /// Everything pending (up to [`MAX_ACK_IDS`]).
    pub(crate) fn take(&mut self, now: Instant) -> Option<Vec<i64>> {
        if self.pending.is_empty() {
            return None;
        }
        let count = self.pending.len().min(MAX_ACK_IDS);
        let batch: Vec<i64> = self.pending.drain(..count).collect();
        // What is left (beyond one batch) counts as pending from now on: it goes out with the
        // next poll, which the threshold makes immediate anyway.
        self.oldest = (!self.pending.is_empty()).then_some(now);
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn piggybacks_from_half_the_threshold_or_half_the_delay() {
        let start = Instant::now();
        let mut queue = AckQueue::new(AckPolicy {
            threshold: 4,
            delay: Duration::from_secs(60),
        });
        queue.push(4, start);
        queue.push(8, start);
        assert_eq!(queue.poll_piggyback(start), None);
        assert_eq!(
            queue.poll_piggyback(start + Duration::from_secs(30)),
            Some(vec![4, 8])
        );
        queue.push(12, start);
        queue.push(16, start);
        queue.push(20, start);
        assert_eq!(queue.poll_piggyback(start), Some(vec![12, 16, 20]));
    }

    #[test]
    fn sends_when_more_than_the_threshold_is_pending() {
        let start = Instant::now();
        let mut queue = AckQueue::new(AckPolicy {
            threshold: 3,
            delay: Duration::from_secs(60),
        });
        for id in 1..=3 {
            queue.push(id * 4, start);
            assert_eq!(queue.poll_ack(start), None);
        }
        queue.push(16, start);
        assert_eq!(queue.poll_ack(start), Some(vec![4, 8, 12, 16]));
        assert!(queue.is_empty());
        assert_eq!(queue.poll_timeout(), None);
    }

    #[test]
    fn sends_when_the_oldest_has_waited_the_delay() {
        let start = Instant::now();
        let mut queue = AckQueue::new(AckPolicy::default());
        queue.push(4, start);
        queue.push(8, start + Duration::from_secs(30));
        assert_eq!(queue.poll_timeout(), Some(start + Duration::from_secs(60)));
        assert_eq!(queue.poll_ack(start + Duration::from_secs(59)), None);
        assert_eq!(
            queue.poll_ack(start + Duration::from_secs(60)),
            Some(vec![4, 8])
        );
    }

    #[test]
    fn batches_hold_at_most_8192_ids() {
        let start = Instant::now();
        let mut queue = AckQueue::new(AckPolicy::default());
        for id in 0..(MAX_ACK_IDS as i64 + 10) {
            queue.push(id * 4, start);
        }
        assert_eq!(queue.poll_ack(start).map(|b| b.len()), Some(MAX_ACK_IDS));
        assert_eq!(queue.len(), 10);
        assert_eq!(queue.take(start).map(|b| b.len()), Some(10));
        assert_eq!(queue.take(start), None);
    }

    proptest! {
        /// Every id pushed comes out exactly once, in order, and nothing waits past the delay.
        #[test]
        fn every_id_is_acknowledged_once(
            events in proptest::collection::vec((0u64..5_000, any::<bool>()), 1..300),
        ) {
            let start = Instant::now();
            let policy = AckPolicy { threshold: 16, delay: Duration::from_secs(2) };
            let mut queue = AckQueue::new(policy);
            let mut clock = start;
            let mut pushed = Vec::new();
            let mut acked = Vec::new();
            for (i, (advance_ms, piggyback)) in events.into_iter().enumerate() {
                clock += Duration::from_millis(advance_ms);
                if let Some(batch) = queue.poll_ack(clock) {
                    acked.extend(batch);
                }
                if let Some(at) = queue.poll_timeout() {
                    prop_assert!(at > clock, "a due batch was left behind");
                }
                let id = (i as i64 + 1) * 4;
                queue.push(id, clock);
                pushed.push(id);
                if piggyback {
                    acked.extend(queue.take(clock).unwrap_or_default());
                }
            }
            acked.extend(queue.take(clock).unwrap_or_default());
            prop_assert_eq!(acked, pushed);
        }
    }
}
