//! [`ClusterCalls`]: the async calls of a cluster, in JetStream, so a call
//! accepted by one host may run on any host and be read from every host.
//!
//! | JetStream | holds |
//! | --- | --- |
//! | work-queue stream `WISP_CALLS` | one message per queued call (its id), taken by one worker of the cluster at a time |
//! | key-value bucket `wisp-calls` | every call's record, kept for the retention |
//! | object store `wisp-call-bodies` | request bodies (`req-ID`) and kept result bodies (`res-ID`) |
//!
//! A worker on any host fetches the next message, runs the attempt and
//! stores the record; then it acks the message when the call is final, or
//! hands it back with the delay of its backoff (a NAK with delay) for the
//! next attempt. While an attempt runs, the worker tells JetStream it is
//! still busy every few seconds; a host that dies mid-attempt stops doing
//! so, and the message goes to another host after [`ACK_WAIT`]: at least
//! once, as on a single node. Records and bodies expire with the retention
//! (JetStream's `max_age`), so there is nothing to sweep.

use super::{Cluster, ClusterError};
use crate::events::calls::backlog::Caps;
use crate::events::calls::queue::{Claim, decode};
use crate::events::calls::record::CallRecord;
use crate::events::calls::store::{CallFuture, Keep};
use crate::events::calls::{AsyncCalls, CallStore, Full, QueueError, is_call_id};
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::{AckKind, Acker};
use async_nats::jetstream::{kv as js_kv, object_store, stream};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, OnceCell};

const STREAM: &str = "WISP_CALLS";
const SUBJECT: &str = "wisp.calls.run";
/// Where messages that can never run go (see `ClusterCalls::dead_letter`).
const DEAD_LETTERS: &str = "wisp.calls.dead";
const DEAD_STREAM: &str = "WISP_CALLS_DEAD";
/// Most dead letters kept (the oldest go first).
const MAX_DEAD_LETTERS: i64 = 10_000;
const CONSUMER: &str = "wisp-workers";
const RECORDS: &str = "wisp-calls";
const BODIES: &str = "wisp-call-bodies";
/// How long JetStream waits for word from a worker before it gives the
/// call to another one.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// How often a worker says it is still running an attempt.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// How long one fetch waits for a queued call.
const FETCH_WAIT: Duration = Duration::from_millis(500);

/// The handles, opened on first use.
struct Handles {
    consumer: PullConsumer,
    records: js_kv::Store,
    bodies: object_store::ObjectStore,
}

/// An attempt running on this host: since when, and how to answer for it.
struct Running {
    since_ms: u64,
    acker: Arc<Acker>,
    progress: tokio::task::JoinHandle<()>,
}

/// The cluster's call queue.
pub(crate) struct ClusterCalls {
    cluster: Arc<Cluster>,
    retention: Duration,
    /// Most calls queued in the cluster (the work queue's `max_msgs`).
    max_queued: u64,
    /// Most bytes of request and kept result bodies (the body store's
    /// `max_bytes`).
    max_body_bytes: u64,
    handles: OnceCell<Handles>,
    running: Mutex<HashMap<String, Running>>,
    /// Woken when a call is accepted here.
    pub(crate) wake: Arc<Notify>,
}

fn failed(error: impl std::fmt::Display) -> QueueError {
    QueueError::Cluster(error.to_string())
}

/// A JetStream refusal for want of room (the stream's or the body store's
/// cap) as the queue being full; any other error as it is.
fn full_when_over(error: QueueError) -> QueueError {
    match &error {
        QueueError::Cluster(text)
            if text.contains("maximum") || text.contains("resource limits") =>
        {
            QueueError::Full(Full::Host { calls: 0, bytes: 0 })
        }
        _ => error,
    }
}

impl ClusterCalls {
    pub(crate) fn new(cluster: Arc<Cluster>, config: &AsyncCalls) -> ClusterCalls {
        ClusterCalls {
            cluster,
            retention: config.retention,
            max_queued: config.max_queued,
            max_body_bytes: config.max_queued_bytes,
            handles: OnceCell::new(),
            running: Mutex::new(HashMap::new()),
            wake: Arc::new(Notify::new()),
        }
    }

    async fn handles(&self) -> Result<&Handles, QueueError> {
        self.handles
            .get_or_try_init(|| async {
                self.cluster.ensure_connected().map_err(failed)?;
                let js = &self.cluster.jetstream;
                // Created, or brought to this host's caps: a full queue
                // refuses new calls rather than dropping old ones.
                js.create_or_update_stream(stream::Config {
                    name: STREAM.into(),
                    subjects: vec![SUBJECT.into()],
                    retention: stream::RetentionPolicy::WorkQueue,
                    max_messages: i64::try_from(self.max_queued).unwrap_or(i64::MAX),
                    discard: stream::DiscardPolicy::New,
                    ..Default::default()
                })
                .await
                .map_err(failed)?;
                let stream = js.get_stream(STREAM).await.map_err(failed)?;
                js.create_or_update_stream(stream::Config {
                    name: DEAD_STREAM.into(),
                    subjects: vec![DEAD_LETTERS.into()],
                    max_messages: MAX_DEAD_LETTERS,
                    max_age: self.retention,
                    ..Default::default()
                })
                .await
                .map_err(failed)?;
                let consumer = stream
                    .get_or_create_consumer(
                        CONSUMER,
                        pull::Config {
                            durable_name: Some(CONSUMER.into()),
                            ack_policy: AckPolicy::Explicit,
                            ack_wait: ACK_WAIT,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(failed)?;
                let records = self
                    .cluster
                    .key_value(js_kv::Config {
                        bucket: RECORDS.into(),
                        description: "wisp: async calls".into(),
                        max_age: self.retention,
                        ..Default::default()
                    })
                    .await
                    .map_err(failed)?;
                let bodies = self
                    .cluster
                    .object_store(object_store::Config {
                        bucket: BODIES.into(),
                        max_age: self.retention,
                        max_bytes: i64::try_from(self.max_body_bytes).unwrap_or(i64::MAX),
                        ..Default::default()
                    })
                    .await
                    .map_err(failed)?;
                Ok(Handles {
                    consumer,
                    records,
                    bodies,
                })
            })
            .await
    }

    async fn put_record(&self, handles: &Handles, record: &CallRecord) -> Result<(), QueueError> {
        let encoded =
            postcard::to_stdvec(record).map_err(|e| QueueError::Corrupt(e.to_string()))?;
        handles
            .records
            .put(record.id.as_str(), Bytes::from(encoded))
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn put_body(
        &self,
        handles: &Handles,
        name: String,
        body: &Bytes,
    ) -> Result<(), QueueError> {
        let mut reader = body.as_ref();
        handles
            .bodies
            .put(name.as_str(), &mut reader)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn body(&self, handles: &Handles, name: String) -> Option<Bytes> {
        let mut object = handles.bodies.get(name.as_str()).await.ok()?;
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await.ok()?;
        Some(Bytes::from(bytes))
    }

    /// Stores a new call and its request body, and queues it for the
    /// cluster's workers; resolves once JetStream has all three.
    pub(crate) async fn accept(&self, record: &CallRecord, body: Bytes) -> Result<(), QueueError> {
        let handles = self.handles().await?;
        let request = format!("req-{}", record.id);
        self.put_body(handles, request.clone(), &body)
            .await
            .map_err(full_when_over)?;
        let queued = async {
            self.put_record(handles, record).await?;
            let js = &self.cluster.jetstream;
            js.publish(SUBJECT, Bytes::from(record.id.clone()))
                .await
                .map_err(failed)?
                .await
                .map_err(failed)
        }
        .await;
        if let Err(error) = queued {
            // Not queued: nothing of it may stay behind.
            let _ = handles.bodies.delete(request.as_str()).await;
            let _ = handles.records.purge(record.id.as_str()).await;
            return Err(full_when_over(error));
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Takes a message that can never run (a poison message) off the work
    /// queue for good: copies it to the dead-letter subject
    /// [`DEAD_LETTERS`] (kept in stream `WISP_CALLS_DEAD`) with why, logs
    /// it, and terminates it so it is not redelivered.
    async fn dead_letter(
        &self,
        payload: &Bytes,
        acker: Acker,
        why: &str,
    ) -> Result<(), QueueError> {
        tracing::error!(
            message = %String::from_utf8_lossy(&payload[..payload.len().min(100)]),
            "a queued call message cannot run and is dead-lettered: {why}"
        );
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("wisp-dead-letter-reason", why);
        let js = &self.cluster.jetstream;
        if let Ok(sent) = js
            .publish_with_headers(DEAD_LETTERS, headers, payload.clone())
            .await
        {
            let _ = sent.await;
        }
        acker.ack_with(AckKind::Term).await.map_err(failed)
    }

    /// Stores `record` as it now stands, with its result body; when this
    /// host runs it, acks its message (final) or hands it back until it is
    /// due again.
    pub(crate) async fn save(
        &self,
        record: &CallRecord,
        result: Option<Bytes>,
    ) -> Result<(), QueueError> {
        let handles = self.handles().await?;
        if let Some(result) = &result {
            self.put_body(handles, format!("res-{}", record.id), result)
                .await?;
        }
        self.put_record(handles, record).await?;
        if record.state.is_final() {
            // Its request is never made again: the body goes now.
            let _ = handles
                .bodies
                .delete(format!("req-{}", record.id).as_str())
                .await;
        }
        let running = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.remove(&record.id)
        };
        if let Some(running) = running {
            running.progress.abort();
            let answer = if record.state.is_final() {
                AckKind::Ack
            } else {
                let now = crate::events::calls::record::now_ms();
                AckKind::Nak(Some(Duration::from_millis(
                    record.due_ms.saturating_sub(now),
                )))
            };
            running.acker.ack_with(answer).await.map_err(failed)?;
        }
        Ok(())
    }

    /// Takes the next queued call of the cluster, if one comes within a
    /// moment, and marks it running here.
    pub(crate) async fn claim(&self, now_ms: u64) -> Result<Claim, QueueError> {
        let handles = self.handles().await?;
        let mut batch = handles
            .consumer
            .fetch()
            .max_messages(1)
            .expires(FETCH_WAIT)
            .messages()
            .await
            .map_err(failed)?;
        let Some(message) = batch.next().await else {
            // The fetch itself waited: ask again at once (a long poll).
            return Ok(Claim::Wait(Some(now_ms)));
        };
        let (message, acker) = message.map_err(failed)?.split();
        let id = String::from_utf8_lossy(&message.payload).into_owned();
        if !is_call_id(&id) {
            self.dead_letter(&message.payload, acker, "the message is not a call id")
                .await?;
            return Ok(Claim::Wait(Some(now_ms)));
        }
        let record = handles.records.get(id.as_str()).await.map_err(failed)?;
        let Some(record) = record else {
            // Expired or never stored whole: nothing to run.
            acker.ack().await.map_err(failed)?;
            return Ok(Claim::Wait(Some(now_ms)));
        };
        let record = match decode(&record) {
            Ok(record) if record.id == id => record,
            Ok(_) => {
                self.dead_letter(&message.payload, acker, "its record names another call")
                    .await?;
                return Ok(Claim::Wait(Some(now_ms)));
            }
            Err(error) => {
                let why = format!("its record cannot be read: {error}");
                self.dead_letter(&message.payload, acker, &why).await?;
                return Ok(Claim::Wait(Some(now_ms)));
            }
        };
        let body = self
            .body(handles, format!("req-{id}"))
            .await
            .unwrap_or_default();
        let acker = Arc::new(acker);
        let progress = tokio::spawn({
            let acker = acker.clone();
            async move {
                loop {
                    tokio::time::sleep(PROGRESS_EVERY).await;
                    let _ = acker.ack_with(AckKind::Progress).await;
                }
            }
        });
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.insert(
            id,
            Running {
                since_ms: now_ms,
                acker,
                progress,
            },
        );
        Ok(Claim::Ready(Box::new(record), body))
    }

    /// Forgets the attempt of call `id` on this host, if [`Self::save`] did
    /// not: unanswered, its message goes to a worker again after
    /// [`ACK_WAIT`].
    pub(crate) fn release(&self, id: &str) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = running.remove(id) {
            running.progress.abort();
        }
    }

    /// When call `id`'s attempt started on this host, if one runs here.
    pub(crate) fn running_since(&self, id: &str) -> Option<u64> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.get(id).map(|r| r.since_ms)
    }

    /// Call `id` and the kept part of its result body.
    pub(crate) async fn get(
        &self,
        id: &str,
    ) -> Result<Option<(CallRecord, Option<Bytes>)>, QueueError> {
        let handles = self.handles().await?;
        let Some(stored) = handles.records.get(id).await.map_err(failed)? else {
            return Ok(None);
        };
        let record = decode(&stored)?;
        let result = match record.response {
            Some(_) => self.body(handles, format!("res-{id}")).await,
            None => None,
        };
        Ok(Some((record, result)))
    }

    /// Up to `limit` calls older than `before` (newest first) that `keep`
    /// selects, and whether more are left.
    pub(crate) async fn list(
        &self,
        before: Option<&str>,
        limit: usize,
        keep: impl Fn(&CallRecord) -> bool,
    ) -> Result<(Vec<CallRecord>, bool), QueueError> {
        let handles = self.handles().await?;
        let mut ids: Vec<String> = match handles.records.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(failed)?,
            Err(e) => return Err(failed(e)),
        };
        ids.retain(|id| before.is_none_or(|b| id.as_str() < b));
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let mut page = Vec::new();
        for id in ids {
            let Some(stored) = handles.records.get(id.as_str()).await.map_err(failed)? else {
                continue;
            };
            let record = decode(&stored)?;
            if !keep(&record) {
                continue;
            }
            if page.len() == limit {
                return Ok((page, true));
            }
            page.push(record);
        }
        Ok((page, false))
    }
}

impl From<ClusterError> for QueueError {
    fn from(error: ClusterError) -> Self {
        failed(error)
    }
}

impl CallStore for ClusterCalls {
    fn damage(&self) -> Option<String> {
        None
    }

    fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    fn accept<'a>(
        &'a self,
        record: &'a CallRecord,
        body: Bytes,
        _caps: Caps,
    ) -> CallFuture<'a, ()> {
        Box::pin(ClusterCalls::accept(self, record, body))
    }

    fn save<'a>(
        &'a self,
        record: &'a CallRecord,
        _old_due: Option<u64>,
        result: Option<Bytes>,
    ) -> CallFuture<'a, ()> {
        Box::pin(ClusterCalls::save(self, record, result))
    }

    fn sweep(&self, _cutoff_ms: u64) -> CallFuture<'_, usize> {
        Box::pin(std::future::ready(Ok(0)))
    }

    fn claim(&self, now_ms: u64) -> CallFuture<'_, Claim> {
        Box::pin(ClusterCalls::claim(self, now_ms))
    }

    fn release(&self, id: &str) {
        ClusterCalls::release(self, id);
    }

    fn running_since(&self, id: &str) -> Option<u64> {
        ClusterCalls::running_since(self, id)
    }

    fn get<'a>(&'a self, id: &'a str) -> CallFuture<'a, Option<(CallRecord, Option<Bytes>)>> {
        Box::pin(ClusterCalls::get(self, id))
    }

    fn list<'a>(
        &'a self,
        before: Option<&'a str>,
        limit: usize,
        keep: Keep<'a>,
    ) -> CallFuture<'a, (Vec<CallRecord>, bool)> {
        Box::pin(ClusterCalls::list(self, before, limit, keep))
    }
}
