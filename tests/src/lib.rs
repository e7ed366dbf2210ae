//! Black-box harness: real `ivory` processes on 127.0.0.1, free ports, a temp directory each, killed
//! and cleaned up on drop; an HTTP client that speaks the public REST API with a token.
//!
//! The process-level tests themselves live in `crates/ivory/tests`, where Cargo hands them the
//! path of the freshly built binary (`CARGO_BIN_EXE_ivory`).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CLIENT_ID: &str = "ivory-test";
pub const CLIENT_SECRET: &str = "test-secret-0123456789abcdef";
/// The cluster secret every node and CLI run of the harness shares (`IVORY_CLUSTER_SECRET`).
pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789abcdef";

/// A port that was free a moment ago. Another process could take it before the node binds it;
/// starting then fails loudly, never silently.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the OS hands out a free loopback port")
}

/// A gRPC channel to a node (plain HTTP/2), for tests that call its services directly.
pub async fn grpc_channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .expect("gRPC connects")
}

/// `ivory node` arguments of a member of a new cluster (`members`: `1=host:port,...`).
pub fn node_args(id: u64, addr: SocketAddr, data: &Path, members: &str, shards: u32, replicas: u64) -> Vec<String> {
    let mut args = member_args(id, addr, data);
    args.extend([
        "--initial-cluster".into(),
        members.to_string(),
        "--shards".into(),
        shards.to_string(),
        "--replicas".into(),
        replicas.to_string(),
    ]);
    args
}

/// `ivory node` arguments of a node joining through the member at `seed`.
pub fn join_args(id: u64, addr: SocketAddr, data: &Path, seed: &str) -> Vec<String> {
    let mut args = member_args(id, addr, data);
    args.extend(["--join".into(), seed.to_string()]);
    args
}

fn member_args(id: u64, addr: SocketAddr, data: &Path) -> Vec<String> {
    vec![
        "node".into(),
        "--id".into(),
        id.to_string(),
        "--listen".into(),
        addr.to_string(),
        "--data".into(),
        data.display().to_string(),
    ]
}

/// One `ivory` process.
pub struct Proc {
    pub id: u64,
    pub addr: SocketAddr,
    pub data: PathBuf,
    args: Vec<String>,
    /// Extra environment variables (test hooks such as `IVORY_TEST_HOLD_PAUSE_MS`).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Proc {
    fn spawn(&mut self, bin: &Path) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .expect("log file in the test's temp dir");
        let child = Command::new(bin)
            .args(&self.args)
            .env("IVORY_CLIENT_ID", CLIENT_ID)
            .env("IVORY_CLIENT_SECRET", CLIENT_SECRET)
            .env("IVORY_CLUSTER_SECRET", CLUSTER_SECRET)
            .env("RUST_LOG", "info,openraft=error,sled=warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("the ivory binary starts");
        self.child = Some(child);
    }

    /// kill -9: no shutdown, no flush beyond what was acknowledged.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until the process exits by itself: `Some(success)`, or `None` after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<bool> {
        self.wait_exit_code(timeout).await.map(|code| code == Some(0))
    }

    /// Waits until the process exits by itself: `Some(exit code)` (`Some(None)` for a signal),
    /// or `None` after `timeout`.
    pub async fn wait_exit_code(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status.code());
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A local cluster of `ivory` processes in a temp directory.
pub struct Cluster {
    bin: PathBuf,
    pub nodes: Vec<Proc>,
    /// Appended to every `ivory cluster status` the harness runs (e.g. `--tls-ca FILE`).
    pub cli_extra: Vec<String>,
    // Dropped last: the processes die before their directories go.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `ivory serve`: one node, every shard on it.
    pub fn single(bin: &Path, shards: u32) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("node1");
        Cluster::single_at(bin, shards, dir, data)
    }

    /// [`Cluster::single`] with its data directory at `data` (e.g. on a small file system); its
    /// log goes next to it (`data` with `.log`).
    pub fn single_at(bin: &Path, shards: u32, dir: tempfile::TempDir, data: PathBuf) -> Cluster {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        Cluster::single_listening(bin, shards, dir, data, addr)
    }

    /// [`Cluster::single_at`] listening on `addr` (e.g. the address a restored data directory
    /// records for its node).
    pub fn single_listening(
        bin: &Path,
        shards: u32,
        dir: tempfile::TempDir,
        data: PathBuf,
        addr: SocketAddr,
    ) -> Cluster {
        let args = vec![
            "serve".into(),
            "--listen".into(),
            addr.to_string(),
            "--data".into(),
            data.display().to_string(),
            "--shards".into(),
            shards.to_string(),
        ];
        Cluster::one_node(bin, dir, addr, data, args)
    }

    /// One process, node 1, started with `args`.
    fn one_node(bin: &Path, dir: tempfile::TempDir, addr: SocketAddr, data: PathBuf, args: Vec<String>) -> Cluster {
        let mut node = Proc {
            id: 1,
            addr,
            data,
            args,
            env: Vec::new(),
            child: None,
        };
        node.spawn(bin);
        Cluster {
            bin: bin.to_path_buf(),
            nodes: vec![node],
            cli_extra: Vec::new(),
            _dir: dir,
        }
    }

    /// `ivory node --id 1` alone, creating a new cluster (`--initial-cluster 1=ADDR`, replication 3
    /// for the nodes that join it) on `data` (e.g. a restored data directory), listening on `addr`.
    pub fn first_node_at(bin: &Path, shards: u32, dir: tempfile::TempDir, data: PathBuf, addr: SocketAddr) -> Cluster {
        let args = node_args(1, addr, &data, &format!("1={addr}"), shards, 3);
        Cluster::one_node(bin, dir, addr, data, args)
    }

    /// `ivory node` x n, replication factor min(n, 3).
    pub fn nodes(bin: &Path, n: u64, shards: u32) -> Cluster {
        Cluster::nodes_with_env(bin, n, shards, &[])
    }

    /// [`Cluster::nodes`] with extra environment variables for every node (test hooks).
    pub fn nodes_with_env(bin: &Path, n: u64, shards: u32, env: &[(&str, &str)]) -> Cluster {
        Cluster::nodes_with(bin, n, shards, env, &[])
    }

    /// [`Cluster::nodes`] with extra environment variables and extra `ivory node` arguments.
    pub fn nodes_with(bin: &Path, n: u64, shards: u32, env: &[(&str, &str)], extra_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()).parse().expect("addr"))
            .collect();
        let members = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let id = i as u64 + 1;
                let data = dir.path().join(format!("node{id}"));
                let mut args = node_args(id, *addr, &data, &members, shards, n.min(3));
                args.extend(extra_args.iter().map(|a| a.to_string()));
                let mut node = Proc {
                    id,
                    addr: *addr,
                    data,
                    args,
                    env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    child: None,
                };
                node.spawn(bin);
                node
            })
            .collect();
        Cluster {
            bin: bin.to_path_buf(),
            nodes,
            cli_extra: Vec::new(),
            _dir: dir,
        }
    }

    /// `ivory node` x n (replication min(n, 3)) known to each other by host name: each listens on
    /// 0.0.0.0:PORT and advertises `localhost:PORT`, the address in `--initial-cluster`.
    pub fn nodes_by_name(bin: &Path, n: u64, shards: u32) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=localhost:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let id = i as u64 + 1;
                let data = dir.path().join(format!("node{id}"));
                let any: SocketAddr = format!("0.0.0.0:{port}").parse().expect("addr");
                let mut args = node_args(id, any, &data, &members, shards, n.min(3));
                args.extend(["--advertise-addr".into(), format!("localhost:{port}")]);
                let mut node = Proc {
                    id,
                    addr: format!("127.0.0.1:{port}").parse().expect("addr"),
                    data,
                    args,
                    env: Vec::new(),
                    child: None,
                };
                node.spawn(bin);
                node
            })
            .collect();
        Cluster {
            bin: bin.to_path_buf(),
            nodes,
            cli_extra: Vec::new(),
            _dir: dir,
        }
    }

    /// A node joining through `seed` (HOST:PORT), listening on 0.0.0.0 and advertising
    /// `localhost:PORT`; returns its index.
    pub fn join_by_name(&mut self, id: u64, port: u16, seed: &str) -> usize {
        let data = self._dir.path().join(format!("node{id}"));
        let any: SocketAddr = format!("0.0.0.0:{port}").parse().expect("addr");
        let mut args = join_args(id, any, &data, seed);
        args.extend(["--advertise-addr".into(), format!("localhost:{port}")]);
        let mut node = Proc {
            id,
            addr: format!("127.0.0.1:{port}").parse().expect("addr"),
            data,
            args,
            env: Vec::new(),
            child: None,
        };
        node.spawn(&self.bin);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    pub fn restart(&mut self, i: usize) {
        let bin = self.bin.clone();
        let node = &mut self.nodes[i];
        node.kill9();
        node.spawn(&bin);
    }

    /// kill -9 node index `i` and start it again, same data directory, on `port`: `--listen`
    /// keeps its host, `--advertise-addr` (if given) its host name (a rescheduled pod).
    pub fn restart_on(&mut self, i: usize, port: u16) {
        let bin = self.bin.clone();
        let node = &mut self.nodes[i];
        node.kill9();
        let mut args = node.args.iter_mut();
        while let Some(arg) = args.next() {
            if (arg == "--listen" || arg == "--advertise-addr")
                && let Some(value) = args.next()
            {
                let host = value.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h).to_string();
                *value = format!("{host}:{port}");
            }
        }
        node.addr = format!("127.0.0.1:{port}").parse().expect("addr");
        node.spawn(&bin);
    }

    /// Every node's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("==== node {} ====\n{}", n.id, tail(&n.log(), 60)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until every running node answers /healthz with 200.
    pub async fn wait_healthy(&self, timeout: Duration) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            loop {
                let ok = http
                    .get(format!("http://{}/healthz", node.addr))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    panic!("node {} not healthy within {timeout:?}\n{}", node.id, self.logs());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The node that leads `shard` now, by asking a running node's `/status`.
    pub async fn leader_of(&self, shard: u32) -> Option<u64> {
        let http = reqwest::Client::new();
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let request = http
                .get(format!("http://{}/status", node.addr))
                .header("x-ivory-cluster-secret", CLUSTER_SECRET);
            let Ok(r) = request.send().await else {
                continue;
            };
            let Ok(status) = r.json::<Value>().await else { continue };
            let leader = status["shards"]
                .as_array()
                .and_then(|shards| shards.iter().find(|s| s["shard"] == shard))
                .and_then(|s| s["leader"].as_u64());
            if leader.is_some() {
                return leader;
            }
        }
        None
    }

    pub async fn client(&self, i: usize, environment: &str) -> Client {
        Client::connect(self.nodes[i].addr, environment).await
    }

    /// The index in `nodes` of node `id`.
    pub fn index_of(&self, id: u64) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Starts node `id` on a free port with `ivory node --join` through the running node `via`
    /// (with the same extra environment as the first node); returns its index.
    pub fn join(&mut self, id: u64, via: usize) -> usize {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        self.join_at(id, via, addr)
    }

    /// [`Cluster::join`] on a given address (registered beforehand with `cluster add-node`).
    pub fn join_at(&mut self, id: u64, via: usize, addr: SocketAddr) -> usize {
        self.join_with(id, via, addr, &[], &[])
    }

    /// [`Cluster::join_at`] with extra environment variables (e.g. another `IVORY_CLUSTER_SECRET`)
    /// and extra `ivory node` arguments (e.g. TLS files).
    pub fn join_with(
        &mut self,
        id: u64,
        via: usize,
        addr: SocketAddr,
        extra: &[(&str, &str)],
        extra_args: &[&str],
    ) -> usize {
        let data = self._dir.path().join(format!("node{id}"));
        let mut args = join_args(id, addr, &data, &self.nodes[via].addr.to_string());
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let mut node = Proc {
            id,
            addr,
            data,
            args,
            env: self.nodes.first().map(|n| n.env.clone()).unwrap_or_default(),
            child: None,
        };
        node.env
            .extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        node.spawn(&self.bin);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Runs the `ivory` CLI (e.g. `cluster status --endpoint ...`) with the cluster secret,
    /// killed after `timeout`.
    pub async fn cli(&self, args: &[&str], timeout: Duration) -> CliOutput {
        self.cli_with(args, Some(CLUSTER_SECRET), timeout).await
    }

    /// [`Cluster::cli`] with `IVORY_CLUSTER_SECRET` set to `secret`, or unset.
    pub async fn cli_with(&self, args: &[&str], secret: Option<&str>, timeout: Duration) -> CliOutput {
        let mut command = tokio::process::Command::new(&self.bin);
        match secret {
            Some(s) => command.env("IVORY_CLUSTER_SECRET", s),
            None => command.env_remove("IVORY_CLUSTER_SECRET"),
        };
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the ivory CLI starts");
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => CliOutput {
                success: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Ok(Err(e)) => panic!("ivory {args:?}: {e}"),
            Err(_) => panic!("ivory {args:?} did not finish within {timeout:?}"),
        }
    }

    /// `ivory cluster status --json` through node `via`; `None` when it fails (e.g. mid-election).
    pub async fn cluster_status(&self, via: usize) -> Option<Value> {
        let endpoint = self.nodes[via].addr.to_string();
        let mut args = vec!["cluster", "status", "--endpoint", &endpoint, "--json"];
        args.extend(self.cli_extra.iter().map(String::as_str));
        let out = self.cli(&args, Duration::from_secs(30)).await;
        if !out.success {
            return None;
        }
        serde_json::from_str(&out.stdout).ok()
    }

    /// Polls the cluster status through node `via` until `done` holds; panics with the last
    /// status and the logs after `timeout`.
    pub async fn wait_cluster(
        &self,
        via: usize,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        loop {
            if let Some(status) = self.cluster_status(via).await {
                if done(&status) {
                    return status;
                }
                last = status;
            }
            if Instant::now() > deadline {
                panic!("not {what} within {timeout:?}; last status: {last:#}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `GET /status` of node index `i`: its shards, their leaders and members.
    pub async fn node_status(&self, i: usize) -> Option<Value> {
        let url = format!("http://{}/status", self.nodes[i].addr);
        let r = reqwest::Client::new()
            .get(url)
            .header("x-ivory-cluster-secret", CLUSTER_SECRET)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct CliOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// A member's state in a `cluster status --json` document.
pub fn member_state(status: &Value, id: u64) -> Option<String> {
    status["members"]
        .as_array()?
        .iter()
        .find(|m| m["id"] == id)
        .and_then(|m| m["state"].as_str())
        .map(str::to_string)
}

/// Settled: no move in flight, every shard on its desired replicas, no node joining, and every
/// shard's Raft voters (as its leader reports them) equal to its placement, with no learner.
pub fn fully_settled(status: &Value) -> bool {
    let members_ok = status["members"]
        .as_array()
        .is_some_and(|ms| ms.iter().all(|m| m["state"] != "joining"));
    let shards_ok = status["shards"].as_array().is_some_and(|shards| {
        shards.iter().all(|s| {
            s["leader"].is_u64()
                && s["replicas"] == s["desired"]
                && s["voters"] == s["replicas"]
                && s["learners"].as_array().is_some_and(Vec::is_empty)
        })
    });
    status["settled"] == true && members_ok && shards_ok
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// An HTTP answer: status and JSON body (Null when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

/// A REST client of one node, holding a token for one environment.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub environment: String,
    pub token: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr, environment: &str) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("http client");
        let base = format!("http://{addr}");
        let answer = http
            .post(format!("{base}/token"))
            .json(&json!({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                          "client_secret": CLIENT_SECRET, "context": environment}))
            .send()
            .await
            .expect("token request");
        let body: Value = answer.json().await.expect("token JSON");
        let token = body["access_token"].as_str().expect("access_token").to_string();
        Client {
            http,
            base,
            environment: environment.to_string(),
            token,
        }
    }

    /// `/api/environment/{env}/{path}`.
    pub fn api(&self, path: &str) -> String {
        format!(
            "{}/api/environment/{}/{}",
            self.base,
            self.environment,
            path.trim_start_matches('/')
        )
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer, reqwest::Error> {
        let r = self
            .http
            .post(self.api(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        Ok(answer(r).await)
    }

    pub async fn get(&self, path_and_query: &str) -> Result<Answer, reqwest::Error> {
        let r = self
            .http
            .get(self.api(path_and_query))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok(answer(r).await)
    }

    /// `POST` that must succeed at the HTTP level (2xx); panics with the answer otherwise.
    pub async fn post_ok(&self, path: &str, body: &Value) -> Value {
        let a = self.post(path, body).await.expect("request sent");
        assert!((200..300).contains(&a.status), "POST {path} -> {} {}", a.status, a.body);
        a.body
    }
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    }
}

/// Sum of one measure over a query answer's records.
pub fn sum_measure(records: &Value, data_source: &str, measure: &str) -> f64 {
    records
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["quantities"][data_source][measure].as_f64())
                .sum()
        })
        .unwrap_or(0.0)
}
