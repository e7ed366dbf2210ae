//! The rebalancer: runs on every node, acts only on the metadata group's leader. Each round it
//! brings joining nodes into the metadata group, resumes the moves in flight (a move is recorded
//! before it starts, so a new leader finishes what a dead one began), starts new moves up to
//! [`MOVES_IN_FLIGHT_MAX`], retires drained nodes, and now and then drops replicas that a node
//! still hosts but no longer owns (it was down when its replica was removed).
//!
//! A move of one shard: `BeginMove` in the metadata, then on the shard's Raft group add the new
//! replica (learner, catch up, promote), remove the old one (leadership moves away first; the
//! removed node drops its trees), then `FinishMove` with the voters the group now has. Every step
//! is idempotent, so a move resumed after a crash completes; an add that cannot complete is
//! rolled back (`AbortMove`) and tried again later.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ivory_cluster::{ClusterMeta, META_GROUP, MemberState, MetaCommand, MetaReply, Move};
use ivory_raft::openraft;
use openraft::async_runtime::WatchReceiver;
use openraft::raft::ReadPolicy;
use openraft::{BasicNode, ChangeMembers, ServerState};

use crate::NodeError;
use crate::membership::MEMBERSHIP_TIMEOUT;
use crate::node::Node;
use crate::proto;
use crate::proto::admin_client::AdminClient;

/// Replica moves at once, cluster-wide: each streams a snapshot and replays a log tail, so a
/// small bound keeps client latency while the cluster grows or shrinks.
pub const MOVES_IN_FLIGHT_MAX: usize = 2;
const TICK: Duration = Duration::from_millis(500);
/// Orphan replicas are looked for every this many rounds (about every 10 s).
const ORPHAN_SCAN_EVERY: u64 = 20;
/// A node must answer a status call this fast to count as reachable.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Leaderships moved to where their shard's writes come from, per round at most: each is a
/// short pause in the shard's writes (an election), so a whole cluster's moves are spread over
/// a few seconds.
pub const AFFINITY_MOVES_PER_ROUND: usize = 4;
/// A failed move is retried after this.
const MOVE_BACKOFF: Duration = Duration::from_secs(2);
/// Test hook (off unless set): pause this long between recording a move and executing it, so
/// that a test can kill the rebalancer in the middle of a move.
pub const TEST_MOVE_PAUSE_ENV: &str = "IVORY_TEST_MOVE_PAUSE_MS";

fn test_move_pause() -> Option<Duration> {
    static PAUSE: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *PAUSE.get_or_init(|| {
        std::env::var(TEST_MOVE_PAUSE_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    })
}

pub(crate) fn spawn(node: &Node) {
    let weak = std::sync::Arc::downgrade(&node.inner);
    let mut shutdown = node.inner.shutdown_tx.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            let Some(inner) = weak.upgrade() else { break };
            round += 1;
            Node { inner }.rebalance_round(round).await;
        }
    });
}

impl Node {
    /// Whether this node leads the metadata group.
    pub fn leads_meta(&self) -> bool {
        self.raft(META_GROUP)
            .map(|r| r.metrics().borrow_watched().state == ServerState::Leader)
            .unwrap_or(false)
    }

    async fn rebalance_round(&self, round: u64) {
        if let Some(version) = self.with_meta(|m| m.version) {
            self.inner
                .placement_version
                .store(version, std::sync::atomic::Ordering::Relaxed);
            metrics::gauge!("ivory_placement_version").set(version as f64);
        }
        if let Some(addresses) = self.with_meta(|m| {
            m.members
                .iter()
                .filter(|(_, member)| member.state != MemberState::Removed)
                .map(|(id, member)| (*id, member.addr.clone()))
                .collect()
        }) {
            self.inner.peers.set_addresses(addresses);
        }
        if !self.leads_meta() {
            return;
        }
        // After an election the leader's copy is current only once its read index is applied.
        let Ok(raft) = self.raft(META_GROUP) else { return };
        if raft.ensure_linearizable(ReadPolicy::ReadIndex).await.is_err() {
            return;
        }
        let Some(meta) = self.with_meta(Clone::clone) else {
            return;
        };
        if !meta.is_initialized() {
            return;
        }
        if !self.reconcile_meta_membership(&meta).await {
            return;
        }
        metrics::gauge!("ivory_rebalance_moves_in_flight").set(meta.moves.len() as f64);
        for (shard, mv) in &meta.moves {
            self.spawn_move(*shard, *mv);
        }
        let budget = MOVES_IN_FLIGHT_MAX.saturating_sub(meta.moves.len());
        for (shard, mv) in meta.next_moves(budget) {
            if self.moving(shard) {
                continue;
            }
            match self.propose_meta(MetaCommand::BeginMove { shard, mv }).await {
                Ok(MetaReply::Done { .. }) => self.spawn_move(shard, mv),
                Ok(MetaReply::Refused { reason }) => tracing::debug!(shard, %reason, "move not started"),
                Err(e) => tracing::debug!(shard, error = %e, "move not started"),
            }
        }
        for id in meta.members_in(MemberState::Draining) {
            let in_use = meta.nodes_in_use().contains(&id) || meta.moves.values().any(|m| m.remove == Some(id));
            if !in_use {
                match self.propose_meta(MetaCommand::Remove { id }).await {
                    Ok(MetaReply::Done { .. }) => tracing::info!(node = id, "node drained and removed"),
                    other => tracing::debug!(node = id, ?other, "drained node not removed yet"),
                }
            }
        }
        if round.is_multiple_of(ORPHAN_SCAN_EVERY) && meta.moves.is_empty() {
            self.drop_orphan_replicas(&meta).await;
        }
        if meta.is_settled() {
            self.balance_leaders(&meta).await;
        }
    }

    /// Leadership follows the writes ([`ivory_cluster::write_affinity`]): a shard whose writes
    /// come mostly through one node moves to it, up to [`AFFINITY_MOVES_PER_ROUND`] per round.
    /// Then, among the other shards, one leadership per round moves from the node leading the
    /// most to a replica leading the fewest, until no node leads more than its share (rounded
    /// up): a leader does the writes' work (stamping, fsync first, apply, answers), so it is spread.
    async fn balance_leaders(&self, meta: &ClusterMeta) {
        let active = meta.members_in(MemberState::Active);
        let calls = active.iter().map(|id| async move {
            let addr = meta.addr_of(*id).unwrap_or_default().to_string();
            (*id, self.status_of(&addr).await)
        });
        let mut statuses = Vec::with_capacity(active.len());
        for (id, status) in futures::future::join_all(calls).await {
            // Balance only with a full picture: an unreachable node's shards lead elsewhere anyway.
            let Some(status) = status else { return };
            statuses.push((id, status));
        }
        // Each shard's leader and voters, as its leader reports them.
        let mut leaders: BTreeMap<u32, (u64, Vec<u64>)> = BTreeMap::new();
        for (id, status) in &statuses {
            for g in status.groups.iter().filter(|g| g.is_leader && g.group_id != META_GROUP) {
                leaders.insert(g.group_id, (*id, g.voters.clone()));
            }
        }
        let pins: BTreeMap<u32, u64> = {
            let mut affinity = self.inner.write_affinity.lock().unwrap_or_else(|p| p.into_inner());
            affinity.observe(statuses.iter().flat_map(|(id, status)| {
                status
                    .groups
                    .iter()
                    .filter(|g| g.group_id != META_GROUP)
                    .map(|g| (*id, g.group_id, g.client_writes))
            }));
            // A pin to a node that cannot lead the shard (not its voter, or leaving) is dropped.
            let unfit: Vec<u32> = affinity
                .pins()
                .filter(|(shard, node)| {
                    !active.contains(node) || leaders.get(shard).is_some_and(|(_, voters)| !voters.contains(node))
                })
                .map(|(shard, _)| shard)
                .collect();
            for shard in unfit {
                affinity.unpin(shard);
            }
            affinity.pins().collect()
        };
        let mut moved = 0;
        for (shard, to) in &pins {
            let Some((leader, _)) = leaders.get(shard) else {
                continue;
            };
            if leader == to || moved == AFFINITY_MOVES_PER_ROUND {
                continue;
            }
            moved += 1;
            match self.transfer_leader(*shard, *leader, *to).await {
                Ok(()) => {
                    metrics::counter!("ivory_rebalance_leader_follows_writes_total").increment(1);
                    tracing::info!(shard, from = leader, to, "leadership follows the writes");
                }
                Err(e) => tracing::debug!(shard, error = %e, "leadership not moved to the writes"),
            }
        }
        if moved > 0 {
            return;
        }
        let mut led: BTreeMap<u64, Vec<u32>> = active.iter().map(|id| (*id, Vec::new())).collect();
        for (shard, (leader, _)) in &leaders {
            if !pins.contains_key(shard) {
                led.entry(*leader).or_default().push(*shard);
            }
        }
        let unpinned = (meta.shard_count() as usize).saturating_sub(pins.len());
        let share = unpinned.div_ceil(active.len().max(1));
        let Some((busiest, shards)) = led.iter().max_by_key(|(_, s)| s.len()) else {
            return;
        };
        if shards.len() <= share {
            return;
        }
        for shard in shards {
            let replicas = meta.placement.get(shard).cloned().unwrap_or_default();
            let target = replicas
                .iter()
                .filter(|r| *r != busiest)
                .min_by_key(|r| led.get(r).map_or(usize::MAX, Vec::len));
            if let Some(target) = target
                && led.get(target).map_or(usize::MAX, Vec::len) + 1 < shards.len()
            {
                match self.transfer_leader(*shard, *busiest, *target).await {
                    Ok(()) => tracing::info!(shard, from = busiest, to = target, "leadership balanced"),
                    Err(e) => tracing::debug!(shard, error = %e, "leadership not moved"),
                }
                return;
            }
        }
    }

    /// Brings joining members into the metadata group (then activates them) and takes removed
    /// ones out. `false` when this node stepped down and the round should stop.
    async fn reconcile_meta_membership(&self, meta: &ClusterMeta) -> bool {
        let Ok(raft) = self.raft(META_GROUP) else { return false };
        let m = raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        for id in meta.members_in(MemberState::Joining) {
            let Some(addr) = meta.addr_of(id).map(str::to_string) else {
                continue;
            };
            if !voters.contains(&id) {
                if !self.probe(&addr).await {
                    continue;
                }
                let node = BasicNode { addr: addr.clone() };
                let added = tokio::time::timeout(MEMBERSHIP_TIMEOUT, raft.add_learner(id, node, true)).await;
                if !matches!(added, Ok(Ok(_))) {
                    tracing::info!(node = id, "joining node did not catch up with the metadata yet");
                    continue;
                }
                let promote = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                let promoted = tokio::time::timeout(MEMBERSHIP_TIMEOUT, raft.change_membership(promote, false)).await;
                if !matches!(promoted, Ok(Ok(_))) {
                    continue;
                }
            }
            match self.propose_meta(MetaCommand::Activate { id }).await {
                Ok(MetaReply::Done { version }) => tracing::info!(node = id, addr, version, "node joined"),
                other => tracing::info!(node = id, ?other, "node not activated yet"),
            }
        }
        for id in meta.members_in(MemberState::Removed) {
            if !voters.contains(&id) && !learners.contains(&id) {
                continue;
            }
            if id == self.id() {
                // A removed node hands the metadata group over and stops acting.
                if let Some(next) = voters.iter().find(|v| **v != id) {
                    let _ = raft.trigger().transfer_leader(*next).await;
                }
                return false;
            }
            let change = if voters.contains(&id) {
                ChangeMembers::RemoveVoters(BTreeSet::from([id]))
            } else {
                ChangeMembers::RemoveNodes(BTreeSet::from([id]))
            };
            match tokio::time::timeout(MEMBERSHIP_TIMEOUT, raft.change_membership(change, false)).await {
                Ok(Ok(_)) => tracing::info!(node = id, "removed node left the metadata group"),
                Ok(Err(e)) => tracing::info!(node = id, error = %e, "removed node still in the metadata group"),
                Err(_) => tracing::info!(node = id, "removing a node from the metadata group timed out"),
            }
        }
        true
    }

    fn moving(&self, shard: u32) -> bool {
        self.inner
            .moving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&shard)
    }

    /// Executes a recorded move in the background, unless this node already runs it.
    fn spawn_move(&self, shard: u32, mv: Move) {
        if !self
            .inner
            .moving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(shard)
        {
            return;
        }
        let node = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = node.execute_move(shard, mv).await;
            let label = match &outcome {
                Ok(()) => "done",
                Err(MoveFailure::RolledBack(_)) => "rolled_back",
                Err(MoveFailure::Pending(_)) => "pending",
            };
            metrics::counter!("ivory_rebalance_moves_total", "outcome" => label).increment(1);
            match outcome {
                Ok(()) => {
                    metrics::histogram!("ivory_rebalance_move_seconds").record(started.elapsed().as_secs_f64());
                    tracing::info!(shard, ?mv, ms = started.elapsed().as_millis() as u64, "replica moved");
                }
                Err(e) => {
                    tracing::warn!(shard, ?mv, error = %e, "replica move did not complete");
                    tokio::time::sleep(MOVE_BACKOFF).await;
                }
            }
            node.inner
                .moving
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&shard);
        });
    }

    async fn execute_move(&self, shard: u32, mv: Move) -> Result<(), MoveFailure> {
        if let Some(pause) = test_move_pause() {
            tokio::time::sleep(pause).await;
        }
        let before = self
            .with_meta(|m| m.placement.get(&shard).cloned().unwrap_or_default())
            .unwrap_or_default();
        if let Some(add) = mv.add {
            let addr = self
                .with_meta(|m| m.addr_of(add).map(str::to_string))
                .flatten()
                .ok_or_else(|| MoveFailure::Pending(format!("no address for node {add}")))?;
            if let Err(e) = self.add_replica(shard, add, addr).await {
                // Undo a half-added replica so that the shard keeps the voters the metadata says.
                self.remove_replica(shard, add)
                    .await
                    .map_err(|undo| MoveFailure::Pending(format!("add failed ({e}); undo failed: {undo}")))?;
                self.finish(MetaCommand::AbortMove { shard }).await?;
                return Err(MoveFailure::RolledBack(e.to_string()));
            }
        }
        if let Some(remove) = mv.remove {
            self.remove_replica(shard, remove)
                .await
                .map_err(|e| MoveFailure::Pending(e.to_string()))?;
        }
        let mut replicas: Vec<u64> = before.into_iter().filter(|n| Some(*n) != mv.remove).collect();
        replicas.extend(mv.add);
        self.finish(MetaCommand::FinishMove { shard, replicas }).await
    }

    async fn finish(&self, command: MetaCommand) -> Result<(), MoveFailure> {
        match self.propose_meta(command).await {
            Ok(_) => Ok(()),
            Err(e) => Err(MoveFailure::Pending(format!("metadata not updated: {e}"))),
        }
    }

    /// Whether the node at `addr` answers a status call.
    pub(crate) async fn probe(&self, addr: &str) -> bool {
        self.status_of(addr).await.is_some()
    }

    pub(crate) async fn status_of(&self, addr: &str) -> Option<proto::StatusReply> {
        let channel = self.inner.peers.channel(addr).ok()?;
        let mut client = AdminClient::new(channel);
        match tokio::time::timeout(PROBE_TIMEOUT, client.status(proto::StatusRequest {})).await {
            Ok(Ok(reply)) => Some(reply.into_inner()),
            _ => None,
        }
    }

    /// Replicas that a node hosts but no shard group counts any more (it was down when removed):
    /// closed, so that their trees are dropped.
    async fn drop_orphan_replicas(&self, meta: &ClusterMeta) {
        let mut reports = Vec::new();
        for (id, member) in &meta.members {
            if member.state != MemberState::Removed
                && let Some(status) = self.status_of(&member.addr).await
            {
                reports.push((*id, status));
            }
        }
        // A shard's members as its leader reports them.
        let members_of = |shard: u32| -> Option<BTreeSet<u64>> {
            reports.iter().find_map(|(_, s)| {
                s.groups
                    .iter()
                    .find(|g| g.group_id == shard && g.is_leader)
                    .map(|g| g.voters.iter().chain(&g.learners).copied().collect())
            })
        };
        for (id, status) in &reports {
            for group in &status.groups {
                let shard = group.group_id;
                let placed = meta.placement.get(&shard).is_some_and(|r| r.contains(id));
                if placed || members_of(shard).is_none_or(|m| m.contains(id)) {
                    continue;
                }
                tracing::info!(shard, node = id, "dropping an orphan replica");
                self.close_remote_group(shard, *id).await;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum MoveFailure {
    /// Nothing changed on the shard; the move was aborted and will be planned again.
    #[error("rolled back: {0}")]
    RolledBack(String),
    /// The move stays in flight and is resumed by a later round.
    #[error("pending: {0}")]
    Pending(String),
}

impl From<NodeError> for MoveFailure {
    fn from(e: NodeError) -> Self {
        MoveFailure::Pending(e.to_string())
    }
}
