//! An Ivory node: hosts replicas of many shards, each an openraft group ([`ivory_raft`]), and
//! serves the node-to-node gRPC protocol (`proto/ivory/v1/raft.proto`): the Raft transport
//! multiplexed by group id, `Propose` and `Read` for shards, and a small admin surface.
//!
//! The REST gateway calls [`Node`] in-process; [`Node::grpc_router`] merges the gRPC services
//! into the same axum router so that REST and gRPC share one port.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::BTreeMap;
//! use ivory_node::{Node, NodeConfig};
//!
//! // `ivory serve`: one node, replication factor 1.
//! let listen: std::net::SocketAddr = "127.0.0.1:8080".parse()?;
//! let cfg = NodeConfig {
//!     id: 1,
//!     listen,
//!     data_dir: "/var/lib/ivory".into(),
//!     peers: BTreeMap::from([(1, listen.to_string())]),
//!     shard_count: 16,
//!     replicas: 1,
//!     cluster_secret: std::sync::Arc::new(ivory_cluster::ClusterSecret::new("a secret of 16+ characters")?),
//!     client_tls: None,
//!     cluster_id: Some("3f9c0e21d7a84b56".into()),
//! };
//! let node = Node::start(cfg).await?;
//! let app = axum::Router::new() /* REST routes */ .merge(node.grpc_router());
//! let listener = tokio::net::TcpListener::bind(listen).await?;
//! let server = tokio::spawn({
//!     let node = node.clone();
//!     async move { node.serve(listener, app).await }
//! });
//! let status = node.read(0, ivory_core::ReadRequest::StateHash).await?;
//! # let _ = status;
//! node.shutdown().await; // also stops `serve`
//! server.await??;
//! # Ok(()) }
//! ```

pub mod auth;
mod backup;
mod batcher;
pub mod clock;
mod cluster;
mod error;
mod forwarding;
mod membership;
mod meta;
pub mod network;
mod node;
mod peer_streams;
mod placement;
mod rebalancer;
mod replication;
mod service;

pub mod proto {
    //! Generated from `proto/ivory/v1/raft.proto`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ivory.v1");
}

pub use backup::{BACKUP_MAX_BYTES, GroupBackup, collect_backup};
pub use error::{NO_QUORUM_RETRY_AFTER_MS, NodeError};
pub use ivory_cluster::ClusterSecret;
pub use ivory_raft::{ApplyDigest, GROUP_COMMIT_WINDOW_DEFAULT, StorageOptions};
pub use meta::{JoinInfo, join_cluster};
pub use network::FaultSettings;
pub use node::{Node, NodeConfig, SWEEP_INTERVAL, ShardStatus};
pub use placement::replicas_for;
pub use rebalancer::MOVES_IN_FLIGHT_MAX;
