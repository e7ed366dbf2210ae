//! The `Cluster` gRPC service (proto/ivory/v1/raft.proto): join, add-node, remove-node and the
//! cluster-wide status that `ivory cluster` shows. Any member answers; writes go through the
//! metadata group's leader.

use std::collections::BTreeMap;

use ivory_cluster::{ClusterMeta, META_GROUP, MemberState, MetaCommand, MetaReply};
use ivory_raft::openraft;
use tonic::{Request, Response, Status};

use crate::NodeError;
use crate::network::decode;
use crate::node::Node;
use crate::proto;
use crate::proto::cluster_server::Cluster;

fn refused(reason: String) -> proto::Error {
    // The reason alone, not "refused: ..." : it is what the operator reads.
    proto::Error {
        message: reason.clone(),
        ..NodeError::Refused(reason).to_proto()
    }
}

fn lag_of(map: &BTreeMap<u64, u64>) -> Vec<proto::ReplicaLag> {
    map.iter()
        .map(|(node_id, entries)| proto::ReplicaLag {
            node_id: *node_id,
            entries: *entries,
        })
        .collect()
}

pub(crate) fn group_status(s: crate::ShardStatus) -> proto::GroupStatus {
    proto::GroupStatus {
        group_id: s.shard,
        leader: s.leader,
        is_leader: s.is_leader,
        last_applied: s.last_applied,
        lag: lag_of(&s.lag),
        voters: s.voters,
        learners: s.learners,
        client_writes: s.client_writes,
    }
}

impl Node {
    /// The cluster metadata as the metadata group's leader has it, so that `status` right after
    /// `add-node` shows the new member wherever it is asked: a follower's copy may lag, so the
    /// leader answers, after a read-index round.
    pub(crate) async fn current_meta(&self) -> Result<ClusterMeta, NodeError> {
        self.with_retries(META_GROUP, |target| async move {
            if target == self.id() {
                self.current_meta_local().await
            } else {
                let bytes = self.forward_read_bytes(target, META_GROUP, Vec::new()).await?;
                decode(&bytes).map_err(NodeError::Unavailable)
            }
        })
        .await
    }

    /// [`Node::current_meta`] on the metadata leader: `NotLeader` elsewhere.
    pub(crate) async fn current_meta_local(&self) -> Result<ClusterMeta, NodeError> {
        let raft = self.raft(META_GROUP)?;
        tokio::time::timeout(
            crate::node::LOCAL_ATTEMPT_TIMEOUT,
            raft.ensure_linearizable(openraft::raft::ReadPolicy::ReadIndex),
        )
        .await
        .map_err(|_| crate::node::no_quorum(META_GROUP))?
        .map_err(|e| crate::node::map_read_err(META_GROUP, self.id(), e))?;
        self.with_meta(Clone::clone)
            .filter(ClusterMeta::is_initialized)
            .ok_or_else(|| NodeError::Unavailable("the cluster metadata is not initialized yet".into()))
    }

    async fn register(&self, id: u64, addr: String) -> Result<MetaReply, NodeError> {
        if let Err(reason) = ivory_cluster::check_member_addr(&addr) {
            return Ok(MetaReply::Refused { reason });
        }
        self.propose_meta(MetaCommand::AddMember { id, addr }).await
    }

    async fn remove_node(&self, id: u64) -> Result<MetaReply, NodeError> {
        let meta = self.current_meta().await?;
        if meta.members.get(&id).map(|m| m.state) == Some(MemberState::Active) {
            // The count alone is checked by the metadata; whether the others are up is checked
            // here: draining moves every replica of the node onto the others, which needs a
            // quorum of each shard's new replicas alive.
            let mut down = Vec::new();
            let mut live = 0usize;
            for other in meta.members_in(MemberState::Active).into_iter().filter(|o| *o != id) {
                let addr = meta.addr_of(other).unwrap_or_default().to_string();
                if self.probe(&addr).await {
                    live += 1;
                } else {
                    down.push(other);
                }
            }
            if live < meta.replication as usize {
                return Ok(MetaReply::Refused {
                    reason: format!(
                        "removing node {id} would leave {live} live active node(s) (down: {down:?}) for a \
                         replication factor of {}: shards would lose their quorum or run below it; bring the \
                         down nodes back or add a node first",
                        meta.replication
                    ),
                });
            }
        }
        self.propose_meta(MetaCommand::Drain { id }).await
    }

    /// The whole cluster: metadata, and every reachable member's view of its groups.
    async fn cluster_status(&self) -> Result<proto::ClusterStatusReply, NodeError> {
        let (meta, fresh) = match self.current_meta().await {
            Ok(meta) => (meta, true),
            // Without a metadata quorum, what this node last applied is the best there is, shown
            // without a metadata leader: an outage is when the operator needs status most.
            Err(e) if e.is_retryable() => {
                let local = self.with_meta(Clone::clone).filter(ClusterMeta::is_initialized);
                (local.ok_or(e)?, false)
            }
            Err(e) => return Err(e),
        };
        let desired = meta.desired_placement();
        let mut reports = BTreeMap::new();
        let calls = meta
            .members
            .iter()
            .filter(|(_, m)| m.state != MemberState::Removed)
            .map(|(id, m)| async move { (*id, self.status_of(&m.addr).await) });
        for (id, status) in futures::future::join_all(calls).await {
            if let Some(status) = status {
                reports.insert(id, status);
            }
        }
        let leader_report = |shard: u32| {
            reports
                .values()
                .flat_map(|r| r.groups.iter())
                .find(|g| g.group_id == shard && g.is_leader)
        };
        let shards = (0..meta.shard_count())
            .map(|shard| {
                let led = leader_report(shard);
                proto::ShardInfo {
                    shard,
                    replicas: meta.placement.get(&shard).cloned().unwrap_or_default(),
                    desired: desired.get(&shard).cloned().unwrap_or_default(),
                    leader: led.map(|g| g.leader.unwrap_or_default()),
                    voters: led.map(|g| g.voters.clone()).unwrap_or_default(),
                    learners: led.map(|g| g.learners.clone()).unwrap_or_default(),
                    lag: led.map(|g| g.lag.clone()).unwrap_or_default(),
                }
            })
            .collect();
        let members = meta
            .members
            .iter()
            .map(|(id, m)| {
                let report = reports.get(id);
                proto::MemberInfo {
                    id: *id,
                    addr: m.addr.clone(),
                    state: m.state.as_str().to_string(),
                    reachable: report.is_some(),
                    replicas: report.map_or(0, |r| r.groups.len() as u32),
                    leaders: report.map_or(0, |r| r.groups.iter().filter(|g| g.is_leader).count() as u32),
                }
            })
            .collect();
        let meta_leader = self.meta_status().and_then(|s| s.leader).filter(|_| fresh);
        Ok(proto::ClusterStatusReply {
            error: None,
            placement_version: meta.version,
            cluster_id: self.config().cluster_id.clone().unwrap_or_default(),
            shard_count: meta.shard_count(),
            replication: meta.replication,
            hash_scheme: meta.layout.as_ref().map(|l| l.hash_scheme.clone()).unwrap_or_default(),
            meta_leader,
            members,
            shards,
            moves: meta
                .moves
                .iter()
                .map(|(shard, mv)| proto::MoveInfo {
                    shard: *shard,
                    add: mv.add,
                    remove: mv.remove,
                })
                .collect(),
            settled: meta.is_settled(),
        })
    }
}

fn cluster_reply(result: Result<MetaReply, NodeError>, done: impl FnOnce(u64) -> String) -> proto::ClusterReply {
    match result {
        Ok(MetaReply::Done { version }) => proto::ClusterReply {
            error: None,
            message: done(version),
            placement_version: version,
        },
        Ok(MetaReply::Refused { reason }) => proto::ClusterReply {
            error: Some(refused(reason)),
            ..Default::default()
        },
        Err(e) => proto::ClusterReply {
            error: Some(e.to_proto()),
            ..Default::default()
        },
    }
}

#[tonic::async_trait]
impl Cluster for Node {
    async fn join(&self, request: Request<proto::JoinRequest>) -> Result<Response<proto::JoinReply>, Status> {
        let r = request.into_inner();
        let error = match self.register(r.node_id, r.addr).await {
            Ok(MetaReply::Done { .. }) => None,
            Ok(MetaReply::Refused { reason }) => Some(refused(reason)),
            Err(e) => Some(e.to_proto()),
        };
        if error.is_some() {
            return Ok(Response::new(proto::JoinReply {
                error,
                ..Default::default()
            }));
        }
        let reply = match self.current_meta().await {
            Ok(meta) => proto::JoinReply {
                error: None,
                shard_count: meta.shard_count(),
                replication: meta.replication,
                members: meta
                    .members
                    .iter()
                    .filter(|(_, m)| m.state != MemberState::Removed)
                    .map(|(id, m)| proto::MemberInfo {
                        id: *id,
                        addr: m.addr.clone(),
                        state: m.state.as_str().to_string(),
                        ..Default::default()
                    })
                    .collect(),
                cluster_id: self.config().cluster_id.clone().unwrap_or_default(),
            },
            Err(e) => proto::JoinReply {
                error: Some(e.to_proto()),
                ..Default::default()
            },
        };
        Ok(Response::new(reply))
    }

    async fn add_node(&self, request: Request<proto::JoinRequest>) -> Result<Response<proto::ClusterReply>, Status> {
        let r = request.into_inner();
        let id = r.node_id;
        let result = self.register(id, r.addr).await;
        Ok(Response::new(cluster_reply(result, |version| {
            format!("node {id} registered (placement version {version}); it becomes active once it runs")
        })))
    }

    async fn remove_node(
        &self,
        request: Request<proto::RemoveNodeRequest>,
    ) -> Result<Response<proto::ClusterReply>, Status> {
        let id = request.into_inner().node_id;
        let result = self.remove_node(id).await;
        Ok(Response::new(cluster_reply(result, |version| {
            format!("node {id} is draining (placement version {version}); it is removed once its replicas moved")
        })))
    }

    async fn status(
        &self,
        _request: Request<proto::ClusterStatusRequest>,
    ) -> Result<Response<proto::ClusterStatusReply>, Status> {
        let reply = self
            .cluster_status()
            .await
            .unwrap_or_else(|e| proto::ClusterStatusReply {
                error: Some(e.to_proto()),
                ..Default::default()
            });
        Ok(Response::new(reply))
    }

    type BackupStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<proto::BackupChunk, Status>> + Send + 'static>>;

    async fn backup(&self, request: Request<proto::BackupRequest>) -> Result<Response<Self::BackupStream>, Status> {
        let chunks = match self.backup_group(request.into_inner().group_id).await {
            Ok(backup) => crate::backup::backup_chunks(backup),
            Err(e) => vec![proto::BackupChunk {
                error: Some(e.to_proto()),
                ..Default::default()
            }],
        };
        Ok(Response::new(Box::pin(futures::stream::iter(
            chunks.into_iter().map(Ok),
        ))))
    }
}
