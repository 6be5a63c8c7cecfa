//! A WASI 0.3 response with a fixed body, shared by the 0.3 test guests
//! (each includes it with `#[path]`; it uses that guest's `bindings`).

use crate::bindings::wasi::http::types::{Fields, Response};
use crate::bindings::{wit_future, wit_stream};

/// A response whose body is `body`, written from a task of its own after
/// the head is returned; no trailers.
pub fn text(body: String) -> Response {
    let (mut writer, contents) = wit_stream::new();
    let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(contents), trailers);
    drop(trailers_writer);
    wit_bindgen::spawn(async move {
        writer.write_all(body.into_bytes()).await;
    });
    response
}
