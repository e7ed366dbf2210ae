//! Which nodes hold a replica of which shard. A placeholder for ivory-cluster's hashring
//! placement: kept in this one function so that it can be replaced in one place.

use std::collections::BTreeMap;

/// The replicas of `shard`: every node when there are at most `replicas` of them, otherwise
/// `replicas` consecutive nodes (in id order) starting at `shard mod nodes`.
pub fn replicas_for(shard: u32, peers: &BTreeMap<u64, String>, replicas: usize) -> Vec<u64> {
    let ids: Vec<u64> = peers.keys().copied().collect();
    if ids.len() <= replicas {
        return ids;
    }
    let start = shard as usize % ids.len();
    let mut chosen: Vec<u64> = (0..replicas).map(|i| ids[(start + i) % ids.len()]).collect();
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
        assert_eq!(replicas_for(0, &peers, 3), vec![1, 2, 3]);
        assert_eq!(replicas_for(4, &peers, 3), vec![1, 2, 5]);
        for shard in 0..16 {
            assert_eq!(replicas_for(shard, &peers, 3).len(), 3);
        }
    }
}
