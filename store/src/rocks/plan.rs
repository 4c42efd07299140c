//! A change to one box, planned against its current state and written as part of one batch:
//! counters, dialog summaries, update-log entries and the log's trimming.

use crate::BackendError;
use std::collections::BTreeMap;

use super::instance::Reader;
use crate::codec::{
    self, BatchOp, BoxMeta, DialogRecord, MessageRecord, decode_box_meta, decode_dialog,
    decode_message, encode_box_meta, encode_dialog, encode_update,
};
use crate::keys::{self, Prefix};
use crate::message::{BoxId, MessageError, Peer, UpdateEntry, UpdateKind};

/// A stored value that does not decode: the database is corrupt.
pub(crate) fn corrupt(number: u32, error: codec::ValueError) -> MessageError {
    MessageError::Backend(BackendError::with_source(
        format!("instance {number}"),
        error,
    ))
}

/// Reads a box's counters (zero for a box never written).
pub(crate) fn read_meta(reader: &Reader<'_>, box_id: BoxId) -> Result<BoxMeta, MessageError> {
    let number = reader.instance.number;
    Ok(reader
        .get(&keys::box_meta(box_id), |value| {
            decode_box_meta(value).map_err(|error| corrupt(number, error))
        })?
        .unwrap_or_default())
}

/// Reads whether a box was ever written.
pub(crate) fn box_exists(reader: &Reader<'_>, box_id: BoxId) -> Result<bool, MessageError> {
    reader.contains(&keys::box_meta(box_id))
}

/// Reads a chat's summary.
pub(crate) fn read_dialog(
    reader: &Reader<'_>,
    box_id: BoxId,
    peer: Peer,
) -> Result<Option<DialogRecord>, MessageError> {
    let number = reader.instance.number;
    reader.get(&keys::dialog(box_id, peer), |value| {
        decode_dialog(value).map_err(|error| corrupt(number, error))
    })
}

/// Reads the message with this id in a box (through its location row).
pub(crate) fn read_message(
    reader: &Reader<'_>,
    box_id: BoxId,
    id: i32,
) -> Result<Option<MessageRecord>, MessageError> {
    let number = reader.instance.number;
    let Some(peer) = reader.get(&keys::message(box_id, id), |value| {
        codec::decode_location(value).map_err(|error| corrupt(number, error))
    })?
    else {
        return Ok(None);
    };
    reader.get(&keys::chat(box_id, peer, id), |value| {
        decode_message(value).map_err(|error| corrupt(number, error))
    })
}

/// A dialog being changed, with its top as it was (to move its place in the order).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DialogChange {
    pub(crate) record: DialogRecord,
    original_top: i32,
}

/// The planned change to one box.
pub(crate) struct BoxPlan<'r> {
    pub(crate) box_id: BoxId,
    pub(crate) reader: &'r Reader<'r>,
    pub(crate) meta: BoxMeta,
    pub(crate) ops: Vec<BatchOp>,
    dialogs: BTreeMap<Peer, DialogChange>,
    keep: usize,
}

impl<'r> BoxPlan<'r> {
    /// Starts a plan from the box's current counters (the caller holds the box's lock).
    pub(crate) fn load(
        reader: &'r Reader<'r>,
        box_id: BoxId,
        keep: usize,
    ) -> Result<Self, MessageError> {
        Self::load_cached(reader, box_id, keep, None)
    }

    /// Starts a plan from counters the caller has cached, or else read.
    pub(crate) fn load_cached(
        reader: &'r Reader<'r>,
        box_id: BoxId,
        keep: usize,
        cached: Option<BoxMeta>,
    ) -> Result<Self, MessageError> {
        let number = reader.instance.number;
        let stored = match cached {
            Some(meta) => Some(meta),
            None => reader.get(&keys::box_meta(box_id), |value| {
                decode_box_meta(value).map_err(|error| corrupt(number, error))
            })?,
        };
        Ok(Self {
            box_id,
            reader,
            meta: stored.unwrap_or_default(),
            ops: Vec::new(),
            dialogs: BTreeMap::new(),
            keep: keep.max(1),
        })
    }

    /// The chat's summary, loaded on first use (a new chat starts empty).
    pub(crate) fn dialog(&mut self, peer: Peer) -> Result<&mut DialogRecord, MessageError> {
        if !self.dialogs.contains_key(&peer) {
            let record = read_dialog(self.reader, self.box_id, peer)?.unwrap_or_default();
            self.dialogs.insert(
                peer,
                DialogChange {
                    record,
                    original_top: record.top_id,
                },
            );
        }
        self.dialogs
            .get_mut(&peer)
            .map(|change| &mut change.record)
            .ok_or_else(|| MessageError::Backend(BackendError::new("dialog vanished from a plan")))
    }

    /// Uses a cached copy of a chat's summary instead of reading it.
    pub(crate) fn preload_dialog(&mut self, peer: Peer, record: DialogRecord) {
        self.dialogs.entry(peer).or_insert(DialogChange {
            record,
            original_top: record.top_id,
        });
    }

    /// Checks that `count` more pts fit, without taking them.
    pub(crate) fn check_pts(&self, count: i32) -> Result<(), MessageError> {
        self.meta
            .state
            .pts
            .checked_add(count)
            .map(|_| ())
            .ok_or(MessageError::Exhausted)
    }

    /// Takes `count` pts and logs the change under the new pts.
    pub(crate) fn log(&mut self, count: i32, kind: UpdateKind) -> Result<i32, MessageError> {
        let pts = self
            .meta
            .state
            .pts
            .checked_add(count)
            .ok_or(MessageError::Exhausted)?;
        self.meta.state.pts = pts;
        let entry = UpdateEntry {
            pts,
            pts_count: count,
            kind,
        };
        self.put(keys::log(self.box_id, pts), encode_update(&entry));
        self.meta.log_len = self.meta.log_len.saturating_add(1);
        self.trim_log()?;
        Ok(pts)
    }

    /// Drops the oldest entries beyond the kept number; the floor moves to the pts of the last
    /// one dropped. Only entries already in the database are dropped: a group commit that
    /// logs several entries in one box may leave the log a few entries over the bound until
    /// the next change of the box trims them (the counters stay exact).
    fn trim_log(&mut self) -> Result<(), MessageError> {
        let keep = u32::try_from(self.keep).unwrap_or(u32::MAX);
        if self.meta.log_len <= keep {
            return Ok(());
        }
        let excess = self.meta.log_len - keep;
        let number = self.reader.instance.number;
        let mut walk = self
            .reader
            .range(&keys::box_prefix(Prefix::Log, self.box_id))?;
        walk.seek(&keys::log(
            self.box_id,
            self.meta.log_floor.saturating_add(1),
        ));
        let mut dropped = Vec::new();
        while u32::try_from(dropped.len()).unwrap_or(u32::MAX) < excess {
            let Some((key, _)) = walk.item()? else {
                break;
            };
            let (_, pts) = keys::decode_log(key).map_err(|error| {
                MessageError::Backend(BackendError::with_source(
                    format!("instance {number}"),
                    error,
                ))
            })?;
            if pts > self.meta.state.pts {
                break;
            }
            dropped.push((key.to_vec(), pts));
            walk.next();
        }
        drop(walk);
        for (key, pts) in dropped {
            self.ops.push(BatchOp::delete(key));
            self.meta.log_floor = pts;
            self.meta.log_len = self.meta.log_len.saturating_sub(1);
        }
        Ok(())
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(BatchOp::put(key, value));
    }

    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.ops.push(BatchOp::delete(key));
    }

    /// The batch: the planned rows, the dialogs (and their moves in the order), the counters.
    pub(crate) fn finish(self) -> Vec<BatchOp> {
        self.finish_with_state().0
    }

    /// [`Self::finish`], with the counters and chat summaries the batch leaves (to cache once
    /// it commits).
    pub(crate) fn finish_with_state(
        mut self,
    ) -> (Vec<BatchOp>, BoxMeta, Vec<(Peer, DialogRecord)>) {
        let dialogs = std::mem::take(&mut self.dialogs);
        let summaries = dialogs
            .iter()
            .map(|(peer, change)| (*peer, change.record))
            .collect();
        for (peer, change) in dialogs {
            let top = change.record.top_id;
            if top != change.original_top {
                if change.original_top > 0 {
                    self.delete(keys::dialog_order(self.box_id, change.original_top, peer));
                }
                if top > 0 {
                    self.put(keys::dialog_order(self.box_id, top, peer), Vec::new());
                }
            }
            self.put(
                keys::dialog(self.box_id, peer),
                encode_dialog(&change.record),
            );
        }
        let meta = encode_box_meta(&self.meta);
        self.put(keys::box_meta(self.box_id), meta);
        (self.ops, self.meta, summaries)
    }
}
