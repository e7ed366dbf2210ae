//! The test-only fault hook: absent without `--enable-fault-injection`; with it, `/_test/fault`
//! drops what a node sends to the given addresses, delays it, and slows the node's disk.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use ivory_nemesis::cluster::Cluster;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const TEST_TIMEOUT: Duration = Duration::from_secs(150);

#[tokio::test]
async fn the_route_is_absent_without_the_flag() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = ivory_tests::Cluster::single(Path::new(BIN), 2);
        node.wait_healthy(Duration::from_secs(60)).await;
        let r = reqwest::Client::new()
            .post(format!("http://{}/_test/fault", node.nodes[0].addr))
            .json(&json!({"drop": ["127.0.0.1:1"]}))
            .send()
            .await
            .expect("request sent");
        assert_eq!(r.status().as_u16(), 404);
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test]
async fn drop_delay_and_slow_disk_take_effect_and_heal() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (cluster, api) = Cluster::start_healthy(Path::new(BIN), 3, 2, &[])
            .await
            .expect("cluster up");
        let write = |n: usize, id: String| {
            let api = api.clone();
            async move {
                let started = Instant::now();
                let ok = api.probe_write(n, "11", &id).await;
                (ok, started.elapsed())
            }
        };
        assert!(write(0, "w0".into()).await.0);

        // A slow disk on every node: no write is acknowledged before one slowed fsync.
        for i in 0..3 {
            cluster
                .set_faults(i, &json!({"slowDiskMs": 300}))
                .await
                .expect("slow disk set");
        }
        let (ok, took) = write(0, "w1".into()).await;
        assert!(ok && took >= Duration::from_millis(300), "slow disk: {ok} in {took:?}");
        // A delay on everything every node sends: replication pays it at least once. Kept well
        // under the 300 ms heartbeat interval, which openraft also uses as the AppendEntries
        // timeout: a follower round trip longer than that stalls the shard (README, nemesis).
        for i in 0..3 {
            cluster
                .set_faults(i, &json!({"delayMs": 100}))
                .await
                .expect("delay set");
        }
        let (ok, took) = write(0, "w2".into()).await;
        assert!(ok && took >= Duration::from_millis(100), "delay: {ok} in {took:?}");

        // Node 1 cut off on both sides: nodes 2 and 3 elect leaders among themselves.
        cluster
            .partition(&[BTreeSet::from([0]), BTreeSet::from([1, 2])])
            .await
            .expect("partition set");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let views = cluster.status(1).await.unwrap_or_default();
            if !views.is_empty() && views.iter().all(|s| matches!(s.leader, Some(2 | 3))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the majority did not lead every shard: {views:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(write(1, "w3".into()).await.0, "the majority takes writes");

        // Healed: the whole cluster is healthy and takes writes through node 1 again.
        for i in 0..3 {
            cluster.set_faults(i, &json!({})).await.expect("healed");
        }
        cluster
            .wait_healthy(Duration::from_secs(30))
            .await
            .expect("healthy again");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut n = 0;
        while !write(0, format!("w4-{n}")).await.0 {
            assert!(Instant::now() < deadline, "node 1 takes no write after the heal");
            n += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the test finishes in time");
}
