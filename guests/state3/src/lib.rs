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
use bindings::wasi::http::types::{ErrorCode, Fields, Request, Response};
use bindings::wasi::keyvalue::{atomics, store};
use bindings::{wit_future, wit_stream};

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

/// A response whose body is `body`, written from a task of its own.
fn text(body: String) -> Response {
    let (mut writer, contents) = wit_stream::new();
    let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(contents), trailers);
    drop(trailers_writer);
    wit_bindgen::spawn(async move {
        writer.write_all(body.into_bytes()).await;
    });
    response
}

bindings::export!(State with_types_in bindings);
