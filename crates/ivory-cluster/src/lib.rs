//! Placement: which shard owns a partition, and which nodes hold a replica of a shard.
//!
//! Both are consistent-hash rings (crate `hashring`) of virtual nodes. The partition ring is fixed
//! when a cluster is created ([`Layout`]: shard count, virtual nodes, hash scheme) and stored with
//! the cluster, because a partition must never move between shards. The replica ring follows the
//! member nodes and changes as nodes join and leave; moving replicas is then only Raft membership.

use std::collections::BTreeSet;

pub mod auth;
pub mod meta;
pub mod write_affinity;

pub use auth::{ClusterAuthError, ClusterSecret};
pub use meta::{ClusterMeta, META_GROUP, Member, MemberState, MetaCommand, MetaReply, Move};
pub use write_affinity::WriteAffinity;

use hashring::HashRing;
use ivory_core::PartitionKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The only hash scheme so far: SHA-256 of the partition's canonical bytes, its first 8 bytes as a
/// little-endian u64, placed on a SipHash-2-4 (zero keys) ring of `(shard, i)` virtual nodes.
pub const HASH_SCHEME_V1: &str = "sha256-siphash24-v1";
/// Shards a cluster may have: openraft heartbeats per group, so a few hundred at most.
pub const SHARDS_MAX: u32 = 512;
pub const SHARDS_DEFAULT: u32 = 16;
pub const VNODES_PER_SHARD_DEFAULT: u32 = 64;
pub const VNODES_PER_NODE: u32 = 64;

/// What a cluster fixes at creation and never changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub shard_count: u32,
    pub vnodes_per_shard: u32,
    pub hash_scheme: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("shard count {0} is out of range: 1..={SHARDS_MAX}")]
    ShardCount(u32),
    #[error("virtual nodes per shard must be 1..=1024, got {0}")]
    Vnodes(u32),
    #[error("unknown hash scheme '{0}' (this build knows {HASH_SCHEME_V1})")]
    Scheme(String),
}

impl Layout {
    pub fn new(shard_count: u32) -> Layout {
        Layout {
            shard_count,
            vnodes_per_shard: VNODES_PER_SHARD_DEFAULT,
            hash_scheme: HASH_SCHEME_V1.to_string(),
        }
    }

    /// # Errors
    /// A [`LayoutError`] for a shard count, vnode count or scheme this build cannot serve.
    pub fn validate(&self) -> Result<(), LayoutError> {
        if self.shard_count == 0 || self.shard_count > SHARDS_MAX {
            return Err(LayoutError::ShardCount(self.shard_count));
        }
        if self.vnodes_per_shard == 0 || self.vnodes_per_shard > 1024 {
            return Err(LayoutError::Vnodes(self.vnodes_per_shard));
        }
        if self.hash_scheme != HASH_SCHEME_V1 {
            return Err(LayoutError::Scheme(self.hash_scheme.clone()));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ShardVnode {
    shard: u32,
    i: u32,
}

/// Partition -> shard.
#[derive(Clone)]
pub struct ShardRing {
    ring: HashRing<ShardVnode>,
    shard_count: u32,
}

impl ShardRing {
    /// # Errors
    /// When the layout is invalid.
    pub fn new(layout: &Layout) -> Result<ShardRing, LayoutError> {
        layout.validate()?;
        let mut ring = HashRing::new();
        ring.batch_add(
            (0..layout.shard_count)
                .flat_map(|shard| (0..layout.vnodes_per_shard).map(move |i| ShardVnode { shard, i }))
                .collect(),
        );
        Ok(ShardRing {
            ring,
            shard_count: layout.shard_count,
        })
    }

    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    /// The shard that owns a partition, for the life of the cluster.
    pub fn shard_of(&self, partition: &PartitionKey) -> u32 {
        let digest = Sha256::digest(partition.canonical_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // The ring always holds shard_count * vnodes >= 1 entries.
        self.ring.get(&u64::from_le_bytes(first)).map_or(0, |v| v.shard)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct NodeVnode {
    node: u64,
    i: u32,
}

/// Shard -> replica nodes, from a ring over the member nodes.
#[derive(Clone)]
pub struct Placement {
    ring: HashRing<NodeVnode>,
    nodes: BTreeSet<u64>,
    replicas: usize,
}

impl Placement {
    pub fn new(nodes: impl IntoIterator<Item = u64>, replicas: usize) -> Placement {
        let nodes: BTreeSet<u64> = nodes.into_iter().collect();
        let mut ring = HashRing::new();
        ring.batch_add(
            nodes
                .iter()
                .flat_map(|&node| (0..VNODES_PER_NODE).map(move |i| NodeVnode { node, i }))
                .collect(),
        );
        Placement {
            ring,
            nodes,
            replicas: replicas.max(1),
        }
    }

    /// The nodes that should hold `shard`, `min(replicas, nodes)` of them, the first preferred as
    /// leader. All nodes when there are no more nodes than replicas.
    pub fn replicas_of(&self, shard: u32) -> Vec<u64> {
        if self.nodes.len() <= self.replicas {
            return self.nodes.iter().copied().collect();
        }
        let mut out = Vec::with_capacity(self.replicas);
        let walk = self
            .ring
            .get_with_replicas(&(shard as u64), self.ring.len().saturating_sub(1))
            .unwrap_or_default();
        for vnode in walk {
            if !out.contains(&vnode.node) {
                out.push(vnode.node);
                if out.len() == self.replicas {
                    break;
                }
            }
        }
        out
    }
}

/// Checks a member address: `HOST:PORT` where HOST is an IP address or a DNS name (a
/// StatefulSet's pods are known by name, not by IP) and PORT is 1..=65535.
pub fn check_member_addr(addr: &str) -> Result<(), String> {
    let bad = || format!("'{addr}' is not a HOST:PORT address (e.g. 10.0.0.4:7004 or ivory-1.ivory:7004)");
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(bad()),
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.trim_end_matches('.').split('.').all(label_ok) {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn member_addresses_may_be_dns_names() {
        for ok in [
            "127.0.0.1:7001",
            "[::1]:7001",
            "localhost:7001",
            "ivory-0.ivory.default.svc.cluster.local:7001",
        ] {
            assert!(super::check_member_addr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "localhost",
            "localhost:0",
            "localhost:x",
            ":7001",
            "a b:1",
            "-a:1",
            "http://a:1",
            "a..b:1",
        ] {
            assert!(super::check_member_addr(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    /// Golden: these results must never change, or data would silently move between shards.
    /// A new hashing needs a new scheme name and a migration, not an edit of this table.
    #[test]
    fn partition_to_shard_is_pinned() {
        let ring = ShardRing::new(&Layout::new(16)).unwrap();
        let pinned: [(&str, &str, &str, &str, u32); 6] = [
            ("env", "usmf", "1", "11", GOLDEN[0]),
            ("env", "usmf", "1", "12", GOLDEN[1]),
            ("env", "usmf", "2", "21", GOLDEN[2]),
            ("env", "usrt", "1", "11", GOLDEN[3]),
            ("prod", "usmf", "Site1", "11", GOLDEN[4]),
            ("bench", "org", "s3", "l7", GOLDEN[5]),
        ];
        for (e, o, s, l, shard) in pinned {
            assert_eq!(ring.shard_of(&PartitionKey::new(e, o, s, l)), shard, "{e}/{o}/{s}/{l}");
        }
    }

    const GOLDEN: [u32; 6] = [11, 14, 11, 4, 7, 3];

    #[test]
    fn partitions_spread_over_shards() {
        let ring = ShardRing::new(&Layout::new(16)).unwrap();
        let mut counts = [0u32; 16];
        for site in 0..40 {
            for loc in 0..25 {
                counts[ring.shard_of(&PartitionKey::new("e", "o", site.to_string(), loc.to_string())) as usize] += 1;
            }
        }
        // 1,000 partitions over 16 shards: every shard gets a fair share (62.5 on average).
        assert!(counts.iter().all(|&c| (25..=120).contains(&c)), "{counts:?}");
    }

    #[test]
    fn placement_picks_distinct_nodes_and_moves_little() {
        let three = Placement::new([1, 2, 3], 3);
        assert_eq!(three.replicas_of(5), vec![1, 2, 3]);
        let five = Placement::new([1, 2, 3, 4, 5], 3);
        let six = Placement::new([1, 2, 3, 4, 5, 6], 3);
        let mut moved = 0;
        for shard in 0..64 {
            let r = five.replicas_of(shard);
            assert_eq!(r.len(), 3);
            assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3);
            let after: BTreeSet<u64> = six.replicas_of(shard).into_iter().collect();
            moved += r.iter().filter(|n| !after.contains(n)).count();
        }
        // Adding one node of six should move about a sixth of 192 replicas, not reshuffle them.
        assert!(moved <= 64, "{moved} replicas moved");
    }

    #[test]
    fn layouts_are_validated() {
        assert_eq!(Layout::new(0).validate(), Err(LayoutError::ShardCount(0)));
        let mut l = Layout::new(16);
        l.hash_scheme = "md5".into();
        assert!(matches!(l.validate(), Err(LayoutError::Scheme(_))));
    }
}
