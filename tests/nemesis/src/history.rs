//! The recorded history: every operation a client ran, per key, with the time it was invoked
//! and the time its outcome became known (none when it stayed unknown).

use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// How far ahead of its measured time a leader's clock may stamp (`CLOCK_STEP_MAX_MS` of
/// ivory-node's `clock.rs`), in microseconds.
pub const CLOCK_STEP_MAX_US: u64 = 60_000_000;
/// A non-primary part of a cross-shard hold expires by itself this long after the hold
/// (`SIBLING_EXPIRY_GRACE_MS` of ivory-core, two clamp steps), in microseconds.
pub const SIBLING_EXPIRY_GRACE_US: u64 = 2 * CLOCK_STEP_MAX_US;
/// How long after the primary part expired its shard's leader has passed the expiry on to the
/// other parts (a sweeper round of 250 ms, an `ExpirePart` in the other shard), with room for
/// a busy machine, in microseconds.
pub const SIBLING_PASS_ON_US: u64 = 3_000_000;
/// How long after a fault ends a shard has a leader again that passes on what is owed (the
/// election timeout is 1-2 s; a restarted node replays its log first), in microseconds.
pub const FAULT_RECOVERY_US: u64 = 5_000_000;

/// When the primary's expiry, settled by `primary_by`, has surely reached the other parts:
/// [`SIBLING_PASS_ON_US`] later, pushed past every fault (sorted by start) that overlaps the
/// wait by [`FAULT_RECOVERY_US`] after its end.
pub fn sibling_expiry_by(primary_by: u64, faults_us: &[(u64, u64)]) -> u64 {
    let mut by = primary_by + SIBLING_PASS_ON_US;
    for (from, to) in faults_us {
        if *from <= by && *to + FAULT_RECOVERY_US + SIBLING_PASS_ON_US > primary_by {
            by = by.max(to + FAULT_RECOVERY_US + SIBLING_PASS_ON_US);
        }
    }
    by
}

/// One stock key: a product in a partition (organization `org`, site `1`, the location).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub location: String,
    pub product: String,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.location, self.product)
    }
}

/// What an operation does to one key. A bulk call or a hold with several lines is recorded as
/// one operation per key, all with the request's interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    /// `POST onhand`: iv.onhand += q.
    OnHand { q: i64 },
    /// `POST onhand/reserve[/bulk]` with the availability check: iv.softreservphysical += q if
    /// iv.availabletoreserve >= q.
    Reserve { q: i64, bulk: bool },
    /// `POST onhand/unreserve`: the key's reservation goes down by min(q, what it holds).
    Unreserve { q: i64 },
    /// A line of `POST holds` (all or nothing; `lines` lines). `cross`: the lines live in
    /// partitions of different shards (the gateway's two phases: tentative parts, then commit).
    HoldCreate {
        hold: String,
        q: i64,
        lines: usize,
        #[serde(default)]
        cross: bool,
    },
    /// A line of a cross-shard create that was refused or stayed unknown: its tentative part
    /// (if phase 1 placed one) goes again, released by the gateway or expired after the
    /// tentative time to live. `refused_us`: when the definite refusal came (none when the
    /// create stayed unknown; then the hold may also have been committed and never go).
    /// `gone_us`: when a read of the hold after the refusal showed no line held (the usual
    /// case: the gateway released the parts before it answered). Unknown until
    /// [`History::settle_undos`] makes it definite.
    HoldUndo {
        hold: String,
        q: i64,
        refused_us: Option<u64>,
        #[serde(default)]
        gone_us: Option<u64>,
    },
    /// A line of `DELETE holds/{id}` of a hold that was created.
    HoldRelease { hold: String, q: i64 },
    /// A line of `POST holds/{id}/consume`: iv.onhand and the held quantity go down by q.
    HoldConsume { hold: String, q: i64 },
    /// A line of a hold created with a short time to live (`ttl_s`), which no client ends: it
    /// expires (the held quantity goes down by q). Invoked with the create (a leader's clock
    /// ahead may expire it early); unknown until [`History::settle_expiries`] makes the expiry
    /// of an acknowledged hold definite. `sibling`: a line of a cross-shard hold in another
    /// location than its first line's, so maybe in another shard than the hold's primary part:
    /// the primary's expiry reaches it later (see `settle_expiries`).
    HoldExpire {
        hold: String,
        q: i64,
        ttl_s: u64,
        #[serde(default)]
        sibling: bool,
    },
    /// `POST onhand/indexquery` of the key (linearizable).
    Read,
}

impl OpKind {
    pub fn is_read(&self) -> bool {
        matches!(self, OpKind::Read)
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied.
    Ok,
    /// An unreserve applied; `excess` is the part of the offset the reservation did not hold.
    Unreserved { excess: i64 },
    /// A read's answer.
    Read { onhand: i64, reserved: i64 },
    /// Refused for lack of stock: no effect.
    Insufficient,
    /// An unreserve of a reservation the partition does not know: no effect.
    NotFound,
    /// Another definite refusal (a client or server error that is not retryable): no effect.
    Failed { status: u16, body: String },
    /// No definite answer (timeout, connection error, 503) even after retries with the same id:
    /// it may or may not have taken effect.
    Unknown { error: String },
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Unreserved { .. } | Outcome::Read { .. })
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Outcome::Unknown { .. })
    }
}

/// One operation on one key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history.
    pub index: usize,
    pub client: usize,
    /// The event id (or hold id) the client sent, the same on every retry.
    pub id: String,
    pub key: Key,
    pub kind: OpKind,
    /// Microseconds since the run started: the first attempt was sent.
    pub invoke_us: u64,
    /// The definite answer arrived; `None` for an unknown outcome.
    pub complete_us: Option<u64>,
    pub outcome: Outcome,
    /// Attempts sent (retries of an unknown outcome use the same id).
    pub attempts: u32,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self
            .complete_us
            .map_or("?".to_string(), |c| format!("{:.3}", c as f64 / 1e6));
        write!(
            f,
            "#{} c{} {} {:?} id={} [{:.3}s..{}s] -> {:?} ({} attempt{})",
            self.index,
            self.client,
            self.key,
            self.kind,
            self.id,
            self.invoke_us as f64 / 1e6,
            end,
            self.outcome,
            self.attempts,
            if self.attempts == 1 { "" } else { "s" }
        )
    }
}

/// A duplicate delivery: a request sent again after its definite answer, whose second answer
/// must equal the first (exactly once).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Duplicate {
    pub id: String,
    pub request: String,
    pub first: String,
    pub second: String,
}

/// The shared recorder.
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    duplicates: Mutex<Vec<Duplicate>>,
    notes: Mutex<Vec<String>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            ops: Mutex::new(Vec::new()),
            duplicates: Mutex::new(Vec::new()),
            notes: Mutex::new(Vec::new()),
        }
    }

    /// Microseconds since the run started.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub fn record(&self, mut op: Op) {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        op.index = ops.len();
        ops.push(op);
    }

    pub fn duplicate(&self, d: Duplicate) {
        self.duplicates.lock().unwrap_or_else(|p| p.into_inner()).push(d);
    }

    /// Something worth reporting that is not a violation (a known Ivory issue).
    pub fn note(&self, text: String) {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).push(text);
    }

    pub fn history(&self) -> History {
        History {
            ops: self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            duplicates: self.duplicates.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            notes: self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// Everything recorded in one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
    /// Duplicate deliveries whose answers differed from the first.
    pub duplicates: Vec<Duplicate>,
    /// Known Ivory issues seen (not violations).
    pub notes: Vec<String>,
}

impl History {
    /// The operations on `key`, in history order.
    pub fn of_key<'a>(&'a self, key: &'a Key) -> impl Iterator<Item = &'a Op> + 'a {
        self.ops.iter().filter(move |o| &o.key == key)
    }

    /// Makes definite the expiry of every short-lived hold whose create was acknowledged and
    /// whose expiry is due before `final_us` (when the final reads began: the counting checkers
    /// take them as the final state): it happens by its time to live after the create's answer
    /// plus `margin_us`, since every
    /// entry a leader applies later expires the holds due by its timestamp first (never behind
    /// the wall clock), and a linearizable read on a leader sweeps a due hold first. An operation
    /// of the key invoked after that sees the lines free; while a shard has no leader no
    /// operation of it completes. Holds whose create stayed unknown keep an unknown expiry.
    ///
    /// The earliest an expiry can happen is its time to live after the create was sent, less
    /// the margin and less how far a clock ran ahead meanwhile (`ahead_us`: from, to, how far;
    /// the clamp lets a leader's stamps, and so its shard's clock, run at most
    /// [`CLOCK_STEP_MAX_US`] ahead, and the shard's clock stays ahead until real time catches up).
    ///
    /// A `sibling` line (a part of a cross-shard hold that may not be the primary's) expires when
    /// the primary's shard passes its expiry on, after the primary's: [`SIBLING_PASS_ON_US`]
    /// after the primary's expiry is settled, and when a fault (`faults_us`: from, to) may have
    /// stalled either shard meanwhile, [`SIBLING_PASS_ON_US`] after the fault's end plus
    /// [`FAULT_RECOVERY_US`] (a new leader passes on what the old one did not); never later than
    /// the part's own safety net ([`SIBLING_EXPIRY_GRACE_US`] after the hold's expiry). It never
    /// expires before the primary, so its earliest is the primary's.
    pub fn settle_expiries(
        &mut self,
        margin_us: u64,
        final_us: u64,
        ahead_us: &[(u64, u64, u64)],
        faults_us: &[(u64, u64)],
    ) {
        let mut created: std::collections::HashMap<(String, Key), Option<u64>> = std::collections::HashMap::new();
        for op in &self.ops {
            if let OpKind::HoldCreate { hold, .. } = &op.kind
                && op.outcome == Outcome::Ok
            {
                created.insert((hold.clone(), op.key.clone()), op.complete_us);
            }
        }
        for op in &mut self.ops {
            if let OpKind::HoldExpire { ttl_s, .. } = &op.kind {
                let due = op.invoke_us + ttl_s * 1_000_000;
                let early = ahead_us
                    .iter()
                    .map(|(from, to, ahead)| (*from, *to, (*ahead).min(CLOCK_STEP_MAX_US)))
                    .filter(|(from, to, ahead)| *from <= due && op.invoke_us <= to + ahead)
                    .map(|(_, _, ahead)| ahead)
                    .max()
                    .unwrap_or(0);
                op.invoke_us = op.invoke_us.max(due.saturating_sub(early + margin_us));
            }
        }
        let mut faults = faults_us.to_vec();
        faults.sort_unstable();
        for op in &mut self.ops {
            if let OpKind::HoldExpire {
                hold, ttl_s, sibling, ..
            } = &op.kind
                && let Some(Some(done)) = created.get(&(hold.clone(), op.key.clone()))
            {
                let primary_by = done + ttl_s * 1_000_000 + margin_us;
                let by = if *sibling {
                    sibling_expiry_by(primary_by, &faults).min(primary_by + SIBLING_EXPIRY_GRACE_US)
                } else {
                    primary_by
                };
                if by <= final_us {
                    op.outcome = Outcome::Ok;
                    op.complete_us = Some(by);
                }
            }
        }
    }

    /// Makes definite the undo of every refused cross-shard create whose tentative part is
    /// gone for sure before `final_us`: when a read of the hold after the refusal saw no line
    /// held, else `bound_us` after the refusal (the tentative time to live and the sweep, when
    /// the gateway could not release it). Before that it stays unknown: the counting checkers
    /// then allow the line to be held still.
    pub fn settle_undos(&mut self, bound_us: u64, final_us: u64) {
        for op in &mut self.ops {
            if let OpKind::HoldUndo {
                refused_us: Some(at),
                gone_us,
                ..
            } = &op.kind
            {
                let by = gone_us.unwrap_or(at + bound_us);
                if by <= final_us {
                    op.outcome = Outcome::Ok;
                    op.complete_us = Some(by);
                }
            }
        }
    }

    pub fn keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.ops.iter().map(|o| o.key.clone()).collect();
        keys.sort();
        keys.dedup();
        keys
    }
}
