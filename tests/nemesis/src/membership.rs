//! The membership-change nemesis: a node joins mid-traffic and is removed again, through the
//! operator commands (`ivory cluster add-node|remove-node|status`, `ivory node --join`). Off by
//! default until those commands exist (see [`crate::nemesis::MEMBERSHIP_READY`]).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::cluster::{Cluster, free_port};

/// Bounds one operator command (remove-node waits until the node is drained and removed).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `ivory cluster ...` and returns its stdout, or why it failed.
async fn ivory_cluster(bin: &Path, args: &[String]) -> Result<String, String> {
    let child = tokio::process::Command::new(bin)
        .arg("cluster")
        .args(args)
        .env("IVORY_CLUSTER_SECRET", ivory_tests::CLUSTER_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("ivory cluster {args:?}: {e}"))?;
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("ivory cluster {args:?}: no answer in {COMMAND_TIMEOUT:?}"))?
        .map_err(|e| format!("ivory cluster {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ivory cluster {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Registers node `id` (`ivory cluster add-node`), starts it with `--join`, waits until the
/// cluster has placed replicas on it (`status --wait`), lets it serve, removes it (the command
/// waits until it is drained and removed) and stops its process.
///
/// # Errors
/// The first command that failed.
pub async fn add_then_remove(cluster: &Arc<Mutex<Cluster>>, bin: &Path, id: u64, until: Instant) -> Result<(), String> {
    let endpoint = {
        let c = cluster.lock().await;
        c.nodes
            .iter()
            .find(|n| n.is_live())
            .map(|n| n.addr.to_string())
            .ok_or("no live node to send the commands to")?
    };
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?)
        .parse()
        .map_err(|e| format!("addr: {e}"))?;
    let result = async {
        ivory_cluster(
            bin,
            &[
                "add-node".into(),
                "--endpoint".into(),
                endpoint.clone(),
                "--id".into(),
                id.to_string(),
                "--address".into(),
                addr.to_string(),
            ],
        )
        .await?;
        cluster.lock().await.spawn_joining(id, addr, &endpoint)?;
        let wait = COMMAND_TIMEOUT.as_secs().saturating_sub(10).to_string();
        ivory_cluster(
            bin,
            &[
                "status".into(),
                "--endpoint".into(),
                endpoint.clone(),
                "--json".into(),
                "--wait".into(),
                "--timeout-secs".into(),
                wait.clone(),
            ],
        )
        .await?;
        let serve_for = Duration::from_secs(3).min(until.saturating_duration_since(Instant::now()));
        tokio::time::sleep(serve_for).await;
        ivory_cluster(
            bin,
            &[
                "remove-node".into(),
                "--endpoint".into(),
                endpoint.clone(),
                "--id".into(),
                id.to_string(),
                "--timeout-secs".into(),
                wait,
            ],
        )
        .await
        .map(|_| ())
    }
    .await;
    cluster.lock().await.stop_joining(id);
    result
}
