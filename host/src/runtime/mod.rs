//! Running guests: the one wasmtime engine, deployed versions and their
//! compiled code, the per-request sandbox (and the next one, prepared ahead), the guest ABIs, and the platform
//! services (key-value, config) components may import.

pub(crate) mod abi;
pub(crate) mod compiler;
pub(crate) mod engine;
pub(crate) mod function;
pub(crate) mod prepared;
pub(crate) mod sandbox;
pub(crate) mod services;
