//! The Columba echo server: a Telegram-compatible example server.
//!
//! It is not built yet: it needs the message and file stores. Until then
//! this program says so and exits with status 2, so that the README's command is honest.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "columba echo-server: not there yet. The wire layer (TL codec, MTProto transports), the \
         crypto, the message envelopes, the key exchange and the session layer with its tokio \
         runtime have landed; the server needs the message and file stores first."
    );
    ExitCode::from(2)
}
