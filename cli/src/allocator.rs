//! The allocator of every wisp process — the front, guest workers, the
//! compile child: mimalloc, which serves the request path's many small
//! allocations faster than the C library's (`wisp serve --isolation
//! process` at c=32: about a fifth more requests a second; README,
//! performance).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a guest worker's environment tells its allocator: no eager commit
/// of its arenas, which doubled a worker's start and tripled the memory
/// of an idle one (`benches/workers.py`).
pub const WORKER_ENV: &[(&str, &str)] = &[("MIMALLOC_ARENA_EAGER_COMMIT", "0")];
