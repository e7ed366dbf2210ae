//! The node's side of the metadata group: writing metadata commands (through its leader, like any
//! write), the one-time initialisation of a new cluster, and joining an existing one.

use std::collections::BTreeMap;
use std::time::Duration;

use ivory_cluster::{Layout, META_GROUP, MetaCommand, MetaReply};
use ivory_raft::{GroupEntry, GroupReply};

use crate::network::{decode, encode};
use crate::node::{FORWARD_TIMEOUT, Node};
use crate::placement::replicas_for;
use crate::proto;
use crate::proto::cluster_client::ClusterClient;
use crate::{NodeConfig, NodeError};

/// How often a node that restarted at another address asks for it to be recorded.
const ANNOUNCE_PAUSE: Duration = Duration::from_millis(500);
/// Test hook (off unless set): wait this long before the first such request, so that a test can
/// have the node's replicas give up on their leaders first (they hear nothing at the new address).
pub const TEST_ANNOUNCE_DELAY_ENV: &str = "IVORY_TEST_ANNOUNCE_DELAY_MS";

fn test_announce_delay() -> Option<Duration> {
    std::env::var(TEST_ANNOUNCE_DELAY_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}

/// What a joining node learns from the member it joins through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinInfo {
    pub shard_count: u32,
    pub replication: u32,
    /// Every member that is not removed, this node included: id -> address.
    pub members: BTreeMap<u64, String>,
    /// The cluster's id (`None` from a seed that has none).
    pub cluster_id: Option<String>,
}

impl NodeConfig {
    /// The configuration of a node joining through `info`.
    pub fn joining(
        id: u64,
        listen: std::net::SocketAddr,
        data_dir: std::path::PathBuf,
        info: &JoinInfo,
        cluster_secret: std::sync::Arc<ivory_cluster::ClusterSecret>,
        client_tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> NodeConfig {
        let mut peers = info.members.clone();
        peers.insert(id, listen.to_string());
        NodeConfig {
            id,
            listen,
            data_dir,
            peers,
            shard_count: info.shard_count,
            replicas: info.replication as usize,
            cluster_secret,
            client_tls,
            cluster_id: info.cluster_id.clone(),
        }
    }
}

/// Asks the cluster member at `seed` ("host:port") to register node `id` at `addr` (as joining;
/// the rebalancer activates it once it follows the metadata group).
///
/// # Errors
/// [`NodeError::Invalid`] when the cluster refuses (id or address taken, id removed);
/// [`NodeError::Unavailable`] when `seed` cannot be reached.
pub async fn join_cluster(
    seed: &str,
    id: u64,
    addr: &str,
    cluster_secret: std::sync::Arc<ivory_cluster::ClusterSecret>,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Result<JoinInfo, NodeError> {
    let endpoint = crate::network::endpoint(seed, tls)
        .map_err(NodeError::Invalid)?
        .connect_timeout(Duration::from_secs(2));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| NodeError::Unavailable(format!("cannot reach {seed}: {e}")))?;
    let request = proto::JoinRequest {
        node_id: id,
        addr: addr.to_string(),
    };
    let reply = tokio::time::timeout(
        FORWARD_TIMEOUT,
        ClusterClient::with_interceptor(channel, crate::auth::ClusterToken::new(cluster_secret)).join(request),
    )
    .await
    .map_err(|_| NodeError::Unavailable(format!("{seed} did not answer in time")))?
    .map_err(|e| {
        if e.code() == tonic::Code::Unauthenticated {
            NodeError::Invalid(format!("{seed} refused this node's cluster secret: {}", e.message()))
        } else {
            NodeError::Unavailable(e.to_string())
        }
    })?
    .into_inner();
    if let Some(e) = reply.error {
        return Err(NodeError::from_proto(META_GROUP, e));
    }
    Ok(JoinInfo {
        shard_count: reply.shard_count,
        replication: reply.replication,
        members: reply.members.into_iter().map(|m| (m.id, m.addr)).collect(),
        cluster_id: Some(reply.cluster_id).filter(|id| !id.is_empty()),
    })
}

impl Node {
    /// Writes one metadata command through the metadata group's leader.
    ///
    /// # Errors
    /// As [`Node::propose`]. A refusal is not an error: it is [`MetaReply::Refused`].
    pub async fn propose_meta(&self, command: MetaCommand) -> Result<MetaReply, NodeError> {
        let encoded = encode(&command).map_err(NodeError::Invalid)?;
        let command = &command;
        let encoded = &encoded;
        self.with_retries(META_GROUP, |target| async move {
            if target == self.id() {
                self.propose_meta_local(command.clone()).await
            } else {
                let bytes = self.forward_propose_bytes(target, META_GROUP, encoded.clone()).await?;
                decode(&bytes).map_err(NodeError::Unavailable)
            }
        })
        .await
    }

    pub(crate) async fn propose_meta_local(&self, command: MetaCommand) -> Result<MetaReply, NodeError> {
        match self.write_local(META_GROUP, GroupEntry::Meta(command)).await? {
            GroupReply::Meta(reply) => Ok(reply),
            GroupReply::Shard(_) => Err(NodeError::Storage("the metadata group answered as a shard".into())),
        }
    }

    /// The `Init` a new cluster writes: its members, layout and the placement it bootstrapped.
    fn init_command(&self) -> MetaCommand {
        let cfg = self.config();
        let placement = (0..cfg.shard_count)
            .map(|shard| (shard, replicas_for(shard, &cfg.peers, cfg.replicas)))
            .collect();
        MetaCommand::Init {
            layout: Layout::new(cfg.shard_count),
            replication: cfg.replicas as u32,
            members: cfg.peers.clone(),
            placement,
        }
    }

    /// Until the metadata is initialized, keeps proposing `Init` (every initial member proposes
    /// the same one; the first to commit wins, later copies are refused). Covers a crash between
    /// bootstrapping the groups and writing the metadata.
    pub(crate) fn spawn_meta_init(&self) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        let mut shutdown = self.inner.shutdown_tx.subscribe();
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { break };
                let node = Node { inner };
                if node.with_meta(|m| m.is_initialized()) == Some(true) {
                    break;
                }
                match node.propose_meta(node.init_command()).await {
                    Ok(MetaReply::Done { version }) => {
                        tracing::info!(version, "cluster metadata initialized");
                        break;
                    }
                    Ok(MetaReply::Refused { reason }) => {
                        tracing::debug!(%reason, "metadata init refused");
                        break;
                    }
                    Err(e) => tracing::debug!(error = %e, "metadata init not written yet"),
                }
                drop(node);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => break,
                }
            }
        });
    }

    /// A node that restarted at another address (its `--advertise-addr`, this node's entry in
    /// [`NodeConfig::peers`]) keeps its id: until the cluster metadata records that address, it
    /// asks the metadata group's leader to ([`MetaCommand::SetAddress`]); the others then dial it
    /// there ([`crate::network::Peers::set_addresses`]).
    pub(crate) fn spawn_address_announce(&self) {
        let Some(mine) = self.config().peers.get(&self.id()).cloned() else {
            return;
        };
        let weak = std::sync::Arc::downgrade(&self.inner);
        let mut shutdown = self.inner.shutdown_tx.subscribe();
        let first_pause = test_announce_delay().unwrap_or(ANNOUNCE_PAUSE);
        tokio::spawn(async move {
            let mut pause = first_pause;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => break,
                }
                pause = ANNOUNCE_PAUSE;
                let Some(inner) = weak.upgrade() else { break };
                let node = Node { inner };
                let recorded = node
                    .with_meta(|m| m.members.get(&node.id()).map(|m| (m.addr.clone(), m.state)))
                    .flatten();
                let Some((recorded, state)) = recorded else {
                    continue; // not initialized, or not registered yet
                };
                if recorded == mine || state == ivory_cluster::MemberState::Removed {
                    break;
                }
                let command = MetaCommand::SetAddress {
                    id: node.id(),
                    addr: mine.clone(),
                };
                match node.propose_meta(command).await {
                    Ok(MetaReply::Done { version }) => {
                        tracing::info!(from = %recorded, to = %mine, version, "recorded this node's new address");
                        break;
                    }
                    Ok(MetaReply::Refused { reason }) => {
                        tracing::error!(from = %recorded, to = %mine, %reason, "the cluster refused this node's new address");
                        break;
                    }
                    Err(e) => tracing::debug!(error = %e, "new address not recorded yet"),
                }
            }
        });
    }
}
