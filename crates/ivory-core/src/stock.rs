//! The stock rules: on-hand change, set on-hand, reserve and unreserve on one partition.
//!
//! Each function checks the whole command and works out the new values before it writes, so a
//! refused command changes nothing; the writes come last. The shard's dispatch (`shard::dispatch`)
//! calls them; this module depends only on the state and command types.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use smallvec::SmallVec;

use crate::command::{
    Availability, CmdResult, OnHandChange, Outcome, Reserve, SetOnHand, Unreserve, out_of_range, writable_measures,
};
use crate::config::Config;
use crate::model::{Cell, Dims, MeasureRef, PartitionKey};
use crate::qty::Qty;
use crate::state::{
    Name, PartitionState, Reservation, ReservationKey, calculated_min_over, cell_at, cell_in, cell_mut, cell_ref,
    partition_mut,
};

pub(crate) fn on_hand_change(
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

pub(crate) fn set_on_hand(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    c: &SetOnHand,
) -> CmdResult {
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
/// `reservationId` names the combination, not one request (docs/iv-compatibility.md §2.3).
pub fn reservation_id(partition: &PartitionKey, cell: &Cell, measure: &MeasureRef) -> String {
    reservation_id_text(&reservation_key(partition, cell, measure).0)
}

/// [`reservation_id`] as the bytes its text spells.
pub(crate) fn reservation_key(partition: &PartitionKey, cell: &Cell, measure: &MeasureRef) -> ReservationKey {
    let mut h = Sha256::new();
    partition.feed_canonical_bytes(|bytes| h.update(bytes));
    for part in std::iter::once(&cell.product)
        .chain(cell.dims.iter().flat_map(|(k, v)| [k, v]))
        .chain([&measure.data_source, &measure.measure])
    {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    ReservationKey(crate::state::truncate(h.finalize().into()))
}

const HEX: &[u8; 16] = b"0123456789abcdef";
/// After which bytes a reservation id has a dash (the shape of a UUID).
const DASH_AFTER: [usize; 4] = [3, 5, 7, 9];

/// A reservation id's text: the 16 bytes in lower-case hex, shaped as a UUID.
pub(crate) fn reservation_id_text(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
        if DASH_AFTER.contains(&i) {
            out.push('-');
        }
    }
    out
}

/// The bytes of a reservation id's text, when it is exactly what [`reservation_id_text`] writes
/// (lower-case hex, dashes in place); read without allocating, as every reserve's result is.
pub(crate) fn reservation_id_bytes(text: &str) -> Option<[u8; 16]> {
    let text = text.as_bytes();
    let digit = |at: usize| match text.get(at)? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; 16];
    let mut at = 0;
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = digit(at)? << 4 | digit(at + 1)?;
        at += 2;
        if DASH_AFTER.contains(&i) {
            if text.get(at) != Some(&b'-') {
                return None;
            }
            at += 1;
        }
    }
    (at == text.len()).then_some(bytes)
}

/// A level's (dimension, value) pairs; a few levels of a few pairs each, kept off the heap.
type Level<'a> = SmallVec<[(&'a String, &'a String); 4]>;

/// The dimension filters a reservation must pass, coarsest first: the partition (no filter),
/// each prefix of the reservation hierarchy that the request names, and finally its exact
/// dimensions. Checking every level keeps a fine-grained reservation from taking stock that a
/// coarser one already counted on.
fn reservation_levels<'a>(config: &'a Config, dims: &'a Dims) -> Result<SmallVec<[Level<'a>; 4]>, String> {
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
    let mut levels: SmallVec<[Level; 4]> = (0..=named)
        .map(|n| {
            hierarchy[..n]
                .iter()
                .filter_map(|d| dims.find_index(d).ok().and_then(|i| dims.get_indexed(i)))
                .collect()
        })
        .collect();
    if dims.len() > named {
        levels.push(dims.iter().collect());
    }
    Ok(levels)
}

pub(crate) fn reserve(
    partitions: &mut BTreeMap<PartitionKey, PartitionState>,
    config: &Config,
    c: &Reserve,
) -> CmdResult {
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
    // One lookup of the partition serves the gate, the current quantity and the write.
    let found = partitions.get_mut(&c.partition);
    let cells = found.as_deref().and_then(|p| p.products.get(c.cell.product.as_str()));
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
        let available = calculated_min_over(cells, gate, &levels);
        if available < c.quantity {
            return CmdResult::refused(
                Outcome::Insufficient,
                format!("not enough stock: {gate_ref} is {available}, {} requested", c.quantity),
            );
        }
    }
    let before = cells
        .and_then(|cells| cell_at(cells, &c.cell.dims))
        .map_or(Qty::ZERO, |cell| cell.get(&c.measure));
    let Some(after) = before.checked_add(c.quantity) else {
        return out_of_range(&c.measure);
    };
    let key = reservation_key(&c.partition, &c.cell, &c.measure);
    // Accepted: from here on the state changes (a reserve unchecked may create its partition).
    let partition = match found {
        Some(partition) => partition,
        None => partition_mut(partitions, &c.partition),
    };
    match partition.reservations.get_mut(&key) {
        Some(reservation) => reservation.quantity = reservation.quantity + c.quantity,
        None => {
            let reservation = Reservation {
                product: Name::from(c.cell.product.as_str()),
                dims: c
                    .cell
                    .dims
                    .iter()
                    .map(|(k, v)| (Name::from(k.as_str()), Name::from(v.as_str())))
                    .collect(),
                measure: c.measure.clone(),
                quantity: c.quantity,
            };
            partition.reservations.insert(key, reservation);
        }
    }
    cell_in(partition, &c.cell).set(&c.measure, after);
    CmdResult {
        reservation_id: Some(reservation_id_text(&key.0)),
        ..CmdResult::success()
    }
}

pub(crate) fn unreserve(partitions: &mut BTreeMap<PartitionKey, PartitionState>, c: &Unreserve) -> CmdResult {
    if !c.offset.is_positive() {
        return CmdResult::refused(Outcome::Invalid, "OffsetQty: must be greater than zero");
    }
    let Some(partition) = partitions.get_mut(&c.partition) else {
        return not_found(c);
    };
    let Some(reservation) =
        ReservationKey::parse(&c.reservation_id).and_then(|key| partition.reservations.get_mut(&key))
    else {
        return not_found(c);
    };
    let offset = c.offset.min(reservation.quantity.max(Qty::ZERO));
    let excess = c.offset - offset;
    reservation.quantity = reservation.quantity - offset;
    let cell = reservation.cell();
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
