//! Which nodes hold a replica of which shard: ivory-cluster's ring over the member nodes, so that
//! adding a node moves few replicas.

use std::collections::BTreeMap;

use ivory_cluster::Placement;

/// The replicas of `shard`, in id order: every node when there are at most `replicas` of them,
/// otherwise the first `replicas` distinct nodes clockwise from the shard on the node ring.
pub fn replicas_for(shard: u32, peers: &BTreeMap<u64, String>, replicas: usize) -> Vec<u64> {
    let mut chosen = Placement::new(peers.keys().copied(), replicas).replicas_of(shard);
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_clusters_host_everything_large_ones_spread() {
        let peers: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("h:{i}"))).collect();
        assert_eq!(replicas_for(5, &peers, 3), vec![1, 2, 3]);
        let peers: BTreeMap<u64, String> = (1..=5).map(|i| (i, format!("h:{i}"))).collect();
        let mut load = BTreeMap::new();
        for shard in 0..16 {
            let r = replicas_for(shard, &peers, 3);
            assert_eq!(r.len(), 3);
            for n in r {
                *load.entry(n).or_insert(0) += 1;
            }
        }
        assert_eq!(load.len(), 5, "every node holds some replica: {load:?}");
    }
}
