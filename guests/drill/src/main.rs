//! `drill`: the escape drill's attacker (`tests/process/worker.rs`). It
//! stands in for a guest that has escaped the wasm sandbox: through the
//! test-only `wisp_drill` import (compiled into test builds of `wisp` only,
//! never into a release binary) it has its worker run one raw system call
//! attack, named by its query string — `read:PATH`, `write:PATH`,
//! `connect:PORT`, `socket`, `fork`, `exec`, `ptrace:PID`, `segv` — and
//! answers with the call's result: `0` when
//! the attack succeeded, else the `errno` the OS wall answered. A wall that
//! kills the worker instead leaves no answer at all.

#[link(wasm_import_module = "wisp_drill")]
unsafe extern "C" {
    /// Runs the attack named by the `len` bytes at `name`; its result.
    fn attack(name: *const u8, len: usize) -> i32;
}

fn main() {
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    if query == "sleep" {
        std::thread::sleep(std::time::Duration::from_secs(3));
        print!("Content-Type: text/plain\n\nslept\n");
        return;
    }
    // SAFETY: the host reads `len` bytes at `name` from this module's
    // memory, which `query` holds for the whole call.
    let result = unsafe { attack(query.as_ptr(), query.len()) };
    print!("Content-Type: text/plain\n\n{query} -> {result}\n");
}
