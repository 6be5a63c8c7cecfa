//! Function and bucket names: what a name may be. Names become file names
//! under the data dir and path segments of the admin API, so the alphabet is
//! small; app-wide key-value buckets use the same one.

/// Longest function name, in bytes.
pub const MAX_NAME_LEN: usize = 63;

/// The bucket identifier that, like the empty one, opens a function's own
/// key-value bucket; no app bucket may take it.
pub const OWN_BUCKET: &str = "default";

/// True for 1–63 of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit.
fn is_small_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// True when `name` may name an app-wide key-value bucket: a function name
/// that is not [`OWN_BUCKET`].
pub fn is_bucket_name(name: &str) -> bool {
    is_small_name(name) && name != OWN_BUCKET
}

/// Checks a function name: 1–63 of `a-z`, `0-9`, `-`, `_`, starting with a
/// letter or digit.
pub fn validate_name(name: &str) -> Result<(), String> {
    if is_small_name(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid function name `{name}`: use 1 to {MAX_NAME_LEN} lowercase letters, digits, `-` or `_`, starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_small_lowercase_file_names() {
        for good in ["a", "hello-world", "v2_api", "9lives"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            "Hello",
            "-x",
            "_x",
            "a/b",
            "a.b",
            "..",
            too_long.as_str(),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bucket_names_are_function_names_but_not_default() {
        for good in ["sessions", "cache-2", "a_b"] {
            assert!(is_bucket_name(good), "{good}");
        }
        for bad in ["", "default", "Sessions", "a/b", "-x", "a.b"] {
            assert!(!is_bucket_name(bad), "{bad}");
        }
    }
}
