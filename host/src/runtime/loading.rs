//! Getting a version's code ready to run: resident already, loaded from its
//! verified artifact, or recompiled from its stored source when the
//! artifact is missing or corrupt; and compiling a new upload into the
//! artifact store. Every load and compile is counted in the metrics.

use super::Runtime;
use super::artifacts::{ArtifactError, ArtifactStore};
use super::code_cache::{CodeSlot, LoadTurn};
use super::compiler;
use super::function::LoadedCode;
use crate::error::{DeployError, HostFailure, InvokeError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use wisp_spec::inspect::Abi;

impl Runtime {
    /// The loaded code of `slot`, for a request of function `function`:
    /// resident already, or loaded now from its verified artifact
    /// (recompiled from source if the artifact is missing or corrupt).
    /// Concurrent first requests load it once; code that cannot be loaded
    /// makes the function unavailable (503), with the reason in the log.
    pub(crate) async fn code(
        self: &Arc<Self>,
        slot: &Arc<CodeSlot>,
        function: &str,
    ) -> Result<Arc<LoadedCode>, InvokeError> {
        let resident = || {
            let code = slot.get()?;
            self.code.touch(slot);
            Some(code)
        };
        if let Some(code) = resident() {
            return Ok(code);
        }
        let mut turn = slot.turn().await;
        if let Some(code) = resident() {
            return Ok(code);
        }
        if CodeSlot::failed_recently(&turn) {
            return Err(InvokeError::Unavailable(function.to_owned()));
        }
        let runtime = self.clone();
        let to_load = slot.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            runtime.load_code(&to_load, &mut turn, || runtime.verified_artifact(&to_load))
        })
        .await
        .map_err(|e| InvokeError::Internal(format!("loading the code panicked: {e}")))?;
        loaded.map_err(|e| {
            tracing::error!(function, artifact = %slot.key, "version not loaded: {e}");
            InvokeError::Unavailable(function.to_owned())
        })
    }

    /// The loaded code of `slot`, loading it in `turn` from the file
    /// `artifact` gives when it is not resident (blocking); counts the load
    /// and its evictions.
    pub(crate) fn load_code(
        &self,
        slot: &Arc<CodeSlot>,
        turn: &mut LoadTurn,
        artifact: impl FnOnce() -> Result<PathBuf, DeployError>,
    ) -> Result<Arc<LoadedCode>, DeployError> {
        let started = Instant::now();
        let loaded = self.code.load(
            self.engines.for_abi(slot.abi),
            &self.linkers,
            slot,
            turn,
            artifact,
        )?;
        if let Some(admitted) = loaded.admitted {
            self.metrics.record_code_load(
                started.elapsed(),
                admitted.evicted,
                admitted.resident,
                admitted.bytes,
            );
        }
        Ok(loaded.code)
    }

    /// The verified compiled artifact of `slot`; a missing or corrupt one
    /// is recompiled from its stored source (blocking).
    pub(crate) fn verified_artifact(&self, slot: &CodeSlot) -> Result<PathBuf, DeployError> {
        self.verified(slot, ArtifactStore::verified_compiled)
    }

    /// `slot`'s verified compiled artifact in a sealed memory file (for
    /// guest workers, which map it); a missing or corrupt one is recompiled
    /// from its stored source (blocking).
    pub(crate) fn sealed_artifact(
        &self,
        slot: &CodeSlot,
    ) -> Result<std::os::fd::OwnedFd, DeployError> {
        self.verified(slot, ArtifactStore::compiled_sealed)
    }

    /// `read` of `slot`'s compiled artifact, recompiling it from its
    /// stored source first where it is missing or corrupt.
    fn verified<T>(
        &self,
        slot: &CodeSlot,
        read: impl Fn(&ArtifactStore, &str) -> Result<T, ArtifactError>,
    ) -> Result<T, DeployError> {
        let artifacts = &self.artifacts;
        let name = &slot.function;
        let failed = |e| {
            DeployError::from(HostFailure::logged(
                format!("reading the compiled code of `{name}` failed"),
                e,
            ))
        };
        match read(artifacts, &slot.key) {
            Ok(artifact) => Ok(artifact),
            Err(ArtifactError::Missing(_) | ArtifactError::Corrupt(_)) => {
                if artifacts.compiled_path(&slot.key).exists() {
                    tracing::warn!(function = %name, artifact = %slot.key, "compiled artifact is corrupt; recompiling from source");
                }
                let wasm = artifacts.read_source(&slot.source).map_err(|e| {
                    HostFailure::logged(format!("reading the stored source of `{name}` failed"), e)
                })?;
                self.compile_and_store(slot.abi, &wasm, &slot.key, name)?;
                read(artifacts, &slot.key).map_err(failed)
            }
            Err(e) => Err(failed(e)),
        }
    }

    /// Compiles and stores an artifact under `key` for function `name`
    /// (blocking).
    pub(crate) fn compile_and_store(
        &self,
        abi: Abi,
        wasm: &[u8],
        key: &str,
        name: &str,
    ) -> Result<PathBuf, DeployError> {
        let started = Instant::now();
        let cwasm = compiler::compile(
            self.engines.for_abi(abi),
            &self.compiler,
            &self.compile_budget,
            abi,
            wasm,
        )?;
        self.metrics.record_compile(started.elapsed());
        let stored = self.artifacts.put_compiled(key, &cwasm).map_err(|e| {
            HostFailure::logged(format!("storing the compiled code of `{name}` failed"), e)
        })?;
        Ok(stored)
    }
}
