//! What a version is built with besides its code — its meter and its
//! platform services (key-value, config, secrets, SQLite) — and what goes
//! when a function does: its books, its key-value bucket, its own SQLite
//! database and its secrets.

use super::Deployer;
use crate::observe::metrics::FunctionMetrics;
use crate::runtime::code_cache::CodeSlot;
use crate::runtime::function::{Function, VersionInfo};
use crate::runtime::services::GuestServices;
use crate::state::{BucketId, DatabaseId};
use std::sync::Arc;
use wisp_spec::settings::Settings;

impl Deployer {
    /// The platform services of a version of function `name` with
    /// `settings`, counting its breaches in `metrics`.
    pub(crate) fn services(
        &self,
        name: &str,
        settings: &Settings,
        metrics: Arc<FunctionMetrics>,
    ) -> Arc<GuestServices> {
        Arc::new(GuestServices::new(
            Arc::from(name),
            settings,
            self.kv.clone(),
            self.sql.clone(),
            self.secrets.for_function(name),
            metrics,
        ))
    }

    /// A deployed version running the code of `code`, with its meter and
    /// services.
    pub(crate) fn new_version(&self, info: VersionInfo, code: Arc<CodeSlot>) -> Function {
        let meter = self.books.meter(&info.name, info.version);
        let services = self.services(&info.name, &info.settings, meter.metrics.clone());
        Function::new(
            info,
            code,
            meter,
            services,
            self.runtime.guest_memory.clone(),
        )
    }

    /// Deletes the key-value buckets, SQLite databases and secrets of
    /// functions removed before a crash (their records are gone, their
    /// state is not).
    pub(crate) async fn sweep_removed_state(self: &Arc<Self>) {
        let records = &self.records;
        let kept = |name: &str| records.path(name).exists();
        // Shared buckets: this host's records (perhaps none yet) do not
        // say which functions the other hosts have.
        let buckets = if self.shared.shares_buckets() {
            Vec::new()
        } else {
            self.kv.function_buckets().await.unwrap_or_else(|e| {
                tracing::error!("listing the key-value buckets failed: {e}");
                Vec::new()
            })
        };
        let mut orphans: Vec<String> = buckets.into_iter().filter(|n| !kept(n)).collect();
        orphans.extend(self.secrets.functions().into_iter().filter(|n| !kept(n)));
        // A cluster host's own databases wait as its buckets do: its
        // records may not have every function yet.
        if !self.shared.shares_buckets() {
            orphans.extend(
                self.sql
                    .function_databases()
                    .into_iter()
                    .filter(|n| !kept(n)),
            );
        }
        orphans.sort();
        orphans.dedup();
        for name in orphans {
            tracing::warn!(function = %name, "deleting the bucket, database and secrets of a function removed before a crash");
            self.delete_state(&name).await;
        }
    }

    /// Deletes the key-value bucket, SQLite database and secrets of removed
    /// function `function`; the bucket's size before, in bytes.
    pub(crate) async fn delete_state(self: &Arc<Self>, function: &str) -> u64 {
        let bucket = BucketId::Function(function.to_owned());
        let kv = &self.kv;
        let bytes = kv.bucket_bytes(&bucket).await.unwrap_or(0);
        if let Err(e) = kv.delete_bucket(&bucket).await {
            tracing::error!(
                function,
                "deleting the key-value bucket of a removed function failed: {e}"
            );
        }
        self.delete_database(function).await;
        let (secrets, owned) = (self.secrets.clone(), function.to_owned());
        let forgotten = tokio::task::spawn_blocking(move || secrets.forget(&owned)).await;
        if !matches!(forgotten, Ok(Ok(()))) {
            tracing::error!(
                function,
                "deleting the secrets of a removed function failed"
            );
        }
        bytes
    }

    /// Deletes removed function `function`'s own SQLite database on this
    /// host (each host keeps its own, also in a cluster).
    pub(crate) async fn delete_database(&self, function: &str) {
        let database = DatabaseId::Function(function.to_owned());
        if let Err(e) = self.sql.delete(&database).await {
            tracing::error!(
                function,
                "deleting the SQLite database of a removed function failed: {e}"
            );
        }
    }
}
