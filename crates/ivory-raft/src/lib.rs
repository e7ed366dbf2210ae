//! Ivory's replicated shards: the openraft type config, the log store of each group
//! ([`GroupLogStore`], on the node's write-ahead log [`wal::Wal`]), the state machine
//! ([`ShardStateMachine`], snapshots in sled), and the per-node storage ([`NodeStorage`]) that owns
//! the log, one `sled::Db` and the group-commit flusher thread.
//!
//! Which openraft trait lives where:
//! - `RaftLogStorage` / `RaftLogReader`: [`log_store`] over [`wal`]
//! - `RaftStateMachine` / `RaftSnapshotBuilder`: [`state_machine`]
//! - the Db, the trees per group and the flusher: [`storage`]
//! - timing: [`raft_config`]
//!
//! The network (`RaftNetworkFactory`) lives in `ivory-node`, next to the tonic services.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod backup;
pub mod durable;
pub mod log_store;
pub mod snapshot_store;
pub mod state_machine;
pub mod storage;
pub mod wal;

pub use log_store::GroupLogStore;
pub use state_machine::{ApplyDigest, ShardStateMachine, SharedDigest, SharedMeta, SharedShard};
pub use storage::{EXIT_STORAGE_FAILED, GROUP_COMMIT_WINDOW_DEFAULT, NodeStorage, StorageOptions};

/// One log entry's application data: a batch of commands for a shard group, or one change of
/// the cluster's metadata for the metadata group ([`ivory_cluster::META_GROUP`]).
///
/// A shard's batch is shared (encoded as the batch itself): the log keeps its newest entries
/// decoded, and every reader (the apply path, replication to each follower) takes a reference,
/// not a copy of every command's strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GroupEntry {
    Shard(Arc<ivory_core::Batch>),
    Meta(ivory_cluster::MetaCommand),
}

impl fmt::Display for GroupEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupEntry::Shard(b) => write!(f, "batch(ts_ms={}, commands={})", b.ts_ms, b.commands.len()),
            GroupEntry::Meta(c) => write!(f, "meta({c:?})"),
        }
    }
}

/// What applying a [`GroupEntry`] answered: one result per command, or the metadata's reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GroupReply {
    Shard(Vec<ivory_core::CmdResult>),
    Meta(ivory_cluster::MetaReply),
}

openraft::declare_raft_types!(
    /// Ivory's openraft type configuration.
    pub TypeConfig:
        D = GroupEntry,
        R = GroupReply,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// A group's Raft handle.
pub type Raft = openraft::Raft<TypeConfig, ShardStateMachine>;
pub type NodeId = u64;
pub type Node = openraft::BasicNode;
/// A shard id doubles as its Raft group id; the metadata group is `ivory_cluster::META_GROUP`.
pub type GroupId = u32;

pub use openraft;

/// Heartbeat: every group of a node sends one heartbeat per follower per interval, so the idle
/// cost is groups x followers / interval; 300 ms keeps 64 groups under ~450 RPC/s per node.
pub const HEARTBEAT_INTERVAL_MS: u64 = 300;
/// Elections are 3-7x the heartbeat so that a slow fsync on a busy 2-core box does not depose a leader.
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 1_000;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 2_000;
const _: () = assert!(
    ELECTION_TIMEOUT_MIN_MS >= 3 * HEARTBEAT_INTERVAL_MS && ELECTION_TIMEOUT_MAX_MS <= 7 * HEARTBEAT_INTERVAL_MS,
    "elections are 3-7x the heartbeat"
);
const _: () = assert!(ELECTION_TIMEOUT_MIN_MS < ELECTION_TIMEOUT_MAX_MS);
/// A snapshot serialises the whole shard, so it is taken by work applied since the last one, not by
/// entries (an entry holds 1 to 512 commands): after this many commands or log bytes, whichever
/// comes first. At 45,000 reserves/s that is one snapshot every few seconds.
pub const SNAPSHOT_COMMANDS_SINCE_LAST: u64 = 200_000;
pub const SNAPSHOT_LOG_BYTES_SINCE_LAST: u64 = 64 << 20;
/// Logs kept behind a snapshot, so that a follower installing a snapshot can still catch up by
/// log afterwards (openraft #1706).
pub const SNAPSHOT_LOGS_TO_KEEP: u64 = 5_000;
/// Test hook (the nemesis sets it): `IVORY_TEST_SNAPSHOT_COMMANDS=N` takes a snapshot after N
/// commands and keeps N logs behind it (both at most the defaults above), so that snapshots,
/// log purges and snapshot installs happen within a short run. Read once per process.
pub const TEST_SNAPSHOT_ENV: &str = "IVORY_TEST_SNAPSHOT_COMMANDS";

static TEST_SNAPSHOT_COMMANDS: std::sync::LazyLock<Option<u64>> = std::sync::LazyLock::new(|| {
    std::env::var(TEST_SNAPSHOT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
});

/// Commands applied between two snapshots: [`SNAPSHOT_COMMANDS_SINCE_LAST`] unless lowered by
/// [`TEST_SNAPSHOT_ENV`].
pub fn snapshot_commands_since_last() -> u64 {
    TEST_SNAPSHOT_COMMANDS.map_or(SNAPSHOT_COMMANDS_SINCE_LAST, |n| n.min(SNAPSHOT_COMMANDS_SINCE_LAST))
}

/// Logs kept behind a snapshot: [`SNAPSHOT_LOGS_TO_KEEP`] unless lowered by [`TEST_SNAPSHOT_ENV`].
pub fn snapshot_logs_to_keep() -> u64 {
    TEST_SNAPSHOT_COMMANDS.map_or(SNAPSHOT_LOGS_TO_KEEP, |n| n.min(SNAPSHOT_LOGS_TO_KEEP))
}

/// Test hook: `IVORY_TEST_WAL_SEGMENT_BYTES=N` makes the log's segments N bytes (at least 64 KiB,
/// at most [`wal::SEGMENT_BYTES`]), so that a test filling a small disk reaches the end of the
/// preallocated segment, where appends meet the full disk, within seconds. Read once per process.
pub const TEST_WAL_SEGMENT_ENV: &str = "IVORY_TEST_WAL_SEGMENT_BYTES";

static TEST_WAL_SEGMENT_BYTES: std::sync::LazyLock<Option<u64>> = std::sync::LazyLock::new(|| {
    std::env::var(TEST_WAL_SEGMENT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|n| n.clamp(64 << 10, wal::SEGMENT_BYTES))
});

/// The size of a log segment: [`wal::SEGMENT_BYTES`] unless set by [`TEST_WAL_SEGMENT_ENV`].
pub fn wal_segment_bytes() -> u64 {
    TEST_WAL_SEGMENT_BYTES.unwrap_or(wal::SEGMENT_BYTES)
}

/// The one place where Raft timing is decided.
///
/// # Errors
/// Never in practice: the constants above form a valid configuration (checked by a test).
pub fn raft_config(cluster_name: &str) -> Result<Arc<openraft::Config>, openraft::ConfigError> {
    let config = openraft::Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        // Replication traffic already proves liveness: skip heartbeats right after an append.
        heartbeat_min_interval: Some(HEARTBEAT_INTERVAL_MS),
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        // The whole streamed transfer is bounded by the network layer, not by this TTL.
        install_snapshot_timeout: 10_000,
        // The state machine asks for snapshots itself (see SNAPSHOT_COMMANDS_SINCE_LAST).
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: snapshot_logs_to_keep(),
        // Bounds one AppendEntries message well under the 64 MiB gRPC limit even for full bulks.
        max_payload_entries: 256,
        // A restarted leader must win an election (and commit a blank entry of its new term)
        // before it serves again. Restored at once (openraft's default), its read index came
        // from the committed index it had persisted, which lags what it acknowledged before the
        // crash: a linearizable read answered stale state (nemesis seed 438610,
        // crates/ivory/tests/leader_restart.rs).
        enable_leader_restore: Some(false),
        ..Default::default()
    };
    Ok(Arc::new(config.validate()?))
}

/// Milliseconds since the Unix epoch: the leader stamps each batch with it when it proposes.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn io_err(e: impl fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn raft_config_is_valid() {
        let config = super::raft_config("t").expect("valid config");
        assert!(config.heartbeat_interval < config.election_timeout_min);
    }
}
