//! `hello3`: the smallest WASI 0.3 function — a `wasi:http/service@0.3.0`
//! component (wit-bindgen's async bindings) that answers every request with
//! a fixed greeting, streamed from a task of its own after the response
//! head is returned.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/http-0.3.0",
        world: "wisp:http3/service",
        generate_all,
    });
}

use bindings::exports::wasi::http::handler::Guest;
use bindings::wasi::http::types::{ErrorCode, Fields, Request, Response};
use bindings::{wit_future, wit_stream};

struct Hello;

impl Guest for Hello {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let (mut body, contents) = wit_stream::new();
        let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
        let (response, _sent) = Response::new(Fields::new(), Some(contents), trailers);
        drop(trailers_writer);
        wit_bindgen::spawn(async move {
            body.write_all(b"Hello, WASI 0.3!\n".to_vec()).await;
        });
        Ok(response)
    }
}

bindings::export!(Hello with_types_in bindings);
