//! The admin API: deploy, inspect, release and observe functions — JSON,
//! versioned under `/v1`, on its own listener.
//!
//! | method | path | does |
//! | --- | --- | --- |
//! | `PUT` | `/v1/functions/{name}?route=/x&…` | deploy the body (raw `.wasm`) as a new version (`no-traffic=true`: without traffic) |
//! | `GET` | `/v1/functions` | list functions |
//! | `GET` | `/v1/functions/{name}` | one function, its versions and effective settings |
//! | `DELETE` | `/v1/functions/{name}` | remove a function |
//! | `GET` | `/v1/functions/{name}/versions` | its versions |
//! | `PUT` | `/v1/functions/{name}/traffic` | split traffic: `[{"version": 3, "weight": 90}, …]` |
//! | `POST` | `/v1/functions/{name}/rollback` | restore the previous traffic split |
//! | `GET` | `/v1/functions/{name}/logs?since=5m&limit=N&follow=true` | guest logs, one JSON object per line |
//! | `GET` | `/v1/functions/{name}/usage` | cumulative usage (wall, CPU, fuel, memory-time) |
//! | any | `/v1/functions/{name}/invoke/{path}` | run the function on a request for `/{path}` |
//! | `GET` | `/healthz` | liveness (no token needed) |
//! | `GET` | `/metrics` | Prometheus text |
//!
//! When the host has an admin token, every request but `/healthz` must carry
//! `Authorization: Bearer <token>`; the comparison takes constant time.

use crate::body::{ResponseBody, full};
use crate::deploy::DeployOptions;
use crate::error::{DeployError, json_error};
use crate::host::Host;
use crate::logs::LogLine;
use crate::record::TrafficShare;
use crate::server::Handler;
use crate::settings::RawSettings;
use crate::units;
use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::Incoming;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest JSON body the admin API reads (traffic splits and the like).
const MAX_JSON_BODY_BYTES: usize = 64 << 10;

/// Log lines returned when `limit` is not given.
const DEFAULT_LOG_LIMIT: usize = 1000;

/// The admin API's request handler.
pub fn handler(host: Host, token: Option<String>) -> Handler {
    let token: Option<Arc<[u8]>> = token.map(|t| Arc::from(t.into_bytes()));
    Arc::new(move |request| {
        let host = host.clone();
        let token = token.clone();
        Box::pin(async move {
            match refusal(&request, token.as_deref()) {
                None => route(&host, request).await,
                Some(response) => response.map(full),
            }
        })
    })
}

/// The 401 for a request without the right token; `None` lets it through.
fn refusal(
    request: &http::Request<Incoming>,
    token: Option<&[u8]>,
) -> Option<http::Response<Bytes>> {
    let token = token?;
    if request.uri().path() == "/healthz" {
        return None;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    if presented.is_some_and(|p| constant_time_eq(p, token)) {
        return None;
    }
    let mut response = json_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong admin token: send `Authorization: Bearer <token>` (the CLI reads `--token` or `WISP_ADMIN_TOKEN`)",
        None,
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    Some(response)
}

/// Compares in time that depends only on the lengths, not on where the
/// inputs first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn route(host: &Host, request: http::Request<Incoming>) -> http::Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method().clone();
    let result = match (&method, segments.as_slice()) {
        (_, ["v1", "functions", name, "invoke", ..]) => return invoke(host, name, request).await,
        (&Method::GET, ["v1", "functions", name, "logs"]) => {
            return logs(host, name, request.uri().query());
        }
        (&Method::GET, ["healthz"]) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "status": "ok",
                "functions": host.functions().len(),
                "compilations": host.metrics().compilations(),
            }),
        )),
        (&Method::GET, ["metrics"]) => {
            let mut response = http::Response::new(Bytes::from(host.metrics().encode()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            Ok(response)
        }
        (&Method::GET, ["v1", "functions"]) => Ok(json(StatusCode::OK, &host.functions())),
        (&Method::GET, ["v1", "functions", name]) => host
            .function(name)
            .map(|info| json(StatusCode::OK, &info))
            .ok_or_else(|| DeployError::UnknownFunction((*name).to_owned())),
        (&Method::PUT, ["v1", "functions", name]) => {
            let name = (*name).to_owned();
            deploy(host, &name, request).await
        }
        (&Method::DELETE, ["v1", "functions", name]) => host
            .remove(name)
            .await
            .map(|()| json(StatusCode::OK, &serde_json::json!({ "removed": name }))),
        (&Method::GET, ["v1", "functions", name, "versions"]) => host
            .function(name)
            .map(|info| json(StatusCode::OK, &info.versions))
            .ok_or_else(|| DeployError::UnknownFunction((*name).to_owned())),
        (&Method::PUT, ["v1", "functions", name, "traffic"]) => {
            let name = (*name).to_owned();
            match read_json::<Vec<TrafficShare>>(request).await {
                Ok(shares) => host
                    .set_traffic(&name, shares)
                    .await
                    .map(|info| json(StatusCode::OK, &info)),
                Err(e) => Err(e),
            }
        }
        (&Method::POST, ["v1", "functions", name, "rollback"]) => host
            .rollback(name)
            .await
            .map(|info| json(StatusCode::OK, &info)),
        (&Method::GET, ["v1", "functions", name, "usage"]) => host
            .usage(name)
            .map(|usage| {
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "name": name, "usage": usage }),
                )
            })
            .ok_or_else(|| DeployError::UnknownFunction((*name).to_owned())),
        (
            _,
            ["healthz" | "metrics"]
            | ["v1", "functions"]
            | ["v1", "functions", _]
            | [
                "v1",
                "functions",
                _,
                "versions" | "traffic" | "rollback" | "logs" | "usage",
            ],
        ) => {
            return json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                &format!("`{method}` is not supported on `{path}`"),
                None,
            )
            .map(full);
        }
        _ => {
            return json_error(
                StatusCode::NOT_FOUND,
                "not-found",
                &format!("no admin endpoint `{path}`; see `/v1/functions`"),
                None,
            )
            .map(full);
        }
    };
    result.unwrap_or_else(|e| e.to_response()).map(full)
}

/// Runs function `name` on the request, with the path after `/invoke`.
async fn invoke(
    host: &Host,
    name: &str,
    request: http::Request<Incoming>,
) -> http::Response<ResponseBody> {
    let prefix = format!("/v1/functions/{name}/invoke");
    let (mut parts, body) = request.into_parts();
    let rest = parts.uri.path().strip_prefix(&prefix).unwrap_or("");
    let rest = if rest.is_empty() { "/" } else { rest };
    let target = match parts.uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    match target.parse() {
        Ok(uri) => parts.uri = uri,
        Err(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                &format!("invalid path `{target}`"),
                None,
            )
            .map(full);
        }
    }
    parts.headers.remove(header::AUTHORIZATION);
    host.handle_with(name, http::Request::from_parts(parts, body))
        .await
}

/// Guest log lines as JSON lines; with `follow=true` the response stays open
/// and streams new lines as they come.
fn logs(host: &Host, name: &str, query: Option<&str>) -> http::Response<ResponseBody> {
    let Some(book) = host.logs(name) else {
        return DeployError::UnknownFunction(name.to_owned())
            .to_response()
            .map(full);
    };
    let mut since_ms = 0;
    let mut limit = DEFAULT_LOG_LIMIT;
    let mut follow = false;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let bad = |expected: &str| {
            DeployError::BadRequest(format!(
                "invalid `{key}` value `{value}`: expected {expected}"
            ))
            .to_response()
            .map(full)
        };
        match key.as_ref() {
            "since" => match units::parse_duration(&value) {
                Some(ago) => {
                    since_ms =
                        now_ms().saturating_sub(u64::try_from(ago.as_millis()).unwrap_or(u64::MAX))
                }
                None => return bad(units::DURATION_FORMS),
            },
            "limit" => match value.parse() {
                Ok(n) => limit = n,
                Err(_) => return bad("a whole number"),
            },
            "follow" => follow = value == "true" || value == "1",
            _ => return bad("one of `since`, `limit`, `follow`"),
        }
    }
    // Subscribe before reading, so no line falls between the two.
    let receiver = follow.then(|| book.follow());
    let page = book.read(since_ms, limit);
    let mut text = String::new();
    for line in &page.lines {
        text.push_str(&json_line(line));
    }
    if page.dropped > 0 {
        text.push_str(&format!(
            "{}\n",
            serde_json::json!({ "dropped": page.dropped })
        ));
    }
    let last_seq = page.lines.last().map_or(0, |l| l.seq);
    let body = match receiver {
        None => full(text),
        Some(receiver) => {
            let head = futures_util::stream::once(async move {
                Ok::<_, crate::body::BoxError>(http_body::Frame::data(Bytes::from(text)))
            });
            let tail = futures_util::stream::unfold(receiver, move |mut receiver| async move {
                loop {
                    match receiver.recv().await {
                        Ok(line) if line.seq <= last_seq => continue,
                        Ok(line) => {
                            return Some((
                                Ok(http_body::Frame::data(Bytes::from(json_line(&line)))),
                                receiver,
                            ));
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                            let note = format!("{}\n", serde_json::json!({ "skipped": skipped }));
                            return Some((Ok(http_body::Frame::data(Bytes::from(note))), receiver));
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
            use futures_util::StreamExt;
            StreamBody::new(head.chain(tail)).boxed_unsync()
        }
    };
    let mut response = http::Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

fn json_line(line: &LogLine) -> String {
    let mut text = serde_json::to_string(line).unwrap_or_default();
    text.push('\n');
    text
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn read_json<T: serde::de::DeserializeOwned>(
    request: http::Request<Incoming>,
) -> Result<T, DeployError> {
    let body = Limited::new(request.into_body(), MAX_JSON_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| DeployError::BadRequest(format!("reading the request body failed: {e}")))?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| DeployError::BadRequest(format!("invalid JSON body: {e}")))
}

/// How much of a rejected upload is read and discarded, and for how long.
const DRAIN_BYTES: usize = 256 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads and discards (up to a bound) the rest of an upload that was
/// rejected as too large, so a client still sending it gets the error
/// response rather than a reset connection.
fn drain_in_background(mut body: Incoming) {
    tokio::spawn(async move {
        let mut left = DRAIN_BYTES;
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            while let Some(Ok(frame)) = body.frame().await {
                let read = frame.data_ref().map_or(0, Bytes::len);
                match left.checked_sub(read) {
                    Some(rest) => left = rest,
                    None => break,
                }
            }
        })
        .await;
    });
}

async fn deploy(
    host: &Host,
    name: &str,
    request: http::Request<Incoming>,
) -> Result<http::Response<Bytes>, DeployError> {
    let query = request.uri().query().unwrap_or("");
    let take_traffic =
        !form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "no-traffic" && v != "false");
    let settings_query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k != "no-traffic"))
        .finish();
    let raw = RawSettings::from_query(&settings_query)?;
    let limit = host.config().max_upload_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut upload = request.into_body();
    if declared.is_some_and(|n| n > limit) {
        drain_in_background(upload);
        return Err(DeployError::TooLarge { limit });
    }
    let collected = Limited::new(&mut upload, usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
        .await;
    let body = match collected {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            drain_in_background(upload);
            return Err(DeployError::TooLarge { limit });
        }
        Err(e) => {
            return Err(DeployError::BadRequest(format!(
                "reading the upload failed: {e}"
            )));
        }
    };
    if body.is_empty() {
        return Err(DeployError::BadRequest(
            "the upload is empty: send the `.wasm` file as the request body".into(),
        ));
    }
    let report = host
        .deploy(name, body, raw, DeployOptions { take_traffic })
        .await?;
    Ok(json(StatusCode::CREATED, &report))
}

fn json(status: StatusCode, value: &impl Serialize) -> http::Response<Bytes> {
    let mut body = serde_json::to_vec_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}").into_bytes());
    body.push(b'\n');
    let mut response = http::Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secrets"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
