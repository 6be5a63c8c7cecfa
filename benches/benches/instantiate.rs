//! Instantiate alone: a fresh sandbox (store and instance) from the
//! pre-linked function, then dropped — with the pooling allocator and with
//! on-demand allocation, for `hello` and for the 8.7 MB `large` component.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, criterion_group, criterion_main};
use wisp_benches::Bench;
use wisp_test_artifacts as artifacts;

fn instantiate(c: &mut Criterion) {
    let mut group = c.benchmark_group("instantiate");
    for (label, pooling) in [("pooling", true), ("on-demand", false)] {
        let bench = Bench::new(pooling);
        bench.deploy("hello", artifacts::HELLO_COMPONENT, "/hello");
        bench.deploy("large", artifacts::LARGE_COMPONENT, "/large");
        bench.deploy("cgi", artifacts::CGI_HELLO_MODULE, "/cgi");
        for guest in ["hello", "large", "cgi"] {
            let host = bench.host.clone();
            group.bench_function(format!("{guest}/{label}"), |b| {
                b.to_async(&bench.runtime).iter(|| {
                    let host = host.clone();
                    async move { drop(host.instantiate(guest).await.expect("instantiate")) }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, instantiate);
criterion_main!(benches);
