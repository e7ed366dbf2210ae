//! `ivory restore --from DIR --data DIR`: a data directory from a backup (`crate::backup`).
//!
//! Everything is checked before anything is created: the manifest's format and version, that it
//! lists every shard and the metadata group, every file's size and sha256, and every snapshot's
//! own state hash. Then the data directory is built beside its final place and renamed into it:
//! each group's snapshot becomes the group's state with the new node as its only voter (its log
//! starts after the snapshot), and the cluster metadata names that node alone, holding every
//! shard (the backup's replication factor is kept, so nodes that join later get replicas).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use ivory_cluster::META_GROUP;
use ivory_node::StorageOptions;

use crate::backup::{BACKUP_FORMAT, BACKUP_FORMAT_VERSION, MANIFEST, Manifest, ensure_empty_dir, sha256_hex};

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup directory (written by `ivory backup`).
    #[arg(long)]
    from: PathBuf,
    /// The data directory to create (absent or empty); then `ivory serve --data DIR`.
    #[arg(long)]
    data: PathBuf,
    /// The node id the restored node runs as (`ivory serve` is node 1).
    #[arg(long, default_value_t = 1)]
    id: u64,
    /// The address (HOST:PORT) the restored node is recorded at: its --advertise-addr (or --listen).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = crate::parse_advertise)]
    advertise_addr: String,
}

/// A backup whose every byte was checked: group id -> snapshot bytes, and the manifest.
pub struct Verified {
    pub manifest: Manifest,
    pub groups: BTreeMap<u32, Vec<u8>>,
}

fn refuse(from: &Path, why: impl std::fmt::Display) -> String {
    format!("refusing the backup {}: {why}; nothing was restored", from.display())
}

/// Reads and checks a backup; any failure names the file and why.
pub fn verify(from: &Path) -> Result<Verified, String> {
    let manifest_path = from.join(MANIFEST);
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(from, format!("{MANIFEST} is missing (an incomplete backup)")));
        }
        Err(e) => return Err(refuse(from, format!("cannot read {MANIFEST}: {e}"))),
    };
    let head: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| refuse(from, format!("{MANIFEST} is not JSON: {e}")))?;
    if head["format"] != BACKUP_FORMAT {
        return Err(refuse(from, format!("{MANIFEST} is not an Ivory backup manifest")));
    }
    if head["formatVersion"] != BACKUP_FORMAT_VERSION {
        return Err(refuse(
            from,
            format!(
                "its format version {} is not one this ivory knows (it reads version {BACKUP_FORMAT_VERSION})",
                head["formatVersion"]
            ),
        ));
    }
    let manifest: Manifest =
        serde_json::from_value(head).map_err(|e| refuse(from, format!("{MANIFEST} is malformed: {e}")))?;
    for (name, entry) in &manifest.files {
        if name.contains("..") || Path::new(name).is_absolute() {
            return Err(refuse(
                from,
                format!("{MANIFEST} names a file outside the backup: {name}"),
            ));
        }
        let bytes = match std::fs::read(from.join(name)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(from, format!("{name} is missing (an incomplete backup)")));
            }
            Err(e) => return Err(refuse(from, format!("cannot read {name}: {e}"))),
        };
        if bytes.len() as u64 != entry.bytes || sha256_hex(&bytes) != entry.sha256 {
            return Err(refuse(
                from,
                format!("{name} does not match its checksum in {MANIFEST} (changed or damaged)"),
            ));
        }
    }
    let mut groups = BTreeMap::new();
    for entry in &manifest.groups {
        let group = if entry.group == "meta" {
            META_GROUP
        } else {
            entry
                .group
                .parse()
                .map_err(|_| refuse(from, format!("{MANIFEST} names an unknown group '{}'", entry.group)))?
        };
        if !manifest.files.contains_key(&entry.file) {
            return Err(refuse(
                from,
                format!("group {} has no checksum in {MANIFEST}", entry.group),
            ));
        }
        let bytes = std::fs::read(from.join(&entry.file)).map_err(|e| refuse(from, format!("{}: {e}", entry.file)))?;
        let info = ivory_raft::backup::describe_snapshot(&bytes)
            .map_err(|e| refuse(from, format!("{} is not a snapshot this ivory reads: {e}", entry.file)))?;
        if info.last_log_index != entry.last_log_index {
            return Err(refuse(
                from,
                format!("{} is not at the index the manifest says", entry.file),
            ));
        }
        groups.insert(group, bytes);
    }
    let missing: Vec<String> = (0..manifest.shard_count)
        .chain([META_GROUP])
        .filter(|g| !groups.contains_key(g))
        .map(|g| if g == META_GROUP { "meta".into() } else { g.to_string() })
        .collect();
    if !missing.is_empty() {
        return Err(refuse(
            from,
            format!("groups missing (an incomplete backup): {}", missing.join(", ")),
        ));
    }
    if groups.len() as u64 != u64::from(manifest.shard_count) + 1 {
        return Err(refuse(from, "it holds groups beyond its shard count"));
    }
    Ok(Verified { manifest, groups })
}

pub async fn run(args: RestoreArgs) -> Result<(), String> {
    if args.id == 0 {
        return Err("--id must be a positive integer".into());
    }
    let backup = verify(&args.from)?;
    ensure_empty_dir(&args.data, "--data")?;
    let name = args
        .data
        .file_name()
        .ok_or_else(|| format!("--data {} names no directory", args.data.display()))?;
    // Built beside its final place, then renamed: a failure leaves no half-made data directory.
    let building = args
        .data
        .with_file_name(format!("{}.restoring", name.to_string_lossy()));
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(|e| format!("cannot remove {}: {e}", building.display()))?;
    }
    let built = build(&building, &backup, args.id, &args.advertise_addr).await;
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&building);
        return Err(e);
    }
    if args.data.exists() {
        std::fs::remove_dir(&args.data).map_err(|e| format!("cannot replace {}: {e}", args.data.display()))?;
    }
    std::fs::rename(&building, &args.data)
        .map_err(|e| format!("cannot rename {} to {}: {e}", building.display(), args.data.display()))?;
    let parent = args
        .data
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", parent.display()))?;
    let m = &backup.manifest;
    println!(
        "restored {} shard(s) and the cluster metadata (backup of {} ms since the epoch) into {} as node {} at {}",
        m.shard_count,
        m.started_at_ms,
        args.data.display(),
        args.id,
        args.advertise_addr
    );
    println!(
        "start it with: ivory serve --data {} --shards {} --listen {}",
        args.data.display(),
        m.shard_count,
        args.advertise_addr
    );
    Ok(())
}

async fn build(dir: &Path, backup: &Verified, id: u64, addr: &str) -> Result<(), String> {
    ivory_raft::durable::create_dir_all_durable(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let layout = ivory_cluster::Layout::new(backup.manifest.shard_count);
    let meta_layout = backup
        .groups
        .get(&META_GROUP)
        .map(|bytes| ivory_raft::backup::describe_snapshot(bytes).map(|i| i.meta.layout))
        .transpose()
        .map_err(|e| e.to_string())?
        .flatten()
        .unwrap_or(layout);
    meta_layout
        .validate()
        .map_err(|e| format!("the backup's layout: {e}"))?;
    let text = serde_json::to_string_pretty(&meta_layout).map_err(|e| e.to_string())?;
    crate::files::write_atomic(&dir.join("layout.json"), text.as_bytes(), false)?;
    // A new cluster: the backed-up one may still run, and must not take this one's calls.
    crate::cluster_id::store(dir, &crate::cluster_id::random())?;
    let storage = ivory_raft::NodeStorage::open_async(dir.join("sled"), StorageOptions::default())
        .await
        .map_err(|e| format!("cannot create the storage in {}: {e}", dir.display()))?;
    for (group, bytes) in &backup.groups {
        storage
            .restore_group(*group, bytes, id, addr)
            .await
            .map_err(|e| format!("cannot restore group {group}: {e}"))?;
    }
    storage
        .set_bootstrapped()
        .await
        .map_err(|e| format!("cannot record the restored groups: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_manifest(dir: &Path, manifest: &serde_json::Value) {
        std::fs::write(dir.join(MANIFEST), manifest.to_string()).expect("write manifest");
    }

    #[test]
    fn a_manifest_of_an_unknown_format_version_or_kind_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = verify(dir.path()).err().expect("no manifest");
        assert!(err.contains("manifest.json is missing"), "{err}");
        let mut manifest = serde_json::json!({"format": BACKUP_FORMAT, "formatVersion": 2});
        write_manifest(dir.path(), &manifest);
        let err = verify(dir.path()).err().expect("version 2");
        assert!(
            err.contains("format version 2 is not one this ivory knows (it reads version 1)"),
            "{err}"
        );
        manifest["format"] = "something-else".into();
        write_manifest(dir.path(), &manifest);
        let err = verify(dir.path()).err().expect("not ours");
        assert!(err.contains("not an Ivory backup manifest"), "{err}");
    }

    #[test]
    fn a_manifest_naming_files_outside_the_backup_or_missing_groups_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut manifest = serde_json::json!({
            "format": BACKUP_FORMAT, "formatVersion": BACKUP_FORMAT_VERSION, "startedAtMs": 0,
            "finishedAtMs": 0, "shardCount": 1, "replication": 1, "placementVersion": 1, "groups": [],
            "files": {"../etc/passwd": {"sha256": "00", "bytes": 0}}});
        write_manifest(dir.path(), &manifest);
        let err = verify(dir.path()).err().expect("outside");
        assert!(err.contains("outside the backup"), "{err}");
        manifest["files"] = serde_json::json!({});
        write_manifest(dir.path(), &manifest);
        let err = verify(dir.path()).err().expect("incomplete");
        assert!(err.contains("groups missing (an incomplete backup): 0, meta"), "{err}");
    }
}
