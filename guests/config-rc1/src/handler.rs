// The handler of the config guests, included by each with its own
// `bindings` module (one `wasi:config` version each).

use bindings::wasi::config::store as config;
#[path = "../../query.rs"]
mod query;
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let query = query::Query::of(&request);
    let param = |name: &str| query.get(name);
    let read = if param("all").is_some_and(|v| v != "0") {
        config::get_all().map(|mut pairs| {
            pairs.sort();
            let lines: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            (StatusCode::OK, lines)
        })
    } else {
        config::get(param("key").unwrap_or("hello")).map(|value| match value {
            Some(value) => (StatusCode::OK, value),
            None => (StatusCode::NOT_FOUND, "missing\n".to_owned()),
        })
    };
    let (status, body) = read.unwrap_or_else(|e| {
        let text = match e {
            config::Error::Upstream(message) => format!("upstream: {message}"),
            config::Error::Io(message) => format!("io: {message}"),
        };
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("error: {text}\n"),
        )
    });
    Ok(Response::builder().status(status).body(body.into())?)
}
