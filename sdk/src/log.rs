//! Logging from a function: lines on stderr, which wisp keeps per function
//! with the version and request id (`wisp logs NAME`).

use std::fmt::Display;
use std::io::Write;

fn line(level: &str, message: impl Display) {
    // A failed write to stderr has nowhere better to be reported.
    let _ = writeln!(std::io::stderr().lock(), "{level} {message}");
}

/// Logs at info level.
///
/// ```no_run
/// wisp_sdk::log::info(format_args!("served item {}", 7));
/// ```
pub fn info(message: impl Display) {
    line("INFO", message);
}

/// Logs at warning level.
pub fn warn(message: impl Display) {
    line("WARN", message);
}

/// Logs at error level.
pub fn error(message: impl Display) {
    line("ERROR", message);
}
