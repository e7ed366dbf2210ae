//! A node's storage: the write-ahead log of every group's Raft log ([`crate::wal`], in
//! `<dir>/wal`), one `sled::Db` for the rest (snapshots, node facts), and the group-commit flusher.
//!
//! Durability (DESIGN.md §6): the flusher thread writes every log record queued so far and runs
//! one `fdatasync`; requests that queue up meanwhile are served by the next round: the group
//! commit across all groups of the node. Requests that also need sled (snapshots, node facts)
//! add sled's `flush` (`sync_file_range`, not an fsync) and `File::sync_data` on `<dir>/db`. All
//! of it runs on that one thread, never on the tokio workers and never through `flush_async` (it
//! deadlocks in sled 0.34.7).
//!
//! Ivory never calls `Tree::apply_batch` or transactions: they switch sled's process-global
//! concurrency control into its locking mode, which is what the deadlock needs.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::log_store::GroupLogStore;
use crate::wal::Wal;
use crate::{GroupId, ShardStateMachine, io_err};

/// A callback run on the flusher thread once the flush it waited for is durable.
type FlushDone = Box<dyn FnOnce(io::Result<()>) + Send>;

/// What a request waits for: the log only (the hot path), or the log and sled.
struct FlushRequest {
    sled: bool,
    /// The group whose log append waits on it (none: a wait for durability as such).
    group: Option<GroupId>,
    done: FlushDone,
}

/// Requests waiting for one flush; beyond this, callers block on the channel (back-pressure).
const FLUSH_QUEUE_MAX: usize = 16_384;

/// Opening the same sled directory twice in one process fails while the old instance drains.
const OPEN_RETRY_FOR: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// sled's page cache; the default 1 GiB is too much when tests run three nodes on one box.
    pub cache_capacity_bytes: u64,
    /// `false` skips the fsync after the flush (benchmarks only; survives kill -9, not power loss).
    pub fsync: bool,
    /// A failed write or sync ends the process ([`EXIT_STORAGE_FAILED`]) before any request of
    /// that round is answered. The `ivory` binary sets it; a library embedding (tests) gets the
    /// error instead, and the log stays failed for good.
    pub exit_on_failure: bool,
    /// Group commit: when the last round carried appends of at least [`GROUP_COMMIT_BUSY_GROUPS`]
    /// groups, the next starts no sooner than this after it started, so more appends share one
    /// fsync. A lone writer never waits. Zero: every round starts as soon as something is queued.
    pub group_commit_window: Duration,
}

/// [`StorageOptions::group_commit_window`]'s default (measured: bench/README.md, "Group commit").
pub const GROUP_COMMIT_WINDOW_DEFAULT: Duration = Duration::from_millis(1);

/// Groups appending in one round from which the next round waits for the window. Many shards'
/// small appends are CPU-bound on their fsyncs and gain from sharing them; one hot shard's
/// pipeline already batches in its Raft entries and is latency-bound, so it is not held back.
pub const GROUP_COMMIT_BUSY_GROUPS: usize = 3;

/// The exit code of a node whose storage failed (`EX_IOERR`): a supervisor restarts it and it
/// recovers from what is on disk. After a failed `fdatasync` the kernel may have dropped the
/// dirty pages and cleared the error (fsyncgate), so retrying in place could acknowledge writes
/// that are not on disk; only a restart, which reads back what is, is safe.
pub const EXIT_STORAGE_FAILED: i32 = 74;

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            cache_capacity_bytes: 64 * 1024 * 1024,
            fsync: true,
            exit_on_failure: false,
            group_commit_window: GROUP_COMMIT_WINDOW_DEFAULT,
        }
    }
}

/// Hands flush requests to the node's flusher thread.
#[derive(Clone)]
pub struct Flusher {
    tx: mpsc::SyncSender<FlushRequest>,
    flushes: Arc<AtomicU64>,
    /// Fault injection (a slow disk): milliseconds slept before each flush + fsync; 0 = off.
    delay_ms: Arc<AtomicU64>,
    /// Fault injection: the next round writes its records, then fails as a failed sync would.
    fail_next: Arc<AtomicBool>,
    wal: Wal,
    exit_on_failure: bool,
}

/// What the flusher thread shares with its handles.
struct FlusherCtx {
    db: sled::Db,
    file: File,
    /// sled writes values over about 128 KiB (stored snapshots) to files here and never fsyncs them.
    blobs: PathBuf,
    wal: Wal,
    fsync: bool,
    exit_on_failure: bool,
    group_commit_window: Duration,
    flushes: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
    fail_next: Arc<AtomicBool>,
}

impl Flusher {
    /// [`Wal::release_decoded`], for the state machine after an apply.
    pub(crate) fn release_decoded(&self, group: GroupId, upto: u64) -> io::Result<()> {
        self.wal.release_decoded(group, upto)
    }

    fn start(db: sled::Db, file: File, blobs: PathBuf, wal: Wal, options: &StorageOptions) -> io::Result<Flusher> {
        let (tx, rx) = mpsc::sync_channel::<FlushRequest>(FLUSH_QUEUE_MAX);
        let ctx = FlusherCtx {
            db,
            file,
            blobs,
            wal,
            fsync: options.fsync,
            exit_on_failure: options.exit_on_failure,
            group_commit_window: options.group_commit_window,
            flushes: Arc::new(AtomicU64::new(0)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            fail_next: Arc::new(AtomicBool::new(false)),
        };
        let flusher = Flusher {
            tx,
            flushes: ctx.flushes.clone(),
            delay_ms: ctx.delay_ms.clone(),
            fail_next: ctx.fail_next.clone(),
            wal: ctx.wal.clone(),
            exit_on_failure: ctx.exit_on_failure,
        };
        std::thread::Builder::new()
            .name("ivory-flusher".into())
            .spawn(move || flusher_loop(&ctx, rx))?;
        Ok(flusher)
    }

    /// Fault injection: the next flush round fails after its writes, as a failed `fdatasync`
    /// does (with `exit_on_failure` the process exits before answering anyone).
    pub fn fail_next_sync(&self, fail: bool) {
        self.fail_next.store(fail, Ordering::Relaxed);
    }

    /// A failed write outside the flusher (sled's insert of a snapshot: it writes when its
    /// buffer fills, and a full disk fails it there): fatal as a failed round is. Returns the
    /// error for the caller when the process does not exit.
    pub fn fail(&self, e: io::Error) -> io::Error {
        self.wal.poison(&e.to_string());
        storage_failed(&e, self.exit_on_failure);
        e
    }

    /// Whether [`Flusher::fail_next_sync`] is armed.
    pub fn fails_next_sync(&self) -> bool {
        self.fail_next.load(Ordering::Relaxed)
    }

    /// Fault injection: a slow disk, `delay` added before every flush + fsync (zero turns it off).
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// The slow-disk delay set by [`Flusher::set_delay`].
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::Relaxed))
    }

    /// How many flush + fsync rounds ran so far (each serves every request queued before it).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    fn request(&self, sled: bool, group: Option<GroupId>, done: FlushDone) {
        if let Err(mpsc::SendError(request)) = self.tx.send(FlushRequest { sled, group, done }) {
            (request.done)(Err(io_err("storage flusher stopped")));
        }
    }

    /// Runs `done` on the flusher thread once every log record queued so far (the last by
    /// `group`) is durable.
    pub fn log_flush_then(&self, group: GroupId, done: FlushDone) {
        self.request(false, Some(group), done);
    }

    async fn wait(&self, sled: bool) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.request(
            sled,
            None,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await.map_err(|_| io_err("storage flusher dropped a request"))?
    }

    /// Waits until every log record queued so far is durable.
    pub async fn flush_log(&self) -> io::Result<()> {
        self.wait(false).await
    }

    /// Waits until everything written so far, the log and sled, is durable.
    pub async fn flush(&self) -> io::Result<()> {
        self.wait(true).await
    }
}

/// fsyncs sled's blob files and their directory, so that a stored snapshot (a blob) is as durable as
/// the round that acknowledged it. Only rounds that wrote to sled pay it; a node has one snapshot
/// blob per group at most, plus the ones sled has not removed yet.
fn sync_blobs(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        match File::open(&path) {
            Ok(blob) => blob.sync_all()?,
            // sled removed an old blob meanwhile: nothing left to make durable.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    File::open(dir)?.sync_all()
}

fn flusher_loop(ctx: &FlusherCtx, rx: mpsc::Receiver<FlushRequest>) {
    let mut pending: Vec<FlushRequest> = Vec::new();
    // The start of the last round that was busy enough for the next to wait for its window.
    let mut window_from: Option<Instant> = None;
    while let Ok(first) = rx.recv() {
        if let Some(due) = window_from.take().map(|at| at + ctx.group_commit_window) {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let started = Instant::now();
        let delay = ctx.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        pending.push(first);
        while let Ok(more) = rx.try_recv() {
            pending.push(more);
        }
        let sled = pending.iter().any(|r| r.sled);
        let result = ctx.wal.write_and_sync(ctx.fsync).and_then(|()| {
            if sled {
                ctx.db.flush().map_err(io_err)?;
                if ctx.fsync {
                    ctx.file.sync_data()?;
                    sync_blobs(&ctx.blobs)?;
                }
            }
            if ctx.fail_next.swap(false, Ordering::Relaxed) {
                return Err(io::Error::other("injected fault: fdatasync failed"));
            }
            Ok(())
        });
        ctx.flushes.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!("ivory_raft_fsync_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("ivory_raft_fsync_batch").record(pending.len() as f64);
        if !ctx.group_commit_window.is_zero() && appending_groups(&pending) >= GROUP_COMMIT_BUSY_GROUPS {
            window_from = Some(started);
        }
        if let Err(e) = &result {
            ctx.wal.poison(&e.to_string());
            storage_failed(e, ctx.exit_on_failure);
        }
        for request in pending.drain(..) {
            (request.done)(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| io::Error::new(e.kind(), e.to_string())),
            );
        }
    }
}

/// How many groups' appends a round carries (counted up to [`GROUP_COMMIT_BUSY_GROUPS`]).
fn appending_groups(round: &[FlushRequest]) -> usize {
    let mut seen: Vec<GroupId> = Vec::with_capacity(GROUP_COMMIT_BUSY_GROUPS);
    for group in round.iter().filter_map(|r| r.group) {
        if !seen.contains(&group) {
            seen.push(group);
            if seen.len() == GROUP_COMMIT_BUSY_GROUPS {
                break;
            }
        }
    }
    seen.len()
}

/// Logs a failed flush round and, for the binary, ends the process before anyone is answered.
fn storage_failed(e: &io::Error, exit: bool) {
    // sled's errors reach here as text: ENOSPC is recognised by its message there.
    let disk_full = e.kind() == io::ErrorKind::StorageFull || e.to_string().contains("No space left");
    metrics::counter!("ivory_storage_failures_total", "kind" => if disk_full { "full" } else { "io" }).increment(1);
    if !exit {
        tracing::error!(error = %e, disk_full, "storage flush failed: this node acknowledges no further write");
        return;
    }
    tracing::error!(
        error = %e,
        disk_full,
        code = EXIT_STORAGE_FAILED,
        "storage flush failed: exiting without acknowledging this round; restart the node (once \
         there is space, if the disk is full) and it recovers from what is on disk"
    );
    // Also straight to stderr, which never panics (eprintln! would, on a full disk's log file).
    let _ = writeln!(
        io::stderr(),
        "ivory: storage failed ({e}); exiting with code {EXIT_STORAGE_FAILED}"
    );
    std::process::exit(EXIT_STORAGE_FAILED);
}

/// A node's storage: one sled Db shared by all its groups.
#[derive(Clone)]
pub struct NodeStorage {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    wal: Wal,
    dir: PathBuf,
    flusher: Flusher,
    /// Node-level facts: which groups this node hosts, whether it was ever bootstrapped.
    node_tree: sled::Tree,
}

const KEY_BOOTSTRAPPED: &[u8] = b"bootstrapped";

fn group_key(group: GroupId) -> Vec<u8> {
    let mut k = b"group/".to_vec();
    k.extend_from_slice(&group.to_be_bytes());
    k
}

impl NodeStorage {
    /// Opens (or creates) the node's Db in `dir`. Blocking: call from `spawn_blocking` or
    /// use [`NodeStorage::open_async`].
    ///
    /// # Errors
    /// When sled cannot open the directory within a few seconds.
    pub fn open(dir: &Path, options: &StorageOptions) -> io::Result<NodeStorage> {
        crate::durable::create_dir_all_durable(dir)?;
        if let Err(e) = crate::durable::require_free_space_to_start(dir) {
            if options.exit_on_failure {
                storage_failed(&e, true);
            }
            return Err(e);
        }
        let started = Instant::now();
        let db = loop {
            let opened = sled::Config::new()
                .path(dir)
                .cache_capacity(options.cache_capacity_bytes)
                // Every durable write is flushed explicitly through the flusher thread.
                .flush_every_ms(None)
                .open();
            match opened {
                Ok(db) => break db,
                Err(e) if started.elapsed() < OPEN_RETRY_FOR => {
                    tracing::debug!(error = %e, dir = %dir.display(), "sled open failed, retrying");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(io_err(format!("open sled at {}: {e}", dir.display()))),
            }
        };
        let file = File::open(dir.join("db"))?;
        let wal = Wal::open_with(&dir.join("wal"), crate::wal_segment_bytes())?;
        // sled made its files (and Wal::open `wal/`) in `dir` without syncing it.
        crate::durable::sync_dir(dir)?;
        let flusher = Flusher::start(db.clone(), file, dir.join("blobs"), wal.clone(), options)?;
        let node_tree = db.open_tree("node").map_err(io_err)?;
        Ok(NodeStorage {
            inner: Arc::new(Inner {
                db,
                wal,
                dir: dir.to_path_buf(),
                flusher,
                node_tree,
            }),
        })
    }

    /// [`NodeStorage::open`] off the tokio workers.
    ///
    /// # Errors
    /// As [`NodeStorage::open`].
    pub async fn open_async(dir: PathBuf, options: StorageOptions) -> io::Result<NodeStorage> {
        tokio::task::spawn_blocking(move || NodeStorage::open(&dir, &options))
            .await
            .map_err(io_err)?
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn flusher(&self) -> &Flusher {
        &self.inner.flusher
    }

    /// The node's Raft log.
    pub fn wal(&self) -> &Wal {
        &self.inner.wal
    }

    /// Opens the log store and state machine of a group (creating empty trees if new) and records
    /// that this node hosts the group.
    ///
    /// # Errors
    /// On sled errors or an undecodable stored snapshot.
    pub async fn open_group(&self, group: GroupId) -> io::Result<(GroupLogStore, ShardStateMachine)> {
        let sm = self.tree_of(group)?;
        self.note_hosted(group)?;
        self.inner.flusher.flush().await?;
        let log_store = GroupLogStore::new(group, self.inner.wal.clone(), self.inner.flusher.clone());
        let state_machine =
            ShardStateMachine::open(group, sm, self.snapshot_store(group)?, self.inner.flusher.clone())?;
        Ok((log_store, state_machine))
    }

    /// The sled tree of `group`'s state machine (its stored snapshot).
    pub(crate) fn tree_of(&self, group: GroupId) -> io::Result<sled::Tree> {
        self.inner.db.open_tree(format!("g{group}.sm")).map_err(io_err)
    }

    /// Where `group`'s current snapshot is kept.
    pub(crate) fn snapshot_store(&self, group: GroupId) -> io::Result<crate::snapshot_store::SnapshotStore> {
        Ok(crate::snapshot_store::SnapshotStore::new(
            self.inner.dir.join("snapshots").join(format!("g{group}.snap")),
            self.tree_of(group)?,
        ))
    }

    /// Records that this node hosts `group` (durable with the next flush that includes sled).
    pub(crate) fn note_hosted(&self, group: GroupId) -> io::Result<()> {
        self.inner.node_tree.insert(group_key(group), &[]).map_err(io_err)?;
        Ok(())
    }

    /// Forgets a group this node no longer hosts: its log and its state tree.
    ///
    /// # Errors
    /// On sled errors.
    pub async fn drop_group(&self, group: GroupId) -> io::Result<()> {
        self.inner.node_tree.remove(group_key(group)).map_err(io_err)?;
        self.inner.wal.drop_group(group)?;
        // The tree first: a snapshot being stored meanwhile sees it gone and removes its file.
        let snapshots = self.snapshot_store(group)?;
        self.inner.db.drop_tree(format!("g{group}.sm")).map_err(io_err)?;
        snapshots.remove()?;
        self.inner.flusher.flush().await
    }

    /// The groups this node hosts, as recorded by [`NodeStorage::open_group`].
    ///
    /// # Errors
    /// On sled errors or a malformed key.
    pub fn hosted_groups(&self) -> io::Result<Vec<GroupId>> {
        let mut groups = Vec::new();
        for kv in self.inner.node_tree.scan_prefix(b"group/") {
            let (k, _) = kv.map_err(io_err)?;
            let bytes: [u8; 4] = k
                .get(6..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| io_err("malformed group key"))?;
            groups.push(GroupId::from_be_bytes(bytes));
        }
        Ok(groups)
    }

    /// Whether this node's groups were bootstrapped once (so a restart must not bootstrap again).
    ///
    /// # Errors
    /// On sled errors.
    pub fn bootstrapped(&self) -> io::Result<bool> {
        Ok(self.inner.node_tree.get(KEY_BOOTSTRAPPED).map_err(io_err)?.is_some())
    }

    /// # Errors
    /// On sled errors or when the flush fails.
    pub async fn set_bootstrapped(&self) -> io::Result<()> {
        self.inner.node_tree.insert(KEY_BOOTSTRAPPED, &[]).map_err(io_err)?;
        self.inner.flusher.flush().await
    }
}

/// A node's storage in a new temporary directory, for unit tests; the directory lives as long as
/// the returned guard.
#[cfg(test)]
pub(crate) async fn open_in_temp_dir() -> (tempfile::TempDir, NodeStorage) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = NodeStorage::open_async(dir.path().to_path_buf(), crate::StorageOptions::default())
        .await
        .expect("open");
    (dir, storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_files_and_their_directory_are_synced_and_a_missing_directory_is_no_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(sync_blobs(&dir.path().join("blobs")).is_ok(), "no blobs yet");
        let blobs = dir.path().join("blobs");
        std::fs::create_dir(&blobs).expect("blobs dir");
        std::fs::write(blobs.join("7"), vec![1u8; 200 * 1024]).expect("blob");
        sync_blobs(&blobs).expect("synced");
        std::fs::write(blobs.join("8"), b"x").expect("blob");
        std::fs::set_permissions(blobs.join("8"), std::os::unix::fs::PermissionsExt::from_mode(0o000)).expect("chmod");
        // Root opens it anyway; anyone else gets an error, which must fail the round, never be ignored.
        let unreadable = File::open(blobs.join("8")).is_err();
        assert_eq!(sync_blobs(&blobs).is_err(), unreadable);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flush_requests_share_fsyncs() {
        let (_dir, storage) = crate::storage::open_in_temp_dir().await;
        let before = storage.flusher().flush_count();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let flusher = storage.flusher().clone();
            tasks.spawn(async move { flusher.flush().await });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task").expect("flush");
        }
        let rounds = storage.flusher().flush_count() - before;
        assert!(rounds >= 1);
        assert!(rounds < 200, "200 requests took {rounds} fsyncs: no group commit");
    }

    /// Sends one log flush request per group and waits for all of them.
    async fn log_flushes(flusher: &Flusher, groups: &[GroupId]) {
        let mut done = Vec::new();
        for &group in groups {
            let (tx, rx) = tokio::sync::oneshot::channel();
            flusher.log_flush_then(
                group,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            done.push(rx);
        }
        for rx in done {
            rx.await.expect("answered").expect("flushed");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_round_of_many_groups_opens_the_group_commit_window_and_a_lone_writer_never_waits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let window = Duration::from_millis(1500);
        let options = StorageOptions {
            group_commit_window: window,
            ..StorageOptions::default()
        };
        let storage = NodeStorage::open_async(dir.path().to_path_buf(), options)
            .await
            .expect("open");
        let flusher = storage.flusher();
        // One group at a time: five rounds, none of them waiting (five windows would be 7.5 s).
        let started = Instant::now();
        for _ in 0..5 {
            log_flushes(flusher, &[1]).await;
        }
        assert!(
            started.elapsed() < window,
            "a lone writer waited: {:?}",
            started.elapsed()
        );
        // Three groups in one round (a slow disk holds the round open while they queue): the
        // next round starts no sooner than the window after that one started.
        flusher.set_delay(Duration::from_millis(100));
        let busy_started = Instant::now();
        log_flushes(flusher, &[1, 2, 3]).await;
        flusher.set_delay(Duration::ZERO);
        let rounds = flusher.flush_count();
        log_flushes(flusher, &[1]).await;
        assert_eq!(flusher.flush_count(), rounds + 1);
        assert!(
            busy_started.elapsed() >= window,
            "the round after a busy one started {:?} after it, inside the window",
            busy_started.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hosted_groups_survive_reopen_and_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = StorageOptions::default();
        {
            let storage = NodeStorage::open_async(dir.path().to_path_buf(), options.clone())
                .await
                .expect("open");
            storage.open_group(3).await.expect("group 3");
            storage.open_group(9).await.expect("group 9");
            storage.drop_group(3).await.expect("drop 3");
            storage.set_bootstrapped().await.expect("marker");
        }
        let storage = NodeStorage::open_async(dir.path().to_path_buf(), options)
            .await
            .expect("reopen");
        assert!(storage.bootstrapped().expect("read marker"));
        assert_eq!(storage.hosted_groups().expect("groups"), vec![9]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_injected_sync_failure_fails_that_round_and_every_later_one() {
        let (_dir, storage) = crate::storage::open_in_temp_dir().await;
        storage.flusher().flush_log().await.expect("a healthy round");
        storage.flusher().fail_next_sync(true);
        assert!(
            storage.flusher().flush_log().await.is_err(),
            "the failed round is not acknowledged"
        );
        assert!(!storage.flusher().fails_next_sync(), "one-shot");
        assert!(storage.flusher().flush_log().await.is_err(), "nor any later round");
        assert!(storage.wal().drop_group(1).is_err(), "nor a later log record");
    }
}
