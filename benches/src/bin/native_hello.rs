//! The native baseline of the HTTP load bench: a hyper 1 hello world with no
//! wasm, served the same way wisp serves (HTTP/1.1 keep-alive, tokio).
//!
//! `native-hello [ADDR]` (default `127.0.0.1:8090`) prints `listening on ADDR`.
//! `native-hello ADDR --empty` answers every request with an empty 200
//! instead, which is also a valid OTLP/HTTP export response: the load
//! bench's trace collector.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let body: &'static [u8] = if std::env::args().nth(2).as_deref() == Some("--empty") {
        b""
    } else {
        b"Hello, world!\n"
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |_request| async move {
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(body))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
