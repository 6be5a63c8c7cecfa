//! Content hashes of uploaded binaries: the identity of a function's code.
//!
//! The same bytes always hash the same, so the host stores a binary once and
//! `wisp up` can tell an unchanged function without uploading it.

/// Hex blake3 of a wasm binary.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceHash(String);

impl SourceHash {
    /// Hashes wasm bytes.
    pub fn of(wasm: &[u8]) -> SourceHash {
        SourceHash(blake3::hash(wasm).to_hex().to_string())
    }

    /// Accepts a stored hash (64 lowercase hex digits).
    pub fn parse(text: &str) -> Option<SourceHash> {
        let valid =
            text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| SourceHash(text.to_owned()))
    }

    /// The hash as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_reject_junk() {
        let hash = SourceHash::of(b"\0asm");
        assert_eq!(SourceHash::parse(hash.as_str()), Some(hash));
        assert!(SourceHash::parse("../etc/passwd").is_none());
        assert!(SourceHash::parse(&"A".repeat(64)).is_none());
    }
}
