//! A deployed function version: its settings and its compiled, pre-linked code.
//!
//! Compiling (Cranelift, slow, once per source and engine) and loading
//! (mmap of the artifact plus pre-linking, fast) are separate steps, so a
//! restart only loads, and only what is called (see `code_cache.rs`).
//! Everything a request needs — the `ProxyPre` or `InstancePre`, the
//! outbound allow-list, the concurrency slots — is built once per load or
//! per version, never per request.

use crate::error::{DeployError, HostFailure, InvokeError};
use crate::observe::meter::Meter;
use crate::observe::metrics::FunctionMetrics;
use crate::observe::trace::RequestTrace;
use crate::runtime::Runtime;
use crate::runtime::abi::cgi::{self, CgiCall, CgiState};
use crate::runtime::abi::http::{self, Entry, HttpCall, HttpState, ReadySandbox};
use crate::runtime::abi::output::OutputCapture;
use crate::runtime::abi::service;
use crate::runtime::body::{RequestBody, ResponseBody};
use crate::runtime::chain::{ChainBudget, ChainOrigin, Dispatch};
use crate::runtime::code_cache::CodeSlot;
use crate::runtime::connection::ConnectionInfo;
use crate::runtime::engine::Engines;
use crate::runtime::prepared::Prepared;
use crate::runtime::reuse::{Instances, ReusePool, ReusedCall};
use crate::runtime::sandbox::GuestMemory;
use crate::runtime::services::GuestServices;
use crate::runtime::slots::SlotTicket;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker as ComponentLinker};
use wasmtime::{Engine, InstancePre, Linker, Module};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wisp_spec::headers::PATH_INFO_HEADER;
use wisp_spec::inspect::Abi;
use wisp_spec::route::Route;
use wisp_spec::settings::{OutboundRule, Settings};

/// The linkers every function is pre-linked against, built once per host:
/// one per ABI, each on its ABI's engine.
pub struct Linkers {
    http: ComponentLinker<HttpState>,
    service: ComponentLinker<HttpState>,
    cgi: Linker<CgiState>,
}

impl Linkers {
    /// Builds the linkers for `engines`.
    pub fn new(engines: &Engines) -> wasmtime::Result<Linkers> {
        Ok(Linkers {
            http: http::linker(engines.for_abi(Abi::WasiHttp))?,
            service: service::linker(engines.for_abi(Abi::WasiHttp3))?,
            cgi: cgi::linker(engines.for_abi(Abi::Cgi))?,
        })
    }
}

/// Pre-linked code, ready to instantiate.
enum Code {
    Component(Entry),
    Cgi(InstancePre<CgiState>),
}

/// Where a request came from and how it is traced.
pub struct RequestContext<'a> {
    /// The route that matched.
    pub route: &'a Route,
    /// The path after the route prefix.
    pub path_info: &'a str,
    /// The connection it arrived on.
    pub connection: ConnectionInfo,
    /// Its timings.
    pub trace: &'a Arc<RequestTrace>,
    /// Its id.
    pub request_id: &'a Arc<str>,
    /// Its concurrency slots, taken when the guest is about to run.
    pub ticket: SlotTicket<'a>,
    /// Set when its body arrived too slowly.
    pub body_too_slow: &'a Arc<AtomicBool>,
    /// The runtime: the code, and the budget for buffered request bodies.
    pub runtime: &'a Arc<Runtime>,
    /// The request path, for the guest's chained calls (a narrow handle).
    pub dispatch: &'a Arc<dyn Dispatch>,
    /// The guest workers, when guests run in worker processes.
    pub(crate) workers: Option<&'a Arc<crate::runtime::workers::WorkerPool>>,
}

/// Compiled, pre-linked code, ready to instantiate. One is shared by every
/// function version whose binary (and engine) is the same: the host keeps a
/// cache of them by artifact key.
pub struct LoadedCode(Code);

impl LoadedCode {
    /// Loads a compiled artifact (mmap) and pre-links it (blocking). A
    /// failure to load names the artifact's path, so it is logged and the
    /// error says only that loading failed.
    pub fn load(
        engine: &Engine,
        linkers: &Linkers,
        abi: Abi,
        artifact: &Path,
    ) -> Result<LoadedCode, DeployError> {
        let failed = |e: wasmtime::Error| {
            DeployError::from(HostFailure::logged(
                "loading the compiled code failed",
                format_args!("{e:#}"),
            ))
        };
        let code = match abi {
            Abi::WasiHttp | Abi::WasiHttp3 => {
                // SAFETY: the artifact was produced by `Engine::precompile_component`
                // for this engine's configuration (its key includes the engine's
                // compatibility fingerprint) and its checksum was verified just
                // before this call (a worker's by the front process, which
                // sealed it in a memory file as it checked it); nothing else
                // writes to the store's files.
                #[expect(unsafe_code, reason = "loading our own verified artifact")]
                let component =
                    unsafe { Component::deserialize_file(engine, artifact) }.map_err(failed)?;
                let linker = if abi == Abi::WasiHttp3 {
                    &linkers.service
                } else {
                    &linkers.http
                };
                let pre = linker
                    .instantiate_pre(&component)
                    .map_err(|e| DeployError::UnsupportedImport(format!("{e:#}")))?;
                let unsupported =
                    |e: wasmtime::Error| DeployError::UnsupportedImport(format!("{e:#}"));
                Code::Component(if abi == Abi::WasiHttp3 {
                    Entry::Service(ServicePre::new(pre).map_err(unsupported)?)
                } else {
                    Entry::Proxy(ProxyPre::new(pre).map_err(unsupported)?)
                })
            }
            Abi::Cgi => {
                // SAFETY: as above, for `Engine::precompile_module` output.
                #[expect(unsafe_code, reason = "loading our own verified artifact")]
                let module =
                    unsafe { Module::deserialize_file(engine, artifact) }.map_err(failed)?;
                let pre = linkers
                    .cgi
                    .instantiate_pre(&module)
                    .map_err(|e| DeployError::UnsupportedImport(format!("{e:#}")))?;
                Code::Cgi(pre)
            }
        };
        Ok(LoadedCode(code))
    }

    /// Creates a sandbox exactly as a request of `function` with `settings`
    /// would, without calling the guest. A deploy calls it once before
    /// publishing, to catch a function the pool cannot hold.
    pub async fn instantiate(
        &self,
        function: &Arc<str>,
        settings: &Settings,
        outbound: &Arc<[OutboundRule]>,
        services: &Arc<GuestServices>,
        memory: &Arc<GuestMemory>,
    ) -> Result<IdleSandbox, InvokeError> {
        let fail = crate::runtime::sandbox::instantiate_error;
        let store = match &self.0 {
            Code::Component(entry) => {
                let sink = || OutputCapture::new(0);
                let mut store = http::new_store(
                    entry.engine(),
                    function.clone(),
                    settings,
                    outbound.clone(),
                    services.clone(),
                    sink(),
                    sink(),
                    memory.clone(),
                )?;
                entry.instantiate(&mut store).await.map_err(fail)?;
                IdleStore::Http(store)
            }
            Code::Cgi(pre) => {
                let mut wasi = crate::runtime::sandbox::wasi_builder(function, settings)?;
                let mut store = cgi::new_store(
                    pre.module().engine(),
                    &mut wasi,
                    &settings.limits,
                    memory.clone(),
                )?;
                pre.instantiate_async(&mut store).await.map_err(fail)?;
                IdleStore::Cgi(store)
            }
        };
        Ok(IdleSandbox { _store: store })
    }
}

/// A live sandbox that serves nothing; dropping it frees its pool slot.
pub struct IdleSandbox {
    _store: IdleStore,
}

/// The store of an idle sandbox, by ABI.
#[expect(
    dead_code,
    reason = "the store is held, never read: dropping it frees the sandbox"
)]
enum IdleStore {
    Http(wasmtime::Store<HttpState>),
    Cgi(wasmtime::Store<CgiState>),
}

/// One deployed version of a function.
pub struct Function {
    /// The function's name.
    pub name: Arc<str>,
    /// This version's number.
    pub version: u32,
    /// Validated settings.
    pub settings: Arc<Settings>,
    outbound: Arc<[OutboundRule]>,
    services: Arc<GuestServices>,
    code: Arc<CodeSlot>,
    meter: Meter,
    memory: Arc<GuestMemory>,
    slots: Arc<Semaphore>,
    prepared: Prepared,
    /// Its reused instances (WASI 0.3 with `reuse` on), made on first use.
    reused: OnceLock<ReusePool>,
}

/// What identifies a version besides its code.
pub struct VersionInfo {
    /// The function's name.
    pub name: Arc<str>,
    /// The version number.
    pub version: u32,
    /// Its settings.
    pub settings: Settings,
}

impl Function {
    /// A version running the code of `code` (loaded on first use), whose
    /// guests reach `services` and are charged to `memory`.
    pub(crate) fn new(
        info: VersionInfo,
        code: Arc<CodeSlot>,
        meter: Meter,
        services: Arc<GuestServices>,
        memory: Arc<GuestMemory>,
    ) -> Function {
        let max_concurrency = info.settings.limits.max_concurrency as usize;
        Function {
            name: info.name,
            version: info.version,
            outbound: info.settings.allow_outbound.clone().into(),
            settings: Arc::new(info.settings),
            services,
            code,
            meter,
            memory,
            slots: Arc::new(Semaphore::new(max_concurrency.min(Semaphore::MAX_PERMITS))),
            prepared: Prepared::default(),
            reused: OnceLock::new(),
        }
    }

    /// Its prepared sandbox, if one waits.
    pub(crate) fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// True when its sandboxes are prepared ahead: a `wasi:http`
    /// component's, unless its instances are reused (they are made as the
    /// pool needs them).
    pub(crate) fn is_prepared_ahead(&self) -> bool {
        self.code.abi.is_component() && !self.settings.reuse.is_on()
    }

    /// Makes a sandbox of `code`, this version's loaded code, for its next
    /// request (a component's; see `runtime/prepared.rs`).
    pub(crate) async fn prepare(&self, code: &LoadedCode) -> Result<ReadySandbox, InvokeError> {
        let Code::Component(entry) = &code.0 else {
            return Err(InvokeError::Internal("only components are prepared".into()));
        };
        http::prepare(
            entry,
            self.name.clone(),
            &self.settings,
            self.outbound.clone(),
            self.services.clone(),
            self.memory.clone(),
        )
        .await
    }

    /// Its code's slot: the compiled code, when loaded.
    pub(crate) fn code(&self) -> &Arc<CodeSlot> {
        &self.code
    }

    /// Creates a sandbox (store and instance) of `code`, this version's
    /// loaded code, exactly as a request would, without calling the guest.
    /// Benchmarks measure cold starts with it.
    pub async fn instantiate(&self, code: &LoadedCode) -> Result<IdleSandbox, InvokeError> {
        code.instantiate(
            &self.name,
            &self.settings,
            &self.outbound,
            &self.services,
            &self.memory,
        )
        .await
    }

    /// Its function's recent traffic, for the console.
    pub fn history(&self) -> &crate::observe::history::History {
        &self.meter.history
    }

    /// Where its runs' cost, metrics and logs go.
    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Its function's secrets as they are now (or why they cannot be read).
    pub(crate) fn secrets_snapshot(
        &self,
    ) -> Result<Arc<std::collections::BTreeMap<String, String>>, String> {
        self.services.secrets().snapshot()
    }

    /// This version's metric series.
    pub fn metrics(&self) -> &Arc<FunctionMetrics> {
        &self.meter.metrics
    }

    /// The host's guest memory budget its sandboxes are charged to.
    pub(crate) fn memory(&self) -> &Arc<GuestMemory> {
        &self.memory
    }

    /// This version's concurrency slots.
    pub fn slots(&self) -> &Arc<Semaphore> {
        &self.slots
    }

    /// Serves one request in a fresh sandbox, loading the code first when
    /// it is not resident. The request's concurrency slots are taken when
    /// the guest is about to run and held until it has finished.
    pub async fn invoke(
        &self,
        request: ::http::Request<RequestBody>,
        context: RequestContext<'_>,
    ) -> Result<::http::Response<ResponseBody>, InvokeError> {
        if let Some(workers) = context.workers {
            return workers.invoke(self, request, context).await;
        }
        let RequestContext {
            route,
            path_info,
            connection,
            trace,
            request_id,
            ticket,
            body_too_slow,
            runtime,
            dispatch,
            workers: _,
        } = context;
        let code = runtime.code(&self.code, &self.name).await?;
        match &code.0 {
            Code::Component(Entry::Service(pre)) if self.settings.reuse.is_on() => {
                let call = ReusedCall {
                    chain: chain_of(&request, request_id, dispatch),
                    slot_wait: ticket.wait(),
                    permit: ticket.take_for_reused(self).await?,
                    trace: trace.clone(),
                    request_id: request_id.clone(),
                    body_too_slow: body_too_slow.clone(),
                };
                let pool = self.reused.get_or_init(|| {
                    ReusePool::new(Instances {
                        pre: pre.clone(),
                        function: self.name.clone(),
                        settings: self.settings.clone(),
                        outbound: self.outbound.clone(),
                        services: self.services.clone(),
                        memory: self.memory.clone(),
                        meter: self.meter.clone(),
                        host_slots: runtime.slots.instance_slots().clone(),
                    })
                });
                pool.invoke(call, with_path_info(request, path_info)).await
            }
            Code::Component(entry) => {
                let chain = chain_of(&request, request_id, dispatch);
                let call = self
                    .component_call(
                        entry.clone(),
                        chain,
                        trace,
                        request_id,
                        ticket,
                        body_too_slow,
                        runtime,
                    )
                    .await?;
                http::invoke(call, with_path_info(request, path_info)).await
            }
            Code::Cgi(pre) => {
                let call = CgiCall {
                    pre,
                    version: self,
                    function: &self.name,
                    settings: &self.settings,
                    route,
                    path_info,
                    connection,
                    meter: &self.meter,
                    trace,
                    request_id,
                    ticket,
                    buffers: &runtime.buffers,
                };
                cgi::invoke(call, request).await
            }
        }
    }

    /// What a request of a component (either WASI version) needs to run:
    /// its slots, taken now, then the sandbox prepared for it if one
    /// waits, and everything its sandbox is made from.
    #[expect(clippy::too_many_arguments, reason = "the request context, unpacked")]
    async fn component_call(
        &self,
        entry: Entry,
        chain: ChainOrigin,
        trace: &Arc<RequestTrace>,
        request_id: &Arc<str>,
        ticket: SlotTicket<'_>,
        body_too_slow: &Arc<AtomicBool>,
        runtime: &Runtime,
    ) -> Result<HttpCall, InvokeError> {
        let permit = ticket.take(self).await?;
        let ready = self
            .prepared
            .take()
            .inspect(|_| runtime.metrics.record_prepared_used());
        Ok(HttpCall {
            chain,
            entry,
            function: self.name.clone(),
            settings: self.settings.clone(),
            outbound: self.outbound.clone(),
            services: self.services.clone(),
            meter: self.meter.clone(),
            memory: self.memory.clone(),
            trace: trace.clone(),
            request_id: request_id.clone(),
            permit,
            body_too_slow: body_too_slow.clone(),
            ready,
        })
    }
}

/// Where the chained calls of a guest serving `request` come from.
fn chain_of(
    request: &::http::Request<RequestBody>,
    request_id: &Arc<str>,
    dispatch: &Arc<dyn Dispatch>,
) -> ChainOrigin {
    ChainOrigin {
        dispatch: dispatch.clone(),
        depth: ChainOrigin::depth_of(request.headers()),
        request_id: request_id.clone(),
        traceparent: request.headers().get("traceparent").cloned(),
        budget: ChainBudget::inherited(request.extensions()),
    }
}

/// `request` with the part of its path after the route set as CGI's
/// PATH_INFO header: set by the host, never taken from the client.
fn with_path_info(
    mut request: ::http::Request<RequestBody>,
    path_info: &str,
) -> ::http::Request<RequestBody> {
    let headers = request.headers_mut();
    headers.remove(PATH_INFO_HEADER);
    if let Ok(value) = ::http::HeaderValue::from_str(path_info) {
        headers.insert(PATH_INFO_HEADER, value);
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::engine::Engines;
    use wasmtime::component::Component;

    #[test]
    fn an_interface_wisp_does_not_serve_is_refused_by_its_name() {
        // Spin's Redis, MySQL, PostgreSQL, MQTT and LLM interfaces: a
        // component importing one is refused at deploy, naming it.
        let engines = Engines::build(1, false).unwrap();
        let linkers = Linkers::new(&engines).unwrap();
        for interface in [
            "spin:redis/redis@3.0.0",
            "spin:mysql/mysql@3.0.0",
            "spin:postgres/postgres@4.2.0",
            "spin:mqtt/mqtt@3.0.0",
            "fermyon:spin/llm@2.0.0",
        ] {
            let wat =
                format!("(component (import \"{interface}\" (instance (export \"open\" (func)))))");
            for (abi, linker) in [
                (Abi::WasiHttp, &linkers.http),
                (Abi::WasiHttp3, &linkers.service),
            ] {
                let component = Component::new(engines.for_abi(abi), &wat).unwrap();
                let Err(error) = linker.instantiate_pre(&component) else {
                    panic!("{abi:?} links {interface}");
                };
                let error = format!("{error:#}");
                assert!(
                    error.contains(&format!("component imports instance `{interface}`")),
                    "{error}"
                );
            }
        }
    }
}
