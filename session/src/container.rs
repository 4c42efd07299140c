//! `msg_container`: checked on receipt, packed on send.
//!
//! The TL decoder (`columba_mtproto::tl::service::MsgContainer`) already refuses more than
//! 1024 messages and nested containers. What needs the session's view is checked here: every
//! inner msg_id lies below the container's own, and no inner id repeats; a container that
//! breaks either gets bad_msg_notification 64 (invalid container). Each inner message then goes
//! through the session's msg_id and seq_no checks on its own, and is acknowledged on its own.
//!
//! On send, [`ContainerPacker`] gathers messages up to a count and a byte size; the container
//! gets its msg_id after its contents (so it is the highest) and an even seq_no (a container is
//! not content-related). A single message goes out as it is.

use std::collections::HashSet;

use columba_mtproto::time::Now;
use columba_mtproto::tl::Serializable;
use columba_mtproto::tl::service::{MAX_CONTAINER_MESSAGES, Message, MsgContainer};

use crate::msg_id::{MsgIdGenerator, MsgIdKind, SeqNoGenerator};

/// Default cap on a container's serialized size.
pub const DEFAULT_MAX_CONTAINER_BYTES: usize = 512 * 1024;

/// Why a received container is invalid (bad_msg_notification 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    /// An inner message's msg_id is not below the container's.
    #[error("inner msg_id {0:#x} is not below the container's")]
    InnerIdNotBelow(i64),
    /// Two inner messages share a msg_id.
    #[error("inner msg_id {0:#x} appears twice")]
    DuplicateInnerId(i64),
}

impl ContainerError {
    /// The bad_msg_notification code: 64, invalid container.
    pub fn bad_msg_code(&self) -> i32 {
        64
    }
}

/// Checks a received container against its own msg_id.
pub fn check_container(
    container_msg_id: i64,
    container: &MsgContainer,
) -> Result<(), ContainerError> {
    let mut seen = HashSet::with_capacity(container.messages.len());
    for message in &container.messages {
        if message.msg_id >= container_msg_id {
            return Err(ContainerError::InnerIdNotBelow(message.msg_id));
        }
        if !seen.insert(message.msg_id) {
            return Err(ContainerError::DuplicateInnerId(message.msg_id));
        }
    }
    Ok(())
}

/// What [`ContainerPacker::finish`] produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packed {
    /// One message, sent without a container.
    Single(Message),
    /// A container: its msg_id, seq_no and serialized body.
    Container {
        /// The container's msg_id (above every inner one).
        msg_id: i64,
        /// The container's seq_no (even).
        seqno: i32,
        /// `msg_container` serialized.
        body: Vec<u8>,
    },
}

/// Gathers outgoing messages into containers.
#[derive(Debug, Clone)]
pub struct ContainerPacker {
    max_messages: usize,
    max_bytes: usize,
    pending: Vec<Message>,
    /// Serialized size of a container of the pending messages.
    bytes: usize,
}

/// Bytes of the container's constructor and vector count.
const CONTAINER_OVERHEAD: usize = 8;
/// Bytes of one inner message's header (msg_id, seqno, length).
const MESSAGE_OVERHEAD: usize = 16;

impl Default for ContainerPacker {
    fn default() -> Self {
        Self::new(MAX_CONTAINER_MESSAGES, DEFAULT_MAX_CONTAINER_BYTES)
    }
}

impl ContainerPacker {
    /// A packer with these caps (the count is capped at 1024 whatever is asked).
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            max_messages: max_messages.clamp(1, MAX_CONTAINER_MESSAGES),
            max_bytes,
            pending: Vec::new(),
            bytes: CONTAINER_OVERHEAD,
        }
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Adds a message, or gives it back when it does not fit (call [`Self::finish`] and
    /// push it again). A message too big for any container is accepted into an empty packer,
    /// and then goes out alone.
    pub fn push(&mut self, message: Message) -> Result<(), Message> {
        let size = MESSAGE_OVERHEAD + message.body.len();
        let fits = self.pending.len() < self.max_messages && self.bytes + size <= self.max_bytes;
        if !fits && !self.pending.is_empty() {
            return Err(message);
        }
        self.bytes += size;
        self.pending.push(message);
        Ok(())
    }

    /// Takes what is waiting: one message as it is, several in a container with a fresh
    /// msg_id (server-initiated kind on the server, client on the client) and an even seq_no.
    pub fn finish(
        &mut self,
        ids: &mut MsgIdGenerator,
        seq: &mut SeqNoGenerator,
        kind: MsgIdKind,
        now: Now,
    ) -> Option<Packed> {
        let messages = std::mem::take(&mut self.pending);
        self.bytes = CONTAINER_OVERHEAD;
        match messages.len() {
            0 => None,
            1 => messages.into_iter().next().map(Packed::Single),
            _ => {
                let msg_id = ids.next(now, kind);
                let seqno = seq.next(false);
                let body = MsgContainer { messages }.to_bytes();
                Some(Packed::Container {
                    msg_id,
                    seqno,
                    body,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use columba_mtproto::tl::Deserializable;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    fn now() -> Now {
        Now {
            monotonic: Instant::now(),
            unix: Duration::from_secs(1_700_000_000),
        }
    }

    fn message(ids: &mut MsgIdGenerator, seq: &mut SeqNoGenerator, len: usize) -> Message {
        Message {
            msg_id: ids.next(now(), MsgIdKind::Client),
            seqno: seq.next(true),
            body: vec![0x5a; len],
        }
    }

    #[test]
    fn received_containers_need_lower_distinct_inner_ids() {
        let inner = |msg_id| Message {
            msg_id,
            seqno: 1,
            body: vec![0; 4],
        };
        let ok = MsgContainer {
            messages: vec![inner(4), inner(8)],
        };
        assert_eq!(check_container(12, &ok), Ok(()));
        assert_eq!(
            check_container(8, &ok),
            Err(ContainerError::InnerIdNotBelow(8))
        );
        let twice = MsgContainer {
            messages: vec![inner(4), inner(4)],
        };
        assert_eq!(
            check_container(12, &twice),
            Err(ContainerError::DuplicateInnerId(4))
        );
        assert_eq!(ContainerError::DuplicateInnerId(4).bad_msg_code(), 64);
    }

    #[test]
    fn one_message_goes_alone_and_caps_split_the_rest() {
        let (mut ids, mut seq) = (MsgIdGenerator::new(), SeqNoGenerator::new());
        let mut packer = ContainerPacker::new(3, 1000);
        let single = message(&mut ids, &mut seq, 8);
        packer.push(single.clone()).unwrap();
        assert_eq!(
            packer.finish(&mut ids, &mut seq, MsgIdKind::Client, now()),
            Some(Packed::Single(single))
        );
        assert_eq!(
            packer.finish(&mut ids, &mut seq, MsgIdKind::Client, now()),
            None
        );
        for _ in 0..3 {
            packer.push(message(&mut ids, &mut seq, 8)).unwrap();
        }
        // The fourth does not fit the count.
        assert!(packer.push(message(&mut ids, &mut seq, 8)).is_err());
        // Nor does a message past the byte cap, but it is taken alone into an empty packer.
        let mut small = ContainerPacker::new(1024, 100);
        small.push(message(&mut ids, &mut seq, 40)).unwrap();
        assert!(small.push(message(&mut ids, &mut seq, 40)).is_err());
        let mut empty = ContainerPacker::new(1024, 100);
        empty.push(message(&mut ids, &mut seq, 4000)).unwrap();
    }

    proptest! {
        /// What the packer sends, a receiver decodes and accepts: the container's id above
        /// every inner id, an even seq_no, the same messages in the same order.
        #[test]
        fn packed_containers_pass_the_receiver_checks(
            sizes in proptest::collection::vec(0usize..200, 2..100),
            max_messages in 2usize..40,
        ) {
            let (mut ids, mut seq) = (MsgIdGenerator::new(), SeqNoGenerator::new());
            let mut packer = ContainerPacker::new(max_messages, 4096);
            let mut sent = Vec::new();
            let mut received = Vec::new();
            let drain = |packer: &mut ContainerPacker, ids: &mut MsgIdGenerator, seq: &mut SeqNoGenerator, received: &mut Vec<Message>| {
                match packer.finish(ids, seq, MsgIdKind::Client, now()) {
                    Some(Packed::Single(m)) => received.push(m),
                    Some(Packed::Container { msg_id, seqno, body }) => {
                        assert_eq!(seqno % 2, 0);
                        assert!(body.len() <= 4096);
                        let container = MsgContainer::from_bytes(&body).unwrap();
                        assert!(container.messages.len() <= max_messages);
                        check_container(msg_id, &container).unwrap();
                        received.extend(container.messages);
                    }
                    None => {}
                }
            };
            for size in sizes {
                let m = message(&mut ids, &mut seq, size / 4 * 4);
                sent.push(m.clone());
                if let Err(back) = packer.push(m) {
                    drain(&mut packer, &mut ids, &mut seq, &mut received);
                    packer.push(back).unwrap();
                }
            }
            drain(&mut packer, &mut ids, &mut seq, &mut received);
            prop_assert_eq!(received, sent);
        }
    }
}
