//! Ahead-of-time compile time per guest (Cranelift), and the size of each
//! artifact, printed once.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, criterion_group, criterion_main};
use wisp_benches::Bench;
use wisp_test_artifacts as artifacts;

fn compile(c: &mut Criterion) {
    let bench = Bench::new(true);
    let engine = bench.host.engine().clone();
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for (name, path, component) in [
        ("hello", artifacts::HELLO_COMPONENT, true),
        ("large", artifacts::LARGE_COMPONENT, true),
        ("cgi-hello", artifacts::CGI_HELLO_MODULE, false),
    ] {
        let wasm = std::fs::read(path).expect("guest");
        let compile = |wasm: &[u8]| {
            if component {
                engine.precompile_component(wasm)
            } else {
                engine.precompile_module(wasm)
            }
            .expect("compile")
        };
        let artifact = compile(&wasm);
        println!(
            "compile/{name}: wasm {} bytes -> artifact {} bytes",
            wasm.len(),
            artifact.len()
        );
        group.bench_function(name, |b| b.iter(|| compile(&wasm)));
    }
    group.finish();
}

criterion_group!(benches, compile);
criterion_main!(benches);
