//! HTTP middleware (the `middleware` setting): WASI 0.3 components of the
//! `wasi:http/middleware` world — each imports the `wasi:http/handler` it
//! sits in front of and exports its own — composed in front of a function's
//! own component at deploy, with the maintained composition library
//! (`wac-graph`), into one component that is deployed like any other. Each
//! request still gets fresh instances (of every layer), and the composition
//! runs with the function's settings: its limits, allow-list, buckets and
//! secrets.
//!
//! A middleware may import what every component gets (WASI's CLI, clocks,
//! random, filesystem and sockets — denied unless granted — and
//! `wasi:http`), and beyond that only what the function itself imports: a
//! middleware that would reach the function's key-value bucket or
//! configuration when the function does not is refused, naming the import.

use crate::backplane::records::LayerUse;
use crate::error::DeployError;
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};
use wisp_spec::settings::SettingsError;

/// The interface a middleware imports and exports, a service exports.
const HANDLER: &str = "wasi:http/handler@0.3.0";

/// Imports every component may have, whatever the function imports.
const EVERY_COMPONENT_MAY_IMPORT: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:io/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "wasi:http/",
];

/// One middleware function's binary, as composed in.
pub(crate) struct Layer {
    /// The middleware function and the version of it composed in.
    pub(crate) used: LayerUse,
    /// Its binary.
    pub(crate) wasm: Vec<u8>,
}

/// `function`'s own component `target` with `layers` (outermost first) in
/// front of it, as one component exporting `wasi:http/handler`.
pub(crate) fn compose(
    function: &str,
    target: &[u8],
    layers: &[Layer],
) -> Result<Vec<u8>, DeployError> {
    let given: Vec<&str> = layers.iter().map(|l| l.used.function.as_str()).collect();
    let given = given.join(",");
    let mut graph = CompositionGraph::new();
    let target = register(&mut graph, "wisp:target", target).map_err(|e| {
        refused(
            &given,
            format!("a WASI 0.3 component to put middleware in front of ({e})"),
        )
    })?;
    if !graph.types()[graph[target].ty()]
        .exports
        .contains_key(HANDLER)
    {
        return Err(refused(
            &given,
            format!(
                "no middleware: `{function}` is not a WASI 0.3 `wasi:http/service` component (it does not export `{HANDLER}`)"
            ),
        ));
    }
    let instance = graph.instantiate(target);
    let mut handler = alias(&mut graph, instance, &given)?;
    for (index, layer) in layers.iter().enumerate().rev() {
        let name = &layer.used.function;
        let package = register(&mut graph, &format!("wisp:middleware{index}"), &layer.wasm)
            .map_err(|e| refused(name, format!("a `wasi:http/middleware` component ({e})")))?;
        check_imports(&graph, package, target, function, name)?;
        let instance = graph.instantiate(package);
        graph
            .set_instantiation_argument(instance, HANDLER, handler)
            .map_err(|e| {
                refused(
                    name,
                    format!("middleware whose `{HANDLER}` import fits ({e})"),
                )
            })?;
        handler = alias(&mut graph, instance, name)?;
    }
    graph
        .export(handler, HANDLER)
        .map_err(|e| composition_failed(&given, &e))?;
    graph
        .encode(EncodeOptions::default())
        .map_err(|e| composition_failed(&given, &e))
}

/// Registers `wasm` as package `name`.
fn register(graph: &mut CompositionGraph, name: &str, wasm: &[u8]) -> Result<PackageId, String> {
    let package = Package::from_bytes(name, None, wasm.to_vec(), graph.types_mut())
        .map_err(|e| format!("{e:#}"))?;
    graph.register_package(package).map_err(|e| e.to_string())
}

/// The handler an instance exports.
fn alias(
    graph: &mut CompositionGraph,
    instance: NodeId,
    given: &str,
) -> Result<NodeId, DeployError> {
    graph
        .alias_instance_export(instance, HANDLER)
        .map_err(|e| composition_failed(given, &e))
}

/// Refuses middleware `name` unless it imports and exports the handler,
/// and imports nothing beyond what every component may and the function
/// (`target`) itself imports.
fn check_imports(
    graph: &CompositionGraph,
    package: PackageId,
    target: PackageId,
    function: &str,
    name: &str,
) -> Result<(), DeployError> {
    let world = &graph.types()[graph[package].ty()];
    if !world.imports.contains_key(HANDLER) || !world.exports.contains_key(HANDLER) {
        return Err(refused(
            name,
            format!(
                "a `wasi:http/middleware` component: one that imports and exports `{HANDLER}` (`{name}` does not)"
            ),
        ));
    }
    let granted = &graph.types()[graph[target].ty()].imports;
    let extra = world.imports.keys().find(|import| {
        !EVERY_COMPONENT_MAY_IMPORT
            .iter()
            .any(|prefix| import.starts_with(prefix))
            && !granted.contains_key(*import)
    });
    match extra {
        Some(import) => Err(refused(
            name,
            format!(
                "middleware that imports only what `{function}` itself does: `{name}` imports `{import}`, which `{function}` does not (middleware runs with the function's capabilities)"
            ),
        )),
        None => Ok(()),
    }
}

/// The `middleware` setting refused for its value `given`, saying what was
/// expected.
pub(crate) fn refused(given: &str, expected: String) -> DeployError {
    DeployError::InvalidSettings(SettingsError::invalid("middleware", given, expected))
}

fn composition_failed(given: &str, error: &dyn std::fmt::Display) -> DeployError {
    refused(
        given,
        format!("middleware that composes with the function ({error})"),
    )
}
