//! Shared set-up for wisp's benchmarks: a host on a temp data dir with guests
//! from `guests/` deployed, and a runtime to drive it.
//!
//! The benches themselves are in `benches/` (criterion: `cargo bench`); the
//! HTTP load bench that compares wisp with `wasmtime serve` and a native
//! hyper server is `benches/http-load.sh`, and `native-hello` is its native
//! baseline.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use wisp_host::{DeployRequest, Host, HostConfig};

/// A host with its data dir and runtime kept alive.
pub struct Bench {
    /// The runtime the host runs on.
    pub runtime: Runtime,
    /// The host.
    pub host: Host,
    _data: TempDir,
}

impl Bench {
    /// A host with the pooling allocator on or off.
    pub fn new(pooling: bool) -> Bench {
        Bench::with(|config| config.pooling = pooling)
    }

    /// A host with the default configuration, changed by `tweak`.
    pub fn with(tweak: impl FnOnce(&mut HostConfig)) -> Bench {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let data = tempfile::tempdir().expect("temp dir");
        let mut config = HostConfig {
            data_dir: data.path().to_owned(),
            access_log: false,
            ..HostConfig::default()
        };
        tweak(&mut config);
        let (host, _) = runtime.block_on(Host::start(config)).expect("host");
        Bench {
            runtime,
            host,
            _data: data,
        }
    }

    /// Deploys the guest at `path` as `name` on `route`.
    pub fn deploy(&self, name: &str, path: &str, route: &str) {
        let wasm = Bytes::from(std::fs::read(path).expect("guest"));
        self.runtime
            .block_on(self.host.deploy(DeployRequest::new(name, route, wasm)))
            .expect("deploy");
    }

    /// Serves one request in-process and reads the whole response body,
    /// which must be a success; returns its length.
    pub async fn request(host: &Host, method: &str, path: &str, body: Bytes) -> usize {
        let (status, body) = Bench::send(host, method, path, body).await;
        assert!(status.is_success(), "{status}");
        body.len()
    }

    /// Serves one request in-process and reads the whole response body,
    /// whatever its status.
    pub async fn send(
        host: &Host,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> (http::StatusCode, Bytes) {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(body))
            .expect("request");
        let response = host.handle(request).await;
        let status = response.status();
        let body = response.into_body().collect().await.expect("body");
        (status, body.to_bytes())
    }
}
