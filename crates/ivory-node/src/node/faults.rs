//! Fault injection for tests (`--enable-fault-injection`, the `/_test/fault` hook): what this
//! node drops or delays on the way to other nodes, and a slow or failing disk.

use std::time::Duration;

use super::{Group, Node};
use crate::network::{FaultSettings, NetworkFaults};

impl Node {
    /// Fault injection for tests: stop sending anything (Raft, forwards, admin) to `peers`.
    /// Isolating a node takes a call on it (all others) and on each other node (it).
    pub fn isolate(&self, peers: &[u64]) {
        let mut addrs: Vec<String> = peers
            .iter()
            .filter_map(|id| self.inner.cfg.peers.get(id).cloned())
            .collect();
        let groups: Vec<Group> = self
            .inner
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for g in groups {
            let m = Node::metrics(&g.raft);
            for id in peers {
                if let Some(n) = m.membership_config.membership().get_node(id) {
                    addrs.push(n.addr.clone());
                }
            }
        }
        self.inner.peers.block(addrs);
    }

    /// Ends [`Node::isolate`].
    pub fn heal(&self) {
        self.inner.peers.unblock_all();
    }

    /// Fault injection for tests: replaces every fault this node injects (dropped addresses and
    /// a delay on everything it sends to other nodes, a slow disk, a failed fsync, a clock
    /// ahead). The default heals all.
    pub fn set_faults(&self, faults: FaultSettings) {
        self.inner
            .storage
            .flusher()
            .set_delay(Duration::from_millis(faults.slow_disk_ms));
        self.inner.storage.flusher().fail_next_sync(faults.fail_sync);
        crate::clock::set_ahead_ms(faults.clock_ahead_ms);
        self.inner.peers.faults().set(NetworkFaults {
            drop: faults.drop,
            delay_ms: faults.delay_ms,
        });
    }

    /// The faults set by [`Node::set_faults`] or [`Node::isolate`].
    pub fn faults(&self) -> FaultSettings {
        let network = self.inner.peers.faults().get();
        FaultSettings {
            drop: network.drop,
            delay_ms: network.delay_ms,
            slow_disk_ms: u64::try_from(self.inner.storage.flusher().delay().as_millis()).unwrap_or(u64::MAX),
            fail_sync: self.inner.storage.flusher().fails_next_sync(),
            clock_ahead_ms: crate::clock::ahead_ms(),
        }
    }

    /// Flush + fsync rounds of this node's storage so far (group commit: one serves many writes).
    pub fn fsync_count(&self) -> u64 {
        self.inner.storage.flusher().flush_count()
    }
}
