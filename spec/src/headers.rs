//! The names of the headers wisp reads and sets, shared by the host and
//! the CLI, and strict parsing of the framing headers the host reads itself.
//!
//! `Content-Length` is parsed here and nowhere else, by RFC 9110 §8.6: one or
//! more ASCII digits and nothing else. A sign (`+5`), whitespace (` 5`), a list
//! (`5,5`) or two differing headers are rejected rather than guessed at, so
//! the host and any proxy in front of it never disagree on where a body ends.

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderName};

/// Response header naming the version that served a request; also read from
/// requests to pin one. A public request may pin a version that takes
/// traffic or a preview that never took any (deployed with `--no-traffic`);
/// a version that lost its traffic answers as if it did not exist.
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("x-wisp-version");

/// The request id header: kept from the client when it is sane, else made
/// by the host; echoed on the response and passed to chained calls.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The W3C trace context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Header telling a component the part of the path after its route
/// (`wisp-sdk`'s `RequestExt::path_info` reads it); set by the host only.
pub const PATH_INFO_HEADER: HeaderName = HeaderName::from_static("x-wisp-path-info");

/// Request header telling the guest what started its run (`cron`); absent
/// for ordinary HTTP requests.
pub const TRIGGER_HEADER: HeaderName = HeaderName::from_static("x-wisp-trigger");

/// Request header carrying the schedule of a cron run.
pub const SCHEDULE_HEADER: HeaderName = HeaderName::from_static("x-wisp-schedule");

/// Response header carrying an async call's id (and the request header of
/// its run).
pub const CALL_ID_HEADER: HeaderName = HeaderName::from_static("x-wisp-call-id");

/// Request header telling an async call's run which attempt it is (1, 2, …).
pub const ATTEMPT_HEADER: HeaderName = HeaderName::from_static("x-wisp-attempt");

/// Request header naming where to POST an async call's result.
pub const CALLBACK_HEADER: HeaderName = HeaderName::from_static("x-wisp-callback");

/// Request header naming the calling function of a chained request.
pub const CALLER_HEADER: HeaderName = HeaderName::from_static("x-wisp-caller");

/// Request header carrying how many chained calls led to a request; set by
/// the host only.
pub const DEPTH_HEADER: HeaderName = HeaderName::from_static("x-wisp-chain-depth");

/// RFC 7240's request header.
pub const PREFER: HeaderName = HeaderName::from_static("prefer");

/// RFC 7240's response header.
pub const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// Every request header only the host sets for guests: what started a run,
/// a cron run's schedule, an async call's id and attempt, and where a
/// chained call came from. A later host-set header joins this list.
pub const HOST_OWNED_HEADERS: [HeaderName; 6] = [
    TRIGGER_HEADER,
    SCHEDULE_HEADER,
    CALL_ID_HEADER,
    ATTEMPT_HEADER,
    CALLER_HEADER,
    DEPTH_HEADER,
];

/// Request header naming a WebSocket connection in the host's calls to its
/// function (Pushpin's WebSocket-over-HTTP); set by the host only.
pub const CONNECTION_ID_HEADER: HeaderName = HeaderName::from_static("connection-id");

/// Response header with which a WebSocket function asks the host to call
/// it again after that many seconds without events.
pub const KEEP_ALIVE_INTERVAL_HEADER: HeaderName = HeaderName::from_static("keep-alive-interval");

/// The content type of a body of WebSocket-over-HTTP events.
pub const WEBSOCKET_EVENTS: &str = "application/websocket-events";

/// Prefix of the request headers carrying a WebSocket connection's state
/// (`Meta-User`), set by the host only.
pub const META_PREFIX: &str = "meta-";

/// Prefix of the response headers that set a connection's state
/// (`Set-Meta-User: alice`; an empty value deletes it).
pub const SET_META_PREFIX: &str = "set-meta-";

/// Prefix of GRIP's headers, which only the host (as the GRIP proxy) sets
/// on requests.
pub const GRIP_PREFIX: &str = "grip-";

/// Removes the headers of the host's WebSocket gateway
/// (`Connection-Id`, `Meta-*`, `Grip-*`) from a request it did not make:
/// a client, or another function, must not pose as the gateway.
pub fn strip_gateway_headers(headers: &mut HeaderMap) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_gateway_header(name))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

/// True for `Connection-Id`, `Meta-*` and `Grip-*`.
pub fn is_gateway_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == CONNECTION_ID_HEADER.as_str()
        || name.starts_with(META_PREFIX)
        || name.starts_with(GRIP_PREFIX)
}

/// True when a body is declared to be WebSocket-over-HTTP events (which
/// only the host's gateway sends a function).
pub fn is_websocket_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CONTENT_TYPE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            let media = value.split(';').next().unwrap_or_default();
            media.trim().eq_ignore_ascii_case(WEBSOCKET_EVENTS)
        })
}

/// Removes from a request the headers only the host may set
/// ([`HOST_OWNED_HEADERS`]): every inbound request (a client's, a chained
/// call's, a stored async call's) passes here before the host sets its own.
pub fn strip_host_headers(headers: &mut HeaderMap) {
    for name in HOST_OWNED_HEADERS {
        headers.remove(name);
    }
}

/// True when `headers` ask for an async answer (`Prefer: respond-async`,
/// among any other preferences).
pub fn wants_async(headers: &HeaderMap) -> bool {
    headers
        .get_all(PREFER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| {
            let token = preference.split(';').next().unwrap_or_default();
            token.trim().eq_ignore_ascii_case("respond-async")
        })
}

/// A `Content-Length` that is not a plain decimal number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `Content-Length` header `{0}`: expected a decimal number of bytes")]
pub struct BadContentLength(pub String);

/// The declared body length: `None` when there is no `Content-Length`.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, BadContentLength> {
    let mut found = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let text = value.to_str().unwrap_or("");
        let parsed = parse_content_length(text)
            .ok_or_else(|| BadContentLength(String::from_utf8_lossy(value.as_bytes()).into()))?;
        if found.is_some_and(|n| n != parsed) {
            return Err(BadContentLength(text.to_owned()));
        }
        found = Some(parsed);
    }
    Ok(found)
}

/// `5` → 5; anything but 1–19 ASCII digits → `None`.
pub fn parse_content_length(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(CONTENT_LENGTH, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn plain_digits_are_a_length() {
        assert_eq!(content_length(&headers(&[])), Ok(None));
        assert_eq!(content_length(&headers(&["0"])), Ok(Some(0)));
        assert_eq!(content_length(&headers(&["1024"])), Ok(Some(1024)));
        assert_eq!(content_length(&headers(&["7", "7"])), Ok(Some(7)));
    }

    #[test]
    fn signs_spaces_lists_and_disagreements_are_rejected() {
        for bad in [
            "+5",
            " 5",
            "5 ",
            "5,5",
            "-1",
            "0x10",
            "",
            "99999999999999999999",
        ] {
            assert!(parse_content_length(bad).is_none(), "{bad:?}");
        }
        assert!(content_length(&headers(&["5,5"])).is_err());
        assert!(content_length(&headers(&["5", "6"])).is_err());
    }
}
