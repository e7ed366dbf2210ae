//! `--spawn 1|3`: start `ivory serve` or a 3-node local cluster, wait for health, stop it after.
//! The guard kills the processes and deletes the data directories when dropped (also on error and
//! on ctrl-c, which drops the running future).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub struct Cluster {
    pub urls: Vec<String>,
    children: Vec<Child>,
    dir: PathBuf,
    keep_dir: bool,
}

impl Cluster {
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stop every node (SIGKILL: the data is thrown away anyway) and wait for them.
    pub async fn stop(&mut self) {
        for c in &mut self.children {
            let _ = c.start_kill();
        }
        for c in &mut self.children {
            let _ = c.wait().await;
        }
        self.children.clear();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.start_kill();
        }
        if !self.keep_dir && !self.children.is_empty() {
            // Give the kernel a moment to reap before deleting files the nodes hold open.
            std::thread::sleep(Duration::from_millis(100));
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

pub struct SpawnOpts<'a> {
    pub nodes: u8,
    pub bin: &'a Path,
    pub shards: u32,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub keep_dir: bool,
}

pub async fn spawn(o: &SpawnOpts<'_>) -> Result<Cluster, String> {
    if !o.bin.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p ivory` or pass --ivory-bin",
            o.bin.display()
        ));
    }
    if o.client_secret.len() < 16 {
        return Err("--client-secret must have at least 16 characters for a spawned server".into());
    }
    let dir = std::env::temp_dir().join(format!(
        "ivory-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cluster_secret =
        std::env::var("IVORY_CLUSTER_SECRET").unwrap_or_else(|_| format!("bench-cluster-{:032x}", rand_u128()));
    let mut cluster = Cluster {
        urls: Vec::new(),
        children: Vec::new(),
        dir: dir.clone(),
        keep_dir: o.keep_dir,
    };
    let ports: Vec<u16> = (0..o.nodes).map(|_| free_port()).collect::<Result<_, _>>()?;
    let members: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect();
    for (i, port) in ports.iter().enumerate() {
        let data = dir.join(format!("node{}", i + 1));
        std::fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        let log = std::fs::File::create(dir.join(format!("node{}.log", i + 1))).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(o.bin);
        let listen = format!("127.0.0.1:{port}");
        if o.nodes == 1 {
            cmd.arg("serve");
        } else {
            cmd.args([
                "node",
                "--id",
                &(i + 1).to_string(),
                "--initial-cluster",
                &members.join(","),
                "--replicas",
                "3",
            ]);
        }
        cmd.args(["--listen", &listen, "--data"])
            .arg(&data)
            .args(["--shards", &o.shards.to_string()])
            .env("IVORY_CLIENT_ID", o.client_id)
            .env("IVORY_CLIENT_SECRET", o.client_secret)
            // Spawned nodes share a cluster secret: the caller's, else one for this run only.
            .env("IVORY_CLUSTER_SECRET", &cluster_secret)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .kill_on_drop(true);
        // If this harness dies without running its guard (SIGKILL, abort), the kernel kills the
        // nodes too, so they do not keep eating the cores of the next run.
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches only the child's own attributes.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", o.bin.display()))?;
        cluster.children.push(child);
        cluster.urls.push(format!("http://{listen}"));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    for (i, url) in cluster.urls.clone().iter().enumerate() {
        loop {
            if let Ok(Some(status)) = cluster.children[i].try_wait() {
                return Err(format!(
                    "node {} exited ({status}); log: {}",
                    i + 1,
                    log_tail(&dir, i + 1)
                ));
            }
            if let Ok(r) = http.get(format!("{url}/healthz")).send().await
                && r.status().as_u16() == 200
            {
                break;
            }
            if t0.elapsed() > Duration::from_secs(90) {
                return Err(format!(
                    "node {} not healthy after 90 s; log: {}",
                    i + 1,
                    log_tail(&dir, i + 1)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!(
        "[spawn] {} node(s) healthy in {:.1}s: {}",
        o.nodes,
        t0.elapsed().as_secs_f64(),
        cluster.urls.join(" ")
    );
    Ok(cluster)
}

pub fn log_tail(dir: &Path, node: usize) -> String {
    let text = std::fs::read_to_string(dir.join(format!("node{node}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A value no other run guesses (the bench's own nodes only need to agree with each other).
fn rand_u128() -> u128 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    t ^ (u128::from(std::process::id()) << 64)
}
