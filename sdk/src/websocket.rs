//! WebSocket functions (a function deployed with `websocket = on`): the
//! host holds each connection and calls the function once per batch of
//! its events, over Pushpin's WebSocket-over-HTTP protocol, each call in a
//! fresh sandbox.
//!
//! [`events`] reads a call's events, [`Reply`] writes the answer — the
//! events for the client, state kept on the connection ([`Reply::meta`],
//! read back with [`meta`]), and, in GRIP mode ([`Reply::grip`]), the
//! channels the connection listens on. [`publish`] sends a message to
//! every listener of a channel, on every host (the function needs
//! `allow-outbound = ["http://wisp.internal"]`).
//!
//! ```no_run
//! use wisp_sdk::websocket::{self, Kind, Reply};
//! use wisp_sdk::{Error, IntoResponse, Request, Response};
//!
//! async fn chat(mut request: Request) -> Result<Response, Error> {
//!     let mut reply = Reply::new().grip();
//!     for event in websocket::events(&mut request).await? {
//!         match event.kind {
//!             Kind::Open => reply = reply.open().subscribe("lobby"),
//!             Kind::Text => {
//!                 let text = String::from_utf8_lossy(&event.content);
//!                 websocket::publish("lobby", &text).await?;
//!             }
//!             _ => {}
//!         }
//!     }
//!     Ok(reply.into_response())
//! }
//! ```

use crate::fetch::FetchError;
pub use crate::websocket_events::{Event, Kind, ParseError, encode, parse};
use crate::{Request, Response, response::IntoResponse};
use bytes::Bytes;
use http::HeaderValue;
use http::header::CONTENT_TYPE;

/// The content type of a call's events and of its answer.
pub const EVENTS_CONTENT_TYPE: &str = "application/websocket-events";

/// Largest event a function reads (the host's own cap on a message is at
/// most this).
const MAX_EVENT: usize = 16 << 20;

/// True when `request` is a call from the host's WebSocket gateway (its
/// body is events). Only the host can make such a call: a client's
/// request with this content type is refused before any function sees it.
pub fn is_events(request: &Request) -> bool {
    // The host's own test, so a function never takes for events what the
    // host let through as an ordinary body.
    request
        .headers()
        .get_all(CONTENT_TYPE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            let media = value.split(';').next().unwrap_or_default();
            media.trim().eq_ignore_ascii_case(EVENTS_CONTENT_TYPE)
        })
}

/// The connection's id (`Connection-Id`), set by the host.
pub fn connection_id(request: &Request) -> Option<&str> {
    header(request, "connection-id")
}

/// State the function keeps on the connection, set earlier with
/// [`Reply::meta`] (`Meta-NAME` on the call).
pub fn meta<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    header(request, &format!("meta-{name}"))
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The call's events; an error if its body is not events.
pub async fn events(request: &mut Request) -> Result<Vec<Event>, crate::Error> {
    let body = request.body_mut().contents().await?.to_vec();
    Ok(crate::websocket_events::parse(&body, MAX_EVENT)?)
}

/// A function's answer to a call: the events for its client and what the
/// host should keep or do.
#[derive(Debug, Default, Clone)]
pub struct Reply {
    events: Vec<Event>,
    headers: Vec<(String, String)>,
    grip: bool,
}

impl Reply {
    /// An answer with no events yet.
    pub fn new() -> Reply {
        Reply::default()
    }

    /// GRIP mode: [`Reply::text`] gets the `m:` prefix, and
    /// [`Reply::subscribe`] and friends may be used. Say it on every answer
    /// of a GRIP connection (the host turns the mode on from the answer to
    /// `OPEN`).
    pub fn grip(mut self) -> Reply {
        self.grip = true;
        self.headers
            .push(("sec-websocket-extensions".to_owned(), "grip".to_owned()));
        self
    }

    /// Accepts the connection (the answer to `OPEN` must start with it).
    pub fn open(mut self) -> Reply {
        self.events.insert(0, Event::bare(Kind::Open));
        self
    }

    /// A text message for the client.
    pub fn text(mut self, text: &str) -> Reply {
        let prefix = if self.grip { "m:" } else { "" };
        self.events.push(Event {
            kind: Kind::Text,
            content: format!("{prefix}{text}").into_bytes(),
        });
        self
    }

    /// A binary message for the client.
    pub fn binary(mut self, data: impl Into<Vec<u8>>) -> Reply {
        self.events.push(Event {
            kind: Kind::Binary,
            content: data.into(),
        });
        self
    }

    /// Closes the connection with `code` and `reason`.
    pub fn close(mut self, code: u16, reason: &str) -> Reply {
        self.events.push(Event::close(code, reason));
        self
    }

    /// GRIP: listens on `channel` from now on.
    pub fn subscribe(self, channel: &str) -> Reply {
        self.control(serde_json::json!({"type": "subscribe", "channel": channel}))
    }

    /// GRIP: stops listening on `channel`.
    pub fn unsubscribe(self, channel: &str) -> Reply {
        self.control(serde_json::json!({"type": "unsubscribe", "channel": channel}))
    }

    /// GRIP: the function is not called again on this connection (the
    /// client's messages are dropped; what is published still reaches it).
    pub fn detach(self) -> Reply {
        self.control(serde_json::json!({"type": "detach"}))
    }

    fn control(mut self, message: serde_json::Value) -> Reply {
        self.events.push(Event {
            kind: Kind::Text,
            content: format!("c:{message}").into_bytes(),
        });
        self
    }

    /// Keeps `value` on the connection as `name` (read back with
    /// [`meta`] on later calls); an empty value forgets it.
    pub fn meta(mut self, name: &str, value: &str) -> Reply {
        self.headers
            .push((format!("set-meta-{name}"), value.to_owned()));
        self
    }

    /// Asks the host to call with no events after `seconds` quiet seconds.
    pub fn keep_alive(mut self, seconds: u32) -> Reply {
        self.headers
            .push(("keep-alive-interval".to_owned(), seconds.to_string()));
        self
    }

    /// The answer's body, as the host reads it.
    pub fn body(&self) -> Vec<u8> {
        crate::websocket_events::encode(&self.events)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = Response::new(self.body().into());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(EVENTS_CONTENT_TYPE));
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                headers.append(name, value);
            }
        }
        response
    }
}

/// A GRIP publish of `text` to `channel`: a text message for WebSocket
/// listeners, a server-sent event (`data: TEXT`) for streams, and the
/// body of a long-poll's answer.
pub fn publish_body(channel: &str, text: &str) -> String {
    let event: String = text.lines().map(|line| format!("data: {line}\n")).collect();
    serde_json::json!({"items": [{
        "channel": channel,
        "ws-message": {"content": text},
        "http-stream": {"content": format!("{event}\n")},
        "http-response": {"body": text},
    }]})
    .to_string()
}

/// Publishes `text` to every listener of `channel`, on every host
/// ([`publish_body`]'s formats).
pub async fn publish(channel: &str, text: &str) -> Result<(), FetchError> {
    let request = http::Request::post("http://wisp.internal/publish")
        .header(CONTENT_TYPE, "application/json")
        .body(Bytes::from(publish_body(channel, text)))
        .map_err(|e| FetchError::Invalid(e.to_string()))?;
    let response = crate::fetch::send(request).await?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(FetchError::Failed(format!(
            "the host refused the publish ({}): {}",
            response.status(),
            String::from_utf8_lossy(response.body()).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grip_reply_prefixes_text_and_carries_controls() {
        let reply = Reply::new()
            .grip()
            .text("hi")
            .subscribe("room")
            .open()
            .meta("user", "ann");
        let events = crate::websocket_events::parse(&reply.body(), 1 << 10).unwrap();
        assert_eq!(events[0].kind, Kind::Open);
        assert_eq!(events[1].content, b"m:hi");
        assert_eq!(
            String::from_utf8_lossy(&events[2].content),
            r#"c:{"channel":"room","type":"subscribe"}"#
        );
        let response = reply.into_response();
        assert_eq!(response.headers()["set-meta-user"], "ann");
        assert_eq!(response.headers()["sec-websocket-extensions"], "grip");
    }

    #[test]
    fn a_publish_carries_the_three_formats() {
        let body: serde_json::Value = serde_json::from_str(&publish_body("room", "a\nb")).unwrap();
        let item = &body["items"][0];
        assert_eq!(item["channel"], "room");
        assert_eq!(item["ws-message"]["content"], "a\nb");
        assert_eq!(item["http-stream"]["content"], "data: a\ndata: b\n\n");
        assert_eq!(item["http-response"]["body"], "a\nb");
    }
}
