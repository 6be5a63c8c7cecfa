//! The blast-radius test, in a test binary of its own: it hammers a host
//! with hostile guests on every core, which would skew the timing, CPU and
//! memory thresholds of the tests in `tests/all` if it ran beside them.
//! Cargo runs test binaries one after another, so nothing overlaps it.

#![allow(missing_docs, clippy::unwrap_used)]

/// Flags every `wisp serve` of this binary gets besides its test's own.
pub const SERVE_ARGS: &[&str] = &[];

#[expect(dead_code, reason = "the blast test uses a part of the shared support")]
#[path = "../all/support.rs"]
mod support;

mod radius;
