//! `Grip-Sig`: the host signs its calls to a WebSocket function, as
//! Pushpin signs its requests, so a handler written for Pushpin can check
//! that a call came from the gateway. The key is the function's secret
//! [`KEY_SECRET`] (`wisp secret set NAME grip-key …`); a function without
//! one gets no signature (the headers it trusts are the host's anyway: no
//! client can send them). The token is an HS256 JWT with `iss: "wisp"` and
//! an `exp` an hour ahead.

use http::HeaderValue;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The secret a function's calls are signed with.
pub(crate) const KEY_SECRET: &str = "grip-key";

/// How long a signature is valid.
const VALID_FOR: Duration = Duration::from_secs(3600);

#[derive(Serialize)]
struct Claims {
    iss: &'static str,
    exp: u64,
}

/// A `Grip-Sig` signed with `key`.
pub(crate) fn sign(key: &str) -> Option<HeaderValue> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let claims = Claims {
        iss: "wisp",
        exp: (now + VALID_FOR).as_secs(),
    };
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .ok()?;
    HeaderValue::try_from(token).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[derive(serde::Deserialize)]
    struct Read {
        iss: String,
    }

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let token = sign("s3cret").unwrap();
        let token = token.to_str().unwrap();
        let mut validation = Validation::default();
        validation.set_issuer(&["wisp"]);
        let read =
            jsonwebtoken::decode::<Read>(token, &DecodingKey::from_secret(b"s3cret"), &validation)
                .unwrap();
        assert_eq!(read.claims.iss, "wisp");
        assert!(
            jsonwebtoken::decode::<Read>(token, &DecodingKey::from_secret(b"other"), &validation)
                .is_err()
        );
    }
}
