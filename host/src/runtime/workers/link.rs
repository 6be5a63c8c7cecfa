//! The front's calls to a worker, on the worker's calls socket: a compact
//! framing in place of HTTP/2 (which cost the two processes a quarter of
//! their CPU on a busy host), carrying many calls at once.
//!
//! Each frame is a 13-byte head — payload length (`u32`), [`Kind`] (`u8`),
//! call number (`u64`), little-endian — and its payload. A call is a
//! request [`Kind::Head`] (its [`CallHead`], method and headers), its body
//! as [`Kind::Data`] frames and a [`Kind::End`] (its trailers, if any);
//! its answer is the same from the worker. A call is over once both have
//! ended (a run may read its body after it answered). [`Kind::Reset`]
//! drops a call (the front's client left, or a body failed; after the
//! answer, it only stops the body), and [`Kind::Credit`] lets more of a
//! body come: each side may send at most [`WINDOW`] bytes of a body the
//! other has not read yet, and each side checks the other keeps to it, so
//! neither holds more than that per call. A side that breaks these rules
//! ends the link (the front then stops the worker). Frames from any task
//! are gathered in one buffer and written together by the link's writer.

use super::wire::CallHead;
use crate::runtime::body::{BoxError, RequestBody, ResponseBody};
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;

/// Bytes of a frame's head.
const FRAME_HEAD_BYTES: usize = 13;

/// Bytes of a call's body one side may send ahead of the other's reading.
const WINDOW: u64 = 1 << 20;

/// What each [`Kind::Data`] frame counts against a window beyond its
/// bytes: what holding it costs the side that reads it, so many tiny
/// frames hold no more than a few large ones.
const FRAME_CHARGE: u64 = 128;

/// Largest payload of a [`Kind::Data`] frame.
const MAX_DATA_BYTES: usize = 64 << 10;

/// Largest payload of a head or trailers frame (a report rides in the
/// worker's trailers, its captured output at most 8 KiB).
const MAX_HEAD_BYTES: usize = 128 << 10;

/// Largest batch of frames the writer keeps its buffer for.
const KEPT_BUFFER_BYTES: usize = 1 << 20;

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Head = 1,
    Data = 2,
    End = 3,
    Reset = 4,
    Credit = 5,
}

impl Kind {
    fn of(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Head,
            2 => Kind::Data,
            3 => Kind::End,
            4 => Kind::Reset,
            5 => Kind::Credit,
            _ => return None,
        })
    }
}

/// Headers as they cross the link: names and values.
type Fields<'a> = Vec<(&'a str, &'a [u8])>;

/// The head of a call.
#[derive(Serialize, Deserialize)]
struct RequestHead<'a> {
    call: CallHead,
    method: &'a str,
    #[serde(borrow)]
    headers: Fields<'a>,
}

/// The head of a call's answer.
#[derive(Serialize, Deserialize)]
struct ResponseHead<'a> {
    status: u16,
    #[serde(borrow)]
    headers: Fields<'a>,
}

fn fields(headers: &http::HeaderMap) -> Fields<'_> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect()
}

/// The headers `fields` name; with `passed_on`, without the
/// connection-specific ones (an answer's or trailers: the side that reads
/// them speaks HTTP to its clients on its own terms).
fn header_map(fields: Fields<'_>, passed_on: bool) -> Result<http::HeaderMap, String> {
    if fields.len() > MAX_FIELDS {
        return Err(format!("{} header fields", fields.len()));
    }
    let mut headers =
        http::HeaderMap::try_with_capacity(fields.len()).map_err(|e| e.to_string())?;
    for (name, value) in fields {
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        if passed_on && CONNECTION_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = http::HeaderValue::from_bytes(value).map_err(|e| e.to_string())?;
        headers.try_append(name, value).map_err(|e| e.to_string())?;
    }
    Ok(headers)
}

/// Most header fields in one head or trailers.
const MAX_FIELDS: usize = 4096;

/// Headers about one HTTP connection, never passed on.
const CONNECTION_HEADERS: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// A body's frames as they arrive.
type Incoming = mpsc::UnboundedSender<Result<Frame<Bytes>, BoxError>>;

/// What one side may still send of a call's body.
struct Credit {
    bytes: AtomicU64,
    more: Notify,
}

impl Credit {
    fn new() -> Arc<Credit> {
        Arc::new(Credit {
            bytes: AtomicU64::new(WINDOW),
            more: Notify::new(),
        })
    }

    /// Adds `bytes`: `false` when that is more than the window.
    fn grant(&self, bytes: u64) -> bool {
        let had = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.more.notify_one();
        had.saturating_add(bytes) <= WINDOW
    }

    /// Takes what one frame of up to `want` bytes of data may carry,
    /// waiting for room (one task takes): the bytes it may carry.
    async fn take_frame(&self, want: usize) -> usize {
        loop {
            let have = self.bytes.load(Ordering::Acquire);
            if have > FRAME_CHARGE {
                let taken = have.min(want as u64 + FRAME_CHARGE);
                self.bytes.fetch_sub(taken, Ordering::AcqRel);
                return (taken - FRAME_CHARGE) as usize;
            }
            self.more.notified().await;
        }
    }
}

/// One call in flight on a link.
struct Stream {
    /// The front's caller, until the answer's head comes.
    waiting: Option<oneshot::Sender<Result<http::Response<LinkBody>, String>>>,
    /// Where the body coming in goes, until its end.
    incoming: Option<Incoming>,
    /// Bytes of the body coming in received and not yet credited back.
    received: Arc<AtomicU64>,
    /// What may still be sent of the body going out.
    credit: Arc<Credit>,
    /// The task sending the front's body, or running the worker's call.
    task: Option<AbortHandle>,
    /// The front: the answer has ended. The worker: it has been sent.
    answered: bool,
    /// The front: its body has been sent whole. The worker: the call's
    /// body has been dropped.
    body_done: bool,
}

impl Stream {
    fn new(credit: Arc<Credit>) -> Stream {
        Stream {
            waiting: None,
            incoming: None,
            received: Arc::new(AtomicU64::new(0)),
            credit,
            task: None,
            answered: false,
            body_done: false,
        }
    }

    /// Ends it for `reason`: whoever waits on it learns so.
    fn fail(mut self, reason: &str) {
        if let Some(waiting) = self.waiting.take() {
            let _ = waiting.send(Err(reason.to_owned()));
        }
        if let Some(incoming) = self.incoming.take() {
            let _ = incoming.send(Err(BoxError::from(reason.to_owned())));
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Frames waiting for the writer.
struct Outbox {
    frames: Mutex<Vec<u8>>,
    written: Notify,
}

/// What both ends of a link share between their tasks.
struct Shared {
    out: Outbox,
    streams: Mutex<HashMap<u64, Stream>>,
    /// Why the link ended, once it has.
    ended: OnceLock<String>,
    closed: AtomicBool,
    /// Set when it ended because the other side broke the framing.
    broken: AtomicBool,
    /// Woken when it ends.
    gone: Notify,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            out: Outbox {
                frames: Mutex::new(Vec::new()),
                written: Notify::new(),
            },
            streams: Mutex::new(HashMap::new()),
            ended: OnceLock::new(),
            closed: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            gone: Notify::new(),
        })
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Stream>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one frame for the writer.
    fn push(&self, kind: Kind, call: u64, payload: &[u8]) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let Ok(len) = u32::try_from(payload.len()) else {
            return;
        };
        let mut frames = self.out.frames.lock().unwrap_or_else(|p| p.into_inner());
        frames.extend_from_slice(&len.to_le_bytes());
        frames.push(kind as u8);
        frames.extend_from_slice(&call.to_le_bytes());
        frames.extend_from_slice(payload);
        drop(frames);
        self.out.written.notify_one();
    }

    /// Ends a body going out: its trailers, if any (the call is reset
    /// when they are more than a frame carries).
    fn push_end(&self, call: u64, trailers: Option<&http::HeaderMap>) {
        let payload = match trailers {
            Some(trailers) if !trailers.is_empty() => {
                postcard::to_stdvec(&fields(trailers)).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        if payload.len() > MAX_HEAD_BYTES {
            tracing::warn!("a body's trailers were too large to pass on");
            self.reset(call, "its trailers were too large");
            return;
        }
        self.push(Kind::End, call, &payload);
    }

    /// One side of call `call` is done: `answered` its answer, else its
    /// body. Once both are, the call is over here; a worker whose call's
    /// body had not ended tells the front to stop sending it.
    fn half_done(&self, call: u64, answered: bool) {
        let mut streams = self.streams();
        let Some(stream) = streams.get_mut(&call) else {
            return;
        };
        if answered {
            stream.answered = true;
        } else {
            stream.body_done = true;
        }
        if stream.answered && stream.body_done {
            let stream = streams.remove(&call);
            drop(streams);
            if let Some(mut stream) = stream
                && let Some(incoming) = stream.incoming.take()
            {
                drop(incoming);
                self.push(Kind::Reset, call, &[]);
            }
        }
    }

    /// Drops call `call` here and tells the other side, if it was still in
    /// flight; whoever waits on it gets `reason`.
    fn reset(&self, call: u64, reason: &str) {
        let stream = self.streams().remove(&call);
        if let Some(stream) = stream {
            self.push(Kind::Reset, call, &[]);
            stream.fail(reason);
        }
    }

    /// The link is over: every call in flight fails with `reason`.
    fn end(&self, reason: String) {
        let reason = self.ended.get_or_init(|| reason).clone();
        self.closed.store(true, Ordering::Release);
        self.out.written.notify_one();
        self.gone.notify_waiters();
        let streams: Vec<Stream> = self.streams().drain().map(|(_, s)| s).collect();
        for stream in streams {
            stream.fail(&reason);
        }
    }

    /// Sends `body` as call `call`'s, within its credit: `true` once it
    /// is sent whole; its error resets the call.
    async fn send_body<B>(&self, call: u64, credit: &Credit, mut body: B) -> bool
    where
        B: Body<Data = Bytes, Error = BoxError> + Unpin,
    {
        loop {
            match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        while !data.is_empty() {
                            let n = credit.take_frame(data.len().min(MAX_DATA_BYTES)).await;
                            self.push(Kind::Data, call, &data[..n]);
                            data.advance(n);
                        }
                    }
                    Err(frame) => {
                        self.push_end(call, frame.trailers_ref());
                        return true;
                    }
                },
                Some(Err(e)) => {
                    self.reset(call, &e.to_string());
                    return false;
                }
                None => {
                    self.push_end(call, None);
                    return true;
                }
            }
        }
    }

    /// Handles a body's frame of call `call` from the other side: `Err`
    /// when the other side broke the framing's rules.
    fn on_body_frame(
        self: &Arc<Self>,
        kind: Kind,
        call: u64,
        payload: Bytes,
    ) -> Result<(), String> {
        let mut streams = self.streams();
        let Some(stream) = streams.get_mut(&call) else {
            // A call this side is done with: what was in flight is dropped.
            return Ok(());
        };
        match kind {
            Kind::Data => {
                if payload.is_empty() {
                    return Err(format!("call {call} sent an empty data frame"));
                }
                let charge = payload.len() as u64 + FRAME_CHARGE;
                let received = stream.received.fetch_add(charge, Ordering::AcqRel) + charge;
                if received > WINDOW {
                    return Err(format!("call {call} sent past its window"));
                }
                if let Some(incoming) = &stream.incoming {
                    let _ = incoming.send(Ok(Frame::data(payload)));
                }
            }
            Kind::End => {
                if let Some(incoming) = stream.incoming.take()
                    && !payload.is_empty()
                {
                    let trailers = postcard::from_bytes::<Fields<'_>>(&payload)
                        .map_err(|e| e.to_string())
                        .and_then(|fields| header_map(fields, true))?;
                    let _ = incoming.send(Ok(Frame::trailers(trailers)));
                }
            }
            Kind::Reset => {
                let stream = streams.remove(&call);
                drop(streams);
                if let Some(stream) = stream {
                    stream.fail("the call was reset");
                }
            }
            Kind::Credit => {
                let bytes: [u8; 4] = payload[..]
                    .try_into()
                    .map_err(|_| "a bad credit frame".to_owned())?;
                // What was sent and is credited back never adds up to
                // more than the window.
                if !stream.credit.grant(u64::from(u32::from_le_bytes(bytes))) {
                    return Err(format!("call {call} credited past its window"));
                }
            }
            Kind::Head => return Err(format!("call {call} sent a second head")),
        }
        Ok(())
    }
}

/// Reads the next frame; `None` at the socket's end between frames.
async fn read_frame(
    from: &mut BufReader<OwnedReadHalf>,
) -> Result<Option<(Kind, u64, Bytes)>, String> {
    let mut head = [0u8; FRAME_HEAD_BYTES];
    match from.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        // Its end, whether or not it read all this side sent.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.to_string()),
    }
    // A side killed mid-frame has closed, not broken the framing.
    let closed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => None,
        _ => Some(e.to_string()),
    };
    if let Err(e) = from.read_exact(&mut head[1..]).await {
        return closed(e).map_or(Ok(None), Err);
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let kind = Kind::of(head[4]).ok_or_else(|| format!("a frame of kind {}", head[4]))?;
    let mut call = [0u8; 8];
    call.copy_from_slice(&head[5..]);
    let call = u64::from_le_bytes(call);
    let most = match kind {
        Kind::Data => MAX_DATA_BYTES,
        Kind::Credit => 4,
        Kind::Reset => 0,
        Kind::Head | Kind::End => MAX_HEAD_BYTES,
    };
    if len > most {
        return Err(format!("a {kind:?} frame of {len} bytes"));
    }
    let mut payload = BytesMut::zeroed(len);
    if let Err(e) = from.read_exact(&mut payload).await {
        return closed(e).map_or(Ok(None), Err);
    }
    Ok(Some((kind, call, payload.freeze())))
}

/// Writes what the link's tasks queue until the link ends.
async fn write_frames(shared: Arc<Shared>, mut to: OwnedWriteHalf) {
    let mut batch = Vec::new();
    loop {
        // Once closed, what was queued before is written and no more.
        let closed = shared.closed.load(Ordering::Acquire);
        std::mem::swap(
            &mut *shared.out.frames.lock().unwrap_or_else(|p| p.into_inner()),
            &mut batch,
        );
        if !batch.is_empty() {
            if let Err(e) = to.write_all(&batch).await {
                shared.end(format!("writing to it failed: {e}"));
                return;
            }
            batch.clear();
            if batch.capacity() > KEPT_BUFFER_BYTES {
                batch = Vec::new();
            }
        }
        if closed {
            return;
        }
        shared.out.written.notified().await;
    }
}

/// A call's body coming in over a link.
pub(crate) struct LinkBody {
    frames: mpsc::UnboundedReceiver<Result<Frame<Bytes>, BoxError>>,
    shared: Arc<Shared>,
    call: u64,
    received: Arc<AtomicU64>,
    /// Bytes read and not yet credited back.
    unacknowledged: u64,
    /// What its `Content-Length` says is left.
    remaining: Option<u64>,
    ended: bool,
    /// The front's (an answer): dropped before its end, the call is reset.
    /// Else a call's body in the worker.
    answer: bool,
}

impl LinkBody {
    /// The body of `stream` (which is given its sender), of `headers`.
    fn of(
        shared: &Arc<Shared>,
        call: u64,
        stream: &mut Stream,
        headers: &http::HeaderMap,
        answer: bool,
    ) -> LinkBody {
        let (incoming, frames) = mpsc::unbounded_channel();
        stream.incoming = Some(incoming);
        let remaining = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        LinkBody {
            frames,
            shared: shared.clone(),
            call,
            received: stream.received.clone(),
            unacknowledged: 0,
            remaining,
            ended: false,
            answer,
        }
    }
}

impl Body for LinkBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let frame = std::task::ready!(self.frames.poll_recv(cx));
        match &frame {
            Some(Ok(frame)) => {
                // Trailers are its last frame.
                self.ended = frame.is_trailers();
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    self.remaining = self.remaining.map(|r| r.saturating_sub(len));
                    self.unacknowledged += len + FRAME_CHARGE;
                    if self.unacknowledged >= WINDOW / 2 {
                        let bytes = std::mem::take(&mut self.unacknowledged);
                        self.received.fetch_sub(bytes, Ordering::AcqRel);
                        let credit = u32::try_from(bytes).unwrap_or(u32::MAX);
                        self.shared
                            .push(Kind::Credit, self.call, &credit.to_le_bytes());
                    }
                }
            }
            Some(Err(_)) | None => self.ended = true,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        // Not at its `Content-Length`: its trailers may follow.
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        self.remaining
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

impl Drop for LinkBody {
    fn drop(&mut self) {
        if !self.answer {
            self.shared.half_done(self.call, false);
        } else if !self.ended {
            self.shared.reset(self.call, "its answer was dropped");
        }
    }
}

/// Why a call did not get its answer.
pub(crate) enum CallFailed {
    /// Its URI and headers are more than a frame carries.
    HeadTooLarge,
    /// The link ended, or the call was reset, for this reason.
    Broken(String),
}

/// Ends a link when its reader stops, however it stops (a panic included).
struct EndOnDrop(Arc<Shared>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if self.0.ended.get().is_none() {
            self.0.broken.store(true, Ordering::Release);
            self.0.end("the worker's answers could not be read".into());
        }
    }
}

/// The front's end of a worker's calls socket.
pub(crate) struct Link {
    shared: Arc<Shared>,
}

/// A call whose caller left before its answer came: it is reset.
struct Unanswered<'a> {
    shared: &'a Shared,
    call: u64,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        self.shared.reset(self.call, "its caller left");
    }
}

impl Link {
    /// The front's end on `socket`: its reader and writer run on their own
    /// tasks until the worker's end closes.
    pub(crate) fn front(socket: UnixStream) -> Link {
        let shared = Shared::new();
        let (read, write) = socket.into_split();
        tokio::spawn(write_frames(shared.clone(), write));
        let reader = EndOnDrop(shared.clone());
        tokio::spawn(async move {
            let reason = match read_answers(&reader.0, BufReader::new(read)).await {
                Ok(()) => "the worker closed its socket".to_owned(),
                Err(e) => {
                    reader.0.broken.store(true, Ordering::Release);
                    format!("the worker broke the framing: {e}")
                }
            };
            reader.0.end(reason);
        });
        Link { shared }
    }

    /// Waits until the link has ended: why, and whether the worker broke
    /// the framing.
    pub(crate) async fn ended(&self) -> (String, bool) {
        loop {
            let gone = self.shared.gone.notified();
            if let Some(reason) = self.shared.ended.get() {
                return (reason.clone(), self.shared.broken.load(Ordering::Acquire));
            }
            gone.await;
        }
    }

    /// Sends call `head` with `request`'s method, headers and body, and
    /// waits for its answer's head.
    pub(crate) async fn call(
        &self,
        head: CallHead,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<LinkBody>, CallFailed> {
        let call = head.call;
        let (parts, body) = request.into_parts();
        let payload = postcard::to_stdvec(&RequestHead {
            call: head,
            method: parts.method.as_str(),
            headers: fields(&parts.headers),
        })
        .map_err(|e| CallFailed::Broken(e.to_string()))?;
        if payload.len() > MAX_HEAD_BYTES {
            return Err(CallFailed::HeadTooLarge);
        }
        let (answer, answered) = oneshot::channel();
        let credit = Credit::new();
        let mut stream = Stream::new(credit.clone());
        stream.waiting = Some(answer);
        stream.body_done = body.is_end_stream();
        {
            // Under the lock the link's end drains, so a call either
            // fails here or with the rest.
            let mut streams = self.shared.streams();
            if let Some(reason) = self.shared.ended.get() {
                return Err(CallFailed::Broken(reason.clone()));
            }
            streams.insert(call, stream);
        }
        let unanswered = Unanswered {
            shared: &self.shared,
            call,
        };
        self.shared.push(Kind::Head, call, &payload);
        if body.is_end_stream() {
            self.shared.push_end(call, None);
        } else {
            let shared = self.shared.clone();
            let task = tokio::spawn(async move {
                if shared.send_body(call, &credit, body).await {
                    shared.half_done(call, false);
                }
            });
            if let Some(stream) = self.shared.streams().get_mut(&call) {
                stream.task = Some(task.abort_handle());
            } else {
                task.abort();
            }
        }
        let answer = answered.await;
        std::mem::forget(unanswered);
        match answer {
            Ok(answer) => answer.map_err(CallFailed::Broken),
            Err(_) => Err(CallFailed::Broken(
                self.shared
                    .ended
                    .get()
                    .cloned()
                    .unwrap_or_else(|| "the call was dropped".into()),
            )),
        }
    }
}

/// The front's reader: answers' heads to their callers, bodies to their
/// readers.
async fn read_answers(
    shared: &Arc<Shared>,
    mut from: BufReader<OwnedReadHalf>,
) -> Result<(), String> {
    while let Some((kind, call, payload)) = read_frame(&mut from).await? {
        match kind {
            Kind::Head => {
                let head: ResponseHead<'_> =
                    postcard::from_bytes(&payload).map_err(|e| e.to_string())?;
                let status = http::StatusCode::from_u16(head.status)
                    .ok()
                    .filter(|status| !status.is_informational())
                    .ok_or_else(|| format!("an answer of status {}", head.status))?;
                let headers = header_map(head.headers, true)?;
                let mut streams = shared.streams();
                let Some(stream) = streams.get_mut(&call) else {
                    continue;
                };
                let Some(waiting) = stream.waiting.take() else {
                    return Err(format!("call {call} answered twice"));
                };
                let body = LinkBody::of(shared, call, stream, &headers, true);
                drop(streams);
                let mut response = http::Response::new(body);
                *response.status_mut() = status;
                *response.headers_mut() = headers;
                let _ = waiting.send(Ok(response));
            }
            Kind::End => {
                // (A call whose head has not come is failed with the rest.)
                if shared
                    .streams()
                    .get(&call)
                    .is_some_and(|stream| stream.waiting.is_some())
                {
                    return Err(format!("call {call} ended before its head"));
                }
                shared.on_body_frame(kind, call, payload)?;
                // The answer is complete; the call is over once its body
                // has been sent (a run may read it after it answered).
                shared.half_done(call, true);
            }
            _ => shared.on_body_frame(kind, call, payload)?,
        }
    }
    Ok(())
}

/// The worker's end of its calls socket: serves each call with `answer`
/// (on a task of its own, dropped when the front resets the call) until
/// the front closes the socket.
pub(crate) async fn serve<F, A>(socket: UnixStream, answer: F) -> Result<(), String>
where
    F: Fn(CallHead, http::Request<RequestBody>) -> A,
    A: Future<Output = http::Response<ResponseBody>> + Send + 'static,
{
    let shared = Shared::new();
    let (read, write) = socket.into_split();
    let writer = tokio::spawn(write_frames(shared.clone(), write));
    let mut from = BufReader::new(read);
    let served = serve_calls(&shared, &mut from, answer).await;
    shared.end("the front closed its socket".into());
    let _ = writer.await;
    served
}

async fn serve_calls<F, A>(
    shared: &Arc<Shared>,
    from: &mut BufReader<OwnedReadHalf>,
    answer: F,
) -> Result<(), String>
where
    F: Fn(CallHead, http::Request<RequestBody>) -> A,
    A: Future<Output = http::Response<ResponseBody>> + Send + 'static,
{
    while let Some((kind, call, payload)) = read_frame(from).await? {
        if kind != Kind::Head {
            shared.on_body_frame(kind, call, payload)?;
            continue;
        }
        let head: RequestHead<'_> = postcard::from_bytes(&payload).map_err(|e| e.to_string())?;
        if head.call.call != call {
            return Err(format!("call {call} named another"));
        }
        let headers = header_map(head.headers, false)?;
        let method = http::Method::from_bytes(head.method.as_bytes()).map_err(|e| e.to_string())?;
        let credit = Credit::new();
        let mut stream = Stream::new(credit.clone());
        let body = LinkBody::of(shared, call, &mut stream, &headers, false);
        {
            let mut streams = shared.streams();
            if streams.contains_key(&call) {
                return Err(format!("call {call} began twice"));
            }
            streams.insert(call, stream);
        }
        let mut request = http::Request::new(body.boxed_unsync());
        *request.method_mut() = method;
        *request.headers_mut() = headers;
        // Not under the lock: the call's body may be dropped in it.
        let answering = answer(head.call, request);
        let link = shared.clone();
        let task = tokio::spawn(async move {
            let response = answering.await;
            let (parts, body) = response.into_parts();
            let head = ResponseHead {
                status: parts.status.as_u16(),
                headers: fields(&parts.headers),
            };
            match postcard::to_stdvec(&head) {
                Ok(payload) if payload.len() <= MAX_HEAD_BYTES => {
                    link.push(Kind::Head, call, &payload);
                    if link.send_body(call, &credit, body).await {
                        link.half_done(call, true);
                    }
                }
                _ => {
                    tracing::warn!("an answer's headers were too large to send");
                    link.reset(call, "its answer's head was too large");
                }
            }
        });
        if let Some(stream) = shared.streams().get_mut(&call) {
            stream.task = Some(task.abort_handle());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::body::full;
    use http_body_util::StreamBody;
    use std::time::Duration;

    fn head(call: u64) -> CallHead {
        CallHead {
            call,
            uri: "/echo?x=1".into(),
            http: 11,
            route: "/echo".into(),
            path_info: String::new(),
            remote: "127.0.0.1:1".parse().expect("an address"),
            local: "127.0.0.1:2".parse().expect("an address"),
            trigger: wisp_spec::api::Trigger::Http,
            request_id: "r".into(),
            elapsed_us: 0,
        }
    }

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().expect("a socket pair")
    }

    /// A body whose chunks come from a channel, counting the bytes taken.
    fn counted_body(taken: Arc<AtomicU64>) -> (mpsc::UnboundedSender<Bytes>, RequestBody) {
        let (chunks, rx) = mpsc::unbounded_channel::<Bytes>();
        let stream = futures_util::stream::unfold(rx, move |mut rx| {
            let taken = taken.clone();
            async move {
                let chunk = rx.recv().await?;
                taken.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                Some((Ok::<_, BoxError>(Frame::data(chunk)), rx))
            }
        });
        (chunks, StreamBody::new(stream).boxed_unsync())
    }

    /// Serves calls by echoing each one's method, URI, header `x-in` and
    /// body back, with a trailer.
    async fn echo(
        head: CallHead,
        request: http::Request<RequestBody>,
    ) -> http::Response<ResponseBody> {
        let (parts, body) = request.into_parts();
        let collected = body.collect().await.expect("the body");
        let trailer = collected
            .trailers()
            .and_then(|t| t.get("x-trailer"))
            .cloned()
            .unwrap_or(http::HeaderValue::from_static("none"));
        let bytes = collected.to_bytes();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-trailer-seen", trailer);
        let body = http_body_util::Full::new(bytes)
            .map_err(BoxError::from)
            .with_trailers(async move { Some(Ok(trailers)) })
            .boxed_unsync();
        http::Response::builder()
            .status(201)
            .header("transfer-encoding", "chunked")
            .header(
                "x-call",
                format!("{} {} {}", head.call, parts.method, head.uri),
            )
            .header(
                "x-in",
                parts
                    .headers
                    .get("x-in")
                    .cloned()
                    .unwrap_or(http::HeaderValue::from_static("")),
            )
            .body(body)
            .expect("a response")
    }

    #[tokio::test]
    async fn a_call_crosses_with_its_head_body_and_trailers_both_ways() {
        let (front, worker) = pair();
        tokio::spawn(serve(worker, echo));
        let link = Link::front(front);
        // Big enough to need credit several times over, both ways.
        let big = Bytes::from(vec![7u8; 5 * WINDOW as usize + 123]);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-trailer", http::HeaderValue::from_static("t"));
        let body = http_body_util::Full::new(big.clone())
            .map_err(BoxError::from)
            .with_trailers(async move { Some(Ok(trailers)) })
            .boxed_unsync();
        let request = http::Request::post("/ignored")
            .header("x-in", "v")
            .body(body)
            .expect("a request");
        let Ok(response) = link.call(head(3), request).await else {
            panic!("the call failed");
        };
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["x-call"], "3 POST /echo?x=1");
        assert_eq!(response.headers()["x-in"], "v");
        assert!(!response.headers().contains_key("transfer-encoding"));
        let collected = response.into_body().collect().await.expect("the answer");
        assert_eq!(
            collected.trailers().expect("trailers")["x-trailer-seen"],
            "t"
        );
        assert_eq!(collected.to_bytes(), big);
        // Many at once, with empty bodies.
        let calls = (10..60).map(|n| {
            let request = http::Request::get("/")
                .body(RequestBody::default())
                .expect("a request");
            link.call(head(n), request)
        });
        for (n, answer) in (10..60).zip(futures_util::future::join_all(calls).await) {
            let Ok(answer) = answer else {
                panic!("call {n} failed")
            };
            assert_eq!(
                answer.headers()["x-call"],
                format!("{n} GET /echo?x=1").as_str()
            );
        }
    }

    #[tokio::test]
    async fn a_body_nobody_reads_stops_at_its_window() {
        let (front, worker) = pair();
        let (answer, answered) = oneshot::channel::<()>();
        let answered = Arc::new(Mutex::new(Some(answered)));
        tokio::spawn(serve(worker, move |_, _request| {
            let answered = answered.lock().expect("a lock").take();
            async move {
                // Holds the request (and never reads its body) until told.
                if let Some(answered) = answered {
                    let _ = answered.await;
                }
                http::Response::new(full("done"))
            }
        }));
        let link = Link::front(front);
        let taken = Arc::new(AtomicU64::new(0));
        let (chunks, body) = counted_body(taken.clone());
        for _ in 0..64 {
            chunks
                .send(Bytes::from(vec![1u8; 64 << 10]))
                .expect("a chunk");
        }
        let request = http::Request::post("/").body(body).expect("a request");
        let call = tokio::spawn(async move { link.call(head(1), request).await.is_ok() });
        // Give the pump every chance to send what it may.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let sent = taken.load(Ordering::SeqCst);
        assert!(
            sent >= WINDOW - (64 << 10),
            "it sent {sent} bytes, well short of its window"
        );
        assert!(
            sent <= WINDOW + (64 << 10),
            "it sent {sent} bytes, past its window"
        );
        answer.send(()).expect("the worker waits");
        assert!(call.await.expect("the call"), "the call failed");
    }

    #[tokio::test]
    async fn a_dropped_call_drops_its_run_in_the_worker() {
        let (front, worker) = pair();
        let (running, started) = oneshot::channel::<()>();
        let running = Arc::new(Mutex::new(Some(running)));
        let dropped = Arc::new(Notify::new());
        let was_dropped = dropped.clone();
        struct Dropped(Arc<Notify>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.notify_one();
            }
        }
        tokio::spawn(serve(worker, move |_, _| {
            let running = running.lock().expect("a lock").take();
            let guard = Dropped(dropped.clone());
            async move {
                let _guard = guard;
                if let Some(running) = running {
                    let _ = running.send(());
                }
                std::future::pending::<http::Response<ResponseBody>>().await
            }
        }));
        let link = Link::front(front);
        let request = http::Request::get("/")
            .body(RequestBody::default())
            .expect("a request");
        let call = tokio::spawn(async move { link.call(head(1), request).await.is_ok() });
        started.await.expect("the run started");
        call.abort();
        tokio::time::timeout(Duration::from_secs(5), was_dropped.notified())
            .await
            .expect("the worker dropped the run");
    }

    #[tokio::test]
    async fn a_worker_past_its_window_or_gone_fails_its_calls() {
        // A worker that answers, then sends more body than it may.
        let mut frames = vec![(Kind::Head, answer_head(200, Vec::new()))];
        let chunk = vec![0u8; MAX_DATA_BYTES];
        frames
            .extend((0..=(WINDOW as usize / MAX_DATA_BYTES)).map(|_| (Kind::Data, chunk.clone())));
        let (reason, broken, failed) = forged_answers(frames).await;
        assert!(failed.contains("window"), "{failed}");
        assert!(broken && reason.contains("window"), "{reason}");

        // A worker that goes away mid-call.
        let (front, worker) = pair();
        let link = Arc::new(Link::front(front));
        let request = http::Request::get("/")
            .body(RequestBody::default())
            .expect("a request");
        let caller = link.clone();
        let calling = tokio::spawn(async move { caller.call(head(1), request).await.err() });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(worker);
        let Some(CallFailed::Broken(reason)) = calling.await.expect("the call") else {
            panic!("the call did not fail as broken");
        };
        assert!(reason.contains("closed"), "{reason}");
        let (_, broken) = tokio::time::timeout(Duration::from_secs(5), link.ended())
            .await
            .expect("the link ended");
        assert!(!broken, "a worker that left did not break the framing");
    }

    /// A worker end that answers a call with `frames`, as a worker in an
    /// attacker's hands could: how the link ended, and what the caller saw
    /// of its answer (read only after the frames are in, so nothing was
    /// credited back).
    async fn forged_answers(frames: Vec<(Kind, Vec<u8>)>) -> (String, bool, String) {
        let (front, mut worker) = pair();
        let link = Arc::new(Link::front(front));
        let request = http::Request::get("/")
            .body(RequestBody::default())
            .expect("a request");
        let caller = link.clone();
        let calling = tokio::spawn(async move {
            let Ok(answer) = caller.call(head(4), request).await else {
                return "no answer".to_owned();
            };
            tokio::time::sleep(Duration::from_millis(200)).await;
            match answer.into_body().collect().await {
                Ok(_) => "a whole body".to_owned(),
                Err(e) => e.to_string(),
            }
        });
        for (kind, payload) in frames {
            let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
            bytes.push(kind as u8);
            bytes.extend_from_slice(&4u64.to_le_bytes());
            bytes.extend_from_slice(&payload);
            if worker.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let (reason, broken) = tokio::time::timeout(Duration::from_secs(5), link.ended())
            .await
            .expect("the link ended");
        let seen = tokio::time::timeout(Duration::from_secs(5), calling)
            .await
            .expect("the call ended")
            .expect("the call");
        (reason, broken, seen)
    }

    fn answer_head(status: u16, headers: Fields<'_>) -> Vec<u8> {
        postcard::to_stdvec(&ResponseHead { status, headers }).expect("a head")
    }

    #[tokio::test]
    async fn a_worker_that_forges_credit_heads_or_statuses_breaks_its_link() {
        // Credit the front never earned: its body would pile up.
        let credit = vec![(Kind::Credit, u32::MAX.to_le_bytes().to_vec())];
        let (reason, broken, _) = forged_answers(credit).await;
        assert!(broken && reason.contains("credited past"), "{reason}");
        // More header fields than a head may hold: refused, not a panic.
        let many = answer_head(200, vec![("x", b"" as &[u8]); MAX_FIELDS + 1]);
        let (reason, broken, _) = forged_answers(vec![(Kind::Head, many)]).await;
        assert!(broken && reason.contains("header fields"), "{reason}");
        // An informational status as a final answer.
        let informational = answer_head(101, Vec::new());
        let (reason, broken, _) = forged_answers(vec![(Kind::Head, informational)]).await;
        assert!(broken && reason.contains("status 101"), "{reason}");
        // An end before the answer's head.
        let (reason, broken, _) = forged_answers(vec![(Kind::End, Vec::new())]).await;
        assert!(broken && reason.contains("before its head"), "{reason}");
    }

    #[tokio::test]
    async fn a_run_reads_its_whole_body_after_it_answered() {
        let (front, worker) = pair();
        let (read, mut bytes_read) = mpsc::unbounded_channel::<usize>();
        tokio::spawn(serve(worker, move |_, request| {
            let read = read.clone();
            // Answers at once, and reads the body after.
            tokio::spawn(async move {
                let body = request.into_body().collect().await;
                let _ = read.send(body.map_or(0, |b| b.to_bytes().len()));
            });
            async { http::Response::new(full("accepted")) }
        }));
        let link = Link::front(front);
        let upload = Bytes::from(vec![5u8; 3 * WINDOW as usize]);
        let body = http_body_util::Full::new(upload.clone())
            .map_err(BoxError::from)
            .boxed_unsync();
        let request = http::Request::post("/").body(body).expect("a request");
        let Ok(answer) = link.call(head(2), request).await else {
            panic!("the call failed");
        };
        let answer = answer.into_body().collect().await.expect("the answer");
        assert_eq!(answer.to_bytes(), "accepted");
        let read = tokio::time::timeout(Duration::from_secs(5), bytes_read.recv())
            .await
            .expect("the run read its body");
        assert_eq!(read, Some(upload.len()));
        let over = tokio::time::timeout(Duration::from_secs(5), async {
            while !link.shared.streams().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(over.is_ok(), "the call outlived its body");
    }
}
