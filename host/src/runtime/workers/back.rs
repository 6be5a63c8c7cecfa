//! The front's side of one worker's way back: the calls the worker is
//! serving (each holding its request's slots until the worker reports the
//! run over, the worker dies, or the run's deadline has long passed), and
//! the service that answers the worker's own calls — each checked here
//! against what its function may reach, since a worker that left the wasm
//! sandbox may ask for anything: key-value operations on its own and its
//! granted buckets only, SQLite statements on its granted databases only
//! (bounded by its own timeout and memory limit), chained calls and
//! outbound calls its allow-list grants, reports of its own calls.

use super::wire::{
    CALL_HEADER, Counts, FAILED_HEADER, Finished, KvBreach, KvCall, KvReply, SqlCall, URI_HEADER,
};
use crate::observe::meter::Meter;
use crate::observe::metrics::{FunctionMetrics, Metrics};
use crate::observe::trace::RequestTrace;
use crate::runtime::body::{BoxError, ResponseBody, full};
use crate::runtime::chain::{ChainBudget, ChainOrigin, Dispatch};
use crate::runtime::function::Function;
use crate::runtime::sandbox::{GuestMemory, LEASE_STEP, MemoryCharge};
use crate::runtime::slots::SlotPermit;
use crate::state::{BucketId, KvBackend, KvError, SqlBackend, SqlError, SqlRows};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::WasiBody;
use wisp_spec::settings::{OutboundRule, allow_list_allows, allow_list_allows_function};

/// Largest batch of reports of finished runs (captured outputs, base64).
const MAX_REPORT_BYTES: usize = 4 << 20;

/// How long past its deadline a call's slots wait for its report.
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// How long a call the front dropped before its answer (its client left)
/// waits for the worker to say its run is over: the worker drops the run
/// and says so at once, but a call reset before the worker took it up
/// never gets an answer.
const ABANDONED_GRACE: Duration = Duration::from_secs(2);

/// A call a worker is serving.
pub(crate) struct Pending {
    /// Its slots, given back when the run is over.
    pub(crate) _permit: SlotPermit,
    /// Its host memory charge, given back with the slots.
    /// A CGI body read whole here, charged to the host's buffers.
    pub(crate) _buffered: Option<crate::runtime::buffers::BufferCharge>,
    pub(crate) meter: Meter,
    pub(crate) trace: Arc<RequestTrace>,
    pub(crate) request_id: Arc<str>,
    /// The request path, for its chained calls.
    pub(crate) dispatch: Arc<dyn Dispatch>,
    /// Its depth in a chain of calls.
    pub(crate) depth: u32,
    /// The chained calls its client request may still make.
    pub(crate) budget: Arc<ChainBudget>,
    /// After this its slots are given back even without a report.
    pub(crate) overdue: Instant,
}

/// One worker's way back, and the calls it serves.
pub(crate) struct Back {
    function: Arc<str>,
    granted: BTreeSet<String>,
    /// The SQLite databases its function was granted.
    databases: BTreeSet<String>,
    rules: Arc<[OutboundRule]>,
    timeout: Duration,
    max_kv_bytes: usize,
    kv: Arc<dyn KvBackend>,
    sql: Arc<dyn SqlBackend>,
    calls: Mutex<HashMap<u64, Pending>>,
    /// The version's series, and the host's, that the worker's counts go to.
    metrics: Arc<FunctionMetrics>,
    host_metrics: Arc<Metrics>,
    /// The worker's counts last added.
    counted: Mutex<Counts>,
    /// The share of the host's guest memory budget granted to the worker,
    /// and the most it may be: what its sandboxes may hold at once (its
    /// concurrency, and one prepared ahead, at the memory limit), plus a
    /// step — so not even a worker that left the sandbox can take the
    /// budget of every other function.
    lease: Mutex<Option<MemoryCharge>>,
    max_lease: u64,
}

impl Back {
    /// The way back of a worker serving `function`.
    pub(crate) fn new(
        function: &Function,
        kv: Arc<dyn KvBackend>,
        sql: Arc<dyn SqlBackend>,
        host_metrics: Arc<Metrics>,
        memory: &Arc<GuestMemory>,
    ) -> Arc<Back> {
        let settings = &function.settings;
        Arc::new(Back {
            function: function.name.clone(),
            granted: settings.kv.clone(),
            databases: settings.sqlite.clone(),
            rules: settings.allow_outbound.clone().into(),
            timeout: settings.limits.timeout,
            max_kv_bytes: usize::try_from(settings.limits.memory_bytes)
                .unwrap_or(usize::MAX)
                .saturating_add(64 << 10),
            kv,
            sql,
            calls: Mutex::default(),
            metrics: function.metrics().clone(),
            host_metrics,
            counted: Mutex::default(),
            lease: Mutex::new(memory.reserve(0)),
            max_lease: settings
                .limits
                .memory_bytes
                .saturating_mul(u64::from(settings.limits.max_concurrency) + 1)
                .saturating_add(LEASE_STEP),
        })
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The worker serves `call`.
    pub(crate) fn expect(&self, call: u64, pending: Pending) {
        self.calls().insert(call, pending);
    }

    /// The run of `call` is over without a report.
    pub(crate) fn settle(&self, call: u64) {
        self.calls().remove(&call);
    }

    /// The front dropped `call` before its answer: it is overdue soon, if
    /// the worker does not say sooner that its run is over.
    pub(crate) fn abandon(&self, call: u64) {
        if let Some(pending) = self.calls().get_mut(&call) {
            pending.overdue = pending.overdue.min(Instant::now() + ABANDONED_GRACE);
        }
    }

    /// Calls in flight.
    pub(crate) fn calls_in_flight(&self) -> usize {
        self.calls().len()
    }

    /// The worker is gone: every call it served is over, and its share of
    /// the guest memory budget is free.
    pub(crate) fn forget_calls(&self) {
        let calls = std::mem::take(&mut *self.calls());
        drop(calls);
        self.lease.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Gives back the slots of calls long past their deadline.
    pub(crate) fn forget_overdue(&self) {
        let now = Instant::now();
        self.calls().retain(|_, pending| pending.overdue > now);
    }

    /// When a call that starts now is overdue.
    pub(crate) fn overdue_from(&self, started: Instant) -> Instant {
        started + self.timeout + REPORT_GRACE
    }

    /// Serves the worker's calls on `socket` until it closes.
    pub(crate) fn serve(self: &Arc<Self>, socket: tokio::net::UnixStream) {
        let back = self.clone();
        let service = hyper::service::service_fn(move |request| {
            let back = back.clone();
            async move { Ok::<_, std::convert::Infallible>(back.answer(request).await) }
        });
        tokio::spawn(async move {
            let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("a guest worker's way back closed: {e}");
            }
        });
    }

    async fn answer(
        self: Arc<Self>,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ResponseBody> {
        let call = request
            .headers()
            .get(CALL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        match request.uri().path() {
            "/finished" => self.finished(request).await,
            "/counts" => self.counts(request).await,
            "/memory" => self.memory(request).await,
            "/kv" => self.kv(request).await,
            "/sql" => self.sql(request).await,
            "/chain" => self.chain(call, request).await,
            "/outbound" => self.outbound(request).await,
            _ => refused(http::StatusCode::NOT_FOUND, "no such call"),
        }
    }

    /// Runs are over: their cost and output go to their function's books,
    /// their slots back to the host.
    async fn finished(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ResponseBody> {
        let Some(bytes) = read_bounded(request, MAX_REPORT_BYTES).await else {
            return refused(http::StatusCode::PAYLOAD_TOO_LARGE, "report too large");
        };
        let Ok(reports) = serde_json::from_slice::<Vec<Finished>>(&bytes) else {
            return refused(http::StatusCode::BAD_REQUEST, "bad report");
        };
        for report in reports {
            self.finish(report);
        }
        http::Response::new(full(""))
    }

    /// A run is over: its cost and output go to its function's books, its
    /// slots back to the host.
    pub(crate) fn finish(&self, report: Finished) {
        self.count(&report.counts);
        let Some(pending) = self.calls().remove(&report.call) else {
            return;
        };
        if report.dropped {
            return;
        }
        pending.meter.finished(
            report.cost(),
            &pending.trace,
            &pending.request_id,
            &report.stdout,
            &report.stderr,
        );
    }

    /// Grants the worker `bytes` of the host's guest memory budget ahead of
    /// its first call, if they are free; returns what it granted.
    pub(crate) fn grant_ahead(&self, bytes: u64) -> u64 {
        let mut lease = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        let granted = lease
            .as_mut()
            .is_some_and(|lease| lease.grow(bytes, self.max_lease));
        if granted { bytes } else { 0 }
    }

    /// The worker asks for more of the host's guest memory budget (or
    /// gives some back): `grow N` or `give N`, answered `1` when granted.
    async fn memory(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ResponseBody> {
        let Some(bytes) = read_bounded(request, 64).await else {
            return refused(http::StatusCode::PAYLOAD_TOO_LARGE, "too large");
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut lease = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        let Some(lease) = lease.as_mut() else {
            return http::Response::new(full("0"));
        };
        let granted = match text.split_once(' ') {
            Some(("grow", n)) => n.parse().is_ok_and(|n| lease.grow(n, self.max_lease)),
            Some(("give", n)) => {
                lease.shrink(n.parse().unwrap_or(0));
                true
            }
            _ => false,
        };
        http::Response::new(full(if granted { "1" } else { "0" }))
    }

    /// The worker's counts, sent on their own.
    async fn counts(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ResponseBody> {
        let Some(bytes) = read_bounded(request, MAX_REPORT_BYTES).await else {
            return refused(http::StatusCode::PAYLOAD_TOO_LARGE, "counts too large");
        };
        let Ok(counts) = serde_json::from_slice::<Counts>(&bytes) else {
            return refused(http::StatusCode::BAD_REQUEST, "bad counts");
        };
        self.count(&counts);
        http::Response::new(full(""))
    }

    /// Adds what is new in the worker's `counts` to the front's series.
    fn count(&self, counts: &Counts) {
        let mut last = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        for (index, (&now, before)) in counts
            .breaches
            .iter()
            .zip(last.breaches.iter().copied().chain(std::iter::repeat(0)))
            .enumerate()
        {
            self.metrics.add_breaches(index, now.saturating_sub(before));
        }
        self.host_metrics.add_prepared(
            counts.prepared.saturating_sub(last.prepared),
            counts.prepared_used.saturating_sub(last.prepared_used),
        );
        *last = counts.clone();
    }

    /// A key-value operation, on a bucket this function may open.
    async fn kv(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ResponseBody> {
        let Some(bytes) = read_bounded(request, self.max_kv_bytes).await else {
            return kv_reply(&failed("the key-value call is too large"));
        };
        let Ok(call) = postcard::from_bytes::<KvCall>(&bytes) else {
            return kv_reply(&failed("a malformed key-value call"));
        };
        let allowed = match call.bucket() {
            BucketId::Function(name) => **name == *self.function,
            BucketId::App(name) => self.granted.contains(name),
        };
        if !allowed {
            tracing::warn!(
                function = %self.function,
                bucket = %call.bucket(),
                "a guest worker asked for a bucket its function may not open: refused"
            );
            return kv_reply(&failed("access denied"));
        }
        kv_reply(&run_kv(&*self.kv, call).await)
    }

    /// A SQLite statement, on a database this function was granted, within
    /// its function's timeout and memory limit whatever the worker asked.
    async fn sql(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ResponseBody> {
        let refused = |why: &str| sql_reply(&Err(SqlError::Refused(why.to_owned())));
        let Some(bytes) = read_bounded(request, self.max_kv_bytes).await else {
            return refused("the SQLite call is too large");
        };
        let Ok(SqlCall {
            database,
            mut statement,
        }) = postcard::from_bytes::<SqlCall>(&bytes)
        else {
            return refused("a malformed SQLite call");
        };
        if !database.is_granted_to(&self.function, &self.databases) {
            tracing::warn!(
                function = %self.function,
                %database,
                "a guest worker asked for a SQLite database its function may not open: refused"
            );
            return refused("access denied");
        }
        statement.time_limit = statement.time_limit.min(self.timeout);
        statement.max_bytes = statement.max_bytes.min(self.max_kv_bytes as u64);
        sql_reply(&self.sql.execute(&database, statement).await)
    }

    /// A chained call of call `call`: checked against the allow-list, run
    /// by the request path under its client request's chain budget.
    async fn chain(
        &self,
        call: u64,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ResponseBody> {
        let Some(uri) = target(&request) else {
            return refused(http::StatusCode::BAD_REQUEST, "no target");
        };
        let callee = uri
            .host()
            .and_then(crate::runtime::chain::internal_callee)
            .map(str::to_owned);
        // The caller's sandbox addressed the call as `NAME.wisp.internal`,
        // whichever internal name (`NAME.spin.internal`) it was allowed by.
        let allowed = |callee: &str| {
            allow_list_allows(&self.rules, &uri) || allow_list_allows_function(&self.rules, callee)
        };
        let Some(callee) = callee.filter(|callee| allowed(callee)) else {
            tracing::warn!(function = %self.function, destination = %uri, "a guest worker's chained call is not in its allow-list: refused");
            return refused(http::StatusCode::FORBIDDEN, "not in the allow-list");
        };
        let origin = {
            let calls = self.calls();
            let Some(pending) = calls.get(&call) else {
                return refused(http::StatusCode::GONE, "the calling run is over");
            };
            ChainOrigin {
                dispatch: pending.dispatch.clone(),
                depth: pending.depth,
                request_id: pending.request_id.clone(),
                traceparent: None,
                budget: Some(pending.budget.clone()),
            }
        };
        let (mut parts, body) = request.into_parts();
        parts.uri = uri;
        parts.headers.remove(URI_HEADER);
        parts.headers.remove(CALL_HEADER);
        let body: WasiBody = body
            .map_err(|_| wasmtime_wasi_http::Error::HttpRequestBodySize(None))
            .boxed_unsync();
        let response = origin
            .call(
                &self.function,
                &callee,
                http::Request::from_parts(parts, body),
            )
            .await;
        response.map(|body| {
            body.map_err(|e| BoxError::from(format!("{e:?}")))
                .boxed_unsync()
        })
    }

    /// A call outside the host: checked against the allow-list and made
    /// here, where the sockets are.
    async fn outbound(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ResponseBody> {
        let Some(uri) = target(&request) else {
            return outbound_failed("HttpRequestUriInvalid");
        };
        let internal = uri
            .host()
            .and_then(crate::runtime::chain::internal_callee)
            .is_some();
        if internal || !allow_list_allows(&self.rules, &uri) {
            tracing::warn!(function = %self.function, destination = %uri, "a guest worker's outbound call is not in its allow-list: refused");
            return outbound_failed("HttpRequestDenied");
        }
        let (mut parts, body) = request.into_parts();
        parts.uri = uri;
        parts.headers.remove(URI_HEADER);
        parts.headers.remove(CALL_HEADER);
        let body: WasiBody = body
            .map_err(|_| wasmtime_wasi_http::Error::HttpRequestBodySize(None))
            .boxed_unsync();
        match wasmtime_wasi_http::default_send_request(http::Request::from_parts(parts, body), None)
            .await
        {
            Ok((response, io)) => {
                tokio::spawn(io);
                response.map(|body| {
                    body.map_err(|e| BoxError::from(format!("{e:?}")))
                        .boxed_unsync()
                })
            }
            Err(e) => {
                let name = format!("{e:?}");
                let name = name
                    .split(['(', ' ', '{'])
                    .next()
                    .unwrap_or("InternalError")
                    .to_owned();
                outbound_failed(&name)
            }
        }
    }
}

/// The absolute URI a worker's call targets.
fn target(request: &http::Request<hyper::body::Incoming>) -> Option<http::Uri> {
    request
        .headers()
        .get(URI_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads a body of at most `max` bytes.
async fn read_bounded(request: http::Request<hyper::body::Incoming>, max: usize) -> Option<Bytes> {
    Limited::new(request.into_body(), max)
        .collect()
        .await
        .ok()
        .map(http_body_util::Collected::to_bytes)
}

fn refused(status: http::StatusCode, why: &str) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(full(why.to_owned()));
    *response.status_mut() = status;
    response
}

fn outbound_failed(name: &str) -> http::Response<ResponseBody> {
    let mut response = refused(http::StatusCode::BAD_GATEWAY, "outbound call failed");
    if let Ok(value) = http::HeaderValue::try_from(name) {
        response.headers_mut().insert(FAILED_HEADER, value);
    }
    response
}

fn failed(message: &str) -> KvReply {
    KvReply::Failed {
        message: message.to_owned(),
        limit: None,
    }
}

fn kv_reply(reply: &KvReply) -> http::Response<ResponseBody> {
    http::Response::new(full(postcard::to_stdvec(reply).unwrap_or_default()))
}

fn sql_reply(reply: &Result<SqlRows, SqlError>) -> http::Response<ResponseBody> {
    http::Response::new(full(postcard::to_stdvec(reply).unwrap_or_default()))
}

/// Runs `call` on `kv`.
async fn run_kv(kv: &dyn KvBackend, call: KvCall) -> KvReply {
    let result = match call {
        KvCall::Get(b, key) => kv.get(&b, &key).await.map(KvReply::Value),
        KvCall::GetMany(b, keys, max) => kv
            .get_many(&b, &keys, usize::try_from(max).unwrap_or(usize::MAX))
            .await
            .map(KvReply::Values),
        KvCall::Exists(b, key) => kv.exists(&b, &key).await.map(KvReply::Bool),
        KvCall::ListKeys(b, after, limit) => kv
            .list_keys(
                &b,
                after.as_deref(),
                usize::try_from(limit).unwrap_or(usize::MAX).clamp(1, 1000),
            )
            .await
            .map(|page| KvReply::Keys(page.keys, page.next)),
        KvCall::Set(b, key, value) => kv.set(&b, key, value).await.map(|()| KvReply::Done),
        KvCall::SetMany(b, entries) => kv.set_many(&b, entries).await.map(|()| KvReply::Done),
        KvCall::Delete(b, key) => kv.delete(&b, key).await.map(|()| KvReply::Done),
        KvCall::DeleteMany(b, keys) => kv.delete_many(&b, keys).await.map(|()| KvReply::Done),
        KvCall::Increment(b, key, delta) => kv.increment(&b, key, delta).await.map(KvReply::Number),
        KvCall::CompareAndSwap(b, key, expected, new) => kv
            .compare_and_swap(&b, key, expected, new)
            .await
            .map(KvReply::Bool),
        KvCall::BucketBytes(b) => kv.bucket_bytes(&b).await.map(KvReply::Bytes),
    };
    result.unwrap_or_else(|e| KvReply::Failed {
        message: e.to_string(),
        limit: breach_of(e),
    })
}

/// The breach `error` is, carried to the worker.
fn breach_of(error: KvError) -> Option<KvBreach> {
    Some(match error {
        KvError::KeyTooLarge { bytes, limit } => KvBreach::KeyTooLarge {
            bytes: bytes as u64,
            limit: limit as u64,
        },
        KvError::ValueTooLarge { key, bytes, limit } => KvBreach::ValueTooLarge {
            key,
            bytes: bytes as u64,
            limit: limit as u64,
        },
        KvError::BucketFull {
            would_hold, limit, ..
        } => KvBreach::BucketFull { would_hold, limit },
        KvError::ReadTooLarge { limit } => KvBreach::ReadTooLarge {
            limit: limit as u64,
        },
        KvError::NotAnInteger { key } => KvBreach::NotAnInteger { key },
        KvError::Overflow { key } => KvBreach::Overflow { key },
        KvError::Backend(_) | KvError::Stopped => return None,
    })
}
