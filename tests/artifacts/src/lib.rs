//! Paths of the guests in `guests/`, built by this crate's build script.
//!
//! Tests and benchmarks name a guest by constant (`HELLO_COMPONENT`) instead of
//! a path. Rust guests are always built; a guest whose toolchain may be absent
//! (C, JavaScript, Python) is a `Result` holding the reason it was not built.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
