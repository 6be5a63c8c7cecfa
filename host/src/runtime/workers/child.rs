//! The guest worker process: one version of one function, behind an OS
//! wall. Started by the front process with a clean environment, it drops
//! root (for `nobody`), caps its files and core dumps, filters its system
//! calls (see `jail.rs`) while it still has one thread; then reads its
//! [`Assignment`], the sealed memory file of its compiled code and its
//! function's directories from its stdin, finishes its jail with Landlock,
//! and only then builds its runtime, maps the guest's code and serves the
//! front's calls: each in a
//! fresh sandbox, exactly as the front would run it in-process, with the
//! front's answers for everything the guest reaches beyond its sandbox
//! (see `remote.rs`). It ends when the front closes its socket.

use super::carry::Carrying;
use super::remote::{Remote, RemoteKv, RemoteLease, RemoteSql, Reports};
use super::wire::{self, Assignment, CallHead, DONE_HEADER, INSTANTIATE_HEADER, LIMIT_HEADER};
use crate::error::InvokeError;
use crate::observe::meter::Meter;
use crate::observe::metrics::Metrics;
use crate::observe::trace::RequestTrace;
use crate::runtime::body::{RequestBody, ResponseBody, full};
use crate::runtime::chain::Dispatch;
use crate::runtime::connection::ConnectionInfo;
use crate::runtime::function::{Function, LoadedCode, RequestContext, VersionInfo};
use crate::runtime::prepared::PREPARED_IDLE;
use crate::runtime::services::GuestServices;
use crate::runtime::{Runtime, WorkerBounds};
use crate::state::FunctionSecrets;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use wisp_spec::route::Route;
use wisp_spec::settings::Settings;
use wisp_spec::source::SourceHash;

/// The environment variable that sizes a worker's instance pool (the
/// host's `--max-instances`; the front admits no more at once).
pub(crate) const POOL_VAR: &str = "WISP_WORKER_POOL";

/// The environment variable that caps the threads of all workers' user
/// together (its `RLIMIT_NPROC`, once a worker has dropped root).
pub(crate) const USER_THREADS_VAR: &str = "WISP_WORKER_USER_THREADS";

/// How a worker's stderr marks a line the front logs as a warning.
pub(crate) const JAIL_NOTE_PREFIX: &str = "jail: ";

/// Files a worker may hold: its sockets, its engine's, and what its
/// guests' sandboxes open in their granted directories.
const WORKER_MAX_FILES: u64 = 256;

/// Threads a worker's async runtime may start for blocking work (its
/// guests' file reads); the front's pids group allows a few more.
const WORKER_BLOCKING_THREADS: usize = 16;

/// Address space a worker may map beyond what its engines reserved before
/// its assignment: its code (mapped, and as read), stacks, heap.
const WORKER_SPARE_ADDRESS_SPACE: u64 = 16 << 30;

/// The child side of a guest worker: a program used as the worker calls
/// this and exits with its result.
pub fn guest_worker_main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wisp worker: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    // Everything the function does not decide is made before its
    // assignment, so a spare has it ready: the engines and linkers, and the
    // async runtime (whose reactor makes a socket pair for signals). None
    // of it starts a thread. The engines come before root is dropped: the
    // pooling allocator opens `/proc/self/pagemap` (to reset only the pages
    // a guest dirtied), which a process that changed its user may not.
    let pool = std::env::var(POOL_VAR)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(crate::runtime::engine::DEFAULT_MAX_INSTANCES);
    let engines = Runtime::worker_engines(pool).map_err(|e| match e {
        crate::runtime::RuntimeError::Engine(reason)
        | crate::runtime::RuntimeError::Artifacts(reason) => reason,
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(WORKER_BLOCKING_THREADS)
        .build()
        .map_err(|e| format!("starting the async runtime failed: {e}"))?;
    // Its address space: what the engines reserved for their pools of
    // sandboxes, and room for its code and runtime — never more.
    let address_space = reserved_address_space()?.saturating_add(WORKER_SPARE_ADDRESS_SPACE);
    // Jailed but for its paths before it is handed anything (installing
    // the system call filters takes ~0.5 ms: not on a start's path).
    let dropped_root = super::super::jail::drop_root()?;
    let mut limits = vec![
        (rustix::process::Resource::Nofile, WORKER_MAX_FILES),
        (rustix::process::Resource::Core, 0),
        (rustix::process::Resource::As, address_space),
    ];
    if dropped_root {
        let threads = std::env::var(USER_THREADS_VAR)
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or("no cap on its user's threads was given")?;
        limits.push((rustix::process::Resource::Nproc, threads));
    }
    super::super::jail::cap(&limits)?;
    super::super::jail::enter_worker_calls()?;
    if !dropped_root && rustix::process::geteuid().is_root() {
        return Err("still root after the jail".into());
    }
    let (assignment, code, dirs) = wire::read_assignment(std::io::stdin().as_fd())?;
    let mut settings = assignment
        .settings
        .check()
        .map_err(|e| format!("its settings do not hold: {e}"))?;
    point_at_granted(&mut settings, &assignment.granted_dirs, &dirs);
    if let Some(weaker) = super::super::jail::enter_worker_paths(&dirs)? {
        eprintln!("{JAIL_NOTE_PREFIX}{weaker}");
    }
    #[cfg(feature = "escape-drill")]
    super::super::drill::jailed();
    let served = runtime.block_on(serve(engines, assignment, settings, code));
    drop(dirs);
    served
}

/// Points its sandboxes at the granted directories the front opened for
/// it (`dirs`, for the mounts at `indices` in its settings) through their
/// descriptors (`/proc/self/fd/N`, which a process may always open for
/// itself): the directories' parents need not let the worker's
/// unprivileged user through, and the jail allows reading beneath exactly
/// these. A directory the front could not open keeps its path and fails
/// each call as it does in-process (the host log says why).
fn point_at_granted(settings: &mut Settings, indices: &[usize], dirs: &[std::fs::File]) {
    for (&index, dir) in indices.iter().zip(dirs) {
        if let Some(mount) = settings.dirs.get_mut(index) {
            mount.host = std::path::PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        }
    }
}

/// Bytes of address space this process has mapped or reserved so far
/// (`VmSize` in `/proc/self/status`).
fn reserved_address_space() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status failed: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib << 10)
        .ok_or_else(|| "no VmSize in /proc/self/status".to_owned())
}

/// Builds the function's runtime and serves the front until it leaves.
async fn serve(
    engines: (
        crate::runtime::engine::Engines,
        crate::runtime::function::Linkers,
    ),
    assignment: Assignment,
    settings: Settings,
    sealed: OwnedFd,
) -> Result<(), String> {
    let calls_in = socket_of(std::io::stdin().as_fd())?;
    let calls_out = socket_of(std::io::stdout().as_fd())?;
    let metrics = Arc::new(Metrics::new());
    let runtime = Runtime::for_worker(
        engines,
        &WorkerBounds {
            max_instances: assignment.max_instances,
            max_guest_memory_bytes: assignment.max_guest_memory,
            max_buffered_bytes: assignment.max_buffered,
            granted_guest_memory: assignment.granted_memory,
        },
        metrics.clone(),
    )
    .map_err(|e| match e {
        crate::runtime::RuntimeError::Engine(reason)
        | crate::runtime::RuntimeError::Artifacts(reason) => reason,
    })?;
    let runtime = Arc::new(runtime);
    let abi = assignment.abi;
    // Mapped through its own descriptor, as the jailed user may: the pages
    // are the memory file's, shared with every worker of the same code.
    let mapped = std::path::PathBuf::from(format!("/proc/self/fd/{}", sealed.as_raw_fd()));
    let code = LoadedCode::load(runtime.engines.for_abi(abi), &runtime.linkers, abi, &mapped)
        .map_err(|e| format!("loading its code failed: {e}"))?;
    drop(sealed);
    let name: Arc<str> = Arc::from(assignment.function.as_str());
    let slot = runtime
        .code
        .resident(abi, SourceHash::of(name.as_bytes()), &name, code);

    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(calls_out))
            .await
            .map_err(|e| format!("opening the way back to the front failed: {e}"))?;
    tokio::spawn(connection);
    RemoteLease::start(sender.clone(), &runtime.guest_memory);
    let function_metrics = Arc::new(metrics.for_version(&name, assignment.version));
    let reports = Reports::new(sender.clone(), metrics.clone(), function_metrics.clone());
    let services = Arc::new(GuestServices::new(
        name.clone(),
        &settings,
        Arc::new(RemoteKv::new(sender.clone())),
        Arc::new(RemoteSql::new(sender.clone())),
        Arc::new(FunctionSecrets::fixed(assignment.secrets)),
        function_metrics.clone(),
    ));
    let meter = Meter {
        metrics: function_metrics,
        usage: Arc::default(),
        logs: Arc::default(),
        history: Arc::default(),
        version: assignment.version,
        relay: Some(reports.clone()),
    };
    let function = Arc::new(Function::new(
        VersionInfo {
            name,
            version: assignment.version,
            settings,
        },
        slot,
        meter,
        services,
        runtime.guest_memory.clone(),
    ));
    // Its prepared sandbox is dropped when unused a while, as the front's
    // are (see `registry::sweep_prepared`).
    let sweep = Arc::downgrade(&function);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(function) = sweep.upgrade() else {
                return;
            };
            function.prepared().expire(PREPARED_IDLE);
        }
    });
    let worker = Arc::new(Worker {
        runtime,
        function,
        sender,
        reports,
    });

    // Ready: the front starts its calls once it reads this byte.
    let mut ready = std::fs::File::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("{e}"))?,
    );
    ready
        .write_all(&[wire::READY])
        .map_err(|e| format!("telling the front it is ready failed: {e}"))?;
    drop(ready);

    super::link::serve(calls_in, move |head, request| {
        let worker = worker.clone();
        async move { worker.call(head, request).await }
    })
    .await
    .map_err(|e| format!("serving the front failed: {e}"))
}

/// A tokio socket of a duplicate of `fd` (one of the worker's stdio
/// sockets).
fn socket_of(fd: std::os::fd::BorrowedFd<'_>) -> Result<tokio::net::UnixStream, String> {
    let owned = fd
        .try_clone_to_owned()
        .map_err(|e| format!("taking its socket failed: {e}"))?;
    let socket = std::os::unix::net::UnixStream::from(owned);
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("taking its socket failed: {e}"))?;
    tokio::net::UnixStream::from_std(socket).map_err(|e| format!("taking its socket failed: {e}"))
}

/// What serves the front's calls.
struct Worker {
    runtime: Arc<Runtime>,
    function: Arc<Function>,
    sender: hyper::client::conn::http2::SendRequest<super::remote::OutBody>,
    reports: Arc<Reports>,
}

impl Worker {
    /// Runs one call in a fresh sandbox, as the front would in-process.
    async fn call(
        &self,
        head: CallHead,
        request: http::Request<RequestBody>,
    ) -> http::Response<ResponseBody> {
        let Ok(route) = Route::parse(&head.route) else {
            return answer_error(&InvokeError::BadRequest("a call with a bad route".into()));
        };
        let (mut parts, body) = request.into_parts();
        parts.uri = head
            .uri
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"));
        parts.version = match head.http {
            10 => http::Version::HTTP_10,
            11 => http::Version::HTTP_11,
            30 => http::Version::HTTP_3,
            _ => http::Version::HTTP_2,
        };
        let request = http::Request::from_parts(parts, body);
        let trace = Arc::new(RequestTrace::new(head.trigger, tracing::Span::none(), None));
        self.reports.expect(&trace, head.call);
        let request_id: Arc<str> = Arc::from(head.request_id.as_str());
        let started = Instant::now()
            .checked_sub(Duration::from_micros(head.elapsed_us))
            .unwrap_or_else(Instant::now);
        let dispatch: Arc<dyn Dispatch> = Arc::new(Remote::new(self.sender.clone(), head.call));
        let body_too_slow = Arc::new(AtomicBool::new(false));
        let context = RequestContext {
            route: &route,
            path_info: &head.path_info,
            connection: ConnectionInfo {
                remote: head.remote,
                local: head.local,
            },
            trace: &trace,
            request_id: &request_id,
            // The front admitted the call: the wait here is for a slot
            // the run before it is still giving back.
            ticket: self
                .runtime
                .slots
                .ticket(&self.function, Duration::from_secs(1), started),
            body_too_slow: &body_too_slow,
            runtime: &self.runtime,
            dispatch: &dispatch,
            workers: None,
        };
        let unanswered = Unanswered {
            reports: &self.reports,
            trace: &trace,
            call: head.call,
        };
        let result = self.function.invoke(request, context).await;
        std::mem::forget(unanswered);
        self.runtime.prepare_next(&self.function);
        match result {
            Ok(response) => {
                let mut response = response.map(|body| {
                    Carrying::new(body, head.call, self.reports.clone()).boxed_unsync()
                });
                wire::strip_worker_headers(response.headers_mut());
                if let Some(instantiated) = trace.instantiate() {
                    response.headers_mut().insert(
                        INSTANTIATE_HEADER,
                        http::HeaderValue::from(super::remote::duration_us(instantiated)),
                    );
                }
                response
            }
            Err(error) => {
                let mut response = answer_error(&error);
                if self.reports.forget(&trace) {
                    // It never ran, or never will report: nothing follows.
                    response
                        .headers_mut()
                        .insert(DONE_HEADER, http::HeaderValue::from_static("1"));
                } else {
                    // It reported already: no body will carry the report.
                    self.reports.give_up(head.call);
                }
                response
            }
        }
    }
}

/// A call in progress: dropped before it answers (the front reset it, its
/// client gone, and its run is dropped with it), it tells the front the
/// run is over, so the call's slots come back at once rather than when the
/// call is overdue.
struct Unanswered<'a> {
    reports: &'a Reports,
    trace: &'a Arc<RequestTrace>,
    call: u64,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        self.reports.dropped(self.trace, self.call);
    }
}

/// The error's answer, marked with the limit it breached for the front's
/// metrics.
fn answer_error(error: &InvokeError) -> http::Response<ResponseBody> {
    let mut response = error.to_response().map(full);
    if let InvokeError::LimitExceeded { limit, .. } = error {
        response
            .headers_mut()
            .insert(LIMIT_HEADER, http::HeaderValue::from_static(limit.as_str()));
    }
    response
}
