//! The stock rules: on-hand change, set on-hand, reserve and unreserve on one partition.
//!
//! Each `plan_*` works out the whole change and refuses before touching anything, so a refused
//! command changes nothing; only the `apply_*` that follows writes.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::command::{Availability, CmdResult, Command, OnHandChange, Outcome, Reserve, SetOnHand, Unreserve};
use crate::config::Config;
use crate::model::{Cell, Dims, MeasureRef, PartitionKey, Quantities};
use crate::qty::Qty;
use crate::shard::{CellState, PartitionState, Reservation};

pub(crate) fn apply_stock(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    clock_ms: u64,
    command: &Command,
) -> CmdResult {
    // By location, site and location are the partition: stock may arrive without them (it is
    // kept under empty ones), but nothing can be reserved or allocated there (IV: body 500).
    let takes_stock = matches!(
        command,
        Command::Reserve(_)
            | Command::Allocate(_)
            | Command::Unallocate(_)
            | Command::Reallocate(_)
            | Command::Consume(_)
    );
    if takes_stock
        && config.partition_mode == crate::config::PartitionMode::ByLocation
        && command
            .partition()
            .is_some_and(|p| p.site.is_empty() || p.location.is_empty())
    {
        return CmdResult::refused(
            Outcome::Refused,
            "dimensions.siteId and dimensions.locationId are required: partitions are by location",
        );
    }
    match command {
        Command::OnHandChange(c) => on_hand_change(partitions, config, c),
        Command::SetOnHand(c) => set_on_hand(partitions, config, c),
        Command::Reserve(c) => reserve(partitions, config, c),
        Command::Unreserve(c) => unreserve(partitions, c),
        Command::ScheduleChange(c) => crate::schedule::schedule_change(partitions, config, clock_ms, c),
        Command::Allocate(c) => crate::allocation::allocate(partitions, config, c),
        Command::Unallocate(c) => crate::allocation::unallocate(partitions, config, c),
        Command::Reallocate(c) => crate::allocation::reallocate(partitions, config, c),
        Command::Consume(c) => crate::allocation::consume(partitions, config, c),
        Command::Hold(_) | Command::PutConfig { .. } | Command::CleanUp { .. } => {
            CmdResult::refused(Outcome::Invalid, "not a stock command")
        }
    }
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

pub(crate) fn out_of_range(m: &MeasureRef) -> CmdResult {
    CmdResult::refused(
        Outcome::Invalid,
        format!(
            "quantities.{m}: the result would leave the allowed range of +/-{}",
            crate::qty::QTY_ABS_MAX
        ),
    )
}

/// The cell, created on first use. Keys are cloned only when something is created: this runs for
/// every command.
pub(crate) fn cell_mut<'a>(
    partitions: &'a mut BTreeMap<PartitionKey, PartitionState>,
    p: &PartitionKey,
    cell: &Cell,
) -> &'a mut CellState {
    if !partitions.contains_key(p) {
        partitions.insert(p.clone(), PartitionState::default());
    }
    let partition = partitions.get_mut(p).expect("inserted above");
    if !partition.products.contains_key(&cell.product) {
        partition.products.insert(cell.product.clone(), BTreeMap::new());
    }
    let cells = partition.products.get_mut(&cell.product).expect("inserted above");
    if !cells.contains_key(&cell.dims) {
        cells.insert(cell.dims.clone(), CellState::default());
    }
    cells.get_mut(&cell.dims).expect("inserted above")
}

pub(crate) fn cell_ref<'a>(
    partitions: &'a BTreeMap<PartitionKey, PartitionState>,
    p: &PartitionKey,
    cell: &Cell,
) -> Option<&'a CellState> {
    partitions.get(p)?.products.get(&cell.product)?.get(&cell.dims)
}

fn on_hand_change(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    c: &OnHandChange,
) -> CmdResult {
    let deltas = match writable_measures(config, &c.quantities) {
        Ok(d) => d,
        Err(message) => return CmdResult::refused(Outcome::Invalid, message),
    };
    let current = cell_ref(partitions, &c.partition, &c.cell);
    let mut next = Vec::with_capacity(deltas.len());
    for (m, delta) in deltas {
        let before = current.map_or(Qty::ZERO, |cell| cell.get(&m));
        match before.checked_add(delta) {
            Some(after) => next.push((m, after)),
            None => return out_of_range(&m),
        }
    }
    let cell = cell_mut(partitions, &c.partition, &c.cell);
    for (m, value) in next {
        cell.set(&m, value);
    }
    CmdResult::success()
}

fn set_on_hand(partitions: &mut BTreeMap<PartitionKey, PartitionState>, config: &Config, c: &SetOnHand) -> CmdResult {
    let values = match writable_measures(config, &c.quantities) {
        Ok(v) => v,
        Err(message) => return CmdResult::refused(Outcome::Invalid, message),
    };
    let cell = cell_mut(partitions, &c.partition, &c.cell);
    let mut ignored = Vec::new();
    for (m, value) in values {
        if let (Some(at), Some(last)) = (c.modified_ms, cell.set_modified_ms.get(&m))
            && at < *last
        {
            ignored.push(m.to_string());
            continue;
        }
        cell.set(&m, value);
        if let Some(at) = c.modified_ms {
            cell.set_modified_ms.insert(m, at);
        }
    }
    let mut result = CmdResult::success();
    if !ignored.is_empty() {
        result.message = format!(
            "ignored for {}: modifiedDateTimeUTC is older than the last set applied",
            ignored.join(", ")
        );
    }
    result
}

/// The reservation id of a product + dimensions + holding measure in a partition: IV's
/// `reservationId` names the combination, not one request (../../../docs/iv-api.md §2.3).
pub fn reservation_id(partition: &PartitionKey, cell: &Cell, measure: &MeasureRef) -> String {
    let mut h = Sha256::new();
    h.update(partition.canonical_bytes());
    for part in std::iter::once(&cell.product)
        .chain(cell.dims.iter().flat_map(|(k, v)| [k, v]))
        .chain([&measure.data_source, &measure.measure])
    {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, b) in d[..16].iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// A calculated measure summed over the cells of one product whose dimensions contain `filter`.
pub(crate) fn calculated_over(
    cells: Option<&BTreeMap<Dims, CellState>>,
    formula: &crate::config::Formula,
    filter: &[(&String, &String)],
) -> Qty {
    let Some(cells) = cells else { return Qty::ZERO };
    cells
        .iter()
        .filter(|(dims, _)| filter.iter().all(|(k, v)| dims.get(*k) == Some(*v)))
        .map(|(_, cell)| {
            let add: Qty = formula.add.iter().map(|m| cell.get(m)).sum();
            let sub: Qty = formula.sub.iter().map(|m| cell.get(m)).sum();
            add - sub
        })
        .sum()
}

/// The dimension filters a reservation must pass, coarsest first: the partition (no filter),
/// each prefix of the reservation hierarchy that the request names, and finally its exact
/// dimensions. Checking every level keeps a fine-grained reservation from taking stock that a
/// coarser one already counted on.
fn reservation_levels<'a>(config: &'a Config, dims: &'a Dims) -> Result<Vec<Vec<(&'a String, &'a String)>>, String> {
    let hierarchy = &config.reservation_hierarchy;
    let named = hierarchy.iter().take_while(|d| dims.contains_key(*d)).count();
    if let Some(skipped) = hierarchy.iter().skip(named).find(|d| dims.contains_key(*d)) {
        return Err(format!(
            "dimensions.{skipped}: the reservation hierarchy is {}; a reservation names a prefix of it without gaps",
            hierarchy.join(", ")
        ));
    }
    if config.reservation_version == 0 && dims.len() > named {
        let extra = dims.keys().find(|k| !hierarchy.contains(k)).map_or("?", |k| k.as_str());
        return Err(format!(
            "dimensions.{extra}: not in the reservation hierarchy ({}); reservConfiguration.version 0 refuses it",
            hierarchy.join(", ")
        ));
    }
    let mut levels: Vec<Vec<(&String, &String)>> = (0..=named)
        .map(|n| hierarchy[..n].iter().filter_map(|d| dims.get_key_value(d)).collect())
        .collect();
    if dims.len() > named {
        levels.push(dims.iter().collect());
    }
    Ok(levels)
}

fn reserve(partitions: &mut BTreeMap<PartitionKey, PartitionState>, config: &Config, c: &Reserve) -> CmdResult {
    if !config.reservation_enabled {
        return CmdResult::refused(
            Outcome::Invalid,
            "reservations are disabled in this environment's configuration",
        );
    }
    if !config.is_physical(&c.measure) {
        return CmdResult::refused(
            Outcome::Invalid,
            format!(
                "modifier: '{}' is not a configured physical measure; {}",
                c.measure,
                config.describe_physical(&c.measure.data_source)
            ),
        );
    }
    let Some(gate_ref) = config.reserv_mappings.get(&c.measure) else {
        return CmdResult::refused(
            Outcome::Invalid,
            format!(
                "modifier: '{}' has no reservMappings entry, so nothing gates it",
                c.measure
            ),
        );
    };
    let levels = match reservation_levels(config, &c.cell.dims) {
        Ok(l) => l,
        Err(message) => return CmdResult::refused(Outcome::Invalid, message),
    };
    if c.quantity.is_zero() {
        return CmdResult::refused(Outcome::Invalid, "quantity: must not be zero");
    }
    if c.availability == Availability::Checked {
        if c.quantity.is_negative() {
            return CmdResult::refused(
                Outcome::Insufficient,
                "quantity: a negative reservation (a cancel) needs ifCheckAvailForReserv false",
            );
        }
        // A reservation gate is always a compiled calculated measure (checked by the config).
        let Some(gate) = config.calculated.get(gate_ref) else {
            return CmdResult::refused(Outcome::Invalid, format!("'{gate_ref}' is not a calculated measure"));
        };
        let cells = partitions
            .get(&c.partition)
            .and_then(|p| p.products.get(&c.cell.product));
        let available = levels
            .iter()
            .map(|filter| calculated_over(cells, gate, filter))
            .min()
            .unwrap_or(Qty::ZERO);
        if available < c.quantity {
            return CmdResult::refused(
                Outcome::Insufficient,
                format!("not enough stock: {gate_ref} is {available}, {} requested", c.quantity),
            );
        }
    }
    let before = cell_ref(partitions, &c.partition, &c.cell).map_or(Qty::ZERO, |cell| cell.get(&c.measure));
    let Some(after) = before.checked_add(c.quantity) else {
        return out_of_range(&c.measure);
    };
    let id = reservation_id(&c.partition, &c.cell, &c.measure);
    let partition = partitions.entry(c.partition.clone()).or_default();
    let reservation = partition.reservations.entry(id.clone()).or_insert_with(|| Reservation {
        product: c.cell.product.clone(),
        dims: c.cell.dims.clone(),
        measure: c.measure.clone(),
        quantity: Qty::ZERO,
    });
    reservation.quantity = reservation.quantity + c.quantity;
    cell_mut(partitions, &c.partition, &c.cell).set(&c.measure, after);
    CmdResult {
        reservation_id: Some(id),
        ..CmdResult::success()
    }
}

fn unreserve(partitions: &mut BTreeMap<PartitionKey, PartitionState>, c: &Unreserve) -> CmdResult {
    if !c.offset.is_positive() {
        return CmdResult::refused(Outcome::Invalid, "OffsetQty: must be greater than zero");
    }
    let Some(partition) = partitions.get_mut(&c.partition) else {
        return not_found(c);
    };
    let Some(reservation) = partition.reservations.get_mut(&c.reservation_id) else {
        return not_found(c);
    };
    let offset = c.offset.min(reservation.quantity.max(Qty::ZERO));
    let excess = c.offset - offset;
    reservation.quantity = reservation.quantity - offset;
    let cell = Cell {
        product: reservation.product.clone(),
        dims: reservation.dims.clone(),
    };
    let measure = reservation.measure.clone();
    let state = cell_mut(partitions, &c.partition, &cell);
    let held = state.get(&measure);
    state.set(&measure, held - offset);
    CmdResult {
        outcome: if excess.is_zero() {
            Outcome::Success
        } else {
            Outcome::PartialSuccess
        },
        message: if excess.is_zero() {
            String::new()
        } else {
            format!("OffsetQty exceeds the reserved quantity by {excess}")
        },
        reservation_id: Some(c.reservation_id.clone()),
        invalid_offset: Some(excess),
    }
}

fn not_found(c: &Unreserve) -> CmdResult {
    CmdResult {
        reservation_id: Some(c.reservation_id.clone()),
        ..CmdResult::refused(
            Outcome::NotFound,
            format!("reservationId '{}' is not known in this partition", c.reservation_id),
        )
    }
}
