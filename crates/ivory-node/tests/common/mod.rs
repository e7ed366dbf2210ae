//! `TestCluster`: several real nodes in one process, real sled in temp dirs, real tonic on
//! 127.0.0.1, and helpers that wait on conditions with a deadline instead of sleeping.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ivory_core::{Cell, Command, Dims, OnHandChange, PartitionKey, Qty, Query, ReadRequest, ReadResponse};
use ivory_node::{Node, NodeConfig, NodeError, ShardStatus};
use ivory_raft::StorageOptions;
use ivory_raft::openraft::async_runtime::WatchReceiver;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct TestCluster {
    pub shard_count: u32,
    pub replicas: usize,
    pub peers: BTreeMap<u64, String>,
    pub dirs: BTreeMap<u64, tempfile::TempDir>,
    pub nodes: BTreeMap<u64, Node>,
    servers: BTreeMap<u64, JoinHandle<std::io::Result<()>>>,
}

async fn bind(addr: &str) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "bind retry");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

impl TestCluster {
    /// Starts nodes `1..=n`, hosting `shard_count` shards with `replicas` replicas each.
    pub async fn start(n: u64, shard_count: u32, replicas: usize) -> TestCluster {
        let mut listeners = BTreeMap::new();
        let mut peers = BTreeMap::new();
        for id in 1..=n {
            let listener = bind("127.0.0.1:0").await;
            let addr: SocketAddr = listener.local_addr().expect("local addr");
            peers.insert(id, addr.to_string());
            listeners.insert(id, listener);
        }
        let mut cluster = TestCluster {
            shard_count,
            replicas,
            peers,
            dirs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            servers: BTreeMap::new(),
        };
        for (id, listener) in listeners {
            cluster.dirs.insert(id, tempfile::tempdir().expect("tempdir"));
            cluster.launch(id, listener, true).await;
        }
        cluster
    }

    fn config(&self, id: u64) -> NodeConfig {
        NodeConfig {
            id,
            listen: self.peers[&id].parse().expect("addr"),
            data_dir: self.dirs[&id].path().to_path_buf(),
            peers: self.peers.clone(),
            shard_count: self.shard_count,
            replicas: self.replicas,
            cluster_secret: test_secret(),
            client_tls: None,
            cluster_id: Some(TEST_CLUSTER_ID.into()),
        }
    }

    async fn launch(&mut self, id: u64, listener: TcpListener, bootstrap: bool) {
        let cfg = self.config(id);
        let node = if bootstrap {
            Node::start(cfg).await.expect("node start")
        } else {
            Node::start_joining(cfg, StorageOptions::default())
                .await
                .expect("node join")
        };
        let server = {
            let node = node.clone();
            tokio::spawn(async move { node.serve(listener, node.grpc_router()).await })
        };
        self.nodes.insert(id, node);
        self.servers.insert(id, server);
    }

    /// Starts a new, empty node that joins the cluster (it hosts nothing until added to a shard).
    pub async fn add_node(&mut self) -> u64 {
        let id = self.peers.keys().max().copied().unwrap_or(0) + 1;
        let listener = bind("127.0.0.1:0").await;
        self.peers.insert(id, listener.local_addr().expect("addr").to_string());
        self.dirs.insert(id, tempfile::tempdir().expect("tempdir"));
        self.launch(id, listener, false).await;
        id
    }

    /// Shuts node `id` down (its sled directory stays).
    pub async fn stop_node(&mut self, id: u64) {
        let node = self.nodes.remove(&id).expect("running node");
        node.shutdown().await;
        if let Some(server) = self.servers.remove(&id) {
            match tokio::time::timeout(Duration::from_secs(5), server).await {
                Ok(_) => {}
                Err(_) => tracing::warn!(id, "server did not stop in time"),
            }
        }
    }

    /// Restarts node `id` from its sled directory on its old address.
    pub async fn restart_node(&mut self, id: u64) {
        let listener = bind(&self.peers[&id].clone()).await;
        self.launch(id, listener, true).await;
    }

    /// Cuts node `id` off from every other running node, both ways.
    pub fn isolate(&self, id: u64) {
        let others: Vec<u64> = self.nodes.keys().copied().filter(|o| *o != id).collect();
        self.node(id).isolate(&others);
        for o in &others {
            self.node(*o).isolate(&[id]);
        }
    }

    pub fn heal(&self) {
        for n in self.nodes.values() {
            n.heal();
        }
    }

    /// A node other than `except` that leads `shard`.
    pub async fn wait_leader_except(&self, shard: u32, except: u64, timeout: Duration) -> u64 {
        let mut found = None;
        wait_for(timeout, &format!("new leader of shard {shard}"), || {
            found = self
                .nodes
                .iter()
                .filter(|(id, _)| **id != except)
                .find(|(_, n)| n.shard_status().iter().any(|s| s.shard == shard && s.is_leader))
                .map(|(id, _)| *id);
            found.is_some()
        })
        .await;
        found.expect("leader")
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&id]
    }

    pub fn status(&self, id: u64, shard: u32) -> Option<ShardStatus> {
        self.nodes
            .get(&id)?
            .shard_status()
            .into_iter()
            .find(|s| s.shard == shard)
    }

    /// The running node that leads `shard` and knows it (its quorum acknowledged it).
    pub fn leader(&self, shard: u32) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(_, n)| n.shard_status().iter().any(|s| s.shard == shard && s.is_leader))
            .map(|(id, _)| *id)
    }

    pub async fn wait_leader(&self, shard: u32, timeout: Duration) -> u64 {
        let mut found = None;
        wait_for(timeout, &format!("leader of shard {shard}"), || {
            found = self.leader(shard);
            found.is_some()
        })
        .await;
        found.expect("leader")
    }

    /// Waits until every running voter of `shard` applied everything the leader committed and
    /// all of them hold the same state hash; returns the applied index.
    pub async fn wait_converged(&self, shard: u32, timeout: Duration) -> u64 {
        let leader = self.wait_leader(shard, timeout).await;
        let mut index = 0;
        wait_for(timeout, &format!("shard {shard} replicas converge"), || {
            let Some(raft) = self.nodes.get(&leader).and_then(|n| n.raft_handle(shard)) else {
                return false;
            };
            let m = raft.metrics().borrow_watched().clone();
            let committed = m.cluster_committed.as_ref().map(|c| c.index()).unwrap_or(0);
            let voters: Vec<u64> = m
                .membership_config
                .membership()
                .voter_ids()
                .filter(|v| self.nodes.contains_key(v))
                .collect();
            let applied_all = voters
                .iter()
                .all(|v| self.status(*v, shard).and_then(|s| s.last_applied) == Some(committed));
            let hashes = self.state_hashes(shard);
            let first = hashes.get(&leader).copied();
            let digests = self.apply_digests(shard);
            let first_digest = digests.get(&leader).copied();
            index = committed;
            applied_all
                && voters.iter().all(|v| hashes.get(v).copied() == first)
                && voters.iter().all(|v| digests.get(v).copied() == first_digest)
        })
        .await;
        index
    }

    /// The state hash of every running replica of `shard`.
    pub fn state_hashes(&self, shard: u32) -> BTreeMap<u64, [u8; 32]> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| match n.read_local_stale(shard, &ReadRequest::StateHash) {
                Ok(ReadResponse::StateHash(h)) => Some((*id, h)),
                _ => None,
            })
            .collect()
    }

    /// The apply digest (hash chain of applied batches, in order) of every running replica.
    pub fn apply_digests(&self, shard: u32) -> BTreeMap<u64, ivory_raft::ApplyDigest> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| n.apply_digest(shard).map(|d| (*id, d)))
            .collect()
    }

    /// Asserts that every running replica of `shard` holds the same state hash and applied the
    /// same batches in the same order.
    pub fn assert_replicas_equal(&self, shard: u32, expected_replicas: usize) {
        let hashes = self.state_hashes(shard);
        assert_eq!(hashes.len(), expected_replicas, "replicas of shard {shard}: {hashes:?}");
        let first = hashes.values().next().copied();
        assert!(
            hashes.values().all(|h| Some(*h) == first),
            "shard {shard} state hashes differ: {hashes:?}"
        );
        let digests = self.apply_digests(shard);
        let first = digests.values().next().copied();
        assert!(
            digests.values().all(|d| Some(*d) == first),
            "shard {shard} apply order differs: {digests:?}"
        );
    }

    /// Proposes through node `via`, retrying retryable errors for up to `timeout`.
    pub async fn propose_retrying(&self, via: u64, shard: u32, commands: Vec<Command>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.node(via).propose(shard, commands.clone()).await {
                Ok(results) => {
                    assert!(results.iter().all(|r| r.outcome.applied()), "refused: {results:?}");
                    return;
                }
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("propose via {via} to shard {shard}: {e}"),
            }
        }
    }

    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop_node(id).await;
        }
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn partition() -> PartitionKey {
    PartitionKey::new("env", "org", "site1", "loc1")
}

/// `iv.onhand += 1` on product `p`, with a unique event id.
pub fn add_one(id: &str) -> Command {
    add(id, 1)
}

/// `iv.onhand += units` on product `p`, under event id `id`.
pub fn add(id: &str, units: i64) -> Command {
    Command::OnHandChange(OnHandChange {
        id: id.to_string(),
        partition: partition(),
        cell: Cell {
            product: "p".into(),
            dims: Dims::new(),
        },
        quantities: [(
            "pos".to_string(),
            [("inbound".to_string(), Qty::from_i64(units))].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
    })
}

pub fn onhand_query() -> ReadRequest {
    ReadRequest::Query(Query {
        environment: "env".into(),
        organization: "org".into(),
        locations: None,
        products: vec!["p".into()],
        filters: BTreeMap::new(),
        exact: None,
        group_by: Vec::new(),
        return_negative: true,
        atp: None,
    })
}

/// `iv.onhand` of product `p` in a read answer (0 when absent).
pub fn onhand_of(response: &ReadResponse) -> Qty {
    match response {
        ReadResponse::Records(records) => records
            .iter()
            .filter_map(|r| r.quantities.get("iv").and_then(|m| m.get("onhand")).cloned())
            .next()
            .unwrap_or(Qty::from_i64(0)),
        other => panic!("not records: {other:?}"),
    }
}

pub async fn read_onhand(node: &Node, shard: u32) -> Result<Qty, NodeError> {
    node.read(shard, onhand_query()).await.map(|r| onhand_of(&r))
}

/// The cluster id every node of a test cluster names on its calls.
pub const TEST_CLUSTER_ID: &str = "in-process-test-cluster";

/// The cluster secret every node of a test cluster shares.
pub fn test_secret() -> std::sync::Arc<ivory_node::ClusterSecret> {
    std::sync::Arc::new(ivory_node::ClusterSecret::new("in-process-test-cluster-secret").expect("secret"))
}
