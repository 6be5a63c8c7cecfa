//! `echo`: streams the request body back unchanged, and reports what it was
//! asked in response headers: `x-echo-method`, `x-echo-path` (path and query),
//! and every request header `NAME` as `x-echo-header-NAME`. The body is never
//! collected, so a large upload flows through in chunks.

use wstd::http::{Body, Error, Request, Response};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let (parts, body) = request.into_parts();
    let mut response = Response::builder()
        .header("x-echo-method", parts.method.as_str())
        .header(
            "x-echo-path",
            parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        );
    for (name, value) in &parts.headers {
        response = response.header(format!("x-echo-header-{name}"), value);
    }
    Ok(response.body(body)?)
}
