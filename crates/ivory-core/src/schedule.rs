//! On-hand change schedules and available-to-promise (../../../docs/iv-api.md §2.5, §4).
//!
//! Schedules are deltas dated by UTC day inside [today, today + period - 1]; they never change
//! current on-hand. "Today" is the day of the leader's timestamp of the entry that applies them.
//! ATP(d) = min over d' in [d, end of window] of projected(d'), where projected(d) = the ATP
//! measure now plus every scheduled delta of it dated on or before d.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{CmdResult, Outcome, ScheduleChange};
use crate::config::{Config, Formula};
use crate::date::{day_of_ms, format_day};
use crate::model::{MeasureRef, PartitionKey, Quantities};
use crate::qty::Qty;
use crate::shard::PartitionState;

/// What an ATP query asks: the window starts at `today` (the reader's UTC day); `from`/`to` only
/// filter which days are returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtpRequest {
    pub today: i64,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

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
        let deltas = match crate::stock::writable_measures(config, quantities) {
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
    let cell = crate::stock::cell_mut(partitions, &c.partition, &c.cell);
    // Days before today have left every window: forget them while the cell is at hand.
    cell.schedules = cell.schedules.split_off(&today);
    let mut next = Vec::new();
    for (day, deltas) in planned {
        for (m, delta) in deltas {
            let before = cell
                .schedules
                .get(&day)
                .and_then(|q| q.get(&m.data_source))
                .and_then(|q| q.get(&m.measure))
                .copied()
                .unwrap_or(Qty::ZERO);
            match before.checked_add(delta) {
                Some(after) => next.push((day, m, after)),
                None => return crate::stock::out_of_range(&m),
            }
        }
    }
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

pub(crate) fn evaluate_formula(formula: &Formula, q: &Quantities) -> Qty {
    let get = |m: &MeasureRef| {
        q.get(&m.data_source)
            .and_then(|x| x.get(&m.measure))
            .copied()
            .unwrap_or(Qty::ZERO)
    };
    let add: Qty = formula.add.iter().map(get).sum();
    let sub: Qty = formula.sub.iter().map(get).sum();
    add - sub
}

/// `quantitiesByDate` and `atpQuantities` of one aggregated record.
pub(crate) fn atp_for(
    config: &Config,
    request: &AtpRequest,
    current: &Quantities,
    scheduled: &BTreeMap<i64, Quantities>,
) -> (BTreeMap<i64, Quantities>, BTreeMap<i64, Quantities>) {
    let rules = &config.schedule;
    let end = request.today + i64::from(rules.period_days) - 1;
    let in_window: BTreeMap<i64, &Quantities> = scheduled.range(request.today..=end).map(|(d, q)| (*d, q)).collect();

    let mut by_date = BTreeMap::new();
    for (day, deltas) in &in_window {
        let mut row = (*deltas).clone();
        for m in &rules.by_date_measures {
            if let Some(f) = config.calculated.get(m) {
                row.entry(m.data_source.clone())
                    .or_default()
                    .insert(m.measure.clone(), evaluate_formula(f, deltas));
            }
        }
        by_date.insert(*day, row);
    }

    let days: Vec<i64> = (request.today..=end).collect();
    let mut atp: BTreeMap<i64, Quantities> = BTreeMap::new();
    for m in &rules.atp_measures {
        let Some(f) = config.calculated.get(m) else { continue };
        let mut projected = Vec::with_capacity(days.len());
        let mut level = evaluate_formula(f, current);
        for day in &days {
            if let Some(deltas) = in_window.get(day) {
                level = level + evaluate_formula(f, deltas);
            }
            projected.push(level);
        }
        // Suffix minima: what can be promised on day d without breaking a later day.
        let mut floor: Option<Qty> = None;
        for (i, day) in days.iter().enumerate().rev() {
            let value = floor.map_or(projected[i], |f| f.min(projected[i]));
            floor = Some(value);
            let wanted = request.from.is_none_or(|f| *day >= f) && request.to.is_none_or(|t| *day <= t);
            if wanted {
                atp.entry(*day)
                    .or_default()
                    .entry(m.data_source.clone())
                    .or_default()
                    .insert(m.measure.clone(), value);
            }
        }
    }
    (by_date, atp)
}
