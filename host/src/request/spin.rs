//! The request headers Spin gives a component, for a function deployed
//! with a Spin route (`spin-route`, set by `wisp up -f spin.toml`): what
//! Spin SDK apps read to learn their URL, the path under their route and
//! their client, and the values of their route's `:name` segments
//! (`spin-path-match-NAME`). Only the host sets them: whatever a client or
//! a calling function sent under those names is dropped first.

use crate::runtime::connection::ConnectionInfo;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use wisp_spec::spin::route::{SpinRoute, is_spin_header};

/// Replaces the `spin-*` headers of a request to `uri` for a function
/// with Spin route `route`. The path info is the path under the route; a
/// call that names the function (`http://NAME.spin.internal/PATH`) whose
/// path is not under it has all of its path as the path info.
pub(crate) fn set_headers(
    headers: &mut HeaderMap,
    route: &SpinRoute,
    uri: &Uri,
    connection: &ConnectionInfo,
) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_spin_header(name.as_str()))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    let authority = uri
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .or_else(|| {
            let host = headers.get(http::header::HOST)?;
            host.to_str().ok().map(str::to_owned)
        })
        .unwrap_or_else(|| connection.local.to_string());
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let rest = route.base().strip(uri.path()).unwrap_or(uri.path());
    let client = connection.remote.to_string();
    for (name, value) in route.headers(&authority, path_and_query, rest, &client) {
        // Every part came from a parsed request, so each value is a valid
        // header value; one that were not is left out rather than forged.
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_spin_headers_are_replaced_by_the_hosts() {
        let mut headers = HeaderMap::new();
        headers.insert("spin-path-info", HeaderValue::from_static("/forged"));
        headers.insert("spin-client-addr", HeaderValue::from_static("10.0.0.1:1"));
        headers.insert("spin-path-match-id", HeaderValue::from_static("forged"));
        headers.insert(
            http::header::HOST,
            HeaderValue::from_static("shop.example:8080"),
        );
        let route = SpinRoute::parse("/cart/...").unwrap();
        let uri: Uri = "/cart/items?id=3".parse().unwrap();
        let connection = ConnectionInfo {
            remote: "127.0.0.1:4000".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
        };
        set_headers(&mut headers, &route, &uri, &connection);
        assert_eq!(headers["spin-path-info"], "/items");
        assert_eq!(headers["spin-client-addr"], "127.0.0.1:4000");
        assert_eq!(
            headers["spin-full-url"],
            "http://shop.example:8080/cart/items?id=3"
        );
        assert_eq!(headers.get_all("spin-path-info").iter().count(), 1);
        assert!(!headers.contains_key("spin-path-match-id"));
        let user = SpinRoute::parse("/users/:id").unwrap();
        let uri: Uri = "/users/42".parse().unwrap();
        set_headers(&mut headers, &user, &uri, &connection);
        assert_eq!(headers["spin-path-match-id"], "42");
    }
}
