//! Cold request in-process: a whole request through the library API — a new
//! sandbox, the handler, the full response body, teardown — for `hello`,
//! `echo` with 1 KiB and 1 MiB bodies, and the CGI guest; `hello` also with
//! no sandbox prepared ahead (`--prepare 0`), and as the first request
//! after its code was evicted (a load from disk on its critical path).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wisp_benches::Bench;
use wisp_test_artifacts as artifacts;

fn cold_requests(c: &mut Criterion) {
    let bench = Bench::new(true);
    bench.deploy("hello", artifacts::HELLO_COMPONENT, "/hello");
    bench.deploy("echo", artifacts::ECHO_COMPONENT, "/echo");
    bench.deploy("cgi", artifacts::CGI_HELLO_MODULE, "/cgi");
    let host = bench.host.clone();
    let mut group = c.benchmark_group("cold-request");
    group.bench_function("hello", |b| {
        b.to_async(&bench.runtime)
            .iter(|| Bench::request(&host, "GET", "/hello", Bytes::new()))
    });
    for (label, size) in [("echo-1KiB", 1usize << 10), ("echo-1MiB", 1 << 20)] {
        let body = Bytes::from(vec![b'x'; size]);
        let echoed = bench
            .runtime
            .block_on(Bench::request(&host, "POST", "/echo", body.clone()));
        assert_eq!(echoed, size, "echo must return the whole body");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(label, |b| {
            b.to_async(&bench.runtime)
                .iter(|| Bench::request(&host, "POST", "/echo", body.clone()))
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("cgi-hello", |b| {
        b.to_async(&bench.runtime)
            .iter(|| Bench::request(&host, "GET", "/cgi", Bytes::new()))
    });
    group.finish();

    let unprepared = Bench::with(|config| config.prepare = 0);
    unprepared.deploy("hello", artifacts::HELLO_COMPONENT, "/hello");
    let host = unprepared.host.clone();
    let mut group = c.benchmark_group("cold-request");
    group.bench_function("hello-unprepared", |b| {
        b.to_async(&unprepared.runtime)
            .iter(|| Bench::request(&host, "GET", "/hello", Bytes::new()))
    });
    group.finish();

    // Room for one artifact: requests alternating between two functions
    // each load their code (verify, mmap, pre-link) first.
    let evicting = Bench::with(|config| config.max_loaded = 1);
    evicting.deploy("hello", artifacts::HELLO_COMPONENT, "/hello");
    evicting.deploy("cgi", artifacts::CGI_HELLO_MODULE, "/cgi");
    let host = evicting.host.clone();
    let mut group = c.benchmark_group("first-request-after-eviction");
    group.bench_function("hello-then-cgi-hello", |b| {
        b.to_async(&evicting.runtime).iter(|| async {
            Bench::request(&host, "GET", "/hello", Bytes::new()).await;
            Bench::request(&host, "GET", "/cgi", Bytes::new()).await
        })
    });
    group.finish();
    let loads = evicting.host.metrics().code_loads();
    assert!(loads > 2, "the requests did not load code ({loads} loads)");
}

criterion_group!(benches, cold_requests);
criterion_main!(benches);
