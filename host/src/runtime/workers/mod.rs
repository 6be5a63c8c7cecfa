//! Process isolation (`wisp serve --isolation process`): guests run in
//! worker processes behind an operating-system wall, one per function
//! version, and the front process keeps the listeners, routing, admission,
//! the admin API, every secret but a worker's own, the key-value database
//! and the network.
//!
//! The front ([`WorkerPool::invoke`]) takes a request's slots as in-process
//! runs do (and reads a CGI body whole, charged to the host's buffers), and
//! hands the request to its function's worker on a Unix socket, in a
//! compact framing (`link.rs`; `pool.rs` starts, replaces, stops and caps
//! workers). The worker (`child.rs`) runs it in a fresh sandbox exactly as
//! the front would in-process, and reaches back (`remote.rs`, answered and
//! checked by `back.rs`) for key-value storage, chained and outbound calls,
//! shares of the host's guest memory budget (leased in 16 MiB steps, so the
//! budget holds across all workers together); the run's cost and output
//! ride back in its answer's trailers (`carry.rs`; or on their own, when
//! the run outlives its answer) and land in the front's books. A worker
//! that dies fails only its own calls: their slots come back, and the next
//! request starts a new worker.

mod back;
mod carry;
mod cgroup;
mod child;
mod link;
mod pool;
mod remote;
mod wire;

pub use child::guest_worker_main;
pub(crate) use pool::WorkerPool;
pub use pool::{DEFAULT_MAX_WORKERS, DEFAULT_SPARE_WORKERS, DEFAULT_WORKER_IDLE, WorkerOptions};

use crate::error::{InvokeError, Limit};
use crate::runtime::abi::cgi::read_body;
use crate::runtime::abi::http::{body_too_slow_error, request_too_large};
use crate::runtime::body::{BoxError, LimitedBody, full};
use crate::runtime::body::{RequestBody, ResponseBody};
use crate::runtime::chain::{ChainBudget, ChainOrigin};
use crate::runtime::function::{Function, RequestContext};
use back::Pending;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wire::{CallHead, DONE_HEADER, INSTANTIATE_HEADER, LIMIT_HEADER};
use wisp_spec::inspect::Abi;

/// A call on its way to its worker: dropped before the answer (its client
/// left), the call is settled when the worker says its run is over, or
/// shortly after, if the worker never took it up.
struct Abandoned<'a> {
    back: &'a back::Back,
    call: u64,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        self.back.abandon(self.call);
    }
}

impl WorkerPool {
    /// Serves one request of `function` in its worker: its slots taken
    /// here and held until the worker reports the run over.
    pub(crate) async fn invoke(
        self: &Arc<Self>,
        function: &Function,
        request: http::Request<RequestBody>,
        context: RequestContext<'_>,
    ) -> Result<http::Response<ResponseBody>, InvokeError> {
        let started = context.ticket.started();
        // A CGI body is read whole before its slots are taken, as
        // in-process, and charged to the host's buffer budget.
        let (request, buffered) = if function.code().abi == Abi::Cgi {
            let (parts, body) = request.into_parts();
            let (bytes, charge) = read_body(
                body,
                &function.settings.limits,
                started,
                &context.runtime.buffers,
            )
            .await?;
            (http::Request::from_parts(parts, full(bytes)), Some(charge))
        } else {
            (request, None)
        };
        let permit = context.ticket.take(function).await?;
        let worker = self.worker_for(function, context.runtime).await?;
        let call = worker.next_call();
        let head = CallHead {
            call,
            uri: request.uri().to_string(),
            http: match request.version() {
                http::Version::HTTP_10 => 10,
                http::Version::HTTP_11 => 11,
                http::Version::HTTP_3 => 30,
                _ => 20,
            },
            route: context.route.as_str().to_owned(),
            path_info: context.path_info.to_owned(),
            remote: context.connection.remote,
            local: context.connection.local,
            trigger: context.trace.trigger,
            request_id: context.request_id.to_string(),
            elapsed_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        };
        let (mut parts, body) = request.into_parts();
        // The body limit is kept here too, so a call the worker had to cut
        // off before it answered is a 413, as in-process, not a failure.
        let too_large = Arc::new(AtomicBool::new(false));
        let limit = function.settings.limits.max_request_body_bytes;
        let body = LimitedBody::new(body, limit, too_large.clone())
            .map_err(BoxError::from)
            .boxed_unsync();
        let budget = ChainBudget::inherited(&parts.extensions).unwrap_or_default();
        parts.extensions = http::Extensions::new();
        worker.back.expect(
            call,
            Pending {
                _permit: permit,
                _buffered: buffered,
                meter: function.meter().clone(),
                trace: context.trace.clone(),
                request_id: context.request_id.clone(),
                dispatch: context.dispatch.clone(),
                depth: ChainOrigin::depth_of(&parts.headers),
                budget,
                overdue: worker.back.overdue_from(started),
            },
        );
        let abandoned = Abandoned {
            back: &worker.back,
            call,
        };
        let sent = worker
            .send(head, http::Request::from_parts(parts, body))
            .await;
        std::mem::forget(abandoned);
        if context.body_too_slow.load(Ordering::Relaxed) {
            // The body the worker was reading stopped: the client's doing.
            worker.back.settle(call);
            return Err(body_too_slow_error());
        }
        let response = match sent {
            Ok(response) => response,
            Err(_) if too_large.load(Ordering::Relaxed) => {
                worker.back.settle(call);
                return Err(request_too_large(limit));
            }
            Err(link::CallFailed::HeadTooLarge) => {
                worker.back.settle(call);
                return Err(InvokeError::BadRequest(
                    "the request's head is too large to pass on".into(),
                ));
            }
            Err(link::CallFailed::Broken(e)) => {
                worker.back.settle(call);
                tracing::warn!(function = %function.name, pid = worker.pid, "a call to its guest worker failed: {e}");
                return Err(InvokeError::WorkerFailed(format!(
                    "the worker of function `{}` failed",
                    function.name
                )));
            }
        };
        let (mut parts, body) = response.into_parts();
        if let Some(limit) = parts.headers.remove(LIMIT_HEADER) {
            let named = Limit::ALL
                .iter()
                .find(|l| l.as_str().as_bytes() == limit.as_bytes());
            if let Some(limit) = named {
                function.metrics().record_breach(*limit);
            }
        }
        if let Some(us) = parts.headers.remove(INSTANTIATE_HEADER) {
            let us = us.to_str().ok().and_then(|us| us.parse().ok()).unwrap_or(0);
            let instantiated = std::time::Duration::from_micros(us);
            context.trace.set_instantiate(instantiated);
            function.metrics().record_instantiate(instantiated);
        }
        if parts.headers.remove(DONE_HEADER).is_some() {
            worker.back.settle(call);
        }
        let body = carry::Unpacking::new(body, worker.back.clone(), call).boxed_unsync();
        Ok(http::Response::from_parts(parts, body))
    }
}
