//! On-hand change schedules (docs/iv-compatibility.md §2.5, §4): the write side. The read side,
//! available-to-promise, is computed by [`crate::query`] (`atp_for`).
//!
//! Schedules are deltas dated by UTC day inside [today, today + period - 1]; they never change
//! current on-hand. "Today" is the day of the leader's timestamp of the entry that applies them.

use std::collections::BTreeMap;

use crate::command::{CmdResult, Outcome, ScheduleChange, out_of_range, writable_measures};
use crate::config::Config;
use crate::date::{day_of_ms, format_day};
use crate::model::PartitionKey;
use crate::qty::Qty;
use crate::state::{PartitionState, cell_mut, cell_ref};

/// ATP is read by [`crate::query`]; its request type is re-exported here, where it always was.
pub use crate::query::AtpRequest;

pub(crate) fn schedule_change(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    clock_ms: u64,
    c: &ScheduleChange,
) -> CmdResult {
    let rules = &config.schedule;
    if !rules.enabled {
        return CmdResult::refused(
            Outcome::Invalid,
            "change schedules are disabled (scheduleConfiguration.isEnabled is false)",
        );
    }
    if c.quantities_by_date.is_empty() {
        return CmdResult::refused(Outcome::Invalid, "quantitiesByDate: at least one date is required");
    }
    let today = day_of_ms(clock_ms);
    let last = today + i64::from(rules.period_days) - 1;
    let mut planned = Vec::new();
    for (&day, quantities) in &c.quantities_by_date {
        if day < today || day > last {
            return CmdResult::refused(
                Outcome::Invalid,
                format!(
                    "quantitiesByDate.{}: outside the schedule window {} .. {} ({} days from today, UTC)",
                    format_day(day),
                    format_day(today),
                    format_day(last),
                    rules.period_days
                ),
            );
        }
        let deltas = match writable_measures(config, quantities) {
            Ok(d) => d,
            Err(message) => {
                return CmdResult::refused(
                    Outcome::Invalid,
                    format!("quantitiesByDate.{}.{message}", format_day(day)),
                );
            }
        };
        planned.push((day, deltas));
    }
    // Every planned day is today or later, so the values before are the same whether or not
    // the days before today were forgotten yet: work them all out before the first write.
    let current = cell_ref(partitions, &c.partition, &c.cell);
    let mut next = Vec::new();
    for (day, deltas) in planned {
        for (m, delta) in deltas {
            let before = current
                .and_then(|cell| cell.schedules.get(&day))
                .and_then(|q| q.get(&m.data_source))
                .and_then(|q| q.get(&m.measure))
                .copied()
                .unwrap_or(Qty::ZERO);
            match before.checked_add(delta) {
                Some(after) => next.push((day, m, after)),
                None => return out_of_range(&m),
            }
        }
    }
    let cell = cell_mut(partitions, &c.partition, &c.cell);
    // Days before today have left every window: forget them while the cell is at hand.
    cell.schedules = cell.schedules.split_off(&today);
    for (day, m, value) in next {
        cell.schedules
            .entry(day)
            .or_default()
            .entry(m.data_source)
            .or_default()
            .insert(m.measure, value);
    }
    CmdResult::success()
}
