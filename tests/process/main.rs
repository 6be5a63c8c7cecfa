//! The end-to-end tests whose code paths differ between the two isolation
//! modes, run again with every `wisp serve` started with `--isolation
//! process`: the same test code as `tests/all` (included by path), so
//! each contract — the three ABIs, bodies and streaming, every limit, the
//! hostile guests, key-value, config and secrets, chained, cron and async
//! runs, outbound calls, logs, usage and metrics, WASI 0.3, WebSocket event
//! batches — is checked
//! against guests running in jailed worker processes. What the two modes
//! share (routing, deploys, records, the admin API, the console, the
//! cluster, OCI, the CLI) is the front process's alone and is not run
//! twice. `worker.rs` holds what only process mode has: the escape drill,
//! the blast radius, the worker pool.

// Helpers of the included modules that only `tests/all` uses stay unused.
#![allow(missing_docs, clippy::unwrap_used, dead_code)]

/// Flags every `wisp serve` of this binary gets besides its test's own.
pub const SERVE_ARGS: &[&str] = &["--isolation", "process"];

#[path = "../all/core.rs"]
mod core;
#[path = "../all/events.rs"]
mod events;
#[path = "../all/hardening.rs"]
mod hardening;
#[path = "../all/isolation.rs"]
mod isolation;
#[path = "../all/operate.rs"]
mod operate;
#[path = "../all/spin.rs"]
mod spin;
#[path = "../all/state.rs"]
mod state;
#[path = "../all/support.rs"]
mod support;
#[path = "../all/upstream.rs"]
mod upstream;
#[path = "../all/wasi3.rs"]
mod wasi3;
#[path = "../all/websocket.rs"]
mod websocket;
mod worker;
#[path = "../all/ws_client.rs"]
mod ws_client;
