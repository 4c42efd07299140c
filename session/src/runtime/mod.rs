//! The tokio runtime (feature `tokio`): the server's accept loop and connection tasks, and a
//! client, both driving the sans-IO sessions over the application's byte streams.

mod bus;
pub mod client;
pub mod io;
pub mod server;
mod shards;

pub use bus::InProcessUpdateBus;
pub use client::{Client, ClientError, ClientOptions, SavedKey};
pub use io::{
    Accepted, ByteStream, Connector, Listener, MemoryConnector, MemoryListener, TcpAcceptor,
    TcpConnector, memory_transport,
};
pub use server::{Housekeeping, Server, ServerHandle, ServerOptions, ServerStats, SweepReport};

/// Seals the message [`crate::ServerSession::poll_transmit`] or
/// [`crate::ClientSession::poll_transmit`] wrote into `buf`, with minimal padding and a fresh
/// random generator; `false` if it could not be sealed (nothing to send then).
fn seal_message(
    buf: &mut bytes::BytesMut,
    key: &columba_mtproto::crypto::AuthKey,
    direction: columba_mtproto::crypto::Direction,
    header: &columba_mtproto::message::EncryptedHeader,
) -> bool {
    columba_mtproto::message::seal(
        buf,
        key,
        direction,
        header,
        columba_mtproto::message::Padding::Minimal,
        &mut rand::rng(),
    )
    .is_ok()
}

/// The clocks now: the runtime is where Columba reads them (the sessions take time in).
fn now() -> columba_mtproto::time::Now {
    columba_mtproto::time::Now {
        monotonic: std::time::Instant::now(),
        unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    }
}
