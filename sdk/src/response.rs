//! Turning what a handler returns into a response.

use crate::{Body, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use serde::Serialize;

/// Anything a handler can return.
///
/// Implemented for [`Response`], text (`&'static str`, `String`: 200,
/// `text/plain`), [`Json`], `(StatusCode, T)` for any `T` here, [`HttpError`],
/// [`crate::Error`] (500 with the message as JSON) and `Result`s of these.
///
/// ```
/// use wisp_sdk::{HttpError, IntoResponse, Json, StatusCode};
///
/// let ok = Json(serde_json::json!({"id": 7})).into_response();
/// assert_eq!(ok.headers()["content-type"], "application/json");
/// let created = (StatusCode::CREATED, "made it").into_response();
/// assert_eq!(created.status(), 201);
/// let missing = HttpError::not_found("no item 7").into_response();
/// assert_eq!(missing.status(), 404);
/// ```
pub trait IntoResponse {
    /// The response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

fn with_type(body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        with_type(self.to_owned().into(), "text/plain; charset=utf-8")
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        with_type(self.into(), "text/plain; charset=utf-8")
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        with_type(self.into(), "application/octet-stream")
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self;
        response
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        let mut response = self.1.into_response();
        *response.status_mut() = self.0;
        response
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }
}

/// A JSON response body: serializes its value, sets `application/json`.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(bytes) => with_type(bytes.into(), "application/json"),
            Err(e) => {
                HttpError::internal(format!("serializing the response failed: {e}")).into_response()
            }
        }
    }
}

/// An error with a status, answered as `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl HttpError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500 Internal Server Error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for HttpError {}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = with_type(body.into(), "application/json");
        *response.status_mut() = self.status;
        response
    }
}

impl IntoResponse for crate::Error {
    fn into_response(self) -> Response {
        match self.downcast::<HttpError>() {
            Ok(http) => http.into_response(),
            Err(other) => HttpError::internal(format!("{other:#}")).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_json_and_statuses() {
        let text = "hi".into_response();
        assert_eq!(text.status(), StatusCode::OK);
        assert_eq!(text.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        let json = (StatusCode::CREATED, Json(vec![1, 2])).into_response();
        assert_eq!(json.status(), StatusCode::CREATED);
        assert_eq!(json.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(StatusCode::NO_CONTENT.into_response().status(), 204);
    }

    #[test]
    fn errors_become_json_with_their_status() {
        let not_found: Result<String, HttpError> = Err(HttpError::not_found("gone"));
        assert_eq!(not_found.into_response().status(), StatusCode::NOT_FOUND);
        let any: Result<String, crate::Error> = Err(anyhow::anyhow!("boom"));
        assert_eq!(
            any.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let wrapped: crate::Error = HttpError::bad_request("bad").into();
        assert_eq!(wrapped.into_response().status(), StatusCode::BAD_REQUEST);
    }
}
