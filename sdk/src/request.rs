//! Reading a request: the path after the route, query strings, path
//! parameters and JSON bodies.

use crate::response::HttpError;
use serde::de::DeserializeOwned;

/// Header in which wisp tells a component the part of the path after its
/// route (`/items/7` for a request to `/api/items/7` on route `/api`).
/// Other hosts do not set it; then the whole path is used.
pub const PATH_INFO_HEADER: &str = "x-wisp-path-info";

/// Path parameters captured by a [`crate::Router`] pattern (`:id`, `*rest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    /// The value captured for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reading the parts of a request. Implemented for every `http::Request`.
///
/// ```
/// use wisp_sdk::RequestExt;
///
/// let request = http::Request::get("/search?q=wasm&page=2").body(()).unwrap();
/// assert_eq!(request.query_param("q").as_deref(), Some("wasm"));
///
/// #[derive(serde::Deserialize)]
/// struct Search { q: String, page: u32 }
/// let search: Search = request.query().unwrap();
/// assert_eq!((search.q.as_str(), search.page), ("wasm", 2));
/// ```
pub trait RequestExt {
    /// The path after the function's route (see [`PATH_INFO_HEADER`]), or
    /// the whole path on hosts that do not say.
    fn path_info(&self) -> &str;

    /// The first value of query parameter `name`, percent-decoded.
    fn query_param(&self, name: &str) -> Option<String>;

    /// The query string deserialized into `T`; a 400 error if it does not fit.
    fn query<T: DeserializeOwned>(&self) -> Result<T, HttpError>;

    /// A path parameter captured by the [`crate::Router`].
    fn param(&self, name: &str) -> Option<&str>;
}

impl<B> RequestExt for http::Request<B> {
    fn path_info(&self) -> &str {
        self.headers()
            .get(PATH_INFO_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|p| p.starts_with('/') || p.is_empty())
            .map(|p| if p.is_empty() { "/" } else { p })
            .unwrap_or_else(|| self.uri().path())
    }

    fn query_param(&self, name: &str) -> Option<String> {
        let query = self.uri().query()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    fn query<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_urlencoded::from_str(self.uri().query().unwrap_or(""))
            .map_err(|e| HttpError::bad_request(format!("invalid query string: {e}")))
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.extensions().get::<Params>()?.get(name)
    }
}

/// Reading a request's body.
#[allow(
    async_fn_in_trait,
    reason = "guests are single-threaded: nothing needs the futures to be Send"
)]
pub trait RequestBodyExt {
    /// The whole body as UTF-8 text; a 400 error if it is not.
    async fn text(&mut self) -> Result<String, HttpError>;

    /// The whole body deserialized from JSON; a 400 error if it does not fit.
    async fn json<T: DeserializeOwned>(&mut self) -> Result<T, HttpError>;
}

impl RequestBodyExt for crate::Request {
    async fn text(&mut self) -> Result<String, HttpError> {
        let bytes = self
            .body_mut()
            .contents()
            .await
            .map_err(|e| HttpError::bad_request(format!("reading the body failed: {e}")))?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| HttpError::bad_request("the body is not UTF-8 text"))
    }

    async fn json<T: DeserializeOwned>(&mut self) -> Result<T, HttpError> {
        let bytes = self
            .body_mut()
            .contents()
            .await
            .map_err(|e| HttpError::bad_request(format!("reading the body failed: {e}")))?;
        serde_json::from_slice(bytes)
            .map_err(|e| HttpError::bad_request(format!("invalid JSON body: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_info_prefers_the_host_header() {
        let plain = http::Request::get("/api/items/7").body(()).unwrap();
        assert_eq!(plain.path_info(), "/api/items/7");
        let routed = http::Request::get("/api/items/7")
            .header(PATH_INFO_HEADER, "/items/7")
            .body(())
            .unwrap();
        assert_eq!(routed.path_info(), "/items/7");
        let root = http::Request::get("/api")
            .header(PATH_INFO_HEADER, "")
            .body(())
            .unwrap();
        assert_eq!(root.path_info(), "/");
    }

    #[test]
    fn query_params_are_decoded() {
        let request = http::Request::get("/?name=Ada%20L&x=1&x=2")
            .body(())
            .unwrap();
        assert_eq!(request.query_param("name").as_deref(), Some("Ada L"));
        assert_eq!(request.query_param("x").as_deref(), Some("1"));
        assert_eq!(request.query_param("nope"), None);
    }

    #[test]
    fn a_query_that_does_not_fit_is_a_400() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Page {
            page: u32,
        }
        let request = http::Request::get("/?page=lots").body(()).unwrap();
        let err = request.query::<Page>().unwrap_err();
        assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
    }
}
