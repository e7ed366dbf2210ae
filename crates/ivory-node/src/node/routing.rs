//! Routing and forwarding: where a write or read for a shard goes (this node when it leads the
//! shard, else the last leader seen, else the placement), the one retry loop that follows hints,
//! and the forwarding client that carries a request to another node.
//!
//! Reads come in two kinds, named by what they promise: [`Node::read`] and
//! `read_local_linearizable` (read-index on the leader) are linearizable;
//! [`Node::read_local_stale`] answers from this replica's state as it is, without asking anyone.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ivory_cluster::META_GROUP;
use ivory_core::{BATCH_COMMANDS_MAX, Batch, CmdResult, Command, ReadRequest, ReadResponse};
use ivory_raft::openraft;
use ivory_raft::{GroupEntry, GroupId, GroupReply, TypeConfig};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::raft::ReadPolicy;

use super::Node;
use super::sweeper::hold_due;
use crate::error::{NO_QUORUM_RETRY_AFTER_MS, NodeError};
use crate::network::{GRPC_MESSAGE_MAX_BYTES, PeerChannel, decode, encode};
use crate::placement::replicas_for;
use crate::proto;
use crate::proto::shard_client::ShardClient;

/// A propose or read keeps retrying retryable failures (no quorum yet, leader moved) this long:
/// past the longest election timeout plus a vote round, so a failover is waited out. The only retry
/// loop of a write (the gateway calls the node once).
const RETRY_FOR: Duration = Duration::from_secs(5);

/// Pause between retries.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// One forwarded request to another node.
pub(crate) const FORWARD_TIMEOUT: Duration = Duration::from_secs(6);

/// One local write or read-index round; a leader without quorum would otherwise wait forever.
/// A write that timed out may still commit: retrying is safe because ivory-core deduplicates
/// event ids.
pub(crate) const LOCAL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// A "forward to leader" answer: a hint to follow, or (no leader yet, or a new leader that has not
/// heard from a quorum) a retryable no-quorum.
fn forward_err(shard: u32, me: u64, leader_id: Option<u64>) -> NodeError {
    match leader_id {
        Some(l) if l != me => NodeError::NotLeader {
            shard,
            leader_hint: Some(l),
        },
        _ => no_quorum(shard),
    }
}

pub(crate) fn no_quorum(shard: u32) -> NodeError {
    NodeError::NoQuorum {
        shard,
        retry_after_ms: NO_QUORUM_RETRY_AFTER_MS,
    }
}

pub(crate) fn map_write_err(shard: u32, me: u64, e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> NodeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => forward_err(shard, me, f.leader_id),
        // Commit status unknown: retrying is safe because ivory-core deduplicates by event id.
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => no_quorum(shard),
        // A membership change still committing (often: a new leader has not committed its term's
        // first entry yet): the same change succeeds a moment later.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            openraft::error::ChangeMembershipError::InProgress(_),
        )) => no_quorum(shard),
        RaftError::APIError(e) => NodeError::Invalid(e.to_string()),
        RaftError::Fatal(e) => NodeError::Unavailable(format!("shard {shard}: {e}")),
    }
}

pub(crate) fn map_read_err(
    shard: u32,
    me: u64,
    e: RaftError<TypeConfig, LinearizableReadError<TypeConfig>>,
) -> NodeError {
    match e {
        RaftError::APIError(LinearizableReadError::ForwardToLeader(f)) => forward_err(shard, me, f.leader_id),
        RaftError::APIError(LinearizableReadError::QuorumNotEnough(_)) => no_quorum(shard),
        RaftError::Fatal(e) => NodeError::Unavailable(format!("shard {shard}: {e}")),
    }
}

pub(crate) fn status_err(e: tonic::Status) -> NodeError {
    NodeError::Unavailable(e.to_string())
}

impl Node {
    /// The address of node `id`: from the cluster metadata, else the group's membership, else the
    /// peer list the node started with.
    pub(crate) fn addr_of(&self, shard: u32, id: u64) -> Option<String> {
        // The metadata first: a member that restarted at another address is recorded there.
        if let Some(Some(addr)) = self.with_meta(|m| m.addr_of(id).map(str::to_string)) {
            return Some(addr);
        }
        if let Some(g) = self.group(shard) {
            let m = g.raft.server_metrics().borrow_watched().membership_config.clone();
            if let Some(n) = m.membership().get_node(&id) {
                return Some(n.addr.clone());
            }
        }
        self.inner.cfg.peers.get(&id).cloned()
    }

    /// The replicas of a shard this node does not host: by the cluster metadata once it is
    /// initialized, else by the ring over the initial members.
    fn placed_replicas(&self, shard: u32) -> Vec<u64> {
        let placed = self.with_meta(|m| m.placement.get(&shard).cloned()).flatten();
        placed.unwrap_or_else(|| replicas_for(shard, &self.inner.cfg.peers, self.inner.cfg.replicas))
    }

    /// The answer for a request about a shard this node does not host: where to go instead.
    pub(crate) fn not_hosted(&self, shard: u32) -> NodeError {
        if shard != META_GROUP && shard >= self.inner.cfg.shard_count {
            return NodeError::UnknownShard(shard);
        }
        let hint = self
            .inner
            .leaders
            .get(shard)
            .or_else(|| self.placed_replicas(shard).first().copied())
            .filter(|l| *l != self.id());
        match hint {
            Some(l) => NodeError::NotLeader {
                shard,
                leader_hint: Some(l),
            },
            None => NodeError::Unavailable(format!("shard {shard} is not hosted on node {}", self.id())),
        }
    }

    pub(crate) fn channel_to(&self, shard: u32, id: u64) -> Result<PeerChannel, NodeError> {
        let addr = self
            .addr_of(shard, id)
            .ok_or_else(|| NodeError::Unavailable(format!("no address for node {id}")))?;
        self.inner.peers.channel(&addr).map_err(NodeError::Unavailable)
    }

    /// Where to send a request for `shard` first: the known leader, else this node if it hosts
    /// the shard, else the last leader seen, else the first replica by placement.
    fn first_target(&self, shard: u32) -> u64 {
        if let Some(g) = self.group(shard) {
            // The server metrics, not the whole `RaftMetrics`: this runs for every request.
            return g
                .raft
                .server_metrics()
                .borrow_watched()
                .current_leader
                .unwrap_or(self.id());
        }
        if let Some(leader) = self.inner.leaders.get(shard) {
            return leader;
        }
        self.placed_replicas(shard).first().copied().unwrap_or(self.id())
    }

    fn hosted_without_leader(&self, shard: u32) -> bool {
        self.group(shard)
            .is_some_and(|g| g.raft.server_metrics().borrow_watched().current_leader.is_none())
    }

    /// The next node to try after `failed` did not answer, or knew no leader when this node knows none.
    fn next_target(&self, shard: u32, failed: u64) -> u64 {
        let mut candidates: Vec<u64> = match self.group(shard) {
            Some(g) => g
                .raft
                .server_metrics()
                .borrow_watched()
                .membership_config
                .membership()
                .voter_ids()
                .collect(),
            None => self.placed_replicas(shard),
        };
        candidates.sort_unstable();
        let pos = candidates.iter().position(|c| *c == failed).map_or(0, |p| p + 1);
        candidates
            .get(pos % candidates.len().max(1))
            .copied()
            .unwrap_or(self.id())
    }

    /// Runs `attempt(target)` until it succeeds, fails for good, or [`RETRY_FOR`] passes:
    /// follows leader hints, waits out missing quorums, moves on from unreachable nodes.
    pub(crate) async fn with_retries<T, F, Fut>(&self, shard: u32, mut attempt: F) -> Result<T, NodeError>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = Result<T, NodeError>>,
    {
        let deadline = Instant::now() + RETRY_FOR;
        let mut target = self.first_target(shard);
        let mut hops_without_pause = 0;
        loop {
            let err = match attempt(target).await {
                Ok(v) => {
                    if target != self.id() {
                        self.inner.leaders.set(shard, target);
                    }
                    return Ok(v);
                }
                Err(e) => e,
            };
            if let NodeError::NotLeader {
                leader_hint: Some(l), ..
            } = &err
            {
                self.inner.leaders.set(shard, *l);
            }
            if !err.is_retryable() || Instant::now() >= deadline {
                return Err(err);
            }
            let next = match &err {
                NodeError::NotLeader {
                    leader_hint: Some(l), ..
                } => *l,
                NodeError::Unavailable(_) => self.next_target(shard, target),
                // This node's replica knows no leader: it may be the one cut off (restarted at an
                // address the leader has not learned yet), so ask the other replicas for theirs.
                NodeError::NoQuorum { .. } if self.hosted_without_leader(shard) => self.next_target(shard, target),
                _ => self.first_target(shard),
            };
            // Follow a fresh hint at once; pause otherwise so that a leaderless group or two
            // nodes pointing at each other during an election are not hammered.
            hops_without_pause += 1;
            if next == target || hops_without_pause > 2 || !matches!(err, NodeError::NotLeader { .. }) {
                tokio::time::sleep(RETRY_PAUSE).await;
                hops_without_pause = 0;
            }
            target = next;
        }
    }

    /// Proposes `commands` to `shard` as one log entry and returns their results in order.
    /// Forwards to the leader when this node does not lead the shard.
    ///
    /// # Errors
    /// [`NodeError::NoQuorum`] / [`NodeError::Unavailable`] (retryable) when no leader could take the
    /// write within about 5 s; [`NodeError::Invalid`] for an oversized batch. An empty batch is
    /// the hold-expiry sweep: it only stamps the leader's time, which expires the holds due.
    pub async fn propose(&self, shard: u32, commands: Vec<Command>) -> Result<Vec<CmdResult>, NodeError> {
        if commands.len() > BATCH_COMMANDS_MAX {
            return Err(NodeError::Invalid(format!(
                "a proposal holds 0..={BATCH_COMMANDS_MAX} commands, got {}",
                commands.len()
            )));
        }
        self.note_client_writes(shard, commands.len());
        // The first attempt takes the commands; a retry reads them back from this copy, which
        // costs one buffer where a clone per attempt cost every string of every command.
        let copy = encode(&commands).map_err(NodeError::Invalid)?;
        let mut first = Some(commands);
        self.with_retries(shard, |target| {
            let commands = first.take().map_or_else(|| decode(&copy), Ok);
            async move {
                let commands = commands.map_err(NodeError::Storage)?;
                if target == self.id() {
                    self.propose_coalesced(shard, commands).await
                } else {
                    self.forward_coalesced(target, shard, commands).await
                }
            }
        })
        .await
    }

    /// One attempt at this node: the leader stamps the batch and appends it.
    pub(crate) async fn propose_local(&self, shard: u32, commands: Vec<Command>) -> Result<Vec<CmdResult>, NodeError> {
        if shard == META_GROUP {
            return Err(NodeError::Invalid("stock commands go to shard groups".into()));
        }
        // Never below the shard's clock, never a jump far ahead (crate::clock).
        let shard_clock = self
            .group(shard)
            .and_then(|g| g.shard.read().ok().map(|s| s.clock_ms()))
            .unwrap_or(0);
        let batch = GroupEntry::Shard(Arc::new(Batch {
            ts_ms: crate::clock::stamp_ms(shard_clock),
            commands,
        }));
        match self.write_local(shard, batch).await? {
            GroupReply::Shard(results) => Ok(results),
            GroupReply::Meta(_) => Err(NodeError::Storage(format!("shard {shard} answered as metadata"))),
        }
    }

    /// Appends one entry to a group this node leads and waits until it is applied.
    pub(crate) async fn write_local(&self, group: GroupId, entry: GroupEntry) -> Result<GroupReply, NodeError> {
        let raft = self.raft(group)?;
        match tokio::time::timeout(LOCAL_ATTEMPT_TIMEOUT, raft.client_write(entry)).await {
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(e)) => Err(map_write_err(group, self.id(), e)),
            Err(_) => Err(no_quorum(group)),
        }
    }

    /// The Shard service of `target`, for `shard`'s forwarded calls.
    fn shard_client(&self, shard: u32, target: u64) -> Result<ShardClient<PeerChannel>, NodeError> {
        Ok(ShardClient::new(self.channel_to(shard, target)?)
            .max_decoding_message_size(GRPC_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(GRPC_MESSAGE_MAX_BYTES))
    }

    pub(crate) async fn forward_propose(
        &self,
        target: u64,
        shard: u32,
        commands: Vec<u8>,
    ) -> Result<Vec<CmdResult>, NodeError> {
        let results = self.forward_propose_bytes(target, shard, commands).await?;
        decode(&results).map_err(NodeError::Unavailable)
    }

    /// Sends encoded commands (or an encoded metadata command) to `target`'s Propose.
    pub(crate) async fn forward_propose_bytes(
        &self,
        target: u64,
        shard: u32,
        commands: Vec<u8>,
    ) -> Result<Vec<u8>, NodeError> {
        let request = proto::ProposeRequest {
            group_id: shard,
            commands,
        };
        let peers = &self.inner.peers;
        let addr = self
            .addr_of(shard, target)
            .ok_or_else(|| NodeError::Unavailable(format!("no address for node {id}", id = target)))?;
        let reply = if peers.forwards.unsupported(&addr) {
            let mut client = self.shard_client(shard, target)?;
            answered(target, client.propose(request)).await?
        } else {
            // The stream of proposals to the peer (crates/ivory-node/src/forwarding.rs).
            let call = peers
                .forwards
                .propose(&addr, peers.faults(), || peers.shard_client(&addr), request);
            tokio::time::timeout(FORWARD_TIMEOUT, call)
                .await
                .map_err(|_| NodeError::Unavailable(format!("node {target} did not answer in time")))?
                .map_err(status_err)?
        };
        self.forwarded(shard, reply.placement_version, reply.error, reply.results)
    }

    /// A forwarded call's payload, or the error its answer carries; either way the answering
    /// node's placement version is noted.
    fn forwarded(
        &self,
        group: u32,
        placement_version: u64,
        error: Option<proto::Error>,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, NodeError> {
        self.note_peer_version(placement_version);
        match error {
            Some(e) => Err(NodeError::from_proto(group, e)),
            None => Ok(payload),
        }
    }

    /// A linearizable read of `shard` (read-index through the leader).
    ///
    /// # Errors
    /// As [`Node::propose`].
    pub async fn read(&self, shard: u32, req: ReadRequest) -> Result<ReadResponse, NodeError> {
        let encoded = encode(&req).map_err(NodeError::Invalid)?;
        let req = &req;
        let encoded = &encoded;
        self.with_retries(shard, |target| async move {
            if target == self.id() {
                self.read_local_linearizable(shard, req).await
            } else {
                self.forward_read(target, shard, encoded.clone()).await
            }
        })
        .await
    }

    /// A linearizable read of this node's replica of `shard`: read-index (this node must lead
    /// it), sweeping first when a hold is due. Contrast [`Node::read_local_stale`].
    pub(crate) async fn read_local_linearizable(
        &self,
        shard: u32,
        req: &ReadRequest,
    ) -> Result<ReadResponse, NodeError> {
        let group = self.group(shard).ok_or_else(|| self.not_hosted(shard))?;
        tokio::time::timeout(
            LOCAL_ATTEMPT_TIMEOUT,
            group.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await
        .map_err(|_| no_quorum(shard))?
        .map_err(|e| map_read_err(shard, self.id(), e))?;
        // Reads never count an expired hold: a leader with a hold due sweeps first.
        if hold_due(&group) {
            self.propose_local(shard, Vec::new()).await?;
        }
        let state = group
            .shard
            .read()
            .map_err(|_| NodeError::Storage("shard lock poisoned".into()))?;
        Ok(state.read(req))
    }

    async fn forward_read(&self, target: u64, shard: u32, request: Vec<u8>) -> Result<ReadResponse, NodeError> {
        let bytes = self.forward_read_bytes(target, shard, request).await?;
        decode(&bytes).map_err(NodeError::Unavailable)
    }

    /// A `Read` RPC to `target` for `group`; a read of [`META_GROUP`] answers the metadata.
    pub(crate) async fn forward_read_bytes(
        &self,
        target: u64,
        group: u32,
        request: Vec<u8>,
    ) -> Result<Vec<u8>, NodeError> {
        let mut client = self.shard_client(group, target)?;
        let request = proto::ReadRequest {
            group_id: group,
            request,
        };
        let reply = answered(target, client.read(request)).await?;
        self.forwarded(group, reply.placement_version, reply.error, reply.response)
    }

    /// The state of this node's replica of `shard` as it is, without a read-index round: not
    /// linearizable (a follower may lag). Tests and admin only. Contrast `read_local_linearizable`.
    ///
    /// # Errors
    /// [`NodeError::UnknownShard`] when this node does not host it.
    pub fn read_local_stale(&self, shard: u32, req: &ReadRequest) -> Result<ReadResponse, NodeError> {
        let group = self.group(shard).ok_or(NodeError::UnknownShard(shard))?;
        let state = group
            .shard
            .read()
            .map_err(|_| NodeError::Storage("shard lock poisoned".into()))?;
        Ok(state.read(req))
    }
}

/// A forwarded call's answer within [`FORWARD_TIMEOUT`].
async fn answered<T>(
    target: u64,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, NodeError> {
    tokio::time::timeout(FORWARD_TIMEOUT, call)
        .await
        .map_err(|_| NodeError::Unavailable(format!("node {target} did not answer in time")))?
        .map(tonic::Response::into_inner)
        .map_err(status_err)
}
