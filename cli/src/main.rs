//! The `wisp` binary: parses flags and runs the command (see [`commands`]).
//!
//! Everything a host does lives in the `wisp-host` library; this crate adds
//! what only a command line needs: the commands, the admin API client,
//! `wisp up` and its manifest, the templates of `wisp new`, and `wisp bench`.

mod bench;
mod client;
mod commands;
mod download;
mod oci;
mod output;
mod source;
mod telemetry;
mod template;
mod up;

fn main() -> std::process::ExitCode {
    commands::main()
}
