//! Key-value storage: in-process latency of `get`, `set` and `increment` on
//! the durable redb store, and durable increments per second with 32
//! concurrent clients — on the store alone and through full requests to a
//! `wasi:keyvalue` guest (`guests/kv-draft`).
//!
//! Targets (issue 12): `get` p50 ≤ 5 µs; ≥ 20,000 durable increments/s with
//! 32 concurrent requests. Criterion's throughput lines give the latter in
//! elements (increments) per second.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wisp_benches::Bench;
use wisp_host::{BucketId, KvBackend, KvLimits, RedbStore};
use wisp_test_artifacts as artifacts;

/// Concurrent clients in the throughput benches.
const CLIENTS: usize = 32;
/// Increments each client makes per measured round.
const PER_CLIENT: usize = 50;

fn store_latency(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RedbStore::open(dir.path(), KvLimits::default()).expect("store");
    let bucket = BucketId::Function("bench".into());
    let value = vec![b'v'; 100];
    runtime
        .block_on(store.set(&bucket, "hot".into(), value.clone()))
        .expect("seed");
    let mut group = c.benchmark_group("kv/store");
    group.bench_function("get", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.get(&bucket, "hot").await.expect("get") })
    });
    group.bench_function("set", |b| {
        b.to_async(&runtime).iter(|| async {
            store
                .set(&bucket, "hot".into(), value.clone())
                .await
                .expect("set")
        })
    });
    group.bench_function("increment", |b| {
        b.to_async(&runtime).iter(|| async {
            store
                .increment(&bucket, "n".into(), 1)
                .await
                .expect("increment")
        })
    });
    group.finish();
}

/// Times `rounds` rounds of [`CLIENTS`] tasks each running `one` [`PER_CLIENT`] times.
async fn concurrent_rounds<F, Fut>(rounds: u64, one: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    for _ in 0..rounds {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let one = one.clone();
                tokio::spawn(async move {
                    for _ in 0..PER_CLIENT {
                        one().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("client");
        }
    }
    started.elapsed()
}

fn concurrent_increments(c: &mut Criterion) {
    let mut group = c.benchmark_group("kv/increments-32-clients");
    group.throughput(Throughput::Elements((CLIENTS * PER_CLIENT) as u64));

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn KvBackend> =
        Arc::new(RedbStore::open(dir.path(), KvLimits::default()).expect("store"));
    group.bench_function("store", |b| {
        b.to_async(&runtime).iter_custom(|rounds| {
            let store = store.clone();
            concurrent_rounds(rounds, move || {
                let store = store.clone();
                async move {
                    let bucket = BucketId::Function("bench".into());
                    store
                        .increment(&bucket, "n".into(), 1)
                        .await
                        .expect("increment");
                }
            })
        })
    });

    // Through whole requests, each a fresh sandbox of the kv guest; the
    // same guest answering a key-value miss, and `hello`, show what the
    // request path costs without a durable write.
    let bench = Bench::new(true);
    bench.deploy("counter", artifacts::KV_DRAFT_COMPONENT, "/count");
    bench.deploy("hello", artifacts::HELLO_COMPONENT, "/hello");
    for (label, method, path) in [
        ("requests", "POST", "/count?op=incr&key=n"),
        ("baseline-kv-read", "GET", "/count?op=exists&key=n"),
        ("baseline-hello", "GET", "/hello"),
    ] {
        let host = bench.host.clone();
        group.bench_function(label, |b| {
            b.to_async(&bench.runtime).iter_custom(|rounds| {
                let host = host.clone();
                concurrent_rounds(rounds, move || {
                    let host = host.clone();
                    async move {
                        Bench::request(&host, method, path, Bytes::new()).await;
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, store_latency, concurrent_increments);
criterion_main!(benches);
