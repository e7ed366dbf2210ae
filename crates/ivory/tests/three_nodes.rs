//! A 3-node cluster of real processes: the last unit is sold once, and a kill -9 of a node in the
//! middle of traffic loses no acknowledged write.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ivory_tests::{Client, Cluster, sum_measure};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
const SHARDS: u32 = 4;

fn stock(id: &str, product: &str, qty: i64) -> Value {
    json!({"id": id, "organizationId": "org", "productId": product,
           "dimensions": {"siteId": "1", "locationId": "11"}, "quantities": {"pos": {"inbound": qty}}})
}

fn reserve(id: &str, product: &str) -> Value {
    json!({"id": id, "organizationId": "org", "productId": product, "dimensions": {"siteId": "1", "locationId": "11"},
           "quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": 1, "ifCheckAvailForReserv": true})
}

fn query(product: &str) -> Value {
    json!({"filters": {"organizationId": ["org"], "productId": [product], "siteId": ["1"], "locationId": ["11"]},
           "groupByValues": [], "returnNegative": true})
}

/// Reserves 1 until the answer is "not enough stock"; retries an id whose outcome is unknown (a
/// 503 or a dropped connection) with the same id, so a retry can never reserve twice.
async fn reserve_until_sold_out(c: Client, product: &'static str, client: usize, successes: Arc<AtomicU64>) {
    for n in 0.. {
        let id = format!("c{client}-{n}");
        loop {
            match c.post("onhand/reserve", &reserve(&id, product)).await {
                Ok(a) if a.status == 200 => {
                    successes.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Ok(a) if a.status == 409 && a.body["statusCode"] == 500 => return,
                Ok(a) if a.status == 503 => tokio::time::sleep(Duration::from_millis(50)).await,
                Ok(a) => panic!("unexpected answer to {id}: {} {}", a.status, a.body),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

#[tokio::test]
async fn the_last_unit_is_sold_once_and_kill_9_loses_nothing() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut cluster = Cluster::nodes(Path::new(BIN), 3, SHARDS);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let clients = [
            cluster.client(0, "env").await,
            cluster.client(1, "env").await,
            cluster.client(2, "env").await,
        ];

        // 32 concurrent clients, spread over the three nodes, against stock 50.
        clients[0].post_ok("onhand", &stock("stock-hot", "HOT", 50)).await;
        let successes = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                tokio::spawn(reserve_until_sold_out(
                    clients[i % 3].clone(),
                    "HOT",
                    i,
                    successes.clone(),
                ))
            })
            .collect();
        for t in tasks {
            t.await.expect("client task");
        }
        assert_eq!(
            successes.load(Ordering::SeqCst),
            50,
            "exactly the stock was sold\n{}",
            cluster.logs()
        );
        for c in &clients {
            let records = c.post_ok("onhand/indexquery", &query("HOT")).await;
            assert_eq!(sum_measure(&records, "iv", "softreservphysical"), 50.0);
            assert_eq!(sum_measure(&records, "iv", "availabletoreserve"), 0.0);
        }

        // Writes through a node that survives while the shard's leader is killed with -9 in the
        // middle of them.
        let ring = ivory_cluster::ShardRing::new(&ivory_cluster::Layout::new(SHARDS)).expect("layout");
        let shard = ring.shard_of(&ivory_core::PartitionKey::new("env", "org", "1", "11"));
        let leader = cluster.leader_of(shard).await.expect("the shard has a leader");
        let victim = cluster
            .nodes
            .iter()
            .position(|n| n.id == leader)
            .expect("leader is a node");
        let survivor = (victim + 1) % 3;
        let acknowledged = Arc::new(AtomicU64::new(0));
        let writer = {
            let c = clients[survivor].clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                for n in 0..150u64 {
                    let id = format!("w-{n}");
                    loop {
                        match c.post("onhand", &stock(&id, "KILL", 1)).await {
                            Ok(a) if a.status == 200 => break,
                            Ok(a) if a.status == 503 => tokio::time::sleep(Duration::from_millis(50)).await,
                            Ok(a) => panic!("unexpected answer to {id}: {} {}", a.status, a.body),
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        while acknowledged.load(Ordering::SeqCst) < 40 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cluster.nodes[victim].kill9();
        let killed_at = Instant::now();
        writer.await.expect("writer");
        let records = clients[survivor].post_ok("onhand/indexquery", &query("KILL")).await;
        assert_eq!(
            sum_measure(&records, "iv", "onhand"),
            150.0,
            "every acknowledged write is there"
        );
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "the API answered again within a few election timeouts"
        );

        // The killed node comes back from its sled directory and catches up.
        cluster.restart(victim);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let c3 = cluster.client(victim, "env").await;
        let records = c3.post_ok("onhand/indexquery", &query("KILL")).await;
        assert_eq!(sum_measure(&records, "iv", "onhand"), 150.0);
        let records = c3.post_ok("onhand/indexquery", &query("HOT")).await;
        assert_eq!(sum_measure(&records, "iv", "softreservphysical"), 50.0);
    })
    .await
    .expect("the test finishes in time");
}
