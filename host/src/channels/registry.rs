//! The host's channels: who is subscribed to what, and delivery of each
//! published item to every subscriber of its channel on this host.
//!
//! Channels belong to a function: its connections subscribe to its own
//! channels only, and a publish names the function whose channels it
//! reaches, so no function can listen to, publish to or close another's.
//!
//! A subscriber (a WebSocket in GRIP mode, a held HTTP stream or
//! long-poll) has a queue of [`QUEUE`] items. Publishing never waits: an
//! item that finds a queue full is not queued, and the subscriber is
//! marked as having fallen behind — its connection is closed (a
//! WebSocket with 1013) rather than buffered without bound.

use super::grip::Item;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Items one subscriber may have waiting (and so, most items one publish
/// may carry for one channel).
pub(crate) const QUEUE: usize = 64;

/// A channel's key: its function and its name.
type Key = (String, String);

/// Where one subscriber's items go.
struct Inbox {
    queue: mpsc::Sender<Arc<Item>>,
    behind: Arc<AtomicBool>,
}

/// Every channel's subscribers on this host.
#[derive(Default)]
pub(crate) struct Channels {
    by_channel: Mutex<HashMap<Key, HashMap<u64, Inbox>>>,
    next_id: AtomicU64,
}

impl Channels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, HashMap<u64, Inbox>>> {
        self.by_channel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new subscriber to `function`'s channels, subscribed to nothing
    /// yet.
    pub(crate) fn subscriber(self: &Arc<Self>, function: &str) -> Subscriber {
        let (queue, items) = mpsc::channel(QUEUE);
        Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            function: function.to_owned(),
            channels: self.clone(),
            queue,
            items,
            behind: Arc::default(),
            subscribed: HashSet::new(),
        }
    }

    /// Delivers `item` to every subscriber of its channel of `function`
    /// here; how many got it.
    pub(crate) fn deliver(&self, function: &str, item: &Arc<Item>) -> usize {
        let by_channel = self.lock();
        let key = (function.to_owned(), item.channel.clone());
        let Some(subscribers) = by_channel.get(&key) else {
            return 0;
        };
        let mut delivered = 0;
        for inbox in subscribers.values() {
            match inbox.queue.try_send(item.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    inbox.behind.store(true, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        delivered
    }
}

/// One subscriber: its queue of items and its channels, all left when it
/// is dropped.
pub(crate) struct Subscriber {
    id: u64,
    /// Whose channels it may join.
    function: String,
    channels: Arc<Channels>,
    queue: mpsc::Sender<Arc<Item>>,
    items: mpsc::Receiver<Arc<Item>>,
    behind: Arc<AtomicBool>,
    subscribed: HashSet<String>,
}

/// Most channels one subscriber may join.
pub(crate) const MAX_SUBSCRIBED: usize = 64;

impl Subscriber {
    /// Joins `channel`; false when it already holds [`MAX_SUBSCRIBED`].
    pub(crate) fn subscribe(&mut self, channel: &str) -> bool {
        if self.subscribed.contains(channel) {
            return true;
        }
        if self.subscribed.len() >= MAX_SUBSCRIBED {
            return false;
        }
        self.subscribed.insert(channel.to_owned());
        self.channels
            .lock()
            .entry((self.function.clone(), channel.to_owned()))
            .or_default()
            .insert(
                self.id,
                Inbox {
                    queue: self.queue.clone(),
                    behind: self.behind.clone(),
                },
            );
        true
    }

    /// Leaves `channel`.
    pub(crate) fn unsubscribe(&mut self, channel: &str) {
        if self.subscribed.remove(channel) {
            leave(&mut self.channels.lock(), &self.function, channel, self.id);
        }
    }

    /// The next item, once one comes; `None` after the subscriber fell
    /// behind (an item did not fit its queue).
    pub(crate) async fn next(&mut self) -> Option<Arc<Item>> {
        if self.behind.load(Ordering::Relaxed) {
            return None;
        }
        let item = self.items.recv().await;
        if self.behind.load(Ordering::Relaxed) {
            return None;
        }
        item
    }
}

fn leave(
    by_channel: &mut HashMap<Key, HashMap<u64, Inbox>>,
    function: &str,
    channel: &str,
    id: u64,
) {
    let key = (function.to_owned(), channel.to_owned());
    if let Some(subscribers) = by_channel.get_mut(&key) {
        subscribers.remove(&id);
        if subscribers.is_empty() {
            by_channel.remove(&key);
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let mut by_channel = self.channels.lock();
        for channel in &self.subscribed {
            leave(&mut by_channel, &self.function, channel, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::grip::WsMessage;

    fn item(channel: &str, text: &str) -> Arc<Item> {
        Arc::new(Item {
            channel: channel.to_owned(),
            ws: Some(WsMessage::Text(text.to_owned())),
            stream: None,
            response: None,
        })
    }

    #[tokio::test]
    async fn items_reach_the_subscribers_of_their_channel_only() {
        let channels = Arc::new(Channels::default());
        let mut a = channels.subscriber("f");
        let mut b = channels.subscriber("f");
        let mut stranger = channels.subscriber("g");
        assert!(a.subscribe("room") && b.subscribe("other") && stranger.subscribe("room"));
        assert_eq!(channels.deliver("f", &item("room", "hi")), 1);
        assert_eq!(a.next().await.unwrap().channel, "room");
        b.unsubscribe("other");
        assert_eq!(channels.deliver("f", &item("other", "x")), 0);
        drop(a);
        assert_eq!(channels.deliver("f", &item("room", "gone")), 0);
        // Another function's room of the same name is its own.
        assert_eq!(channels.deliver("g", &item("room", "g's")), 1);
        drop(stranger);
        assert!(channels.lock().is_empty(), "a dropped subscriber leaves");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_so() {
        let channels = Arc::new(Channels::default());
        let mut slow = channels.subscriber("f");
        slow.subscribe("room");
        for n in 0..=QUEUE {
            channels.deliver("f", &item("room", &n.to_string()));
        }
        assert!(slow.next().await.is_none(), "fell behind");
    }
}
