//! Loaded code shared by artifact: functions with the same binary (and
//! engine) share one mmapped artifact and one pre-linked instance template.
//!
//! The cache holds weak references, so code no version uses is unmapped as
//! soon as its last version goes; it never keeps anything alive by itself.

use crate::error::DeployError;
use crate::runtime::function::{Linkers, LoadedCode};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use wasmtime::Engine;
use wisp_spec::inspect::Abi;

/// Live loaded code, by artifact key.
#[derive(Default)]
pub(crate) struct CodeCache {
    loaded: Mutex<HashMap<String, Weak<LoadedCode>>>,
}

impl CodeCache {
    /// The live loaded code of artifact `key`, if any.
    fn cached(&self, key: &str) -> Option<Arc<LoadedCode>> {
        let cache = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).and_then(Weak::upgrade)
    }

    /// The loaded code of artifact `key`, shared with every other version
    /// that uses it. When none is alive, `artifact` gives the path of the
    /// compiled file, which is then loaded (blocking).
    pub(crate) fn load(
        &self,
        engine: &Engine,
        linkers: &Linkers,
        key: &str,
        abi: Abi,
        artifact: impl FnOnce() -> Result<PathBuf, DeployError>,
    ) -> Result<Arc<LoadedCode>, DeployError> {
        if let Some(code) = self.cached(key) {
            return Ok(code);
        }
        let code = Arc::new(LoadedCode::load(engine, linkers, abi, &artifact()?)?);
        let mut cache = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, code| code.strong_count() > 0);
        cache.insert(key.to_owned(), Arc::downgrade(&code));
        Ok(code)
    }
}
