//! Overload through real processes: more concurrent requests than a node's limit get 429 with
//! Retry-After and a JSON error, never a 5xx; every acknowledged write is in the stock; no shard
//! changes leader under the load. A client that does not finish its request head is cut off.

use std::path::Path;
use std::time::{Duration, Instant};

use ivory_tests::{Cluster, sum_measure};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const SHARDS: u32 = 4;
const LIMIT: &str = "2";
const CONCURRENT: usize = 200;

async fn leaders(cluster: &Cluster) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for shard in 0..SHARDS {
        out.push(cluster.leader_of(shard).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_limit_requests_get_429_and_raft_stays_healthy() {
    let args = ["--max-requests-in-flight", LIMIT, "--header-read-timeout-secs", "1"];
    let cluster = Cluster::nodes_with(Path::new(BIN), 3, SHARDS, &[], &args);
    cluster.wait_healthy(Duration::from_secs(60)).await;
    let client = cluster.client(0, "load").await;
    let query = "onhand?organizationId=org&productId=P&siteId=1&locationId=11";
    // Every shard led and writable before the load, so that a change after it is the load's.
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let l = leaders(&cluster).await;
        if l.iter().all(Option::is_some) {
            break l;
        }
        assert!(Instant::now() < deadline, "shards without a leader: {l:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let tasks: Vec<_> = (0..CONCURRENT)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let body = json!({"id": format!("w{i}"), "organizationId": "org", "productId": "P",
                    "dimensions": {"siteId": "1", "locationId": "11"}, "quantities": {"pos": {"inbound": 1}}});
                client.post("onhand", &body).await
            })
        })
        .collect();
    let (mut acked, mut refused) = (0u64, 0u64);
    for task in tasks {
        let answer = task.await.expect("task").expect("every request is answered");
        match answer.status {
            200 => acked += 1,
            429 => {
                refused += 1;
                assert!(answer.headers.contains_key("retry-after"), "429 without Retry-After");
                assert_eq!(answer.body["code"], "overload.too_many_requests", "{}", answer.body);
            }
            other => panic!("status {other}: {}\n{}", answer.body, cluster.logs()),
        }
    }
    assert!(
        refused > 0,
        "{CONCURRENT} concurrent requests past a limit of {LIMIT}: none refused"
    );
    assert!(acked > 0, "nothing got through");

    // Every acknowledged write is there (each added 1).
    let stock = client.get(query).await.expect("query");
    assert_eq!(stock.status, 200, "{}", stock.body);
    assert_eq!(sum_measure(&stock.body, "iv", "onhand"), acked as f64, "{}", stock.body);
    assert_eq!(leaders(&cluster).await, before, "a shard changed leader under the load");

    // A client that never finishes its request head is disconnected after the header timeout.
    let mut tcp = tokio::net::TcpStream::connect(cluster.nodes[0].addr)
        .await
        .expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 512];
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "a half-sent request head kept the connection open for 10 s"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}
