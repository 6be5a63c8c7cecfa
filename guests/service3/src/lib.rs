//! `service3`: the WASI 0.3 contract guest — a `wasi:http/service@0.3.0`
//! component (wit-bindgen's async bindings) whose paths each test one part
//! of the contract (the last path segment names it):
//!
//! * `/count` — increments a global and answers its value: a host that gives
//!   every request a fresh instance makes it `1` every time;
//! * `/echo` — answers with the request's own body stream and trailers
//!   future, passed straight through (streaming both ways);
//! * `/forever` — sends its head and a first chunk, then never ends its body;
//! * `/linger` — answers at once, then keeps working (an endless wait) after
//!   its body is done;
//! * `/spin` — loops forever before answering;
//! * `/trap` — panics before answering;
//! * `/error` — answers with an error code instead of a response;
//! * `/alloc` — grows its memory by 1 GiB;
//! * `/fetch?http://HOST:PORT/PATH` — sends a `GET` there with the 0.3
//!   client and answers with the status it got, or `denied: ERROR`;
//! * `/big?KIB` — streams KIB kibibytes of `x`, 64 KiB a write, each write
//!   waiting for the host to take the last (backpressure);
//! * `/handles` — makes streams and futures, and never drops them, until
//!   the host says no;
//! * `/dropped` — answers with a body stream and a trailers future whose
//!   writers it drops at once, and drops the request unread;
//! * anything else — `hello from 0.3`.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/http-0.3.0",
        world: "wisp:http3/service",
        generate_all,
    });
}

use bindings::exports::wasi::http::handler::Guest;
use bindings::wasi::http::types::{ErrorCode, Fields, Request, Response};
use bindings::{wit_future, wit_stream};
use std::sync::atomic::{AtomicU64, Ordering};

static REQUESTS_SEEN: AtomicU64 = AtomicU64::new(0);

struct Service;

impl Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        // The last segment names the case, wherever the function is routed.
        if let Some((_, target)) = path.split_once("/fetch?") {
            return Ok(text(fetch(target).await));
        }
        if let Some((_, kib)) = path.split_once("/big?") {
            return Ok(big(kib.parse().unwrap_or(0)));
        }
        match path.rsplit('/').next().unwrap_or_default() {
            "count" => {
                let seen = REQUESTS_SEEN.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(text(format!("{seen}")))
            }
            "echo" => {
                let (done, received) = wit_future::new(|| Ok(()));
                drop(done);
                let (body, trailers) = Request::consume_body(request, received);
                let (response, _sent) = Response::new(Fields::new(), Some(body), trailers);
                Ok(response)
            }
            "forever" => {
                let (mut body, contents) = wit_stream::new();
                let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
                let (response, _sent) = Response::new(Fields::new(), Some(contents), trailers);
                wit_bindgen::spawn(async move {
                    body.write_all(b"first chunk\n".to_vec()).await;
                    never().await;
                    drop((body, trailers_writer));
                });
                Ok(response)
            }
            "linger" => {
                wit_bindgen::spawn(never());
                Ok(text("answered; still working".into()))
            }
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "trap" => panic!("the guest trapped on purpose"),
            "error" => Err(ErrorCode::InternalError(Some("the guest said no".into()))),
            "alloc" => {
                let grown: Vec<u8> = vec![1; 1 << 30];
                Ok(text(format!("{}", grown.iter().map(|b| *b as u64).sum::<u64>())))
            }
            "handles" => {
                let mut made: u64 = 0;
                loop {
                    std::mem::forget(wit_stream::new::<u8>());
                    std::mem::forget(wit_future::new::<Result<(), ErrorCode>>(|| Ok(())));
                    made = std::hint::black_box(made + 1);
                }
            }
            "dropped" => {
                drop(request);
                let (body, contents) = wit_stream::new::<u8>();
                let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
                drop((body, trailers_writer));
                let (response, sent) = Response::new(Fields::new(), Some(contents), trailers);
                drop(sent);
                Ok(response)
            }
            _ => Ok(text("hello from 0.3".into())),
        }
    }
}

/// Sends `GET url` (`http://HOST[:PORT]/PATH`) with the 0.3 client; says
/// what came back.
async fn fetch(url: &str) -> String {
    let Some(rest) = url.strip_prefix("http://") else {
        return "bad url".into();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
    drop(trailers_writer);
    let (request, _sent) = Request::new(Fields::new(), None, trailers, None);
    let set = request
        .set_scheme(Some(&bindings::wasi::http::types::Scheme::Http))
        .and(request.set_authority(Some(authority)))
        .and(request.set_path_with_query(Some(&format!("/{path}"))));
    if set.is_err() {
        return "bad url".into();
    }
    match bindings::wasi::http::client::send(request).await {
        Ok(response) => format!("status {}", response.get_status_code()),
        Err(error) => format!("denied: {error:?}"),
    }
}

/// A response of `kib` KiB of `x`, written 64 KiB at a time.
fn big(kib: usize) -> Response {
    let (mut body, contents) = wit_stream::new();
    let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
    drop(trailers_writer);
    let (response, _sent) = Response::new(Fields::new(), Some(contents), trailers);
    wit_bindgen::spawn(async move {
        let mut left = kib << 10;
        while left > 0 {
            let chunk = left.min(64 << 10);
            let unwritten = body.write_all(vec![b'x'; chunk]).await;
            if !unwritten.is_empty() {
                return; // the reader went away
            }
            left -= chunk;
        }
    });
    response
}

/// A wait that never ends: a future whose writer is kept forever.
async fn never() {
    let (writer, reader) = wit_future::new::<Result<(), ErrorCode>>(|| Ok(()));
    std::mem::forget(writer);
    let _ = reader.await;
}

#[path = "../../text3.rs"]
mod text3;
use text3::text;

bindings::export!(Service with_types_in bindings);
