//! The guest ABIs a function can use, one module each.
//!
//! * [`http`]: `wasi:http` components — `wasi:http/proxy` (WASI 0.2) and,
//!   with the call in [`service`], `wasi:http/service` (WASI 0.3);
//! * [`cgi`]: WASI preview1 core modules run CGI-style (RFC 3875).
//!
//! The pure parts of CGI (building meta-variables here, parsing the response
//! in `wisp_spec::cgi_response`) live apart from the part that touches
//! wasmtime, so they are tested and fuzzed without an engine. [`output`] is
//! where guests' log output goes; [`cgi_stdout`] carries a CGI guest's
//! stdout, which is its response.

pub(crate) mod cgi;
pub(crate) mod cgi_env;
pub(crate) mod cgi_stdout;
pub(crate) mod http;
pub(crate) mod output;
pub(crate) mod service;
