//! `counter`: proves that no state survives between requests. It increments a
//! global on every request and answers with its value; a host that gives each
//! request a fresh instance makes it answer `1` every time.

use std::sync::atomic::{AtomicU64, Ordering};
use wstd::http::{Body, Error, Request, Response};

static REQUESTS_SEEN: AtomicU64 = AtomicU64::new(0);

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    let seen = REQUESTS_SEEN.fetch_add(1, Ordering::SeqCst) + 1;
    Ok(Response::new(format!("{seen}").into()))
}
