//! Cluster mode: many hosts, one desired state, kept in NATS JetStream.
//!
//! Every host of a cluster connects to the same NATS server
//! ([`ClusterConfig`]) and keeps there what would otherwise be files in its
//! data dir:
//!
//! | JetStream | holds |
//! | --- | --- |
//! | key-value bucket `wisp-functions` | one [`FunctionRecord`] per function: versions, settings, traffic, rollback target, schedules, grants |
//! | object store `wisp-sources` | uploaded `.wasm`, named by source hash |
//! | key-value buckets `wisp-state-*` | the `wasi:keyvalue` buckets (`kv.rs`) |
//! | key-value bucket `wisp-cron` | one claim per cron tick, so a tick runs once per cluster |
//! | stream `WISP_CALLS`, bucket `wisp-calls`, object store `wisp-call-bodies` | async calls (`calls.rs`) |
//!
//! A write (deploy, traffic, rollback, retire, remove) goes to the cluster
//! with compare-and-set on the record's revision and is applied locally only
//! by the converger (`converge.rs`), which watches the bucket on every host,
//! compiles into the host's own artifact cache and publishes. The writer then
//! waits until its own host has applied the revision it wrote, so a client
//! reads its writes on the host it asked. The local record files remain the
//! last known state: a host whose NATS is gone keeps serving them, refuses
//! writes with `503 cluster-unavailable`, and resyncs when NATS is back.

mod bus;
mod calls;
mod converge;
mod kv;

use crate::backplane::records::FunctionRecord;
use crate::backplane::{Committed, Shared, SharedState};
use crate::error::DeployError;
use async_nats::jetstream::{self, kv as js_kv, object_store};
use bytes::Bytes;
pub(crate) use calls::ClusterCalls;
pub(crate) use kv::NatsKv;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::OnceCell;
use wisp_spec::api::ClusterHealth;
use wisp_spec::source::SourceHash;

/// The bucket of desired state: function name → record.
const FUNCTIONS_BUCKET: &str = "wisp-functions";
/// The object store of uploaded sources.
const SOURCES_BUCKET: &str = "wisp-sources";
/// The bucket of cron tick claims.
const CRON_BUCKET: &str = "wisp-cron";
/// How long a claim of a cron tick is kept (ticks are at least a second
/// apart, and every host's clock is expected within this of the others).
const CRON_CLAIM_AGE: Duration = Duration::from_secs(3600);
/// How long an admin write waits for a connection still being made (just
/// after start, or while reconnecting) before it is refused.
const CONNECT_GRACE: Duration = Duration::from_secs(2);
/// How long a writer waits for its own host to apply what it wrote.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// How to reach the cluster. Credentials never appear in what the host
/// shows (`/healthz`, logs, errors): only [`ClusterConfig::shown_url`].
#[derive(Clone, Default)]
pub struct ClusterConfig {
    /// NATS server URL(s), comma-separated, e.g. `nats://10.0.0.5:4222`;
    /// `nats://USER:PASSWORD@host` gives a user and password,
    /// `nats://TOKEN@host` a token; `tls://` requires TLS.
    pub url: String,
    /// A NATS credentials file (JWT and NKey seed), if the server needs one.
    pub credentials: Option<PathBuf>,
    /// A token to authenticate with (instead of one in the URL).
    pub token: Option<String>,
    /// The CA certificate (PEM) that signed the server's; implies TLS.
    pub tls_ca: Option<PathBuf>,
    /// This host's client certificate (PEM), for servers that verify
    /// clients; needs [`ClusterConfig::tls_key`].
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub tls_key: Option<PathBuf>,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("url", &self.shown_url())
            .field("credentials", &self.credentials)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

impl ClusterConfig {
    /// The URL(s) without any user, password or token: what may be shown.
    pub fn shown_url(&self) -> String {
        servers(&self.url)
            .map(|server| server.address)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One server of a `--cluster` URL list, its credentials taken out.
struct Server {
    /// `scheme://host:port`, with no userinfo.
    address: String,
    /// `(user, password)`, or a token as `(token, None)`.
    userinfo: Option<(String, Option<String>)>,
}

/// The servers of a comma-separated URL list.
fn servers(urls: &str) -> impl Iterator<Item = Server> + '_ {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|url| {
            let (scheme, rest) = url.split_once("://").unwrap_or(("nats", url));
            let (userinfo, host) = match rest.rsplit_once('@') {
                Some((userinfo, host)) => (Some(userinfo), host),
                None => (None, rest),
            };
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Server {
                address: format!("{scheme}://{host}"),
                userinfo: userinfo.map(|info| match info.split_once(':') {
                    Some((user, password)) => (decode(user), Some(decode(password))),
                    None => (decode(info), None),
                }),
            }
        })
}

/// Why a cluster call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClusterError {
    /// Not connected, or NATS did not answer.
    #[error("the cluster's NATS server ({url}) is unreachable: {reason}")]
    Unreachable {
        /// The configured URL.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// A host's link to its cluster.
pub(crate) struct Cluster {
    config: ClusterConfig,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    functions: OnceCell<js_kv::Store>,
    sources: OnceCell<object_store::ObjectStore>,
    cron: OnceCell<js_kv::Store>,
    /// Revision of each function's record as this host last applied it.
    revisions: Mutex<HashMap<String, u64>>,
    /// The highest revision this host has applied.
    applied: tokio::sync::watch::Sender<u64>,
    /// The bucket's last revision as NATS last reported it.
    latest: AtomicU64,
    /// Whether the converger has caught up with the bucket since it
    /// (re)connected.
    synced: AtomicBool,
}

/// How this host connects to the cluster's NATS: its name, reconnects,
/// credentials and TLS.
async fn connect_options(config: &ClusterConfig) -> Result<async_nats::ConnectOptions, String> {
    let mut options = async_nats::ConnectOptions::new()
        .name("wisp")
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts as u64).min(2000))
        });
    if let Some(path) = &config.credentials {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| format!("reading the NATS credentials file {}: {e}", path.display()))?;
    }
    // The client ignores credentials in the URL: they are handed over
    // explicitly, and the URL it gets (and shows) has none.
    match servers(&config.url).find_map(|server| server.userinfo) {
        Some((user, Some(password))) => options = options.user_and_password(user, password),
        Some((token, None)) => options = options.token(token),
        None => {}
    }
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let Some(ca) = &config.tls_ca {
        options = options.require_tls(true).add_root_certificates(ca.clone());
    }
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            options = options
                .require_tls(true)
                .add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        _ => {
            return Err("a TLS client certificate needs both its certificate and its key".into());
        }
    }
    Ok(options)
}

impl Cluster {
    /// Connects (in the background: a host starts and serves its last known
    /// state even when NATS is down).
    pub(crate) async fn connect(config: ClusterConfig) -> Result<Cluster, String> {
        let options = connect_options(&config).await?;
        let shown = config.shown_url();
        let client = options
            .connect(shown.as_str())
            .await
            .map_err(|e| format!("connecting to NATS at {shown}: {e}"))?;
        let jetstream = jetstream::new(client.clone());
        Ok(Cluster {
            config,
            client,
            jetstream,
            functions: OnceCell::new(),
            sources: OnceCell::new(),
            cron: OnceCell::new(),
            revisions: Mutex::new(HashMap::new()),
            applied: tokio::sync::watch::Sender::new(0),
            latest: AtomicU64::new(0),
            synced: AtomicBool::new(false),
        })
    }

    /// A connection of its own for the bus of publishes, whose
    /// subscription holds at most `waiting` messages (the main client's
    /// would hold 65,536).
    pub(crate) async fn bus_client(&self, waiting: usize) -> Result<async_nats::Client, String> {
        let options = connect_options(&self.config)
            .await?
            .subscription_capacity(waiting);
        let shown = self.config.shown_url();
        options
            .connect(shown.as_str())
            .await
            .map_err(|e| format!("connecting to NATS at {shown}: {e}"))
    }

    /// The key-value store and call store of a host in this cluster.
    pub(crate) fn stores(
        self: &Arc<Self>,
        limits: crate::state::KvLimits,
        calls: &crate::events::calls::AsyncCalls,
    ) -> (
        Arc<dyn crate::state::KvBackend>,
        Arc<dyn crate::events::calls::CallStore>,
    ) {
        (
            Arc::new(NatsKv::new(self.clone(), limits)),
            Arc::new(ClusterCalls::new(self.clone(), calls)),
        )
    }

    /// Starts the converger: it follows the desired state and applies it
    /// through `deployer` until the deployer is dropped.
    pub(crate) fn start_converger(self: &Arc<Self>, deployer: Weak<crate::deploy::Deployer>) {
        tokio::spawn(converge::run(self.clone(), deployer));
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> ClusterError {
        ClusterError::Unreachable {
            url: self.config.shown_url(),
            reason: reason.to_string(),
        }
    }

    /// `Unreachable` unless the client is connected now: a write fails at
    /// once instead of waiting out a timeout.
    pub(crate) fn ensure_connected(&self) -> Result<(), ClusterError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(self.unreachable(format!("the connection is {state}"))),
        }
    }

    /// Like [`Cluster::ensure_connected`], but waits up to
    /// [`CONNECT_GRACE`] for a connection in progress: for admin writes,
    /// which should not fail only because the host has just started.
    pub(crate) async fn connected_for_write(&self) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + CONNECT_GRACE;
        loop {
            match self.ensure_connected() {
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                connected => return connected,
            }
        }
    }

    /// The desired-state bucket, created on first use.
    async fn functions(&self) -> Result<&js_kv::Store, ClusterError> {
        self.functions
            .get_or_try_init(|| {
                self.key_value(js_kv::Config {
                    bucket: FUNCTIONS_BUCKET.into(),
                    description: "wisp: deployed functions (desired state)".into(),
                    history: 5,
                    ..Default::default()
                })
            })
            .await
    }

    /// The cron claims bucket, created on first use.
    async fn cron(&self) -> Result<&js_kv::Store, ClusterError> {
        self.cron
            .get_or_try_init(|| {
                self.key_value(js_kv::Config {
                    bucket: CRON_BUCKET.into(),
                    description: "wisp: claims of cron ticks".into(),
                    max_age: CRON_CLAIM_AGE,
                    ..Default::default()
                })
            })
            .await
    }

    /// Key-value bucket `config.bucket`, created with `config` if missing.
    pub(crate) async fn key_value(
        &self,
        config: js_kv::Config,
    ) -> Result<js_kv::Store, ClusterError> {
        self.ensure_connected()?;
        if let Ok(store) = self.jetstream.get_key_value(&config.bucket).await {
            return Ok(store);
        }
        let bucket = config.bucket.clone();
        match self.jetstream.create_key_value(config).await {
            Ok(store) => Ok(store),
            // Another host may have created it meanwhile.
            Err(created) => self
                .jetstream
                .get_key_value(&bucket)
                .await
                .map_err(|_| self.unreachable(format!("creating bucket {bucket}: {created}"))),
        }
    }

    /// The sources object store, created on first use.
    async fn sources(&self) -> Result<&object_store::ObjectStore, ClusterError> {
        self.sources
            .get_or_try_init(|| {
                self.object_store(object_store::Config {
                    bucket: SOURCES_BUCKET.into(),
                    description: Some("wisp: uploaded .wasm by source hash".into()),
                    ..Default::default()
                })
            })
            .await
    }

    /// Object store `config.bucket`, created with `config` if missing.
    pub(crate) async fn object_store(
        &self,
        config: object_store::Config,
    ) -> Result<object_store::ObjectStore, ClusterError> {
        self.ensure_connected()?;
        if let Ok(store) = self.jetstream.get_object_store(&config.bucket).await {
            return Ok(store);
        }
        let bucket = config.bucket.clone();
        match self.jetstream.create_object_store(config).await {
            Ok(store) => Ok(store),
            // Another host may have created it meanwhile.
            Err(created) => self
                .jetstream
                .get_object_store(&bucket)
                .await
                .map_err(|_| self.unreachable(format!("creating {bucket}: {created}"))),
        }
    }

    /// Stores `wasm` (whose hash is `source`) in the object store, unless it
    /// is there already.
    pub(crate) async fn put_source(
        &self,
        source: &SourceHash,
        wasm: &Bytes,
    ) -> Result<(), ClusterError> {
        let store = self.sources().await?;
        if store.info(source.as_str()).await.is_ok() {
            return Ok(());
        }
        let mut reader = wasm.as_ref();
        store
            .put(source.as_str(), &mut reader)
            .await
            .map_err(|e| self.unreachable(format!("storing source {}: {e}", source.as_str())))?;
        Ok(())
    }

    /// The bytes of `source`, checked against its hash.
    pub(crate) async fn get_source(&self, source: &SourceHash) -> Result<Vec<u8>, ClusterError> {
        use tokio::io::AsyncReadExt;
        let store = self.sources().await?;
        let mut object = store
            .get(source.as_str())
            .await
            .map_err(|e| self.unreachable(format!("fetching source {}: {e}", source.as_str())))?;
        let mut wasm = Vec::new();
        object
            .read_to_end(&mut wasm)
            .await
            .map_err(|e| self.unreachable(format!("reading source {}: {e}", source.as_str())))?;
        if SourceHash::of(&wasm) != *source {
            return Err(self.unreachable(format!(
                "source {} came back with other bytes",
                source.as_str()
            )));
        }
        Ok(wasm)
    }

    /// The state of `bucket`'s stream as NATS has it now (a store's own
    /// status is the one cached when it was opened).
    pub(crate) async fn stream_state(
        &self,
        bucket: &js_kv::Store,
    ) -> Result<jetstream::stream::State, ClusterError> {
        let info = bucket
            .stream
            .get_info()
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(info.state)
    }

    /// The revision this host applied for function `name`.
    fn revision_of(&self, name: &str) -> Option<u64> {
        let revisions = self.revisions.lock().unwrap_or_else(|p| p.into_inner());
        revisions.get(name).copied()
    }

    /// Writes `record` if the cluster still holds the revision this host
    /// applied (or no record, for a new function). Returns the new revision;
    /// [`DeployError::Conflict`] when another write came first.
    pub(crate) async fn put_record(&self, record: &FunctionRecord) -> Result<u64, DeployError> {
        self.connected_for_write().await?;
        let bucket = self.functions().await?;
        let value = Bytes::from(serde_json::to_vec(record).map_err(|e| {
            crate::error::HostFailure::logged("encoding a function record failed", e)
        })?);
        let name = record.name.as_str();
        let written = match self.revision_of(name) {
            Some(revision) => {
                bucket
                    .update(name, value, revision)
                    .await
                    .map_err(|e| match e.kind() {
                        js_kv::UpdateErrorKind::WrongLastRevision => conflict(name),
                        _ => self.unreachable(e).into(),
                    })
            }
            None => bucket
                .create(name, value)
                .await
                .map_err(|e| match e.kind() {
                    js_kv::CreateErrorKind::AlreadyExists => conflict(name),
                    _ => self.unreachable(e).into(),
                }),
        }?;
        Ok(written)
    }

    /// Removes function `name`'s record if the cluster still holds the
    /// revision this host applied. Returns the revision of the removal.
    pub(crate) async fn remove_record(&self, name: &str) -> Result<u64, DeployError> {
        self.connected_for_write().await?;
        let bucket = self.functions().await?;
        bucket
            .delete_expect_revision(name, self.revision_of(name))
            .await
            .map_err(|e| {
                // JetStream answers a stale expected revision with "wrong
                // last sequence" (error 10071).
                if e.to_string().contains("wrong last sequence") {
                    conflict(name)
                } else {
                    DeployError::from(self.unreachable(e))
                }
            })?;
        // The removal's own revision is the bucket's last one now, or later.
        Ok(self.stream_state(bucket).await?.last_sequence)
    }

    /// Waits (a bounded time) until this host has applied `revision`.
    pub(crate) async fn settle(&self, revision: u64) {
        let mut applied = self.applied.subscribe();
        let reached = tokio::time::timeout(APPLY_WAIT, applied.wait_for(|r| *r >= revision));
        if reached.await.is_err() {
            tracing::warn!(
                revision,
                "this host has not applied its own cluster write yet; it will converge"
            );
        }
    }

    /// Waits (a bounded time) until this host has applied the bucket's
    /// last revision as NATS reports it now.
    pub(crate) async fn catch_up(&self) {
        let last = match self.functions().await {
            Ok(bucket) => self.stream_state(bucket).await.map(|s| s.last_sequence),
            Err(_) => return,
        };
        if let Ok(last) = last {
            self.latest.fetch_max(last, Ordering::AcqRel);
            self.settle(last).await;
        }
    }

    /// Claims the tick of `job` due at `due_unix` for this host; false when
    /// another host has it (or the cluster cannot be asked, so that no tick
    /// ever runs twice).
    pub(crate) async fn claim_tick(&self, job: &str, due_unix: u64) -> bool {
        let key = format!("{}.{due_unix}", blake3::hash(job.as_bytes()).to_hex());
        let claimed = match self.cron().await {
            Ok(bucket) => bucket
                .create(&key, Bytes::new())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match claimed {
            Ok(_) => true,
            Err(reason) if reason.contains("already exists") => false,
            Err(reason) => {
                tracing::warn!(
                    job,
                    "cron tick skipped: it could not be claimed in the cluster: {reason}"
                );
                false
            }
        }
    }

    /// What `/healthz` says about the cluster.
    pub(crate) fn health(&self) -> ClusterHealth {
        let applied = *self.applied.borrow();
        let latest = self.latest.load(Ordering::Acquire).max(applied);
        let connected = self.ensure_connected().is_ok();
        ClusterHealth {
            url: self.config.shown_url(),
            connected,
            synced: connected && self.synced.load(Ordering::Acquire),
            revision: applied,
            behind: latest - applied,
        }
    }
}

fn conflict(name: &str) -> DeployError {
    DeployError::Conflict(name.to_owned())
}

impl From<ClusterError> for DeployError {
    fn from(error: ClusterError) -> Self {
        DeployError::ClusterUnavailable(error.to_string())
    }
}

impl SharedState for Cluster {
    fn put_record<'a>(
        &'a self,
        record: &'a FunctionRecord,
    ) -> Shared<'a, Result<Committed, DeployError>> {
        Box::pin(async move { Cluster::put_record(self, record).await.map(Some) })
    }

    fn remove_record<'a>(&'a self, name: &'a str) -> Shared<'a, Result<Committed, DeployError>> {
        Box::pin(async move { Cluster::remove_record(self, name).await.map(Some) })
    }

    fn put_source<'a>(
        &'a self,
        source: &'a SourceHash,
        wasm: &'a Bytes,
    ) -> Shared<'a, Result<(), DeployError>> {
        Box::pin(async move {
            self.connected_for_write().await?;
            Cluster::put_source(self, source, wasm).await?;
            Ok(())
        })
    }

    fn catch_up(&self) -> Shared<'_, ()> {
        Box::pin(Cluster::catch_up(self))
    }

    fn settle(&self, revision: u64) -> Shared<'_, ()> {
        Box::pin(Cluster::settle(self, revision))
    }

    fn claim_tick<'a>(&'a self, job: &'a str, due_unix: u64) -> Shared<'a, bool> {
        Box::pin(Cluster::claim_tick(self, job, due_unix))
    }

    fn health(&self) -> Option<ClusterHealth> {
        Some(Cluster::health(self))
    }

    fn shares_buckets(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out_of_the_urls_and_never_shown() {
        let config = ClusterConfig {
            url: "nats://wisp:p%40ss@10.0.0.5:4222, tls://t0ken@10.0.0.6:4222,nats://10.0.0.7"
                .into(),
            ..ClusterConfig::default()
        };
        let shown = config.shown_url();
        assert_eq!(
            shown,
            "nats://10.0.0.5:4222,tls://10.0.0.6:4222,nats://10.0.0.7"
        );
        let userinfo: Vec<_> = servers(&config.url).map(|s| s.userinfo).collect();
        assert_eq!(userinfo[0], Some(("wisp".into(), Some("p@ss".into()))));
        assert_eq!(userinfo[1], Some(("t0ken".into(), None)));
        assert_eq!(userinfo[2], None);
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("p%40ss") && !debug.contains("t0ken"),
            "{debug}"
        );
    }
}
