//! The WASI 0.3 flavour (feature `wasi-0-3`): [`export!`](crate::v3::export)
//! makes the function a `wasi:http/service@0.3.0` component, through
//! wit-bindgen's async bindings, instead of a WASI 0.2 `wasi:http/proxy` one.
//!
//! ```toml
//! wisp-sdk = { path = "wisp-sdk", features = ["wasi-0-3"] }
//! ```
//!
//! ```ignore
//! async fn handle(request: wisp_sdk::Request) -> impl wisp_sdk::IntoResponse {
//!     format!("Hello from {} over WASI 0.3!\n", request.uri().path())
//! }
//! wisp_sdk::v3::export!(async handle);
//! ```
//!
//! Handlers, [`Router`](crate::Router), [`IntoResponse`](crate::IntoResponse),
//! [`kv`](crate::kv), [`config`](crate::config) and [`log`](crate::log) are
//! the same as in the 0.2 flavour; [`fetch`](crate::fetch) and
//! [`call`](crate::call) go through the 0.3 client. What differs: the
//! request body is read whole before the handler runs, and the response
//! body is written whole after it returns (both within the function's
//! body limits). For a body that streams, write the handler on the
//! bindings directly ([`bindings`], as the repo's `guests/service3` does).

use crate::fetch::FetchError;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

/// The WASI 0.3 bindings (`wasi:http/service@0.3.0`) the flavour is built
/// on, for handlers that need streaming.
#[allow(missing_docs, reason = "generated from the WIT, documented there")]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit/http-0.3.0",
        world: "wisp:http3/service",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__wisp_export_service",
        default_bindings_module: "wisp_sdk::v3::bindings",
    });
}

use bindings::wasi::http::types::{ErrorCode, Fields, Method, Request, Response, Scheme};
use bindings::{wit_future, wit_stream};

/// A boxed outbound call.
type Sent = Pin<Box<dyn Future<Output = Result<http::Response<Bytes>, FetchError>>>>;

/// The 0.3 client, set once a 0.3 handler runs: outbound calls then take
/// it. Reached only through what [`serve`] sets, so a WASI 0.2 function
/// built with this feature on never links (or imports) the 0.3 client.
static CLIENT: OnceLock<fn(http::Request<Bytes>) -> Sent> = OnceLock::new();

/// The 0.3 client, inside a function exported with
/// [`export!`](crate::v3::export).
pub(crate) fn client() -> Option<fn(http::Request<Bytes>) -> Sent> {
    CLIENT.get().copied()
}

/// Exports a handler as the component's `wasi:http/handler@0.3.0`: the
/// WASI 0.3 twin of [`wisp_sdk::export!`](crate::export), with the same
/// forms (`export!(handler)`, `export!(async handler)`).
#[macro_export]
#[doc(hidden)]
macro_rules! __v3_export {
    (async $handler:path) => {
        $crate::__v3_export_with!(|request| async move {
            $crate::IntoResponse::into_response($handler(request).await)
        });
    };
    ($handler:path) => {
        $crate::__v3_export_with!(|request| async move {
            $crate::IntoResponse::into_response($handler(request))
        });
    };
}

pub use crate::__v3_export as export;

#[doc(hidden)]
#[macro_export]
macro_rules! __v3_export_with {
    ($run:expr) => {
        struct __WispService;

        impl $crate::v3::bindings::exports::wasi::http::handler::Guest for __WispService {
            async fn handle(
                request: $crate::v3::bindings::wasi::http::types::Request,
            ) -> Result<
                $crate::v3::bindings::wasi::http::types::Response,
                $crate::v3::bindings::wasi::http::types::ErrorCode,
            > {
                $crate::v3::serve(request, $run).await
            }
        }

        $crate::v3::bindings::__wisp_export_service!(__WispService with_types_in $crate::v3::bindings);

        /// Components export `handle` instead of running `main`; a binary
        /// crate still needs one.
        #[allow(dead_code)]
        fn main() {}
    };
}

/// Runs `run` on `request` and answers with its response. Not a public API:
/// what [`export!`](crate::v3::export) expands to.
#[doc(hidden)]
pub async fn serve<F, Fut>(request: Request, run: F) -> Result<Response, ErrorCode>
where
    F: FnOnce(crate::Request) -> Fut,
    Fut: Future<Output = crate::Response>,
{
    CLIENT.get_or_init(|| |request| Box::pin(send(request)));
    let request = incoming(request).await?;
    let (parts, mut body) = run(request).await.into_parts();
    let contents = match body.contents().await {
        Ok(contents) => contents.to_vec(),
        Err(e) => return Err(ErrorCode::InternalError(Some(e.to_string()))),
    };
    let headers = fields(&parts.headers)?;
    let (response, _sent) = Response::new(headers, Some(stream_of(contents)), no_trailers());
    response
        .set_status_code(parts.status.as_u16())
        .map_err(|()| ErrorCode::InternalError(Some("invalid status".into())))?;
    Ok(response)
}

/// `request` as the `http` crate's, its body read whole.
async fn incoming(request: Request) -> Result<crate::Request, ErrorCode> {
    let method = method_of(&request.get_method()).ok_or(ErrorCode::HttpRequestMethodInvalid)?;
    let mut builder = http::Request::builder().method(method);
    let path = request.get_path_with_query().unwrap_or_else(|| "/".into());
    builder = match (request.get_scheme(), request.get_authority()) {
        (Some(scheme), Some(authority)) => {
            let scheme = match scheme {
                Scheme::Http => "http".to_owned(),
                Scheme::Https => "https".to_owned(),
                Scheme::Other(other) => other,
            };
            builder.uri(format!("{scheme}://{authority}{path}"))
        }
        _ => builder.uri(path),
    };
    for (name, value) in request.get_headers().copy_all() {
        builder = builder.header(name, value);
    }
    let (done, received) = wit_future::new(|| Ok(()));
    drop(done);
    let (body, trailers) = Request::consume_body(request, received);
    let contents = body.collect().await;
    // The body's end says whether it arrived whole: a body the host cut
    // off (too large, too slow, the client gone) ends in an error here.
    trailers.await?;
    builder
        .body(crate::Body::from(contents))
        .map_err(|e| ErrorCode::InternalError(Some(format!("the request: {e}"))))
}

/// Sends `request` with the 0.3 client and reads the whole response.
async fn send(request: http::Request<Bytes>) -> Result<http::Response<Bytes>, FetchError> {
    let (parts, body) = request.into_parts();
    let (https, authority, path) = crate::fetch::destination(&parts.uri)?;
    let scheme = if https { Scheme::Https } else { Scheme::Http };
    let headers = fields(&parts.headers).map_err(FetchError::from)?;
    let (outgoing, _sent) =
        Request::new(headers, Some(stream_of(body.to_vec())), no_trailers(), None);
    let invalid =
        |what: &str| FetchError::Invalid(format!("the host refused the request's {what}"));
    outgoing
        .set_method(&wasi_method(&parts.method))
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;
    let incoming = bindings::wasi::http::client::send(outgoing)
        .await
        .map_err(FetchError::from)?;
    let mut response = http::Response::builder().status(incoming.get_status_code());
    for (name, value) in incoming.get_headers().copy_all() {
        response = response.header(name, value);
    }
    let (done, received) = wit_future::new(|| Ok(()));
    drop(done);
    let (body, trailers) = Response::consume_body(incoming, received);
    let contents = body.collect().await;
    // A response cut off on its way ends in an error, not as if whole.
    trailers.await.map_err(FetchError::from)?;
    response
        .body(Bytes::from(contents))
        .map_err(|e| FetchError::Failed(format!("invalid response: {e}")))
}

impl From<ErrorCode> for FetchError {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::HttpRequestDenied => FetchError::Denied,
            other => FetchError::Failed(format!("{other:?}")),
        }
    }
}

/// `headers` as WASI 0.3 fields.
fn fields(headers: &http::HeaderMap) -> Result<Fields, ErrorCode> {
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    Fields::from_list(&list)
        .map_err(|e| ErrorCode::InternalError(Some(format!("a header the host refused: {e:?}"))))
}

/// A body stream that `contents` are written to from a task of their own.
fn stream_of(contents: Vec<u8>) -> wit_bindgen::StreamReader<u8> {
    let (mut writer, reader) = wit_stream::new();
    wit_bindgen::spawn(async move {
        writer.write_all(contents).await;
    });
    reader
}

/// A trailers future that says: none.
fn no_trailers() -> wit_bindgen::FutureReader<Result<Option<Fields>, ErrorCode>> {
    let (writer, reader) = wit_future::new(|| Ok(None));
    drop(writer);
    reader
}

/// `method` as the `http` crate's; `None` if it is not a valid token.
fn method_of(method: &Method) -> Option<http::Method> {
    Some(match method {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Connect => http::Method::CONNECT,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Patch => http::Method::PATCH,
        Method::Other(other) => http::Method::from_bytes(other.as_bytes()).ok()?,
    })
}

fn wasi_method(method: &http::Method) -> Method {
    match method.as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    }
}
