//! The host's parsers of untrusted input, compiled on their own for fuzzing.
//!
//! These are the host's own source files, included by path — not copies — so
//! the fuzzers exercise exactly what `wisp-host` runs. They are the pure
//! modules: no wasmtime, no I/O on the request path.
#![allow(dead_code, missing_docs, rustdoc::broken_intra_doc_links)]

#[path = "../../host/src/artifact.rs"]
pub mod artifact;
#[path = "../../host/src/inspect.rs"]
pub mod inspect;
#[path = "../../host/src/limits.rs"]
pub mod limits;
#[path = "../../host/src/manifest.rs"]
pub mod manifest;
#[path = "../../host/src/record.rs"]
pub mod record;
#[path = "../../host/src/route.rs"]
pub mod route;
#[path = "../../host/src/settings.rs"]
pub mod settings;
#[path = "../../host/src/units.rs"]
pub mod units;

#[path = "../../host/src/abi/cgi_response.rs"]
pub mod cgi_response;

/// The CGI parsers, at the path they have in the host.
pub mod abi {
    pub use super::cgi_response;
}
