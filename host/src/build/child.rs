//! The build child: the process a build runs in (`wisp __build-child`, see
//! [`build_child_main`]). It reads its [`Job`] from stdin, jails itself and
//! then replaces itself with the build command (`sh -c …`), which inherits
//! the jail — every compiler, build script and package manager it starts
//! stays inside:
//!
//! 1. a process group of its own (the host kills the whole group when the
//!    build ends, fails or runs out of time; the filter below refuses
//!    leaving it);
//! 2. as root only: a mount namespace whose `/tmp` is private and where
//!    the build sees its directories at [`WORK_VIEW`] and [`CACHE_VIEW`],
//!    and each toolchain under a directory the build user could not
//!    reach (rustup's under `/root`) at its own path, read-only, with the
//!    rest of that directory hidden; with `--build-network deny`, an empty
//!    network namespace; then user [`BUILD_USER`], so file permissions
//!    and the process limit bind;
//! 3. rlimits: CPU seconds, data segment, file size, processes, open files,
//!    no core dumps;
//! 4. Landlock ([`super::jail`]): read and execute the system's programs
//!    and libraries and the toolchains, write only its directories;
//! 5. seccomp: no tracing, mounting, namespaces, kernel modules, new
//!    sessions or process groups; with network denied, no sockets but
//!    Unix ones.

use super::jail;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The user and group id builds run as when the host runs as root: its own,
/// not `nobody`'s, so the process limit counts builds alone (guest workers
/// run as `nobody`).
pub const BUILD_USER: u32 = 65533;

/// Where a build started by root sees its source tree.
pub(crate) const WORK_VIEW: &str = "/tmp/wisp-build/work";
/// Where a build started by root sees its cache.
pub(crate) const CACHE_VIEW: &str = "/tmp/wisp-build/cache";

/// One build, as the host hands it to the child.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Job {
    /// The shell command.
    pub command: String,
    /// The source tree, where the command runs (host path).
    pub work: PathBuf,
    /// The function's build cache (host path).
    pub cache: PathBuf,
    /// Toolchain directories the build reads and executes from, beyond the
    /// system's (host paths, seen at the same paths).
    pub tools: Vec<PathBuf>,
    /// The command's whole environment.
    pub env: Vec<(String, String)>,
    /// May the build open internet sockets.
    pub network: bool,
    /// Its limits.
    pub limits: Limits,
}

/// A build's resource limits (each process's rlimits).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Limits {
    /// CPU seconds of each process.
    pub cpu_seconds: u64,
    /// Data segment (heap) of each process, bytes.
    pub memory_bytes: u64,
    /// Largest file it may write, bytes.
    pub file_bytes: u64,
    /// Processes (threads included) of the build user at once.
    pub processes: u64,
}

/// Open files per build process.
const OPEN_FILES: u64 = 4096;

/// Runs one build (the `wisp __build-child` command): reads the job on
/// stdin, jails itself and executes the build command. Returns only when
/// that fails, with the reason on stderr (which the host shows the user).
pub fn build_child_main() -> ExitCode {
    let error = match run() {
        Ok(never) => match never {},
        Err(e) => e,
    };
    eprintln!("wisp: the build could not start: {error}");
    ExitCode::from(125)
}

fn run() -> Result<std::convert::Infallible, String> {
    let mut input = Vec::new();
    std::io::stdin()
        .take(1 << 20)
        .read_to_end(&mut input)
        .map_err(|e| format!("reading the build job failed: {e}"))?;
    let job: Job =
        serde_json::from_slice(&input).map_err(|e| format!("the build job is invalid: {e}"))?;
    rustix::process::setsid().map_err(|e| format!("starting a session failed: {e}"))?;
    let root = rustix::process::geteuid().is_root();
    let (work, cache) = if root {
        jail::enter_namespaces(&job)?;
        jail::become_build_user()?;
        (PathBuf::from(WORK_VIEW), PathBuf::from(CACHE_VIEW))
    } else {
        (job.work.clone(), job.cache.clone())
    };
    let processes = if root {
        job.limits.processes
    } else {
        // Not root: the limit counts every process of this user, the host's
        // own among them.
        own_processes().saturating_add(job.limits.processes)
    };
    jail::limit(&job.limits, processes, OPEN_FILES)?;
    let mut writable = vec![work.clone(), cache.clone()];
    if root {
        writable.push(PathBuf::from("/tmp"));
    }
    if let Some(weaker) = jail::enter(&job.tools, &writable, job.network)? {
        eprintln!("wisp: warning: {weaker}");
    }
    let error = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&job.command)
        .current_dir(&work)
        .env_clear()
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .exec();
    Err(format!("running `/bin/sh` failed: {error}"))
}

/// How many processes this user has now (counted from `/proc`).
fn own_processes() -> u64 {
    let me = rustix::process::getuid().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut count = 0;
    for entry in entries.flatten() {
        let status = Path::new("/proc").join(entry.file_name()).join("status");
        let Ok(text) = std::fs::read_to_string(status) else {
            continue;
        };
        let owner = text
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            .and_then(|id| id.parse::<u32>().ok());
        let threads = text
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(1);
        if owner == Some(me) {
            count += threads;
        }
    }
    count
}
