//! A cluster whose members are addressed by host name (`localhost:PORT`), each listening on
//! 0.0.0.0 and advertising its name: it forms, serves, takes a node joining by name, and keeps
//! every acknowledged write across a member's kill -9 and restart, and across a member's restart on
//! another port (a rescheduled pod): it keeps its id, the cluster records its new address, and its
//! replicas catch up there.

use std::path::Path;
use std::time::Duration;

use ivory_tests::{Cluster, free_port, fully_settled, member_state, sum_measure};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const SETTLE: Duration = Duration::from_secs(90);

fn stock(id: &str, product: &str) -> serde_json::Value {
    json!({"id": id, "organizationId": "usmf", "productId": product,
           "dimensions": {"siteId": "1", "locationId": "11"}, "quantities": {"pos": {"inbound": 1}}})
}

fn stock_at(id: &str, product: &str, location: u32) -> serde_json::Value {
    json!({"id": id, "organizationId": "usmf", "productId": product,
           "dimensions": {"siteId": "1", "locationId": format!("L{location}")}, "quantities": {"pos": {"inbound": 1}}})
}

fn query(product: &str) -> serde_json::Value {
    json!({"filters": {"organizationId": ["usmf"], "productId": [product], "siteId": ["1"], "locationId": ["11"]},
           "groupByValues": [], "returnNegative": true})
}

#[tokio::test(flavor = "multi_thread")]
async fn members_by_host_name_form_serve_join_and_restart() {
    let run = async {
        let mut cluster = Cluster::nodes_by_name(Path::new(BIN), 3, 4);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let status = cluster.wait_cluster(0, SETTLE, "settled", fully_settled).await;
        for (i, node) in cluster.nodes.iter().enumerate() {
            let addr = status["members"][i]["addr"].as_str().unwrap_or_default();
            assert_eq!(addr, format!("localhost:{}", node.addr.port()), "{status:#}");
        }

        // Writes through one member, reads through another: the members reach each other by name.
        let writer = cluster.client(1, "names").await;
        for i in 0..10 {
            let r = writer.post_ok("onhand", &stock(&format!("w{i}"), "shirt")).await;
            assert_eq!(r["processingStatus"], "success", "{r}");
        }

        // A fourth node registered and joining by name.
        let port = free_port();
        let address = format!("localhost:{port}");
        let endpoint = format!("localhost:{}", cluster.nodes[0].addr.port());
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
                    &address,
                ],
                Duration::from_secs(30),
            )
            .await;
        assert!(added.success, "add-node by name: {added:?}");
        let refused = cluster
            .cli(
                &[
                    "cluster",
                    "add-node",
                    "--endpoint",
                    &endpoint,
                    "--id",
                    "5",
                    "--address",
                    "not a host:1",
                ],
                Duration::from_secs(30),
            )
            .await;
        assert!(!refused.success && refused.stderr.contains("HOST:PORT"), "{refused:?}");
        cluster.join_by_name(4, port, &endpoint);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        cluster
            .wait_cluster(0, SETTLE, "settled on four nodes", |s| {
                fully_settled(s) && member_state(s, 4).as_deref() == Some("active")
            })
            .await;

        // kill -9 and restart a member: it finds the others by name again; nothing acknowledged is lost.
        cluster.restart(0);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        cluster
            .wait_cluster(1, SETTLE, "settled after the restart", fully_settled)
            .await;
        let reader = cluster.client(0, "names").await;
        let r = writer.post_ok("onhand", &stock("after", "shirt")).await;
        assert_eq!(r["processingStatus"], "success", "{r}");
        let records = reader.post_ok("onhand/indexquery", &query("shirt")).await;
        assert_eq!(sum_measure(&records, "pos", "inbound"), 11.0, "{records}");

        // Node 3 restarts on another port with the same data: same id, new address recorded,
        // no new member; writes taken meanwhile reach its replicas at the new address.
        // It asks only after its replicas gave up on their leaders (whose heartbeats go to the old
        // port), so it must find the metadata group's leader by asking the other members.
        let moved = cluster.index_of(3);
        let port = free_port();
        cluster.nodes[moved]
            .env
            .push(("IVORY_TEST_ANNOUNCE_DELAY_MS".into(), "3000".into()));
        cluster.restart_on(moved, port);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let new_addr = format!("localhost:{port}");
        cluster
            .wait_cluster(0, SETTLE, "node 3 recorded at its new address", |s| {
                let members = s["members"].as_array().map(Vec::as_slice).unwrap_or_default();
                fully_settled(s)
                    && members.len() == 4
                    && members
                        .iter()
                        .any(|m| m["id"] == 3 && m["addr"] == new_addr.as_str() && m["reachable"] == true)
            })
            .await;
        for i in 0..5 {
            let r = writer.post_ok("onhand", &stock(&format!("moved{i}"), "shirt")).await;
            assert_eq!(r["processingStatus"], "success", "{r}");
        }
        // Writes in many partitions, so that shards led elsewhere with a replica on node 3 get some.
        for location in 0..24 {
            let r = writer
                .post_ok("onhand", &stock_at(&format!("spread{location}"), "sock", location))
                .await;
            assert_eq!(r["processingStatus"], "success", "{r}");
        }
        let through_moved = cluster.client(moved, "names").await;
        let r = through_moved.post_ok("onhand", &stock("via-moved", "shirt")).await;
        assert_eq!(r["processingStatus"], "success", "{r}");
        let records = through_moved.post_ok("onhand/indexquery", &query("shirt")).await;
        assert_eq!(sum_measure(&records, "pos", "inbound"), 17.0, "{records}");
        // Every shard with a replica on node 3 has it caught up: its leader replicates to the new address.
        cluster
            .wait_cluster(0, SETTLE, "node 3's replicas caught up", |s| {
                let shards = s["shards"].as_array().map(Vec::as_slice).unwrap_or_default();
                shards.iter().all(|shard| {
                    let holds = shard["replicas"].as_array().is_some_and(|r| r.iter().any(|n| n == 3));
                    !holds || (shard["leader"] == 3 || shard["lag"]["3"] == 0)
                }) && shards
                    .iter()
                    .any(|shard| shard["replicas"].as_array().is_some_and(|r| r.iter().any(|n| n == 3)))
            })
            .await;
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the host-name test finishes within 5 minutes");
}
