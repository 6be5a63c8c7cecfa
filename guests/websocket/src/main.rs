//! `websocket`: a handler written for Pushpin's WebSocket-over-HTTP
//! protocol, as wisp's WebSocket tests drive it. It answers `OPEN` with
//! `OPEN`, a `Set-Meta-Count: 0` and a `TEXT` greeting that says whether it
//! saw a `Connection-Id`, which `Meta-Count` (if any) came with the
//! handshake and the `Grip-Sig` it was signed with (or `none`); each `TEXT` with `echo: TEXT #N fresh=F`, where `N` is the
//! connection's count kept in `Meta-Count` (state the host carries between
//! calls) and `F` is this instance's own count of calls (1 in a fresh
//! sandbox); `BINARY` back as it came. `TEXT trap` panics, `TEXT close`
//! answers `CLOSE 4000 bye`, `TEXT keepalive` asks for a call every
//! second (`Keep-Alive-Interval: 1`), and a call with no events (a
//! keep-alive) answers `TEXT tick`. A `CLOSE` is answered with the same
//! `CLOSE`. A request that is not events answers `200 websocket guest`.

use std::sync::atomic::{AtomicU64, Ordering};
use wstd::http::{Body, Error, Request, Response};

static CALLS: AtomicU64 = AtomicU64::new(0);

/// One event: its type and content.
struct Event {
    kind: String,
    content: Vec<u8>,
}

fn parse(mut body: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&body[..end]).into_owned();
        body = &body[end + 2..];
        let (kind, size) = match line.split_once(' ') {
            Some((kind, size)) => (kind.to_owned(), usize::from_str_radix(size, 16).unwrap_or(0)),
            None => (line.clone(), 0),
        };
        let mut content = Vec::new();
        if line_has_content(&kind) || size > 0 {
            content = body[..size].to_vec();
            body = &body[size + 2..];
        }
        events.push(Event { kind, content });
    }
    events
}

fn line_has_content(kind: &str) -> bool {
    matches!(kind, "TEXT" | "BINARY" | "CLOSE")
}

fn write(out: &mut Vec<u8>, kind: &str, content: Option<&[u8]>) {
    out.extend_from_slice(kind.as_bytes());
    if let Some(content) = content {
        out.extend_from_slice(format!(" {:X}\r\n", content.len()).as_bytes());
        out.extend_from_slice(content);
    }
    out.extend_from_slice(b"\r\n");
}

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let fresh = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    let headers = request.headers().clone();
    let is_events = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes() == b"application/websocket-events");
    if !is_events {
        return Ok(Response::new("websocket guest\n".into()));
    }
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let count: u64 = header("meta-count").and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = request.body_mut().contents().await?.to_vec();
    let events = parse(&body);
    let mut out = Vec::new();
    let mut response = Response::builder().header("content-type", "application/websocket-events");
    let mut next = count;
    if events.is_empty() {
        write(&mut out, "TEXT", Some(b"tick"));
    }
    for event in events {
        match event.kind.as_str() {
            "OPEN" => {
                write(&mut out, "OPEN", None);
                let greeting = format!(
                    "welcome connection-id={} meta-count={} grip-sig={}",
                    header("connection-id").is_some(),
                    header("meta-count").unwrap_or_else(|| "none".to_owned()),
                    header("grip-sig").unwrap_or_else(|| "none".to_owned()),
                );
                write(&mut out, "TEXT", Some(greeting.as_bytes()));
                response = response.header("set-meta-count", "0").header("x-websocket-guest", "accepted");
            }
            "TEXT" => match event.content.as_slice() {
                b"trap" => panic!("asked to trap"),
                b"close" => {
                    let mut content = 4000u16.to_be_bytes().to_vec();
                    content.extend_from_slice(b"bye");
                    write(&mut out, "CLOSE", Some(&content));
                }
                b"keepalive" => {
                    response = response.header("keep-alive-interval", "1");
                    write(&mut out, "TEXT", Some(b"keepalive on"));
                }
                text => {
                    next += 1;
                    let reply = format!(
                        "echo: {} #{next} fresh={fresh}",
                        String::from_utf8_lossy(text)
                    );
                    write(&mut out, "TEXT", Some(reply.as_bytes()));
                }
            },
            "BINARY" => write(&mut out, "BINARY", Some(&event.content)),
            "CLOSE" => write(&mut out, "CLOSE", Some(&event.content)),
            _ => {}
        }
    }
    if next != count {
        response = response.header("set-meta-count", next.to_string());
    }
    Ok(response.body(out.into())?)
}
