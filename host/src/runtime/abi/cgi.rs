//! Runs a WASI preview1 core module CGI-style (RFC 3875) for one request.
//!
//! The request becomes meta-variables in the environment ([`super::cgi_env`])
//! and the body on stdin; the module's `_start` runs to completion; its stdout
//! is parsed as a CGI response ([`super::cgi_response`]). CGI is not a
//! streaming protocol, so the body is read (up to its cap) before the guest
//! starts, and the response is sent once the guest exits.

use crate::error::{InvokeError, Limit};
use crate::observe::meter::{CpuTimed, GuestCost, Meter};
use crate::request::body::{LimitedBody, RequestBody, RequestBodyError, ResponseBody, full};
use crate::request::connection::ConnectionInfo;
use crate::request::trace::RequestTrace;
use crate::runtime::abi::cgi_env;
use crate::runtime::abi::http::{GUEST_OUTPUT_CAP_BYTES, response_too_large};
use crate::runtime::abi::output::{OutputCapture, WhenFull};
use crate::runtime::sandbox;
use crate::runtime::sandbox::MemoryLimiter;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use wasmtime::{Engine, InstancePre, Linker, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wisp_spec::cgi_response::{self, MAX_HEADER_SECTION_BYTES};
use wisp_spec::limits::Limits;
use wisp_spec::route::Route;
use wisp_spec::settings::Settings;
use wisp_spec::units;

/// The store data of a CGI sandbox.
pub struct CgiState {
    wasi: WasiP1Ctx,
    pub(crate) limiter: MemoryLimiter,
}

/// The linker every CGI module is pre-linked against: WASI preview1 only.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<CgiState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut CgiState| &mut state.wasi)?;
    Ok(linker)
}

/// A fresh sandbox store with the WASI context `wasi` and `limits`.
pub fn new_store(
    engine: &Engine,
    wasi: &mut WasiCtxBuilder,
    limits: &Limits,
) -> Result<Store<CgiState>, InvokeError> {
    let state = CgiState {
        wasi: wasi.build_p1(),
        limiter: MemoryLimiter::new(limits.memory_bytes),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    sandbox::prepare_store(&mut store, limits)?;
    Ok(store)
}

/// Everything one CGI invocation needs.
pub struct CgiCall<'a> {
    /// The pre-linked module.
    pub pre: &'a InstancePre<CgiState>,
    /// The function's name (`argv[0]`, and logs).
    pub function: &'a Arc<str>,
    /// Its settings.
    pub settings: &'a Settings,
    /// The route that matched, and the rest of the path after it.
    pub route: &'a Route,
    /// The path after the route prefix.
    pub path_info: &'a str,
    /// Where the request came from.
    pub connection: ConnectionInfo,
    /// Where the request's cost, metrics and logs go.
    pub meter: &'a Meter,
    /// The request's id and timings.
    pub trace: &'a RequestTrace,
    /// The request id.
    pub request_id: &'a str,
}

/// Runs `request` through a fresh instance of the module.
pub async fn invoke(
    call: CgiCall<'_>,
    request: http::Request<RequestBody>,
) -> Result<http::Response<ResponseBody>, InvokeError> {
    let limits = &call.settings.limits;
    let (parts, body) = request.into_parts();
    let body = LimitedBody::new(
        body,
        limits.max_request_body_bytes,
        Arc::new(AtomicBool::new(false)),
    )
    .collect()
    .await
    .map_err(|e| match e {
        RequestBodyError::TooLarge(_) => InvokeError::limit(
            Limit::RequestBody,
            format!(
                "the request body exceeds the function's limit of {}",
                units::format_size(limits.max_request_body_bytes)
            ),
        ),
        RequestBodyError::Read(e) => {
            InvokeError::Internal(format!("reading the request body failed: {e}"))
        }
    })?
    .to_bytes();

    let mut env = cgi_env::meta_variables(
        &parts,
        call.route,
        call.path_info,
        body.len(),
        &call.connection,
    );
    for (key, value) in &call.settings.env {
        if !env.iter().any(|(k, _)| k == key) {
            env.push((key.clone(), value.clone()));
        }
    }
    let stdout_cap = usize::try_from(limits.max_response_body_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(MAX_HEADER_SECTION_BYTES);
    let stdout = OutputCapture::new(stdout_cap, WhenFull::Refuse);
    let stderr = OutputCapture::new(GUEST_OUTPUT_CAP_BYTES, WhenFull::Drop);
    let mut wasi = sandbox::wasi_builder(call.settings)?;
    wasi.envs(&env)
        .arg(&**call.function)
        .stdin(MemoryInputPipe::new(body))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    let mut store = new_store(call.pre.module().engine(), &mut wasi, limits)?;

    let started = Instant::now();
    let run = async {
        let instance = call.pre.instantiate_async(&mut store).await?;
        let instantiated = started.elapsed();
        call.meter.metrics.record_instantiate(instantiated);
        call.trace.set_instantiate(instantiated);
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        start.call_async(&mut store, ()).await
    };
    let finished = tokio::time::timeout(limits.timeout, CpuTimed::new(run)).await;
    let (result, cpu) = match finished {
        Err(_elapsed) => (Err(None), Duration::ZERO),
        Ok((result, cpu)) => (result.map_err(Some), cpu),
    };
    let cost = GuestCost {
        wall: started.elapsed(),
        cpu,
        fuel: sandbox::fuel_used(&store, limits),
        peak_memory_bytes: store.data().limiter.peak_bytes(),
    };
    call.meter
        .finished(cost, call.request_id, b"", &stderr.contents());
    match result {
        Ok(()) => {}
        Err(None) => return Err(sandbox::timeout_error(limits)),
        Err(Some(error)) => {
            if stdout.overflowed() {
                return Err(response_too_large(limits.max_response_body_bytes));
            }
            if let Err(explained) =
                sandbox::explain_failure(&error, store.data().limiter.was_hit(), limits)
            {
                sandbox::log_failure(call.function, call.request_id, &error, &stderr.contents());
                return Err(explained);
            }
        }
    }
    if stdout.overflowed() {
        return Err(response_too_large(limits.max_response_body_bytes));
    }
    let output = stdout.contents();
    let head = cgi_response::parse(&output).map_err(|e| {
        tracing::warn!(function = %call.function, error = %e, "invalid CGI response");
        InvokeError::BadCgiResponse(e.to_string())
    })?;
    let body = output.slice(head.body_start..);
    if body.len() as u64 > limits.max_response_body_bytes {
        return Err(response_too_large(limits.max_response_body_bytes));
    }
    let mut response = http::Response::new(full(body));
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    Ok(response)
}
