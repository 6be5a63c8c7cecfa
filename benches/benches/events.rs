//! Events: what an async call and a chained call cost, in-process.
//!
//! * `events/async/accept`: a `Prefer: respond-async` request answered
//!   `202` — routing, reading the body and one durable (fsynced) write of
//!   the call; `accept-32-clients` is the same with 32 at once, where group
//!   commit shares the fsyncs;
//! * `events/async/accept-to-done`: at idle, from sending the request to
//!   the call being stored as done (polled every 50 µs): the accept, the
//!   queue-to-start delay, the run and the result's durable write.
//!   `events/direct/hello` beside it is the same function run directly;
//! * `events/chain/*`: the `sdk-fetch` guest calling `hello` in-process
//!   (`http://hello.wisp.internal/`), against the same guest calling it over
//!   real loopback HTTP through the host's own listener, against the guest
//!   alone (its call denied by the allow-list, so it makes no hop), and
//!   `hello` called directly.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wisp_benches::Bench;
use wisp_host::spec::api::CallState;
use wisp_host::{DeployRequest, Host, RawSettings, ServerOptions};
use wisp_test_artifacts as artifacts;

/// Concurrent clients in the throughput bench.
const CLIENTS: usize = 32;

/// Sends an async request and returns its call id.
async fn accept(host: &Host) -> String {
    let request = http::Request::post("/hello")
        .header("prefer", "respond-async")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = host.handle(request).await;
    assert_eq!(response.status(), http::StatusCode::ACCEPTED);
    let id = response.headers()["x-wisp-call-id"]
        .to_str()
        .expect("id")
        .to_owned();
    response.into_body().collect().await.expect("body");
    id
}

fn async_calls(c: &mut Criterion) {
    let bench = Bench::new(true);
    bench.deploy("hello", artifacts::HELLO_COMPONENT, "/hello");
    let host = bench.host.clone();
    let mut group = c.benchmark_group("events/async");
    group.bench_function("accept", |b| {
        b.to_async(&bench.runtime).iter(|| accept(&host))
    });
    group.bench_function("accept-to-done", |b| {
        b.to_async(&bench.runtime).iter_custom(|rounds| {
            let host = host.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..rounds {
                    let started = Instant::now();
                    let id = accept(&host).await;
                    loop {
                        let call = host.call(&id).await.expect("call").expect("stored");
                        if call.state == CallState::Done {
                            break;
                        }
                        tokio::time::sleep(Duration::from_micros(50)).await;
                    }
                    total += started.elapsed();
                }
                total
            }
        })
    });
    group.throughput(Throughput::Elements(CLIENTS as u64));
    group.bench_function("accept-32-clients", |b| {
        b.to_async(&bench.runtime).iter_custom(|rounds| {
            let host = host.clone();
            async move {
                let started = Instant::now();
                for _ in 0..rounds {
                    let tasks: Vec<_> = (0..CLIENTS)
                        .map(|_| {
                            let host = host.clone();
                            tokio::spawn(async move { accept(&host).await })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("client");
                    }
                }
                started.elapsed()
            }
        })
    });
    group.finish();
    let mut group = c.benchmark_group("events/direct");
    group.bench_function("hello", |b| {
        b.to_async(&bench.runtime)
            .iter(|| Bench::request(&host, "GET", "/hello", Bytes::new()))
    });
    group.finish();
}

fn chained_calls(c: &mut Criterion) {
    let bench = Bench::new(true);
    let host = bench.host.clone();
    let listener = bench
        .runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("listener");
    let loopback = format!("http://{}", listener.local_addr().expect("address"));
    let public = host.clone();
    let handler: wisp_host::Handler = Arc::new(move |request| {
        let host = public.clone();
        Box::pin(async move { host.handle(request).await })
    });
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    bench.runtime.spawn(wisp_host::serve(
        listener,
        handler,
        ServerOptions::default(),
        stopped,
    ));
    bench.deploy("hello", artifacts::HELLO_COMPONENT, "/hello");
    let settings = RawSettings::new()
        .with("allow-outbound", "http://hello.wisp.internal")
        .and_then(|s| s.with("allow-outbound", loopback.as_str()))
        .expect("settings");
    let wasm = Bytes::from(std::fs::read(artifacts::SDK_FETCH_COMPONENT).expect("guest"));
    bench
        .runtime
        .block_on(host.deploy(DeployRequest::new("front", "/front", wasm).with_settings(settings)))
        .expect("deploy");
    let over_loopback = format!("/front?url={loopback}/hello");
    for (path, status) in [
        ("/front?url=http://hello.wisp.internal/", 200),
        (over_loopback.as_str(), 200),
    ] {
        // What the caller got from `hello`, checked once before measuring.
        let (_, body) = bench
            .runtime
            .block_on(Bench::send(&host, "GET", path, Bytes::new()));
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains(&format!("\"status\":{status}")),
            "{path}: {text}"
        );
    }
    let mut group = c.benchmark_group("events/chain");
    for (label, path) in [
        ("in-process", "/front?url=http://hello.wisp.internal/"),
        ("loopback-http", over_loopback.as_str()),
        ("caller-alone", "/front?url=http://denied.wisp.internal/"),
        ("direct-hello", "/hello"),
    ] {
        group.bench_function(label, |b| {
            b.to_async(&bench.runtime)
                .iter(|| Bench::send(&host, "GET", path, Bytes::new()))
        });
    }
    group.finish();
}

criterion_group!(benches, async_calls, chained_calls);
criterion_main!(benches);
