//! Ahead-of-time compilation under a budget of time and memory, in this
//! process or in a child process.
//!
//! A small upload can be a compile bomb: 400 KB of empty functions takes
//! Cranelift seconds and hundreds of MB. [`Compiler::Subprocess`] (what the
//! `wisp` binary uses) runs each compile in a child process: the child caps
//! its own data segment (`RLIMIT_DATA`) at the memory budget, the parent
//! kills it at the time budget, its memory goes back to the system when it
//! exits, and a compiler crash cannot take the serving process down. The
//! child is any program that calls [`compile_worker_main`] (the `wisp`
//! binary runs itself with a hidden subcommand); the protocol is private to
//! this module: the `.wasm` on stdin, the artifact on stdout, the error on
//! stderr, the ABI and budget in environment variables.
//!
//! [`Compiler::InProcess`] (the library's default, needing no extra binary)
//! compiles on a thread of this process: the time budget still answers the
//! deploy on time, but the compile runs on to its end in the background, and
//! memory is not capped. Embedders that take uploads from untrusted users
//! should use a subprocess.

use crate::error::DeployError;
use crate::runtime::engine::{self, EngineOptions, Flavor};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wisp_spec::inspect::Abi;
use wisp_spec::units;

/// Default time one compile may take.
pub const DEFAULT_MAX_COMPILE_TIME: Duration = Duration::from_secs(60);
/// Default memory one compile may use (subprocess only), in bytes.
pub const DEFAULT_MAX_COMPILE_MEMORY_BYTES: u64 = 2 << 30;

/// How much one compile may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileBudget {
    /// Wall-clock time.
    pub time: Duration,
    /// Memory (data segment) of the compiling process, in bytes; enforced
    /// only by [`Compiler::Subprocess`].
    pub memory_bytes: u64,
}

impl Default for CompileBudget {
    fn default() -> Self {
        CompileBudget {
            time: DEFAULT_MAX_COMPILE_TIME,
            memory_bytes: DEFAULT_MAX_COMPILE_MEMORY_BYTES,
        }
    }
}

/// Where compiles run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Compiler {
    /// On a thread of this process.
    #[default]
    InProcess,
    /// In a child process: `program args…`, which must call
    /// [`compile_worker_main`] and exit with what it returns.
    Subprocess {
        /// The program (typically `std::env::current_exe()`).
        program: PathBuf,
        /// Its arguments, e.g. a hidden subcommand.
        args: Vec<OsString>,
    },
}

const ABI_VAR: &str = "WISP_COMPILE_ABI";
const MEMORY_VAR: &str = "WISP_COMPILE_MAX_MEMORY";
/// Bytes of a failed child's stderr kept for the error.
const STDERR_KEPT_BYTES: u64 = 16 << 10;

/// Compiles `wasm` to native code for `engine` within `budget` (blocking).
pub(crate) fn compile(
    engine: &Engine,
    compiler: &Compiler,
    budget: &CompileBudget,
    abi: Abi,
    wasm: &[u8],
) -> Result<Vec<u8>, DeployError> {
    match compiler {
        Compiler::InProcess => in_process(engine, budget, abi, wasm),
        Compiler::Subprocess { program, args } => in_subprocess(program, args, budget, abi, wasm),
    }
}

fn precompile(engine: &Engine, abi: Abi, wasm: &[u8]) -> Result<Vec<u8>, DeployError> {
    let compiled = match abi {
        Abi::WasiHttp | Abi::WasiHttp3 => engine.precompile_component(wasm),
        Abi::Cgi => engine.precompile_module(wasm),
    };
    compiled.map_err(|e| DeployError::Compile(format!("{e:#}")))
}

fn over_time(budget: &CompileBudget) -> DeployError {
    DeployError::CompileLimit(format!(
        "compiling took longer than this host allows ({}; `wisp serve --max-compile-time`)",
        units::format_duration(budget.time)
    ))
}

fn in_process(
    engine: &Engine,
    budget: &CompileBudget,
    abi: Abi,
    wasm: &[u8],
) -> Result<Vec<u8>, DeployError> {
    let (done, result) = mpsc::channel();
    let engine = engine.clone();
    let wasm = wasm.to_vec();
    std::thread::Builder::new()
        .name("wisp-compile".into())
        .spawn(move || {
            let _ = done.send(precompile(&engine, abi, &wasm));
        })
        .map_err(|e| DeployError::Compile(format!("starting a compile thread failed: {e}")))?;
    result
        .recv_timeout(budget.time)
        .map_err(|_| over_time(budget))?
}

fn in_subprocess(
    program: &PathBuf,
    args: &[OsString],
    budget: &CompileBudget,
    abi: Abi,
    wasm: &[u8],
) -> Result<Vec<u8>, DeployError> {
    let failed = |what: &str, e: std::io::Error| {
        DeployError::Compile(format!("{what} the compiler process failed: {e}"))
    };
    let started = Instant::now();
    // A clean environment: the child needs only what it is told here (and
    // must not inherit secrets such as the admin token).
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env(ABI_VAR, abi.as_str())
        .env(MEMORY_VAR, budget.memory_bytes.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed("starting", e))?;
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(DeployError::Compile(
            "the compiler process has no pipes".into(),
        ));
    };
    // Fed and drained on their own threads, so no pipe can fill and stall.
    let wasm = wasm.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&wasm));
    let artifact = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).map(|_| bytes)
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.take(STDERR_KEPT_BYTES).read_to_string(&mut text);
        text
    });
    let status = loop {
        let waited = child.try_wait();
        let over = started.elapsed() >= budget.time;
        if let Ok(Some(status)) = waited {
            break status;
        }
        if waited.is_err() || over {
            let _ = child.kill();
            let _ = child.wait();
            return Err(match waited {
                Err(e) => failed("waiting for", e),
                Ok(_) => over_time(budget),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = feeder.join();
    let artifact = artifact.join().ok().and_then(Result::ok);
    let message = errors.join().unwrap_or_default();
    if let Some(note) = message
        .lines()
        .find_map(|l| l.strip_prefix(JAIL_NOTE_PREFIX))
    {
        tracing::warn!(
            note,
            "the compiler process runs in a weaker jail on this kernel"
        );
    }
    match artifact {
        Some(bytes) if status.success() => Ok(bytes),
        _ if out_of_memory(&message) => Err(DeployError::CompileLimit(format!(
            "compiling needed more memory than this host allows ({}; `wisp serve --max-compile-memory`)",
            units::format_size(budget.memory_bytes)
        ))),
        _ => match message
            .find(WORKER_ERROR_PREFIX)
            .map(|at| message[at + WORKER_ERROR_PREFIX.len()..].trim())
        {
            // Cranelift's own verdict on the module: the deployer's to read.
            Some(reason) => Err(DeployError::Compile(reason.to_owned())),
            // A crash: its detail (which may name host paths) stays in the log.
            None => {
                tracing::error!(%status, stderr = %message.trim(), "the compiler process crashed");
                Err(DeployError::Compile(format!(
                    "the compiler process crashed ({status}; see the host log)"
                )))
            }
        },
    }
}

/// How the worker's stderr marks a compile error (as opposed to a crash).
const WORKER_ERROR_PREFIX: &str = "compile error: ";

/// Files the compile child may hold open at once.
const CHILD_MAX_FILES: u64 = 16;

/// How the worker's stderr says its jail is weaker than asked.
const JAIL_NOTE_PREFIX: &str = "jail: ";

fn out_of_memory(stderr: &str) -> bool {
    [
        "memory allocation of",
        "Cannot allocate memory",
        "out of memory",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

/// The child side of [`Compiler::Subprocess`]: reads a `.wasm` from stdin,
/// compiles it under the memory budget its parent set, writes the artifact
/// to stdout. A program used as the subprocess calls this and exits with
/// its result.
pub fn compile_worker_main() -> ExitCode {
    match compile_worker() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{WORKER_ERROR_PREFIX}{message}");
            ExitCode::from(2)
        }
    }
}

fn compile_worker() -> Result<(), String> {
    let abi = match std::env::var(ABI_VAR).as_deref() {
        Ok("wasi-http") => Abi::WasiHttp,
        Ok("wasi-http-0.3") => Abi::WasiHttp3,
        Ok("cgi") => Abi::Cgi,
        _ => {
            return Err(format!(
                "`{ABI_VAR}` must be `wasi-http`, `wasi-http-0.3` or `cgi`"
            ));
        }
    };
    if let Some(bytes) = std::env::var(MEMORY_VAR).ok().and_then(|v| v.parse().ok()) {
        let limit = rustix::process::Rlimit {
            current: Some(bytes),
            maximum: Some(bytes),
        };
        rustix::process::setrlimit(rustix::process::Resource::Data, limit)
            .map_err(|e| format!("capping memory failed: {e}"))?;
    }
    // Few files (it needs its three stdio pipes and the jail's ruleset) and
    // no core dump of an upload.
    super::jail::cap(&[
        (rustix::process::Resource::Nofile, CHILD_MAX_FILES),
        (rustix::process::Resource::Core, 0),
    ])?;
    let mut wasm = Vec::new();
    std::io::stdin()
        .read_to_end(&mut wasm)
        .map_err(|e| format!("reading the module failed: {e}"))?;
    // Before Cranelift sees the module: no files, no network, no new
    // privileges (see `jail.rs`). What the kernel cannot enforce is told to
    // the parent, which logs it.
    if let Some(weaker) = super::jail::enter()? {
        eprintln!("{JAIL_NOTE_PREFIX}{weaker}");
    }
    let engine = compile_engine(abi).map_err(|e| format!("creating the engine failed: {e:#}"))?;
    let artifact = precompile(&engine, abi, &wasm).map_err(|e| match e {
        DeployError::Compile(message) => message,
        other => other.to_string(),
    })?;
    std::io::stdout()
        .write_all(&artifact)
        .map_err(|e| format!("writing the artifact failed: {e}"))
}

/// An engine that compiles exactly as the serving engine of `abi` does,
/// without reserving an instance pool it will never use.
fn compile_engine(abi: Abi) -> wasmtime::Result<Engine> {
    engine::build(&EngineOptions {
        max_instances: 1,
        pooling: false,
        flavor: Flavor::of(abi),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compile_engine_makes_artifacts_the_serving_engine_accepts() {
        let serving = engine::build(&EngineOptions::default()).unwrap();
        let compiling = compile_engine(Abi::Cgi).unwrap();
        assert_eq!(
            engine::compatibility_fingerprint(&serving),
            engine::compatibility_fingerprint(&compiling)
        );
        let module = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        let artifact = precompile(&compiling, Abi::Cgi, &module).unwrap();
        // SAFETY: the artifact was just produced by a compatible engine.
        #[expect(unsafe_code, reason = "loading an artifact this test compiled")]
        let loaded = unsafe { wasmtime::Module::deserialize(&serving, &artifact) };
        assert!(loaded.is_ok());
    }

    #[test]
    fn an_in_process_compile_over_time_is_answered_on_time() {
        let engine = compile_engine(Abi::Cgi).unwrap();
        let mut text = String::from(r#"(module (func (export "_start"))"#);
        for _ in 0..20_000 {
            text.push_str(" (func)");
        }
        text.push(')');
        let module = wat::parse_str(&text).unwrap();
        let budget = CompileBudget {
            time: Duration::from_millis(1),
            memory_bytes: DEFAULT_MAX_COMPILE_MEMORY_BYTES,
        };
        let error = in_process(&engine, &budget, Abi::Cgi, &module).unwrap_err();
        assert!(matches!(error, DeployError::CompileLimit(_)), "{error}");
    }
}
