//! [`NatsKv`]: the `wasi:keyvalue` buckets of a cluster, in JetStream
//! key-value buckets, so every host reads and writes the same data.
//!
//! Each wisp bucket is one JetStream bucket, `wisp-state-fn_NAME` or
//! `wisp-state-app_NAME`, created on its first write with one revision per
//! key. JetStream keys allow few characters, so a key is stored as `k` plus
//! its base64url; listings decode and sort them, so pages come in byte order
//! as on a single node. Increments and compare-and-swap loop on the entry's
//! revision, so concurrent writers on any host all count. Differences from
//! the single-node store, documented in the README: a bucket's byte limit is
//! JetStream's (stored bytes, message headers included), and `set-many` /
//! `delete-many` are checked whole but written key by key.

use super::Cluster;
use crate::state::{BucketId, KeyPage, KvBackend, KvError, KvFuture, KvLimits};
use async_nats::jetstream::kv as js_kv;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::TryStreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Prefix of every wisp state bucket's JetStream name.
const PREFIX: &str = "wisp-state-";

/// The cluster's key-value store.
pub(crate) struct NatsKv {
    cluster: Arc<Cluster>,
    limits: KvLimits,
    open: Mutex<HashMap<String, js_kv::Store>>,
}

impl NatsKv {
    pub(crate) fn new(cluster: Arc<Cluster>, limits: KvLimits) -> NatsKv {
        NatsKv {
            cluster,
            limits,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The JetStream name of `bucket`.
    fn stream_bucket(bucket: &BucketId) -> String {
        format!("{PREFIX}{}", bucket.storage_name().replace('/', "_"))
    }

    /// `bucket`'s store; created when `create`, else `None` if it does not
    /// exist yet.
    async fn store(
        &self,
        bucket: &BucketId,
        create: bool,
    ) -> Result<Option<js_kv::Store>, KvError> {
        let name = Self::stream_bucket(bucket);
        if let Some(store) = self.lock().get(&name) {
            return Ok(Some(store.clone()));
        }
        self.cluster.ensure_connected().map_err(backend)?;
        let store = match self.cluster.jetstream.get_key_value(&name).await {
            Ok(store) => store,
            Err(_) if !create => return Ok(None),
            Err(_) => {
                let config = js_kv::Config {
                    bucket: name.clone(),
                    description: format!("wisp: {bucket}"),
                    history: 1,
                    max_bytes: i64::try_from(self.limits.max_bucket_bytes).unwrap_or(i64::MAX),
                    ..Default::default()
                };
                self.cluster.key_value(config).await.map_err(backend)?
            }
        };
        self.lock().insert(name, store.clone());
        Ok(Some(store))
    }

    async fn writable(&self, bucket: &BucketId) -> Result<js_kv::Store, KvError> {
        self.store(bucket, true)
            .await?
            .ok_or_else(|| backend("the bucket could not be created"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, js_kv::Store>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn get_value(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let Some(store) = self.store(bucket, false).await? else {
            return Ok(None);
        };
        let value = store.get(encode(key)).await.map_err(backend)?;
        Ok(value.map(|v| v.to_vec()))
    }

    async fn put(&self, bucket: &BucketId, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.limits.check_entry(key, &value)?;
        let store = self.writable(bucket).await?;
        let written = store.put(encode(key), Bytes::from(value.clone())).await;
        written.map_err(|e| full_or_backend(bucket, &self.limits, e))?;
        Ok(())
    }

    async fn remove(&self, bucket: &BucketId, key: &str) -> Result<(), KvError> {
        self.limits.check_key(key)?;
        let Some(store) = self.store(bucket, false).await? else {
            return Ok(());
        };
        store.delete(encode(key)).await.map_err(backend)
    }

    /// Every key of `bucket`, decoded and in byte order.
    async fn all_keys(&self, bucket: &BucketId) -> Result<Vec<String>, KvError> {
        let Some(store) = self.store(bucket, false).await? else {
            return Ok(Vec::new());
        };
        let keys: Vec<String> = match store.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(backend)?,
            Err(e) => return Err(backend(e)),
        };
        let mut keys: Vec<String> = keys.iter().filter_map(|k| decode(k)).collect();
        keys.sort_unstable();
        Ok(keys)
    }

    /// Reads `key`'s value and revision, computes the new value with
    /// `change`, and writes it if nobody wrote the key meanwhile; repeats
    /// until it does. `change` returns `None` to write nothing.
    async fn update<T>(
        &self,
        bucket: &BucketId,
        key: &str,
        mut change: impl FnMut(Option<&[u8]>) -> Result<(Option<Vec<u8>>, T), KvError>,
    ) -> Result<T, KvError> {
        self.limits.check_key(key)?;
        let store = self.writable(bucket).await?;
        let stored = encode(key);
        loop {
            let entry = store.entry(stored.clone()).await.map_err(backend)?;
            let live = entry
                .as_ref()
                .filter(|e| e.operation == js_kv::Operation::Put);
            let (new, outcome) = change(live.map(|e| e.value.as_ref()))?;
            let Some(new) = new else { return Ok(outcome) };
            self.limits.check_entry(key, &new)?;
            let written = match &entry {
                Some(e) => store
                    .update(stored.as_str(), Bytes::from(new), e.revision)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            e.kind() == js_kv::UpdateErrorKind::WrongLastRevision,
                            e.to_string(),
                        )
                    }),
                None => store
                    .create(stored.as_str(), Bytes::from(new))
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            e.kind() == js_kv::CreateErrorKind::AlreadyExists,
                            e.to_string(),
                        )
                    }),
            };
            match written {
                Ok(()) => return Ok(outcome),
                Err((true, _)) => continue,
                Err((false, reason)) => return Err(full_or_backend(bucket, &self.limits, reason)),
            }
        }
    }
}

/// `key` as a JetStream key.
fn encode(key: &str) -> String {
    format!("k{}", URL_SAFE_NO_PAD.encode(key))
}

/// A stored JetStream key back as the key a guest wrote.
fn decode(stored: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(stored.strip_prefix('k')?).ok()?;
    String::from_utf8(bytes).ok()
}

fn backend(error: impl std::fmt::Display) -> KvError {
    KvError::Backend(Arc::new(std::io::Error::other(error.to_string())))
}

/// A failed write: the bucket's byte limit when JetStream says so.
fn full_or_backend(bucket: &BucketId, limits: &KvLimits, error: impl std::fmt::Display) -> KvError {
    let reason = error.to_string();
    if reason.contains("maximum bytes") {
        KvError::BucketFull {
            bucket: bucket.clone(),
            would_hold: limits.max_bucket_bytes.saturating_add(1),
            limit: limits.max_bucket_bytes,
        }
    } else {
        backend(reason)
    }
}

/// `value` as a decimal integer plus `delta`.
fn incremented(key: &str, value: Option<&[u8]>, delta: i64) -> Result<i64, KvError> {
    let current = match value {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .ok_or_else(|| KvError::NotAnInteger {
                key: key.to_owned(),
            })?,
    };
    current.checked_add(delta).ok_or_else(|| KvError::Overflow {
        key: key.to_owned(),
    })
}

impl KvBackend for NatsKv {
    fn get<'a>(&'a self, bucket: &'a BucketId, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        Box::pin(self.get_value(bucket, key))
    }

    fn get_many<'a>(
        &'a self,
        bucket: &'a BucketId,
        keys: &'a [String],
        max_bytes: usize,
    ) -> KvFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut values = Vec::with_capacity(keys.len());
            let mut total = 0;
            for key in keys {
                let value = self.get_value(bucket, key).await?;
                if let Some(value) = &value {
                    crate::state::store::count_read(&mut total, value.len(), max_bytes)?;
                }
                values.push(value);
            }
            Ok(values)
        })
    }

    fn exists<'a>(&'a self, bucket: &'a BucketId, key: &'a str) -> KvFuture<'a, bool> {
        Box::pin(async move { Ok(self.get_value(bucket, key).await?.is_some()) })
    }

    fn list_keys<'a>(
        &'a self,
        bucket: &'a BucketId,
        after: Option<&'a str>,
        limit: usize,
    ) -> KvFuture<'a, KeyPage> {
        Box::pin(async move {
            let keys = self.all_keys(bucket).await?;
            let start = after.map_or(0, |a| keys.partition_point(|k| k.as_str() <= a));
            let limit = limit.max(1);
            let page: Vec<String> = keys.iter().skip(start).take(limit).cloned().collect();
            let next = (start + page.len() < keys.len())
                .then(|| page.last().cloned())
                .flatten();
            Ok(KeyPage { keys: page, next })
        })
    }

    fn set<'a>(&'a self, bucket: &'a BucketId, key: String, value: Vec<u8>) -> KvFuture<'a, ()> {
        Box::pin(async move { self.put(bucket, &key, value).await })
    }

    fn set_many<'a>(
        &'a self,
        bucket: &'a BucketId,
        entries: Vec<(String, Vec<u8>)>,
    ) -> KvFuture<'a, ()> {
        Box::pin(async move {
            for (key, value) in &entries {
                self.limits.check_entry(key, value)?;
            }
            for (key, value) in entries {
                self.put(bucket, &key, value).await?;
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, bucket: &'a BucketId, key: String) -> KvFuture<'a, ()> {
        Box::pin(async move { self.remove(bucket, &key).await })
    }

    fn delete_many<'a>(&'a self, bucket: &'a BucketId, keys: Vec<String>) -> KvFuture<'a, ()> {
        Box::pin(async move {
            for key in &keys {
                self.limits.check_key(key)?;
            }
            for key in keys {
                self.remove(bucket, &key).await?;
            }
            Ok(())
        })
    }

    fn increment<'a>(&'a self, bucket: &'a BucketId, key: String, delta: i64) -> KvFuture<'a, i64> {
        Box::pin(async move {
            self.update(bucket, &key, |value| {
                let new = incremented(&key, value, delta)?;
                Ok((Some(new.to_string().into_bytes()), new))
            })
            .await
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        bucket: &'a BucketId,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> KvFuture<'a, bool> {
        Box::pin(async move {
            self.update(bucket, &key, |value| {
                if value == expected.as_deref() {
                    Ok((Some(new.clone()), true))
                } else {
                    Ok((None, false))
                }
            })
            .await
        })
    }

    fn bucket_bytes<'a>(&'a self, bucket: &'a BucketId) -> KvFuture<'a, u64> {
        Box::pin(async move {
            let Some(store) = self.store(bucket, false).await? else {
                return Ok(0);
            };
            let state = self.cluster.stream_state(&store).await.map_err(backend)?;
            Ok(state.bytes)
        })
    }

    fn function_buckets(&self) -> KvFuture<'_, Vec<String>> {
        Box::pin(async move {
            self.cluster.ensure_connected().map_err(backend)?;
            let prefix = format!("KV_{PREFIX}fn_");
            let names: Vec<String> = self
                .cluster
                .jetstream
                .stream_names()
                .try_collect()
                .await
                .map_err(backend)?;
            Ok(names
                .iter()
                .filter_map(|n| n.strip_prefix(&prefix).map(str::to_owned))
                .collect())
        })
    }

    fn delete_bucket<'a>(&'a self, bucket: &'a BucketId) -> KvFuture<'a, ()> {
        Box::pin(async move {
            let name = Self::stream_bucket(bucket);
            self.lock().remove(&name);
            self.cluster.ensure_connected().map_err(backend)?;
            match self.cluster.jetstream.delete_key_value(&name).await {
                Ok(_) => Ok(()),
                Err(e) if e.to_string().contains("not found") => Ok(()),
                Err(e) => Err(backend(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_key_round_trips_through_a_jetstream_key() {
        for key in ["", "a", "a.b c/d", "ünïcode", "k"] {
            let stored = encode(key);
            assert!(
                stored
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
            assert_eq!(decode(&stored).as_deref(), Some(key));
        }
    }

    #[test]
    fn increments_parse_decimal_and_refuse_overflow() {
        assert_eq!(incremented("k", None, 3).unwrap(), 3);
        assert_eq!(incremented("k", Some(b"41"), 1).unwrap(), 42);
        assert!(matches!(
            incremented("k", Some(b"x"), 1),
            Err(KvError::NotAnInteger { .. })
        ));
        assert!(matches!(
            incremented("k", Some(i64::MAX.to_string().as_bytes()), 1),
            Err(KvError::Overflow { .. })
        ));
    }
}
