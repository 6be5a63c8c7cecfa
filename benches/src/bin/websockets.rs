//! WebSocket benchmarks against a real `wisp serve` (the release build in
//! `target/release/wisp`; `WISP=PATH` names another), each with a fresh
//! data directory, on loopback:
//!
//! * `websockets idle N` (`AT_ONCE=K` handshakes at a time, default 64)
//!   — N idle connections to the `websocket` guest: the
//!   growth of the server's resident memory over the second half of them,
//!   a connection's cost (the first half warms what does not grow);
//! * `websockets echo C SECONDS` — C clients each sending a message and
//!   waiting for its echo (every message a call in a fresh sandbox):
//!   round trips a second, all clients together, against C HTTP clients
//!   asking the same function for a page in the same run;
//! * `websockets fanout N ROUNDS` — N clients of the chat template in one
//!   room; each round publishes one message through the admin API and
//!   times its arrival at every client: p50 and p99 of those latencies.
//!
//! `cargo build --release -p wisp-cli -p wisp-benches --bin wisp --bin websockets`
//! `target/release/websockets idle 10000`

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wisp_test_artifacts as artifacts;

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running `wisp serve`, stopped when dropped.
struct Server {
    child: Child,
    public: String,
    admin: String,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let data = tempfile::tempdir().expect("a data dir");
        let wisp = std::env::var("WISP").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/wisp").to_owned()
        });
        let mut child = Command::new(&wisp)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(["--max-websockets", "200000", "--websocket-rate", "1000000"])
            .args(["--max-websockets-per-ip", "200000"])
            .args(["--websocket-idle", "1h", "--access-log", "false"])
            .arg("--data-dir")
            .arg(data.path())
            .env_remove("WISP_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {wisp}: {e} (build it: cargo build --release -p wisp-cli)")
            });
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut address = |prefix: &str| {
            let line = lines.next().expect("a line").expect("text");
            line.strip_prefix(prefix)
                .unwrap_or_else(|| panic!("expected `{prefix}…`, got {line}"))
                .to_owned()
        };
        let public = address("public: http://");
        let admin = address("admin: http://");
        Server {
            child,
            public,
            admin,
            _data: data,
        }
    }

    /// Sends `method PATH` with `body` to the admin API; panics unless it
    /// succeeds.
    async fn admin(&self, method: http::Method, path: &str, body: Vec<u8>) {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.admin))
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("a request");
        let response = client
            .request(request)
            .await
            .expect("the admin API answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }

    async fn deploy(&self, name: &str, wasm: &str, query: &str) {
        let body = std::fs::read(wasm).expect("the guest is built");
        let path = format!("/v1/functions/{name}?{query}");
        self.admin(http::Method::PUT, &path, body).await;
    }

    async fn publish(&self, body: String) {
        let path = "/v1/functions/chat/publish";
        self.admin(http::Method::POST, path, body.into_bytes())
            .await;
    }

    fn resident_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server runs");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    async fn connect(&self, path: &str) -> Client {
        let url = format!("ws://{}{path}", self.public);
        let (mut client, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the handshake succeeds");
        // The function's greeting.
        next_text(&mut client).await;
        client
    }
}

async fn next_text(client: &mut Client) -> String {
    loop {
        match client.next().await {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(_)) => {}
            other => panic!("the connection ended: {other:?}"),
        }
    }
}

/// Raises this process's open-file limit (and so the server's, which
/// inherits it) to its hard limit.
fn raise_open_files() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        eprintln!("raising the open-file limit failed: {e}");
    }
}

async fn connect_many(server: &Arc<Server>, path: &'static str, count: usize) -> Vec<Client> {
    let at_once = std::env::var("AT_ONCE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    let gate = Arc::new(tokio::sync::Semaphore::new(at_once));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let server = server.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire().await.expect("open");
                server.connect(path).await
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(count);
    for task in tasks {
        clients.push(task.await.expect("connected"));
    }
    clients
}

async fn idle(count: usize) {
    let server = Arc::new(Server::start());
    server
        .deploy(
            "ws",
            artifacts::WEBSOCKET_COMPONENT,
            "route=/ws&websocket=on&websocket-max-connections=200000",
        )
        .await;
    // The first half warms what does not grow with connections (the
    // code, the sandbox pool's slots the handshakes touched); the second
    // half's growth is what connections cost.
    let half = (count / 2).max(1);
    let first = connect_many(&server, "/ws", half).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = server.resident_kib();
    let started = Instant::now();
    let second = connect_many(&server, "/ws", half).await;
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.resident_kib();
    let each = (after.saturating_sub(before)) as f64 / half as f64;
    println!(
        "idle: {} connections held; the last {half} opened in {:.1} s and took the server from {before} KiB to {after} KiB: {each:.1} KiB each ({:.0} per GiB)",
        2 * half,
        opened.as_secs_f64(),
        (1 << 20) as f64 / each.max(0.001)
    );
    drop((first, second));
}

async fn echo(count: usize, seconds: u64) {
    let server = Arc::new(Server::start());
    server
        .deploy(
            "ws",
            artifacts::WEBSOCKET_COMPONENT,
            "route=/ws&websocket=on",
        )
        .await;
    let clients = connect_many(&server, "/ws", count).await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    client.send(Message::text("x")).await.expect("sent");
                    next_text(&mut client).await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("a client");
    }
    let echoes = total as f64 / seconds as f64;
    // The baseline, in the same run: as many HTTP clients asking the same
    // function for a plain page, one request at a time each.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let url: http::Uri = format!("http://{}/ws", server.public)
        .parse()
        .expect("a URL");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let response = client.get(url.clone()).await.expect("an answer");
                    http_body_util::BodyExt::collect(response.into_body())
                        .await
                        .expect("a body");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut requests = 0;
    for task in tasks {
        requests += task.await.expect("a client");
    }
    let plain = requests as f64 / seconds as f64;
    println!(
        "echo: {count} clients: {echoes:.0} WebSocket round trips a second (each a call in a fresh sandbox); {plain:.0} plain HTTP requests a second to the same function; ratio {:.2}",
        echoes / plain
    );
}

async fn fanout(count: usize, rounds: usize) {
    let server = Arc::new(Server::start());
    server
        .deploy(
            "chat",
            artifacts::CHAT_COMPONENT,
            "route=/chat&websocket=on&websocket-max-connections=200000",
        )
        .await;
    let clients = connect_many(&server, "/chat", count).await;
    let sent_at = Arc::new(std::sync::Mutex::new(Instant::now()));
    let (latencies, mut arrived) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    for mut client in clients {
        let sent_at = sent_at.clone();
        let latencies = latencies.clone();
        tokio::spawn(async move {
            for _ in 0..rounds {
                next_text(&mut client).await;
                let elapsed = sent_at.lock().expect("a clock").elapsed();
                if latencies.send(elapsed).is_err() {
                    return;
                }
            }
        });
    }
    let mut all = Vec::with_capacity(count * rounds);
    for round in 0..rounds {
        *sent_at.lock().expect("a clock") = Instant::now();
        server
            .publish(format!(
                r#"{{"items": [{{"channel": "lobby", "ws-message": {{"content": "round {round}"}}}}]}}"#
            ))
            .await;
        for _ in 0..count {
            all.push(arrived.recv().await.expect("a delivery"));
        }
    }
    all.sort();
    let at = |q: f64| all[((all.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "fanout: {count} subscribers, {rounds} publishes: delivery p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn main() {
    raise_open_files();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| {
        args.get(i)
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(default)
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    match args.first().map(String::as_str) {
        Some("idle") => runtime.block_on(idle(number(1, 10_000))),
        Some("echo") => runtime.block_on(echo(number(1, 32), number(2, 10) as u64)),
        Some("fanout") => runtime.block_on(fanout(number(1, 1000), number(2, 20))),
        _ => {
            eprintln!(
                "usage: websockets idle N | echo CLIENTS SECONDS | fanout SUBSCRIBERS ROUNDS"
            );
            std::process::exit(2);
        }
    }
}
