//! The Columba echo server: a Telegram-compatible example server.
//!
//! It is not built yet: it needs the handshake, session and store layers. Until then
//! this program says so and exits with status 2, so that the README's command is honest.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "columba echo-server: not there yet. The wire layer (TL codec, MTProto transports), the \
         crypto and the message envelopes have landed; the server needs the handshakes, the \
         session layer and the stores first."
    );
    ExitCode::from(2)
}
