//! A cluster of real `ivory node` processes started with `--enable-fault-injection`, and the
//! process and network faults a nemesis applies to them: kill -9 and restart, SIGSTOP/SIGCONT,
//! and the node's own fault hook (`POST /_test/fault`: dropped addresses, delay, slow disk).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CLIENT_ID: &str = "ivory-nemesis";
pub const CLIENT_SECRET: &str = "nemesis-secret-0123456789abcdef";

/// A port that was free a moment ago.
///
/// # Errors
/// When the OS hands out no loopback port.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// One `ivory node` process.
pub struct NodeProc {
    pub id: u64,
    pub addr: SocketAddr,
    pub data: PathBuf,
    args: Vec<String>,
    /// Extra environment (test hooks such as a low snapshot threshold).
    env: Vec<(String, String)>,
    /// How the process ended, every time it ended by itself: an exit code, or the signal that
    /// ended it (`ExitStatusExt::signal`).
    pub exits: Vec<std::process::ExitStatus>,
    /// Of those, how many ended while its disk was full (or just after), with their codes.
    pub exits_disk_full: Vec<Option<i32>>,
    /// While the `disk-full` nemesis has filled the node's disk (and a moment after).
    pub disk_full_until: Option<Instant>,
    child: Option<Child>,
    paused: bool,
    /// The supervisor's restart: when it is due, and the delay after the next quick exit.
    restart_at: Option<Instant>,
    backoff: Duration,
    spawned_at: Option<Instant>,
}

/// The supervisor's first restart after an exit comes at once (within its 200 ms tick); a node
/// that exits again within [`QUICK_EXIT`] of its start waits twice as long each time (a disk
/// that is still full), up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(4);
const QUICK_EXIT: Duration = Duration::from_secs(5);

impl NodeProc {
    fn log_path(&self) -> PathBuf {
        self.data.with_extension("log")
    }

    fn spawn(&mut self, bin: &Path) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("log file {}: {e}", self.log_path().display()))?;
        let err_log = log.try_clone().map_err(|e| format!("log handle: {e}"))?;
        let child = Command::new(bin)
            .args(&self.args)
            .env("IVORY_CLIENT_ID", CLIENT_ID)
            .env("IVORY_CLIENT_SECRET", CLIENT_SECRET)
            .env("IVORY_CLUSTER_SECRET", ivory_tests::CLUSTER_SECRET)
            .env("RUST_LOG", "info,openraft=error,sled=warn,h2=warn,tower=warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        self.child = Some(child);
        self.paused = false;
        self.restart_at = None;
        self.spawned_at = Some(Instant::now());
        Ok(())
    }

    fn signal(&self, sig: libc::c_int) -> bool {
        let Some(child) = &self.child else { return false };
        let Ok(pid) = libc::pid_t::try_from(child.id()) else {
            return false;
        };
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped yet.
        unsafe { libc::kill(pid, sig) == 0 }
    }

    /// kill -9 (a paused process dies too).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// When the process ended by itself (not by [`NodeProc::kill9`]): reaps it and says how it
    /// ended.
    pub fn reap(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        self.paused = false;
        self.exits.push(status);
        if self.disk_full_until.is_some_and(|t| Instant::now() <= t) {
            self.exits_disk_full.push(status.code());
        }
        Some(status)
    }

    /// Waits until the process ends by itself: its exit code (`None` when a signal ended it).
    ///
    /// # Errors
    /// When it still runs after `timeout`, or was not running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<Option<i32>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().ok_or("the process was not running")?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                return Err(format!("node {} still runs after {timeout:?}", self.id));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Up and not paused: it can answer.
    pub fn is_live(&self) -> bool {
        self.is_running() && !self.paused
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if self.paused {
            self.signal(libc::SIGCONT);
        }
        self.kill9();
    }
}

/// Where the nodes' data directories live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataStorage {
    /// In the cluster's temp directory.
    Plain,
    /// Each on its own tmpfs of this many bytes (`disk-full`).
    Tmpfs(u64),
    /// Each on its own lossyfs, which keeps what was not fsynced apart (`lose-unsynced`).
    Lossy(lossyfs::Durability),
}

/// A local cluster in a temp directory; processes die and the directory goes on drop.
pub struct Cluster {
    bin: PathBuf,
    pub nodes: Vec<NodeProc>,
    /// Nodes added by the membership nemesis (`--join`), outside the fault targets.
    pub joined: Vec<NodeProc>,
    pub shards: u32,
    env: Vec<(String, String)>,
    http: reqwest::Client,
    /// Each node's own size-limited tmpfs on its data directory (`disk-full`; root only),
    /// by node index. Unmounted after the processes die, before the directory goes.
    pub mounts: Vec<crate::disk::Tmpfs>,
    /// Each node's data directory on its own lossyfs (`lose-unsynced`; root only), by index.
    pub lossy: Vec<lossyfs::Mounted>,
    // Dropped last: the processes die before their directories go.
    dir: tempfile::TempDir,
}

/// What `GET /status` says about one shard.
#[derive(Clone, Debug)]
pub struct ShardView {
    pub shard: u32,
    pub leader: Option<u64>,
    pub voters: Vec<u64>,
}

impl Cluster {
    /// Starts `n` nodes (replication factor min(n, 3)) with fault injection on.
    ///
    /// # Errors
    /// When a port, the temp dir or a process cannot be had.
    pub fn start(bin: &Path, n: u64, shards: u32) -> Result<Cluster, String> {
        Cluster::start_with(bin, n, shards, &[])
    }

    /// [`Cluster::start_with`], then healthy within 60 s and an API client holding a token: how
    /// the process tests built on this harness begin.
    ///
    /// # Errors
    /// As [`Cluster::start`], or when the cluster is not healthy or gives no token in time.
    pub async fn start_healthy(
        bin: &Path,
        n: u64,
        shards: u32,
        env: &[(&str, &str)],
    ) -> Result<(Cluster, crate::workload::Api), String> {
        let cluster = Cluster::start_with(bin, n, shards, env)?;
        cluster.wait_healthy(Duration::from_secs(60)).await?;
        let api = crate::workload::Api::connect(&cluster.addrs(), Instant::now() + Duration::from_secs(20)).await?;
        Ok((cluster, api))
    }

    /// [`Cluster::start`] with extra environment for every node (also nodes joining later).
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub fn start_with(bin: &Path, n: u64, shards: u32, env: &[(&str, &str)]) -> Result<Cluster, String> {
        Cluster::start_on(bin, n, shards, env, DataStorage::Plain)
    }

    /// [`Cluster::start_with`], each node's data directory on its own file system as `storage`
    /// says (a tmpfs or a lossyfs need root; see [`crate::disk`] and `tests/lossyfs`).
    ///
    /// # Errors
    /// As [`Cluster::start`], or when a tmpfs cannot be mounted.
    pub fn start_on(
        bin: &Path,
        n: u64,
        shards: u32,
        env: &[(&str, &str)],
        storage: DataStorage,
    ) -> Result<Cluster, String> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let dir = tempfile::Builder::new()
            .prefix("ivory-nemesis-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let mut addrs = Vec::new();
        for _ in 0..n {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?)
                .parse()
                .map_err(|e| format!("addr: {e}"))?;
            addrs.push(addr);
        }
        let members = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let mut cluster = Cluster {
            bin: bin.to_path_buf(),
            nodes: Vec::new(),
            joined: Vec::new(),
            shards,
            env,
            http,
            mounts: Vec::new(),
            lossy: Vec::new(),
            dir,
        };
        for (i, addr) in addrs.iter().enumerate() {
            let id = i as u64 + 1;
            let data = cluster.dir.path().join(format!("node{id}"));
            match storage {
                DataStorage::Plain => {}
                DataStorage::Tmpfs(bytes) => cluster.mounts.push(crate::disk::Tmpfs::mount(&data, bytes)?),
                DataStorage::Lossy(durability) => {
                    std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
                    cluster.lossy.push(
                        lossyfs::mount(&data, durability).map_err(|e| format!("lossyfs on {}: {e}", data.display()))?,
                    );
                }
            }
            let mut args = ivory_tests::node_args(id, *addr, &data, &members, shards, n.min(3));
            args.push("--enable-fault-injection".into());
            let mut node = NodeProc {
                id,
                addr: *addr,
                data,
                args,
                env: cluster.env.clone(),
                exits: Vec::new(),
                exits_disk_full: Vec::new(),
                disk_full_until: None,
                child: None,
                paused: false,
                restart_at: None,
                backoff: Duration::ZERO,
                spawned_at: None,
            };
            node.spawn(bin)?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    /// Starts node `id` at `addr` with `--join` (after `ivory cluster add-node` registered it).
    ///
    /// # Errors
    /// When the process cannot be started.
    pub fn spawn_joining(&mut self, id: u64, addr: SocketAddr, join: &str) -> Result<(), String> {
        let data = self.dir.path().join(format!("node{id}"));
        let mut node = NodeProc {
            id,
            addr,
            args: {
                let mut args = ivory_tests::join_args(id, addr, &data, join);
                args.push("--enable-fault-injection".into());
                args
            },
            data,
            env: self.env.clone(),
            exits: Vec::new(),
            exits_disk_full: Vec::new(),
            disk_full_until: None,
            child: None,
            paused: false,
            restart_at: None,
            backoff: Duration::ZERO,
            spawned_at: None,
        };
        node.spawn(&self.bin)?;
        self.joined.push(node);
        Ok(())
    }

    /// Stops a node started by [`Cluster::spawn_joining`].
    pub fn stop_joining(&mut self, id: u64) {
        if let Some(i) = self.joined.iter().position(|n| n.id == id) {
            self.joined.remove(i).kill9();
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }

    /// The index of the node with this address.
    pub fn index_of(&self, addr: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr.to_string() == addr)
    }

    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// Starts a killed node again from its data directory (a no-op when it runs).
    ///
    /// # Errors
    /// When the process cannot be started.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        self.nodes[i].reap();
        if self.nodes[i].is_running() {
            return Ok(());
        }
        let bin = self.bin.clone();
        self.nodes[i].spawn(&bin)
    }

    /// What a supervisor does: every node that ended by itself (a storage fault exits 74) is
    /// started again from its data directory, at once the first time; a node that exits again
    /// soon after its start (a disk still full) waits longer each time, up to 4 s. Returns one
    /// line per exit and per restart.
    pub fn supervise(&mut self) -> Vec<String> {
        let bin = self.bin.clone();
        let mut events = Vec::new();
        let now = Instant::now();
        for node in &mut self.nodes {
            if let Some(status) = node.reap() {
                let quick = node.spawned_at.is_some_and(|t| now.duration_since(t) < QUICK_EXIT);
                let delay = if quick { node.backoff } else { Duration::ZERO };
                node.backoff = if quick {
                    (node.backoff * 2).clamp(BACKOFF_FIRST, BACKOFF_MAX)
                } else {
                    BACKOFF_FIRST
                };
                node.restart_at = Some(now + delay);
                let (code, by) = (status.code(), by_signal(status));
                events.push(format!(
                    "supervisor: node {} exited with {code:?}{by}; restart in {delay:?}",
                    node.id
                ));
            }
            if let Some(at) = node.restart_at
                && at <= now
                && !node.is_running()
            {
                let result = node.spawn(&bin);
                node.restart_at = None;
                events.push(format!("supervisor: node {} restarted: {result:?}", node.id));
            }
        }
        events
    }

    /// SIGSTOP.
    pub fn pause(&mut self, i: usize) -> bool {
        let node = &mut self.nodes[i];
        if node.is_live() && node.signal(libc::SIGSTOP) {
            node.paused = true;
        }
        node.paused
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if node.paused {
            node.signal(libc::SIGCONT);
            node.paused = false;
        }
    }

    /// Sets node `i`'s faults (`{"drop": [...], "delayMs": n, "slowDiskMs": n, "failSync": true,
    /// "clockAheadMs": n}`; `{}` heals).
    ///
    /// # Errors
    /// When the node does not take them (down, paused, or no answer in 2 s).
    pub async fn set_faults(&self, i: usize, faults: &Value) -> Result<(), String> {
        let node = &self.nodes[i];
        if !node.is_live() {
            return Err(format!("node {} is not live", node.id));
        }
        let r = self
            .http
            .post(format!("http://{}/_test/fault", node.addr))
            .json(faults)
            .send()
            .await
            .map_err(|e| format!("node {}: /_test/fault: {e}", node.id))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("node {}: /_test/fault answered {}", node.id, r.status()))
        }
    }

    /// Node `i` drops everything it sends to the nodes at `to`.
    ///
    /// # Errors
    /// As [`Cluster::set_faults`].
    pub async fn drop_to(&self, i: usize, to: &BTreeSet<usize>) -> Result<(), String> {
        let drop: Vec<String> = to.iter().map(|j| self.nodes[*j].addr.to_string()).collect();
        self.set_faults(i, &json!({ "drop": drop })).await
    }

    /// Cuts the cluster into components: two nodes talk iff some component holds both.
    /// A node in several components is a bridge.
    ///
    /// # Errors
    /// When a live node does not take its faults.
    pub async fn partition(&self, components: &[BTreeSet<usize>]) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            let reachable: BTreeSet<usize> = components
                .iter()
                .filter(|c| c.contains(&i))
                .flat_map(|c| c.iter().copied())
                .collect();
            let cut: BTreeSet<usize> = (0..self.nodes.len()).filter(|j| !reachable.contains(j)).collect();
            if self.nodes[i].is_live() {
                self.drop_to(i, &cut).await?;
            }
        }
        Ok(())
    }

    /// Ends every fault: resumes paused nodes, restarts killed ones, clears every hook.
    ///
    /// # Errors
    /// When a node cannot be restarted, or a node's hook cannot be cleared within `timeout`.
    pub async fn heal_all(&mut self, timeout: Duration) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            self.resume(i);
            self.restart(i)?;
        }
        let deadline = Instant::now() + timeout;
        for i in 0..self.nodes.len() {
            loop {
                match self.set_faults(i, &json!({})).await {
                    Ok(()) => break,
                    Err(e) if Instant::now() > deadline => return Err(format!("heal: {e}")),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        Ok(())
    }

    /// `GET /status` of node `i`: its shards with leader and voters.
    pub async fn status(&self, i: usize) -> Option<Vec<ShardView>> {
        let node = &self.nodes[i];
        if !node.is_live() {
            return None;
        }
        let r = self
            .http
            .get(format!("http://{}/status", node.addr))
            .header("x-ivory-cluster-secret", ivory_tests::CLUSTER_SECRET)
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        let shards = v["shards"].as_array()?;
        Some(
            shards
                .iter()
                .filter_map(|s| {
                    Some(ShardView {
                        shard: u32::try_from(s["shard"].as_u64()?).ok()?,
                        leader: s["leader"].as_u64(),
                        voters: s["voters"]
                            .as_array()
                            .map(|a| a.iter().filter_map(Value::as_u64).collect())
                            .unwrap_or_default(),
                    })
                })
                .collect(),
        )
    }

    /// Shard -> leader node id, as the live nodes see it (a leader claimed by its own node wins).
    pub async fn leaders(&self) -> BTreeMap<u32, u64> {
        let mut leaders = BTreeMap::new();
        for i in 0..self.nodes.len() {
            for s in self.status(i).await.unwrap_or_default() {
                if let Some(l) = s.leader {
                    if l == self.nodes[i].id {
                        leaders.insert(s.shard, l);
                    } else {
                        leaders.entry(s.shard).or_insert(l);
                    }
                }
            }
        }
        leaders
    }

    /// The sum over the live nodes' `GET /metrics` of every series of the counter or gauge
    /// `name` (counters restart from zero with their process).
    pub async fn metric_sum(&self, name: &str) -> f64 {
        let mut sum = 0.0;
        for node in self.nodes.iter().filter(|n| n.is_live()) {
            let Ok(r) = self.http.get(format!("http://{}/metrics", node.addr)).send().await else {
                continue;
            };
            let text = r.text().await.unwrap_or_default();
            for line in text.lines() {
                let Some(rest) = line.strip_prefix(name) else { continue };
                if !(rest.starts_with('{') || rest.starts_with(' ')) {
                    continue;
                }
                if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                    sum += v;
                }
            }
        }
        sum
    }

    /// Whether `GET /healthz` of every running node answers 200 (every shard has a leader).
    pub async fn healthy(&self) -> bool {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let ok = self
                .http
                .get(format!("http://{}/healthz", node.addr))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if !ok {
                return false;
            }
        }
        true
    }

    /// Waits until [`Cluster::healthy`].
    ///
    /// # Errors
    /// When the cluster is not healthy within `timeout`.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while !self.healthy().await {
            if Instant::now() > deadline {
                return Err(format!("cluster not healthy within {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// The last `lines` lines of every node's log.
    pub fn logs(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let log = n.log();
                let all: Vec<&str> = log.lines().collect();
                format!(
                    "==== node {} ({}) ====\n{}",
                    n.id,
                    n.addr,
                    all[all.len().saturating_sub(lines)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Copies every node's log into `to`.
    pub fn save_logs(&self, to: &Path) {
        for n in &self.nodes {
            let _ = std::fs::copy(n.log_path(), to.join(format!("node{}.log", n.id)));
        }
    }
}

/// " (signal N)" when a signal ended the process, "" when it exited with a code.
pub fn by_signal(status: std::process::ExitStatus) -> String {
    std::os::unix::process::ExitStatusExt::signal(&status).map_or(String::new(), |s| format!(" (signal {s})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-node cluster whose node is the shell script `body` (the directory holds it).
    fn scripted_node(body: &str) -> (tempfile::TempDir, Cluster) {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("node");
        std::fs::write(&bin, format!("#!/bin/sh\n{body}\n")).expect("script");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let cluster = Cluster::start_on(&bin, 1, 1, &[], DataStorage::Plain).expect("started");
        (dir, cluster)
    }

    /// The supervisor's back-off, with a real process that exits 74 at once (as a start on a
    /// disk that is still full may): the first restart comes at once, the next ones wait longer.
    #[tokio::test]
    async fn the_supervisor_waits_longer_for_a_node_that_keeps_failing() {
        let (_dir, mut cluster) = scripted_node("exit 74");
        let started = Instant::now();
        let mut restarts = Vec::new();
        while started.elapsed() < Duration::from_secs(5) {
            for e in cluster.supervise() {
                if e.contains("restarted") {
                    restarts.push(started.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(cluster.nodes[0].exits.iter().all(|s| s.code() == Some(74)));
        // Delays 0, 0.25, 0.5, 1, 2 s: about five restarts in 5 s, not one per tick (100).
        assert!((3..=7).contains(&restarts.len()), "{restarts:?}");
        let gaps: Vec<Duration> = restarts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.windows(2).all(|g| g[1] + Duration::from_millis(100) >= g[0]),
            "{gaps:?}"
        );
    }

    /// A node that a signal ended is reported with the signal, so that an exit no fault explains
    /// says what ended it (a process kills itself here, as nothing in a run should).
    #[tokio::test]
    async fn the_supervisor_reports_the_signal_that_ended_a_node() {
        let (_dir, mut cluster) = scripted_node("kill -9 $$");
        let started = Instant::now();
        let mut events = Vec::new();
        while !events.iter().any(|e: &String| e.contains("exited")) {
            assert!(started.elapsed() < Duration::from_secs(10), "no exit seen: {events:?}");
            events.extend(cluster.supervise());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let exit = cluster.nodes[0].exits.first().expect("an exit");
        assert_eq!(exit.code(), None);
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(exit), Some(libc::SIGKILL));
        assert!(events.iter().any(|e| e.contains("(signal 9)")), "{events:?}");
    }
}
