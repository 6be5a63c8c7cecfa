//! `wasi:keyvalue@0.2.0-draft2` (Spin 3): `store`, `atomics` (with
//! compare-and-swap) and `batch`, on the shared code in `keyvalue.rs`.
//!
//! Its differences from the draft: `increment` is signed, a `list-keys`
//! cursor is the last key returned, `get-many` pairs every key with an
//! optional value, and `atomics` has a `cas` resource.

use super::keyvalue::{BucketHandle, CasHandle, GuestKvError, KvResult, KvView};
use wasmtime::component::Resource;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/keyvalue-0.2.0-draft2",
        world: "wasi:keyvalue/imports@0.2.0-draft2",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::runtime::services::keyvalue::BucketHandle,
            "wasi:keyvalue/atomics.cas": crate::runtime::services::keyvalue::CasHandle,
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
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let (scope, bucket) = self.target(&bucket)?;
        let page = wit_result(scope.list(&bucket, cursor.as_deref()).await)?;
        Ok(page.map(|page| store::KeyResponse {
            keys: page.keys,
            cursor: page.next,
        }))
    }
}

impl atomics::Host for KvView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        let (scope, bucket) = self.target(&bucket)?;
        wit_result(scope.answer(scope.backend().increment(&bucket, key, delta).await))
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let CasHandle {
            bucket,
            key,
            current,
        } = self.release(cas)?;
        let scope = self.scope;
        let swapped = scope
            .backend()
            .compare_and_swap(&bucket, key.clone(), current, value)
            .await;
        match wit_result(scope.answer(swapped))? {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                // Hand the guest a fresh handle, holding the value that won,
                // so it can retry.
                let current =
                    match wit_result(scope.answer(scope.backend().get(&bucket, &key).await))? {
                        Ok(current) => current,
                        Err(error) => return Ok(Err(atomics::CasError::StoreError(error))),
                    };
                let fresh = CasHandle {
                    bucket,
                    key,
                    current,
                };
                match wit_result(self.hold(fresh))? {
                    Ok(fresh) => Ok(Err(atomics::CasError::CasFailed(fresh))),
                    Err(error) => Ok(Err(atomics::CasError::StoreError(error))),
                }
            }
            Err(error) => Ok(Err(atomics::CasError::StoreError(error))),
        }
    }
}

impl atomics::HostCas for KvView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, store::Error>> {
        let (scope, bucket) = self.target(&bucket)?;
        let current = match wit_result(scope.answer(scope.backend().get(&bucket, &key).await))? {
            Ok(current) => current,
            Err(error) => return Ok(Err(error)),
        };
        let cas = CasHandle {
            bucket,
            key,
            current,
        };
        wit_result(self.hold(cas))
    }

    async fn current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.release(cas)?;
        Ok(())
    }
}

impl batch::Host for KvView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, store::Error>> {
        let (scope, bucket) = self.target(&bucket)?;
        let budget = self.read_budget();
        let values =
            wit_result(scope.answer(scope.backend().get_many(&bucket, &keys, budget).await))?;
        Ok(values.map(|values| keys.into_iter().zip(values).collect()))
    }

    batch_writes!();
}
