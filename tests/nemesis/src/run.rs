//! One run: start a cluster, seed stock, run clients and the nemesis, heal, check liveness, read
//! every key back, run the checkers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ivory_cluster::{Layout, ShardRing};
use ivory_core::PartitionKey;
use tokio::sync::Mutex;

use crate::all_or_nothing;
use crate::checker::{CheckInput, Findings, Violation, check_all};
use crate::cluster::{Cluster, DataStorage};
use crate::history::{Key, Op, OpKind, Outcome, Recorder};
use crate::nemesis::{Executor, Kind, NemesisLog, schedule};
use crate::workload::{Api, ENVIRONMENT, ORGANIZATION, SITE, WorkloadConfig, run_clients};

/// The snapshot threshold of nemesis runs: a shard takes tens (debug) to hundreds (release)
/// of commands a second.
pub const SNAPSHOT_COMMANDS: u64 = 100;
/// An acknowledged short-lived hold has expired for every operation invoked this long after its
/// time to live ended (counted from the create's answer): room for the gateway's and the
/// harness's clock readings and the sweep's timer.
const EXPIRY_MARGIN: Duration = Duration::from_secs(1);
/// A refused cross-shard create's tentative parts are gone this long after the refusal: the
/// gateway releases them before it answers, and one it could not release expires after the
/// tentative time to live (10 s, `TENTATIVE_TTL_MS` of ivory-gateway) and a sweep; room for
/// an attempt the client gave up on that a node was still running.
const UNDO_BOUND: Duration = Duration::from_secs(13);
/// Each node's tmpfs for `disk-full`: a run's data (two 32 MiB log segments, sled, snapshots)
/// with room to spare; memory is only taken as it is written (the filler takes it all, briefly).
const DATA_TMPFS_BYTES: u64 = 256 << 20;

/// One run's settings.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The `ivory` binary.
    pub bin: PathBuf,
    pub seed: u64,
    pub nodes: u64,
    pub shards: u32,
    pub clients: usize,
    /// Partitions with keys (each in another shard when the shards allow).
    pub locations: usize,
    pub products: usize,
    pub initial_stock: i64,
    /// How long clients send new operations; the nemesis acts during this window.
    pub traffic: Duration,
    pub kinds: Vec<Kind>,
    /// Every shard must take a write within this after the faults heal.
    pub liveness_bound: Duration,
    /// Where a failing run leaves its history, schedule and node logs.
    pub out: Option<PathBuf>,
    /// Nodes snapshot after this many commands and keep as many logs behind a snapshot
    /// (`IVORY_TEST_SNAPSHOT_COMMANDS`), so snapshots, purges and installs happen during faults.
    pub snapshot_commands: Option<u64>,
    /// `lose-unsynced`: directory entries durable only by an `fsync` of their directory
    /// (`lossyfs::Durability::Strict`) rather than also by one of the file they name (`Ordered`).
    pub lossyfs_strict: bool,
}

impl RunConfig {
    pub fn new(bin: PathBuf, seed: u64) -> RunConfig {
        RunConfig {
            bin,
            seed,
            nodes: 3,
            shards: 4,
            clients: 6,
            locations: 3,
            products: 2,
            initial_stock: 20,
            traffic: Duration::from_secs(20),
            kinds: Kind::defaults(),
            liveness_bound: Duration::from_secs(10),
            out: None,
            snapshot_commands: Some(SNAPSHOT_COMMANDS),
            lossyfs_strict: false,
        }
    }
}

/// What a run found.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub seed: u64,
    pub ops: usize,
    pub ok: usize,
    pub refused: usize,
    pub unknown: usize,
    pub requests: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub schedule: Vec<String>,
    pub nemesis_events: Vec<String>,
    pub findings: Findings,
    /// Per shard, how long after healing its first write was acknowledged.
    pub liveness_ms: BTreeMap<u32, u64>,
    /// Known Ivory issues seen (not violations).
    pub notes: Vec<String>,
    /// Lines of short-lived holds whose expiry was checked as definite.
    pub expiries: usize,
    /// Holds with two lines or more read back for the all-or-nothing check, and how many of
    /// them spanned two shards.
    pub holds_checked: usize,
    pub cross_holds: usize,
    /// Nodes that exited by themselves and were restarted (a failed fsync exits 74).
    pub exits: usize,
    /// Snapshots built and installed, and log purges, summed over the nodes at the end (the
    /// counts of a node restarted meanwhile start again from zero).
    pub snapshots_built: u64,
    pub snapshots_installed: u64,
    pub log_purges: u64,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.findings.violations.is_empty()
    }

    /// A few lines for a person.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "seed {}: {} ops ({} ok, {} refused, {} unknown), {} requests, {} hold lines expired, {} multi-line holds checked ({} cross-shard), faults {:?}, {} exits restarted, snapshots {} built {} installed, {} log purges, liveness {:?} ms, {:.1}s: {}",
            self.seed,
            self.ops,
            self.ok,
            self.refused,
            self.unknown,
            self.requests,
            self.expiries,
            self.holds_checked,
            self.cross_holds,
            self.faults,
            self.exits,
            self.snapshots_built,
            self.snapshots_installed,
            self.log_purges,
            self.liveness_ms,
            self.elapsed.as_secs_f64(),
            if self.passed() {
                "ok".to_string()
            } else {
                format!("{} violation(s)", self.findings.violations.len())
            }
        );
        for n in &self.notes {
            s.push_str(&format!("\n  note: {n}"));
        }
        if !self.findings.gave_up.is_empty() {
            s.push_str(&format!(
                "\n  linearizability search gave up on {:?}",
                self.findings.gave_up
            ));
        }
        for v in &self.findings.violations {
            s.push_str(&format!("\n  {v}"));
        }
        s
    }
}

/// `TEST_SNAPSHOT_ENV` of ivory-raft.
const TEST_SNAPSHOT_ENV: &str = "IVORY_TEST_SNAPSHOT_COMMANDS";
/// `EXIT_STORAGE_FAILED` of ivory-raft: a failed write or fsync ends the process with it.
const EXIT_STORAGE_FAILED: i32 = 74;

/// Restarts every node that exits by itself, as a supervisor (systemd, Kubernetes) would, until
/// `running` turns false; returns what it did, one line per restart.
async fn supervise(cluster: Arc<Mutex<Cluster>>, start: Instant, running: Arc<AtomicBool>) -> Vec<String> {
    let mut events = Vec::new();
    while running.load(Ordering::Relaxed) {
        for event in cluster.lock().await.supervise() {
            let t = start.elapsed().as_secs_f64();
            events.push(format!("{t:8.3}s {event}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    events
}

/// Locations for the workload keys, one per shard as far as possible, and one liveness
/// location per shard.
fn locations(shards: u32, wanted: usize) -> Result<(Vec<String>, BTreeMap<u32, String>), String> {
    let ring = ShardRing::new(&Layout::new(shards)).map_err(|e| e.to_string())?;
    let mut by_shard: BTreeMap<u32, String> = BTreeMap::new();
    let mut work = Vec::new();
    for i in 0..10_000 {
        let loc = format!("L{i}");
        let shard = ring.shard_of(&PartitionKey::new(ENVIRONMENT, ORGANIZATION, SITE, &loc));
        if let std::collections::btree_map::Entry::Vacant(slot) = by_shard.entry(shard) {
            slot.insert(loc.clone());
            if work.len() < wanted {
                work.push(loc);
            }
        }
        if by_shard.len() == shards as usize && work.len() >= wanted.min(shards as usize) {
            break;
        }
    }
    let mut i = 0;
    while work.len() < wanted {
        work.push(format!("X{i}"));
        i += 1;
    }
    Ok((work, by_shard))
}

/// Runs once.
///
/// # Errors
/// When the cluster cannot be started or the run cannot be carried out (not a violation).
pub async fn run_once(cfg: &RunConfig) -> Result<RunReport, String> {
    let began = Instant::now();
    let (work_locations, live_locations) = locations(cfg.shards, cfg.locations)?;
    let keys: Vec<Key> = work_locations
        .iter()
        .flat_map(|l| {
            (0..cfg.products).map(move |p| Key {
                location: l.clone(),
                product: format!("P{p}"),
            })
        })
        .collect();
    let snapshot_env = cfg.snapshot_commands.map(|n| n.to_string());
    let env: Vec<(&str, &str)> = snapshot_env.iter().map(|n| (TEST_SNAPSHOT_ENV, n.as_str())).collect();
    // disk-full and lose-unsynced: the nodes' data directories on file systems of their own.
    let mut kinds = cfg.kinds.clone();
    let durability = if cfg.lossyfs_strict {
        lossyfs::Durability::Strict
    } else {
        lossyfs::Durability::Ordered
    };
    let storage = crate::nemesis::storage_for(&mut kinds, cfg.seed, DATA_TMPFS_BYTES, durability);
    let cluster = match Cluster::start_on(&cfg.bin, cfg.nodes, cfg.shards, &env, storage) {
        Ok(c) => c,
        Err(e) if storage != DataStorage::Plain => {
            println!("disk-full and lose-unsynced left out of the mix: {e}");
            kinds.retain(|k| !matches!(k, Kind::DiskFull | Kind::LoseUnsynced));
            Cluster::start_with(&cfg.bin, cfg.nodes, cfg.shards, &env)?
        }
        Err(e) => return Err(e),
    };
    let addrs = cluster.addrs();
    if let Err(e) = cluster.wait_healthy(Duration::from_secs(60)).await {
        return Err(format!("{e}\n{}", cluster.logs(30)));
    }
    let cluster = Arc::new(Mutex::new(cluster));
    let api = Api::connect(&addrs, Instant::now() + Duration::from_secs(30)).await?;
    for key in &keys {
        let id = format!("seed-{}-{key}", cfg.seed).replace('/', "-");
        api.seed_stock(key, cfg.initial_stock, &id, Instant::now() + Duration::from_secs(30))
            .await?;
    }

    let start = Instant::now();
    let rec = Arc::new(Recorder::new(start));
    let traffic_until = start + cfg.traffic;
    // Unknown outcomes are retried past the heal, so that most of them become definite.
    let retry_until = traffic_until + Duration::from_secs(15);
    let steps = schedule(cfg.seed, cfg.nodes as usize, &kinds, cfg.traffic);
    let workload = WorkloadConfig {
        clients: cfg.clients,
        keys: keys.clone(),
        locations: work_locations.clone(),
        initial_stock: cfg.initial_stock,
        seed: cfg.seed,
    };
    let clients = tokio::spawn(run_clients(
        api.clone(),
        rec.clone(),
        workload,
        traffic_until,
        retry_until,
    ));
    // The supervisor: a node that exits by itself (a storage fault) is started again.
    let supervising = Arc::new(AtomicBool::new(true));
    let supervisor = tokio::spawn(supervise(cluster.clone(), start, supervising.clone()));
    let mut executor = Executor {
        cluster: cluster.clone(),
        start,
        // Leave the last second of traffic fault-free.
        until: traffic_until - Duration::from_secs(1).min(cfg.traffic / 4),
        log: NemesisLog::default(),
        bin: cfg.bin.clone(),
    };
    executor.run(&steps).await;
    let heal = cluster.lock().await.heal_all(Duration::from_secs(30)).await;
    let healed_at = Instant::now();
    executor
        .log
        .events
        .push(format!("{:8.3}s healed all: {heal:?}", start.elapsed().as_secs_f64()));

    // Liveness: every shard takes a write within the bound after healing.
    let mut violations: Vec<Violation> = Vec::new();
    let mut liveness_ms = BTreeMap::new();
    for (shard, location) in &live_locations {
        let mut n = 0usize;
        loop {
            let id = format!("live-{}-{shard}-{n}", cfg.seed);
            if api.probe_write(n, location, &id).await {
                liveness_ms.insert(
                    *shard,
                    u64::try_from(healed_at.elapsed().as_millis()).unwrap_or(u64::MAX),
                );
                break;
            }
            if healed_at.elapsed() > cfg.liveness_bound {
                violations.push(Violation {
                    checker: "liveness",
                    key: None,
                    message: format!(
                        "shard {shard} (location {location}) took no write within {:?} after the faults healed",
                        cfg.liveness_bound
                    ),
                    ops: vec![],
                });
                break;
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let stats = clients.await.unwrap_or_default();

    // The final read of every key, recorded as a read so that linearizability covers it too.
    let final_reads_from = rec.now_us();
    let mut final_reads = BTreeMap::new();
    for key in &keys {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut n = 0;
        loop {
            let invoke = rec.now_us();
            match api.read_key(n, key).await {
                Ok((onhand, reserved)) => {
                    rec.record(Op {
                        index: 0,
                        client: usize::MAX,
                        id: "final-read".into(),
                        key: key.clone(),
                        kind: OpKind::Read,
                        invoke_us: invoke,
                        complete_us: Some(rec.now_us()),
                        outcome: Outcome::Read { onhand, reserved },
                        attempts: 1,
                    });
                    final_reads.insert(key.clone(), (onhand, reserved));
                    break;
                }
                Err(e) if Instant::now() > deadline => {
                    violations.push(Violation {
                        checker: "liveness",
                        key: Some(key.to_string()),
                        message: format!("no final read within 30 s after healing: {e}"),
                        ops: vec![],
                    });
                    break;
                }
                Err(_) => {
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    supervising.store(false, Ordering::Relaxed);
    let supervised = supervisor.await.unwrap_or_default();
    executor.log.events.extend(supervised);
    let (built, installed, purges) = {
        let c = cluster.lock().await;
        (
            c.metric_sum("ivory_snapshots_built_total").await,
            c.metric_sum("ivory_snapshots_installed_total").await,
            c.metric_sum("ivory_raft_log_purges_total").await,
        )
    };
    let mut exits = 0;
    let mut full_exits = 0;
    let mut full_notes = Vec::new();
    for node in &cluster.lock().await.nodes {
        full_exits += node.exits_disk_full.len();
        let mut while_full = node.exits_disk_full.clone();
        for status in &node.exits {
            exits += 1;
            let code = &status.code();
            if *code == Some(EXIT_STORAGE_FAILED) {
                continue;
            }
            // A start on a disk that is still full may fail otherwise than with 74.
            if let Some(k) = while_full.iter().position(|c| c == code) {
                while_full.remove(k);
                full_notes.push(format!("node {} exited with {code:?} while its disk was full", node.id));
            } else {
                violations.push(Violation {
                    checker: "crash",
                    key: None,
                    message: format!(
                        "node {} exited by itself with {code:?}{} (only a storage fault may end a node, with {EXIT_STORAGE_FAILED})",
                        node.id,
                        crate::cluster::by_signal(*status),
                    ),
                    ops: vec![],
                });
            }
        }
    }

    let mut history = rec.history();
    history.notes.extend(full_notes);
    let margin = u64::try_from(EXPIRY_MARGIN.as_micros()).unwrap_or(u64::MAX);
    // The final heal (`heal_all`) ends any fault still set: up to the final reads at the latest.
    let mut faults_us = executor.log.faults_us.clone();
    if let Some(last) = faults_us.last_mut() {
        last.1 = last
            .1
            .max(u64::try_from(healed_at.duration_since(start).as_micros()).unwrap_or(u64::MAX));
    }
    history.settle_expiries(margin, final_reads_from, &executor.log.clock_jumps_us, &faults_us);
    history.settle_undos(
        u64::try_from(UNDO_BOUND.as_micros()).unwrap_or(u64::MAX),
        final_reads_from,
    );
    // All or nothing across keys: every multi-line hold read back.
    let holds = all_or_nothing::multi_line_holds(&history);
    let answers = all_or_nothing::read_holds(&api, holds.iter().map(|h| h.id.clone()).collect()).await;
    let mut whole = all_or_nothing::check(&holds, &answers);
    violations.append(&mut whole.violations);
    history.notes.append(&mut whole.notes);
    if whole.unread > 0 {
        history.notes.push(format!(
            "{} of {} multi-line holds could not be read back",
            whole.unread,
            holds.len()
        ));
    }
    let cross_holds = holds.iter().filter(|h| h.cross).count();
    let mut findings = check_all(&CheckInput {
        history: &history,
        initial_stock: cfg.initial_stock,
        final_reads: &final_reads,
        // Each step may keep one cache entry (the linearized set and a state): about 2 GB at most.
        max_steps: 3_000_000,
    });
    violations.append(&mut findings.violations);
    findings.violations = violations;

    let ops = history.ops.iter().filter(|o| o.client != usize::MAX);
    let mut report = RunReport {
        seed: cfg.seed,
        requests: stats.requests,
        faults: executor.log.counts.clone(),
        schedule: steps.iter().map(|s| s.to_string()).collect(),
        nemesis_events: executor.log.events.clone(),
        liveness_ms,
        notes: history.notes.clone(),
        exits,
        snapshots_built: built as u64,
        snapshots_installed: installed as u64,
        log_purges: purges as u64,
        holds_checked: holds.len(),
        cross_holds,
        ..RunReport::default()
    };
    for op in ops {
        if matches!(op.kind, OpKind::HoldExpire { .. } | OpKind::HoldUndo { .. }) {
            report.expiries += usize::from(op.outcome.is_ok());
            continue;
        }
        report.ops += 1;
        if op.outcome.is_ok() {
            report.ok += 1;
        } else if op.outcome.is_unknown() {
            report.unknown += 1;
        } else {
            report.refused += 1;
        }
    }
    report.findings = findings;
    report.elapsed = began.elapsed();

    // An exit 74 without an injected failed fsync is a real storage failure (or a bug): keep the
    // node logs that say why (seed 160108 had one; the run passed and its logs were gone).
    let injected = executor.log.counts.get("fail-sync").copied().unwrap_or(0) + full_exits as u64;
    if exits as u64 > injected {
        report.notes.push(format!(
            "{exits} node exit(s) with {injected} failed fsync(s) injected or exits on a full disk: node logs kept"
        ));
        if let Some(out) = &cfg.out {
            let dir = out.join(format!("seed-{}-exit", cfg.seed));
            if std::fs::create_dir_all(&dir).is_ok() {
                let _ = std::fs::write(dir.join("nemesis.txt"), report.nemesis_events.join("\n"));
                cluster.lock().await.save_logs(&dir);
            }
        }
    }
    if !report.passed()
        && let Some(out) = &cfg.out
    {
        let dir = out.join(format!("seed-{}", cfg.seed));
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(
                dir.join("history.json"),
                serde_json::to_string_pretty(&history).unwrap_or_default(),
            );
            let _ = std::fs::write(dir.join("schedule.txt"), report.schedule.join("\n"));
            let _ = std::fs::write(dir.join("nemesis.txt"), report.nemesis_events.join("\n"));
            let _ = std::fs::write(
                dir.join("violations.json"),
                serde_json::to_string_pretty(&report.findings).unwrap_or_default(),
            );
            cluster.lock().await.save_logs(&dir);
        }
    }
    Ok(report)
}
