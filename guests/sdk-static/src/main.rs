//! `sdk-static`: serves files from a read-only directory the host preopens
//! at `/static` (`wisp deploy … --dir ./public:/static`). Paths that try to
//! leave the directory are refused by the host's capability-based file
//! system, not by this code.

use wisp_sdk::{HttpError, IntoResponse, Request, RequestExt, Response, http};

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn handle(request: Request) -> Response {
    let relative = request.path_info().trim_start_matches('/');
    let relative = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_owned()
    };
    let path = format!("/static/{relative}");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mut response = bytes.into_response();
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(content_type(&relative)),
            );
            response
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            HttpError::not_found(format!("no file `{relative}`")).into_response()
        }
        Err(e) => HttpError::new(
            http::StatusCode::FORBIDDEN,
            format!("cannot read `{relative}`: {e}"),
        )
        .into_response(),
    }
}

wisp_sdk::export!(handle);
