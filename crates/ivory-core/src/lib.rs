//! Ivory's stock rules, and nothing else: no I/O, no async, no clock, no randomness.
//!
//! Read in this order: [`model`] (where stock lives), [`config`] (an environment's data sources,
//! measures and hierarchies, in IV's JSON shape), [`command`] (the log entries and their results),
//! `state` (what the rules read and write), [`Shard::apply`] and its dispatch (`shard/dispatch.rs`:
//! which rules module applies each command), the rules ([`allocation`], [`hold`], [`schedule`],
//! `stock`), [`query`] (reads). Every rule about stock is in this crate; the layers above only
//! move commands and answers. The module graph is in the crate's README.

pub mod allocation;
pub mod command;
pub mod config;
mod config_doc;
pub mod date;
pub mod digest;
pub mod hold;
pub mod json;
pub mod model;
pub mod qty;
pub mod query;
pub mod schedule;
mod shard;
mod state;
mod stock;

pub use command::{
    Allocation, Availability, BATCH_COMMANDS_MAX, Batch, CmdResult, Command, Consumption, Modifier, OnHandChange,
    OpCode, Outcome, Reallocation, Reserve, ScheduleChange, SetOnHand, Unreserve,
};
pub use config::{Config, ConfigError};
pub use model::{Cell, Dims, MeasureRef, PartitionKey, Quantities, quantity};
pub use qty::{Qty, QtyError};
pub use query::{ExactFilter, Query, Record};
pub use shard::{
    DEFAULT_ENVIRONMENT, EVENT_RETENTION_MS_DEFAULT, EVENTS_REMEMBERED_MAX, ReadRequest, ReadResponse, Shard,
    SnapshotError,
};
pub use stock::reservation_id;
