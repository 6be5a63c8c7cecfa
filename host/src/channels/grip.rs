//! GRIP's formats: what a publish carries (the EPCP `items` body, with the
//! `ws-message`, `http-stream` and `http-response` formats), the control
//! messages a function sends a WebSocket in GRIP mode (`c:{"type":
//! "subscribe", "channel": "room"}`), and the `Grip-*` response headers
//! that hold an HTTP request open.
//!
//! Everything here is parsed strictly and within bounds: a publish of
//! more than [`MAX_ITEMS`] items, a channel name that is empty, longer
//! than [`MAX_CHANNEL`] bytes or not printable ASCII, or an item with
//! none of the three formats is refused whole, naming the item.

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use std::time::Duration;

/// Most items one publish may carry.
pub(crate) const MAX_ITEMS: usize = 1000;
/// Longest channel name, in bytes.
pub(crate) const MAX_CHANNEL: usize = 256;
/// Default time a long-poll (`Grip-Hold: response`) is held.
pub(crate) const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(55);
/// Longest time a long-poll may ask to be held.
pub(crate) const MAX_HOLD_TIMEOUT: Duration = Duration::from_secs(300);

/// One published item, for every subscriber of its channel.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub(crate) channel: String,
    /// For WebSocket subscribers.
    pub(crate) ws: Option<WsMessage>,
    /// For HTTP streams (`Grip-Hold: stream`).
    pub(crate) stream: Option<StreamChunk>,
    /// For long-polls (`Grip-Hold: response`).
    pub(crate) response: Option<HttpResponse>,
}

/// A `ws-message`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WsMessage {
    Text(String),
    Binary(Bytes),
    /// `"action": "close"`: close the connection with this code.
    Close {
        code: u16,
        reason: String,
    },
}

/// An `http-stream` item: more of the stream, or its end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StreamChunk {
    Data(Bytes),
    Close,
}

/// An `http-response` item: the answer a long-poll gets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpResponse {
    pub(crate) code: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    items: Vec<RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    channel: String,
    #[serde(rename = "ws-message")]
    ws_message: Option<RawContent>,
    #[serde(rename = "http-stream")]
    http_stream: Option<RawContent>,
    #[serde(rename = "http-response")]
    http_response: Option<RawResponse>,
}

#[derive(Deserialize)]
struct RawContent {
    content: Option<String>,
    #[serde(rename = "content-bin")]
    content_bin: Option<String>,
    action: Option<String>,
    code: Option<u16>,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct RawResponse {
    code: Option<u16>,
    headers: Option<std::collections::BTreeMap<String, String>>,
    body: Option<String>,
    #[serde(rename = "body-bin")]
    body_bin: Option<String>,
}

/// Parses a publish body (`{"items": [...]}`).
pub(crate) fn parse_publish(body: &[u8]) -> Result<Vec<Item>, String> {
    let parsed: PublishBody = serde_json::from_slice(body)
        .map_err(|e| format!("a GRIP publish is JSON `{{\"items\": [...]}}`: {e}"))?;
    if parsed.items.len() > MAX_ITEMS {
        return Err(format!(
            "{} items in one publish; at most {MAX_ITEMS}",
            parsed.items.len()
        ));
    }
    let items: Vec<Item> = parsed
        .items
        .into_iter()
        .enumerate()
        .map(|(index, raw)| item(raw).map_err(|why| format!("item {index}: {why}")))
        .collect::<Result<_, _>>()?;
    // A subscriber's queue takes at most this many: one publish must not
    // drop a whole room by itself.
    let mut per_channel: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for item in &items {
        let count = per_channel.entry(item.channel.as_str()).or_default();
        *count += 1;
        if *count > super::registry::QUEUE {
            return Err(format!(
                "more than {} items for channel `{}` in one publish",
                super::registry::QUEUE,
                item.channel
            ));
        }
    }
    Ok(items)
}

fn item(raw: RawItem) -> Result<Item, String> {
    check_channel(&raw.channel)?;
    let ws = raw.ws_message.map(ws_message).transpose()?;
    let stream = raw.http_stream.map(stream_chunk).transpose()?;
    let response = raw.http_response.map(http_response).transpose()?;
    if ws.is_none() && stream.is_none() && response.is_none() {
        return Err("none of `ws-message`, `http-stream` or `http-response`".to_owned());
    }
    Ok(Item {
        channel: raw.channel,
        ws,
        stream,
        response,
    })
}

/// A channel name: 1 to [`MAX_CHANNEL`] bytes of printable ASCII.
pub(crate) fn check_channel(channel: &str) -> Result<(), String> {
    let printable = channel.bytes().all(|b| b.is_ascii_graphic());
    if channel.is_empty() || channel.len() > MAX_CHANNEL || !printable {
        return Err(format!(
            "a channel name is 1 to {MAX_CHANNEL} bytes of printable ASCII, not `{}`",
            channel.escape_debug()
        ));
    }
    Ok(())
}

fn content(raw: &RawContent) -> Result<Option<Result<String, Bytes>>, String> {
    match (&raw.content, &raw.content_bin) {
        (Some(_), Some(_)) => Err("both `content` and `content-bin`".to_owned()),
        (Some(text), None) => Ok(Some(Ok(text.clone()))),
        (None, Some(bin)) => base64::engine::general_purpose::STANDARD
            .decode(bin)
            .map(|bytes| Some(Err(Bytes::from(bytes))))
            .map_err(|e| format!("`content-bin` is not base64: {e}")),
        (None, None) => Ok(None),
    }
}

/// Response headers that frame or route a response, which only the host
/// sets.
const FRAMING: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "keep-alive",
    "te",
    "trailer",
    "proxy-connection",
];

/// True for a close code an endpoint may send (RFC 6455 §7.4): 1000 to
/// 1003, 1007 to 1014, and the registered and private ranges 3000 to 4999.
pub(crate) fn sendable_close(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn ws_message(raw: RawContent) -> Result<WsMessage, String> {
    if raw.action.as_deref() == Some("close") {
        let code = raw.code.unwrap_or(1000);
        if !sendable_close(code) {
            return Err(format!("close code {code} may not be sent"));
        }
        let reason = raw.reason.unwrap_or_default();
        if reason.len() > 123 {
            return Err("a close reason is at most 123 bytes".to_owned());
        }
        return Ok(WsMessage::Close { code, reason });
    }
    match content(&raw)? {
        Some(Ok(text)) => Ok(WsMessage::Text(text)),
        Some(Err(bytes)) => Ok(WsMessage::Binary(bytes)),
        None => Err(
            "a `ws-message` without `content`, `content-bin` or `\"action\": \"close\"`".to_owned(),
        ),
    }
}

fn stream_chunk(raw: RawContent) -> Result<StreamChunk, String> {
    if raw.action.as_deref() == Some("close") {
        return Ok(StreamChunk::Close);
    }
    match content(&raw)? {
        Some(Ok(text)) => Ok(StreamChunk::Data(Bytes::from(text))),
        Some(Err(bytes)) => Ok(StreamChunk::Data(bytes)),
        None => Err(
            "an `http-stream` without `content`, `content-bin` or `\"action\": \"close\"`"
                .to_owned(),
        ),
    }
}

fn http_response(raw: RawResponse) -> Result<HttpResponse, String> {
    let body = match (raw.body, raw.body_bin) {
        (Some(_), Some(_)) => return Err("both `body` and `body-bin`".to_owned()),
        (Some(text), None) => Bytes::from(text),
        (None, Some(bin)) => base64::engine::general_purpose::STANDARD
            .decode(bin)
            .map(Bytes::from)
            .map_err(|e| format!("`body-bin` is not base64: {e}"))?,
        (None, None) => Bytes::new(),
    };
    let code = raw.code.unwrap_or(200);
    if !(200..=599).contains(&code) {
        return Err(format!(
            "`code` {code} is not a final HTTP status (200 to 599)"
        ));
    }
    let headers: Vec<(String, String)> = raw.headers.unwrap_or_default().into_iter().collect();
    for (name, value) in &headers {
        let Ok(header) = http::HeaderName::try_from(name.as_str()) else {
            return Err(format!("a bad header `{}`", name.escape_debug()));
        };
        if http::HeaderValue::try_from(value.as_str()).is_err() {
            return Err(format!("a bad value for header `{header}`"));
        }
        // The host frames the response: a publisher cannot.
        if FRAMING.contains(&header.as_str()) || header.as_str().starts_with("grip-") {
            return Err(format!("header `{header}` is the host's to set"));
        }
    }
    Ok(HttpResponse {
        code,
        headers,
        body,
    })
}

/// A control message a function sends its WebSocket in GRIP mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    Subscribe(String),
    Unsubscribe(String),
    /// Stop calling the function; the client's messages are dropped.
    Detach,
}

#[derive(Deserialize)]
struct RawControl {
    #[serde(rename = "type")]
    kind: String,
    channel: Option<String>,
}

/// Parses a control message (the text after `c:`).
pub(crate) fn parse_control(text: &str) -> Result<Control, String> {
    let raw: RawControl = serde_json::from_str(text)
        .map_err(|e| format!("a control message is JSON with a `type`: {e}"))?;
    let channel = || {
        let channel = raw.channel.clone().ok_or("no `channel`")?;
        check_channel(&channel)?;
        Ok::<_, String>(channel)
    };
    match raw.kind.as_str() {
        "subscribe" => Ok(Control::Subscribe(channel()?)),
        "unsubscribe" => Ok(Control::Unsubscribe(channel()?)),
        "detach" => Ok(Control::Detach),
        other => Err(format!(
            "unknown control message type `{}`",
            other.escape_debug()
        )),
    }
}

/// The message prefix a function's `Sec-WebSocket-Extensions` asks for,
/// when it turns GRIP on (`grip`, or `grip; message-prefix="…"`).
pub(crate) fn grip_prefix(extensions: &http::HeaderMap) -> Option<String> {
    for value in extensions.get_all(http::header::SEC_WEBSOCKET_EXTENSIONS) {
        let Ok(value) = value.to_str() else { continue };
        for extension in value.split(',') {
            let mut params = extension.split(';').map(str::trim);
            if params.next() != Some("grip") {
                continue;
            }
            let prefix = params
                .filter_map(|param| param.strip_prefix("message-prefix="))
                .map(|p| p.trim_matches('"').to_owned())
                .next();
            return Some(prefix.unwrap_or_else(|| "m:".to_owned()));
        }
    }
    None
}

/// How a function's response holds its request open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hold {
    /// `Grip-Hold: stream`: the response streams what is published.
    Stream { channels: Vec<String> },
    /// `Grip-Hold: response`: the request waits for one published
    /// response, or for the timeout and then gets the function's own.
    Response {
        channels: Vec<String>,
        timeout: Duration,
    },
}

/// The hold a response's `Grip-*` headers ask for; `Err` says why they
/// are wrong (the client then gets a 502).
pub(crate) fn hold(headers: &http::HeaderMap) -> Option<Result<Hold, String>> {
    let mode = headers.get("grip-hold")?;
    Some(parse_hold(mode, headers))
}

fn parse_hold(mode: &http::HeaderValue, headers: &http::HeaderMap) -> Result<Hold, String> {
    let mut channels = Vec::new();
    for value in headers.get_all("grip-channel") {
        let text = value
            .to_str()
            .map_err(|_| "a `Grip-Channel` that is not text")?;
        for channel in text.split(',') {
            let name = channel.split(';').next().unwrap_or_default().trim();
            check_channel(name)?;
            channels.push(name.to_owned());
        }
    }
    if channels.is_empty() {
        return Err("`Grip-Hold` without a `Grip-Channel`".to_owned());
    }
    if channels.len() > 64 {
        return Err("more than 64 `Grip-Channel`s".to_owned());
    }
    match mode.as_bytes() {
        b"stream" => Ok(Hold::Stream { channels }),
        b"response" => {
            let timeout = match headers.get("grip-timeout") {
                None => DEFAULT_HOLD_TIMEOUT,
                Some(value) => value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .ok_or("a `Grip-Timeout` that is not whole seconds")?
                    .min(MAX_HOLD_TIMEOUT),
            };
            Ok(Hold::Response { channels, timeout })
        }
        _ => Err("`Grip-Hold` is `stream` or `response`".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_formats_and_close_actions_parse() {
        let items = parse_publish(
            br#"{"items": [
                {"channel": "room", "ws-message": {"content": "hi"},
                 "http-stream": {"content": "data: hi\n\n"},
                 "http-response": {"code": 201, "headers": {"x-a": "1"}, "body": "hi\n"}},
                {"channel": "room", "ws-message": {"content-bin": "AAH/"}},
                {"channel": "room", "ws-message": {"action": "close", "code": 4001, "reason": "bye"},
                 "http-stream": {"action": "close"}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(items[0].ws, Some(WsMessage::Text("hi".to_owned())));
        assert_eq!(
            items[0].stream,
            Some(StreamChunk::Data(Bytes::from_static(b"data: hi\n\n")))
        );
        let response = items[0].response.as_ref().unwrap();
        assert_eq!((response.code, &response.body[..]), (201, &b"hi\n"[..]));
        assert_eq!(
            items[1].ws,
            Some(WsMessage::Binary(Bytes::from_static(&[0, 1, 255])))
        );
        assert_eq!(
            items[2].ws,
            Some(WsMessage::Close {
                code: 4001,
                reason: "bye".to_owned()
            })
        );
        assert_eq!(items[2].stream, Some(StreamChunk::Close));
    }

    #[test]
    fn bad_publishes_are_refused_naming_the_item() {
        for (body, why) in [
            (
                &br#"{"items": [{"channel": "", "ws-message": {"content": "x"}}]}"#[..],
                "item 0: a channel name",
            ),
            (
                br#"{"items": [{"channel": "a b", "ws-message": {"content": "x"}}]}"#,
                "item 0",
            ),
            (br#"{"items": [{"channel": "a"}]}"#, "none of"),
            (
                br#"{"items": [{"channel": "a", "ws-message": {"content-bin": "!!"}}]}"#,
                "not base64",
            ),
            (
                br#"{"items": [{"channel": "a", "http-response": {"code": 1000}}]}"#,
                "not a final HTTP status",
            ),
            (
                br#"{"items": [{"channel": "a", "http-response": {"code": 101}}]}"#,
                "not a final HTTP status",
            ),
            (
                br#"{"items": [{"channel": "a", "http-response": {"headers": {"Content-Length": "0"}}}]}"#,
                "the host's to set",
            ),
            (
                br#"{"items": [{"channel": "a", "http-response": {"headers": {"transfer-encoding": "chunked"}}}]}"#,
                "the host's to set",
            ),
            (
                br#"{"items": [{"channel": "a", "ws-message": {"action": "close", "code": 1006}}]}"#,
                "may not be sent",
            ),
            (br#"{"things": []}"#, "JSON"),
        ] {
            let error = parse_publish(body).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn one_publish_fits_a_subscribers_queue() {
        let item = r#"{"channel": "room", "ws-message": {"content": "x"}}"#;
        let publish = |count: usize| format!(r#"{{"items": [{}]}}"#, vec![item; count].join(","));
        let queue = crate::channels::registry::QUEUE;
        assert_eq!(
            parse_publish(publish(queue).as_bytes()).unwrap().len(),
            queue
        );
        let error = parse_publish(publish(queue + 1).as_bytes()).unwrap_err();
        assert!(error.contains("for channel `room`"), "{error}");
    }

    #[test]
    fn control_messages_parse() {
        assert_eq!(
            parse_control(r#"{"type": "subscribe", "channel": "room"}"#),
            Ok(Control::Subscribe("room".to_owned()))
        );
        assert_eq!(parse_control(r#"{"type": "detach"}"#), Ok(Control::Detach));
        assert!(parse_control(r#"{"type": "subscribe"}"#).is_err());
        assert!(parse_control(r#"{"type": "explode"}"#).is_err());
    }

    #[test]
    fn the_grip_extension_names_the_prefix() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grip_prefix(&headers), None);
        headers.insert("sec-websocket-extensions", "grip".parse().unwrap());
        assert_eq!(grip_prefix(&headers).as_deref(), Some("m:"));
        headers.insert(
            "sec-websocket-extensions",
            r#"grip; message-prefix="""#.parse().unwrap(),
        );
        assert_eq!(grip_prefix(&headers).as_deref(), Some(""));
    }

    #[test]
    fn holds_need_a_channel_and_a_known_mode() {
        let mut headers = http::HeaderMap::new();
        assert!(hold(&headers).is_none());
        headers.insert("grip-hold", "stream".parse().unwrap());
        assert!(hold(&headers).unwrap().is_err());
        headers.insert("grip-channel", "a, b; prev-id=3".parse().unwrap());
        assert_eq!(
            hold(&headers).unwrap(),
            Ok(Hold::Stream {
                channels: vec!["a".to_owned(), "b".to_owned()]
            })
        );
        headers.insert("grip-hold", "response".parse().unwrap());
        headers.insert("grip-timeout", "9999".parse().unwrap());
        assert_eq!(
            hold(&headers).unwrap(),
            Ok(Hold::Response {
                channels: vec!["a".to_owned(), "b".to_owned()],
                timeout: MAX_HOLD_TIMEOUT
            })
        );
        headers.insert("grip-hold", "forever".parse().unwrap());
        assert!(hold(&headers).unwrap().is_err());
    }
}
