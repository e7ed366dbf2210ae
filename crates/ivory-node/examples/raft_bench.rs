//! Replicated write latency and throughput of one shard on 3 in-process nodes (real sled with
//! flush + fsync in temp dirs, real tonic on loopback).
//!
//! `cargo run --release -p ivory-node --example raft_bench [-- sequential_writes concurrency seconds idle_shards fsync(1|0)]`
//!
//! Prints: sequential write latency through the leader and through a follower (forwarded),
//! concurrent writes/s with fsyncs per write (group commit), and the CPU that 3 nodes spend
//! keeping `idle_shards` idle groups alive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ivory_core::{Cell, Command, Dims, OnHandChange, PartitionKey, Qty};
use ivory_node::{Node, NodeConfig};
use tokio::net::TcpListener;

fn command(id: String) -> Command {
    Command::OnHandChange(OnHandChange {
        id,
        partition: PartitionKey::new("env", "org", "site1", "loc1"),
        cell: Cell {
            product: "p".into(),
            dims: Dims::new(),
        },
        quantities: [(
            "pos".to_string(),
            [("inbound".to_string(), Qty::from_i64(1))].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
    })
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sequential = arg(1, 1_000);
    let concurrency = arg(2, 64);
    let seconds = arg(3, 10);
    let idle_shards = arg(4, 16) as u32;
    let options = ivory_node::StorageOptions {
        fsync: arg(5, 1) != 0,
        ..Default::default()
    };
    bench_writes(sequential, concurrency, seconds, &options).await?;
    if idle_shards > 0 {
        bench_idle(idle_shards, &options).await?;
    }
    Ok(())
}

struct Cluster {
    _dirs: Vec<tempfile::TempDir>,
    nodes: BTreeMap<u64, Node>,
}

async fn start_cluster(
    shard_count: u32,
    options: &ivory_node::StorageOptions,
) -> Result<Cluster, Box<dyn std::error::Error>> {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir()).collect::<Result<_, _>>()?;
    let mut listeners = Vec::new();
    let mut peers = BTreeMap::new();
    for id in 1..=3u64 {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        peers.insert(id, l.local_addr()?.to_string());
        listeners.push(l);
    }
    let mut nodes = BTreeMap::new();
    let secret = std::sync::Arc::new(ivory_node::ClusterSecret::new("raft-bench-cluster-secret")?);
    for (i, listener) in listeners.into_iter().enumerate() {
        let id = i as u64 + 1;
        let cfg = NodeConfig {
            id,
            listen: listener.local_addr()?,
            data_dir: dirs[i].path().to_path_buf(),
            peers: peers.clone(),
            shard_count,
            replicas: 3,
            cluster_secret: secret.clone(),
            client_tls: None,
            cluster_id: Some("raft-bench".into()),
        };
        let node = Node::start_with(cfg, options.clone()).await?;
        let served = node.clone();
        tokio::spawn(async move { served.serve(listener, served.grpc_router()).await });
        nodes.insert(id, node);
    }
    Ok(Cluster { _dirs: dirs, nodes })
}

/// Process CPU time (user + system) in seconds, from /proc/self/stat (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime 11, stime 12; 100 ticks per second.
    (ticks(11) + ticks(12)) / 100.0
}

async fn bench_idle(shards: u32, options: &ivory_node::StorageOptions) -> Result<(), Box<dyn std::error::Error>> {
    let cluster = start_cluster(shards, options).await?;
    let started = Instant::now();
    while cluster
        .nodes
        .values()
        .flat_map(|n| n.shard_status())
        .filter(|s| s.is_leader)
        .count()
        < shards as usize
    {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("not every shard elected a leader".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = cpu_seconds() - cpu0;
    println!(
        "idle: 3 nodes x {shards} groups (3 replicas each), heartbeat {} ms: {:.1}% of one core for all 3 nodes",
        ivory_raft::HEARTBEAT_INTERVAL_MS,
        100.0 * cpu / t0.elapsed().as_secs_f64()
    );
    for node in cluster.nodes.values() {
        node.shutdown().await;
    }
    Ok(())
}

async fn bench_writes(
    sequential: u64,
    concurrency: u64,
    seconds: u64,
    options: &ivory_node::StorageOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    let cluster = start_cluster(1, options).await?;
    let nodes = &cluster.nodes;
    // Wait for a leader that accepts writes.
    let started = Instant::now();
    let leader = loop {
        if let Some((id, _)) = nodes.iter().find(|(_, n)| n.shard_status().iter().any(|s| s.is_leader)) {
            let node = &nodes[id];
            if node.propose(0, vec![command("warmup".into())]).await.is_ok() {
                break *id;
            }
        }
        if started.elapsed() > Duration::from_secs(20) {
            return Err("no leader".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let node = nodes[&leader].clone();
    println!(
        "leader: node {leader}; {}",
        if options.fsync {
            "flush + fsync before every ack (group commit)"
        } else {
            "flush only, NO fsync"
        }
    );

    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    let t0 = Instant::now();
    for i in 0..sequential {
        let t = Instant::now();
        node.propose(0, vec![command(format!("s{i}"))]).await?;
        hist.record(t.elapsed().as_micros() as u64)?;
    }
    let total = t0.elapsed();
    println!(
        "sequential via leader: {sequential} writes in {:.2} s = {:.0}/s; latency us p50 {} p90 {} p99 {} max {} mean {:.0}",
        total.as_secs_f64(),
        sequential as f64 / total.as_secs_f64(),
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.max(),
        hist.mean()
    );

    let follower = nodes.keys().copied().find(|id| *id != leader).ok_or("no follower")?;
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    for i in 0..sequential / 2 {
        let t = Instant::now();
        nodes[&follower].propose(0, vec![command(format!("f{i}"))]).await?;
        hist.record(t.elapsed().as_micros() as u64)?;
    }
    println!(
        "sequential via follower (forwarded over gRPC): {} writes; latency us p50 {} p99 {} mean {:.0}",
        sequential / 2,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.mean()
    );

    let fsyncs_before = node.fsync_count();
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let node = node.clone();
        let counter = counter.clone();
        tasks.spawn(async move {
            let mut hist = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                if node.propose(0, vec![command(format!("c{w}-{i}"))]).await.is_ok() {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let _ = hist.record(t.elapsed().as_micros() as u64);
                }
                i += 1;
            }
            hist
        });
    }
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    while let Some(h) = tasks.join_next().await {
        hist.add(h?)?;
    }
    let total = t0.elapsed();
    let n = counter.load(Ordering::Relaxed);
    let fsyncs = node.fsync_count() - fsyncs_before;
    println!(
        "concurrent: {concurrency} proposers, {n} writes in {:.2} s = {:.0} writes/s; latency us p50 {} p99 {}; leader fsyncs {fsyncs} ({:.1} writes per fsync)",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        n as f64 / fsyncs.max(1) as f64
    );
    for node in nodes.values() {
        node.shutdown().await;
    }
    Ok(())
}
