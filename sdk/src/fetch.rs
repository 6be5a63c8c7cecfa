//! Outbound HTTP from a function, through `wasi:http/outgoing-handler` (a
//! function exported with `v3::export!` uses the WASI 0.3 client).
//!
//! The host decides where a function may call: on wisp, only origins in its
//! `--allow-outbound` list. A call anywhere else fails with
//! [`FetchError::Denied`] — the request never leaves the host. Bodies are
//! small and buffered here; for streaming, use `wstd::http::Client`.

use bytes::Bytes;
use wstd::__internal::wasip2::http::outgoing_handler;
use wstd::__internal::wasip2::http::types::{
    ErrorCode, Fields, Method as WasiMethod, OutgoingBody, OutgoingRequest, Scheme,
};
use wstd::io::AsyncPollable;

/// Why an outbound request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The URL or request cannot be sent (no scheme or host, bad header…).
    Invalid(String),
    /// The host does not allow calls to this destination.
    Denied,
    /// The call was allowed but failed (DNS, connection, TLS, protocol…).
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Invalid(why) => write!(f, "invalid outbound request: {why}"),
            FetchError::Denied => f.write_str(
                "outbound request denied: the destination is not in this function's allow-list",
            ),
            FetchError::Failed(why) => write!(f, "outbound request failed: {why}"),
        }
    }
}

impl std::error::Error for FetchError {}

impl From<ErrorCode> for FetchError {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::HttpRequestDenied => FetchError::Denied,
            other => FetchError::Failed(format!("{other:?}")),
        }
    }
}

/// `GET url`, the whole response buffered.
///
/// ```no_run
/// # async fn run() -> Result<(), wisp_sdk::fetch::FetchError> {
/// let response = wisp_sdk::fetch::get("https://api.example.com/status").await?;
/// println!("{} {}", response.status(), String::from_utf8_lossy(response.body()));
/// # Ok(()) }
/// ```
pub async fn get(url: &str) -> Result<http::Response<Bytes>, FetchError> {
    let request = http::Request::get(url)
        .body(Bytes::new())
        .map_err(|e| FetchError::Invalid(e.to_string()))?;
    send(request).await
}

/// Calls function `function` on the same host, in-process: `request`'s
/// path and query (its URI may be just `/path?query`) go to
/// `http://FUNCTION.wisp.internal`, which the function receives as if
/// mounted at `/`. The caller's allow-list must grant it
/// (`--allow-outbound http://FUNCTION.wisp.internal`, or
/// `http://*.wisp.internal` for every function).
///
/// ```no_run
/// # async fn run() -> Result<(), wisp_sdk::fetch::FetchError> {
/// let request = wisp_sdk::http::Request::post("/orders").body("{}".into()).unwrap();
/// let response = wisp_sdk::call("billing", request).await?;
/// # Ok(()) }
/// ```
pub async fn call(
    function: &str,
    request: http::Request<Bytes>,
) -> Result<http::Response<Bytes>, FetchError> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{function}.{INTERNAL_DOMAIN}{path}")
        .parse()
        .map_err(|e| FetchError::Invalid(format!("function `{function}`: {e}")))?;
    send(http::Request::from_parts(parts, body)).await
}

/// The domain under which wisp functions call each other in-process.
pub const INTERNAL_DOMAIN: &str = "wisp.internal";

/// Where `uri` goes: whether it is `https`, its authority, and its path
/// and query; refused unless it is an http:// or https:// URL naming a host.
pub(crate) fn destination(uri: &http::Uri) -> Result<(bool, &str, &str), FetchError> {
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(FetchError::Invalid(format!(
                "`{uri}` is not an http:// or https:// URL"
            )));
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| FetchError::Invalid(format!("`{uri}` names no host")))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok((https, authority.as_str(), path))
}

/// Sends `request` and reads the whole response.
pub async fn send(request: http::Request<Bytes>) -> Result<http::Response<Bytes>, FetchError> {
    #[cfg(feature = "wasi-0-3")]
    if let Some(send) = crate::v3::client() {
        return send(request).await;
    }
    let (parts, body) = request.into_parts();
    let (https, authority, path) = crate::fetch::destination(&parts.uri)?;
    let scheme = if https { Scheme::Https } else { Scheme::Http };
    let headers = Fields::new();
    for (name, value) in &parts.headers {
        headers
            .append(name.as_str(), value.as_bytes())
            .map_err(|e| FetchError::Invalid(format!("header `{name}`: {e:?}")))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    let method = match parts.method.as_str() {
        "GET" => WasiMethod::Get,
        "HEAD" => WasiMethod::Head,
        "POST" => WasiMethod::Post,
        "PUT" => WasiMethod::Put,
        "DELETE" => WasiMethod::Delete,
        "PATCH" => WasiMethod::Patch,
        "OPTIONS" => WasiMethod::Options,
        other => WasiMethod::Other(other.to_owned()),
    };
    let invalid =
        |what: &str| FetchError::Invalid(format!("the host refused the request's {what}"));
    outgoing
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;
    let outgoing_body = outgoing.body().map_err(|()| invalid("body"))?;
    let pending = outgoing_handler::handle(outgoing, None)?;
    {
        let stream = outgoing_body.write().map_err(|()| invalid("body"))?;
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // The request failed; its future below says why.
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing_body, None);
    AsyncPollable::new(pending.subscribe()).wait_for().await;
    let incoming = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(code.into()),
        Some(Err(())) | None => return Err(FetchError::Failed("no response".into())),
    };
    let mut response = http::Response::builder().status(incoming.status());
    for (name, value) in incoming.headers().entries() {
        response = response.header(name, value);
    }
    let mut bytes = Vec::new();
    if let Ok(body) = incoming.consume()
        && let Ok(stream) = body.stream()
    {
        while let Ok(chunk) = stream.blocking_read(64 << 10) {
            bytes.extend_from_slice(&chunk);
        }
    }
    response
        .body(Bytes::from(bytes))
        .map_err(|e| FetchError::Failed(format!("invalid response: {e}")))
}
