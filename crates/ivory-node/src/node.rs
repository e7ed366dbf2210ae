//! The node: a registry of the groups it hosts, the write and read paths, membership changes.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ivory_cluster::{ClusterMeta, ClusterSecret, META_GROUP};
use ivory_core::{BATCH_COMMANDS_MAX, Batch, CmdResult, Command, ReadRequest, ReadResponse};
use ivory_raft::openraft;
use ivory_raft::{
    ApplyDigest, GroupEntry, GroupId, GroupReply, NodeStorage, Raft, SharedDigest, SharedMeta, SharedShard,
    StorageOptions, TypeConfig,
};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::raft::ReadPolicy;
use openraft::{BasicNode, RaftMetrics, ServerState};

use crate::error::{NO_QUORUM_RETRY_AFTER_MS, NodeError};
use crate::network::{
    FaultSettings, GRPC_MESSAGE_MAX_BYTES, GroupNetworkFactory, NetworkFaults, PeerChannel, Peers, decode, encode,
};
use crate::placement::replicas_for;
use crate::proto;
use crate::proto::admin_client::AdminClient;
use crate::proto::shard_client::ShardClient;

/// A propose or read keeps retrying retryable failures (no quorum yet, leader moved) this long.
const RETRY_FOR: Duration = Duration::from_secs(2);
/// Pause between retries.
const RETRY_PAUSE: Duration = Duration::from_millis(25);
/// One forwarded request to another node.
pub(crate) const FORWARD_TIMEOUT: Duration = Duration::from_secs(6);
/// One local write or read-index round; a leader without quorum would otherwise wait forever.
/// A write that timed out may still commit: retrying is safe because ivory-core deduplicates
/// event ids.
const LOCAL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Membership changes wait for a learner to catch up; bounded so that a dead learner fails the call.
pub(crate) const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a leader checks its shards for holds due (DESIGN.md §3, Holds): an expired hold's
/// stock is back within this interval (plus one log write).
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

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
}

#[derive(Clone)]
struct Group {
    raft: Raft,
    shard: SharedShard,
    digest: SharedDigest,
}

/// The last leader seen per group, learned from answers and hints, so that a node that does not
/// host a shard sends its requests straight to the leader.
#[derive(Default)]
pub(crate) struct LeaderCache(RwLock<std::collections::HashMap<GroupId, u64>>);

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
    pub(crate) cfg: NodeConfig,
    storage: NodeStorage,
    pub(crate) peers: Arc<Peers>,
    groups: RwLock<BTreeMap<GroupId, Group>>,
    /// Serialises opening and closing groups.
    registry_lock: tokio::sync::Mutex<()>,
    raft_config: Arc<openraft::Config>,
    pub(crate) shutdown_tx: tokio::sync::watch::Sender<bool>,
    /// Per-shard queues that turn concurrent proposals into one log entry.
    pub(crate) coalescer: crate::batcher::Coalescer,
    pub(crate) leaders: LeaderCache,
    /// The metadata group's state on this node (a follower's copy unless it leads the group).
    pub(crate) meta: std::sync::OnceLock<SharedMeta>,
    /// Shards whose replica move this node's rebalancer is executing.
    pub(crate) moving: std::sync::Mutex<BTreeSet<u32>>,
    /// The metadata version this node applied, refreshed every rebalancer round: carried in every
    /// answer without taking the metadata lock on the hot path.
    pub(crate) placement_version: std::sync::atomic::AtomicU64,
}

/// A node handle; cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

fn storage_err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Storage(e.to_string())
}

/// A "forward to leader" answer: a hint to follow, or (no leader yet, or a new leader that has not
/// heard from a quorum) a retryable no-quorum.
fn forward_err(shard: u32, me: u64, leader_id: Option<u64>) -> NodeError {
    match leader_id {
        Some(l) if l != me => NodeError::NotLeader {
            shard,
            leader_hint: Some(l),
        },
        _ => no_quorum(shard),
    }
}

fn no_quorum(shard: u32) -> NodeError {
    NodeError::NoQuorum {
        shard,
        retry_after_ms: NO_QUORUM_RETRY_AFTER_MS,
    }
}

fn map_write_err(shard: u32, me: u64, e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> NodeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => forward_err(shard, me, f.leader_id),
        // Commit status unknown: retrying is safe because ivory-core deduplicates by event id.
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => no_quorum(shard),
        // A membership change still committing (often: a new leader has not committed its term's
        // first entry yet): the same change succeeds a moment later.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            openraft::error::ChangeMembershipError::InProgress(_),
        )) => no_quorum(shard),
        RaftError::APIError(e) => NodeError::Invalid(e.to_string()),
        RaftError::Fatal(e) => NodeError::Unavailable(format!("shard {shard}: {e}")),
    }
}

fn map_read_err(shard: u32, me: u64, e: RaftError<TypeConfig, LinearizableReadError<TypeConfig>>) -> NodeError {
    match e {
        RaftError::APIError(LinearizableReadError::ForwardToLeader(f)) => forward_err(shard, me, f.leader_id),
        RaftError::APIError(LinearizableReadError::QuorumNotEnough(_)) => no_quorum(shard),
        RaftError::Fatal(e) => NodeError::Unavailable(format!("shard {shard}: {e}")),
    }
}

fn status_err(e: tonic::Status) -> NodeError {
    NodeError::Unavailable(e.to_string())
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
        let peers = Arc::new(Peers::new(cfg.cluster_secret.clone(), cfg.client_tls.clone()));
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
            }),
        };
        if let Err(e) = node.open_hosted_groups(bootstrap).await {
            // Stop whatever groups did start, so that nothing keeps running behind the error.
            node.shutdown().await;
            return Err(e);
        }
        node.spawn_sweeper();
        crate::rebalancer::spawn(&node);
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
        drop(group);
        self.inner.storage.drop_group(shard).await?;
        Ok(())
    }

    fn groups_write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<GroupId, Group>> {
        self.inner.groups.write().unwrap_or_else(|p| p.into_inner())
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

    fn metrics(raft: &Raft) -> RaftMetrics<TypeConfig> {
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

    /// The address of node `id`: from the group's membership, else the cluster metadata, else the
    /// peer list the node started with.
    pub(crate) fn addr_of(&self, shard: u32, id: u64) -> Option<String> {
        if let Some(g) = self.group(shard) {
            let m = Node::metrics(&g.raft);
            if let Some(n) = m.membership_config.membership().get_node(&id) {
                return Some(n.addr.clone());
            }
        }
        if let Some(Some(addr)) = self.with_meta(|m| m.addr_of(id).map(str::to_string)) {
            return Some(addr);
        }
        self.inner.cfg.peers.get(&id).cloned()
    }

    /// The replicas of a shard this node does not host: by the cluster metadata once it is
    /// initialized, else by the ring over the initial members.
    fn placed_replicas(&self, shard: u32) -> Vec<u64> {
        let placed = self.with_meta(|m| m.placement.get(&shard).cloned()).flatten();
        placed.unwrap_or_else(|| replicas_for(shard, &self.inner.cfg.peers, self.inner.cfg.replicas))
    }

    /// The answer for a request about a shard this node does not host: where to go instead.
    pub(crate) fn not_hosted(&self, shard: u32) -> NodeError {
        if shard != META_GROUP && shard >= self.inner.cfg.shard_count {
            return NodeError::UnknownShard(shard);
        }
        let hint = self
            .inner
            .leaders
            .get(shard)
            .or_else(|| self.placed_replicas(shard).first().copied())
            .filter(|l| *l != self.id());
        match hint {
            Some(l) => NodeError::NotLeader {
                shard,
                leader_hint: Some(l),
            },
            None => NodeError::Unavailable(format!("shard {shard} is not hosted on node {}", self.id())),
        }
    }

    fn channel_to(&self, shard: u32, id: u64) -> Result<PeerChannel, NodeError> {
        let addr = self
            .addr_of(shard, id)
            .ok_or_else(|| NodeError::Unavailable(format!("no address for node {id}")))?;
        self.inner.peers.channel(&addr).map_err(NodeError::Unavailable)
    }

    /// Where to send a request for `shard` first: the known leader, else this node if it hosts
    /// the shard, else the last leader seen, else the first replica by placement.
    fn first_target(&self, shard: u32) -> u64 {
        if let Some(g) = self.group(shard) {
            return Node::metrics(&g.raft).current_leader.unwrap_or(self.id());
        }
        if let Some(leader) = self.inner.leaders.get(shard) {
            return leader;
        }
        self.placed_replicas(shard).first().copied().unwrap_or(self.id())
    }

    /// The next node to try after `failed` did not answer.
    fn next_target(&self, shard: u32, failed: u64) -> u64 {
        let mut candidates: Vec<u64> = match self.group(shard) {
            Some(g) => Node::metrics(&g.raft)
                .membership_config
                .membership()
                .voter_ids()
                .collect(),
            None => self.placed_replicas(shard),
        };
        candidates.sort_unstable();
        let pos = candidates.iter().position(|c| *c == failed).map_or(0, |p| p + 1);
        candidates
            .get(pos % candidates.len().max(1))
            .copied()
            .unwrap_or(self.id())
    }

    /// Runs `attempt(target)` until it succeeds, fails for good, or [`RETRY_FOR`] passes:
    /// follows leader hints, waits out missing quorums, moves on from unreachable nodes.
    pub(crate) async fn with_retries<T, F, Fut>(&self, shard: u32, mut attempt: F) -> Result<T, NodeError>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = Result<T, NodeError>>,
    {
        let deadline = Instant::now() + RETRY_FOR;
        let mut target = self.first_target(shard);
        let mut hops_without_pause = 0;
        loop {
            let err = match attempt(target).await {
                Ok(v) => {
                    if target != self.id() {
                        self.inner.leaders.set(shard, target);
                    }
                    return Ok(v);
                }
                Err(e) => e,
            };
            if let NodeError::NotLeader {
                leader_hint: Some(l), ..
            } = &err
            {
                self.inner.leaders.set(shard, *l);
            }
            if !err.is_retryable() || Instant::now() >= deadline {
                return Err(err);
            }
            let next = match &err {
                NodeError::NotLeader {
                    leader_hint: Some(l), ..
                } => *l,
                NodeError::Unavailable(_) => self.next_target(shard, target),
                _ => self.first_target(shard),
            };
            // Follow a fresh hint at once; pause otherwise so that a leaderless group or two
            // nodes pointing at each other during an election are not hammered.
            hops_without_pause += 1;
            if next == target || hops_without_pause > 2 || !matches!(err, NodeError::NotLeader { .. }) {
                tokio::time::sleep(RETRY_PAUSE).await;
                hops_without_pause = 0;
            }
            target = next;
        }
    }

    /// Proposes `commands` to `shard` as one log entry and returns their results in order.
    /// Forwards to the leader when this node does not lead the shard.
    ///
    /// # Errors
    /// [`NodeError::NoQuorum`] / [`NodeError::Unavailable`] (retryable) when no leader could take the
    /// write within about 2 s; [`NodeError::Invalid`] for an oversized batch. An empty batch is
    /// the hold-expiry sweep: it only stamps the leader's time, which expires the holds due.
    pub async fn propose(&self, shard: u32, commands: Vec<Command>) -> Result<Vec<CmdResult>, NodeError> {
        if commands.len() > BATCH_COMMANDS_MAX {
            return Err(NodeError::Invalid(format!(
                "a proposal holds 0..={BATCH_COMMANDS_MAX} commands, got {}",
                commands.len()
            )));
        }
        // Encoded only if the write must be forwarded: most proposals stay on the leader.
        let encoded = std::sync::OnceLock::new();
        let commands = &commands;
        let encoded = &encoded;
        self.with_retries(shard, |target| async move {
            if target == self.id() {
                self.propose_coalesced(shard, commands.clone()).await
            } else {
                let bytes = match encoded.get() {
                    Some(bytes) => bytes,
                    None => {
                        let bytes = encode(commands).map_err(NodeError::Invalid)?;
                        encoded.get_or_init(|| bytes)
                    }
                };
                self.forward_propose(target, shard, bytes.clone()).await
            }
        })
        .await
    }

    /// One attempt at this node: the leader stamps the batch and appends it.
    pub(crate) async fn propose_local(&self, shard: u32, commands: Vec<Command>) -> Result<Vec<CmdResult>, NodeError> {
        if shard == META_GROUP {
            return Err(NodeError::Invalid("stock commands go to shard groups".into()));
        }
        // Never below the shard's clock, never a jump far ahead (crate::clock).
        let shard_clock = self
            .group(shard)
            .and_then(|g| g.shard.read().ok().map(|s| s.clock_ms()))
            .unwrap_or(0);
        let batch = GroupEntry::Shard(Batch {
            ts_ms: crate::clock::stamp_ms(shard_clock),
            commands,
        });
        match self.write_local(shard, batch).await? {
            GroupReply::Shard(results) => Ok(results),
            GroupReply::Meta(_) => Err(NodeError::Storage(format!("shard {shard} answered as metadata"))),
        }
    }

    /// Appends one entry to a group this node leads and waits until it is applied.
    pub(crate) async fn write_local(&self, group: GroupId, entry: GroupEntry) -> Result<GroupReply, NodeError> {
        let raft = self.raft(group)?;
        match tokio::time::timeout(LOCAL_ATTEMPT_TIMEOUT, raft.client_write(entry)).await {
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(e)) => Err(map_write_err(group, self.id(), e)),
            Err(_) => Err(no_quorum(group)),
        }
    }

    async fn forward_propose(&self, target: u64, shard: u32, commands: Vec<u8>) -> Result<Vec<CmdResult>, NodeError> {
        let results = self.forward_propose_bytes(target, shard, commands).await?;
        decode(&results).map_err(NodeError::Unavailable)
    }

    /// Sends encoded commands (or an encoded metadata command) to `target`'s Propose.
    pub(crate) async fn forward_propose_bytes(
        &self,
        target: u64,
        shard: u32,
        commands: Vec<u8>,
    ) -> Result<Vec<u8>, NodeError> {
        let mut client = ShardClient::new(self.channel_to(shard, target)?)
            .max_decoding_message_size(GRPC_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(GRPC_MESSAGE_MAX_BYTES);
        let request = proto::ProposeRequest {
            group_id: shard,
            commands,
        };
        let reply = tokio::time::timeout(FORWARD_TIMEOUT, client.propose(request))
            .await
            .map_err(|_| NodeError::Unavailable(format!("node {target} did not answer in time")))?
            .map_err(status_err)?
            .into_inner();
        self.note_peer_version(reply.placement_version);
        if let Some(e) = reply.error {
            return Err(NodeError::from_proto(shard, e));
        }
        Ok(reply.results)
    }

    /// A linearizable read of `shard` (read-index through the leader).
    ///
    /// # Errors
    /// As [`Node::propose`].
    pub async fn read(&self, shard: u32, req: ReadRequest) -> Result<ReadResponse, NodeError> {
        let encoded = encode(&req).map_err(NodeError::Invalid)?;
        let req = &req;
        let encoded = &encoded;
        self.with_retries(shard, |target| async move {
            if target == self.id() {
                self.read_local(shard, req).await
            } else {
                self.forward_read(target, shard, encoded.clone()).await
            }
        })
        .await
    }

    pub(crate) async fn read_local(&self, shard: u32, req: &ReadRequest) -> Result<ReadResponse, NodeError> {
        let group = self.group(shard).ok_or_else(|| self.not_hosted(shard))?;
        tokio::time::timeout(
            LOCAL_ATTEMPT_TIMEOUT,
            group.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await
        .map_err(|_| no_quorum(shard))?
        .map_err(|e| map_read_err(shard, self.id(), e))?;
        // Reads never count an expired hold: a leader with a hold due sweeps first.
        if hold_due(&group) {
            self.propose_local(shard, Vec::new()).await?;
        }
        let state = group
            .shard
            .read()
            .map_err(|_| NodeError::Storage("shard lock poisoned".into()))?;
        Ok(state.read(req))
    }

    /// One round of the expiry sweeper: every shard this node leads with a hold due gets an
    /// empty batch (the sweep). Costs a metrics borrow and a read lock per idle shard.
    async fn sweep_due(&self) {
        let groups: Vec<(GroupId, Group)> = self
            .inner
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (shard, group) in groups {
            let leading = group.raft.metrics().borrow_watched().state == ServerState::Leader;
            if leading && hold_due(&group) {
                match self.propose_local(shard, Vec::new()).await {
                    Ok(_) => metrics::counter!("ivory_hold_sweeps_total").increment(1),
                    Err(e) => tracing::debug!(shard, error = %e, "expiry sweep not applied"),
                }
            }
        }
    }

    /// Starts the expiry sweeper (every [`SWEEP_INTERVAL`]); it stops at [`Node::shutdown`].
    fn spawn_sweeper(&self) {
        // A weak handle: a node dropped without shutdown does not live on in its sweeper.
        let weak = Arc::downgrade(&self.inner);
        let mut shutdown = self.inner.shutdown_tx.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let Some(inner) = weak.upgrade() else { break };
                        Node { inner }.sweep_due().await;
                    }
                    _ = shutdown.changed() => break,
                }
                if *shutdown.borrow() {
                    break;
                }
            }
        });
    }

    async fn forward_read(&self, target: u64, shard: u32, request: Vec<u8>) -> Result<ReadResponse, NodeError> {
        let mut client = ShardClient::new(self.channel_to(shard, target)?)
            .max_decoding_message_size(GRPC_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(GRPC_MESSAGE_MAX_BYTES);
        let reply = tokio::time::timeout(
            FORWARD_TIMEOUT,
            client.read(proto::ReadRequest {
                group_id: shard,
                request,
            }),
        )
        .await
        .map_err(|_| NodeError::Unavailable(format!("node {target} did not answer in time")))?
        .map_err(status_err)?
        .into_inner();
        self.note_peer_version(reply.placement_version);
        if let Some(e) = reply.error {
            return Err(NodeError::from_proto(shard, e));
        }
        decode(&reply.response).map_err(NodeError::Unavailable)
    }

    /// The state of this node's replica of `shard`, without a read-index round (tests, admin).
    ///
    /// # Errors
    /// [`NodeError::UnknownShard`] when this node does not host it.
    pub fn local_read(&self, shard: u32, req: &ReadRequest) -> Result<ReadResponse, NodeError> {
        let group = self.group(shard).ok_or(NodeError::UnknownShard(shard))?;
        let state = group
            .shard
            .read()
            .map_err(|_| NodeError::Storage("shard lock poisoned".into()))?;
        Ok(state.read(req))
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
        let groups: Vec<(GroupId, Group)> = self
            .inner
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(k, _)| include(**k))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
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

    /// Fault injection for tests: stop sending anything (Raft, forwards, admin) to `peers`.
    /// Isolating a node takes a call on it (all others) and on each other node (it).
    pub fn isolate(&self, peers: &[u64]) {
        let mut addrs: Vec<String> = peers
            .iter()
            .filter_map(|id| self.inner.cfg.peers.get(id).cloned())
            .collect();
        let groups: Vec<Group> = self
            .inner
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for g in groups {
            let m = Node::metrics(&g.raft);
            for id in peers {
                if let Some(n) = m.membership_config.membership().get_node(id) {
                    addrs.push(n.addr.clone());
                }
            }
        }
        self.inner.peers.block(addrs);
    }

    /// Ends [`Node::isolate`].
    pub fn heal(&self) {
        self.inner.peers.unblock_all();
    }

    /// Fault injection for tests: replaces every fault this node injects (dropped addresses and
    /// a delay on everything it sends to other nodes, a slow disk, a failed fsync, a clock
    /// ahead). The default heals all.
    pub fn set_faults(&self, faults: FaultSettings) {
        self.inner
            .storage
            .flusher()
            .set_delay(Duration::from_millis(faults.slow_disk_ms));
        self.inner.storage.flusher().fail_next_sync(faults.fail_sync);
        crate::clock::set_ahead_ms(faults.clock_ahead_ms);
        self.inner.peers.faults().set(NetworkFaults {
            drop: faults.drop,
            delay_ms: faults.delay_ms,
        });
    }

    /// The faults set by [`Node::set_faults`] or [`Node::isolate`].
    pub fn faults(&self) -> FaultSettings {
        let network = self.inner.peers.faults().get();
        FaultSettings {
            drop: network.drop,
            delay_ms: network.delay_ms,
            slow_disk_ms: u64::try_from(self.inner.storage.flusher().delay().as_millis()).unwrap_or(u64::MAX),
            fail_sync: self.inner.storage.flusher().fails_next_sync(),
            clock_ahead_ms: crate::clock::ahead_ms(),
        }
    }

    /// Flush + fsync rounds of this node's storage so far (group commit: one serves many writes).
    pub fn fsync_count(&self) -> u64 {
        self.inner.storage.flusher().flush_count()
    }

    /// The Raft handle of a hosted shard, for tests and tools that wait on metrics.
    pub fn raft_handle(&self, shard: u32) -> Option<Raft> {
        self.group(shard).map(|g| g.raft)
    }

    /// Adds `node` (at `addr`) to `shard`: opens an empty replica there, adds it as a learner,
    /// waits until it caught up (by log or snapshot), then promotes it to voter.
    ///
    /// # Errors
    /// [`NodeError::Unavailable`] when `node` cannot be reached; leadership errors as for propose.
    pub async fn add_replica(&self, shard: u32, node: u64, addr: String) -> Result<(), NodeError> {
        let addr = &addr;
        retry_membership(|| {
            self.with_retries(shard, |target| async move {
                if target == self.id() {
                    self.add_replica_local(shard, node, addr.clone()).await
                } else {
                    let mut client = AdminClient::new(self.channel_to(shard, target)?);
                    let request = proto::AddReplicaRequest {
                        group_id: shard,
                        node_id: node,
                        addr: addr.clone(),
                    };
                    admin_outcome(shard, target, MEMBERSHIP_TIMEOUT, client.add_replica(request)).await
                }
            })
        })
        .await
    }

    /// The Raft handle and metrics of a shard this node leads; a hint to the leader otherwise.
    fn leading(&self, shard: u32) -> Result<(Raft, RaftMetrics<TypeConfig>), NodeError> {
        let raft = self.raft(shard)?;
        let m = Node::metrics(&raft);
        if m.state != ServerState::Leader {
            return Err(NodeError::NotLeader {
                shard,
                leader_hint: m.current_leader.filter(|l| *l != self.id()),
            });
        }
        Ok((raft, m))
    }

    pub(crate) async fn add_replica_local(&self, shard: u32, node: u64, addr: String) -> Result<(), NodeError> {
        let (raft, m) = self.leading(shard)?;
        let membership = m.membership_config.membership();
        let mut voters: BTreeSet<u64> = membership.voter_ids().collect();
        // In a joint config (a change cut short by a crash) the union is listed: finish it below.
        let uniform = membership.get_joint_config().len() == 1;
        if voters.contains(&node) && uniform {
            return Ok(());
        }
        if node != self.id() {
            self.remote_open_group(shard, &addr).await?;
        }
        let timeout = |_| NodeError::Unavailable(format!("node {node} did not catch up in time"));
        tokio::time::timeout(MEMBERSHIP_TIMEOUT, raft.add_learner(node, BasicNode { addr }, true))
            .await
            .map_err(timeout)?
            .map_err(|e| map_write_err(shard, self.id(), e))?;
        voters.insert(node);
        tokio::time::timeout(MEMBERSHIP_TIMEOUT, raft.change_membership(voters, false))
            .await
            .map_err(timeout)?
            .map_err(|e| map_write_err(shard, self.id(), e))?;
        Ok(())
    }

    async fn remote_open_group(&self, shard: u32, addr: &str) -> Result<(), NodeError> {
        let channel = self.inner.peers.channel(addr).map_err(NodeError::Unavailable)?;
        let reply = tokio::time::timeout(
            FORWARD_TIMEOUT,
            AdminClient::new(channel).open_group(proto::GroupRequest { group_id: shard }),
        )
        .await
        .map_err(|_| NodeError::Unavailable(format!("{addr} did not answer in time")))?
        .map_err(status_err)?
        .into_inner();
        reply.error.map_or(Ok(()), |e| Err(NodeError::from_proto(shard, e)))
    }

    /// Removes `node` from `shard`; when `node` leads the shard, leadership moves away first.
    /// The removed node is then told to stop its replica and drop its storage (best effort).
    ///
    /// # Errors
    /// [`NodeError::Invalid`] when removing the last voter; leadership errors as for propose.
    pub async fn remove_replica(&self, shard: u32, node: u64) -> Result<(), NodeError> {
        retry_membership(|| {
            self.with_retries(shard, |target| async move {
                if target == self.id() {
                    self.remove_replica_local(shard, node).await
                } else {
                    let mut client = AdminClient::new(self.channel_to(shard, target)?);
                    let request = proto::RemoveReplicaRequest {
                        group_id: shard,
                        node_id: node,
                    };
                    admin_outcome(shard, target, MEMBERSHIP_TIMEOUT, client.remove_replica(request)).await
                }
            })
        })
        .await
    }

    pub(crate) async fn remove_replica_local(&self, shard: u32, node: u64) -> Result<(), NodeError> {
        let (raft, m) = self.leading(shard)?;
        let membership = m.membership_config.membership();
        let mut voters: BTreeSet<u64> = membership.voter_ids().collect();
        let is_learner = membership.learner_ids().any(|l| l == node);
        if !voters.contains(&node) && !is_learner {
            return Ok(());
        }
        if is_learner && !voters.contains(&node) {
            // A learner left by a failed add: voters are unaffected by a voter change, remove it as a node.
            let change = openraft::ChangeMembers::RemoveNodes(BTreeSet::from([node]));
            tokio::time::timeout(MEMBERSHIP_TIMEOUT, raft.change_membership(change, false))
                .await
                .map_err(|_| NodeError::Unavailable("membership change timed out".into()))?
                .map_err(|e| map_write_err(shard, self.id(), e))?;
            self.close_remote_group(shard, node).await;
            return Ok(());
        }
        voters.remove(&node);
        let Some(successor) = voters.iter().next().copied() else {
            return Err(NodeError::Invalid(format!(
                "node {node} is the last voter of shard {shard}"
            )));
        };
        if node == self.id() {
            // Hand leadership over, then let the new leader do the removal (caller retries).
            raft.trigger()
                .transfer_leader(successor)
                .await
                .map_err(|e| NodeError::Unavailable(e.to_string()))?;
            let _ = raft
                .wait(Some(Duration::from_secs(5)))
                .metrics(|m| m.current_leader.is_some_and(|l| l != node), "leadership moved")
                .await;
            return Err(NodeError::NotLeader {
                shard,
                leader_hint: Node::metrics(&raft).current_leader.filter(|l| *l != node),
            });
        }
        tokio::time::timeout(MEMBERSHIP_TIMEOUT, raft.change_membership(voters, false))
            .await
            .map_err(|_| NodeError::Unavailable("membership change timed out".into()))?
            .map_err(|e| map_write_err(shard, self.id(), e))?;
        self.close_remote_group(shard, node).await;
        Ok(())
    }

    /// Tells a node that left `shard` to stop its replica and drop its trees (best effort: a node
    /// that is down is cleaned up later by the rebalancer).
    pub(crate) async fn close_remote_group(&self, shard: u32, node: u64) {
        if node == self.id() {
            if let Err(e) = self.close_group(shard).await {
                tracing::info!(shard, error = %e, "could not close the removed replica");
            }
            return;
        }
        if let Some(addr) = self.addr_of(shard, node)
            && let Ok(channel) = self.inner.peers.channel(&addr)
        {
            let mut client = AdminClient::new(channel);
            let close = client.close_group(proto::GroupRequest { group_id: shard });
            match tokio::time::timeout(FORWARD_TIMEOUT, close).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::info!(shard, node, error = %e, "removed node did not close its replica"),
                Err(_) => tracing::info!(shard, node, "removed node did not close its replica in time"),
            }
        }
    }

    /// Asks `leader` (which leads `shard`) to hand leadership to `to`.
    ///
    /// # Errors
    /// When `leader` cannot be reached or no longer leads the shard.
    pub async fn transfer_leader(&self, shard: u32, leader: u64, to: u64) -> Result<(), NodeError> {
        if leader == self.id() {
            return self.transfer_leader_local(shard, to).await;
        }
        let mut client = AdminClient::new(self.channel_to(shard, leader)?);
        let request = proto::RemoveReplicaRequest {
            group_id: shard,
            node_id: to,
        };
        admin_outcome(shard, leader, FORWARD_TIMEOUT, client.transfer_leader(request)).await
    }

    pub(crate) async fn transfer_leader_local(&self, shard: u32, to: u64) -> Result<(), NodeError> {
        let (raft, m) = self.leading(shard)?;
        if !m.membership_config.membership().voter_ids().any(|v| v == to) {
            return Err(NodeError::Invalid(format!("node {to} is not a voter of shard {shard}")));
        }
        raft.trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| NodeError::Unavailable(e.to_string()))
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

/// Waits (bounded) for an Admin call to node `target` and turns its answer into a result.
async fn admin_outcome<F>(shard: u32, target: u64, timeout: Duration, call: F) -> Result<(), NodeError>
where
    F: Future<Output = Result<tonic::Response<proto::AdminReply>, tonic::Status>>,
{
    let reply = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| NodeError::Unavailable(format!("node {target} did not answer in time")))?
        .map_err(status_err)?
        .into_inner();
    reply.error.map_or(Ok(()), |e| Err(NodeError::from_proto(shard, e)))
}

/// Runs a membership step until it succeeds, fails for good, or [`MEMBERSHIP_TIMEOUT`] passes:
/// leaderships move and changes are still committing while replicas move.
async fn retry_membership<F, Fut>(mut step: F) -> Result<(), NodeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), NodeError>>,
{
    let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
    loop {
        match step().await {
            Err(e) if e.is_retryable() && Instant::now() < deadline => tokio::time::sleep(RETRY_PAUSE * 4).await,
            other => return other,
        }
    }
}

/// Whether the replica's state machine has a hold whose expiry has passed (by this node's clock).
fn hold_due(group: &Group) -> bool {
    let next = group.shard.read().ok().and_then(|s| s.next_expiry_ms());
    next.is_some_and(|at| at <= crate::clock::now_ms())
}

/// Keeps the `ivory_raft_is_leader{shard}` gauge in step with the group's state.
fn spawn_leader_gauge(shard: u32, me: u64, raft: Raft) {
    let mut rx = raft.metrics();
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
