//! Cluster operations on real processes: a cluster grows and shrinks under reserve traffic with
//! `ivory cluster add-node` / `ivory node --join` / `ivory cluster remove-node`, a removal that
//! would break quorum is refused, and a metadata leader killed in the middle of a move leaves no
//! half-done move behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ivory_tests::{Client, Cluster, fully_settled, member_state, sum_measure};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const SHARDS: u32 = 8;
const SETTLE: Duration = Duration::from_secs(120);
const CLI: Duration = Duration::from_secs(60);
/// Products x partitions: the keys the background clients reserve, spread over the shards.
const PRODUCTS: usize = 4;
const SITES: usize = 4;
/// Every fourth key has little stock (it sells out mid-test: the oversell check bites), the
/// others plenty (the writes go on until the end).
fn stock_of(k: usize) -> i64 {
    if k.is_multiple_of(4) { 40 } else { 1_000_000 }
}

fn key(k: usize) -> (String, String) {
    (format!("P{}", k % PRODUCTS), format!("{}", k / PRODUCTS))
}

fn keys() -> usize {
    PRODUCTS * SITES
}

fn dims(site: &str) -> Value {
    json!({"siteId": site, "locationId": "11"})
}

fn stock_all() -> Value {
    let items: Vec<Value> = (0..keys())
        .map(|k| {
            let (product, site) = key(k);
            json!({"id": format!("stock-{k}"), "organizationId": "org", "productId": product,
                   "dimensions": dims(&site), "quantities": {"pos": {"inbound": stock_of(k)}}})
        })
        .collect();
    Value::Array(items)
}

fn reserve(id: &str, k: usize) -> Value {
    let (product, site) = key(k);
    json!({"id": id, "organizationId": "org", "productId": product, "dimensions": dims(&site),
           "quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": 1,
           "ifCheckAvailForReserv": true})
}

fn query(k: usize) -> Value {
    let (product, site) = key(k);
    json!({"filters": {"organizationId": ["org"], "productId": [product], "siteId": [site], "locationId": ["11"]},
           "groupByValues": [], "returnNegative": true})
}

/// What the background clients saw.
#[derive(Default)]
struct Seen {
    /// Key -> reservations acknowledged with 200.
    acked: BTreeMap<usize, u64>,
    /// Answers other than 200, 409 (sold out) and retryable 503s: must stay empty.
    bad: Vec<String>,
    retryable: u64,
}

/// Reserves 1 of a key at a time through the clients in `targets` until `stop`; an unknown
/// outcome (503, dropped connection) is retried with the same id, so it counts at most once.
async fn reserve_loop(targets: Arc<Mutex<Vec<Client>>>, worker: usize, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let k = (worker * 7 + n) % keys();
        let id = format!("w{worker}-{n}");
        for attempt in 0usize.. {
            let client = {
                let t = targets.lock().expect("targets");
                t[(n + attempt) % t.len()].clone()
            };
            match client.post("onhand/reserve", &reserve(&id, k)).await {
                Ok(a) if a.status == 200 => {
                    *seen.lock().expect("seen").acked.entry(k).or_default() += 1;
                    break;
                }
                Ok(a) if a.status == 409 && a.body["statusCode"] == 500 => break,
                Ok(a) if a.status == 503 && a.headers.contains_key("retry-after") => {
                    seen.lock().expect("seen").retryable += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(a) => {
                    seen.lock()
                        .expect("seen")
                        .bad
                        .push(format!("{id}: {} {}", a.status, a.body));
                    break;
                }
                // A connection error is an unknown outcome too: the same id again.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// Waits until the background clients had `n` reservations acknowledged (bounded).
async fn wait_for_acks(seen: &Mutex<Seen>, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let acked: u64 = seen.lock().expect("seen").acked.values().sum();
        if acked >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {acked} of {n} reservations acknowledged in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn node_shards(cluster: &Cluster, i: usize) -> Vec<u64> {
    let status = cluster.node_status(i).await.expect("node status");
    let mut shards: Vec<u64> = status["shards"]
        .as_array()
        .map(|s| s.iter().filter_map(|x| x["shard"].as_u64()).collect())
        .unwrap_or_default();
    shards.sort_unstable();
    shards
}

/// The shards the cluster metadata places on node `id`.
fn placed_on(status: &Value, id: u64) -> Vec<u64> {
    status["shards"]
        .as_array()
        .map(|shards| {
            shards
                .iter()
                .filter(|s| s["replicas"].as_array().is_some_and(|r| r.iter().any(|n| *n == id)))
                .filter_map(|s| s["shard"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_to_four_then_remove_node_one_under_traffic() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let mut cluster = Cluster::nodes(Path::new(BIN), 3, SHARDS);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let setup = cluster.client(1, "env").await;
        setup.post_ok("onhand/bulk", &stock_all()).await;

        // The clients use nodes 2 and 3 (and 4 once it runs): node 1 is the one that leaves.
        let targets = Arc::new(Mutex::new(vec![
            cluster.client(1, "env").await,
            cluster.client(2, "env").await,
        ]));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let workers: Vec<_> = (0..6)
            .map(|w| tokio::spawn(reserve_loop(targets.clone(), w, stop.clone(), seen.clone())))
            .collect();
        wait_for_acks(&seen, 20).await;

        // As an operator would: register node 4, then start it with --join.
        let endpoint = cluster.nodes[1].addr.to_string();
        let new_addr = format!("127.0.0.1:{}", ivory_tests::free_port());
        let added = cluster
            .cli(
                &[
                    "cluster",
                    "add-node",
                    "--endpoint",
                    &endpoint,
                    "--id",
                    "4",
                    "--address",
                    &new_addr,
                ],
                CLI,
            )
            .await;
        assert!(added.success, "add-node: {added:?}");
        let joining = cluster.cluster_status(1).await.expect("status");
        assert_eq!(member_state(&joining, 4).as_deref(), Some("joining"));
        let new = cluster.join_at(4, 1, new_addr.parse().expect("addr"));
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let grown = cluster
            .wait_cluster(1, SETTLE, "settled on four nodes", |s| {
                fully_settled(s) && member_state(s, 4).as_deref() == Some("active")
            })
            .await;
        assert!(!placed_on(&grown, 4).is_empty(), "node 4 got no replica: {grown:#}");
        // Connect first: a std mutex must not be held across an await.
        let joined = cluster.client(new, "env").await;
        targets.lock().expect("targets").push(joined);

        let removed = cluster
            .cli(
                &[
                    "cluster",
                    "remove-node",
                    "--endpoint",
                    &endpoint,
                    "--id",
                    "1",
                    "--no-wait",
                ],
                CLI,
            )
            .await;
        assert!(removed.success, "remove-node: {removed:?}");
        let shrunk = cluster
            .wait_cluster(1, SETTLE, "node 1 removed and settled", |s| {
                fully_settled(s) && member_state(s, 1).as_deref() == Some("removed")
            })
            .await;
        assert!(placed_on(&shrunk, 1).is_empty());
        // The removed node dropped its replicas (their trees) before it is stopped.
        let node1 = cluster.index_of(1);
        let mut dropped = false;
        for _ in 0..100 {
            if node_shards(&cluster, node1).await.is_empty() {
                dropped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            dropped,
            "node 1 still hosts shards {:?}",
            node_shards(&cluster, node1).await
        );
        cluster.nodes[node1].kill9();
        // Every other node hosts exactly what the metadata places on it.
        for id in [2, 3, 4] {
            let i = cluster.index_of(id);
            assert_eq!(node_shards(&cluster, i).await, placed_on(&shrunk, id), "node {id}");
        }

        // Traffic goes on after the last move: 20 more acknowledgements on the final placement.
        let so_far: u64 = seen.lock().expect("seen").acked.values().sum();
        wait_for_acks(&seen, so_far + 20).await;
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.await.expect("worker");
        }
        let seen = std::mem::take(&mut *seen.lock().expect("seen"));
        assert!(seen.bad.is_empty(), "non-retryable errors: {:?}", seen.bad);
        let total: u64 = seen.acked.values().sum();
        assert!(total > 0, "no reservation went through");
        // No acknowledged write lost, none counted twice, no oversell.
        let reader = cluster.client(cluster.index_of(2), "env").await;
        for k in 0..keys() {
            let records = reader.post_ok("onhand/indexquery", &query(k)).await;
            let reserved = sum_measure(&records, "iv", "softreservphysical");
            let acked = seen.acked.get(&k).copied().unwrap_or(0);
            assert_eq!(
                reserved, acked as f64,
                "key {k}: reserved {reserved}, acknowledged {acked}"
            );
            assert!(
                reserved <= stock_of(k) as f64,
                "key {k} oversold: {reserved} > {}",
                stock_of(k)
            );
        }
        eprintln!(
            "reserved {total} while growing and shrinking ({} retryable 503s)",
            seen.retryable
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_that_would_break_quorum_are_refused_and_change_nothing() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let mut cluster = Cluster::nodes(Path::new(BIN), 3, SHARDS);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let endpoint = cluster.nodes[0].addr.to_string();
        let before = cluster.wait_cluster(0, SETTLE, "settled", fully_settled).await;

        // Three nodes, replication factor 3: no node can go.
        let out = cluster
            .cli(&["cluster", "remove-node", "--endpoint", &endpoint, "--id", "2"], CLI)
            .await;
        assert!(!out.success, "removal accepted: {out:?}");
        assert!(out.stderr.contains("replication factor of 3"), "{}", out.stderr);
        let after = cluster.cluster_status(0).await.expect("status");
        assert_eq!(after["placementVersion"], before["placementVersion"]);
        assert_eq!(after["members"], before["members"]);

        // Four nodes but one down: removing another would leave two live nodes for three replicas.
        cluster.join(4, 0);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        cluster
            .wait_cluster(0, SETTLE, "settled on four nodes", |s| {
                fully_settled(s) && member_state(s, 4).as_deref() == Some("active")
            })
            .await;
        let node3 = cluster.index_of(3);
        cluster.nodes[node3].kill9();
        let before = cluster.cluster_status(0).await.expect("status");
        let out = cluster
            .cli(&["cluster", "remove-node", "--endpoint", &endpoint, "--id", "2"], CLI)
            .await;
        assert!(!out.success, "removal accepted with node 3 down: {out:?}");
        assert!(out.stderr.contains("down: [3]"), "{}", out.stderr);
        let after = cluster.cluster_status(0).await.expect("status");
        assert_eq!(after["placementVersion"], before["placementVersion"]);
        assert_eq!(member_state(&after, 2).as_deref(), Some("active"));
        // Unknown nodes are refused too.
        let out = cluster
            .cli(&["cluster", "remove-node", "--endpoint", &endpoint, "--id", "42"], CLI)
            .await;
        assert!(!out.success && out.stderr.contains("not a member"), "{out:?}");

        // Two of four down, then three: without a metadata quorum, status still answers from the
        // node's own copy, and says it has no metadata leader.
        for id in [2, 4] {
            let index = cluster.index_of(id);
            cluster.nodes[index].kill9();
        }
        let alone = cluster
            .cluster_status(0)
            .await
            .expect("status without a metadata quorum");
        assert!(alone["metaLeader"].is_null(), "{alone:#}");
        assert_eq!(alone["placementVersion"], after["placementVersion"], "{alone:#}");
        assert_eq!(member_state(&alone, 2).as_deref(), Some("active"));
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_leader_killed_mid_move_leaves_no_half_move() {
    tokio::time::timeout(Duration::from_secs(300), async {
        // Moves pause 1.5 s after they are recorded: the kill lands while one is in flight.
        let env = [("IVORY_TEST_MOVE_PAUSE_MS", "1500")];
        let mut cluster = Cluster::nodes_with_env(Path::new(BIN), 3, SHARDS, &env);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let writer = cluster.client(0, "env").await;
        writer.post_ok("onhand/bulk", &stock_all()).await;

        cluster.join(4, 0);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let moving = cluster
            .wait_cluster(0, SETTLE, "a move in flight", |s| {
                s["moves"].as_array().is_some_and(|m| !m.is_empty())
            })
            .await;
        let leader = moving["metaLeader"].as_u64().expect("metadata leader");
        let leader_index = cluster.index_of(leader);
        cluster.restart(leader_index);
        let via = cluster.index_of(if leader == 1 { 2 } else { 1 });
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let settled = cluster
            .wait_cluster(via, SETTLE, "settled after the restart", |s| {
                fully_settled(s) && member_state(s, 4).as_deref() == Some("active")
            })
            .await;
        // Never half: each node hosts exactly the shards placed on it (replicas removed from a
        // node are dropped there, possibly by the orphan scan after the restart).
        for id in 1..=4u64 {
            let i = cluster.index_of(id);
            let want = placed_on(&settled, id);
            let mut hosted = Vec::new();
            for _ in 0..150 {
                hosted = node_shards(&cluster, i).await;
                if hosted == want {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert_eq!(
                hosted,
                want,
                "node {id} hosts {hosted:?}, placed {want:?}\n{}",
                cluster.logs()
            );
        }
        // And the stock written before the moves is all there, on every shard.
        let reader = cluster.client(cluster.index_of(4), "env").await;
        for k in 0..keys() {
            let records = reader.post_ok("onhand/indexquery", &query(k)).await;
            assert_eq!(
                sum_measure(&records, "iv", "availabletoreserve"),
                stock_of(k) as f64,
                "key {k}"
            );
        }
    })
    .await
    .expect("test timed out");
}
