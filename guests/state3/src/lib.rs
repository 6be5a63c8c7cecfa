//! `state3`: a WASI 0.3 component that imports `wasi:keyvalue` and
//! `wasi:config` beside `wasi:http/service`. Each request increments the
//! key `hits` of its own bucket and answers `hits=N greeting=G`, `G` being
//! the config value `greeting` (or `none`); a store error answers its
//! variant.

mod bindings {
    wit_bindgen::generate!({
        path: [
            "../../wit/http-0.3.0",
            "../../wit/keyvalue-0.2.0-draft",
            "../../wit/config-0.2.0-rc.1",
            "wit",
        ],
        world: "wisp:state3/state3",
        generate_all,
    });
}

use bindings::exports::wasi::http::handler::Guest;
use bindings::wasi::config::store as config;
use bindings::wasi::http::types::{ErrorCode, Request, Response};
use bindings::wasi::keyvalue::{atomics, store};

struct State;

impl Guest for State {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let hits = store::open("")
            .and_then(|bucket| atomics::increment(&bucket, "hits", 1))
            .map_or_else(|e| format!("error: {e:?}"), |n| n.to_string());
        let greeting = match config::get("greeting") {
            Ok(Some(value)) => value,
            Ok(None) => "none".into(),
            Err(e) => format!("error: {e:?}"),
        };
        Ok(text(format!("hits={hits} greeting={greeting}")))
    }
}

#[path = "../../text3.rs"]
mod text3;
use text3::text;

bindings::export!(State with_types_in bindings);
