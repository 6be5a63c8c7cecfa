//! One held WebSocket connection: reads its client's messages, calls the
//! function with each batch of events (one call at a time, so events stay
//! in order; what arrives meanwhile waits for the next batch), and sends
//! back what the function answered.
//!
//! Every bound ends the connection with a close code and a reason the
//! client and the metrics see: a message over `--websocket-max-message`
//! (1009), more than `--websocket-rate` messages a second (1008), a
//! function that fails or answers something other than events (1011, and
//! a log line saying why), nothing heard for `--websocket-idle` though
//! pinged (1001), the host's `--max-buffered` budget full with waiting
//! messages (1013), and the host shutting down (1001). A client that stops
//! reading is dropped once a batch has waited `--websocket-send-timeout` to be
//! written: nothing is buffered for it beyond one answer.
//!
//! In GRIP mode (the function's `OPEN` answer carries
//! `Sec-WebSocket-Extensions: grip`), the function's text for the client
//! carries a prefix (`m:` unless it names another), its `c:` messages
//! subscribe and unsubscribe the connection to channels or detach the
//! function, and what is published to those channels reaches the client
//! (a client that falls behind its channels is closed with 1013).

use super::call::{Answer, CallError, Caller};
use super::{Held, WebSocketOptions};
use crate::channels::Subscriber;
use crate::channels::grip::{self, Control, WsMessage};
use crate::channels::registry::QUEUE;
use crate::observe::metrics::WebSocketSeries;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wisp_spec::websocket_events::{Event, Kind};

/// Most bytes of client messages waiting for the next call; past it the
/// host stops reading the client until the call in flight ends.
const MAX_WAITING_BYTES: usize = 1 << 20;

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A connection the function accepted, about to be held.
pub(crate) struct Session {
    pub(crate) caller: Caller,
    pub(crate) options: Arc<WebSocketOptions>,
    pub(crate) series: WebSocketSeries,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) keep_alive: Option<Duration>,
    /// Its place under the connection caps, given back when it ends.
    pub(crate) held: Held,
    /// GRIP mode, when the function turned it on in its answer to `OPEN`.
    pub(crate) grip: Option<Grip>,
}

/// A connection in GRIP mode: the function's text for the client carries
/// `prefix`, its `c:` messages are control, and the channels it
/// subscribed feed the connection.
pub(crate) struct Grip {
    pub(crate) prefix: String,
    pub(crate) subscriber: Subscriber,
    /// The function detached: it is called no more, and the client's
    /// messages are dropped.
    pub(crate) detached: bool,
}

/// How a connection ended: its close (if the host sends one) and the
/// reason the metrics count.
struct Ending {
    close: Option<(CloseCode, String)>,
    reason: &'static str,
}

impl Ending {
    /// What the function should hear of this ending, when it has not
    /// heard (it ended the connection, failed on it, was told by the
    /// client, or the host is shutting down): the close the host sent, or
    /// a `DISCONNECT`.
    fn news(&self) -> Option<Event> {
        if matches!(
            self.reason,
            "client" | "disconnect" | "function" | "failed" | "shutdown"
        ) {
            return None;
        }
        Some(match &self.close {
            Some((code, reason)) => Event::close(u16::from(*code), reason),
            None => Event::bare(Kind::Disconnect),
        })
    }

    fn with(code: CloseCode, text: impl Into<String>, reason: &'static str) -> Ending {
        Ending {
            close: Some((code, text.into())),
            reason,
        }
    }

    fn silent(reason: &'static str) -> Ending {
        Ending {
            close: None,
            reason,
        }
    }
}

/// What to do after sending an answer.
enum Flow {
    Go,
    End(Ending),
}

impl Session {
    /// Holds the connection once the client's upgrade completes, sending
    /// `first` (what the function answered after `OPEN`) at once.
    pub(crate) async fn run(mut self, upgrade: hyper::upgrade::OnUpgrade, first: Vec<Event>) {
        let function = self.caller.function.clone();
        let ending = match upgrade.await {
            Ok(upgraded) => {
                let config = self.options.socket_config();
                let mut socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    Some(config),
                )
                .await;
                let ending = match self.send(&mut socket, first).await {
                    Flow::Go => self.serve(&mut socket).await,
                    Flow::End(ending) => ending,
                };
                finish(&mut socket, &ending).await;
                if let Some(event) = ending.news()
                    && !self.detached()
                {
                    // The function hears that the host ended it.
                    self.call_quietly(&[event]).await;
                }
                ending
            }
            Err(_) => Ending::silent("disconnect"),
        };
        self.series.closed(&function, ending.reason);
        drop(self.held);
    }

    /// The connection's life after the handshake.
    async fn serve(&mut self, socket: &mut Socket) -> Ending {
        let idle = self.options.idle;
        let mut shutdown = self.shutdown.clone();
        let mut waiting: Vec<Event> = Vec::new();
        let mut waiting_bytes = 0usize;
        let buffers = self.caller.buffers.clone();
        let mut charge = buffers.charge();
        let mut rate = Rate::new(self.options.rate);
        let mut last_heard = Instant::now();
        let mut last_call = Instant::now();
        let mut read_ahead: Option<Option<Result<Message, WsError>>> = None;
        let mut ping = tokio::time::interval_at(
            tokio::time::Instant::now() + idle / 2,
            (idle / 2).max(Duration::from_millis(100)),
        );
        loop {
            let keep_alive_due = self
                .keep_alive
                .map(|every| tokio::time::Instant::from_std(last_call + every));
            tokio::select! {
                biased;
                () = stopping(&mut shutdown) => {
                    return Ending::with(CloseCode::Away, "the host is shutting down", "shutdown");
                }
                message = read(socket, &mut read_ahead), if waiting_bytes < MAX_WAITING_BYTES => {
                    last_heard = Instant::now();
                    let event = match incoming(message) {
                        Incoming::Event(event) => event,
                        Incoming::Skip => continue,
                        Incoming::End(event) => {
                            // The function hears the close (or the
                            // drop); a close the socket answers.
                            let reason = if event.kind == Kind::Close { "client" } else { "disconnect" };
                            if !self.detached() {
                                waiting.push(event);
                                self.call_quietly(&waiting).await;
                            }
                            return Ending::silent(reason);
                        }
                        Incoming::TooBig => {
                            let limit = self.options.max_message;
                            return Ending::with(CloseCode::Size, format!("a message is over the limit of {limit} bytes"), "too-big");
                        }
                    };
                    if !rate.take() {
                        let limit = self.options.rate;
                        return Ending::with(CloseCode::Policy, format!("more than {limit} messages a second"), "rate");
                    }
                    if self.detached() {
                        continue;
                    }
                    if charge.grow(event.content.len() as u64).is_err() {
                        return Ending::with(CloseCode::Again, "the host is holding its maximum of messages; retry shortly", "buffers");
                    }
                    waiting_bytes += event.content.len();
                    waiting.push(event);
                    // One call at a time: what has already arrived goes in
                    // this one; anything else waits for the loop.
                    while waiting_bytes < MAX_WAITING_BYTES {
                        let Some(message) = futures_util::FutureExt::now_or_never(socket.next()) else {
                            break;
                        };
                        let data = matches!(message, Some(Ok(Message::Text(_) | Message::Binary(_))));
                        let control = matches!(message, Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))));
                        if data && rate.take() {
                            if let Incoming::Event(event) = incoming(message) {
                                if charge.grow(event.content.len() as u64).is_err() {
                                    return Ending::with(CloseCode::Again, "the host is holding its maximum of messages; retry shortly", "buffers");
                                }
                                waiting_bytes += event.content.len();
                                waiting.push(event);
                            }
                        } else if !control {
                            // A close, an error or a breach: met again,
                            // whole, on the loop's next turn.
                            read_ahead = Some(message);
                            break;
                        }
                    }
                    let batch = std::mem::take(&mut waiting);
                    waiting_bytes = 0;
                    last_call = Instant::now();
                    // The batch's bytes stay charged until its call ends.
                    let held = std::mem::replace(&mut charge, buffers.charge());
                    let flow = self.exchange(socket, batch).await;
                    drop(held);
                    if let Flow::End(ending) = flow {
                        return ending;
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= idle {
                        return Ending::with(CloseCode::Away, "idle", "idle");
                    }
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return Ending::silent("disconnect");
                    }
                }
                published = next_published(self.grip.as_mut().map(|g| &mut g.subscriber)) => {
                    let Some(item) = published else {
                        return Ending::with(CloseCode::Again, "the client fell behind its channels", "slow-consumer");
                    };
                    if let Flow::End(ending) = self.deliver(socket, vec![item]).await {
                        return ending;
                    }
                }
                _ = sleep_until(keep_alive_due), if keep_alive_due.is_some() && !self.detached() => {
                    last_call = Instant::now();
                    if let Flow::End(ending) = self.exchange(socket, Vec::new()).await {
                        return ending;
                    }
                }
            }
        }
    }

    /// Calls the function with `batch` and sends its answer; what is
    /// published meanwhile is kept (as much as a subscriber's queue holds)
    /// and sent after it.
    async fn exchange(&mut self, socket: &mut Socket, batch: Vec<Event>) -> Flow {
        let function = self.caller.function.clone();
        self.series.events(&function, "in", batch.len());
        let mut arrived = Vec::new();
        let answer = {
            // Boxed: a call's future (the whole request path) is large, and
            // an idle connection should not carry its space.
            let mut call = Box::pin(self.caller.call(&batch));
            let mut subscriber = self.grip.as_mut().map(|g| &mut g.subscriber);
            loop {
                tokio::select! {
                    answer = &mut call => break answer,
                    item = next_published(subscriber.as_deref_mut()) => match item {
                        Some(item) if arrived.len() < QUEUE => arrived.push(item),
                        _ => {
                            return Flow::End(Ending::with(CloseCode::Again, "the client fell behind its channels", "slow-consumer"));
                        }
                    },
                }
            }
        };
        let flow = match answer {
            Ok(Answer {
                events, keep_alive, ..
            }) => {
                if keep_alive.is_some() {
                    self.keep_alive = keep_alive;
                }
                self.send(socket, events).await
            }
            Err(error) => Flow::End(failed(&function, &error)),
        };
        match flow {
            Flow::Go if !arrived.is_empty() => self.deliver(socket, arrived).await,
            flow => flow,
        }
    }

    /// Sends published `items` to the client: their WebSocket messages (a
    /// message over `--websocket-max-message` is dropped; a close closes).
    async fn deliver(&mut self, socket: &mut Socket, items: Vec<Arc<grip::Item>>) -> Flow {
        let mut events = Vec::with_capacity(items.len());
        for item in items {
            let event = match &item.ws {
                Some(WsMessage::Text(text)) => Event {
                    kind: Kind::Text,
                    content: text.as_bytes().to_vec(),
                },
                Some(WsMessage::Binary(data)) => Event {
                    kind: Kind::Binary,
                    content: data.to_vec(),
                },
                Some(WsMessage::Close { code, reason }) => {
                    // What came before the close goes first.
                    let flow = self.send_raw(socket, std::mem::take(&mut events)).await;
                    return match flow {
                        Flow::Go => Flow::End(Ending::with(
                            CloseCode::from(*code),
                            reason.clone(),
                            "published",
                        )),
                        end => end,
                    };
                }
                None => continue,
            };
            if event.content.len() > self.options.max_message {
                tracing::debug!(function = %self.caller.function, "a published message over --websocket-max-message was not sent");
                continue;
            }
            events.push(event);
        }
        self.send_raw(socket, events).await
    }

    /// Sends `events` as they are (no GRIP translation).
    async fn send_raw(&self, socket: &mut Socket, events: Vec<Event>) -> Flow {
        if events.is_empty() {
            return Flow::Go;
        }
        let function = self.caller.function.as_str();
        self.series.events(function, "out", events.len());
        send(socket, events, function, self.options.send_timeout).await
    }

    /// Tells the function what ended the connection; its answer has no one
    /// to go to.
    async fn call_quietly(&mut self, events: &[Event]) {
        self.series
            .events(&self.caller.function, "in", events.len());
        if let Err(error) = Box::pin(self.caller.call(events)).await {
            tracing::debug!(function = %self.caller.function, error = %error.describe(), "a WebSocket function failed on its connection's end");
        }
    }

    /// Sends the function's `events` to the client, within
    /// `--websocket-send-timeout` (in GRIP mode, less its control messages, which
    /// are applied here).
    async fn send(&mut self, socket: &mut Socket, events: Vec<Event>) -> Flow {
        let events = match self.grip.as_mut() {
            Some(grip) => match grip.translate(events, &self.caller.function) {
                Ok(events) => events,
                Err(ending) => return Flow::End(ending),
            },
            None => events,
        };
        let function = self.caller.function.as_str();
        self.series.events(function, "out", events.len());
        send(socket, events, function, self.options.send_timeout).await
    }

    fn detached(&self) -> bool {
        self.grip.as_ref().is_some_and(|g| g.detached)
    }
}

impl Grip {
    /// The function's events as the client gets them: text without its
    /// prefix (text without it is not for the client), control messages
    /// applied and removed.
    fn translate(&mut self, events: Vec<Event>, function: &str) -> Result<Vec<Event>, Ending> {
        let mut out = Vec::with_capacity(events.len());
        for mut event in events {
            if event.kind != Kind::Text {
                out.push(event);
                continue;
            }
            if let Some(control) = event.content.strip_prefix(b"c:") {
                let control = std::str::from_utf8(control)
                    .map_err(|e| e.to_string())
                    .and_then(grip::parse_control);
                match control {
                    Ok(Control::Subscribe(channel)) => {
                        if !self.subscriber.subscribe(&channel) {
                            let why = format!(
                                "more than {} channels on one connection",
                                crate::channels::registry::MAX_SUBSCRIBED
                            );
                            tracing::warn!(function = %function, "{why}");
                            return Err(Ending::with(CloseCode::Policy, why, "failed"));
                        }
                    }
                    Ok(Control::Unsubscribe(channel)) => self.subscriber.unsubscribe(&channel),
                    Ok(Control::Detach) => self.detached = true,
                    Err(why) => {
                        tracing::warn!(function = %function, error = %why, "a WebSocket function sent a bad control message");
                        return Err(Ending::with(
                            CloseCode::Error,
                            "the function sent a bad control message",
                            "failed",
                        ));
                    }
                }
                continue;
            }
            if event.content.starts_with(self.prefix.as_bytes()) {
                event.content.drain(..self.prefix.len());
                out.push(event);
            } else {
                tracing::debug!(function = %function, "dropped a GRIP-mode message without its prefix");
            }
        }
        Ok(out)
    }
}

/// The next item published to one of the subscriber's channels (`None`:
/// it fell behind); never, without a subscriber.
async fn next_published(subscriber: Option<&mut Subscriber>) -> Option<std::sync::Arc<grip::Item>> {
    match subscriber {
        Some(subscriber) => subscriber.next().await,
        None => std::future::pending().await,
    }
}

/// Sends `function`'s `events` to the client, within `within`.
async fn send(socket: &mut Socket, events: Vec<Event>, function: &str, within: Duration) -> Flow {
    {
        let sent = tokio::time::timeout(within, async {
            for event in events {
                let message = match event.kind {
                    Kind::Text => match String::from_utf8(event.content) {
                        Ok(text) => Message::text(text),
                        Err(_) => {
                            let why = "the function sent a TEXT event that is not UTF-8";
                            tracing::warn!(function = %function, "{why}");
                            return Flow::End(Ending::with(CloseCode::Error, why, "failed"));
                        }
                    },
                    Kind::Binary => Message::binary(event.content),
                    Kind::Ping => Message::Ping(Default::default()),
                    Kind::Pong => Message::Pong(Default::default()),
                    Kind::Open => continue,
                    Kind::Close => {
                        let (code, reason) = event
                            .close_code()
                            .filter(|(code, _)| grip::sendable_close(*code))
                            .unwrap_or((u16::from(CloseCode::Normal), String::new()));
                        return Flow::End(Ending::with(CloseCode::from(code), reason, "function"));
                    }
                    Kind::Disconnect => return Flow::End(Ending::silent("function")),
                };
                if socket.feed(message).await.is_err() {
                    return Flow::End(Ending::silent("disconnect"));
                }
            }
            match socket.flush().await {
                Ok(()) => Flow::Go,
                Err(_) => Flow::End(Ending::silent("disconnect")),
            }
        })
        .await;
        sent.unwrap_or_else(|_| {
            tracing::info!(function = %function, "closing a WebSocket whose client stopped reading");
            Flow::End(Ending::silent("slow-consumer"))
        })
    }
}

/// The ending of a call that failed: 1011, and a log line saying why.
fn failed(function: &str, error: &CallError) -> Ending {
    let why = error.describe();
    tracing::warn!(function = %function, error = %why, "a WebSocket function failed on an event; closing its connection");
    Ending::with(
        CloseCode::Error,
        "the function failed on an event",
        "failed",
    )
}

/// Sends the ending's close (briefly: a client that reads nothing does not
/// hold the host) and lets the connection go.
async fn finish(socket: &mut Socket, ending: &Ending) {
    let Some((code, reason)) = &ending.close else {
        return;
    };
    let frame = CloseFrame {
        code: *code,
        reason: truncated(reason).into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if socket.close(Some(frame)).await.is_ok() {
            // Wait for the client's close, so it hears ours whole.
            while let Some(Ok(_)) = socket.next().await {}
        }
    })
    .await;
}

/// A close reason fits a control frame: at most 123 bytes, cut on a
/// character boundary.
fn truncated(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Ends when the host shuts down (or is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The client's next message: the one read ahead, else the socket's.
async fn read(
    socket: &mut Socket,
    read_ahead: &mut Option<Option<Result<Message, WsError>>>,
) -> Option<Result<Message, WsError>> {
    match read_ahead.take() {
        Some(message) => message,
        None => socket.next().await,
    }
}

/// What a client's message means to the function.
enum Incoming {
    /// A message for it.
    Event(Event),
    /// Nothing for it (a ping the socket answers).
    Skip,
    /// The connection's end: a `CLOSE` or a `DISCONNECT`.
    End(Event),
    /// A message over the size limit.
    TooBig,
}

fn incoming(message: Option<Result<Message, WsError>>) -> Incoming {
    match message {
        Some(Ok(Message::Text(text))) => Incoming::Event(Event {
            kind: Kind::Text,
            content: text.as_bytes().to_vec(),
        }),
        Some(Ok(Message::Binary(data))) => Incoming::Event(Event {
            kind: Kind::Binary,
            content: data.to_vec(),
        }),
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Skip,
        Some(Ok(Message::Close(frame))) => Incoming::End(match frame {
            Some(frame) => Event::close(frame.code.into(), &frame.reason),
            None => Event::bare(Kind::Close),
        }),
        Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => Incoming::TooBig,
        Some(Err(_)) | None => Incoming::End(Event::bare(Kind::Disconnect)),
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Messages a second: a bucket of `per_second` tokens, refilled evenly.
struct Rate {
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Rate {
    fn new(per_second: u32) -> Rate {
        Rate {
            per_second: f64::from(per_second),
            tokens: f64::from(per_second),
            at: Instant::now(),
        }
    }

    /// Takes a token; false when none is left.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.per_second);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_past_the_rate_is_refused() {
        let mut rate = Rate::new(5);
        assert!((0..5).all(|_| rate.take()));
        assert!(!rate.take());
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        let cut = truncated(&long);
        assert!(cut.len() <= 123 && cut.chars().all(|c| c == 'é'));
    }
}
