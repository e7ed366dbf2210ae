//! `ivory cluster ...`: operator commands over the nodes' `Cluster` gRPC service.

use std::time::{Duration, Instant};

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ivory_node::auth::ClusterToken;
use ivory_node::proto;
use ivory_node::proto::cluster_client::ClusterClient;
use serde_json::{Value, json};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Every call carries a token signed with the cluster secret.
pub(crate) type Client = ClusterClient<InterceptedService<Channel, ClusterToken>>;

#[derive(Args)]
pub struct ClusterArgs {
    /// A file holding the cluster secret (else IVORY_CLUSTER_SECRET): required.
    #[arg(long, global = true)]
    cluster_secret_file: Option<PathBuf>,
    /// The CA of a cluster that speaks TLS (PEM): the CLI connects with https and verifies the
    /// node's certificate with it.
    #[arg(long, global = true)]
    tls_ca: Option<PathBuf>,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Members, shards with their leader, replicas and lag, and the moves in flight.
    Status {
        /// Any member's address (HOST:PORT, the port REST and gRPC share).
        #[arg(long)]
        endpoint: String,
        /// One JSON document instead of tables.
        #[arg(long)]
        json: bool,
        /// Keep watching until no node is joining and every shard sits on its desired replicas.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds (exit 1).
        #[arg(long, default_value_t = 900)]
        timeout_secs: u64,
    },
    /// Registers a node; then start it with `ivory node --id ID --listen ADDRESS --join ENDPOINT`.
    AddNode {
        #[arg(long)]
        endpoint: String,
        /// The new node's id: a positive integer never used in this cluster before.
        #[arg(long)]
        id: u64,
        /// Where the new node will listen (HOST:PORT).
        #[arg(long)]
        address: String,
    },
    /// Drains a node (its replicas and leaderships move away), then removes it. Refused when
    /// the rest could not hold every shard at its replication factor with a live quorum.
    RemoveNode {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        id: u64,
        /// Return once draining started instead of waiting for the removal.
        #[arg(long)]
        no_wait: bool,
        #[arg(long, default_value_t = 1800)]
        timeout_secs: u64,
    },
}

/// Writes to stdout; a closed pipe (`| head`) ends the output quietly instead of panicking.
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

async fn connect(
    endpoint: &str,
    token: &ClusterToken,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Result<Client, String> {
    connect_with(endpoint, token, tls, Duration::from_secs(30)).await
}

/// [`connect`] with another bound on each call.
pub(crate) async fn connect_with(
    endpoint: &str,
    token: &ClusterToken,
    tls: Option<&tonic::transport::ClientTlsConfig>,
    call_timeout: Duration,
) -> Result<Client, String> {
    let address = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    let channel = ivory_node::network::endpoint(address, tls)
        .map_err(|e| format!("bad endpoint {endpoint}: {e}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(call_timeout)
        .connect()
        .await
        .map_err(|e| format!("cannot reach {endpoint}: {e}"))?;
    Ok(ClusterClient::with_interceptor(channel, token.clone()))
}

pub(crate) fn error_text(e: &proto::Error) -> String {
    if e.code == "cluster.refused" {
        format!("refused: {}", e.message)
    } else {
        format!("{} ({})", e.message, e.code)
    }
}

/// A refused credential gets the same clear message whatever the command.
pub(crate) fn call_error(what: &str, e: &tonic::Status) -> String {
    if e.code() == tonic::Code::Unauthenticated {
        format!(
            "{what} refused: {} (IVORY_CLUSTER_SECRET or --cluster-secret-file must hold this cluster's secret)",
            e.message()
        )
    } else {
        format!("{what} failed: {}", e.message())
    }
}

async fn status(client: &mut Client) -> Result<proto::ClusterStatusReply, String> {
    let reply = client
        .status(proto::ClusterStatusRequest {})
        .await
        .map_err(|e| call_error("status", &e))?
        .into_inner();
    match &reply.error {
        Some(e) => Err(error_text(e)),
        None => Ok(reply),
    }
}

pub async fn run(args: ClusterArgs) -> Result<(), String> {
    // Refused before any connection: nothing to try without the secret.
    let token = ClusterToken::new(crate::secret::required(args.cluster_secret_file.as_deref())?);
    let tls = match &args.tls_ca {
        Some(ca) => Some(crate::tls::client_config(ca, None)?),
        None => None,
    };
    let tls = tls.as_ref();
    match args.command {
        ClusterCommand::Status {
            endpoint,
            json,
            wait,
            timeout_secs,
        } => {
            let mut client = connect(&endpoint, &token, tls).await?;
            let mut reply = status(&mut client).await?;
            if wait {
                // A node registered but not yet running counts as unsettled: it is about to take replicas.
                let settled =
                    |r: &proto::ClusterStatusReply| r.settled && r.members.iter().all(|m| m.state != "joining");
                reply = wait_until(&mut client, timeout_secs, "settled", settled).await?;
            }
            if json {
                let text = serde_json::to_string_pretty(&status_json(&reply)).unwrap_or_default();
                out(&format!("{text}\n"));
            } else {
                out(&status_table(&reply));
            }
            Ok(())
        }
        ClusterCommand::AddNode { endpoint, id, address } => {
            let mut client = connect(&endpoint, &token, tls).await?;
            let reply = client
                .add_node(proto::JoinRequest {
                    node_id: id,
                    addr: address.clone(),
                })
                .await
                .map_err(|e| call_error("add-node", &e))?
                .into_inner();
            if let Some(e) = reply.error {
                return Err(error_text(&e));
            }
            out(&format!("{}\n", reply.message));
            out(&format!(
                "start it with: ivory node --id {id} --listen {address} --data DIR --join {endpoint}\n"
            ));
            Ok(())
        }
        ClusterCommand::RemoveNode {
            endpoint,
            id,
            no_wait,
            timeout_secs,
        } => {
            let mut client = connect(&endpoint, &token, tls).await?;
            let reply = client
                .remove_node(proto::RemoveNodeRequest { node_id: id })
                .await
                .map_err(|e| call_error("remove-node", &e))?
                .into_inner();
            if let Some(e) = reply.error {
                return Err(error_text(&e));
            }
            out(&format!("{}\n", reply.message));
            if no_wait {
                return Ok(());
            }
            let removed = |r: &proto::ClusterStatusReply| r.members.iter().any(|m| m.id == id && m.state == "removed");
            let reply = wait_until(&mut client, timeout_secs, &format!("node {id} removed"), removed).await?;
            out(&status_table(&reply));
            out(&format!(
                "node {id} is removed: stop its process and delete its data directory\n"
            ));
            Ok(())
        }
    }
}

/// Polls the status every second with a progress line until `done`, or fails after the timeout.
async fn wait_until(
    client: &mut Client,
    timeout_secs: u64,
    what: &str,
    done: impl Fn(&proto::ClusterStatusReply) -> bool,
) -> Result<proto::ClusterStatusReply, String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(timeout_secs);
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(200));
    loop {
        // A node may be mid-election or mid-restart: a failed poll is retried until the deadline.
        match status(client).await {
            Ok(reply) if done(&reply) => {
                spinner.finish_and_clear();
                eprintln!("{what} after {:.1} s", started.elapsed().as_secs_f64());
                return Ok(reply);
            }
            Ok(reply) => {
                let off = reply.shards.iter().filter(|s| s.replicas != s.desired).count();
                spinner.set_message(format!(
                    "waiting until {what}: {} move(s) in flight, {off} shard(s) off their desired replicas, \
                     placement version {}",
                    reply.moves.len(),
                    reply.placement_version
                ));
            }
            Err(e) => spinner.set_message(format!("waiting until {what}: {e}")),
        }
        if Instant::now() >= deadline {
            spinner.finish_and_clear();
            return Err(format!("not {what} after {timeout_secs} s"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn ids(list: &[u64]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    }
}

fn max_lag(lag: &[proto::ReplicaLag]) -> u64 {
    lag.iter().map(|l| l.entries).max().unwrap_or(0)
}

pub fn status_table(r: &proto::ClusterStatusReply) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster {}: {} shards, replication {}, placement version {}, metadata leader {}, {}",
        if r.cluster_id.is_empty() {
            "(no id)"
        } else {
            &r.cluster_id
        },
        r.shard_count,
        r.replication,
        r.placement_version,
        r.meta_leader.map_or("none".to_string(), |l| l.to_string()),
        if r.settled {
            "settled".to_string()
        } else {
            format!("rebalancing ({} move(s) in flight)", r.moves.len())
        }
    );
    let _ = writeln!(
        out,
        "\n{:<6} {:<22} {:<9} {:<9} {:>8} {:>8}",
        "NODE", "ADDRESS", "STATE", "REACHABLE", "REPLICAS", "LEADERS"
    );
    for m in &r.members {
        let _ = writeln!(
            out,
            "{:<6} {:<22} {:<9} {:<9} {:>8} {:>8}",
            m.id,
            m.addr,
            m.state,
            if m.reachable { "yes" } else { "no" },
            m.replicas,
            m.leaders
        );
    }
    let _ = writeln!(
        out,
        "\n{:<6} {:<7} {:<12} {:<12} {:<12} {:<9} {:>7}",
        "SHARD", "LEADER", "REPLICAS", "DESIRED", "VOTERS", "LEARNERS", "MAX LAG"
    );
    for s in &r.shards {
        let _ = writeln!(
            out,
            "{:<6} {:<7} {:<12} {:<12} {:<12} {:<9} {:>7}",
            s.shard,
            s.leader.map_or("-".to_string(), |l| l.to_string()),
            ids(&s.replicas),
            ids(&s.desired),
            ids(&s.voters),
            ids(&s.learners),
            max_lag(&s.lag)
        );
    }
    if !r.moves.is_empty() {
        let _ = writeln!(out, "\nMOVES IN FLIGHT");
        for m in &r.moves {
            let _ = writeln!(
                out,
                "shard {}: add {}, remove {}",
                m.shard,
                m.add.map_or("-".to_string(), |n| n.to_string()),
                m.remove.map_or("-".to_string(), |n| n.to_string())
            );
        }
    }
    out
}

pub fn status_json(r: &proto::ClusterStatusReply) -> Value {
    let lag = |lag: &[proto::ReplicaLag]| -> Value {
        lag.iter()
            .map(|l| (l.node_id.to_string(), json!(l.entries)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        "placementVersion": r.placement_version,
        "shardCount": r.shard_count,
        "replication": r.replication,
        "hashScheme": r.hash_scheme,
        "clusterId": r.cluster_id,
        "metaLeader": r.meta_leader,
        "settled": r.settled,
        "members": r.members.iter().map(|m| json!({
            "id": m.id, "addr": m.addr, "state": m.state, "reachable": m.reachable,
            "replicas": m.replicas, "leaders": m.leaders,
        })).collect::<Vec<_>>(),
        "shards": r.shards.iter().map(|s| json!({
            "shard": s.shard, "leader": s.leader, "replicas": s.replicas, "desired": s.desired,
            "voters": s.voters, "learners": s.learners, "lag": lag(&s.lag),
        })).collect::<Vec<_>>(),
        "moves": r.moves.iter().map(|m| json!({"shard": m.shard, "add": m.add, "remove": m.remove})).collect::<Vec<_>>(),
    })
}
