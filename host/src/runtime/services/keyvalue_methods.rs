//! The `wasi:keyvalue` methods both interface versions spell the same way,
//! as macros each version's file expands inside its own `impl` blocks.
//!
//! The versions' types live in different generated modules, so one Rust
//! function cannot serve both; the text is the same, so it is written once
//! here. At the expansion site, `store` names that version's generated
//! module and `wit_result` turns a shared-code result into its types.

/// `wit_result`: a shared-code result in the version's error type.
macro_rules! wit_result {
    () => {
        /// A shared-code result in this version's error type.
        fn wit_result<T>(result: KvResult<T>) -> wasmtime::Result<Result<T, store::Error>> {
            Ok(result?.map_err(|error| match error {
                GuestKvError::AccessDenied => store::Error::AccessDenied,
                GuestKvError::Other(message) => store::Error::Other(message),
            }))
        }
    };
}

/// `add_to_linker`: links the version's `store`, `atomics` and `batch`.
macro_rules! link_interfaces {
    () => {
        /// Links this version's three interfaces.
        pub(super) fn add_to_linker<T: Send + 'static>(
            linker: &mut wasmtime::component::Linker<T>,
            view: fn(&mut T) -> KvView<'_>,
        ) -> wasmtime::Result<()> {
            store::add_to_linker::<T, super::KvData>(linker, view)?;
            atomics::add_to_linker::<T, super::KvData>(linker, view)?;
            batch::add_to_linker::<T, super::KvData>(linker, view)?;
            Ok(())
        }
    };
}

/// `store.open`, and the `bucket` methods but `list-keys` (whose cursor
/// differs between the versions).
macro_rules! bucket_methods {
    (open) => {
        async fn open(
            &mut self,
            identifier: String,
        ) -> wasmtime::Result<Result<Resource<BucketHandle>, store::Error>> {
            wit_result(self.open(&identifier))
        }
    };
    (bucket) => {
        async fn get(
            &mut self,
            bucket: Resource<BucketHandle>,
            key: String,
        ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
            let (scope, bucket) = self.target(&bucket)?;
            wit_result(scope.answer(scope.backend().get(&bucket, &key).await))
        }

        async fn set(
            &mut self,
            bucket: Resource<BucketHandle>,
            key: String,
            value: Vec<u8>,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            let (scope, bucket) = self.target(&bucket)?;
            wit_result(scope.answer(scope.backend().set(&bucket, key, value).await))
        }

        async fn delete(
            &mut self,
            bucket: Resource<BucketHandle>,
            key: String,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            let (scope, bucket) = self.target(&bucket)?;
            wit_result(scope.answer(scope.backend().delete(&bucket, key).await))
        }

        async fn exists(
            &mut self,
            bucket: Resource<BucketHandle>,
            key: String,
        ) -> wasmtime::Result<Result<bool, store::Error>> {
            let (scope, bucket) = self.target(&bucket)?;
            wit_result(scope.answer(scope.backend().exists(&bucket, &key).await))
        }

        async fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
            self.close(bucket)
        }
    };
}

/// `batch.set-many` and `batch.delete-many`.
macro_rules! batch_writes {
    () => {
        async fn set_many(
            &mut self,
            bucket: Resource<BucketHandle>,
            key_values: Vec<(String, Vec<u8>)>,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            let (scope, bucket) = self.target(&bucket)?;
            wit_result(scope.answer(scope.backend().set_many(&bucket, key_values).await))
        }

        async fn delete_many(
            &mut self,
            bucket: Resource<BucketHandle>,
            keys: Vec<String>,
        ) -> wasmtime::Result<Result<(), store::Error>> {
            let (scope, bucket) = self.target(&bucket)?;
            wit_result(scope.answer(scope.backend().delete_many(&bucket, keys).await))
        }
    };
}
