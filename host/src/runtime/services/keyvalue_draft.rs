//! `wasi:keyvalue@0.2.0-draft` (what `wasmtime serve` and wasmCloud serve):
//! `store`, `atomics` and `batch`, on the shared code in `keyvalue.rs`.
//!
//! Its differences from draft2: `increment` is unsigned, a `list-keys`
//! cursor is a number (here: how many keys came before the page), and
//! `get-many` leaves missing keys out as `none`.

use super::keyvalue::{BucketHandle, GuestKvError, KvResult, KvScope, KvView};
use crate::state::BucketId;
use wasmtime::component::Resource;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/keyvalue-0.2.0-draft",
        world: "wasi:keyvalue/imports@0.2.0-draft",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::runtime::services::keyvalue::BucketHandle,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

link_interfaces!();

wit_result!();

impl store::Host for KvView<'_> {
    bucket_methods!(open);
}

impl store::HostBucket for KvView<'_> {
    bucket_methods!(bucket);

    async fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let (scope, bucket) = self.target(&bucket)?;
        wit_result(list_from(scope, &bucket, cursor.unwrap_or(0)).await)
    }
}

/// The page of `bucket`'s keys after the first `skip`: the draft's cursor
/// counts the keys already returned.
async fn list_from(scope: &KvScope, bucket: &BucketId, skip: u64) -> KvResult<store::KeyResponse> {
    let mut after = None;
    if skip > 0 {
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let skipped = match scope.answer(scope.backend().list_keys(bucket, None, skip).await)? {
            Ok(page) => page,
            Err(error) => return Ok(Err(error)),
        };
        if skipped.keys.len() < skip || skipped.next.is_none() {
            // Nothing is left after the keys skipped.
            return Ok(Ok(store::KeyResponse {
                keys: Vec::new(),
                cursor: None,
            }));
        }
        after = skipped.keys.into_iter().last();
    }
    Ok(scope.list(bucket, after.as_deref()).await?.map(|page| {
        let cursor = page.next.as_ref().map(|_| skip + page.keys.len() as u64);
        store::KeyResponse {
            keys: page.keys,
            cursor,
        }
    }))
}

impl atomics::Host for KvView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, store::Error>> {
        let Ok(delta) = i64::try_from(delta) else {
            return Ok(Err(store::Error::Other(format!(
                "an increment of {delta} is over the largest signed 64-bit integer"
            ))));
        };
        let (scope, bucket) = self.target(&bucket)?;
        let value = match wit_result(
            scope.answer(scope.backend().increment(&bucket, key.clone(), delta).await),
        )? {
            Ok(value) => value,
            Err(error) => return Ok(Err(error)),
        };
        Ok(u64::try_from(value).map_err(|_| {
            store::Error::Other(format!(
                "key `{key}` now holds {value}, which this interface's unsigned increment cannot return"
            ))
        }))
    }
}

impl batch::Host for KvView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, store::Error>> {
        let (scope, bucket) = self.target(&bucket)?;
        let budget = self.read_budget();
        let read = scope.backend().get_many(&bucket, &keys, budget).await;
        let values = match wit_result(scope.answer(read))? {
            Ok(values) => values,
            Err(error) => return Ok(Err(error)),
        };
        Ok(Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|value| (key, value)))
            .collect()))
    }

    batch_writes!();
}
