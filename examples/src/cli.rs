//! What the example binaries share: arguments or a usage message, then a tokio runtime that
//! runs the program and turns its outcome into an exit status.

use std::future::Future;
use std::process::ExitCode;

/// Parsed arguments, or the message for a usage error (exit status 2).
pub fn arguments<T>(parsed: Result<T, String>) -> Result<T, ExitCode> {
    parsed.map_err(|message| {
        eprintln!("{message}");
        ExitCode::from(2)
    })
}

/// Runs `program` on a multi-threaded tokio runtime: success, or the error printed after
/// `name` (exit status 1).
pub fn run(name: &str, program: impl Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(program) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{name}: {message}");
            ExitCode::FAILURE
        }
    }
}
