//! Storage faults through real `ivory` processes: a failed fsync ends the process (exit 74)
//! before any write of that round is acknowledged, and the restarted node serves every write
//! acknowledged before it from disk.

use std::path::Path;
use std::time::{Duration, Instant};

use ivory_nemesis::cluster::Cluster;
use ivory_nemesis::history::Key;
use ivory_nemesis::workload::Api;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
/// `EXIT_STORAGE_FAILED` of ivory-raft.
const EXIT_STORAGE_FAILED: i32 = 74;

#[tokio::test]
async fn a_failed_fsync_acknowledges_nothing_and_the_restart_keeps_every_acknowledged_write() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // One node: its own flush round is the only one a write waits for.
        let mut cluster = Cluster::start(Path::new(BIN), 1, 2).expect("cluster starts");
        cluster.wait_healthy(Duration::from_secs(60)).await.expect("healthy");
        let api = Api::connect(&cluster.addrs(), Instant::now() + Duration::from_secs(20))
            .await
            .expect("token");
        let key = Key {
            location: "11".into(),
            product: "FSYNC".into(),
        };
        let acknowledged = 10;
        for w in 0..acknowledged {
            api.seed_stock(&key, 1, &format!("ok-{w}"), Instant::now() + Duration::from_secs(20))
                .await
                .expect("write acknowledged");
        }

        cluster
            .set_faults(0, &json!({"failSync": true}))
            .await
            .expect("fault set");
        let probes = (0..8).map(|n| {
            let api = api.clone();
            async move { api.probe_write(0, "12", &format!("failed-{n}")).await }
        });
        let answered = futures::future::join_all(probes).await;
        assert!(
            answered.iter().all(|ok| !ok),
            "a write of the failed round was acknowledged: {answered:?}"
        );
        let code = cluster.nodes[0]
            .wait_exit(Duration::from_secs(20))
            .await
            .expect("the node exits after the failed fsync");
        assert_eq!(code, Some(EXIT_STORAGE_FAILED), "{}", cluster.logs(30));
        assert!(
            cluster.nodes[0].log().contains("storage flush failed"),
            "no log line says why: {}",
            cluster.logs(30)
        );

        cluster.restart(0).expect("restart");
        cluster
            .wait_healthy(Duration::from_secs(60))
            .await
            .expect("healthy after the restart");
        let deadline = Instant::now() + Duration::from_secs(20);
        let onhand = loop {
            match api.read_key(0, &key).await {
                Ok((onhand, _)) => break onhand,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no read after the restart: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        assert_eq!(
            onhand, acknowledged,
            "every acknowledged write survives the failed fsync"
        );
        assert!(
            api.probe_write(0, "12", "after").await,
            "the restarted node takes writes"
        );
    })
    .await
    .expect("the test finishes in time");
}
