//! `RaftLogStorage` on sled: `g{id}.log` holds entries keyed by big-endian index, `g{id}.meta`
//! holds the vote, the committed log id and the last purged log id.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::OptionalSend;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::storage::Flusher;
use crate::{TypeConfig, io_err};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"purged";

/// The log of one group. Cheap to clone: trees are handles.
#[derive(Clone)]
pub struct SledLogStore {
    log: sled::Tree,
    meta: sled::Tree,
    flusher: Flusher,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(io_err)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

impl SledLogStore {
    pub(crate) fn new(log: sled::Tree, meta: sled::Tree, flusher: Flusher) -> SledLogStore {
        SledLogStore { log, meta, flusher }
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.meta.get(key).map_err(io_err)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogIdOf<TypeConfig>>> {
        match self.log.last().map_err(io_err)? {
            Some((_, bytes)) => {
                let entry: EntryOf<TypeConfig> = decode(&bytes)?;
                Ok(Some(entry.log_id()))
            }
            None => Ok(None),
        }
    }

    /// Removes every entry with index `from` or above, last first, so that a crash half-way
    /// leaves a contiguous log.
    fn remove_from(&self, from: u64) -> io::Result<()> {
        let keys: Vec<sled::IVec> = self
            .log
            .range(from.to_be_bytes()..)
            .keys()
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        for k in keys.iter().rev() {
            self.log.remove(k).map_err(io_err)?;
        }
        Ok(())
    }
}

fn range_start(range: &impl RangeBounds<u64>) -> u64 {
    match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    }
}

/// `None` = unbounded above.
fn range_end_excluded(range: &impl RangeBounds<u64>) -> Option<u64> {
    match range.end_bound() {
        Bound::Included(e) => e.checked_add(1),
        Bound::Excluded(e) => Some(*e),
        Bound::Unbounded => None,
    }
}

impl RaftLogReader<TypeConfig> for SledLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        let start = range_start(&range);
        let iter = match range_end_excluded(&range) {
            Some(end) if end <= start => return Ok(Vec::new()),
            Some(end) => self.log.range(start.to_be_bytes()..end.to_be_bytes()),
            None => self.log.range(start.to_be_bytes()..),
        };
        let mut entries = Vec::new();
        for kv in iter {
            let (_, bytes) = kv.map_err(io_err)?;
            entries.push(decode(&bytes)?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.read_meta(KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for SledLogStore {
    type LogReader = SledLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogIdOf<TypeConfig>> = self.read_meta(KEY_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        self.meta.insert(KEY_VOTE, encode(vote)?).map_err(io_err)?;
        self.flusher.flush().await
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        // Durable with the next flush; openraft only needs it to re-apply faster after restart.
        self.meta.insert(KEY_COMMITTED, encode(&committed)?).map_err(io_err)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        Ok(self.read_meta::<Option<LogIdOf<TypeConfig>>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        for entry in entries {
            let key = entry.index().to_be_bytes();
            self.log.insert(key, encode(&entry)?).map_err(io_err)?;
        }
        // Acknowledged from the flusher thread once flushed and fsynced, together with every
        // other group's appends that queued meanwhile.
        self.flusher.flush_then(Box::new(move |r| callback.io_completed(r)));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        let from = match &last_log_id {
            Some(id) => id.index() + 1,
            None => 0,
        };
        self.remove_from(from)?;
        self.flusher.flush().await
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        // Record the purge point first: entries at or below it are ignored from then on.
        self.meta.insert(KEY_PURGED, encode(&log_id)?).map_err(io_err)?;
        let keys: Vec<sled::IVec> = self
            .log
            .range(..=log_id.index().to_be_bytes())
            .keys()
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        for k in keys {
            self.log.remove(k).map_err(io_err)?;
        }
        self.flusher.flush().await
    }
}
