//! Nemeses: a schedule of faults drawn from one seed (the same seed gives the same schedule;
//! the real system's timing is another matter), and the executor that applies each fault to
//! the cluster, holds it, and heals it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::Mutex;

use crate::cluster::Cluster;

/// Whether the membership-change nemesis (`ivory cluster add-node|remove-node|status`,
/// `ivory node --join`) is in the default mix; `--membership` or `--nemeses ...,membership`
/// runs it either way.
pub const MEMBERSHIP_READY: bool = true;

/// Where a run's nodes keep their data: `disk-full` needs a tmpfs each, `lose-unsynced` a
/// lossyfs each, both root (and `/dev/fuse`). One kind of file system per run: with both kinds
/// in the mix the seed picks one and the other is left out; a kind that cannot run is left out.
/// Each is said on stdout.
pub fn storage_for(
    kinds: &mut Vec<Kind>,
    seed: u64,
    tmpfs_bytes: u64,
    durability: lossyfs::Durability,
) -> crate::cluster::DataStorage {
    use crate::cluster::DataStorage;
    let full = kinds.contains(&Kind::DiskFull);
    let lose = kinds.contains(&Kind::LoseUnsynced);
    if !full && !lose {
        return DataStorage::Plain;
    }
    if !crate::disk::is_root() {
        println!("disk-full and lose-unsynced left out of the mix: not root (their file systems need root)");
        kinds.retain(|k| !matches!(k, Kind::DiskFull | Kind::LoseUnsynced));
        return DataStorage::Plain;
    }
    let fuse = std::path::Path::new("/dev/fuse").exists();
    let lossy = lose && fuse && (!full || seed % 2 == 1);
    if lose && !lossy {
        println!(
            "lose-unsynced left out of this run's mix: {}",
            if fuse {
                "this seed runs disk-full (one file system per run)"
            } else {
                "no /dev/fuse"
            }
        );
        kinds.retain(|k| *k != Kind::LoseUnsynced);
    }
    if lossy {
        if full {
            println!("disk-full left out of this run's mix: this seed runs lose-unsynced (one file system per run)");
            kinds.retain(|k| *k != Kind::DiskFull);
        }
        return DataStorage::Lossy(durability);
    }
    DataStorage::Tmpfs(tmpfs_bytes)
}

/// The `disk-full` filler, in the node's data directory (its tmpfs), and what it leaves free.
const FILLER: &str = "nemesis-filler";
const FILLER_LEAVES: u64 = 64 << 10;

/// How far a clock jumps: from a few seconds (under the clamp's minute) to a day.
const CLOCK_JUMPS_MS: [u64; 5] = [5_000, 30_000, 600_000, 3_600_000, 86_400_000];

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Kill,
    Pause,
    Partition,
    SlowNet,
    SlowDisk,
    Membership,
    FailSync,
    ClockJump,
    DiskFull,
    LoseUnsynced,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Kill,
        Kind::Pause,
        Kind::Partition,
        Kind::SlowNet,
        Kind::SlowDisk,
        Kind::Membership,
        Kind::FailSync,
        Kind::ClockJump,
        Kind::DiskFull,
        Kind::LoseUnsynced,
    ];

    /// The kinds a run uses unless told otherwise (the short suite's mix; its seeds were chosen
    /// for it): every kind but `disk-full`, which needs root (see [`Kind::long_defaults`]).
    pub fn defaults() -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::Membership || MEMBERSHIP_READY)
            .filter(|k| !matches!(k, Kind::DiskFull | Kind::LoseUnsynced))
            .collect()
    }

    /// The mix of the `ivory-nemesis` binary's runs: [`Kind::defaults`] and `disk-full` (which a
    /// run leaves out, saying so, when it cannot mount a tmpfs).
    pub fn long_defaults() -> Vec<Kind> {
        let mut kinds = Kind::defaults();
        kinds.push(Kind::DiskFull);
        kinds.push(Kind::LoseUnsynced);
        kinds
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Partition => "partition",
            Kind::SlowNet => "slow-net",
            Kind::SlowDisk => "slow-disk",
            Kind::Membership => "membership",
            Kind::FailSync => "fail-sync",
            Kind::ClockJump => "clock-jump",
            Kind::DiskFull => "disk-full",
            Kind::LoseUnsynced => "lose-unsynced",
        }
    }

    /// # Errors
    /// An unknown name.
    pub fn parse(name: &str) -> Result<Kind, String> {
        Kind::ALL.into_iter().find(|k| k.name() == name.trim()).ok_or_else(|| {
            format!("unknown nemesis '{name}' (kill, pause, partition, slow-net, slow-disk, membership, fail-sync, clock-jump, disk-full, lose-unsynced)")
        })
    }
}

/// Which node a fault hits: the leader of the most shards when known, else a node by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Leader { fallback: usize },
    Node(usize),
}

/// How a partition cuts the cluster (indexes are a permutation drawn from the seed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The leader of the most shards alone on one side.
    IsolatedLeader { fallback: usize },
    /// A minority (less than half the nodes) cut from the majority.
    MajorityMinority { minority: BTreeSet<usize> },
    /// Two sides that only one node (the bridge) talks to both of.
    Bridge { left: BTreeSet<usize>, bridge: usize },
}

/// One fault and how long it lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Kill {
        target: Target,
        down_ms: u64,
    },
    Pause {
        target: Target,
        ms: u64,
    },
    Partition {
        shape: Shape,
        ms: u64,
    },
    SlowNet {
        nodes: BTreeSet<usize>,
        delay_ms: u64,
        ms: u64,
    },
    SlowDisk {
        target: Target,
        delay_ms: u64,
        ms: u64,
    },
    Membership {
        id: u64,
    },
    /// The node's next flush round fails as a failed fsync does: it exits (74) and the
    /// supervisor (`Cluster::supervise`) restarts it; `ms` is how long the step lasts.
    FailSync {
        target: Target,
        ms: u64,
    },
    /// The node's wall clock jumps `ahead_ms` forward for `ms` (its leader timestamps are clamped).
    ClockJump {
        target: Target,
        ahead_ms: u64,
        ms: u64,
    },
    /// The node's data directory (its own tmpfs) is filled but for a few KiB for `ms`, under
    /// traffic; its next write fails and it exits 74, and the supervisor's restarts fail until
    /// the filler goes.
    DiskFull {
        target: Target,
        ms: u64,
    },
    /// kill -9 of the node (of every node with `all`: a power cut of the whole cluster), then
    /// everything its file system (a lossyfs) holds that was not fsynced is dropped, as after a
    /// power cut; it starts again after `down_ms`.
    LoseUnsynced {
        target: Target,
        down_ms: u64,
        all: bool,
    },
}

impl Fault {
    pub fn kind(&self) -> Kind {
        match self {
            Fault::Kill { .. } => Kind::Kill,
            Fault::Pause { .. } => Kind::Pause,
            Fault::Partition { .. } => Kind::Partition,
            Fault::SlowNet { .. } => Kind::SlowNet,
            Fault::SlowDisk { .. } => Kind::SlowDisk,
            Fault::Membership { .. } => Kind::Membership,
            Fault::FailSync { .. } => Kind::FailSync,
            Fault::ClockJump { .. } => Kind::ClockJump,
            Fault::DiskFull { .. } => Kind::DiskFull,
            Fault::LoseUnsynced { .. } => Kind::LoseUnsynced,
        }
    }
}

/// A quiet gap, then a fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub gap_ms: u64,
    pub fault: Fault,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}ms {:?}", self.gap_ms, self.fault)
    }
}

/// The schedule for `seed`: faults of `kinds` on `nodes` nodes, enough to fill `duration`.
/// Elections take 1-2 s, so pauses outlast them and every fault is followed by a quiet gap.
pub fn schedule(seed: u64, nodes: usize, kinds: &[Kind], duration: Duration) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321);
    let mut steps = Vec::new();
    if kinds.is_empty() || nodes == 0 {
        return steps;
    }
    let budget = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let mut used = 0u64;
    let mut next_member_id = 100;
    while used < budget {
        let gap_ms = rng.random_range(500..2_000);
        let kind = kinds[rng.random_range(0..kinds.len())];
        let node = rng.random_range(0..nodes);
        let target = if rng.random_bool(0.7) {
            Target::Leader { fallback: node }
        } else {
            Target::Node(node)
        };
        let fault = match kind {
            Kind::Kill => Fault::Kill {
                target,
                down_ms: rng.random_range(500..4_000),
            },
            Kind::Pause => Fault::Pause {
                target,
                ms: rng.random_range(2_500..5_000),
            },
            Kind::Partition => {
                let mut perm: Vec<usize> = (0..nodes).collect();
                perm.shuffle(&mut rng);
                let shape = match rng.random_range(0..3) {
                    0 => Shape::IsolatedLeader { fallback: node },
                    1 => {
                        let size = rng.random_range(1..=(nodes - 1) / 2).max(1);
                        Shape::MajorityMinority {
                            minority: perm[..size.min(nodes)].iter().copied().collect(),
                        }
                    }
                    _ => {
                        let half = nodes / 2;
                        Shape::Bridge {
                            left: perm[..half].iter().copied().collect(),
                            bridge: perm[half.min(nodes - 1)],
                        }
                    }
                };
                Fault::Partition {
                    shape,
                    ms: rng.random_range(2_000..6_000),
                }
            }
            Kind::SlowNet => {
                let all = rng.random_bool(0.5);
                let nodes: BTreeSet<usize> = if all {
                    (0..nodes).collect()
                } else {
                    BTreeSet::from([node])
                };
                Fault::SlowNet {
                    nodes,
                    delay_ms: rng.random_range(20..400),
                    ms: rng.random_range(2_000..5_000),
                }
            }
            Kind::SlowDisk => Fault::SlowDisk {
                target,
                delay_ms: rng.random_range(20..300),
                ms: rng.random_range(2_000..5_000),
            },
            Kind::Membership => {
                next_member_id += 1;
                Fault::Membership { id: next_member_id }
            }
            Kind::FailSync => Fault::FailSync {
                target,
                ms: rng.random_range(2_000..4_000),
            },
            Kind::ClockJump => Fault::ClockJump {
                target,
                ahead_ms: CLOCK_JUMPS_MS[rng.random_range(0..CLOCK_JUMPS_MS.len())],
                ms: rng.random_range(2_000..6_000),
            },
            Kind::DiskFull => Fault::DiskFull {
                target,
                ms: rng.random_range(2_000..5_000),
            },
            Kind::LoseUnsynced => Fault::LoseUnsynced {
                target,
                down_ms: rng.random_range(500..3_000),
                all: rng.random_bool(0.3),
            },
        };
        let length = match &fault {
            Fault::Kill { down_ms, .. } | Fault::LoseUnsynced { down_ms, .. } => *down_ms,
            Fault::Pause { ms, .. }
            | Fault::Partition { ms, .. }
            | Fault::SlowNet { ms, .. }
            | Fault::SlowDisk { ms, .. }
            | Fault::FailSync { ms, .. }
            | Fault::ClockJump { ms, .. }
            | Fault::DiskFull { ms, .. } => *ms,
            Fault::Membership { .. } => 8_000,
        };
        used += gap_ms + length;
        steps.push(Step { gap_ms, fault });
    }
    steps
}

/// What the executor did.
#[derive(Clone, Debug, Default)]
pub struct NemesisLog {
    /// Faults applied, by kind.
    pub counts: BTreeMap<&'static str, u64>,
    /// One line per event, with its time since the run started.
    pub events: Vec<String>,
    /// When a clock ran ahead (microseconds since the run started, from before the fault was
    /// set to after it was healed) and by how much (microseconds).
    pub clock_jumps_us: Vec<(u64, u64, u64)>,
    /// Every fault, from before it was set to after it was healed (microseconds since the run
    /// started): what may have stalled a shard (the expiry of a cross-shard hold's other parts
    /// waits for the primary's shard, `History::settle_expiries`).
    pub faults_us: Vec<(u64, u64)>,
}

/// Applies `steps` to the cluster until `until`, then heals everything.
pub struct Executor {
    pub cluster: Arc<Mutex<Cluster>>,
    pub start: Instant,
    pub until: Instant,
    pub log: NemesisLog,
    /// The `ivory` binary, for the membership commands.
    pub bin: PathBuf,
}

impl Executor {
    fn note(&mut self, text: String) {
        let t = self.start.elapsed().as_secs_f64();
        self.log.events.push(format!("{t:8.3}s {text}"));
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Sleeps `ms`, or less if the nemesis window ends first; false when it ended.
    async fn hold(&self, ms: u64) -> bool {
        let wake = Instant::now() + Duration::from_millis(ms);
        let end = wake.min(self.until);
        tokio::time::sleep_until(end.into()).await;
        wake <= self.until
    }

    async fn resolve(&self, target: Target) -> usize {
        let cluster = self.cluster.lock().await;
        match target {
            Target::Node(i) => i % cluster.nodes.len(),
            Target::Leader { fallback } => {
                let leaders = cluster.leaders().await;
                let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
                for l in leaders.values() {
                    *counts.entry(*l).or_default() += 1;
                }
                counts
                    .iter()
                    .max_by_key(|(id, c)| (**c, std::cmp::Reverse(**id)))
                    .and_then(|(id, _)| cluster.nodes.iter().position(|n| n.id == *id))
                    .unwrap_or(fallback % cluster.nodes.len())
            }
        }
    }

    /// Runs the schedule; every fault is healed before the next one and at the end.
    pub async fn run(&mut self, steps: &[Step]) {
        for step in steps {
            if !self.hold(step.gap_ms).await {
                break;
            }
            *self.log.counts.entry(step.fault.kind().name()).or_default() += 1;
            let fault_from = self.micros();
            let ended = match &step.fault {
                Fault::Kill { target, down_ms } => {
                    let i = self.resolve(*target).await;
                    let id = self.cluster.lock().await.nodes[i].id;
                    self.cluster.lock().await.kill9(i);
                    self.note(format!("kill -9 node {id}"));
                    let more = self.hold(*down_ms).await;
                    let restarted = self.cluster.lock().await.restart(i);
                    self.note(format!("restart node {id}: {restarted:?}"));
                    more
                }
                Fault::Pause { target, ms } => {
                    let i = self.resolve(*target).await;
                    let (id, paused) = {
                        let mut c = self.cluster.lock().await;
                        (c.nodes[i].id, c.pause(i))
                    };
                    self.note(format!("SIGSTOP node {id} ({paused})"));
                    let more = self.hold(*ms).await;
                    self.cluster.lock().await.resume(i);
                    self.note(format!("SIGCONT node {id}"));
                    more
                }
                Fault::Partition { shape, ms } => {
                    let components = self.components(shape).await;
                    let result = self.cluster.lock().await.partition(&components).await;
                    let ids = self.ids_of(&components).await;
                    self.note(format!("partition {shape:?} -> components {ids:?}: {result:?}"));
                    let more = self.hold(*ms).await;
                    self.heal_hooks().await;
                    self.note("partition healed".into());
                    more
                }
                Fault::SlowNet { nodes, delay_ms, ms } => {
                    let mut results = Vec::new();
                    {
                        let c = self.cluster.lock().await;
                        for i in nodes {
                            results.push(c.set_faults(*i, &json!({ "delayMs": delay_ms })).await);
                        }
                    }
                    self.note(format!("slow network {delay_ms}ms on nodes {nodes:?}: {results:?}"));
                    let more = self.hold(*ms).await;
                    self.heal_hooks().await;
                    self.note("slow network healed".into());
                    more
                }
                Fault::SlowDisk { target, delay_ms, ms } => {
                    let i = self.resolve(*target).await;
                    let (id, result) = {
                        let c = self.cluster.lock().await;
                        (c.nodes[i].id, c.set_faults(i, &json!({ "slowDiskMs": delay_ms })).await)
                    };
                    self.note(format!("slow disk {delay_ms}ms on node {id}: {result:?}"));
                    let more = self.hold(*ms).await;
                    self.heal_hooks().await;
                    self.note("slow disk healed".into());
                    more
                }
                Fault::FailSync { target, ms } => {
                    let i = self.resolve(*target).await;
                    let (id, result) = {
                        let c = self.cluster.lock().await;
                        (c.nodes[i].id, c.set_faults(i, &json!({ "failSync": true })).await)
                    };
                    self.note(format!("failed fsync armed on node {id}: {result:?}"));
                    // The node exits at its next flush round; the supervisor restarts it.
                    let more = self.hold(*ms).await;
                    self.heal_hooks().await;
                    self.note("failed fsync disarmed".into());
                    more
                }
                Fault::ClockJump { target, ahead_ms, ms } => {
                    let from = self.micros();
                    let i = self.resolve(*target).await;
                    let (id, result) = {
                        let c = self.cluster.lock().await;
                        (
                            c.nodes[i].id,
                            c.set_faults(i, &json!({ "clockAheadMs": ahead_ms })).await,
                        )
                    };
                    self.note(format!("clock {ahead_ms}ms ahead on node {id}: {result:?}"));
                    let more = self.hold(*ms).await;
                    self.heal_hooks().await;
                    self.note("clock back".into());
                    let to = self.micros();
                    self.log.clock_jumps_us.push((from, to, ahead_ms.saturating_mul(1_000)));
                    more
                }
                Fault::DiskFull { target, ms } => self.disk_full(*target, *ms).await,
                Fault::LoseUnsynced { target, down_ms, all } => self.lose_unsynced(*target, *down_ms, *all).await,
                Fault::Membership { id } => {
                    let result = crate::membership::add_then_remove(&self.cluster, &self.bin, *id, self.until).await;
                    self.note(format!("membership: add then remove node {id}: {result:?}"));
                    Instant::now() < self.until
                }
            };
            let fault_to = self.micros();
            self.log.faults_us.push((fault_from, fault_to));
            if !ended {
                break;
            }
        }
    }

    /// Fills node's tmpfs, holds it `ms` under traffic, deletes the filler.
    async fn disk_full(&mut self, target: Target, ms: u64) -> bool {
        let i = self.resolve(target).await;
        let (id, dir) = {
            let c = self.cluster.lock().await;
            (c.nodes[i].id, c.mounts.get(i).map(|m| m.path().to_path_buf()))
        };
        let Some(dir) = dir else {
            self.note(format!(
                "disk full on node {id}: not done, its data directory is no tmpfs of its own"
            ));
            return self.hold(ms).await;
        };
        // Exits from now until a moment after the filler is gone are the full disk's.
        self.cluster.lock().await.nodes[i].disk_full_until = Some(Instant::now() + Duration::from_secs(3600));
        let filler = dir.join(FILLER);
        let path = filler.clone();
        let filled = tokio::task::spawn_blocking(move || crate::disk::fill(&path, FILLER_LEAVES))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        self.note(format!("disk full on node {id}: filler {filled:?} bytes"));
        let more = self.hold(ms).await;
        let removed = std::fs::remove_file(&filler).map_err(|e| e.to_string());
        self.cluster.lock().await.nodes[i].disk_full_until = Some(Instant::now() + Duration::from_secs(2));
        self.note(format!("disk space back on node {id}: {removed:?}"));
        more
    }

    /// kill -9, drop what the node's lossyfs holds unsynced, restart after `down_ms`; with `all`,
    /// every node at once (acknowledged writes must then have been fsynced by a majority).
    async fn lose_unsynced(&mut self, target: Target, down_ms: u64, all: bool) -> bool {
        let targets: Vec<usize> = if all {
            (0..self.cluster.lock().await.nodes.len()).collect()
        } else {
            vec![self.resolve(target).await]
        };
        {
            let mut c = self.cluster.lock().await;
            for &i in &targets {
                c.kill9(i);
            }
        }
        for &i in &targets {
            let (id, dropped) = {
                let c = self.cluster.lock().await;
                (c.nodes[i].id, c.lossy.get(i).map(lossyfs::Mounted::drop_unsynced))
            };
            self.note(format!("kill -9 node {id}, unsynced data dropped: {dropped:?}"));
        }
        let more = self.hold(down_ms).await;
        for &i in &targets {
            let (id, restarted) = {
                let mut c = self.cluster.lock().await;
                (c.nodes[i].id, c.restart(i))
            };
            self.note(format!("restart node {id}: {restarted:?}"));
        }
        more
    }

    async fn components(&self, shape: &Shape) -> Vec<BTreeSet<usize>> {
        let n = self.cluster.lock().await.nodes.len();
        let all: BTreeSet<usize> = (0..n).collect();
        match shape {
            Shape::IsolatedLeader { fallback } => {
                let leader = self.resolve(Target::Leader { fallback: *fallback }).await;
                vec![
                    BTreeSet::from([leader]),
                    all.iter().copied().filter(|i| *i != leader).collect(),
                ]
            }
            Shape::MajorityMinority { minority } => {
                vec![minority.clone(), all.difference(minority).copied().collect()]
            }
            Shape::Bridge { left, bridge } => {
                let mut l = left.clone();
                l.insert(*bridge);
                let mut r: BTreeSet<usize> = all.difference(left).copied().collect();
                r.insert(*bridge);
                vec![l, r]
            }
        }
    }

    async fn ids_of(&self, components: &[BTreeSet<usize>]) -> Vec<Vec<u64>> {
        let c = self.cluster.lock().await;
        components
            .iter()
            .map(|s| s.iter().map(|i| c.nodes[*i].id).collect())
            .collect()
    }

    async fn heal_hooks(&self) {
        let c = self.cluster.lock().await;
        for i in 0..c.nodes.len() {
            if c.nodes[i].is_live() {
                let _ = c.set_faults(i, &json!({})).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_one_schedule() {
        let kinds = Kind::defaults();
        let a = schedule(42, 3, &kinds, Duration::from_secs(60));
        let b = schedule(42, 3, &kinds, Duration::from_secs(60));
        let c = schedule(43, 3, &kinds, Duration::from_secs(60));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.len() >= 5);
        assert!(a.iter().all(|s| s.fault.kind() != Kind::Membership || MEMBERSHIP_READY));
        for s in schedule(7, 5, &kinds, Duration::from_secs(120)) {
            if let Fault::Partition {
                shape: Shape::MajorityMinority { minority },
                ..
            } = &s.fault
            {
                assert!(!minority.is_empty() && minority.len() <= 2);
            }
        }
    }

    #[test]
    fn kinds_parse_by_name() {
        assert_eq!(Kind::parse("slow-disk"), Ok(Kind::SlowDisk));
        assert_eq!(Kind::parse("fail-sync"), Ok(Kind::FailSync));
        assert_eq!(Kind::parse("clock-jump"), Ok(Kind::ClockJump));
        assert_eq!(Kind::parse("disk-full"), Ok(Kind::DiskFull));
        assert!(!Kind::defaults().contains(&Kind::DiskFull));
        assert!(Kind::long_defaults().contains(&Kind::DiskFull));
        assert_eq!(Kind::parse("lose-unsynced"), Ok(Kind::LoseUnsynced));
        assert!(!Kind::defaults().contains(&Kind::LoseUnsynced));
        assert!(Kind::parse("meteor").is_err());
    }
}
