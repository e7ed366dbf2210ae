//! The gateway's view of the cluster, served by this process's node: partition -> shard through
//! the ring, proposals and reads through the node (which forwards to shard leaders).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use ivory_cluster::ShardRing;
use ivory_core::{CmdResult, Command, PartitionKey, ReadRequest, ReadResponse};
use ivory_gateway::{ApiError, Backend};
use ivory_node::{Node, NodeError};

pub struct NodeBackend {
    node: Node,
    ring: ShardRing,
}

impl NodeBackend {
    pub fn new(node: Node, ring: ShardRing) -> NodeBackend {
        NodeBackend { node, ring }
    }
}

/// The one conversion of a node's error: into the gateway's answer.
fn backend_error(e: NodeError) -> ApiError {
    let retry_after_ms = match &e {
        NodeError::NoQuorum { retry_after_ms, .. } => *retry_after_ms,
        _ => 500,
    };
    ApiError::backend(e.code(), e.to_string(), e.is_retryable(), retry_after_ms)
}

impl Backend for NodeBackend {
    fn shard_of(&self, partition: &PartitionKey) -> u32 {
        self.ring.shard_of(partition)
    }

    fn shard_count(&self) -> u32 {
        self.ring.shard_count()
    }

    fn propose(&self, shard: u32, commands: Vec<Command>) -> BoxFuture<'static, Result<Vec<CmdResult>, ApiError>> {
        let node = self.node.clone();
        async move { node.propose(shard, commands).await.map_err(backend_error) }.boxed()
    }

    fn read(&self, shard: u32, request: ReadRequest) -> BoxFuture<'static, Result<ReadResponse, ApiError>> {
        let node = self.node.clone();
        async move { node.read(shard, request).await.map_err(backend_error) }.boxed()
    }

    /// `Node::propose` and `Node::read` follow leader hints and wait out elections themselves.
    fn retries_itself(&self) -> bool {
        true
    }

    fn healthy(&self) -> BoxFuture<'static, Result<(), String>> {
        let status = self.node.shard_status();
        async move {
            let leaderless: Vec<String> = status
                .iter()
                .filter(|s| s.leader.is_none())
                .map(|s| s.shard.to_string())
                .collect();
            if leaderless.is_empty() {
                Ok(())
            } else {
                Err(format!("shards without a leader: {}", leaderless.join(", ")))
            }
        }
        .boxed()
    }
}

/// Stores `--config` as the cluster-wide default configuration on every shard, retrying until
/// each shard has a leader (at start-up a shard may still be electing one).
pub async fn put_default_config(backend: Arc<NodeBackend>, json: String) {
    for shard in 0..backend.shard_count() {
        let command = Command::PutConfig {
            environment: ivory_core::DEFAULT_ENVIRONMENT.to_string(),
            config_json: json.clone(),
        };
        for attempt in 0..120 {
            match backend.node.propose(shard, vec![command.clone()]).await {
                Ok(_) => break,
                Err(e) if e.is_retryable() && attempt < 119 => tokio::time::sleep(Duration::from_millis(250)).await,
                Err(e) => {
                    tracing::error!(shard, error = %e, "cannot store the --config default configuration");
                    break;
                }
            }
        }
    }
}
