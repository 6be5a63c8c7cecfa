//! `sleep`: waits before answering — `?ms=N` sleeps N milliseconds (default
//! 100) in a WASI poll, then answers `slept N ms`. Tests use it to hold
//! requests in flight (redeploys, shutdown, concurrency limits, deadlines).
//! With `&head=first` it sends the response head at once and sleeps before
//! the body, so a client knows from the head (`x-wisp-version`) that its
//! request is running, and on which version, while it is still in flight.

use futures_lite::stream;
use wstd::http::{Body, Error, Request, Response};
use wstd::time::Duration;

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let query = request.uri().query().unwrap_or("");
    let ms = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(100);
    let answer = format!("slept {ms} ms\n");
    if query.split('&').any(|pair| pair == "head=first") {
        let body = stream::once_future(async move {
            // A blocking WASI poll: the stream must be `Send`.
            std::thread::sleep(std::time::Duration::from_millis(ms));
            answer
        });
        return Ok(Response::new(Body::from_stream(body)));
    }
    wstd::task::sleep(Duration::from_millis(ms)).await;
    Ok(Response::new(answer.into()))
}
