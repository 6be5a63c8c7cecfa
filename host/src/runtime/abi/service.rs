//! The WASI 0.3 call: one request to a `wasi:http/service` component (its
//! `wasi:http/handler@0.3.x` export), on wasmtime-wasi-http's `p3` support.
//!
//! The sandbox, limits, accounting and response handling are the 0.2
//! path's (`http.rs`); what differs is the call. A 0.3 handler is an async
//! function: it returns its response while its body stream and trailers
//! future may still be running in tasks of its own. So the store's event
//! loop (`run_concurrent`) runs on after the head is sent, driving those
//! tasks — as the response body is read — until the guest has nothing left
//! to do (`poll_no_interesting_tasks`); only then is the instance torn
//! down. The request's deadline covers all of it: a guest that never
//! finishes its stream is cut off like any other (504 before the head, an
//! aborted body after).
//!
//! wasmtime marks `p3` experimental and gives it no backported security
//! fixes; the README's security section says what that means here.

use super::http::HttpState;
use crate::runtime::body::LimitedBody;
use std::future::poll_fn;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::Service;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;

/// The response head of a 0.3 guest, or the error code it answered with.
pub(crate) type HeadResult = Result<http::Response<HyperOutgoingBody>, ErrorCode>;
/// Where the response head goes.
pub(crate) type HeadSender = tokio::sync::oneshot::Sender<HeadResult>;
/// Where the response head comes from.
pub(crate) type HeadReceiver = tokio::sync::oneshot::Receiver<HeadResult>;

/// The linker every WASI 0.3 component is pre-linked against, on the
/// concurrent engine: WASI 0.3 (CLI, clocks, random, filesystem, sockets
/// denied by the same context as 0.2, `wasi:http`'s types and client), and
/// WASI 0.2 with the platform services besides — a 0.3 component built
/// with today's toolchains imports both.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HttpState>> {
    let mut linker = Linker::new(engine);
    super::http::add_to_linker(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    crate::runtime::services::add_concurrent_to_linker(&mut linker)?;
    add_nothing_behind(&mut linker)?;
    Ok(linker)
}

/// What a middleware component (`wasi:http/middleware`) deployed on its own
/// finds behind it: an imported `wasi:http/handler` that answers every
/// request it passes on with an error code saying so. A function that names
/// it in `middleware` gets it composed in front of its own handler instead.
fn add_nothing_behind(linker: &mut Linker<HttpState>) -> wasmtime::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi_http::p3::{Request, Response};
    type Answer = (Result<Resource<Response>, ErrorCode>,);
    linker.instance(NEXT_HANDLER)?.func_wrap_concurrent(
        "handle",
        |accessor, (request,): (Resource<Request>,)| {
            Box::pin(async move {
                accessor.with(|mut store| {
                    let request = store.get().http().table.delete(request)?;
                    // Taken apart as the host takes any request apart, so a
                    // body the guest still writes is closed, not leaked.
                    drop(request.into_http(&mut store, async { Ok(()) }));
                    wasmtime::Result::<()>::Ok(())
                })?;
                Ok::<Answer, wasmtime::Error>((Err(ErrorCode::InternalError(Some(
                    "this is HTTP middleware with no function behind it: it serves in front of a function deployed with `--middleware NAME`".into(),
                ))),))
            })
        },
    )
}

/// The handler a middleware component imports.
const NEXT_HANDLER: &str = "wasi:http/handler@0.3.0";

/// Calls `service`'s handler with `request` in `store`, sends the response
/// head (or error code) on `head` as soon as the guest returns it, then
/// runs the store's event loop until every task of the guest is done: its
/// body written, its trailers sent, its work after the response finished.
pub(crate) async fn handle(
    store: &mut Store<HttpState>,
    service: Service,
    request: http::Request<LimitedBody>,
    head: HeadSender,
) -> wasmtime::Result<()> {
    let (request, request_done) =
        wasmtime_wasi_http::p3::Request::from_http(store.data_mut().hooks(), request);
    store
        .run_concurrent(async move |accessor| {
            match service.handle(accessor, request).await? {
                Ok(response) => {
                    let response = accessor.with(|mut store| {
                        response.into_http_with_getter(&mut store, request_done, HttpState::http)
                    })?;
                    let _ = head.send(Ok(response));
                }
                Err(code) => {
                    let _ = head.send(Err(code));
                }
            }
            poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
            wasmtime::Result::<()>::Ok(())
        })
        .await?
}
