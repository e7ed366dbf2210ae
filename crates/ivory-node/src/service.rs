//! The tonic services of `proto/ivory/v1/raft.proto`, and serving them next to REST on one port.

use std::io;

use futures::StreamExt;
use ivory_core::{Command, ReadRequest};
use ivory_raft::openraft;
use ivory_raft::{Raft, TypeConfig};
use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use tonic::{Request, Response, Status, Streaming};

use crate::NodeError;
use crate::cluster::group_status;
use crate::network::{GROUP_HEADER, GRPC_MESSAGE_MAX_BYTES, decode, encode};
use crate::node::Node;
use crate::proto;
use crate::proto::admin_server::{Admin, AdminServer};
use crate::proto::cluster_server::ClusterServer;
use crate::proto::raft_transport_server::{RaftTransport, RaftTransportServer};
use crate::proto::shard_server::{Shard, ShardServer};
use ivory_cluster::{META_GROUP, MetaCommand};

/// A received snapshot may not exceed this (it is held in memory while installing).
const SNAPSHOT_RECEIVE_MAX_BYTES: usize = 1 << 30;

fn raft_of(node: &Node, group: u32) -> Result<Raft, Status> {
    node.raft(group)
        .map_err(|_| Status::not_found(format!("group {group} is not hosted here")))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<proto::RaftReply>, Status> {
    let payload = encode(value).map_err(Status::internal)?;
    Ok(Response::new(proto::RaftReply { payload }))
}

#[tonic::async_trait]
impl RaftTransport for Node {
    async fn append_entries(&self, request: Request<proto::RaftRequest>) -> Result<Response<proto::RaftReply>, Status> {
        let request = request.into_inner();
        let raft = raft_of(self, request.group_id)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&request.payload).map_err(Status::invalid_argument)?;
        let response = raft
            .append_entries(rpc)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        reply(&response)
    }

    type AppendStreamStream = futures::stream::BoxStream<'static, Result<proto::RaftReply, Status>>;

    async fn append_stream(
        &self,
        request: Request<Streaming<proto::RaftRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        // From the header: the leader's first entry may be a while coming.
        let group = request
            .metadata()
            .get(GROUP_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| Status::invalid_argument(format!("an append stream names its group in `{GROUP_HEADER}`")))?;
        let raft = raft_of(self, group)?;
        // The stream ends with this node: openraft's task behind it holds the group's storage.
        let stopping = self.stopping();
        // What does not decode, or names another group, ends the input: the leader sees the
        // stream end and opens another.
        let rpcs = request.into_inner().take_until(stopping).scan((), move |_, message| {
            let rpc = match message {
                Ok(m) if m.group_id == group => match decode::<AppendEntriesRequest<TypeConfig>>(&m.payload) {
                    Ok(rpc) => Some(rpc),
                    Err(e) => {
                        tracing::warn!(group, error = %e, "an append stream's message did not decode");
                        None
                    }
                },
                Ok(m) => {
                    tracing::warn!(
                        group,
                        other = m.group_id,
                        "an append stream's message named another group"
                    );
                    None
                }
                // The leader closed or lost the stream: the ordinary end of a session.
                Err(_) => None,
            };
            futures::future::ready(rpc)
        });
        let replies = raft.stream_append(rpcs).map(|answer| match answer {
            Ok(result) => encode(&result)
                .map(|payload| proto::RaftReply { payload })
                .map_err(Status::internal),
            Err(fatal) => Err(Status::unavailable(fatal.to_string())),
        });
        Ok(Response::new(Box::pin(replies)))
    }

    type ReplicateStream = futures::stream::BoxStream<'static, Result<proto::ReplicationFrame, Status>>;

    async fn replicate(
        &self,
        request: Request<Streaming<proto::ReplicationFrame>>,
    ) -> Result<Response<Self::ReplicateStream>, Status> {
        // The stream ends with this node: openraft's tasks behind it hold the groups' storage.
        let inbound = request.into_inner().take_until(Box::pin(self.stopping()));
        let node = self.clone();
        let frames = crate::replication::serve(move |group| node.raft(group).ok(), inbound);
        Ok(Response::new(Box::pin(frames.map(Ok))))
    }

    async fn vote(&self, request: Request<proto::RaftRequest>) -> Result<Response<proto::RaftReply>, Status> {
        let request = request.into_inner();
        let raft = raft_of(self, request.group_id)?;
        let rpc: VoteRequest<TypeConfig> = decode(&request.payload).map_err(Status::invalid_argument)?;
        let response = raft.vote(rpc).await.map_err(|e| Status::unavailable(e.to_string()))?;
        reply(&response)
    }

    async fn transfer_leader(
        &self,
        request: Request<proto::RaftRequest>,
    ) -> Result<Response<proto::RaftReply>, Status> {
        let request = request.into_inner();
        let raft = raft_of(self, request.group_id)?;
        let rpc: TransferLeaderRequest<TypeConfig> = decode(&request.payload).map_err(Status::invalid_argument)?;
        let response = raft
            .handle_transfer_leader(rpc)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        reply(&response)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<proto::SnapshotChunk>>,
    ) -> Result<Response<proto::RaftReply>, Status> {
        let mut chunks = request.into_inner();
        let first = chunks
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let raft = raft_of(self, first.group_id)?;
        let (vote, meta): (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>) =
            decode(&first.header).map_err(Status::invalid_argument)?;
        let mut data = first.data;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if data.len() + chunk.data.len() > SNAPSHOT_RECEIVE_MAX_BYTES {
                return Err(Status::resource_exhausted("snapshot too large"));
            }
            data.extend_from_slice(&chunk.data);
        }
        let snapshot = SnapshotOf::<TypeConfig, Vec<u8>> { meta, snapshot: data };
        let response = raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        reply(&response)
    }
}

#[tonic::async_trait]
impl Shard for Node {
    async fn propose(&self, request: Request<proto::ProposeRequest>) -> Result<Response<proto::ProposeReply>, Status> {
        Ok(Response::new(self.answer_propose(request.into_inner()).await))
    }

    type ForwardStream = futures::stream::BoxStream<'static, Result<proto::ForwardFrame, Status>>;

    async fn forward(
        &self,
        request: Request<Streaming<proto::ForwardFrame>>,
    ) -> Result<Response<Self::ForwardStream>, Status> {
        let inbound = request.into_inner().take_until(Box::pin(self.stopping()));
        let frames = crate::forwarding::serve(self.clone(), inbound);
        Ok(Response::new(Box::pin(frames.map(Ok))))
    }

    async fn read(&self, request: Request<proto::ReadRequest>) -> Result<Response<proto::ReadReply>, Status> {
        let request = request.into_inner();
        let shard = request.group_id;
        let result = if shard == META_GROUP {
            let meta = self.current_meta_local().await;
            meta.and_then(|m| encode(&m).map_err(NodeError::Invalid))
        } else {
            match decode::<ReadRequest>(&request.request) {
                Ok(req) => self.read_local_linearizable(shard, &req).await,
                Err(e) => Err(NodeError::Invalid(e)),
            }
            .and_then(|r| encode(&r).map_err(NodeError::Invalid))
        };
        let reply = match result {
            Ok(response) => proto::ReadReply {
                response,
                error: None,
                placement_version: self.placement_version(),
            },
            Err(e) => proto::ReadReply {
                response: Vec::new(),
                error: Some(e.to_proto()),
                placement_version: self.placement_version(),
            },
        };
        Ok(Response::new(reply))
    }
}

fn admin_reply(result: Result<(), NodeError>) -> Result<Response<proto::AdminReply>, Status> {
    Ok(Response::new(proto::AdminReply {
        error: result.err().map(|e| e.to_proto()),
    }))
}

#[tonic::async_trait]
impl Admin for Node {
    async fn add_replica(
        &self,
        request: Request<proto::AddReplicaRequest>,
    ) -> Result<Response<proto::AdminReply>, Status> {
        let r = request.into_inner();
        admin_reply(self.add_replica_local(r.group_id, r.node_id, r.addr).await)
    }

    async fn remove_replica(
        &self,
        request: Request<proto::RemoveReplicaRequest>,
    ) -> Result<Response<proto::AdminReply>, Status> {
        let r = request.into_inner();
        admin_reply(self.remove_replica_local(r.group_id, r.node_id).await)
    }

    async fn open_group(&self, request: Request<proto::GroupRequest>) -> Result<Response<proto::AdminReply>, Status> {
        admin_reply(self.open_group(request.into_inner().group_id).await.map(|_| ()))
    }

    async fn close_group(&self, request: Request<proto::GroupRequest>) -> Result<Response<proto::AdminReply>, Status> {
        admin_reply(self.close_group(request.into_inner().group_id).await)
    }

    async fn transfer_leader(
        &self,
        request: Request<proto::RemoveReplicaRequest>,
    ) -> Result<Response<proto::AdminReply>, Status> {
        let r = request.into_inner();
        admin_reply(self.transfer_leader_local(r.group_id, r.node_id).await)
    }

    async fn status(&self, _request: Request<proto::StatusRequest>) -> Result<Response<proto::StatusReply>, Status> {
        let groups = self.shard_status().into_iter().map(group_status).collect();
        Ok(Response::new(proto::StatusReply {
            node_id: self.id(),
            groups,
            placement_version: self.placement_version(),
            meta: self.meta_status().map(group_status),
        }))
    }
}

impl Node {
    /// The node's gRPC services as an axum router, to merge with REST on one port (docs/stack.md §6).
    pub fn grpc_router(&self) -> axum::Router {
        let transport = RaftTransportServer::new(self.clone())
            .max_decoding_message_size(GRPC_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(GRPC_MESSAGE_MAX_BYTES);
        let shard = ShardServer::new(self.clone())
            .max_decoding_message_size(GRPC_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(GRPC_MESSAGE_MAX_BYTES);
        tonic::service::Routes::new(transport)
            .add_service(shard)
            .add_service(AdminServer::new(self.clone()))
            .add_service(ClusterServer::new(self.clone()))
            .into_axum_router()
            // Every method of these services is the cluster plane: no call without the secret.
            .layer(axum::middleware::from_fn_with_state(
                crate::auth::Guard {
                    secret: self.config().cluster_secret.clone(),
                    // A node that calls others over mutual TLS expects the same of its callers.
                    require_certified_peer: self.config().client_tls.is_some(),
                    // Checked at start (Node::launch).
                    cluster_id: self.config().cluster_id_header().ok().flatten(),
                },
                crate::auth::require_cluster_token,
            ))
    }

    /// Serves `router` (e.g. [`Node::grpc_router`] merged with REST) on `listener` with
    /// `TCP_NODELAY`, until [`Node::shutdown`]; then closes its connections gracefully.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn serve(&self, listener: tokio::net::TcpListener, router: axum::Router) -> io::Result<()> {
        use axum::serve::ListenerExt;
        let mut shutdown = self.inner.shutdown_tx.subscribe();
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stopped| *stopped).await;
            })
            .await
    }
}

impl Node {
    /// Done when this node begins to stop: ends the streams it serves.
    fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut shutdown = self.inner.shutdown_tx.subscribe();
        async move {
            let _ = shutdown.wait_for(|stopping| *stopping).await;
        }
    }

    /// What `Propose` answers, also to a call on a `Forward` stream.
    pub(crate) async fn answer_propose(&self, request: proto::ProposeRequest) -> proto::ProposeReply {
        let shard = request.group_id;
        let result = if shard == META_GROUP {
            match decode::<MetaCommand>(&request.commands) {
                Ok(command) => self
                    .propose_meta_local(command)
                    .await
                    .and_then(|r| encode(&r).map_err(NodeError::Invalid)),
                Err(e) => Err(NodeError::Invalid(e)),
            }
        } else {
            match decode::<Vec<Command>>(&request.commands) {
                Ok(commands) => self
                    .propose_coalesced(shard, commands)
                    .await
                    .and_then(|r| encode(&r).map_err(NodeError::Invalid)),
                Err(e) => Err(NodeError::Invalid(e)),
            }
        };
        self.propose_reply(result)
    }

    /// A `Propose` answer: the encoded results, or the error, and this node's placement version.
    pub(crate) fn propose_reply(&self, result: Result<Vec<u8>, NodeError>) -> proto::ProposeReply {
        match result {
            Ok(results) => proto::ProposeReply {
                results,
                error: None,
                placement_version: self.placement_version(),
            },
            Err(e) => proto::ProposeReply {
                results: Vec::new(),
                error: Some(e.to_proto()),
                placement_version: self.placement_version(),
            },
        }
    }
}
