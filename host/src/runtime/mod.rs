//! Running guests: the one wasmtime engine, deployed versions and their
//! compiled code, the per-request sandbox, and the guest ABIs.

pub(crate) mod abi;
pub(crate) mod compiler;
pub(crate) mod engine;
pub(crate) mod function;
pub(crate) mod sandbox;
