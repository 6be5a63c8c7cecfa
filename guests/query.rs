//! The query string of a test guest's request: the guests that take their
//! orders from it include this file (`#[path]`), being separate crates.

/// A request's query parameters, decoded.
pub struct Query(Vec<(String, String)>);

impl Query {
    /// The query parameters of `request`.
    pub fn of<B>(request: &wstd::http::Request<B>) -> Query {
        let query = request.uri().query().unwrap_or("");
        Query(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
