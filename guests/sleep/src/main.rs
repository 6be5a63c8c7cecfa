//! `sleep`: waits before answering — `?ms=N` sleeps N milliseconds (default
//! 100) in a WASI poll, then answers `slept N ms`. Tests use it to hold
//! requests in flight (redeploys, shutdown, concurrency limits, deadlines).

use wstd::http::{Body, Error, Request, Response};
use wstd::time::Duration;

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let ms = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(100);
    wstd::task::sleep(Duration::from_millis(ms)).await;
    Ok(Response::new(format!("slept {ms} ms\n").into()))
}
