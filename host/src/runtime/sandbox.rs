//! What every per-request sandbox gets, whichever ABI: its WASI context
//! (default-deny), its store limits, and how its failure is explained.
//!
//! A sandbox sees only what its function's settings grant: the declared env
//! vars, the declared directories read-only, no args, no sockets, and the
//! standard clocks and randomness. Its store has the memory limiter, a fuel
//! budget, and an epoch deadline that makes a running guest yield at every
//! tick — so a deadline (a `tokio` timeout around the whole request) can stop
//! even a guest spinning in a loop.

use crate::error::{HostFailure, InvokeError, Limit};
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::{PoolConcurrencyLimitError, Store, Trap};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};
use wisp_spec::limits::{DEFAULT_TABLE_ELEMENTS_LIMIT, Limits};
use wisp_spec::settings::Settings;
use wisp_spec::units;

/// Starts a WASI context for function `function` with `settings`: env and
/// read-only dirs, nothing else. A directory that cannot be opened is logged
/// with its host path; the error, which a public client may see, names only
/// where the guest would have seen it.
pub fn wasi_builder(function: &str, settings: &Settings) -> Result<WasiCtxBuilder, InvokeError> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for (key, value) in &settings.env {
        builder.env(key, value);
    }
    for mount in &settings.dirs {
        builder
            .preopened_dir(&mount.host, &mount.guest, FsPerms::ReadOnly)
            .map_err(|e| {
                InvokeError::Grant(HostFailure::logged(
                    format!(
                        "opening the directory granted to function `{function}` at `{}` failed",
                        mount.guest
                    ),
                    format_args!("opening `{}`: {e:#}", mount.host.display()),
                ))
            })?;
    }
    Ok(builder)
}

/// Fuel given to functions that do not meter: effectively unlimited.
const UNMETERED_FUEL: u64 = u64::MAX;

/// Applies the per-request limits to a new store.
pub fn prepare_store<T>(store: &mut Store<T>, limits: &Limits) -> Result<(), InvokeError> {
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
    store
        .set_fuel(limits.fuel.unwrap_or(UNMETERED_FUEL))
        .map_err(|e| InvokeError::Internal(format!("setting fuel failed: {e}")))
}

/// Fuel the guest burned in this store so far (0 for unmetered functions).
pub fn fuel_used<T>(store: &Store<T>, limits: &Limits) -> u64 {
    // Unmetered functions run on an effectively unlimited budget: not charged.
    let Some(start) = limits.fuel else { return 0 };
    start.saturating_sub(store.get_fuel().unwrap_or(start))
}

/// The error for a request that ran out of time.
pub fn timeout_error(limits: &Limits) -> InvokeError {
    InvokeError::limit(Limit::Timeout, timeout_message(limits.timeout))
}

/// What a request past its `timeout` is told.
pub fn timeout_message(timeout: std::time::Duration) -> String {
    format!(
        "the function exceeded its time limit of {}",
        units::format_duration(timeout)
    )
}

/// The error for an instantiation that failed before the guest ran: a full
/// instance pool is `503` (retry shortly), anything else internal.
pub fn instantiate_error(error: wasmtime::Error) -> InvokeError {
    instantiate_error_of(&error)
}

/// [`instantiate_error`] of an error shared with others.
pub fn instantiate_error_of(error: &wasmtime::Error) -> InvokeError {
    match error.downcast_ref::<PoolConcurrencyLimitError>() {
        Some(_) => pool_full(),
        None => InvokeError::Internal(format!("{error:#}")),
    }
}

fn pool_full() -> InvokeError {
    InvokeError::limit(
        Limit::Concurrency,
        "the host's instance pool is full; retry shortly",
    )
}

/// Bytes of a failed guest's stderr quoted in the host log.
const FAILURE_STDERR_TAIL_BYTES: usize = 2048;

/// Logs a guest failure with the end of what the guest wrote to stderr (a
/// Rust panic message, typically).
pub fn log_failure(function: &str, request_id: &str, error: &wasmtime::Error, stderr: &[u8]) {
    let tail = &stderr[stderr.len().saturating_sub(FAILURE_STDERR_TAIL_BYTES)..];
    tracing::warn!(
        function,
        request_id,
        error = format!("{error:#}"),
        guest_stderr = ?String::from_utf8_lossy(tail).trim_end(),
        "guest failed"
    );
}

/// Explains why a guest call failed. `Ok(())` means it exited with status 0,
/// which for a command is success.
pub fn explain_failure(
    error: &wasmtime::Error,
    memory: &MemoryLimiter,
    limits: &Limits,
) -> Result<(), InvokeError> {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return if exit.0 == 0 {
            Ok(())
        } else {
            Err(InvokeError::Exit(exit.0))
        };
    }
    if error.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        return Err(pool_full());
    }
    if memory.host_full {
        return Err(InvokeError::limit(
            Limit::HostMemory,
            format!(
                "the host's memory for guests is in use up to its budget of {}; retry shortly",
                units::format_size(memory.host.limit())
            ),
        ));
    }
    if memory.hit {
        return Err(InvokeError::limit(
            Limit::Memory,
            format!(
                "the function exceeded its memory limit of {}",
                units::format_size(limits.memory_bytes)
            ),
        ));
    }
    if let Some(Trap::OutOfFuel) = error.downcast_ref::<Trap>() {
        return Err(InvokeError::limit(
            Limit::Fuel,
            format!(
                "the function ran out of fuel (budget {} per request)",
                limits.fuel.unwrap_or_default()
            ),
        ));
    }
    let reason = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error.to_string(),
    };
    Err(InvokeError::Trap(reason))
}

/// The host-wide budget of guest linear memory: every live sandbox's
/// memory, added up, stays within it (default: half of physical memory, see
/// [`default_guest_memory`]), whatever `max_instances` times the functions'
/// own memory limits would allow. A growth past it fails in the guest, which
/// is answered `503` (`host-memory`), like a pool slot that is not free.
/// The bytes held show as the `wisp_guest_memory_bytes` gauge.
pub struct GuestMemory {
    limit: u64,
    held: AtomicU64,
    gauge: Gauge,
    /// A guest worker's: the part of the front's budget it was granted,
    /// and how it asks for more (see [`MemoryLease`]).
    lease: Option<Lease>,
}

/// A guest worker's share of its front's guest memory budget.
struct Lease {
    granted: AtomicU64,
    source: std::sync::OnceLock<Arc<dyn MemoryLease>>,
}

/// How a guest worker asks its front for more of the host's guest memory
/// budget, and gives back what it does not use.
pub(crate) trait MemoryLease: Send + Sync {
    /// Asks for `bytes` more; true when granted.
    fn grow(&self, bytes: u64) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>>;
    /// Gives back `bytes` (without waiting for the front).
    fn give_back(&self, bytes: u64);
}

/// The steps a guest worker's lease grows and shrinks by.
pub(crate) const LEASE_STEP: u64 = 16 << 20;

impl std::fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestMemory")
            .field("limit", &self.limit)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

/// The default guest memory budget: half of physical memory (8 GiB if
/// unknown).
pub fn default_guest_memory() -> u64 {
    let info = rustix::system::sysinfo();
    let total = u64::from(info.mem_unit).saturating_mul(info.totalram as u64);
    if total == 0 { 8 << 30 } else { total / 2 }
}

impl GuestMemory {
    /// A budget of `limit` bytes, reported through `gauge`.
    pub fn new(limit: u64, gauge: Gauge) -> Arc<GuestMemory> {
        Arc::new(GuestMemory {
            limit,
            held: AtomicU64::new(0),
            gauge,
            lease: None,
        })
    }

    /// A guest worker's budget: a share of its front's budget of `limit`
    /// bytes, `granted` of it granted already; [`GuestMemory::lease_from`]
    /// says how it asks for more.
    pub(crate) fn leased(limit: u64, granted: u64, gauge: Gauge) -> Arc<GuestMemory> {
        Arc::new(GuestMemory {
            limit,
            held: AtomicU64::new(0),
            gauge,
            lease: Some(Lease {
                granted: AtomicU64::new(granted),
                source: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Sets where a leased budget asks for more.
    pub(crate) fn lease_from(&self, source: Arc<dyn MemoryLease>) {
        if let Some(lease) = &self.lease {
            let _ = lease.source.set(source);
        }
    }

    /// True for a guest worker's leased budget.
    pub(crate) fn is_leased(&self) -> bool {
        self.lease.is_some()
    }

    /// The bound `take` holds to: the budget, or what was granted of it.
    fn bound(&self) -> u64 {
        match &self.lease {
            Some(lease) => lease.granted.load(Ordering::Acquire),
            None => self.limit,
        }
    }

    /// Asks the front for enough more to take `bytes` (what the lease
    /// lacks for them, in whole steps); true when granted.
    async fn grow_lease(&self, bytes: u64) -> bool {
        let Some(lease) = &self.lease else {
            return false;
        };
        let Some(source) = lease.source.get() else {
            return false;
        };
        let free = lease
            .granted
            .load(Ordering::Acquire)
            .saturating_sub(self.held.load(Ordering::Acquire));
        let ask = bytes
            .saturating_sub(free)
            .max(1)
            .div_ceil(LEASE_STEP)
            .saturating_mul(LEASE_STEP);
        if !source.grow(ask).await {
            return false;
        }
        lease.granted.fetch_add(ask, Ordering::AcqRel);
        true
    }

    /// Gives back the whole steps of the lease its guests do not use,
    /// keeping `spare` steps for the next ones.
    pub(crate) fn trim_lease(&self, spare: u64) {
        let Some(lease) = &self.lease else { return };
        let Some(source) = lease.source.get() else {
            return;
        };
        let spare = |granted: u64| {
            let free = granted.saturating_sub(self.held.load(Ordering::Acquire));
            free.saturating_sub(spare * LEASE_STEP) / LEASE_STEP * LEASE_STEP
        };
        let trimmed = lease
            .granted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |granted| {
                let give = spare(granted);
                (give > 0).then(|| granted - give)
            });
        if let Ok(before) = trimmed {
            let after = lease.granted.load(Ordering::Acquire);
            source.give_back(before.saturating_sub(after));
        }
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn take(&self, bytes: u64) -> bool {
        let taken = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(bytes)
                    .filter(|&total| total <= self.bound())
            })
            .is_ok();
        if taken {
            self.gauge.inc_by(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        taken
    }

    fn give_back(&self, bytes: u64) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
        self.gauge.dec_by(i64::try_from(bytes).unwrap_or(i64::MAX));
        // What a worker's guests no longer use goes back to the host at
        // once, for other functions' guests, but for one step its next
        // guests are likely to need (the rest goes within a second).
        self.trim_lease(1);
    }
}

/// Bytes of the host's guest memory budget held for a run in another
/// process (a guest worker's), given back when dropped.
pub(crate) struct MemoryCharge {
    host: Arc<GuestMemory>,
    bytes: u64,
}

impl GuestMemory {
    /// Holds `bytes` of the budget, if that many are free.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64) -> Option<MemoryCharge> {
        self.take(bytes).then(|| MemoryCharge {
            host: self.clone(),
            bytes,
        })
    }
}

impl MemoryCharge {
    /// Holds `bytes` more, if that many are free and it then holds at
    /// most `most`.
    pub(crate) fn grow(&mut self, bytes: u64, most: u64) -> bool {
        if self.bytes.saturating_add(bytes) > most {
            return false;
        }
        let taken = self.host.take(bytes);
        if taken {
            self.bytes += bytes;
        }
        taken
    }

    /// Gives back up to `bytes` of what it holds.
    pub(crate) fn shrink(&mut self, bytes: u64) {
        let bytes = bytes.min(self.bytes);
        self.host.give_back(bytes);
        self.bytes -= bytes;
    }
}

impl Drop for MemoryCharge {
    fn drop(&mut self) {
        self.host.give_back(self.bytes);
    }
}

/// Enforces the memory cap inside a store and remembers whether the guest hit
/// it, so a resulting trap is reported as the limit, not as a mystery. Its
/// memory is charged to the host's [`GuestMemory`] until the store is gone.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit_bytes: usize,
    hit: bool,
    host_full: bool,
    peak_bytes: usize,
    host: Arc<GuestMemory>,
    charged: u64,
}

impl MemoryLimiter {
    /// A limiter allowing at most `limit_bytes` of linear memory in total,
    /// charged to `host`.
    pub fn new(limit_bytes: u64, host: Arc<GuestMemory>) -> Self {
        MemoryLimiter {
            limit_bytes: usize::try_from(limit_bytes).unwrap_or(usize::MAX),
            hit: false,
            host_full: false,
            peak_bytes: 0,
            host,
            charged: 0,
        }
    }

    /// Largest linear memory the guest reached, in bytes.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }
}

impl MemoryLimiter {
    /// Whether memory may grow from `current` to `desired` bytes; `Err`
    /// with the bytes to charge when only the host's budget stands in the
    /// way.
    fn check_growth(&mut self, current: usize, desired: usize) -> Result<bool, u64> {
        if desired > self.limit_bytes {
            self.hit = true;
            return Ok(false);
        }
        let extra = desired.saturating_sub(current) as u64;
        if !self.host.take(extra) {
            return Err(extra);
        }
        self.charged += extra;
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn check_table(&mut self, desired: usize) -> bool {
        if desired > DEFAULT_TABLE_ELEMENTS_LIMIT {
            self.hit = true;
            return false;
        }
        true
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.check_growth(current, desired).unwrap_or_else(|_| {
            self.host_full = true;
            false
        }))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.check_table(desired))
    }
}

/// A guest worker's limiter: past its lease, it waits for the front to
/// grant more of the host's budget before it refuses.
#[async_trait::async_trait]
impl wasmtime::ResourceLimiterAsync for MemoryLimiter {
    async fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let extra = match self.check_growth(current, desired) {
            Ok(allowed) => return Ok(allowed),
            Err(extra) => extra,
        };
        if self.host.grow_lease(extra).await
            && let Ok(grown) = self.check_growth(current, desired)
        {
            return Ok(grown);
        }
        self.host_full = true;
        Ok(false)
    }

    async fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.check_table(desired))
    }
}

/// Sets `store`'s limiter: a guest worker's leased budget needs the async
/// one, which can wait for the front.
pub(crate) fn set_limiter<T: Send + 'static>(
    store: &mut wasmtime::Store<T>,
    leased: bool,
    limiter: fn(&mut T) -> &mut MemoryLimiter,
) {
    if leased {
        store.limiter_async(move |state| limiter(state) as &mut dyn wasmtime::ResourceLimiterAsync);
    } else {
        store.limiter(move |state| limiter(state) as &mut dyn wasmtime::ResourceLimiter);
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.host.give_back(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    fn unbounded() -> Arc<GuestMemory> {
        GuestMemory::new(u64::MAX, Gauge::default())
    }

    #[test]
    fn sandboxes_share_the_host_budget_until_they_are_gone() {
        let gauge = Gauge::default();
        let host = GuestMemory::new(3 << 20, gauge.clone());
        let mut a = MemoryLimiter::new(2 << 20, host.clone());
        let mut b = MemoryLimiter::new(2 << 20, host.clone());
        assert!(a.memory_growing(0, 2 << 20, None).unwrap());
        assert!(!b.memory_growing(0, 2 << 20, None).unwrap());
        assert!(b.host_full && !b.hit);
        assert_eq!(
            explain_failure(
                &wasmtime::format_err!("grow failed"),
                &b,
                &Limits::default()
            )
            .unwrap_err()
            .status(),
            http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(gauge.get(), 2 << 20);
        drop(a);
        assert_eq!(gauge.get(), 0);
        assert!(b.memory_growing(0, 2 << 20, None).unwrap());
    }

    /// A front that grants every ask and records it.
    #[derive(Default)]
    struct GrantingFront(std::sync::Mutex<Vec<u64>>);

    impl MemoryLease for GrantingFront {
        fn grow(&self, bytes: u64) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> {
            self.0.lock().unwrap().push(bytes);
            Box::pin(async { true })
        }

        fn give_back(&self, _bytes: u64) {}
    }

    #[tokio::test]
    async fn a_worker_uses_what_was_granted_ahead_and_asks_only_for_what_it_lacks() {
        let memory = GuestMemory::leased(1 << 30, LEASE_STEP, Gauge::default());
        let front = Arc::new(GrantingFront::default());
        memory.lease_from(front.clone());
        // Granted with its assignment: its first sandbox asks for nothing.
        let first = memory.reserve(LEASE_STEP / 2).expect("granted ahead");
        assert!(memory.reserve(LEASE_STEP).is_none());
        // Half a step is still free: one more step covers a step and a byte.
        assert!(memory.grow_lease(LEASE_STEP + 1).await);
        assert_eq!(*front.0.lock().unwrap(), [LEASE_STEP]);
        let second = memory.reserve(LEASE_STEP + 1).expect("granted on asking");
        drop((first, second));
    }

    #[test]
    fn growth_past_the_cap_is_refused_and_remembered() {
        let mut limiter = MemoryLimiter::new(1 << 20, unbounded());
        assert!(limiter.memory_growing(0, 64 << 10, None).unwrap());
        assert!(!limiter.hit);
        assert!(!limiter.memory_growing(64 << 10, 2 << 20, None).unwrap());
        assert!(limiter.hit);
        assert_eq!(limiter.peak_bytes(), 64 << 10);
    }
}
