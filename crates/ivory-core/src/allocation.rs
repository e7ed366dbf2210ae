//! Allocation: ring-fencing stock for group paths (channel, customer group, region, ...) before it
//! is sold (docs/iv-compatibility.md §5). Quantity moves from the pool (`availableToAllocateCalculation`,
//! by default iv.onhand - @iv.@allocated) to a group path, between paths, back, or is consumed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{Allocation, CmdResult, Consumption, Modifier, Outcome, Reallocation, out_of_range};
use crate::config::Config;
use crate::model::{Cell, Dims, MeasureRef, PartitionKey};
use crate::qty::Qty;
pub use crate::state::AllocationState;
use crate::state::{CellState, PartitionState, calculated_over, cell_mut, cell_ref};

/// `allocation/query`: exact dimensions; `groups` a prefix of the path (empty = every path).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationQuery {
    pub partition: PartitionKey,
    pub cell: Cell,
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationRecord {
    pub product: String,
    pub site: String,
    pub location: String,
    pub dims: Dims,
    pub groups: Vec<String>,
    pub state: AllocationState,
}

fn measure(name: &str) -> MeasureRef {
    MeasureRef::new("@iv", name)
}

/// The new value of an `@iv` measure of the cell, worked out before anything is written: every
/// check that can refuse runs before the first write, so a refused command changes nothing.
fn added(cell: Option<&CellState>, name: &str, delta: Qty) -> Result<(MeasureRef, Qty), CmdResult> {
    let m = measure(name);
    let before = cell.map_or(Qty::ZERO, |c| c.get(&m));
    let value = before.checked_add(delta).ok_or_else(|| out_of_range(&m))?;
    Ok((m, value))
}

fn check_path(config: &Config, field: &str, groups: &[String]) -> Result<(), CmdResult> {
    if groups.is_empty() || groups.len() > config.allocation_groups.len() {
        return Err(CmdResult::refused(
            Outcome::Invalid,
            format!(
                "{field}: give 1 to {} group levels ({})",
                config.allocation_groups.len(),
                config.allocation_groups.join(", ")
            ),
        ));
    }
    Ok(())
}

fn check_quantity(q: Qty) -> Result<(), CmdResult> {
    if q.is_positive() {
        Ok(())
    } else {
        Err(CmdResult::refused(
            Outcome::Invalid,
            "quantity: must be greater than zero",
        ))
    }
}

fn allocated_at(cell: Option<&CellState>, path: &[String]) -> Qty {
    cell.and_then(|c| c.allocations.get(path))
        .map_or(Qty::ZERO, |a| a.allocated)
}

fn short(path: &[String], have: Qty, want: Qty) -> CmdResult {
    CmdResult::refused(
        Outcome::Insufficient,
        format!("group path {} has {have} allocated, {want} requested", path.join("/")),
    )
}

fn done(r: Result<(), CmdResult>) -> CmdResult {
    r.err().unwrap_or_else(CmdResult::success)
}

pub(crate) fn allocate(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    c: &Allocation,
) -> CmdResult {
    done((|| {
        check_path(config, "groups", &c.groups)?;
        check_quantity(c.quantity)?;
        let cells = partitions
            .get(&c.partition)
            .and_then(|p| p.products.get(c.cell.product.as_str()));
        let exact: Vec<(&String, &String)> = c.cell.dims.iter().collect();
        // The pool is checked for the product in the partition and at the cell's own dimensions.
        let available = calculated_over(cells, &config.available_to_allocate, &[]).min(calculated_over(
            cells,
            &config.available_to_allocate,
            &exact,
        ));
        if available < c.quantity {
            return Err(CmdResult::refused(
                Outcome::Insufficient,
                format!(
                    "not enough to allocate: available to allocate is {available}, {} requested",
                    c.quantity
                ),
            ));
        }
        let current = cell_ref(partitions, &c.partition, &c.cell);
        let allocated = added(current, "@allocated", c.quantity)?;
        let cumulative = added(current, "@cumulative_allocated", c.quantity)?;
        let cell = cell_mut(partitions, &c.partition, &c.cell);
        for (m, value) in [allocated, cumulative] {
            cell.set(&m, value);
        }
        let path = cell.allocations.entry(c.groups.clone()).or_default();
        path.allocated = path.allocated + c.quantity;
        path.cumulative_allocated = path.cumulative_allocated + c.quantity;
        Ok(())
    })())
}

pub(crate) fn unallocate(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    c: &Allocation,
) -> CmdResult {
    done((|| {
        check_path(config, "groups", &c.groups)?;
        check_quantity(c.quantity)?;
        let current = cell_ref(partitions, &c.partition, &c.cell);
        let have = allocated_at(current, &c.groups);
        if have < c.quantity {
            return Err(short(&c.groups, have, c.quantity));
        }
        let (m, allocated) = added(current, "@allocated", -c.quantity)?;
        let cell = cell_mut(partitions, &c.partition, &c.cell);
        cell.set(&m, allocated);
        let path = cell.allocations.entry(c.groups.clone()).or_default();
        path.allocated = path.allocated - c.quantity;
        Ok(())
    })())
}

pub(crate) fn reallocate(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    c: &Reallocation,
) -> CmdResult {
    done((|| {
        check_path(config, "sourceGroups", &c.source_groups)?;
        check_path(config, "groups", &c.groups)?;
        check_quantity(c.quantity)?;
        if c.source_groups == c.groups {
            return Err(CmdResult::refused(Outcome::Invalid, "groups: the target is the source"));
        }
        let have = allocated_at(cell_ref(partitions, &c.partition, &c.cell), &c.source_groups);
        if have < c.quantity {
            return Err(short(&c.source_groups, have, c.quantity));
        }
        let cell = cell_mut(partitions, &c.partition, &c.cell);
        let source = cell.allocations.entry(c.source_groups.clone()).or_default();
        source.allocated = source.allocated - c.quantity;
        let target = cell.allocations.entry(c.groups.clone()).or_default();
        target.allocated = target.allocated + c.quantity;
        target.cumulative_allocated = target.cumulative_allocated + c.quantity;
        Ok(())
    })())
}

pub(crate) fn consume(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    c: &Consumption,
) -> CmdResult {
    done((|| {
        check_path(config, "groups", &c.groups)?;
        check_quantity(c.quantity)?;
        for (m, _) in &c.physical {
            if m.data_source == "fno" {
                return Err(CmdResult::refused(
                    Outcome::Invalid,
                    format!("physicalMeasures.{m}: fno is written only by Supply Chain Management"),
                ));
            }
            if m.data_source.starts_with('@') || !config.is_physical(m) {
                return Err(CmdResult::refused(
                    Outcome::Invalid,
                    format!(
                        "physicalMeasures.{m}: not a writable physical measure; {}",
                        config.describe_physical(&m.data_source)
                    ),
                ));
            }
        }
        let current = cell_ref(partitions, &c.partition, &c.cell);
        let have = allocated_at(current, &c.groups);
        if have < c.quantity {
            return Err(short(&c.groups, have, c.quantity));
        }
        let mut changes = Vec::with_capacity(c.physical.len());
        for (m, modifier) in &c.physical {
            let delta = match modifier {
                Modifier::Addition => c.quantity,
                Modifier::Subtraction => -c.quantity,
            };
            let before = current.map_or(Qty::ZERO, |cell| cell.get(m));
            changes.push((m, before.checked_add(delta).ok_or_else(|| out_of_range(m))?));
        }
        let own = [
            added(current, "@allocated", -c.quantity)?,
            added(current, "@consumed", c.quantity)?,
            added(current, "@cumulative_consumed", c.quantity)?,
        ];
        let cell = cell_mut(partitions, &c.partition, &c.cell);
        for (m, value) in own {
            cell.set(&m, value);
        }
        for (m, value) in changes {
            cell.set(m, value);
        }
        let path = cell.allocations.entry(c.groups.clone()).or_default();
        path.allocated = path.allocated - c.quantity;
        path.consumed = path.consumed + c.quantity;
        path.cumulative_consumed = path.cumulative_consumed + c.quantity;
        Ok(())
    })())
}

pub(crate) fn query(partitions: &BTreeMap<PartitionKey, PartitionState>, q: &AllocationQuery) -> Vec<AllocationRecord> {
    let Some(cell) = cell_ref(partitions, &q.partition, &q.cell) else {
        return Vec::new();
    };
    cell.allocations
        .iter()
        .filter(|(path, _)| path.starts_with(&q.groups))
        .map(|(path, state)| AllocationRecord {
            product: q.cell.product.clone(),
            site: q.partition.site.clone(),
            location: q.partition.location.clone(),
            dims: q.cell.dims.clone(),
            groups: path.clone(),
            state: state.clone(),
        })
        .collect()
}
