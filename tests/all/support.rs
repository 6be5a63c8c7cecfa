//! Test support: a real `wisp serve` process on ephemeral loopback ports,
//! stopped on drop, a small real HTTP client, its metrics as numbers, and
//! [`eventually`], the one way a test waits for something to happen.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The `wisp` binary under test.
pub const WISP: &str = env!("CARGO_BIN_EXE_wisp");

/// How long a server gets to print its addresses.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `wisp serve`.
pub struct Wisp {
    child: Option<Child>,
    /// Public listener address.
    pub public: SocketAddr,
    /// Admin listener address.
    pub admin: SocketAddr,
    data: Option<TempDir>,
    log: PathBuf,
    args: Vec<String>,
}

impl Wisp {
    /// Starts a server with a fresh data dir.
    pub fn start() -> Wisp {
        Wisp::start_with(&[])
    }

    /// Starts a server with extra `serve` flags.
    pub fn start_with(args: &[&str]) -> Wisp {
        let data = tempfile::tempdir().expect("temp dir");
        Wisp::start_in(data, args.iter().map(|s| (*s).to_owned()).collect(), &[])
    }

    /// Starts a server with extra flags and environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Wisp {
        let data = tempfile::tempdir().expect("temp dir");
        Wisp::start_in(data, args.iter().map(|s| (*s).to_owned()).collect(), env)
    }

    /// Starts a server with extra flags on a data dir that `prepare` has
    /// laid out first (it gets the data dir's path, not yet created).
    pub fn start_prepared(args: &[&str], prepare: impl FnOnce(&Path)) -> Wisp {
        let data = tempfile::tempdir().expect("temp dir");
        prepare(&data.path().join("data"));
        Wisp::start_in(data, args.iter().map(|s| (*s).to_owned()).collect(), &[])
    }

    /// Starts a server with extra flags whose process may open at most
    /// `files` files (soft and hard `RLIMIT_NOFILE`, set by `sh`'s `ulimit`).
    pub fn start_with_file_limit(args: &[&str], files: u32) -> Wisp {
        let data = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {files} && exec \"$0\" \"$@\""),
            WISP,
        ]);
        Wisp::launch(
            command,
            data,
            args.iter().map(|s| (*s).to_owned()).collect(),
            &[],
        )
    }

    fn start_in(data: TempDir, args: Vec<String>, env: &[(&str, &str)]) -> Wisp {
        Wisp::launch(Command::new(WISP), data, args, env)
    }

    fn launch(
        mut command: Command,
        data: TempDir,
        args: Vec<String>,
        env: &[(&str, &str)],
    ) -> Wisp {
        let log = data.path().join(format!("serve-{}.log", fastrand_suffix()));
        let stderr = std::fs::File::create(&log).expect("log file");
        command
            .arg("serve")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data.path().join("data"))
            .args(crate::SERVE_ARGS)
            .args(&args)
            .env_remove("WISP_ADMIN_TOKEN")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn wisp serve");
        let stdout = child.stdout.take().expect("stdout");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut public = None;
        let mut admin = None;
        while public.is_none() || admin.is_none() {
            let line = match lines_rx.recv_timeout(START_TIMEOUT) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "wisp serve did not print its addresses; its log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            };
            if let Some(addr) = line.strip_prefix("public: http://") {
                public = Some(addr.parse().expect("public addr"));
            } else if let Some(addr) = line.strip_prefix("admin: http://") {
                admin = Some(addr.parse().expect("admin addr"));
            }
        }
        Wisp {
            child: Some(child),
            public: public.expect("public"),
            admin: admin.expect("admin"),
            data: Some(data),
            log,
            args,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.data.as_ref().expect("data").path().join("data")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// URL of `path` on the public listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    /// URL of `path` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.stop_with("TERM")
    }

    /// Sends SIGINT (what Ctrl-C sends) and waits (bounded) for the exit
    /// status.
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        self.stop_with("INT")
    }

    fn stop_with(&mut self, signal: &str) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status();
        self.wait_for_exit()
    }

    /// Kills the server with SIGKILL (no chance to clean up).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (bounded) for a server that is going down by itself to exit.
    pub fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        for _ in 0..600 {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!("wisp serve did not exit within 60 s");
    }

    /// Stops the server and starts a new one on the same data dir, with
    /// extra environment variables (for that process only: a restart after
    /// it goes without them).
    pub fn restart_with_env(mut self, env: &[(&str, &str)]) -> Wisp {
        self.kill9();
        let data = self.data.take().expect("data");
        Wisp::start_in(data, std::mem::take(&mut self.args), env)
    }

    /// Stops the server and starts a new one on the same data dir.
    pub fn restart(mut self) -> Wisp {
        self.kill9();
        self.restart_stopped()
    }

    /// Starts a new server on the data dir of this stopped one.
    pub fn restart_stopped(mut self) -> Wisp {
        let args = std::mem::take(&mut self.args);
        self.restart_stopped_with_args(args)
    }

    /// Starts a new server on the data dir of this stopped one, with `args`
    /// as its extra flags instead of the ones it had.
    pub fn restart_stopped_with(self, args: &[&str]) -> Wisp {
        self.restart_stopped_with_args(args.iter().map(|s| (*s).to_owned()).collect())
    }

    fn restart_stopped_with_args(mut self, args: Vec<String>) -> Wisp {
        assert!(self.child.is_none(), "stop the server first");
        let data = self.data.take().expect("data");
        Wisp::start_in(data, args, &[])
    }

    /// Deploys `wasm` as `name` through the admin API with `query` settings.
    pub async fn deploy(&self, name: &str, wasm: impl Into<Bytes>, query: &str) -> Response {
        let url = self.admin_url(&format!("/v1/functions/{name}?{query}"));
        send(Method::PUT, &url, &[], wasm.into()).await
    }

    /// Deploys, and panics with the host's message unless it succeeds.
    pub async fn deploy_ok(&self, name: &str, wasm_path: &str, query: &str) -> serde_json::Value {
        let wasm = std::fs::read(wasm_path).expect("read guest");
        let response = self.deploy(name, wasm, query).await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "deploy {name}: {}",
            response.text()
        );
        response.json()
    }

    /// `GET` on the public listener.
    pub async fn get(&self, path: &str) -> Response {
        send(Method::GET, &self.url(path), &[], Bytes::new()).await
    }

    /// `GET` on the admin listener.
    pub async fn admin_get(&self, path: &str) -> Response {
        send(Method::GET, &self.admin_url(path), &[], Bytes::new()).await
    }

    /// Function `name`'s usage once `requests` runs are in it. A run in a
    /// worker process is booked when its report reaches the front, which
    /// may be a moment after its response: wait for it (10 s at most, then
    /// panic), never read a count that is still on its way.
    pub async fn usage(&self, name: &str, requests: u64) -> serde_json::Value {
        let path = format!("/v1/functions/{name}/usage");
        let mut usage = serde_json::Value::Null;
        let booked = eventually(Duration::from_secs(10), async || {
            usage = self.admin_get(&path).await.json()["usage"].clone();
            usage["requests"].as_u64() >= Some(requests)
        })
        .await;
        assert!(
            booked,
            "{name}'s usage never reached {requests} runs: {usage}"
        );
        usage
    }

    /// Scrapes the admin listener's `/metrics` (panics unless it is
    /// Prometheus text).
    pub async fn metrics(&self) -> Metrics {
        let text = self.admin_get("/metrics").await.text();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines)
            .unwrap_or_else(|e| panic!("/metrics is not Prometheus text ({e}):\n{text}"));
        Metrics {
            samples: scrape.samples,
            text,
        }
    }

    /// Sum of the series of metric `name` whose labels include `labels`
    /// (panics if there is none).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics().await.sum(name, labels)
    }

    /// How many `wisp __compile-worker` children the server has now: a
    /// compile in progress.
    pub fn compile_workers(&self) -> usize {
        let pid = self.pid().to_string();
        std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter(|entry| {
                let dir = entry.path();
                let parent = std::fs::read_to_string(dir.join("stat"))
                    .ok()
                    .and_then(|stat| {
                        // `pid (comm) state ppid …`; comm may hold spaces.
                        let after = stat.rsplit_once(')')?.1.to_owned();
                        after.split_whitespace().nth(1).map(str::to_owned)
                    });
                parent.as_deref() == Some(pid.as_str())
                    && std::fs::read(dir.join("cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("__compile-worker"))
            })
            .count()
    }

    /// Resident set size of the server process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:") * 1024
    }

    /// Peak resident set size of the server process, in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:") * 1024
    }

    /// Runs a `wisp` client command against this server's admin API.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_command(args)()
    }

    /// A `wisp` client command against this server's admin API, to run
    /// later (on another thread).
    pub fn cli_command(
        &self,
        args: &[&str],
    ) -> impl FnOnce() -> std::process::Output + Send + 'static {
        let mut command = Command::new(WISP);
        command
            .args(args)
            .env("WISP_ADMIN_URL", self.admin_url(""))
            .env_remove("WISP_ADMIN_TOKEN");
        move || command.output().expect("run wisp")
    }

    /// Runs a `wisp` client command with `input` on its stdin.
    pub fn cli_with_stdin(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(WISP)
            .args(args)
            .env("WISP_ADMIN_URL", self.admin_url(""))
            .env_remove("WISP_ADMIN_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run wisp");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input)
            .expect("write stdin");
        child.wait_with_output().expect("wait for wisp")
    }

    /// Runs a `wisp` client command with extra environment variables.
    pub fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut command = Command::new(WISP);
        command
            .args(args)
            .env("WISP_ADMIN_URL", self.admin_url(""))
            .env_remove("WISP_ADMIN_TOKEN");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("run wisp")
    }
}

impl Drop for Wisp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- wisp serve log ---\n{}", self.log());
        }
        self.kill9();
    }
}

fn fastrand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("status field")
}

/// One scrape of `/metrics`.
pub struct Metrics {
    samples: Vec<prometheus_parse::Sample>,
    /// The text as served, for messages.
    pub text: String,
}

impl Metrics {
    /// Sum of the counters, gauges and plain samples called `name` whose
    /// labels include `labels`; panics if there is none, so a metric that
    /// is renamed or never registered cannot pass for a zero.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let values: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .filter_map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
            .collect();
        assert!(
            !values.is_empty(),
            "no sample `{name}` {labels:?} in:\n{}",
            self.text
        );
        values.iter().sum()
    }
}

/// How often [`eventually`] checks.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Checks `check` every 50 ms until it holds or `limit` has passed; true if
/// it held. Tests wait with this on something they can observe (a metric, a
/// log line, a process), never with a sleep that guesses how long it takes.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Response {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error` of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// Sends one HTTP/1.1 request and reads the whole response.
pub async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: Bytes) -> Response {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).expect("request");
    let response = tokio::time::timeout(Duration::from_secs(120), client.request(request))
        .await
        .expect("response within 120 s")
        .unwrap_or_else(|e| panic!("request to {url} failed: {e:?}"));
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("read body").to_bytes();
    Response {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Starts `path` (a `sleep` guest's, with `head=first`) and returns the
/// response once its head has arrived: the request is then running, on the
/// version its `x-wisp-version` names.
pub async fn start_slow(wisp: &Wisp, path: &str) -> http::Response<hyper::body::Incoming> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client.get(wisp.url(path).parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response
}

/// Reads the rest of a response started by [`start_slow`].
pub async fn finish(response: http::Response<hyper::body::Incoming>) -> String {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// A process's standard output, as text.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A process's standard error, as text.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Reads a guest artifact built by `wisp-test-artifacts`.
pub fn guest(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read guest {path}: {e}"))
}

/// A guest that may be missing because its toolchain is: fail loudly.
pub fn required_guest(built: Result<&'static str, &'static str>) -> &'static str {
    built.unwrap_or_else(|why| panic!("this test needs a guest whose toolchain is missing: {why}"))
}

/// Files under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A child process of a test (`wisp up --watch`, `wisp logs --follow`,
/// `wasmtime serve` …), killed and reaped when dropped, so a failing test
/// leaks no process; its stderr goes to a file, printed if the test panics.
pub struct Spawned {
    child: Child,
    stderr: PathBuf,
    _dir: TempDir,
    what: String,
}

impl Spawned {
    /// Spawns `command` (its stderr captured), described as `what`.
    pub fn spawn(mut command: Command, what: &str) -> Spawned {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = dir.path().join("stderr");
        command.stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what} failed: {e}"));
        Spawned {
            child,
            stderr,
            _dir: dir,
            what: what.to_owned(),
        }
    }

    /// The running child.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} stderr ---\n{}", self.what, self.stderr());
        }
    }
}

/// A CGI module of `functions` small distinct functions: quick to upload,
/// slow and memory-hungry to compile (a compile bomb, at large counts).
pub fn costly_to_compile(functions: usize) -> Vec<u8> {
    let mut text = String::from("(module (func (export \"_start\"))\n");
    for i in 0..functions {
        text.push_str(&format!(
            "(func (param i64) (result i64) local.get 0 i64.const {i} i64.mul i64.const 7 i64.xor)\n"
        ));
    }
    text.push(')');
    wat::parse_str(&text).expect("valid wat")
}

/// When each cron run of `function` ended, from the access log's
/// timestamps.
pub fn cron_runs(log: &str, function: &str) -> Vec<jiff::Timestamp> {
    log.lines()
        .filter(|l| {
            l.contains("wisp::access")
                && l.contains("trigger=\"cron\"")
                && l.contains(&format!("function=\"{function}\""))
        })
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Sends an async `POST` to `path` and returns the call id of its `202`.
pub async fn accept(
    wisp: &Wisp,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> String {
    let mut all = vec![("prefer", "respond-async")];
    all.extend_from_slice(headers);
    let response = send(Method::POST, &wisp.url(path), &all, Bytes::from(body)).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    assert_eq!(response.header("preference-applied"), Some("respond-async"));
    let id = response
        .header("x-wisp-call-id")
        .expect("a call id")
        .to_owned();
    assert_eq!(response.json()["id"], id.as_str());
    id
}

/// Polls call `id` until it is done or failed.
pub async fn finished(wisp: &Wisp, id: &str, limit: Duration) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let done = eventually(limit, async || {
        last = wisp.admin_get(&format!("/v1/calls/{id}")).await.json();
        last["state"] == "done" || last["state"] == "failed"
    })
    .await;
    assert!(done, "call {id} did not finish in {limit:?}: {last}");
    last
}

/// Runs git in `dir` with no user or system configuration and no prompts.
pub fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("git")
        .args(["-c", "user.email=dev@example.com", "-c", "user.name=dev"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("run git")
}

/// Commits everything in `dir`.
pub fn committed(dir: &Path, message: &str) {
    assert!(git(dir, &["add", "-A"]).status.success());
    let commit = git(dir, &["commit", "-qm", message]);
    assert!(commit.status.success(), "{}", stderr(&commit));
}
