//! `config-wasmcloud`: the `config-rc1` guest (same queries, same answers)
//! built against wasmCloud's version of the interface,
//! `wasi:config/store@0.2.0-draft`.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/config-0.2.0-draft",
        world: "imports",
    });
}

include!("../../config-rc1/src/handler.rs");
