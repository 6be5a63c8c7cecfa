//! The cluster's bus for publishes to channels: one core NATS subject
//! every host subscribes to. A publish is sent once; each host, the
//! sender included, delivers it to its own subscribers, so a WebSocket
//! on any host hears what was published on any other. Nothing is kept: a
//! host that is away while something is published misses it, as a
//! subscriber that is not connected does.

use super::Cluster;
use crate::backplane::Shared;
use crate::channels::{Bus, MAX_PUBLISH_BYTES, Publisher};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The subjects publishes travel on: this, then `.FUNCTION` (a function
/// name is a valid subject token: `a-z`, `0-9`, `-`, `_`).
const SUBJECT: &str = "wisp.channels.publish";

/// Publishes a host may have waiting for delivery; past it NATS drops
/// the newest for this host (a slow host misses messages, as a slow
/// subscriber does, rather than buffering without bound).
const WAITING: usize = 256;

impl Bus for Cluster {
    fn send<'a>(&'a self, function: &'a str, body: Bytes) -> Shared<'a, Result<(), String>> {
        Box::pin(async move {
            self.ensure_connected().map_err(|e| e.to_string())?;
            self.client
                .publish(format!("{SUBJECT}.{function}"), body)
                .await
                .map_err(|e| format!("publishing on the cluster's bus: {e}"))?;
            // Sent before the answer says so.
            self.client
                .flush()
                .await
                .map_err(|e| format!("publishing on the cluster's bus: {e}"))
        })
    }
}

impl Cluster {
    /// Delivers what arrives on the bus to `publisher` until it is gone
    /// (resubscribing after a failure).
    pub(crate) fn start_bus(self: &Arc<Self>, publisher: Weak<Publisher>) {
        let cluster = self.clone();
        tokio::spawn(async move {
            let client = loop {
                match cluster.bus_client(WAITING).await {
                    Ok(client) => break client,
                    Err(e) => {
                        tracing::warn!(error = %e, "connecting the cluster's bus of publishes failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            drop(cluster);
            loop {
                let subscribed = client.subscribe(format!("{SUBJECT}.*")).await;
                let mut subscription = match subscribed {
                    Ok(subscription) => subscription,
                    Err(e) => {
                        tracing::warn!(error = %e, "subscribing to the cluster's publishes failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                while let Some(message) = subscription.next().await {
                    let Some(publisher) = publisher.upgrade() else {
                        return;
                    };
                    let function = message
                        .subject
                        .strip_prefix(SUBJECT)
                        .and_then(|rest| rest.strip_prefix('.'));
                    match function {
                        Some(function)
                            if wisp_spec::name::validate_name(function).is_ok()
                                && message.payload.len() <= MAX_PUBLISH_BYTES =>
                        {
                            publisher.arrived(function, &message.payload);
                        }
                        _ => {
                            tracing::warn!(subject = %message.subject, "dropped a malformed publish from the cluster's bus")
                        }
                    }
                }
                if publisher.strong_count() == 0 {
                    return;
                }
            }
        });
    }
}
