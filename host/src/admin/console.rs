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
//! The app calls the admin API itself. A session also has an anti-CSRF
//! token, written into the page it serves (never into a cookie): a request
//! carrying the session cookie instead of a bearer token must also carry
//! that token in `x-wisp-csrf` unless it only reads. The cookie alone is
//! worth nothing: browsers do not keep cookies apart by port, so a function
//! on the public port of the same host name could be sent it (the request
//! path strips it before any guest sees it, see `request/inbound.rs`). A
//! session ends after [`SESSION_IDLE_TIMEOUT`] without a request, and
//! [`SESSION_MAX_AGE`] after sign-in in any case. Every page forbids
//! framing (`frame-ancestors 'none'`, `X-Frame-Options: DENY`).

use super::constant_time_eq;
use crate::request::inbound::SESSION_COOKIE;
use crate::runtime::body::{ResponseBody, full};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The header a cookie-authenticated change must carry, holding the
/// session's anti-CSRF token.
pub(super) const CSRF_HEADER: &str = "x-wisp-csrf";

/// Longest login form read.
const MAX_FORM_BYTES: usize = 8 << 10;

/// Most sessions kept at once; the oldest is dropped past it.
const MAX_SESSIONS: usize = 1024;

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const STYLE_CSS: &str = include_str!("console/style.css");
const LOGIN_HTML: &str = include_str!("console/login.html");

/// A session ends after this long without a request.
pub const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A session ends this long after sign-in, however busy.
pub const SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);

/// The console's open sessions.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    /// By session id; at most [`MAX_SESSIONS`].
    open: Mutex<HashMap<String, Session>>,
}

#[derive(Debug, Clone)]
struct Session {
    /// The anti-CSRF token: in the console's page, never in a cookie.
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.created) >= SESSION_MAX_AGE
            || now.duration_since(self.last_seen) >= SESSION_IDLE_TIMEOUT
    }
}

impl Sessions {
    /// Opens a session: its id (the cookie) and its anti-CSRF token.
    fn open(&self) -> std::io::Result<String> {
        let id = super::random_hex()?;
        let csrf = super::random_hex()?;
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, session| !session.expired(now));
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open
                .iter()
                .min_by_key(|(_, session)| session.created)
                .map(|(id, _)| id.clone())
        {
            open.remove(&oldest);
        }
        open.insert(
            id.clone(),
            Session {
                csrf,
                created: now,
                last_seen: now,
            },
        );
        Ok(id)
    }

    fn close(&self, id: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.remove(id);
    }

    /// The anti-CSRF token of the live session whose cookie `headers`
    /// carry, if any; the session's idle time starts again.
    pub(super) fn admits(&self, headers: &http::HeaderMap) -> Option<String> {
        let id = session_cookie(headers)?;
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        // A map lookup compares keys in variable time, so look by a value
        // the caller does not control first: every open id, compared in
        // constant time.
        let known = open
            .keys()
            .find(|open| constant_time_eq(open.as_bytes(), id.as_bytes()))?
            .clone();
        let session = open.get_mut(&known)?;
        if session.expired(now) {
            open.remove(&known);
            return None;
        }
        session.last_seen = now;
        Some(session.csrf.clone())
    }
}

/// True when `headers` carry `csrf` in [`CSRF_HEADER`].
pub(super) fn carries_csrf(headers: &http::HeaderMap, csrf: &str) -> bool {
    headers
        .get(CSRF_HEADER)
        .is_some_and(|given| constant_time_eq(given.as_bytes(), csrf.as_bytes()))
}

fn session_cookie(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
}

/// True for the console's own paths.
pub(super) fn is_console_path(path: &str) -> bool {
    path == "/" || path.starts_with("/console/")
}

/// What a sign-in attempt came to, for the caller's lockout count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SignIn {
    /// Not a sign-in, or one on a host without a token.
    None,
    /// The right token.
    Succeeded,
    /// A wrong token.
    Failed,
}

/// Serves a console path. `token` is the host's admin token, if any.
pub(super) async fn serve(
    request: http::Request<Incoming>,
    token: Option<&[u8]>,
    sessions: &Sessions,
) -> (http::Response<ResponseBody>, SignIn) {
    let session = match token {
        None => Some(String::new()),
        Some(_) => sessions.admits(request.headers()),
    };
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/") => match &session {
            Some(csrf) => page(&INDEX_HTML.replace("{csrf}", csrf).replace(
                "{signed-in}",
                if token.is_some() { "true" } else { "false" },
            )),
            None => page(&LOGIN_HTML.replace("{message}", "")),
        },
        (&Method::GET | &Method::HEAD, "/console/app.js") => file(APP_JS, "text/javascript"),
        (&Method::GET | &Method::HEAD, "/console/style.css") => file(STYLE_CSS, "text/css"),
        (&Method::POST, "/console/login") => return login(request, token, sessions).await,
        (&Method::POST, "/console/logout") => {
            if let Some(id) = session_cookie(request.headers()) {
                sessions.close(id);
            }
            redirect_home(Some(format!(
                "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
            )))
        }
        _ => {
            let mut response = http::Response::new(full("no such console page\n"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    (response, SignIn::None)
}

async fn login(
    request: http::Request<Incoming>,
    token: Option<&[u8]>,
    sessions: &Sessions,
) -> (http::Response<ResponseBody>, SignIn) {
    let Some(token) = token else {
        return (redirect_home(None), SignIn::None);
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
        return (response, SignIn::Failed);
    }
    let response = match sessions.open() {
        Ok(id) => redirect_home(Some(format!(
            "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            SESSION_MAX_AGE.as_secs()
        ))),
        Err(error) => {
            tracing::error!("opening a console session failed: {error}");
            let mut response = http::Response::new(full("could not open a session\n"));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    };
    (response, SignIn::Succeeded)
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
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_when_idle_and_at_its_age_whatever_its_use() {
        let now = Instant::now();
        let session = |age: Duration, idle: Duration| Session {
            csrf: String::new(),
            created: now - age,
            last_seen: now - idle,
        };
        let minute = Duration::from_secs(60);
        assert!(!session(minute, minute).expired(now));
        assert!(session(minute * 31, minute * 30).expired(now), "idle");
        assert!(
            session(SESSION_MAX_AGE, Duration::ZERO).expired(now),
            "too old"
        );
    }

    #[test]
    fn only_an_open_session_is_admitted_and_it_carries_its_own_csrf_token() {
        let sessions = Sessions::default();
        let id = sessions.open().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("{SESSION_COOKIE}={id}").parse().unwrap(),
        );
        let csrf = sessions.admits(&headers).expect("open");
        assert_eq!(csrf.len(), 64);
        assert_ne!(csrf, id);
        let mut other = http::HeaderMap::new();
        other.insert(
            header::COOKIE,
            format!("{SESSION_COOKIE}={}", "0".repeat(64))
                .parse()
                .unwrap(),
        );
        assert!(sessions.admits(&other).is_none());
        sessions.close(&id);
        assert!(sessions.admits(&headers).is_none());
    }
}
