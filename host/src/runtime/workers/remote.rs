//! A guest worker's ways out, each a call to its front process over the
//! worker's one way back (HTTP/2 on its stdout socket), checked there:
//! key-value operations ([`RemoteKv`], a [`KvBackend`] for the worker's
//! platform services), SQLite statements ([`RemoteSql`], its
//! [`SqlBackend`]), chained and outbound calls ([`Remote`], the
//! sandbox's [`Dispatch`] handle), and finished-run reports ([`Reports`],
//! the meter's relay). The worker holds no database, no socket of its own
//! and nothing of another function.

use super::wire::{
    CALL_HEADER, Counts, FAILED_HEADER, Finished, KvBreach, KvCall, KvReply, SqlCall, URI_HEADER,
};
use crate::observe::meter::{GuestCost, RunRelay};
use crate::observe::metrics::{FunctionMetrics, Metrics};
use crate::observe::spans::TraceContext;
use crate::observe::trace::RequestTrace;
use crate::runtime::body::{BoxError, ResponseBody, full};
use crate::runtime::chain::{Dispatch, OutsideCall};
use crate::runtime::sandbox::{GuestMemory, MemoryLease};
use crate::state::{
    BucketId, DatabaseId, KeyPage, KvBackend, KvError, KvFuture, SqlBackend, SqlError, SqlFuture,
    SqlRows, SqlStatement,
};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http2::SendRequest;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};
use wisp_spec::api::Trigger;

/// The body of a worker's call to its front.
pub(crate) type OutBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The worker's way back to its front.
type Front = SendRequest<OutBody>;

/// Sends `request` to the front at `path`, for the worker's call `call`.
async fn ask(
    front: &Front,
    path: &'static str,
    call: u64,
    mut request: http::Request<OutBody>,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    *request.uri_mut() = http::Uri::from_static(path);
    request
        .headers_mut()
        .insert(CALL_HEADER, http::HeaderValue::from(call));
    let mut front = front.clone();
    front
        .ready()
        .await
        .map_err(|e| format!("the front is gone: {e}"))?;
    front
        .send_request(request)
        .await
        .map_err(|e| format!("the front did not answer: {e}"))
}

/// Reports each finished run to the front, by the call it served, with
/// the worker's counts; and the counts on their own each second they
/// changed without a run to carry them.
pub(crate) struct Reports {
    front: Front,
    /// The call each live run serves, by its trace's address.
    calls: Mutex<HashMap<usize, u64>>,
    metrics: Arc<Metrics>,
    function_metrics: Arc<FunctionMetrics>,
    /// The counts last sent.
    sent: Mutex<Counts>,
    /// Reports not yet sent, and whether a batch is on its way.
    queue: Mutex<Vec<Finished>>,
    /// Runs whose report and response end are not yet matched.
    ends: Mutex<HashMap<u64, End>>,
    flushing: AtomicBool,
    self_ref: std::sync::Weak<Reports>,
}

/// Bytes of captured output one batch of reports carries at most.
const MAX_BATCH_BYTES: usize = 1 << 20;

impl Reports {
    pub(crate) fn new(
        front: Front,
        metrics: Arc<Metrics>,
        function_metrics: Arc<FunctionMetrics>,
    ) -> Arc<Reports> {
        let reports = Arc::new_cyclic(|self_ref| Reports {
            front,
            calls: Mutex::default(),
            metrics,
            function_metrics,
            sent: Mutex::default(),
            queue: Mutex::default(),
            ends: Mutex::default(),
            flushing: AtomicBool::new(false),
            self_ref: self_ref.clone(),
        });
        tokio::spawn(send_counts(Arc::downgrade(&reports)));
        reports
    }

    /// The worker's counts now, marked as sent.
    fn counts(&self) -> Counts {
        let (prepared, prepared_used) = self.metrics.prepared_totals();
        let counts = Counts {
            breaches: self.function_metrics.breach_counts(),
            prepared,
            prepared_used,
        };
        *self.sent.lock().unwrap_or_else(|p| p.into_inner()) = counts.clone();
        counts
    }

    /// Whether the counts changed since they were last sent.
    fn counts_changed(&self) -> bool {
        let (prepared, prepared_used) = self.metrics.prepared_totals();
        let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.breaches != self.function_metrics.breach_counts()
            || sent.prepared != prepared
            || sent.prepared_used != prepared_used
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Finished>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<usize, u64>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run traced by `trace` serves call `call`.
    pub(crate) fn expect(&self, trace: &Arc<RequestTrace>, call: u64) {
        self.calls().insert(Arc::as_ptr(trace) as usize, call);
    }

    /// The run traced by `trace` failed; true when it made no report (and
    /// now never will).
    pub(crate) fn forget(&self, trace: &Arc<RequestTrace>) -> bool {
        self.calls()
            .remove(&(Arc::as_ptr(trace) as usize))
            .is_some()
    }
}

impl RunRelay for Reports {
    fn finished(&self, cost: GuestCost, request: &RequestTrace, stdout: &[u8], stderr: &[u8]) {
        let Some(call) = self.calls().remove(&(std::ptr::from_ref(request) as usize)) else {
            return;
        };
        let report = Finished {
            call,
            wall_us: duration_us(cost.wall),
            cpu_us: duration_us(cost.cpu),
            fuel: cost.fuel,
            peak_memory_bytes: cost.peak_memory_bytes as u64,
            stdout: stdout.to_vec(),
            stderr: stderr.to_vec(),
            counts: self.counts(),
            dropped: false,
        };
        // Carried in its response's trailers when the response has not
        // ended yet (or waits for it), else sent on its own.
        let carried = report.stdout.len() + report.stderr.len() <= MAX_CARRIED_OUTPUT;
        let mut ends = self.ends();
        match ends.remove(&call) {
            Some(End::Waiting(waker)) if carried => {
                ends.insert(call, End::Report(report));
                waker.wake();
            }
            None if carried => {
                ends.insert(call, End::Report(report));
            }
            _ => {
                drop(ends);
                self.send(report);
            }
        }
    }
}

/// Most captured output a report carried in trailers holds; a bigger one
/// is sent on its own.
const MAX_CARRIED_OUTPUT: usize = 8 << 10;

/// Where a run's report stands against the end of its response.
pub(crate) enum End {
    /// The response ended first and waits a moment for the report.
    Waiting(std::task::Waker),
    /// The run ended first: its report waits for the response's end.
    Report(Finished),
    /// The response ended (or was dropped) without it: the report, when
    /// the run ends, is sent on its own.
    Gone,
}

impl Reports {
    fn ends(&self) -> std::sync::MutexGuard<'_, HashMap<u64, End>> {
        self.ends.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `report` to be sent on its own, in the next batch.
    fn send(&self, report: Finished) {
        self.queue().push(report);
        if !self.flushing.swap(true, Ordering::AcqRel) {
            tokio::spawn(flush(self.front.clone(), self.self_ref.clone()));
        }
    }

    /// The report of `call`, if its run has ended; else `waker` is woken
    /// when it does.
    pub(crate) fn take_report(&self, call: u64, waker: &std::task::Waker) -> Option<Finished> {
        let mut ends = self.ends();
        match ends.remove(&call) {
            Some(End::Report(report)) => Some(report),
            _ => {
                ends.insert(call, End::Waiting(waker.clone()));
                None
            }
        }
    }

    /// Call `call` was dropped before it answered (the front reset it: its
    /// client left), traced by `trace`: the front learns its run is over,
    /// by the run's own report if it made one, else by a report that it
    /// was dropped (its run went with it and never will).
    pub(crate) fn dropped(&self, trace: &Arc<RequestTrace>, call: u64) {
        if self.forget(trace) {
            self.send(Finished::dropped(call, self.counts()));
        } else {
            self.give_up(call);
        }
    }

    /// `call`'s response ended (or was dropped) without its report: the
    /// report goes on its own.
    pub(crate) fn give_up(&self, call: u64) {
        let mut ends = self.ends();
        match ends.remove(&call) {
            Some(End::Report(report)) => {
                drop(ends);
                self.send(report);
            }
            _ => {
                ends.insert(call, End::Gone);
            }
        }
    }
}

/// Sends the queued reports, as many at once as have queued while the last
/// batch was on its way (so a busy worker makes one call back per batch,
/// not per run), until none is left.
async fn flush(front: Front, reports: std::sync::Weak<Reports>) {
    loop {
        let Some(reports) = reports.upgrade() else {
            return;
        };
        let batch = {
            let mut queue = reports.queue();
            let mut bytes = 0;
            let take = queue
                .iter()
                .take_while(|r| {
                    bytes += r.stdout.len() + r.stderr.len() + 256;
                    bytes <= MAX_BATCH_BYTES
                })
                .count()
                .max(1)
                .min(queue.len());
            queue.drain(..take).collect::<Vec<_>>()
        };
        if batch.is_empty() {
            reports.flushing.store(false, Ordering::Release);
            // A report queued after the drain and before the flag fell
            // would wait for the next one: look once more.
            if reports.queue().is_empty() || reports.flushing.swap(true, Ordering::AcqRel) {
                return;
            }
            continue;
        }
        let Ok(json) = serde_json::to_vec(&batch) else {
            continue;
        };
        drop(reports);
        let request = http::Request::post("/")
            .body(full(json))
            .unwrap_or_default();
        if let Err(e) = ask(&front, "http://front/finished", 0, request).await {
            tracing::debug!("runs' reports were not delivered: {e}");
        }
    }
}

/// Sends the worker's counts each second they changed with no report to
/// carry them (a breach counted after its run's report).
async fn send_counts(reports: std::sync::Weak<Reports>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(reports) = reports.upgrade() else {
            return;
        };
        if !reports.counts_changed() {
            continue;
        }
        let Ok(json) = serde_json::to_vec(&reports.counts()) else {
            continue;
        };
        let request = http::Request::post("/")
            .body(full(json))
            .unwrap_or_default();
        if let Err(e) = ask(&reports.front, "http://front/counts", 0, request).await {
            tracing::debug!("the worker's counts were not delivered: {e}");
        }
    }
}

pub(crate) fn duration_us(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// The worker's share of the host's guest memory budget, asked of the
/// front as its guests grow; the whole steps they leave unused but one are
/// given back as soon as a sandbox ends, and that one within a second.
pub(crate) struct RemoteLease {
    front: Front,
}

impl RemoteLease {
    /// Makes `memory`'s lease come from the front.
    pub(crate) fn start(front: Front, memory: &Arc<GuestMemory>) {
        memory.lease_from(Arc::new(RemoteLease { front }));
        let memory = Arc::downgrade(memory);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(memory) = memory.upgrade() else {
                    return;
                };
                memory.trim_lease(0);
            }
        });
    }

    async fn ask(front: &Front, what: String) -> bool {
        let request = http::Request::post("/")
            .body(full(what))
            .unwrap_or_default();
        match ask(front, "http://front/memory", 0, request).await {
            Ok(response) => match response.into_body().collect().await {
                Ok(body) => body.to_bytes().as_ref() == b"1",
                Err(_) => false,
            },
            Err(_) => false,
        }
    }
}

impl MemoryLease for RemoteLease {
    fn grow(&self, bytes: u64) -> Pin<Box<dyn Future<Output = bool> + Send>> {
        let front = self.front.clone();
        Box::pin(async move { RemoteLease::ask(&front, format!("grow {bytes}")).await })
    }

    fn give_back(&self, bytes: u64) {
        let front = self.front.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { RemoteLease::ask(&front, format!("give {bytes}")).await });
        }
    }
}

/// A sandbox's way to other functions and the world outside: through the
/// front, for the call `call`.
pub(crate) struct Remote {
    front: Front,
    call: u64,
}

impl Remote {
    pub(crate) fn new(front: Front, call: u64) -> Remote {
        Remote { front, call }
    }

    /// Sends a guest's `request` to the front at `path`, its URI in a
    /// header.
    async fn relay(
        &self,
        path: &'static str,
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let (mut parts, body) = request.into_parts();
        let uri = http::HeaderValue::try_from(parts.uri.to_string())
            .map_err(|_| "an outbound URI that is no header value".to_owned())?;
        parts.headers.insert(URI_HEADER, uri);
        parts.extensions = http::Extensions::new();
        let body: OutBody = body
            .map_err(|e| BoxError::from(format!("{e:?}")))
            .boxed_unsync();
        ask(
            &self.front,
            path,
            self.call,
            http::Request::from_parts(parts, body),
        )
        .await
    }
}

impl Dispatch for Remote {
    fn trace_context(&self) -> Option<&Arc<dyn TraceContext>> {
        None
    }

    fn run<'a>(
        self: Arc<Self>,
        _name: &'a str,
        request: http::Request<WasiBody>,
        _trigger: Trigger,
    ) -> Pin<Box<dyn Future<Output = http::Response<ResponseBody>> + Send + 'a>> {
        Box::pin(async move {
            match self.relay("http://front/chain", request).await {
                Ok(response) => response.map(|body| body.map_err(BoxError::from).boxed_unsync()),
                Err(message) => {
                    tracing::warn!("a chained call failed: {message}");
                    let mut response =
                        http::Response::new(full("502 Bad Gateway: the chained call failed\n"));
                    *response.status_mut() = http::StatusCode::BAD_GATEWAY;
                    response
                }
            }
        })
    }

    fn send_outside(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
    ) -> Result<OutsideCall, Box<http::Request<WasiBody>>> {
        Ok(Box::pin(async move {
            let response = self
                .relay("http://front/outbound", request)
                .await
                .map_err(|m| HttpError::InternalError(Some(m)))?;
            if let Some(failed) = response.headers().get(FAILED_HEADER) {
                return Err(outbound_error(failed.to_str().unwrap_or_default()));
            }
            Ok(response.map(|body| {
                body.map_err(|_| HttpError::HttpResponseIncomplete)
                    .boxed_unsync()
            }))
        }))
    }
}

/// The guest's error for an outbound call the front refused or could not
/// make (it names the error as wasi:http does).
fn outbound_error(name: &str) -> HttpError {
    match name {
        "HttpRequestDenied" => HttpError::HttpRequestDenied,
        "ConnectionRefused" => HttpError::ConnectionRefused,
        "DestinationNotFound" => HttpError::DestinationNotFound,
        "ConnectionTimeout" => HttpError::ConnectionTimeout,
        "HttpRequestUriInvalid" => HttpError::HttpRequestUriInvalid,
        other => HttpError::InternalError(Some(other.to_owned())),
    }
}

/// Key-value storage through the front, which checks each bucket is one
/// this worker's function may open.
pub(crate) struct RemoteKv {
    front: Front,
}

impl RemoteKv {
    pub(crate) fn new(front: Front) -> RemoteKv {
        RemoteKv { front }
    }

    async fn kv(&self, call: KvCall) -> Result<KvReply, KvError> {
        let bucket = call.bucket().clone();
        let failed = |m: String| KvError::Backend(Arc::new(std::io::Error::other(m)));
        let reply: KvReply = ask_postcard(&self.front, "http://front/kv", &call)
            .await
            .map_err(failed)?;
        match reply {
            KvReply::Failed { message, limit } => Err(match limit {
                Some(breach) => breach_error(breach, bucket),
                None => failed(message),
            }),
            reply => Ok(reply),
        }
    }
}

/// SQLite through the front, which checks each database is one this
/// worker's function was granted.
pub(crate) struct RemoteSql {
    front: Front,
}

impl RemoteSql {
    pub(crate) fn new(front: Front) -> RemoteSql {
        RemoteSql { front }
    }
}

impl SqlBackend for RemoteSql {
    fn execute<'a>(
        &'a self,
        database: &'a DatabaseId,
        statement: SqlStatement,
    ) -> SqlFuture<'a, SqlRows> {
        Box::pin(async move {
            let call = SqlCall {
                database: database.clone(),
                statement,
            };
            let reply: Result<SqlRows, SqlError> =
                ask_postcard(&self.front, "http://front/sql", &call)
                    .await
                    .map_err(|m| SqlError::Stopped(format!("asking the front failed: {m}")))?;
            reply
        })
    }
}

/// Sends `call` to the front's `path` and reads its answer, both in
/// postcard; `Err` says what failed on the way.
async fn ask_postcard<R: serde::de::DeserializeOwned>(
    front: &Front,
    path: &'static str,
    call: &impl serde::Serialize,
) -> Result<R, String> {
    let body = postcard::to_stdvec(call).map_err(|e| e.to_string())?;
    let request = http::Request::post("/")
        .body(full(body))
        .map_err(|e| e.to_string())?;
    let response = ask(front, path, 0, request).await?;
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    postcard::from_bytes(&bytes).map_err(|e| e.to_string())
}

/// The error a breach the front reported is to the guest.
fn breach_error(breach: KvBreach, bucket: BucketId) -> KvError {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    match breach {
        KvBreach::KeyTooLarge { bytes, limit } => KvError::KeyTooLarge {
            bytes: size(bytes),
            limit: size(limit),
        },
        KvBreach::ValueTooLarge { key, bytes, limit } => KvError::ValueTooLarge {
            key,
            bytes: size(bytes),
            limit: size(limit),
        },
        KvBreach::BucketFull { would_hold, limit } => KvError::BucketFull {
            bucket,
            would_hold,
            limit,
        },
        KvBreach::ReadTooLarge { limit } => KvError::ReadTooLarge { limit: size(limit) },
        KvBreach::NotAnInteger { key } => KvError::NotAnInteger { key },
        KvBreach::Overflow { key } => KvError::Overflow { key },
    }
}

/// A reply of an unexpected kind.
fn mismatch() -> KvError {
    KvError::Backend(Arc::new(std::io::Error::other(
        "the front answered a key-value call with the wrong kind of reply",
    )))
}

macro_rules! expect_reply {
    ($reply:expr, $pattern:pat => $value:expr) => {
        match $reply {
            $pattern => Ok($value),
            _ => Err(mismatch()),
        }
    };
}

impl KvBackend for RemoteKv {
    fn get<'a>(&'a self, bucket: &'a BucketId, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let reply = self.kv(KvCall::Get(bucket.clone(), key.to_owned())).await?;
            expect_reply!(reply, KvReply::Value(v) => v)
        })
    }

    fn get_many<'a>(
        &'a self,
        bucket: &'a BucketId,
        keys: &'a [String],
        max_bytes: usize,
    ) -> KvFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            let call = KvCall::GetMany(bucket.clone(), keys.to_vec(), max_bytes as u64);
            let reply = self.kv(call).await?;
            expect_reply!(reply, KvReply::Values(v) => v)
        })
    }

    fn exists<'a>(&'a self, bucket: &'a BucketId, key: &'a str) -> KvFuture<'a, bool> {
        Box::pin(async move {
            let reply = self
                .kv(KvCall::Exists(bucket.clone(), key.to_owned()))
                .await?;
            expect_reply!(reply, KvReply::Bool(b) => b)
        })
    }

    fn list_keys<'a>(
        &'a self,
        bucket: &'a BucketId,
        after: Option<&'a str>,
        limit: usize,
    ) -> KvFuture<'a, KeyPage> {
        Box::pin(async move {
            let call = KvCall::ListKeys(bucket.clone(), after.map(str::to_owned), limit as u64);
            let reply = self.kv(call).await?;
            expect_reply!(reply, KvReply::Keys(keys, next) => KeyPage { keys, next })
        })
    }

    fn set<'a>(&'a self, bucket: &'a BucketId, key: String, value: Vec<u8>) -> KvFuture<'a, ()> {
        Box::pin(async move {
            let reply = self.kv(KvCall::Set(bucket.clone(), key, value)).await?;
            expect_reply!(reply, KvReply::Done => ())
        })
    }

    fn set_many<'a>(
        &'a self,
        bucket: &'a BucketId,
        entries: Vec<(String, Vec<u8>)>,
    ) -> KvFuture<'a, ()> {
        Box::pin(async move {
            let reply = self.kv(KvCall::SetMany(bucket.clone(), entries)).await?;
            expect_reply!(reply, KvReply::Done => ())
        })
    }

    fn delete<'a>(&'a self, bucket: &'a BucketId, key: String) -> KvFuture<'a, ()> {
        Box::pin(async move {
            let reply = self.kv(KvCall::Delete(bucket.clone(), key)).await?;
            expect_reply!(reply, KvReply::Done => ())
        })
    }

    fn delete_many<'a>(&'a self, bucket: &'a BucketId, keys: Vec<String>) -> KvFuture<'a, ()> {
        Box::pin(async move {
            let reply = self.kv(KvCall::DeleteMany(bucket.clone(), keys)).await?;
            expect_reply!(reply, KvReply::Done => ())
        })
    }

    fn increment<'a>(&'a self, bucket: &'a BucketId, key: String, delta: i64) -> KvFuture<'a, i64> {
        Box::pin(async move {
            let reply = self
                .kv(KvCall::Increment(bucket.clone(), key, delta))
                .await?;
            expect_reply!(reply, KvReply::Number(n) => n)
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        bucket: &'a BucketId,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> KvFuture<'a, bool> {
        Box::pin(async move {
            let call = KvCall::CompareAndSwap(bucket.clone(), key, expected, new);
            let reply = self.kv(call).await?;
            expect_reply!(reply, KvReply::Bool(b) => b)
        })
    }

    fn bucket_bytes<'a>(&'a self, bucket: &'a BucketId) -> KvFuture<'a, u64> {
        Box::pin(async move {
            let reply = self.kv(KvCall::BucketBytes(bucket.clone())).await?;
            expect_reply!(reply, KvReply::Bytes(n) => n)
        })
    }

    fn function_buckets(&self) -> KvFuture<'_, Vec<String>> {
        Box::pin(async { Err(not_for_guests()) })
    }

    fn delete_bucket<'a>(&'a self, _bucket: &'a BucketId) -> KvFuture<'a, ()> {
        Box::pin(async { Err(not_for_guests()) })
    }
}

/// The answer to an operator's call made in a worker (none is).
fn not_for_guests() -> KvError {
    KvError::Backend(Arc::new(std::io::Error::other(
        "a guest worker lists or deletes no buckets",
    )))
}
