//! A cluster whose members are addressed by host name (`localhost:PORT`), each listening on
//! 0.0.0.0 and advertising its name: it forms, serves, takes a node joining by name, and keeps
//! every acknowledged write across a member's kill -9 and restart.

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
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the host-name test finishes within 5 minutes");
}
