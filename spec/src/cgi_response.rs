//! Parsing a CGI response (RFC 3875 §6) from what a guest wrote to stdout.
//!
//! A CGI response is header lines, a blank line, then the body. `Status:` sets
//! the status code (default 200, or 302 with `Location:`); a missing
//! `Content-Type` defaults to [`DEFAULT_CONTENT_TYPE`]. Lines may end in CRLF or
//! LF. Anything else — no blank line, a line that is not `Name: value`, a bad
//! status — is a [`CgiResponseError`], which the host answers with 502. Pure
//! code over bytes: no wasmtime, so it is unit-tested and fuzzed directly.
//!
//! A guest's status must be final and in [`ALLOWED_STATUS`]: a 1xx would
//! make the host send an interim or protocol-switching response (`101`) that
//! the guest cannot follow through, and codes past 599 are not HTTP.

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode};

/// Content type sent when the guest names none.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Largest header section accepted from a guest, in bytes.
pub const MAX_HEADER_SECTION_BYTES: usize = 64 * 1024;

/// The status codes a guest's `Status:` may name: final ones only.
pub const ALLOWED_STATUS: std::ops::RangeInclusive<u16> = 200..=599;

/// The head of a parsed CGI response; the body is `output[body_start..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiHead {
    /// Status code from `Status:`, or the default.
    pub status: StatusCode,
    /// Response headers, without the CGI-only `Status` field and without
    /// framing headers the host sets itself.
    pub headers: HeaderMap,
    /// Offset of the first body byte in the guest's output.
    pub body_start: usize,
}

/// Why a guest's output is not a valid CGI response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgiResponseError {
    /// The guest wrote nothing to stdout.
    #[error("the CGI guest wrote no response to stdout")]
    Empty,
    /// No blank line ends the header section.
    #[error("the CGI response has no blank line ending its headers")]
    Unterminated,
    /// The header section is larger than [`MAX_HEADER_SECTION_BYTES`].
    #[error("the CGI response headers exceed {MAX_HEADER_SECTION_BYTES} bytes")]
    HeadersTooLarge,
    /// A header line is not `Name: value`.
    #[error("CGI response header line {line} is not `Name: value`")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
    },
    /// A header name or value holds characters HTTP does not allow.
    #[error("CGI response header line {line} has an invalid name or value")]
    InvalidHeader {
        /// 1-based line number.
        line: usize,
    },
    /// `Status:` is not a number (not all digits).
    #[error("CGI `Status` header `{0}` is not a valid status code")]
    InvalidStatus(String),
    /// `Status:` names a number that is not three digits in [`ALLOWED_STATUS`]
    /// (a 1xx, or out of range); holds the number as the guest wrote it.
    #[error(
        "CGI status `{0}` is not allowed: a CGI response must have a final status between 200 and 599"
    )]
    StatusNotAllowed(String),
}

/// Headers a guest may not set: the host frames the body itself.
fn is_framing_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length" | "transfer-encoding" | "connection" | "keep-alive" | "upgrade"
    )
}

/// Parses the head of a CGI response.
pub fn parse(output: &[u8]) -> Result<CgiHead, CgiResponseError> {
    if output.is_empty() {
        return Err(CgiResponseError::Empty);
    }
    let mut status = None;
    let mut headers = HeaderMap::new();
    let mut pos = 0;
    let mut line_no = 0;
    loop {
        if pos > MAX_HEADER_SECTION_BYTES {
            return Err(CgiResponseError::HeadersTooLarge);
        }
        let Some(newline) = output[pos..].iter().position(|&b| b == b'\n') else {
            return Err(if output.len() - pos > MAX_HEADER_SECTION_BYTES {
                CgiResponseError::HeadersTooLarge
            } else {
                CgiResponseError::Unterminated
            });
        };
        line_no += 1;
        let raw = &output[pos..pos + newline];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos += newline + 1;
        if line.is_empty() {
            break;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(CgiResponseError::MalformedLine { line: line_no })?;
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if name.is_empty() || name.iter().any(u8::is_ascii_whitespace) {
            return Err(CgiResponseError::MalformedLine { line: line_no });
        }
        let invalid = CgiResponseError::InvalidHeader { line: line_no };
        let name = HeaderName::from_bytes(name).map_err(|_| invalid.clone())?;
        if name.as_str() == "status" {
            status = Some(parse_status(value)?);
            continue;
        }
        if is_framing_header(&name) {
            continue;
        }
        let value = HeaderValue::from_bytes(value).map_err(|_| invalid)?;
        headers.append(name, value);
    }
    let status = match status {
        Some(status) => status,
        None if headers.contains_key(LOCATION) => StatusCode::FOUND,
        None => StatusCode::OK,
    };
    if !headers.contains_key(CONTENT_TYPE) && pos < output.len() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    }
    Ok(CgiHead {
        status,
        headers,
        body_start: pos,
    })
}

/// `Status: 404 Not Found` → 404. The reason phrase is ignored.
fn parse_status(value: &[u8]) -> Result<StatusCode, CgiResponseError> {
    let invalid = || CgiResponseError::InvalidStatus(String::from_utf8_lossy(value).into_owned());
    let code = value.split(|&b| b == b' ').next().ok_or_else(invalid)?;
    if code.is_empty() || !code.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let not_allowed = || CgiResponseError::StatusNotAllowed(String::from_utf8_lossy(code).into());
    // Three digits, as RFC 3875 §6.3.3 says: no leading zero (`0200`) passes,
    // and the fold below cannot overflow.
    if code.len() != 3 {
        return Err(not_allowed());
    }
    let number = code
        .iter()
        .fold(0u16, |n, digit| n * 10 + u16::from(digit - b'0'));
    if !ALLOWED_STATUS.contains(&number) {
        return Err(not_allowed());
    }
    StatusCode::from_u16(number).map_err(|_| not_allowed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body<'a>(out: &'a [u8], head: &CgiHead) -> &'a [u8] {
        &out[head.body_start..]
    }

    #[test]
    fn headers_blank_line_then_body() {
        let out = b"Content-Type: text/html\nX-A: 1\n\n<p>hi</p>";
        let head = parse(out).unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers["content-type"], "text/html");
        assert_eq!(head.headers["x-a"], "1");
        assert_eq!(body(out, &head), b"<p>hi</p>");
    }

    #[test]
    fn crlf_line_endings_are_accepted() {
        let out = b"Content-Type: text/plain\r\n\r\nbody\r\n";
        let head = parse(out).unwrap();
        assert_eq!(body(out, &head), b"body\r\n");
    }

    #[test]
    fn status_header_sets_the_code_and_is_not_forwarded() {
        let head = parse(b"Status: 404 Not Found\nContent-Type: text/plain\n\nnope").unwrap();
        assert_eq!(head.status, StatusCode::NOT_FOUND);
        assert!(!head.headers.contains_key("status"));
    }

    #[test]
    fn interim_and_out_of_range_statuses_are_refused() {
        for code in [
            "100", "101", "103", "199", "600", "999", "99", "42", "0200", "1000",
        ] {
            let out = format!("Status: {code} Whatever\nContent-Type: text/plain\n\nbody");
            assert_eq!(
                parse(out.as_bytes()),
                Err(CgiResponseError::StatusNotAllowed(code.to_owned())),
                "{code}"
            );
        }
    }

    #[test]
    fn refused_status_message_names_the_status_and_the_range() {
        let error = parse(b"Status: 101 Switching Protocols\nUpgrade: websocket\n\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "CGI status `101` is not allowed: \
             a CGI response must have a final status between 200 and 599"
        );
    }

    #[test]
    fn final_statuses_at_both_ends_of_the_range_are_kept() {
        assert_eq!(parse(b"Status: 200\n\n").unwrap().status, StatusCode::OK);
        assert_eq!(parse(b"Status: 599 Odd\n\n").unwrap().status.as_u16(), 599);
        let redirect = parse(b"Status: 301\nLocation: /new\n\n").unwrap();
        assert_eq!(redirect.status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(redirect.headers["location"], "/new");
    }

    #[test]
    fn location_without_status_redirects() {
        let head = parse(b"Location: https://example.com/\n\n").unwrap();
        assert_eq!(head.status, StatusCode::FOUND);
    }

    #[test]
    fn missing_content_type_defaults_when_there_is_a_body() {
        let head = parse(b"X-A: 1\n\nhello").unwrap();
        assert_eq!(head.headers["content-type"], DEFAULT_CONTENT_TYPE);
        let empty = parse(b"Status: 204\n\n").unwrap();
        assert!(!empty.headers.contains_key("content-type"));
    }

    #[test]
    fn framing_headers_from_the_guest_are_dropped() {
        let head = parse(b"Content-Length: 999\nTransfer-Encoding: chunked\n\nabc").unwrap();
        assert!(!head.headers.contains_key("content-length"));
        assert!(!head.headers.contains_key("transfer-encoding"));
    }

    #[test]
    fn malformed_responses_are_errors() {
        assert_eq!(parse(b""), Err(CgiResponseError::Empty));
        assert_eq!(
            parse(b"just some text"),
            Err(CgiResponseError::Unterminated)
        );
        assert_eq!(
            parse(b"Content-Type: text/plain\nno colon here\n\n"),
            Err(CgiResponseError::MalformedLine { line: 2 })
        );
        assert_eq!(
            parse(b"Bad Name: x\n\n"),
            Err(CgiResponseError::MalformedLine { line: 1 })
        );
        assert!(matches!(
            parse(b"Status: abc\n\n"),
            Err(CgiResponseError::InvalidStatus(_))
        ));
        assert!(matches!(
            parse(b"Status: 4x2\n\n"),
            Err(CgiResponseError::InvalidStatus(_))
        ));
        assert_eq!(
            parse(b"X-A: bad\x01value\n\n"),
            Err(CgiResponseError::InvalidHeader { line: 1 })
        );
    }

    #[test]
    fn oversized_header_section_is_refused() {
        let mut out = Vec::new();
        while out.len() <= MAX_HEADER_SECTION_BYTES {
            out.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
        }
        out.extend_from_slice(b"\nbody");
        assert_eq!(parse(&out), Err(CgiResponseError::HeadersTooLarge));
        let unterminated = vec![b'a'; MAX_HEADER_SECTION_BYTES + 10];
        assert_eq!(parse(&unterminated), Err(CgiResponseError::HeadersTooLarge));
    }
}
