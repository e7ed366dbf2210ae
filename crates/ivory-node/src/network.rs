//! openraft's network over tonic: one lazily connected `Channel` per peer address, shared by all
//! groups (HTTP/2 multiplexes them); every request carries its group id.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ivory_raft::openraft;
use ivory_raft::{GroupId, NodeId, TypeConfig};
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use crate::proto;
use crate::proto::raft_transport_client::RaftTransportClient;

/// gRPC's default 4 MiB is too small for a bulk-sized AppendEntries; snapshots are chunked anyway.
pub const GRPC_MESSAGE_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Snapshot data travels in chunks of this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Bounds one whole snapshot transfer (openraft does not: STACK.md §1).
pub const SNAPSHOT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One channel per peer address, connected on first use.
#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
    /// Fault injection: addresses this node must not send to (see `Node::isolate`).
    blocked: Mutex<BTreeSet<String>>,
}

impl Peers {
    /// Fault injection: from now on, requests to `addrs` fail as unreachable.
    pub fn block(&self, addrs: impl IntoIterator<Item = String>) {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        blocked.extend(addrs);
    }

    /// Ends fault injection.
    pub fn unblock_all(&self) {
        self.blocked.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn is_blocked(&self, addr: &str) -> bool {
        self.blocked.lock().unwrap_or_else(|p| p.into_inner()).contains(addr)
    }

    /// The shared channel to `addr` ("host:port").
    ///
    /// # Errors
    /// When `addr` is not a valid endpoint.
    pub fn channel(&self, addr: &str) -> Result<Channel, String> {
        if self.is_blocked(addr) {
            return Err(format!("{addr} is isolated (fault injection)"));
        }
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| "peer table lock poisoned".to_string())?;
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad peer address {addr}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    pub fn transport(&self, addr: &str) -> Result<RaftTransportClient<Channel>, String> {
        Ok(RaftTransportClient::new(self.channel(addr)?)
            .max_decoding_message_size(GRPC_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(GRPC_MESSAGE_MAX_BYTES))
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(value).map_err(|e| format!("encode: {e}"))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("decode: {e}"))
}

/// Creates the per-target clients of one group.
pub struct GroupNetworkFactory {
    pub group: GroupId,
    pub id: NodeId,
    pub peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetworkFactory {
    type Network = GroupNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        GroupNetwork {
            group: self.group,
            id: self.id,
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

pub struct GroupNetwork {
    group: GroupId,
    id: NodeId,
    target: NodeId,
    addr: String,
    peers: Arc<Peers>,
}

fn status_to_rpc(status: tonic::Status) -> RPCError<TypeConfig> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::NotFound | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::from_string(status.to_string()))
        }
        _ => RPCError::Network(NetworkError::from_string(status.to_string())),
    }
}

impl GroupNetwork {
    fn client(&self) -> Result<RaftTransportClient<Channel>, RPCError<TypeConfig>> {
        self.peers
            .transport(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::from_string(e)))
    }

    async fn call<Req, Resp, F, Fut>(
        &self,
        action: RPCTypes,
        req: &Req,
        option: &RPCOption,
        f: F,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(RaftTransportClient<Channel>, proto::RaftRequest) -> Fut,
        Fut: Future<Output = Result<tonic::Response<proto::RaftReply>, tonic::Status>>,
    {
        let payload = encode(req).map_err(|e| RPCError::Network(NetworkError::from_string(e)))?;
        let request = proto::RaftRequest {
            group_id: self.group,
            payload,
        };
        let ttl = option.hard_ttl();
        let reply = match tokio::time::timeout(ttl, f(self.client()?, request)).await {
            Ok(reply) => reply.map_err(status_to_rpc)?,
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.id,
                    target: self.target,
                    timeout: ttl,
                }));
            }
        };
        decode(&reply.into_inner().payload).map_err(|e| RPCError::Network(NetworkError::from_string(e)))
    }

    async fn send_snapshot(
        &self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Vec<u8>>,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let network = |e: String| StreamingError::Network(NetworkError::from_string(e));
        let header = encode(&(vote, snapshot.meta)).map_err(network)?;
        let mut chunks = vec![proto::SnapshotChunk {
            group_id: self.group,
            header,
            data: Vec::new(),
        }];
        for data in snapshot.snapshot.chunks(SNAPSHOT_CHUNK_BYTES) {
            chunks.push(proto::SnapshotChunk {
                group_id: self.group,
                header: Vec::new(),
                data: data.to_vec(),
            });
        }
        let mut client = self.peers.transport(&self.addr).map_err(network)?;
        let reply = client
            .install_snapshot(tokio_stream::iter(chunks))
            .await
            .map_err(|s| StreamingError::Unreachable(Unreachable::from_string(s.to_string())))?;
        // Counted once the receiver took it: what replica moves and lagging followers cost.
        metrics::counter!("ivory_snapshot_bytes_sent_total").increment(snapshot.snapshot.len() as u64);
        decode(&reply.into_inner().payload).map_err(network)
    }
}

impl RaftNetworkV2<TypeConfig> for GroupNetwork {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RPCTypes::AppendEntries, &rpc, &option, |mut c, r| async move {
            c.append_entries(r).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RPCTypes::Vote, &rpc, &option, |mut c, r| async move { c.vote(r).await })
            .await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(RPCTypes::TransferLeader, &req, &option, |mut c, r| async move {
            c.transfer_leader(r).await
        })
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Vec<u8>>,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            sent = tokio::time::timeout(SNAPSHOT_TRANSFER_TIMEOUT, self.send_snapshot(vote, snapshot)) => match sent {
                Ok(result) => result,
                Err(_) => Err(StreamingError::Timeout(Timeout {
                    action: RPCTypes::InstallSnapshot,
                    id: self.id,
                    target: self.target,
                    timeout: SNAPSHOT_TRANSFER_TIMEOUT,
                })),
            },
        }
    }
}
