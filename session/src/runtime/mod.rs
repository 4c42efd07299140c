//! The tokio runtime (feature `tokio`): the server's accept loop and connection tasks, and a
//! client, both driving the sans-IO sessions over the application's byte streams.

mod bus;
pub mod client;
pub mod io;
pub mod server;

pub use bus::InProcessUpdateBus;
pub use client::{Client, ClientError, ClientOptions, SavedKey};
pub use io::{
    Accepted, ByteStream, Connector, Listener, MemoryConnector, MemoryListener, TcpAcceptor,
    TcpConnector, memory_transport,
};
pub use server::{Server, ServerOptions, ServerStats};
