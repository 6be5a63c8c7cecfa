//! Choosing the backplane, once, at start-up: this host alone (redb and
//! files in its data dir) or a cluster's NATS JetStream. This file and the
//! NATS implementation itself (`cluster/`) are the only ones that know a
//! cluster can exist.

use super::config::{HostConfig, StartError};
use crate::backplane::{Alone, SharedState};
use crate::channels::{Bus, Publisher};
use crate::deploy::Deployer;
use crate::events::calls::{CallQueue, CallStore};
use crate::state::{KvBackend, RedbStore};
use std::sync::{Arc, Weak};

/// What a host shares, or keeps to itself.
pub(super) struct Backplane {
    pub(super) shared: Arc<dyn SharedState>,
    pub(super) kv: Arc<dyn KvBackend>,
    pub(super) calls: Arc<dyn CallStore>,
    /// How publishes reach every host: `None` for a host alone.
    pub(super) bus: Option<Arc<dyn Bus>>,
    /// The cluster, whose converger starts once the deployer exists.
    #[cfg(feature = "cluster")]
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Opens the backplane `config` asks for: the cluster's, when it names
/// one, else this node's stores under the data dir.
pub(super) async fn open(config: &HostConfig) -> Result<Backplane, StartError> {
    #[cfg(feature = "cluster")]
    if let Some(cluster) = &config.cluster {
        let cluster = Arc::new(
            crate::cluster::Cluster::connect(cluster.clone())
                .await
                .map_err(StartError::Cluster)?,
        );
        let (kv, calls) = cluster.stores(config.kv_limits(), &config.async_calls());
        return Ok(Backplane {
            shared: cluster.clone(),
            kv,
            calls,
            bus: Some(cluster.clone()),
            cluster: Some(cluster),
        });
    }
    let data_error = |reason: String| StartError::DataDir {
        path: config.data_dir.clone(),
        reason,
    };
    Ok(Backplane {
        shared: Arc::new(Alone),
        kv: Arc::new(
            RedbStore::open(&config.data_dir, config.kv_limits())
                .map_err(|e| data_error(e.to_string()))?,
        ),
        calls: Arc::new(CallQueue::open(&config.data_dir).map_err(|e| data_error(e.to_string()))?),
        bus: None,
        #[cfg(feature = "cluster")]
        cluster: None,
    })
}

impl Backplane {
    /// Starts bringing the cluster's publishes to `publisher` (nothing for
    /// a host alone, whose publishes are delivered at once).
    pub(super) fn start_bus(&self, publisher: Weak<Publisher>) {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &self.cluster {
            cluster.start_bus(publisher);
        }
        #[cfg(not(feature = "cluster"))]
        let _ = publisher;
    }

    /// Starts what follows the shared state (a cluster's converger, which
    /// applies changes through `deployer`); nothing for a host alone.
    pub(super) fn start(&self, deployer: Weak<Deployer>) {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &self.cluster {
            cluster.start_converger(deployer);
        }
        #[cfg(not(feature = "cluster"))]
        let _ = deployer;
    }
}
