//! # wisp-host
//!
//! wisp is a WebAssembly function host: it compiles uploaded `.wasm`
//! functions ahead of time and serves every HTTP request from a fresh,
//! isolated sandbox. This crate is all of it — the `wisp` binary is a thin
//! CLI over it — and a program can embed the host directly:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use wisp_host::{Host, HostConfig, RawSettings, DeployOptions};
//! let (host, _problems) = Host::start(HostConfig::default()).await?;
//! let wasm = std::fs::read("hello.wasm")?;
//! let settings = RawSettings { route: Some("/hello".into()), ..Default::default() };
//! host.deploy("hello", wasm.into(), settings, DeployOptions::default()).await?;
//! let request = http::Request::get("/hello").body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! let response = host.handle(request).await;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```
//!
//! ## Map of the crate
//!
//! | module | owns |
//! | --- | --- |
//! | [`host`] | [`Host`]: configuration, start-up, the request path |
//! | [`deploy`] | the deploy path: checks, compile, store, publish |
//! | [`engine`] | the one wasmtime engine: pooling, CoW, epochs, fuel |
//! | [`artifact`] | the content-addressed artifact store on disk |
//! | [`record`] | durable records of what is deployed |
//! | [`function`] | a deployed version: compiled, pre-linked code |
//! | [`registry`] | name → versions → traffic, read lock-free |
//! | [`traffic`] | traffic splits: parsing and checking, pure |
//! | [`route`] | path-prefix routing, pure |
//! | [`inspect`] | first look at an upload: ABI and entry point |
//! | [`abi`] | the guest ABIs: `wasi:http` and CGI |
//! | [`sandbox`] | what each per-request sandbox gets; the memory limiter |
//! | [`limits`] | limits and their defaults |
//! | [`settings`] | deploy settings, raw and validated |
//! | [`manifest`] | `wisp.toml`: an app's functions in one file |
//! | [`units`] | human units for sizes and durations |
//! | [`body`] | request/response bodies and their caps |
//! | [`error`] | errors and their HTTP mapping |
//! | [`metrics`] | every counter, as Prometheus text |
//! | [`meter`] | usage metering: wall, CPU, fuel, memory-time |
//! | [`logs`] | guest logs in a bounded buffer per function |
//! | [`trace`] | request ids and per-request timings |
//! | [`server`] | the public HTTP front door |
//! | [`admin`] | the admin API |
//! | [`client`] | the admin API client the CLI uses |
//! | [`up`] | `wisp up`: make a host match a manifest |
//! | [`template`] | `wisp new`: function templates in four languages |
//! | [`bench`] | `wisp bench`: cold starts and throughput of a module |
//! | [`cli`] | the `wisp` commands |

pub mod abi;
pub mod admin;
pub mod artifact;
pub mod bench;
pub mod body;
pub mod cli;
pub mod client;
pub mod deploy;
pub mod engine;
pub mod error;
pub mod function;
pub mod host;
pub mod inspect;
pub mod limits;
pub mod logs;
pub mod manifest;
pub mod meter;
pub mod metrics;
pub mod record;
pub mod registry;
pub mod route;
pub mod sandbox;
pub mod server;
pub mod settings;
pub mod template;
pub mod trace;
pub mod traffic;
pub mod units;
pub mod up;

pub use deploy::{DeployOptions, DeployReport, FunctionInfo};
pub use error::{DeployError, InvokeError};
pub use host::{Host, HostConfig};
pub use settings::{RawSettings, Settings};
