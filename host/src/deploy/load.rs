//! Start-up: every stored record becomes versions in the registry.
//!
//! Records are read, then turned into versions in parallel on blocking
//! threads. No code is loaded: a version's code loads on its first request
//! (see `runtime/code_cache.rs`), so start-up time and idle memory do not grow with
//! the code deployed. A version whose artifact is missing is recompiled from
//! its stored source now; a corrupt one is found, and recompiled, when its
//! code loads. Anything else that is wrong is a [`LoadProblem`], logged and
//! returned, never fatal. A function that cannot serve — a damaged record
//! (see `deploy/damage.rs`) or no loadable version with traffic — is still
//! listed, with the reason, and its problem names its record file.

use super::Deployer;
use crate::backplane::records::{FunctionRecord, VersionRecord};
use crate::error::{DeployError, HostFailure};
use crate::registry::{FunctionEntry, Snapshot};
use crate::runtime::function::{Function, VersionInfo};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use wisp_spec::route::Route;
use wisp_spec::settings::Settings;

impl Deployer {
    /// Loads stored records into the registry, in parallel on blocking
    /// threads.
    pub(crate) async fn load_stored(
        self: &Arc<Self>,
        stored: Vec<Result<FunctionRecord, (PathBuf, String)>>,
    ) -> Vec<LoadProblem> {
        let mut problems = Vec::new();
        let mut records = Vec::new();
        let unreadable = stored.iter().any(Result::is_err);
        for entry in stored {
            match entry {
                Ok(record) => records.push(record),
                Err((path, reason)) => problems.push(LoadProblem {
                    subject: path.display().to_string(),
                    message: format!("unreadable record skipped: {reason}"),
                }),
            }
        }
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(1);
        let chunk = records.len().div_ceil(workers).max(1);
        let mut tasks = Vec::new();
        for batch in records.chunks(chunk).map(<[FunctionRecord]>::to_vec) {
            let host = self.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                batch
                    .into_iter()
                    .map(|record| host.load_record(record))
                    .collect::<Vec<_>>()
            }));
        }
        let mut entries = BTreeMap::new();
        for task in tasks {
            let Ok(results) = task.await else {
                problems.push(LoadProblem {
                    subject: "data dir".into(),
                    message: "a loader thread panicked".into(),
                });
                continue;
            };
            for (entry, mut found) in results {
                problems.append(&mut found);
                if let Some(entry) = entry {
                    entries.insert(entry.record.name.clone(), Arc::new(entry));
                }
            }
        }
        self.metrics.set_functions(entries.len());
        // Sources and artifacts no record names (a deploy cut off by a crash)
        // go, unless a record could not be read: it may still need them.
        if !unreadable {
            self.collect_garbage(&entries).await;
        }
        let snapshot = Snapshot::new(entries);
        for entry in snapshot.entries().values() {
            if let Some(reason) = entry.unavailable() {
                problems.push(LoadProblem {
                    subject: self.records.path(&entry.record.name).display().to_string(),
                    message: format!("function `{}` is unavailable: {reason}", entry.record.name),
                });
            }
        }
        self.registry.publish(snapshot);
        for problem in &problems {
            tracing::warn!(subject = %problem.subject, "{}", problem.message);
        }
        problems
    }

    /// Every version of one record (blocking).
    fn load_record(
        self: &Arc<Self>,
        record: FunctionRecord,
    ) -> (Option<FunctionEntry>, Vec<LoadProblem>) {
        let mut problems = Vec::new();
        let route = match Route::parse(&record.route) {
            Ok(route) => route,
            Err(e) => {
                problems.push(LoadProblem {
                    subject: record.name.clone(),
                    message: format!("skipped: {e}"),
                });
                return (None, problems);
            }
        };
        let mut versions = BTreeMap::new();
        for version in &record.versions {
            match self.load_version(&record, version) {
                Ok(function) => {
                    versions.insert(version.number, Arc::new(function));
                }
                Err(e) => problems.push(LoadProblem {
                    subject: format!("{} v{}", record.name, version.number),
                    message: format!("version not loaded: {e}"),
                }),
            }
        }
        let missing = self.runtime.artifacts.missing_sources(&record);
        (
            Some(FunctionEntry::new(record, route, versions, missing)),
            problems,
        )
    }

    /// One stored version, its code not loaded yet; a missing artifact is
    /// recompiled from its source (blocking).
    pub(crate) fn load_version(
        self: &Arc<Self>,
        record: &FunctionRecord,
        version: &VersionRecord,
    ) -> Result<Function, DeployError> {
        let label = format!("`{}` v{}", record.name, version.number);
        let source = version.source_hash().ok_or_else(|| {
            HostFailure::logged(
                format!("the record of {label} names no valid source"),
                format_args!("bad source hash `{}`", version.source),
            )
        })?;
        let settings = Settings::validate(&version.settings, self.options.root_dir())?;
        self.options.check_dirs(&settings)?;
        let key = self.runtime.artifacts.compiled_key(&source);
        let info = VersionInfo {
            name: Arc::from(record.name.as_str()),
            version: version.number,
            settings,
        };
        // The code loads on the first request; only a missing artifact is
        // compiled now (a corrupt one is found when it loads).
        let code = self
            .runtime
            .code
            .slot(&key, version.abi, source, &record.name);
        if code.get().is_none() && !self.runtime.artifacts.compiled_path(&key).exists() {
            self.runtime.verified_artifact(&code)?;
        }
        Ok(self.new_version(info, code))
    }
}

/// A problem found while loading the data dir: reported, never fatal.
#[derive(Debug, Clone)]
pub struct LoadProblem {
    /// The function (or file) concerned.
    pub subject: String,
    /// What went wrong and what was done about it.
    pub message: String,
}
