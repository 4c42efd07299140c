//! A chat's state as bytes, for the device to keep between runs: keys (the current one, the
//! previous one still kept, an exchange's secret or agreed key), counters, layers, the
//! sequence counts with the messages held behind a hole, and the kept ciphertexts.
//!
//! The bytes hold keys: store them as secretly as the device keeps anything else (the format
//! is this crate's own, versioned by its first byte; nothing in it is encrypted). Reading
//! trusts nothing: every length is checked against what is left before it is used, the DH
//! group's cheap checks run again (the full prime test ran when the group was first taken),
//! and a state that does not hold together is refused.

use std::collections::VecDeque;

use super::{ChatLimits, Item, Outgoing, Rekey, SecretChat};
use crate::crypto::{DH_LEN, DhGroup};
use crate::e2e::cipher::{ChatKey, Side};
use crate::e2e::exchange::KeyRequest;
use crate::e2e::seq::{SeqCounts, Sequence};
use crate::tl::secret::enums;
use crate::tl::{Deserializable as _, Reader, Serializable as _};

/// The format's version, its first byte.
const VERSION: u8 = 1;

/// Why saved state could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("saved secret-chat state is malformed ({0})")]
pub struct LoadError(pub &'static str);

/// Appends fields in the format's encodings (little-endian integers, byte strings with a
/// 4-byte length).
#[derive(Debug, Default)]
pub(crate) struct Out(pub(crate) Vec<u8>);

impl Out {
    pub(crate) fn u8(&mut self, value: u8) {
        self.0.push(value);
    }
    pub(crate) fn i32(&mut self, value: i32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(value);
    }
}

/// Reads what [`Out`] wrote, every read checked.
pub(crate) struct In<'a>(pub(crate) Reader<'a>);

impl<'a> In<'a> {
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, LoadError> {
        Ok(self.0.read_array::<1>().map_err(|_| LoadError(what))?[0])
    }
    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, LoadError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(LoadError(what)),
        }
    }
    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, LoadError> {
        self.0.read_i32().map_err(|_| LoadError(what))
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, LoadError> {
        self.0.read_u32().map_err(|_| LoadError(what))
    }
    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, LoadError> {
        self.0.read_i64().map_err(|_| LoadError(what))
    }
    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], LoadError> {
        let len = usize::try_from(self.u32(what)?).map_err(|_| LoadError(what))?;
        self.0.read_slice(len).map_err(|_| LoadError(what))
    }
    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], LoadError> {
        <[u8; N]>::try_from(self.bytes(what)?).map_err(|_| LoadError(what))
    }
    /// A count of items each at least `min_len` bytes long, checked against what is left.
    pub(crate) fn count(&mut self, min_len: usize, what: &'static str) -> Result<usize, LoadError> {
        let count = usize::try_from(self.u32(what)?).map_err(|_| LoadError(what))?;
        if count.saturating_mul(min_len) > self.0.remaining() {
            return Err(LoadError(what));
        }
        Ok(count)
    }
}

impl SecretChat {
    /// The chat's state as bytes ([`SecretChat::load`] reads them back).
    pub fn save(&self) -> Vec<u8> {
        let mut out = Out::default();
        self.save_into(&mut out);
        out.0
    }

    pub(crate) fn save_into(&self, out: &mut Out) {
        out.u8(VERSION);
        out.u8(match self.side {
            Side::Creator => 0,
            Side::Participant => 1,
        });
        out.bytes(self.key.as_bytes());
        out.bytes(self.group.prime());
        out.u32(self.group.g());
        match &self.old_key {
            Some(key) => {
                out.u8(1);
                out.bytes(key.as_bytes());
            }
            None => out.u8(0),
        }
        match &self.rekey {
            Rekey::Idle => out.u8(0),
            Rekey::Requested {
                exchange_id,
                request,
            } => {
                out.u8(1);
                out.i64(*exchange_id);
                out.bytes(request.secret());
            }
            Rekey::Accepted { exchange_id, key } => {
                out.u8(2);
                out.i64(*exchange_id);
                out.bytes(key.as_bytes());
            }
        }
        out.u32(self.used);
        out.u32(self.encrypted);
        out.u32(self.generation);
        out.i32(self.peer_layer);
        out.i32(self.wrapper_layer);
        let counts = self.seq.counts();
        out.i32(counts.sent);
        out.i32(counts.received);
        out.i32(counts.peer_received);
        let held: Vec<_> = self.seq.held_entries().collect();
        out.u32(u32::try_from(held.len()).unwrap_or(u32::MAX));
        for (out_count, in_count, (layer, message, fingerprint)) in held {
            out.i32(out_count);
            out.i32(in_count);
            out.i32(*layer);
            out.i64(*fingerprint);
            out.bytes(&message.to_bytes());
        }
        out.u32(u32::try_from(self.outbox.len()).unwrap_or(u32::MAX));
        for (count, outgoing) in &self.outbox {
            out.i32(*count);
            out.i64(outgoing.random_id);
            out.u8(u8::from(outgoing.service));
            out.bytes(&outgoing.data);
        }
        out.u32(u32::try_from(self.limits.max_held).unwrap_or(u32::MAX));
        out.u32(u32::try_from(self.limits.max_outbox).unwrap_or(u32::MAX));
    }

    /// Reads a chat [`SecretChat::save`] wrote; nothing of it is trusted.
    pub fn load(bytes: &[u8]) -> Result<Self, LoadError> {
        let mut input = In(Reader::new(bytes));
        let chat = Self::load_from(&mut input)?;
        if !input.0.is_empty() {
            return Err(LoadError("trailing bytes"));
        }
        Ok(chat)
    }

    pub(crate) fn load_from(input: &mut In<'_>) -> Result<Self, LoadError> {
        if input.u8("version")? != VERSION {
            return Err(LoadError("version"));
        }
        let side = match input.u8("side")? {
            0 => Side::Creator,
            1 => Side::Participant,
            _ => return Err(LoadError("side")),
        };
        let key = ChatKey::from_bytes(input.array::<DH_LEN>("key")?);
        let prime = input.array::<DH_LEN>("prime")?;
        let g = input.u32("g")?;
        let group = DhGroup::trusted(&prime, g).map_err(|_| LoadError("group"))?;
        let old_key = match input.u8("old key")? {
            0 => None,
            1 => Some(ChatKey::from_bytes(input.array::<DH_LEN>("old key")?)),
            _ => return Err(LoadError("old key")),
        };
        let rekey = match input.u8("rekey")? {
            0 => Rekey::Idle,
            1 => Rekey::Requested {
                exchange_id: input.i64("exchange id")?,
                request: Box::new(KeyRequest::restore(
                    group.clone(),
                    input.array::<DH_LEN>("exchange secret")?,
                )),
            },
            2 => Rekey::Accepted {
                exchange_id: input.i64("exchange id")?,
                key: Box::new(ChatKey::from_bytes(input.array::<DH_LEN>("agreed key")?)),
            },
            _ => return Err(LoadError("rekey")),
        };
        let used = input.u32("used")?;
        let encrypted = input.u32("encrypted")?;
        let generation = input.u32("generation")?;
        let peer_layer = input.i32("peer layer")?;
        let wrapper_layer = input.i32("wrapper layer")?;
        let counts = SeqCounts {
            sent: input.i32("sent")?,
            received: input.i32("received")?,
            peer_received: input.i32("peer received")?,
        };
        if counts.sent < 0 || counts.received < 0 || counts.peer_received < 0 {
            return Err(LoadError("counts"));
        }
        // Fixed parts of one held entry: three counts, a fingerprint, a length.
        let held_count = input.count(4 + 4 + 4 + 8 + 4, "held")?;
        let mut held: Vec<(i32, i32, Item)> = Vec::with_capacity(held_count);
        for _ in 0..held_count {
            let out_count = input.i32("held out count")?;
            let in_count = input.i32("held in count")?;
            let layer = input.i32("held layer")?;
            let fingerprint = input.i64("held fingerprint")?;
            let message = enums::DecryptedMessage::from_bytes(input.bytes("held message")?)
                .map_err(|_| LoadError("held message"))?;
            held.push((out_count, in_count, (layer, message, fingerprint)));
        }
        let outbox_count = input.count(4 + 8 + 1 + 4, "outbox")?;
        let mut outbox = VecDeque::with_capacity(outbox_count);
        for _ in 0..outbox_count {
            let count = input.i32("outbox count")?;
            let random_id = input.i64("outbox random id")?;
            let service = input.bool("outbox kind")?;
            let data = input.bytes("outbox data")?.to_vec();
            outbox.push_back((
                count,
                Outgoing {
                    random_id,
                    data,
                    service,
                },
            ));
        }
        let limits = ChatLimits {
            max_held: usize::try_from(input.u32("max held")?).map_err(|_| LoadError("limits"))?,
            max_outbox: usize::try_from(input.u32("max outbox")?)
                .map_err(|_| LoadError("limits"))?,
        };
        let mut seq = Sequence::restore(side, counts, limits.max_held);
        for (out_count, in_count, item) in held {
            if !seq.restore_held(out_count, in_count, item) {
                return Err(LoadError("held message not behind a hole"));
            }
        }
        Ok(Self {
            side,
            key,
            group,
            old_key,
            rekey,
            used,
            encrypted,
            generation,
            peer_layer,
            wrapper_layer,
            seq,
            outbox,
            limits,
        })
    }
}
