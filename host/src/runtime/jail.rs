//! The operating-system wall a child process puts up around itself before
//! it touches untrusted input (today: the compile child, which runs
//! Cranelift on an uploaded module): `no_new_privs`; a Landlock ruleset
//! that denies every filesystem access, TCP bind and connect, and signals
//! or abstract sockets beyond its own process — a child that only reads
//! stdin and writes stdout needs none of them; and a seccomp-bpf allow-list
//! of the system calls compiling needs (memory, threads, stdio), every
//! other one failing with `EPERM` — no `execve`, no `ptrace`, no sockets,
//! no namespaces or mounts. Best effort by kernel for Landlock: what the
//! kernel cannot enforce is reported, never silently skipped.

use landlock::{ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetStatus, Scope};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
use std::collections::BTreeMap;

/// The newest Landlock ABI the ruleset asks for (the kernel enforces what
/// it supports of it).
const WANTED: ABI = ABI::V6;

/// Jails the calling process (and every thread it starts from now on).
/// `Ok(None)`: fully enforced; `Ok(Some(why))`: enforced only in part, or
/// not at all, on this kernel, with why.
pub(crate) fn enter() -> Result<Option<String>, String> {
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(WANTED))
        .and_then(|r| r.handle_access(AccessNet::from_all(WANTED)))
        .and_then(|r| r.scope(Scope::from_all(WANTED)))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("entering the jail failed: {e}"))?;
    if !status.no_new_privs {
        return Err("setting no_new_privs failed".into());
    }
    let filter = compile_allow_list()?;
    seccompiler::apply_filter(&filter)
        .map_err(|e| format!("installing the seccomp filter failed: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => None,
        RulesetStatus::PartiallyEnforced => Some(format!(
            "Landlock is only partly enforced on this kernel ({:?})",
            status.landlock
        )),
        RulesetStatus::NotEnforced => Some(format!(
            "Landlock is not enforced on this kernel ({:?}); only no_new_privs holds",
            status.landlock
        )),
    })
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

/// [`COMPILE_CALLS`] allowed, every other call answered `EPERM`.
fn compile_allow_list() -> Result<BpfProgram, String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp does not know this architecture: {e:?}"))?;
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = COMPILE_CALLS
        .iter()
        .map(|&call| (call, Vec::new()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| format!("building the seccomp filter failed: {e}"))?;
    filter
        .try_into()
        .map_err(|e| format!("building the seccomp filter failed: {e:?}"))
}
