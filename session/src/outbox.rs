//! What one side of a session sends: numbering, acks riding along, packing into containers,
//! and the record of content-related messages the peer has not acknowledged yet, kept so that
//! they can be re-sent, always under a new msg_id (security guidelines; R7 in
//! `reference/security.md`: never encrypt twice under the same msg_id).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use columba_mtproto::message::ENCRYPTED_HEADROOM;
use columba_mtproto::time::Now;
use columba_mtproto::tl::Identifiable;
use columba_mtproto::tl::Serializable;
use columba_mtproto::tl::mtproto::types::MsgsAck;
use columba_mtproto::tl::service::MsgContainer;

use crate::ack::AckQueue;
use crate::config::SessionConfig;
use crate::id_map::IdMap;
use crate::msg_id::{MsgIdGenerator, MsgIdKind, SeqNoGenerator};
use crate::stats::SessionStats;

/// Bytes a message adds inside a container besides its body: msg_id, seqno, length.
const INNER_HEADER: usize = 16;
/// Bytes of the container's own header: constructor and count.
const CONTAINER_HEADER: usize = 8;
/// Containers remembered for mapping a notification about a container to its contents.
const REMEMBERED_CONTAINERS: usize = 256;

/// What an outgoing message is, so that the role can follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Tag {
    /// Client: the request with this handle.
    Request(u64),
    /// Server: the answer to the request with this msg_id.
    Answer(i64),
    /// Anything else.
    Other,
}

/// Builds a message's body from the msg_id it is sent with, for the few messages whose body
/// names their own msg_id (`auth.bindTempAuthKey`). Called again for every re-send.
pub type BodyBuilder = std::sync::Arc<dyn Fn(i64) -> Bytes + Send + Sync>;

/// A message waiting to go out.
#[derive(Clone)]
struct Queued {
    body: Bytes,
    build: Option<BodyBuilder>,
    content_related: bool,
    kind: MsgIdKind,
    tag: Tag,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("len", &self.body.len())
            .field("built", &self.build.is_some())
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

/// A content-related message sent and not acknowledged.
#[derive(Clone)]
pub(crate) struct Unacked {
    pub(crate) body: Bytes,
    pub(crate) build: Option<BodyBuilder>,
    pub(crate) seq_no: i32,
    pub(crate) kind: MsgIdKind,
    pub(crate) tag: Tag,
    pub(crate) sent_at: Instant,
}

impl std::fmt::Debug for Unacked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unacked")
            .field("len", &self.body.len())
            .field("seq_no", &self.seq_no)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

/// The header of a message [`Outbox::poll_transmit`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) msg_id: i64,
    pub(crate) seq_no: i32,
}

/// The sending half of a session.
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) ids: MsgIdGenerator,
    seq: SeqNoGenerator,
    pub(crate) acks: AckQueue,
    /// The msg_id kind of acks and containers.
    plain_kind: MsgIdKind,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    pub(crate) unacked: IdMap<Unacked>,
    unacked_bytes: usize,
    containers: VecDeque<(i64, Vec<i64>)>,
    /// (msg_id, tag) of every message numbered by the last [`Self::poll_transmit`].
    pub(crate) assigned: Vec<(i64, Tag)>,
    max_container_messages: usize,
    max_container_bytes: usize,
    max_unacked_messages: usize,
    max_unacked_bytes: usize,
}

impl Outbox {
    pub(crate) fn new(config: &SessionConfig, plain_kind: MsgIdKind) -> Self {
        Self {
            ids: MsgIdGenerator::new(),
            seq: SeqNoGenerator::new(),
            acks: AckQueue::new(config.acks),
            plain_kind,
            queue: VecDeque::new(),
            queued_bytes: 0,
            unacked: IdMap::new(),
            unacked_bytes: 0,
            containers: VecDeque::new(),
            assigned: Vec::new(),
            max_container_messages: config.max_container_messages.clamp(1, 1024),
            max_container_bytes: config.max_container_bytes.max(1),
            max_unacked_messages: config.max_unacked_messages.max(1),
            max_unacked_bytes: config.max_unacked_bytes.max(1),
        }
    }

    /// Queues a message.
    pub(crate) fn push(&mut self, body: Bytes, content_related: bool, kind: MsgIdKind, tag: Tag) {
        self.queued_bytes += body.len();
        self.queue.push_back(Queued {
            body,
            build: None,
            content_related,
            kind,
            tag,
        });
    }

    /// Queues a content-related message whose body is built from its msg_id when it is sent
    /// (and again when it is re-sent). `body` is a first build, used for sizes.
    pub(crate) fn push_built(
        &mut self,
        body: Bytes,
        build: BodyBuilder,
        kind: MsgIdKind,
        tag: Tag,
    ) {
        self.queued_bytes += body.len();
        self.queue.push_back(Queued {
            body,
            build: Some(build),
            content_related: true,
            kind,
            tag,
        });
    }

    /// Queues a message ahead of everything else (notifications that must precede answers).
    pub(crate) fn push_front(
        &mut self,
        body: Bytes,
        content_related: bool,
        kind: MsgIdKind,
        tag: Tag,
    ) {
        self.queued_bytes += body.len();
        self.queue.push_front(Queued {
            body,
            build: None,
            content_related,
            kind,
            tag,
        });
    }

    /// The peer acknowledged `msg_id`; returns its record if it was waiting for one.
    pub(crate) fn acknowledge(&mut self, msg_id: i64) -> Option<Unacked> {
        let record = self.unacked.remove(&msg_id)?;
        self.unacked_bytes = self.unacked_bytes.saturating_sub(record.body.len());
        Some(record)
    }

    /// Whether [`Self::poll_transmit`] may have something to write: messages queued, or
    /// acknowledgements pending (which may not be due yet).
    pub(crate) fn may_transmit(&self) -> bool {
        !self.queue.is_empty() || !self.acks.is_empty()
    }

    /// Bytes waiting to be sent.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether a message with `tag` waits to be sent or to be acknowledged.
    pub(crate) fn holds(&self, tag: Tag) -> bool {
        self.queue.iter().any(|queued| queued.tag == tag)
            || self.unacked.values().any(|record| record.tag == tag)
    }

    /// The msg_ids inside a container sent recently.
    pub(crate) fn container_contents(&self, msg_id: i64) -> Option<&[i64]> {
        self.containers
            .iter()
            .find(|(id, _)| *id == msg_id)
            .map(|(_, inner)| inner.as_slice())
    }

    /// Takes `msg_id` out of the unacknowledged record and queues it again, to go out under a
    /// new msg_id. Returns whether there was such a message.
    pub(crate) fn resend(&mut self, msg_id: i64, stats: &mut SessionStats) -> bool {
        let Some(record) = self.acknowledge(msg_id) else {
            return false;
        };
        stats.resent += 1;
        self.queued_bytes += record.body.len();
        self.queue.push_back(Queued {
            body: record.body,
            build: record.build,
            content_related: true,
            kind: record.kind,
            tag: record.tag,
        });
        true
    }

    /// Re-sends everything unacknowledged (a new connection), oldest first.
    pub(crate) fn resend_all(&mut self, stats: &mut SessionStats) {
        let ids: Vec<i64> = self.unacked.keys().copied().collect();
        for id in ids {
            self.resend(id, stats);
        }
    }

    /// Marks `ids` as sent at `now` (their re-send timer starts again).
    pub(crate) fn touch(&mut self, ids: &[i64], now: Instant) {
        for id in ids {
            if let Some(record) = self.unacked.get_mut(id) {
                record.sent_at = now;
            }
        }
    }

    /// When the oldest unacknowledged message was sent.
    pub(crate) fn oldest_unacked(&self) -> Option<Instant> {
        self.unacked.values().map(|record| record.sent_at).min()
    }

    /// Forgets queued and unacknowledged messages for which `drop` says so.
    pub(crate) fn forget(&mut self, mut drop: impl FnMut(Tag) -> bool) {
        let mut unqueued = 0;
        self.queue.retain(|queued| {
            let keep = !drop(queued.tag);
            if !keep {
                unqueued += queued.body.len();
            }
            keep
        });
        self.queued_bytes = self.queued_bytes.saturating_sub(unqueued);
        let mut freed = 0;
        self.unacked.retain(|_, record| {
            let keep = !drop(record.tag);
            if !keep {
                freed += record.body.len();
            }
            keep
        });
        self.unacked_bytes = self.unacked_bytes.saturating_sub(freed);
    }

    /// Writes the next message to send into `buf` after [`ENCRYPTED_HEADROOM`] bytes (the room
    /// `seal` needs): pending acks and queued messages, in a container when there are several.
    /// `None` when there is nothing to send.
    pub(crate) fn poll_transmit(
        &mut self,
        now: Now,
        buf: &mut BytesMut,
        stats: &mut SessionStats,
    ) -> Option<Written> {
        self.assigned.clear();
        let acks = if self.queue.is_empty() {
            self.acks.poll_ack(now.monotonic)
        } else {
            self.acks.poll_piggyback(now.monotonic)
        };
        if acks.is_none() && self.queue.is_empty() {
            return None;
        }

        // How many queued messages go in this transmission, within the container's limits
        // (counted first, so that each body is written once, straight into `buf`, and then
        // moved into the record of unacknowledged messages without a copy).
        let ack_body = acks.map(|ids| Bytes::from(MsgsAck { msg_ids: ids }.to_bytes()));
        let mut count = usize::from(ack_body.is_some());
        let mut bytes = CONTAINER_HEADER + ack_body.as_ref().map_or(0, |b| INNER_HEADER + b.len());
        let mut take = 0;
        for next in &self.queue {
            let size = INNER_HEADER + next.body.len();
            let fits =
                count < self.max_container_messages && bytes + size <= self.max_container_bytes;
            if !fits && count > 0 {
                break;
            }
            bytes += size;
            count += 1;
            take += 1;
        }
        let contained = count > 1;

        buf.clear();
        buf.resize(ENCRYPTED_HEADROOM, 0);
        let mut inner = Vec::new();
        if contained {
            buf.reserve(bytes);
            buf.put_u32_le(MsgContainer::CONSTRUCTOR_ID);
            buf.put_i32_le(i32::try_from(count).unwrap_or(i32::MAX));
            inner.reserve(count);
        }
        let mut single = None;
        // A container takes the reply kind only when everything inside is a reply.
        let mut all_replies = true;
        let mut write = |buf: &mut BytesMut, msg_id: i64, seq_no: i32, body: &[u8]| {
            if contained {
                buf.put_i64_le(msg_id);
                buf.put_i32_le(seq_no);
                buf.put_i32_le(i32::try_from(body.len()).unwrap_or(i32::MAX));
                inner.push(msg_id);
            } else {
                single = Some(Written { msg_id, seq_no });
            }
            buf.extend_from_slice(body);
        };
        if let Some(body) = ack_body {
            let msg_id = self.ids.next(now, self.plain_kind);
            let seq_no = self.seq.next(false);
            all_replies &= self.plain_kind == MsgIdKind::ServerReply;
            write(buf, msg_id, seq_no, &body);
        }
        for _ in 0..take {
            let Some(mut queued) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes = self.queued_bytes.saturating_sub(queued.body.len());
            let msg_id = self.ids.next(now, queued.kind);
            let seq_no = self.seq.next(queued.content_related);
            self.assigned.push((msg_id, queued.tag));
            if let Some(build) = &queued.build {
                queued.body = build(msg_id);
            }
            all_replies &= queued.kind == MsgIdKind::ServerReply;
            write(buf, msg_id, seq_no, &queued.body);
            if queued.content_related {
                self.record_unacked(msg_id, seq_no, queued, now.monotonic, stats);
            }
        }
        if !contained {
            return single;
        }
        let kind = if all_replies {
            MsgIdKind::ServerReply
        } else {
            self.plain_kind
        };
        let msg_id = self.ids.next(now, kind);
        let seq_no = self.seq.next(false);
        if self.containers.len() >= REMEMBERED_CONTAINERS {
            self.containers.pop_front();
        }
        self.containers.push_back((msg_id, inner));
        Some(Written { msg_id, seq_no })
    }

    fn record_unacked(
        &mut self,
        msg_id: i64,
        seq_no: i32,
        queued: Queued,
        now: Instant,
        stats: &mut SessionStats,
    ) {
        self.unacked_bytes += queued.body.len();
        self.unacked.insert(
            msg_id,
            Unacked {
                body: queued.body,
                build: queued.build,
                seq_no,
                kind: queued.kind,
                tag: queued.tag,
                sent_at: now,
            },
        );
        while self.unacked.len() > self.max_unacked_messages
            || (self.unacked_bytes > self.max_unacked_bytes && self.unacked.len() > 1)
        {
            let Some((_, oldest)) = self.unacked.pop_first() else {
                break;
            };
            self.unacked_bytes = self.unacked_bytes.saturating_sub(oldest.body.len());
            stats.forgotten_unacked += 1;
        }
    }
}
