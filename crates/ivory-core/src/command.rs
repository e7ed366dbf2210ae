//! Commands (the log entries) and their results.
//!
//! A [`Batch`] is one Raft log entry: the commands of one client request for one shard, stamped with
//! the leader's clock. [`crate::Shard::apply`] turns a batch into one [`CmdResult`] per command, in
//! order. Business refusals (not enough stock, unknown reservation, conflicting replay) are results,
//! never errors: a log entry always applies.

use serde::{Deserialize, Serialize};

use crate::config::Config;
pub use crate::model::Modifier;
use crate::model::{Cell, MeasureRef, PartitionKey, Quantities};
use crate::qty::Qty;

/// IV caps bulk bodies at 512 records; a batch is at most one bulk's worth for one shard.
pub const BATCH_COMMANDS_MAX: usize = 512;

/// One log entry: commands for one shard, stamped by the leader that proposed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Milliseconds since the Unix epoch on the leader when it proposed the entry. The state
    /// machine's clock is the maximum of these; replicas never read their own clock.
    pub ts_ms: u64,
    pub commands: Vec<Command>,
}

/// What a reservation's availability check does (`ifCheckAvailForReserv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Availability {
    /// Refuse unless the gating calculated measure covers the quantity (IV's default).
    Checked,
    /// Always apply; availability may go negative (oversell), or a negative quantity cancels.
    Unchecked,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Adds deltas to physical measures (`POST /onhand`).
    OnHandChange(OnHandChange),
    /// Overwrites the listed physical measures (`POST /setonhand/{system}/bulk`).
    SetOnHand(SetOnHand),
    /// A soft reservation on a physical measure gated by a calculated one (`/onhand/reserve`).
    Reserve(Reserve),
    /// Offsets a reservation by id (`/onhand/unreserve`).
    Unreserve(Unreserve),
    /// Adds scheduled deltas to future days (`/onhand/changeschedule`); never touches on-hand.
    ScheduleChange(ScheduleChange),
    /// Moves quantity from the allocation pool to a group path (`/allocation/allocate`).
    Allocate(Allocation),
    /// Returns a group path's quantity to the pool (`/allocation/unallocate`).
    Unallocate(Allocation),
    /// Moves quantity between group paths (`/allocation/reallocate`).
    Reallocate(Reallocation),
    /// Uses allocated quantity: an on-hand change or a soft reservation (`/allocation/consume`).
    Consume(Consumption),
    /// A hold's lifecycle step in this shard; idempotent by hold id (see `hold`).
    Hold(HoldCommand),
    /// Replaces an environment's configuration on this shard (`/configuration/hardupdate`).
    PutConfig {
        environment: String,
        /// The document in IV's JSON shape; validated again by `apply`.
        config_json: String,
    },
    /// Deletes stock, reservations and remembered ids of partitions of an environment
    /// (`/cleanupalldata`); `None` deletes every partition of the environment in this shard.
    CleanUp {
        environment: String,
        partitions: Option<Vec<PartitionKey>>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnHandChange {
    pub id: String,
    pub partition: PartitionKey,
    pub cell: Cell,
    pub quantities: Quantities,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetOnHand {
    pub id: String,
    pub partition: PartitionKey,
    pub cell: Cell,
    pub quantities: Quantities,
    /// `modifiedDateTimeUTC` in ms; a set older than the last one applied to a cell is ignored.
    pub modified_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reserve {
    pub id: String,
    pub partition: PartitionKey,
    pub cell: Cell,
    /// The physical measure that holds the reservation, e.g. `iv.softreservphysical`.
    pub measure: MeasureRef,
    pub quantity: Qty,
    pub availability: Availability,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unreserve {
    pub id: String,
    pub partition: PartitionKey,
    pub reservation_id: String,
    pub offset: Qty,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleChange {
    pub id: String,
    pub partition: PartitionKey,
    pub cell: Cell,
    /// UTC day (days since 1970-01-01) -> deltas of physical measures.
    pub quantities_by_date: std::collections::BTreeMap<i64, Quantities>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    pub id: String,
    pub partition: PartitionKey,
    pub cell: Cell,
    /// Group values in level order (see `Config::group_path`), at least one.
    pub groups: Vec<String>,
    pub quantity: Qty,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reallocation {
    pub id: String,
    pub partition: PartitionKey,
    pub cell: Cell,
    pub source_groups: Vec<String>,
    pub groups: Vec<String>,
    pub quantity: Qty,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Consumption {
    pub id: String,
    pub partition: PartitionKey,
    pub cell: Cell,
    pub groups: Vec<String>,
    pub quantity: Qty,
    /// The on-hand change (or soft reservation) the consumption becomes; empty = only
    /// `@iv.@consumed` records it.
    pub physical: Vec<(MeasureRef, Modifier)>,
}

/// The operation code of a command: the prefix of its result id (`ohre~<id>`), and part of its
/// idempotency key, so that one client id may be used once per kind of operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OpCode {
    OnHandChange,
    SetOnHand,
    Reserve,
    Unreserve,
    ScheduleChange,
    Allocate,
    Unallocate,
    Reallocate,
    Consume,
}

impl OpCode {
    /// IV's result id prefix (docs/iv-compatibility.md §2.7).
    pub fn prefix(self) -> &'static str {
        match self {
            OpCode::OnHandChange => "ohe",
            OpCode::SetOnHand => "ohse",
            OpCode::Reserve => "ohre",
            OpCode::Unreserve => "ohoe",
            OpCode::ScheduleChange => "ohcs",
            OpCode::Allocate => "alc",
            OpCode::Unallocate => "ualc",
            OpCode::Reallocate => "ralc",
            OpCode::Consume => "csm",
        }
    }
}

impl Command {
    /// The partition this command touches, if it touches exactly one.
    pub fn partition(&self) -> Option<&PartitionKey> {
        match self {
            Command::OnHandChange(c) => Some(&c.partition),
            Command::SetOnHand(c) => Some(&c.partition),
            Command::Reserve(c) => Some(&c.partition),
            Command::Unreserve(c) => Some(&c.partition),
            Command::ScheduleChange(c) => Some(&c.partition),
            Command::Allocate(c) | Command::Unallocate(c) => Some(&c.partition),
            Command::Reallocate(c) => Some(&c.partition),
            Command::Consume(c) => Some(&c.partition),
            Command::Hold(_) | Command::PutConfig { .. } | Command::CleanUp { .. } => None,
        }
    }

    /// The product a single-partition stock command touches (unreserve: found by its id).
    pub fn product(&self) -> Option<&str> {
        match self {
            Command::OnHandChange(c) => Some(&c.cell.product),
            Command::SetOnHand(c) => Some(&c.cell.product),
            Command::Reserve(c) => Some(&c.cell.product),
            Command::ScheduleChange(c) => Some(&c.cell.product),
            Command::Allocate(c) | Command::Unallocate(c) => Some(&c.cell.product),
            Command::Reallocate(c) => Some(&c.cell.product),
            Command::Consume(c) => Some(&c.cell.product),
            Command::Unreserve(_) | Command::Hold(_) | Command::PutConfig { .. } | Command::CleanUp { .. } => None,
        }
    }

    /// The client's event id and operation, for commands that are idempotent by id.
    pub fn event(&self) -> Option<(OpCode, &str)> {
        match self {
            Command::OnHandChange(c) => Some((OpCode::OnHandChange, &c.id)),
            Command::SetOnHand(c) => Some((OpCode::SetOnHand, &c.id)),
            Command::Reserve(c) => Some((OpCode::Reserve, &c.id)),
            Command::Unreserve(c) => Some((OpCode::Unreserve, &c.id)),
            Command::ScheduleChange(c) => Some((OpCode::ScheduleChange, &c.id)),
            Command::Allocate(c) => Some((OpCode::Allocate, &c.id)),
            Command::Unallocate(c) => Some((OpCode::Unallocate, &c.id)),
            Command::Reallocate(c) => Some((OpCode::Reallocate, &c.id)),
            Command::Consume(c) => Some((OpCode::Consume, &c.id)),
            Command::Hold(_) | Command::PutConfig { .. } | Command::CleanUp { .. } => None,
        }
    }
}

/// How a command ended. Maps to IV's `processingStatus`, body `statusCode` and bulk bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Success,
    /// An unreserve that offset more than was reserved: applied up to what there was.
    PartialSuccess,
    /// Availability check failed: IV's body `statusCode` 500, HTTP 409 in Ivory.
    Insufficient,
    /// Unknown reservation id: 404.
    NotFound,
    /// The same event id was already used with a different body: 409.
    Conflict,
    /// The command breaks a rule of the configuration (unknown measure, bad dimensions): 400.
    Invalid,
    /// A business rule refuses it (a reserve or allocation without site and location when
    /// partitions are by location): IV's body `statusCode` 500, HTTP 409 in Ivory.
    Refused,
}

impl Outcome {
    /// IV's `processingStatus`.
    pub fn processing_status(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::PartialSuccess => "partialSuccess",
            _ => "failure",
        }
    }

    /// IV's body `statusCode`.
    pub fn iv_status_code(self) -> u16 {
        match self {
            Outcome::Success | Outcome::PartialSuccess => 200,
            Outcome::Insufficient | Outcome::Refused => 500,
            Outcome::NotFound => 404,
            Outcome::Conflict => 409,
            Outcome::Invalid => 400,
        }
    }

    /// IV's bulk bucket.
    pub fn bucket(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::PartialSuccess => "partialSuccess",
            Outcome::NotFound => "notFound",
            Outcome::Conflict => "conflict",
            Outcome::Insufficient | Outcome::Invalid | Outcome::Refused => "failure",
        }
    }

    pub fn applied(self) -> bool {
        matches!(self, Outcome::Success | Outcome::PartialSuccess)
    }
}

/// The result of one command. A replay of an event id returns the stored copy of this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmdResult {
    pub outcome: Outcome,
    /// Empty on success; otherwise says what was wrong, naming the field or measure.
    pub message: String,
    /// Reserve and unreserve: the reservation (product + dimensions + measure) id.
    pub reservation_id: Option<String>,
    /// Unreserve: the part of `OffsetQty` beyond what was reserved
    /// (`totalInvalidOffsetQtyByReservId`).
    pub invalid_offset: Option<Qty>,
}

impl CmdResult {
    pub fn success() -> CmdResult {
        CmdResult {
            outcome: Outcome::Success,
            message: String::new(),
            reservation_id: None,
            invalid_offset: None,
        }
    }

    pub fn refused(outcome: Outcome, message: impl Into<String>) -> CmdResult {
        debug_assert!(!outcome.applied());
        CmdResult {
            outcome,
            message: message.into(),
            reservation_id: None,
            invalid_offset: None,
        }
    }
}

pub(crate) fn out_of_range(m: &MeasureRef) -> CmdResult {
    CmdResult::refused(
        Outcome::Invalid,
        format!(
            "quantities.{m}: the result would leave the allowed range of +/-{}",
            crate::qty::QTY_ABS_MAX
        ),
    )
}

/// Every (measure, quantity) of a request, checked against the configuration: a writable
/// physical measure and a finite value. `@iv` measures are kept by Ivory itself.
pub(crate) fn writable_measures(config: &Config, quantities: &Quantities) -> Result<Vec<(MeasureRef, Qty)>, String> {
    let mut out = Vec::new();
    for (ds, measures) in quantities {
        for (measure, qty) in measures {
            let m = MeasureRef::new(ds, measure);
            if !config.is_physical(&m) {
                return Err(format!(
                    "quantities.{ds}.{measure}: '{m}' is not a configured physical measure; {}",
                    config.describe_physical(&m.data_source)
                ));
            }
            if m.data_source.starts_with('@') {
                return Err(format!(
                    "quantities.{ds}.{measure}: '@' measures are maintained by Ivory, not written directly"
                ));
            }
            out.push((m, *qty));
        }
    }
    if out.is_empty() {
        return Err("quantities: at least one data source and measure is required".into());
    }
    Ok(out)
}

// Hold commands: a hold's lifecycle step in one shard (rules in `hold`).

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HoldKey {
    pub environment: String,
    pub organization: String,
    pub id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldLine {
    pub line_id: String,
    pub partition: PartitionKey,
    pub cell: Cell,
    pub quantity: Qty,
    /// Skip the availability check for this line (Digital River's `allowOversell`).
    pub allow_oversell: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HoldCommand {
    /// Creates the hold's lines of this shard; `tentative` for the first phase across shards.
    Create {
        key: HoldKey,
        measure: MeasureRef,
        lines: Vec<HoldLine>,
        expires_at_ms: u64,
        all_or_nothing: bool,
        tentative: bool,
        body_fingerprint: [u8; 16],
        primary: bool,
    },
    /// Second phase across shards: tentative -> active with the hold's real expiry.
    Commit { key: HoldKey, expires_at_ms: u64 },
    /// Releases every open line (DELETE).
    Release { key: HoldKey },
    /// No expiry from now on.
    Confirm { key: HoldKey },
    /// A new expiry (the timer restarts).
    Extend { key: HoldKey, expires_at_ms: u64 },
    /// The listed lines (all when empty) leave on-hand, as a fulfilment order does.
    Consume { key: HoldKey, line_ids: Vec<String> },
    /// Replaces the hold's lines in this shard (add, change, remove) and restarts the timer.
    ReplaceLines {
        key: HoldKey,
        lines: Vec<HoldLine>,
        expires_at_ms: u64,
    },
    // New variants go last: log entries are encoded by position.
    /// On a cross-shard hold's primary part: the shards of its other parts (added to those
    /// known). They follow the primary's expiry: when it expires, the leader of its shard
    /// expires them ([`HoldCommand::ExpirePart`]) until each has acknowledged
    /// ([`HoldCommand::SiblingsExpired`]). `body_fingerprint` must be the hold's.
    SetSiblings {
        key: HoldKey,
        body_fingerprint: [u8; 16],
        shards: Vec<u32>,
    },
    /// On a non-primary part: the hold's primary part expired, so this part expires too. An
    /// ended part, an unknown hold or another hold under the id (another fingerprint) is left
    /// as it is; the answer is a success either way, so a retry is harmless.
    ExpirePart { key: HoldKey, body_fingerprint: [u8; 16] },
    /// On the primary part: the parts in these shards have expired (their `ExpirePart` applied).
    SiblingsExpired { key: HoldKey, shards: Vec<u32> },
}

impl HoldCommand {
    pub fn key(&self) -> &HoldKey {
        match self {
            HoldCommand::Create { key, .. }
            | HoldCommand::Commit { key, .. }
            | HoldCommand::Release { key }
            | HoldCommand::Confirm { key }
            | HoldCommand::Extend { key, .. }
            | HoldCommand::Consume { key, .. }
            | HoldCommand::ReplaceLines { key, .. }
            | HoldCommand::SetSiblings { key, .. }
            | HoldCommand::ExpirePart { key, .. }
            | HoldCommand::SiblingsExpired { key, .. } => key,
        }
    }
}
