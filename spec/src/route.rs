//! Routes: which function answers a request path.
//!
//! A route is a path prefix (`/hello`) that matches on whole segments: `/hello`
//! serves `/hello`, `/hello/` and `/hello/world`, never `/helloworld`. The
//! longest matching prefix wins, and `/` alone is a catch-all. This module is
//! pure data — no wasmtime, no I/O — so the rules are tested right here.

use std::collections::HashMap;
use std::fmt;

/// Longest route prefix accepted, in bytes.
pub const MAX_ROUTE_LEN: usize = 256;

/// A validated route prefix: starts with `/`, no trailing `/` (except the
/// root route itself), no empty, `.` or `..` segments, no percent-encoding,
/// no query or fragment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route(String);

/// Why a route was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid route `{route}`: {reason}")]
pub struct RouteError {
    route: String,
    reason: &'static str,
}

impl RouteError {
    /// Why the route was refused, without the route itself.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl Route {
    /// Parses what a user typed into a route. One trailing `/` is dropped, so
    /// `/hello/` and `/hello` are the same route; anything else that is not
    /// already canonical (`//`, `/a//b`, `/%2F`) is refused rather than
    /// rewritten, so the route shown back is the route typed.
    pub fn parse(raw: &str) -> Result<Route, RouteError> {
        let fail = |reason| RouteError {
            route: raw.to_owned(),
            reason,
        };
        if raw.len() > MAX_ROUTE_LEN {
            return Err(fail("longer than 256 bytes"));
        }
        if !raw.starts_with('/') {
            return Err(fail("it must start with `/`, e.g. `/hello`"));
        }
        // Routes match the raw request path, so `/a%2Fb` could never match
        // `/a/b`; name the cause rather than the `%`.
        if raw.contains('%') {
            return Err(fail(
                "percent-encoded characters such as `%2F` are not allowed",
            ));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "/-_.~".contains(c);
        if !raw.chars().all(allowed) {
            return Err(fail(
                "only letters, digits, `/`, `-`, `_`, `.` and `~` are allowed",
            ));
        }
        if raw == "/" {
            return Ok(Route("/".to_owned()));
        }
        let trimmed = raw.strip_suffix('/').unwrap_or(raw);
        for segment in trimmed[1..].split('/') {
            match segment {
                "" => return Err(fail("it has an empty segment (`//`)")),
                "." | ".." => return Err(fail("`.` and `..` segments are not allowed")),
                _ => {}
            }
        }
        Ok(Route(trimmed.to_owned()))
    }

    /// The catch-all route, `/`.
    pub fn root() -> Route {
        Route("/".to_owned())
    }

    /// The prefix as a string, e.g. `/hello`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part of `path` after this prefix (what CGI calls `PATH_INFO`), or
    /// `None` when the route does not match `path`.
    pub fn strip<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.0 == "/" {
            return path.starts_with('/').then_some(path);
        }
        let rest = path.strip_prefix(self.0.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Route {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Routes to targets of type `T`, matched longest prefix first. Built once per
/// change of the deployed set; lookups only read, and cost one hash lookup
/// per segment of the path, however many routes there are.
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    entries: HashMap<Route, T>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable {
            entries: HashMap::new(),
        }
    }
}

impl<T> RouteTable<T> {
    /// Builds a table from `(route, target)` pairs. Routes must be distinct;
    /// the registry guarantees that before it builds a table.
    pub fn new(entries: impl IntoIterator<Item = (Route, T)>) -> Self {
        RouteTable {
            entries: entries.into_iter().collect(),
        }
    }

    /// The target whose route is the longest prefix of `path`, with the rest
    /// of the path after the prefix.
    pub fn lookup<'p>(&self, path: &'p str) -> Option<(&Route, &T, &'p str)> {
        self.lookup_where(path, |_, _| true)
    }

    /// As [`RouteTable::lookup`], skipping a target that does not `accept`
    /// the rest of the path (a Spin route that serves only its own path),
    /// so a shorter prefix may take it.
    pub fn lookup_where<'p>(
        &self,
        path: &'p str,
        accept: impl Fn(&T, &str) -> bool,
    ) -> Option<(&Route, &T, &'p str)> {
        if !path.starts_with('/') {
            return None;
        }
        // Each prefix ending at a segment boundary, longest first; the root
        // route, which leaves the whole path, last.
        let mut end = path.len();
        while end > 1 {
            if let Some((route, target)) = self.entries.get_key_value(&path[..end])
                && accept(target, &path[end..])
            {
                return Some((route, target, &path[end..]));
            }
            end = path[..end].rfind('/').unwrap_or(0);
        }
        self.entries
            .get_key_value("/")
            .filter(|(_, target)| accept(target, path))
            .map(|(route, target)| (route, target, path))
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no route is deployed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[&str]) -> RouteTable<String> {
        RouteTable::new(
            routes
                .iter()
                .map(|r| (Route::parse(r).unwrap(), (*r).to_owned())),
        )
    }

    fn target<'a>(table: &'a RouteTable<String>, path: &str) -> Option<&'a str> {
        table.lookup(path).map(|(_, t, _)| t.as_str())
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table(&["/api", "/api/users", "/"]);
        assert_eq!(target(&t, "/api/users/7"), Some("/api/users"));
        assert_eq!(target(&t, "/api/orders"), Some("/api"));
        assert_eq!(target(&t, "/other"), Some("/"));
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        let t = table(&["/hello"]);
        assert_eq!(target(&t, "/hello"), Some("/hello"));
        assert_eq!(target(&t, "/hello/"), Some("/hello"));
        assert_eq!(target(&t, "/hello/x"), Some("/hello"));
        assert_eq!(target(&t, "/helloworld"), None);
        assert_eq!(target(&t, "/"), None);
    }

    #[test]
    fn rest_of_path_is_what_follows_the_prefix() {
        let t = table(&["/hello", "/"]);
        assert_eq!(t.lookup("/hello/a/b").unwrap().2, "/a/b");
        assert_eq!(t.lookup("/hello").unwrap().2, "");
        assert_eq!(t.lookup("/x/y").unwrap().2, "/x/y");
    }

    #[test]
    fn trailing_slash_is_ignored() {
        assert_eq!(Route::parse("/hello/").unwrap().as_str(), "/hello");
        assert_eq!(Route::parse("/a/b/").unwrap().as_str(), "/a/b");
        assert_eq!(Route::parse("/").unwrap().as_str(), "/");
    }

    #[test]
    fn percent_encoded_slash_is_rejected() {
        for raw in ["/%2F", "/%2f", "/a%2Fb", "/a/%2F/b", "/%41"] {
            let err = Route::parse(raw).unwrap_err();
            assert!(err.reason().contains("percent-encoded"), "{raw}: {err}");
            assert!(err.to_string().contains(raw), "{raw}: {err}");
        }
    }

    #[test]
    fn empty_segments_are_rejected() {
        for raw in ["//", "///", "/a//b", "/a//", "//a", "/a///"] {
            let err = Route::parse(raw).unwrap_err();
            assert!(err.reason().contains("empty segment"), "{raw}: {err}");
        }
    }

    #[test]
    fn bad_routes_are_refused_with_a_reason() {
        for (raw, reason) in [
            ("hello", "must start with `/`"),
            ("/a//b", "empty segment"),
            ("/a/../b", "`..`"),
            ("/a?b=1", "only letters"),
            ("/a b", "only letters"),
        ] {
            let err = Route::parse(raw).unwrap_err().to_string();
            assert!(err.contains(reason), "{raw}: {err}");
            assert!(err.contains(raw), "{raw}: {err}");
        }
        assert!(Route::parse(&format!("/{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn the_root_route_leaves_the_whole_path() {
        let t = table(&["/", "/a"]);
        assert_eq!(t.lookup("/").map(|(_, _, rest)| rest), Some("/"));
        assert_eq!(t.lookup("/b/c").map(|(_, _, rest)| rest), Some("/b/c"));
        assert_eq!(t.lookup("/a/").map(|(_, _, rest)| rest), Some("/"));
        assert!(table(&["/a"]).lookup("/").is_none());
        assert!(table(&["/"]).lookup("a").is_none());
    }

    #[test]
    fn a_big_table_finds_the_longest_prefix() {
        let routes: Vec<String> = (0..1000).map(|i| format!("/f{i}")).collect();
        let mut all: Vec<&str> = routes.iter().map(String::as_str).collect();
        all.push("/f7/deeper");
        let t = table(&all);
        assert_eq!(target(&t, "/f999/x"), Some("/f999"));
        assert_eq!(target(&t, "/f7/deeper/still"), Some("/f7/deeper"));
        assert_eq!(target(&t, "/f7/deep"), Some("/f7"));
        assert_eq!(target(&t, "/f1000"), None);
    }

    #[test]
    fn empty_table_matches_nothing() {
        let t = table(&[]);
        assert!(t.is_empty());
        assert_eq!(target(&t, "/"), None);
    }
}
