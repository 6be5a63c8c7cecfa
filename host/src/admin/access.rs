//! Who may reach the admin API at all, before a token is looked at: the
//! `Host` a request names, the `Origin` a state change comes from, and
//! clients locked out after failed sign-ins.
//!
//! * **Host** (only without a token): a browser on an attacker's page can
//!   reach `127.0.0.1:8081` through DNS rebinding, but it then names the
//!   attacker's host. So a token-less admin API answers only requests whose
//!   `Host` is a loopback name or address (`localhost`, `127.0.0.1`,
//!   `[::1]`, any port) or a name the operator allowed (`--admin-host`).
//! * **Origin** (always): a state change (any method but `GET`, `HEAD`,
//!   `OPTIONS`) whose `Origin` is not the admin API's own is refused unless
//!   the operator allowed that origin (`--admin-origin`). Clients that send
//!   no `Origin` (the CLI, curl) are not browsers acting for someone.
//! * **Lockout**: after [`FREE_FAILURES`] failed authentications from one
//!   IP address, that address is refused (429) for [`FIRST_LOCKOUT`],
//!   doubling with each further failure up to [`MAX_LOCKOUT`]; while locked
//!   out even the right token is refused, so guessing gains nothing.
//!
//! `/healthz` is exempt from all three: probes and load balancers send no,
//! or other, `Host` headers.

use crate::error::json_error;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed authentications one client may make before it is locked out.
pub const FREE_FAILURES: u32 = 5;

/// The first lockout; each further failure doubles it.
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(1);

/// The longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(5 * 60);

/// A client with no failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Most clients whose failures are remembered; past it the stalest go.
const MAX_CLIENTS: usize = 10_000;

/// The operator's allowances, and the failures seen.
#[derive(Debug, Default)]
pub(super) struct Access {
    /// Host names (lowercase, no port) a token-less API also answers.
    pub(super) hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`, lowercase) allowed to change state.
    pub(super) origins: Vec<String>,
    lockouts: Lockouts,
}

impl Access {
    /// Allows `hosts` (without a token) and `origins` besides the defaults.
    pub(super) fn allowing(hosts: Vec<String>, origins: Vec<String>) -> Access {
        Access {
            hosts,
            origins,
            lockouts: Lockouts::default(),
        }
    }

    /// The refusal of a request that names a foreign host (when `tokenless`)
    /// or changes state from a foreign origin; `None` lets it on.
    pub(super) fn screen(
        &self,
        request: &http::Request<impl Sized>,
        tokenless: bool,
    ) -> Option<http::Response<Bytes>> {
        let authority = authority_of(request);
        if tokenless {
            let host = authority.as_deref().map(host_part);
            if !host
                .is_some_and(|host| is_loopback_name(host) || self.hosts.iter().any(|h| h == host))
            {
                return Some(forbidden(&format!(
                    "the admin API has no token, so it answers only requests for a loopback host (`localhost`, `127.0.0.1`, `[::1]`); this one names `{}`: open it as http://127.0.0.1:PORT/, or start `wisp serve` with `--admin-host NAME`",
                    authority.as_deref().unwrap_or("no host")
                )));
            }
        }
        if !changes_state(request.method()) {
            return None;
        }
        let origin = request.headers().get(header::ORIGIN)?;
        let origin = origin
            .to_str()
            .unwrap_or("null")
            .trim()
            .to_ascii_lowercase();
        let same = authority.as_deref().is_some_and(|authority| {
            origin == format!("http://{authority}") || origin == format!("https://{authority}")
        });
        if same || self.origins.contains(&origin) {
            return None;
        }
        Some(forbidden(&format!(
            "a change from origin `{origin}` is refused: only the admin API's own pages may change state from a browser (allow another origin with `wisp serve --admin-origin`)"
        )))
    }

    /// How long `client` is still locked out, if it is.
    pub(super) fn locked_out(&self, client: IpAddr) -> Option<Duration> {
        self.lockouts.remaining(client)
    }

    /// Notes a failed authentication from `client`.
    pub(super) fn failed(&self, client: IpAddr) {
        self.lockouts.failed(client);
    }

    /// Notes a successful authentication from `client`.
    pub(super) fn succeeded(&self, client: IpAddr) {
        self.lockouts.forget(client);
    }
}

/// The 429 for a locked-out client.
pub(super) fn locked_out_response(remaining: Duration) -> http::Response<Bytes> {
    let seconds = remaining.as_millis().div_ceil(1000).max(1) as u64;
    let mut response = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "locked-out",
        &format!(
            "too many failed admin authentications from this address; try again in {seconds} s"
        ),
        None,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn forbidden(message: &str) -> http::Response<Bytes> {
    json_error(StatusCode::FORBIDDEN, "forbidden", message, None)
}

/// True for methods that may change state.
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The authority a request names: its `Host` header, or the URI's (HTTP/2).
pub(super) fn authority_of(request: &http::Request<impl Sized>) -> Option<String> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))?;
    Some(host.trim().to_ascii_lowercase())
}

/// `host:port` → `host`; `[::1]:8081` → `[::1]`.
pub(super) fn host_part(authority: &str) -> &str {
    let host = match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => &authority[..colon],
        _ => authority,
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// `localhost`, an address in `127.0.0.0/8`, or `[::1]`.
fn is_loopback_name(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Failed authentications by client address.
#[derive(Debug, Default)]
struct Lockouts {
    clients: Mutex<HashMap<IpAddr, Strikes>>,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Lockouts {
    fn remaining(&self, client: IpAddr) -> Option<Duration> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let until = clients.get(&client)?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    fn failed(&self, client: IpAddr) {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
            clients.retain(|_, s| now.duration_since(s.last) < FORGET_AFTER);
            if clients.len() >= MAX_CLIENTS
                && let Some(stalest) = clients
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(ip, _)| *ip)
            {
                clients.remove(&stalest);
            }
        }
        let strikes = clients.entry(client).or_insert(Strikes {
            failures: 0,
            last: now,
            locked_until: None,
        });
        if now.duration_since(strikes.last) >= FORGET_AFTER {
            strikes.failures = 0;
        }
        strikes.failures = strikes.failures.saturating_add(1);
        strikes.last = now;
        if strikes.failures >= FREE_FAILURES {
            let lockout = lockout_after(strikes.failures);
            let was_locked = strikes.locked_until.is_some_and(|until| until > now);
            strikes.locked_until = Some(now + lockout);
            if !was_locked {
                tracing::warn!(
                    client = %client,
                    failures = strikes.failures,
                    "admin authentication failed {} times from {client}: locked out for {} s",
                    strikes.failures,
                    lockout.as_secs()
                );
            }
        }
    }

    fn forget(&self, client: IpAddr) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.remove(&client);
    }
}

/// The lockout after `failures` failures (at least [`FREE_FAILURES`]).
fn lockout_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(FREE_FAILURES).min(20);
    FIRST_LOCKOUT
        .saturating_mul(1 << doublings)
        .min(MAX_LOCKOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, host: &str, origin: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri("/v1/functions")
            .header(header::HOST, host);
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn a_tokenless_api_answers_loopback_hosts_only() {
        let access = Access {
            hosts: vec!["admin.internal".into()],
            ..Access::default()
        };
        for host in [
            "localhost:8081",
            "127.0.0.1",
            "127.0.0.1:1",
            "[::1]:8081",
            "LOCALHOST",
        ] {
            assert!(
                access
                    .screen(&request(Method::GET, host, None), true)
                    .is_none(),
                "{host}"
            );
        }
        assert!(
            access
                .screen(&request(Method::GET, "admin.internal:8081", None), true)
                .is_none()
        );
        for host in [
            "rebind.attacker.example",
            "127.0.0.1.evil.example",
            "localhost.evil:80",
        ] {
            let refused = access.screen(&request(Method::GET, host, None), true);
            assert_eq!(
                refused.map(|r| r.status()),
                Some(StatusCode::FORBIDDEN),
                "{host}"
            );
        }
        assert!(
            access
                .screen(
                    &request(Method::GET, "rebind.attacker.example", None),
                    false
                )
                .is_none()
        );
    }

    #[test]
    fn a_foreign_origin_may_read_but_not_change_state() {
        let access = Access {
            origins: vec!["https://ops.example".into()],
            ..Access::default()
        };
        let foreign = Some("http://attacker.example");
        assert!(
            access
                .screen(&request(Method::GET, "127.0.0.1:8081", foreign), true)
                .is_none()
        );
        let refused = access.screen(&request(Method::POST, "127.0.0.1:8081", foreign), true);
        assert_eq!(refused.map(|r| r.status()), Some(StatusCode::FORBIDDEN));
        let null = access.screen(&request(Method::PUT, "127.0.0.1:8081", Some("null")), false);
        assert!(null.is_some());
        let own = Some("http://127.0.0.1:8081");
        assert!(
            access
                .screen(&request(Method::POST, "127.0.0.1:8081", own), true)
                .is_none()
        );
        let allowed = Some("https://ops.example");
        assert!(
            access
                .screen(&request(Method::POST, "127.0.0.1:8081", allowed), true)
                .is_none()
        );
        assert!(
            access
                .screen(&request(Method::DELETE, "127.0.0.1:8081", None), true)
                .is_none()
        );
    }

    #[test]
    fn failures_lock_a_client_out_with_doubling_waits() {
        let access = Access::default();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 1..FREE_FAILURES {
            access.failed(client);
        }
        assert!(access.locked_out(client).is_none());
        access.failed(client);
        assert!(access.locked_out(client).is_some());
        assert!(access.locked_out(other).is_none());
        assert_eq!(lockout_after(FREE_FAILURES), FIRST_LOCKOUT);
        assert_eq!(lockout_after(FREE_FAILURES + 2), FIRST_LOCKOUT * 4);
        assert_eq!(lockout_after(u32::MAX), MAX_LOCKOUT);
        access.succeeded(client);
        assert!(access.locked_out(client).is_none());
    }
}
