//! Holds: multi-line reservations with a time to live, all-or-nothing, and a lifecycle
//! (Digital River, Kibo, VTEX; docs/iv-compatibility.md §8).
//!
//! A hold's lines are soft reservations on a physical measure gated like IV reservations
//! (default `iv.softreservphysical`, gated by `iv.availabletoreserve`), so IV clients and hold
//! clients draw on one truth. In a shard, a hold holds the lines that live in that shard's
//! partitions; a hold across shards is created `tentative` in each (short expiry) and then
//! committed in each, or released in each (DESIGN.md §3, "Holds across shards").
//!
//! Expiry is a function of the log: before any batch applies, holds whose expiry is at or before
//! the batch's leader timestamp expire; an idle shard's leader proposes an empty sweep.
//!
//! Across shards the primary part alone decides when the hold expires: the other parts carry
//! only a safety net ([`SIBLING_EXPIRY_GRACE_MS`] after the hold's expiry, for a primary shard
//! that is gone), and the primary part keeps the shards of its siblings ([`Siblings`]). When it
//! expires, those shards' parts are owed an [`HoldCommand::ExpirePart`], which the leader of the
//! primary's shard proposes until each lands and is acknowledged
//! ([`HoldCommand::SiblingsExpired`]): a leader clock that runs ahead can end a part early only
//! with the whole hold.
//!
//! ```text
//!   tentative --commit--> active --confirm--> confirmed
//!       |                  |  \                 |   \
//!       |                  |   consume          |    consume --> consumed
//!       +------------------+--> released <------+
//!       +------------------+--> expired   (tentative or active, at expires_at)
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::command::{CmdResult, Modifier, Outcome, out_of_range};
pub use crate::command::{HoldCommand, HoldKey, HoldLine};
use crate::config::Config;
use crate::model::{MeasureRef, PartitionKey};
use crate::qty::Qty;
use crate::state::{PartitionState, calculated_min_over, cell_mut, cell_ref, restore_cells, save_cells};

/// How long after the hold's expiry a non-primary part of a cross-shard hold expires by itself:
/// two steps of the leaders' clock clamp (`CLOCK_STEP_MAX_MS` of ivory-node, 60 s), so that its
/// own leader's clock, however far ahead, never ends it before the primary (whose leader may
/// stamp up to a step ahead too) has decided. Normally the primary's expiry releases it first;
/// the safety net is for a primary shard that cannot do so (no leader, or lost).
pub const SIBLING_EXPIRY_GRACE_MS: u64 = 120_000;

/// Lines in one hold: a cart, not a catalogue.
pub const HOLD_LINES_MAX: usize = 512;
/// Events a shard keeps for followers; older ones are gone (a follower that far behind re-reads
/// state). Bounded so the replicated state cannot grow without limit.
pub const EVENTS_KEPT_MAX: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HoldStatus {
    Tentative,
    Active,
    Confirmed,
    Consumed,
    Released,
    Expired,
}

impl HoldStatus {
    pub fn name(self) -> &'static str {
        match self {
            HoldStatus::Tentative => "tentative",
            HoldStatus::Active => "active",
            HoldStatus::Confirmed => "confirmed",
            HoldStatus::Consumed => "consumed",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, HoldStatus::Consumed | HoldStatus::Released | HoldStatus::Expired)
    }

    /// Whether the hold's open lines still hold stock.
    fn holds_stock(self) -> bool {
        matches!(self, HoldStatus::Tentative | HoldStatus::Active | HoldStatus::Confirmed)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineState {
    Held,
    /// Not held: stock was short (only when the hold is not all-or-nothing).
    Short,
    Consumed,
    Released,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldLine {
    pub line: HoldLine,
    pub state: LineState,
}

/// A hold as one shard knows it: its lines in this shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldState {
    pub key: HoldKey,
    pub status: HoldStatus,
    pub measure: MeasureRef,
    pub all_or_nothing: bool,
    /// `None` once confirmed (VTEX: confirmed reservations do not expire).
    pub expires_at_ms: Option<u64>,
    pub lines: Vec<HeldLine>,
    /// (status, leader time in ms) for each change.
    pub history: Vec<(HoldStatus, u64)>,
    /// Fingerprint of the client's whole create body (the same in every shard), for replays.
    pub body_fingerprint: [u8; 16],
    /// The shard that speaks for the hold in the event stream (the shard of its first line), so
    /// a hold across shards emits each event once.
    pub primary: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    HoldCreated,
    HoldCommitted,
    HoldConfirmed,
    HoldExtended,
    HoldChanged,
    HoldConsumed,
    HoldReleased,
    HoldExpired,
    /// A product's low-stock measure in a partition went below the configured threshold.
    StockBelowThreshold,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::HoldCreated => "hold.created",
            EventKind::HoldCommitted => "hold.committed",
            EventKind::HoldConfirmed => "hold.confirmed",
            EventKind::HoldExtended => "hold.extended",
            EventKind::HoldChanged => "hold.changed",
            EventKind::HoldConsumed => "hold.consumed",
            EventKind::HoldReleased => "hold.released",
            EventKind::HoldExpired => "hold.expired",
            EventKind::StockBelowThreshold => "stock.below-threshold",
        }
    }
}

/// One entry of a shard's event stream; `seq` increases by one per event in that shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub ts_ms: u64,
    pub kind: EventKind,
    /// The hold (stock events: the partition's environment and organization, an empty id).
    pub hold: HoldKey,
    /// The hold's status (stock events: not meaningful).
    pub status: HoldStatus,
    /// Stock events: what went below what.
    pub stock: Option<StockAlert>,
}

/// A product's low-stock measure in one partition, after the command that took it below the
/// threshold (`alertConfiguration`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StockAlert {
    pub partition: PartitionKey,
    pub product: String,
    pub measure: MeasureRef,
    pub value: Qty,
    pub threshold: Qty,
}

/// The other parts of this shard's cross-shard holds, kept by their primary parts. Replicated,
/// but encoded after the rest of the shard's state and only when not empty (`Shard::snapshot`),
/// so a state without any encodes byte for byte as before the table existed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Siblings {
    /// Primary parts not ended: the shards of the hold's other parts (sorted).
    pub(crate) open: BTreeMap<HoldKey, Vec<u32>>,
    /// Primary parts expired: the shards whose part has not acknowledged the expiry yet.
    pub(crate) owed: BTreeMap<HoldKey, Vec<u32>>,
}

impl Siblings {
    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_empty() && self.owed.is_empty()
    }

    fn forget(&mut self, key: &HoldKey) {
        self.open.remove(key);
        self.owed.remove(key);
    }
}

/// An expiry the leader of a primary's shard still owes other shards (see [`Siblings`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiblingExpiry {
    pub key: HoldKey,
    pub body_fingerprint: [u8; 16],
    /// The shards whose part has not acknowledged the expiry yet.
    pub shards: Vec<u32>,
}

/// Adds `more` to a sorted list of shards.
fn merge_shards(into: &mut Vec<u32>, more: &[u32]) {
    into.extend_from_slice(more);
    into.sort_unstable();
    into.dedup();
}

/// Holds of one shard, their expiry index and the shard's event stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Holds {
    holds: BTreeMap<HoldKey, HoldState>,
    expiring: BTreeSet<(u64, HoldKey)>,
    events: VecDeque<Event>,
    next_seq: u64,
    /// Finished holds by the time they finished: retention removes from the front. Derived
    /// from `holds` (rebuilt on restore), so not part of the snapshot.
    #[serde(skip)]
    finished: BTreeSet<(u64, HoldKey)>,
    /// Replicated, but encoded on its own after the state (see [`Siblings`]).
    #[serde(skip)]
    pub(crate) siblings: Siblings,
}

/// Entries of a hold's history kept: the first (its creation, `createdAt`) and the latest, so a
/// hold extended forever stays small.
pub const HOLD_HISTORY_MAX: usize = 16;
/// Finished holds removed per batch at most, so one batch never stalls the state machine.
const HOLD_PRUNE_PER_BATCH_MAX: usize = 1024;

impl Holds {
    pub fn get(&self, key: &HoldKey) -> Option<&HoldState> {
        self.holds.get(key)
    }

    /// The expiries this shard's primary parts owe their siblings, at most `max`, in key order.
    pub fn sibling_expiries(&self, max: usize) -> Vec<SiblingExpiry> {
        self.siblings
            .owed
            .iter()
            .take(max)
            .map(|(key, shards)| SiblingExpiry {
                key: key.clone(),
                body_fingerprint: self.holds.get(key).map_or([0; 16], |h| h.body_fingerprint),
                shards: shards.clone(),
            })
            .collect()
    }

    /// Whether this shard's primary parts owe their siblings an expiry.
    pub fn owes_sibling_expiries(&self) -> bool {
        !self.siblings.owed.is_empty()
    }

    /// How many holds the shard keeps (open and finished).
    pub fn count(&self) -> usize {
        self.holds.len()
    }

    /// Holds per status name (every status present, zero when none): what operators watch.
    pub fn status_counts(&self) -> BTreeMap<String, u64> {
        let mut counts: BTreeMap<String, u64> = [
            HoldStatus::Tentative,
            HoldStatus::Active,
            HoldStatus::Confirmed,
            HoldStatus::Consumed,
            HoldStatus::Released,
            HoldStatus::Expired,
        ]
        .iter()
        .map(|s| (s.name().to_string(), 0))
        .collect();
        for hold in self.holds.values() {
            *counts.entry(hold.status.name().to_string()).or_default() += 1;
        }
        counts
    }

    /// Rebuilds the finished-hold index after a restore.
    pub fn rebuild_index(&mut self) {
        self.finished = self
            .holds
            .values()
            .filter(|h| h.status.is_terminal())
            .map(|h| (h.history.last().map_or(0, |(_, at)| *at), h.key.clone()))
            .collect();
    }

    /// Forgets holds that finished before `horizon_ms` (a later command naming one answers as
    /// for an unknown hold).
    pub fn prune_finished(&mut self, horizon_ms: u64) {
        for _ in 0..HOLD_PRUNE_PER_BATCH_MAX {
            match self.finished.first() {
                Some((at, _)) if *at < horizon_ms => {}
                _ => break,
            }
            if let Some((_, key)) = self.finished.pop_first()
                && self.holds.get(&key).is_some_and(|h| h.status.is_terminal())
            {
                self.holds.remove(&key);
                // An expiry still owed after the retention period: the siblings' own safety
                // nets have long ended them.
                self.siblings.forget(&key);
            }
        }
    }

    /// Clean-up: forgets the lines held in the doomed partitions of `environment` (their stock
    /// is deleted with the partition), and the holds left without lines; `all` forgets every
    /// hold of the environment.
    pub fn forget(&mut self, environment: &str, all: bool, doomed: impl Fn(&PartitionKey) -> bool) {
        let keys: Vec<HoldKey> = self
            .holds
            .keys()
            .filter(|k| k.environment == environment)
            .cloned()
            .collect();
        for key in keys {
            let Some(hold) = self.holds.get_mut(&key) else {
                continue;
            };
            let before = hold.lines.len();
            hold.lines.retain(|l| !doomed(&l.line.partition));
            if all || (hold.lines.is_empty() && before > 0) {
                if let Some(at) = hold.expires_at_ms {
                    self.expiring.remove(&(at, key.clone()));
                }
                if let Some((_, at)) = hold.history.last() {
                    self.finished.remove(&(*at, key.clone()));
                }
                self.holds.remove(&key);
                self.siblings.forget(&key);
            }
        }
    }

    /// The earliest expiry among open holds: when the leader must sweep.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiring.first().map(|(at, _)| *at)
    }

    pub fn events_from(&self, from_seq: u64, limit: usize) -> (Vec<Event>, u64) {
        let first_kept = self.events.front().map_or(self.next_seq, |e| e.seq);
        let start = from_seq.max(first_kept);
        let skip = (start - first_kept) as usize;
        (
            self.events.iter().skip(skip).take(limit).cloned().collect(),
            self.next_seq,
        )
    }

    pub(crate) fn emit_stock(&mut self, ts_ms: u64, alert: StockAlert) {
        self.events.push_back(Event {
            seq: self.next_seq,
            ts_ms,
            kind: EventKind::StockBelowThreshold,
            hold: HoldKey {
                environment: alert.partition.environment.clone(),
                organization: alert.partition.organization.clone(),
                id: String::new(),
            },
            status: HoldStatus::Active,
            stock: Some(alert),
        });
        self.next_seq += 1;
        while self.events.len() > EVENTS_KEPT_MAX {
            self.events.pop_front();
        }
    }

    fn emit(&mut self, ts_ms: u64, kind: EventKind, hold: &HoldState) {
        // A hold never committed (a tentative part released or expired because the hold failed
        // or its gateway died) was never announced, so its end is not announced either.
        let announced = hold
            .history
            .iter()
            .any(|(s, _)| matches!(s, HoldStatus::Active | HoldStatus::Confirmed));
        if !hold.primary || !announced {
            return;
        }
        self.events.push_back(Event {
            seq: self.next_seq,
            ts_ms,
            kind,
            hold: hold.key.clone(),
            status: hold.status,
            stock: None,
        });
        self.next_seq += 1;
        while self.events.len() > EVENTS_KEPT_MAX {
            self.events.pop_front();
        }
    }

    fn set_status(&mut self, key: &HoldKey, status: HoldStatus, ts_ms: u64) {
        if let Some(hold) = self.holds.get_mut(key) {
            if let Some((_, at)) = hold.history.last() {
                self.finished.remove(&(*at, key.clone()));
            }
            hold.status = status;
            hold.history.push((status, ts_ms));
            if hold.history.len() > HOLD_HISTORY_MAX {
                hold.history.remove(1);
            }
            if status.is_terminal() {
                self.finished.insert((ts_ms, key.clone()));
            }
        }
    }

    fn set_expiry(&mut self, key: &HoldKey, expires_at_ms: Option<u64>) {
        if let Some(hold) = self.holds.get_mut(key) {
            if let Some(old) = hold.expires_at_ms {
                self.expiring.remove(&(old, key.clone()));
            }
            hold.expires_at_ms = expires_at_ms;
            if let Some(at) = expires_at_ms
                && hold.status.holds_stock()
            {
                self.expiring.insert((at, key.clone()));
            }
        }
    }

    /// Expires every open hold due at or before `now_ms`, returning its stock.
    pub fn expire_due(&mut self, partitions: &mut BTreeMap<PartitionKey, PartitionState>, now_ms: u64) {
        while let Some((at, key)) = self.expiring.first().cloned() {
            if at > now_ms {
                break;
            }
            self.expiring.pop_first();
            if let Some(hold) = self.holds.get_mut(&key) {
                release_lines(partitions, hold, LineState::Released, None);
                hold.expires_at_ms = Some(at);
            }
            self.set_status(&key, HoldStatus::Expired, now_ms);
            // A primary part: its expiry is now owed to its siblings.
            if let Some(shards) = self.siblings.open.remove(&key) {
                merge_shards(self.siblings.owed.entry(key.clone()).or_default(), &shards);
            }
            if let Some(hold) = self.holds.get(&key).cloned() {
                self.emit(now_ms, EventKind::HoldExpired, &hold);
            }
        }
    }

    pub fn apply(
        &mut self,
        partitions: &mut BTreeMap<PartitionKey, PartitionState>,
        config: &Config,
        now_ms: u64,
        command: &HoldCommand,
    ) -> CmdResult {
        match command {
            HoldCommand::Create {
                key,
                measure,
                lines,
                expires_at_ms,
                all_or_nothing,
                tentative,
                body_fingerprint,
                primary,
            } => {
                if let Some(existing) = self.holds.get(key) {
                    return if existing.body_fingerprint == *body_fingerprint {
                        replay(existing)
                    } else {
                        CmdResult::refused(
                            Outcome::Conflict,
                            format!("hold '{}' exists with a different body", key.id),
                        )
                    };
                }
                if let Err(message) = check_lines(config, measure, lines) {
                    return CmdResult::refused(Outcome::Invalid, message);
                }
                if *expires_at_ms <= now_ms {
                    return CmdResult::refused(Outcome::Invalid, "expiresInSeconds: the hold would expire at once");
                }
                let held = match hold_lines(partitions, config, measure, lines, *all_or_nothing) {
                    Ok(held) => held,
                    Err(message) => return CmdResult::refused(Outcome::Insufficient, message),
                };
                let status = if *tentative {
                    HoldStatus::Tentative
                } else {
                    HoldStatus::Active
                };
                let short: Vec<String> = held
                    .iter()
                    .filter(|l| l.state == LineState::Short)
                    .map(|l| l.line.line_id.clone())
                    .collect();
                let hold = HoldState {
                    key: key.clone(),
                    status,
                    measure: measure.clone(),
                    all_or_nothing: *all_or_nothing,
                    expires_at_ms: None,
                    lines: held,
                    history: vec![(status, now_ms)],
                    body_fingerprint: *body_fingerprint,
                    primary: *primary,
                };
                self.holds.insert(key.clone(), hold);
                self.set_expiry(key, Some(*expires_at_ms));
                if !*tentative {
                    let hold = self.holds[key].clone();
                    self.emit(now_ms, EventKind::HoldCreated, &hold);
                }
                let mut result = CmdResult::success();
                if !short.is_empty() {
                    result.outcome = Outcome::PartialSuccess;
                    result.message = format!("not held (short of stock): {}", short.join(", "));
                }
                result
            }
            HoldCommand::Commit { key, expires_at_ms } => self.transition(key, now_ms, |h| match h.status {
                HoldStatus::Tentative => Ok(Some((HoldStatus::Active, Some(*expires_at_ms), EventKind::HoldCreated))),
                HoldStatus::Active | HoldStatus::Confirmed => Ok(None),
                other => Err(format!("hold is {}; it can no longer be committed", other.name())),
            }),
            HoldCommand::Confirm { key } => self.transition(key, now_ms, |h| match h.status {
                HoldStatus::Active => Ok(Some((HoldStatus::Confirmed, None, EventKind::HoldConfirmed))),
                HoldStatus::Confirmed => Ok(None),
                other => Err(format!(
                    "hold is {}; only an active hold can be confirmed",
                    other.name()
                )),
            }),
            HoldCommand::Extend { key, expires_at_ms } => self.transition(key, now_ms, |h| match h.status {
                HoldStatus::Active => Ok(Some((
                    HoldStatus::Active,
                    Some(*expires_at_ms),
                    EventKind::HoldExtended,
                ))),
                other => Err(format!("hold is {}; only an active hold can be extended", other.name())),
            }),
            HoldCommand::Release { key } => {
                let Some(hold) = self.holds.get_mut(key) else {
                    return not_found(key);
                };
                match hold.status {
                    HoldStatus::Released => return CmdResult::success(),
                    s if s.is_terminal() => {
                        return CmdResult::refused(
                            Outcome::Conflict,
                            format!("hold is {}; there is nothing left to release", s.name()),
                        );
                    }
                    _ => {}
                }
                release_lines(partitions, hold, LineState::Released, None);
                self.set_expiry(key, None);
                self.set_status(key, HoldStatus::Released, now_ms);
                // The client's release reaches every part (the gateway sends it to each).
                self.siblings.open.remove(key);
                let hold = self.holds[key].clone();
                self.emit(now_ms, EventKind::HoldReleased, &hold);
                CmdResult::success()
            }
            HoldCommand::Consume { key, line_ids } => self.consume(partitions, config, now_ms, key, line_ids),
            HoldCommand::SetSiblings {
                key,
                body_fingerprint,
                shards,
            } => {
                let Some(hold) = self.holds.get(key) else {
                    return not_found(key);
                };
                if hold.body_fingerprint != *body_fingerprint || !hold.primary {
                    return CmdResult::refused(
                        Outcome::Conflict,
                        format!("hold '{}': not the primary part of this hold", key.id),
                    );
                }
                let table = match hold.status {
                    HoldStatus::Tentative | HoldStatus::Active | HoldStatus::Confirmed => &mut self.siblings.open,
                    // Expired before its siblings were known (a create run again): owed at once.
                    HoldStatus::Expired => &mut self.siblings.owed,
                    // Released or consumed: the client's step reaches every part.
                    HoldStatus::Released | HoldStatus::Consumed => return CmdResult::success(),
                };
                merge_shards(table.entry(key.clone()).or_default(), shards);
                CmdResult::success()
            }
            HoldCommand::ExpirePart { key, body_fingerprint } => {
                let Some(hold) = self.holds.get_mut(key) else {
                    return CmdResult::success();
                };
                if hold.body_fingerprint != *body_fingerprint || !hold.status.holds_stock() {
                    return CmdResult::success();
                }
                release_lines(partitions, hold, LineState::Released, None);
                if let Some(at) = hold.expires_at_ms {
                    self.expiring.remove(&(at, key.clone()));
                }
                self.set_status(key, HoldStatus::Expired, now_ms);
                if let Some(hold) = self.holds.get(key).cloned() {
                    self.emit(now_ms, EventKind::HoldExpired, &hold);
                }
                CmdResult::success()
            }
            HoldCommand::SiblingsExpired { key, shards } => {
                if let Some(owed) = self.siblings.owed.get_mut(key) {
                    owed.retain(|s| !shards.contains(s));
                    if owed.is_empty() {
                        self.siblings.owed.remove(key);
                    }
                }
                CmdResult::success()
            }
            HoldCommand::ReplaceLines {
                key,
                lines,
                expires_at_ms,
            } => self.replace_lines(partitions, config, now_ms, key, lines, *expires_at_ms),
        }
    }

    fn transition(
        &mut self,
        key: &HoldKey,
        now_ms: u64,
        rule: impl FnOnce(&HoldState) -> Result<Option<(HoldStatus, Option<u64>, EventKind)>, String>,
    ) -> CmdResult {
        let Some(hold) = self.holds.get(key) else {
            return not_found(key);
        };
        match rule(hold) {
            Err(message) => CmdResult::refused(Outcome::Conflict, message),
            Ok(None) => CmdResult::success(),
            Ok(Some((status, expiry, event))) => {
                self.set_status(key, status, now_ms);
                self.set_expiry(key, expiry);
                let hold = self.holds[key].clone();
                self.emit(now_ms, event, &hold);
                CmdResult::success()
            }
        }
    }

    fn consume(
        &mut self,
        partitions: &mut BTreeMap<PartitionKey, PartitionState>,
        config: &Config,
        now_ms: u64,
        key: &HoldKey,
        line_ids: &[String],
    ) -> CmdResult {
        let Some(hold) = self.holds.get_mut(key) else {
            return not_found(key);
        };
        // Consume again, as a retry whose first answer was lost does: the same success, nothing
        // changes (as for confirm and release; hold commands carry no event id).
        let already = hold.status == HoldStatus::Consumed
            && hold.lines.iter().all(|l| {
                l.state == LineState::Consumed || !(line_ids.is_empty() || line_ids.contains(&l.line.line_id))
            })
            && line_ids
                .iter()
                .all(|id| hold.lines.iter().any(|l| &l.line.line_id == id));
        if already {
            return CmdResult::success();
        }
        if !matches!(hold.status, HoldStatus::Active | HoldStatus::Confirmed) {
            return CmdResult::refused(
                Outcome::Conflict,
                format!(
                    "hold is {}; only an active or confirmed hold can be consumed",
                    hold.status.name()
                ),
            );
        }
        if let Some(unknown) = line_ids
            .iter()
            .find(|id| !hold.lines.iter().any(|l| &l.line.line_id == *id))
        {
            return CmdResult::refused(
                Outcome::Invalid,
                format!("lines: '{unknown}' is not a line of this hold in this shard"),
            );
        }
        let wanted = |id: &String| line_ids.is_empty() || line_ids.contains(id);
        // The stock leaves: the reservation is released and on-hand goes down by as much.
        let (leaves_by, sign) = config.stock_leaves_by();
        for held in hold
            .lines
            .iter_mut()
            .filter(|l| l.state == LineState::Held && wanted(&l.line.line_id))
        {
            let cell = cell_mut(partitions, &held.line.partition, &held.line.cell);
            let reserved = cell.get(&hold.measure);
            cell.set(&hold.measure, reserved - held.line.quantity);
            if let Some(measure) = &leaves_by {
                let now = cell.get(measure);
                let moved = match sign {
                    Modifier::Addition => now + held.line.quantity,
                    Modifier::Subtraction => now - held.line.quantity,
                };
                cell.set(measure, moved);
            }
            held.state = LineState::Consumed;
        }
        let open = hold.lines.iter().any(|l| l.state == LineState::Held);
        if !open {
            self.set_expiry(key, None);
            self.set_status(key, HoldStatus::Consumed, now_ms);
            // A primary part consumed in full has no expiry left to pass on: the gateway's
            // consume reaches the other parts, and a part it did not consume keeps its own
            // safety net (DESIGN.md §3).
            self.siblings.open.remove(key);
        }
        let hold = self.holds[key].clone();
        self.emit(now_ms, EventKind::HoldConsumed, &hold);
        CmdResult::success()
    }

    fn replace_lines(
        &mut self,
        partitions: &mut BTreeMap<PartitionKey, PartitionState>,
        config: &Config,
        now_ms: u64,
        key: &HoldKey,
        lines: &[HoldLine],
        expires_at_ms: u64,
    ) -> CmdResult {
        let Some(hold) = self.holds.get(key) else {
            return not_found(key);
        };
        if hold.status != HoldStatus::Active {
            return CmdResult::refused(
                Outcome::Conflict,
                format!("hold is {}; only an active hold's lines can change", hold.status.name()),
            );
        }
        // No lines: the hold keeps no stock in this shard any more (its lines moved elsewhere).
        if !lines.is_empty()
            && let Err(message) = check_lines(config, &hold.measure, lines)
        {
            return CmdResult::refused(Outcome::Invalid, message);
        }
        let (measure, all_or_nothing) = (hold.measure.clone(), hold.all_or_nothing);
        // Release the old lines, try the new ones; put the old ones back if the new ones fail.
        let mut old = hold.clone();
        let saved = save_cells(
            partitions,
            old.lines
                .iter()
                .map(|l| &l.line)
                .chain(lines)
                .map(|l| (&l.partition, &l.cell)),
        );
        release_lines(partitions, &mut old, LineState::Released, None);
        match hold_lines(partitions, config, &measure, lines, all_or_nothing) {
            Ok(held) => {
                if let Some(h) = self.holds.get_mut(key) {
                    h.lines = held;
                }
                self.set_expiry(key, Some(expires_at_ms));
                let hold = self.holds[key].clone();
                self.emit(now_ms, EventKind::HoldChanged, &hold);
                CmdResult::success()
            }
            Err(message) => {
                // The old lines hold their stock again, exactly as before.
                restore_cells(partitions, saved);
                CmdResult::refused(Outcome::Insufficient, message)
            }
        }
    }
}

fn not_found(key: &HoldKey) -> CmdResult {
    CmdResult::refused(Outcome::NotFound, format!("hold '{}' is not known", key.id))
}

fn replay(existing: &HoldState) -> CmdResult {
    let short: Vec<&str> = existing
        .lines
        .iter()
        .filter(|l| l.state == LineState::Short)
        .map(|l| l.line.line_id.as_str())
        .collect();
    if short.is_empty() {
        CmdResult::success()
    } else {
        CmdResult {
            outcome: Outcome::PartialSuccess,
            message: format!("not held (short of stock): {}", short.join(", ")),
            reservation_id: None,
            invalid_offset: None,
        }
    }
}

fn check_lines(config: &Config, measure: &MeasureRef, lines: &[HoldLine]) -> Result<(), String> {
    if lines.is_empty() || lines.len() > HOLD_LINES_MAX {
        return Err(format!("items: 1 to {HOLD_LINES_MAX} lines"));
    }
    if !config.is_physical(measure) || !config.reserv_mappings.contains_key(measure) {
        return Err(format!(
            "measure: '{measure}' is not a physical measure with a reservMappings gate"
        ));
    }
    let mut ids = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.quantity.is_positive() {
            return Err(format!("items[{i}].quantity: must be greater than zero"));
        }
        if !ids.insert(&line.line_id) {
            return Err(format!("items[{i}].lineId: '{}' is used twice", line.line_id));
        }
    }
    Ok(())
}

fn add_held(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    measure: &MeasureRef,
    line: &HoldLine,
    delta: Qty,
) {
    let cell = cell_mut(partitions, &line.partition, &line.cell);
    let held = cell.get(measure);
    cell.set(measure, held + delta);
}

/// Holds each line in turn (each sees the ones before it); with all-or-nothing, a short line
/// undoes the lines held so far and refuses the whole hold.
fn hold_lines(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    measure: &MeasureRef,
    lines: &[HoldLine],
    all_or_nothing: bool,
) -> Result<Vec<HeldLine>, String> {
    let gate = config
        .reserv_mappings
        .get(measure)
        .and_then(|g| config.calculated.get(g));
    let mut held: Vec<HeldLine> = Vec::with_capacity(lines.len());
    // With all-or-nothing a short line puts every cell back exactly as it was.
    let saved = if all_or_nothing {
        save_cells(partitions, lines.iter().map(|l| (&l.partition, &l.cell)))
    } else {
        Vec::new()
    };
    for line in lines {
        let cells = partitions
            .get(&line.partition)
            .and_then(|p| p.products.get(line.cell.product.as_str()));
        let exact: Vec<(&String, &String)> = line.cell.dims.iter().collect();
        let available = gate.map_or(Qty::ZERO, |g| calculated_min_over(cells, g, &[&[][..], &exact[..]]));
        let before = cell_ref(partitions, &line.partition, &line.cell).map_or(Qty::ZERO, |c| c.get(measure));
        let fits = line.allow_oversell || available >= line.quantity;
        if fits && before.checked_add(line.quantity).is_some() {
            add_held(partitions, measure, line, line.quantity);
            held.push(HeldLine {
                line: line.clone(),
                state: LineState::Held,
            });
            continue;
        }
        if all_or_nothing {
            restore_cells(partitions, saved);
            if !fits {
                return Err(format!(
                    "not enough stock for line '{}': {} available, {} requested; nothing is held",
                    line.line_id, available, line.quantity
                ));
            }
            return Err(out_of_range(measure).message);
        }
        held.push(HeldLine {
            line: line.clone(),
            state: LineState::Short,
        });
    }
    Ok(held)
}

/// Returns the stock of every held line (or only `only`), marking them `to`.
fn release_lines(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    hold: &mut HoldState,
    to: LineState,
    only: Option<&[String]>,
) {
    for held in hold
        .lines
        .iter_mut()
        .filter(|l| l.state == LineState::Held && only.is_none_or(|ids| ids.contains(&l.line.line_id)))
    {
        add_held(partitions, &hold.measure, &held.line, -held.line.quantity);
        held.state = to;
    }
}

/// The fingerprint of a client's create body: the gateway computes it once over the whole body,
/// so a replay is recognised in every shard that holds a part of the hold.
pub fn body_fingerprint(body: &[u8]) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(body);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}
