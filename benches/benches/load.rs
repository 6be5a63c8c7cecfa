//! Restart: the time for a host to start on N already-compiled functions in
//! its data dir (read records; code loads on each function's first request)
//! and be ready to serve, for N = 1, 100 and 1000. Nothing is recompiled.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use wisp_host::{DeployRequest, Host, HostConfig};
use wisp_test_artifacts as artifacts;

fn load(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    let wasm = Bytes::from(std::fs::read(artifacts::HELLO_COMPONENT).expect("guest"));
    for n in [1usize, 100, 1000] {
        let data = tempfile::tempdir().expect("temp dir");
        let config = HostConfig {
            data_dir: data.path().to_owned(),
            ..HostConfig::default()
        };
        runtime.block_on(async {
            let (host, _) = Host::start(config.clone()).await.expect("host");
            for i in 0..n {
                let request = DeployRequest::new(format!("f{i}"), format!("/f{i}"), wasm.clone());
                host.deploy(request).await.expect("deploy");
            }
        });
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.to_async(&runtime).iter(|| {
                let config = config.clone();
                async move {
                    let (host, problems) = Host::start(config).await.expect("host");
                    assert!(problems.is_empty());
                    assert_eq!(host.functions().len(), n);
                    assert_eq!(
                        host.metrics().compilations(),
                        0,
                        "a restart must not compile"
                    );
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
