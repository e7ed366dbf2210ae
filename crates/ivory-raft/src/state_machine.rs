//! `RaftStateMachine`: the shard's state lives in memory ([`ivory_core::Shard`]); it is persisted
//! through snapshots stored in `g{id}.sm`. After a restart the shard is restored from the stored
//! snapshot and openraft re-applies the committed log after it.

use std::io;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures::{Stream, TryStreamExt};
use ivory_core::{EVENT_RETENTION_MS_DEFAULT, Shard};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use crate::log_store::{decode, encode};
use crate::storage::Flusher;
use crate::{TypeConfig, io_err};

const KEY_SNAPSHOT: &[u8] = b"snapshot";

/// The shard state, shared between the state machine task (writer) and the read path.
pub type SharedShard = Arc<RwLock<Shard>>;

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMetaOf<TypeConfig>,
    data: Vec<u8>,
}

pub struct ShardStateMachine {
    shard: SharedShard,
    applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    tree: sled::Tree,
    flusher: Flusher,
}

fn poisoned() -> io::Error {
    io_err("shard lock poisoned")
}

impl ShardStateMachine {
    pub(crate) fn open(tree: sled::Tree, flusher: Flusher) -> io::Result<ShardStateMachine> {
        let stored: Option<StoredSnapshot> = match tree.get(KEY_SNAPSHOT).map_err(io_err)? {
            Some(bytes) => Some(decode(&bytes)?),
            None => None,
        };
        let mut sm = ShardStateMachine {
            shard: Arc::new(RwLock::new(Shard::new(EVENT_RETENTION_MS_DEFAULT))),
            applied: None,
            membership: Default::default(),
            tree,
            flusher,
        };
        if let Some(stored) = stored {
            sm.load(stored)?;
        }
        Ok(sm)
    }

    /// The shard state, for reads. Readers must first pass openraft's read-index check.
    pub fn shard(&self) -> SharedShard {
        self.shard.clone()
    }

    fn load(&mut self, stored: StoredSnapshot) -> io::Result<()> {
        let shard = Shard::restore(&stored.data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        *self.shard.write().map_err(|_| poisoned())? = shard;
        self.applied = stored.meta.last_log_id;
        self.membership = stored.meta.last_membership.clone();
        Ok(())
    }
}

async fn store_snapshot(tree: &sled::Tree, flusher: &Flusher, stored: &StoredSnapshot) -> io::Result<()> {
    tree.insert(KEY_SNAPSHOT, encode(stored)?).map_err(io_err)?;
    flusher.flush().await
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
        while let Some((entry, responder)) = entries.try_next().await? {
            let started = Instant::now();
            let results = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(batch) => self.shard.write().map_err(|_| poisoned())?.apply(&batch.0),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), membership);
                    Vec::new()
                }
            };
            self.applied = Some(entry.log_id);
            metrics::histogram!("ivory_raft_apply_seconds").record(started.elapsed().as_secs_f64());
            if let Some(responder) = responder {
                responder.send(results);
            }
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        Some(self.get_snapshot_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Runs on the state machine task between applies: the copy matches `applied` exactly.
        let data = match self.shard.read() {
            Ok(shard) => Ok(shard.snapshot()),
            Err(_) => Err(poisoned()),
        };
        ShardSnapshotBuilder {
            meta: SnapshotMetaOf::<TypeConfig> {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
            },
            data,
            tree: self.tree.clone(),
            flusher: self.flusher.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot,
        };
        store_snapshot(&self.tree, &self.flusher, &stored).await?;
        self.load(stored)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>, io::Error> {
        // The builder stores snapshots without going through this task: read the latest back.
        let Some(bytes) = self.tree.get(KEY_SNAPSHOT).map_err(io_err)? else {
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
    flusher: Flusher,
}

impl RaftSnapshotBuilder<TypeConfig> for ShardSnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, Vec<u8>>, io::Error> {
        let data = match &self.data {
            Ok(data) => data.clone(),
            Err(e) => return Err(io::Error::new(e.kind(), e.to_string())),
        };
        let stored = StoredSnapshot {
            meta: self.meta.clone(),
            data,
        };
        store_snapshot(&self.tree, &self.flusher, &stored).await?;
        Ok(SnapshotOf::<TypeConfig, Vec<u8>> {
            meta: stored.meta,
            snapshot: stored.data,
        })
    }
}
