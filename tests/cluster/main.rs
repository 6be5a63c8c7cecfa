//! The cluster tests, in a test binary of their own: each starts several
//! hosts that compile every deploy, and one times how fast a deploy reaches
//! every host, which the other tests in `tests/all` would skew if they ran
//! beside it. Cargo runs test binaries one after another.

#![allow(missing_docs, clippy::unwrap_used)]

/// Flags every `wisp serve` of this binary gets besides its test's own.
pub const SERVE_ARGS: &[&str] = &[];

#[expect(
    dead_code,
    reason = "the cluster tests use a part of the shared support"
)]
#[path = "../all/support.rs"]
mod support;

#[expect(dead_code, reason = "the registry is for tests/all/oci.rs")]
#[path = "../all/services.rs"]
mod services;

#[expect(dead_code, reason = "the cluster tests use a part of the client")]
#[path = "../all/ws_client.rs"]
mod ws_client;

mod cluster;
