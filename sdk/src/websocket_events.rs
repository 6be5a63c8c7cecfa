//! The body format of Pushpin's WebSocket-over-HTTP protocol: a list of
//! events, each `TYPE HEXSIZE\r\nCONTENT\r\n`, or `TYPE\r\n` without
//! content.
//!
//! The host (`wisp-host`'s gateway) writes these to a WebSocket function
//! — what its client sent — and reads them back: what to send the client.
//! Functions read and write them through `wisp-sdk`'s `websocket` module;
//! this one file is both that module's codec and `wisp-spec`'s
//! `websocket_events`, which the host uses. Parsing is strict and
//! bounded: an unknown type, a bad size, a missing `\r\n` or an event
//! larger than the caller's bound is an error naming the offset, never a
//! guess. As the protocol says, content on an event that carries none
//! (`OPEN 0\r\n\r\n`) is accepted and ignored.

use std::fmt;

/// One event's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The handshake (from the gateway) or its acceptance (from the
    /// function).
    Open,
    /// A text message.
    Text,
    /// A binary message.
    Binary,
    /// A ping.
    Ping,
    /// A pong.
    Pong,
    /// A close, its content a 16-bit big-endian code and a reason.
    Close,
    /// The connection ended without a close (or, from the function: drop
    /// it).
    Disconnect,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Open,
        Kind::Text,
        Kind::Binary,
        Kind::Ping,
        Kind::Pong,
        Kind::Close,
        Kind::Disconnect,
    ];

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Open => "OPEN",
            Kind::Text => "TEXT",
            Kind::Binary => "BINARY",
            Kind::Ping => "PING",
            Kind::Pong => "PONG",
            Kind::Close => "CLOSE",
            Kind::Disconnect => "DISCONNECT",
        }
    }

    /// True for the types whose content means something.
    pub fn has_content(self) -> bool {
        matches!(self, Kind::Text | Kind::Binary | Kind::Close)
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its type.
    pub kind: Kind,
    /// Its content (empty for types that carry none).
    pub content: Vec<u8>,
}

impl Event {
    /// An event without content.
    pub fn bare(kind: Kind) -> Event {
        Event {
            kind,
            content: Vec::new(),
        }
    }

    /// A `CLOSE` with `code` and `reason`.
    pub fn close(code: u16, reason: &str) -> Event {
        let mut content = code.to_be_bytes().to_vec();
        content.extend_from_slice(reason.as_bytes());
        Event {
            kind: Kind::Close,
            content,
        }
    }

    /// A `CLOSE`'s code and reason (`None` when it carries no code).
    pub fn close_code(&self) -> Option<(u16, String)> {
        let code = self.content.get(..2)?;
        let reason = String::from_utf8_lossy(&self.content[2..]).into_owned();
        Some((u16::from_be_bytes([code[0], code[1]]), reason))
    }

    /// Appends its encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.kind.as_str().as_bytes());
        if self.kind.has_content() {
            out.extend_from_slice(format!(" {:X}\r\n", self.content.len()).as_bytes());
            out.extend_from_slice(&self.content);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Encodes `events`, one after another.
pub fn encode(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.iter().map(|e| e.content.len() + 16).sum());
    for event in events {
        event.encode_into(&mut out);
    }
    out
}

/// Why a body is not a list of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where, in bytes from the body's start.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// The longest event line (`DISCONNECT FFFFFFFF`), so a line without an
/// end is refused early.
const MAX_LINE: usize = 32;

/// Parses a body of events; an event whose content is larger than
/// `max_content` bytes is an error.
pub fn parse(body: &[u8], max_content: usize) -> Result<Vec<Event>, ParseError> {
    parse_at_most(body, max_content, usize::MAX)
}

/// Parses a body of at most `max_events` events, each with at most
/// `max_content` bytes of content.
pub fn parse_at_most(
    body: &[u8],
    max_content: usize,
    max_events: usize,
) -> Result<Vec<Event>, ParseError> {
    let mut events = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let error = |offset: usize, reason: String| ParseError { offset, reason };
        if events.len() == max_events {
            return Err(error(at, format!("more than {max_events} events")));
        }
        let rest = &body[at..];
        let line_end = rest
            .windows(2)
            .take(MAX_LINE)
            .position(|pair| pair == b"\r\n")
            .ok_or_else(|| error(at, "an event line without its `\\r\\n`".to_owned()))?;
        let line = std::str::from_utf8(&rest[..line_end])
            .map_err(|_| error(at, "an event line that is not text".to_owned()))?;
        let (name, size) = match line.split_once(' ') {
            Some((name, size)) => (name, Some(size)),
            None => (line, None),
        };
        let kind = Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| error(at, format!("unknown event type `{}`", name.escape_debug())))?;
        at += line_end + 2;
        let Some(size) = size else {
            if kind.has_content() {
                return Err(error(at, format!("{name} without its size")));
            }
            events.push(Event::bare(kind));
            continue;
        };
        let size = usize::from_str_radix(size, 16)
            .ok()
            .filter(|_| !size.is_empty() && size.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| error(at, format!("`{}` is not a hex size", size.escape_debug())))?;
        if size > max_content {
            return Err(error(
                at,
                format!("a {name} of {size} bytes, over the limit of {max_content}"),
            ));
        }
        let end = at
            .checked_add(size)
            .filter(|end| end + 2 <= body.len())
            .ok_or_else(|| error(at, format!("{name} content cut short")))?;
        if &body[end..end + 2] != b"\r\n" {
            return Err(error(
                end,
                format!("{name} content not followed by `\\r\\n`"),
            ));
        }
        let content = if kind.has_content() {
            body[at..end].to_vec()
        } else {
            Vec::new()
        };
        events.push(Event { kind, content });
        at = end + 2;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(content: &str) -> Event {
        Event {
            kind: Kind::Text,
            content: content.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_protocols_own_examples_parse() {
        // From Pushpin's `websocket-over-http.md`.
        assert_eq!(
            parse(b"TEXT B\r\nhello world\r\n", 100).unwrap(),
            [text("hello world")]
        );
        assert_eq!(parse(b"OPEN\r\n", 100).unwrap(), [Event::bare(Kind::Open)]);
        assert_eq!(
            parse(b"OPEN 0\r\n\r\n", 100).unwrap(),
            [Event::bare(Kind::Open)]
        );
        assert_eq!(
            parse(
                b"TEXT 5\r\nworld\r\nTEXT 1C\r\nhere is another nice message\r\n",
                100
            )
            .unwrap(),
            [text("world"), text("here is another nice message")]
        );
        let close = parse(b"CLOSE 2\r\n\x03\xe8\r\n", 100).unwrap();
        assert_eq!(close[0].close_code(), Some((1000, String::new())));
        assert_eq!(parse(b"", 100).unwrap(), []);
    }

    #[test]
    fn encoding_parses_back() {
        let events = vec![
            Event::bare(Kind::Open),
            text("héllo\r\nTEXT 1\r\n"),
            Event {
                kind: Kind::Binary,
                content: vec![0, 255, 13, 10],
            },
            Event::bare(Kind::Ping),
            Event::close(1011, "boom"),
            Event::bare(Kind::Disconnect),
        ];
        let wire = encode(&events);
        assert!(wire.starts_with(b"OPEN\r\nTEXT 10\r\n"));
        assert_eq!(parse(&wire, 100).unwrap(), events);
        assert_eq!(events[4].close_code(), Some((1011, "boom".to_owned())));
    }

    #[test]
    fn content_on_a_bare_event_is_ignored() {
        assert_eq!(
            parse(b"PING 3\r\nabc\r\n", 100).unwrap(),
            [Event::bare(Kind::Ping)]
        );
    }

    #[test]
    fn malformed_bodies_are_refused_with_where() {
        for (body, reason) in [
            (&b"HELLO\r\n"[..], "unknown event type"),
            (b"TEXT\r\n", "without its size"),
            (b"TEXT 5\r\nhi\r\n", "cut short"),
            (b"TEXT 2\r\nhiX\r\n", "not followed"),
            (b"TEXT zz\r\nhi\r\n", "not a hex size"),
            (b"TEXT +2\r\nhi\r\n", "not a hex size"),
            (b"TEXT FFFFFFFFFFFFFFFF\r\n", "over the limit"),
            (b"OPEN", "without its"),
            (b"text 2\r\nhi\r\n", "unknown event type"),
        ] {
            let error = parse(body, 100).unwrap_err();
            assert!(
                error.reason.contains(reason),
                "{:?}: {error}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_line_without_an_end_is_refused_without_reading_on() {
        let mut body = b"TEXT ".to_vec();
        body.extend(std::iter::repeat_n(b'0', 1 << 20));
        let error = parse(&body, 100).unwrap_err();
        assert_eq!(error.offset, 0);
    }

    #[test]
    fn a_body_of_too_many_events_is_refused() {
        let body = b"PING\r\n".repeat(11);
        assert_eq!(parse_at_most(&body, 100, 11).unwrap().len(), 11);
        let error = parse_at_most(&body, 100, 10).unwrap_err();
        assert!(error.reason.contains("more than 10 events"), "{error}");
    }

    #[test]
    fn an_event_over_the_bound_is_refused() {
        let error = parse(b"TEXT 65\r\n", 100).unwrap_err();
        assert!(error.reason.contains("101 bytes"), "{error}");
    }
}
