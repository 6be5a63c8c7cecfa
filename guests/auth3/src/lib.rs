//! `auth3`: WASI 0.3 HTTP middleware (`wasi:http/middleware`) that lets a
//! request through to the handler it sits in front of only with
//! `Authorization: Bearer TOKEN`, TOKEN being the function's config value
//! `auth-token` (`letmein` when it has none); anything else is answered 401
//! here. It imports `wasi:config`, so it fits only in front of a function
//! that imports it too.

mod bindings {
    wit_bindgen::generate!({
        path: ["../../wit/http-0.3.0", "../../wit/config-0.2.0-rc.1", "wit"],
        world: "wisp:auth3/auth3",
        generate_all,
    });
}

use bindings::exports::wasi::http::handler::Guest;
use bindings::wasi::http::handler as next;
use bindings::wasi::http::types::{ErrorCode, Request, Response};

struct Auth;

impl Guest for Auth {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let token = match bindings::wasi::config::store::get("auth-token") {
            Ok(Some(token)) => token,
            _ => "letmein".to_owned(),
        };
        let expected = format!("Bearer {token}");
        let authorized = request
            .get_headers()
            .get("authorization")
            .iter()
            .any(|value| value.as_slice() == expected.as_bytes());
        if !authorized {
            let refused = text("unauthorized: the auth middleware said no\n".into());
            let _ = refused.set_status_code(401);
            return Ok(refused);
        }
        next::handle(request).await
    }
}

#[path = "../../text3.rs"]
mod text3;
use text3::text;

bindings::export!(Auth with_types_in bindings);
