//! Sequence numbers of a secret chat: how each side notices a message the relay dropped,
//! repeated, reordered or reflected (<https://core.telegram.org/api/end-to-end/seq_no>).
//!
//! Each side counts the messages it sent and the messages it received and processed in order
//! (both from 0). Every message carries both counts of its writer at the time it was made, on
//! the wire as `2 × count + x`: the chat's creator writes its `out_seq_no` odd and its
//! `in_seq_no` even, the other side the reverse, so that a message reflected back to its writer
//! has the wrong parity. The receiver expects the writer's next count exactly:
//!
//! - an older count is a repeat, dropped without looking at it;
//! - a newer one means messages in between are missing: it is held, and the receiver asks for
//!   the hole with `decryptedMessageActionResend` (wire numbers, both ends inclusive);
//! - the writer's `in_seq_no` may not go back, nor count more messages than were sent to it.
//!
//! [`Sequence`] keeps these counts and the held messages for one chat, with no I/O; any
//! violation is a [`SeqError`], after which the chat must be closed.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use super::cipher::Side;

/// Messages a chat holds while waiting for a hole to be filled, by default.
pub const DEFAULT_MAX_HELD: usize = 1000;
/// The most messages one `Resend` may ask for (TDLib's `MAX_RESEND_COUNT`).
pub const MAX_RESEND: i32 = 1000;

/// A violation of the sequence rules: the chat cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeqError {
    /// A sequence number with the parity of the wrong side, or negative: a reflected or forged
    /// message.
    #[error("sequence number {0} has the wrong parity or sign")]
    BadParity(i32),
    /// The writer's count of messages received went back.
    #[error("in_seq_no went back from {before} to {now} (counts)")]
    InSeqWentBack {
        /// The count it said before.
        before: i32,
        /// The count it says now.
        now: i32,
    },
    /// The writer says it received more messages than were sent to it.
    #[error("in_seq_no counts {claimed} messages received, {sent} were sent")]
    InSeqAhead {
        /// The count it says.
        claimed: i32,
        /// Messages sent to it.
        sent: i32,
    },
    /// More messages are held than the limit while a hole stays open.
    #[error("more than {0} messages held behind a hole")]
    TooManyHeld(usize),
    /// A `Resend` for messages that were never sent, backwards, with the wrong parity, or for
    /// more than [`MAX_RESEND`] messages.
    #[error("resend of {start}..={end} cannot be satisfied")]
    BadResend {
        /// Its first wire number.
        start: i32,
        /// Its last wire number.
        end: i32,
    },
    /// A count reached the largest sequence number.
    #[error("sequence numbers exhausted")]
    Exhausted,
}

/// The two wire numbers of one outgoing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqNumbers {
    /// `in_seq_no` on the wire.
    pub in_seq_no: i32,
    /// `out_seq_no` on the wire.
    pub out_seq_no: i32,
}

impl SeqNumbers {
    /// The writer's count of messages it had sent before this one.
    pub fn out_count(&self) -> i32 {
        self.out_seq_no / 2
    }
}

/// What became of a received message.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival<T> {
    /// In order: this message and any held ones it released, in order.
    Deliver(Vec<T>),
    /// A repeat of a message already processed: drop it unread.
    Repeat,
    /// Held behind a hole; `resend` is the hole to ask for (wire numbers of the writer's
    /// `out_seq_no`), if it is a new one.
    Held {
        /// A `Resend` to send, with its start and end.
        resend: Option<(i32, i32)>,
    },
}

/// The counts to persist with a chat (the held messages are persisted apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqCounts {
    /// Messages sent.
    pub sent: i32,
    /// Messages received and processed in order.
    pub received: i32,
    /// The writer's last `in_seq_no`, as a count.
    pub peer_received: i32,
}

/// One side's sequence state of one chat, with the messages held behind a hole.
#[derive(Debug, Clone)]
pub struct Sequence<T> {
    side: Side,
    counts: SeqCounts,
    /// Held messages by the writer's out count, with their in count.
    held: BTreeMap<i32, (i32, T)>,
    max_held: usize,
}

/// `2 × count + x`, unless it overflows.
fn wire(count: i32, x: i32) -> Option<i32> {
    count.checked_mul(2)?.checked_add(x)
}

/// The count of a wire number with parity `x`.
fn count_of(number: i32, x: i32) -> Result<i32, SeqError> {
    if number < 0 || number % 2 != x {
        return Err(SeqError::BadParity(number));
    }
    Ok(number / 2)
}

impl<T> Sequence<T> {
    /// A new chat's sequence for `side`, holding at most `max_held` messages behind a hole.
    pub fn new(side: Side, max_held: usize) -> Self {
        Self::restore(side, SeqCounts::default(), max_held)
    }

    /// A chat's sequence from persisted counts (held messages are put back with
    /// [`receive`](Self::receive) again).
    pub fn restore(side: Side, counts: SeqCounts, max_held: usize) -> Self {
        Self {
            side,
            counts,
            held: BTreeMap::new(),
            max_held,
        }
    }

    /// The counts to persist.
    pub fn counts(&self) -> SeqCounts {
        self.counts
    }

    /// The held messages with both their counts (the writer's out count, its in count), to
    /// persist.
    pub fn held_entries(&self) -> impl Iterator<Item = (i32, i32, &T)> {
        self.held
            .iter()
            .map(|(out_count, (in_count, item))| (*out_count, *in_count, item))
    }

    /// Puts back a held message read from persisted state ([`Self::held_entries`]); `false`
    /// (and nothing held) if it is not behind a hole or the limit is reached.
    pub fn restore_held(&mut self, out_count: i32, in_count: i32, item: T) -> bool {
        if out_count <= self.counts.received || self.held.len() >= self.max_held {
            return false;
        }
        self.held.insert(out_count, (in_count, item));
        true
    }

    /// The messages held behind a hole, by the writer's out count.
    pub fn held(&self) -> impl Iterator<Item = (i32, &T)> {
        self.held.iter().map(|(count, (_, item))| (*count, item))
    }

    /// x of `out_seq_no` and `in_seq_no` for messages `side` writes.
    fn parities(side: Side) -> (i32, i32) {
        match side {
            Side::Creator => (1, 0),
            Side::Participant => (0, 1),
        }
    }

    /// The numbers the next outgoing message will have, without counting it.
    pub fn peek_out(&self) -> Result<SeqNumbers, SeqError> {
        let (out_x, in_x) = Self::parities(self.side);
        Ok(SeqNumbers {
            in_seq_no: wire(self.counts.received, in_x).ok_or(SeqError::Exhausted)?,
            out_seq_no: wire(self.counts.sent, out_x).ok_or(SeqError::Exhausted)?,
        })
    }

    /// Numbers the next outgoing message (and counts it as sent).
    pub fn next_out(&mut self) -> Result<SeqNumbers, SeqError> {
        let numbers = self.peek_out()?;
        self.counts.sent = self.counts.sent.checked_add(1).ok_or(SeqError::Exhausted)?;
        Ok(numbers)
    }

    /// Takes a received message with its writer's wire numbers.
    pub fn receive(
        &mut self,
        in_seq_no: i32,
        out_seq_no: i32,
        item: T,
    ) -> Result<Arrival<T>, SeqError> {
        let (out_x, in_x) = Self::parities(self.side.other());
        let out_count = count_of(out_seq_no, out_x)?;
        let in_count = count_of(in_seq_no, in_x)?;
        if in_count > self.counts.sent {
            return Err(SeqError::InSeqAhead {
                claimed: in_count,
                sent: self.counts.sent,
            });
        }
        if out_count < self.counts.received || self.held.contains_key(&out_count) {
            return Ok(Arrival::Repeat);
        }
        if out_count > self.counts.received {
            if self.held.len() >= self.max_held {
                return Err(SeqError::TooManyHeld(self.max_held));
            }
            // A new hole opens below this message unless it lies inside or right after what
            // is held already (that hole has been asked for).
            let after = match self.held.last_key_value() {
                Some((&last, _)) => last.checked_add(1).ok_or(SeqError::Exhausted)?,
                None => self.counts.received,
            };
            // One request covers at most MAX_RESEND messages (what a peer serves); the rest
            // of a longer hole is asked for again through `open_hole`.
            let resend = if out_count > after {
                let last = (out_count - 1).min(after.saturating_add(MAX_RESEND - 1));
                Some((
                    wire(after, out_x).ok_or(SeqError::Exhausted)?,
                    wire(last, out_x).ok_or(SeqError::Exhausted)?,
                ))
            } else {
                None
            };
            self.held.insert(out_count, (in_count, item));
            return Ok(Arrival::Held { resend });
        }
        let mut delivered = Vec::with_capacity(1);
        self.accept(in_count, item, &mut delivered)?;
        while let Some((in_count, item)) = self.held.remove(&self.counts.received) {
            self.accept(in_count, item, &mut delivered)?;
        }
        Ok(Arrival::Deliver(delivered))
    }

    /// Processes the next message in order.
    fn accept(&mut self, in_count: i32, item: T, delivered: &mut Vec<T>) -> Result<(), SeqError> {
        if in_count < self.counts.peer_received {
            return Err(SeqError::InSeqWentBack {
                before: self.counts.peer_received,
                now: in_count,
            });
        }
        self.counts.peer_received = in_count;
        self.counts.received = self
            .counts
            .received
            .checked_add(1)
            .ok_or(SeqError::Exhausted)?;
        delivered.push(item);
        Ok(())
    }

    /// The hole below the first held message, to ask for again (wire numbers; at most
    /// [`MAX_RESEND`] messages of it), if any.
    pub fn open_hole(&self) -> Option<(i32, i32)> {
        let (&first, _) = self.held.first_key_value()?;
        let (out_x, _) = Self::parities(self.side.other());
        let last = first
            .checked_sub(1)?
            .min(self.counts.received.saturating_add(MAX_RESEND - 1));
        Some((wire(self.counts.received, out_x)?, wire(last, out_x)?))
    }

    /// Which of our own messages (by out count) a `Resend` from the other side asks for.
    pub fn resend_range(&self, start: i32, end: i32) -> Result<RangeInclusive<i32>, SeqError> {
        let bad = SeqError::BadResend { start, end };
        let (out_x, _) = Self::parities(self.side);
        let first = count_of(start, out_x).map_err(|_| bad)?;
        let last = count_of(end, out_x).map_err(|_| bad)?;
        if first > last || last >= self.counts.sent || last - first >= MAX_RESEND {
            return Err(bad);
        }
        Ok(first..=last)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parities_follow_the_side() {
        let mut creator = Sequence::<()>::new(Side::Creator, 10);
        let mut participant = Sequence::<()>::new(Side::Participant, 10);
        // The reference's first message from the creator: in 0, out 1.
        assert_eq!(
            creator.next_out().unwrap(),
            SeqNumbers {
                in_seq_no: 0,
                out_seq_no: 1
            }
        );
        assert_eq!(
            participant.next_out().unwrap(),
            SeqNumbers {
                in_seq_no: 1,
                out_seq_no: 0
            }
        );
        // A message reflected back to its writer has the wrong parity.
        assert_eq!(creator.receive(0, 1, ()), Err(SeqError::BadParity(1)));
        assert_eq!(participant.receive(1, 0, ()), Err(SeqError::BadParity(0)));
        assert_eq!(creator.receive(-1, 0, ()), Err(SeqError::BadParity(-1)));
    }

    #[test]
    fn repeats_are_dropped_and_holes_asked_for_once() {
        let mut me = Sequence::new(Side::Creator, 10);
        // The participant's messages have out numbers 0, 2, 4, ... and in numbers 1, 3, ...
        assert_eq!(me.receive(1, 0, 'a').unwrap(), Arrival::Deliver(vec!['a']));
        assert_eq!(me.receive(1, 0, 'a').unwrap(), Arrival::Repeat);
        // 2 and 4 lost: 6 arrives and the hole 2..=4 is asked for.
        assert_eq!(
            me.receive(1, 6, 'd').unwrap(),
            Arrival::Held {
                resend: Some((2, 4))
            }
        );
        assert_eq!(me.open_hole(), Some((2, 4)));
        // 8 follows what is held: no new hole.
        assert_eq!(
            me.receive(1, 8, 'e').unwrap(),
            Arrival::Held { resend: None }
        );
        // 12 opens a second hole, 10..=10.
        assert_eq!(
            me.receive(1, 12, 'g').unwrap(),
            Arrival::Held {
                resend: Some((10, 10))
            }
        );
        assert_eq!(me.receive(1, 6, 'd').unwrap(), Arrival::Repeat);
        assert_eq!(
            me.receive(1, 4, 'c').unwrap(),
            Arrival::Held { resend: None }
        );
        // 2 fills the first hole and releases 4, 6 and 8.
        assert_eq!(
            me.receive(1, 2, 'b').unwrap(),
            Arrival::Deliver(vec!['b', 'c', 'd', 'e'])
        );
        assert_eq!(me.open_hole(), Some((10, 10)));
        assert_eq!(
            me.receive(1, 10, 'f').unwrap(),
            Arrival::Deliver(vec!['f', 'g'])
        );
        assert_eq!(me.counts().received, 7);
        assert_eq!(me.open_hole(), None);
    }

    #[test]
    fn in_seq_may_not_go_back_or_run_ahead() {
        let mut me = Sequence::new(Side::Creator, 10);
        for _ in 0..3 {
            me.next_out().unwrap();
        }
        // The participant's in numbers are odd: 2 × count + 1.
        assert_eq!(me.receive(5, 0, ()).unwrap(), Arrival::Deliver(vec![()]));
        assert_eq!(
            me.receive(3, 2, ()),
            Err(SeqError::InSeqWentBack { before: 2, now: 1 })
        );
        let mut me = Sequence::new(Side::Creator, 10);
        me.next_out().unwrap();
        assert_eq!(
            me.receive(5, 0, ()),
            Err(SeqError::InSeqAhead {
                claimed: 2,
                sent: 1
            })
        );
    }

    #[test]
    fn holding_is_bounded() {
        let mut me = Sequence::new(Side::Creator, 2);
        me.receive(1, 2, ()).unwrap();
        me.receive(1, 4, ()).unwrap();
        assert_eq!(me.receive(1, 6, ()), Err(SeqError::TooManyHeld(2)));
    }

    #[test]
    fn resend_requests_are_checked() {
        let mut me = Sequence::<()>::new(Side::Participant, 10);
        for _ in 0..5 {
            me.next_out().unwrap();
        }
        // Our out numbers are even: 0, 2, ..., 8.
        assert_eq!(me.resend_range(2, 6).unwrap(), 1..=3);
        assert_eq!(me.resend_range(8, 8).unwrap(), 4..=4);
        for (start, end) in [(1, 5), (6, 2), (2, 10), (-2, 4)] {
            assert_eq!(
                me.resend_range(start, end),
                Err(SeqError::BadResend { start, end })
            );
        }
    }

    /// What the relay does to one message in flight.
    #[derive(Debug, Clone)]
    enum Fate {
        Deliver,
        Drop,
        Duplicate,
        Delay(usize),
    }

    fn fate() -> impl Strategy<Value = Fate> {
        prop_oneof![
            6 => Just(Fate::Deliver),
            1 => Just(Fate::Drop),
            1 => Just(Fate::Duplicate),
            1 => (1usize..6).prop_map(Fate::Delay),
        ]
    }

    proptest! {
        /// One side writes messages through a relay that drops, repeats and reorders; the
        /// other answers every hole with a Resend, which the writer serves from its outbox
        /// (through the same relay). Every message is delivered once and in order.
        /// (`cc` lines in `proptest-regressions` keep the cases that failed once.)
        #[test]
        fn a_hostile_relay_cannot_lose_repeat_or_reorder(
            fates in proptest::collection::vec(fate(), 1..120),
            writer_is_creator in any::<bool>(),
        ) {
            let (writer_side, reader_side) = if writer_is_creator {
                (Side::Creator, Side::Participant)
            } else {
                (Side::Participant, Side::Creator)
            };
            let mut writer = Sequence::<()>::new(writer_side, 10);
            let mut reader = Sequence::<usize>::new(reader_side, 1000);
            let mut outbox: Vec<SeqNumbers> = Vec::new();
            // (numbers, index) in flight, delivered front first.
            let mut flight: std::collections::VecDeque<(SeqNumbers, usize)> = Default::default();
            let mut delivered = Vec::new();
            // The relay misbehaves for as many messages as it has fates, then behaves (a relay
            // that drops everything forever ends a chat by exhaustion, not by a wrong order).
            let mut fates = fates.into_iter();
            let total = 60usize;
            let mut step = 0;
            while delivered.len() < total && step < 20_000 {
                step += 1;
                // The writer writes its messages, and more once everything in flight is gone
                // while the reader knows of no hole: a dropped last message shows only when a
                // later one arrives.
                let idle = flight.is_empty() && reader.open_hole().is_none();
                if outbox.len() < total || idle {
                    let numbers = writer.next_out().unwrap();
                    outbox.push(numbers);
                    flight.push_back((numbers, outbox.len() - 1));
                }
                let Some((numbers, index)) = flight.pop_front() else {
                    // Nothing in flight: the reader asks for its hole again (a timer would).
                    if let Some((start, end)) = reader.open_hole() {
                        for count in writer.resend_range(start, end).unwrap() {
                            let count = count as usize;
                            flight.push_back((outbox[count], count));
                        }
                    }
                    continue;
                };
                match fates.next().unwrap_or(Fate::Deliver) {
                    Fate::Drop => continue,
                    Fate::Delay(by) => {
                        let at = by.min(flight.len());
                        flight.insert(at, (numbers, index));
                        continue;
                    }
                    Fate::Duplicate => flight.push_back((numbers, index)),
                    Fate::Deliver => {}
                }
                match reader.receive(numbers.in_seq_no, numbers.out_seq_no, index).unwrap() {
                    Arrival::Deliver(items) => delivered.extend(items),
                    Arrival::Repeat => {}
                    Arrival::Held { resend } => {
                        if let Some((start, end)) = resend {
                            for count in writer.resend_range(start, end).unwrap() {
                                let count = count as usize;
                                flight.push_back((outbox[count], count));
                            }
                        }
                    }
                }
            }
            prop_assert!(delivered.len() >= total);
            prop_assert_eq!(&delivered, &(0..delivered.len()).collect::<Vec<_>>());
        }
    }
}
