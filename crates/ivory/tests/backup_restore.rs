//! `ivory backup` of a 3-node cluster under write load, `ivory restore` into a fresh data
//! directory, and `ivory serve` on it: every write acknowledged before the backup began is there
//! with its exact quantity, no write begun after it ended is, and a backup with one byte changed
//! (or without its manifest) is refused without creating anything. The same backup also starts a
//! new cluster's first node, which a second node joins and receives replicas of.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ivory_tests::{Client, Cluster, free_port, fully_settled, member_state};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const SHARDS: u32 = 4;
const LOCATIONS: u64 = 8;

fn stock(id: &str, product: &str, location: u64, qty: u64) -> Value {
    json!({"id": id, "organizationId": "usmf", "productId": product,
           "dimensions": {"siteId": "1", "locationId": format!("L{location}")},
           "quantities": {"pos": {"inbound": qty}}})
}

/// One write of the load: its product (written once), quantity, when it was sent and answered.
#[derive(Clone, Debug)]
struct Write {
    product: String,
    qty: u64,
    sent: Instant,
    acked: Option<Instant>,
}

/// Posts `stock` until it is acknowledged (retrying the same id: a retry never counts twice).
async fn post_until_acked(c: &Client, id: &str, product: &str, location: u64, qty: u64, stop: &AtomicBool) -> bool {
    loop {
        match c.post("onhand", &stock(id, product, location, qty)).await {
            Ok(a) if a.status == 200 => return true,
            Ok(a) if a.status == 503 || a.status == 429 => {}
            Ok(a) => panic!("unexpected answer to {id}: {} {}", a.status, a.body),
            Err(_) => {}
        }
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `pos.inbound` by product over every location, through one index query.
async fn inbound_by_product(c: &Client, products: &[String]) -> BTreeMap<String, f64> {
    let locations: Vec<String> = (0..LOCATIONS).map(|l| format!("L{l}")).collect();
    let mut out = BTreeMap::new();
    for chunk in products.chunks(500) {
        let query = json!({"filters": {"organizationId": ["usmf"], "productId": chunk, "siteId": ["1"],
                                       "locationId": locations}, "groupByValues": [], "returnNegative": true});
        let records = c.post_ok("onhand/indexquery", &query).await;
        for r in records.as_array().into_iter().flatten() {
            let product = r["productId"].as_str().unwrap_or_default().to_string();
            *out.entry(product).or_insert(0.0) += r["quantities"]["pos"]["inbound"].as_f64().unwrap_or(0.0);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_under_load_restores_every_acknowledged_write_and_a_tampered_one_is_refused() {
    let run = async {
        let cluster = Cluster::nodes(Path::new(BIN), 3, SHARDS);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let files = tempfile::tempdir().expect("temp dir");
        let backup = files.path().join("backup");

        // Stock written before the load: known exactly.
        let writer = cluster.client(0, "bk").await;
        let mut expected: BTreeMap<String, u64> = BTreeMap::new();
        for i in 0..24u64 {
            let product = format!("pre-{i}");
            let r = writer
                .post_ok("onhand", &stock(&format!("p{i}"), &product, i % LOCATIONS, i + 1))
                .await;
            assert_eq!(r["processingStatus"], "success", "{r}");
            expected.insert(product, i + 1);
        }

        // Write load through another member while the backup runs: one product per write.
        let stop = Arc::new(AtomicBool::new(false));
        let writes: Arc<Mutex<Vec<Write>>> = Arc::default();
        let load = {
            let c = cluster.client(1, "bk").await;
            let (stop, writes) = (stop.clone(), writes.clone());
            tokio::spawn(async move {
                for n in 0u64.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let product = format!("load-{n}");
                    let qty = n % 7 + 1;
                    let sent = Instant::now();
                    let acked = post_until_acked(&c, &format!("l{n}"), &product, n % LOCATIONS, qty, &stop).await;
                    let acked = acked.then(Instant::now);
                    if let Ok(mut w) = writes.lock() {
                        w.push(Write {
                            product,
                            qty,
                            sent,
                            acked,
                        });
                    }
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while writes.lock().map(|w| w.len()).unwrap_or(0) < 20 {
            assert!(
                Instant::now() < deadline,
                "the load made no progress\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let began = Instant::now();
        let endpoint = cluster.nodes[2].addr.to_string();
        let out = backup.display().to_string();
        let done = cluster
            .cli(
                &["backup", "--endpoint", &endpoint, "--out", &out],
                Duration::from_secs(120),
            )
            .await;
        let ended = Instant::now();
        assert!(done.success, "backup: {done:?}\n{}", cluster.logs());
        // The load goes on a little after the backup, then stops.
        let after = writes.lock().map(|w| w.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(30);
        while writes.lock().map(|w| w.len()).unwrap_or(0) < after + 10 {
            assert!(Instant::now() < deadline, "the load stalled after the backup");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::SeqCst);
        load.await.expect("the load task");

        let manifest: Value =
            serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).expect("manifest")).expect("JSON");
        assert_eq!(manifest["formatVersion"], 1, "{manifest:#}");
        let groups = manifest["groups"].as_array().expect("groups");
        assert_eq!(
            groups.len(),
            SHARDS as usize + 1,
            "every shard and the metadata: {manifest:#}"
        );
        for g in groups {
            assert!(g["lastLogIndex"].as_u64() >= g["readIndex"].as_u64(), "{g}");
        }

        // One byte changed in a shard's snapshot: refused, nothing created.
        let tampered = files.path().join("tampered");
        copy_dir(&backup, &tampered);
        let snapshot = tampered.join("groups/shard-0001.snapshot");
        let mut bytes = std::fs::read(&snapshot).expect("snapshot");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&snapshot, bytes).expect("write");
        let refused_data = files.path().join("refused");
        let refused = cluster
            .cli(
                &[
                    "restore",
                    "--from",
                    &tampered.display().to_string(),
                    "--data",
                    &refused_data.display().to_string(),
                ],
                Duration::from_secs(60),
            )
            .await;
        assert!(!refused.success, "a tampered backup is refused: {refused:?}");
        assert!(
            refused
                .stderr
                .contains("shard-0001.snapshot does not match its checksum"),
            "{refused:?}"
        );
        assert!(!refused_data.exists(), "nothing is created for a refused backup");
        std::fs::remove_file(tampered.join("manifest.json")).expect("remove manifest");
        let incomplete = cluster
            .cli(
                &[
                    "restore",
                    "--from",
                    &tampered.display().to_string(),
                    "--data",
                    &refused_data.display().to_string(),
                ],
                Duration::from_secs(60),
            )
            .await;
        assert!(
            !incomplete.success && incomplete.stderr.contains("manifest.json is missing"),
            "{incomplete:?}"
        );
        assert!(!refused_data.exists());

        // Restore into a fresh data directory and serve it on one node.
        let (restored_dir, data, addr) = restore(&cluster, &out).await;
        drop(cluster);
        let single = Cluster::single_listening(Path::new(BIN), SHARDS, restored_dir, data, addr);
        single.wait_healthy(Duration::from_secs(60)).await;
        let reader = single.client(0, "bk").await;

        let writes = writes.lock().map(|w| w.clone()).unwrap_or_default();
        let before: Vec<&Write> = writes.iter().filter(|w| w.acked.is_some_and(|a| a < began)).collect();
        assert!(
            before.len() >= 20,
            "{} writes acknowledged before the backup",
            before.len()
        );
        let products: Vec<String> = expected
            .keys()
            .cloned()
            .chain(writes.iter().map(|w| w.product.clone()))
            .collect();
        let found = inbound_by_product(&reader, &products).await;
        for (product, qty) in &expected {
            assert_eq!(found.get(product).copied(), Some(*qty as f64), "{product}");
        }
        for w in &before {
            assert_eq!(
                found.get(&w.product).copied(),
                Some(w.qty as f64),
                "acknowledged before the backup: {w:?}"
            );
        }
        let (mut during, mut later) = (0, 0);
        for w in &writes {
            let value = found.get(&w.product).copied().unwrap_or(0.0);
            if w.sent > ended {
                later += 1;
                assert_eq!(value, 0.0, "sent after the backup ended: {w:?}");
            } else if value != 0.0 {
                during += 1;
                assert_eq!(value, w.qty as f64, "all of a write or nothing: {w:?}");
            }
        }
        assert!(later >= 10, "the load went on after the backup");
        eprintln!(
            "{} writes: {} acknowledged before the backup, {during} in the backup in all, {later} after it",
            writes.len(),
            before.len()
        );

        // The restored node takes writes and shows the cluster as one member holding every shard.
        let r = reader.post_ok("onhand", &stock("after-restore", "pre-0", 0, 5)).await;
        assert_eq!(r["processingStatus"], "success", "{r}");
        let status = single.cluster_status(0).await.expect("status of the restored node");
        assert_eq!(status["members"].as_array().map(Vec::len), Some(1), "{status:#}");
        assert_eq!(status["members"][0]["addr"], addr.to_string(), "{status:#}");
        assert_eq!(status["settled"], true, "{status:#}");

        // The same backup as the first node of a new cluster: a second node joins and gets replicas.
        let (first_dir, data, addr) = restore(&single, &out).await;
        drop(single);
        let mut grown = Cluster::first_node_at(Path::new(BIN), SHARDS, first_dir, data, addr);
        grown.wait_healthy(Duration::from_secs(60)).await;
        grown.join(2, 0);
        grown.wait_healthy(Duration::from_secs(60)).await;
        grown
            .wait_cluster(0, Duration::from_secs(90), "settled on two nodes", |s| {
                fully_settled(s)
                    && member_state(s, 2).as_deref() == Some("active")
                    && s["shards"].as_array().is_some_and(|shards| {
                        shards
                            .iter()
                            .all(|shard| shard["voters"].as_array().is_some_and(|v| v.len() == 2))
                    })
            })
            .await;
        let via_second = grown.client(1, "bk").await;
        let found = inbound_by_product(&via_second, &products).await;
        for w in &before {
            assert_eq!(
                found.get(&w.product).copied(),
                Some(w.qty as f64),
                "on the grown cluster: {w:?}"
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the backup test finishes within 5 minutes");
}

/// `ivory restore` of the backup in `out` into a fresh data directory, for a node at a free port.
async fn restore(runner: &Cluster, out: &str) -> (tempfile::TempDir, std::path::PathBuf, SocketAddr) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node1");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let args = [
        "restore",
        "--from",
        out,
        "--data",
        &data.display().to_string(),
        "--advertise-addr",
        &addr.to_string(),
    ];
    let restored = runner.cli(&args, Duration::from_secs(60)).await;
    assert!(restored.success, "restore: {restored:?}");
    (dir, data, addr)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
