//! Leadership follows the writes (as CockroachDB's leases follow the workload): when most of a
//! shard's writes reach the cluster through one node, that node should lead the shard. Every
//! write that arrives elsewhere is forwarded to the leader and its answer forwarded back: an
//! encoding, a stream hop and a task each way, and a round trip of latency. With all clients on
//! node 1 of 3, pulling the leaders there took 3-node spread from 8,400 to 10,500 reserves/s and
//! its p99 from 15.5 to 11.5 ms (bench/README.md).
//!
//! The rebalancer feeds [`WriteAffinity::observe`] each round with every node's cumulative count
//! of commands proposed through it, per shard. A shard is pinned to a node once that node brought
//! at least two thirds of the shard's writes in a round busy enough to say; the pin is dropped
//! when no node brings half (clients spread over the nodes: leaders are balanced by count again).
//! Between the two, and in quiet rounds, a pin stays as it was, so leadership does not swing back
//! and forth while the traffic pauses.

use std::collections::{BTreeMap, HashMap};

/// A round with fewer writes to a shard than this says nothing about where they come from.
pub const AFFINITY_MIN_WRITES_PER_ROUND: u64 = 64;

/// Per shard, the node its writes come through, learned from the nodes' write counts.
#[derive(Debug, Default)]
pub struct WriteAffinity {
    /// Each node's cumulative count per shard at the last round.
    seen: HashMap<(u64, u32), u64>,
    pinned: BTreeMap<u32, u64>,
}

impl WriteAffinity {
    /// Takes one round's counts, `(node, shard, commands proposed through node since its replica
    /// opened)`, and updates the pins. A count seen for the first time is only a baseline; a
    /// count lower than the last (the replica reopened) counts from zero.
    pub fn observe(&mut self, counts: impl IntoIterator<Item = (u64, u32, u64)>) {
        let mut seen = HashMap::new();
        let mut per_shard: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
        for (node, shard, count) in counts {
            let delta = match self.seen.get(&(node, shard)) {
                Some(last) if *last <= count => count - last,
                Some(_) => count,
                None => 0,
            };
            seen.insert((node, shard), count);
            per_shard.entry(shard).or_default().push((node, delta));
        }
        self.seen = seen;
        for (shard, deltas) in per_shard {
            let total: u64 = deltas.iter().map(|(_, d)| d).sum();
            if total < AFFINITY_MIN_WRITES_PER_ROUND {
                continue;
            }
            let Some(&(top, most)) = deltas.iter().max_by_key(|(node, d)| (*d, std::cmp::Reverse(*node))) else {
                continue;
            };
            if most.saturating_mul(3) >= total.saturating_mul(2) {
                self.pinned.insert(shard, top);
            } else if most.saturating_mul(2) < total {
                self.pinned.remove(&shard);
            }
        }
    }

    /// Every pin, by shard: the node that should lead it because its writes come through it.
    pub fn pins(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.pinned.iter().map(|(s, n)| (*s, *n))
    }

    /// Forgets the pin of `shard` (its node can no longer lead it).
    pub fn unpin(&mut self, shard: u32) {
        self.pinned.remove(&shard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(affinity: &WriteAffinity, shard: u32) -> Option<u64> {
        affinity.pins().find(|(s, _)| *s == shard).map(|(_, node)| node)
    }

    /// One round: `(node, shard, cumulative count)` for nodes 1..=3 of shard 0.
    fn round(affinity: &mut WriteAffinity, counts: [u64; 3]) {
        affinity.observe(counts.iter().enumerate().map(|(i, c)| (i as u64 + 1, 0, *c)));
    }

    #[test]
    fn the_first_round_is_only_a_baseline() {
        let mut a = WriteAffinity::default();
        round(&mut a, [10_000, 0, 0]);
        assert_eq!(
            pinned(&a, 0),
            None,
            "counts since the replica opened say nothing about now"
        );
        round(&mut a, [10_100, 0, 0]);
        assert_eq!(pinned(&a, 0), Some(1));
    }

    #[test]
    fn a_shard_is_pinned_at_two_thirds_and_unpinned_below_half() {
        let mut a = WriteAffinity::default();
        round(&mut a, [0, 0, 0]);
        // 60% through node 2: not enough to pin.
        round(&mut a, [20, 60, 20]);
        assert_eq!(pinned(&a, 0), None);
        // Two thirds exactly: pinned.
        round(&mut a, [40, 200, 70]);
        assert_eq!(pinned(&a, 0), Some(2));
        // 60% still: the pin stays (between the two thresholds).
        round(&mut a, [60, 260, 90]);
        assert_eq!(pinned(&a, 0), Some(2));
        // Spread evenly: the pin goes.
        round(&mut a, [160, 360, 190]);
        assert_eq!(pinned(&a, 0), None);
    }

    #[test]
    fn a_quiet_round_keeps_the_pin_and_a_new_origin_takes_it() {
        let mut a = WriteAffinity::default();
        round(&mut a, [0, 0, 0]);
        round(&mut a, [500, 0, 0]);
        assert_eq!(pinned(&a, 0), Some(1));
        round(&mut a, [500, 10, 10]);
        assert_eq!(pinned(&a, 0), Some(1), "too few writes to move anything");
        round(&mut a, [500, 10, 1_000]);
        assert_eq!(pinned(&a, 0), Some(3));
    }

    #[test]
    fn a_count_that_went_down_counts_from_zero() {
        let mut a = WriteAffinity::default();
        round(&mut a, [5_000, 0, 0]);
        // Node 1's replica reopened: 100 since then, node 3 brought 900.
        round(&mut a, [100, 0, 900]);
        assert_eq!(pinned(&a, 0), Some(3));
    }

    #[test]
    fn shards_are_pinned_each_on_its_own_and_unpin_forgets() {
        let mut a = WriteAffinity::default();
        a.observe([(1, 0, 0), (2, 0, 0), (1, 1, 0), (2, 1, 0)]);
        a.observe([(1, 0, 300), (2, 0, 0), (1, 1, 0), (2, 1, 300)]);
        assert_eq!(a.pins().collect::<Vec<_>>(), vec![(0, 1), (1, 2)]);
        a.unpin(0);
        assert_eq!(a.pins().collect::<Vec<_>>(), vec![(1, 2)]);
    }
}
