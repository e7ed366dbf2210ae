//! The shard state machine: every partition a shard owns, its remembered event ids, and the
//! environments' configurations. `apply` is a pure function of (state, batch).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::allocation::{AllocationQuery, AllocationRecord};
use crate::command::{Batch, CmdResult};
use crate::config::Config;
use crate::hold::{Event, HoldKey, HoldState};
use crate::model::PartitionKey;
use crate::query::{Query, Record};
use crate::state::{EventKey, PartitionState, RememberedEvents};

mod dispatch;
mod invariants;
#[cfg(test)]
mod refusal_tests;

/// How long an event id is remembered (by command timestamps): IV clients retry within hours,
/// order systems replay a day's events after an outage.
pub const EVENT_RETENTION_MS_DEFAULT: u64 = 7 * 24 * 3600 * 1000;

/// The environment name under which a cluster-wide default configuration is stored: environments
/// without a configuration of their own use it (`ivory serve --config FILE`), else the built-in one.
pub const DEFAULT_ENVIRONMENT: &str = "*";

/// Expired event ids forgotten per batch: bounds the cost any one entry pays for clean-up.
const EVENT_PRUNE_PER_BATCH_MAX: usize = 1024;

/// Event ids a shard remembers at most, besides the time bound: past it the oldest are forgotten
/// first, and a retry of a forgotten id is applied again as a new write. At about 100 bytes each
/// this keeps a shard's snapshot well under the 1 GiB a replica accepts.
pub const EVENTS_REMEMBERED_MAX: usize = 1_000_000;

/// Event ids one partition remembers at most: past it the partition's own oldest ids are
/// forgotten first, so that one busy partition cannot push the ids of the quiet partitions of
/// its shard out of the shard's bound ([`EVENTS_REMEMBERED_MAX`]) within minutes.
pub const EVENTS_PER_PARTITION_MAX: usize = 100_000;

/// A read of one shard's state (answered by [`Shard::read`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ReadRequest {
    Query(Query),
    /// The environment's configuration document (JSON).
    Config {
        environment: String,
    },
    /// The partitions of an environment that hold data in this shard.
    Partitions {
        environment: String,
    },
    StateHash,
    /// `allocation/query`.
    Allocations(AllocationQuery),
    /// A hold as this shard knows it.
    Hold(HoldKey),
    /// The shard's hold events from a position (sequence number) on.
    Events {
        from_seq: u64,
        limit: usize,
    },
    /// Holds per status (the operators' console). New variants go last: forwarded reads are
    /// encoded by position.
    HoldCounts,
}

/// The answer to a [`ReadRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ReadResponse {
    Records(Vec<Record>),
    Config(String),
    Partitions(Vec<PartitionKey>),
    StateHash([u8; 32]),
    Allocations(Vec<AllocationRecord>),
    Hold(Option<Box<HoldState>>),
    /// Events from the requested position, and the position after the last event of the shard.
    Events {
        events: Vec<Event>,
        next_seq: u64,
    },
    /// The request breaks a rule of the configuration (e.g. an ATP query's group-by).
    Refused(String),
    /// Holds per status name.
    HoldCounts(BTreeMap<String, u64>),
}

/// Everything that is replicated, serialised as is into snapshots; sorted maps (BTreeMaps, and
/// litemap's sorted vectors for the small ones) or hash maps written sorted by key
/// (`state::sorted_map`), so the bytes (and the state hash) depend on the contents alone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct ShardState {
    clock_ms: u64,
    event_retention_ms: u64,
    /// environment -> configuration document (JSON); absent = the default configuration.
    configs: BTreeMap<String, String>,
    partitions: BTreeMap<PartitionKey, PartitionState>,
    /// Encoded as a map of `state::EventRecord` sorted by key.
    events: RememberedEvents,
    /// Remembered ids in the order they were applied, which is timestamp order (the clock never
    /// goes back): retention prunes from the front.
    events_by_time: VecDeque<(u64, EventKey)>,
    holds: crate::hold::Holds,
}

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is not a valid shard state: {0}")]
    Decode(String),
    #[error("snapshot holds an invalid configuration for environment {environment}: {message}")]
    Config { environment: String, message: String },
}

/// One shard's state machine.
///
/// ```
/// use ivory_core::*;
/// let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
/// let p = PartitionKey::new("env", "usmf", "1", "11");
/// let cell = Cell { product: "T-shirt".into(), dims: Dims::new() };
/// let stock = Command::OnHandChange(OnHandChange {
///     id: "e1".into(), partition: p.clone(), cell: cell.clone(),
///     quantities: [("pos".to_string(), [("inbound".to_string(), Qty::from_i64(5))].into_iter().collect())].into_iter().collect(),
/// });
/// let reserve = Command::Reserve(Reserve {
///     id: "r1".into(), partition: p, cell, measure: MeasureRef::new("iv", "softreservphysical"),
///     quantity: Qty::from_i64(6), availability: Availability::Checked,
/// });
/// let results = shard.apply(&Batch { ts_ms: 1, commands: vec![stock, reserve] });
/// assert_eq!(results[0].outcome, Outcome::Success);
/// assert_eq!(results[1].outcome, Outcome::Insufficient);
/// ```
#[derive(Clone, Debug)]
pub struct Shard {
    state: ShardState,
    /// Compiled configurations, rebuilt from `state.configs`; not part of the snapshot.
    compiled: BTreeMap<String, Arc<Config>>,
    default_config: Arc<Config>,
    /// [`EVENTS_REMEMBERED_MAX`]; lowered by tests only (every replica must use the same).
    events_max: usize,
    /// [`EVENTS_PER_PARTITION_MAX`]; lowered by tests only.
    partition_events_max: usize,
    /// Per scope (partition) of `state.events`, its remembered ids in the order applied: the
    /// entries of `events_by_time` whose event is remembered under that timestamp, as their
    /// sequence numbers (4 bytes, not the 24 of the entry). Derived from the replicated state
    /// (rebuilt on restore), so it is not part of the snapshot.
    events_by_partition: BTreeMap<u32, VecDeque<u32>>,
    /// The sequence number of `events_by_time`'s front entry: entry `i` has `time_front + i`.
    /// Wrapping: the index holds far fewer than 2^32 entries, so differences are exact.
    time_front: u32,
    /// [`crate::state::scope_tags`] of the partitions seen lately: two SHA-256 digests that every
    /// remembered command would otherwise pay again. A cache of a pure function, cleared past
    /// [`SCOPE_TAGS_CACHED_MAX`] entries; not part of the snapshot.
    scope_tags: crate::state::FastMap<PartitionKey, (u64, u64)>,
}

/// Partitions whose scope tags a shard keeps at most (a shard owns a few hundred at most).
const SCOPE_TAGS_CACHED_MAX: usize = 4096;

impl Shard {
    pub fn new(event_retention_ms: u64) -> Shard {
        Shard {
            state: ShardState {
                event_retention_ms,
                ..ShardState::default()
            },
            compiled: BTreeMap::new(),
            default_config: Arc::new(Config::default_config()),
            events_max: EVENTS_REMEMBERED_MAX,
            partition_events_max: EVENTS_PER_PARTITION_MAX,
            events_by_partition: BTreeMap::new(),
            time_front: 0,
            scope_tags: Default::default(),
        }
    }

    /// Tests only: a lower bound on remembered event ids.
    #[doc(hidden)]
    pub fn with_events_max(mut self, max: usize) -> Shard {
        self.events_max = max;
        self
    }

    /// Tests only: a lower bound on the event ids one partition remembers.
    #[doc(hidden)]
    pub fn with_partition_events_max(mut self, max: usize) -> Shard {
        self.partition_events_max = max;
        self
    }

    /// Rebuilds `events_by_partition` from the replicated state (sequence numbers from 0).
    pub(super) fn index_events_by_partition(&mut self) {
        let mut index: BTreeMap<u32, VecDeque<u32>> = BTreeMap::new();
        for (seq, (ts, key)) in self.state.events_by_time.iter().enumerate() {
            if let Some(e) = self.state.events.get(key)
                && e.ts_ms() == *ts
            {
                index.entry(e.scope()).or_default().push_back(seq as u32);
            }
        }
        self.events_by_partition = index;
        self.time_front = 0;
    }

    /// Forgets the oldest ids of `scope` past [`EVENTS_PER_PARTITION_MAX`].
    pub(super) fn bound_partition_events(&mut self, scope: u32) {
        let Some(queue) = self.events_by_partition.get_mut(&scope) else {
            return;
        };
        while queue.len() > self.partition_events_max {
            // The global time index keeps the entry; pruning skips ids no longer remembered.
            if let Some(seq) = queue.pop_front()
                && let Some((_, key)) = self
                    .state
                    .events_by_time
                    .get(seq.wrapping_sub(self.time_front) as usize)
            {
                self.state.events.remove(key);
            }
        }
        if queue.is_empty() {
            self.events_by_partition.remove(&scope);
        }
    }

    /// The state machine's clock: the largest leader timestamp applied so far.
    pub fn clock_ms(&self) -> u64 {
        self.state.clock_ms
    }

    /// The configuration in force for an environment.
    /// The configuration documents stored by `PutConfig`, by environment, as posted.
    pub fn config_documents(&self) -> &BTreeMap<String, String> {
        &self.state.configs
    }

    pub fn config(&self, environment: &str) -> &Arc<Config> {
        config_of(&self.compiled, &self.default_config, environment)
    }

    /// Applies one log entry: one result per command, in order.
    ///
    /// Holds due by the batch's timestamp expire first, so no command of the batch counts them;
    /// an empty batch is the leader's sweep of an idle shard.
    pub fn apply(&mut self, batch: &Batch) -> Vec<CmdResult> {
        self.state.clock_ms = self.state.clock_ms.max(batch.ts_ms);
        self.prune_events();
        self.state
            .holds
            .expire_due(&mut self.state.partitions, self.state.clock_ms);
        // Finished holds stay as long as event ids: within it, a replayed release or consume
        // answers as the first time did.
        let horizon = self.state.clock_ms.saturating_sub(self.state.event_retention_ms);
        self.state.holds.prune_finished(horizon);
        let results: Vec<CmdResult> = batch.commands.iter().map(|c| self.apply_one(c)).collect();
        debug_assert_eq!(results.len(), batch.commands.len(), "one result per command");
        results
    }

    fn prune_events(&mut self) {
        let horizon = self.state.clock_ms.saturating_sub(self.state.event_retention_ms);
        for _ in 0..EVENT_PRUNE_PER_BATCH_MAX {
            match self.state.events_by_time.front() {
                Some((ts, _)) if *ts < horizon => {}
                // The count bound: each batch prunes more than it may add, so it holds.
                Some(_) if self.state.events.len() > self.events_max => {}
                _ => break,
            }
            let seq = self.time_front;
            let Some((ts, key)) = self.state.events_by_time.pop_front() else {
                break;
            };
            self.time_front = seq.wrapping_add(1);
            if self.state.events.get(&key).is_some_and(|e| e.ts_ms() == ts)
                && let Some(scope) = self.state.events.remove(&key)
                && let Some(queue) = self.events_by_partition.get_mut(&scope)
            {
                // The oldest of its partition too: the partition's queue is in the same order.
                if queue.front() == Some(&seq) {
                    queue.pop_front();
                } else {
                    queue.retain(|entry| *entry != seq);
                }
                if queue.is_empty() {
                    self.events_by_partition.remove(&scope);
                }
            }
        }
        // Ids forgotten by a partition's bound or a clean-up leave their entries in the time
        // index until they reach its front: drop them once they are half of it (amortised O(1)
        // per id), so the index stays within twice the remembered ids.
        let live = self.state.events.len();
        if self.state.events_by_time.len() > 2 * live + EVENT_PRUNE_PER_BATCH_MAX {
            let events = &self.state.events;
            self.state
                .events_by_time
                .retain(|(ts, key)| events.get(key).is_some_and(|e| e.ts_ms() == *ts));
            // The entries moved: their sequence numbers with them.
            self.index_events_by_partition();
        }
    }

    /// Answers a read from this shard's state.
    pub fn read(&self, request: &ReadRequest) -> ReadResponse {
        match request {
            ReadRequest::Query(q) => {
                let config = self.config(&q.environment);
                match q.validate(config) {
                    Ok(()) => ReadResponse::Records(crate::query::evaluate(&self.state.partitions, config, q)),
                    Err(message) => ReadResponse::Refused(message),
                }
            }
            ReadRequest::Config { environment } => ReadResponse::Config(self.config(environment).to_json()),
            ReadRequest::Partitions { environment } => ReadResponse::Partitions(
                self.state
                    .partitions
                    .keys()
                    .filter(|p| p.environment == *environment)
                    .cloned()
                    .collect(),
            ),
            ReadRequest::StateHash => ReadResponse::StateHash(self.state_hash()),
            ReadRequest::Hold(key) => ReadResponse::Hold(self.state.holds.get(key).cloned().map(Box::new)),
            ReadRequest::Events { from_seq, limit } => {
                let (events, next_seq) = self.state.holds.events_from(*from_seq, (*limit).min(10_000));
                ReadResponse::Events { events, next_seq }
            }
            ReadRequest::Allocations(q) => {
                ReadResponse::Allocations(crate::allocation::query(&self.state.partitions, q))
            }
            ReadRequest::HoldCounts => ReadResponse::HoldCounts(self.state.holds.status_counts()),
        }
    }

    /// The deterministic encoding of the whole state: equal states give equal bytes.
    ///
    /// The cross-shard holds' sibling table follows the rest of the state, and only when it is
    /// not empty: a state without one encodes exactly as before the table existed, so older
    /// snapshots read as they are and keep their state hash.
    pub fn snapshot(&self) -> Vec<u8> {
        // Serialising plain BTreeMaps of owned data into a Vec cannot fail.
        let mut bytes = postcard::to_stdvec(&self.state).unwrap_or_default();
        let siblings = &self.state.holds.siblings;
        if !siblings.is_empty() {
            bytes.extend(postcard::to_stdvec(siblings).unwrap_or_default());
        }
        bytes
    }

    /// Rebuilds a shard from [`Shard::snapshot`] bytes.
    ///
    /// # Errors
    /// [`SnapshotError`] when the bytes do not decode or hold an invalid configuration.
    pub fn restore(bytes: &[u8]) -> Result<Shard, SnapshotError> {
        let decode = |e: postcard::Error| SnapshotError::Decode(e.to_string());
        let (mut state, rest): (ShardState, &[u8]) = postcard::take_from_bytes(bytes).map_err(decode)?;
        if !rest.is_empty() {
            let (siblings, rest) = postcard::take_from_bytes(rest).map_err(decode)?;
            if !rest.is_empty() {
                return Err(SnapshotError::Decode(format!(
                    "{} bytes after the end of the shard state",
                    rest.len()
                )));
            }
            state.holds.siblings = siblings;
        }
        state.holds.rebuild_index();
        let mut compiled = BTreeMap::new();
        for (environment, json) in &state.configs {
            let config = Config::from_json(json).map_err(|e| SnapshotError::Config {
                environment: environment.clone(),
                message: e.to_string(),
            })?;
            compiled.insert(environment.clone(), Arc::new(config));
        }
        let mut shard = Shard {
            state,
            compiled,
            default_config: Arc::new(Config::default_config()),
            events_max: EVENTS_REMEMBERED_MAX,
            partition_events_max: EVENTS_PER_PARTITION_MAX,
            events_by_partition: BTreeMap::new(),
            time_front: 0,
            scope_tags: Default::default(),
        };
        shard.index_events_by_partition();
        Ok(shard)
    }

    /// SHA-256 of the snapshot: replicas that applied the same log have the same hash.
    pub fn state_hash(&self) -> [u8; 32] {
        Sha256::digest(self.snapshot()).into()
    }

    /// When the earliest open hold expires: the leader proposes a sweep (an empty batch) then.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.state.holds.next_expiry_ms()
    }

    /// The expiries this shard's expired primary parts still owe their siblings' shards (at
    /// most `max`): the leader proposes [`crate::hold::HoldCommand::ExpirePart`] to each, then
    /// [`crate::hold::HoldCommand::SiblingsExpired`] here.
    pub fn sibling_expiries(&self, max: usize) -> Vec<crate::hold::SiblingExpiry> {
        self.state.holds.sibling_expiries(max)
    }

    /// Whether any expiry is owed to siblings (a cheap check for the leader's sweeper).
    pub fn owes_sibling_expiries(&self) -> bool {
        self.state.holds.owes_sibling_expiries()
    }

    /// Number of holds kept, open and finished (for metrics and tests of retention).
    pub fn hold_count(&self) -> usize {
        self.state.holds.count()
    }

    /// Number of remembered event ids (for metrics and tests of retention).
    pub fn remembered_events(&self) -> usize {
        self.state.events.len()
    }
}

/// The configuration in force for an environment, from a shard's compiled ones.
fn config_of<'a>(
    compiled: &'a BTreeMap<String, Arc<Config>>,
    default: &'a Arc<Config>,
    environment: &str,
) -> &'a Arc<Config> {
    compiled
        .get(environment)
        .or_else(|| compiled.get(DEFAULT_ENVIRONMENT))
        .unwrap_or(default)
}
