//! The node's Raft log: one append-only write-ahead log shared by every group of the node, so
//! that one `write` + one `fdatasync` makes a whole round of appends durable, whichever groups
//! they belong to (group commit across groups, as TiKV's raft-engine does).
//!
//! Why not sled: a sled insert + `flush` + fsync per round cost about a fifth of the server's CPU
//! (its IO threads, page writes of a B-tree that a log never needs); a log only appends, truncates
//! its tail and drops its head.
//!
//! On disk: `wal/<16-digit number>.wal` segments. Each starts with [`SEGMENT_MAGIC`] (the format
//! version), then records `len: u32 LE | crc32: u32 LE | payload`. Payload = kind, group, body:
//! an entry (its log id and postcard bytes), a vote, a committed id, a purge point, a truncation
//! or a dropped group. A segment grows to [`SEGMENT_BYTES`]; the next one starts with every group's
//! vote, committed id and purge point, so a segment is deleted once no group has a live entry in it.
//!
//! At start the segments are replayed in order. A torn record at the end of the last segment (a
//! crash during a write that was never acknowledged) is cut off; any other damage stops the node
//! with the file's name: serving from a log with a hole would be serving wrong stock.
//!
//! In memory: per group the position of every live entry (8 bytes each: the index is implicit,
//! the leader id and segment are kept once per run of entries that share them), and the bytes of
//! the newest entries (all that are not yet written, then up to [`GROUP_CACHE_BYTES`]); older ones
//! are read back with `pread` (followers catching up, re-apply after restart). Those not yet
//! applied (up to [`GROUP_DECODED_BYTES`]) are kept decoded too, as appended: the apply path and
//! the replication read them right after the append, and decoding each entry again was a tenth of
//! a 3-node cluster's CPU under bulk.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::alias::{CommittedLeaderIdOf, EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;

use crate::durable::{create_dir_all_durable, sync_dir};
use crate::log_store::{decode, encode};
use crate::{GroupId, TypeConfig, io_err};

/// The first bytes of every segment; a new layout gets a new magic.
pub const SEGMENT_MAGIC: &[u8; 8] = b"IVWAL001";
/// A segment is closed once it holds this much; the next one begins with a checkpoint.
pub const SEGMENT_BYTES: u64 = 32 << 20;
/// Bytes of written entries each group keeps in memory for readers (the apply path, replication):
/// a few entries past the newest, which is what they read; older ones come back by `pread` from
/// the page cache. A node holds one per group (17 by default), so 1 MiB each was 17 MB of its
/// resident memory under spread.
pub const GROUP_CACHE_BYTES: usize = 256 << 10;
/// Encoded bytes of the newest entries each group also keeps decoded until they are applied (a
/// shard entry's commands are shared, not copied, by every reader): what is appended but not yet
/// applied, unless the apply lags far behind.
pub const GROUP_DECODED_BYTES: usize = 256 << 10;
/// A record larger than this is damage, not data (the gRPC limit bounds an entry far below it).
const RECORD_MAX: u32 = 256 << 20;
const HEADER: usize = 8;

const KIND_ENTRY: u8 = 1;
const KIND_VOTE: u8 = 2;
const KIND_COMMITTED: u8 = 3;
const KIND_PURGE: u8 = 4;
const KIND_TRUNCATE: u8 = 5;
const KIND_DROP: u8 = 6;

type LogId = LogIdOf<TypeConfig>;
type LeaderId = CommittedLeaderIdOf<TypeConfig>;
type Entry = EntryOf<TypeConfig>;
type Vote = VoteOf<TypeConfig>;

/// Where one entry's bytes are: its offset from its run's `base` and its length. This is all a
/// group keeps per live entry (a shard keeps up to 200,000 commands' entries between snapshots);
/// the index is implicit, the leader id, segment and base are shared by a run of entries.
#[derive(Clone, Copy)]
struct EntrySlot {
    offset: u32,
    len: u32,
}

/// Consecutive entries, from index `first` to the next run's, with the same committed leader id,
/// in the same segment, at offsets from `base` to `base + u32::MAX`. A new run starts when any
/// of the three changes: rarely (a new term, a new segment every [`SEGMENT_BYTES`]).
struct Run {
    first: u64,
    leader: LeaderId,
    segment: u64,
    base: u64,
}

/// What a reader needs of an entry, copied out of the lock.
struct EntryRef {
    entry: Option<Entry>,
    bytes: Option<Arc<[u8]>>,
    segment: u64,
    offset: u64,
    len: u32,
}

#[derive(Default)]
struct GroupLog {
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
    /// Index of `entries[0]`; the entries are contiguous.
    first_index: u64,
    entries: VecDeque<EntrySlot>,
    /// Runs covering `entries`, by `first`; the first may start before `first_index` (a purge
    /// cut into it). Empty when `entries` is.
    runs: VecDeque<Run>,
    /// The bytes of the last `cached.len()` entries: the newest ones, not yet evicted.
    cached: VecDeque<Cached>,
    cached_bytes: usize,
    /// How many of the newest `cached` also hold their entry decoded, and their bytes.
    decoded: usize,
    decoded_bytes: usize,
}

/// A cached entry: its bytes, and the entry itself as appended until it is applied (or falls
/// out of [`GROUP_DECODED_BYTES`]).
struct Cached {
    bytes: Arc<[u8]>,
    entry: Option<Entry>,
}

impl Cached {
    fn new(bytes: Arc<[u8]>, entry: Entry) -> Cached {
        Cached {
            bytes,
            entry: Some(entry),
        }
    }
}

impl GroupLog {
    fn last_index(&self) -> Option<u64> {
        (!self.entries.is_empty()).then(|| self.first_index + self.entries.len() as u64 - 1)
    }

    /// The last entry's log id.
    fn last_log_id(&self) -> Option<LogId> {
        let run = self.runs.back()?;
        Some(LogId::new(run.leader, self.last_index()?))
    }

    /// The run holding entry `index` (one of `entries`).
    fn run_of(&self, index: u64) -> Option<&Run> {
        let after = self.runs.partition_point(|r| r.first <= index);
        self.runs.get(after.checked_sub(1)?)
    }

    /// Segment, offset and length of the entry at `position` in `entries`.
    fn place(&self, position: usize) -> Option<(u64, u64, u32)> {
        let slot = self.entries.get(position)?;
        let run = self.run_of(self.first_index + position as u64)?;
        Some((run.segment, run.base + u64::from(slot.offset), slot.len))
    }

    /// Position in `entries` of the first cached entry.
    fn cache_from(&self) -> usize {
        self.entries.len() - self.cached.len()
    }

    /// Forgets a cached entry taken out of `cached`.
    fn uncache(&mut self, gone: &Cached) {
        self.cached_bytes -= gone.bytes.len();
        if gone.entry.is_some() {
            self.decoded -= 1;
            self.decoded_bytes -= gone.bytes.len();
        }
    }

    fn clear_cache(&mut self) {
        self.cached.clear();
        self.cached_bytes = 0;
        self.decoded = 0;
        self.decoded_bytes = 0;
    }

    /// Takes out the decoded copies of the entries up to `upto` (applied: the apply path was
    /// their last reader but for a lagging follower's replication, which decodes the bytes).
    fn release_decoded(&mut self, upto: u64) -> Vec<Entry> {
        let mut released = Vec::new();
        while self.decoded > 0 {
            let oldest = self.cached.len() - self.decoded;
            let index = self.first_index + (self.cache_from() + oldest) as u64;
            if index > upto {
                break;
            }
            if let Some(c) = self.cached.get_mut(oldest) {
                released.extend(c.entry.take());
                self.decoded_bytes -= c.bytes.len();
            }
            self.decoded -= 1;
        }
        released
    }

    /// Keeps decoded only the newest entries within [`GROUP_DECODED_BYTES`] (at least one).
    fn evict_decoded(&mut self) {
        while self.decoded > 1 && self.decoded_bytes > GROUP_DECODED_BYTES {
            let oldest = self.cached.len() - self.decoded;
            if let Some(c) = self.cached.get_mut(oldest)
                && c.entry.take().is_some()
            {
                self.decoded_bytes -= c.bytes.len();
            }
            self.decoded -= 1;
        }
    }

    fn truncate_from(&mut self, from: u64) {
        let keep = from.saturating_sub(self.first_index).min(self.entries.len() as u64) as usize;
        let dropped = self.entries.len() - keep;
        self.entries.truncate(keep);
        for _ in 0..dropped.min(self.cached.len()) {
            if let Some(gone) = self.cached.pop_back() {
                self.uncache(&gone);
            }
        }
        if keep == 0 {
            self.runs.clear();
        }
        let end = self.first_index + keep as u64;
        while self.runs.back().is_some_and(|r| r.first >= end) {
            self.runs.pop_back();
        }
    }

    fn purge_to(&mut self, log_id: LogId) {
        let upto = log_id.index();
        let dropped = (upto + 1)
            .saturating_sub(self.first_index)
            .min(self.entries.len() as u64) as usize;
        let uncached = self.cache_from();
        for _ in 0..dropped.saturating_sub(uncached) {
            if let Some(gone) = self.cached.pop_front() {
                self.uncache(&gone);
            }
        }
        self.entries.drain(..dropped);
        self.first_index += dropped as u64;
        if self.entries.is_empty() {
            self.first_index = upto + 1;
            self.runs.clear();
        }
        // Runs that end before the first live entry go; the one holding it stays.
        while self.runs.get(1).is_some_and(|r| r.first <= self.first_index) {
            self.runs.pop_front();
        }
        self.purged = Some(log_id);
    }

    /// Adds the entry `log_id`, `len` bytes at `offset` of `segment`, with its bytes (and the
    /// entry) to cache (none in replay: it reads them back from the segment when asked).
    fn push(&mut self, log_id: LogId, segment: u64, offset: u64, len: u32, cached: Option<Cached>) -> io::Result<()> {
        let index = log_id.index();
        match self.last_index() {
            Some(last) if index <= last => self.truncate_from(index),
            Some(last) if index > last + 1 => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("log hole: entry {index} after {last}"),
                ));
            }
            _ => {}
        }
        if self.entries.is_empty() {
            self.first_index = index;
            self.runs.clear();
        }
        let leader = *log_id.committed_leader_id();
        let relative = self
            .runs
            .back()
            .filter(|r| r.leader == leader && r.segment == segment)
            .and_then(|r| u32::try_from(offset.checked_sub(r.base)?).ok());
        let relative = match relative {
            Some(relative) => relative,
            None => {
                self.runs.push_back(Run {
                    first: index,
                    leader,
                    segment,
                    base: offset,
                });
                0
            }
        };
        self.entries.push_back(EntrySlot { offset: relative, len });
        match cached {
            // Appended, so decoded: the newest of the decoded ones.
            Some(c) => {
                self.cached_bytes += c.bytes.len();
                self.decoded += 1;
                self.decoded_bytes += c.bytes.len();
                self.cached.push_back(c);
                self.evict_decoded();
            }
            // The cached entries are the newest: an entry without bytes ends them.
            None => self.clear_cache(),
        }
        Ok(())
    }
}

/// Records written by the flusher in order: each chunk goes to its segment.
struct Chunk {
    segment: u64,
    /// Offset in the segment of the chunk's first byte.
    start: u64,
    bytes: Vec<u8>,
}

struct WalState {
    groups: HashMap<GroupId, GroupLog>,
    pending: Vec<Chunk>,
    /// The segment appends go to, and its length once everything pending is written.
    active: u64,
    active_len: u64,
    /// Bytes of each segment that are on disk (written; durable after the flusher's sync).
    written: BTreeMap<u64, u64>,
    /// Read handles of every live segment.
    files: BTreeMap<u64, Arc<File>>,
    /// A failed write or sync: nothing is acknowledged after it (the node must restart).
    failed: Option<String>,
    dir: PathBuf,
    /// The next segment, created and zero-filled ahead of need by a helper thread.
    spare: Option<u64>,
    preparing: bool,
    segment_bytes: u64,
}

/// The write-ahead log of one node. Cheap to clone.
#[derive(Clone)]
pub struct Wal {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    state: Mutex<WalState>,
    /// The flusher's handle of the segment it writes, and that segment's number.
    writer: Mutex<Option<(u64, File)>>,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.wal"))
}

fn corrupt(path: &Path, offset: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("write-ahead log {} damaged at byte {offset}: {what}", path.display()),
    )
}

fn put_record(out: &mut Vec<u8>, kind: u8, group: GroupId, body: &[&[u8]]) -> usize {
    let len: usize = 1 + 4 + body.iter().map(|b| b.len()).sum::<usize>();
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.push(kind);
    out.extend_from_slice(&group.to_le_bytes());
    for b in body {
        out.extend_from_slice(b);
    }
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    start
}

impl Wal {
    /// Opens (or creates) the log in `dir` and replays it.
    ///
    /// # Errors
    /// On IO errors, or a damaged segment (named in the message).
    pub fn open(dir: &Path) -> io::Result<Wal> {
        Wal::open_with(dir, SEGMENT_BYTES)
    }

    /// [`Wal::open`] with another segment size (tests use small ones to see segments rotate).
    ///
    /// # Errors
    /// As [`Wal::open`].
    pub fn open_with(dir: &Path, segment_bytes: u64) -> io::Result<Wal> {
        create_dir_all_durable(dir)?;
        let mut numbers: Vec<u64> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name.strip_suffix(".wal").and_then(|s| s.parse::<u64>().ok()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        let mut state = WalState {
            groups: HashMap::new(),
            pending: Vec::new(),
            active: 0,
            active_len: 0,
            written: BTreeMap::new(),
            files: BTreeMap::new(),
            failed: None,
            dir: dir.to_path_buf(),
            spare: None,
            preparing: false,
            segment_bytes,
        };
        // A spare segment never used (or a creation cut short) holds no record: drop it.
        while let Some(&n) = numbers.last() {
            if !segment_is_blank(&segment_path(dir, n))? {
                break;
            }
            std::fs::remove_file(segment_path(dir, n))?;
            numbers.pop();
        }
        for (i, n) in numbers.iter().enumerate() {
            let last = i + 1 == numbers.len();
            let len = replay_segment(&segment_path(dir, *n), *n, last, &mut state.groups)?;
            state.files.insert(*n, Arc::new(File::open(segment_path(dir, *n))?));
            state.written.insert(*n, len);
        }
        let writer = match numbers.last() {
            Some(&n) => {
                state.active = n;
                state.active_len = state.written.get(&n).copied().unwrap_or(0);
                let file = OpenOptions::new().write(true).open(segment_path(dir, n))?;
                Some((n, file))
            }
            None => {
                let file = create_segment(dir, 1, segment_bytes)?;
                state.files.insert(1, Arc::new(File::open(segment_path(dir, 1))?));
                state.written.insert(1, SEGMENT_MAGIC.len() as u64);
                state.active = 1;
                state.active_len = SEGMENT_MAGIC.len() as u64;
                Some((1, file))
            }
        };
        Ok(Wal {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                state: Mutex::new(state),
                writer: Mutex::new(writer),
            }),
        })
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, WalState>> {
        self.shared
            .state
            .lock()
            .map_err(|_| io_err("write-ahead log lock poisoned"))
    }

    /// Appends entries of `group` (readable at once, durable after the next [`Wal::write_and_sync`]).
    ///
    /// # Errors
    /// When the log failed before, on an encoding error, or when the entries leave a hole.
    pub fn append(&self, group: GroupId, entries: impl IntoIterator<Item = Entry>) -> io::Result<()> {
        let mut encoded = Vec::new();
        for entry in entries {
            let log_id = entry.log_id();
            encoded.push((log_id, encode(&entry)?, entry));
        }
        let mut state = self.lock()?;
        state.check()?;
        for (log_id, bytes, entry) in encoded {
            let id_bytes = encode(&log_id)?;
            let index = log_id.index();
            let (segment, record_start) = state.record(
                KIND_ENTRY,
                group,
                &[&(id_bytes.len() as u16).to_le_bytes(), &id_bytes, &bytes],
            )?;
            let offset = record_start + (HEADER + 1 + 4 + 2 + id_bytes.len()) as u64;
            let g = state.groups.entry(group).or_default();
            if g.last_index().is_none() && g.purged.as_ref().is_some_and(|p| p.index() >= index) {
                continue;
            }
            // Log index continuity: openraft appends right after the last entry (a conflicting
            // suffix is truncated first, by `truncate_after`), so only replay may overwrite; a
            // hole is refused by `push` in every build.
            debug_assert!(
                g.last_index().is_none_or(|last| index > last),
                "group {group}: append of entry {index} after entry {:?}",
                g.last_index()
            );
            // `record` refused anything over RECORD_MAX (a u32).
            g.push(
                log_id,
                segment,
                offset,
                bytes.len() as u32,
                Some(Cached::new(bytes.into(), entry)),
            )?;
        }
        state.evict_cache(group);
        Ok(())
    }

    /// Entries of `group` with index in `[start, end)` that the log holds.
    ///
    /// # Errors
    /// On read or decode errors.
    pub fn entries(&self, group: GroupId, start: u64, end: Option<u64>) -> io::Result<Vec<Entry>> {
        // Collect what to read under the lock, decode and read outside it.
        let wanted: Vec<EntryRef> = {
            let state = self.lock()?;
            let Some(g) = state.groups.get(&group) else {
                return Ok(Vec::new());
            };
            let from = start.max(g.first_index);
            let to = match (end, g.last_index()) {
                (_, None) => return Ok(Vec::new()),
                (Some(e), Some(last)) => e.min(last + 1),
                (None, Some(last)) => last + 1,
            };
            if from >= to {
                return Ok(Vec::new());
            }
            let (skip, cache_from) = ((from - g.first_index) as usize, g.cache_from());
            let mut wanted = Vec::with_capacity((to - from) as usize);
            for position in skip..skip + (to - from) as usize {
                let (segment, offset, len) = g
                    .place(position)
                    .ok_or_else(|| io_err(format!("group {group}: no run holds entry {position}")))?;
                let cached = position.checked_sub(cache_from).and_then(|at| g.cached.get(at));
                let entry = cached.and_then(|c| c.entry.clone());
                let bytes = cached.filter(|_| entry.is_none()).map(|c| c.bytes.clone());
                wanted.push(EntryRef {
                    entry,
                    bytes,
                    segment,
                    offset,
                    len,
                });
            }
            wanted
        };
        let mut out = Vec::with_capacity(wanted.len());
        for EntryRef {
            entry,
            bytes,
            segment,
            offset,
            len,
        } in wanted
        {
            let entry = match (entry, bytes) {
                (Some(entry), _) => entry,
                (None, Some(b)) => decode(&b)?,
                (None, None) => {
                    let file = self
                        .lock()?
                        .files
                        .get(&segment)
                        .cloned()
                        .ok_or_else(|| io_err(format!("segment {segment} is gone")))?;
                    let mut buf = vec![0u8; len as usize];
                    file.read_exact_at(&mut buf, offset)?;
                    decode(&buf)?
                }
            };
            out.push(entry);
        }
        Ok(out)
    }

    /// Lets go of the decoded copies of `group`'s entries up to `upto`, once applied; they are
    /// dropped here, outside the lock, on the caller's thread.
    ///
    /// # Errors
    /// When the lock is poisoned.
    pub fn release_decoded(&self, group: GroupId, upto: u64) -> io::Result<()> {
        let released = match self.lock()?.groups.get_mut(&group) {
            Some(g) => g.release_decoded(upto),
            None => Vec::new(),
        };
        drop(released);
        Ok(())
    }

    /// The last log id of `group` (its last entry, else its purge point) and its purge point.
    ///
    /// # Errors
    /// When the lock is poisoned.
    pub fn log_state(&self, group: GroupId) -> io::Result<(Option<LogId>, Option<LogId>)> {
        let state = self.lock()?;
        Ok(match state.groups.get(&group) {
            Some(g) => (g.last_log_id().or(g.purged), g.purged),
            None => (None, None),
        })
    }

    pub fn vote(&self, group: GroupId) -> io::Result<Option<Vote>> {
        Ok(self.lock()?.groups.get(&group).and_then(|g| g.vote))
    }

    pub fn committed(&self, group: GroupId) -> io::Result<Option<LogId>> {
        Ok(self.lock()?.groups.get(&group).and_then(|g| g.committed))
    }

    /// Records the vote; durable after the next sync.
    ///
    /// # Errors
    /// When the log failed before, or on encoding errors.
    pub fn save_vote(&self, group: GroupId, vote: &Vote) -> io::Result<()> {
        let body = encode(vote)?;
        let mut state = self.lock()?;
        state.check()?;
        state.record(KIND_VOTE, group, &[&body])?;
        state.groups.entry(group).or_default().vote = Some(*vote);
        Ok(())
    }

    /// # Errors
    /// As [`Wal::save_vote`].
    pub fn save_committed(&self, group: GroupId, committed: Option<LogId>) -> io::Result<()> {
        let body = encode(&committed)?;
        let mut state = self.lock()?;
        state.check()?;
        state.record(KIND_COMMITTED, group, &[&body])?;
        state.groups.entry(group).or_default().committed = committed;
        Ok(())
    }

    /// Removes the entries after `last` (all of them for `None`).
    ///
    /// # Errors
    /// As [`Wal::save_vote`].
    pub fn truncate_after(&self, group: GroupId, last: Option<LogId>) -> io::Result<()> {
        let from = last.map_or(0, |l| l.index() + 1);
        let mut state = self.lock()?;
        state.check()?;
        state.record(KIND_TRUNCATE, group, &[&from.to_le_bytes()])?;
        if let Some(g) = state.groups.get_mut(&group) {
            g.truncate_from(from);
        }
        Ok(())
    }

    /// Removes the entries up to and including `log_id`, and deletes segments nothing needs.
    ///
    /// # Errors
    /// As [`Wal::save_vote`].
    pub fn purge(&self, group: GroupId, log_id: LogId) -> io::Result<()> {
        let body = encode(&log_id)?;
        let mut state = self.lock()?;
        state.check()?;
        state.record(KIND_PURGE, group, &[&body])?;
        state.groups.entry(group).or_default().purge_to(log_id);
        Ok(())
    }

    /// Forgets a group (its replica left this node): a later group of the same id starts empty.
    ///
    /// # Errors
    /// As [`Wal::save_vote`].
    pub fn drop_group(&self, group: GroupId) -> io::Result<()> {
        let mut state = self.lock()?;
        state.check()?;
        state.record(KIND_DROP, group, &[])?;
        state.groups.remove(&group);
        Ok(())
    }

    /// Writes everything appended so far and makes it durable: the flusher thread's one job.
    /// A failure is permanent: every later call fails, so nothing written after it is acknowledged.
    ///
    /// # Errors
    /// The write or sync error (or the earlier one).
    pub fn write_and_sync(&self, fsync: bool) -> io::Result<()> {
        // What may be deleted is decided with the records taken: the purges it rests on are in them.
        let (chunks, oldest_needed) = {
            let mut state = self.lock()?;
            state.check()?;
            (std::mem::take(&mut state.pending), state.oldest_needed())
        };
        let result = self.write_chunks(&chunks, fsync);
        let mut state = self.lock()?;
        match result {
            Ok(()) => {
                for chunk in &chunks {
                    *state.written.entry(chunk.segment).or_default() += chunk.bytes.len() as u64;
                }
                state.delete_below(oldest_needed);
                if state.spare.is_none() && !state.preparing {
                    state.preparing = true;
                    let (wal, next, size) = (self.clone(), state.active + 1, state.segment_bytes);
                    let spawned = std::thread::Builder::new()
                        .name("ivory-wal-spare".into())
                        .spawn(move || wal.prepare_spare(next, size));
                    if spawned.is_err() {
                        state.preparing = false;
                    }
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "write-ahead log write failed: no further write is acknowledged");
                state.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn write_chunks(&self, chunks: &[Chunk], fsync: bool) -> io::Result<()> {
        let mut writer = self
            .shared
            .writer
            .lock()
            .map_err(|_| io_err("write-ahead log writer poisoned"))?;
        for chunk in chunks {
            if writer.as_ref().is_none_or(|(n, _)| *n != chunk.segment) {
                // The previous segment is complete: make it durable before moving on.
                if let Some((_, old)) = writer.as_ref()
                    && fsync
                {
                    old.sync_data()?;
                }
                let file = OpenOptions::new()
                    .write(true)
                    .open(segment_path(&self.shared.dir, chunk.segment))?;
                *writer = Some((chunk.segment, file));
            }
            if let Some((_, file)) = writer.as_ref() {
                file.write_all_at(&chunk.bytes, chunk.start)?;
            }
        }
        if fsync && let Some((_, file)) = writer.as_ref() {
            file.sync_data()?;
        }
        Ok(())
    }

    fn prepare_spare(&self, n: u64, size: u64) {
        let path = segment_path(&self.shared.dir, n);
        let created = create_segment(&self.shared.dir, n, size);
        if let Err(e) = &created {
            tracing::warn!(error = %e, file = %path.display(), "cannot prepare the next log segment");
            let _ = std::fs::remove_file(&path);
            // Not again at every round (a full disk): the active segment grows meanwhile.
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        if let Ok(mut state) = self.shared.state.lock() {
            state.preparing = false;
            if created.is_ok() {
                state.spare = Some(n);
            }
        }
    }

    /// Fails the log for good after a failure outside it (sled's flush, an injected fault): a
    /// round that failed anywhere is never followed by an acknowledged one.
    pub fn poison(&self, why: &str) {
        if let Ok(mut state) = self.shared.state.lock()
            && state.failed.is_none()
        {
            state.failed = Some(why.to_string());
        }
    }

    /// Waits (up to 10 s) until no spare segment is being prepared; false if one still is.
    /// Without a spare ready a segment grows past its size instead of rotating, so a test counting
    /// rotations on a loaded machine waits for it.
    #[cfg(test)]
    fn wait_for_spare(&self) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let preparing = self.shared.state.lock().is_ok_and(|s| s.preparing);
            if !preparing {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Live segments and their sizes, for tests and metrics.
    pub fn segments(&self) -> io::Result<Vec<(u64, u64)>> {
        Ok(self.lock()?.written.iter().map(|(n, l)| (*n, *l)).collect())
    }
}

impl WalState {
    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some(e) => Err(io_err(format!("write-ahead log failed earlier: {e}"))),
            None => Ok(()),
        }
    }

    /// Queues one record; returns its segment and the record's offset in it.
    fn record(&mut self, kind: u8, group: GroupId, body: &[&[u8]]) -> io::Result<(u64, u64)> {
        let size = (HEADER + 1 + 4 + body.iter().map(|b| b.len()).sum::<usize>()) as u64;
        if size > u64::from(RECORD_MAX) {
            return Err(io_err(format!("log record of {size} bytes is too large")));
        }
        // Without a spare ready the segment grows past its size for a moment rather than
        // stalling every append while a new file is zero-filled.
        if self.active_len + size > self.segment_bytes
            && self.active_len > SEGMENT_MAGIC.len() as u64
            && self.spare == Some(self.active + 1)
        {
            self.rotate()?;
        }
        Ok((self.active, self.queue(kind, group, body)))
    }

    fn queue(&mut self, kind: u8, group: GroupId, body: &[&[u8]]) -> u64 {
        let segment = self.active;
        if self.pending.last().is_none_or(|c| c.segment != segment) {
            self.pending.push(Chunk {
                segment,
                start: self.active_len,
                bytes: Vec::new(),
            });
        }
        let offset = self.active_len;
        if let Some(chunk) = self.pending.last_mut() {
            let before = chunk.bytes.len();
            put_record(&mut chunk.bytes, kind, group, body);
            self.active_len += (chunk.bytes.len() - before) as u64;
        }
        offset
    }

    /// Starts the next segment with a checkpoint of every group's vote, committed id and purge
    /// point, so that older segments are needed only for the entries they hold.
    fn rotate(&mut self) -> io::Result<()> {
        let next = self.active + 1;
        self.spare = None;
        self.files
            .insert(next, Arc::new(File::open(segment_path(&self.dir, next))?));
        self.written.insert(next, SEGMENT_MAGIC.len() as u64);
        self.active = next;
        self.active_len = SEGMENT_MAGIC.len() as u64;
        let mut checkpoint: Vec<(u8, GroupId, Vec<u8>)> = Vec::new();
        let mut ids: Vec<&GroupId> = self.groups.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let g = &self.groups[id];
            if let Some(vote) = &g.vote {
                checkpoint.push((KIND_VOTE, *id, encode(vote)?));
            }
            checkpoint.push((KIND_COMMITTED, *id, encode(&g.committed)?));
            if let Some(purged) = &g.purged {
                checkpoint.push((KIND_PURGE, *id, encode(purged)?));
            }
        }
        for (kind, group, body) in checkpoint {
            self.queue(kind, group, &[&body]);
        }
        Ok(())
    }

    fn evict_cache(&mut self, group: GroupId) {
        let written = &self.written;
        let Some(g) = self.groups.get_mut(&group) else { return };
        while g.cached_bytes > GROUP_CACHE_BYTES && !g.cached.is_empty() {
            let on_disk = g.place(g.cache_from()).is_some_and(|(segment, offset, len)| {
                written.get(&segment).is_some_and(|w| offset + u64::from(len) <= *w)
            });
            if !on_disk {
                break;
            }
            if let Some(gone) = g.cached.pop_front() {
                g.uncache(&gone);
            }
        }
    }

    /// The oldest segment that holds a live entry (or the active one).
    fn oldest_needed(&self) -> u64 {
        self.groups
            .values()
            .filter_map(|g| g.runs.front().map(|r| r.segment))
            .min()
            .unwrap_or(self.active)
            .min(self.active)
    }

    fn delete_below(&mut self, oldest_needed: u64) {
        let doomed: Vec<u64> = self.files.range(..oldest_needed).map(|(n, _)| *n).collect();
        for n in doomed {
            self.files.remove(&n);
            self.written.remove(&n);
            if let Err(e) = std::fs::remove_file(segment_path(&self.dir, n)) {
                tracing::warn!(segment = n, error = %e, "cannot delete an old log segment");
            }
        }
    }
}

/// Creates a segment written with zeros to its full size, as PostgreSQL does with its WAL: an
/// `fdatasync` after overwriting written blocks flushes data only, while growing a file (or
/// writing into `fallocate`d, unwritten extents) also commits the file system's journal.
fn create_segment(dir: &Path, n: u64, size: u64) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(segment_path(dir, n))?;
    file.write_all(SEGMENT_MAGIC)?;
    let zeros = vec![0u8; 1 << 20];
    let mut len = SEGMENT_MAGIC.len() as u64;
    while len < size {
        let n = zeros.len().min((size - len) as usize);
        file.write_all(&zeros[..n])?;
        len += n as u64;
    }
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(file)
}

/// Whether a segment holds no record (a spare never used, or one whose creation was cut short).
fn segment_is_blank(path: &Path) -> io::Result<bool> {
    let bytes = std::fs::read(path)?;
    let body = if bytes.starts_with(SEGMENT_MAGIC) {
        &bytes[SEGMENT_MAGIC.len()..]
    } else if SEGMENT_MAGIC.starts_with(&bytes) {
        &[]
    } else {
        &bytes[..]
    };
    Ok(body.iter().all(|b| *b == 0))
}

/// Replays one segment into `groups`; returns its valid length. A torn tail of the last segment
/// is cut off (never acknowledged); damage anywhere else is an error.
fn replay_segment(path: &Path, segment: u64, last: bool, groups: &mut HashMap<GroupId, GroupLog>) -> io::Result<u64> {
    let bytes = std::fs::read(path)?;
    if bytes.len() < SEGMENT_MAGIC.len() || &bytes[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        return Err(corrupt(path, 0, "not an Ivory log segment of a known version"));
    }
    let mut at = SEGMENT_MAGIC.len();
    while at < bytes.len() {
        let torn = |what: &str| -> io::Result<u64> {
            if last {
                // Zero what follows, so that complete records written after the torn one (never
                // acknowledged) cannot come back once new records cover part of the gap.
                tracing::warn!(file = %path.display(), offset = at, what, "cutting off a torn log tail");
                let end = bytes.iter().rposition(|b| *b != 0).map_or(at, |p| p + 1).max(at);
                let file = OpenOptions::new().write(true).open(path)?;
                file.write_all_at(&vec![0u8; end - at], at as u64)?;
                file.sync_data()?;
                Ok(at as u64)
            } else {
                Err(corrupt(path, at as u64, what))
            }
        };
        let Some(header) = bytes.get(at..at + HEADER) else {
            if bytes[at..].iter().all(|b| *b == 0) {
                break;
            }
            return torn("short record header");
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 && crc == 0 {
            // The preallocated, never written rest of the segment.
            if bytes[at..].iter().all(|b| *b == 0) {
                break;
            }
            return torn("zeros inside the records");
        }
        if !(5..=RECORD_MAX).contains(&len) {
            return torn("impossible record length");
        }
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len as usize) else {
            return torn("short record");
        };
        if crc32fast::hash(payload) != crc {
            return torn("checksum mismatch");
        }
        let kind = payload[0];
        let group = GroupId::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
        let body = &payload[5..];
        let bad = |what: String| corrupt(path, at as u64, &what);
        match kind {
            KIND_ENTRY => {
                let id_len = body
                    .get(..2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
                    .ok_or_else(|| bad("entry without a log id".into()))?;
                let id_bytes = body.get(2..2 + id_len).ok_or_else(|| bad("short log id".into()))?;
                let log_id: LogId = decode(id_bytes)?;
                let entry_len = body.len() - 2 - id_len;
                let g = groups.entry(group).or_default();
                if g.last_index().is_none() && g.purged.as_ref().is_some_and(|p| p.index() >= log_id.index()) {
                    // Purged before this record was replayed (a later checkpoint said so).
                } else {
                    // `len` <= RECORD_MAX was checked above: the entry's length fits a u32.
                    let offset = (at + HEADER + 5 + 2 + id_len) as u64;
                    g.push(log_id, segment, offset, entry_len as u32, None)
                        .map_err(|e| bad(e.to_string()))?;
                }
            }
            KIND_VOTE => groups.entry(group).or_default().vote = Some(decode(body)?),
            KIND_COMMITTED => groups.entry(group).or_default().committed = decode(body)?,
            KIND_PURGE => {
                let log_id: LogId = decode(body)?;
                let g = groups.entry(group).or_default();
                if g.purged.is_none_or(|p| p.index() < log_id.index()) {
                    g.purge_to(log_id);
                }
            }
            KIND_TRUNCATE => {
                let from = body
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes)
                    .ok_or_else(|| bad("short truncation".into()))?;
                if let Some(g) = groups.get_mut(&group) {
                    g.truncate_from(from);
                }
            }
            KIND_DROP => {
                groups.remove(&group);
            }
            other => return Err(bad(format!("unknown record kind {other}"))),
        }
        at += HEADER + len as usize;
    }
    Ok(at as u64)
}

#[cfg(test)]
mod tests {
    use openraft::testing::log_id;

    use super::*;

    fn id(term: u64, index: u64) -> LogId {
        log_id::<TypeConfig>(term, 1, index)
    }

    /// What a group held per entry before runs: the reference the compact form must match.
    #[derive(Clone, Debug, PartialEq)]
    struct Model {
        log_id: LogId,
        segment: u64,
        offset: u64,
        len: u32,
        cached: bool,
    }

    /// Every live entry of `g` as the reference form, through the accessors readers use.
    fn expand(g: &GroupLog) -> Vec<Model> {
        (0..g.entries.len())
            .map(|position| {
                let index = g.first_index + position as u64;
                let run = g.run_of(index).expect("a run holds every entry");
                let (segment, offset, len) = g.place(position).expect("placed");
                Model {
                    log_id: LogId::new(run.leader, index),
                    segment,
                    offset,
                    len,
                    cached: position >= g.cache_from(),
                }
            })
            .collect()
    }

    fn check(g: &GroupLog, model: &[Model], what: &str) {
        assert_eq!(expand(g), model, "{what}");
        assert_eq!(g.last_log_id(), model.last().map(|m| m.log_id), "{what}");
        let cached: usize = g.cached.iter().map(|c| c.bytes.len()).sum();
        assert_eq!(g.cached_bytes, cached, "{what}");
        // The decoded entries are the newest cached ones, within their budget (at least one).
        let decoded = g.cached.iter().rev().take_while(|c| c.entry.is_some()).count();
        assert_eq!(g.decoded, decoded, "{what}: decoded entries");
        assert_eq!(
            g.cached.iter().filter(|c| c.entry.is_some()).count(),
            decoded,
            "{what}: decoded entries are the newest"
        );
        let decoded_bytes: usize = g.cached.iter().rev().take(decoded).map(|c| c.bytes.len()).sum();
        assert_eq!(g.decoded_bytes, decoded_bytes, "{what}");
        assert!(
            decoded <= 1 || decoded_bytes <= GROUP_DECODED_BYTES,
            "{what}: decoded within budget"
        );
        assert!(
            g.runs.iter().zip(g.runs.iter().skip(1)).all(|(a, b)| a.first < b.first),
            "{what}: runs in order"
        );
        match g.runs.get(1) {
            Some(second) => assert!(second.first > g.first_index, "{what}: no run before the first entry's"),
            None => assert_eq!(g.runs.is_empty(), g.entries.is_empty(), "{what}"),
        }
        assert!(
            g.runs
                .back()
                .is_none_or(|r| g.last_index().is_some_and(|last| r.first <= last)),
            "{what}: no run after the last entry"
        );
    }

    fn push(g: &mut GroupLog, model: &mut Vec<Model>, m: Model) {
        // Every cached entry comes decoded: `push` keeps only the newest so.
        let cached = m
            .cached
            .then(|| Cached::new(Arc::<[u8]>::from(vec![7u8; m.len as usize]), Entry::new_blank(m.log_id)));
        g.push(m.log_id, m.segment, m.offset, m.len, cached).expect("push");
        model.retain(|e| e.log_id.index() < m.log_id.index());
        if !m.cached {
            model.iter_mut().for_each(|e| e.cached = false);
        }
        model.push(m);
    }

    /// The per-entry record is what a group keeps for every live entry (up to 200,000 commands'
    /// worth per shard): 64 bytes before the runs, 8 now.
    #[test]
    fn the_per_entry_record_stays_small() {
        assert!(
            std::mem::size_of::<EntrySlot>() <= 8,
            "{}",
            std::mem::size_of::<EntrySlot>()
        );
    }

    #[test]
    fn leader_runs_follow_truncation_and_purge() {
        let mut g = GroupLog::default();
        let mut model = Vec::new();
        let mut offset = 100;
        // Term 1 for 1..=5, term 2 for 6..=10, in segment 3.
        for index in 1..=10 {
            let term = if index <= 5 { 1 } else { 2 };
            let m = Model {
                log_id: id(term, index),
                segment: 3,
                offset,
                len: 40,
                cached: true,
            };
            offset += 60;
            push(&mut g, &mut model, m);
        }
        check(&g, &model, "two terms");
        assert_eq!(g.runs.len(), 2);

        // A truncation that cuts into the second run keeps its head.
        g.truncate_from(8);
        model.truncate(7);
        check(&g, &model, "truncated into a run");
        assert_eq!(g.runs.len(), 2);
        assert_eq!(g.last_log_id(), Some(id(2, 7)));

        // A new leader appends after the truncation: a third run from index 8.
        for index in 8..=9 {
            let m = Model {
                log_id: id(4, index),
                segment: 3,
                offset,
                len: 10,
                cached: true,
            };
            offset += 30;
            push(&mut g, &mut model, m);
        }
        check(&g, &model, "a new leader after the truncation");
        assert_eq!(g.runs.len(), 3);
        assert_eq!(g.last_log_id(), Some(id(4, 9)));

        // A truncation at a run's first entry removes the whole run.
        g.truncate_from(8);
        model.truncate(7);
        check(&g, &model, "truncated at a run's start");
        assert_eq!(g.runs.len(), 2);
        assert_eq!(g.last_log_id(), Some(id(2, 7)));

        // An overwrite by push (replay of a later leader's entry) truncates as well.
        push(
            &mut g,
            &mut model,
            Model {
                log_id: id(5, 6),
                segment: 4,
                offset: 8,
                len: 12,
                cached: true,
            },
        );
        check(&g, &model, "overwritten from 6");
        assert_eq!(g.runs.len(), 2);

        // A purge into the first run keeps it; one past it drops it whole.
        g.purge_to(id(1, 3));
        model.drain(..3);
        check(&g, &model, "purged into the first run");
        assert_eq!((g.first_index, g.runs.len()), (4, 2));
        g.purge_to(id(1, 5));
        model.drain(..2);
        check(&g, &model, "purged the first run");
        assert_eq!((g.first_index, g.runs.len()), (6, 1));
        assert_eq!(g.runs.front().map(|r| r.segment), Some(4));

        // Purging everything leaves an empty log that starts after the purge point.
        g.purge_to(id(5, 9));
        model.clear();
        check(&g, &model, "purged everything");
        assert_eq!((g.first_index, g.last_index(), g.last_log_id()), (10, None, None));
        push(
            &mut g,
            &mut model,
            Model {
                log_id: id(6, 10),
                segment: 4,
                offset: 100,
                len: 5,
                cached: true,
            },
        );
        check(&g, &model, "appended after purging everything");
        g.truncate_from(0);
        model.clear();
        check(&g, &model, "truncated everything");
        assert!(g.runs.is_empty() && g.cached.is_empty() && g.cached_bytes == 0);
    }

    #[test]
    fn a_run_ends_where_its_offsets_stop_fitting() {
        let mut g = GroupLog::default();
        let mut model = Vec::new();
        let base = 5;
        for (index, offset) in [
            (1, base),
            (2, base + u64::from(u32::MAX)),
            (3, base + u64::from(u32::MAX) + 1),
        ] {
            let m = Model {
                log_id: id(1, index),
                segment: 1,
                offset,
                len: 1,
                cached: false,
            };
            push(&mut g, &mut model, m);
        }
        check(&g, &model, "offsets past 4 GiB of a run's base");
        assert_eq!(g.runs.len(), 2);
        // An offset below the run's base (never written so, but read from disk) starts a run too.
        push(
            &mut g,
            &mut model,
            Model {
                log_id: id(1, 4),
                segment: 1,
                offset: 1,
                len: 1,
                cached: false,
            },
        );
        check(&g, &model, "an offset before the base");
        assert_eq!(g.runs.len(), 3);
    }

    /// Random appends, overwrites, truncations, purges and evictions against the reference form.
    #[test]
    fn runs_match_one_record_per_entry() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..200 {
            let mut g = GroupLog::default();
            let mut model: Vec<Model> = Vec::new();
            let (mut term, mut segment, mut offset) = (1, 1, 8);
            for step in 0..100 {
                let what = format!("round {round} step {step}");
                let next_index = g.last_index().map_or(g.first_index.max(1), |l| l + 1);
                match next(10) {
                    0..=4 => {
                        if next(4) == 0 {
                            term += 1;
                        }
                        if next(6) == 0 {
                            segment += 1;
                            offset = 8;
                        }
                        // Replay overwrites an entry at or before the last now and then.
                        let index = if next(8) == 0 {
                            next_index.saturating_sub(next(4)).max(1)
                        } else {
                            next_index
                        };
                        if index < g.first_index {
                            continue;
                        }
                        // Now and then large, so that decoded entries go past their budget.
                        let len = if next(4) == 0 {
                            8_000 + next(30_000)
                        } else {
                            1 + next(50)
                        } as u32;
                        let m = Model {
                            log_id: id(term, index),
                            segment,
                            offset,
                            len,
                            cached: next(10) != 0,
                        };
                        offset += u64::from(len) + 20;
                        push(&mut g, &mut model, m);
                    }
                    5 | 6 => {
                        let from = next_index.saturating_sub(next(6));
                        g.truncate_from(from);
                        model.retain(|m| m.log_id.index() < from);
                    }
                    7 if next(2) == 0 => {
                        // The apply releases what it applied: decoded copies only, bytes stay.
                        let upto = g.first_index + next(g.entries.len() as u64 + 1);
                        let before = g.cached.len();
                        g.release_decoded(upto);
                        assert_eq!(g.cached.len(), before, "{what}");
                        let first_decoded = g.first_index + (g.cache_from() + g.cached.len() - g.decoded) as u64;
                        assert!(g.decoded == 0 || first_decoded > upto, "{what}: released up to {upto}");
                    }
                    7 | 8 => {
                        let upto = g.first_index + next(5);
                        g.purge_to(id(term, upto));
                        model.retain(|m| m.log_id.index() > upto);
                        if model.is_empty() {
                            assert_eq!(g.first_index, upto + 1, "{what}");
                        }
                    }
                    _ => {
                        if let Some(gone) = g.cached.pop_front() {
                            g.uncache(&gone);
                            let at = model.iter().position(|m| m.cached).expect("a cached entry");
                            model[at].cached = false;
                        }
                    }
                }
                check(&g, &model, &what);
                if let Some(first) = model.first() {
                    assert_eq!(g.first_index, first.log_id.index(), "{what}");
                }
            }
        }
    }

    /// Through the log itself, with segments rotating under the runs: after a reopen (replay),
    /// the last log id is that of the last entry written, across terms, truncations and purges.
    #[test]
    fn the_last_log_id_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        // About 600 bytes each: a 4 KiB segment holds a few.
        let entry = |term, index| {
            Entry::new_normal(
                id(term, index),
                crate::GroupEntry::Shard(std::sync::Arc::new(ivory_core::Batch {
                    ts_ms: index,
                    commands: vec![ivory_core::Command::PutConfig {
                        environment: format!("env-{index}"),
                        config_json: "x".repeat(600),
                    }],
                })),
            )
        };
        let write = |wal: &Wal, entries: Vec<Entry>| {
            for e in entries {
                wal.append(1, [e]).expect("append");
                wal.write_and_sync(true).expect("sync");
                assert!(wal.wait_for_spare(), "the next segment was prepared within 10 s");
            }
        };
        {
            let wal = Wal::open_with(dir.path(), 4096).expect("open");
            write(&wal, (1..=40).map(|i| entry(1 + i / 10, i)).collect());
            wal.truncate_after(1, Some(id(3, 25))).expect("truncate");
            write(&wal, (26..=60).map(|i| entry(7, i)).collect());
            let segments = wal.segments().expect("segments").len();
            assert!(segments > 2, "segments rotated: {segments}");
            wal.purge(1, id(1, 8)).expect("purge");
            wal.write_and_sync(true).expect("sync");
            assert_eq!(wal.log_state(1).expect("state"), (Some(id(7, 60)), Some(id(1, 8))));
        }
        let wal = Wal::open_with(dir.path(), 4096).expect("reopen");
        assert_eq!(wal.log_state(1).expect("state"), (Some(id(7, 60)), Some(id(1, 8))));
        let expected: Vec<Entry> = (9..=60)
            .map(|i| if i <= 25 { entry(1 + i / 10, i) } else { entry(7, i) })
            .collect();
        assert_eq!(wal.entries(1, 0, None).expect("read"), expected);
        wal.truncate_after(1, Some(id(7, 30))).expect("truncate");
        assert_eq!(wal.log_state(1).expect("state").0, Some(id(7, 30)));
        assert_eq!(wal.entries(1, 29, None).expect("read"), expected[20..22].to_vec());
    }
}
