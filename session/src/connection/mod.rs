//! Connections, sans-IO: what one byte stream carries below the sessions (framing, key
//! exchanges, sealing and opening), one type per role. The runtime and the fuzz targets drive
//! these same types.

mod client;
mod envelope;
mod server;

pub use client::{ClientCloseReason, ClientConnection, ClientConnectionEvent};
pub use server::{CloseReason, ConnectionEvent, IncomingMessage, ServerConnection};

#[cfg(test)]
mod tests;
