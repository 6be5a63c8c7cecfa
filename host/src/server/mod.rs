//! The HTTP front door: accept connections, speak HTTP/1.1 and HTTP/2
//! (including cleartext h2c), hand each request to a handler, and shut down
//! gracefully.
//!
//! One accept loop serves both the public listener (requests to functions)
//! and the admin listener (the admin API); they differ only in the handler
//! and the options. Every connection is held to bounds, whatever its
//! protocol, so a hostile or broken client cannot keep resources forever:
//!
//! * admission: at most `max_connections` per listener (and never more than
//!   half the process's open-file limit) and `max_connections_per_ip` from
//!   one address ([`admission`]);
//! * the request head: `max_header_bytes`, sent within `header_timeout`;
//! * a connection with no request open is closed `header_timeout` after
//!   accept if it never sent one, and `idle_timeout` after its last response
//!   otherwise, HTTP/2 included ([`activity`]);
//! * a response the client stops reading is cut off after `write_timeout`;
//! * at shutdown, idle connections close at once and busy ones get
//!   `shutdown_grace` to finish.
//!
//! Request bodies are bounded on the request path (see `request::pacing`).

mod activity;
mod admission;

use crate::runtime::body::ResponseBody;
use crate::runtime::connection::ConnectionInfo;
use activity::{Activity, Timeouts, TrackedBody, Verdict};
use admission::{Admissions, Refusal};
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Default time a client has to send its request headers, and to send a
/// first request on a new connection.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on the request head (request line and headers), in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 << 10;
/// Default time in-flight requests get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Default time a connection with no request open is kept after its last
/// response (HTTP/1 keep-alive and HTTP/2 alike).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a response may wait for the client to read it before the
/// connection is closed.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on a listener's open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default cap on a listener's open connections from one IP address.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;

/// HTTP/2 flow-control windows and send buffer: what one connection may
/// have in flight, so memory per connection stays bounded however many
/// streams it opens.
const H2_CONNECTION_WINDOW_BYTES: u32 = 256 << 10;
const H2_STREAM_WINDOW_BYTES: u32 = 128 << 10;
const H2_SEND_BUFFER_BYTES: usize = 128 << 10;
const H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// Connection-level settings of a listener. `Default` is the production
/// default for the public listener.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Time a client has to send its request headers, and to send its first
    /// request after connecting.
    pub header_timeout: Duration,
    /// Cap on the request head, in bytes.
    pub max_header_bytes: usize,
    /// Time in-flight requests get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Time a connection with no request open is kept.
    pub idle_timeout: Duration,
    /// Time a response may wait for the client to read it.
    pub write_timeout: Duration,
    /// Open connections at most; never more than half the process's
    /// open-file limit (`RLIMIT_NOFILE`) whatever this says.
    pub max_connections: usize,
    /// Open connections at most from one client IP address.
    pub max_connections_per_ip: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
        }
    }
}

impl ServerOptions {
    fn timeouts(&self) -> Timeouts {
        Timeouts {
            first_request: self.header_timeout,
            idle: self.idle_timeout,
            write: self.write_timeout,
        }
    }
}

/// Turns a request into a response; every error is already a response.
pub type Handler = Arc<
    dyn Fn(http::Request<Incoming>) -> BoxFuture<'static, http::Response<ResponseBody>>
        + Send
        + Sync,
>;

/// Serves `listener` with `handler` until `shutdown` turns true, then drains.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    options: ServerOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(options.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(options.idle_timeout))
        .keep_alive_timeout(options.write_timeout)
        .initial_connection_window_size(H2_CONNECTION_WINDOW_BYTES)
        .initial_stream_window_size(H2_STREAM_WINDOW_BYTES)
        .max_send_buf_size(H2_SEND_BUFFER_BYTES)
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let admissions = Admissions::new(
        admission::file_limited(options.max_connections),
        options.max_connections_per_ip,
    );
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        while connections.try_join_next().is_some() {}
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Typically out of file descriptors: back off, keep serving.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admission = match admissions.admit(remote.ip()) {
            Ok(admission) => admission,
            Err(refusal) => {
                let why = match refusal {
                    Refusal::Total => "the listener holds its maximum of connections",
                    Refusal::PerIp => "this address holds its maximum of connections",
                };
                tracing::debug!(peer = %remote, "connection refused: {why}");
                continue;
            }
        };
        let connection = Connection {
            builder: builder.clone(),
            handler: handler.clone(),
            timeouts: options.timeouts(),
            shutdown: shutdown.clone(),
        };
        connections.spawn(async move {
            connection.run(stream).await;
            drop(admission);
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("requests still running after the shutdown grace period; closing them");
        connections.abort_all();
    }
}

/// One accepted connection and what it needs.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    handler: Handler,
    timeouts: Timeouts,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    /// Serves the connection until it ends or one of its bounds closes it.
    async fn run(mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let Ok(remote) = stream.peer_addr() else {
            return;
        };
        let info = ConnectionInfo {
            remote,
            local: stream.local_addr().unwrap_or(remote),
        };
        let activity = Activity::new();
        let handler = self.handler.clone();
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            let open = requests.request_started();
            request.extensions_mut().insert(info);
            let response = handler(request);
            async move {
                let response = response.await;
                Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, open)))
            }
        });
        let conn = self
            .builder
            // Upgrades (a WebSocket handshake) hand the connection to
            // whoever took the request's `OnUpgrade`.
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        tokio::pin!(conn);
        let tick = [
            self.timeouts.first_request,
            self.timeouts.idle,
            self.timeouts.write,
        ]
        .into_iter()
        .min()
        .unwrap_or(Duration::from_secs(1))
        .div_f32(4.0)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining = false;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, peer = %remote, "connection ended with an error");
                    }
                    return;
                }
                _ = self.shutdown.wait_for(|stop| *stop), if !draining => {
                    draining = true;
                    if activity.is_idle() {
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                }
                _ = ticker.tick() => {
                    if draining && activity.is_idle() {
                        return;
                    }
                    match activity.verdict(&self.timeouts) {
                        Verdict::Keep => {}
                        Verdict::NeverUsed | Verdict::Idle => return,
                        Verdict::Stalled => {
                            tracing::info!(peer = %remote, "closing a connection whose client stopped reading its response");
                            return;
                        }
                    }
                }
            }
        }
    }
}
