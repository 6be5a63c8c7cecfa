//! Callbacks: when an async call with `x-wisp-callback: URL` is done (or
//! dead-lettered), the host POSTs its result there — the JSON of
//! `GET /v1/calls/{id}` — with `x-wisp-call-id`.
//!
//! Only a URL the function's outbound allow-list allows is ever called:
//! the check runs when the call is accepted and again, against the version
//! that ran, before delivery. Delivery is tried a few times with a short
//! backoff; how it went is kept with the call (`callback.outcome`).

use super::Calls;
use super::record::CallRecord;
use bytes::Bytes;
use http::{HeaderValue, Method, header};
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::RequestOptions;
use wisp_spec::headers::CALL_ID_HEADER;
use wisp_spec::settings::allow_list_allows;

/// Delivery tries before giving up.
const TRIES: u32 = 3;

/// Wait before the second try; doubled for each later one.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// How long connecting, and then waiting for the answer, may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Delivers finished call `record` (its kept body `body`) to its callback,
/// then stores how that went.
pub(super) async fn deliver(calls: Arc<Calls>, mut record: CallRecord, body: Option<Bytes>) {
    let Some(url) = record.callback.clone() else {
        return;
    };
    let outcome = match permitted(&calls, &record, &url) {
        Err(reason) => reason,
        Ok(uri) => {
            let info = record.info(None, body.as_ref());
            let payload = Bytes::from(serde_json::to_vec(&info).unwrap_or_default());
            post_with_retries(&uri, &record.id, payload).await
        }
    };
    tracing::info!(call = %record.id, function = %record.function, callback = %url, "callback {outcome}");
    record.callback_outcome = Some(outcome);
    if let Err(error) = calls.store.save(&record, None, None).await {
        tracing::error!(call = %record.id, "storing a callback's outcome failed: {error}");
    }
}

/// The callback's URI, if the version that ran still allows it.
fn permitted(calls: &Calls, record: &CallRecord, url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("not sent: `{url}` is not a URL"))?;
    let snapshot = calls.registry.snapshot();
    let entry = snapshot
        .get(&record.function)
        .ok_or_else(|| format!("not sent: function `{}` no longer exists", record.function))?;
    let version = record.response.as_ref().and_then(|r| r.version);
    let rules = version
        .and_then(|v| entry.versions.get(&v))
        .map(|v| &v.settings.allow_outbound);
    if rules.is_some_and(|rules| allow_list_allows(rules, &uri)) {
        Ok(uri)
    } else {
        Err("not sent: the version that ran does not allow it in its outbound allow-list".into())
    }
}

async fn post_with_retries(uri: &http::Uri, id: &str, payload: Bytes) -> String {
    let mut wait = FIRST_RETRY;
    let mut outcome = String::new();
    for attempt in 1..=TRIES {
        match post(uri, id, payload.clone()).await {
            Ok(status) if status.is_success() => return format!("delivered ({status})"),
            Ok(status) => outcome = format!("failed: the receiver answered {status}"),
            Err(error) => outcome = format!("failed: {error}"),
        }
        if attempt < TRIES {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    format!("{outcome} ({TRIES} tries)")
}

async fn post(
    uri: &http::Uri,
    id: &str,
    payload: Bytes,
) -> Result<http::StatusCode, wasmtime_wasi_http::Error> {
    let mut request = http::Request::new(
        Full::new(payload)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.clone();
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::try_from(id) {
        headers.insert(CALL_ID_HEADER, value);
    }
    let options = RequestOptions {
        connect_timeout: Some(TIMEOUT),
        first_byte_timeout: Some(TIMEOUT),
        between_bytes_timeout: Some(TIMEOUT),
    };
    let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
    let status = response.status();
    let connection = tokio::spawn(io);
    // The answer's body is not wanted, but reading it lets the connection end cleanly.
    let _ = tokio::time::timeout(TIMEOUT, response.into_body().collect()).await;
    connection.abort();
    Ok(status)
}
