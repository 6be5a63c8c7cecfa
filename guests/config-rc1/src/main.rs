//! `config-rc1`: reads settings through `wasi:config/store@0.2.0-rc.1`, the
//! version `wasmtime serve -S config` serves, with bindings generated from
//! the standard WIT in `wit/`; it imports nothing else of the host's state.
//!
//! The query string says what to read (the path is never read):
//!
//! | query | does | answers |
//! | --- | --- | --- |
//! | `key=K` (default `hello`) | `get` | 200 the value, or 404 `missing` |
//! | `all=1` | `get-all` | 200 `k=v` lines, sorted by key |
//!
//! A `wasi:config` error answers 500 `error: upstream: …` or `error: io: …`.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/config-0.2.0-rc.1",
        world: "imports",
    });
}

include!("handler.rs");
