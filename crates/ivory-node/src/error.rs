//! What can go wrong with a node request, and what the caller should do about it.

use crate::proto;

/// How long a caller should wait before retrying a group that has no quorum yet.
pub const NO_QUORUM_RETRY_AFTER_MS: u64 = 500;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("shard {shard} is not led by this node (leader hint: {leader_hint:?})")]
    NotLeader { shard: u32, leader_hint: Option<u64> },
    #[error("shard {shard} has no quorum, retry after {retry_after_ms} ms")]
    NoQuorum { shard: u32, retry_after_ms: u64 },
    #[error("shard {0} is not hosted here")]
    UnknownShard(u32),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The cluster metadata refused an operation (and nothing changed); the message says why.
    #[error("refused: {0}")]
    Refused(String),
}

impl NodeError {
    /// `true` when the same request may succeed later (or at another node) unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            NodeError::NotLeader { .. } | NodeError::NoQuorum { .. } | NodeError::Unavailable(_)
        )
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            NodeError::NotLeader { .. } => "raft.not_leader",
            NodeError::NoQuorum { .. } => "raft.no_quorum",
            NodeError::UnknownShard(_) => "raft.unknown_shard",
            NodeError::Storage(_) => "storage.failure",
            NodeError::Unavailable(_) => "node.unavailable",
            NodeError::Invalid(_) => "request.invalid",
            NodeError::Refused(_) => "cluster.refused",
        }
    }

    pub(crate) fn to_proto(&self) -> proto::Error {
        let (leader_hint, retry_after_ms) = match self {
            NodeError::NotLeader { leader_hint, .. } => (*leader_hint, 0),
            NodeError::NoQuorum { retry_after_ms, .. } => (None, *retry_after_ms),
            _ => (None, 0),
        };
        proto::Error {
            code: self.code().to_string(),
            message: self.to_string(),
            leader_hint,
            retry_after_ms,
        }
    }

    pub(crate) fn from_proto(shard: u32, e: proto::Error) -> NodeError {
        match e.code.as_str() {
            "raft.not_leader" => NodeError::NotLeader {
                shard,
                leader_hint: e.leader_hint,
            },
            "raft.no_quorum" => NodeError::NoQuorum {
                shard,
                retry_after_ms: e.retry_after_ms,
            },
            "raft.unknown_shard" => NodeError::UnknownShard(shard),
            "storage.failure" => NodeError::Storage(e.message),
            "request.invalid" => NodeError::Invalid(e.message),
            "cluster.refused" => NodeError::Refused(e.message),
            _ => NodeError::Unavailable(e.message),
        }
    }
}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        NodeError::Storage(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_proto() {
        let errors = [
            NodeError::NotLeader {
                shard: 3,
                leader_hint: Some(2),
            },
            NodeError::NoQuorum {
                shard: 3,
                retry_after_ms: 500,
            },
            NodeError::UnknownShard(3),
            NodeError::Storage("disk".into()),
            NodeError::Unavailable("down".into()),
            NodeError::Invalid("bad".into()),
            NodeError::Refused("below the replication factor".into()),
        ];
        for e in errors {
            let back = NodeError::from_proto(3, e.to_proto());
            assert_eq!(back.code(), e.code());
            assert_eq!(back.is_retryable(), e.is_retryable());
        }
    }
}
