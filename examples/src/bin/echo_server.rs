//! The Columba echo server: a Telegram-compatible example server.
//!
//! It is not built yet: it needs the session layer and the message and file stores. Until then
//! this program says so and exits with status 2, so that the README's command is honest.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "columba echo-server: not there yet. The wire layer (TL codec, MTProto transports), the \
         crypto, the message envelopes and the key exchange have landed; the server needs the \
         session layer and the message and file stores first."
    );
    ExitCode::from(2)
}
