//! The sweeper: a leader whose shard has a hold due and no traffic proposes an empty batch, so
//! the hold expires through the log (every replica applies the same expiry).

use std::sync::Arc;
use std::time::Duration;

use ivory_raft::GroupId;
use ivory_raft::openraft::ServerState;
use ivory_raft::openraft::async_runtime::WatchReceiver;

use super::{Group, Node};

/// How often a leader checks its shards for holds due (DESIGN.md §3, Holds): an expired hold's
/// stock is back within this interval (plus one log write).
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

impl Node {
    /// One round of the expiry sweeper: every shard this node leads with a hold due gets an
    /// empty batch (the sweep). Costs a metrics borrow and a read lock per idle shard.
    async fn sweep_due(&self) {
        let groups: Vec<(GroupId, Group)> = self
            .inner
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
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

    /// Starts the expiry sweeper (every [`SWEEP_INTERVAL`]); it stops at [`Node::shutdown`].
    pub(super) fn spawn_sweeper(&self) {
        // A weak handle: a node dropped without shutdown does not live on in its sweeper.
        let weak = Arc::downgrade(&self.inner);
        let mut shutdown = self.inner.shutdown_tx.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let Some(inner) = weak.upgrade() else { break };
                        Node { inner }.sweep_due().await;
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
