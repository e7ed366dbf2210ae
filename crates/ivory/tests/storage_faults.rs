//! Storage faults through real `ivory` processes: a failed fsync ends the process (exit 74)
//! before any write of that round is acknowledged, and the restarted node serves every write
//! acknowledged before it from disk.

use std::path::Path;
use std::time::{Duration, Instant};

use ivory_nemesis::cluster::{Cluster, DataStorage};
use ivory_nemesis::disk::{Tmpfs, fill};
use ivory_nemesis::history::Key;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
/// `EXIT_STORAGE_FAILED` of ivory-raft.
const EXIT_STORAGE_FAILED: i32 = 74;

#[tokio::test]
async fn a_failed_fsync_acknowledges_nothing_and_the_restart_keeps_every_acknowledged_write() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // One node: its own flush round is the only one a write waits for.
        let (mut cluster, api) = Cluster::start_healthy(Path::new(BIN), 1, 2, &[])
            .await
            .expect("cluster up");
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
        let onhand = onhand_after_restart(&api, &key).await;
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

/// The small file system (`ivory_nemesis::disk`), unmounted once the node on it is gone
/// (declared before the cluster, so dropped after it); then the temp dir goes, whose own
/// clean-up ran while the mount was busy.
struct Mount(Tmpfs);

impl Drop for Mount {
    fn drop(&mut self) {
        self.0.unmount();
        if let Some(parent) = self.0.path().parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

#[tokio::test]
async fn a_full_disk_stops_the_node_and_the_restart_serves_every_acknowledged_write() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let dir = tempfile::tempdir().expect("temp dir");
        let mnt = dir.path().join("mnt");
        // A size-limited tmpfs needs root; elsewhere the failSync test covers the same exit path.
        let _mount = match Tmpfs::mount(&mnt, 80 << 20) {
            Ok(m) => Mount(m),
            Err(e) => {
                eprintln!("skipped: cannot mount a size-limited tmpfs here (needs root): {e}");
                return;
            }
        };
        // The data directory is the mount point: its log (`mnt.log`) stays outside.
        let mut node = ivory_tests::Cluster::single_at(Path::new(BIN), 1, dir, mnt.clone());
        node.wait_healthy(Duration::from_secs(60)).await;
        let c = ivory_tests::Client::connect(node.nodes[0].addr, "disk").await;
        // Its two zero-filled log segments are allocated: what is left is nearly all taken.
        fill(&mnt.join("filler"), 2 << 20).expect("filler");

        let pad = "x".repeat(100);
        let mut acknowledged = 0u64;
        // The refused batch may have reached the log before the failed write: at most it.
        let last_batch = 200u64;
        let mut n = 0u64;
        let code = loop {
            let items: Vec<_> = (0..200)
                .map(|i| {
                    json!({"id": format!("w{n}-{i}-{pad}"), "organizationId": "usmf", "productId": "FULL",
                           "dimensions": {"siteId": "1", "locationId": "11"}, "quantities": {"pos": {"inbound": 1}}})
                })
                .collect();
            n += 1;
            match c.post("onhand/bulk", &json!(items)).await {
                Ok(a) if a.status == 200 => {
                    let ok = a.body["success"].as_array().map_or(0, Vec::len) as u64;
                    assert_eq!(ok, 200, "{}", a.body);
                    acknowledged += ok;
                }
                other => {
                    let code = node.nodes[0].wait_exit_code(Duration::from_secs(20)).await;
                    let Some(code) = code else {
                        panic!("refused ({other:?}) but the node still runs: {}", node.logs())
                    };
                    break code;
                }
            }
        };
        assert_eq!(code, Some(EXIT_STORAGE_FAILED), "{}", node.logs());
        assert!(node.nodes[0].log().contains("disk_full=true"), "{}", node.logs());
        assert!(acknowledged > 0);

        // A restart while the disk is still full refuses to open the storage (a start cut short
        // by ENOSPC inside sled's recovery left its database unreadable for good).
        node.restart(0);
        let code = node.nodes[0].wait_exit_code(Duration::from_secs(30)).await;
        assert_eq!(code, Some(Some(EXIT_STORAGE_FAILED)), "{}", node.logs());
        assert!(
            node.nodes[0].log().contains("No space left to start"),
            "{}",
            node.logs()
        );

        // Space back; the supervisor's restart serves every acknowledged write.
        std::fs::remove_file(mnt.join("filler")).expect("space freed");
        node.restart(0);
        node.wait_healthy(Duration::from_secs(60)).await;
        let c = ivory_tests::Client::connect(node.nodes[0].addr, "disk").await;
        let records = c
            .post_ok(
                "onhand/indexquery",
                &json!({"filters": {"organizationId": ["usmf"], "productId": ["FULL"], "siteId": ["1"],
                                    "locationId": ["11"]}, "groupByValues": [], "returnNegative": true}),
            )
            .await;
        let inbound = ivory_tests::sum_measure(&records, "pos", "inbound") as u64;
        assert!(
            (acknowledged..=acknowledged + last_batch).contains(&inbound),
            "{acknowledged} acknowledged, {inbound} after the restart"
        );
    })
    .await
    .expect("the test finishes in time");
}

const BATCH: usize = 32;

/// The key's on-hand as the restarted node first answers it (within 20 s).
async fn onhand_after_restart(api: &ivory_nemesis::workload::Api, key: &Key) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match api.read_key(0, key).await {
            Ok((onhand, _)) => return onhand,
            Err(e) => {
                assert!(Instant::now() < deadline, "no read after the restart: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// BATCH writes at once of one unit each; how many were acknowledged.
async fn write_batch(api: &ivory_nemesis::workload::Api, key: &Key, n: usize) -> i64 {
    let writes = (0..BATCH).map(|i| {
        let id = format!("full-{n}-{i}-{}", "x".repeat(200));
        async move { api.seed_stock(key, 1, &id, Instant::now()).await.is_ok() }
    });
    futures::future::join_all(writes).await.iter().filter(|ok| **ok).count() as i64
}

/// The `disk-full` nemesis's path: a node on its own tmpfs runs out of space under writes, exits
/// 74, and the supervisor (`Cluster::supervise`) starts it again (with a growing delay, as starts
/// on the full disk exit 74 too) until the filler goes; then it serves every acknowledged write.
#[tokio::test]
async fn the_supervisor_restarts_a_node_whose_disk_was_full_until_there_is_space() {
    if !ivory_nemesis::disk::is_root() {
        eprintln!("skipped: a size-limited tmpfs per node needs root");
        return;
    }
    tokio::time::timeout(TEST_TIMEOUT, async {
        // Small log segments: past the preallocated one, appends meet the full disk within
        // seconds, whatever room sled still has inside its own file.
        let env = [
            ("IVORY_TEST_SNAPSHOT_COMMANDS", "20"),
            ("IVORY_TEST_WAL_SEGMENT_BYTES", "262144"),
        ];
        let mut cluster =
            Cluster::start_on(Path::new(BIN), 1, 2, &env, DataStorage::Tmpfs(96 << 20)).expect("cluster on a tmpfs");
        cluster.wait_healthy(Duration::from_secs(60)).await.expect("healthy");
        let api = ivory_nemesis::workload::Api::connect(&cluster.addrs(), Instant::now() + Duration::from_secs(20))
            .await
            .expect("token");
        let key = Key {
            location: "11".into(),
            product: "FULL".into(),
        };
        let mut acknowledged = 0;
        for w in 0..5 {
            api.seed_stock(
                &key,
                1,
                &format!("before-{w}"),
                Instant::now() + Duration::from_secs(20),
            )
            .await
            .expect("write acknowledged");
            acknowledged += 1;
        }
        let filler = cluster.mounts[0].path().join("filler");
        fill(&filler, 64 << 10).expect("filler");
        // Writes (snapshots every 20 commands) until the node gives up on its disk.
        let mut events = Vec::new();
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while cluster.nodes[0].exits.is_empty() {
            assert!(
                Instant::now() < deadline,
                "the node still runs on a full disk: {}",
                cluster.logs(20)
            );
            acknowledged += write_batch(&api, &key, n).await;
            n += 1;
            events.extend(cluster.supervise());
        }
        // Still full for a few seconds, writes still coming: each start refuses to open the
        // storage (exit 74 at once) and the supervisor waits longer each time.
        let full_until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < full_until {
            events.extend(cluster.supervise());
            if cluster.nodes[0].is_running() {
                acknowledged += write_batch(&api, &key, n).await;
                n += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::fs::remove_file(&filler).expect("space back");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            events.extend(cluster.supervise());
            if cluster.nodes[0].is_running() && cluster.healthy().await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not back after the space came back: {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let exits = &cluster.nodes[0].exits;
        assert!(
            exits.len() >= 2 && exits.iter().all(|status| status.code() == Some(EXIT_STORAGE_FAILED)),
            "the full disk's exit, then refused starts: {exits:?} {events:?}\n{}",
            cluster.logs(30)
        );
        eprintln!("supervisor: {events:#?}");
        let onhand = onhand_after_restart(&api, &key).await;
        // The batch that was refused when the disk filled may have reached the log.
        assert!(
            (acknowledged..=acknowledged + BATCH as i64).contains(&onhand),
            "{acknowledged} acknowledged, {onhand} after the restart"
        );
    })
    .await
    .expect("the test finishes in time");
}
