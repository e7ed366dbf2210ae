//! `ivory backup --endpoint ADDR --out DIR`: a consistent copy of a running cluster.
//!
//! Every group (each shard, and the metadata group) is asked for its snapshot through any member
//! (`Cluster.Backup`): the group's leader confirms its leadership, waits until it applied its
//! commit index, and hands over a snapshot at or after it, so each group's copy holds every write
//! acknowledged before the backup began. Groups are copied one after the other while traffic
//! flows; each one's log index is in the manifest. The manifest is written last: a directory
//! without one is an incomplete backup, and `ivory restore` refuses it.
//!
//! ```text
//! DIR/manifest.json            format, format version, per-file sha256 and size, per-group index
//! DIR/groups/shard-0000.snapshot  ... one per shard, as the leader stored it
//! DIR/groups/meta.snapshot     the metadata group's (members, placement, layout)
//! DIR/metadata.json            the cluster metadata as JSON (for people; restore uses the snapshot)
//! DIR/configuration.json       the configuration documents by environment (likewise)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use ivory_cluster::META_GROUP;
use ivory_node::auth::ClusterToken;
use ivory_node::proto;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cluster_cli::{call_error, connect_with, error_text};

/// The manifest's format; `ivory restore` refuses any other.
pub const BACKUP_FORMAT: &str = "ivory-backup";
pub const BACKUP_FORMAT_VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";

/// How long one group may take (its leader may be moving, its snapshot large).
const GROUP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Args)]
pub struct BackupArgs {
    /// Any member's address (HOST:PORT, the port REST and gRPC share).
    #[arg(long)]
    endpoint: String,
    /// A new (or empty) directory for the backup.
    #[arg(long)]
    out: PathBuf,
    /// A file holding the cluster secret (else IVORY_CLUSTER_SECRET): required.
    #[arg(long)]
    cluster_secret_file: Option<PathBuf>,
    /// The CA of a cluster that speaks TLS (PEM).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
}

/// One group in the manifest.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct GroupEntry {
    /// The shard id, or `"meta"` for the metadata group.
    pub group: String,
    pub file: String,
    /// The last log entry the snapshot includes.
    pub last_log_index: Option<u64>,
    pub last_log_term: u64,
    /// The leader's commit index when asked: every write acknowledged before is at or below it.
    pub read_index: u64,
    pub taken_by: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct FileEntry {
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// When the backup began and ended (ms since the Unix epoch): every write acknowledged before
    /// `started_at_ms` is in it.
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
    pub shard_count: u32,
    pub replication: u32,
    pub placement_version: u64,
    pub groups: Vec<GroupEntry>,
    /// Every file of the backup but the manifest, by path relative to the backup directory.
    pub files: BTreeMap<String, FileEntry>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn pretty<T: Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| format!("cannot encode JSON: {e}"))
}

fn now_ms() -> u64 {
    ivory_raft::now_ms()
}

/// A directory that may receive a backup or a data directory: absent or empty.
pub fn ensure_empty_dir(dir: &Path, what: &str) -> Result<(), String> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(format!(
                "{what} {} is not empty: refusing to overwrite it",
                dir.display()
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot read {what} {}: {e}", dir.display())),
    }
}

/// The file name of a group's snapshot inside the backup.
fn group_file(group: u32) -> String {
    if group == META_GROUP {
        "groups/meta.snapshot".into()
    } else {
        format!("groups/shard-{group:04}.snapshot")
    }
}

fn group_name(group: u32) -> String {
    if group == META_GROUP {
        "meta".into()
    } else {
        group.to_string()
    }
}

/// Asks for one group's snapshot until it comes or [`GROUP_TIMEOUT`] passes (leaders move).
async fn fetch_group(client: &mut crate::cluster_cli::Client, group: u32) -> Result<ivory_node::GroupBackup, String> {
    let deadline = Instant::now() + GROUP_TIMEOUT;
    loop {
        let outcome = match client.backup(proto::BackupRequest { group_id: group }).await {
            Ok(stream) => match ivory_node::collect_backup(group, stream.into_inner()).await {
                Ok(backup) => return Ok(backup),
                Err(e) if !e.is_retryable() => return Err(format!("group {}: {e}", group_name(group))),
                Err(e) => e.to_string(),
            },
            // Only a node that is down or busy is worth asking again; a refusal is final.
            Err(e) if !matches!(e.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) => {
                return Err(call_error("backup", &e));
            }
            Err(e) => call_error("backup", &e),
        };
        if Instant::now() >= deadline {
            return Err(format!("group {}: {outcome}", group_name(group)));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

struct Writer {
    out: PathBuf,
    files: BTreeMap<String, FileEntry>,
}

impl Writer {
    fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let path = self.out.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        crate::files::write_atomic(&path, bytes, false)?;
        self.files.insert(
            name.to_string(),
            FileEntry {
                sha256: sha256_hex(bytes),
                bytes: bytes.len() as u64,
            },
        );
        Ok(())
    }
}

pub async fn run(args: BackupArgs) -> Result<(), String> {
    let token = ClusterToken::new(crate::secret::required(args.cluster_secret_file.as_deref())?);
    let tls = match &args.tls_ca {
        Some(ca) => Some(crate::tls::client_config(ca, None)?),
        None => None,
    };
    ensure_empty_dir(&args.out, "--out")?;
    let mut client = connect_with(&args.endpoint, &token, tls.as_ref(), GROUP_TIMEOUT).await?;
    let started_at_ms = now_ms();
    let status = client
        .status(proto::ClusterStatusRequest {})
        .await
        .map_err(|e| call_error("status", &e))?
        .into_inner();
    if let Some(e) = &status.error {
        return Err(error_text(e));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let mut writer = Writer {
        out: args.out.clone(),
        files: BTreeMap::new(),
    };
    let mut groups = Vec::new();
    let mut configuration: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut metadata = None;
    for group in (0..status.shard_count).chain([META_GROUP]) {
        let reply = fetch_group(&mut client, group).await?;
        let info = ivory_raft::backup::describe_snapshot(&reply.snapshot)
            .map_err(|e| format!("group {}: the snapshot received is not valid: {e}", group_name(group)))?;
        if info.last_log_index.unwrap_or(0) < reply.read_index {
            return Err(format!(
                "group {}: the snapshot ends at index {:?}, before the commit index {} it must hold",
                group_name(group),
                info.last_log_index,
                reply.read_index
            ));
        }
        for (environment, document) in info.shard.config_documents() {
            let parsed = serde_json::from_str(document).unwrap_or_else(|_| serde_json::Value::String(document.clone()));
            configuration.entry(environment.clone()).or_insert(parsed);
        }
        if group == META_GROUP {
            metadata = Some(info.meta.clone());
        }
        let file = group_file(group);
        writer.write(&file, &reply.snapshot)?;
        eprintln!(
            "group {:>4}: index {:>8} ({} bytes, from node {})",
            group_name(group),
            info.last_log_index.unwrap_or(0),
            reply.snapshot.len(),
            reply.node_id
        );
        groups.push(GroupEntry {
            group: group_name(group),
            file,
            last_log_index: info.last_log_index,
            last_log_term: info.last_log_term,
            read_index: reply.read_index,
            taken_by: reply.node_id,
        });
    }
    let metadata = metadata.ok_or("the metadata group was not copied")?;
    if metadata.shard_count() != status.shard_count {
        return Err(format!(
            "the metadata names {} shards but the cluster status {}",
            metadata.shard_count(),
            status.shard_count
        ));
    }
    writer.write("metadata.json", pretty(&metadata)?.as_bytes())?;
    writer.write("configuration.json", pretty(&configuration)?.as_bytes())?;
    let manifest = Manifest {
        format: BACKUP_FORMAT.into(),
        format_version: BACKUP_FORMAT_VERSION,
        started_at_ms,
        finished_at_ms: now_ms(),
        shard_count: status.shard_count,
        replication: status.replication,
        placement_version: metadata.version,
        groups,
        files: writer.files,
    };
    crate::files::write_atomic(&args.out.join(MANIFEST), pretty(&manifest)?.as_bytes(), false)?;
    println!(
        "backup of {} shard(s) and the cluster metadata written to {} ({})",
        status.shard_count,
        args.out.display(),
        MANIFEST
    );
    Ok(())
}
