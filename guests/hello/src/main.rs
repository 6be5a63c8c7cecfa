//! `hello`: the smallest wasi:http function — answers every request with a
//! fixed greeting. The benchmarks and the quick start use it.

use wstd::http::{Body, Error, Request, Response};

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    Ok(Response::new("Hello, world!\n".into()))
}
