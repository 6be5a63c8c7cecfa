//! The escape drill: a test-only host capability (cargo feature
//! `escape-drill`, which only the test builds turn on; `.ci/run` checks a
//! normal build leaves it off) standing in for a guest that escaped the
//! wasm sandbox. A CGI guest importing `wisp_drill.attack` names an attack
//! and its worker process runs it natively — raw system calls inside the
//! OS wall — and answers with the result: `0` when the attack succeeded,
//! else the `errno` the wall answered (a wall that kills the worker leaves
//! no answer). Outside a jailed worker it runs nothing and answers `-2`.

use crate::runtime::abi::cgi::CgiState;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::{Caller, Linker};

/// Set once this process is a jailed worker.
static JAILED: AtomicBool = AtomicBool::new(false);

/// Attacks run at most this many forks.
const FORKS: usize = 64;

/// This process is a jailed worker: attacks may run.
pub(crate) fn jailed() {
    JAILED.store(true, Ordering::Release);
}

/// Adds `wisp_drill.attack` to the CGI linker.
pub(crate) fn add_to_linker(linker: &mut Linker<CgiState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "wisp_drill",
        "attack",
        |mut caller: Caller<'_, CgiState>, name: u32, len: u32| -> i32 {
            let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
                return -1;
            };
            let mut bytes = vec![0u8; (len as usize).min(4096)];
            if memory.read(&caller, name as usize, &mut bytes).is_err() {
                return -1;
            }
            if !JAILED.load(Ordering::Acquire) {
                return -2;
            }
            attack(&String::from_utf8_lossy(&bytes))
        },
    )?;
    Ok(())
}

/// The `errno` of `error`.
fn errno(error: &std::io::Error) -> i32 {
    error.raw_os_error().unwrap_or(-1)
}

/// Runs attack `name`.
fn attack(name: &str) -> i32 {
    let (kind, argument) = name.split_once(':').unwrap_or((name, ""));
    let result = match kind {
        "read" => std::fs::read(argument).map(drop),
        "write" => std::fs::write(argument, b"escaped\n"),
        "connect" => {
            std::net::TcpStream::connect(("127.0.0.1", argument.parse().unwrap_or(0))).map(drop)
        }
        "exec" => return raw::exec_shell(),
        "ptrace" => return raw::ptrace_attach(argument.parse().unwrap_or(1)),
        "fork" => return raw::fork_until_stopped(FORKS),
        "socket" => return raw::socket(),
        "segv" => raw::segfault(),
        "alloc" => allocate(argument.parse().unwrap_or(0)),
        "threads" => return start_threads(argument.parse().unwrap_or(0)),
        "garble" => garble(),
        "code" => rewrite_code(),
        _ => return -1,
    };
    result.map_or_else(|e| errno(&e), |()| 0)
}

/// Finds the memory file of its compiled code among its descriptors (the
/// one with seals: which every worker of the same code maps), opens it for
/// writing through `/proc/self/fd` and writes to it; `ENOENT` when it
/// holds no such file.
fn rewrite_code() -> std::io::Result<()> {
    use std::io::Write;
    let fd = raw::sealed_descriptor().ok_or(std::io::Error::from_raw_os_error(libc::ENOENT))?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{fd}"))?
        .write_all(b"escaped")
}

/// Writes a frame of a kind the front does not know to the worker's calls
/// socket (its stdin), as a worker in an attacker's hands could.
fn garble() -> std::io::Result<()> {
    use std::io::Write;
    use std::os::fd::AsFd;
    let socket = std::io::stdin().as_fd().try_clone_to_owned()?;
    std::fs::File::from(socket).write_all(&[0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0])
}

/// Maps `mib` MiB and writes to every page of it (held until the worker
/// ends).
fn allocate(mib: usize) -> std::io::Result<()> {
    let mut memory: Vec<u8> = Vec::new();
    memory
        .try_reserve_exact(mib << 20)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
    for page in memory.spare_capacity_mut().iter_mut().step_by(4096) {
        page.write(1);
    }
    std::hint::black_box(&mut memory);
    std::mem::forget(memory);
    Ok(())
}

/// Starts up to `count` threads that sleep a while: the first failure's
/// `errno`, or 0 when every one started.
fn start_threads(count: usize) -> i32 {
    for _ in 0..count {
        let started = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(|| std::thread::sleep(std::time::Duration::from_secs(30)));
        if let Err(error) = started {
            return errno(&error);
        }
    }
    0
}

/// The attacks that need calls the standard library does not wrap.
#[expect(
    unsafe_code,
    reason = "raw system calls: the drill stands in for an attacker who left the wasm sandbox"
)]
mod raw {
    /// The `errno` of the last call.
    fn last() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }

    /// `execve("/bin/sh")`.
    pub(super) fn exec_shell() -> i32 {
        let shell = c"/bin/sh";
        let argv = [shell.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        // SAFETY: both arrays are null-terminated and outlive the call.
        unsafe { libc::execve(shell.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        last()
    }

    /// `ptrace(PTRACE_ATTACH, pid)`.
    pub(super) fn ptrace_attach(pid: i32) -> i32 {
        // SAFETY: PTRACE_ATTACH takes no pointers.
        let done = unsafe {
            libc::ptrace(
                libc::PTRACE_ATTACH,
                pid,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        if done == 0 { 0 } else { last() }
    }

    /// `fork()` up to `times` times (each child exits at once); the first
    /// failure's `errno`, or 0 when every fork succeeded.
    pub(super) fn fork_until_stopped(times: usize) -> i32 {
        for _ in 0..times {
            // SAFETY: the child calls only `_exit`.
            match unsafe { libc::fork() } {
                0 => unsafe { libc::_exit(0) },
                -1 => return last(),
                _ => {}
            }
        }
        0
    }

    /// A write through a null pointer: the crash of a worker whose memory
    /// was corrupted.
    pub(super) fn segfault() -> ! {
        // SAFETY: none — crashing is the point.
        unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u8>(), 1) };
        unreachable!("a write through a null pointer returned")
    }

    /// The first open descriptor with file seals (`F_GET_SEALS`: only a
    /// memory file has them).
    pub(super) fn sealed_descriptor() -> Option<i32> {
        // SAFETY: `F_GET_SEALS` takes no pointer; an unopened descriptor
        // answers `EBADF`.
        (0..1024).find(|&fd| unsafe { libc::fcntl(fd, libc::F_GET_SEALS) } > 0)
    }

    /// `socket(AF_INET, SOCK_STREAM)`.
    pub(super) fn socket() -> i32 {
        // SAFETY: no pointers.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        if fd >= 0 {
            // SAFETY: `fd` was just opened here.
            unsafe { libc::close(fd) };
            0
        } else {
            last()
        }
    }
}
