//! Core modules that carry their component type become components at
//! deploy, as Spin turns them at load. `wasm32-wasip1` builds made with
//! wit-bindgen (Spin SDK 2 to 5 apps, among others) are such modules: a
//! `component-type` custom section says which interfaces they import and
//! export. wit-component encodes the module with the WASI preview1 adapter
//! of the wasmtime wisp runs (the reactor one: a handler, not a command),
//! so the function is then a component like any other. Every other binary
//! passes through unchanged — a core module with `_start` is a CGI command
//! even with a component type.

use crate::error::DeployError;
use bytes::Bytes;
use wasmparser::{Parser, Payload};
use wisp_spec::inspect::InspectError;

/// The custom section wit-bindgen writes a module's component type into
/// (the full name goes on: `component-type:wit-bindgen:…`).
const COMPONENT_TYPE_SECTION: &str = "component-type";

/// `wasm` as a component when it is a core module that carries its
/// component type and is no CGI command; else `wasm` itself. Runs
/// wit-component, so call it off the async threads.
pub fn componentize(wasm: Bytes) -> Result<Bytes, DeployError> {
    if !carries_component_type(&wasm) {
        return Ok(wasm);
    }
    let adapter = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
    let encoded = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&wasm)
        .and_then(|encoder| encoder.adapter("wasi_snapshot_preview1", adapter))
        .and_then(|mut encoder| encoder.encode())
        .map_err(|error| {
            InspectError::Malformed(format!(
                "the core module carries a component type (a wasm32-wasip1 build made with wit-bindgen), but it cannot be made a component: {error:#}"
            ))
        })?;
    Ok(Bytes::from(encoded))
}

/// True for a core module with a component-type section and no `_start`.
fn carries_component_type(wasm: &[u8]) -> bool {
    if !Parser::is_core_wasm(wasm) {
        return false;
    }
    let mut typed = false;
    let mut command = false;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(Payload::CustomSection(section))
                if section.name().starts_with(COMPONENT_TYPE_SECTION) =>
            {
                typed = true;
            }
            Ok(Payload::ExportSection(exports)) => {
                command = exports
                    .into_iter()
                    .any(|export| export.is_ok_and(|export| export.name == "_start"));
            }
            Ok(_) => {}
            // Malformed: left for the inspection that follows to report.
            Err(_) => return false,
        }
    }
    typed && !command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_typed_core_modules_without_start_are_encoded() {
        let cgi = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        let out = componentize(Bytes::from(cgi.clone())).unwrap();
        assert_eq!(out, cgi, "a CGI module passes unchanged");
        let mut typed_cgi = cgi.clone();
        typed_cgi.extend(custom_section("component-type:x", b"not read"));
        assert!(!carries_component_type(&typed_cgi), "`_start` keeps it CGI");
        let mut typed = wat::parse_str("(module)").unwrap();
        typed.extend(custom_section("component-type:x", b"garbage"));
        assert!(carries_component_type(&typed));
        let error = componentize(Bytes::from(typed)).unwrap_err().to_string();
        assert!(error.contains("cannot be made a component"), "{error}");
    }

    /// A custom section's bytes: id 0, size, name, payload.
    fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        leb(&mut body, name.len());
        body.extend(name.as_bytes());
        body.extend(payload);
        let mut section = vec![0];
        leb(&mut section, body.len());
        section.extend(body);
        section
    }

    fn leb(out: &mut Vec<u8>, mut value: usize) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
}
