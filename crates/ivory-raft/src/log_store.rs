//! `RaftLogStorage` of one group on the node's write-ahead log ([`crate::wal`]): entries, vote,
//! committed id and purge point all live there; an append is acknowledged by the node's flusher
//! thread once the round of writes that holds it is fdatasync'ed.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::OptionalSend;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::storage::Flusher;
use crate::wal::Wal;
use crate::{GroupId, TypeConfig, io_err};

/// The log of one group. Cheap to clone.
#[derive(Clone)]
pub struct GroupLogStore {
    group: GroupId,
    wal: Wal,
    flusher: Flusher,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(io_err)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

impl GroupLogStore {
    pub(crate) fn new(group: GroupId, wal: Wal, flusher: Flusher) -> GroupLogStore {
        GroupLogStore { group, wal, flusher }
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

impl RaftLogReader<TypeConfig> for GroupLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        self.wal
            .entries(self.group, range_start(&range), range_end_excluded(&range))
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.wal.vote(self.group)
    }
}

impl RaftLogStorage<TypeConfig> for GroupLogStore {
    type LogReader = GroupLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let (last_log_id, last_purged_log_id) = self.wal.log_state(self.group)?;
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        self.wal.save_vote(self.group, vote)?;
        self.flusher.flush_log().await
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        // Durable with the next round; openraft only needs it to re-apply faster after restart.
        self.wal.save_committed(self.group, committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        self.wal.committed(self.group)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Log index continuity: one append holds consecutive entries; the write-ahead log checks
        // that the first follows the group's last entry (debug builds).
        let group = self.group;
        let mut previous: Option<u64> = None;
        let entries = entries.into_iter().inspect(move |entry| {
            let index = entry.log_id.index();
            debug_assert!(
                previous.is_none_or(|p| index == p + 1),
                "group {group}: entry {index} appended after {previous:?}"
            );
            previous = Some(index);
        });
        self.wal.append(self.group, entries)?;
        // Acknowledged from the flusher thread once written and fdatasync'ed, together with every
        // other group's appends that queued meanwhile.
        self.flusher
            .log_flush_then(self.group, Box::new(move |r| callback.io_completed(r)));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        self.wal.truncate_after(self.group, last_log_id)?;
        self.flusher.flush_log().await
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        self.wal.purge(self.group, log_id)?;
        metrics::counter!("ivory_raft_log_purges_total", "group" => self.group.to_string()).increment(1);
        self.flusher.flush_log().await
    }
}
