//! An edge node that embeds wisp: its own hyper server answers
//! `GET /edge/health` itself and hands every other request to an embedded
//! host with one function deployed. No admin listener, no CLI.
//!
//! ```sh
//! cargo run --release -p wisp-host --example edge_node -- 127.0.0.1:8090 hello /hello hello.wasm
//! curl http://127.0.0.1:8090/edge/health   # ok (the edge node itself)
//! curl http://127.0.0.1:8090/hello         # the function
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use wisp_host::{ConnectionInfo, DeployRequest, Host, HostConfig, ResponseBody};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, name, route, file] = args.as_slice() else {
        eprintln!("usage: edge_node LISTEN_ADDR NAME ROUTE FILE.wasm");
        std::process::exit(2);
    };
    let listen: SocketAddr = listen.parse()?;

    // 1. The embedded host: its data dir is the edge node's to choose.
    let data_dir = std::env::temp_dir().join(format!("wisp-edge-node-{}", std::process::id()));
    let config = HostConfig {
        data_dir: data_dir.clone(),
        ..HostConfig::default()
    };
    let (host, problems) = Host::start(config).await?;
    for problem in problems {
        eprintln!("warning: {}: {}", problem.subject, problem.message);
    }

    // 2. Deploy the function: compiled ahead of time, once.
    let wasm = std::fs::read(file)?;
    let report = host.deploy(DeployRequest::new(name, route, wasm)).await?;
    eprintln!(
        "deployed {} v{} at {}",
        report.name, report.version, report.route
    );

    // 3. The edge node's own server: its routes first, the host for the rest.
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, remote) = listener.accept().await?;
        let local = stream.local_addr()?;
        let host = host.clone();
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let host = host.clone();
            async move { Ok::<_, Infallible>(edge(&host, request, remote, local).await) }
        });
        tokio::spawn(async move {
            let connection = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = connection
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection from {remote} ended: {e}");
            }
        });
    }
}

/// The edge node's routing: its health check, else the function host.
async fn edge(
    host: &Host,
    mut request: http::Request<Incoming>,
    remote: SocketAddr,
    local: SocketAddr,
) -> http::Response<ResponseBody> {
    if request.uri().path() == "/edge/health" {
        let body = Full::new(Bytes::from_static(b"ok\n"))
            .map_err(|never| match never {})
            .boxed_unsync();
        return http::Response::new(body);
    }
    // Tells CGI guests the client's address (`REMOTE_ADDR`).
    request
        .extensions_mut()
        .insert(ConnectionInfo { remote, local });
    host.handle(request).await
}
