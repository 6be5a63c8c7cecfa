//! Channels (GRIP's publish–subscribe): who listens on what on this host
//! ([`registry`]), the formats a publish carries ([`grip`]), and the
//! [`Publisher`] every publish goes through — the admin API's
//! `/v1/functions/NAME/publish` (a Pushpin publisher's control URI is
//! `http://ADMIN/v1/functions/NAME`), and a function's `POST` to
//! `http://wisp.internal/publish`. Channels are the function's own: a
//! publish reaches the channels of the function it names (a function's
//! own publish, its own).
//!
//! A publish is parsed and checked whole before anything is delivered.
//! On a host alone it is delivered here at once; in a cluster it goes out
//! on the backplane's [`Bus`] (a NATS subject), and every host, this one
//! included, delivers what the bus brings to its own subscribers.

pub(crate) mod grip;
pub(crate) mod registry;

use crate::backplane::Shared;
use crate::observe::metrics::WebSocketSeries;
use bytes::Bytes;
pub(crate) use registry::{Channels, Subscriber};
use std::sync::Arc;

/// Most bytes of one publish (NATS's default message size).
pub(crate) const MAX_PUBLISH_BYTES: usize = 1 << 20;

/// Carries a publish to every host of a cluster.
pub(crate) trait Bus: Send + Sync {
    /// Sends a publish body (already checked) for `function`'s channels to
    /// every host, this one included.
    fn send<'a>(&'a self, function: &'a str, body: Bytes) -> Shared<'a, Result<(), String>>;
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    /// Items it carried.
    pub(crate) items: usize,
    /// Deliveries made on this host, when it delivered here at once
    /// (`None`: sent on the cluster's bus, delivered by each host).
    pub(crate) delivered_here: Option<usize>,
}

/// Why a publish delivered nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The body is not a valid publish (400).
    Invalid(String),
    /// The cluster's bus is away (503).
    Unavailable(String),
    /// No such function is deployed (404).
    UnknownFunction(String),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Invalid(why) | PublishError::Unavailable(why) => f.write_str(why),
            PublishError::UnknownFunction(name) => {
                write!(f, "no function named `{name}` is deployed")
            }
        }
    }
}

/// Where publishes go: this host's channels, or the cluster's bus.
pub(crate) struct Publisher {
    channels: Arc<Channels>,
    bus: Option<Arc<dyn Bus>>,
    series: WebSocketSeries,
}

impl Publisher {
    pub(crate) fn new(
        channels: Arc<Channels>,
        bus: Option<Arc<dyn Bus>>,
        series: WebSocketSeries,
    ) -> Publisher {
        Publisher {
            channels,
            bus,
            series,
        }
    }

    /// Publishes `body` (`{"items": [...]}`) to `function`'s channels, or
    /// says what is wrong with it (nothing is delivered then).
    pub(crate) async fn publish(
        &self,
        function: &str,
        body: Bytes,
    ) -> Result<Published, PublishError> {
        if body.len() > MAX_PUBLISH_BYTES {
            return Err(PublishError::Invalid(format!(
                "a publish is at most {MAX_PUBLISH_BYTES} bytes; this one is {}",
                body.len()
            )));
        }
        let items = grip::parse_publish(&body).map_err(PublishError::Invalid)?;
        match &self.bus {
            Some(bus) => {
                bus.send(function, body)
                    .await
                    .map_err(PublishError::Unavailable)?;
                Ok(Published {
                    items: items.len(),
                    delivered_here: None,
                })
            }
            None => Ok(Published {
                items: items.len(),
                delivered_here: Some(self.deliver(function, items)),
            }),
        }
    }

    /// Delivers a publish the bus brought to this host's subscribers (a
    /// body that does not parse is dropped with a log line).
    #[cfg(feature = "cluster")]
    pub(crate) fn arrived(&self, function: &str, body: &[u8]) {
        match grip::parse_publish(body) {
            Ok(items) => {
                self.deliver(function, items);
            }
            Err(why) => {
                tracing::warn!(error = %why, "dropped a malformed publish from the cluster's bus")
            }
        }
    }

    fn deliver(&self, function: &str, items: Vec<grip::Item>) -> usize {
        let count = items.len();
        let delivered = items
            .into_iter()
            .map(|item| self.channels.deliver(function, &Arc::new(item)))
            .sum();
        self.series.published(count, delivered);
        delivered
    }
}
