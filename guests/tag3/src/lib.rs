//! `tag3`: WASI 0.3 HTTP middleware (`wasi:http/middleware`) that passes
//! every request to the handler it sits in front of and adds
//! `x-tagged: yes` to its response, the body streamed through untouched.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/http-0.3.0",
        world: "wisp:http3/middleware",
        generate_all,
    });
}

use bindings::exports::wasi::http::handler::Guest;
use bindings::wasi::http::handler as next;
use bindings::wasi::http::types::{ErrorCode, Fields, Request, Response};
use bindings::wit_future;

struct Tag;

impl Guest for Tag {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let inner = next::handle(request).await?;
        let status = inner.get_status_code();
        let mut headers = inner.get_headers().copy_all();
        headers.push(("x-tagged".into(), b"yes".to_vec()));
        let headers = Fields::from_list(&headers)
            .map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;
        let (done, received) = wit_future::new(|| Ok(()));
        drop(done);
        let (body, trailers) = Response::consume_body(inner, received);
        let (response, _sent) = Response::new(headers, Some(body), trailers);
        let _ = response.set_status_code(status);
        Ok(response)
    }
}

bindings::export!(Tag with_types_in bindings);
