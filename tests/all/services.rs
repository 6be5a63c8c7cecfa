//! Real services the cluster tests run beside wisp: a NATS server with
//! JetStream, haproxy and an OCI registry, each on ephemeral loopback ports, stopped on drop.
//! Each must be installed (`scripts/install-deps.sh` does it); a test that
//! cannot find one fails and says so.

use crate::support::{Spawned, eventually};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// The path of program `name`, searched in `PATH` and the sbin
/// directories Debian installs servers to; panics loudly when absent.
pub fn program(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed, and this test needs it: run scripts/install-deps.sh")
        })
}

/// A free loopback port (bound, then released for the service to take).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// True once something accepts connections on `port`.
async fn listening(port: u16) -> bool {
    eventually(Duration::from_secs(20), async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await
}

/// A `nats-server -js` on loopback with its own store directory.
pub struct Nats {
    process: Option<Spawned>,
    port: u16,
    store: TempDir,
    secured: Option<Secured>,
}

/// What a NATS server run with `examples/cluster/nats-server.conf` (TLS with
/// client certificates, and users) needs, made for one test.
pub struct Secured {
    dir: TempDir,
    /// The password of user `wisp`, the hosts'.
    pub host_password: String,
    /// The password of user `observer`, who may change nothing.
    pub observer_password: String,
}

impl Secured {
    /// A file of this set-up: `ca.pem`, `client.pem`, `client.key`, …
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes a CA, a server certificate for 127.0.0.1 and a client
    /// certificate with `openssl`, and two passwords.
    fn make() -> Secured {
        let dir = tempfile::tempdir().expect("temp dir");
        let openssl = |args: &[&str]| {
            let status = Command::new(program("openssl"))
                .args(args)
                .current_dir(dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("run openssl");
            assert!(status.success(), "openssl {args:?} failed");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=wisp-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        for (who, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
            let ext = format!(
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"
            );
            std::fs::write(dir.path().join(format!("{who}.ext")), ext).unwrap();
            let (key, csr, pem, ext) = (
                format!("{who}.key"),
                format!("{who}.csr"),
                format!("{who}.pem"),
                format!("{who}.ext"),
            );
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={who}"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        Secured {
            dir,
            host_password: format!("host-{}", fastrand_text()),
            observer_password: format!("observer-{}", fastrand_text()),
        }
    }
}

fn fastrand_text() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}")
}

impl Nats {
    /// Starts a server on a free port.
    pub async fn start() -> Nats {
        let mut nats = Nats {
            process: None,
            port: free_port(),
            store: tempfile::tempdir().expect("temp dir"),
            secured: None,
        };
        nats.resume().await;
        nats
    }

    /// Starts a server on a free port with `examples/cluster/nats-server.conf`:
    /// TLS, client certificates, and the users `wisp` and `observer`.
    pub async fn start_secured() -> Nats {
        let mut nats = Nats {
            process: None,
            port: free_port(),
            store: tempfile::tempdir().expect("temp dir"),
            secured: Some(Secured::make()),
        };
        nats.resume().await;
        nats
    }

    /// Its TLS files and passwords, when started secured.
    pub fn secured(&self) -> &Secured {
        self.secured.as_ref().expect("started with start_secured")
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        let scheme = if self.secured.is_some() {
            "tls"
        } else {
            "nats"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its store stays).
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Starts it again on the same port and store.
    pub async fn resume(&mut self) {
        assert!(self.process.is_none(), "kill it first");
        let mut command = Command::new(program("nats-server"));
        match &self.secured {
            None => {
                command
                    .args([
                        "-js",
                        "-a",
                        "127.0.0.1",
                        "-p",
                        &self.port.to_string(),
                        "-sd",
                    ])
                    .arg(self.store.path());
            }
            Some(secured) => {
                let config = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../examples/cluster/nats-server.conf");
                command
                    .arg("-c")
                    .arg(config)
                    .env("NATS_LISTEN", format!("127.0.0.1:{}", self.port))
                    .env("NATS_STORE", self.store.path())
                    .env("NATS_TLS_CERT", secured.file("server.pem"))
                    .env("NATS_TLS_KEY", secured.file("server.key"))
                    .env("NATS_TLS_CA", secured.file("ca.pem"))
                    .env("WISP_NATS_PASSWORD", &secured.host_password)
                    .env("OBSERVER_NATS_PASSWORD", &secured.observer_password);
            }
        }
        self.process = Some(Spawned::spawn(command, "nats-server"));
        assert!(listening(self.port).await, "nats-server did not start");
    }
}

/// haproxy in front of wisp hosts, with the config shipped in
/// `examples/cluster/haproxy.cfg`.
pub struct Haproxy {
    _process: Spawned,
    /// Where clients connect.
    pub addr: SocketAddr,
}

impl Haproxy {
    /// Starts haproxy balancing over `hosts`: each a public address and
    /// the port of its admin listener (health checks go to `/healthz`).
    pub async fn start(hosts: &[(SocketAddr, u16)]) -> Haproxy {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cluster/haproxy.cfg");
        assert!(hosts.len() <= 3, "the shipped config has three servers");
        let port = free_port();
        let mut command = Command::new(program("haproxy"));
        command.arg("-f").arg(&config).arg("-db");
        command.env("WISP_LB_BIND", format!("127.0.0.1:{port}"));
        for (i, (public, admin)) in hosts.iter().enumerate() {
            command.env(format!("WISP_HOST{}", i + 1), public.to_string());
            command.env(format!("WISP_HOST{}_ADMIN_PORT", i + 1), admin.to_string());
        }
        let process = Spawned::spawn(command, "haproxy");
        assert!(listening(port).await, "haproxy did not start");
        Haproxy {
            _process: process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// A URL through haproxy.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Debian's `docker-registry` (the CNCF distribution registry), plain
/// HTTP on loopback, storing into a temporary directory.
pub struct Registry {
    _process: Spawned,
    _store: TempDir,
    /// `127.0.0.1:PORT`, as a reference's registry part.
    pub host: String,
}

/// The user [`Registry::start_with_password`] admits.
pub const REGISTRY_USER: &str = "wisp";

/// Its password.
pub const REGISTRY_PASSWORD: &str = "registry-pass";

/// `REGISTRY_USER:bcrypt(REGISTRY_PASSWORD)`, as htpasswd writes it (cost
/// 4: a test's password, hashed once ahead).
const REGISTRY_HTPASSWD: &str = "wisp:$2b$04$rwqn/cgeNVEZXHHQqQ27POdtCMWGdKVaauWDQDksT1jm3KLG.H8bi";

impl Registry {
    /// Starts a registry on a free port.
    pub async fn start() -> Registry {
        Registry::start_configured(false).await
    }

    /// Starts a registry that admits only [`REGISTRY_USER`] with
    /// [`REGISTRY_PASSWORD`] (HTTP Basic).
    pub async fn start_with_password() -> Registry {
        Registry::start_configured(true).await
    }

    async fn start_configured(password: bool) -> Registry {
        let store = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = store.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            store.path().join("data").display()
        );
        if password {
            let users = store.path().join("htpasswd");
            std::fs::write(&users, format!("{REGISTRY_HTPASSWD}\n")).expect("htpasswd");
            text.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: wisp-test\n    path: {}\n",
                users.display()
            ));
        }
        std::fs::write(&config, text).expect("registry config");
        let mut command = Command::new(program("docker-registry"));
        command.arg("serve").arg(&config);
        let process = Spawned::spawn(command, "docker-registry");
        assert!(listening(port).await, "docker-registry did not start");
        Registry {
            _process: process,
            _store: store,
            host: format!("127.0.0.1:{port}"),
        }
    }
}
