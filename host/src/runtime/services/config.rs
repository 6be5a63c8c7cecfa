//! `wasi:config/store`, at `0.2.0-rc.1` (what `wasmtime-wasi-config` 48
//! serves), Spin's `0.2.0-draft-2024-09-27` and wasmCloud's `0.2.0-draft`:
//! the same interface under three version strings.
//!
//! A guest reads its version's config values (`--config KEY=VALUE`) and its
//! function's secrets (`wisp secret set`) through it; a secret shadows a
//! config value of the same name. Secrets are read when asked for, so a new
//! secret reaches the next request without a redeploy.

use crate::state::FunctionSecrets;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

mod rc1 {
    wasmtime::component::bindgen!({
        path: "../wit/config-0.2.0-rc.1",
        world: "wasi:config/imports@0.2.0-rc.1",
    });
}

mod spin {
    wasmtime::component::bindgen!({
        path: "../wit/config-0.2.0-draft-2024-09-27",
        world: "wasi:config/imports@0.2.0-draft-2024-09-27",
    });
}

mod wasmcloud {
    wasmtime::component::bindgen!({
        path: "../wit/config-0.2.0-draft",
        world: "wasi:config/imports@0.2.0-draft",
    });
}

/// The configuration one function version reads.
pub(crate) struct ConfigScope {
    values: BTreeMap<String, String>,
    secrets: Arc<FunctionSecrets>,
}

impl ConfigScope {
    pub(super) fn new(values: BTreeMap<String, String>, secrets: Arc<FunctionSecrets>) -> Self {
        ConfigScope { values, secrets }
    }

    /// The function's secrets.
    pub(super) fn secrets(&self) -> &Arc<FunctionSecrets> {
        &self.secrets
    }

    /// The value of `key`: its secret if there is one, else its config
    /// value; `Err` (why) while the function's secrets file is damaged.
    pub(super) fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self
            .secrets
            .get(key)?
            .or_else(|| self.values.get(key).cloned()))
    }

    /// Every key and value, secrets shadowing config values, sorted by key.
    fn all(&self) -> Result<Vec<(String, String)>, String> {
        let mut all = self.values.clone();
        all.extend(self.secrets.all()?);
        Ok(all.into_iter().collect())
    }
}

/// The `HasData` of the config bindings.
pub(super) struct ConfigData;

impl HasData for ConfigData {
    type Data<'a> = &'a ConfigScope;
}

/// Links every version of `wasi:config/store`.
pub(super) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> &ConfigScope,
) -> wasmtime::Result<()> {
    rc1::wasi::config::store::add_to_linker::<T, ConfigData>(linker, view)?;
    spin::wasi::config::store::add_to_linker::<T, ConfigData>(linker, view)?;
    wasmcloud::wasi::config::store::add_to_linker::<T, ConfigData>(linker, view)?;
    Ok(())
}

/// Implements one version's `store` on [`ConfigScope`]: the versions differ
/// in their version string only.
macro_rules! store_version {
    ($version:ident) => {
        impl $version::wasi::config::store::Host for &ConfigScope {
            fn get(
                &mut self,
                key: String,
            ) -> Result<Option<String>, $version::wasi::config::store::Error> {
                ConfigScope::get(self, &key).map_err($version::wasi::config::store::Error::Io)
            }

            fn get_all(
                &mut self,
            ) -> Result<Vec<(String, String)>, $version::wasi::config::store::Error> {
                self.all().map_err($version::wasi::config::store::Error::Io)
            }
        }
    };
}

store_version!(rc1);
store_version!(spin);
store_version!(wasmcloud);
