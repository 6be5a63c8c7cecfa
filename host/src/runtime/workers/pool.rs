//! The front's guest workers: one process per function version, started on
//! its first request (from a few pre-started spares that wait for their
//! assignment), replaced when it dies or its function's secrets change,
//! stopped after it has been idle a while, and never more than the host's
//! cap at once (the least recently used idle one makes room).
//!
//! A worker is the same program re-executed (`program args…`, which calls
//! [`guest_worker_main`](super::guest_worker_main)) with an empty
//! environment and two sockets (see `wire.rs`); its stderr is read line by
//! line into the host log, and its end is logged and counted with its
//! cause — the signal that killed it, when one did.

use super::back::Back;
use super::cgroup::WorkerGroups;
use super::link::{CallFailed, Link, LinkBody};
use super::wire::{self, Assignment, READY};
use crate::error::InvokeError;
use crate::observe::metrics::{Metrics, WorkerSeries};
use crate::runtime::Runtime;
use crate::runtime::body::RequestBody;
use crate::runtime::code_cache::CodeSlot;
use crate::runtime::function::Function;
use crate::runtime::sandbox::LEASE_STEP;
use crate::state::{KvBackend, SqlBackend};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::OnceCell;
use wisp_spec::api::WorkerInfo;
use wisp_spec::limits::DEFAULT_MAX_CONCURRENCY;
use wisp_spec::settings::DirMount;

/// How long a worker may take from its assignment to ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a worker whose calls socket closed has to end by itself.
const LINK_END_GRACE: Duration = Duration::from_secs(1);

/// What a worker holds besides its sandboxes, its calls' bodies and its
/// code: its runtime, engine and stacks (part of its memory group's cap).
const WORKER_BASE_MEMORY: u64 = 256 << 20;

/// Threads a worker may run (its pids group's cap): its async runtime's
/// thread and blocking pool (see `child.rs`), with room to spare.
const WORKER_MAX_THREADS: u64 = 64;

/// Processes of the workers' unprivileged user that are not workers (other
/// services running as `nobody`), allowed for in its `RLIMIT_NPROC`.
const OTHER_USER_THREADS: u64 = 1024;

/// Longest line of a worker's stderr logged; the rest is cut.
const MAX_LOG_LINE_BYTES: u64 = 4 << 10;

/// How guest workers are run: `wisp serve --isolation process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerOptions {
    /// The program (typically `std::env::current_exe()`), which must call
    /// [`guest_worker_main`](super::guest_worker_main) and exit with what it
    /// returns.
    pub program: PathBuf,
    /// Its arguments, e.g. a hidden subcommand.
    pub args: Vec<OsString>,
    /// Workers alive at once, host-wide.
    pub max_workers: usize,
    /// How long a worker without requests lives.
    pub idle: Duration,
    /// Workers started ahead, waiting to be assigned.
    pub spares: usize,
}

/// Default workers alive at once.
pub const DEFAULT_MAX_WORKERS: usize = 256;
/// Default life of an idle worker.
pub const DEFAULT_WORKER_IDLE: Duration = Duration::from_secs(60);
/// Default spare workers.
pub const DEFAULT_SPARE_WORKERS: usize = 2;

/// One function version's worker, or its start under way.
type Cell = Arc<OnceCell<Arc<Worker>>>;

/// The front's workers.
pub(crate) struct WorkerPool {
    options: WorkerOptions,
    kv: Arc<dyn KvBackend>,
    sql: Arc<dyn SqlBackend>,
    metrics: Arc<Metrics>,
    series: WorkerSeries,
    workers: Mutex<HashMap<(Arc<str>, u32), Cell>>,
    /// The sealed code live workers map, by artifact key: the next worker
    /// of the same code is handed it with no check and no copy.
    codes: Mutex<HashMap<String, Weak<SealedCode>>>,
    spares: Mutex<Vec<Spare>>,
    /// Workers alive or starting.
    count: AtomicUsize,
    /// Set while spares are being started.
    refilling: AtomicBool,
    /// The host's `--max-instances`: no worker admits more at once.
    pool_size: u32,
    /// Each worker's memory and pids control groups.
    groups: WorkerGroups,
    /// Bytes of guest memory and buffered bodies the host allows all
    /// guests together: no worker's memory group is capped higher.
    guest_budgets: u64,
    epoch: Instant,
}

/// A live worker.
pub(crate) struct Worker {
    pub(crate) pid: u32,
    function: Arc<str>,
    link: Link,
    /// The code it maps, kept for the next worker of the same code.
    _code: Arc<SealedCode>,
    pub(crate) back: Arc<Back>,
    /// The secrets it was handed: it is replaced once they change.
    secrets: Arc<BTreeMap<String, String>>,
    alive: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds since the pool's epoch at its last call.
    last_used: AtomicU64,
    next_call: AtomicU64,
    /// Why the pool stopped it, if it did.
    stopped_for: Mutex<Option<&'static str>>,
    kill: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

/// Counts a call out of its worker's calls in flight when it ends, also
/// when its client leaves first.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Clears the refilling flag when the refill ends.
struct Refilled<'a>(&'a AtomicBool);

impl Drop for Refilled<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Sandboxes a worker admitting `max_instances` calls at once needs in its
/// engines' pools: one more for the sandbox it prepares ahead.
fn sandboxes_for(max_instances: u32) -> u32 {
    max_instances.saturating_add(1)
}

/// Starts the pool's missing spares when dropped (off the async threads:
/// starting a process blocks).
struct RefillOnDrop(Arc<WorkerPool>);

impl Drop for RefillOnDrop {
    fn drop(&mut self) {
        let pool = self.0.clone();
        drop(tokio::task::spawn_blocking(move || pool.refill_spares()));
    }
}

/// A code's compiled artifact, checked and sealed in a memory file (see
/// `ArtifactStore::compiled_sealed`): what its workers map.
struct SealedCode {
    file: std::os::fd::OwnedFd,
    len: u64,
}

/// A started worker waiting for its assignment.
struct Spare {
    /// Sandboxes its engines' pools hold.
    instances: u32,
    /// When its process was started.
    spawned: Instant,
    child: tokio::process::Child,
    calls: tokio::net::UnixStream,
    back: tokio::net::UnixStream,
}

impl WorkerPool {
    /// A pool starting workers by `options`, whose functions' key-value
    /// calls go to `kv` and SQLite statements to `sql`; starts its spares
    /// and its idle reaper.
    pub(crate) fn start(
        options: WorkerOptions,
        kv: Arc<dyn KvBackend>,
        sql: Arc<dyn SqlBackend>,
        metrics: Arc<Metrics>,
        pool_size: u32,
        guest_budgets: u64,
    ) -> Arc<WorkerPool> {
        let pool = Arc::new(WorkerPool {
            options,
            kv,
            sql,
            series: metrics.workers().clone(),
            metrics,
            workers: Mutex::default(),
            codes: Mutex::default(),
            spares: Mutex::default(),
            count: AtomicUsize::new(0),
            refilling: AtomicBool::new(false),
            pool_size,
            groups: WorkerGroups::create(WORKER_MAX_THREADS),
            guest_budgets,
            epoch: Instant::now(),
        });
        pool.refill_spares();
        tokio::spawn(reap_idle(Arc::downgrade(&pool)));
        pool
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock_workers(&self) -> std::sync::MutexGuard<'_, HashMap<(Arc<str>, u32), Cell>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_codes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<SealedCode>>> {
        self.codes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_spares(&self) -> std::sync::MutexGuard<'_, Vec<Spare>> {
        self.spares.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live workers, by function and version.
    pub(crate) fn list(&self) -> Vec<WorkerInfo> {
        let now = self.now_ms();
        let mut workers: Vec<WorkerInfo> = self
            .lock_workers()
            .iter()
            .filter_map(|((function, version), cell)| {
                let worker = cell.get()?;
                worker.alive.load(Ordering::Acquire).then(|| WorkerInfo {
                    function: function.to_string(),
                    version: *version,
                    pid: worker.pid,
                    calls_in_flight: worker.back.calls_in_flight(),
                    idle_seconds: now.saturating_sub(worker.last_used.load(Ordering::Relaxed))
                        / 1000,
                })
            })
            .collect();
        workers.sort_by(|a, b| (&a.function, a.version).cmp(&(&b.function, b.version)));
        workers
    }

    /// Threads all workers together may run (each worker's `RLIMIT_NPROC`
    /// once it runs as `nobody`, whose every process and thread counts):
    /// each live or spare worker's cap, and room for others of that user.
    fn max_user_threads(&self) -> u64 {
        let workers = self.options.max_workers.saturating_add(self.options.spares);
        (workers as u64)
            .saturating_mul(WORKER_MAX_THREADS)
            .saturating_add(OTHER_USER_THREADS)
    }

    /// The most memory any worker may hold (a spare's cap, which its
    /// assignment lowers to [`memory_cap`]'s).
    fn most_memory(&self) -> u64 {
        self.guest_budgets.saturating_add(WORKER_BASE_MEMORY)
    }

    /// Starts spares until there are as many as asked for, counting again
    /// after each: a spare taken while this refill runs (whose own refill
    /// found this one running) is replaced too.
    fn refill_spares(self: &Arc<Self>) {
        loop {
            if self.refilling.swap(true, Ordering::AcqRel) {
                return;
            }
            {
                let _done = Refilled(&self.refilling);
                while self.lock_spares().len() < self.options.spares {
                    match self.spawn(self.spare_instances()) {
                        Ok(spare) => self.lock_spares().push(spare),
                        Err(e) => {
                            tracing::error!("starting a spare guest worker failed: {e}");
                            return;
                        }
                    }
                }
            }
            // One taken between the last count and the flag's fall found
            // this refill still running: count once more.
            if self.lock_spares().len() >= self.options.spares {
                return;
            }
        }
    }

    /// Sandboxes a spare's engines hold room for: what a function of the
    /// default concurrency needs. Its pools' guard pages cost a spare's
    /// start CPU in proportion (the host's 1,000 took 16–25 ms, 256 take
    /// 8–12), so a function allowed more concurrency gets a process
    /// started for it instead.
    fn spare_instances(&self) -> u32 {
        sandboxes_for(DEFAULT_MAX_CONCURRENCY.clamp(1, self.pool_size))
    }

    /// Starts a worker process, not yet assigned, whose engines' pools
    /// hold `instances` sandboxes.
    fn spawn(&self, instances: u32) -> std::io::Result<Spare> {
        let spawned = Instant::now();
        let (calls, child_calls) = std::os::unix::net::UnixStream::pair()?;
        let (back, child_back) = std::os::unix::net::UnixStream::pair()?;
        let child = tokio::process::Command::new(&self.options.program)
            .args(&self.options.args)
            .env_clear()
            .env(super::child::POOL_VAR, instances.to_string())
            .env(
                super::child::USER_THREADS_VAR,
                self.max_user_threads().to_string(),
            )
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(child_calls)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(child_back)))
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        // In its groups from the start (making them takes milliseconds:
        // not on a request's path), capped as no function's worker may
        // exceed until its assignment says how much its own may hold.
        let pid = child.id().unwrap_or_default();
        self.groups
            .enter(pid, self.most_memory())
            .map_err(std::io::Error::other)?;
        let socket = |s: std::os::unix::net::UnixStream| {
            s.set_nonblocking(true)?;
            tokio::net::UnixStream::from_std(s)
        };
        Ok(Spare {
            instances,
            spawned,
            child,
            calls: socket(calls)?,
            back: socket(back)?,
        })
    }

    /// The worker of `function`'s version, started if it has none (or its
    /// one died, or was handed secrets that have since changed).
    pub(crate) async fn worker_for(
        self: &Arc<Self>,
        function: &Function,
        runtime: &Arc<Runtime>,
    ) -> Result<Arc<Worker>, InvokeError> {
        let secrets = function.secrets_snapshot().map_err(|reason| {
            tracing::error!(function = %function.name, "its secrets cannot be read: {reason}");
            InvokeError::Unavailable(function.name.to_string())
        })?;
        let key = (function.name.clone(), function.version);
        for _ in 0..2 {
            let cell = self.lock_workers().entry(key.clone()).or_default().clone();
            let worker = cell
                .get_or_try_init(|| self.start_worker(function, runtime, secrets.clone()))
                .await?
                .clone();
            if worker.alive.load(Ordering::Acquire) && Arc::ptr_eq(&worker.secrets, &secrets) {
                worker.last_used.store(self.now_ms(), Ordering::Relaxed);
                return Ok(worker);
            }
            // Dead, or handed old secrets: forget it (unless another
            // request already did) and start another.
            let mut workers = self.lock_workers();
            if workers.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                workers.remove(&key);
            }
            drop(workers);
            worker.stop("replaced");
        }
        Err(InvokeError::WorkerFailed(format!(
            "no worker of function `{}` stays up",
            function.name
        )))
    }

    /// Starts and assigns a worker for `function`.
    async fn start_worker(
        self: &Arc<Self>,
        function: &Function,
        runtime: &Arc<Runtime>,
        secrets: Arc<BTreeMap<String, String>>,
    ) -> Result<Arc<Worker>, InvokeError> {
        let asked = Instant::now();
        self.make_room(function)?;
        let result = self.assign(function, runtime, secrets, asked).await;
        match result {
            Ok(worker) => {
                self.series.started(asked.elapsed());
                self.metrics.record_worker_code_load(asked.elapsed());
                Ok(worker)
            }
            Err(error) => {
                self.count.fetch_sub(1, Ordering::AcqRel);
                Err(error)
            }
        }
    }

    /// Counts one more worker, stopping the least recently used idle one
    /// when the host's cap is reached.
    fn make_room(&self, function: &Function) -> Result<(), InvokeError> {
        if self.count.fetch_add(1, Ordering::AcqRel) < self.options.max_workers {
            return Ok(());
        }
        let idlest = {
            let workers = self.lock_workers();
            workers
                .iter()
                .filter_map(|(key, cell)| cell.get().map(|w| (key.clone(), w.clone())))
                .filter(|(_, w)| w.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, w)| w.last_used.load(Ordering::Relaxed))
        };
        match idlest {
            Some((key, worker)) => {
                self.lock_workers().remove(&key);
                worker.stop("evicted");
                Ok(())
            }
            None => {
                self.count.fetch_sub(1, Ordering::AcqRel);
                Err(InvokeError::limit(
                    crate::error::Limit::Concurrency,
                    format!(
                        "no room for a worker of function `{}`: all {} workers are busy; retry shortly",
                        function.name, self.options.max_workers
                    ),
                ))
            }
        }
    }

    /// The sealed code of `slot`: the one its live workers map, or one made
    /// anew from its checked artifact (on the blocking pool).
    async fn sealed_code(
        &self,
        runtime: &Arc<Runtime>,
        slot: &Arc<CodeSlot>,
    ) -> Result<Arc<SealedCode>, String> {
        let shared = self.lock_codes().get(&slot.key).and_then(Weak::upgrade);
        if let Some(code) = shared {
            return Ok(code);
        }
        let (runtime, for_blocking) = (runtime.clone(), slot.clone());
        let file = tokio::task::spawn_blocking(move || runtime.sealed_artifact(&for_blocking))
            .await
            .map_err(|e| format!("reading its code: {e}"))?
            .map_err(|e| e.to_string())?;
        let len = rustix::fs::fstat(&file)
            .map_err(|e| format!("reading its code: {e}"))?
            .st_size;
        let code = Arc::new(SealedCode {
            file,
            len: u64::try_from(len).unwrap_or(0),
        });
        let mut codes = self.lock_codes();
        codes.retain(|_, code| code.strong_count() > 0);
        codes.insert(slot.key.clone(), Arc::downgrade(&code));
        Ok(code)
    }

    /// Hands a spare (or a newly started process) its assignment and waits
    /// until it is ready.
    async fn assign(
        self: &Arc<Self>,
        function: &Function,
        runtime: &Arc<Runtime>,
        secrets: Arc<BTreeMap<String, String>>,
        asked: Instant,
    ) -> Result<Arc<Worker>, InvokeError> {
        let failed = |what: String| {
            tracing::error!(function = %function.name, "starting its guest worker failed: {what}");
            InvokeError::WorkerFailed(format!(
                "the worker of function `{}` could not start (see the host log)",
                function.name
            ))
        };
        let slot = function.code().clone();
        let code = self.sealed_code(runtime, &slot).await.map_err(failed)?;
        let (dirs, granted_dirs) = if function.settings.dirs.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let mounts = function.settings.dirs.clone();
            tokio::task::spawn_blocking(move || open_granted(&mounts))
                .await
                .map_err(|e| failed(format!("opening its directories: {e}")))?
                .map_err(failed)?
        };
        let limits = &function.settings.limits;
        let max_instances = limits.max_concurrency.clamp(1, self.pool_size);
        let instances = sandboxes_for(max_instances);
        let spare = {
            let mut spares = self.lock_spares();
            let fits = spares
                .iter()
                .rposition(|spare| spare.instances >= instances);
            fits.map(|at| spares.swap_remove(at))
        };
        // The spare taken is replaced once this worker is ready (or has
        // failed): starting one as it starts would slow it down.
        let refill = RefillOnDrop(self.clone());
        let mut spare = match spare {
            Some(spare) => spare,
            None => self.spawn(instances).map_err(|e| failed(format!("{e}")))?,
        };
        let spare_age = spare.spawned.elapsed();
        let pid = spare.child.id().unwrap_or_default();
        log_stderr(&function.name, pid, spare.child.stderr.take());
        // Capped before it reads the code it will run.
        let cap = memory_cap(limits, self.guest_budgets, code.len);
        self.groups.cap_memory(pid, cap).map_err(failed)?;
        // Its books at the front, with a step of guest memory granted ahead
        // (its first sandbox then asks the front for nothing); a worker that
        // never gets ready gives it back with them.
        let back = Back::new(
            function,
            self.kv.clone(),
            self.sql.clone(),
            self.metrics.clone(),
            &runtime.guest_memory,
        );
        let granted_memory = back.grant_ahead(LEASE_STEP);
        let assignment = Assignment {
            function: function.name.to_string(),
            version: function.version,
            abi: slot.abi,
            settings: function.settings.to_raw(),
            secrets: (*secrets).clone(),
            max_instances,
            max_guest_memory: runtime.guest_memory.limit(),
            max_buffered: runtime.buffers.limit(),
            granted_memory,
            granted_dirs,
        };
        let handshake = async {
            wire::send_assignment(&mut spare.calls, &assignment, code.file.as_fd(), &dirs).await?;
            let mut ready = [0u8; 1];
            spare.calls.read_exact(&mut ready).await?;
            if ready[0] != READY {
                return Err(std::io::Error::other("it said something other than ready"));
            }
            Ok::<_, std::io::Error>(())
        };
        let ready = tokio::time::timeout(START_TIMEOUT, handshake).await;
        drop(refill);
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let status = spare.child.try_wait().ok().flatten();
                return Err(failed(format!(
                    "it ended before it was ready ({e}; {})",
                    status.map_or("still running".to_owned(), describe)
                )));
            }
            Err(_) => return Err(failed("it was not ready in time".into())),
        }
        drop(dirs);
        let link = Link::front(spare.calls);
        back.serve(spare.back);
        let (kill, killed) = tokio::sync::oneshot::channel();
        let worker = Arc::new(Worker {
            pid,
            function: function.name.clone(),
            link,
            _code: code,
            back,
            secrets,
            alive: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            last_used: AtomicU64::new(self.now_ms()),
            next_call: AtomicU64::new(1),
            stopped_for: Mutex::default(),
            kill: Mutex::new(Some(kill)),
        });
        tokio::spawn(watch(
            Arc::downgrade(self),
            worker.clone(),
            spare.child,
            killed,
        ));
        tracing::debug!(
            function = %function.name,
            pid,
            start_us = asked.elapsed().as_micros(),
            spare_age_us = spare_age.as_micros(),
            "its guest worker started"
        );
        Ok(worker)
    }
}

impl Worker {
    /// Sends it call `head`, with `request`'s method, headers and body.
    pub(crate) async fn send(
        &self,
        head: wire::CallHead,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<LinkBody>, CallFailed> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlight(&self.in_flight);
        self.link.call(head, request).await
    }

    /// A number for its next call.
    pub(crate) fn next_call(&self) -> u64 {
        self.next_call.fetch_add(1, Ordering::Relaxed)
    }

    /// Stops it (killing the process) for `cause`.
    fn stop(&self, cause: &'static str) {
        self.alive.store(false, Ordering::Release);
        let mut stopped = self.stopped_for.lock().unwrap_or_else(|p| p.into_inner());
        stopped.get_or_insert(cause);
        drop(stopped);
        if let Some(kill) = self.kill.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = kill.send(());
        }
    }
}

/// Waits for a worker's process to end (or kills it when the pool stops
/// it), then forgets it: its calls in flight fail, its held slots are
/// given back, and its end is logged and counted.
async fn watch(
    pool: Weak<WorkerPool>,
    worker: Arc<Worker>,
    mut child: tokio::process::Child,
    killed: tokio::sync::oneshot::Receiver<()>,
) {
    let status = tokio::select! {
        status = child.wait() => status.ok(),
        _ = killed => {
            let _ = child.start_kill();
            child.wait().await.ok()
        }
        (reason, broken) = worker.link.ended() => {
            // A worker's socket closes as it ends; one that broke the
            // framing, or closed its socket and lives on, is stopped.
            let ended = if broken {
                None
            } else {
                tokio::time::timeout(LINK_END_GRACE, child.wait()).await.ok()
            };
            match ended {
                Some(status) => status.ok(),
                None => {
                    tracing::warn!(function = %worker.function, pid = worker.pid, "stopping its guest worker: {reason}");
                    worker.stop("broken");
                    let _ = child.start_kill();
                    child.wait().await.ok()
                }
            }
        }
    };
    worker.alive.store(false, Ordering::Release);
    worker.back.forget_calls();
    let pool = pool.upgrade();
    let out_of_memory = status.is_some_and(|s| s.signal() == Some(libc::SIGKILL))
        && pool
            .as_ref()
            .is_some_and(|p| p.groups.killed_for_memory(worker.pid));
    let stopped_for = *worker.stopped_for.lock().unwrap_or_else(|p| p.into_inner());
    let cause = match (stopped_for, status) {
        (Some(cause), _) => cause.to_owned(),
        (None, Some(_)) if out_of_memory => "oom".to_owned(),
        (None, Some(status)) => match status.signal() {
            Some(signal) => signal_name(signal),
            None => "exit".to_owned(),
        },
        (None, None) => "unknown".to_owned(),
    };
    if stopped_for.is_none() {
        let how = match status {
            Some(_) if out_of_memory => {
                "it was killed for holding more memory than its control group allows".to_owned()
            }
            Some(status) => describe(status),
            None => "its status is unknown".to_owned(),
        };
        tracing::warn!(
            function = %worker.function,
            pid = worker.pid,
            "its guest worker ended: {how}"
        );
    }
    let Some(pool) = pool else { return };
    pool.count.fetch_sub(1, Ordering::AcqRel);
    pool.series.ended(&cause);
    pool.lock_workers()
        .retain(|_, cell| !cell.get().is_some_and(|w| Arc::ptr_eq(w, &worker)));
    // Removing a memory group can take a while: off the async threads.
    let pid = worker.pid;
    drop(tokio::task::spawn_blocking(move || pool.groups.leave(pid)));
}

/// Stops workers idle past the pool's idle time, and calls whose worker
/// never reported them, every second.
async fn reap_idle(pool: Weak<WorkerPool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let now = pool.now_ms();
        let idle_ms = u64::try_from(pool.options.idle.as_millis()).unwrap_or(u64::MAX);
        let idle: Vec<_> = {
            let mut workers = pool.lock_workers();
            let mut idle = Vec::new();
            workers.retain(|_, cell| match cell.get() {
                Some(w)
                    if w.in_flight.load(Ordering::Acquire) == 0
                        && w.back.calls_in_flight() == 0
                        && now.saturating_sub(w.last_used.load(Ordering::Relaxed)) >= idle_ms =>
                {
                    idle.push(w.clone());
                    false
                }
                _ => true,
            });
            for cell in workers.values() {
                if let Some(worker) = cell.get() {
                    worker.back.forget_overdue();
                }
            }
            idle
        };
        for worker in idle {
            worker.stop("idle");
        }
    }
}

/// Opens the granted directories `mounts` for a worker, with the front's
/// rights (blocking): their parents need not let the worker's user
/// through. With each, its index in `mounts`; a directory that cannot be
/// opened is left out, and fails each call as it does in-process.
fn open_granted(mounts: &[DirMount]) -> Result<(Vec<std::fs::File>, Vec<usize>), String> {
    if mounts.len() > wire::MAX_GRANTED_DIRS {
        return Err(format!(
            "it is granted {} directories: a worker may be handed at most {}",
            mounts.len(),
            wire::MAX_GRANTED_DIRS
        ));
    }
    Ok(mounts
        .iter()
        .enumerate()
        .filter_map(|(index, mount)| Some((std::fs::File::open(&mount.host).ok()?, index)))
        .unzip())
}

/// What a worker of a function with `limits` may hold in memory (its
/// memory group's cap): what its sandboxes may lease and the bodies its
/// calls may buffer (for each call it may serve at once, and one more, as
/// its lease allows), its code (`code_bytes`, mapped) and its
/// runtime — never more than the host's `guest_budgets` for all guests
/// together and its runtime (what a spare is capped at: a cap is only
/// ever lowered).
fn memory_cap(limits: &wisp_spec::limits::Limits, guest_budgets: u64, code_bytes: u64) -> u64 {
    let per_call = limits
        .memory_bytes
        .saturating_add(limits.max_request_body_bytes)
        .saturating_add(limits.max_response_body_bytes);
    per_call
        .saturating_mul(u64::from(limits.max_concurrency) + 1)
        .saturating_add(code_bytes.saturating_mul(2))
        .min(guest_budgets)
        .saturating_add(WORKER_BASE_MEMORY)
}

/// Logs each line a worker writes to its stderr.
fn log_stderr(function: &Arc<str>, pid: u32, stderr: Option<tokio::process::ChildStderr>) {
    let Some(stderr) = stderr else { return };
    let function = function.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut lines)
                .take(MAX_LOG_LINE_BYTES)
                .read_until(b'\n', &mut line)
                .await;
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => relay_line(&function, pid, &String::from_utf8_lossy(&line)),
            }
        }
    });
}

/// Logs one line of a worker's stderr as the front's own: a JSON event
/// (the worker's log) at its level, with its message and fields; a jail
/// note as a warning; anything else (a panic) as a warning.
fn relay_line(function: &str, pid: u32, line: &str) {
    let line = line.trim_end();
    if let Some(note) = line.strip_prefix(super::child::JAIL_NOTE_PREFIX) {
        tracing::warn!(
            function,
            pid,
            "its guest worker's jail is weaker than asked: {note}"
        );
        return;
    }
    let event = serde_json::from_str::<serde_json::Value>(line).ok();
    let Some((level, fields)) = event
        .as_ref()
        .and_then(|e| Some((e.get("level")?.as_str()?, e.get("fields")?.as_object()?)))
    else {
        tracing::warn!(function, pid, "guest worker: {line}");
        return;
    };
    let mut text = fields
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned();
    for (key, value) in fields.iter().filter(|(key, _)| *key != "message") {
        match value.as_str() {
            Some(value) => text.push_str(&format!(" {key}={value}")),
            None => text.push_str(&format!(" {key}={value}")),
        }
    }
    match level {
        "ERROR" => tracing::error!(function, pid, "guest worker: {text}"),
        "WARN" => tracing::warn!(function, pid, "guest worker: {text}"),
        "INFO" => tracing::info!(function, pid, "guest worker: {text}"),
        _ => tracing::debug!(function, pid, "guest worker: {text}"),
    }
}

/// How a process ended, for the log.
fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("it exited with status {code}"),
        (None, Some(libc::SIGSYS)) => {
            "it was killed by SIGSYS: it made a system call its jail forbids".to_owned()
        }
        (None, Some(signal)) => format!("it was killed by {}", signal_name(signal)),
        (None, None) => "it ended".to_owned(),
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGSYS => "SIGSYS".to_owned(),
        libc::SIGKILL => "SIGKILL".to_owned(),
        libc::SIGSEGV => "SIGSEGV".to_owned(),
        libc::SIGABRT => "SIGABRT".to_owned(),
        libc::SIGBUS => "SIGBUS".to_owned(),
        libc::SIGTERM => "SIGTERM".to_owned(),
        other => format!("signal {other}"),
    }
}
