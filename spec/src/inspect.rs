//! First look at an upload, before any compile: is it WebAssembly, which ABI,
//! and does it export the entry point that ABI calls?
//!
//! A component must export `wasi:http/incoming-handler` (any 0.2.x: the
//! `wasi:http/proxy` world) or `wasi:http/handler` (any 0.3.x: the
//! `wasi:http/service` world); a core module must export a `_start`
//! function (a WASI command, run CGI-style).
//! This only reads sections with `wasmparser`; full validation and the
//! import check happen when the engine compiles and pre-links it. It also
//! counts what instantiating the binary will need from the instance pool
//! ([`Resources`]), so a binary the pool cannot hold is refused before a
//! costly compile.

use serde::{Deserialize, Serialize};
use wasmparser::{ComponentExternalKind, ExternalKind, Parser, Payload};

/// The interface a WASI 0.2 `wasi:http` component exports (versions 0.2.x).
pub const HTTP_HANDLER_EXPORT: &str = "wasi:http/incoming-handler@0.2";

/// The interface a WASI 0.3 `wasi:http` component exports (versions 0.3.x).
pub const HTTP_SERVICE_EXPORT: &str = "wasi:http/handler@0.3";

/// Which guest ABI a binary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Abi {
    /// A `wasi:http/proxy` component (WASI 0.2).
    WasiHttp,
    /// A `wasi:http/service` component (WASI 0.3).
    #[serde(rename = "wasi-http-0.3")]
    WasiHttp3,
    /// A WASI preview1 core module run CGI-style.
    Cgi,
}

impl Abi {
    /// The name shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Abi::WasiHttp => "wasi-http",
            Abi::WasiHttp3 => "wasi-http-0.3",
            Abi::Cgi => "cgi",
        }
    }

    /// True for a component (either WASI version), false for a core module.
    pub fn is_component(self) -> bool {
        self != Abi::Cgi
    }
}

/// Why an upload is not a deployable function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// Not a WebAssembly binary at all.
    #[error(
        "the upload is not WebAssembly: it does not start with the `\\0asm` magic bytes (send the raw `.wasm` file as the body)"
    )]
    NotWasm,
    /// WebAssembly, but malformed.
    #[error("the upload is not valid WebAssembly: {0}")]
    Malformed(String),
    /// A component without the HTTP handler export.
    #[error(
        "the component exports neither `wasi:http/incoming-handler` (0.2) nor `wasi:http/handler` (0.3); wisp runs components that target the `wasi:http/proxy` world (WASI 0.2) or the `wasi:http/service` world (WASI 0.3) (exports found: {0})"
    )]
    NoHttpHandler(String),
    /// A core module without `_start`.
    #[error(
        "the core module does not export a `_start` function; wisp runs core modules as CGI commands (build a binary for `wasm32-wasip1`)"
    )]
    NoStart,
}

/// What instantiating a binary takes from the instance pool, counted from
/// its sections (a module instantiated twice is counted once, so this is a
/// lower bound; instantiating at deploy checks the rest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Core module instantiations.
    pub core_instances: u32,
    /// Linear memories defined, over all core modules.
    pub memories: u32,
    /// Tables defined, over all core modules.
    pub tables: u32,
    /// Most memories one core module defines.
    pub memories_per_module: u32,
    /// Most tables one core module defines.
    pub tables_per_module: u32,
}

/// Classifies `bytes` and checks the entry point of its ABI.
pub fn inspect(bytes: &[u8]) -> Result<Abi, InspectError> {
    inspect_with_resources(bytes).map(|(abi, _)| abi)
}

/// Like [`inspect`], and counts the [`Resources`] the binary will need.
pub fn inspect_with_resources(bytes: &[u8]) -> Result<(Abi, Resources), InspectError> {
    let abi = if Parser::is_component(bytes) {
        Abi::WasiHttp
    } else if Parser::is_core_wasm(bytes) {
        Abi::Cgi
    } else if bytes.starts_with(b"\0asm") {
        return Err(InspectError::Malformed(
            "unsupported binary version or layer".into(),
        ));
    } else {
        return Err(InspectError::NotWasm);
    };
    let mut depth = 0usize;
    let mut exports = Vec::new();
    let mut has_start = false;
    let mut needs = Resources {
        core_instances: u32::from(abi == Abi::Cgi),
        ..Resources::default()
    };
    let malformed = |e: wasmparser::BinaryReaderError| InspectError::Malformed(e.to_string());
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| InspectError::Malformed(e.to_string()))?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth > 0 => depth -= 1,
            Payload::End(_) => break,
            Payload::InstanceSection(section) => {
                for instance in section {
                    if let wasmparser::Instance::Instantiate { .. } = instance.map_err(malformed)? {
                        needs.core_instances += 1;
                    }
                }
            }
            Payload::MemorySection(section) => {
                needs.memories += section.count();
                needs.memories_per_module = needs.memories_per_module.max(section.count());
            }
            Payload::TableSection(section) => {
                needs.tables += section.count();
                needs.tables_per_module = needs.tables_per_module.max(section.count());
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    let export = export.map_err(|e| InspectError::Malformed(e.to_string()))?;
                    if export.kind == ComponentExternalKind::Instance {
                        exports.push(export.name.name.to_owned());
                    }
                }
            }
            Payload::ExportSection(section) if depth == 0 => {
                for export in section {
                    let export = export.map_err(|e| InspectError::Malformed(e.to_string()))?;
                    if export.name == "_start" && export.kind == ExternalKind::Func {
                        has_start = true;
                    }
                }
            }
            _ => {}
        }
    }
    let exports_any = |prefix: &str| exports.iter().any(|e| e.starts_with(prefix));
    let abi = match abi {
        Abi::WasiHttp if !exports_any(HTTP_HANDLER_EXPORT) && exports_any(HTTP_SERVICE_EXPORT) => {
            Abi::WasiHttp3
        }
        abi => abi,
    };
    match abi {
        Abi::WasiHttp if !exports_any(HTTP_HANDLER_EXPORT) => {
            let found = if exports.is_empty() {
                "none".to_owned()
            } else {
                exports
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Err(InspectError::NoHttpHandler(found))
        }
        Abi::Cgi if !has_start => Err(InspectError::NoStart),
        abi => Ok((abi, needs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_counted_over_every_module() {
        let module = wat::parse_str(
            r#"(module (memory 1) (memory 1) (table 1 funcref) (func (export "_start")))"#,
        )
        .unwrap();
        let (abi, needs) = inspect_with_resources(&module).unwrap();
        assert_eq!(abi, Abi::Cgi);
        assert_eq!(
            needs,
            Resources {
                core_instances: 1,
                memories: 2,
                tables: 1,
                memories_per_module: 2,
                tables_per_module: 1,
            }
        );
    }

    #[test]
    fn text_and_garbage_are_not_wasm() {
        assert_eq!(inspect(b"hello world"), Err(InspectError::NotWasm));
        assert_eq!(inspect(b""), Err(InspectError::NotWasm));
    }

    #[test]
    fn truncated_wasm_is_malformed() {
        let module = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        let cut = &module[..module.len() - 3];
        assert!(matches!(inspect(cut), Err(InspectError::Malformed(_))));
    }

    #[test]
    fn core_modules_need_a_start_function() {
        let ok = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        assert_eq!(inspect(&ok), Ok(Abi::Cgi));
        let no_start = wat::parse_str(r#"(module (func (export "main")))"#).unwrap();
        assert_eq!(inspect(&no_start), Err(InspectError::NoStart));
        let not_a_func = wat::parse_str(r#"(module (memory (export "_start") 1))"#).unwrap();
        assert_eq!(inspect(&not_a_func), Err(InspectError::NoStart));
    }

    #[test]
    fn components_need_the_http_handler_export() {
        let bare = wat::parse_str("(component)").unwrap();
        let err = inspect(&bare).unwrap_err();
        assert_eq!(err, InspectError::NoHttpHandler("none".into()));
        assert!(err.to_string().contains("wasi:http/incoming-handler"));
    }

    #[test]
    fn the_handler_export_names_the_wasi_version() {
        let exporting = |names: &[&str]| {
            let exports: String = names
                .iter()
                .map(|n| format!(r#"(export "{n}" (instance $i))"#))
                .collect();
            wat::parse_str(format!("(component (instance $i) {exports})")).unwrap()
        };
        assert_eq!(
            inspect(&exporting(&["wasi:http/handler@0.3.0"])),
            Ok(Abi::WasiHttp3)
        );
        assert_eq!(
            inspect(&exporting(&["wasi:http/incoming-handler@0.2.6"])),
            Ok(Abi::WasiHttp)
        );
        // Both: served as 0.2, the world every host runs.
        assert_eq!(
            inspect(&exporting(&[
                "wasi:http/incoming-handler@0.2.6",
                "wasi:http/handler@0.3.0"
            ])),
            Ok(Abi::WasiHttp)
        );
        let err = inspect(&exporting(&["wasi:cli/run@0.2.0"])).unwrap_err();
        assert!(err.to_string().contains("wasi:http/handler"), "{err}");
        assert_eq!(Abi::WasiHttp3.as_str(), "wasi-http-0.3");
        assert_eq!(
            serde_json::to_string(&Abi::WasiHttp3).unwrap(),
            "\"wasi-http-0.3\""
        );
    }
}
