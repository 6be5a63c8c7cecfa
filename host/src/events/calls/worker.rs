//! The background pool: runs due async calls, at most
//! [`AsyncCalls::workers`](super::AsyncCalls) at once.
//!
//! One dispatcher task per host takes the first due call whenever a worker
//! is free and runs it on a task of its own, as a request with
//! `x-wisp-trigger: async`, `x-wisp-call-id` and `x-wisp-attempt`. An
//! attempt answering below 500 finishes the call (`done`); a 5xx — which is
//! also what a trap or a timeout answers — is retried after a backoff that
//! doubles each time, until the retries are spent and the call is
//! dead-lettered (`failed`). A call that finds no free slot goes back to the
//! queue for a moment without using an attempt. The dispatcher also sweeps
//! finished calls past their retention. It holds the host weakly, so
//! dropping the last `Host` stops it.

use super::Calls;
use super::queue::Claim;
use super::record::{CallRecord, StoredResponse, now_ms, stored_headers};
use super::{AsyncCalls, MAX_RESULT_BODY_BYTES, callback};
use crate::events::Trigger;
use crate::registry::Audience;
use crate::request::NoRoom;
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use wisp_spec::api::CallState;
use wisp_spec::headers::{
    ATTEMPT_HEADER, CALL_ID_HEADER, TRIGGER_HEADER, VERSION_HEADER, strip_host_headers,
};

/// Longest the dispatcher sleeps, so it notices the host is gone.
const MAX_NAP: Duration = Duration::from_secs(1);

/// How long a call that found no free slot waits before it is tried again.
const NO_ROOM_PAUSE: Duration = Duration::from_millis(50);

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);

/// How often finished calls past their retention are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Starts running the stored calls of `calls` until it is dropped.
/// Background runs get at most half of the host's `max_instances` slots
/// (and at least one), so client requests always have the other half.
/// Calls finished longer than the retention ago are deleted first, before
/// the host answers anything, so a restart never shows an expired call.
pub(crate) async fn start(
    calls: &Arc<Calls>,
    wake: Arc<Notify>,
    config: AsyncCalls,
    max_instances: u32,
) {
    sweep(calls, config.retention).await;
    let workers = config.workers.clamp(1, (max_instances / 2).max(1));
    if workers < config.workers {
        tracing::info!(
            workers,
            asked = config.workers,
            "async workers lowered to half of the instance pool"
        );
    }
    tokio::spawn(dispatch(Arc::downgrade(calls), wake, config, workers));
}

async fn dispatch(owner: Weak<Calls>, wake: Arc<Notify>, config: AsyncCalls, workers: u32) {
    let workers = Arc::new(Semaphore::new(workers as usize));
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    loop {
        let Some(calls) = owner.upgrade() else {
            return;
        };
        if Instant::now() >= next_sweep {
            next_sweep = Instant::now() + SWEEP_EVERY;
            sweep(&calls, config.retention).await;
        }
        let nap = match workers.clone().try_acquire_owned() {
            Err(_) => MAX_NAP,
            Ok(worker) => {
                let now = now_ms();
                match calls.store.claim(now).await {
                    Ok(Claim::Ready(record, body)) => {
                        let run = attempt(calls, *record, body, config, worker, wake.clone());
                        tokio::spawn(run);
                        continue;
                    }
                    Ok(Claim::Wait(due)) => due.map_or(MAX_NAP, |due| {
                        Duration::from_millis(due.saturating_sub(now)).min(MAX_NAP)
                    }),
                    Err(error) => {
                        tracing::error!("reading the call queue failed: {error}");
                        MAX_NAP
                    }
                }
            }
        };
        drop(calls);
        // A wake-up (a new call, a finished attempt) ends the nap early.
        let _ = tokio::time::timeout(nap, wake.notified()).await;
    }
}

async fn sweep(calls: &Calls, retention: Duration) {
    let cutoff = now_ms().saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
    match calls.store.sweep(cutoff).await {
        Ok(0) => {}
        Ok(swept) => tracing::info!(swept, "expired async calls deleted"),
        Err(error) => tracing::error!("sweeping expired async calls failed: {error}"),
    }
}

/// Runs one attempt of `record` and stores what came of it.
async fn attempt(
    calls: Arc<Calls>,
    mut record: CallRecord,
    body: Bytes,
    config: AsyncCalls,
    worker: OwnedSemaphorePermit,
    wake: Arc<Notify>,
) {
    let started = now_ms();
    let old_due = record.due_ms;
    let outcome = match request_of(&record, body) {
        Ok(request) => run(&calls, &record.function, request).await,
        Err(error) => Ran::Answered(unrunnable(&error)),
    };
    let mut result = None;
    match outcome {
        Ran::NoRoom => record.due_ms = now_ms() + NO_ROOM_PAUSE.as_millis() as u64,
        Ran::Answered((response, body)) => {
            record.attempts += 1;
            record.started_ms = Some(started);
            let status = response.status;
            if status >= 500 {
                record.error = Some(failure(record.attempts, status, &body));
                if record.attempts <= config.retries {
                    record.due_ms = now_ms() + backoff_ms(config.backoff, record.attempts);
                } else {
                    record.state = CallState::Failed;
                }
            } else {
                record.error = None;
                record.state = CallState::Done;
            }
            if record.state.is_final() {
                record.finished_ms = Some(now_ms());
            }
            record.response = Some(response);
            result = Some(body);
        }
    }
    let saved = calls
        .store
        .save(&record, Some(old_due), result.clone())
        .await;
    calls.store.release(&record.id);
    drop(worker);
    wake.notify_one();
    match saved {
        Err(error) => {
            tracing::error!(call = %record.id, "storing an async call's attempt failed; it will run again: {error}");
        }
        Ok(()) if record.state.is_final() && record.callback.is_some() => {
            callback::deliver(calls, record, result).await;
        }
        Ok(()) => {}
    }
}

/// What an attempt came to.
enum Ran {
    /// The function answered (or the host did for it).
    Answered((StoredResponse, Bytes)),
    /// No slot was free: not an attempt.
    NoRoom,
}

async fn run(calls: &Calls, function: &str, request: http::Request<Full<Bytes>>) -> Ran {
    if calls.registry.snapshot().get(function).is_none() {
        // In a cluster, the call may have come before this host's copy of
        // its function: catch up with the cluster before answering 404.
        calls.shared.catch_up().await;
    }
    let response = calls
        .dispatcher
        .handle_named(function, request, Audience::Public, Trigger::Async)
        .await;
    if response.extensions().get::<NoRoom>().is_some() {
        return Ran::NoRoom;
    }
    let (parts, body) = response.into_parts();
    let (kept, body_bytes, truncated) =
        crate::runtime::body::read_prefix(body, MAX_RESULT_BODY_BYTES).await;
    Ran::Answered((
        StoredResponse {
            status: parts.status.as_u16(),
            version: parts
                .headers
                .get(&VERSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            headers: stored_headers(&parts.headers),
            body_bytes,
            truncated,
        },
        kept,
    ))
}

/// The request a stored call makes: its stored headers less any the host
/// owns (a record may come from another host, or from NATS), then the
/// host's own.
fn request_of(record: &CallRecord, body: Bytes) -> Result<http::Request<Full<Bytes>>, http::Error> {
    let mut builder = http::Request::builder()
        .method(record.method.as_str())
        .uri(record.uri.as_str());
    for (name, value) in &record.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    let mut request = builder.body(Full::new(body))?;
    let headers = request.headers_mut();
    strip_host_headers(headers);
    headers.insert(
        TRIGGER_HEADER,
        HeaderValue::from_static(Trigger::Async.as_str()),
    );
    headers.insert(CALL_ID_HEADER, HeaderValue::try_from(record.id.as_str())?);
    headers.insert(ATTEMPT_HEADER, HeaderValue::from(record.attempts + 1));
    Ok(request)
}

/// The answer of a stored call that no longer makes a request.
fn unrunnable(error: &http::Error) -> (StoredResponse, Bytes) {
    let body = Bytes::from(format!(
        "the stored call could not be made into a request: {error}"
    ));
    let response = StoredResponse {
        status: 400,
        version: None,
        headers: Vec::new(),
        body_bytes: body.len() as u64,
        truncated: false,
    };
    (response, body)
}

/// Why attempt `attempt` failed, for the call's `error`.
fn failure(attempt: u32, status: u16, body: &Bytes) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
    let text = text.trim();
    if text.is_empty() {
        format!("attempt {attempt} answered {status}")
    } else {
        format!("attempt {attempt} answered {status}: {text}")
    }
}

/// The wait after failed attempt `attempts`: `first`, doubled for each
/// attempt after the first, at most [`MAX_BACKOFF`].
fn backoff_ms(first: Duration, attempts: u32) -> u64 {
    let doublings = attempts.saturating_sub(1).min(30);
    let wait = first.saturating_mul(1 << doublings).min(MAX_BACKOFF);
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_wait_up_to_an_hour() {
        let first = Duration::from_millis(100);
        assert_eq!(backoff_ms(first, 1), 100);
        assert_eq!(backoff_ms(first, 2), 200);
        assert_eq!(backoff_ms(first, 3), 400);
        assert_eq!(backoff_ms(Duration::from_secs(1), 40), 3_600_000);
    }
}
