//! Routing inside a function: method and path pattern → handler.
//!
//! Patterns are matched against the path after the function's route
//! ([`crate::RequestExt::path_info`]): literal segments, `:name` capturing
//! one segment, and a final `*name` capturing the rest. The first route that
//! matches wins; a path no route knows is 404, a known path with another
//! method is 405 with `Allow`. Both as JSON errors.

use crate::request::{Params, RequestExt};
use crate::response::{HttpError, IntoResponse};
use crate::{Request, Response};
use http::Method;
use std::future::Future;
use std::pin::Pin;

/// A boxed handler future.
type HandlerFuture = Pin<Box<dyn Future<Output = Response>>>;

/// Something a route can call: any `async fn(Request) -> impl IntoResponse`.
pub trait Handler: 'static {
    /// Handles a request.
    fn call(&self, request: Request) -> HandlerFuture;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    fn call(&self, request: Request) -> HandlerFuture {
        let future = self(request);
        Box::pin(async move { future.await.into_response() })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

fn parse_pattern(pattern: &str) -> Vec<Segment> {
    pattern
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if let Some(name) = s.strip_prefix(':') {
                Segment::Param(name.to_owned())
            } else if let Some(name) = s.strip_prefix('*') {
                Segment::Rest(name.to_owned())
            } else {
                Segment::Literal(s.to_owned())
            }
        })
        .collect()
}

/// Matches `path` against a parsed pattern, returning the captures.
fn match_path(pattern: &[Segment], path: &str) -> Option<Vec<(String, String)>> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut captures = Vec::new();
    for (i, segment) in pattern.iter().enumerate() {
        match segment {
            Segment::Rest(name) => {
                captures.push((name.clone(), segments.get(i..).unwrap_or(&[]).join("/")));
                return Some(captures);
            }
            Segment::Literal(literal) => {
                if segments.get(i) != Some(&literal.as_str()) {
                    return None;
                }
            }
            Segment::Param(name) => captures.push((name.clone(), (*segments.get(i)?).to_owned())),
        }
    }
    (segments.len() == pattern.len()).then_some(captures)
}

struct Route {
    method: Method,
    pattern: Vec<Segment>,
    handler: Box<dyn Handler>,
}

/// Routes requests to handlers by method and path.
///
/// ```no_run
/// use wisp_sdk::{Json, Request, RequestExt, Router};
///
/// async fn get_item(request: Request) -> Json<serde_json::Value> {
///     Json(serde_json::json!({ "id": request.param("id") }))
/// }
///
/// async fn handle(request: Request) -> wisp_sdk::Response {
///     Router::new().get("/items/:id", get_item).handle(request).await
/// }
///
/// wisp_sdk::export!(async handle);
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// A router with no routes.
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds a route for `method` and `pattern`.
    pub fn route(mut self, method: Method, pattern: &str, handler: impl Handler) -> Router {
        self.routes.push(Route {
            method,
            pattern: parse_pattern(pattern),
            handler: Box::new(handler),
        });
        self
    }

    /// Adds a `GET` route (which also answers `HEAD`).
    pub fn get(self, pattern: &str, handler: impl Handler) -> Router {
        self.route(Method::GET, pattern, handler)
    }

    /// Adds a `POST` route.
    pub fn post(self, pattern: &str, handler: impl Handler) -> Router {
        self.route(Method::POST, pattern, handler)
    }

    /// Adds a `PUT` route.
    pub fn put(self, pattern: &str, handler: impl Handler) -> Router {
        self.route(Method::PUT, pattern, handler)
    }

    /// Adds a `DELETE` route.
    pub fn delete(self, pattern: &str, handler: impl Handler) -> Router {
        self.route(Method::DELETE, pattern, handler)
    }

    /// Calls the first matching route's handler with the request (its path
    /// parameters in [`RequestExt::param`]).
    pub async fn handle(&self, mut request: Request) -> Response {
        let path = request.path_info().to_owned();
        let mut allowed = Vec::new();
        for route in &self.routes {
            let Some(captures) = match_path(&route.pattern, &path) else {
                continue;
            };
            let method_fits = route.method == request.method()
                || (route.method == Method::GET && request.method() == Method::HEAD);
            if !method_fits {
                allowed.push(route.method.as_str());
                continue;
            }
            request.extensions_mut().insert(Params(captures));
            return route.handler.call(request).await;
        }
        if allowed.is_empty() {
            return HttpError::not_found(format!("no route for `{path}`")).into_response();
        }
        let mut response = HttpError::new(
            http::StatusCode::METHOD_NOT_ALLOWED,
            format!("`{}` is not allowed on `{path}`", request.method()),
        )
        .into_response();
        if let Ok(allow) = http::HeaderValue::try_from(allowed.join(", ")) {
            response.headers_mut().insert(http::header::ALLOW, allow);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captures(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        match_path(&parse_pattern(pattern), path)
    }

    #[test]
    fn literals_params_and_rest() {
        assert_eq!(captures("/items", "/items"), Some(vec![]));
        assert_eq!(captures("/items", "/items/"), Some(vec![]));
        assert_eq!(captures("/items", "/other"), None);
        assert_eq!(
            captures("/items/:id", "/items/7"),
            Some(vec![("id".into(), "7".into())])
        );
        assert_eq!(captures("/items/:id", "/items"), None);
        assert_eq!(captures("/items/:id", "/items/7/extra"), None);
        assert_eq!(
            captures("/files/*path", "/files/a/b.txt"),
            Some(vec![("path".into(), "a/b.txt".into())])
        );
        assert_eq!(captures("/", "/"), Some(vec![]));
    }
}
