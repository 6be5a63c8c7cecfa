//! Builds on the host (feature `build`): a function's source tree, uploaded
//! as a tar archive, is built by its language's toolchain into a `.wasm`,
//! which the caller then deploys like an upload. [`Builds`] owns it all:
//! which builders this host has ([`toolchains`]), unpacking the upload
//! within bounds ([`unpack`]), deciding the command ([`plan`]), running it
//! in a jailed child process ([`child`], [`jail`]) within its limits and
//! time, streaming its output, and reading the result without following
//! a link the build planted.
//!
//! Each function has a directory under `DATA_DIR/builds/NAME/`: `work/`
//! (the unpacked tree, emptied before each build and removed after it),
//! `cache/` (cargo's registry and target dir, pip's and npm's caches,
//! kept between builds so the second build of a small change is fast) and
//! `last.log` (the last build's output, `wisp logs NAME --build`) and
//! `tree-state.json` (what the last tree held, see [`freshness`]). One
//! build per function runs at a time; `max_builds` at a time in all (the
//! rest wait, and are told so).

mod child;
mod freshness;
mod jail;
mod plan;
mod repo;
mod tokens;
mod toolchains;
mod unpack;

pub use child::{BUILD_USER, build_child_main};
pub use repo::HOOK_COMMAND;
pub use tokens::{DeployTokens, MAX_TOKENS_PER_FUNCTION};
pub use toolchains::{Builder, Language};

use crate::error::DeployError;
use bytes::Bytes;
use child::{CACHE_VIEW, Job, Limits};
use plan::{Output, Plan};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use wisp_spec::settings::RawSettings;
use wisp_spec::units::{format_duration, format_size};

/// How builds run on a host ([`crate::HostConfig::builds`]).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The program each build's jailed child runs: one that calls
    /// [`build_child_main`] (the `wisp` binary, with `args`).
    pub program: PathBuf,
    /// Its arguments, e.g. a hidden subcommand.
    pub args: Vec<OsString>,
    /// Longest a build may take (wall clock; each of its processes also
    /// gets as many CPU seconds).
    pub timeout: Duration,
    /// Builds at once, host-wide (at least 1); the rest wait.
    pub max_builds: usize,
    /// May builds open internet sockets (to fetch dependencies).
    pub network: bool,
    /// Data segment (heap) of each build process, bytes.
    pub memory: u64,
    /// Largest size a source tree may unpack to, bytes.
    pub max_source: u64,
    /// Largest `.wasm` a build may produce, bytes.
    pub max_output: u64,
    /// The branch whose pushes are built and deployed (others are kept,
    /// not built).
    pub deploy_branch: String,
    /// Largest size of a function's git repository, bytes.
    pub repo_quota: u64,
    /// Disk a function's tree and build cache may take together, bytes: a
    /// build past it is stopped (weighed every few seconds), and a cache
    /// past it after a build is emptied.
    pub disk: u64,
    /// The port of the host's public listener, if known: a push then ends
    /// with the function's URL (the host name the pusher used, this port).
    pub public_port: Option<u16>,
}

/// Default [`BuildOptions::timeout`]: 10 minutes.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(600);
/// Default [`BuildOptions::memory`]: 4 GiB.
pub const DEFAULT_BUILD_MEMORY: u64 = 4 << 30;
/// Default [`BuildOptions::max_source`]: 512 MiB.
pub const DEFAULT_MAX_SOURCE: u64 = 512 << 20;
/// Default [`BuildOptions::disk`]: 8 GiB.
pub const DEFAULT_BUILD_DISK: u64 = 8 << 30;
/// Default [`BuildOptions::repo_quota`]: 256 MiB.
pub const DEFAULT_REPO_QUOTA: u64 = 256 << 20;

/// Files and directories a source tree may hold.
const MAX_ENTRIES: usize = 200_000;
/// Largest file a build may write (`RLIMIT_FSIZE`).
const MAX_FILE_BYTES: u64 = 2 << 30;
/// Processes (threads included) of all builds at once, as root.
const MAX_PROCESSES: u64 = 512;
/// Output a build may write before it is stopped.
const MAX_LOG_BYTES: u64 = 8 << 20;
/// Output kept in `last.log` (its end).
const KEPT_LOG_BYTES: usize = 1 << 20;
/// After this long without output, the user is told the build goes on.
const QUIET: Duration = Duration::from_secs(15);
/// How often a running build's disk use is weighed.
const DISK_CHECK: Duration = Duration::from_secs(2);

/// The builds of one host.
pub struct Builds {
    options: BuildOptions,
    builders: tokio::sync::OnceCell<Vec<Builder>>,
    dir: PathBuf,
    slots: Semaphore,
    running: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pushing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    spools: AtomicU64,
    tokens: DeployTokens,
}

/// A build's result, ready to deploy.
#[derive(Debug)]
pub struct Built {
    /// The `.wasm`.
    pub wasm: Bytes,
    /// The builder, when the language could be told.
    pub language: Option<Language>,
    /// The route the tree's `wisp.toml` gives.
    pub route: Option<String>,
    /// The settings the tree's `wisp.toml` gives.
    pub settings: RawSettings,
    /// How long the build took.
    pub took: Duration,
}

/// How a build ended, short of a `.wasm`.
enum Ended {
    Exited(std::process::ExitStatus),
    TimedOut,
    TooLoud,
    TooBig,
}

impl Builds {
    /// The builds of a host whose data directory is `data_dir`. The
    /// builders are found on first need (`/healthz`, a build), not here:
    /// finding them runs every toolchain (~1 s), which a host that never
    /// builds should not pay at each start.
    pub fn new(options: BuildOptions, data_dir: &Path) -> Builds {
        Builds {
            slots: Semaphore::new(options.max_builds.max(1)),
            options,
            builders: tokio::sync::OnceCell::new(),
            tokens: DeployTokens::open(data_dir.join("builds/deploy-tokens.json")),
            dir: data_dir.join("builds"),
            running: Mutex::default(),
            pushing: Mutex::default(),
            spools: AtomicU64::new(0),
        }
    }

    /// How builds run here.
    pub fn options(&self) -> &BuildOptions {
        &self.options
    }

    /// The deploy tokens.
    pub fn tokens(&self) -> &DeployTokens {
        &self.tokens
    }

    /// Function `name`'s git repository, made if it does not exist yet
    /// (blocking). The error is for the host log.
    pub fn repository(&self, name: &str) -> Result<PathBuf, String> {
        crate::disk::private::create(&self.dir).map_err(|e| e.to_string())?;
        repo::ensure(&self.dir.join(name), &self.options.program)
    }

    /// Bytes function `name`'s git repository takes.
    pub fn repository_size(&self, name: &str) -> u64 {
        repo::size_of(&self.dir.join(name).join("repo.git"))
    }

    /// Function `name`'s build directory, where its repository is
    /// `repo.git`.
    pub fn repository_top(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A fresh path where a git request's body to function `name` may be
    /// spooled before git reads it.
    pub(crate) fn spool(&self, name: &str) -> PathBuf {
        let n = self.spools.fetch_add(1, Ordering::Relaxed);
        self.dir.join(name).join(format!("request-{n}.tmp"))
    }

    /// Waits until no other push to function `name` runs, and holds that
    /// until the guard drops: one push at a time per function, so a push
    /// that started from a branch another push has moved is refused, not
    /// deployed.
    pub async fn push_turn(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = {
            let mut pushing = self.pushing.lock().unwrap_or_else(|e| e.into_inner());
            pushing.entry(name.to_owned()).or_default().clone()
        };
        turn.lock_owned().await
    }

    /// Every builder, available or not, with why (found, and logged, on
    /// the first call).
    pub async fn builders(&self) -> &[Builder] {
        self.builders
            .get_or_init(|| async {
                let builders = tokio::task::spawn_blocking(toolchains::detect)
                    .await
                    .unwrap_or_default();
                for builder in &builders {
                    if builder.available {
                        tracing::info!(builder = builder.language.name(), detail = %builder.detail, "builder available");
                    } else {
                        tracing::info!(builder = builder.language.name(), why = %builder.detail, "builder unavailable");
                    }
                }
                builders
            })
            .await
    }

    /// The last build's output of function `name`, if it had one.
    pub fn last_log(&self, name: &str) -> Option<String> {
        std::fs::read(self.dir.join(name).join("last.log"))
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Deletes function `name`'s build directory (its repository, cache
    /// and last log) and its deploy tokens.
    pub fn forget(&self, name: &str) {
        self.tokens.forget(name);
        let dir = self.dir.join(name);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(function = name, error = %e, "removing the build directory failed");
        }
    }

    /// Builds the tree in `archive` (a tar archive, gzipped or not) as
    /// function `name`, sending its output, a line at a time, to `log`.
    /// The error says why, for the user (the log has the build's own
    /// words).
    pub async fn build(
        &self,
        name: &str,
        archive: Bytes,
        log: &mpsc::Sender<String>,
    ) -> Result<Built, DeployError> {
        let transcript = Transcript::new(log);
        let mine = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.entry(name.to_owned()).or_default().clone()
        };
        let _one_per_function = match mine.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                transcript
                    .say(format!("waiting for the build of `{name}` already running"))
                    .await;
                mine.lock().await
            }
        };
        let _slot = match self.slots.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                transcript
                    .say(format!(
                        "queued: {} build(s) at a time on this host (`wisp serve --max-builds`)",
                        self.options.max_builds.max(1)
                    ))
                    .await;
                self.slots
                    .acquire()
                    .await
                    .map_err(|_| DeployError::Build("the host is shutting down".into()))?
            }
        };
        let started = Instant::now();
        let dirs = Dirs::of(&self.dir, name);
        let result = self.build_in(&dirs, name, archive, &transcript).await;
        let cleanup = dirs.clone();
        let _ = tokio::task::spawn_blocking(move || cleanup.finish()).await;
        if dirs.weigh().await > self.options.disk {
            let cache = dirs.cache.clone();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(cache)).await;
            transcript
                .say(format!(
                    "the build cache passed {} (`wisp serve --build-disk`) and was emptied: the next build starts afresh",
                    format_size(self.options.disk)
                ))
                .await;
        }
        let took = started.elapsed();
        match &result {
            Ok((wasm, _)) => {
                transcript
                    .say(format!(
                        "built {} in {}",
                        wisp_spec::units::format_size_approx(wasm.len() as u64),
                        seconds(took)
                    ))
                    .await;
            }
            Err(e) => {
                let e = printable(&e.to_string());
                if !self.options.network && e.starts_with("the build failed") {
                    transcript
                        .say("builds have no network on this host: dependencies must be in the tree (vendored) or in the function's build cache (`wisp serve --build-network allow` lets builds fetch them)".into())
                        .await;
                }
                transcript.keep(&format!("wisp: {e}"));
            }
        }
        let saved = (transcript.clone(), dirs.log_path());
        let _ = tokio::task::spawn_blocking(move || saved.0.save(&saved.1)).await;
        let (wasm, plan) = result?;
        Ok(Built {
            wasm,
            language: plan.language,
            route: plan.route,
            settings: plan.settings,
            took,
        })
    }

    /// Unpacks, plans, runs and reads the build's output.
    async fn build_in(
        &self,
        dirs: &Dirs,
        name: &str,
        archive: Bytes,
        transcript: &Arc<Transcript>,
    ) -> Result<(Bytes, Plan), DeployError> {
        let prepared = {
            let builders = self.builders().await.to_vec();
            let (dirs, name) = (dirs.clone(), name.to_owned());
            let max_source = self.options.max_source;
            tokio::task::spawn_blocking(move || {
                dirs.prepare(&archive, &name, &builders, max_source)
            })
            .await
            .map_err(|e| DeployError::Build(format!("preparing the build failed: {e}")))?
        };
        let (plan, before) = prepared?;
        transcript
            .say(format!(
                "building `{name}` with {}: {}",
                plan.language.map_or("its own command", Language::name),
                plan.command
            ))
            .await;
        self.run(dirs, name, &plan, transcript).await?;
        let (dirs, output, max) = (dirs.clone(), plan.output.clone(), self.options.max_output);
        let wasm = tokio::task::spawn_blocking(move || dirs.read_output(&output, &before, max))
            .await
            .map_err(|e| DeployError::Build(format!("reading the build's output failed: {e}")))??;
        Ok((wasm, plan))
    }

    /// Runs the plan's command in the jailed child, streaming its output.
    async fn run(
        &self,
        dirs: &Dirs,
        name: &str,
        plan: &Plan,
        transcript: &Arc<Transcript>,
    ) -> Result<(), DeployError> {
        let job = self.job(dirs, name, plan, self.builders().await);
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            DeployError::Build(format!("{what} failed: {e} (see the host log)"))
        };
        let (reader, writer) = std::io::pipe().map_err(|e| failed("making a pipe", &e))?;
        let second = writer
            .try_clone()
            .map_err(|e| failed("making a pipe", &e))?;
        let mut child = std::process::Command::new(&self.options.program)
            .args(&self.options.args)
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stdout(writer)
            .stderr(second)
            .spawn()
            .map_err(|e| {
                tracing::error!(error = %e, "starting a build child failed");
                failed("starting the build", &e)
            })?;
        let pid = child.id();
        if let Some(mut stdin) = child.stdin.take() {
            let job = serde_json::to_vec(&job).unwrap_or_default();
            stdin
                .write_all(&job)
                .map_err(|e| failed("handing the build its job", &e))?;
        }
        let last_output = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let lines = {
            let (transcript, last_output) = (transcript.clone(), last_output.clone());
            tokio::task::spawn_blocking(move || {
                relay(reader, &transcript, &last_output, started, pid)
            })
        };
        let mut waited = tokio::task::spawn_blocking(move || child.wait());
        let deadline = tokio::time::sleep(self.options.timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(QUIET);
        ticker.tick().await;
        let mut weigh = tokio::time::interval(DISK_CHECK);
        weigh.tick().await;
        let ended = loop {
            tokio::select! {
                status = &mut waited => {
                    match status {
                        Ok(Ok(status)) => break Ended::Exited(status),
                        Ok(Err(e)) => {
                            kill_group(pid);
                            return Err(failed("waiting for the build", &e));
                        }
                        Err(e) => {
                            kill_group(pid);
                            return Err(failed("waiting for the build", &e));
                        }
                    }
                }
                () = &mut deadline => {
                    kill_group(pid);
                    let _ = (&mut waited).await;
                    break Ended::TimedOut;
                }
                _ = weigh.tick() => {
                    if dirs.weigh().await > self.options.disk {
                        kill_group(pid);
                        let _ = (&mut waited).await;
                        break Ended::TooBig;
                    }
                }
                _ = ticker.tick() => {
                    let quiet_ms = (started.elapsed().as_millis() as u64)
                        .saturating_sub(last_output.load(Ordering::Relaxed));
                    if quiet_ms >= QUIET.as_millis() as u64 {
                        let so_far = Duration::from_secs(started.elapsed().as_secs());
                        transcript.say(format!("still building ({})", seconds(so_far))).await;
                    }
                }
            }
        };
        // Whatever the build left running goes with it.
        kill_group(pid);
        let too_loud = match tokio::time::timeout(Duration::from_secs(10), lines).await {
            Ok(Ok(too_loud)) => too_loud,
            _ => false,
        };
        let ended = if too_loud { Ended::TooLoud } else { ended };
        match ended {
            Ended::Exited(status) if status.success() => Ok(()),
            Ended::Exited(status) => Err(DeployError::Build(exit_reason(status))),
            Ended::TimedOut => Err(DeployError::Build(format!(
                "the build ran out of time ({}; `wisp serve --build-timeout`) and was stopped",
                format_duration(self.options.timeout)
            ))),
            Ended::TooBig => Err(DeployError::Build(format!(
                "the build's tree and cache passed {} on disk (`wisp serve --build-disk`) and it was stopped",
                format_size(self.options.disk)
            ))),
            Ended::TooLoud => Err(DeployError::Build(format!(
                "the build wrote more than {} of output and was stopped",
                format_size(MAX_LOG_BYTES)
            ))),
        }
    }

    /// The job the child gets: the command, its directories as it will
    /// see them, the toolchains it may use, its environment and limits.
    fn job(&self, dirs: &Dirs, name: &str, plan: &Plan, builders: &[Builder]) -> Job {
        let root = rustix::process::geteuid().is_root();
        let cache = if root {
            PathBuf::from(CACHE_VIEW)
        } else {
            dirs.cache.clone()
        };
        // A known language gets its own toolchain; a `wisp.toml` command
        // in a tree of no known language may call any of them.
        let builders: Vec<&Builder> = builders
            .iter()
            .filter(|b| b.available && plan.language.is_none_or(|l| l == b.language))
            .collect();
        let tools: Vec<PathBuf> = builders.iter().flat_map(|b| b.tools.clone()).collect();
        let mut path: Vec<PathBuf> = builders.iter().flat_map(|b| b.path.clone()).collect();
        path.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from));
        let path = std::env::join_paths(path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "/usr/bin:/bin".into());
        let at = |dir: &Path, sub: &str| dir.join(sub).to_string_lossy().into_owned();
        let mut env = vec![
            ("PATH".to_owned(), path),
            ("HOME".to_owned(), at(&cache, "home")),
            ("TMPDIR".to_owned(), at(&cache, "tmp")),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("WISP_FUNCTION".to_owned(), name.to_owned()),
            ("CARGO_HOME".to_owned(), at(&cache, "cargo")),
            ("CARGO_TARGET_DIR".to_owned(), at(&cache, "target")),
            ("CARGO_TERM_COLOR".to_owned(), "never".to_owned()),
            ("PIP_CACHE_DIR".to_owned(), at(&cache, "pip")),
            ("npm_config_cache".to_owned(), at(&cache, "npm")),
        ];
        if !self.options.network {
            env.push(("CARGO_NET_OFFLINE".to_owned(), "true".to_owned()));
            env.push(("npm_config_offline".to_owned(), "true".to_owned()));
        }
        let seconds = self.options.timeout.as_secs().max(1);
        Job {
            command: plan.command.clone(),
            work: dirs.work.clone(),
            cache: dirs.cache.clone(),
            tools,
            env,
            network: self.options.network,
            limits: Limits {
                cpu_seconds: seconds,
                memory_bytes: self.options.memory,
                file_bytes: MAX_FILE_BYTES,
                processes: MAX_PROCESSES,
            },
        }
    }
}

/// A build's output as the user sees it: each line goes to them as it
/// comes, and the end of it is kept as the function's `last.log`.
struct Transcript {
    log: mpsc::Sender<String>,
    tail: Mutex<(std::collections::VecDeque<String>, usize)>,
}

impl Transcript {
    fn new(log: &mpsc::Sender<String>) -> Arc<Transcript> {
        Arc::new(Transcript {
            log: log.clone(),
            tail: Mutex::default(),
        })
    }

    fn keep(&self, line: &str) {
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let (lines, bytes) = &mut *tail;
        *bytes += line.len() + 1;
        lines.push_back(line.to_owned());
        while *bytes > KEPT_LOG_BYTES {
            let Some(old) = lines.pop_front() else { break };
            *bytes -= old.len() + 1;
        }
    }

    /// A line of the host's own.
    ///
    /// Never waits for the user: a client that stops reading must not hold
    /// up the watch over the build (its time, its disk), so a note it has
    /// no room for is kept in `last.log` only.
    async fn say(&self, line: String) {
        let line = printable(&format!("wisp: {line}"));
        self.keep(&line);
        let _ = self.log.try_send(line);
    }

    /// A line of the build's, from a blocking thread.
    fn relay(&self, line: String) {
        self.keep(&line);
        let _ = self.log.blocking_send(line);
    }

    /// Writes what is kept to `path`.
    fn save(&self, path: &Path) {
        let text = {
            let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
            let mut text = tail
                .0
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("\n");
            text.push('\n');
            text
        };
        let temp = path.with_extension("log.tmp");
        if let Err(e) = crate::disk::write_file_atomically(&temp, path, text.as_bytes()) {
            tracing::warn!(error = %e, "keeping the build log failed");
        }
    }
}

/// `text` with control characters shown as `?` (tabs kept): neither a
/// build nor a tree's names may drive the user's terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

/// A build's duration as people say it: `41.1 s`.
pub fn seconds(took: Duration) -> String {
    format!("{:.1} s", took.as_secs_f64())
}

/// Why a build that exited unsuccessfully failed, in the user's words.
fn exit_reason(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(libc::SIGXCPU) => "the build ran out of CPU time and was stopped".into(),
        Some(libc::SIGXFSZ) => format!(
            "the build wrote a file larger than {} and was stopped",
            format_size(MAX_FILE_BYTES)
        ),
        Some(signal) => format!("the build was killed by signal {signal}"),
        None => match status.code() {
            Some(125) => "the build could not start (see its output)".into(),
            Some(code) => format!("the build command failed (exit status {code}); see its output"),
            None => "the build command failed".into(),
        },
    }
}

/// Kills every process of the build (its process group).
fn kill_group(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Passes the build's output on a line at a time (control characters
/// shown as `?`, so a build cannot drive the user's terminal), and stops
/// the build past [`MAX_LOG_BYTES`] (`true`).
fn relay(
    reader: std::io::PipeReader,
    transcript: &Transcript,
    last_output: &AtomicU64,
    started: Instant,
    pid: u32,
) -> bool {
    let mut reader = std::io::BufReader::new(reader.take(MAX_LOG_BYTES + 1));
    let mut total = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return total > MAX_LOG_BYTES,
            Ok(n) => total += n as u64,
        }
        if total > MAX_LOG_BYTES {
            kill_group(pid);
            return true;
        }
        last_output.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let text = printable(String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']));
        transcript.relay(text);
    }
}

/// A function's build directories.
#[derive(Debug, Clone)]
struct Dirs {
    top: PathBuf,
    work: PathBuf,
    cache: PathBuf,
}

/// The `.wasm` files at the top of a tree before its build: name, size,
/// modification time.
type Before = Vec<(OsString, u64, std::time::SystemTime)>;

impl Dirs {
    fn of(builds: &Path, name: &str) -> Dirs {
        let top = builds.join(name);
        Dirs {
            work: top.join("work"),
            cache: top.join("cache"),
            top,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.top.join("last.log")
    }

    /// Empties `work/` and unpacks the tree into it, makes the cache, hands
    /// both to the build user (as root), and plans the build.
    fn prepare(
        &self,
        archive: &[u8],
        name: &str,
        builders: &[Builder],
        max_source: u64,
    ) -> Result<(Plan, Before), DeployError> {
        let storage = |e: std::io::Error| {
            DeployError::Storage(crate::error::HostFailure::logged(
                "preparing the build directory failed",
                e,
            ))
        };
        if let Some(builds) = self.top.parent() {
            crate::disk::private::create(builds).map_err(storage)?;
        }
        std::fs::create_dir_all(&self.top).map_err(storage)?;
        match std::fs::remove_dir_all(&self.work) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(storage(e)),
            _ => {}
        }
        std::fs::create_dir(&self.work).map_err(storage)?;
        let fresh_cache = !self.cache.exists();
        std::fs::create_dir_all(&self.cache).map_err(storage)?;
        let _ = std::fs::remove_dir_all(self.cache.join("tmp"));
        for sub in ["tmp", "home"] {
            std::fs::create_dir_all(self.cache.join(sub)).map_err(storage)?;
        }
        unpack::unpack(
            archive,
            &self.work,
            unpack::Bounds {
                bytes: max_source,
                entries: MAX_ENTRIES,
            },
        )
        .map_err(DeployError::BadRequest)?;
        freshness::settle(&self.work, &self.top.join("tree-state.json")).map_err(storage)?;
        if rustix::process::geteuid().is_root() {
            hand_over(&self.work).map_err(storage)?;
            if fresh_cache {
                hand_over(&self.cache).map_err(storage)?;
            } else {
                for sub in ["", "tmp", "home"] {
                    chown(&self.cache.join(sub)).map_err(storage)?;
                }
            }
        }
        let plan = plan::plan(&self.work, name, builders).map_err(DeployError::Build)?;
        Ok((plan, wasm_at_top(&self.work)))
    }

    /// Reads the build's `.wasm` (no link followed, within `max` bytes).
    fn read_output(
        &self,
        output: &Output,
        before: &Before,
        max: u64,
    ) -> Result<Bytes, DeployError> {
        let (base, relative) = match output {
            Output::InTree(path) => (&self.work, path.clone()),
            Output::InCache(path) => (&self.cache, path.clone()),
            Output::NewAtTop => {
                let after = wasm_at_top(&self.work);
                let made: Vec<&OsString> = after
                    .iter()
                    .filter(|entry| !before.contains(entry))
                    .map(|(name, _, _)| name)
                    .collect();
                match made.as_slice() {
                    [one] => (&self.work, PathBuf::from(one)),
                    [] => {
                        return Err(DeployError::Build(
                            "the build made no .wasm file at the top of the tree (name it in a wisp.toml's `wasm`)".into(),
                        ));
                    }
                    several => {
                        let names: Vec<String> = several
                            .iter()
                            .map(|n| n.to_string_lossy().into_owned())
                            .collect();
                        return Err(DeployError::Build(format!(
                            "the build made several .wasm files ({}); name the one to deploy in a wisp.toml's `wasm`",
                            names.join(", ")
                        )));
                    }
                }
            }
        };
        read_beneath(base, &relative, max)
    }

    /// Bytes the tree and the cache take now.
    async fn weigh(&self) -> u64 {
        let (work, cache) = (self.work.clone(), self.cache.clone());
        tokio::task::spawn_blocking(move || repo::size_of(&work) + repo::size_of(&cache))
            .await
            .unwrap_or(0)
    }

    /// Removes the unpacked tree (the cache stays).
    fn finish(&self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// The regular `.wasm` files at the top of `tree`.
fn wasm_at_top(tree: &Path) -> Before {
    let Ok(entries) = std::fs::read_dir(tree) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let modified = meta.modified().ok()?;
            meta.is_file()
                .then(|| (e.file_name(), meta.len(), modified))
        })
        .collect()
}

/// Reads `relative` beneath `base` without following any link (a build
/// could plant one to a host file) and refuses more than `max` bytes or
/// anything but a regular file.
fn read_beneath(base: &Path, relative: &Path, max: u64) -> Result<Bytes, DeployError> {
    let shown = relative.display();
    let missing = |e: &dyn std::fmt::Display| {
        DeployError::Build(format!("the build's output `{shown}` cannot be read: {e}"))
    };
    let file = plan::open_beneath(base, relative).map_err(|e| match e {
        rustix::io::Errno::NOENT => DeployError::Build(format!("the build did not make `{shown}`")),
        e => missing(&e),
    })?;
    let meta = file.metadata().map_err(|e| missing(&e))?;
    if !meta.is_file() {
        return Err(DeployError::Build(format!(
            "the build's output `{shown}` is not a regular file"
        )));
    }
    if meta.len() > max {
        return Err(DeployError::TooLarge { limit: max });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| missing(&e))?;
    if bytes.len() as u64 > max {
        return Err(DeployError::TooLarge { limit: max });
    }
    Ok(Bytes::from(bytes))
}

/// Gives `dir` and everything beneath it to the build user (links
/// themselves, never what they point to).
fn hand_over(dir: &Path) -> std::io::Result<()> {
    chown(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            hand_over(&entry.path())?;
        } else {
            chown(&entry.path())?;
        }
    }
    Ok(())
}

fn chown(path: &Path) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(BUILD_USER), Some(BUILD_USER))
}
