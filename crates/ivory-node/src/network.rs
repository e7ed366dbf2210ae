//! openraft's network over tonic: one lazily connected `Channel` per peer address, shared by all
//! groups (HTTP/2 multiplexes them); every request carries its group id. Replication of every
//! group to a peer runs on one shared stream (`Replicate`, crates/ivory-node/src/replication.rs),
//! or on a stream per session of a group and follower (`AppendStream`) to a peer without it; the
//! other messages are calls.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use ivory_cluster::ClusterSecret;
use ivory_raft::openraft;
use ivory_raft::{GroupId, NodeId, TypeConfig};
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::base::{BoxFuture, BoxStream};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2, stream_append_sequential};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

use crate::forwarding::ForwardLinks;
use crate::proto;
use crate::proto::raft_transport_client::RaftTransportClient;
use crate::proto::shard_client::ShardClient;
use crate::replication::{Links, Target};

/// gRPC's default 4 MiB is too small for a bulk-sized AppendEntries; snapshots are chunked anyway.
pub const GRPC_MESSAGE_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Snapshot data travels in chunks of this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Bounds one whole snapshot transfer (openraft does not: docs/stack.md §1).
pub const SNAPSHOT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The request header naming the group of an `AppendStream` (its messages follow later, if ever).
pub(crate) const GROUP_HEADER: &str = "ivory-group";

/// Test-only fault injection on everything this node sends to other nodes (Raft RPCs, snapshots,
/// forwarded proposals and reads, admin calls): addresses to drop, and a delay before each
/// request. Address-based, so it stays right when membership changes. Off (one relaxed atomic
/// load per request) until something is set: the `ivory` binary sets it only through its
/// `--enable-fault-injection` control route, in-process tests through [`crate::Node::isolate`].
#[derive(Default)]
pub struct Faults {
    /// Whether any fault is set: the only thing a request checks when none is.
    active: AtomicBool,
    settings: RwLock<NetworkFaults>,
}

/// Every fault a node can be told to inject (`POST /_test/fault` of a node started with
/// `--enable-fault-injection`): the network part ([`NetworkFaults`]) and a slow disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FaultSettings {
    /// Outgoing requests to these addresses ("host:port") fail as unreachable.
    pub drop: BTreeSet<String>,
    /// Added before every outgoing node-to-node request, in milliseconds.
    pub delay_ms: u64,
    /// Added before every flush + fsync of the node's storage, in milliseconds.
    pub slow_disk_ms: u64,
    /// The next flush round fails as a failed `fdatasync` does: the `ivory` binary exits
    /// (code 74) without answering the writes of that round.
    pub fail_sync: bool,
    /// The wall clock this node stamps entries with jumps this far ahead, in milliseconds (the
    /// clamp of `clock.rs` holds the timestamps within a minute of the measured time).
    pub clock_ahead_ms: u64,
}

/// The network part of a fault setting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFaults {
    /// Requests to these addresses ("host:port") fail at once as unreachable.
    pub drop: BTreeSet<String>,
    /// Added before every outgoing request, in milliseconds.
    pub delay_ms: u64,
}

impl NetworkFaults {
    fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.delay_ms == 0
    }
}

impl Faults {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, NetworkFaults> {
        self.settings.read().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut NetworkFaults)) {
        let mut settings = self.settings.write().unwrap_or_else(|p| p.into_inner());
        change(&mut settings);
        self.active.store(!settings.is_empty(), Ordering::Release);
    }

    /// Replaces every network fault.
    pub fn set(&self, faults: NetworkFaults) {
        self.update(|s| *s = faults);
    }

    pub fn get(&self) -> NetworkFaults {
        self.read().clone()
    }

    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    pub(crate) fn dropped(&self, addr: &str) -> bool {
        self.active() && self.read().drop.contains(addr)
    }

    fn delay(&self) -> Duration {
        Duration::from_millis(self.read().delay_ms)
    }

    /// The hook every outgoing call, and every message of a replication stream, passes: waits
    /// the configured delay; false when `addr` is cut off, before or after the wait (a partition
    /// set while a message waited applies to it too).
    pub(crate) async fn pass(&self, addr: &str) -> bool {
        if self.dropped(addr) {
            return false;
        }
        let delay = self.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
            return !self.dropped(addr);
        }
        true
    }
}

fn dropped_status(addr: &str) -> tonic::Status {
    tonic::Status::unavailable(format!("{addr} is isolated (fault injection)"))
}

/// A peer's [`Channel`] behind the fault hook: with no fault set it is the channel itself (one
/// atomic load per request); else a request to a dropped address fails as unavailable and every
/// request waits the configured delay first.
#[derive(Clone)]
pub struct PeerChannel {
    channel: Channel,
    secret: Arc<ClusterSecret>,
    cluster_id: Option<http::HeaderValue>,
    addr: Arc<str>,
    faults: Arc<Faults>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type CheckReply = fn(HttpResponse) -> futures::future::Ready<Result<HttpResponse, BoxError>>;

/// A node refuses the answer of a node whose protocol version it does not know (the header is
/// on every answer of a versioned node; a reply without it is from a build before versions: 1).
fn check_reply(reply: HttpResponse) -> futures::future::Ready<Result<HttpResponse, BoxError>> {
    let checked = match crate::auth::check_protocol(reply.headers()) {
        Ok(()) => Ok(reply),
        Err(why) => {
            tracing::warn!("{why}");
            Err(Box::new(tonic::Status::failed_precondition(why)) as BoxError)
        }
    };
    futures::future::ready(checked)
}
type HttpRequest = tonic::codegen::http::Request<tonic::body::Body>;
type HttpResponse = tonic::codegen::http::Response<tonic::body::Body>;

impl tower::Service<HttpRequest> for PeerChannel {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = futures::future::Either<
        futures::future::AndThen<
            futures::future::ErrInto<tonic::transport::channel::ResponseFuture, BoxError>,
            futures::future::Ready<Result<HttpResponse, BoxError>>,
            CheckReply,
        >,
        futures::future::BoxFuture<'static, Result<HttpResponse, BoxError>>,
    >;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.channel.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: HttpRequest) -> Self::Future {
        use futures::{FutureExt, TryFutureExt};
        // Every node-to-node call proves the cluster secret (crate::auth).
        crate::auth::sign(&self.secret, self.cluster_id.as_ref(), request.headers_mut());
        if !self.faults.active() {
            let reply = self.channel.call(request).err_into();
            return futures::future::Either::Left(reply.and_then(check_reply as CheckReply));
        }
        let addr = self.addr.clone();
        let faults = self.faults.clone();
        // The ready channel goes with the request; this handle keeps a fresh clone (tower's rule).
        let fresh = self.channel.clone();
        let mut channel = std::mem::replace(&mut self.channel, fresh);
        futures::future::Either::Right(
            async move {
                if !faults.pass(&addr).await {
                    return Err(Box::new(dropped_status(&addr)) as BoxError);
                }
                let reply = channel.call(request).await.map_err(BoxError::from)?;
                check_reply(reply).await
            }
            .boxed(),
        )
    }
}

/// One channel per peer address, connected on first use.
pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
    /// Node id -> its address in the cluster metadata: a member that restarted at another address
    /// is dialled there, also by Raft streams opened before it moved.
    addresses: std::sync::RwLock<HashMap<NodeId, String>>,
    faults: Arc<Faults>,
    secret: Arc<ClusterSecret>,
    /// Named on every call, so that a node of another cluster refuses it (crate::auth).
    cluster_id: Option<http::HeaderValue>,
    tls: Option<tonic::transport::ClientTlsConfig>,
    /// One `Replicate` stream per peer, carrying the replication of every group.
    links: Arc<Links>,
    /// One `Forward` stream per peer, carrying the proposals forwarded to its leaders.
    pub(crate) forwards: Arc<ForwardLinks>,
}

impl Peers {
    /// Peers whose requests are signed with `secret` and name `cluster_id`, over TLS when `tls`
    /// is set.
    pub fn new(
        secret: Arc<ClusterSecret>,
        cluster_id: Option<http::HeaderValue>,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Peers {
        Peers {
            channels: Mutex::default(),
            addresses: Default::default(),
            faults: Arc::default(),
            secret,
            cluster_id,
            tls,
            links: Arc::default(),
            forwards: Arc::default(),
        }
    }

    /// Replaces the address book (node id -> address, from the cluster metadata).
    pub fn set_addresses(&self, addresses: HashMap<NodeId, String>) {
        let mut book = self.addresses.write().unwrap_or_else(|p| p.into_inner());
        if *book != addresses {
            *book = addresses;
        }
    }

    /// Node `id`'s address by the cluster metadata, if known.
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        self.addresses
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Fault injection: from now on, requests to `addrs` fail as unreachable.
    pub fn block(&self, addrs: impl IntoIterator<Item = String>) {
        self.faults.update(|s| s.drop.extend(addrs));
    }

    /// Ends the dropping of requests (the delay stays).
    pub fn unblock_all(&self) {
        self.faults.update(|s| s.drop.clear());
    }

    /// `Replicate` streams this node opened to its peers, and replication sessions it opened on
    /// them, since start (for tests).
    pub fn replication_opened(&self) -> (u64, u64) {
        self.links.opened()
    }

    /// The fault hook of everything this node sends.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The shared channel to `addr` ("host:port").
    ///
    /// # Errors
    /// When `addr` is not a valid endpoint.
    pub fn channel(&self, addr: &str) -> Result<PeerChannel, String> {
        if self.faults.dropped(addr) {
            return Err(format!("{addr} is isolated (fault injection)"));
        }
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| "peer table lock poisoned".to_string())?;
        let wrap = |channel: Channel| PeerChannel {
            channel,
            secret: self.secret.clone(),
            cluster_id: self.cluster_id.clone(),
            addr: Arc::from(addr),
            faults: self.faults.clone(),
        };
        if let Some(channel) = channels.get(addr) {
            return Ok(wrap(channel.clone()));
        }
        let channel = endpoint(addr, self.tls.as_ref())?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(wrap(channel))
    }

    pub fn transport(&self, addr: &str) -> Result<RaftTransportClient<PeerChannel>, String> {
        Ok(RaftTransportClient::new(self.channel(addr)?)
            .max_decoding_message_size(GRPC_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(GRPC_MESSAGE_MAX_BYTES))
    }

    /// A `Shard` client of `addr` on its shared channel.
    pub(crate) fn shard_client(&self, addr: &str) -> Result<ShardClient<PeerChannel>, String> {
        Ok(ShardClient::new(self.channel(addr)?)
            .max_decoding_message_size(GRPC_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(GRPC_MESSAGE_MAX_BYTES))
    }
}

/// The endpoint of a node: `https` with `tls`, else `http`.
///
/// # Errors
/// When `addr` is not a valid endpoint or the TLS settings do not apply.
pub fn endpoint(addr: &str, tls: Option<&tonic::transport::ClientTlsConfig>) -> Result<Endpoint, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint =
        Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(|e| format!("bad peer address {addr}: {e}"))?;
    match tls {
        Some(tls) => endpoint
            .tls_config(tls.clone())
            .map_err(|e| format!("TLS to {addr}: {e}")),
        None => Ok(endpoint),
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
            sequential: Arc::default(),
        }
    }
}

pub struct GroupNetwork {
    group: GroupId,
    id: NodeId,
    target: NodeId,
    addr: String,
    peers: Arc<Peers>,
    /// The target answered `AppendStream` as unimplemented (a build before it): replicate to it
    /// one AppendEntries call at a time.
    sequential: Arc<AtomicBool>,
}

pub(crate) fn status_to_rpc(status: tonic::Status) -> RPCError<TypeConfig> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::NotFound | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::from_string(status.to_string()))
        }
        _ => RPCError::Network(NetworkError::from_string(status.to_string())),
    }
}

impl GroupNetwork {
    fn client(&self) -> Result<RaftTransportClient<PeerChannel>, RPCError<TypeConfig>> {
        // The metadata's address wins over the one in the group's membership: the target may have
        // restarted elsewhere since this stream was opened.
        let addr = self.peers.address_of(self.target);
        self.peers
            .transport(addr.as_deref().unwrap_or(&self.addr))
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
        F: FnOnce(RaftTransportClient<PeerChannel>, proto::RaftRequest) -> Fut,
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

    /// The target's address: the metadata's wins over the one in the group's membership (the
    /// target may have restarted elsewhere since the session's network was made).
    fn target_addr(&self) -> String {
        self.peers.address_of(self.target).unwrap_or_else(|| self.addr.clone())
    }

    /// A session on the peer's shared `Replicate` stream (crates/ivory-node/src/replication.rs).
    async fn open_linked_session<'s, S>(
        &'s mut self,
        addr: String,
        input: S,
        option: RPCOption,
    ) -> Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        let faults = self.peers.faults.clone();
        if faults.dropped(&addr) {
            return Err(RPCError::Unreachable(Unreachable::from_string(format!(
                "{addr} is isolated (fault injection)"
            ))));
        }
        let target = Target {
            group: self.group,
            id: self.id,
            target: self.target,
            addr: addr.as_str().into(),
            faults,
        };
        let peers = self.peers.clone();
        let client = move || peers.transport(&addr);
        crate::replication::open_session(
            &self.peers.links,
            target,
            client,
            input,
            option.soft_ttl(),
            option.hard_ttl(),
        )
        .await
    }

    async fn open_append_stream<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        let mut client = self.client()?;
        let group = self.group;
        let addr: Arc<str> = self
            .peers
            .address_of(self.target)
            .unwrap_or_else(|| self.addr.clone())
            .into();
        let faults = self.peers.faults.clone();
        // Sent and not yet answered: a silent stream is a fault only while this is not zero.
        let in_flight = Arc::new(AtomicUsize::new(0));
        let sent = in_flight.clone();
        let requests = input
            .then(move |rpc| {
                let (faults, addr) = (faults.clone(), addr.clone());
                async move {
                    // A call's fault hook, per message: a partition set while the stream is open
                    // ends it (the next one is refused when opened).
                    if faults.active() && !faults.pass(&addr).await {
                        return None;
                    }
                    match encode(&rpc) {
                        Ok(payload) => Some(proto::RaftRequest {
                            group_id: group,
                            payload,
                        }),
                        Err(e) => {
                            tracing::error!(group, error = %e, "an AppendEntries did not encode: ending the stream");
                            None
                        }
                    }
                }
            })
            .take_while(|request| futures::future::ready(request.is_some()))
            .filter_map(futures::future::ready)
            .inspect(move |_| {
                sent.fetch_add(1, Ordering::Relaxed);
            });
        let mut request = tonic::Request::new(requests);
        request
            .metadata_mut()
            .insert(GROUP_HEADER, tonic::metadata::MetadataValue::from(group));
        let (id, target) = (self.id, self.target);
        let timeout = move |ttl| {
            RPCError::Timeout(Timeout {
                action: RPCTypes::AppendEntries,
                id,
                target,
                timeout: ttl,
            })
        };
        let opened = match tokio::time::timeout(option.soft_ttl(), client.append_stream(request)).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(status)) => return Err(self.stream_refused(status)),
            Err(_) => return Err(timeout(option.soft_ttl())),
        };
        let ttl = option.hard_ttl();
        let timed_out = timeout(ttl);
        let sequential = self.sequential.clone();
        let replies = futures::stream::unfold(Some(opened.into_inner()), move |state| {
            let (in_flight, timed_out, sequential) = (in_flight.clone(), timed_out.clone(), sequential.clone());
            async move {
                let mut replies = state?;
                loop {
                    let reply = match tokio::time::timeout(ttl, replies.next()).await {
                        Err(_) if in_flight.load(Ordering::Relaxed) == 0 => continue,
                        Err(_) => return Some((Err(timed_out), None)),
                        Ok(None) => return None,
                        Ok(Some(Err(status))) => {
                            // An HTTP 404 (no such route) shows only here, as unimplemented.
                            note_unimplemented(&sequential, group, target, &status);
                            return Some((Err(status_to_rpc(status)), None));
                        }
                        Ok(Some(Ok(reply))) => reply,
                    };
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    let result: Result<StreamAppendResult<TypeConfig>, _> =
                        decode(&reply.payload).map_err(|e| RPCError::Network(NetworkError::from_string(e)));
                    // openraft ends the session at a conflict or a higher vote; so does the stream.
                    let more = matches!(result, Ok(Ok(_)));
                    return Some((result, more.then_some(replies)));
                }
            }
        });
        Ok(Box::pin(replies))
    }

    fn stream_refused(&self, status: tonic::Status) -> RPCError<TypeConfig> {
        note_unimplemented(&self.sequential, self.group, self.target, &status);
        status_to_rpc(status)
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

fn note_unimplemented(sequential: &AtomicBool, group: GroupId, target: NodeId, status: &tonic::Status) {
    if status.code() == tonic::Code::Unimplemented && !sequential.swap(true, Ordering::Relaxed) {
        tracing::info!(
            group,
            target,
            "the target has no AppendStream: replicating to it call by call"
        );
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

    /// Pipelined replication on one gRPC stream per session: an entry leaves as soon as it is in
    /// the leader's log, without waiting for the answer to the one before, and without a call's
    /// headers, signing, routing and task per entry (the cluster plane checks the stream once).
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + openraft::OptionalSend + Unpin + 'static,
    {
        if self.sequential.load(Ordering::Relaxed) {
            return stream_append_sequential(self, input, option);
        }
        let addr = self.target_addr();
        if self.peers.links.unsupported(&addr) {
            return Box::pin(self.open_append_stream(input, option));
        }
        Box::pin(self.open_linked_session(addr, input, option))
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

/// Test servers of a build without a new route: a tonic server with no services (it answers
/// `Unimplemented` at once) and an HTTP server without the route (HTTP 404, seen once the stream
/// is read). Each with its address, the task serving it, and peers that call it.
#[cfg(test)]
pub(crate) async fn servers_without_routes() -> Vec<(String, tokio::task::JoinHandle<std::io::Result<()>>, Peers)> {
    let mut servers = Vec::new();
    for router in [
        tonic::service::Routes::default().into_axum_router(),
        axum::Router::new(),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let secret = Arc::new(ClusterSecret::new("a-secret-of-enough-length-for-tests").expect("secret"));
        servers.push((addr, server, Peers::new(secret, None, None)));
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_of_an_unknown_protocol_version_is_refused_and_one_without_a_version_taken() {
        let reply = |version: Option<&'static str>| {
            let mut reply = HttpResponse::new(tonic::body::Body::empty());
            if let Some(v) = version {
                reply.headers_mut().insert(
                    crate::auth::PROTOCOL_HEADER,
                    tonic::codegen::http::HeaderValue::from_static(v),
                );
            }
            reply
        };
        assert!(check_reply(reply(None)).into_inner().is_ok());
        assert!(check_reply(reply(Some("1"))).into_inner().is_ok());
        let refused = check_reply(reply(Some("2"))).into_inner().expect_err("refused");
        let status = refused.downcast::<tonic::Status>().expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert!(status.message().contains("protocol version 2"), "{status:?}");
    }

    /// Whether the first answer of a new session to a server is a success.
    async fn first_reply(network: &mut GroupNetwork, option: &RPCOption) -> Option<bool> {
        // One request, so that a server without the route answers 404 to it.
        let one = futures::stream::iter([AppendEntriesRequest::<TypeConfig> {
            vote: openraft::Vote::new(1, 1),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        }])
        .chain(futures::stream::pending());
        match network.stream_append(Box::pin(one), option.clone()).await {
            Ok(mut replies) => replies.next().await.map(|r| r.is_ok()),
            Err(_) => None,
        }
    }

    /// A node built before `Replicate` and `AppendStream` answers them as unimplemented: a tonic
    /// server at once (`grpc-status` 12), a server without the route as HTTP 404 once the stream
    /// is read. Either way the session fails, the next one tries a stream of its own, and after
    /// that fails too the sessions replicate call by call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_target_without_append_stream_is_replicated_to_call_by_call() {
        tokio::time::timeout(Duration::from_secs(20), async {
            for (addr, server, peers) in servers_without_routes().await {
                let mut network = GroupNetwork {
                    group: 3,
                    id: 1,
                    target: 2,
                    addr,
                    peers: Arc::new(peers),
                    sequential: Arc::default(),
                };
                let option = RPCOption::new(Duration::from_secs(5));
                assert_ne!(
                    first_reply(&mut network, &option).await,
                    Some(true),
                    "no answer from a server without the service"
                );
                assert!(
                    network.peers.links.unsupported(&network.addr),
                    "the next session has a stream of its own"
                );
                assert!(!network.sequential.load(Ordering::Relaxed), "not yet call by call");
                assert_ne!(
                    first_reply(&mut network, &option).await,
                    Some(true),
                    "no answer from a server without the service"
                );
                assert!(
                    network.sequential.load(Ordering::Relaxed),
                    "the next session goes call by call"
                );
                server.abort();
            }
        })
        .await
        .expect("test timed out");
    }
}
