//! One RocksDB instance of a sharded store: its column families, reads at a snapshot, and
//! writes that poison the instance when they fail.

use crate::BackendError;
use std::path::Path;
use std::sync::Mutex;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    DBRawIterator, Options, ReadOptions, SnapshotWithThreadMode, WriteBatch, WriteOptions,
};

use crate::codec::BatchOp;
use crate::keys::{Prefix, prefix_end};
use crate::message::MessageError;
use crate::rows::{RowList, Rows};

/// The column families, named after what they hold.
pub(crate) const FAMILIES: &[&str] = &[
    "messages", "index", "log", "meta", "sends", "pending", "keys", "members",
];

/// The column families of a file store: part rows (one per part, written and dropped in
/// bulk) apart from the rows of uploads, contents and files.
pub(crate) const FILE_FAMILIES: &[&str] = &["parts", "files"];

/// The column families of a user store: accounts apart from the lists of each user
/// (contacts, blocks, authorizations), which grow and shrink in ranges.
pub(crate) const USER_FAMILIES: &[&str] = &["accounts", "lists"];

/// The column families of a secret store: chats and send records apart from the queues and
/// their expiry index, which are appended at one end and trimmed at the other.
pub(crate) const SECRET_FAMILIES: &[&str] = &["chats", "queue"];

/// The column family of each kind of record: message rows (large values, read in ranges)
/// apart from the small index rows, the log apart from both (written once, trimmed from the
/// front), counters and dialog summaries (rewritten often) together.
fn family(prefix: Prefix) -> &'static str {
    match prefix {
        Prefix::Chat => "messages",
        Prefix::Message | Prefix::DialogOrder | Prefix::Deleted | Prefix::Pinned => "index",
        Prefix::Log => "log",
        Prefix::BoxMeta
        | Prefix::Dialog
        | Prefix::MemberRead
        | Prefix::NextGroupId
        | Prefix::GroupInfo
        | Prefix::PostViews
        | Prefix::GroupCounts => "meta",
        Prefix::Participant
        | Prefix::MemberByDate
        | Prefix::UserGroup
        | Prefix::ParticipantClass
        | Prefix::MemberPending => "members",
        Prefix::Send => "sends",
        Prefix::Pending => "pending",
        Prefix::AuthKey | Prefix::TempBinding | Prefix::PermBinding | Prefix::KeyExpiry => "keys",
        Prefix::Part => "parts",
        Prefix::Upload
        | Prefix::Content
        | Prefix::FileRow
        | Prefix::UploadExpiry
        | Prefix::RangeHashes => "files",
        Prefix::Account
        | Prefix::Phone
        | Prefix::Username
        | Prefix::NameWord
        | Prefix::ChannelUsername
        | Prefix::ChannelName
        | Prefix::NextUserId => "accounts",
        Prefix::Photo
        | Prefix::Contact
        | Prefix::ContactOf
        | Prefix::PhoneBook
        | Prefix::Importer
        | Prefix::Blocked
        | Prefix::Authorization
        | Prefix::Device => "lists",
        Prefix::SecretChat
        | Prefix::SecretUserChat
        | Prefix::SecretKeyChat
        | Prefix::SecretDevice
        | Prefix::SecretSend
        | Prefix::SecretUserLive
        | Prefix::SecretFile => "chats",
        Prefix::SecretQueue | Prefix::SecretExpiry => "queue",
    }
}

/// A failure injected into an instance's writes (feature `testing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The write fails before anything reaches the engine.
    FailWrite,
    /// The write reaches the engine, then its sync is reported failed: the outcome is unknown,
    /// as after a real `fsync` error.
    FailSync,
}

/// Engine settings of one instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    pub(crate) write_buffer_bytes: usize,
    pub(crate) sync: bool,
    /// Whether RocksDB counts tickers (what the message store reports as metrics); counting
    /// costs every read and write a little.
    pub(crate) statistics: bool,
}

/// One RocksDB database.
pub(crate) struct Instance {
    pub(crate) number: u32,
    pub(crate) db: DB,
    families: &'static [&'static str],
    /// Kept for its statistics object.
    options: Options,
    sync: bool,
    /// Why the instance refuses writes, once a write or sync failed.
    poisoned: Mutex<Option<BackendError>>,
    /// A failure to inject after this many more writes.
    fault: Mutex<Option<(u64, Fault)>>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("number", &self.number)
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

pub(crate) fn engine_error(
    number: u32,
    error: impl std::error::Error + Send + Sync + 'static,
) -> MessageError {
    MessageError::Backend(BackendError::with_source(
        format!("instance {number}"),
        error,
    ))
}

/// An invariant of the engine broken in instance `number`.
pub(crate) fn broken(number: u32, what: &'static str) -> MessageError {
    MessageError::Backend(BackendError::new(format!("instance {number}: {what}")))
}

impl Instance {
    /// Opens (or creates) the database at `path` with the message and key families.
    pub(crate) fn open(
        path: &Path,
        number: u32,
        cache: &Cache,
        tuning: Tuning,
    ) -> Result<Self, rocksdb::Error> {
        Self::open_with(path, number, cache, tuning, FAMILIES)
    }

    /// Opens (or creates) the database at `path` with these column families.
    pub(crate) fn open_with(
        path: &Path,
        number: u32,
        cache: &Cache,
        tuning: Tuning,
        families: &'static [&'static str],
    ) -> Result<Self, rocksdb::Error> {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        if tuning.statistics {
            options.enable_statistics();
        }
        options.set_compression_type(DBCompressionType::Lz4);
        options.set_write_buffer_size(tuning.write_buffer_bytes);
        options.set_block_based_table_factory(&table);
        let descriptors = families
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, options.clone()));
        let db = DB::open_cf_descriptors(&options, path, descriptors)?;
        Ok(Self {
            number,
            db,
            families,
            options,
            sync: tuning.sync,
            poisoned: Mutex::new(None),
            fault: Mutex::new(None),
        })
    }

    fn cf(&self, prefix: Prefix) -> Result<&ColumnFamily, MessageError> {
        self.db
            .cf_handle(family(prefix))
            .ok_or_else(|| broken(self.number, "a column family is missing"))
    }

    /// The column family a key belongs in, by its prefix.
    pub(crate) fn cf_of(&self, key: &[u8]) -> Result<&ColumnFamily, MessageError> {
        let prefix =
            Prefix::of(key).ok_or_else(|| broken(self.number, "a key with an unknown prefix"))?;
        self.cf(prefix)
    }

    /// The reason this instance refuses writes, if it does.
    pub(crate) fn poisoned(&self) -> Option<BackendError> {
        crate::lock(&self.poisoned).clone()
    }

    /// Refuses writes from now on, for `cause`; returns the error of the failed write.
    pub(crate) fn poison(&self, cause: BackendError) -> MessageError {
        let mut poisoned = crate::lock(&self.poisoned);
        poisoned.get_or_insert(cause.clone());
        MessageError::Backend(cause)
    }

    /// Refuses if a write or sync failed before.
    pub(crate) fn check_writable(&self) -> Result<(), MessageError> {
        match self.poisoned() {
            Some(cause) => Err(MessageError::Poisoned {
                instance: self.number,
                cause,
            }),
            None => Ok(()),
        }
    }

    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "used by inject_fault")
    )]
    pub(crate) fn set_fault(&self, after_writes: u64, fault: Fault) {
        *crate::lock(&self.fault) = Some((after_writes, fault));
    }

    fn next_fault(&self) -> Option<Fault> {
        let mut slot = crate::lock(&self.fault);
        match slot.as_mut() {
            Some((0, fault)) => {
                let fault = *fault;
                *slot = None;
                Some(fault)
            }
            Some((left, _)) => {
                *left -= 1;
                None
            }
            None => None,
        }
    }

    fn fill(&self, batch: &mut WriteBatch, ops: &[BatchOp]) -> Result<(), MessageError> {
        for op in ops {
            let cf = self.cf_of(&op.key)?;
            match &op.value {
                Some(value) => batch.put_cf(cf, &op.key, value),
                None => batch.delete_cf(cf, &op.key),
            }
        }
        Ok(())
    }

    /// Writes `ops` as one atomic batch; `force_sync` syncs even in the periodic mode. A
    /// failure poisons the instance: what reached the disk is unknown, so it takes no more
    /// writes until reopened (and recovered) rather than build on unknown state.
    pub(crate) fn write(&self, ops: &[BatchOp], force_sync: bool) -> Result<(), MessageError> {
        self.commit(ops, self.sync || force_sync)
    }

    fn commit(&self, ops: &[BatchOp], sync: bool) -> Result<(), MessageError> {
        self.check_writable()?;
        let mut batch = WriteBatch::default();
        self.fill(&mut batch, ops)?;
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        let fault = self.next_fault();
        let context = || format!("instance {}", self.number);
        if fault == Some(Fault::FailWrite) {
            let cause = BackendError::new(format!("{}: injected write failure", context()));
            return Err(self.poison(cause));
        }
        if let Err(error) = self.db.write_opt(batch, &options) {
            return Err(self.poison(BackendError::with_source(context(), error)));
        }
        if fault == Some(Fault::FailSync) {
            let cause = BackendError::new(format!("{}: injected sync failure", context()));
            return Err(self.poison(cause));
        }
        Ok(())
    }

    /// Writes without a sync, for records whose loss is repaired on open (a pending delivery's
    /// removal).
    pub(crate) fn write_unsynced(&self, ops: &[BatchOp]) -> Result<(), MessageError> {
        self.commit(ops, false)
    }

    /// Syncs the write-ahead log (the periodic durability mode's timer).
    pub(crate) fn sync_wal(&self) {
        if let Err(error) = self.db.flush_wal(true) {
            let context = format!("instance {}: WAL sync", self.number);
            self.poison(BackendError::with_source(context, error));
        }
    }

    /// Compacts the rows under `prefix`, so that the space of deleted rows comes back now
    /// rather than at the engine's next compaction of them.
    pub(crate) fn compact_prefix(&self, prefix: &[u8]) -> Result<(), MessageError> {
        let cf = self.cf_of(prefix)?;
        self.db
            .compact_range_cf(cf, Some(prefix), prefix_end(prefix).as_deref());
        Ok(())
    }

    /// A ticker of the engine's statistics.
    pub(crate) fn ticker(&self, ticker: rocksdb::statistics::Ticker) -> u64 {
        self.options.get_ticker_count(ticker)
    }

    /// An integer property summed over the column families.
    pub(crate) fn property(&self, name: &str) -> u64 {
        self.families
            .iter()
            .filter_map(|family| self.db.cf_handle(family))
            .filter_map(|cf| self.db.property_int_value_cf(cf, name).ok().flatten())
            .sum()
    }

    /// A reader at the latest committed state.
    pub(crate) fn latest(&self) -> Reader<'_> {
        Reader {
            instance: self,
            snapshot: None,
        }
    }

    /// A reader at one consistent point in time.
    pub(crate) fn snapshot(&self) -> Reader<'_> {
        Reader {
            instance: self,
            snapshot: Some(self.db.snapshot()),
        }
    }
}

/// Reads from one instance, at a snapshot or at the latest state (a writer holding a box's
/// lock sees that box's latest state, which nobody else can change).
pub(crate) struct Reader<'a> {
    pub(crate) instance: &'a Instance,
    snapshot: Option<SnapshotWithThreadMode<'a, DB>>,
}

impl<'a> Reader<'a> {
    fn options(&self) -> ReadOptions {
        let mut options = ReadOptions::default();
        if let Some(snapshot) = &self.snapshot {
            options.set_snapshot(snapshot);
        }
        options
    }

    /// A key's value, handed to `decode` without a copy.
    pub(crate) fn get<T>(
        &self,
        key: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<T, MessageError>,
    ) -> Result<Option<T>, MessageError> {
        let cf = self.instance.cf_of(key)?;
        let options = self.options();
        match self.instance.db.get_pinned_cf_opt(cf, key, &options) {
            Ok(Some(value)) => decode(&value).map(Some),
            Ok(None) => Ok(None),
            Err(error) => Err(engine_error(self.instance.number, error)),
        }
    }

    /// Whether a key is present.
    pub(crate) fn contains(&self, key: &[u8]) -> Result<bool, MessageError> {
        Ok(self.get(key, |_| Ok(()))?.is_some())
    }

    /// An iterator over the keys that start with `prefix` (bounded both ways, so that seeks
    /// never leave the range).
    pub(crate) fn range(&self, prefix: &[u8]) -> Result<RangeIter<'a>, MessageError> {
        let cf = self.instance.cf_of(prefix)?;
        let mut options = self.options();
        options.set_iterate_lower_bound(prefix.to_vec());
        if let Some(end) = prefix_end(prefix) {
            options.set_iterate_upper_bound(end);
        }
        Ok(RangeIter {
            number: self.instance.number,
            raw: self.instance.db.raw_iterator_cf_opt(cf, options),
        })
    }
}

/// A key and its value, borrowed from an iterator.
pub(crate) type Entry<'a> = (&'a [u8], &'a [u8]);

/// A raw iterator over one prefix.
pub(crate) struct RangeIter<'a> {
    number: u32,
    raw: DBRawIterator<'a>,
}

impl RangeIter<'_> {
    /// Moves to the first key at or after `key`.
    pub(crate) fn seek(&mut self, key: &[u8]) {
        self.raw.seek(key);
    }
    /// Moves to the last key at or before `key`.
    pub(crate) fn seek_for_prev(&mut self, key: &[u8]) {
        self.raw.seek_for_prev(key);
    }
    /// Moves to the first key of the range.
    pub(crate) fn first(&mut self) {
        self.raw.seek_to_first();
    }
    /// Moves to the last key of the range.
    pub(crate) fn last(&mut self) {
        self.raw.seek_to_last();
    }
    pub(crate) fn next(&mut self) {
        self.raw.next();
    }
    pub(crate) fn prev(&mut self) {
        self.raw.prev();
    }
    /// The current entry, `None` past either end; an engine error ends the walk as an error.
    pub(crate) fn item(&self) -> Result<Option<Entry<'_>>, MessageError> {
        if self.raw.valid() {
            Ok(self.raw.item())
        } else {
            self.raw
                .status()
                .map_err(|error| engine_error(self.number, error))?;
            Ok(None)
        }
    }
}

/// A read's failure as the row layer reports it (a read can only fail in the engine).
fn read_error(error: MessageError) -> BackendError {
    match error {
        MessageError::Backend(cause) | MessageError::Poisoned { cause, .. } => cause,
        other => BackendError::with_source("rows", other),
    }
}

impl Rows for Reader<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Reader::get(self, key, |value| Ok(value.to_vec())).map_err(read_error)
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<RowList, BackendError> {
        let mut walk = self.range(prefix).map_err(read_error)?;
        if start > prefix {
            walk.seek(start);
        } else {
            walk.first();
        }
        let mut rows = Vec::new();
        while rows.len() < limit {
            match walk.item().map_err(read_error)? {
                Some((key, value)) => rows.push((key.to_vec(), value.to_vec())),
                None => break,
            }
            walk.next();
        }
        Ok(rows)
    }

    fn visit_values(
        &self,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        let mut walk = self.range(prefix).map_err(read_error)?;
        walk.first();
        while let Some((_, value)) = walk.item().map_err(read_error)? {
            visit(value)?;
            walk.next();
        }
        Ok(())
    }
}
