//! The node's side of `ivory backup`: a group's snapshot, taken by its leader so that it holds
//! every write acknowledged before the request (`Cluster.Backup` in proto/ivory/v1/raft.proto).

use std::time::Duration;

use ivory_raft::openraft;
use openraft::async_runtime::WatchReceiver;
use openraft::raft::ReadPolicy;

use crate::NodeError;
use crate::node::{FORWARD_TIMEOUT, LOCAL_ATTEMPT_TIMEOUT, Node, map_read_err, no_quorum, status_err};
use crate::proto;
use crate::proto::cluster_client::ClusterClient;

/// One chunk of a streamed backup (gRPC's default message bound is 4 MiB).
const BACKUP_CHUNK_BYTES: usize = 1 << 20;
/// A group's snapshot in a backup may not exceed this (a replica refuses larger ones too).
pub const BACKUP_MAX_BYTES: usize = 1 << 30;

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
        let mut client = ClusterClient::new(self.channel_to(group, target)?);
        let fetch = async {
            let stream = client
                .backup(proto::BackupRequest { group_id: group })
                .await
                .map_err(status_err)?
                .into_inner();
            collect_backup(group, stream).await
        };
        tokio::time::timeout(FORWARD_TIMEOUT + SNAPSHOT_WAIT, fetch)
            .await
            .map_err(|_| NodeError::Unavailable(format!("node {target} did not answer in time")))?
    }
}

/// A group's backup as the chunks `Cluster.Backup` streams.
pub fn backup_chunks(backup: GroupBackup) -> Vec<proto::BackupChunk> {
    let total_bytes = backup.snapshot.len() as u64;
    let mut chunks: Vec<proto::BackupChunk> = backup
        .snapshot
        .chunks(BACKUP_CHUNK_BYTES)
        .map(|data| proto::BackupChunk {
            data: data.to_vec(),
            ..Default::default()
        })
        .collect();
    if chunks.is_empty() {
        chunks.push(proto::BackupChunk::default());
    }
    if let Some(first) = chunks.first_mut() {
        first.read_index = backup.read_index;
        first.node_id = backup.node_id;
        first.total_bytes = total_bytes;
    }
    chunks
}

/// Reads the chunks of `Cluster.Backup` back into one [`GroupBackup`].
///
/// # Errors
/// The error the stream carries, a broken stream, or more bytes than announced (or than 1 GiB).
pub async fn collect_backup(
    group: u32,
    mut stream: tonic::Streaming<proto::BackupChunk>,
) -> Result<GroupBackup, NodeError> {
    let first = stream
        .message()
        .await
        .map_err(status_err)?
        .ok_or_else(|| NodeError::Unavailable(format!("group {group}: an empty backup stream")))?;
    if let Some(e) = first.error {
        return Err(NodeError::from_proto(group, e));
    }
    let total = usize::try_from(first.total_bytes).unwrap_or(usize::MAX);
    if total > BACKUP_MAX_BYTES {
        return Err(NodeError::Invalid(format!(
            "group {group}: a snapshot of {total} bytes is over the {BACKUP_MAX_BYTES} a backup takes"
        )));
    }
    let mut snapshot = Vec::with_capacity(total);
    snapshot.extend_from_slice(&first.data);
    while let Some(chunk) = stream.message().await.map_err(status_err)? {
        if let Some(e) = chunk.error {
            return Err(NodeError::from_proto(group, e));
        }
        if snapshot.len() + chunk.data.len() > total {
            return Err(NodeError::Unavailable(format!(
                "group {group}: more snapshot bytes than the {total} announced"
            )));
        }
        snapshot.extend_from_slice(&chunk.data);
    }
    if snapshot.len() != total {
        return Err(NodeError::Unavailable(format!(
            "group {group}: the backup stream ended after {} of {total} bytes",
            snapshot.len()
        )));
    }
    Ok(GroupBackup {
        snapshot,
        read_index: first.read_index,
        node_id: first.node_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_snapshot_is_streamed_in_bounded_chunks_that_concatenate_to_it() {
        let snapshot: Vec<u8> = (0..(5 * BACKUP_CHUNK_BYTES / 2)).map(|i| (i % 251) as u8).collect();
        let chunks = backup_chunks(GroupBackup {
            snapshot: snapshot.clone(),
            read_index: 42,
            node_id: 3,
        });
        assert_eq!(chunks.len(), 3);
        assert!(
            chunks
                .iter()
                .all(|c| c.data.len() <= BACKUP_CHUNK_BYTES && c.error.is_none())
        );
        assert_eq!((chunks[0].read_index, chunks[0].node_id), (42, 3));
        assert_eq!(chunks[0].total_bytes, snapshot.len() as u64);
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
        assert_eq!(joined, snapshot);
        let empty = backup_chunks(GroupBackup {
            snapshot: Vec::new(),
            read_index: 0,
            node_id: 1,
        });
        assert_eq!(empty.len(), 1, "even an empty snapshot sends its header");
    }
}
