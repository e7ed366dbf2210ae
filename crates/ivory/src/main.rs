//! The one binary: `ivory serve` (one node), `ivory node` (a member of a cluster). It only wires:
//! the node (raft groups on sled, gRPC), the REST gateway, metrics and tracing.

mod backend;
mod backup;
mod cluster_cli;
mod cluster_id;
mod console;
mod credentials;
mod files;
mod restore;
mod secret;
mod server;
mod tls;

/// Requests allocate and free many small JSON values and keys; glibc's malloc spent about 30% of a
/// bulk run's CPU on them (perf), mimalloc's per-thread free lists do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use ivory_cluster::{Layout, SHARDS_DEFAULT, ShardRing};
use ivory_node::{JoinInfo, Node, NodeConfig, StorageOptions};
use tracing::{info, warn};

#[derive(Parser)]
#[command(
    name = "ivory",
    version,
    about = "Ivory: a distributed inventory reservation cluster with an IV-compatible REST API"
)]
struct Cli {
    /// Log lines as text (default) or one JSON object per line, for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "IVORY_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// One node holding every shard (replication factor 1): the embedded default.
    Serve(ServeArgs),
    /// One member of a multi-node cluster; any node answers any REST call.
    Node(NodeArgs),
    /// Operate a running cluster: status, add-node, remove-node.
    Cluster(cluster_cli::ClusterArgs),
    /// Copies a running cluster (every shard's snapshot, the metadata, a manifest with checksums).
    Backup(backup::BackupArgs),
    /// Builds a data directory from a backup, for `ivory serve` (or a new cluster's first node).
    Restore(restore::RestoreArgs),
}

#[derive(Args)]
struct Common {
    /// Where REST and gRPC listen (one port for both).
    #[arg(long, env = "IVORY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The address other nodes and the cluster record use for this node (HOST:PORT; HOST may be a
    /// DNS name): needed when --listen is 0.0.0.0 or behind a name. Default: --listen.
    #[arg(long, env = "IVORY_ADVERTISE_ADDR", value_parser = parse_advertise)]
    advertise_addr: Option<String>,
    /// The sled data directory.
    #[arg(long, env = "IVORY_DATA", default_value = "./ivory-data")]
    data: PathBuf,
    /// Shards (Raft groups); fixed when the cluster is created.
    #[arg(long, env = "IVORY_SHARDS", default_value_t = SHARDS_DEFAULT)]
    shards: u32,
    /// A configuration document in IV's JSON shape, the default for every environment.
    #[arg(long, env = "IVORY_CONFIG")]
    config: Option<PathBuf>,
    /// This node's certificate (PEM, the chain from the node's own first): with --tls-key the
    /// port speaks only TLS, REST and gRPC alike.
    #[arg(long, env = "IVORY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "IVORY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The CA that signs every node's certificate (PEM): nodes verify each other with it and
    /// show their own certificate when they call another node (mutual TLS).
    #[arg(long, env = "IVORY_TLS_CA", requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Requests this node handles at once (REST and the public gRPC API; not the cluster plane);
    /// past it 429 with Retry-After. Default: 64 per core.
    #[arg(long, env = "IVORY_MAX_REQUESTS_IN_FLIGHT")]
    max_requests_in_flight: Option<usize>,
    /// Seconds a client has to send a request's head; also the longest idle gap between two
    /// HTTP/1 requests on one connection. Slow or idle clients are disconnected after it.
    #[arg(long, env = "IVORY_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    header_read_timeout_secs: u64,
    /// Event-stream followers (`GET .../events`) per environment at once on this node.
    #[arg(long, env = "IVORY_MAX_EVENT_FOLLOWERS", default_value_t = ivory_gateway::limits::EVENT_FOLLOWERS_DEFAULT)]
    max_event_followers: usize,
    /// Group commit: microseconds a busy node lets writes gather before its next log fsync
    /// (never more than this after the last one began; a lone writer does not wait). 0 turns
    /// it off: lowest latency, more CPU per write under load.
    #[arg(long, env = "IVORY_GROUP_COMMIT_WINDOW_US", default_value_t = ivory_node::GROUP_COMMIT_WINDOW_DEFAULT.as_micros() as u64)]
    group_commit_window_us: u64,
    /// Tests only: serve `GET|POST /_test/fault` (drop or delay what this node sends to other
    /// nodes, slow its disk). Without it the route does not exist and nothing can be injected.
    #[arg(long)]
    enable_fault_injection: bool,
    /// A file holding the cluster secret (else IVORY_CLUSTER_SECRET; `ivory serve` creates
    /// DATA/cluster-secret when neither is given). Every node and operator of a cluster shares it.
    #[arg(long, env = "IVORY_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct NodeArgs {
    /// This node's id (a positive integer, never reused).
    #[arg(long, env = "IVORY_ID")]
    id: u64,
    /// Every member of a new cluster: `1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003`.
    #[arg(long, env = "IVORY_INITIAL_CLUSTER", value_parser = parse_members, required_unless_present = "join", conflicts_with = "join")]
    initial_cluster: Option<BTreeMap<u64, String>>,
    /// Join a running cluster through any member (HOST:PORT). Only the first start needs it:
    /// a restart finds the cluster in the data directory.
    #[arg(long, env = "IVORY_JOIN")]
    join: Option<String>,
    /// Replicas per shard (a new cluster's; joining nodes use the cluster's).
    #[arg(long, env = "IVORY_REPLICAS", default_value_t = 3)]
    replicas: usize,
    #[command(flatten)]
    common: Common,
}

fn parse_advertise(text: &str) -> Result<String, String> {
    ivory_cluster::check_member_addr(text.trim())?;
    Ok(text.trim().to_string())
}

impl Common {
    fn advertised(&self) -> String {
        self.advertise_addr.clone().unwrap_or_else(|| self.listen.to_string())
    }
}

fn parse_members(text: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut members = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not of the form ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().map_err(|_| format!("'{id}' is not a node id"))?;
        ivory_cluster::check_member_addr(addr.trim())?;
        if members.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if members.is_empty() {
        return Err("at least one member is required".into());
    }
    Ok(members)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // openraft warns at every first election of a fresh group; only its errors matter here.
                .unwrap_or_else(|_| "info,openraft=error,sled=warn,h2=warn,tower=warn".into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ivory: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                let members = BTreeMap::from([(1, args.common.advertised())]);
                match ivory_raft::durable::create_dir_all_durable(&args.common.data)
                    .map_err(|e| format!("cannot create {}: {e}", args.common.data.display()))
                    .and_then(|()| secret::for_serve(args.common.cluster_secret_file.as_deref(), &args.common.data))
                {
                    Ok(secret) => run(1, Membership::Bootstrap(members, 1), args.common, secret).await,
                    Err(e) => Err(e),
                }
            }
            Command::Node(args) => node_command(args).await,
            Command::Cluster(command) => cluster_cli::run(command).await,
            Command::Backup(args) => backup::run(args).await,
            Command::Restore(args) => restore::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ivory: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What a joined node keeps in its data directory, so that a restart needs no `--join`.
#[derive(serde::Serialize, serde::Deserialize)]
struct JoinedCluster {
    id: u64,
    shard_count: u32,
    replication: u32,
    members: BTreeMap<u64, String>,
    /// The seed's cluster id (absent in files from before cluster ids, or from a seed without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster_id: Option<String>,
}

async fn node_command(args: NodeArgs) -> Result<(), String> {
    if args.id == 0 {
        return Err("--id must be a positive integer".into());
    }
    let secret = secret::required(args.common.cluster_secret_file.as_deref())?;
    if args.common.tls_cert.is_some() && args.common.tls_ca.is_none() {
        return Err("ivory node with --tls-cert needs --tls-ca: nodes verify each other's certificates".into());
    }
    let client_tls = client_tls(&args.common)?;
    if let Some(initial) = &args.initial_cluster {
        let Some(own) = initial.get(&args.id) else {
            return Err(format!("--initial-cluster does not list this node's id {}", args.id));
        };
        if *own != args.common.advertised() {
            warn!(advertised = %args.common.advertised(), member = %own, "--advertise-addr (or --listen) differs from this node's --initial-cluster address");
        }
        return run(
            args.id,
            Membership::Bootstrap(initial.clone(), args.replicas),
            args.common,
            secret,
        )
        .await;
    }
    let seed = args.join.unwrap_or_default();
    ivory_raft::durable::create_dir_all_durable(&args.common.data)
        .map_err(|e| format!("cannot create {}: {e}", args.common.data.display()))?;
    let path = args.common.data.join("joined.json");
    let joined = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let joined: JoinedCluster =
                serde_json::from_str(&text).map_err(|e| format!("{} is not valid: {e}", path.display()))?;
            if joined.id != args.id {
                return Err(format!(
                    "{} belongs to node {}, not {}",
                    path.display(),
                    joined.id,
                    args.id
                ));
            }
            joined
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            files::refuse_if_lost(&path, &args.common.data)?;
            let info = ivory_node::join_cluster(
                &seed,
                args.id,
                &args.common.advertised(),
                secret.clone(),
                client_tls.as_ref(),
            )
            .await
            .map_err(|e| format!("cannot join through {seed}: {e}"))?;
            let joined = JoinedCluster {
                id: args.id,
                shard_count: info.shard_count,
                replication: info.replication,
                members: info.members,
                cluster_id: info.cluster_id,
            };
            let text = serde_json::to_string_pretty(&joined).map_err(|e| e.to_string())?;
            files::write_atomic(&path, text.as_bytes(), false)?;
            info!(
                node = args.id,
                seed,
                shards = joined.shard_count,
                "registered with the cluster"
            );
            joined
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut common = args.common;
    common.shards = joined.shard_count;
    let info = JoinInfo {
        shard_count: joined.shard_count,
        replication: joined.replication,
        members: joined.members,
        cluster_id: joined.cluster_id,
    };
    run(args.id, Membership::Join(info), common, secret).await
}

/// How this node calls the others: with a CA, over TLS showing its own certificate.
fn client_tls(common: &Common) -> Result<Option<tonic::transport::ClientTlsConfig>, String> {
    match (&common.tls_ca, &common.tls_cert, &common.tls_key) {
        (Some(ca), Some(cert), Some(key)) => Ok(Some(tls::client_config(ca, Some((cert, key)))?)),
        _ => Ok(None),
    }
}

/// How a node finds its cluster: it creates one with fixed members, or joined one.
enum Membership {
    Bootstrap(BTreeMap<u64, String>, usize),
    Join(JoinInfo),
}

/// The layout is fixed when a data directory is first used; a later start with another shard count
/// would move partitions between shards, so it is refused.
fn load_or_store_layout(data: &Path, shards: u32) -> Result<Layout, String> {
    let path = data.join("layout.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let layout: Layout =
                serde_json::from_str(&text).map_err(|e| format!("{} is not a valid layout: {e}", path.display()))?;
            layout.validate().map_err(|e| format!("{}: {e}", path.display()))?;
            if layout.shard_count != shards {
                return Err(format!(
                    "{} was created with {} shards; --shards {shards} would move partitions between shards",
                    data.display(),
                    layout.shard_count
                ));
            }
            Ok(layout)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            files::refuse_if_lost(&path, data)?;
            let layout = Layout::new(shards);
            layout.validate().map_err(|e| e.to_string())?;
            let text = serde_json::to_string_pretty(&layout).map_err(|e| e.to_string())?;
            files::write_atomic(&path, text.as_bytes(), false)?;
            Ok(layout)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

async fn run(
    id: u64,
    membership: Membership,
    common: Common,
    cluster_secret: Arc<ivory_node::ClusterSecret>,
) -> Result<(), String> {
    ivory_raft::durable::create_dir_all_durable(&common.data)
        .map_err(|e| format!("cannot create {}: {e}", common.data.display()))?;
    // The id is stored before the layout: a crash between the two leaves a data directory that is
    // still new, not one that looks older than cluster ids.
    let fresh = !common.data.join("layout.json").exists();
    let cluster_id = cluster_id::load_or_create(&common.data, fresh, || match &membership {
        // Initial members agree without talking; a cluster of one needs no agreement.
        Membership::Bootstrap(peers, replicas) if peers.len() > 1 => {
            Some(cluster_id::derive(peers, common.shards, *replicas))
        }
        Membership::Bootstrap(..) => Some(cluster_id::random()),
        Membership::Join(info) => info.cluster_id.clone(),
    })?;
    let layout = load_or_store_layout(&common.data, common.shards)?;
    let ring = ShardRing::new(&layout).map_err(|e| e.to_string())?;
    let default_config = match &common.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
            ivory_core::Config::from_json(&text).map_err(|e| format!("--config {}: {e}", path.display()))?;
            Some(text)
        }
        None => None,
    };
    let credentials = credentials::load_or_create(&common.data, common.listen)?;
    let server_tls = match (&common.tls_cert, &common.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(&tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: common.tls_ca.clone(),
        })?),
        _ => None,
    };
    let client_tls = client_tls(&common)?;

    let metrics = metrics_recorder()?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;

    let listener = tokio::net::TcpListener::bind(common.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", common.listen))?;
    let data_dir = common.data.join("sled");
    // A failed write or fsync ends the process (exit 74) before anything of it is acknowledged.
    let storage_options = StorageOptions {
        exit_on_failure: true,
        group_commit_window: std::time::Duration::from_micros(common.group_commit_window_us),
        ..StorageOptions::default()
    };
    let started = match membership {
        Membership::Bootstrap(mut peers, replicas) => {
            // A restart (the storage exists) with another --advertise-addr keeps the node's id: it
            // records that address in the cluster (ivory-node `spawn_address_announce`). A first
            // start keeps --initial-cluster as given, which every initial member must agree on;
            // without --advertise-addr the recorded address stays (--listen may be 0.0.0.0).
            if let Some(advertised) = &common.advertise_addr
                && common.data.join("sled").exists()
            {
                peers.insert(id, advertised.clone());
            }
            Node::start_with(
                NodeConfig {
                    id,
                    listen: common.listen,
                    data_dir,
                    peers,
                    shard_count: layout.shard_count,
                    replicas,
                    cluster_secret: cluster_secret.clone(),
                    client_tls,
                    cluster_id,
                },
                storage_options,
            )
            .await
        }
        Membership::Join(info) => {
            let mut cfg = NodeConfig::joining(id, common.listen, data_dir, &info, cluster_secret.clone(), client_tls);
            // The stored id wins over the seed's (the same, unless the file was edited).
            cfg.cluster_id = cluster_id;
            // Others dial the advertised address, not the (maybe 0.0.0.0) listen address.
            cfg.peers.insert(id, common.advertised());
            Node::start_joining(cfg, storage_options).await
        }
    };
    let node = started.map_err(|e| format!("cannot start node {id}: {e}"))?;

    let backend = Arc::new(backend::NodeBackend::new(node.clone(), ring));
    let gateway_config = ivory_gateway::GatewayConfig {
        metrics: Some(metrics),
        cluster_secret: Some(cluster_secret.clone()),
        event_followers_max: common.max_event_followers,
        ..credentials.gateway_config()
    };
    let status_node = node.clone();
    let status_secret = cluster_secret.clone();
    // Node gRPC routes first (a merge would clash on the routers' fallbacks).
    let app = node.grpc_router().route(
        "/status",
        // The cluster's shape is the operators' business: the cluster secret, as on the cluster plane.
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let answer = if ivory_gateway::auth::has_cluster_secret(Some(&status_secret), &headers) {
                axum::response::IntoResponse::into_response(axum::Json(status_json(&status_node)))
            } else {
                axum::response::IntoResponse::into_response(ivory_gateway::ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "auth.cluster_secret_required",
                    format!(
                        "GET /status needs the cluster secret (header {})",
                        ivory_gateway::auth::CLUSTER_SECRET_HEADER
                    ),
                ))
            };
            std::future::ready(answer)
        }),
    );
    let mut app = console::routes(app, node.clone(), cluster_secret.clone());
    if common.enable_fault_injection {
        warn!("fault injection is enabled (POST /_test/fault): for tests only");
        app = app.route("/_test/fault", fault_route(node.clone()));
    }
    // Then the public gRPC API, then REST: one bound on requests in flight for both (an
    // overloaded node refuses before any other work); the node's own gRPC routes are outside it.
    let in_flight_max = common
        .max_requests_in_flight
        .unwrap_or_else(ivory_gateway::limits::requests_in_flight_default);
    let app = app.fallback_service(ivory_gateway::api(backend.clone(), gateway_config, Some(in_flight_max)));
    if let Some(json) = default_config {
        tokio::spawn(backend::put_default_config(backend.clone(), json));
    }
    info!(node = id, listen = %common.listen, shards = layout.shard_count, "ivory is listening");

    let serve = server::serve(
        listener,
        app,
        std::time::Duration::from_secs(common.header_read_timeout_secs.max(1)),
        server_tls,
        shutdown_signal(),
    );
    let served = serve.await.map_err(|e| format!("server failed: {e}"));
    node.shutdown().await;
    served
}

/// Latencies measured in seconds, exported as histograms (`_bucket` series) so that a p99 can be
/// summed across nodes; buckets from 100 µs (an fsync on a fast disk) to 10 s (a stalled write).
pub(crate) const LATENCY_HISTOGRAMS: [&str; 3] = [
    "ivory_http_request_duration_seconds",
    "ivory_raft_apply_seconds",
    "ivory_raft_fsync_seconds",
];
pub(crate) const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn metrics_recorder() -> Result<metrics_exporter_prometheus::PrometheusBuilder, String> {
    let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new();
    for name in LATENCY_HISTOGRAMS {
        builder = builder
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(name.into()),
                &LATENCY_BUCKETS,
            )
            .map_err(|e| format!("metrics buckets for {name}: {e}"))?;
    }
    Ok(builder)
}

/// `GET /_test/fault`: the faults set; `POST /_test/fault` with a [`ivory_node::FaultSettings`]
/// (`{"drop": ["127.0.0.1:7002"], "delayMs": 50, "slowDiskMs": 20}`, every field optional) replaces
/// them all; `{}` heals. Only with `--enable-fault-injection`.
fn fault_route(node: ivory_node::Node) -> axum::routing::MethodRouter {
    let get_node = node.clone();
    axum::routing::get(move || std::future::ready(axum::Json(get_node.faults()))).post(
        move |body: Result<axum::Json<ivory_node::FaultSettings>, axum::extract::rejection::JsonRejection>| {
            let answer = match body {
                Ok(axum::Json(faults)) => {
                    info!(?faults, "fault injection");
                    node.set_faults(faults);
                    axum::response::IntoResponse::into_response(axum::Json(node.faults()))
                }
                Err(e) => axum::response::IntoResponse::into_response((
                    axum::http::StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({"code": "body.malformed", "message": e.body_text()})),
                )),
            };
            std::future::ready(answer)
        },
    )
}

/// `GET /status`: this node's view of its shards, for operators and tests.
fn status_json(node: &Node) -> serde_json::Value {
    let shards: Vec<serde_json::Value> = node
        .shard_status()
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "shard": s.shard, "leader": s.leader, "isLeader": s.is_leader,
                "lastApplied": s.last_applied, "voters": s.voters, "learners": s.learners,
            })
        })
        .collect();
    let meta = node
        .meta_status()
        .map(|s| serde_json::json!({"leader": s.leader, "voters": s.voters, "learners": s.learners}));
    let version = node.placement_version();
    serde_json::json!({ "node": node.id(), "shards": shards, "placementVersion": version, "meta": meta })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_and_refuse_garbage() {
        let m = parse_members("1=127.0.0.1:7001, 2=127.0.0.1:7002").unwrap();
        assert_eq!(m[&2], "127.0.0.1:7002");
        assert!(parse_members("1=nowhere").is_err());
        assert_eq!(parse_members("1=ivory-0.ivory:7001").unwrap()[&1], "ivory-0.ivory:7001");
        assert!(parse_members("x=127.0.0.1:1").is_err());
        assert!(parse_members("1=127.0.0.1:1,1=127.0.0.1:2").is_err());
    }

    #[test]
    fn a_data_dir_keeps_its_shard_count() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_or_store_layout(dir.path(), 8).unwrap().shard_count, 8);
        assert!(
            load_or_store_layout(dir.path(), 16)
                .unwrap_err()
                .contains("created with 8 shards")
        );
        assert_eq!(load_or_store_layout(dir.path(), 8).unwrap().shard_count, 8);
    }

    #[test]
    fn a_torn_or_lost_layout_is_refused_by_name_never_re_created() {
        let dir = tempfile::tempdir().unwrap();
        load_or_store_layout(dir.path(), 8).unwrap();
        std::fs::create_dir(dir.path().join("sled")).unwrap();
        let path = dir.path().join("layout.json");
        let text = std::fs::read(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        let err = load_or_store_layout(dir.path(), 8).unwrap_err();
        assert!(err.contains("layout.json is not a valid layout"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), &text[..text.len() / 2], "left as found");
        std::fs::remove_file(&path).unwrap();
        let err = load_or_store_layout(dir.path(), 8).unwrap_err();
        assert!(err.contains("layout.json is missing"), "{err}");
        assert!(!path.exists());
    }
}
