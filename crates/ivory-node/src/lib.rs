//! An Ivory node: hosts replicas of many shards, each an openraft group ([`ivory_raft`]), and
//! serves the node-to-node gRPC protocol (`proto/ivory/v1/raft.proto`): the Raft transport
//! multiplexed by group id, `Propose` and `Read` for shards, and a small admin surface.
//!
//! The REST gateway calls [`Node`] in-process; [`Node::grpc_router`] merges the gRPC services
//! into the same axum router so that REST and gRPC share one port.

mod error;
pub mod network;
mod node;
mod placement;
mod service;

pub mod proto {
    //! Generated from `proto/ivory/v1/raft.proto`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ivory.v1");
}

pub use error::{NO_QUORUM_RETRY_AFTER_MS, NodeError};
pub use ivory_raft::{ApplyDigest, StorageOptions};
pub use node::{Node, NodeConfig, ShardStatus};
pub use placement::replicas_for;
