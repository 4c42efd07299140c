//! The tokio runtime (feature `tokio`): the server's accept loop and connection tasks, and a
//! client, both driving the sans-IO sessions over the application's byte streams.

mod bus;
pub mod client;
pub mod io;
pub mod server;
mod shards;

pub use bus::InProcessUpdateBus;
pub use client::{BindFailure, Client, ClientError, ClientOptions, LinkError, SavedKey};
pub use io::{
    Accepted, ByteStream, Connector, Listener, MemoryConnector, MemoryListener, TcpAcceptor,
    TcpConnector, memory_transport,
};
pub use server::{Housekeeping, Server, ServerHandle, ServerOptions, ServerStats, SweepReport};

/// The clocks now: the runtime is where Columba reads them (the sessions take time in).
fn now() -> columba_mtproto::time::Now {
    columba_mtproto::time::Now {
        monotonic: std::time::Instant::now(),
        unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    }
}
