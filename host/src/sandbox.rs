//! What every per-request sandbox gets, whichever ABI: its WASI context
//! (default-deny), its store limits, and how its failure is explained.
//!
//! A sandbox sees only what its function's settings grant: the declared env
//! vars, the declared directories read-only, no args, no sockets, and the
//! standard clocks and randomness. Its store has the memory limiter, a fuel
//! budget, and an epoch deadline that makes a running guest yield at every
//! tick — so a deadline (a `tokio` timeout around the whole request) can stop
//! even a guest spinning in a loop.

use crate::error::{InvokeError, Limit};
use crate::limits::Limits;
use crate::settings::Settings;
use crate::units;
use wasmtime::{Store, Trap};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// Starts a WASI context for `settings`: env and read-only dirs, nothing else.
pub fn wasi_builder(settings: &Settings) -> Result<WasiCtxBuilder, InvokeError> {
    let mut builder = WasiCtxBuilder::new();
    builder.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    for (key, value) in &settings.env {
        builder.env(key, value);
    }
    for mount in &settings.dirs {
        builder
            .preopened_dir(&mount.host, &mount.guest, FsPerms::ReadOnly)
            .map_err(|e| {
                InvokeError::Internal(format!(
                    "opening directory `{}` for the guest failed: {e}",
                    mount.host.display()
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

/// Fuel the guest burned in this store so far.
pub fn fuel_used<T>(store: &Store<T>, limits: &Limits) -> u64 {
    let start = limits.fuel.unwrap_or(UNMETERED_FUEL);
    start.saturating_sub(store.get_fuel().unwrap_or(start))
}

/// The error for a request that ran out of time.
pub fn timeout_error(limits: &Limits) -> InvokeError {
    InvokeError::limit(
        Limit::Timeout,
        format!(
            "the function exceeded its time limit of {}",
            units::format_duration(limits.timeout)
        ),
    )
}

/// Explains why a guest call failed. `Ok(())` means it exited with status 0,
/// which for a command is success.
pub fn explain_failure(error: &wasmtime::Error, memory_limit_hit: bool, limits: &Limits) -> Result<(), InvokeError> {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return if exit.0 == 0 { Ok(()) } else { Err(InvokeError::Exit(exit.0)) };
    }
    if memory_limit_hit {
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
