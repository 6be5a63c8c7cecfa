//! WebSockets with one fresh sandbox per batch of events: the host holds
//! each connection, and calls its function over Pushpin's
//! WebSocket-over-HTTP protocol, so nothing of the function outlives one
//! call.
//!
//! A function opts in with its `websocket` setting. A WebSocket handshake
//! on its route (HTTP/1.1 `GET` with `Upgrade: websocket`) is checked —
//! the version, the key, its `Origin` against `websocket-origins`, the
//! host's `--max-websockets` and the function's
//! `websocket-max-connections` — and becomes the first call: a `POST` of
//! `OPEN` with the client's headers (less any `Meta-*` or `Grip-*` a
//! client sent: a connection's state is the host's word) and a
//! `Connection-Id`. The function accepts with `200`, content type
//! `application/websocket-events` and `OPEN` first (its other headers
//! join the `101`); any other status reaches the client as the function
//! wrote it (a `401` refuses the connection). From then on [`session`]
//! holds the connection and [`call`] makes each call.

mod call;
mod hold;
mod session;
mod signature;

use crate::channels::{Channels, grip};
use crate::error::json_error;
use crate::observe::metrics::WebSocketSeries;
use crate::registry::{Audience, FunctionEntry};
use crate::request::Dispatcher;
use crate::runtime::body::{ResponseBody, full};
use crate::runtime::buffers::BufferBudget;
use crate::state::SecretStore;
use call::{CallError, Caller};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use session::{Grip, Session};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wisp_spec::headers::{KEEP_ALIVE_INTERVAL_HEADER, SET_META_PREFIX};
use wisp_spec::websocket_events::{Event, Kind};

/// Default cap on WebSocket connections open on a host.
pub const DEFAULT_MAX_WEBSOCKETS: usize = 10_000;
/// Default largest message, either way (64 KiB).
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 10;
/// Default most messages a client may send a second.
pub const DEFAULT_RATE: u32 = 50;
/// Default time a connection may go unheard (pinged at half of it).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);
/// Default cap on held connections from one client address.
pub const DEFAULT_MAX_PER_IP: usize = 256;
/// Default time one batch of messages may take to reach a client.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The host-wide bounds of WebSocket connections.
#[derive(Debug, Clone)]
pub struct WebSocketOptions {
    /// Connections open at once, all functions together.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_ip: usize,
    /// Largest message a client may send or a function answer, in bytes.
    pub max_message: usize,
    /// Messages a second one client may send (a burst of as many); past
    /// it the connection is closed (1008).
    pub rate: u32,
    /// How long a connection may go without a frame from its client
    /// (pinged at half of it) before it is closed (1001).
    pub idle: Duration,
    /// How long one batch of messages may take to reach a client that
    /// stopped reading, before the connection is dropped.
    pub send_timeout: Duration,
}

impl Default for WebSocketOptions {
    fn default() -> Self {
        WebSocketOptions {
            max_connections: DEFAULT_MAX_WEBSOCKETS,
            max_per_ip: DEFAULT_MAX_PER_IP,
            max_message: DEFAULT_MAX_MESSAGE,
            rate: DEFAULT_RATE,
            idle: DEFAULT_IDLE,
            send_timeout: DEFAULT_SEND_TIMEOUT,
        }
    }
}

impl WebSocketOptions {
    /// The socket's own bounds: messages and frames within the limit, and
    /// small buffers, so an idle connection costs little (a larger message
    /// takes more reads, each of at most 1 KiB more).
    fn socket_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(1 << 10)
            .write_buffer_size(0)
            .max_write_buffer_size(call::MAX_ANSWER_BYTES * 2)
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message))
    }
}

/// Connections open, host-wide and by function.
#[derive(Default)]
struct Open {
    by_function: HashMap<String, u32>,
    by_ip: HashMap<IpAddr, u32>,
    total: usize,
}

/// A connection's place under the caps, given back when dropped.
pub(crate) struct Held {
    open: Arc<Mutex<Open>>,
    function: String,
    /// The client's address, when the request came from a listener.
    ip: Option<IpAddr>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total -= 1;
        release(&mut open.by_function, &self.function);
        if let Some(ip) = &self.ip {
            release(&mut open.by_ip, ip);
        }
    }
}

/// One place fewer under `key`'s count (gone at zero).
fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

fn lock(open: &Mutex<Open>) -> std::sync::MutexGuard<'_, Open> {
    open.lock().unwrap_or_else(|p| p.into_inner())
}

/// The WebSocket gateway: takes handshakes and holds connections.
pub(crate) struct Gateway {
    dispatcher: Arc<Dispatcher>,
    /// The host's budget for bytes held in memory: messages waiting for
    /// their call, and answers being read, are charged to it.
    buffers: Arc<BufferBudget>,
    options: Arc<WebSocketOptions>,
    series: WebSocketSeries,
    open: Arc<Mutex<Open>>,
    /// Who listens on which channel, on this host.
    channels: Arc<Channels>,
    /// Where a function's `grip-key` (its calls' signing key) is kept.
    secrets: Arc<SecretStore>,
    /// Turned true (or dropped with the host) to close every connection
    /// with 1001.
    shutdown: watch::Sender<bool>,
}

impl Gateway {
    pub(crate) fn new(
        dispatcher: Arc<Dispatcher>,
        buffers: Arc<BufferBudget>,
        channels: Arc<Channels>,
        secrets: Arc<SecretStore>,
        options: WebSocketOptions,
        series: WebSocketSeries,
    ) -> Gateway {
        Gateway {
            dispatcher,
            buffers,
            options: Arc::new(options),
            series,
            open: Arc::default(),
            channels,
            secrets,
            shutdown: watch::Sender::new(false),
        }
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        lock(&self.open).total
    }

    /// Closes every connection with 1001 and waits (up to `grace`) until
    /// they are gone; new handshakes are refused from now on.
    pub(crate) async fn close_all(&self, grace: Duration) {
        self.shutdown.send_replace(true);
        let deadline = tokio::time::Instant::now() + grace;
        while self.open() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes a WebSocket handshake on `entry`'s route, when its function
    /// takes WebSockets; else hands the request back to be served as any
    /// other.
    pub(crate) async fn accept<B>(
        &self,
        entry: &FunctionEntry,
        mut request: http::Request<B>,
    ) -> Result<http::Response<ResponseBody>, http::Request<B>> {
        if !is_upgrade(request.headers()) {
            return Err(request);
        }
        let Ok(function) = entry.choose(request.headers(), Audience::Public) else {
            return Err(request);
        };
        let settings = &function.settings.websocket;
        if !settings.enabled {
            return Err(request);
        }
        if let Err(refusal) = check_handshake(&request, &settings.origins) {
            return Ok(*refusal);
        }
        if *self.shutdown.borrow() {
            return Ok(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "websocket-limit",
                "the host is shutting down",
            ));
        }
        let Some(upgrade) = request
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>()
        else {
            return Ok(refuse(
                StatusCode::BAD_REQUEST,
                "bad-handshake",
                "this connection cannot be upgraded to a WebSocket (HTTP/1.1 only)",
            ));
        };
        let name = entry.record.name.clone();
        let ip = client_ip(&request);
        let held = match self.hold_place(&name, settings.max_connections, ip) {
            Ok(held) => held,
            Err(refusal) => return Ok(*refusal),
        };
        let replayed = call::replayed(request.headers());
        let replayed_bytes: usize = replayed
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        if replayed_bytes > call::MAX_REPLAYED_BYTES {
            return Ok(refuse(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "bad-handshake",
                &format!(
                    "a WebSocket handshake's headers are kept for the connection's life: at most {} bytes",
                    call::MAX_REPLAYED_BYTES
                ),
            ));
        }
        let key = request.headers()[header::SEC_WEBSOCKET_KEY].clone();
        let mut caller = Caller {
            dispatcher: self.dispatcher.clone(),
            buffers: self.buffers.clone(),
            secrets: self.secrets.for_function(&name),
            function: name.clone(),
            version: function.version,
            uri: call::own_uri(request.uri()),
            replayed,
            connection_id: HeaderValue::try_from(format!("{:032x}", fastrand::u128(..)))
                .unwrap_or(HeaderValue::from_static("0")),
            meta: Default::default(),
            max_message: self.options.max_message,
        };
        let answer = match caller.call(&[Event::bare(Kind::Open)]).await {
            Ok(answer) if answer.events.first().map(|e| e.kind) == Some(Kind::Open) => answer,
            Ok(_) => {
                return Ok(bad_gateway(
                    &name,
                    "the function's answer to OPEN did not start with OPEN",
                ));
            }
            // The function turned the connection down: the client hears
            // its answer.
            Err(CallError::Status(response)) => return Ok(*response),
            Err(error) => return Ok(bad_gateway(&name, &error.describe())),
        };
        let response = switching(&key, &answer.headers);
        self.series.opened(&name);
        let grip = grip::grip_prefix(&answer.headers).map(|prefix| Grip {
            prefix,
            subscriber: self.channels.subscriber(&name),
            detached: false,
        });
        let session = Session {
            grip,
            caller,
            options: self.options.clone(),
            series: self.series.clone(),
            shutdown: self.shutdown.subscribe(),
            keep_alive: answer.keep_alive,
            held,
        };
        let first = answer.events.into_iter().skip(1).collect();
        tokio::spawn(session.run(upgrade, first));
        Ok(response)
    }

    /// Holds a function's response open on channels when its `Grip-Hold`
    /// asks (see [`hold`]); any other response passes unchanged.
    pub(crate) async fn hold(
        &self,
        function: &str,
        max_connections: u32,
        ip: Option<IpAddr>,
        response: http::Response<ResponseBody>,
    ) -> http::Response<ResponseBody> {
        let Some(asked) = grip::hold(response.headers()) else {
            return response;
        };
        let hold = match asked {
            Ok(hold) => hold,
            Err(why) => return bad_gateway(function, &why),
        };
        let held = match self.hold_place(function, max_connections, ip) {
            Ok(held) => held,
            Err(refusal) => return *refusal,
        };
        let subscriber = self.channels.subscriber(function);
        let shutdown = self.shutdown.subscribe();
        hold::held(hold, response, subscriber, held, shutdown).await
    }

    /// A place under the caps, or the `503` that says which is full.
    fn hold_place(
        &self,
        function: &str,
        max_connections: u32,
        ip: Option<IpAddr>,
    ) -> Result<Held, Box<http::Response<ResponseBody>>> {
        self.take_place(function, max_connections, ip)
            .map_err(|why| {
                let mut response = refuse(StatusCode::SERVICE_UNAVAILABLE, "websocket-limit", &why);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                Box::new(response)
            })
    }

    /// Takes a place for one more connection of `function`, or says which
    /// cap is full.
    fn take_place(
        &self,
        function: &str,
        function_cap: u32,
        ip: Option<IpAddr>,
    ) -> Result<Held, String> {
        let mut open = lock(&self.open);
        if open.total >= self.options.max_connections {
            return Err(format!(
                "this host holds its maximum of {} WebSocket connections",
                self.options.max_connections
            ));
        }
        let per_ip = self.options.max_per_ip;
        if let Some(ip) = ip
            && open
                .by_ip
                .get(&ip)
                .is_some_and(|count| *count as usize >= per_ip)
        {
            return Err(format!(
                "this address holds its maximum of {per_ip} WebSocket connections"
            ));
        }
        let count = open.by_function.entry(function.to_owned()).or_default();
        if *count >= function_cap {
            return Err(format!(
                "`{function}` holds its maximum of {function_cap} WebSocket connections"
            ));
        }
        *count += 1;
        if let Some(ip) = ip {
            *open.by_ip.entry(ip).or_default() += 1;
        }
        open.total += 1;
        Ok(Held {
            open: self.open.clone(),
            function: function.to_owned(),
            ip,
        })
    }
}

/// The address a request came from, when a listener took it.
pub(crate) fn client_ip<B>(request: &http::Request<B>) -> Option<IpAddr> {
    request
        .extensions()
        .get::<crate::runtime::connection::ConnectionInfo>()
        .map(|info| info.remote.ip())
}

/// True when a request asks to become a WebSocket.
fn is_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    };
    has_token(header::UPGRADE, "websocket") && has_token(header::CONNECTION, "upgrade")
}

/// Checks a handshake by RFC 6455 §4.2.1 and the function's origins; the
/// refusal otherwise.
fn check_handshake<B>(
    request: &http::Request<B>,
    origins: &[String],
) -> Result<(), Box<http::Response<ResponseBody>>> {
    let bad = |why: &str| Box::new(refuse(StatusCode::BAD_REQUEST, "bad-handshake", why));
    if request.method() != http::Method::GET || request.version() != http::Version::HTTP_11 {
        return Err(bad("a WebSocket handshake is an HTTP/1.1 GET"));
    }
    let headers = request.headers();
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v != "13")
    {
        let mut response = refuse(
            StatusCode::UPGRADE_REQUIRED,
            "bad-handshake",
            "only WebSocket version 13 is spoken",
        );
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(Box::new(response));
    }
    let key_ok = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .is_some_and(|key| key.len() == 24 && key.as_bytes().ends_with(b"=="));
    if !key_ok {
        return Err(bad("`Sec-WebSocket-Key` must be 16 bytes in base64"));
    }
    if !origins.is_empty() {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_end_matches('/').to_ascii_lowercase());
        if !origin.as_ref().is_some_and(|o| origins.contains(o)) {
            return Err(Box::new(refuse(
                StatusCode::FORBIDDEN,
                "websocket-origin",
                "this WebSocket's `Origin` is not one the function accepts",
            )));
        }
    }
    Ok(())
}

/// The `101` that completes a handshake: the function's headers from its
/// answer to `OPEN`, less what is the host's.
fn switching(key: &HeaderValue, answer: &HeaderMap) -> http::Response<ResponseBody> {
    const NOT_PASSED: [header::HeaderName; 6] = [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::UPGRADE,
        header::SEC_WEBSOCKET_EXTENSIONS,
    ];
    let mut response = http::Response::new(full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    for (name, value) in answer {
        if NOT_PASSED.contains(name)
            || *name == KEEP_ALIVE_INTERVAL_HEADER
            || name.as_str().starts_with(SET_META_PREFIX)
            || name.as_str().starts_with(wisp_spec::headers::GRIP_PREFIX)
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if let Ok(accept) = HeaderValue::try_from(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

fn refuse(status: StatusCode, kind: &str, why: &str) -> http::Response<ResponseBody> {
    json_error(status, kind, why, None).map(full)
}

/// A handshake the function answered with something other than events.
fn bad_gateway(function: &str, why: &str) -> http::Response<ResponseBody> {
    tracing::warn!(function = %function, error = %why, "a WebSocket function did not accept a connection");
    refuse(
        StatusCode::BAD_GATEWAY,
        "bad-websocket-answer",
        &format!("the function did not accept the WebSocket: {why}"),
    )
}
