//! The web console: a small single-page app on the admin listener, built
//! into the binary (no CDN, no network at run time).
//!
//! * `GET /` serves the app, or — when the host has an admin token and the
//!   browser has no session — a login form;
//! * `POST /console/login` (form field `token`) checks the token in
//!   constant time and sets a session cookie (`HttpOnly`,
//!   `SameSite=Strict`); `POST /console/logout` ends the session;
//! * `GET /console/app.js` and `/console/style.css` are the app's files.
//!
//! The app calls the admin API itself. A request carrying a session cookie
//! instead of a bearer token must also carry `x-wisp-console: 1` unless it
//! only reads (a header no cross-site form can send), so another site
//! cannot make the browser act for the operator.

use super::constant_time_eq;
use crate::request::body::{ResponseBody, full};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::io::Read;
use std::sync::Mutex;

/// The session cookie's name.
const COOKIE: &str = "wisp_session";

/// The header a cookie-authenticated change must carry.
pub(super) const CONSOLE_HEADER: &str = "x-wisp-console";

/// Longest login form read.
const MAX_FORM_BYTES: usize = 8 << 10;

/// Most sessions kept at once; the oldest is dropped past it.
const MAX_SESSIONS: usize = 1024;

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const STYLE_CSS: &str = include_str!("console/style.css");
const LOGIN_HTML: &str = include_str!("console/login.html");

/// The console's open sessions.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    /// Oldest first.
    ids: Mutex<VecDeque<String>>,
}

impl Sessions {
    fn open(&self) -> std::io::Result<String> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.len() >= MAX_SESSIONS {
            ids.pop_front();
        }
        ids.push_back(id.clone());
        Ok(id)
    }

    fn close(&self, id: &str) {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.retain(|open| open != id);
    }

    /// True when `headers` carry the cookie of an open session.
    pub(super) fn admits(&self, headers: &http::HeaderMap) -> bool {
        let Some(id) = session_cookie(headers) else {
            return false;
        };
        let ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.iter()
            .any(|open| constant_time_eq(open.as_bytes(), id.as_bytes()))
    }
}

fn session_cookie(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// True for the console's own paths.
pub(super) fn is_console_path(path: &str) -> bool {
    path == "/" || path.starts_with("/console/")
}

/// Serves a console path. `token` is the host's admin token, if any.
pub(super) async fn serve(
    request: http::Request<Incoming>,
    token: Option<&[u8]>,
    sessions: &Sessions,
) -> http::Response<ResponseBody> {
    let signed_in = token.is_none() || sessions.admits(request.headers());
    match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/") if signed_in => page(INDEX_HTML),
        (&Method::GET | &Method::HEAD, "/") => page(&LOGIN_HTML.replace("{message}", "")),
        (&Method::GET | &Method::HEAD, "/console/app.js") => file(APP_JS, "text/javascript"),
        (&Method::GET | &Method::HEAD, "/console/style.css") => file(STYLE_CSS, "text/css"),
        (&Method::POST, "/console/login") => login(request, token, sessions).await,
        (&Method::POST, "/console/logout") => {
            if let Some(id) = session_cookie(request.headers()) {
                sessions.close(id);
            }
            redirect_home(Some(format!(
                "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
            )))
        }
        _ => {
            let mut response = http::Response::new(full("no such console page\n"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

async fn login(
    request: http::Request<Incoming>,
    token: Option<&[u8]>,
    sessions: &Sessions,
) -> http::Response<ResponseBody> {
    let Some(token) = token else {
        return redirect_home(None);
    };
    let form = match Limited::new(request.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let given = form_urlencoded::parse(&form)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), token) {
        let mut response = page(&LOGIN_HTML.replace(
            "{message}",
            "<p class=\"error\" id=\"login-error\">That is not the admin token.</p>",
        ));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    match sessions.open() {
        Ok(id) => redirect_home(Some(format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/"
        ))),
        Err(error) => {
            tracing::error!("opening a console session failed: {error}");
            let mut response = http::Response::new(full("could not open a session\n"));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

fn page(html: &str) -> http::Response<ResponseBody> {
    file(html, "text/html; charset=utf-8")
}

fn file(text: &str, content_type: &'static str) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(full(Bytes::from(text.to_owned())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; style-src 'self'; img-src 'self' data:"),
    );
    response
}

fn redirect_home(cookie: Option<String>) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Some(value) = cookie.and_then(|c| HeaderValue::try_from(c).ok()) {
        headers.insert(header::SET_COOKIE, value);
    }
    response
}
