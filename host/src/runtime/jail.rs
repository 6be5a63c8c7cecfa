//! The operating-system wall a child process puts up around itself before
//! it touches untrusted input — the compile child, which runs Cranelift on
//! an uploaded module, and each guest worker, before it maps its guest's
//! code. The compile child's: `no_new_privs`; a Landlock ruleset
//! that denies every filesystem access, TCP bind and connect, and signals
//! or abstract sockets beyond its own process — a child that only reads
//! stdin and writes stdout needs none of them; and a seccomp-bpf allow-list
//! of the system calls compiling needs (memory, threads, stdio), every
//! other one failing with `EPERM` — no `execve`, no `ptrace`, no sockets,
//! no namespaces or mounts. A guest worker's is the same wall in two steps:
//! first ([`enter_worker_calls`], a spare before its assignment, as
//! installing the filters takes ~0.5 ms) its own allow-list
//! ([`WORKER_EXTRA_CALLS`] on top: the runtime and its sockets, threads
//! but no new processes) and a second filter that kills the worker
//! (`SIGSYS`) on the calls only an attacker makes: `execve`, `ptrace`,
//! reading another process's memory; then ([`enter_worker_paths`], once
//! its assignment hands it its function's directories, before it maps any
//! guest code) Landlock, with those directories open for reading. Best effort by kernel for
//! Landlock: what the kernel cannot enforce is reported, never silently
//! skipped.

use landlock::{
    ABI, Access, AccessFs, AccessNet, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};
use std::collections::BTreeMap;

/// The newest Landlock ABI the ruleset asks for (the kernel enforces what
/// it supports of it).
const WANTED: ABI = ABI::V6;

/// Jails the calling process (and every thread it starts from now on).
/// `Ok(None)`: fully enforced; `Ok(Some(why))`: enforced only in part, or
/// not at all, on this kernel, with why.
pub(crate) fn enter() -> Result<Option<String>, String> {
    let status = landlock_with_reads(&[])?;
    seccompiler::apply_filter(&allow_list(COMPILE_CALLS, &[])?)
        .map_err(|e| format!("installing the seccomp filter failed: {e}"))?;
    Ok(weaker(&status))
}

/// Jails a guest worker's system calls (it must still have one thread:
/// seccomp binds the calling thread and those it starts): sets
/// `no_new_privs`; seccomp allows [`COMPILE_CALLS`] and
/// [`WORKER_EXTRA_CALLS`] (`clone` for threads only), and the calls in
/// [`WORKER_KILLS`] kill the process.
pub(crate) fn enter_worker_calls() -> Result<(), String> {
    let thread_only = SeccompRule::new(vec![
        SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            libc::CLONE_THREAD as u64,
        )
        .map_err(|e| format!("building the seccomp filter failed: {e}"))?,
    ])
    .map_err(|e| format!("building the seccomp filter failed: {e}"))?;
    let calls = [COMPILE_CALLS, WORKER_EXTRA_CALLS].concat();
    let allowed = allow_list(&calls, &[(libc::SYS_clone, vec![thread_only])])?;
    let kills = kill_list()?;
    // `clone3` passes its flags in memory seccomp cannot read: it answers
    // "not implemented", and the C library falls back to `clone`, whose
    // flags the allow-list checks.
    let no_clone3 = program(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
    )?;
    for filter in [&kills, &no_clone3, &allowed] {
        seccompiler::apply_filter(filter)
            .map_err(|e| format!("installing the seccomp filter failed: {e}"))?;
    }
    Ok(())
}

/// Finishes a guest worker's jail (see [`enter_worker_calls`]) with
/// Landlock: no filesystem access but reading beneath the open directories
/// `dirs`. `Ok(Some(why))`: enforced only in part, or not at all, on this
/// kernel, with why.
pub(crate) fn enter_worker_paths(dirs: &[std::fs::File]) -> Result<Option<String>, String> {
    Ok(weaker(&landlock_with_reads(dirs)?))
}

/// Restricts the calling thread with Landlock: no filesystem access but
/// reading beneath `dirs`, no TCP, no signals or abstract sockets outside
/// its own process; sets `no_new_privs`.
fn landlock_with_reads(dirs: &[std::fs::File]) -> Result<landlock::RestrictionStatus, String> {
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(WANTED))
        .and_then(|r| r.handle_access(AccessNet::from_all(WANTED)))
        .and_then(|r| r.scope(Scope::from_all(WANTED)))
        .and_then(|r| r.create())
        .map_err(|e| format!("entering the jail failed: {e}"))?;
    for dir in dirs {
        ruleset = ruleset
            .add_rule(PathBeneath::new(dir, AccessFs::from_read(WANTED)))
            .map_err(|e| format!("allowing a granted directory in the jail failed: {e}"))?;
    }
    let status = ruleset
        .restrict_self()
        .map_err(|e| format!("entering the jail failed: {e}"))?;
    if !status.no_new_privs {
        return Err("setting no_new_privs failed".into());
    }
    Ok(status)
}

/// What of the jail this kernel does not enforce, if anything.
pub(crate) fn weaker(status: &landlock::RestrictionStatus) -> Option<String> {
    match status.ruleset {
        RulesetStatus::FullyEnforced => None,
        RulesetStatus::PartiallyEnforced => Some(format!(
            "Landlock is only partly enforced on this kernel ({:?})",
            status.landlock
        )),
        RulesetStatus::NotEnforced => Some(format!(
            "Landlock is not enforced on this kernel ({:?}); only no_new_privs holds",
            status.landlock
        )),
    }
}

/// The system calls the compile child makes once jailed (measured with
/// `strace -f -c` on small and 13 MB components), and those the runtime
/// may make on its error paths (exit, abort).
const COMPILE_CALLS: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_lseek,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_prctl,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_tgkill,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_getrandom,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_sysinfo,
    libc::SYS_membarrier,
    libc::SYS_exit,
    libc::SYS_exit_group,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    #[cfg(target_arch = "aarch64")]
    libc::SYS_ppoll,
];

/// The system calls a guest worker makes once jailed besides the compile
/// child's ([`COMPILE_CALLS`], but `clone` for threads only): what the
/// async runtime and its two sockets need (epoll, eventfd, send and receive
/// on sockets it holds), wasmtime's instance pool, reading its granted
/// directories, and Landlock's (its jail's last step comes after this
/// filter; Landlock only ever narrows what the caller may do). No
/// `socket`, `connect`, `bind`, `execve`, `fork`, `ptrace`, mounts or
/// namespaces.
const WORKER_EXTRA_CALLS: &[libc::c_long] = &[
    libc::SYS_readv,
    libc::SYS_pread64,
    libc::SYS_ioctl,
    libc::SYS_openat,
    libc::SYS_getdents64,
    libc::SYS_readlinkat,
    libc::SYS_fadvise64,
    libc::SYS_memfd_create,
    libc::SYS_ftruncate,
    libc::SYS_clock_getres,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_eventfd2,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_shutdown,
    libc::SYS_getsockopt,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_restrict_self,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
];

/// Calls that kill a jailed worker outright: only an attacker who left
/// the wasm sandbox makes them, and the kill is seen, logged and counted
/// by the front process.
const WORKER_KILLS: &[libc::c_long] = &[
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
];

/// Caps each of `limits` (soft and hard) for this process.
pub(crate) fn cap(limits: &[(rustix::process::Resource, u64)]) -> Result<(), String> {
    for &(resource, cap) in limits {
        let limit = rustix::process::Rlimit {
            current: Some(cap),
            maximum: Some(cap),
        };
        rustix::process::setrlimit(resource, limit)
            .map_err(|e| format!("capping {resource:?} failed: {e}"))?;
    }
    Ok(())
}

/// `calls` allowed (those in `conditional` only when their rules match),
/// every other call answered `EPERM`.
fn allow_list(
    calls: &[libc::c_long],
    conditional: &[(libc::c_long, Vec<SeccompRule>)],
) -> Result<BpfProgram, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        calls.iter().map(|&call| (call, Vec::new())).collect();
    rules.extend(conditional.iter().cloned());
    program(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
    )
}

/// [`WORKER_KILLS`] kill the process; every other call passes to the next
/// filter.
fn kill_list() -> Result<BpfProgram, String> {
    let rules = WORKER_KILLS
        .iter()
        .map(|&call| (call, Vec::new()))
        .collect();
    program(rules, SeccompAction::Allow, SeccompAction::KillProcess)
}

pub(crate) fn program(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp does not know this architecture: {e:?}"))?;
    let filter = SeccompFilter::new(rules, mismatch, matched, arch)
        .map_err(|e| format!("building the seccomp filter failed: {e}"))?;
    filter
        .try_into()
        .map_err(|e| format!("building the seccomp filter failed: {e:?}"))
}

/// Drops a worker started as root to `nobody` (and no supplementary
/// groups) before it jails itself, so file permissions and process limits
/// bind it. Must run while the process has one thread (the ids are set for
/// the calling thread, which every later thread inherits).
pub(crate) fn drop_root() -> Result<bool, String> {
    if !rustix::process::geteuid().is_root() {
        return Ok(false);
    }
    become_user(NOBODY)?;
    Ok(true)
}

/// The user (and group) id of `nobody`.
const NOBODY: u32 = 65534;

/// Switches the calling thread (and every thread it starts from now on)
/// to user and group `id`, with no supplementary groups. Needs root.
pub(crate) fn become_user(id: u32) -> Result<(), String> {
    use rustix::process::{Gid, Uid};
    let (uid, gid) = (Uid::from_raw(id), Gid::from_raw(id));
    rustix::thread::set_thread_groups(&[])
        .and_then(|()| rustix::thread::set_thread_res_gid(gid, gid, gid))
        .and_then(|()| rustix::thread::set_thread_res_uid(uid, uid, uid))
        .map_err(|e| format!("dropping root for user {id} failed: {e}"))
}
