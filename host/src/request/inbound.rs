//! What no guest may see of a client's request: the web console's session
//! cookie.
//!
//! Browsers keep cookies apart by host name, not by port (RFC 6265 §8.5):
//! an operator signed in to the console on `:8081` who then opens a
//! function on `:8080` of the same host sends that function the console's
//! cookie. So every request on the function path (public, `wisp invoke`,
//! async, chained) loses it here, in the library, before any ABI turns
//! headers into CGI variables or component fields — whichever listener an
//! embedder mounts. A client's request (trigger `http`) also loses the
//! headers only the host sets ([`wisp_spec::headers::strip_host_headers`]):
//! what started a run, and its call's id, are the host's word. A request
//! the WebSocket gateway did not make loses the gateway's headers
//! (`Connection-Id`, `Meta-*`, `Grip-*`): a connection's state is the
//! host's word too.

use http::{HeaderMap, HeaderValue, header};
use wisp_spec::api::Trigger;

/// The console session cookie's name.
pub const SESSION_COOKIE: &str = "wisp_session";

/// Makes a request's headers fit for a guest, for a run `trigger` started:
/// never the console's cookie; from a client, none of the host's own;
/// from anyone but the gateway, none of the gateway's.
pub(crate) fn admit(headers: &mut HeaderMap, trigger: Trigger) {
    strip_session_cookie(headers);
    if trigger == Trigger::Http {
        wisp_spec::headers::strip_host_headers(headers);
    }
    if trigger != Trigger::WebSocket {
        wisp_spec::headers::strip_gateway_headers(headers);
    }
}

/// Removes [`SESSION_COOKIE`] from every `Cookie` header of `headers`,
/// keeping the other cookies (and dropping a header left empty).
pub(crate) fn strip_session_cookie(headers: &mut HeaderMap) {
    if !headers
        .get_all(header::COOKIE)
        .iter()
        .any(|value| names_session(value.as_bytes()))
    {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let rest: Vec<&str> = text
                .split(';')
                .map(str::trim)
                .filter(|pair| !pair.is_empty() && !is_session_pair(pair))
                .collect();
            (!rest.is_empty())
                .then(|| HeaderValue::try_from(rest.join("; ")).ok())
                .flatten()
        })
        .collect();
    headers.remove(header::COOKIE);
    for value in kept {
        headers.append(header::COOKIE, value);
    }
}

/// True when a `Cookie` header value may carry the session cookie (a cheap
/// test first, so the common request pays no parsing).
fn names_session(value: &[u8]) -> bool {
    value
        .windows(SESSION_COOKIE.len())
        .any(|w| w.eq_ignore_ascii_case(SESSION_COOKIE.as_bytes()))
}

fn is_session_pair(pair: &str) -> bool {
    let name = pair.split('=').next().unwrap_or_default().trim();
    name.eq_ignore_ascii_case(SESSION_COOKIE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::COOKIE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn left(headers: &HeaderMap) -> Vec<&str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn the_session_cookie_goes_and_the_others_stay() {
        let mut headers = cookies(&["a=1; wisp_session=abc; b=2", "WISP_SESSION=x", "c=3"]);
        strip_session_cookie(&mut headers);
        assert_eq!(left(&headers), ["a=1; b=2", "c=3"]);
    }

    #[test]
    fn a_header_of_only_the_session_cookie_goes_whole() {
        let mut headers = cookies(&["wisp_session=abc"]);
        strip_session_cookie(&mut headers);
        assert!(headers.get(header::COOKIE).is_none());
    }

    #[test]
    fn a_similar_name_is_not_the_session_cookie() {
        let mut headers = cookies(&["wisp_session_theme=dark; my_wisp_session=1"]);
        strip_session_cookie(&mut headers);
        assert_eq!(
            left(&headers),
            ["wisp_session_theme=dark; my_wisp_session=1"]
        );
    }
}
