//! The sweeper: a leader whose shard has a hold due and no traffic proposes an empty batch, so
//! the hold expires through the log (every replica applies the same expiry).
//!
//! And the expiries owed across shards: when a cross-shard hold's primary part expires, its
//! shard's state keeps the shards of the other parts until each has applied `ExpirePart`. A
//! second loop on the leader of that shard proposes those (retried every round until they land,
//! whichever node leads by then: the list is replicated state) and then `SiblingsExpired`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ivory_core::Command;
use ivory_core::hold::{HoldCommand, HoldKey};
use ivory_raft::openraft::ServerState;
use ivory_raft::openraft::async_runtime::WatchReceiver;

use super::{Group, Node};

/// How often a leader checks its shards for holds due (DESIGN.md §3, Holds): an expired hold's
/// stock is back within this interval (plus one log write).
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// Expiries owed to other shards that a leader passes on per shard and round: at most this many
/// `ExpirePart` commands in one log entry per target shard.
const SIBLING_EXPIRIES_PER_ROUND: usize = 128;
/// How long one round waits for a shard to take its `ExpirePart`s (or the acknowledgement)
/// before it moves on; what did not land is proposed again next round.
const SIBLING_PROPOSE_TIMEOUT: Duration = Duration::from_secs(3);

impl Node {
    /// One round of the expiry sweeper: every shard this node leads with a hold due gets an
    /// empty batch (the sweep). Costs a metrics borrow and a read lock per idle shard.
    async fn sweep_due(&self) {
        let groups = self.groups_snapshot();
        for (shard, group) in groups {
            let leading = group.raft.metrics().borrow_watched().state == ServerState::Leader;
            if leading && hold_due(&group) {
                match self.propose_local(shard, Vec::new()).await {
                    Ok(_) => metrics::counter!("ivory_hold_sweeps_total").increment(1),
                    Err(e) => tracing::debug!(shard, error = %e, "expiry sweep not applied"),
                }
            }
        }
    }

    /// One round of passing expiries on: for every shard this node leads whose expired primary
    /// parts owe other shards their expiry, `ExpirePart` to each of those shards (one entry per
    /// shard), then `SiblingsExpired` for those that landed. Idempotent on both sides, so a
    /// round cut short by a leader change or a timeout is simply done again.
    async fn expire_siblings(&self) {
        let groups = self.groups_snapshot();
        for (shard, group) in groups {
            if group.raft.metrics().borrow_watched().state != ServerState::Leader {
                continue;
            }
            let owed = group
                .shard
                .read()
                .ok()
                .filter(|s| s.owes_sibling_expiries())
                .map(|s| s.sibling_expiries(SIBLING_EXPIRIES_PER_ROUND))
                .unwrap_or_default();
            if owed.is_empty() {
                continue;
            }
            let mut by_target: BTreeMap<u32, Vec<(HoldKey, [u8; 16])>> = BTreeMap::new();
            for expiry in &owed {
                for target in &expiry.shards {
                    by_target
                        .entry(*target)
                        .or_default()
                        .push((expiry.key.clone(), expiry.body_fingerprint));
                }
            }
            let calls = by_target.into_iter().map(|(target, holds)| async move {
                let commands = holds
                    .iter()
                    .map(|(key, fingerprint)| {
                        Command::Hold(HoldCommand::ExpirePart {
                            key: key.clone(),
                            body_fingerprint: *fingerprint,
                        })
                    })
                    .collect();
                let answer = tokio::time::timeout(SIBLING_PROPOSE_TIMEOUT, self.propose(target, commands)).await;
                (target, holds, answer)
            });
            let mut landed: BTreeMap<HoldKey, Vec<u32>> = BTreeMap::new();
            for (target, holds, answer) in futures::future::join_all(calls).await {
                match answer {
                    Ok(Ok(results)) => {
                        for ((key, _), result) in holds.into_iter().zip(results) {
                            if result.outcome.applied() {
                                landed.entry(key).or_default().push(target);
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::debug!(shard, target, error = %e, "hold expiry not passed on yet"),
                    Err(_) => tracing::debug!(shard, target, "hold expiry not passed on yet: timed out"),
                }
            }
            if landed.is_empty() {
                continue;
            }
            let count = landed.values().map(Vec::len).sum::<usize>() as u64;
            let acks = landed
                .into_iter()
                .map(|(key, shards)| Command::Hold(HoldCommand::SiblingsExpired { key, shards }))
                .collect();
            match tokio::time::timeout(SIBLING_PROPOSE_TIMEOUT, self.propose(shard, acks)).await {
                Ok(Ok(_)) => metrics::counter!("ivory_hold_sibling_expiries_total").increment(count),
                Ok(Err(e)) => tracing::debug!(shard, error = %e, "hold expiries passed on, not acknowledged yet"),
                Err(_) => tracing::debug!(shard, "hold expiries passed on, not acknowledged yet: timed out"),
            }
        }
    }

    /// Starts the expiry sweeper and the loop that passes expired primaries' expiries on to
    /// their other parts, each every [`SWEEP_INTERVAL`] and on its own (a shard slow to take the
    /// expiries never delays the sweep); both stop at [`Node::shutdown`].
    pub(super) fn spawn_sweeper(&self) {
        self.spawn_rounds(|node| async move { node.sweep_due().await });
        self.spawn_rounds(|node| async move { node.expire_siblings().await });
    }

    /// Runs `round` every [`SWEEP_INTERVAL`] until shutdown; a round still waiting on other
    /// shards is dropped then, so it never holds a shutdown up.
    fn spawn_rounds<R, F>(&self, round: R)
    where
        R: Fn(Node) -> F + Send + 'static,
        F: std::future::Future<Output = ()> + Send,
    {
        // A weak handle: a node dropped without shutdown does not live on in its rounds.
        let weak = Arc::downgrade(&self.inner);
        let mut shutdown = self.inner.shutdown_tx.subscribe();
        let mut stopping = self.inner.shutdown_tx.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let Some(inner) = weak.upgrade() else { break };
                        tokio::select! {
                            () = round(Node { inner }) => {}
                            _ = stopping.changed() => break,
                        }
                    }
                    _ = shutdown.changed() => break,
                }
                if *shutdown.borrow() {
                    break;
                }
            }
        });
    }
}

/// Whether the replica's state machine has a hold whose expiry has passed (by this node's clock).
pub(super) fn hold_due(group: &Group) -> bool {
    let next = group.shard.read().ok().and_then(|s| s.next_expiry_ms());
    next.is_some_and(|at| at <= crate::clock::now_ms())
}
