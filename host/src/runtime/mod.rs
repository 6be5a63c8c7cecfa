//! Running guests: the one wasmtime engine, deployed versions and their
//! compiled code (loaded on demand, least recently used evicted:
//! `code_cache.rs`), the per-request sandbox (and the next one, prepared
//! ahead), the budgets a run takes (concurrency slots: `slots.rs`; buffered
//! request bodies: `buffers.rs`), the guest ABIs, and the platform services
//! (key-value, config) components may import.

pub(crate) mod abi;
pub(crate) mod buffers;
pub(crate) mod code_cache;
pub(crate) mod compiler;
pub(crate) mod engine;
pub(crate) mod function;
pub(crate) mod prepared;
pub(crate) mod sandbox;
pub(crate) mod services;
pub(crate) mod slots;
