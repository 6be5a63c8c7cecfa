//! # wisp-spec
//!
//! The pure half of wisp: parsing and validation that the host, the CLI and
//! the fuzzers share. Nothing here runs a guest, opens a socket or needs an
//! async runtime (no wasmtime, no tokio), so every parser of untrusted input
//! is a plain function over plain data, unit-tested here and fuzzed directly.
//!
//! | module | owns |
//! | --- | --- |
//! | [`settings`] | deploy settings: the one table of them, raw and validated forms |
//! | [`limits`] | limits and their defaults |
//! | [`units`] | human units for sizes and durations |
//! | [`route`] | path-prefix routes and the routing table |
//! | [`traffic`] | traffic splits between versions |
//! | [`name`] | function names |
//! | [`source`] | content hashes of uploaded binaries |
//! | [`inspect`] | first look at an upload: ABI and entry point |
//! | [`cgi_response`] | parsing a CGI guest's response |
//! | [`headers`] | strict parsing of framing headers (`Content-Length`) |
//! | [`api`] | the admin API's request and response bodies |
//! | `manifest` | `wisp.toml` (feature `manifest`) |

pub mod api;
pub mod cgi_response;
pub mod headers;
pub mod inspect;
pub mod limits;
#[cfg(feature = "manifest")]
pub mod manifest;
pub mod name;
pub mod route;
pub mod schedule;
pub mod settings;
pub mod source;
pub mod spin;
pub mod traffic;
pub mod units;
// One source with the SDK, which functions read and write events with.
#[path = "../../sdk/src/websocket_events.rs"]
pub mod websocket_events;
