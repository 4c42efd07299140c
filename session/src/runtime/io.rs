//! Where bytes travel: the application's transport (`Listener` for servers, `Connector` for
//! clients), with TCP and in-memory implementations.
//!
//! Not to be confused with MTProto's "transports" (abridged, intermediate, ...), which are
//! framings (`columba_mtproto::transport`) applied on top of whatever stream these give.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};

use crate::plugins::BoxFuture;

/// A bidirectional byte stream.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

/// An accepted connection: the stream, and the peer's address when the transport has one
/// (used for the per-address connection limit).
pub struct Accepted {
    /// The stream.
    pub stream: Box<dyn ByteStream>,
    /// The peer's address.
    pub peer: Option<SocketAddr>,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Where a server's connections come from.
pub trait Listener: Send + Sync + 'static {
    /// Waits for the next connection. An error is logged by the accept loop, which goes on
    /// (a transient failure such as running out of file descriptors must not stop a server);
    /// [`io::ErrorKind::NotConnected`] means the listener is closed for good and ends it.
    fn accept(&self) -> BoxFuture<'_, io::Result<Accepted>>;
}

/// How a client reaches its server.
pub trait Connector: Send + Sync + 'static {
    /// Opens a new stream to the server. Called again for every reconnection.
    fn connect(&self) -> BoxFuture<'_, io::Result<Box<dyn ByteStream>>>;
}

/// A TCP listener.
#[derive(Debug)]
pub struct TcpAcceptor {
    listener: TcpListener,
}

impl TcpAcceptor {
    /// Binds `addr` (use port 0 for any free port).
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Listener for TcpAcceptor {
    fn accept(&self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = self.listener.accept().await?;
            // Small frames (acks, pings) must not wait for Nagle's algorithm.
            stream.set_nodelay(true)?;
            Ok(Accepted {
                stream: Box::new(stream),
                peer: Some(peer),
            })
        })
    }
}

/// Connects over TCP to one address.
#[derive(Debug, Clone, Copy)]
pub struct TcpConnector {
    addr: SocketAddr,
}

impl TcpConnector {
    /// A connector to `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr }
    }
}

impl Connector for TcpConnector {
    fn connect(&self) -> BoxFuture<'_, io::Result<Box<dyn ByteStream>>> {
        Box::pin(async move {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn ByteStream>)
        })
    }
}

/// An in-memory listener: connections made with its [`MemoryConnector`] arrive here.
#[derive(Debug)]
pub struct MemoryListener {
    incoming: Mutex<mpsc::Receiver<DuplexStream>>,
}

/// Connects to a [`MemoryListener`].
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    outgoing: mpsc::Sender<DuplexStream>,
    buffer: usize,
}

/// A connected in-memory listener and connector; each connection is a `tokio::io::duplex`
/// pipe with `buffer` bytes of room in each direction.
pub fn memory_transport(buffer: usize) -> (MemoryListener, MemoryConnector) {
    let (outgoing, incoming) = mpsc::channel(64);
    (
        MemoryListener {
            incoming: Mutex::new(incoming),
        },
        MemoryConnector {
            outgoing,
            buffer: buffer.max(1),
        },
    )
}

impl Listener for MemoryListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let stream = self.incoming.lock().await.recv().await.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotConnected, "every connector is gone")
            })?;
            Ok(Accepted {
                stream: Box::new(stream),
                peer: None,
            })
        })
    }
}

impl Connector for MemoryConnector {
    fn connect(&self) -> BoxFuture<'_, io::Result<Box<dyn ByteStream>>> {
        Box::pin(async move {
            let (client, server) = tokio::io::duplex(self.buffer);
            self.outgoing.send(server).await.map_err(|_| {
                io::Error::new(io::ErrorKind::ConnectionRefused, "the listener is gone")
            })?;
            Ok(Box::new(client) as Box<dyn ByteStream>)
        })
    }
}

/// Lets several owners share one connector.
impl<C: Connector + ?Sized> Connector for Arc<C> {
    fn connect(&self) -> BoxFuture<'_, io::Result<Box<dyn ByteStream>>> {
        (**self).connect()
    }
}
