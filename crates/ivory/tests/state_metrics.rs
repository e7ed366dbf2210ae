//! Per-shard state metrics (issue 16): a node reports its shards' replicated state size
//! (`ivory_state_bytes`, measured at each snapshot) beside the snapshot size, and the counts the
//! state bounds keep flat (`ivory_state_event_ids`, `ivory_state_holds`).

use std::path::Path;
use std::time::{Duration, Instant};

use ivory_nemesis::cluster::Cluster;
use ivory_nemesis::history::Key;

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn a_node_reports_state_bytes_snapshot_bytes_and_remembered_ids_per_shard() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // A snapshot every 20 commands (the test hook), one node, one shard.
        let (cluster, api) = Cluster::start_healthy(Path::new(BIN), 1, 1, &[("IVORY_TEST_SNAPSHOT_COMMANDS", "20")])
            .await
            .expect("cluster up");
        let key = Key {
            location: "11".into(),
            product: "METRICS".into(),
        };
        let writes = 50;
        for w in 0..writes {
            api.seed_stock(&key, 1, &format!("m-{w}"), Instant::now() + Duration::from_secs(20))
                .await
                .expect("write acknowledged");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = cluster.metric_sum("ivory_state_bytes").await;
            let snapshot = cluster.metric_sum("ivory_snapshot_bytes").await;
            let built = cluster.metric_sum("ivory_snapshots_built_total").await;
            let ids = cluster.metric_sum("ivory_state_event_ids").await;
            if state > 0.0 && snapshot >= state && built >= 1.0 && ids >= f64::from(writes) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "metrics: state {state}, snapshot {snapshot}, built {built}, ids {ids}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the test finishes in time");
}
