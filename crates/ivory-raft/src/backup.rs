//! Backup and restore of a node's groups (`ivory backup`, `ivory restore`).
//!
//! A backup holds, per group, the bytes of its stored snapshot exactly as the group's leader
//! stored them ([`NodeStorage::stored_snapshot`]): the snapshot's log id and membership, and its
//! data (the shard with its state hash, or the cluster metadata). [`describe_snapshot`] checks
//! such bytes and says what they hold; [`NodeStorage::restore_group`] makes one the state of a
//! group on a new node that is the group's only voter.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use ivory_cluster::{ClusterMeta, Member, MemberState};
use ivory_core::Shard;
use openraft::alias::{LogIdOf, SnapshotMetaOf, StoredMembershipOf, VoteOf};
use openraft::vote::RaftLeaderId;
use openraft::{BasicNode, Membership};

use crate::log_store::{decode, encode};
use crate::state_machine::{StoredSnapshot, encode_payload, verified};
use crate::{GroupId, NodeStorage, TypeConfig, io_err};

/// What a stored snapshot holds, checked: its position in the group's log and its state.
pub struct SnapshotInfo {
    /// The last log entry the snapshot includes (`None`: an empty group).
    pub last_log_index: Option<u64>,
    /// The term of that entry (0 for an empty group).
    pub last_log_term: u64,
    /// The voters of the group as the snapshot records them.
    pub voters: Vec<u64>,
    /// The shard's state (empty for the metadata group).
    pub shard: Shard,
    /// The cluster metadata (only the metadata group's is initialized).
    pub meta: ClusterMeta,
}

fn term_of(log_id: &LogIdOf<TypeConfig>) -> u64 {
    log_id.committed_leader_id().term()
}

/// Decodes the bytes of a stored snapshot and checks the shard against its state hash.
///
/// # Errors
/// `InvalidData` when the bytes are not a snapshot this build can read, or the hash differs.
pub fn describe_snapshot(bytes: &[u8]) -> io::Result<SnapshotInfo> {
    let stored: StoredSnapshot = decode(bytes)?;
    let (shard, payload) = verified(&stored.data)?;
    Ok(SnapshotInfo {
        last_log_index: stored.meta.last_log_id.map(|l| l.index()),
        last_log_term: stored.meta.last_log_id.as_ref().map_or(0, term_of),
        voters: stored.meta.last_membership.membership().voter_ids().collect(),
        shard,
        meta: payload.meta,
    })
}

/// The cluster metadata of a cluster restored on one node: that node is its only member (active,
/// at `addr`) and holds every shard; layout and replication factor are the backup's, so nodes
/// that join later receive replicas up to it. The version moves on, never back.
pub fn meta_on_one_node(meta: &ClusterMeta, id: u64, addr: &str) -> ClusterMeta {
    let members = BTreeMap::from([(
        id,
        Member {
            addr: addr.to_string(),
            state: MemberState::Active,
        },
    )]);
    ClusterMeta {
        layout: meta.layout.clone(),
        replication: meta.replication,
        members,
        placement: (0..meta.shard_count()).map(|shard| (shard, vec![id])).collect(),
        moves: BTreeMap::new(),
        version: meta.version + 1,
    }
}

impl NodeStorage {
    /// The bytes of `group`'s stored snapshot, as [`describe_snapshot`] reads them.
    ///
    /// # Errors
    /// On sled errors.
    pub fn stored_snapshot(&self, group: GroupId) -> io::Result<Option<Vec<u8>>> {
        self.snapshot_store(group)?.get()
    }

    /// Makes `snapshot` (bytes from [`NodeStorage::stored_snapshot`]) the state of `group` on this
    /// node, whose storage must not host the group yet: the snapshot is stored with node `id` at
    /// `addr` as the group's only voter, the log starts after the snapshot's last entry, and the
    /// vote is at the snapshot's term so that the next election moves past it. The metadata
    /// group's cluster metadata is rewritten by [`meta_on_one_node`].
    ///
    /// # Errors
    /// `InvalidData` for bytes [`describe_snapshot`] refuses, or a group already hosted; IO errors.
    pub async fn restore_group(
        &self,
        group: GroupId,
        snapshot: &[u8],
        id: u64,
        addr: &str,
    ) -> io::Result<SnapshotInfo> {
        if self.hosted_groups()?.contains(&group) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("group {group} already exists here"),
            ));
        }
        let mut info = describe_snapshot(snapshot)?;
        let mut stored: StoredSnapshot = decode(snapshot)?;
        if info.meta.is_initialized() {
            let (_, mut payload) = verified(&stored.data)?;
            payload.meta = meta_on_one_node(&info.meta, id, addr);
            info.meta = payload.meta.clone();
            stored.data = encode_payload(&payload)?;
        }
        let last = stored.meta.last_log_id;
        let membership = Membership::new(
            vec![BTreeSet::from([id])],
            BTreeMap::from([(id, BasicNode { addr: addr.to_string() })]),
        )
        .map_err(io_err)?;
        stored.meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: last,
            last_membership: StoredMembershipOf::<TypeConfig>::new(last, membership),
        };
        info.voters = vec![id];
        self.snapshot_store(group)?.put(&encode(&stored)?)?;
        self.note_hosted(group)?;
        if let Some(last) = last {
            let wal = self.wal();
            wal.save_vote(group, &VoteOf::<TypeConfig>::new(term_of(&last), id))?;
            wal.purge(group, last)?;
            wal.save_committed(group, Some(last))?;
        }
        self.flusher().flush().await?;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorageOptions;
    use openraft::RaftSnapshotBuilder;
    use openraft::storage::{RaftLogStorage, RaftStateMachine};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restored_group_starts_after_the_snapshot_with_one_voter() {
        let (_from, storage) = crate::storage::open_in_temp_dir().await;
        let (_log, mut sm) = storage.open_group(2).await.expect("group");
        sm.get_snapshot_builder().await.build_snapshot().await.expect("built");
        let bytes = storage.stored_snapshot(2).expect("read").expect("stored");
        let info = describe_snapshot(&bytes).expect("a good snapshot");
        assert_eq!(info.last_log_index, None);

        assert!(
            describe_snapshot(&bytes[..bytes.len() / 2]).is_err(),
            "a torn snapshot is refused"
        );

        let to = tempfile::tempdir().expect("tempdir");
        let restored = NodeStorage::open_async(to.path().to_path_buf(), StorageOptions::default())
            .await
            .expect("open");
        let info = restored.restore_group(2, &bytes, 7, "h:1").await.expect("restored");
        assert_eq!(info.voters, vec![7]);
        assert_eq!(restored.hosted_groups().expect("groups"), vec![2]);
        assert!(restored.restore_group(2, &bytes, 7, "h:1").await.is_err(), "only once");
        let (mut log, mut sm) = restored.open_group(2).await.expect("reopen");
        let (applied, membership) = sm.applied_state().await.expect("state");
        assert_eq!(applied, None);
        assert_eq!(membership.membership().voter_ids().collect::<Vec<_>>(), vec![7]);
        assert_eq!(log.get_log_state().await.expect("log").last_log_id, None);
    }

    #[test]
    fn the_restored_metadata_names_one_member_holding_every_shard() {
        let mut meta = ClusterMeta::default();
        let init = ivory_cluster::MetaCommand::Init {
            layout: ivory_cluster::Layout::new(3),
            replication: 3,
            members: BTreeMap::from([(1, "a:1".into()), (2, "b:1".into()), (3, "c:1".into())]),
            placement: (0..3).map(|s| (s, vec![1, 2, 3])).collect(),
        };
        meta.apply(&init);
        let one = meta_on_one_node(&meta, 1, "new:9");
        assert_eq!(one.members.len(), 1);
        assert_eq!(one.addr_of(1), Some("new:9"));
        assert_eq!(one.placement[&2], vec![1]);
        assert!(one.version > meta.version);
        assert!(one.is_settled(), "one active member holds every shard: nothing to move");
    }
}
