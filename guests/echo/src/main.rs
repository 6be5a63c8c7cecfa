//! `echo`: streams the request body back unchanged, and reports what it was
//! asked in response headers: `x-echo-method`, `x-echo-path` (path and query),
//! and every request header `NAME` as `x-echo-header-NAME`. With
//! `log-headers` in the query it also writes each request header to stderr
//! as `header NAME: VALUE`, for runs whose response nobody reads (cron). The
//! body is never collected, so a large upload flows through in chunks.

use wstd::http::{Body, Error, Request, Response};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let (parts, body) = request.into_parts();
    let log_headers = parts
        .uri
        .query()
        .is_some_and(|query| query.split('&').any(|pair| pair == "log-headers"));
    let mut response = Response::builder()
        .header("x-echo-method", parts.method.as_str())
        .header(
            "x-echo-path",
            parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        );
    for (name, value) in &parts.headers {
        if log_headers {
            eprintln!("header {name}: {}", String::from_utf8_lossy(value.as_bytes()));
        }
        response = response.header(format!("x-echo-header-{name}"), value);
    }
    Ok(response.body(body)?)
}
