//! Membership changes of one shard's Raft group, the steps the rebalancer (beside this file)
//! runs: add a replica (open it there, learner, catch up, voter), remove one (leadership moved
//! away first), transfer leadership. Each step runs on the shard's leader, here or forwarded by
//! the Admin service, and is retried while leaderships move.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use ivory_raft::openraft;
use ivory_raft::{Raft, TypeConfig};
use openraft::{BasicNode, RaftMetrics, ServerState};

use crate::error::NodeError;
use crate::node::{FORWARD_TIMEOUT, Node, RETRY_PAUSE, map_write_err, status_err};
use crate::proto;
use crate::proto::admin_client::AdminClient;

/// Membership changes wait for a learner to catch up; bounded so that a dead learner fails the call.
pub(crate) const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(60);

impl Node {
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
