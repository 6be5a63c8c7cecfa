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

/// The subject publishes travel on.
const SUBJECT: &str = "wisp.channels.publish";

impl Bus for Cluster {
    fn send(&self, body: Bytes) -> Shared<'_, Result<(), String>> {
        Box::pin(async move {
            self.ensure_connected().map_err(|e| e.to_string())?;
            self.client
                .publish(SUBJECT, body)
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
        let client = self.client.clone();
        tokio::spawn(async move {
            loop {
                let mut subscription = match client.subscribe(SUBJECT).await {
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
                    if message.payload.len() <= MAX_PUBLISH_BYTES {
                        publisher.arrived(&message.payload);
                    }
                }
                if publisher.strong_count() == 0 {
                    return;
                }
            }
        });
    }
}
