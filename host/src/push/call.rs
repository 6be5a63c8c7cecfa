//! One call of a WebSocket connection to its function: a `POST` of a batch
//! of events (Pushpin's WebSocket-over-HTTP), run like any request — a
//! fresh sandbox, its limits, metering and access line — with trigger
//! `websocket`; its answer is the events to send back, and the
//! connection's state (`Set-Meta-*`, `Keep-Alive-Interval`).

use crate::registry::Audience;
use crate::request::Dispatcher;
use crate::runtime::body::ResponseBody;
use crate::runtime::buffers::{BufferBudget, BufferCharge};
use crate::state::FunctionSecrets;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::Duration;
use wisp_spec::api::Trigger;
use wisp_spec::headers::{
    CONNECTION_ID_HEADER, HOST_OWNED_HEADERS, KEEP_ALIVE_INTERVAL_HEADER, META_PREFIX,
    SET_META_PREFIX, VERSION_HEADER, WEBSOCKET_EVENTS, is_gateway_header, is_websocket_events,
};
use wisp_spec::websocket_events::{self, Event};

/// Most fields of state one connection keeps (`Meta-*`).
const MAX_META_FIELDS: usize = 32;
/// Most bytes of one state field's value.
const MAX_META_VALUE: usize = 1024;
/// Most bytes of one answer's events, all told.
pub(crate) const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Most events in one answer.
const MAX_ANSWER_EVENTS: usize = 1024;
/// Most bytes of the handshake's headers a connection keeps (they are
/// replayed on every call).
pub(crate) const MAX_REPLAYED_BYTES: usize = 16 << 10;
/// The shortest keep-alive interval a function may ask for.
const MIN_KEEP_ALIVE: Duration = Duration::from_secs(1);
/// The longest: a day.
const MAX_KEEP_ALIVE: Duration = Duration::from_secs(86_400);

/// A connection's side of its calls: whom it calls, with what, and the
/// state the function keeps on it.
pub(crate) struct Caller {
    pub(crate) dispatcher: Arc<Dispatcher>,
    /// Where the bytes of an answer being read are charged.
    pub(crate) buffers: Arc<BufferBudget>,
    /// The function's secrets: its `grip-key` signs each call.
    pub(crate) secrets: Arc<FunctionSecrets>,
    /// The function it calls.
    pub(crate) function: String,
    /// The version that accepted the connection: every call goes to it
    /// (a redeploy or a traffic split moves new connections, not this
    /// one), for as long as the function keeps it.
    pub(crate) version: u32,
    /// The handshake's path and query: every call goes to it.
    pub(crate) uri: http::Uri,
    /// The handshake's headers, replayed on every call (the protocol says
    /// so: the function sees the client's cookies every time).
    pub(crate) replayed: HeaderMap,
    pub(crate) connection_id: HeaderValue,
    /// The function's state on this connection, `Meta-*` on each call.
    pub(crate) meta: HeaderMap,
    /// Largest event content the function may send.
    pub(crate) max_message: usize,
}

/// What a call answered.
pub(crate) struct Answer {
    pub(crate) events: Vec<Event>,
    /// Headers of the answer (the first one's become the handshake's).
    pub(crate) headers: HeaderMap,
    /// How long the connection may go quiet before the host calls again
    /// with no events.
    pub(crate) keep_alive: Option<Duration>,
}

/// Why a call gave no events.
pub(crate) enum CallError {
    /// The function answered something other than 200: the answer, kept
    /// so a refused handshake reaches its client as the function wrote it.
    Status(Box<http::Response<ResponseBody>>),
    /// The answer was not events (its content type, its body, or the
    /// events themselves): what was wrong.
    Protocol(String),
}

impl CallError {
    /// What went wrong, for the log.
    pub(crate) fn describe(&self) -> String {
        match self {
            CallError::Status(response) => format!("the function answered {}", response.status()),
            CallError::Protocol(reason) => reason.clone(),
        }
    }
}

impl Caller {
    /// Calls the function with `events` (none: a keep-alive).
    pub(crate) async fn call(&mut self, events: &[Event]) -> Result<Answer, CallError> {
        let mut request =
            http::Request::new(Full::new(Bytes::from(websocket_events::encode(events))));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.clone_from(&self.replayed);
        let events_type = HeaderValue::from_static(WEBSOCKET_EVENTS);
        headers.insert(header::CONTENT_TYPE, events_type.clone());
        headers.insert(header::ACCEPT, events_type);
        headers.insert(CONNECTION_ID_HEADER, self.connection_id.clone());
        headers.insert(VERSION_HEADER, HeaderValue::from(self.version));
        // The gateway speaks GRIP: a function may turn it on in its
        // answer to `OPEN`.
        headers.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static("grip"),
        );
        for (name, value) in &self.meta {
            headers.insert(name, value.clone());
        }
        if let Ok(Some(key)) = self.secrets.get(super::signature::KEY_SECRET)
            && let Some(signature) = super::signature::sign(&key)
        {
            headers.insert("grip-sig", signature);
        }
        let response = self
            .dispatcher
            // The host's own call: it may pin any version the function
            // keeps, as the operator may.
            .handle_named(
                &self.function,
                request,
                Audience::Operator,
                Trigger::WebSocket,
            )
            .await;
        if response.status() != StatusCode::OK {
            return Err(CallError::Status(Box::new(response)));
        }
        if !is_websocket_events(response.headers()) {
            return Err(CallError::Protocol(format!(
                "the function answered 200 without `Content-Type: {WEBSOCKET_EVENTS}`"
            )));
        }
        let (parts, body) = response.into_parts();
        let body = read_answer(body, self.buffers.charge()).await?;
        let events = websocket_events::parse_at_most(&body, self.max_message, MAX_ANSWER_EVENTS)
            .map_err(|e| CallError::Protocol(format!("the function's events: {e}")))?;
        self.keep_state(&parts.headers)?;
        Ok(Answer {
            events,
            keep_alive: keep_alive(&parts.headers),
            headers: parts.headers,
        })
    }

    /// Applies the answer's `Set-Meta-*` to the connection's state (an
    /// empty value deletes a field), within its bounds.
    fn keep_state(&mut self, headers: &HeaderMap) -> Result<(), CallError> {
        for (name, value) in headers {
            let Some(field) = name.as_str().strip_prefix(SET_META_PREFIX) else {
                continue;
            };
            let meta = HeaderName::try_from(format!("{META_PREFIX}{field}"))
                .map_err(|_| CallError::Protocol(format!("a bad state name `{name}`")))?;
            if value.is_empty() {
                self.meta.remove(&meta);
                continue;
            }
            if value.len() > MAX_META_VALUE {
                return Err(CallError::Protocol(format!(
                    "`{name}` is over {MAX_META_VALUE} bytes"
                )));
            }
            self.meta.insert(meta, value.clone());
            if self.meta.len() > MAX_META_FIELDS {
                return Err(CallError::Protocol(format!(
                    "more than {MAX_META_FIELDS} `Set-Meta-*` fields on one connection"
                )));
            }
        }
        Ok(())
    }
}

/// Reads an answer's body, at most [`MAX_ANSWER_BYTES`], its bytes charged
/// to `charge` while it is read.
async fn read_answer(
    mut body: ResponseBody,
    mut charge: BufferCharge,
) -> Result<Vec<u8>, CallError> {
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| CallError::Protocol(format!("reading the function's events: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if read.len() + data.len() > MAX_ANSWER_BYTES {
                return Err(CallError::Protocol(format!(
                    "the function answered more than {MAX_ANSWER_BYTES} bytes of events"
                )));
            }
            charge
                .grow(data.len() as u64)
                .map_err(|e| CallError::Protocol(e.to_string()))?;
            read.extend_from_slice(data);
        }
    }
    Ok(read)
}

/// The `Keep-Alive-Interval` an answer asks for, in whole seconds, at
/// least [`MIN_KEEP_ALIVE`].
fn keep_alive(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(KEEP_ALIVE_INTERVAL_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).clamp(MIN_KEEP_ALIVE, MAX_KEEP_ALIVE))
}

/// The handshake's headers as every call replays them: without what
/// belongs to the WebSocket handshake or the connection, and without
/// anything only the gateway may set (a client's `Meta-*` would be a
/// forged state).
pub(crate) fn replayed(handshake: &HeaderMap) -> HeaderMap {
    const HANDSHAKE: [&str; 11] = [
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-accept",
        "content-length",
        "content-type",
        "transfer-encoding",
        "accept",
        "keep-alive",
    ];
    // Copied, not cloned: a clone would share, and so keep alive for the
    // connection's whole life, the server's read buffer it was parsed
    // from (kilobytes an idle connection need not hold).
    let mut headers = HeaderMap::with_capacity(handshake.len());
    for (name, value) in handshake {
        // Nor what only the host says (a cron trigger, a chain's depth): a
        // client's copy would reach every call.
        if HANDSHAKE.contains(&name.as_str())
            || is_gateway_header(name)
            || HOST_OWNED_HEADERS.contains(name)
        {
            continue;
        }
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.append(
                HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or(name.clone()),
                value,
            );
        }
    }
    headers
}

/// The handshake's path and query, copied out of the server's read buffer
/// (see [`replayed`]).
pub(crate) fn own_uri(uri: &http::Uri) -> http::Uri {
    uri.path_and_query()
        .and_then(|p| http::Uri::try_from(p.as_str()).ok())
        .unwrap_or_else(|| http::Uri::from_static("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_meta_and_the_handshake_are_not_replayed() {
        let mut handshake = HeaderMap::new();
        for (name, value) in [
            ("cookie", "a=1"),
            ("meta-user", "mallory"),
            ("connection-id", "forged"),
            ("grip-sig", "forged"),
            ("x-wisp-trigger", "cron"),
            ("x-wisp-chain-depth", "4294967295"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "chat"),
            ("upgrade", "websocket"),
        ] {
            handshake.insert(name, HeaderValue::from_static(value));
        }
        let kept = replayed(&handshake);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(kept.contains_key("cookie") && kept.contains_key("sec-websocket-protocol"));
    }

    #[test]
    fn keep_alive_is_whole_seconds_with_a_floor() {
        let mut headers = HeaderMap::new();
        assert_eq!(keep_alive(&headers), None);
        headers.insert(KEEP_ALIVE_INTERVAL_HEADER, HeaderValue::from_static("30"));
        assert_eq!(keep_alive(&headers), Some(Duration::from_secs(30)));
        headers.insert(KEEP_ALIVE_INTERVAL_HEADER, HeaderValue::from_static("0"));
        assert_eq!(keep_alive(&headers), Some(MIN_KEEP_ALIVE));
        headers.insert(KEEP_ALIVE_INTERVAL_HEADER, HeaderValue::from_static("soon"));
        assert_eq!(keep_alive(&headers), None);
        headers.insert(
            KEEP_ALIVE_INTERVAL_HEADER,
            HeaderValue::from_static("18446744073709551615"),
        );
        assert_eq!(keep_alive(&headers), Some(MAX_KEEP_ALIVE));
    }
}
