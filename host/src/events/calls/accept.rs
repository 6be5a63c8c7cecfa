//! Accepting an async call: check it, read it whole, store it, answer
//! `202 Accepted`.
//!
//! The call is checked against the version the traffic split picks now:
//! whether it takes async calls at all (`async=on`; if not, the request is
//! handed back to be served synchronously, as RFC 7240 lets a server ignore
//! a preference), its request-body cap, its outbound allow-list for a
//! callback URL, and the caps on queued calls (`429` with `Retry-After`).
//! A refused call gets the same JSON error a synchronous request would, and
//! nothing is stored. The client's credentials (`Authorization`, `Cookie`,
//! `Proxy-Authorization`) are not stored unless the function opted in
//! (`async-keep-credentials=on`); nor are headers only the host sets, nor
//! the console's session cookie.

use super::Calls;
use super::backlog::Caps;
use super::queue::QueueError;
use super::record::{CallRecord, new_id, now_ms, stored_headers};
use crate::error::InvokeError;
use crate::observe::trace;
use crate::registry::{Audience, FunctionEntry};
use crate::request::access_log::AccessRecord;
use crate::runtime::body::{BoxError, ResponseBody, full, read_whole};
use crate::runtime::function::Function;
use crate::runtime::pacing::paced;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use wisp_spec::api::{CallAccepted, CallState};
use wisp_spec::headers::{
    CALL_ID_HEADER, CALLBACK_HEADER, PREFER, PREFERENCE_APPLIED, REQUEST_ID_HEADER,
    strip_host_headers,
};
use wisp_spec::settings::allow_list_allows;

impl Calls {
    /// Stores `request` for `entry` as an async call and answers `202`, or
    /// answers why it cannot be taken; hands the request back (`Err`) when
    /// the version the split picks takes no async calls.
    pub(crate) async fn accept_call<B>(
        &self,
        entry: &FunctionEntry,
        request: http::Request<B>,
    ) -> Result<http::Response<ResponseBody>, http::Request<B>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let name = &entry.record.name;
        let function = match entry.choose(request.headers(), Audience::Public) {
            Ok(function) => function,
            Err(error) => {
                return Ok(self
                    .dispatcher
                    .refuse(&request, started, Some(name), &error));
            }
        };
        let taken = function.settings.async_calls;
        if !taken.enabled {
            return Err(request);
        }
        let callback = match callback_of(request.headers(), &function) {
            Ok(callback) => callback,
            Err(error) => {
                return Ok(self
                    .dispatcher
                    .refuse(&request, started, Some(name), &error));
            }
        };
        let request_id = trace::request_id(request.headers());
        let (mut parts, body) = request.into_parts();
        let body = paced(
            body,
            self.dispatcher.options.body_pacing,
            &Arc::new(AtomicBool::new(false)),
        );
        let mut charge = self.dispatcher.runtime.buffers.charge();
        let body = match read_whole(body, &function.settings.limits, &mut charge).await {
            Ok(body) => body,
            Err(error) => {
                let request = http::Request::from_parts(parts, ());
                return Ok(self
                    .dispatcher
                    .refuse(&request, started, Some(name), &error));
            }
        };
        let headers = &mut parts.headers;
        headers.remove(PREFER);
        headers.remove(CALLBACK_HEADER);
        strip_host_headers(headers);
        crate::request::inbound::strip_session_cookie(headers);
        if !taken.keep_credentials {
            for credential in [
                header::AUTHORIZATION,
                header::COOKIE,
                header::PROXY_AUTHORIZATION,
            ] {
                headers.remove(credential);
            }
        }
        let id_header = HeaderValue::try_from(request_id.as_str()).ok();
        if let Some(value) = &id_header {
            headers.insert(REQUEST_ID_HEADER, value.clone());
        }
        let accepted_ms = now_ms();
        let record = CallRecord {
            id: new_id(accepted_ms),
            function: name.clone(),
            method: parts.method.to_string(),
            uri: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            headers: stored_headers(headers),
            callback,
            state: CallState::Queued,
            attempts: 0,
            accepted_ms,
            started_ms: None,
            finished_ms: None,
            due_ms: accepted_ms,
            error: None,
            response: None,
            callback_outcome: None,
        };
        let request = http::Request::from_parts(parts, ());
        let host_caps = &self.config;
        let caps = Caps {
            function_calls: u64::from(taken.max_queued),
            function_bytes: taken.max_queued_bytes,
            host_calls: host_caps.max_queued,
            host_bytes: host_caps.max_queued_bytes,
        };
        if let Err(error) = self.store.accept(&record, body, caps).await {
            let error = match error {
                QueueError::Full(full) => InvokeError::QueueFull(full.to_string()),
                error if error.is_out_of_space() => {
                    tracing::error!(function = %name, "storing an async call failed: {error}");
                    InvokeError::InsufficientStorage(
                        "the host is out of storage for async calls; retry later".into(),
                    )
                }
                error => {
                    tracing::error!(function = %name, "storing an async call failed: {error}");
                    InvokeError::Internal("storing the async call failed".into())
                }
            };
            return Ok(self
                .dispatcher
                .refuse(&request, started, Some(name), &error));
        }
        drop(charge);
        let mut response = accepted(&record.id);
        if let Some(value) = id_header {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        function.metrics().record_status(StatusCode::ACCEPTED);
        if self.dispatcher.options.access_log {
            AccessRecord {
                method: request.method().clone(),
                path: request.uri().path().to_owned(),
                status: StatusCode::ACCEPTED,
                started,
                function: Some(function.name.clone()),
                version: None,
                trace: Arc::default(),
                request_id: Arc::from(request_id),
            }
            .write_now();
        }
        Ok(response)
    }
}

/// The `x-wisp-callback` URL of a request, if it has one that `function`'s
/// allow-list allows.
fn callback_of(headers: &HeaderMap, function: &Function) -> Result<Option<String>, InvokeError> {
    let Some(value) = headers.get(&CALLBACK_HEADER) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let uri: http::Uri = text.parse().map_err(|_| {
        InvokeError::BadRequest(format!(
            "the `{CALLBACK_HEADER}` header is not a URL: `{}`",
            String::from_utf8_lossy(value.as_bytes())
        ))
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(InvokeError::BadRequest(format!(
            "the `{CALLBACK_HEADER}` URL must be absolute http or https: `{text}`"
        )));
    }
    if !allow_list_allows(&function.settings.allow_outbound, &uri) {
        return Err(InvokeError::BadRequest(format!(
            "the callback URL `{text}` is not in function `{}`'s outbound allow-list; deploy it with `--allow-outbound {}://{}`",
            function.name,
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map_or("", |a| a.as_str()),
        )));
    }
    Ok(Some(text.to_owned()))
}

/// The `202` for call `id`.
fn accepted(id: &str) -> http::Response<ResponseBody> {
    let body = CallAccepted {
        id: id.to_owned(),
        status_url: format!("/v1/calls/{id}"),
    };
    let text = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = http::Response::new(full(text));
    *response.status_mut() = StatusCode::ACCEPTED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::try_from(id) {
        headers.insert(CALL_ID_HEADER, value);
    }
    headers.insert(
        PREFERENCE_APPLIED,
        HeaderValue::from_static("respond-async"),
    );
    response
}
