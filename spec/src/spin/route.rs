//! A Spin trigger route, as a `spin.toml` writes it: `/hello` serves only
//! `/hello`, `/hello/...` serves `/hello` and every path under it, and
//! `/...` every path. A function deployed with one (the `spin-route`
//! setting) lives under the wisp [`Route`] of its fixed part, and gets the
//! request headers Spin gives a component ([`SpinRoute::headers`]). The
//! route `private` (Spin's `{ private = true }`) serves no public request:
//! its function is reached only by calls (`http://NAME.spin.internal`),
//! and holds a route of its own under [`PRIVATE_ROUTES`] that is never
//! served.

use crate::route::{Route, RouteError};
use std::fmt;

/// What a route ends with to match every path under it.
const WILDCARD: &str = "/...";

/// The Spin route of a component no public request reaches.
pub const PRIVATE: &str = "private";

/// Where the functions of private Spin routes are mounted (as
/// `/.spin-private/NAME`): routes no public request is ever served by.
pub const PRIVATE_ROUTES: &str = "/.spin-private";

/// A validated Spin route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinRoute {
    /// Its fixed part, where it is mounted (`/` for a private one).
    base: Route,
    /// Whether it ends in `/...` (a private one takes every path it is
    /// called with).
    wildcard: bool,
    /// Whether only calls reach it.
    private: bool,
}

/// The request headers Spin sets for a component (and a client may not).
pub const SPIN_HEADERS: [&str; 7] = [
    "spin-full-url",
    "spin-path-info",
    "spin-matched-route",
    "spin-base-path",
    "spin-raw-component-route",
    "spin-component-route",
    "spin-client-addr",
];

impl SpinRoute {
    /// Parses a route as a `spin.toml` writes it; `Err` says why not.
    pub fn parse(raw: &str) -> Result<SpinRoute, String> {
        if raw == PRIVATE {
            return Ok(SpinRoute {
                base: Route::root(),
                wildcard: true,
                private: true,
            });
        }
        if raw.split('/').any(|segment| segment.starts_with(':')) {
            return Err(format!(
                "route `{raw}`: route parameters (`/:name`) are not supported; use a wildcard (`/users/...`) and read `spin-path-info`"
            ));
        }
        let (fixed, wildcard) = match raw.strip_suffix(WILDCARD) {
            Some(fixed) => (if fixed.is_empty() { "/" } else { fixed }, true),
            None => (raw, false),
        };
        if fixed.contains("...") {
            return Err(format!(
                "route `{raw}`: `...` may only end a route, as `/...`"
            ));
        }
        let base = Route::parse(fixed).map_err(|e: RouteError| e.to_string())?;
        Ok(SpinRoute {
            base,
            wildcard,
            private: false,
        })
    }

    /// The wisp route it is mounted at (its fixed part; `/` for a private
    /// one, whose function is mounted at a route of its own).
    pub fn base(&self) -> &Route {
        &self.base
    }

    /// Whether only calls reach it (`private`).
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Whether it serves a public request for `rest`, the path after its
    /// base: a wildcard route serves every path under it, an exact one
    /// only its own, a private one none.
    pub fn serves(&self, rest: &str) -> bool {
        !self.private && (self.wildcard || rest.is_empty() || rest == "/")
    }

    /// Spin's request headers for a request of `path_and_query` to
    /// `authority` from `client`, `rest` being the path after the base:
    /// in [`SPIN_HEADERS`]'s order.
    pub fn headers(
        &self,
        authority: &str,
        path_and_query: &str,
        rest: &str,
        client: &str,
    ) -> [(&'static str, String); 7] {
        // A private component has no route to report.
        let raw = if self.private {
            String::new()
        } else {
            self.to_string()
        };
        let component = match self.base.as_str() {
            "/" if self.wildcard => String::new(),
            base => base.to_owned(),
        };
        let [full, info, matched, base, raw_route, route, addr] = SPIN_HEADERS;
        [
            (full, format!("http://{authority}{path_and_query}")),
            (
                info,
                if self.wildcard {
                    rest.to_owned()
                } else {
                    String::new()
                },
            ),
            (matched, raw.clone()),
            (base, "/".to_owned()),
            (raw_route, raw),
            (route, component),
            (addr, client.to_owned()),
        ]
    }
}

impl fmt::Display for SpinRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.private {
            return f.write_str(PRIVATE);
        }
        match (self.base.as_str(), self.wildcard) {
            ("/", true) => f.write_str(WILDCARD),
            (base, true) => write!(f, "{base}{WILDCARD}"),
            (base, false) => f.write_str(base),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_wildcard_and_catch_all_routes() {
        let exact = SpinRoute::parse("/hello").unwrap();
        assert_eq!(
            (exact.base().as_str(), exact.to_string().as_str()),
            ("/hello", "/hello")
        );
        assert!(exact.serves("") && exact.serves("/") && !exact.serves("/x"));
        let wild = SpinRoute::parse("/hello/...").unwrap();
        assert_eq!(
            (wild.base().as_str(), wild.to_string().as_str()),
            ("/hello", "/hello/...")
        );
        assert!(wild.serves("/x/y"));
        let all = SpinRoute::parse("/...").unwrap();
        assert_eq!(
            (all.base().as_str(), all.to_string().as_str()),
            ("/", "/...")
        );
    }

    #[test]
    fn a_private_route_serves_no_public_request() {
        let private = SpinRoute::parse(PRIVATE).unwrap();
        assert!(private.is_private());
        assert!(!private.serves("") && !private.serves("/x"));
        assert_eq!(private.to_string(), PRIVATE);
        let headers = private.headers("h", "/x?q", "/x", "c");
        assert_eq!(headers[1], ("spin-path-info", "/x".to_owned()));
        assert_eq!(headers[2], ("spin-matched-route", String::new()));
    }

    #[test]
    fn parameters_and_inner_wildcards_are_refused_with_the_reason() {
        assert!(
            SpinRoute::parse("/users/:id")
                .unwrap_err()
                .contains("route parameters")
        );
        assert!(
            SpinRoute::parse("/a/.../b")
                .unwrap_err()
                .contains("may only end")
        );
        assert!(SpinRoute::parse("hello").is_err());
    }

    #[test]
    fn headers_say_what_spin_says() {
        let wild = SpinRoute::parse("/hello/...").unwrap();
        let headers = wild.headers("h:3000", "/hello/a/b?q=1", "/a/b", "127.0.0.1:5000");
        let value = |name| headers.iter().find(|(n, _)| *n == name).unwrap().1.as_str();
        assert_eq!(value("spin-full-url"), "http://h:3000/hello/a/b?q=1");
        assert_eq!(value("spin-path-info"), "/a/b");
        assert_eq!(value("spin-matched-route"), "/hello/...");
        assert_eq!(value("spin-raw-component-route"), "/hello/...");
        assert_eq!(value("spin-component-route"), "/hello");
        assert_eq!(value("spin-base-path"), "/");
        assert_eq!(value("spin-client-addr"), "127.0.0.1:5000");
        let all = SpinRoute::parse("/...").unwrap();
        let headers = all.headers("h", "/x", "/x", "c");
        assert_eq!(headers[5].1, "");
        assert_eq!(headers[1].1, "/x");
    }
}
