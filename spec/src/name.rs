//! Function names: what a name may be. Names become file names under the
//! data dir and path segments of the admin API, so the alphabet is small.

/// Longest function name, in bytes.
pub const MAX_NAME_LEN: usize = 63;

/// Checks a function name: 1–63 of `a-z`, `0-9`, `-`, `_`, starting with a
/// letter or digit.
pub fn validate_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if valid {
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
}
