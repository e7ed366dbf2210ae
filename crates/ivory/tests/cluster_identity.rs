//! Two clusters that share a cluster secret still never take each other's calls: the initial
//! members of a cluster agree on its id without talking (each stores the same `DATA/cluster-id`), a
//! joining node takes its seed's,
//! a node-to-node call naming another cluster's id is refused with FAILED_PRECONDITION saying
//! which, and a real node whose `--initial-cluster` names members of another cluster is refused
//! by them while that cluster keeps serving.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ivory_node::auth::CLUSTER_ID_HEADER;
use ivory_node::proto;
use ivory_node::proto::admin_client::AdminClient;
use ivory_tests::{
    CLIENT_ID, CLIENT_SECRET, CLUSTER_SECRET, Cluster, free_port, fully_settled, grpc_channel, member_state,
    sum_measure,
};
use serde_json::json;
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const SHARDS: u32 = 4;

fn cluster_id(data: &Path) -> String {
    std::fs::read_to_string(data.join("cluster-id"))
        .expect("every node of a new cluster stores its cluster id")
        .trim()
        .to_string()
}

/// `Admin/Status` (it changes nothing) with the cluster's secret, naming `named` as the caller's cluster.
async fn status_naming(addr: std::net::SocketAddr, named: Option<&str>) -> Result<(), tonic::Status> {
    let channel = grpc_channel(addr).await;
    let secret = std::sync::Arc::new(ivory_node::ClusterSecret::new(CLUSTER_SECRET).expect("secret"));
    let mut token = ivory_node::auth::ClusterToken::new(secret);
    let named = named.map(|id| id.parse::<tonic::metadata::MetadataValue<_>>().expect("header"));
    let mut admin = AdminClient::with_interceptor(channel, move |request| {
        let mut request = tonic::service::Interceptor::call(&mut token, request)?;
        if let Some(id) = &named {
            request.metadata_mut().insert(CLUSTER_ID_HEADER, id.clone());
        }
        Ok(request)
    });
    admin.status(proto::StatusRequest {}).await.map(drop)
}

async fn refused_calls(http: &reqwest::Client, addr: std::net::SocketAddr) -> f64 {
    let Ok(r) = http.get(format!("http://{addr}/metrics")).send().await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter_map(|line| line.strip_prefix("ivory_cluster_id_refused_total"))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_of_another_cluster_sharing_the_secret_is_refused() {
    let run = async {
        let mut cluster = Cluster::nodes(Path::new(BIN), 3, SHARDS);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let ids: Vec<String> = cluster.nodes.iter().map(|n| cluster_id(&n.data)).collect();
        assert!(!ids[0].is_empty());
        assert!(ids.iter().all(|id| *id == ids[0]), "initial members agree: {ids:?}");
        let own = ids[0].clone();
        let own = own.as_str();
        let status = cluster.cluster_status(0).await.expect("ivory cluster status --json");
        assert_eq!(status["clusterId"], own, "operators see the id: {status:#}");

        // A node that joins takes its seed's id.
        let joined = cluster.join(4, 0);
        let file = cluster.nodes[joined].data.join("cluster-id");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !file.exists() {
            assert!(
                Instant::now() < deadline,
                "node 4 stored no cluster id\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(cluster_id(&cluster.nodes[joined].data), own);
        // It takes replicas (its calls name the right cluster), and the others close theirs.
        cluster
            .wait_cluster(0, Duration::from_secs(90), "settled on four nodes", |s| {
                fully_settled(s) && member_state(s, 4).as_deref() == Some("active")
            })
            .await;

        // The check itself, on a real node: another cluster's id is refused by name; its own id,
        // and no id (the operators' CLI), go through.
        let addr = cluster.nodes[0].addr;
        let refused = status_naming(addr, Some("0123456789abcdef"))
            .await
            .expect_err("another cluster's call is refused");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(
            refused.message().contains(&format!(
                "belongs to cluster 0123456789abcdef, this node to cluster {own}"
            )),
            "{refused:?}"
        );
        status_naming(addr, Some(own))
            .await
            .expect("its own cluster's call goes through");
        status_naming(addr, None)
            .await
            .expect("a call naming no cluster goes through");

        // A real node of another cluster (same secret) whose members are two of this cluster's
        // nodes: they refuse its elections and replication, and this cluster keeps serving.
        let other_dir = tempfile::tempdir().expect("temp dir");
        let other_data = other_dir.path().join("node1");
        let port = free_port();
        let members = format!(
            "1=127.0.0.1:{port},2={},3={}",
            cluster.nodes[1].addr, cluster.nodes[2].addr
        );
        let log = std::fs::File::create(other_dir.path().join("node1.log")).expect("log file");
        let mut other = tokio::process::Command::new(BIN)
            .args(["node", "--id", "1", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data")
            .arg(&other_data)
            .args([
                "--initial-cluster",
                &members,
                "--shards",
                &SHARDS.to_string(),
                "--replicas",
                "3",
            ])
            .env("IVORY_CLUSTER_SECRET", CLUSTER_SECRET)
            .env("IVORY_CLIENT_ID", CLIENT_ID)
            .env("IVORY_CLIENT_SECRET", CLIENT_SECRET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the other cluster's node starts");

        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let refused =
                refused_calls(&http, cluster.nodes[1].addr).await + refused_calls(&http, cluster.nodes[2].addr).await;
            if refused >= 1.0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the other cluster's node was not refused within 30 s\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let other_id = cluster_id(&other_data);
        assert_ne!(other_id, own, "another initial cluster, another id");

        let client = cluster.client(1, "identity").await;
        let stock = json!({"id": "after", "organizationId": "usmf", "productId": "shirt",
            "dimensions": {"siteId": "1", "locationId": "11"}, "quantities": {"pos": {"inbound": 3}}});
        let r = client.post_ok("onhand", &stock).await;
        assert_eq!(r["processingStatus"], "success", "{r}");
        let query = json!({"filters": {"organizationId": ["usmf"], "productId": ["shirt"], "siteId": ["1"],
            "locationId": ["11"]}, "groupByValues": [], "returnNegative": true});
        let records = client.post_ok("onhand/indexquery", &query).await;
        assert_eq!(sum_measure(&records, "pos", "inbound"), 3.0, "{records}");
        cluster.wait_healthy(Duration::from_secs(30)).await;
        let logs = cluster.logs();
        assert!(!logs.contains("panicked"), "{logs}");
        assert!(
            logs.contains("belongs to cluster"),
            "the refusal is logged by name: {logs}"
        );

        let _ = other.kill().await;
    };
    tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the cluster identity test finishes within 4 minutes");
}
