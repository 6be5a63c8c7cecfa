//! The platform services a component may import besides WASI and
//! `wasi:http`: key-value storage (`wasi:keyvalue`, two versions) and
//! runtime configuration (`wasi:config`, three versions), and Spin's own
//! key-value and variables interfaces (`fermyon:spin@2.0.0`,
//! `spin:…@3.0.0`) on the same code, and Spin's SQLite (`spin:sqlite`,
//! three versions) on the host's SQLite databases.
//!
//! [`GuestServices`] is what one function version may reach — its buckets,
//! its config values and secrets — built once per version, never per
//! request: a request's store holds one `Arc` of it. Each interface version
//! has its own `bindgen!` in its own file and translates to the shared code
//! in [`keyvalue`] and [`config`], so a version is a thin adapter.

pub(crate) mod config;
pub(crate) mod keyvalue;
#[macro_use]
mod keyvalue_methods;
mod keyvalue_draft;
mod keyvalue_draft2;
mod spin2;
mod spin_keyvalue;
mod spin_sqlite;
mod spin_variables;
mod sqlite;

use crate::observe::metrics::FunctionMetrics;
use crate::state::{FunctionSecrets, KvBackend, SqlBackend};
use config::ConfigScope;
pub use keyvalue::KvHeld;
use keyvalue::KvScope;
use sqlite::SqlScope;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wisp_spec::settings::Settings;

/// What one function version's guests may reach through the platform
/// interfaces.
pub struct GuestServices {
    kv: KvScope,
    config: ConfigScope,
    sql: SqlScope,
}

impl GuestServices {
    /// The services of a version of `function` deployed with `settings`:
    /// its own bucket and the app buckets it was granted on `backend`, its
    /// config values, the function's `secrets`, and the SQLite databases
    /// it was granted on `sql`.
    pub fn new(
        function: Arc<str>,
        settings: &Settings,
        backend: Arc<dyn KvBackend>,
        sql: Arc<dyn SqlBackend>,
        secrets: Arc<FunctionSecrets>,
        metrics: Arc<FunctionMetrics>,
    ) -> GuestServices {
        let memory = settings.limits.memory_bytes;
        GuestServices {
            kv: KvScope::new(
                function.clone(),
                settings.kv.clone(),
                backend,
                metrics,
                usize::try_from(memory).unwrap_or(usize::MAX),
            ),
            config: ConfigScope::new(settings.config.clone(), secrets),
            sql: SqlScope::new(
                function,
                settings.sqlite.clone(),
                sql,
                settings.limits.timeout,
                memory,
            ),
        }
    }

    /// The function's secrets.
    pub(crate) fn secrets(&self) -> &Arc<FunctionSecrets> {
        self.config.secrets()
    }
}

/// Store data that carries a version's services next to its resource table.
pub trait ServicesView: Send + 'static {
    /// The version's services, the store's resource table, and the bytes
    /// of values the host holds for this request.
    fn services(&mut self) -> (&Arc<GuestServices>, &mut ResourceTable, &mut KvHeld);
}

/// Links every version of every platform interface into `linker`.
pub fn add_to_linker<T: ServicesView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    keyvalue_draft::add_to_linker(linker, kv_view::<T>)?;
    keyvalue_draft2::add_to_linker(linker, kv_view::<T>)?;
    config::add_to_linker(linker, config_view::<T>)?;
    spin2::add_to_linker(linker, kv_view::<T>, config_view::<T>)?;
    spin_sqlite::add_sync_to_linker(linker, sql_view::<T>)?;
    Ok(())
}

/// Links the interfaces made of `async func`s (Spin's), which only the
/// concurrent engine runs.
pub fn add_concurrent_to_linker<T: ServicesView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    spin_keyvalue::add_to_linker(linker, spin_kv_view::<T>)?;
    spin_variables::add_to_linker(linker, config_view::<T>)?;
    spin_sqlite::add_v3_to_linker(linker, sql_view::<T>)?;
    Ok(())
}

fn sql_view<T: ServicesView>(state: &mut T) -> spin_sqlite::SqlView<'_> {
    let (services, table, held) = state.services();
    spin_sqlite::SqlView {
        services,
        table,
        held,
    }
}

fn spin_kv_view<T: ServicesView>(state: &mut T) -> spin_keyvalue::SpinKvView<'_> {
    let (services, table, held) = state.services();
    spin_keyvalue::SpinKvView {
        kv: keyvalue::KvView {
            scope: &services.kv,
            table,
            held,
        },
        services,
    }
}

fn kv_view<T: ServicesView>(state: &mut T) -> keyvalue::KvView<'_> {
    let (services, table, held) = state.services();
    keyvalue::KvView {
        scope: &services.kv,
        table,
        held,
    }
}

fn config_view<T: ServicesView>(state: &mut T) -> &ConfigScope {
    &state.services().0.config
}

/// The `HasData` of the key-value bindings: a [`keyvalue::KvView`].
struct KvData;

impl HasData for KvData {
    type Data<'a> = keyvalue::KvView<'a>;
}
