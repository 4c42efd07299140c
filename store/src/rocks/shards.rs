//! Opening a sharded store: the directory, its manifest, one RocksDB instance per configured
//! instance, and the periodic WAL sync when durability is relaxed.

use crate::BackendError;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rocksdb::Cache;

use super::instance::{Instance, Tuning};
use crate::message::{BoxId, MessageError, MessageStoreConfig};
use crate::shard::{Manifest, ManifestError, instance_of_box};

/// When a write counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every write returns after its write-ahead log is synced to disk (concurrent writers
    /// share syncs through RocksDB's group commit). Nothing acknowledged is lost, whether the
    /// process dies or the machine loses power. The default.
    Sync,
    /// Writes return once in the operating system's page cache; a timer syncs the write-ahead
    /// log every period. A process crash loses nothing; a power failure or kernel crash may
    /// lose the writes of the last period (they were acknowledged). A send that reaches two
    /// instances still syncs the sender's side before delivering, so that a power failure can
    /// never keep a recipient's copy while losing the sender's record of it.
    Periodic(Duration),
}

/// How to open a sharded store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RocksOptions {
    /// RocksDB instances the logical shards are spread over; fixed at creation (the manifest
    /// records it and a store opened with another count refuses to start). One by default:
    /// on one disk, one write-ahead log groups every concurrent writer's sync, and a private
    /// message costs one synced batch; with several instances a message between boxes on
    /// two of them costs two synced batches in sequence (the price of never delivering
    /// half a send). More instances pay off with one disk each, or to spread compaction.
    pub instances: u32,
    /// When a write counts as durable.
    pub durability: Durability,
    /// Limits of the message store.
    pub messages: MessageStoreConfig,
    /// The block cache shared by every instance, in bytes.
    pub block_cache_bytes: usize,
    /// Each column family's memtable size, in bytes (six families per instance).
    pub write_buffer_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> Self {
        Self {
            instances: 1,
            durability: Durability::Sync,
            messages: MessageStoreConfig::default(),
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 16 << 20,
        }
    }
}

/// Why a store did not open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The directory or the manifest could not be read or written.
    #[error("store directory: {0}")]
    Io(#[from] std::io::Error),
    /// The manifest belongs to another layout or format.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// RocksDB refused to open an instance.
    #[error("instance {instance}: {message}")]
    Engine {
        /// The instance.
        instance: u32,
        /// RocksDB's message.
        message: String,
    },
    /// Finishing the deliveries a crash interrupted failed.
    #[error("recovery: {0}")]
    Recovery(MessageError),
    /// The options make no sense (no instances, a zero sync period).
    #[error("invalid options: {0}")]
    Options(&'static str),
}

/// The instances of one store, and the manifest that maps boxes to them.
#[derive(Debug)]
pub(crate) struct Shards {
    pub(crate) manifest: Manifest,
    pub(crate) instances: Vec<Arc<Instance>>,
    _syncer: Option<Syncer>,
}

/// The name of an instance's directory under the root.
pub(crate) fn instance_dir(root: &Path, number: u32) -> PathBuf {
    root.join(format!("instance-{number}"))
}

/// Writes the manifest atomically: a temporary file, synced, renamed over, the directory
/// synced.
pub(crate) fn write_manifest(root: &Path, manifest: &Manifest) -> std::io::Result<()> {
    let temporary = root.join("MANIFEST.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(manifest.encode().as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, root.join("MANIFEST"))?;
    std::fs::File::open(root)?.sync_all()
}

impl Shards {
    pub(crate) fn open(root: &Path, options: &RocksOptions) -> Result<Self, OpenError> {
        if options.instances == 0 {
            return Err(OpenError::Options("at least one instance"));
        }
        if options.durability == Durability::Periodic(Duration::ZERO) {
            return Err(OpenError::Options(
                "a periodic sync needs a non-zero period",
            ));
        }
        std::fs::create_dir_all(root)?;
        let manifest_path = root.join("MANIFEST");
        let manifest = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => {
                let manifest = Manifest::decode(&text)?;
                manifest.check(options.instances)?;
                manifest
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // A new store, unless instances are already there without their manifest:
                // then the layout is unknown and guessing it could misroute every box.
                if instance_dir(root, 0).exists() {
                    return Err(OpenError::Manifest(ManifestError::Malformed(
                        "instances without a MANIFEST".into(),
                    )));
                }
                let manifest = Manifest::new(options.instances);
                write_manifest(root, &manifest)?;
                manifest
            }
            Err(error) => return Err(error.into()),
        };
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let sync = options.durability == Durability::Sync;
        let tuning = Tuning {
            statistics: true,
            write_buffer_bytes: options.write_buffer_bytes.max(1 << 20),
            sync,
        };
        let mut instances = Vec::new();
        for number in 0..manifest.instances {
            let instance = Instance::open(&instance_dir(root, number), number, &cache, tuning)
                .map_err(|error| OpenError::Engine {
                    instance: number,
                    message: error.to_string(),
                })?;
            instances.push(Arc::new(instance));
        }
        let syncer = match options.durability {
            Durability::Sync => None,
            Durability::Periodic(period) => Some(Syncer::start(instances.clone(), period)?),
        };
        Ok(Self {
            manifest,
            instances,
            _syncer: syncer,
        })
    }

    /// The instance a box lives on.
    pub(crate) fn of(&self, box_id: BoxId) -> Result<&Arc<Instance>, MessageError> {
        let number = instance_of_box(box_id, &self.manifest);
        self.instances
            .get(usize::try_from(number).unwrap_or(usize::MAX))
            .ok_or_else(|| {
                MessageError::Backend(BackendError::new(format!("no instance {number}")))
            })
    }

    /// The instance with this number.
    pub(crate) fn number(&self, number: u32) -> Result<&Arc<Instance>, MessageError> {
        self.instances
            .get(usize::try_from(number).unwrap_or(usize::MAX))
            .ok_or_else(|| {
                MessageError::Backend(BackendError::new(format!("no instance {number}")))
            })
    }
}

/// The periodic durability mode's timer thread; stops when dropped.
#[derive(Debug)]
struct Syncer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    fn start(instances: Vec<Arc<Instance>>, period: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("columba-wal-sync".into())
            .spawn(move || {
                loop {
                    match stopped.recv_timeout(period) {
                        Err(RecvTimeoutError::Timeout) => {
                            for instance in &instances {
                                instance.sync_wal();
                            }
                        }
                        // Stopped (or the store is gone): a last sync, then out.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                            for instance in &instances {
                                instance.sync_wal();
                            }
                            return;
                        }
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
