//! A real upstream HTTP server on loopback, for outbound-call and callback
//! tests: it answers every request with a fixed body and keeps what it
//! received.

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// A running upstream; it stops when the test's runtime ends.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its method.
    pub method: http::Method,
    /// Its path and query.
    pub path: String,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its whole body.
    pub body: Bytes,
}

impl Upstream {
    /// Starts an upstream answering `body`.
    pub async fn start(body: impl Into<Bytes>) -> Upstream {
        let body: Bytes = body.into();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let log = log.clone();
                            let body = body.clone();
                            async move {
                                let (parts, incoming) = request.into_parts();
                                let content = match incoming.collect().await {
                                    Ok(body) => body.to_bytes(),
                                    Err(_) => Bytes::new(),
                                };
                                log.lock().unwrap().push(Received {
                                    method: parts.method,
                                    path: parts
                                        .uri
                                        .path_and_query()
                                        .map_or("/".into(), |p| p.to_string()),
                                    headers: parts.headers,
                                    body: content,
                                });
                                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                    body,
                                )))
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream { addr, received }
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}
