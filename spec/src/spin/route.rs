//! A Spin trigger route, as a `spin.toml` writes it: `/hello` serves only
//! `/hello`, `/hello/...` serves `/hello` and every path under it, and
//! `/...` every path. A segment `:name` takes any one segment, whose value
//! the component reads as `spin-path-match-name`. A function deployed with
//! one (the `spin-route` setting) lives under the wisp [`Route`] of its
//! fixed part (the segments before the first `:name`), and gets the
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

/// What the header of a `:name` segment's value starts with.
pub const PATH_MATCH_PREFIX: &str = "spin-path-match-";

/// A validated Spin route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinRoute {
    /// Its fixed part, where it is mounted (`/` for a private one).
    base: Route,
    /// The segments after the fixed part, from the first `:name` on.
    pattern: Vec<Segment>,
    /// Whether it ends in `/...` (a private one takes every path it is
    /// called with).
    wildcard: bool,
    /// Whether only calls reach it.
    private: bool,
}

/// One segment of a route after its fixed part.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// This text, exactly.
    Literal(String),
    /// Any one non-empty segment, named.
    Param(String),
}

/// The request headers Spin sets for a component (and a client may not);
/// besides, one `spin-path-match-NAME` per `:name` segment.
pub const SPIN_HEADERS: [&str; 7] = [
    "spin-full-url",
    "spin-path-info",
    "spin-matched-route",
    "spin-base-path",
    "spin-raw-component-route",
    "spin-component-route",
    "spin-client-addr",
];

/// True for a header only the host sets for Spin components.
pub fn is_spin_header(name: &str) -> bool {
    SPIN_HEADERS.contains(&name) || name.starts_with(PATH_MATCH_PREFIX)
}

impl SpinRoute {
    /// Parses a route as a `spin.toml` writes it; `Err` says why not.
    pub fn parse(raw: &str) -> Result<SpinRoute, String> {
        if raw == PRIVATE {
            return Ok(SpinRoute {
                base: Route::root(),
                pattern: Vec::new(),
                wildcard: true,
                private: true,
            });
        }
        let (path, wildcard) = match raw.strip_suffix(WILDCARD) {
            Some(path) => (path, true),
            None => (raw, false),
        };
        if path.contains("...") {
            return Err(format!(
                "route `{raw}`: `...` may only end a route, as `/...`"
            ));
        }
        let (fixed, pattern) = match path.find("/:") {
            Some(at) => (&path[..at], &path[at..]),
            None => (path, ""),
        };
        let fixed = if fixed.is_empty() { "/" } else { fixed };
        let base = Route::parse(fixed).map_err(|e: RouteError| e.to_string())?;
        let pattern = pattern
            .split('/')
            .skip(1)
            .map(|segment| match segment.strip_prefix(':') {
                Some(name) if is_param_name(name) => Ok(Segment::Param(name.to_owned())),
                Some(name) => Err(format!(
                    "route `{raw}`: parameter `:{name}` must be 1 to 64 letters, digits, `-` or `_`"
                )),
                None if segment.is_empty() => Err(format!("route `{raw}`: an empty segment")),
                None => Ok(Segment::Literal(segment.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut names = std::collections::BTreeSet::new();
        for segment in &pattern {
            match segment {
                // As a route's own segments are checked.
                Segment::Literal(text) => {
                    Route::parse(&format!("/{text}"))
                        .map_err(|e| format!("route `{raw}`: {}", e.reason()))?;
                }
                // Two names one header would carry.
                Segment::Param(name) if !names.insert(header_name(name)) => {
                    return Err(format!(
                        "route `{raw}`: parameter `:{name}` repeats another's header name"
                    ));
                }
                Segment::Param(_) => {}
            }
        }
        Ok(SpinRoute {
            base,
            pattern,
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
    /// base: each `:name` takes one segment, then a wildcard route serves
    /// every path under it, an exact one only its own; a private one none.
    pub fn serves(&self, rest: &str) -> bool {
        !self.private && self.matching(rest).is_some()
    }

    /// The values of its `:name` segments in `rest` and the path after
    /// them, if `rest` has them (and, for an exact route, nothing more).
    fn matching<'r>(&self, rest: &'r str) -> Option<(Vec<(&str, &'r str)>, &'r str)> {
        let mut params = Vec::new();
        let mut tail = rest;
        for segment in &self.pattern {
            let after = tail.strip_prefix('/')?;
            let end = after.find('/').unwrap_or(after.len());
            let (value, next) = after.split_at(end);
            match segment {
                Segment::Literal(text) if text == value => {}
                Segment::Param(name) if !value.is_empty() => params.push((name.as_str(), value)),
                _ => return None,
            }
            tail = next;
        }
        (self.wildcard || tail.is_empty() || tail == "/").then_some((params, tail))
    }

    /// Spin's request headers for a request of `path_and_query` to
    /// `authority` from `client`, `rest` being the path after the base:
    /// [`SPIN_HEADERS`] in their order, then a `spin-path-match-NAME` for
    /// each `:name` (its `_`s as `-`s, as Spin writes them).
    pub fn headers(
        &self,
        authority: &str,
        path_and_query: &str,
        rest: &str,
        client: &str,
    ) -> Vec<(String, String)> {
        // A private component has no route to report; a call that names
        // the function (not the path) gets the path whole as its info.
        let raw = if self.private {
            String::new()
        } else {
            self.to_string()
        };
        let (params, tail) = self.matching(rest).unwrap_or((Vec::new(), rest));
        let component = match self.component_route().as_str() {
            "/" if self.wildcard => String::new(),
            route => route.to_owned(),
        };
        let [full, info, matched, base, raw_route, route, addr] = SPIN_HEADERS;
        let mut headers: Vec<(String, String)> = [
            (full, format!("http://{authority}{path_and_query}")),
            (
                info,
                if self.wildcard {
                    tail.to_owned()
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
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
        headers.extend(
            params
                .into_iter()
                .map(|(name, value)| (header_name(name), value.to_owned())),
        );

        headers
    }

    /// The route without its `/...`.
    fn component_route(&self) -> String {
        let mut route = match self.base.as_str() {
            "/" if !self.pattern.is_empty() => String::new(),
            base => base.to_owned(),
        };
        for segment in &self.pattern {
            match segment {
                Segment::Literal(text) => route += &format!("/{text}"),
                Segment::Param(name) => route += &format!("/:{name}"),
            }
        }
        route
    }
}

/// The header that carries `:name`'s value, as Spin names it.
fn header_name(name: &str) -> String {
    let name = name.to_ascii_lowercase().replace('_', "-");
    format!("{PATH_MATCH_PREFIX}{name}")
}

/// True for a `:name` Spin accepts and a header can carry.
fn is_param_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl fmt::Display for SpinRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.private {
            return f.write_str(PRIVATE);
        }
        match (self.component_route().as_str(), self.wildcard) {
            ("/", true) => f.write_str(WILDCARD),
            (route, true) => write!(f, "{route}{WILDCARD}"),
            (route, false) => f.write_str(route),
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
        assert_eq!(headers[1], ("spin-path-info".to_owned(), "/x".to_owned()));
        assert_eq!(headers[2], ("spin-matched-route".to_owned(), String::new()));
    }

    #[test]
    fn parameters_take_one_segment_each_and_say_their_values() {
        let user = SpinRoute::parse("/users/:user_id/posts/:post").unwrap();
        assert_eq!(user.base().as_str(), "/users");
        assert_eq!(user.to_string(), "/users/:user_id/posts/:post");
        assert!(user.serves("/7/posts/9") && user.serves("/7/posts/9/"));
        assert!(
            !user.serves("/7/posts") && !user.serves("/7/pages/9") && !user.serves("//posts/9")
        );
        assert!(!user.serves("/7/posts/9/more"), "exact: nothing after");
        let headers = user.headers("h", "/users/7/posts/9", "/7/posts/9", "c");
        assert_eq!(
            headers[7..],
            [
                ("spin-path-match-user-id".to_owned(), "7".to_owned()),
                ("spin-path-match-post".to_owned(), "9".to_owned())
            ]
        );
        assert_eq!(headers[1].1, "", "an exact route has no path info");
        let all = SpinRoute::parse("/:segment/:end/...").unwrap();
        assert_eq!(all.base().as_str(), "/");
        assert_eq!(all.to_string(), "/:segment/:end/...");
        assert!(all.serves("/a/b") && all.serves("/a/b/c/d") && !all.serves("/a"));
        let headers = all.headers("h", "/a/b/rest?q", "/a/b/rest", "c");
        assert_eq!(headers[1].1, "/rest");
        assert_eq!(headers[5].1, "/:segment/:end");
        assert_eq!(headers[7].1, "a");
        assert_eq!(SpinRoute::parse(&all.to_string()), Ok(all), "it reads back");
        assert!(is_spin_header("spin-path-match-anything") && is_spin_header("spin-path-info"));
    }

    #[test]
    fn bad_parameters_and_inner_wildcards_are_refused_with_the_reason() {
        assert!(
            SpinRoute::parse("/users/:")
                .unwrap_err()
                .contains("parameter")
        );
        assert!(
            SpinRoute::parse("/users/:a.b")
                .unwrap_err()
                .contains("parameter")
        );
        assert!(
            SpinRoute::parse("/users/:id//x")
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            SpinRoute::parse("/a/.../b")
                .unwrap_err()
                .contains("may only end")
        );
        assert!(SpinRoute::parse("hello").is_err());
        assert!(
            SpinRoute::parse("/:a_b/:A-b")
                .unwrap_err()
                .contains("repeats")
        );
        assert!(SpinRoute::parse("/:id/a%2Fb").is_err());
    }

    #[test]
    fn headers_say_what_spin_says() {
        let wild = SpinRoute::parse("/hello/...").unwrap();
        let headers = wild.headers("h:3000", "/hello/a/b?q=1", "/a/b", "127.0.0.1:5000");
        let value = |name: &str| headers.iter().find(|(n, _)| n == name).unwrap().1.as_str();
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
