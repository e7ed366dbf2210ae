//! DESIGN.md §4 as assertions: debug builds check after every command what it promises, on what
//! the command touched only (its cells, its reservation, its hold), so the checks stay cheap.
//!
//! - A refused command changes nothing: the cells, reservation and hold it names are as they were
//!   (its event id may still be remembered with the refusal; that is idempotency, not a change).
//! - No oversell: a checked reserve or an allocation that applied found at least its quantity
//!   available before it, in the partition and at its own dimensions.
//! - Conservation: an applied reserve or unreserve moves its quantity between the reservation and
//!   its cell's measure and nowhere else; a cell's `@iv.@allocated` and `@iv.@consumed` are the sums
//!   over its group paths after every allocation command.
//!
//! Release builds skip all of it: the dispatcher takes a [`Before`] only under
//! `cfg!(debug_assertions)`.

use std::collections::BTreeMap;

use crate::command::{Availability, CmdResult, Command};
use crate::config::{Config, Formula};
use crate::hold::{HoldCommand, HoldState, Holds};
use crate::model::{Cell, MeasureRef, PartitionKey};
use crate::qty::Qty;
use crate::state::{PartitionState, Reservation, SavedCells, calculated_over, cell_ref, save_cells};
use crate::stock::reservation_id;

/// What a command may change, as it was before the command.
pub(super) struct Before {
    cells: SavedCells,
    reservation: Option<(String, Option<Reservation>)>,
    hold: Option<Option<HoldState>>,
    /// Checked reserve and allocate: the availability their check reads (partition and exact).
    available: Option<Qty>,
    /// Reserve and unreserve: the reservation's measure in its cell.
    measure: Option<Qty>,
}

/// The cells a command names (unreserve: the cell of its reservation; a hold: its lines, old and new).
fn touched_cells(
    partitions: &BTreeMap<PartitionKey, PartitionState>,
    holds: &Holds,
    command: &Command,
) -> Vec<(PartitionKey, Cell)> {
    let one = |p: &PartitionKey, c: &Cell| vec![(p.clone(), c.clone())];
    match command {
        Command::OnHandChange(c) => one(&c.partition, &c.cell),
        Command::SetOnHand(c) => one(&c.partition, &c.cell),
        Command::Reserve(c) => one(&c.partition, &c.cell),
        Command::ScheduleChange(c) => one(&c.partition, &c.cell),
        Command::Allocate(c) | Command::Unallocate(c) => one(&c.partition, &c.cell),
        Command::Reallocate(c) => one(&c.partition, &c.cell),
        Command::Consume(c) => one(&c.partition, &c.cell),
        Command::Unreserve(c) => partitions
            .get(&c.partition)
            .and_then(|p| p.reservation(&c.reservation_id))
            .map(|r| vec![(c.partition.clone(), r.cell())])
            .unwrap_or_default(),
        Command::Hold(hold) => {
            let new = match hold {
                HoldCommand::Create { lines, .. } | HoldCommand::ReplaceLines { lines, .. } => lines.as_slice(),
                _ => &[],
            };
            let old = holds.get(hold.key()).map(|h| h.lines.as_slice()).unwrap_or_default();
            new.iter()
                .chain(old.iter().map(|l| &l.line))
                .map(|l| (l.partition.clone(), l.cell.clone()))
                .collect()
        }
        Command::PutConfig { .. } | Command::CleanUp { .. } => Vec::new(),
    }
}

fn reservation_of(command: &Command) -> Option<(&PartitionKey, String)> {
    match command {
        Command::Reserve(c) => Some((&c.partition, reservation_id(&c.partition, &c.cell, &c.measure))),
        Command::Unreserve(c) => Some((&c.partition, c.reservation_id.clone())),
        _ => None,
    }
}

/// The smallest of a formula over the product's partition and over the cell's own dimensions.
fn available(
    partitions: &BTreeMap<PartitionKey, PartitionState>,
    p: &PartitionKey,
    cell: &Cell,
    formula: &Formula,
) -> Qty {
    let cells = partitions.get(p).and_then(|s| s.products.get(cell.product.as_str()));
    let exact: Vec<(&String, &String)> = cell.dims.iter().collect();
    calculated_over(cells, formula, &[]).min(calculated_over(cells, formula, &exact))
}

fn measure_in(partitions: &BTreeMap<PartitionKey, PartitionState>, p: &PartitionKey, r: &Reservation) -> Qty {
    cell_ref(partitions, p, &r.cell()).map_or(Qty::ZERO, |c| c.get(&r.measure))
}

impl Before {
    pub(super) fn take(
        partitions: &BTreeMap<PartitionKey, PartitionState>,
        holds: &Holds,
        config: &Config,
        command: &Command,
    ) -> Before {
        let touched = touched_cells(partitions, holds, command);
        let reservation = reservation_of(command).map(|(p, id)| {
            let r = partitions.get(p).and_then(|s| s.reservation(&id)).cloned();
            (id, r)
        });
        let available = match command {
            Command::Reserve(c) if c.availability == Availability::Checked => config
                .reserv_mappings
                .get(&c.measure)
                .and_then(|g| config.calculated.get(g))
                .map(|gate| available(partitions, &c.partition, &c.cell, gate)),
            Command::Allocate(c) => Some(available(
                partitions,
                &c.partition,
                &c.cell,
                &config.available_to_allocate,
            )),
            _ => None,
        };
        let measure = match command {
            Command::Reserve(c) => {
                Some(cell_ref(partitions, &c.partition, &c.cell).map_or(Qty::ZERO, |x| x.get(&c.measure)))
            }
            Command::Unreserve(c) => reservation
                .as_ref()
                .and_then(|(_, r)| r.as_ref())
                .map(|r| measure_in(partitions, &c.partition, r)),
            _ => None,
        };
        let hold = match command {
            Command::Hold(h) => Some(holds.get(h.key()).cloned()),
            _ => None,
        };
        Before {
            cells: save_cells(partitions, touched.iter().map(|(p, c)| (p, c))),
            reservation,
            hold,
            available,
            measure,
        }
    }

    /// Panics (debug builds only call it) when the command broke an invariant.
    pub(super) fn check(
        self,
        partitions: &BTreeMap<PartitionKey, PartitionState>,
        holds: &Holds,
        config: &Config,
        command: &Command,
        result: &CmdResult,
    ) {
        let reservation_now = |p: &PartitionKey, id: &str| partitions.get(p).and_then(|s| s.reservation(id));
        if !result.outcome.applied() {
            let cells_now = save_cells(partitions, self.cells.iter().map(|(p, c, ..)| (p, c)));
            assert!(
                cells_now == self.cells,
                "a refused command changed its cells: {command:?} -> {result:?}"
            );
            if let (Some((id, before)), Some((p, _))) = (&self.reservation, reservation_of(command)) {
                assert!(
                    reservation_now(p, id) == before.as_ref(),
                    "a refused command changed its reservation: {command:?}"
                );
            }
            if let (Some(before), Command::Hold(h)) = (&self.hold, command) {
                assert!(
                    holds.get(h.key()) == before.as_ref(),
                    "a refused command changed its hold: {command:?}"
                );
            }
            return;
        }
        match command {
            Command::Reserve(c) => {
                if let Some(available) = self.available {
                    assert!(
                        available >= c.quantity,
                        "oversell: a checked reserve of {} applied with {available} available",
                        c.quantity
                    );
                }
                let (id, before) = self
                    .reservation
                    .as_ref()
                    .map(|(id, r)| (id.as_str(), r.as_ref()))
                    .unwrap_or_default();
                let was = before.map_or(Qty::ZERO, |r| r.quantity);
                let now = reservation_now(&c.partition, id).map_or(Qty::ZERO, |r| r.quantity);
                assert!(
                    now == was + c.quantity,
                    "reserve {id}: reservation {was} + {} gave {now}",
                    c.quantity
                );
                let cell_now = cell_ref(partitions, &c.partition, &c.cell).map_or(Qty::ZERO, |x| x.get(&c.measure));
                let cell_was = self.measure.unwrap_or(Qty::ZERO);
                assert!(
                    cell_now == cell_was + c.quantity,
                    "reserve {id}: {} {cell_was} + {} gave {cell_now}",
                    c.measure,
                    c.quantity
                );
            }
            Command::Unreserve(c) => {
                let offset = c.offset - result.invalid_offset.unwrap_or(Qty::ZERO);
                let (Some((_, Some(before))), Some(cell_was)) = (&self.reservation, self.measure) else {
                    panic!("unreserve {} applied to an unknown reservation", c.reservation_id);
                };
                let now = reservation_now(&c.partition, &c.reservation_id).map_or(Qty::ZERO, |r| r.quantity);
                assert!(
                    now == before.quantity - offset,
                    "unreserve: reservation {} - {offset} gave {now}",
                    before.quantity
                );
                let cell_now = measure_in(partitions, &c.partition, before);
                assert!(
                    cell_now == cell_was - offset,
                    "unreserve: measure {cell_was} - {offset} gave {cell_now}"
                );
            }
            Command::Allocate(c) => {
                if let Some(available) = self.available {
                    assert!(
                        available >= c.quantity,
                        "oversell: an allocation of {} applied with {available} available",
                        c.quantity
                    );
                }
                check_allocations(partitions, config, &c.partition, &c.cell);
            }
            Command::Unallocate(c) => check_allocations(partitions, config, &c.partition, &c.cell),
            Command::Reallocate(c) => check_allocations(partitions, config, &c.partition, &c.cell),
            Command::Consume(c) => check_allocations(partitions, config, &c.partition, &c.cell),
            _ => {}
        }
    }
}

/// A cell's `@iv.@allocated` and `@iv.@consumed` are the sums over its group paths (unless a
/// configuration lets reservations write those measures too).
fn check_allocations(
    partitions: &BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    p: &PartitionKey,
    cell: &Cell,
) {
    let allocated = MeasureRef::new("@iv", "@allocated");
    let consumed = MeasureRef::new("@iv", "@consumed");
    if config.reserv_mappings.contains_key(&allocated) || config.reserv_mappings.contains_key(&consumed) {
        return;
    }
    let Some(state) = cell_ref(partitions, p, cell) else {
        return;
    };
    let paths_allocated: Qty = state.allocations.values().map(|a| a.allocated).sum();
    let paths_consumed: Qty = state.allocations.values().map(|a| a.consumed).sum();
    assert!(
        state.get(&allocated) == paths_allocated,
        "allocation: @allocated {} but the group paths hold {paths_allocated}",
        state.get(&allocated)
    );
    assert!(
        state.get(&consumed) == paths_consumed,
        "allocation: @consumed {} but the group paths consumed {paths_consumed}",
        state.get(&consumed)
    );
}
