//! `fermyon:spin/key-value@2.0.0` and `fermyon:spin/variables@2.0.0`:
//! what Spin SDK 2 to 5 components import, with the meanings of their
//! `spin:…@3.0.0` successors (`spin_keyvalue.rs`, `spin_variables.rs`).
//!
//! A store's label is a bucket name: `default` is the function's own
//! bucket, any other label an app bucket the function was granted; the
//! rest are `access-denied`. `get-keys` answers every key, gathered within
//! the request's read budget. A variable is a config value or secret of
//! the function.

use super::config::{ConfigData, ConfigScope};
use super::keyvalue::{BucketHandle, GuestKvError, KvResult, KvView};
use super::spin_variables::{Unanswered, lookup};
use wasmtime::component::{Linker, Resource};

mod generated {
    wasmtime::component::bindgen!({
        inline: "
            package wisp:spin2;
            world imports {
                import fermyon:spin/key-value@2.0.0;
                import fermyon:spin/variables@2.0.0;
            }
        ",
        path: "../wit/fermyon-spin-2.0.0",
        imports: {
            "fermyon:spin/variables.get": trappable,
            default: async | trappable,
        },
        with: {
            "fermyon:spin/key-value.store": crate::runtime::services::keyvalue::BucketHandle,
        },
    });
}

use generated::fermyon::spin::key_value as store;
use generated::fermyon::spin::variables;

wit_result!();

/// Links both interfaces.
pub(super) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    kv: fn(&mut T) -> KvView<'_>,
    config: fn(&mut T) -> &ConfigScope,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, super::KvData>(linker, kv)?;
    variables::add_to_linker::<T, ConfigData>(linker, config)
}

impl store::Host for KvView<'_> {}

impl store::HostStore for KvView<'_> {
    bucket_methods!(open);
    bucket_methods!(bucket);

    async fn get_keys(
        &mut self,
        store: Resource<BucketHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, store::Error>> {
        let (scope, bucket) = self.target(&store)?;
        let budget = self.read_budget();
        wit_result(scope.all_keys(&bucket, budget).await)
    }
}

impl variables::Host for &ConfigScope {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        Ok(lookup(self, name).map_err(|unanswered| match unanswered {
            Unanswered::InvalidName(name) => variables::Error::InvalidName(name),
            Unanswered::Undefined(name) => variables::Error::Undefined(name),
            Unanswered::Provider(why) => variables::Error::Provider(why),
        }))
    }
}
