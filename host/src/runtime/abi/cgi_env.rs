//! The CGI meta-variables (RFC 3875 §4.1) a request becomes.
//!
//! A CGI guest learns about its request only through environment variables:
//! `REQUEST_METHOD`, `PATH_INFO`, `QUERY_STRING`, `CONTENT_TYPE`,
//! `CONTENT_LENGTH`, `SERVER_NAME`, one `HTTP_*` per request header, and the
//! rest of the standard set. Pure code: it turns request parts into pairs.
//!
//! Not every header is forwarded: credentials are withheld, `Proxy` would
//! become `HTTP_PROXY` (httpoxy), and a name with `_` could pose as its `-`
//! twin, since both map to the same variable.

use crate::runtime::connection::ConnectionInfo;
use http::request::Parts;
use wisp_spec::route::Route;

/// The value of `SERVER_SOFTWARE`.
pub const SERVER_SOFTWARE: &str = concat!("wisp/", env!("CARGO_PKG_VERSION"));

/// Builds the meta-variables for a request routed by `route`, whose path after
/// the route prefix is `path_info`, with a body of `content_length` bytes.
pub fn meta_variables(
    parts: &Parts,
    route: &Route,
    path_info: &str,
    content_length: usize,
    connection: &ConnectionInfo,
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::with_capacity(16 + parts.headers.len());
    let mut set = |name: &str, value: String| vars.push((name.to_owned(), value));
    let host = parts
        .uri
        .host()
        .map(str::to_owned)
        .or_else(|| {
            let header = parts.headers.get(http::header::HOST)?.to_str().ok()?;
            Some(strip_port(header).to_owned())
        })
        .unwrap_or_else(|| connection.local.ip().to_string());
    set("GATEWAY_INTERFACE", "CGI/1.1".into());
    set("SERVER_SOFTWARE", SERVER_SOFTWARE.into());
    set("SERVER_NAME", host);
    set("SERVER_PORT", connection.local.port().to_string());
    set("SERVER_PROTOCOL", format!("{:?}", parts.version));
    set("REQUEST_METHOD", parts.method.as_str().to_owned());
    let script_name = if route.as_str() == "/" {
        ""
    } else {
        route.as_str()
    };
    set("SCRIPT_NAME", script_name.to_owned());
    set("PATH_INFO", path_info.to_owned());
    set("QUERY_STRING", parts.uri.query().unwrap_or("").to_owned());
    set(
        "REQUEST_URI",
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
    );
    set("REMOTE_ADDR", connection.remote.ip().to_string());
    set("REMOTE_HOST", connection.remote.ip().to_string());
    set("REMOTE_PORT", connection.remote.port().to_string());
    if content_length > 0 || parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        set("CONTENT_LENGTH", content_length.to_string());
    }
    if let Some(value) = parts.headers.get(http::header::CONTENT_TYPE) {
        set(
            "CONTENT_TYPE",
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        );
    }
    for name in parts.headers.keys() {
        if !forwards_as_meta_variable(name.as_str()) {
            continue;
        }
        let joined = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect::<Vec<_>>()
            .join(", ");
        let var = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        set(&var, joined);
    }
    vars
}

/// Whether the request header `name` (lowercase, as `http` stores it) becomes
/// an `HTTP_*` meta-variable.
fn forwards_as_meta_variable(name: &str) -> bool {
    // Represented above, or not the guest's business (RFC 3875 §4.1.18).
    let withheld = matches!(
        name,
        "content-type" | "content-length" | "authorization" | "proxy-authorization"
    );
    // `Proxy` would become `HTTP_PROXY`, which CGI programs and their HTTP
    // clients read as the outbound proxy to use (httpoxy, CVE-2016-5385).
    let httpoxy = name == "proxy";
    // `X_Under` and `X-Under` both map to `HTTP_X_UNDER`; dropping names with
    // an underscore (nginx's `underscores_in_headers off`) stops the first
    // posing as the second, e.g. past a proxy that strips or sets `X-Under`.
    let ambiguous = name.contains('_');
    !(withheld || httpoxy || ambiguous)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(
        req: http::Request<()>,
        route: &str,
        path_info: &str,
        len: usize,
    ) -> Vec<(String, String)> {
        let (parts, ()) = req.into_parts();
        let connection = ConnectionInfo {
            remote: "10.0.0.7:4242".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
        };
        meta_variables(
            &parts,
            &Route::parse(route).unwrap(),
            path_info,
            len,
            &connection,
        )
    }

    fn get<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn standard_variables_describe_the_request() {
        let req = http::Request::post("/app/items/3?x=1&y=2")
            .header("host", "example.com:8080")
            .header("content-type", "application/json")
            .header("x-trace-id", "abc")
            .body(())
            .unwrap();
        let v = vars(req, "/app", "/items/3", 11);
        assert_eq!(get(&v, "REQUEST_METHOD"), Some("POST"));
        assert_eq!(get(&v, "SCRIPT_NAME"), Some("/app"));
        assert_eq!(get(&v, "PATH_INFO"), Some("/items/3"));
        assert_eq!(get(&v, "QUERY_STRING"), Some("x=1&y=2"));
        assert_eq!(get(&v, "CONTENT_TYPE"), Some("application/json"));
        assert_eq!(get(&v, "CONTENT_LENGTH"), Some("11"));
        assert_eq!(get(&v, "SERVER_NAME"), Some("example.com"));
        assert_eq!(get(&v, "SERVER_PORT"), Some("8080"));
        assert_eq!(get(&v, "SERVER_PROTOCOL"), Some("HTTP/1.1"));
        assert_eq!(get(&v, "REMOTE_ADDR"), Some("10.0.0.7"));
        assert_eq!(get(&v, "GATEWAY_INTERFACE"), Some("CGI/1.1"));
        assert_eq!(get(&v, "HTTP_X_TRACE_ID"), Some("abc"));
        assert_eq!(get(&v, "HTTP_HOST"), Some("example.com:8080"));
    }

    #[test]
    fn query_string_is_always_set_and_length_only_with_a_body() {
        let v = vars(http::Request::get("/").body(()).unwrap(), "/", "/", 0);
        assert_eq!(get(&v, "QUERY_STRING"), Some(""));
        assert_eq!(get(&v, "CONTENT_LENGTH"), None);
        assert_eq!(get(&v, "SCRIPT_NAME"), Some(""));
        assert_eq!(get(&v, "SERVER_NAME"), Some("127.0.0.1"));
    }

    #[test]
    fn repeated_headers_are_joined_and_credentials_withheld() {
        let req = http::Request::get("/")
            .header("accept", "a")
            .header("accept", "b")
            .header("authorization", "Bearer secret")
            .body(())
            .unwrap();
        let v = vars(req, "/", "/", 0);
        assert_eq!(get(&v, "HTTP_ACCEPT"), Some("a, b"));
        assert_eq!(get(&v, "HTTP_AUTHORIZATION"), None);
    }

    #[test]
    fn proxy_header_never_becomes_http_proxy() {
        let req = http::Request::get("/")
            .header("proxy", "http://attacker.example:8080")
            .header("proxy-connection", "keep-alive")
            .body(())
            .unwrap();
        let v = vars(req, "/", "/", 0);
        assert_eq!(get(&v, "HTTP_PROXY"), None);
        assert_eq!(get(&v, "HTTP_PROXY_CONNECTION"), Some("keep-alive"));
    }

    #[test]
    fn header_with_underscore_cannot_pose_as_its_dashed_twin() {
        let req = http::Request::get("/")
            .header("x_under", "evil")
            .body(())
            .unwrap();
        let v = vars(req, "/", "/", 0);
        assert_eq!(get(&v, "HTTP_X_UNDER"), None);
        assert!(v.iter().all(|(_, value)| value != "evil"));
    }

    #[test]
    fn dashed_header_still_becomes_underscored_variable() {
        let req = http::Request::get("/")
            .header("x_under", "evil")
            .header("x-under", "good")
            .body(())
            .unwrap();
        let v = vars(req, "/", "/", 0);
        let under: Vec<_> = v.iter().filter(|(n, _)| n == "HTTP_X_UNDER").collect();
        assert_eq!(under.len(), 1);
        assert_eq!(get(&v, "HTTP_X_UNDER"), Some("good"));
    }

    #[test]
    fn host_port_is_stripped_including_ipv6() {
        assert_eq!(strip_port("example.com:80"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("example.com"), "example.com");
    }
}
