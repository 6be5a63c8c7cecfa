//! HTTP requests held open on channels (GRIP's HTTP transport): a
//! function answers with `Grip-Hold` and `Grip-Channel` headers, and the
//! host keeps the client's request open after the function's run is over.
//!
//! * `Grip-Hold: stream` — server-sent events and other streams: the
//!   function's response (its status, headers and body) is sent at once,
//!   then each `http-stream` item published to its channels is appended,
//!   until an item's `"action": "close"`, the client leaves, or the
//!   client falls behind (its queue is full: the stream ends).
//! * `Grip-Hold: response` — long-polling: the request waits for the
//!   first `http-response` item published to its channels and gets it as
//!   its response; after `Grip-Timeout` (default 55 s, at most 300 s) it
//!   gets the function's own response.
//!
//! Either way the `Grip-*` headers never reach the client, a held request
//! counts against the same caps as a WebSocket, and the host shutting
//! down ends it (a stream ends; a long-poll gets the function's answer).

use super::Held;
use crate::channels::Subscriber;
use crate::channels::grip::{Hold, Item, StreamChunk};
use crate::runtime::body::{BoxError, ResponseBody, full, read_prefix};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::sync::Arc;
use tokio::sync::watch;

/// Most bytes of the function's own body a long-poll keeps to answer with
/// at its timeout.
const MAX_KEPT_BODY: usize = 64 << 10;

/// The response a held request gets: streamed, or waited for.
pub(crate) async fn held(
    hold: Hold,
    response: http::Response<ResponseBody>,
    mut subscriber: Subscriber,
    held: Held,
    shutdown: watch::Receiver<bool>,
) -> http::Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    strip_grip(&mut parts.headers);
    match hold {
        Hold::Stream { channels } => {
            for channel in &channels {
                subscriber.subscribe(channel);
            }
            parts.headers.remove(http::header::CONTENT_LENGTH);
            let published = futures_util::stream::unfold(
                (subscriber, held, shutdown),
                |(mut subscriber, held, mut shutdown)| async move {
                    loop {
                        // The host shutting down ends the stream.
                        let item = tokio::select! {
                            item = subscriber.next() => item?,
                            _ = shutdown.wait_for(|stop| *stop) => return None,
                        };
                        match &item.stream {
                            Some(StreamChunk::Data(data)) => {
                                let frame: Result<Frame<Bytes>, BoxError> =
                                    Ok(Frame::data(data.clone()));
                                return Some((frame, (subscriber, held, shutdown)));
                            }
                            Some(StreamChunk::Close) => return None,
                            None => {}
                        }
                    }
                },
            );
            let own = body.into_data_stream().map(|chunk| chunk.map(Frame::data));
            let stream = own.chain(published);
            http::Response::from_parts(parts, StreamBody::new(stream).boxed_unsync())
        }
        Hold::Response { channels, timeout } => {
            for channel in &channels {
                subscriber.subscribe(channel);
            }
            let (own, _, _) = read_prefix(body, MAX_KEPT_BODY).await;
            let mut shutdown = shutdown;
            let answer = tokio::time::timeout(timeout, async {
                loop {
                    // The host shutting down answers with the function's own.
                    let item: Arc<Item> = tokio::select! {
                        item = subscriber.next() => item?,
                        _ = shutdown.wait_for(|stop| *stop) => return None,
                    };
                    if let Some(response) = &item.response {
                        return Some(response.clone());
                    }
                }
            })
            .await;
            drop(held);
            match answer {
                Ok(Some(published)) => {
                    let mut response = http::Response::new(full(published.body));
                    *response.status_mut() =
                        StatusCode::from_u16(published.code).unwrap_or(StatusCode::OK);
                    for (name, value) in published.headers {
                        if let (Ok(name), Ok(value)) =
                            (HeaderName::try_from(name), HeaderValue::try_from(value))
                        {
                            response.headers_mut().append(name, value);
                        }
                    }
                    strip_grip(response.headers_mut());
                    response
                }
                // Timed out (or fell behind): the function's own answer.
                _ => {
                    parts.headers.remove(http::header::CONTENT_LENGTH);
                    http::Response::from_parts(parts, full(own))
                }
            }
        }
    }
}

/// Removes the `Grip-*` headers, which are for the host, not the client.
pub(crate) fn strip_grip(headers: &mut HeaderMap) {
    let grip: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(wisp_spec::headers::GRIP_PREFIX))
        .cloned()
        .collect();
    for name in grip {
        headers.remove(name);
    }
}
