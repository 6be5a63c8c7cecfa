//! The build child's wall (see [`super::child`] for the order): the
//! namespaces and mounts root sets up (the build user named in the
//! namespace's `/etc/passwd`), the switch to the build user, the
//! rlimits, Landlock and the seccomp filter. Builds run arbitrary programs
//! (compilers, build scripts, package managers), so unlike a guest
//! worker's allow-list their filter is a deny-list of what no build needs.

use super::child::{BUILD_USER, CACHE_VIEW, Job, Limits, WORK_VIEW};
use crate::runtime::jail as base;
use landlock::{
    ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
    path_beneath_rules,
};
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags};
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The newest Landlock ABI asked for (the kernel enforces what it has).
const WANTED: ABI = ABI::V6;

/// What every build may read and execute: the system's programs and
/// libraries, and of `/etc` only what programs need to start, resolve
/// names and check certificates.
const SYSTEM_READS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/localtime",
    "/sys/devices/system/cpu",
];

/// Devices every build may read and write.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

#[expect(
    unsafe_code,
    reason = "unshare(2) in the single-threaded build child, without CLONE_FILES (the flag that makes it unsafe)"
)]
fn unshare(flags: rustix::thread::UnshareFlags) -> Result<(), String> {
    // SAFETY: the child has one thread and does not unshare its file table.
    unsafe { rustix::thread::unshare_unsafe(flags) }
        .map_err(|e| format!("making the build's namespaces failed: {e}"))
}

/// As root: a mount namespace with a private `/tmp`, the build's
/// directories at [`WORK_VIEW`] and [`CACHE_VIEW`], and the toolchains the
/// build user could not reach bound read-only at their own paths over an
/// empty directory (so nothing else beside them shows); with the network
/// denied, an empty network namespace.
pub(super) fn enter_namespaces(job: &Job) -> Result<(), String> {
    use rustix::thread::UnshareFlags;
    let mut flags = UnshareFlags::NEWNS;
    if !job.network {
        flags |= UnshareFlags::NEWNET;
    }
    unshare(flags)?;
    let failed = |what: &str, e: rustix::io::Errno| format!("{what} failed: {e}");
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| failed("making the mounts private", e))?;
    // Opened in the new namespace (a bind mount's source must be in the
    // caller's), and before the mounts below hide their paths.
    let work = open_path(&job.work)?;
    let cache = open_path(&job.cache)?;
    let mut exposed = Vec::new();
    let mut covers = Vec::new();
    for tool in &job.tools {
        let blocked = blocked_ancestor(tool);
        if blocked.is_none() && !tool.starts_with("/tmp") {
            continue;
        }
        if let Some(ancestor) = blocked
            && !covers.contains(&ancestor)
        {
            covers.push(ancestor);
        }
        exposed.push((tool.clone(), open_path(tool)?));
    }
    let scratch = MountFlags::NOSUID | MountFlags::NODEV;
    // Memory, not disk: bounded (the build's TMPDIR is in its cache).
    rustix::mount::mount(
        "tmpfs",
        "/tmp",
        "tmpfs",
        scratch,
        Some(c"mode=1777,size=256m,nr_inodes=65536"),
    )
    .map_err(|e| failed("mounting a private /tmp", e))?;
    for cover in &covers {
        rustix::mount::mount(
            "tmpfs",
            cover.as_path(),
            "tmpfs",
            scratch,
            Some(c"mode=0755"),
        )
        .map_err(|e| failed(&format!("covering {}", cover.display()), e))?;
    }
    for (tool, fd) in &exposed {
        bind(fd, tool, true)?;
    }
    bind(&work, Path::new(WORK_VIEW), false)?;
    bind(&cache, Path::new(CACHE_VIEW), false)?;
    name_the_build_user()?;
    Ok(())
}

/// Gives the build user a name and a home in this namespace's
/// `/etc/passwd` and `/etc/group` (copies of the host's with one line
/// more, bound over them read-only): tools that look their user up
/// (`getpwuid`, as wizer does to find its home) find one.
fn name_the_build_user() -> Result<(), String> {
    let home = Path::new(CACHE_VIEW).join("home");
    for (file, line) in [
        (
            "passwd",
            format!(
                "wisp-build:x:{BUILD_USER}:{BUILD_USER}:wisp build:{}:/usr/sbin/nologin\n",
                home.display()
            ),
        ),
        ("group", format!("wisp-build:x:{BUILD_USER}:\n")),
    ] {
        let host = Path::new("/etc").join(file);
        let mut text = std::fs::read_to_string(&host).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        let copy = Path::new("/tmp/wisp-build").join(file);
        std::fs::write(&copy, text)
            .map_err(|e| format!("writing the build's {file} failed: {e}"))?;
        if host.exists() {
            rustix::mount::mount_bind(&copy, &host)
                .and_then(|()| {
                    rustix::mount::mount_remount(&host, MountFlags::BIND | MountFlags::RDONLY, "")
                })
                .map_err(|e| format!("naming the build user in {} failed: {e}", host.display()))?;
        }
    }
    Ok(())
}

/// Mounts the directory open as `fd` at `at` (made first), read-only if
/// asked.
fn bind(fd: &OwnedFd, at: &Path, read_only: bool) -> Result<(), String> {
    std::fs::create_dir_all(at).map_err(|e| format!("making {} failed: {e}", at.display()))?;
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::mount::mount_bind_recursive(source.as_str(), at)
        .map_err(|e| format!("showing {} to the build failed: {e}", at.display()))?;
    if read_only {
        rustix::mount::mount_remount(at, MountFlags::BIND | MountFlags::RDONLY, "")
            .map_err(|e| format!("making {} read-only failed: {e}", at.display()))?;
    }
    Ok(())
}

fn open_path(path: &Path) -> Result<OwnedFd, String> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening {} failed: {e}", path.display()))
}

/// The topmost directory above `path` the build user may not pass
/// through (no search permission for others), if any.
fn blocked_ancestor(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find(|dir| {
            std::fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 == 0 && m.uid() != BUILD_USER)
        })
        .map(Path::to_path_buf)
}

/// Switches to [`BUILD_USER`].
pub(super) fn become_build_user() -> Result<(), String> {
    base::become_user(BUILD_USER)
}

/// Caps the build's resources (see [`Limits`]).
pub(super) fn limit(limits: &Limits, processes: u64, open_files: u64) -> Result<(), String> {
    use rustix::process::Resource;
    base::cap(&[
        (Resource::Cpu, limits.cpu_seconds),
        (Resource::Data, limits.memory_bytes),
        (Resource::Fsize, limits.file_bytes),
        (Resource::Nproc, processes),
        (Resource::Nofile, open_files),
        (Resource::Core, 0),
    ])
}

/// Landlock (read and execute the system and `tools`, write `writable`, no
/// TCP unless `network`, no signals or abstract sockets beyond the build)
/// and the seccomp deny-list. `Ok(Some(why))`: Landlock is only partly
/// enforced on this kernel.
pub(super) fn enter(
    tools: &[PathBuf],
    writable: &[PathBuf],
    network: bool,
) -> Result<Option<String>, String> {
    let failed = |e: landlock::RulesetError| format!("entering the build jail failed: {e}");
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(WANTED))
        .map_err(failed)?;
    if !network {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(WANTED))
            .map_err(failed)?;
    }
    let reads = SYSTEM_READS
        .iter()
        .map(PathBuf::from)
        .chain(tools.iter().cloned())
        .filter(|p| p.exists());
    let devices = DEVICES.iter().map(PathBuf::from).filter(|p| p.exists());
    let status = ruleset
        .scope(Scope::from_all(WANTED))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(reads, AccessFs::from_read(WANTED))))
        .and_then(|r| r.add_rules(path_beneath_rules(writable, AccessFs::from_all(WANTED))))
        .and_then(|r| r.add_rules(path_beneath_rules(devices, AccessFs::from_file(WANTED))))
        .and_then(|r| r.restrict_self())
        .map_err(failed)?;
    if !status.no_new_privs {
        return Err("setting no_new_privs failed".into());
    }
    for filter in [deny_list(network)?, no_clone3()?] {
        seccompiler::apply_filter(&filter)
            .map_err(|e| format!("installing the build's seccomp filter failed: {e}"))?;
    }
    Ok(base::weaker(&status))
}

/// Calls no build needs, answered `EPERM`: tracing and reading other
/// processes, mounts and namespaces, kernel modules and keys, BPF and perf,
/// leaving the build's process group, io_uring (which bypasses seccomp);
/// `clone` with a namespace flag; with the network denied, any socket but a
/// Unix one.
fn deny_list(network: bool) -> Result<seccompiler::BpfProgram, String> {
    let failed = |e: seccompiler::BackendError| format!("building the seccomp filter failed: {e}");
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = [
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_setsid,
        libc::SYS_setpgid,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_userfaultfd,
        libc::SYS_open_by_handle_at,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
    ]
    .into_iter()
    .map(|call| (call, Vec::new()))
    .collect();
    let namespaces = [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
    ];
    let mut clone_rules = Vec::new();
    for flag in namespaces {
        let flag = flag as u64;
        let condition = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )
        .map_err(failed)?;
        clone_rules.push(SeccompRule::new(vec![condition]).map_err(failed)?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    if !network {
        let not_unix = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            libc::AF_UNIX as u64,
        )
        .map_err(failed)?;
        rules.insert(
            libc::SYS_socket,
            vec![SeccompRule::new(vec![not_unix]).map_err(failed)?],
        );
    }
    base::program(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
    )
}

/// `clone3` answers "not implemented": its flags are in memory the filter
/// cannot read, and the C library falls back to `clone`, whose flags it
/// checks.
fn no_clone3() -> Result<seccompiler::BpfProgram, String> {
    base::program(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
    )
}
