//! The node's side of `ivory backup`: a group's snapshot, taken by its leader so that it holds
//! every write acknowledged before the request (`Cluster.Backup` in proto/ivory/v1/raft.proto).

use std::time::Duration;

use ivory_raft::openraft;
use openraft::async_runtime::WatchReceiver;
use openraft::raft::ReadPolicy;

use crate::NodeError;
use crate::network::GRPC_MESSAGE_MAX_BYTES;
use crate::node::{FORWARD_TIMEOUT, LOCAL_ATTEMPT_TIMEOUT, Node, map_read_err, no_quorum, status_err};
use crate::proto;
use crate::proto::cluster_client::ClusterClient;

/// How long a leader waits for the snapshot it asked for (serialising a large shard takes a while).
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);

/// One group's snapshot for a backup.
#[derive(Clone, Debug)]
pub struct GroupBackup {
    /// The stored snapshot's bytes (`ivory_raft::backup::describe_snapshot` reads them).
    pub snapshot: Vec<u8>,
    /// The leader's commit index when asked: the snapshot includes every entry up to it.
    pub read_index: u64,
    /// The node that took it.
    pub node_id: u64,
}

impl Node {
    /// `group`'s snapshot from its leader, at or after the leader's commit index when asked.
    ///
    /// # Errors
    /// As [`Node::read`]; [`NodeError::Unavailable`] when the snapshot takes too long.
    pub async fn backup_group(&self, group: u32) -> Result<GroupBackup, NodeError> {
        self.with_retries(group, |target| async move {
            if target == self.id() {
                self.backup_local(group).await
            } else {
                self.forward_backup(target, group).await
            }
        })
        .await
    }

    pub(crate) async fn backup_local(&self, group: u32) -> Result<GroupBackup, NodeError> {
        let raft = self.raft(group)?;
        // Confirms leadership and waits until everything committed so far is applied here.
        let read = tokio::time::timeout(LOCAL_ATTEMPT_TIMEOUT, raft.ensure_linearizable(ReadPolicy::ReadIndex))
            .await
            .map_err(|_| no_quorum(group))?
            .map_err(|e| map_read_err(group, self.id(), e))?;
        let want = read.index();
        let covered = |m: &openraft::RaftMetrics<ivory_raft::TypeConfig>| m.snapshot.is_some_and(|s| s.index() >= want);
        let covered_now = covered(&raft.metrics().borrow_watched().clone());
        if !covered_now {
            raft.trigger()
                .snapshot()
                .await
                .map_err(|e| NodeError::Unavailable(format!("group {group}: {e}")))?;
            raft.wait(Some(SNAPSHOT_WAIT))
                .metrics(covered, "snapshot for a backup")
                .await
                .map_err(|e| NodeError::Unavailable(format!("group {group}: no snapshot in time: {e}")))?;
        }
        let snapshot = self
            .inner
            .storage
            .stored_snapshot(group)
            .map_err(|e| NodeError::Storage(e.to_string()))?
            .ok_or_else(|| NodeError::Storage(format!("group {group} has no stored snapshot")))?;
        metrics::counter!("ivory_backup_snapshots_total").increment(1);
        Ok(GroupBackup {
            snapshot,
            read_index: want,
            node_id: self.id(),
        })
    }

    async fn forward_backup(&self, target: u64, group: u32) -> Result<GroupBackup, NodeError> {
        let mut client = ClusterClient::new(self.channel_to(group, target)?)
            .max_decoding_message_size(GRPC_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(GRPC_MESSAGE_MAX_BYTES);
        let reply = tokio::time::timeout(
            FORWARD_TIMEOUT + SNAPSHOT_WAIT,
            client.backup(proto::BackupRequest { group_id: group }),
        )
        .await
        .map_err(|_| NodeError::Unavailable(format!("node {target} did not answer in time")))?
        .map_err(status_err)?
        .into_inner();
        if let Some(e) = reply.error {
            return Err(NodeError::from_proto(group, e));
        }
        Ok(GroupBackup {
            snapshot: reply.snapshot,
            read_index: reply.read_index,
            node_id: reply.node_id,
        })
    }
}
