//! The node: a registry of the groups it hosts (open, close, status), split by concern:
//! [`routing`] (where writes and reads go, forwarding, the retry loop), [`sweeper`] (hold expiry
//! through the log), [`faults`] (test-only fault injection); membership changes are in
//! `crate::membership`, beside the rebalancer that runs them.

mod faults;
mod routing;
mod sweeper;

pub(crate) use routing::{
    FORWARD_TIMEOUT, LOCAL_ATTEMPT_TIMEOUT, RETRY_PAUSE, map_read_err, map_write_err, no_quorum, status_err,
};
pub use sweeper::SWEEP_INTERVAL;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ivory_cluster::{ClusterMeta, ClusterSecret, META_GROUP};
use ivory_raft::openraft;
use ivory_raft::{
    ApplyDigest, GroupId, NodeStorage, Raft, SharedDigest, SharedMeta, SharedShard, StorageOptions, TypeConfig,
};
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, RaftMetrics, ServerState};

use crate::error::NodeError;
use crate::network::{GroupNetworkFactory, Peers};
use crate::placement::replicas_for;

/// How long closing a group waits for its state-machine worker to finish what it was applying.
const STATE_MACHINE_STOP_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: u64,
    /// REST and gRPC share it. The node does not bind it: the binary binds it and passes the
    /// listener to [`Node::serve`].
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// id -> "host:port", including this node.
    pub peers: BTreeMap<u64, String>,
    pub shard_count: u32,
    pub replicas: usize,
    /// Shared by every node of the cluster: signs what this node sends, checks what it receives.
    pub cluster_secret: Arc<ClusterSecret>,
    /// TLS for calls to other nodes (`https`, the CA to trust, this node's certificate); `None`:
    /// plain HTTP/2.
    pub client_tls: Option<tonic::transport::ClientTlsConfig>,
    /// The cluster this node belongs to, fixed when its data directory was created: named on
    /// every call it makes, and calls naming another cluster are refused (crate::auth).
    /// `None` (a data directory from before cluster ids): nothing is named or checked.
    pub cluster_id: Option<String>,
}

impl NodeConfig {
    /// [`NodeConfig::cluster_id`] as it goes on the wire.
    ///
    /// # Errors
    /// [`NodeError::Invalid`] for an id that is not a header value.
    pub(crate) fn cluster_id_header(&self) -> Result<Option<http::HeaderValue>, NodeError> {
        self.cluster_id
            .as_deref()
            .map(|id| {
                http::HeaderValue::from_str(id)
                    .map_err(|_| NodeError::Invalid(format!("cluster id {id:?} is not printable ASCII")))
            })
            .transpose()
    }
}

/// One hosted shard as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    pub shard: u32,
    pub leader: Option<u64>,
    pub is_leader: bool,
    pub last_applied: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// On the leader: log entries each replica is behind it (from openraft's replication metrics).
    pub lag: BTreeMap<u64, u64>,
    /// Commands proposed to the shard through this node since its replica opened.
    pub client_writes: u64,
}

#[derive(Clone)]
struct Group {
    raft: Raft,
    shard: SharedShard,
    digest: SharedDigest,
    /// The state machine's liveness: its worker outlives `Raft::shutdown`.
    state_machine: tokio::sync::watch::Receiver<()>,
    /// Commands proposed through this node (see [`ShardStatus::client_writes`]).
    client_writes: Arc<AtomicU64>,
}

/// The last leader seen per group, learned from answers and hints, so that a node that does not
/// host a shard sends its requests straight to the leader.
#[derive(Default)]
struct LeaderCache(RwLock<std::collections::HashMap<GroupId, u64>>);

impl LeaderCache {
    fn get(&self, group: GroupId) -> Option<u64> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(&group).copied()
    }

    fn set(&self, group: GroupId, leader: u64) {
        if self.get(group) != Some(leader) {
            self.0.write().unwrap_or_else(|p| p.into_inner()).insert(group, leader);
        }
    }
}

pub(crate) struct Inner {
    cfg: NodeConfig,
    pub(crate) storage: NodeStorage,
    pub(crate) peers: Arc<Peers>,
    groups: RwLock<BTreeMap<GroupId, Group>>,
    /// Serialises opening and closing groups.
    registry_lock: tokio::sync::Mutex<()>,
    raft_config: Arc<openraft::Config>,
    pub(crate) shutdown_tx: tokio::sync::watch::Sender<bool>,
    /// Per-shard queues that turn concurrent proposals into one log entry.
    pub(crate) coalescer: crate::batcher::Coalescer,
    leaders: LeaderCache,
    /// The metadata group's state on this node (a follower's copy unless it leads the group).
    meta: std::sync::OnceLock<SharedMeta>,
    /// Shards whose replica move this node's rebalancer is executing.
    pub(crate) moving: std::sync::Mutex<BTreeSet<u32>>,
    /// The metadata version this node applied, refreshed every rebalancer round: carried in every
    /// answer without taking the metadata lock on the hot path.
    pub(crate) placement_version: std::sync::atomic::AtomicU64,
    /// Where each shard's writes come from, as this node's rebalancer saw it (it acts only while
    /// this node leads the metadata group).
    pub(crate) write_affinity: std::sync::Mutex<ivory_cluster::WriteAffinity>,
}

/// A node handle; cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

fn storage_err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Storage(e.to_string())
}

impl Node {
    /// Opens the node's sled Db, starts the groups it hosts and, on first start, bootstraps them.
    ///
    /// # Errors
    /// [`NodeError::Invalid`] for an inconsistent configuration, [`NodeError::Storage`] when the
    /// Db cannot be opened.
    pub async fn start(cfg: NodeConfig) -> Result<Node, NodeError> {
        Node::start_with(cfg, StorageOptions::default()).await
    }

    /// [`Node::start`] with explicit storage options (benchmarks may turn fsync off).
    ///
    /// # Errors
    /// As [`Node::start`].
    pub async fn start_with(cfg: NodeConfig, storage_options: StorageOptions) -> Result<Node, NodeError> {
        Node::launch(cfg, storage_options, true).await
    }

    /// Starts a node that joins an existing cluster: on first start it hosts nothing until
    /// [`Node::add_replica`] (called on a shard's leader) opens replicas on it.
    ///
    /// # Errors
    /// As [`Node::start`].
    pub async fn start_joining(cfg: NodeConfig, storage_options: StorageOptions) -> Result<Node, NodeError> {
        Node::launch(cfg, storage_options, false).await
    }

    async fn launch(cfg: NodeConfig, storage_options: StorageOptions, bootstrap: bool) -> Result<Node, NodeError> {
        crate::clock::init();
        if !cfg.peers.contains_key(&cfg.id) {
            return Err(NodeError::Invalid(format!("peers must include this node ({})", cfg.id)));
        }
        if cfg.replicas == 0 || cfg.shard_count == 0 {
            return Err(NodeError::Invalid("replicas and shard_count must be at least 1".into()));
        }
        let storage = NodeStorage::open_async(cfg.data_dir.clone(), storage_options).await?;
        let raft_config = ivory_raft::raft_config("ivory").map_err(|e| NodeError::Invalid(e.to_string()))?;
        let (shutdown_tx, _) = tokio::sync::watch::channel(false);
        let cluster_id = cfg.cluster_id_header()?;
        let peers = Arc::new(Peers::new(
            cfg.cluster_secret.clone(),
            cluster_id,
            cfg.client_tls.clone(),
        ));
        let node = Node {
            inner: Arc::new(Inner {
                cfg,
                storage,
                peers,
                groups: RwLock::new(BTreeMap::new()),
                registry_lock: tokio::sync::Mutex::new(()),
                raft_config,
                shutdown_tx,
                coalescer: Default::default(),
                leaders: LeaderCache::default(),
                meta: std::sync::OnceLock::new(),
                moving: Default::default(),
                placement_version: Default::default(),
                write_affinity: Default::default(),
            }),
        };
        if let Err(e) = node.open_hosted_groups(bootstrap).await {
            // Stop whatever groups did start, so that nothing keeps running behind the error.
            node.shutdown().await;
            return Err(e);
        }
        node.spawn_sweeper();
        crate::rebalancer::spawn(&node);
        node.spawn_address_announce();
        Ok(node)
    }

    async fn open_hosted_groups(&self, bootstrap: bool) -> Result<(), NodeError> {
        if self.inner.storage.bootstrapped()? {
            for group in self.inner.storage.hosted_groups()? {
                self.open_group(group).await?;
            }
            // Every node follows the metadata group (data dirs from before it existed open it empty).
            self.open_group(META_GROUP).await?;
            if bootstrap {
                self.spawn_meta_init();
            }
            Ok(())
        } else if bootstrap {
            self.bootstrap().await
        } else {
            // A joining node waits, with an empty metadata replica, to be added as a learner.
            self.open_group(META_GROUP).await?;
            Ok(self.inner.storage.set_bootstrapped().await?)
        }
    }

    async fn bootstrap(&self) -> Result<(), NodeError> {
        let cfg = &self.inner.cfg;
        // The metadata group: every initial member votes.
        let meta_raft = self.open_group(META_GROUP).await?;
        if cfg.peers.keys().next() == Some(&cfg.id) {
            let members: BTreeMap<u64, BasicNode> = cfg
                .peers
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect();
            if let Err(e) = meta_raft.initialize(members).await {
                tracing::info!(error = %e, "metadata group initialize skipped");
            }
        }
        for shard in 0..cfg.shard_count {
            let replicas = replicas_for(shard, &cfg.peers, cfg.replicas);
            if !replicas.contains(&cfg.id) {
                continue;
            }
            let raft = self.open_group(shard).await?;
            // The initializing replica becomes the first leader: spread them from the start.
            if replicas.get(shard as usize % replicas.len().max(1)) == Some(&cfg.id) {
                let members: BTreeMap<u64, BasicNode> = replicas
                    .iter()
                    .filter_map(|id| cfg.peers.get(id).map(|addr| (*id, BasicNode { addr: addr.clone() })))
                    .collect();
                if let Err(e) = raft.initialize(members).await {
                    // "Already initialized" after a crash between initialize and the marker.
                    tracing::info!(shard, error = %e, "initialize skipped");
                }
            }
        }
        self.inner.storage.set_bootstrapped().await?;
        self.spawn_meta_init();
        Ok(())
    }

    pub fn id(&self) -> u64 {
        self.inner.cfg.id
    }

    pub fn config(&self) -> &NodeConfig {
        &self.inner.cfg
    }

    /// Starts a (possibly empty) replica of `shard` on this node, if not running yet.
    ///
    /// # Errors
    /// [`NodeError::Storage`] on sled errors; [`NodeError::Unavailable`] while shutting down.
    pub async fn open_group(&self, shard: u32) -> Result<Raft, NodeError> {
        let _guard = self.inner.registry_lock.lock().await;
        if *self.inner.shutdown_tx.borrow() {
            return Err(NodeError::Unavailable("node is shutting down".into()));
        }
        if let Some(g) = self.group(shard) {
            return Ok(g.raft);
        }
        let (log, sm) = self.inner.storage.open_group(shard).await?;
        if shard == META_GROUP {
            let _ = self.inner.meta.set(sm.meta());
        }
        let shard_state = sm.shard();
        let digest = sm.digest();
        let snapshot_trigger = sm.snapshot_trigger();
        let state_machine = sm.alive();
        let network = GroupNetworkFactory {
            group: shard,
            id: self.id(),
            peers: self.inner.peers.clone(),
        };
        let raft = Raft::new(self.id(), self.inner.raft_config.clone(), network, log, sm)
            .await
            .map_err(storage_err)?;
        let _ = snapshot_trigger.set(raft.clone());
        spawn_leader_gauge(shard, self.id(), raft.clone());
        let group = Group {
            raft: raft.clone(),
            shard: shard_state,
            digest,
            state_machine,
            client_writes: Arc::default(),
        };
        self.groups_write().insert(shard, group);
        Ok(raft)
    }

    /// Stops this node's replica of `shard` and drops its storage (after it was removed).
    ///
    /// # Errors
    /// [`NodeError::Storage`] on sled errors.
    pub async fn close_group(&self, shard: u32) -> Result<(), NodeError> {
        if shard == META_GROUP {
            return Err(NodeError::Invalid("the metadata group is never closed".into()));
        }
        let _guard = self.inner.registry_lock.lock().await;
        let Some(group) = self.groups_write().remove(&shard) else {
            return Ok(());
        };
        if let Err(e) = group.raft.shutdown().await {
            tracing::warn!(shard, error = %e, "raft shutdown failed");
        }
        // The state-machine worker may still be applying entries it reads from the log.
        let mut alive = group.state_machine.clone();
        let stopped = async { while alive.changed().await.is_ok() {} };
        if tokio::time::timeout(STATE_MACHINE_STOP_WAIT, stopped).await.is_err() {
            tracing::warn!(
                shard,
                "the state machine did not stop in time; dropping the storage anyway"
            );
        }
        drop(group);
        self.inner.storage.drop_group(shard).await?;
        Ok(())
    }

    fn groups_write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<GroupId, Group>> {
        self.inner.groups.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The groups this node hosts, copied out of the lock (a `Group` is a few handles).
    fn groups_snapshot(&self) -> Vec<(GroupId, Group)> {
        self.inner
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Counts `commands` proposed to `shard` through this node, when it hosts the shard.
    pub(crate) fn note_client_writes(&self, shard: u32, commands: usize) {
        if let Some(group) = self.inner.groups.read().unwrap_or_else(|p| p.into_inner()).get(&shard) {
            group.client_writes.fetch_add(commands as u64, Ordering::Relaxed);
        }
    }

    fn group(&self, shard: u32) -> Option<Group> {
        self.inner
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&shard)
            .cloned()
    }

    pub(crate) fn raft(&self, shard: u32) -> Result<Raft, NodeError> {
        self.group(shard).map(|g| g.raft).ok_or_else(|| self.not_hosted(shard))
    }

    pub(crate) fn metrics(raft: &Raft) -> RaftMetrics<TypeConfig> {
        raft.metrics().borrow_watched().clone()
    }

    /// The placement version of this node's copy of the cluster metadata (at most ~0.5 s old).
    pub fn placement_version(&self) -> u64 {
        self.inner.placement_version.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Notes a peer's placement version: a newer one means this node's copy lags (it catches up
    /// by itself as the metadata group replicates; meanwhile hints steer requests).
    fn note_peer_version(&self, peer_version: u64) {
        if peer_version > self.placement_version() {
            metrics::counter!("ivory_placement_stale_total").increment(1);
        }
    }

    /// Reads this node's copy of the cluster metadata (`None` before the metadata group opened).
    pub fn with_meta<R>(&self, f: impl FnOnce(&ClusterMeta) -> R) -> Option<R> {
        let meta = self.inner.meta.get()?;
        let guard = meta.read().unwrap_or_else(|p| p.into_inner());
        Some(f(&guard))
    }

    /// Per hosted shard: leader, whether this node leads it, last applied index, members.
    /// The metadata group is not a shard: see [`Node::meta_status`].
    pub fn shard_status(&self) -> Vec<ShardStatus> {
        self.group_status(|g| g != META_GROUP)
    }

    /// This node's view of the metadata group (`None` before it opened).
    pub fn meta_status(&self) -> Option<ShardStatus> {
        self.group_status(|g| g == META_GROUP).into_iter().next()
    }

    fn group_status(&self, include: impl Fn(GroupId) -> bool) -> Vec<ShardStatus> {
        let mut groups = self.groups_snapshot();
        groups.retain(|(k, _)| include(*k));
        groups
            .into_iter()
            .map(|(shard, g)| {
                let m = Node::metrics(&g.raft);
                let membership = m.membership_config.membership();
                let voters: Vec<u64> = membership.voter_ids().collect();
                let learners: Vec<u64> = membership.learner_ids().collect();
                let last_log = m.last_log_index.unwrap_or(0);
                let lag = m
                    .replication
                    .as_ref()
                    .map(|r| {
                        r.iter()
                            .map(|(id, matched)| {
                                (*id, last_log.saturating_sub(matched.as_ref().map_or(0, |l| l.index())))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ShardStatus {
                    shard,
                    leader: m.current_leader,
                    is_leader: m.state == ServerState::Leader,
                    last_applied: m.last_applied.as_ref().map(|l| l.index()),
                    voters,
                    learners,
                    lag,
                    client_writes: g.client_writes.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// The hash chain over every batch this replica applied, in order (see [`ApplyDigest`]).
    pub fn apply_digest(&self, shard: u32) -> Option<ApplyDigest> {
        let group = self.group(shard)?;
        let digest = *group.digest.lock().unwrap_or_else(|p| p.into_inner());
        Some(digest)
    }

    /// The Raft handle of a hosted shard, for tests and tools that wait on metrics.
    pub fn raft_handle(&self, shard: u32) -> Option<Raft> {
        self.group(shard).map(|g| g.raft)
    }

    /// Stops every group and the gRPC server started by [`Node::serve`]; flushes storage.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown_tx.send(true);
        self.inner.coalescer.close();
        let groups: Vec<(GroupId, Group)> = std::mem::take(&mut *self.groups_write()).into_iter().collect();
        for (shard, group) in groups {
            if let Err(e) = group.raft.shutdown().await {
                tracing::warn!(shard, error = %e, "raft shutdown failed");
            }
        }
        if let Err(e) = self.inner.storage.flusher().flush().await {
            tracing::warn!(error = %e, "final flush failed");
        }
    }
}

/// Keeps the `ivory_raft_is_leader{shard}` gauge in step with the group's state (the server
/// metrics change with the role; the whole metrics with every entry).
fn spawn_leader_gauge(shard: u32, me: u64, raft: Raft) {
    let mut rx = raft.server_metrics();
    drop(raft);
    tokio::spawn(async move {
        let gauge = metrics::gauge!("ivory_raft_is_leader", "shard" => shard.to_string(), "node" => me.to_string());
        loop {
            let leading = rx.borrow_watched().state == ServerState::Leader;
            gauge.set(if leading { 1.0 } else { 0.0 });
            if rx.changed().await.is_err() {
                gauge.set(0.0);
                break;
            }
        }
    });
}
