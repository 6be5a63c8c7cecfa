//! # wisp-sdk
//!
//! Write an HTTP function for [wisp](https://example.invalid/wisp) in a few
//! lines. A function built with this SDK is a standard `wasi:http/proxy`
//! component (WASI 0.2): it runs unchanged on wisp, `wasmtime serve`, Spin or
//! any other `wasi:http` host.
//!
//! ```no_run
//! use wisp_sdk::{Request, Response, IntoResponse};
//!
//! fn hello(request: Request) -> impl IntoResponse {
//!     format!("Hello from {}!\n", request.uri().path())
//! }
//!
//! wisp_sdk::export!(hello);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` and deploy the
//! `.wasm` with `wisp deploy`.
//!
//! With the `wasi-0-3` feature, [`v3::export!`](crate::v3::export) exports the
//! same handler as a WASI 0.3 `wasi:http/service` component instead (what
//! `wisp new --lang rust` starts from); see [`v3`] for what differs.
//!
//! ## What is in the box
//!
//! | item | for |
//! | --- | --- |
//! | [`export!`] | turning a plain `fn(Request) -> impl IntoResponse` (or an `async fn`) into the component's handler |
//! | [`Request`], [`Response`], [`Body`] | the `http` crate's types, with a streaming body |
//! | [`IntoResponse`], [`Json`], [`HttpError`] | returning text, JSON, statuses and errors |
//! | [`RequestExt`] | query strings, path parameters, JSON request bodies, the path after the route |
//! | [`Router`] | routing inside a function: `GET /items/:id` → handler |
//! | [`config`] | settings: `wasi:config` values and secrets (`--config`, `wisp secret set`), then env vars (`--env`) |
//! | [`kv`] | key-value buckets that outlive the request, through `wasi:keyvalue` (the function's own, or app buckets granted with `--kv`) |
//! | [`log`] | logging to stderr, which the host keeps per request |
//! | [`fetch`] | outbound HTTP through `wasi:http/outgoing-handler`, subject to the host's allow-list |
//! | [`call`] | calling another function on the same host in-process (`http://NAME.wisp.internal`), subject to the allow-list |
//!
//! Every request runs in a fresh instance: globals start fresh each time;
//! what must last goes in a [`kv::Bucket`]. A component imports
//! `wasi:config` or `wasi:keyvalue` only if it calls [`config`] or [`kv`], so
//! a function that does not runs on any `wasi:http` host.

pub mod config;
pub mod fetch;
pub mod kv;
pub mod log;
mod request;
mod response;
mod router;
#[cfg(feature = "wasi-0-3")]
pub mod v3;
pub mod websocket;
mod websocket_events;

pub use fetch::call;
pub use http;
pub use http::{Method, StatusCode};
pub use request::{PATH_INFO_HEADER, Params, RequestBodyExt, RequestExt};
pub use response::{HttpError, IntoResponse, Json};
pub use router::{Handler, Router};
pub use wstd::http::Body;

/// An incoming request, with a streaming body.
pub type Request = http::Request<Body>;

/// A response, with a streaming body.
pub type Response = http::Response<Body>;

/// The error type handlers may return; it becomes a 500 response.
pub type Error = anyhow::Error;

/// Exports a handler as the component's `wasi:http/incoming-handler`.
///
/// `export!(handler)` takes `fn(Request) -> impl IntoResponse`;
/// `export!(async handler)` takes `async fn(Request) -> impl IntoResponse`.
/// Use it once, at the top level of `src/main.rs`, instead of writing `main`.
///
/// ```no_run
/// use wisp_sdk::{Json, Request, IntoResponse};
///
/// async fn handle(mut request: Request) -> impl IntoResponse {
///     let body = request.body_mut().str_contents().await.map(str::to_owned).unwrap_or_default();
///     Json(serde_json::json!({ "received": body }))
/// }
///
/// wisp_sdk::export!(async handle);
/// ```
#[macro_export]
macro_rules! export {
    (async $handler:path) => {
        $crate::__export!(|request| async move {
            $crate::IntoResponse::into_response($handler(request).await)
        });
    };
    ($handler:path) => {
        $crate::__export!(|request| async move {
            $crate::IntoResponse::into_response($handler(request))
        });
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export {
    ($run:expr) => {
        struct __WispHandler;

        impl $crate::__private::wasip2::exports::http::incoming_handler::Guest for __WispHandler {
            fn handle(
                request: $crate::__private::wasip2::http::types::IncomingRequest,
                response_out: $crate::__private::wasip2::http::types::ResponseOutparam,
            ) {
                $crate::__private::serve(request, response_out, $run)
            }
        }

        $crate::__private::wasip2::http::proxy::export!(__WispHandler with_types_in $crate::__private::wasip2);

        /// Components export `handle` instead of running `main`; a binary
        /// crate still needs one.
        #[allow(dead_code)]
        fn main() {}
    };
}

/// What the macros expand to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use wstd::__internal::wasip2;

    use crate::Response;
    use wasip2::http::types::{IncomingRequest, ResponseOutparam};

    /// Runs `run` on the request and sends its response.
    pub fn serve<F, Fut>(request: IncomingRequest, response_out: ResponseOutparam, run: F)
    where
        F: FnOnce(crate::Request) -> Fut,
        Fut: std::future::Future<Output = Response>,
    {
        let responder = wstd::http::server::Responder::new(response_out);
        wstd::runtime::block_on(async move {
            match wstd::http::request::try_from_incoming(request) {
                Ok(request) => {
                    let response = run(request).await;
                    if let Err(e) = responder.respond(response).await {
                        crate::log::error(format_args!("sending the response failed: {e}"));
                    }
                }
                Err(e) => responder.fail(e),
            }
        })
    }
}
