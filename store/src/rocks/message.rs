//! [`MessageStore`] on sharded RocksDB.
//!
//! Each call locks the boxes it changes (striped locks, taken in one global order), plans the
//! change of every box against its current counters, and commits one atomic `WriteBatch` per
//! instance. Readers take a RocksDB snapshot and never lock: what they see of a box is a
//! prefix of its committed changes. The layout is in `docs/storage-format.md`.

use crate::BackendError;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use super::commit_queue::CommitQueue;
use super::instance::{Instance, RangeIter, Reader, engine_error};
use super::locks::{BoxLocks, Held};
use super::members::{counts_op, read_counts, read_watermark, watermark_op};
use super::plan::{BoxPlan, box_exists, corrupt, read_dialog, read_message, read_meta};
use super::shards::{OpenError, RocksOptions, Shards, instance_dir, write_manifest};
use crate::codec::{
    self, BatchOp, BoxMeta, DialogRecord, MessageRecord, decode_deliveries, decode_message,
    decode_ops, decode_update, encode_deliveries, encode_location, encode_message, encode_ops,
};
use crate::keys::{self, Prefix};
use crate::message::{
    Affected, BoxId, BoxState, Delivery, Dialog, Difference, HistoryPage, HistoryQuery, MAX_PAGE,
    MessageError, MessageStore, MessageStoreConfig, Peer, SendOutcome, SendRequest, StoredMessage,
    UpdateEntry, UpdateKind,
};
use crate::message::{
    GroupCounts, Membership, Participant, ParticipantChange, ParticipantFilter, ParticipantPage,
};
use crate::message::{HistorySource, check_reaction, select_history, set_reaction, targets};

/// Lock stripes: enough that unrelated boxes rarely share one.
const LOCK_STRIPES: u32 = 1 << 16;

/// A send in progress, by its idempotency key.
type SendKey = (i64, Peer, i64);

/// The most sends one group commit takes: a bound on the batch (and on the time the group's
/// boxes stay locked), far above what fills while one sync runs.
const MAX_GROUP: usize = 256;
/// The most body and media bytes (times their copies) one group's batch takes: a bound on
/// the batch's memory whatever the sends carry (a single larger send still goes alone).
const MAX_GROUP_BYTES: usize = 16 << 20;

/// A send queued for its instance's group commit.
#[derive(Debug)]
struct SendJob {
    request: SendRequest,
    targets: Vec<(BoxId, Peer, bool)>,
    send_key: Vec<u8>,
}

/// Box counters and chat summaries as the sends planned so far (in one group) leave them:
/// the next send of the group plans from these, not from the database, which does not have
/// them yet.
#[derive(Debug, Default)]
struct Planned {
    metas: HashMap<BoxId, BoxMeta>,
    dialogs: HashMap<(BoxId, Peer), DialogRecord>,
}

impl Planned {
    fn meta(&self, box_id: BoxId, held: &mut Held<'_>) -> Option<BoxMeta> {
        self.metas
            .get(&box_id)
            .copied()
            .or_else(|| held.meta(box_id))
    }

    fn dialog(&self, box_id: BoxId, peer: Peer, held: &mut Held<'_>) -> Option<DialogRecord> {
        self.dialogs
            .get(&(box_id, peer))
            .copied()
            .or_else(|| held.dialog(box_id, peer))
    }

    fn merge(&mut self, other: Self) {
        self.metas.extend(other.metas);
        self.dialogs.extend(other.dialogs);
    }

    /// Caches what the committed batch left, for the next send to start from.
    fn remember(&self, held: &mut Held<'_>) {
        // Chat summaries by box once (a group of basic-group sends touches many boxes).
        let mut by_box: HashMap<BoxId, Vec<(Peer, DialogRecord)>> = HashMap::new();
        for ((owner, peer), dialog) in &self.dialogs {
            by_box.entry(*owner).or_default().push((*peer, *dialog));
        }
        for (box_id, meta) in &self.metas {
            let dialogs = by_box.remove(box_id).unwrap_or_default();
            held.remember(*box_id, *meta, &dialogs);
        }
    }
}

/// One send planned: its copies, its rows by instance, and what it leaves of its boxes.
struct PlannedSend {
    deliveries: Vec<Delivery>,
    batches: BTreeMap<u32, Vec<BatchOp>>,
    planned: Planned,
}

/// Messages in sharded RocksDB instances. See the [module](crate::rocks) for the guarantees.
#[derive(Debug)]
pub struct RocksMessageStore {
    pub(super) shards: Shards,
    pub(super) config: MessageStoreConfig,
    pub(super) locks: BoxLocks,
    /// One group-commit queue per instance, for sends whose copies are all on it.
    queues: Vec<CommitQueue<SendJob, Result<SendOutcome, MessageError>>>,
    in_flight: Mutex<HashSet<SendKey>>,
    /// Taken while a group id is given (the counter row is read, then written).
    pub(super) group_ids: Mutex<()>,
    redelivered: u64,
}

/// Removes a send from the in-flight set when it ends, however it ends.
struct Flight<'a> {
    set: &'a Mutex<HashSet<SendKey>>,
    key: SendKey,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        crate::lock(self.set).remove(&self.key);
    }
}

fn check_limit(limit: usize) -> Result<(), MessageError> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(())
    } else {
        Err(MessageError::LimitInvalid)
    }
}

fn key_error(number: u32, error: keys::KeyError) -> MessageError {
    MessageError::Backend(BackendError::with_source(
        format!("instance {number}"),
        error,
    ))
}

/// The plans of one call grouped by instance, written others-first so that the caller's own
/// box (which a retry reads to find the other copies) changes last.
struct Batches {
    by_instance: BTreeMap<u32, Vec<BatchOp>>,
}

impl Batches {
    fn new() -> Self {
        Self {
            by_instance: BTreeMap::new(),
        }
    }

    fn add(&mut self, instance: u32, ops: Vec<BatchOp>) {
        self.by_instance.entry(instance).or_default().extend(ops);
    }

    fn write(mut self, shards: &Shards, last: u32) -> Result<(), MessageError> {
        let own = self.by_instance.remove(&last);
        for (number, ops) in &self.by_instance {
            shards.number(*number)?.write(ops, false)?;
        }
        if let Some(ops) = own {
            shards.number(last)?.write(&ops, false)?;
        }
        Ok(())
    }
}

/// Readers at the latest state, one per instance a call touches.
struct Readers<'a> {
    shards: &'a Shards,
    readers: BTreeMap<u32, Reader<'a>>,
}

impl<'a> Readers<'a> {
    fn new(shards: &'a Shards, boxes: &[BoxId]) -> Result<Self, MessageError> {
        let mut readers = BTreeMap::new();
        for box_id in boxes {
            let instance = shards.of(*box_id)?;
            readers
                .entry(instance.number)
                .or_insert_with(|| instance.latest());
        }
        Ok(Self { shards, readers })
    }

    fn of(&self, box_id: BoxId) -> Result<&Reader<'a>, MessageError> {
        let number = self.shards.of(box_id)?.number;
        self.readers
            .get(&number)
            .ok_or_else(|| MessageError::Backend(BackendError::new("no reader for a locked box")))
    }
}

impl RocksMessageStore {
    /// Opens the store at `path` (creating it when absent), then finishes every delivery a
    /// crash interrupted before returning.
    pub fn open(path: impl AsRef<Path>, options: RocksOptions) -> Result<Self, OpenError> {
        let shards = Shards::open(path.as_ref(), &options)?;
        let queues = (0..shards.manifest.instances)
            .map(|_| CommitQueue::new(MAX_GROUP, MAX_GROUP_BYTES))
            .collect();
        let mut store = Self {
            shards,
            config: options.messages,
            locks: BoxLocks::new(LOCK_STRIPES),
            queues,
            in_flight: Mutex::new(HashSet::new()),
            group_ids: Mutex::new(()),
            redelivered: 0,
        };
        store.redelivered = store.redeliver().map_err(OpenError::Recovery)?;
        store.redelivered += store.finish_memberships().map_err(OpenError::Recovery)?;
        Ok(store)
    }

    /// How many interrupted deliveries and membership changes the last open finished.
    pub fn redelivered_on_open(&self) -> u64 {
        self.redelivered
    }

    /// The number of RocksDB instances.
    pub fn instances(&self) -> u32 {
        self.shards.manifest.instances
    }

    /// The instance a box lives on.
    pub fn instance_of(&self, box_id: BoxId) -> u32 {
        crate::shard::instance_of_box(box_id, &self.shards.manifest)
    }

    /// Writes a consistent copy of the whole store to `dest` (which must not exist), with
    /// RocksDB's checkpoints (hard links where the file system allows). Writers wait while
    /// the instances are copied, so that no send is half in the copy; readers do not. The
    /// copy opens as a store of its own.
    pub fn checkpoint(&self, dest: impl AsRef<Path>) -> Result<(), MessageError> {
        let dest = dest.as_ref();
        if dest.exists() {
            return Err(MessageError::Backend(BackendError::new(format!(
                "checkpoint destination {} exists",
                dest.display()
            ))));
        }
        std::fs::create_dir_all(dest).map_err(|error| {
            MessageError::Backend(BackendError::with_source("checkpoint", error))
        })?;
        let _all = self.locks.lock_all();
        for instance in &self.shards.instances {
            let checkpoint = rocksdb::checkpoint::Checkpoint::new(&instance.db)
                .map_err(|error| engine_error(instance.number, error))?;
            checkpoint
                .create_checkpoint(instance_dir(dest, instance.number))
                .map_err(|error| engine_error(instance.number, error))?;
        }
        write_manifest(dest, &self.shards.manifest)
            .map_err(|error| MessageError::Backend(BackendError::with_source("checkpoint", error)))
    }

    /// RocksDB's statistics summed over the instances, by their RocksDB names: keys and
    /// bytes written and read, WAL syncs, writes committed by a group leader for others
    /// (group commit at work), block cache hits and misses, live data and key estimates.
    pub fn metrics(&self) -> Vec<(&'static str, u64)> {
        use rocksdb::statistics::Ticker;
        let tickers = [
            ("rocksdb.number.keys.written", Ticker::NumberKeysWritten),
            ("rocksdb.number.keys.read", Ticker::NumberKeysRead),
            ("rocksdb.bytes.written", Ticker::BytesWritten),
            ("rocksdb.bytes.read", Ticker::BytesRead),
            ("rocksdb.wal.synced", Ticker::WalFileSynced),
            ("rocksdb.write.self", Ticker::WriteDoneBySelf),
            ("rocksdb.write.other", Ticker::WriteDoneByOther),
            ("rocksdb.block.cache.hit", Ticker::BlockCacheHit),
            ("rocksdb.block.cache.miss", Ticker::BlockCacheMiss),
        ];
        let mut out: Vec<(&'static str, u64)> = tickers
            .iter()
            .map(|(name, ticker)| {
                let sum = self
                    .shards
                    .instances
                    .iter()
                    .map(|instance| instance.ticker(*ticker))
                    .sum();
                (*name, sum)
            })
            .collect();
        for property in [
            "rocksdb.estimate-num-keys",
            "rocksdb.estimate-live-data-size",
            "rocksdb.cur-size-all-mem-tables",
        ] {
            let sum = self
                .shards
                .instances
                .iter()
                .map(|instance| instance.property(property))
                .sum();
            out.push((property, sum));
        }
        out
    }

    /// Makes instance `instance` fail one write after `after_writes` more succeed (testing
    /// the store's reaction to a failing disk). Unstable API, feature `testing`.
    #[cfg(feature = "testing")]
    pub fn inject_fault(
        &self,
        instance: u32,
        after_writes: u64,
        fault: super::instance::Fault,
    ) -> Result<(), MessageError> {
        self.shards.number(instance)?.set_fault(after_writes, fault);
        Ok(())
    }

    /// Finishes the deliveries a crash interrupted: each pending record holds the batch still
    /// to be written on another instance; it is written unless its marker shows it was, then
    /// the record goes.
    fn redeliver(&self) -> Result<u64, MessageError> {
        let mut done = 0;
        for instance in &self.shards.instances {
            let pending = {
                let reader = instance.latest();
                let mut walk = reader.range(&[Prefix::Pending as u8])?;
                walk.first();
                let mut pending = Vec::new();
                while let Some((key, value)) = walk.item()? {
                    let (sender, peer, random_id, target) = keys::decode_pending(key)
                        .map_err(|error| key_error(instance.number, error))?;
                    let ops = decode_ops(value).map_err(|error| corrupt(instance.number, error))?;
                    pending.push((
                        key.to_vec(),
                        keys::send(sender, peer, random_id),
                        target,
                        ops,
                    ));
                    walk.next();
                }
                pending
            };
            for (pending_key, marker, target, ops) in pending {
                let target_instance = self.shards.of(target)?;
                let reader = target_instance.latest();
                if !reader.contains(&marker)? {
                    check_fits(&reader, &ops)?;
                    target_instance.write(&ops, true)?;
                    done += 1;
                }
                instance.write(&[BatchOp::delete(pending_key)], false)?;
            }
        }
        Ok(done)
    }

    /// Plans one send against its boxes as `so_far` (the sends planned before it in the same
    /// batch), the lock cache, or else the database leave them. The caller holds the boxes'
    /// locks. Nothing is written.
    fn plan_send(
        &self,
        request: &SendRequest,
        targets: &[(BoxId, Peer, bool)],
        readers: &Readers<'_>,
        held: &mut Held<'_>,
        so_far: &Planned,
    ) -> Result<PlannedSend, MessageError> {
        let config = self.config;
        let mut plans = Vec::with_capacity(targets.len());
        let mut deliveries = Vec::with_capacity(targets.len());
        for (box_id, peer, _) in targets {
            let cached = so_far.meta(*box_id, held);
            let mut plan = BoxPlan::load_cached(
                readers.of(*box_id)?,
                *box_id,
                config.log_entries_kept(*box_id),
                cached,
            )?;
            if let Some(dialog) = so_far.dialog(*box_id, *peer, held) {
                plan.preload_dialog(*peer, dialog);
            }
            let message_id = plan
                .meta
                .state
                .max_id
                .checked_add(1)
                .ok_or(MessageError::Exhausted)?;
            plan.check_pts(1)?;
            deliveries.push(Delivery {
                box_id: *box_id,
                message_id,
                pts: plan.meta.state.pts + 1,
            });
            plans.push(plan);
        }
        let mut batches: BTreeMap<u32, Vec<BatchOp>> = BTreeMap::new();
        let mut planned = Planned::default();
        for ((mut plan, (box_id, peer, out)), delivery) in
            plans.into_iter().zip(targets).zip(&deliveries)
        {
            let others = deliveries
                .iter()
                .filter(|other| other.box_id != *box_id)
                .map(|other| (other.box_id, other.message_id))
                .collect();
            let date = request.date.max(plan.meta.last_date);
            let id = delivery.message_id;
            let dialog = plan.dialog(*peer)?;
            let ordinal = dialog
                .ordinals
                .checked_add(1)
                .ok_or(MessageError::Exhausted)?;
            dialog.ordinals = ordinal;
            dialog.top_id = id;
            dialog.top_date = date;
            dialog.count = dialog.count.saturating_add(1);
            if !out {
                dialog.unread = dialog.unread.saturating_add(1);
            }
            let record = MessageRecord {
                message: StoredMessage {
                    id,
                    box_id: *box_id,
                    peer: *peer,
                    from: request.sender,
                    out: *out,
                    date,
                    edit_date: None,
                    random_id: request.random_id,
                    body: request.body.clone(),
                    media: request.media.clone(),
                    flags: request.flags,
                    pinned: false,
                    reactions: Vec::new(),
                },
                others,
                ordinal,
            };
            plan.put(keys::chat(*box_id, *peer, id), encode_message(&record));
            plan.put(keys::message(*box_id, id), encode_location(*peer));
            plan.meta.state.max_id = id;
            plan.meta.last_date = date;
            plan.log(1, UpdateKind::NewMessage { id })?;
            let number = readers.of(*box_id)?.instance.number;
            let (ops, meta, dialogs) = plan.finish_with_state();
            let rows = batches.entry(number).or_default();
            rows.extend(ops);
            if let BoxId::Channel(_) = box_id {
                // The sender has read the channel up to their own post (ids only grow, so
                // this never moves a watermark back).
                rows.push(watermark_op(*peer, request.sender, id));
            }
            planned.metas.insert(*box_id, meta);
            for (peer, dialog) in dialogs {
                planned.dialogs.insert((*box_id, peer), dialog);
            }
        }
        Ok(PlannedSend {
            deliveries,
            batches,
            planned,
        })
    }

    /// Commits a group of sends whose copies are all on `home`: locks every box of the group,
    /// plans the sends in queue order (each from the state the ones before it leave), writes
    /// one batch with one sync, and answers each send. A send that cannot be planned (an
    /// exhausted box) fails alone; a failed write fails the group.
    fn commit_group(
        &self,
        home: &Instance,
        group: Vec<SendJob>,
    ) -> Vec<Result<SendOutcome, MessageError>> {
        let mut boxes: Vec<BoxId> = group
            .iter()
            .flat_map(|job| job.targets.iter().map(|(box_id, _, _)| *box_id))
            .collect();
        boxes.sort_unstable();
        boxes.dedup();
        let mut held = self.locks.lock(&boxes);
        let readers = match Readers::new(&self.shards, &boxes) {
            Ok(readers) => readers,
            Err(error) => return group.iter().map(|_| Err(error.clone())).collect(),
        };
        let mut so_far = Planned::default();
        let mut ops = Vec::new();
        let mut outcomes: Vec<Result<Vec<Delivery>, MessageError>> =
            Vec::with_capacity(group.len());
        for job in &group {
            match self.plan_send(&job.request, &job.targets, &readers, &mut held, &so_far) {
                Ok(send) => {
                    for (_, rows) in send.batches {
                        ops.extend(rows);
                    }
                    ops.push(BatchOp::put(
                        job.send_key.clone(),
                        encode_deliveries(&send.deliveries),
                    ));
                    so_far.merge(send.planned);
                    outcomes.push(Ok(send.deliveries));
                }
                Err(error) => outcomes.push(Err(error)),
            }
        }
        drop(readers);
        if !ops.is_empty() {
            if let Err(error) = home.write(&ops, false) {
                // What reached the disk is unknown: nothing cached of these boxes holds.
                for box_id in &boxes {
                    held.forget(*box_id);
                }
                return group.iter().map(|_| Err(error.clone())).collect();
            }
            so_far.remember(&mut held);
        }
        outcomes
            .into_iter()
            .map(|outcome| {
                outcome.map(|deliveries| SendOutcome {
                    deliveries,
                    repeated: false,
                })
            })
            .collect()
    }

    /// `box_id` and the boxes holding other copies of its messages `ids`, to lock before a
    /// change that reaches every copy (read without locks: the caller reads again under them;
    /// a copy is never added after its send).
    fn with_other_copies(&self, box_id: BoxId, ids: &[i32]) -> Result<Vec<BoxId>, MessageError> {
        let mut boxes = vec![box_id];
        let reader = self.shards.of(box_id)?.snapshot();
        for id in ids {
            if let Some(record) = read_message(&reader, box_id, *id)? {
                boxes.extend(record.others.iter().map(|(other, _)| *other));
            }
        }
        Ok(boxes)
    }

    /// Locks `boxes` for a change other than a send, which plans from the database: the
    /// counters and chat summaries cached for them go.
    fn lock_to_change(&self, boxes: &[BoxId]) -> Held<'_> {
        let mut held = self.locks.lock(boxes);
        for box_id in boxes {
            held.forget(*box_id);
        }
        held
    }

    fn begin_flight(&self, key: SendKey) -> Result<Flight<'_>, MessageError> {
        let mut set = crate::lock(&self.in_flight);
        if !set.insert(key) {
            return Err(MessageError::RandomIdDuplicate);
        }
        Ok(Flight {
            set: &self.in_flight,
            key,
        })
    }

    fn earlier_send(
        &self,
        home: &Instance,
        key: &[u8],
    ) -> Result<Option<Vec<Delivery>>, MessageError> {
        let number = home.number;
        home.latest().get(key, |value| {
            decode_deliveries(value).map_err(|error| corrupt(number, error))
        })
    }
}

/// The box whose instance keeps a send's idempotency row: a channel send's is the channel's
/// (so that the send touches that instance only), any other send's the sender's.
fn send_home(sender: i64, peer: Peer) -> BoxId {
    match peer {
        Peer::Channel(channel) => BoxId::Channel(channel),
        _ => BoxId::User(sender),
    }
}

/// Messages of a chat with an id above `id` (the unread count above a watermark), from the
/// ordinals and the deleted rows, without walking the messages.
pub(super) fn count_newer(
    reader: &Reader<'_>,
    box_id: BoxId,
    peer: Peer,
    dialog: DialogRecord,
    id: i32,
) -> Result<usize, MessageError> {
    let source = ChatSource {
        reader,
        box_id,
        peer,
        dialog,
        anchor: std::cell::Cell::new(None),
        error: std::cell::RefCell::new(None),
        walk: std::cell::RefCell::new(None),
        left_on: std::cell::Cell::new(None),
    };
    let count = source.count_at_or_above_id(id.saturating_add(1))?;
    match source.error.into_inner() {
        Some(error) => Err(error),
        None => Ok(count),
    }
}

/// The chat with `peer` as a dialog row describes it.
fn dialog_of(peer: Peer, record: &DialogRecord) -> Dialog {
    Dialog {
        peer,
        top_message: record.top_id,
        top_date: record.top_date,
        read_inbox_max_id: record.read_inbox_max_id,
        read_outbox_max_id: record.read_outbox_max_id,
        unread_count: i32::try_from(record.unread).unwrap_or(i32::MAX),
    }
}

/// A pending batch fits its boxes only if each is exactly one pts behind what the batch
/// writes (nothing else may have touched them): otherwise recovery stops rather than guess.
fn check_fits(reader: &Reader<'_>, ops: &[BatchOp]) -> Result<(), MessageError> {
    let number = reader.instance.number;
    for op in ops {
        let (Ok(box_id), Some(value)) = (keys::decode_box_meta(&op.key), &op.value) else {
            continue;
        };
        let planned = codec::decode_box_meta(value).map_err(|error| corrupt(number, error))?;
        let current = read_meta(reader, box_id)?;
        if current.state.pts.checked_add(1) != Some(planned.state.pts) {
            return Err(MessageError::Backend(BackendError::new(format!(
                "instance {number}: a pending delivery to {box_id:?} expects pts {} but the box is at {}",
                i64::from(planned.state.pts) - 1,
                current.state.pts
            ))));
        }
    }
    Ok(())
}

impl MessageStore for RocksMessageStore {
    fn sent(
        &self,
        sender: i64,
        peer: Peer,
        random_id: i64,
    ) -> Result<Option<Vec<Delivery>>, MessageError> {
        let home = self.shards.of(send_home(sender, peer))?;
        self.earlier_send(home, &keys::send(sender, peer, random_id))
    }

    fn send(&self, request: &SendRequest) -> Result<SendOutcome, MessageError> {
        let key = (request.sender, request.peer, request.random_id);
        let _flight = self.begin_flight(key)?;
        let sender_box = BoxId::User(request.sender);
        let home = self.shards.of(send_home(request.sender, request.peer))?;
        let send_key = keys::send(request.sender, request.peer, request.random_id);
        // A repeat returns the first outcome whatever else it carries.
        if let Some(deliveries) = self.earlier_send(home, &send_key)? {
            return Ok(SendOutcome {
                deliveries,
                repeated: true,
            });
        }
        let body_len = request.body.len() + request.media.as_ref().map_or(0, Vec::len);
        if body_len > self.config.max_body_len {
            return Err(MessageError::MessageTooLong);
        }
        let targets = targets(request, self.config.max_members)?;
        let boxes: Vec<BoxId> = targets.iter().map(|(box_id, _, _)| *box_id).collect();
        for box_id in &boxes {
            self.shards.of(*box_id)?.check_writable()?;
        }
        if boxes
            .iter()
            .all(|box_id| self.instance_of(*box_id) == home.number)
        {
            // Every copy on one instance: committed in a group with the other sends queued
            // for that instance, one synced batch for all.
            let weight = body_len.saturating_mul(targets.len());
            let job = SendJob {
                request: request.clone(),
                targets,
                send_key,
            };
            let queue = self
                .queues
                .get(usize::try_from(home.number).unwrap_or(usize::MAX))
                .ok_or_else(|| MessageError::Backend(BackendError::new("no commit queue")))?;
            return queue.run(
                job,
                weight,
                |group| self.commit_group(home, group),
                || {
                    Err(MessageError::Backend(BackendError::new(
                        "the thread committing this send's group panicked",
                    )))
                },
            );
        }
        let mut held = self.locks.lock(&boxes);
        let readers = Readers::new(&self.shards, &boxes)?;
        let PlannedSend {
            deliveries,
            mut batches,
            planned,
        } = self.plan_send(request, &targets, &readers, &mut held, &Planned::default())?;
        drop(readers);
        let home_number = home.number;
        let deliveries_value = encode_deliveries(&deliveries);
        let mut home_ops = batches.remove(&home_number).unwrap_or_default();
        home_ops.push(BatchOp::put(send_key.clone(), deliveries_value.clone()));
        // Deliveries to other instances: recorded with the sender's copy, made, then dropped.
        let mut remote = Vec::new();
        for (number, mut ops) in batches {
            let first_box = boxes
                .iter()
                .copied()
                .find(|box_id| self.instance_of(*box_id) == number)
                .unwrap_or(sender_box);
            ops.push(BatchOp::put(send_key.clone(), deliveries_value.clone()));
            let pending_key =
                keys::pending(request.sender, request.peer, request.random_id, first_box);
            home_ops.push(BatchOp::put(pending_key.clone(), encode_ops(&ops)));
            remote.push((number, ops, pending_key));
        }
        let written = (|| {
            home.write(&home_ops, !remote.is_empty())?;
            let mut delivered = Vec::new();
            for (number, ops, pending_key) in remote {
                // Synced even in the periodic mode: the pending record is dropped next, and
                // a delivery must not vanish with it on a power failure.
                self.shards.number(number)?.write(&ops, true)?;
                delivered.push(BatchOp::delete(pending_key));
            }
            Ok(delivered)
        })();
        let delivered = match written {
            Ok(delivered) => delivered,
            Err(error) => {
                // Some batches may have committed: nothing cached of these boxes holds.
                for box_id in &boxes {
                    held.forget(*box_id);
                }
                return Err(error);
            }
        };
        // Every batch committed: what they left is what the next send starts from.
        planned.remember(&mut held);
        if !delivered.is_empty() {
            // Losing this write only means the next open checks the markers again.
            home.write_unsynced(&delivered)?;
        }
        Ok(SendOutcome {
            deliveries,
            repeated: false,
        })
    }

    fn get_messages(&self, box_id: BoxId, ids: &[i32]) -> Result<Vec<StoredMessage>, MessageError> {
        if ids.len() > MAX_PAGE {
            return Err(MessageError::LimitInvalid);
        }
        let reader = self.shards.of(box_id)?.snapshot();
        let mut messages = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = read_message(&reader, box_id, *id)? {
                messages.push(record.message);
            }
        }
        Ok(messages)
    }

    fn get_history(
        &self,
        box_id: BoxId,
        peer: Peer,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, MessageError> {
        let reader = self.shards.of(box_id)?.snapshot();
        let dialog = read_dialog(&reader, box_id, peer)?.unwrap_or_default();
        let source = ChatSource {
            reader: &reader,
            box_id,
            peer,
            dialog,
            anchor: std::cell::Cell::new(None),
            error: std::cell::RefCell::new(None),
            walk: std::cell::RefCell::new(None),
            left_on: std::cell::Cell::new(None),
        };
        let page = select_history(&source, query)?;
        match source.error.into_inner() {
            Some(error) => Err(error),
            None => Ok(page),
        }
    }

    fn get_difference(
        &self,
        box_id: BoxId,
        pts: i32,
        limit: usize,
    ) -> Result<Difference, MessageError> {
        check_limit(limit)?;
        let reader = self.shards.of(box_id)?.snapshot();
        let number = reader.instance.number;
        let meta = read_meta(&reader, box_id)?;
        let current = meta.state.pts;
        if pts >= current {
            return Ok(Difference::Empty { pts: current });
        }
        let floor = if meta.log_len == 0 {
            current
        } else {
            meta.log_floor
        };
        if pts < floor {
            return Ok(Difference::TooLong { pts: current });
        }
        let mut entries: Vec<UpdateEntry> = Vec::new();
        {
            let mut walk = reader.range(&keys::box_prefix(Prefix::Log, box_id))?;
            walk.seek(&keys::log(box_id, pts.saturating_add(1)));
            while entries.len() < limit {
                let Some((_, value)) = walk.item()? else {
                    break;
                };
                entries.push(decode_update(value).map_err(|error| corrupt(number, error))?);
                walk.next();
            }
        }
        let mut messages: Vec<StoredMessage> = Vec::new();
        for entry in &entries {
            if let UpdateKind::NewMessage { id } | UpdateKind::EditMessage { id } = entry.kind {
                if messages.iter().any(|message| message.id == id) {
                    continue;
                }
                if let Some(record) = read_message(&reader, box_id, id)? {
                    messages.push(record.message);
                }
            }
        }
        let complete = entries.last().is_some_and(|entry| entry.pts == current);
        Ok(Difference::Changes {
            entries,
            messages,
            complete,
            pts: current,
        })
    }

    fn state(&self, box_id: BoxId) -> Result<BoxState, MessageError> {
        let reader = self.shards.of(box_id)?.snapshot();
        Ok(read_meta(&reader, box_id)?.state)
    }

    fn dialogs(
        &self,
        user_id: i64,
        offset_id: i32,
        limit: usize,
    ) -> Result<Vec<Dialog>, MessageError> {
        check_limit(limit)?;
        let box_id = BoxId::User(user_id);
        let reader = self.shards.of(box_id)?.snapshot();
        let number = reader.instance.number;
        let mut order = Vec::new();
        {
            let prefix = keys::box_prefix(Prefix::DialogOrder, box_id);
            let mut walk = reader.range(&prefix)?;
            if offset_id > 0 {
                // The order keys are the prefix, the top id, then the peer: the last key at
                // or before the prefix and the offset alone is the newest chat whose top
                // message is older than the offset.
                walk.seek_for_prev(&keys::dialog_order_bound(box_id, offset_id));
            } else {
                walk.last();
            }
            while order.len() < limit {
                let Some((key, _)) = walk.item()? else {
                    break;
                };
                let (_, _, peer) =
                    keys::decode_dialog_order(key).map_err(|error| key_error(number, error))?;
                order.push(peer);
                walk.prev();
            }
        }
        let mut dialogs = Vec::with_capacity(order.len());
        for peer in order {
            let record = read_dialog(&reader, box_id, peer)?.ok_or_else(|| {
                MessageError::Backend(BackendError::new(format!(
                    "instance {number}: a dialog order row without its dialog"
                )))
            })?;
            dialogs.push(dialog_of(peer, &record));
        }
        Ok(dialogs)
    }

    fn dialog(&self, user_id: i64, peer: Peer) -> Result<Option<Dialog>, MessageError> {
        if let Peer::Channel(channel) = peer {
            return self.channel_dialog_row(user_id, channel);
        }
        let box_id = BoxId::User(user_id);
        let reader = self.shards.of(box_id)?.snapshot();
        Ok(read_dialog(&reader, box_id, peer)?
            .filter(|record| record.top_id > 0)
            .map(|record| dialog_of(peer, &record)))
    }

    fn dialog_count(&self, user_id: i64) -> Result<usize, MessageError> {
        let box_id = BoxId::User(user_id);
        let reader = self.shards.of(box_id)?.snapshot();
        let mut walk = reader.range(&keys::box_prefix(Prefix::DialogOrder, box_id))?;
        walk.first();
        let mut count = 0;
        while walk.item()?.is_some() {
            count += 1;
            walk.next();
        }
        Ok(count)
    }

    fn edit(
        &self,
        editor: i64,
        box_id: BoxId,
        id: i32,
        body: Vec<u8>,
        media: Option<Vec<u8>>,
        edit_date: i32,
    ) -> Result<Vec<Affected>, MessageError> {
        if body.len() + media.as_ref().map_or(0, Vec::len) > self.config.max_body_len {
            return Err(MessageError::MessageTooLong);
        }
        // The other copies, to know which boxes to lock; checked again under the locks.
        let found = {
            let reader = self.shards.of(box_id)?.snapshot();
            read_message(&reader, box_id, id)?.ok_or(MessageError::MessageIdInvalid)?
        };
        let mut copies = vec![(box_id, id)];
        copies.extend(found.others.iter().copied());
        let boxes: Vec<BoxId> = copies.iter().map(|(box_id, _)| *box_id).collect();
        let _held = self.lock_to_change(&boxes);
        let readers = Readers::new(&self.shards, &boxes)?;
        let own =
            read_message(readers.of(box_id)?, box_id, id)?.ok_or(MessageError::MessageIdInvalid)?;
        if own.message.from != editor {
            return Err(MessageError::MessageAuthorRequired);
        }
        let config = self.config;
        let mut batches = Batches::new();
        let mut affected = Vec::new();
        for (target, target_id) in copies {
            let reader = readers.of(target)?;
            let Some(mut record) = read_message(reader, target, target_id)? else {
                continue;
            };
            let mut plan = BoxPlan::load(reader, target, config.log_entries_kept(target))?;
            record.message.body.clone_from(&body);
            record.message.media.clone_from(&media);
            record.message.edit_date = Some(edit_date);
            plan.put(
                keys::chat(target, record.message.peer, target_id),
                encode_message(&record),
            );
            let pts = plan.log(1, UpdateKind::EditMessage { id: target_id })?;
            affected.push(Affected {
                box_id: target,
                pts,
                pts_count: 1,
            });
            batches.add(reader.instance.number, plan.finish());
        }
        drop(readers);
        batches.write(&self.shards, self.instance_of(box_id))?;
        Ok(affected)
    }

    fn delete(
        &self,
        box_id: BoxId,
        ids: &[i32],
        revoke: bool,
    ) -> Result<Vec<Affected>, MessageError> {
        if ids.len() > MAX_PAGE {
            return Err(MessageError::LimitInvalid);
        }
        let boxes = if revoke {
            self.with_other_copies(box_id, ids)?
        } else {
            vec![box_id]
        };
        let _held = self.lock_to_change(&boxes);
        let readers = Readers::new(&self.shards, &boxes)?;
        // Which ids go from which box, read again under the locks.
        let mut plan_ids: BTreeMap<BoxId, Vec<i32>> = BTreeMap::new();
        let own_reader = readers.of(box_id)?;
        for id in ids {
            let Some(record) = read_message(own_reader, box_id, *id)? else {
                continue;
            };
            let own = plan_ids.entry(box_id).or_default();
            if !own.contains(id) {
                own.push(*id);
            }
            if revoke {
                for (other, other_id) in &record.others {
                    // Only boxes locked above: a copy is never added after a send.
                    if !boxes.contains(other) {
                        continue;
                    }
                    let exists = readers
                        .of(*other)?
                        .contains(&keys::message(*other, *other_id))?;
                    let list = plan_ids.entry(*other).or_default();
                    if exists && !list.contains(other_id) {
                        list.push(*other_id);
                    }
                }
            }
        }
        let config = self.config;
        let mut batches = Batches::new();
        let mut affected = Vec::new();
        for (target, removed) in plan_ids {
            if removed.is_empty() {
                continue;
            }
            let reader = readers.of(target)?;
            let mut plan = BoxPlan::load(reader, target, config.log_entries_kept(target))?;
            let count = i32::try_from(removed.len()).unwrap_or(i32::MAX);
            plan.check_pts(count)?;
            let mut lost_tops: Vec<Peer> = Vec::new();
            for id in &removed {
                let Some(record) = read_message(reader, target, *id)? else {
                    continue;
                };
                let message = &record.message;
                plan.delete(keys::chat(target, message.peer, *id));
                plan.delete(keys::message(target, *id));
                if message.pinned {
                    plan.delete(keys::pinned(target, message.peer, *id));
                }
                plan.put(
                    keys::deleted(target, message.peer, record.ordinal),
                    Vec::new(),
                );
                let dialog = plan.dialog(message.peer)?;
                dialog.count = dialog.count.saturating_sub(1);
                if !message.out && *id > dialog.read_inbox_max_id {
                    dialog.unread = dialog.unread.saturating_sub(1);
                }
                if dialog.top_id == *id && !lost_tops.contains(&message.peer) {
                    lost_tops.push(message.peer);
                }
            }
            for peer in lost_tops {
                let (top_id, top_date) = newest_remaining(reader, target, peer, &removed)?;
                let dialog = plan.dialog(peer)?;
                dialog.top_id = top_id;
                dialog.top_date = top_date;
            }
            let pts = plan.log(count, UpdateKind::DeleteMessages { ids: removed })?;
            affected.push(Affected {
                box_id: target,
                pts,
                pts_count: count,
            });
            batches.add(reader.instance.number, plan.finish());
        }
        drop(readers);
        batches.write(&self.shards, self.instance_of(box_id))?;
        Ok(affected)
    }

    fn pin(
        &self,
        box_id: BoxId,
        peer: Peer,
        ids: &[i32],
        pinned: bool,
        one_side: bool,
    ) -> Result<Vec<(BoxId, UpdateEntry)>, MessageError> {
        if ids.len() > MAX_PAGE {
            return Err(MessageError::LimitInvalid);
        }
        let boxes = if one_side {
            vec![box_id]
        } else {
            self.with_other_copies(box_id, ids)?
        };
        let _held = self.lock_to_change(&boxes);
        let readers = Readers::new(&self.shards, &boxes)?;
        // Per box (this one first): the records whose state changes.
        let mut plan_records: Vec<(BoxId, Vec<MessageRecord>)> = vec![(box_id, Vec::new())];
        let mut found = false;
        let own_reader = readers.of(box_id)?;
        for id in ids {
            let Some(record) =
                read_message(own_reader, box_id, *id)?.filter(|r| r.message.peer == peer)
            else {
                continue;
            };
            found = true;
            let mut targets = vec![(box_id, *id)];
            if !one_side {
                // Only boxes locked above: a copy is never added after a send.
                targets.extend(record.others.iter().filter(|(b, _)| boxes.contains(b)));
            }
            for (target, target_id) in targets {
                let Some(copy) = read_message(readers.of(target)?, target, target_id)? else {
                    continue;
                };
                if copy.message.pinned == pinned {
                    continue;
                }
                match plan_records.iter_mut().find(|(b, _)| *b == target) {
                    Some((_, list)) => {
                        if list.iter().all(|r| r.message.id != target_id) {
                            list.push(copy);
                        }
                    }
                    None => plan_records.push((target, vec![copy])),
                }
            }
        }
        if !found {
            return Err(MessageError::MessageIdInvalid);
        }
        plan_records.retain(|(_, list)| !list.is_empty());
        let config = self.config;
        let mut plans = Vec::with_capacity(plan_records.len());
        for (target, _) in &plan_records {
            let plan = BoxPlan::load(
                readers.of(*target)?,
                *target,
                config.log_entries_kept(*target),
            )?;
            // Room for the pts in every box first, so that a failure changes nothing.
            plan.check_pts(1)?;
            plans.push(plan);
        }
        let mut batches = Batches::new();
        let mut changes = Vec::with_capacity(plans.len());
        for ((target, records), mut plan) in plan_records.into_iter().zip(plans) {
            let chat = records.first().map_or(peer, |r| r.message.peer);
            let mut changed = Vec::with_capacity(records.len());
            for mut record in records {
                let id = record.message.id;
                let at = record.message.peer;
                record.message.pinned = pinned;
                if pinned {
                    plan.put(keys::pinned(target, at, id), Vec::new());
                } else {
                    plan.delete(keys::pinned(target, at, id));
                }
                plan.put(keys::chat(target, at, id), encode_message(&record));
                changed.push(id);
            }
            let kind = UpdateKind::PinMessages {
                peer: chat,
                ids: changed,
                pinned,
            };
            let pts = plan.log(1, kind.clone())?;
            changes.push((
                target,
                UpdateEntry {
                    pts,
                    pts_count: 1,
                    kind,
                },
            ));
            batches.add(plan.reader.instance.number, plan.finish());
        }
        drop(readers);
        batches.write(&self.shards, self.instance_of(box_id))?;
        Ok(changes)
    }

    fn pinned(
        &self,
        box_id: BoxId,
        peer: Peer,
        offset_id: i32,
        limit: usize,
    ) -> Result<Vec<i32>, MessageError> {
        check_limit(limit)?;
        let reader = self.shards.of(box_id)?.snapshot();
        let number = reader.instance.number;
        let mut walk = reader.range(&keys::pinned_prefix(box_id, peer))?;
        if offset_id > 0 {
            walk.seek_for_prev(&keys::pinned(box_id, peer, offset_id.saturating_sub(1)));
        } else {
            walk.last();
        }
        let mut ids = Vec::new();
        while ids.len() < limit {
            let Some((key, _)) = walk.item()? else {
                break;
            };
            let (_, _, id) = keys::decode_pinned(key).map_err(|error| key_error(number, error))?;
            ids.push(id);
            walk.prev();
        }
        Ok(ids)
    }

    fn react(
        &self,
        user_id: i64,
        box_id: BoxId,
        id: i32,
        reaction: Option<Vec<u8>>,
        date: i32,
    ) -> Result<Vec<StoredMessage>, MessageError> {
        check_reaction(reaction.as_deref(), &self.config)?;
        // The other copies, to know which boxes to lock; checked again under the locks.
        let found = {
            let reader = self.shards.of(box_id)?.snapshot();
            read_message(&reader, box_id, id)?.ok_or(MessageError::MessageIdInvalid)?
        };
        let mut copies = vec![(box_id, id)];
        copies.extend(found.others.iter().copied());
        let boxes: Vec<BoxId> = copies.iter().map(|(box_id, _)| *box_id).collect();
        // Reactions change neither counters nor dialogs: the cached state stays valid.
        let _held = self.locks.lock(&boxes);
        let readers = Readers::new(&self.shards, &boxes)?;
        let own =
            read_message(readers.of(box_id)?, box_id, id)?.ok_or(MessageError::MessageIdInvalid)?;
        // The rule decides on this box's copy; the others follow it.
        let mut reactions = own.message.reactions;
        set_reaction(
            &mut reactions,
            user_id,
            reaction.as_deref(),
            date,
            self.config.max_reactions,
        )?;
        let mut batches = Batches::new();
        let mut changed = Vec::with_capacity(copies.len());
        for (target, target_id) in copies {
            let reader = readers.of(target)?;
            let Some(mut record) = read_message(reader, target, target_id)? else {
                continue;
            };
            record.message.reactions.clone_from(&reactions);
            batches.add(
                reader.instance.number,
                vec![BatchOp::put(
                    keys::chat(target, record.message.peer, target_id),
                    encode_message(&record),
                )],
            );
            changed.push(record.message);
        }
        drop(readers);
        batches.write(&self.shards, self.instance_of(box_id))?;
        Ok(changed)
    }

    fn read_history(
        &self,
        user_id: i64,
        peer: Peer,
        max_id: i32,
    ) -> Result<Vec<Affected>, MessageError> {
        if max_id < 0 {
            return Err(MessageError::MessageIdInvalid);
        }
        if let Peer::Channel(channel) = peer {
            return self.read_channel(user_id, channel, max_id);
        }
        let own = BoxId::User(user_id);
        let other = match peer {
            Peer::User(other) if other != user_id => Some(BoxId::User(other)),
            _ => None,
        };
        let mut boxes = vec![own];
        boxes.extend(other);
        let _held = self.lock_to_change(&boxes);
        let readers = Readers::new(&self.shards, &boxes)?;
        let own_reader = readers.of(own)?;
        if !box_exists(own_reader, own)? {
            return Ok(Vec::new());
        }
        let config = self.config;
        let mut plan = BoxPlan::load(own_reader, own, config.log_entries_kept(own))?;
        let dialog = *plan.dialog(peer)?;
        let top = dialog.top_id;
        // 0 reads everything; a watermark never moves back, nor past the newest message.
        let wanted = if max_id == 0 { top } else { max_id.min(top) };
        if wanted <= dialog.read_inbox_max_id {
            return Ok(Vec::new());
        }
        // Room for the pts in both boxes first, so that a failure changes nothing.
        let mut theirs = match other {
            Some(other_box) => {
                let reader = readers.of(other_box)?;
                box_exists(reader, other_box)?
                    .then(|| BoxPlan::load(reader, other_box, config.log_entries_kept(other_box)))
                    .transpose()?
            }
            None => None,
        };
        plan.check_pts(1)?;
        if let Some(theirs) = &theirs {
            theirs.check_pts(1)?;
        }
        let unread = count_unread(own_reader, own, peer, wanted)?;
        let dialog = plan.dialog(peer)?;
        dialog.read_inbox_max_id = wanted;
        dialog.unread = unread;
        let pts = plan.log(
            1,
            UpdateKind::ReadInbox {
                peer,
                max_id: wanted,
            },
        )?;
        let mut affected = vec![Affected {
            box_id: own,
            pts,
            pts_count: 1,
        }];
        let mut batches = Batches::new();
        // A private chat: the sender sees its messages read, up to its copy of the newest
        // incoming message read (copies keep their order in both boxes).
        if let (Some(other_box), Some(their_plan)) = (other, theirs.as_mut()) {
            if let Some(outbox_max) =
                newest_incoming_copy(own_reader, own, peer, wanted, other_box)?
            {
                let marks = their_plan.dialog(Peer::User(user_id))?;
                if outbox_max > marks.read_outbox_max_id {
                    marks.read_outbox_max_id = outbox_max;
                    let pts = their_plan.log(
                        1,
                        UpdateKind::ReadOutbox {
                            peer: Peer::User(user_id),
                            max_id: outbox_max,
                        },
                    )?;
                    affected.push(Affected {
                        box_id: other_box,
                        pts,
                        pts_count: 1,
                    });
                    if let Some(their_plan) = theirs.take() {
                        let number = readers.of(other_box)?.instance.number;
                        batches.add(number, their_plan.finish());
                    }
                }
            }
        }
        batches.add(own_reader.instance.number, plan.finish());
        drop(readers);
        batches.write(&self.shards, self.instance_of(own))?;
        Ok(affected)
    }

    fn create_group(
        &self,
        channel: bool,
        info: Vec<u8>,
        creator: i64,
        date: i32,
    ) -> Result<Peer, MessageError> {
        self.create_group_rows(channel, info, creator, date)
    }

    fn set_group_info(&self, group: Peer, info: Vec<u8>) -> Result<(), MessageError> {
        self.set_group_info_row(group, info)
    }

    fn group_info(&self, group: Peer) -> Result<Option<Vec<u8>>, MessageError> {
        self.group_info_row(group)
    }

    fn set_participant(
        &self,
        group: Peer,
        user_id: i64,
        participant: Option<Participant>,
    ) -> Result<ParticipantChange, MessageError> {
        self.set_participant_rows(group, user_id, participant)
    }

    fn participant(&self, group: Peer, user_id: i64) -> Result<Option<Participant>, MessageError> {
        self.participant_row(group, user_id)
    }

    fn participants(
        &self,
        group: Peer,
        filter: ParticipantFilter,
        offset: usize,
        limit: usize,
    ) -> Result<ParticipantPage, MessageError> {
        self.participant_page(group, filter, offset, limit)
    }

    fn group_counts(&self, group: Peer) -> Result<GroupCounts, MessageError> {
        self.counts_row(group)
    }

    fn memberships(&self, user_id: i64) -> Result<Vec<Membership>, MessageError> {
        self.membership_rows(user_id)
    }

    fn channel_dialogs(&self, user_id: i64) -> Result<Vec<Dialog>, MessageError> {
        self.channel_dialog_rows(user_id)
    }

    fn views(&self, channel: i64, ids: &[i32], increment: bool) -> Result<Vec<u32>, MessageError> {
        self.view_rows(channel, ids, increment)
    }
}

impl RocksMessageStore {
    /// A member's read in a channel: the watermark row and the channel-wide read-outbox
    /// value, under the channel's lock; no pts.
    fn read_channel(
        &self,
        user_id: i64,
        channel: i64,
        max_id: i32,
    ) -> Result<Vec<Affected>, MessageError> {
        let box_id = BoxId::Channel(channel);
        let peer = Peer::Channel(channel);
        let home = self.shards.of(box_id)?;
        home.check_writable()?;
        let _held = self.locks.lock(&[box_id]);
        let reader = home.latest();
        let meta = read_meta(&reader, box_id)?;
        let top = read_dialog(&reader, box_id, peer)?.map_or(0, |dialog| dialog.top_id);
        let wanted = if max_id == 0 { top } else { max_id.min(top) };
        if wanted <= read_watermark(&reader, peer, user_id)? {
            return Ok(Vec::new());
        }
        let mut counts = read_counts(&reader, peer)?;
        let mut ops = vec![watermark_op(peer, user_id, wanted)];
        if wanted > counts.read_outbox_max_id {
            counts.read_outbox_max_id = wanted;
            ops.push(counts_op(peer, &counts));
        }
        drop(reader);
        home.write(&ops, false)?;
        Ok(vec![Affected {
            box_id,
            pts: meta.state.pts,
            pts_count: 0,
        }])
    }
}

/// The newest message of a chat not in `removed`, as (id, date), or (0, 0).
fn newest_remaining(
    reader: &Reader<'_>,
    box_id: BoxId,
    peer: Peer,
    removed: &[i32],
) -> Result<(i32, i32), MessageError> {
    let number = reader.instance.number;
    let mut walk = reader.range(&keys::chat_prefix(box_id, peer))?;
    walk.last();
    while let Some((key, value)) = walk.item()? {
        let (_, _, id) = keys::decode_chat(key).map_err(|error| key_error(number, error))?;
        if !removed.contains(&id) {
            let record = decode_message(value).map_err(|error| corrupt(number, error))?;
            return Ok((id, record.message.date));
        }
        walk.prev();
    }
    Ok((0, 0))
}

/// Incoming messages of a chat above `read_max`.
fn count_unread(
    reader: &Reader<'_>,
    box_id: BoxId,
    peer: Peer,
    read_max: i32,
) -> Result<u32, MessageError> {
    let number = reader.instance.number;
    let mut walk = reader.range(&keys::chat_prefix(box_id, peer))?;
    walk.last();
    let mut unread = 0u32;
    while let Some((key, value)) = walk.item()? {
        let (_, _, id) = keys::decode_chat(key).map_err(|error| key_error(number, error))?;
        if id <= read_max {
            break;
        }
        let record = decode_message(value).map_err(|error| corrupt(number, error))?;
        if !record.message.out {
            unread = unread.saturating_add(1);
        }
        walk.prev();
    }
    Ok(unread)
}

/// The id, in `other_box`, of the newest incoming message of the chat at or below `max_id`.
fn newest_incoming_copy(
    reader: &Reader<'_>,
    box_id: BoxId,
    peer: Peer,
    max_id: i32,
    other_box: BoxId,
) -> Result<Option<i32>, MessageError> {
    let number = reader.instance.number;
    let mut walk = reader.range(&keys::chat_prefix(box_id, peer))?;
    walk.seek_for_prev(&keys::chat(box_id, peer, max_id));
    while let Some((_, value)) = walk.item()? {
        let record = decode_message(value).map_err(|error| corrupt(number, error))?;
        if !record.message.out {
            return Ok(record
                .others
                .iter()
                .find(|(other, _)| *other == other_box)
                .map(|(_, id)| *id));
        }
        walk.prev();
    }
    Ok(None)
}

/// One chat's history read from a snapshot, by positions counted from ordinals: a message's
/// position (0 = newest) is the number of messages with a greater ordinal, that is the
/// ordinals given after it less those deleted. Seeks find the anchor of a page; only the
/// deleted ordinals above it are walked.
struct ChatSource<'a> {
    reader: &'a Reader<'a>,
    box_id: BoxId,
    peer: Peer,
    dialog: DialogRecord,
    /// The last position found by id or date, with its message's id: pages start there.
    anchor: std::cell::Cell<Option<(usize, i32)>>,
    /// The first engine error; the trait's methods cannot return one.
    error: std::cell::RefCell<Option<MessageError>>,
    /// One iterator over the chat for every lookup of the call (made on first use).
    walk: std::cell::RefCell<Option<RangeIter<'a>>>,
    /// The id of the message the iterator was last left on by a lookup.
    left_on: std::cell::Cell<Option<i32>>,
}

impl<'a> ChatSource<'a> {
    fn with_walk<T>(
        &self,
        f: impl FnOnce(&mut RangeIter<'a>) -> Result<T, MessageError>,
    ) -> Result<T, MessageError> {
        let mut slot = self.walk.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                self.reader
                    .range(&keys::chat_prefix(self.box_id, self.peer))?,
            );
        }
        match slot.as_mut() {
            Some(walk) => f(walk),
            None => Err(MessageError::Backend(BackendError::new("no iterator"))),
        }
    }

    fn fail(&self, error: MessageError) {
        self.error.borrow_mut().get_or_insert(error);
    }

    fn decode(&self, value: &[u8]) -> Result<MessageRecord, MessageError> {
        decode_message(value).map_err(|error| corrupt(self.reader.instance.number, error))
    }

    /// The newest message with an id at or below `id`.
    fn at_or_below(&self, id: i32) -> Result<Option<MessageRecord>, MessageError> {
        let found = self.with_walk(|walk| {
            walk.seek_for_prev(&keys::chat(self.box_id, self.peer, id));
            match walk.item()? {
                Some((_, value)) => self.decode(value).map(Some),
                None => Ok(None),
            }
        })?;
        self.left_on
            .set(found.as_ref().map(|record| record.message.id));
        Ok(found)
    }

    /// The position of the message with this ordinal.
    fn position(&self, ordinal: i32) -> Result<usize, MessageError> {
        let number = self.reader.instance.number;
        let after = i64::from(self.dialog.ordinals) - i64::from(ordinal);
        if i64::from(self.dialog.count) == i64::from(self.dialog.ordinals) {
            // Nothing was ever deleted from this chat: no deletions to walk.
            return Ok(usize::try_from(after).unwrap_or(0));
        }
        let mut deleted_after = 0i64;
        let mut walk = self
            .reader
            .range(&keys::deleted_prefix(self.box_id, self.peer))?;
        walk.last();
        while let Some((key, _)) = walk.item()? {
            let (_, _, deleted) =
                keys::decode_deleted(key).map_err(|error| key_error(number, error))?;
            if deleted <= ordinal {
                break;
            }
            deleted_after += 1;
            walk.prev();
        }
        Ok(usize::try_from(after - deleted_after).unwrap_or(0))
    }

    fn count_at_or_above_id(&self, id: i32) -> Result<usize, MessageError> {
        match self.at_or_below(id.saturating_sub(1))? {
            Some(record) => {
                let position = self.position(record.ordinal)?;
                self.anchor.set(Some((position, record.message.id)));
                Ok(position)
            }
            None => Ok(self.len()),
        }
    }

    fn count_at_or_after_date(&self, date: i32) -> Result<usize, MessageError> {
        // Dates never go back in a box, so "dated before `date`" holds for a prefix of the
        // chat by id: binary search for its newest member.
        let oldest = self.with_walk(|walk| {
            walk.first();
            match walk.item()? {
                Some((_, value)) => self.decode(value).map(Some),
                None => Ok(None),
            }
        })?;
        self.left_on.set(None);
        let Some(oldest) = oldest else {
            return Ok(0);
        };
        if oldest.message.date >= date {
            return Ok(self.len());
        }
        let (mut low, mut high) = (oldest.message.id, self.dialog.top_id.max(oldest.message.id));
        while low < high {
            let middle = i32::try_from((i64::from(low) + i64::from(high) + 1) / 2).unwrap_or(high);
            let before = self
                .at_or_below(middle)?
                .is_some_and(|record| record.message.date < date);
            if before {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        match self.at_or_below(low)? {
            Some(record) => {
                let position = self.position(record.ordinal)?;
                self.anchor.set(Some((position, record.message.id)));
                Ok(position)
            }
            None => Ok(self.len()),
        }
    }

    fn read_range(&self, start: usize, len: usize) -> Result<Vec<StoredMessage>, MessageError> {
        let left_on = self.left_on.take();
        self.with_walk(|walk| self.walk_range(walk, left_on, start, len))
    }

    fn walk_range(
        &self,
        walk: &mut RangeIter<'a>,
        left_on: Option<i32>,
        start: usize,
        len: usize,
    ) -> Result<Vec<StoredMessage>, MessageError> {
        let count = self.len();
        // Start from whichever known place is nearest: the newest message, the oldest, or the
        // anchor a lookup left.
        let from_top = start;
        let from_bottom = count.saturating_sub(1).saturating_sub(start);
        let from_anchor = self
            .anchor
            .get()
            .map(|(position, _)| position.abs_diff(start));
        if from_anchor.is_some_and(|steps| steps <= from_top.min(from_bottom)) {
            if let Some((position, id)) = self.anchor.get() {
                // The lookup that found the anchor usually left the iterator on it.
                if left_on != Some(id) {
                    walk.seek_for_prev(&keys::chat(self.box_id, self.peer, id));
                }
                if start >= position {
                    for _ in position..start {
                        walk.prev();
                    }
                } else {
                    for _ in start..position {
                        walk.next();
                    }
                }
            }
        } else if from_top <= from_bottom {
            walk.last();
            for _ in 0..start {
                walk.prev();
            }
        } else {
            walk.first();
            for _ in 0..from_bottom {
                walk.next();
            }
        }
        let mut messages = Vec::with_capacity(len);
        while messages.len() < len {
            let Some((_, value)) = walk.item()? else {
                break;
            };
            messages.push(self.decode(value)?.message);
            walk.prev();
        }
        Ok(messages)
    }
}

impl HistorySource for ChatSource<'_> {
    fn len(&self) -> usize {
        usize::try_from(self.dialog.count).unwrap_or(usize::MAX)
    }

    fn at_or_above_id(&self, id: i32) -> usize {
        self.count_at_or_above_id(id).unwrap_or_else(|error| {
            self.fail(error);
            0
        })
    }

    fn at_or_after_date(&self, date: i32) -> usize {
        self.count_at_or_after_date(date).unwrap_or_else(|error| {
            self.fail(error);
            0
        })
    }

    fn range(&self, start: usize, len: usize) -> Vec<StoredMessage> {
        self.read_range(start, len).unwrap_or_else(|error| {
            self.fail(error);
            Vec::new()
        })
    }
}
