//! wisp's end-to-end tests: one test binary (it links once), one module per
//! area. Servers are real `wisp serve` processes on ephemeral loopback ports;
//! guests are real, built from `guests/` by `wisp-test-artifacts`.

#![allow(missing_docs, clippy::unwrap_used)]

/// Flags every `wisp serve` of this binary gets besides its test's own:
/// none here (guests run in-process); `tests/process` runs the modules
/// whose code paths differ with `--isolation process`.
pub const SERVE_ARGS: &[&str] = &[];

mod bench;
mod build;
mod calls;
mod console;
mod core;
mod crash;
mod density;
mod embed;
mod events;
mod first_hour;
mod hardening;
mod host_paths;
mod isolation;
mod languages;
mod library;
mod middleware;
mod oci;
mod operate;
mod portability;
mod redeploy;
mod reuse;
mod security;
mod serverless;
#[expect(dead_code, reason = "NATS and haproxy are for tests/cluster")]
mod services;
mod spin;
mod state;
mod support;
mod traces;
mod upstream;
mod versions;
mod wasi3;
mod websocket;
mod websocket_bounds;
mod ws_client;
