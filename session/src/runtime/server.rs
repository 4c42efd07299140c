//! The server runtime: an accept loop over any [`Listener`], one task per connection, the
//! [`crate::endpoint::Endpoint`] shared in shards by key (each behind a mutex), requests
//! handed to the application's [`Service`].
//!
//! Per connection: the MTProto framing is detected from the first bytes; unencrypted
//! messages go to a handshake (the new key is stored in the [`AuthKeyStore`]); encrypted ones
//! are opened with their key and routed by the endpoint. Limits: connections in all and per
//! address (-429 beyond), a deadline for the first key or encrypted message, an idle
//! timeout, the largest frame (`transport::Config::max_frame_len`). Shutdown stops accepting,
//! waits for running requests (up to a grace period), sends their answers and closes.
//!
//! Locking: the endpoint is split by auth_key_id into shards with a mutex each
//! ([`ServerOptions::endpoint_shards`]), so that frames of different keys do not wait for
//! each other. A shard's mutex is held only for routing and bookkeeping, never across an
//! await, a cryptographic operation on a frame, or the application's code, and never together
//! with another shard's.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use columba_mtproto::crypto::AuthKey;
use columba_mtproto::handshake::bind::{BindRequest, verify_binding};
use columba_mtproto::handshake::{self};
use columba_mtproto::message::EncryptedHeader;
use columba_mtproto::time::Now;
use columba_mtproto::tl::api::functions::auth::BindTempAuthKey;
use columba_mtproto::tl::{Deserializable, Identifiable};
use columba_mtproto::transport::{self, ERROR_FLOOD};
use columba_store::FileStore;
use columba_store::auth_key::{AuthKeyStore, KeyLifetime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::io::{Accepted, ByteStream, Listener};
use super::now;
use super::shards::Shards;
use crate::connection::{CloseReason, ConnectionEvent, IncomingMessage, ServerConnection};
use crate::endpoint::{
    ConnectionId, EndpointConfig, EndpointEvent, KeyLookup, SessionKey, load_key,
};
use crate::plugins::{BoxFuture, Notification, PushProvider, Service, UpdateBus};
use crate::rpc::RpcError;
use crate::rpc::RpcOutcome;
use crate::salt::SaltSource;

/// `boolTrue#997275b5`, little-endian.
const BOOL_TRUE: [u8; 4] = columba_mtproto::tl::BOOL_TRUE_ID.to_le_bytes();

/// The server's limits and options.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Sessions and their limits. `max_sessions` and `max_cached_keys` are divided among
    /// the [`Self::endpoint_shards`] (rounded up).
    pub endpoint: EndpointConfig,
    /// How many independently locked parts the endpoint is split into, by auth_key_id. More
    /// shards mean less waiting between the runtime's worker threads; a few times the number
    /// of workers is plenty. At least one, at most 4096 (the timers visit every shard).
    pub endpoint_shards: usize,
    /// The key exchange (RSA keys, DH group, its own limits).
    pub handshake: Arc<handshake::ServerConfig>,
    /// Framing limits (largest frame, obfuscation policy).
    pub transport: transport::Config,
    /// Connections open at once; one more gets -429 and is closed.
    pub max_connections: usize,
    /// Connections open at once from one address; one more gets -429 and is closed.
    pub max_connections_per_ip: usize,
    /// A connection must complete a key exchange or send a valid encrypted message within
    /// this time, or it is closed.
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// How long shutdown waits for running requests.
    pub shutdown_grace: Duration,
    /// A write to a connection that takes longer than this closes it (a client that stops
    /// reading must not hold its connection, or the server's memory, for ever).
    pub write_timeout: Duration,
    /// Messages a connection writes under one hold of its endpoint shard's lock, at most
    /// (then the frames go out and the lock is taken again): larger batches take the lock
    /// less often, smaller ones let other connections of the shard in sooner. Default 64;
    /// 0 counts as 1.
    pub transmit_batch: usize,
    /// How long a connection refused over a limit is given to show its framing (the -429 is
    /// sent in it) before it is closed without a word. Default 5 s.
    pub refuse_wait: Duration,
    /// How long a closing connection reads and discards what the client still sends after
    /// the server's last bytes, so that closing with unread input does not reset the
    /// connection and destroy them in flight. Default 500 ms.
    pub close_linger: Duration,
    /// What the runtime sweeps from the stores on a schedule.
    pub housekeeping: Housekeeping,
    /// Users who came and went, kept until the service asks ([`Server::take_presence`]):
    /// past this many the list is dropped and the service told to start again. Default
    /// 1,048,576 (16 bytes each).
    pub presence_backlog: usize,
}

/// The runtime's sweeps of the stores ([`Server::sweep`], run every [`Self::interval`] while
/// serving): expired temporary keys, permanent keys nobody signed in with, and abandoned
/// uploads.
#[derive(Clone)]
#[non_exhaustive]
pub struct Housekeeping {
    /// How often the sweep runs. Default 10 minutes.
    pub interval: Duration,
    /// Permanent keys that never had a user signed in, are not in use here (no session, not
    /// cached) and are older than this are removed; `None` keeps them. Default 1 day: a
    /// client that made a key and went away has no use for it, and an anonymous handshake
    /// flood must not grow the key store for ever.
    pub unsigned_key_age: Option<Duration>,
    /// A file store whose abandoned uploads are swept ([`FileStore::sweep`]), if any.
    pub files: Option<Arc<dyn FileStore>>,
}

impl Default for Housekeeping {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(600),
            unsigned_key_age: Some(Duration::from_secs(86_400)),
            files: None,
        }
    }
}

impl std::fmt::Debug for Housekeeping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Housekeeping")
            .field("interval", &self.interval)
            .field("unsigned_key_age", &self.unsigned_key_age)
            .field("files", &self.files.is_some())
            .finish()
    }
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// Temporary keys past their expiry.
    pub expired_keys: usize,
    /// Permanent keys nobody signed in with.
    pub unsigned_keys: usize,
    /// Uploads abandoned past their expiry.
    pub uploads: usize,
}

impl ServerOptions {
    /// Default limits with the given handshake configuration.
    pub fn new(handshake: Arc<handshake::ServerConfig>) -> Self {
        Self {
            endpoint: EndpointConfig::default(),
            endpoint_shards: 64,
            handshake,
            // The largest request is a 512 KiB file part and the largest answer a 1 MiB file
            // window; 2 MiB leaves room and keeps one frame's cost small.
            transport: transport::Config::with_max_frame_len(2 * 1024 * 1024),
            max_connections: 10_000,
            max_connections_per_ip: 64,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            transmit_batch: 64,
            close_linger: Duration::from_millis(500),
            refuse_wait: Duration::from_secs(5),
            housekeeping: Housekeeping::default(),
            presence_backlog: 1 << 20,
        }
    }
}

/// Counters of the runtime.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicUsize,
    refused: AtomicU64,
    rejected_frames: AtomicU64,
    requests: AtomicU64,
}

/// A snapshot of the runtime's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections open now.
    pub connections: usize,
    /// Connections refused with -429 (over a limit).
    pub refused: u64,
    /// Encrypted frames that did not authenticate, and unknown keys (-404).
    pub rejected_frames: u64,
    /// Requests handed to the service.
    pub requests: u64,
    /// Requests running now.
    pub running: usize,
}

struct Connection {
    /// The address the connection came from, if the listener knows it.
    peer: Option<SocketAddr>,
    wake: Arc<Notify>,
    /// Set with `close`, so that the connection's task checks a flag of its own after each
    /// event rather than the shared map.
    closing: Arc<AtomicBool>,
    close: Option<Option<i32>>,
}

struct Shared {
    endpoint: Shards,
    store: Arc<dyn AuthKeyStore>,
    service: Arc<dyn Service>,
    push: Arc<dyn PushProvider>,
    bus: Option<Arc<dyn UpdateBus>>,
    options: ServerOptions,
    connections: Mutex<HashMap<ConnectionId, Connection>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    next_connection: AtomicU64,
    running: AtomicUsize,
    /// The service calls in progress, to abort one the client dropped.
    calls: Mutex<HashMap<(SessionKey, i64), tokio::task::AbortHandle>>,
    idle: Notify,
    counters: Counters,
    /// Set once shutdown starts: connections stop taking new frames.
    stopping: watch::Sender<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state behind these mutexes is updated in single steps; a panic elsewhere cannot
    // leave it half-changed, so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The server runtime.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server over `store` answering with `service`, notifying through `push`.
    pub fn new(
        options: ServerOptions,
        store: Arc<dyn AuthKeyStore>,
        service: Arc<dyn Service>,
        push: Arc<dyn PushProvider>,
    ) -> Self {
        let salts = Arc::new(SaltSource::generate(&mut rand::rng()));
        Self::with_salts(options, store, service, push, salts, None)
    }

    /// Like [`Self::new`], with the salt secret given (several nodes must share it, and a
    /// restart should keep it) and an [`UpdateBus`] joining this node to others.
    pub fn with_salts(
        options: ServerOptions,
        store: Arc<dyn AuthKeyStore>,
        service: Arc<dyn Service>,
        push: Arc<dyn PushProvider>,
        salts: Arc<SaltSource>,
        bus: Option<Arc<dyn UpdateBus>>,
    ) -> Self {
        let mut endpoint_config = options.endpoint.clone();
        // Sessions live in memory: nothing from before this start may run in a new one.
        endpoint_config
            .refuse_msg_ids_before
            .get_or_insert_with(|| now().unix);
        let endpoint = Shards::new(
            &salts,
            &endpoint_config,
            options.endpoint_shards,
            options.presence_backlog,
        );
        let (stopping, _) = watch::channel(false);
        let server = Self {
            shared: Arc::new(Shared {
                endpoint,
                store,
                service,
                push,
                bus,
                options,
                connections: Mutex::new(HashMap::new()),
                per_ip: Mutex::new(HashMap::new()),
                next_connection: AtomicU64::new(1),
                running: AtomicUsize::new(0),
                calls: Mutex::new(HashMap::new()),
                idle: Notify::new(),
                counters: Counters::default(),
                stopping,
            }),
        };
        // A weak handle: the service may keep it without keeping the server alive.
        server.shared.service.bind(server.handle());
        server
    }

    /// A handle that does not keep the server alive: what a [`Service`] keeps to push
    /// updates and refresh keys without a reference cycle.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// The runtime's counters.
    pub fn stats(&self) -> ServerStats {
        let counters = &self.shared.counters;
        ServerStats {
            connections: counters.connections.load(Ordering::Relaxed),
            refused: counters.refused.load(Ordering::Relaxed),
            rejected_frames: counters.rejected_frames.load(Ordering::Relaxed),
            requests: counters.requests.load(Ordering::Relaxed),
            running: self.shared.running.load(Ordering::Relaxed),
        }
    }

    /// Sends an update to every live session of `user_id` (through the update bus when there
    /// is one, so that sessions on other nodes get it too); with no live session on this
    /// node, the push provider is asked to notify the user. With several nodes each node
    /// decides for itself, so a user live on one node may also be pushed by another: a
    /// deployment that minds gives its push provider a presence check.
    pub fn send_update(&self, user_id: i64, update: Bytes) {
        match &self.shared.bus {
            Some(bus) => {
                if let Err(error) = bus.publish(user_id, update) {
                    tracing::warn!(%error, "update bus refused an update");
                }
            }
            None => self.shared.deliver_update(user_id, update),
        }
    }

    /// Sends an update to the live sessions of one device of `user_id` (its permanent key
    /// `perm_auth_key_id` and the temporary keys bound to it) on this node: a secret chat's
    /// events belong to the device that holds its key. With no such session and `push`, the
    /// push provider is asked to notify the user. It does not cross the update bus (whose
    /// messages are addressed to users): with several nodes, a device's node is the one
    /// its client is connected to, and a client that connects elsewhere catches up with
    /// `updates.getDifference`.
    pub fn send_device_update(
        &self,
        user_id: i64,
        perm_auth_key_id: i64,
        update: Bytes,
        push: bool,
    ) {
        self.shared
            .deliver(user_id, Some((perm_auth_key_id, true)), update, push);
    }

    /// Sends an update to the live sessions on this node of every device of `user_id` but
    /// the one of `perm_auth_key_id` (no push notification): what a user's other devices
    /// are told when one of them took a secret chat. Not across the update bus, as
    /// [`Self::send_device_update`].
    pub fn send_other_devices_update(&self, user_id: i64, perm_auth_key_id: i64, update: Bytes) {
        self.shared
            .deliver(user_id, Some((perm_auth_key_id, false)), update, false);
    }

    /// Sends one update to the live sessions of every user of `users` on this node (a
    /// channel's post to its members): the users are grouped by the endpoint shards that
    /// hold their keys, each shard is locked once, and only the connections that took the
    /// update are woken, so that the cost follows the users who are here, not the shards or
    /// the sessions of others. `update` is shared, never copied. Users with no live session
    /// get nothing (no push notification: a channel's post is not worth one per member).
    /// With `stream` (a channel's id and its `updateChannelTooLong`), a session that lags
    /// gets that instead, once ([`crate::ServerSession::push_stream_update`]).
    /// With an update bus, each user's update goes through it as [`Self::send_update`]
    /// does. Returns how many sessions took it.
    pub fn fan_out(&self, users: &[i64], update: &Bytes, stream: Option<(i64, &Bytes)>) -> usize {
        if let Some(bus) = &self.shared.bus {
            for user_id in users {
                if let Err(error) = bus.publish(*user_id, update.clone()) {
                    tracing::warn!(%error, "update bus refused an update");
                }
            }
            return 0;
        }
        let mut woken = Vec::new();
        let mut delivered = 0;
        for (shard, group) in self.shared.endpoint.group_by_shard(users) {
            let mut endpoint = self.shared.endpoint.at(shard);
            for user_id in group {
                delivered += match stream {
                    None => endpoint.push_update_to(user_id, update, &mut woken),
                    Some((id, too_long)) => {
                        endpoint.push_stream_update_to(user_id, update, id, too_long, &mut woken)
                    }
                };
            }
        }
        if !woken.is_empty() {
            woken.sort_unstable();
            woken.dedup();
            let connections = lock(&self.shared.connections);
            for connection in &woken {
                if let Some(entry) = connections.get(connection) {
                    entry.wake.notify_one();
                }
            }
        }
        delivered
    }

    /// Whether a key of `user_id` is in use on this node (cached with its sessions): the
    /// users [`Self::fan_out`] can reach.
    pub fn is_present(&self, user_id: i64) -> bool {
        self.shared.endpoint.has_user(user_id)
    }

    /// Moves the users who came (`true`: their first key in use on this node) and went
    /// (`false`: their last one dropped) since the last call into `out`, oldest first: what a
    /// service keeps its lists of present members with. Returns `false` when some changes
    /// were lost to [`ServerOptions::presence_backlog`]: the service must then start again
    /// from [`Self::is_present`].
    pub fn take_presence(&self, out: &mut Vec<(i64, bool)>) -> bool {
        self.shared.endpoint.take_presence(out)
    }

    /// Runs the sweeps of [`ServerOptions::housekeeping`] once, as of `now` (Unix seconds):
    /// what [`Self::serve`] does on a schedule, public for tools and tests with a simulated
    /// clock. Blocking (store calls): call it from the blocking pool. A failing store is
    /// logged and the other sweeps still run.
    pub fn sweep(&self, now: i64) -> SweepReport {
        self.shared.sweep(now)
    }

    /// Whether updates are pushed to `session` (all sessions are, until told otherwise):
    /// an API turns it off for a session that asked for none (`invokeWithoutUpdates`).
    /// A user none of whose live sessions takes updates counts as not live: the push
    /// provider is asked.
    pub fn set_receives_updates(&self, session: SessionKey, receives: bool) {
        self.shared
            .endpoint
            .of(session.auth_key_id)
            .set_receives_updates(session, receives);
    }

    /// Tells the endpoint who is signed in on a permanent key (`None`: signed out), after
    /// the key store recorded it: requests on the key and on the temporary keys bound to it
    /// carry the user from now on, and the user's updates reach their sessions.
    pub fn set_user(&self, perm_auth_key_id: i64, user_id: Option<i64>) {
        for mut endpoint in self.shared.endpoint.each() {
            endpoint.set_user(perm_auth_key_id, user_id);
        }
    }

    /// The address `connection` came from, while it is open (and if its listener knows
    /// addresses): what `account.getAuthorizations` shows as a device's IP.
    pub fn peer_address(&self, connection: ConnectionId) -> Option<SocketAddr> {
        lock(&self.shared.connections)
            .get(&connection)
            .and_then(|entry| entry.peer)
    }

    /// Tells the endpoint that a key is gone from the key store (removed, its authorization
    /// reset): its sessions, and those of the temporary keys bound to it, are forgotten, and
    /// its next frame gets -404.
    pub fn forget_key(&self, auth_key_id: i64) {
        for mut endpoint in self.shared.endpoint.each() {
            endpoint.forget_key(auth_key_id);
        }
    }

    /// Accepts connections from `listener` until `shutdown` completes, then shuts down
    /// gracefully: no new connections or requests, running requests get up to
    /// [`ServerOptions::shutdown_grace`] to finish, their answers are sent, and every
    /// connection closes.
    pub async fn serve<L: Listener>(
        &self,
        listener: L,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let shared = self.shared.clone();
        let mut tasks = JoinSet::new();
        tasks.spawn(timer_loop(shared.clone()));
        tasks.spawn(housekeeping_loop(shared.clone()));
        if let Some(bus) = &shared.bus {
            let mut subscription = bus.subscribe();
            let shared = shared.clone();
            tasks.spawn(async move {
                while let Some((user_id, update)) = subscription.next().await {
                    shared.deliver_update(user_id, update);
                }
            });
        }
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => {
                        let shared = shared.clone();
                        connections.spawn(accept_connection(shared, accepted));
                    }
                    Err(error) if error.kind() == io::ErrorKind::NotConnected => break,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                // Reap finished connection tasks as we go.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }

        // Graceful shutdown.
        let _ = shared.stopping.send(true);
        let grace = tokio::time::sleep(shared.options.shutdown_grace);
        tokio::pin!(grace);
        while shared.running.load(Ordering::Acquire) > 0 {
            tokio::select! {
                () = shared.idle.notified() => {}
                () = &mut grace => break,
            }
        }
        // Flush the answers and close.
        let wakes: Vec<Arc<Notify>> = {
            let mut connections = lock(&shared.connections);
            connections
                .values_mut()
                .map(|connection| {
                    connection.close = Some(None);
                    connection.closing.store(true, Ordering::Release);
                    connection.wake.clone()
                })
                .collect()
        };
        for wake in wakes {
            wake.notify_one();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.abort_all();
        tasks.abort_all();
        for (_, call) in lock(&shared.calls).drain() {
            call.abort();
        }
        // An aborted task is dropped when a worker next gets to it: waiting for them here
        // means that what they hold (the service, and through it the application's stores)
        // is let go of by the time `serve` returns, so that a restart can open the stores.
        while connections.join_next().await.is_some() {}
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// A weak handle on a [`Server`], given to its [`Service`] through [`Service::bind`]. Once
/// the server is dropped its methods do nothing.
#[derive(Clone, Default)]
pub struct ServerHandle {
    shared: Weak<Shared>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("live", &(self.shared.strong_count() > 0))
            .finish()
    }
}

impl ServerHandle {
    /// A handle on no server (tests of a service outside a runtime): every call does nothing.
    pub fn detached() -> Self {
        Self::default()
    }

    /// [`Server::send_update`], if the server is still there.
    pub fn send_update(&self, user_id: i64, update: Bytes) {
        if let Some(shared) = self.shared.upgrade() {
            Server { shared }.send_update(user_id, update);
        }
    }

    /// [`Server::send_device_update`], if the server is still there.
    pub fn send_device_update(
        &self,
        user_id: i64,
        perm_auth_key_id: i64,
        update: Bytes,
        push: bool,
    ) {
        if let Some(shared) = self.shared.upgrade() {
            Server { shared }.send_device_update(user_id, perm_auth_key_id, update, push);
        }
    }

    /// [`Server::send_other_devices_update`], if the server is still there.
    pub fn send_other_devices_update(&self, user_id: i64, perm_auth_key_id: i64, update: Bytes) {
        if let Some(shared) = self.shared.upgrade() {
            Server { shared }.send_other_devices_update(user_id, perm_auth_key_id, update);
        }
    }

    /// [`Server::fan_out`], if the server is still there (0 otherwise).
    pub fn fan_out(&self, users: &[i64], update: &Bytes, stream: Option<(i64, &Bytes)>) -> usize {
        self.shared
            .upgrade()
            .map_or(0, |shared| Server { shared }.fan_out(users, update, stream))
    }

    /// [`Server::is_present`], if the server is still there.
    pub fn is_present(&self, user_id: i64) -> bool {
        self.shared
            .upgrade()
            .is_some_and(|shared| Server { shared }.is_present(user_id))
    }

    /// [`Server::take_presence`], if the server is still there (`true` with nothing
    /// otherwise).
    pub fn take_presence(&self, out: &mut Vec<(i64, bool)>) -> bool {
        self.shared
            .upgrade()
            .is_none_or(|shared| Server { shared }.take_presence(out))
    }

    /// [`Server::set_user`], if the server is still there.
    pub fn set_user(&self, perm_auth_key_id: i64, user_id: Option<i64>) {
        if let Some(shared) = self.shared.upgrade() {
            Server { shared }.set_user(perm_auth_key_id, user_id);
        }
    }

    /// [`Server::peer_address`], if the server is still there.
    pub fn peer_address(&self, connection: ConnectionId) -> Option<SocketAddr> {
        self.shared
            .upgrade()
            .and_then(|shared| Server { shared }.peer_address(connection))
    }

    /// [`Server::forget_key`], if the server is still there.
    pub fn forget_key(&self, auth_key_id: i64) {
        if let Some(shared) = self.shared.upgrade() {
            Server { shared }.forget_key(auth_key_id);
        }
    }

    /// [`Server::set_receives_updates`], if the server is still there.
    pub fn set_receives_updates(&self, session: SessionKey, receives: bool) {
        if let Some(shared) = self.shared.upgrade() {
            Server { shared }.set_receives_updates(session, receives);
        }
    }

    /// [`Server::stats`], if the server is still there.
    pub fn stats(&self) -> Option<ServerStats> {
        self.shared
            .upgrade()
            .map(|shared| Server { shared }.stats())
    }
}

/// Sweeps the stores every [`Housekeeping::interval`], off the runtime's workers.
async fn housekeeping_loop(shared: Arc<Shared>) {
    let interval = shared
        .options
        .housekeeping
        .interval
        .max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(interval).await;
        let sweeping = shared.clone();
        let now = i64::try_from(now().unix.as_secs()).unwrap_or(i64::MAX);
        match tokio::task::spawn_blocking(move || sweeping.sweep(now)).await {
            Ok(report) if report != SweepReport::default() => {
                tracing::info!(?report, "housekeeping");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "housekeeping failed"),
        }
    }
}

impl Shared {
    fn sweep(&self, now: i64) -> SweepReport {
        let housekeeping = &self.options.housekeeping;
        let mut report = SweepReport::default();
        match self.store.remove_expired(now) {
            Ok(count) => report.expired_keys = count,
            Err(error) => tracing::warn!(%error, "sweep of expired keys failed"),
        }
        if let Some(age) = housekeeping.unsigned_key_age {
            let before = now.saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
            // A key is in use while its shard caches it or holds its sessions.
            let in_use = |id: i64| self.endpoint.of(id).has_key(id);
            match self.store.remove_unsigned(before, &in_use) {
                Ok(count) => report.unsigned_keys = count,
                Err(error) => tracing::warn!(%error, "sweep of unsigned keys failed"),
            }
        }
        if let Some(files) = &housekeeping.files {
            match files.sweep(now) {
                Ok(count) => report.uploads = count,
                Err(error) => tracing::warn!(%error, "sweep of uploads failed"),
            }
        }
        report
    }

    /// Runs `work` with the key store on the blocking pool: durable stores block, and a
    /// runtime worker must not. `None` if the work panicked.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn AuthKeyStore) -> T + Send + 'static,
    ) -> Option<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(&*store))
            .await
            .ok()
    }

    fn deliver_update(self: &Arc<Self>, user_id: i64, update: Bytes) {
        self.deliver(user_id, None, update, true);
    }

    /// Delivers to the live sessions of `user_id` (with `device`, of one permanent key only,
    /// or of all keys but it), or asks the push provider when there is none and `push`.
    fn deliver(
        self: &Arc<Self>,
        user_id: i64,
        device: Option<(i64, bool)>,
        update: Bytes,
        push: bool,
    ) {
        let mut woken = Vec::new();
        // Only the shards that hold the user's keys (the index of users by shard).
        let delivered: usize = self
            .endpoint
            .group_by_shard(&[user_id])
            .into_iter()
            .map(|(shard, _)| {
                let mut endpoint = self.endpoint.at(shard);
                match device {
                    None => endpoint.push_update_to(user_id, &update, &mut woken),
                    Some((key, true)) => {
                        endpoint.push_update_to_device(user_id, key, &update, &mut woken)
                    }
                    Some((key, false)) => {
                        endpoint.push_update_to_other_devices(user_id, key, &update, &mut woken)
                    }
                }
            })
            .sum();
        if delivered > 0 {
            // Only the connections that got the update.
            let connections = lock(&self.connections);
            for connection in &woken {
                if let Some(entry) = connections.get(connection) {
                    entry.wake.notify_one();
                }
            }
        } else if push {
            let shared = self.clone();
            tokio::spawn(async move {
                let notification = Notification { user_id, update };
                if let Err(error) = shared.push.push(notification).await {
                    tracing::warn!(%error, user_id, "push notification failed");
                }
            });
        }
    }

    /// `auth.bindTempAuthKey perm_auth_key_id:long nonce:long expires_at:int
    /// encrypted_message:bytes = Bool`, sent over the temporary key: verified
    /// (`handshake::bind::verify_binding`) against the permanent key, the temporary key's
    /// own expiry, and the session and msg_id it came with, then stored. Blocking (store
    /// calls): run on the blocking pool.
    fn bind_temp_auth_key(
        &self,
        context: &crate::endpoint::RequestContext,
        msg_id: i64,
        body: &[u8],
    ) -> RpcOutcome {
        let invalid = || RpcError::new(400, "ENCRYPTED_MESSAGE_INVALID");
        let request = BindTempAuthKey::from_bytes(body)
            .map(BindRequest::from)
            .map_err(|_| RpcError::new(400, "INPUT_REQUEST_INVALID"))?;
        let temp_id = context.session.auth_key_id;
        let store_error = |_| RpcError::new(500, "INTERNAL");
        let temp = self
            .store
            .get(temp_id)
            .map_err(store_error)?
            .ok_or_else(invalid)?;
        let KeyLifetime::Temporary { expires_at } = temp.lifetime else {
            return Err(RpcError::new(400, "TEMP_AUTH_KEY_EMPTY"));
        };
        let perm = self
            .store
            .get(request.perm_auth_key_id)
            .map_err(store_error)?
            .filter(|record| record.lifetime == KeyLifetime::Permanent)
            .ok_or_else(invalid)?;
        let now_secs = now().unix_secs();
        let binding = verify_binding(
            &AuthKey::from_bytes(perm.key),
            &request,
            temp_id,
            context.session.session_id,
            msg_id,
            Some(expires_at),
            now_secs,
        )
        .map_err(|error| {
            let (code, message) = error.rpc_error();
            RpcError::new(code, message)
        })?;
        self.store
            .bind_temp(
                temp_id,
                binding.perm_auth_key_id,
                binding.expires_at,
                now_secs,
            )
            .map_err(|error| match error {
                columba_store::AuthKeyError::AlreadyBound(_) => {
                    RpcError::new(400, "TEMP_AUTH_KEY_ALREADY_BOUND")
                }
                _ => RpcError::new(500, "INTERNAL"),
            })?;
        self.endpoint
            .of(temp_id)
            .bind_key(temp_id, binding.perm_auth_key_id, perm.user_id);
        Ok(Bytes::from_static(&BOOL_TRUE))
    }

    /// Hands a finished (or cancelled) call's answer to its session.
    fn finish_call(&self, session: SessionKey, msg_id: i64, outcome: RpcOutcome) {
        self.answer(session, msg_id, outcome);
        self.finished(1);
    }

    /// Hands an answer to its session and wakes the connection that carries it.
    fn answer(&self, session: SessionKey, msg_id: i64, outcome: RpcOutcome) {
        let connection = {
            let mut endpoint = self.endpoint.of(session.auth_key_id);
            endpoint.answer(session, msg_id, outcome, now());
            endpoint.connection_of(session)
        };
        if let Some(connection) = connection {
            self.wake(connection);
        }
    }

    fn wake(&self, connection: ConnectionId) {
        if let Some(entry) = lock(&self.connections).get(&connection) {
            entry.wake.notify_one();
        }
    }

    /// Acts on the endpoint's events (drained from `events`): requests go to the service,
    /// closes to connections. The answers of calls that were ready at once go to `ready`, for
    /// the caller to hand to the endpoint (a connection's task does it together with its next
    /// transmission). Both vectors are the caller's, so that a connection reuses its own.
    fn dispatch(self: &Arc<Self>, events: &mut Vec<EndpointEvent>, ready: &mut Vec<Ready>) {
        for event in events.drain(..) {
            match event {
                EndpointEvent::Request {
                    context,
                    msg_id,
                    body,
                } if body.get(..4) == Some(&BindTempAuthKey::CONSTRUCTOR_ID.to_le_bytes()[..]) => {
                    // Perfect forward secrecy is the runtime's business: it has the key
                    // store. The binding runs on the blocking pool, and counts as a running
                    // call (a graceful shutdown waits for it).
                    self.running.fetch_add(1, Ordering::AcqRel);
                    let shared = self.clone();
                    tokio::task::spawn_blocking(move || {
                        let outcome = shared.bind_temp_auth_key(&context, msg_id, &body);
                        shared.finish_call(context.session, msg_id, outcome);
                    });
                }
                EndpointEvent::Request {
                    context,
                    msg_id,
                    body,
                } => {
                    self.counters.requests.fetch_add(1, Ordering::Relaxed);
                    self.running.fetch_add(1, Ordering::AcqRel);
                    let shared = self.clone();
                    let mut call: BoxFuture<'static, RpcOutcome> =
                        Box::pin(async move { shared.service.call(context, body).await });
                    // A call that is ready at once (most answers of an in-memory service) is
                    // answered here, without a task of its own and the wake-ups that costs.
                    // Polling with a no-op waker is sound: the task below polls it again with
                    // its own waker, and a future wakes only the waker of its latest poll.
                    if let Poll::Ready(outcome) =
                        call.as_mut().poll(&mut Context::from_waker(Waker::noop()))
                    {
                        ready.push(Ready {
                            session: context.session,
                            msg_id,
                            outcome,
                        });
                        continue;
                    }
                    let shared = self.clone();
                    // Registered before it can finish, under the same lock it takes to
                    // unregister itself.
                    let mut calls = lock(&self.calls);
                    let task = tokio::spawn(async move {
                        let outcome = call.await;
                        lock(&shared.calls).remove(&(context.session, msg_id));
                        shared.finish_call(context.session, msg_id, outcome);
                    });
                    calls.insert((context.session, msg_id), task.abort_handle());
                }
                EndpointEvent::Close { connection, error } => {
                    if let Some(entry) = lock(&self.connections).get_mut(&connection) {
                        entry.close = Some(error);
                        entry.closing.store(true, Ordering::Release);
                        entry.wake.notify_one();
                    }
                }
                EndpointEvent::Cancelled { session, msg_id } => {
                    // The client dropped the answer: stop the work, and release the
                    // request's place (its answer is discarded by the session).
                    let call = lock(&self.calls).remove(&(session, msg_id));
                    if let Some(call) = call {
                        call.abort();
                        self.finish_call(session, msg_id, Err(RpcError::new(400, "CANCELLED")));
                    }
                }
                EndpointEvent::DestroyKey { session } => {
                    let shared = self.clone();
                    tokio::spawn(async move {
                        let id = session.auth_key_id;
                        let removed = shared.blocking(move |store| store.remove(id)).await;
                        let destroyed = matches!(removed, Some(Ok(true)));
                        if destroyed {
                            tracing::info!(auth_key_id = id, "auth key destroyed by its owner");
                        }
                        let (mut events, connection) = {
                            let mut endpoint = shared.endpoint.of(id);
                            endpoint.key_destroyed(session, destroyed);
                            let events: Vec<_> =
                                std::iter::from_fn(|| endpoint.poll_event()).collect();
                            (events, endpoint.connection_of(session))
                        };
                        let mut ready = Vec::new();
                        shared.dispatch(&mut events, &mut ready);
                        shared.finish_ready(ready);
                        if let Some(connection) = connection {
                            shared.wake(connection);
                        }
                    });
                }
            }
        }
    }

    /// Hands answers that were ready at once to their sessions (one by one, waking their
    /// connections).
    fn finish_ready(&self, ready: Vec<Ready>) {
        for answer in ready {
            self.finish_call(answer.session, answer.msg_id, answer.outcome);
        }
    }

    /// `count` calls are over.
    fn finished(&self, count: usize) {
        if count > 0 && self.running.fetch_sub(count, Ordering::AcqRel) == count {
            self.idle.notify_waiters();
        }
    }
}

/// Runs the endpoint's timers: asleep until the earliest deadline of any shard (woken sooner
/// when one moves earlier), then only the shards with timers due are visited.
async fn timer_loop(shared: Arc<Shared>) {
    loop {
        shared.endpoint.wait_for_timers().await;
        let now = now();
        for index in 0..shared.endpoint.len() {
            let (mut events, wake) = {
                let mut endpoint = shared.endpoint.at(index);
                if endpoint.poll_timeout().is_none_or(|at| at > now.monotonic) {
                    continue;
                }
                let wake = endpoint.handle_timeout(now);
                let events = std::iter::from_fn(|| endpoint.poll_event()).collect::<Vec<_>>();
                (events, wake)
            };
            let mut ready = Vec::new();
            shared.dispatch(&mut events, &mut ready);
            shared.finish_ready(ready);
            for connection in wake {
                shared.wake(connection);
            }
        }
    }
}

/// Admits a connection under the limits, or refuses it with -429.
async fn accept_connection(shared: Arc<Shared>, accepted: Accepted) {
    let ip = accepted.peer.map(|peer| peer.ip());
    let over_total = shared.counters.connections.fetch_add(1, Ordering::AcqRel)
        >= shared.options.max_connections;
    let over_ip = ip.is_some_and(|ip| {
        let mut per_ip = lock(&shared.per_ip);
        let count = per_ip.entry(ip).or_insert(0);
        *count += 1;
        *count > shared.options.max_connections_per_ip
    });
    if over_total || over_ip {
        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
        refuse(&shared, accepted.stream).await;
    } else {
        let id = ConnectionId(shared.next_connection.fetch_add(1, Ordering::Relaxed));
        let wake = Arc::new(Notify::new());
        let closing = Arc::new(AtomicBool::new(false));
        lock(&shared.connections).insert(
            id,
            Connection {
                peer: accepted.peer,
                wake: wake.clone(),
                closing: closing.clone(),
                close: None,
            },
        );
        let mut driver = Driver::new(shared.clone(), id, accepted.stream, wake, closing);
        if let Err(error) = driver.run().await {
            tracing::debug!(%error, connection = id.0, "connection ended");
        }
        // Answers ready but never handed over (the connection broke first) go to their
        // sessions all the same: they are sent on the sessions' next connection (a resent
        // request finds its answer), and their calls end, so that a graceful shutdown does
        // not wait for them.
        shared.finish_ready(std::mem::take(&mut driver.ready));
        driver.linger().await;
        lock(&shared.connections).remove(&id);
        // Only the shards of the keys it carried can know the connection.
        for &shard in &driver.shards {
            shared.endpoint.at(shard).connection_closed(id);
        }
    }
    shared.counters.connections.fetch_sub(1, Ordering::AcqRel);
    if let Some(ip) = ip {
        let mut per_ip = lock(&shared.per_ip);
        if let Some(count) = per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

/// Sends -429 in the client's framing (which needs its first bytes) and closes.
async fn refuse(shared: &Shared, mut stream: Box<dyn ByteStream>) {
    let options = &shared.options;
    let mut connection = ServerConnection::new(
        options.transport.clone(),
        options.handshake.clone(),
        &mut rand::rng(),
    );
    connection.refuse(ERROR_FLOOD);
    let _ = tokio::time::timeout(options.refuse_wait, async {
        while !connection.is_closed() {
            match stream.read_buf(connection.input_buffer()).await {
                Ok(0) | Err(_) => return,
                Ok(_) => connection.handle_input(now(), &mut rand::rng()),
            }
        }
        let _ = stream.write_all(connection.outgoing()).await;
    })
    .await;
    let _ = stream.shutdown().await;
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum ConnectionEnd {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Connection(#[from] CloseReason),
    #[error("{0}")]
    Closed(&'static str),
}

/// The answer of a call that was ready as soon as it was made.
struct Ready {
    session: SessionKey,
    msg_id: i64,
    outcome: RpcOutcome,
}

/// Room left after a message for the padding `seal` appends (12 to 27 bytes with
/// [`columba_mtproto::message::Padding::Minimal`]).
const SEAL_ROOM: usize = 32;

/// Bytes reserved before a message is written (headroom, body, padding of a small one).
const SCRATCH_RESERVE: usize = 512;

/// Loads of one frame's key that a change to the endpoint may void ([`crate::Endpoint::insert_key`]
/// asks for a new load then); past this the connection closes and its client retries.
const MAX_KEY_LOADS: usize = 8;

/// One connection's task: drives a [`ServerConnection`] over its stream, and the endpoint
/// for its sessions.
struct Driver {
    shared: Arc<Shared>,
    id: ConnectionId,
    stream: Box<dyn ByteStream>,
    wake: Arc<Notify>,
    closing: Arc<AtomicBool>,
    connection: ServerConnection,
    scratch: BytesMut,
    /// Answers ready at once, handed to the endpoint with the next transmission.
    ready: Vec<Ready>,
    /// The endpoint's events of the frame being handled (kept for its capacity).
    events: Vec<EndpointEvent>,
    /// Messages taken from the endpoint, waiting to be sealed.
    outgoing: Vec<(Arc<AuthKey>, EncryptedHeader, BytesMut)>,
    /// The endpoint shards of the keys this connection has carried: where its sessions, and
    /// so its messages to send, can be (nearly always one).
    shards: Vec<usize>,
}

impl Driver {
    fn new(
        shared: Arc<Shared>,
        id: ConnectionId,
        stream: Box<dyn ByteStream>,
        wake: Arc<Notify>,
        closing: Arc<AtomicBool>,
    ) -> Self {
        let connection = ServerConnection::new(
            shared.options.transport.clone(),
            shared.options.handshake.clone(),
            &mut rand::rng(),
        );
        Self {
            shared,
            id,
            stream,
            wake,
            closing,
            connection,
            scratch: BytesMut::with_capacity(4096),
            ready: Vec::new(),
            events: Vec::new(),
            outgoing: Vec::new(),
            shards: Vec::new(),
        }
    }

    /// The moment the connection is closed for silence: the idle timeout after the last
    /// input, and until a key or an encrypted message, the handshake deadline.
    fn deadline(&self, started: Instant, last_input: Instant) -> Instant {
        let idle = last_input + self.shared.options.idle_timeout;
        if self.connection.is_established() {
            idle
        } else {
            idle.min(started + self.shared.options.handshake_timeout)
        }
    }

    async fn run(&mut self) -> Result<(), ConnectionEnd> {
        let started = Instant::now();
        let mut last_input = started;
        let mut stopping = self.shared.stopping.subscribe();
        let mut reading = !*stopping.borrow();
        // One timer for the connection's life, moved only when it fires: input moves the
        // deadline later (never earlier), so a timer that fires early is set again, and
        // frames cost no timer updates.
        let silence = tokio::time::sleep_until(self.deadline(started, last_input).into());
        tokio::pin!(silence);
        // The wake-up and shutdown futures live across iterations too: made anew on every
        // turn, each would register with (and leave) its notifier's waiter list, a lock
        // each way, for every frame.
        let wake = self.wake.clone();
        let woken = wake.notified();
        tokio::pin!(woken);
        let stop = stopping.changed();
        tokio::pin!(stop);
        loop {
            // The clocks are read once per turn: what comes in and what goes out in it share
            // one time.
            let now = tokio::select! {
                read = self.stream.read_buf(self.connection.input_buffer()), if reading => {
                    if read? == 0 {
                        return Err(ConnectionEnd::Closed("peer closed"));
                    }
                    let now = now();
                    last_input = now.monotonic;
                    self.connection.handle_input(now, &mut rand::rng());
                    self.handle_events(now).await?;
                    now
                }
                () = &mut woken => {
                    woken.set(wake.notified());
                    now()
                }
                _ = &mut stop, if reading => {
                    reading = false;
                    now()
                }
                () = &mut silence => {
                    let deadline = self.deadline(started, last_input);
                    if Instant::now() >= deadline {
                        return Err(ConnectionEnd::Closed(if self.connection.is_established() {
                            "idle"
                        } else {
                            "no key in time"
                        }));
                    }
                    silence.as_mut().reset(deadline.into());
                    now()
                }
            };
            self.flush(now).await?;
            if self.closing.load(Ordering::Acquire) {
                let close = lock(&self.shared.connections)
                    .get(&self.id)
                    .and_then(|entry| entry.close);
                if let Some(error) = close {
                    self.connection.close(error);
                    self.write_output().await?;
                    return Err(ConnectionEnd::Closed("closed by the endpoint"));
                }
            }
        }
    }

    /// Closes the stream so that what was written last (a transport error, a final answer)
    /// reaches the client: half-close, then read and discard what the client still sends for
    /// a moment, since closing with unread input would reset the connection and could
    /// destroy the data in flight.
    async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        let _ = tokio::time::timeout(self.shared.options.close_linger, async {
            let mut sink = [0u8; 4096];
            let mut drained = 0usize;
            while drained < 256 * 1024 {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => drained += read,
                }
            }
        })
        .await;
    }

    /// Answers the connection's events: what needs the key store runs on the blocking pool,
    /// never under a lock; opened messages go to the endpoint.
    async fn handle_events(&mut self, now: Now) -> Result<(), ConnectionEnd> {
        while let Some(event) = self.connection.poll_event() {
            match event {
                ConnectionEvent::CheckAuthKeyId(id) => {
                    // A store that cannot answer counts the id as taken: the handshake then
                    // asks for another key rather than risk a collision.
                    let in_use = self
                        .shared
                        .blocking(move |store| store.contains(id).unwrap_or(true))
                        .await
                        .unwrap_or(true);
                    self.connection
                        .confirm_auth_key_id(in_use, super::now(), &mut rand::rng());
                }
                ConnectionEvent::KeyCreated {
                    record,
                    server_salt,
                } => {
                    let id = record.auth_key_id;
                    let stored = self
                        .shared
                        .blocking(move |store| store.insert(*record))
                        .await;
                    let stored = match stored {
                        Some(Ok(())) => true,
                        Some(Err(error)) => {
                            tracing::warn!(%error, "new auth key not stored");
                            false
                        }
                        None => false,
                    };
                    if stored {
                        self.shared
                            .endpoint
                            .of(id)
                            .note_first_salt(id, server_salt, super::now());
                    }
                    self.connection
                        .key_stored(stored, super::now(), &mut rand::rng());
                }
                ConnectionEvent::KeyNeeded(id) => {
                    let key = self.key(id, now).await?;
                    if key.is_none() {
                        self.shared
                            .counters
                            .rejected_frames
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    self.connection
                        .provide_key(key.as_deref(), now, &mut rand::rng());
                }
                ConnectionEvent::Message(message) => self.handle_message(&message, now),
                ConnectionEvent::Closed(reason) => {
                    if reason == CloseReason::Rejected {
                        self.shared
                            .counters
                            .rejected_frames
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    self.write_output().await?;
                    return Err(reason.into());
                }
            }
        }
        Ok(())
    }

    /// The key of a frame: from the endpoint's cache, or read from the store on the blocking
    /// pool (no lock held) and cached. `None` for a key the client must hear -404 for; a
    /// store that fails closes the connection without it (the key may well exist).
    async fn key(&mut self, id: i64, now: Now) -> Result<Option<Arc<AuthKey>>, ConnectionEnd> {
        let shard = self.shared.endpoint.index(id);
        let mut lookup = self.shared.endpoint.at(shard).lookup_key(id, now);
        for _ in 0..MAX_KEY_LOADS {
            let generation = match lookup {
                KeyLookup::Ready(key) => return Ok(Some(key)),
                KeyLookup::Refused => return Ok(None),
                KeyLookup::Missing { generation } => generation,
            };
            let unix = now.unix_secs();
            let loaded = self
                .shared
                .blocking(move |store| load_key(store, id, unix))
                .await;
            let entry = match loaded {
                Some(Ok(Some(entry))) => entry,
                Some(Ok(None)) => return Ok(None),
                Some(Err(error)) => {
                    tracing::warn!(%error, "auth key not loaded");
                    return Err(ConnectionEnd::Closed("key store failed"));
                }
                None => return Err(ConnectionEnd::Closed("key store failed")),
            };
            lookup = self
                .shared
                .endpoint
                .at(shard)
                .insert_key(id, entry, generation, now);
        }
        Err(ConnectionEnd::Closed("key changed while loading"))
    }

    fn handle_message(&mut self, message: &IncomingMessage, now: Now) {
        let shard = self.shared.endpoint.index(message.auth_key_id);
        if !self.shards.contains(&shard) {
            self.shards.push(shard);
        }
        {
            let mut endpoint = self.shared.endpoint.at(shard);
            endpoint.handle_message(
                self.id,
                message.auth_key_id,
                &message.header,
                &message.body,
                now,
                &mut rand::rng(),
            );
            self.events
                .extend(std::iter::from_fn(|| endpoint.poll_event()));
        }
        self.shared.dispatch(&mut self.events, &mut self.ready);
    }

    /// Hands the ready answers to the endpoint and sends what it has for this connection:
    /// one hold of a shard's lock for both (per batch of messages), sealing outside it.
    async fn flush(&mut self, now: Now) -> Result<(), ConnectionEnd> {
        let mut now = now;
        let batch = self.shared.options.transmit_batch.max(1);
        loop {
            let mut ready = std::mem::take(&mut self.ready);
            let waiting = ready.len();
            let mut elsewhere = Vec::new();
            // An answer's session is in a shard this connection carried (the request came
            // here); noted all the same, so that no answer can be left behind.
            for answer in &ready {
                let shard = self.shared.endpoint.index(answer.session.auth_key_id);
                if !self.shards.contains(&shard) {
                    self.shards.push(shard);
                }
            }
            for &shard in &self.shards {
                let mut endpoint = self.shared.endpoint.at(shard);
                ready.retain_mut(|answer| {
                    if self.shared.endpoint.index(answer.session.auth_key_id) != shard {
                        return true;
                    }
                    let outcome = std::mem::replace(&mut answer.outcome, Ok(Bytes::new()));
                    endpoint.answer(answer.session, answer.msg_id, outcome, now);
                    // The session may have moved to another connection meanwhile.
                    match endpoint.connection_of(answer.session) {
                        Some(connection) if connection != self.id => {
                            elsewhere.push(connection);
                        }
                        _ => {}
                    }
                    false
                });
                while self.outgoing.len() < batch {
                    // Room for a small message; a larger one grows the buffer as it is
                    // written. (Reserving much more would allocate for nearly every message:
                    // the split-off messages keep the buffer's earlier part in use.)
                    self.scratch.reserve(SCRATCH_RESERVE);
                    let Some((key, header)) =
                        endpoint.poll_transmit(self.id, now, &mut self.scratch)
                    else {
                        break;
                    };
                    // The message leaves with room for its padding, so that sealing it
                    // needs no allocation (a split-off buffer's capacity is its length).
                    let len = self.scratch.len();
                    self.scratch.resize(len + SEAL_ROOM, 0);
                    let mut message = self.scratch.split();
                    message.truncate(len);
                    self.outgoing.push((key, header, message));
                }
                if self.outgoing.len() >= batch {
                    break;
                }
            }
            let answered = waiting - ready.len();
            // What a full batch left for later shards waits for the next round; the vector
            // goes back either way, keeping its capacity.
            self.ready = ready;
            self.shared.finished(answered);
            for connection in elsewhere {
                self.shared.wake(connection);
            }
            let full = self.outgoing.len() >= batch;
            // Taken and put back, so that the vector keeps its capacity.
            let mut outgoing = std::mem::take(&mut self.outgoing);
            for (key, header, mut message) in outgoing.drain(..) {
                // A message that cannot be sealed or framed is dropped (the session sends
                // it again if the client asks). The thread's generator is taken per message:
                // it must not live across the write's await (the task would not be `Send`).
                self.connection
                    .send_message(&key, &header, &mut message, &mut rand::rng());
                if self.connection.outgoing().len() >= 64 * 1024 {
                    self.write_output().await?;
                }
            }
            self.outgoing = outgoing;
            if !full {
                break;
            }
            // Writes may have waited: the next batch is numbered at the time it is taken.
            now = super::now();
        }
        self.write_output().await
    }

    async fn write_output(&mut self) -> Result<(), ConnectionEnd> {
        let pending = self.connection.outgoing();
        if !pending.is_empty() {
            let len = pending.len();
            let write = self.stream.write_all(pending);
            tokio::pin!(write);
            // Most writes complete at once: the timeout's timer is only set for one that
            // has to wait (polling first with a no-op waker is sound, as the timed poll
            // below registers the real one).
            let first = write.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            match first {
                Poll::Ready(written) => written?,
                Poll::Pending => tokio::time::timeout(self.shared.options.write_timeout, write)
                    .await
                    .map_err(|_| ConnectionEnd::Closed("write timed out"))??,
            }
            self.connection.advance_outgoing(len);
        }
        Ok(())
    }
}
