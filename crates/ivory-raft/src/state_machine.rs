//! `RaftStateMachine`: the shard's state lives in memory ([`ivory_core::Shard`]); it is persisted
//! through snapshots stored in `g{id}.sm`. After a restart the shard is restored from the stored
//! snapshot and openraft re-applies the committed log after it.

use std::io;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use futures::{Stream, TryStreamExt};
use ivory_cluster::ClusterMeta;
use ivory_core::{EVENT_RETENTION_MS_DEFAULT, Shard};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::log_store::{decode, encode};
use crate::snapshot_store::SnapshotStore;
use crate::storage::Flusher;
use crate::{GroupEntry, GroupId, GroupReply, TypeConfig, io_err};

/// The shard state, shared between the state machine task (writer) and the read path.
pub type SharedShard = Arc<RwLock<Shard>>;
/// The cluster metadata of the metadata group (empty in shard groups), shared with the node.
pub type SharedMeta = Arc<RwLock<ClusterMeta>>;

/// A hash chain over every applied batch (`h = sha256(h || index || batch)`): replicas that
/// applied the same entries in the same order hold the same digest. Carried in snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyDigest {
    /// Index of the last log entry folded into `digest`.
    pub index: Option<u64>,
    pub digest: [u8; 32],
}

pub type SharedDigest = Arc<Mutex<ApplyDigest>>;

/// The group's Raft handle, set once the group runs, so that the state machine can ask for a
/// snapshot when enough work was applied since the last one.
pub type SnapshotTrigger = Arc<OnceLock<crate::Raft>>;

/// What a snapshot's data holds: the shard's deterministic bytes, checked by hash on install, and
/// the cluster metadata (only the metadata group has any).
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotPayload {
    state_hash: [u8; 32],
    apply_digest: ApplyDigest,
    shard: Vec<u8>,
    pub(crate) meta: ClusterMeta,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    pub(crate) meta: SnapshotMetaOf<TypeConfig>,
    pub(crate) data: Vec<u8>,
}

pub struct ShardStateMachine {
    group: GroupId,
    shard: SharedShard,
    meta: SharedMeta,
    digest: SharedDigest,
    applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    tree: sled::Tree,
    snapshots: SnapshotStore,
    flusher: Flusher,
    trigger: SnapshotTrigger,
    commands_since_snapshot: u64,
    log_bytes_since_snapshot: u64,
    snapshot_requested: bool,
    /// `ivory_state_event_ids{tree}` and `ivory_state_holds{tree}`: what the bounds of DESIGN.md
    /// §3 keep flat, set after every apply.
    event_ids_gauge: metrics::Gauge,
    holds_gauge: metrics::Gauge,
    /// `ivory_raft_apply_seconds`, taken once: looking it up in the registry for every entry cost
    /// more than the recording.
    apply_seconds: metrics::Histogram,
    /// Dropped with this state machine; see [`ShardStateMachine::alive`].
    alive: tokio::sync::watch::Sender<()>,
}

fn poisoned() -> io::Error {
    io_err("shard lock poisoned")
}

impl ShardStateMachine {
    pub(crate) fn open(
        group: GroupId,
        tree: sled::Tree,
        snapshots: SnapshotStore,
        flusher: Flusher,
    ) -> io::Result<ShardStateMachine> {
        let stored: Option<StoredSnapshot> = match snapshots.get()? {
            Some(bytes) => Some(decode(&bytes)?),
            None => None,
        };
        let name = String::from_utf8_lossy(&tree.name()).into_owned();
        let event_ids_gauge = metrics::gauge!("ivory_state_event_ids", "tree" => name.clone());
        let holds_gauge = metrics::gauge!("ivory_state_holds", "tree" => name);
        let mut sm = ShardStateMachine {
            group,
            shard: Arc::new(RwLock::new(Shard::new(EVENT_RETENTION_MS_DEFAULT))),
            meta: Arc::default(),
            digest: Arc::default(),
            applied: None,
            membership: Default::default(),
            tree,
            snapshots,
            flusher,
            trigger: Arc::default(),
            commands_since_snapshot: 0,
            log_bytes_since_snapshot: 0,
            snapshot_requested: false,
            event_ids_gauge,
            holds_gauge,
            apply_seconds: metrics::histogram!("ivory_raft_apply_seconds"),
            alive: tokio::sync::watch::Sender::new(()),
        };
        if let Some(stored) = stored {
            sm.load(&stored)?;
        }
        Ok(sm)
    }

    /// The shard state, for reads. Readers must first pass openraft's read-index check.
    pub fn shard(&self) -> SharedShard {
        self.shard.clone()
    }

    /// The cluster metadata (the metadata group's state; empty elsewhere).
    pub fn meta(&self) -> SharedMeta {
        self.meta.clone()
    }

    /// A receiver whose `changed()` fails once this state machine is dropped. openraft's
    /// state-machine worker owns it and may still apply queued entries after `Raft::shutdown`
    /// returns (the worker is not joined), reading them from the group's log: a group's storage
    /// may go only after that.
    pub fn alive(&self) -> tokio::sync::watch::Receiver<()> {
        self.alive.subscribe()
    }

    /// Where the node puts the group's Raft handle once it runs.
    pub fn snapshot_trigger(&self) -> SnapshotTrigger {
        self.trigger.clone()
    }

    fn note_applied(&mut self, commands: usize, log_bytes: usize) {
        if let Ok(shard) = self.shard.read() {
            self.event_ids_gauge.set(shard.remembered_events() as f64);
            self.holds_gauge.set(shard.hold_count() as f64);
        }
        self.commands_since_snapshot += commands as u64;
        self.log_bytes_since_snapshot += log_bytes as u64;
        let due = self.commands_since_snapshot >= crate::snapshot_commands_since_last()
            || self.log_bytes_since_snapshot >= crate::SNAPSHOT_LOG_BYTES_SINCE_LAST;
        if due
            && !self.snapshot_requested
            && let Some(raft) = self.trigger.get()
        {
            self.snapshot_requested = true;
            let raft = raft.clone();
            // Never await Raft from inside apply: Raft may be waiting on this very task.
            tokio::spawn(async move {
                if let Err(e) = raft.trigger().snapshot().await {
                    tracing::warn!(error = %e, "snapshot request failed");
                }
            });
        }
    }

    /// The apply digest, for tests and tools comparing replicas.
    pub fn digest(&self) -> SharedDigest {
        self.digest.clone()
    }

    fn load(&mut self, stored: &StoredSnapshot) -> io::Result<()> {
        let (shard, payload) = verified(&stored.data)?;
        self.load_verified(stored, shard, payload)
    }

    fn load_verified(&mut self, stored: &StoredSnapshot, shard: Shard, payload: SnapshotPayload) -> io::Result<()> {
        *self.shard.write().map_err(|_| poisoned())? = shard;
        *self.meta.write().map_err(|_| poisoned())? = payload.meta;
        *self.digest.lock().map_err(|_| poisoned())? = payload.apply_digest;
        self.applied = stored.meta.last_log_id;
        self.membership = stored.meta.last_membership.clone();
        Ok(())
    }
}

/// A snapshot over this size is logged as a warning: a replica refuses one over 1 GiB
/// (`SNAPSHOT_RECEIVE_MAX_BYTES` of ivory-node) and could no longer catch up.
pub const SNAPSHOT_WARN_BYTES: usize = 512 << 20;

/// Records the size of a group's new snapshot (`ivory_snapshot_bytes{tree}`), warning near the limit.
fn note_snapshot_size(tree: &sled::Tree, bytes: usize) {
    let name = String::from_utf8_lossy(&tree.name()).into_owned();
    metrics::gauge!("ivory_snapshot_bytes", "tree" => name.clone()).set(bytes as f64);
    metrics::counter!("ivory_snapshots_built_total", "tree" => name.clone()).increment(1);
    if bytes > SNAPSHOT_WARN_BYTES {
        tracing::warn!(
            tree = %name,
            bytes,
            "snapshot over 512 MiB: a replica accepts at most 1 GiB; check the state bounds (DESIGN.md)"
        );
    }
}

/// Snapshot data (what is stored, sent to a replica and backed up) starts with this magic and
/// the format version as two ASCII digits; data without the magic is from before versions were
/// written (read as version 1, the same layout).
pub const SNAPSHOT_MAGIC: &[u8; 6] = b"IVSNAP";
/// The snapshot format this build writes and the only one it reads.
pub const SNAPSHOT_FORMAT_VERSION: &[u8; 2] = b"01";

pub(crate) fn encode_payload(payload: &SnapshotPayload) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(payload.shard.len() + 256);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(SNAPSHOT_FORMAT_VERSION);
    out.extend_from_slice(&encode(payload)?);
    Ok(out)
}

/// Decodes snapshot data, refusing a format version this build does not know.
pub(crate) fn decode_payload(data: &[u8]) -> io::Result<SnapshotPayload> {
    let Some(rest) = data.strip_prefix(SNAPSHOT_MAGIC.as_slice()) else {
        return decode(data);
    };
    match rest.split_at_checked(SNAPSHOT_FORMAT_VERSION.len()) {
        Some((version, body)) if version == SNAPSHOT_FORMAT_VERSION => decode(body),
        Some((version, _)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "snapshot format version {} is not known to this build of ivory (it reads version {}): \
                 run the version that wrote it",
                String::from_utf8_lossy(version),
                String::from_utf8_lossy(SNAPSHOT_FORMAT_VERSION)
            ),
        )),
        None => Err(io::Error::new(io::ErrorKind::InvalidData, "snapshot data is torn")),
    }
}

/// Records the encoded size of a shard's replicated state (`ivory_state_bytes{tree}`, measured
/// when a snapshot serialises it), warning near the limit a replica accepts.
fn note_state_size(tree: &sled::Tree, bytes: usize) {
    let name = String::from_utf8_lossy(&tree.name()).into_owned();
    metrics::gauge!("ivory_state_bytes", "tree" => name.clone()).set(bytes as f64);
    if bytes > SNAPSHOT_WARN_BYTES {
        tracing::warn!(
            tree = %name,
            bytes,
            "replicated state over 512 MiB: its snapshot nears the 1 GiB a replica accepts; check the state bounds (DESIGN.md)"
        );
    }
}

/// Decodes a snapshot's data and checks the shard against its state hash.
pub(crate) fn verified(data: &[u8]) -> io::Result<(Shard, SnapshotPayload)> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let payload = decode_payload(data)?;
    let shard = Shard::restore(&payload.shard).map_err(|e| invalid(e.to_string()))?;
    if shard.state_hash() != payload.state_hash {
        return Err(invalid("snapshot state hash mismatch".into()));
    }
    Ok((shard, payload))
}

async fn store_snapshot(store: &SnapshotStore, flusher: &Flusher, stored: &StoredSnapshot) -> io::Result<()> {
    let bytes = encode(stored)?;
    let store = store.clone();
    let written = tokio::task::spawn_blocking(move || store.put(&bytes))
        .await
        .map_err(io_err)
        .and_then(|r| r);
    // A failed write is fatal (a full disk included), never a wedged group.
    written.map_err(|e| flusher.fail(e))
}

impl RaftStateMachine<TypeConfig> for ShardStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = ShardSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let (mut commands, mut log_bytes) = (0usize, 0usize);
        while let Some((entry, responder)) = entries.try_next().await? {
            let started = Instant::now();
            let results = match entry.payload {
                EntryPayload::Blank => GroupReply::Shard(Vec::new()),
                EntryPayload::Normal(entry_data) => {
                    let mut digest = self.digest.lock().map_err(|_| poisoned())?;
                    let mut h = Sha256::new();
                    h.update(digest.digest);
                    h.update(entry.log_id.index().to_be_bytes());
                    log_bytes += ivory_core::digest::hash_encoding(&entry_data, &mut h).map_err(io_err)?;
                    *digest = ApplyDigest {
                        index: Some(entry.log_id.index()),
                        digest: h.finalize().into(),
                    };
                    drop(digest);
                    match &entry_data {
                        GroupEntry::Shard(batch) => {
                            commands += batch.commands.len();
                            let results = self.shard.write().map_err(|_| poisoned())?.apply(batch);
                            // The batcher hands result i to the proposer of command i.
                            debug_assert_eq!(results.len(), batch.commands.len(), "one result per command");
                            GroupReply::Shard(results)
                        }
                        GroupEntry::Meta(command) => {
                            commands += 1;
                            GroupReply::Meta(self.meta.write().map_err(|_| poisoned())?.apply(command))
                        }
                    }
                }
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), membership);
                    GroupReply::Shard(Vec::new())
                }
            };
            self.applied = Some(entry.log_id);
            self.apply_seconds.record(started.elapsed().as_secs_f64());
            if let Some(responder) = responder {
                responder.send(results);
            }
        }
        self.note_applied(commands, log_bytes);
        if let Some(applied) = self.applied {
            self.flusher.release_decoded(self.group, applied.index())?;
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        Some(self.get_snapshot_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.commands_since_snapshot = 0;
        self.log_bytes_since_snapshot = 0;
        self.snapshot_requested = false;
        // Runs on the state machine task between applies: the copy matches `applied` exactly.
        let data = match (self.shard.read(), self.digest.lock(), self.meta.read()) {
            (Ok(shard), Ok(digest), Ok(meta)) => {
                let shard_bytes = shard.snapshot();
                note_state_size(&self.tree, shard_bytes.len());
                encode_payload(&SnapshotPayload {
                    state_hash: Sha256::digest(&shard_bytes).into(),
                    apply_digest: *digest,
                    shard: shard_bytes,
                    meta: meta.clone(),
                })
            }
            _ => Err(poisoned()),
        };
        ShardSnapshotBuilder {
            meta: SnapshotMetaOf::<TypeConfig> {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
            },
            data,
            tree: self.tree.clone(),
            snapshots: self.snapshots.clone(),
            flusher: self.flusher.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        // Checked before it replaces the stored snapshot: a damaged one leaves the old in place.
        let (shard, payload) = verified(&snapshot)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot,
        };
        store_snapshot(&self.snapshots, &self.flusher, &stored).await?;
        let name = String::from_utf8_lossy(&self.tree.name()).into_owned();
        metrics::counter!("ivory_snapshots_installed_total", "tree" => name).increment(1);
        self.load_verified(&stored, shard, payload)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>, io::Error> {
        // The builder stores snapshots without going through this task: read the latest back.
        let Some(bytes) = self.snapshots.get()? else {
            return Ok(None);
        };
        let stored: StoredSnapshot = decode(&bytes)?;
        Ok(Some(SnapshotOf::<TypeConfig, Vec<u8>> {
            meta: stored.meta,
            snapshot: stored.data,
        }))
    }
}

/// Holds a copy of the shard's snapshot bytes taken at a consistent point.
pub struct ShardSnapshotBuilder {
    meta: SnapshotMetaOf<TypeConfig>,
    data: io::Result<Vec<u8>>,
    tree: sled::Tree,
    snapshots: SnapshotStore,
    flusher: Flusher,
}

impl RaftSnapshotBuilder<TypeConfig> for ShardSnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, Vec<u8>>, io::Error> {
        let data = match &self.data {
            Ok(data) => data.clone(),
            Err(e) => return Err(io::Error::new(e.kind(), e.to_string())),
        };
        note_snapshot_size(&self.tree, data.len());
        let stored = StoredSnapshot {
            meta: self.meta.clone(),
            data,
        };
        store_snapshot(&self.snapshots, &self.flusher, &stored).await?;
        Ok(SnapshotOf::<TypeConfig, Vec<u8>> {
            meta: stored.meta,
            snapshot: stored.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn alive_ends_exactly_when_the_state_machine_is_dropped() {
        let (_dir, storage) = crate::storage::open_in_temp_dir().await;
        let (_log, sm) = storage.open_group(1).await.expect("group");
        let mut alive = sm.alive();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), alive.changed()).await;
        assert!(waited.is_err(), "no end while the state machine lives");
        let worker = tokio::spawn(async move { drop(sm) });
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), alive.changed()).await;
        assert!(matches!(ended, Ok(Err(_))), "the end is seen once it is dropped");
        worker.await.expect("dropped");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_with_a_wrong_hash_is_refused_before_it_is_stored() {
        let (_dir, storage) = crate::storage::open_in_temp_dir().await;
        let (_log, mut sm) = storage.open_group(1).await.expect("group");
        let good = sm.get_snapshot_builder().await.build_snapshot().await.expect("built");
        let mut payload = decode_payload(&good.snapshot).expect("payload");
        payload.state_hash[0] ^= 1;
        let bad = encode_payload(&payload).expect("encoded");
        let err = sm.install_snapshot(&good.meta, bad).await.expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let current = sm.get_current_snapshot().await.expect("read").expect("stored");
        assert_eq!(current.snapshot, good.snapshot, "the stored snapshot is untouched");
        sm.install_snapshot(&good.meta, good.snapshot.clone())
            .await
            .expect("a good one installs");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_of_an_unknown_format_version_is_refused_by_name_and_an_unversioned_one_read() {
        let (_dir, storage) = crate::storage::open_in_temp_dir().await;
        let (_log, mut sm) = storage.open_group(1).await.expect("group");
        let good = sm.get_snapshot_builder().await.build_snapshot().await.expect("built");
        assert!(good.snapshot.starts_with(b"IVSNAP01"), "written with its version");
        let mut newer = good.snapshot.clone();
        newer[6..8].copy_from_slice(b"02");
        let err = sm.install_snapshot(&good.meta, newer).await.expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("snapshot format version 02 is not known"),
            "{err}"
        );
        let unversioned = good.snapshot[8..].to_vec();
        sm.install_snapshot(&good.meta, unversioned)
            .await
            .expect("data from before versions is version 1");
    }

    fn bytes_under(dir: &std::path::Path, skip: &str) -> u64 {
        std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry"))
            .filter(|e| e.file_name() != skip)
            .map(|e| {
                let meta = e.metadata().expect("metadata");
                if meta.is_dir() {
                    bytes_under(&e.path(), skip)
                } else {
                    meta.len()
                }
            })
            .sum()
    }

    /// A snapshot replaces the previous one on disk: many large snapshots take the room of about
    /// one, and a reopen reads the last. (The pile-up of sled blobs this replaced, 612 MB in 20 s,
    /// needed a node under load to show: bench/README.md, "Disk".)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshots_replace_each_other_on_disk_and_survive_a_reopen() {
        use ivory_core::{Batch, Cell, Command, Dims, OnHandChange, PartitionKey, Qty};
        let (dir, storage) = crate::storage::open_in_temp_dir().await;
        let (_log, mut sm) = storage.open_group(1).await.expect("group");
        let commands = (0..4_000)
            .map(|i| {
                Command::OnHandChange(OnHandChange {
                    id: format!("load-{i:06}-{}", "x".repeat(40)),
                    partition: PartitionKey::new("e", "o", "1", "11"),
                    cell: Cell {
                        product: format!("p{i}"),
                        dims: Dims::new(),
                    },
                    quantities: [(
                        "pos".to_string(),
                        [("inbound".to_string(), Qty::ONE)].into_iter().collect(),
                    )]
                    .into_iter()
                    .collect(),
                })
            })
            .collect();
        sm.shard.write().expect("lock").apply(&Batch { ts_ms: 1, commands });
        let mut size = 0;
        for _ in 0..30 {
            size = sm
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .expect("built")
                .snapshot
                .len() as u64;
        }
        assert!(size > 256 << 10, "a snapshot over sled's blob threshold: {size} bytes");
        let on_disk = bytes_under(dir.path(), "wal");
        assert!(
            on_disk < 3 * size + (4 << 20),
            "30 snapshots of {size} bytes take {on_disk} bytes"
        );
        // A snapshot stored after its group left the node (a replica move) leaves no file behind.
        let dropped = storage.snapshot_store(1).expect("store");
        storage.drop_group(1).await.expect("dropped");
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("moot, not a failure");
        assert!(
            dropped.get().expect("read").is_none(),
            "no snapshot left of a dropped group"
        );
        let (_log, mut sm) = storage.open_group(1).await.expect("hosted again");
        sm.shard.write().expect("lock").apply(&Batch {
            ts_ms: 2,
            commands: vec![],
        });
        sm.get_snapshot_builder().await.build_snapshot().await.expect("built");
        let hash = sm.shard.read().expect("lock").state_hash();
        drop((sm, _log));
        let (_log, sm) = storage.open_group(1).await.expect("reopened");
        assert_eq!(
            sm.shard.read().expect("lock").state_hash(),
            hash,
            "the last snapshot is what a reopen reads"
        );
    }
}
