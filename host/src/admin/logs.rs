//! `GET /v1/functions/{name}/logs`: a function's guest logs as JSON lines
//! ([`LogEvent`]); with `follow=true` the response stays open and streams new
//! lines as they come.

use crate::error::DeployError;
use crate::host::Host;
use crate::runtime::body::{BoxError, ResponseBody, full};
use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, StreamBody};
use std::time::{SystemTime, UNIX_EPOCH};
use wisp_spec::api::LogEvent;
use wisp_spec::units;

/// Log lines returned when `limit` is not given.
const DEFAULT_LOG_LIMIT: usize = 1000;

/// Guest log lines as JSON lines; with `follow=true` the response stays open
/// and streams new lines as they come.
pub(super) fn logs(host: &Host, name: &str, query: Option<&str>) -> http::Response<ResponseBody> {
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
        text.push_str(&json_line(&LogEvent::Line(line.clone())));
    }
    if page.dropped > 0 {
        text.push_str(&json_line(&LogEvent::Dropped {
            dropped: page.dropped,
        }));
    }
    let last_seq = page.lines.last().map_or(0, |l| l.seq);
    let body = match receiver {
        None => full(text),
        Some(receiver) => {
            let head = futures_util::stream::once(async move {
                Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(text)))
            });
            let tail = futures_util::stream::unfold(receiver, move |mut receiver| async move {
                loop {
                    match receiver.recv().await {
                        Ok(line) if line.seq <= last_seq => continue,
                        Ok(line) => {
                            return Some((
                                Ok(http_body::Frame::data(Bytes::from(json_line(
                                    &LogEvent::Line(line),
                                )))),
                                receiver,
                            ));
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                            let note = json_line(&LogEvent::Skipped { skipped });
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

fn json_line(line: &LogEvent) -> String {
    let mut text = serde_json::to_string(line).unwrap_or_default();
    text.push('\n');
    text
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
