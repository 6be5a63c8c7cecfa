//! Strict parsing of the framing headers the host reads itself.
//!
//! `Content-Length` is parsed here and nowhere else, by RFC 9110 §8.6: one or
//! more ASCII digits and nothing else. A sign (`+5`), whitespace (` 5`), a list
//! (`5,5`) or two differing headers are rejected rather than guessed at, so
//! the host and any proxy in front of it never disagree on where a body ends.

use http::HeaderMap;
use http::header::CONTENT_LENGTH;

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
