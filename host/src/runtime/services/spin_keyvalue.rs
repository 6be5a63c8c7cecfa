//! `spin:key-value/key-value@3.0.0` (what `spin-sdk` 7 components import):
//! a `store` resource on the shared key-value code in `keyvalue.rs`.
//!
//! A Spin store's label is a bucket name: `default` is the function's own
//! bucket, any other label an app bucket the function was granted (a
//! `spin.toml`'s `key_value_stores`); the rest are `access-denied`. Every
//! method is an `async func`, and so is only linked on the concurrent
//! engine. `get-keys` answers with a stream of every key, gathered first
//! within the request's read budget.

use super::GuestServices;
use super::keyvalue::{BucketHandle, GuestKvError, KvResult, KvView};
use crate::state::BucketId;
use std::sync::Arc;
use wasmtime::component::{Accessor, FutureReader, HasData, Linker, Resource, StreamReader};

mod generated {
    wasmtime::component::bindgen!({
        inline: "
            package wisp:spin-key-value;
            world imports { import spin:key-value/key-value@3.0.0; }
        ",
        path: "../wit/spin-key-value-3.0.0",
        imports: { default: trappable },
        with: {
            "spin:key-value/key-value.store": crate::runtime::services::keyvalue::BucketHandle,
        },
    });
}

use generated::spin::key_value::key_value::{self as wit, Error};

/// The `HasData` of these bindings: a [`KvView`] and the version's
/// services, which `get-keys` holds across its `await`s.
pub(super) struct SpinKvData;

impl HasData for SpinKvData {
    type Data<'a> = SpinKvView<'a>;
}

/// A request's key-value view, with an owned handle on its services.
pub(super) struct SpinKvView<'a> {
    pub(super) kv: KvView<'a>,
    pub(super) services: &'a Arc<GuestServices>,
}

/// Links the interface.
pub(super) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> SpinKvView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, SpinKvData>(linker, view)
}

/// A shared-code result in Spin's error type.
fn spin_result<T>(result: KvResult<T>) -> wasmtime::Result<Result<T, Error>> {
    Ok(result?.map_err(|error| match error {
        GuestKvError::AccessDenied => Error::AccessDenied,
        GuestKvError::Other(message) => Error::Other(message),
    }))
}

impl wit::Host for SpinKvView<'_> {}

impl wit::HostStore for SpinKvView<'_> {
    fn drop(&mut self, store: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.kv.close(store)
    }
}

/// The version's services and the bucket behind `store`: what a call needs
/// across its `await`s, taken from the store first.
fn target<U>(
    accessor: &Accessor<U, SpinKvData>,
    store: &Resource<BucketHandle>,
) -> wasmtime::Result<(Arc<GuestServices>, BucketId)> {
    accessor.with(|mut access| {
        let view = access.get();
        let (_, bucket) = view.kv.target(store)?;
        Ok((Arc::clone(view.services), bucket))
    })
}

impl<U: 'static> wit::HostStoreWithStore<U> for SpinKvData {
    async fn open(
        accessor: &Accessor<U, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<BucketHandle>, Error>> {
        accessor.with(|mut access| spin_result(access.get().kv.open(&label)))
    }

    async fn get(
        accessor: &Accessor<U, Self>,
        store: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let (services, bucket) = target(accessor, &store)?;
        let scope = &services.kv;
        spin_result(scope.answer(scope.backend().get(&bucket, &key).await))
    }

    async fn set(
        accessor: &Accessor<U, Self>,
        store: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (services, bucket) = target(accessor, &store)?;
        let scope = &services.kv;
        spin_result(scope.answer(scope.backend().set(&bucket, key, value).await))
    }

    async fn delete(
        accessor: &Accessor<U, Self>,
        store: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (services, bucket) = target(accessor, &store)?;
        let scope = &services.kv;
        spin_result(scope.answer(scope.backend().delete(&bucket, key).await))
    }

    async fn exists(
        accessor: &Accessor<U, Self>,
        store: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let (services, bucket) = target(accessor, &store)?;
        let scope = &services.kv;
        spin_result(scope.answer(scope.backend().exists(&bucket, &key).await))
    }

    async fn get_keys(
        accessor: &Accessor<U, Self>,
        store: Resource<BucketHandle>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        let (services, bucket) = target(accessor, &store)?;
        let budget = accessor.with(|mut access| access.get().kv.read_budget());
        let (keys, outcome) = match spin_result(services.kv.all_keys(&bucket, budget).await)? {
            Ok(keys) => (keys, Ok(())),
            Err(error) => (Vec::new(), Err(error)),
        };
        accessor.with(|mut access| {
            let keys = StreamReader::new(&mut access, keys)?;
            let done = FutureReader::new(
                &mut access,
                async move { Ok::<_, wasmtime::Error>(outcome) },
            )?;
            Ok((keys, done))
        })
    }
}
