//! Cold request in-process: a whole request through the library API — a new
//! sandbox, the handler, the full response body, teardown — for `hello`,
//! `echo` with 1 KiB and 1 MiB bodies, and the CGI guest.

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
}

criterion_group!(benches, cold_requests);
criterion_main!(benches);
