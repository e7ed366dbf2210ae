//! The state a shard's rules read and write: partitions, their cells, reservations and
//! allocations, and the remembered event ids. Types and accessors only; no rule lives here.
//! Every rules module (stock, schedule, allocation, hold, query) depends on this module and on
//! the command types, never on each other or on the shard that dispatches to them.

use std::collections::BTreeMap;

use litemap::LiteMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use smallvec::SmallVec;

use crate::command::{CmdResult, Command, OpCode, Outcome};
use crate::config::Formula;
use crate::model::{Cell, Dims, MeasureRef, PartitionKey, Quantities};
use crate::qty::Qty;

mod cell_dims;
mod remembered;
pub(crate) use cell_dims::CellDims;
pub(crate) use remembered::RememberedEvents;

/// A data source's or a measure's name inside the state: up to 24 bytes kept inline, so that an
/// availability check over a cold cell compares the names where the cell's vectors are instead of
/// following a pointer per name (that chase was most of a bulk item's apply). Encoded as a string.
pub(crate) type Name = compact_str::CompactString;

/// A cell's physical quantities, sorted by (data source, measure), in one vector: an availability
/// check over a cold cell follows one pointer to all of them, where a map of maps cost one more
/// cache miss per data source (the formula's walk over them was a tenth of a bulk reserve's CPU).
/// The first [`CELL_QUANTITIES_INLINE`] are inside the cell itself: a check reads every cell of
/// the product, which lie side by side, and a pointer per cell to its quantities was a cache miss
/// each (two thirds of the formula's time). Encoded as that map of maps, data source -> measure
/// -> quantity.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CellQuantities(SmallVec<[(Name, Name, Qty); CELL_QUANTITIES_INLINE]>);

/// Quantities kept inside a cell: a stock measure and a reservation's, as most cells have. A cell
/// with more keeps them all on the heap and these 128 bytes unused.
pub(crate) const CELL_QUANTITIES_INLINE: usize = 2;

impl CellQuantities {
    fn find(&self, data_source: &str, measure: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|(d, m, _)| (d.as_str(), m.as_str()).cmp(&(data_source, measure)))
    }

    pub fn get(&self, data_source: &str, measure: &str) -> Option<Qty> {
        self.find(data_source, measure).ok().map(|at| self.0[at].2)
    }

    pub fn set(&mut self, data_source: &str, measure: &str, q: Qty) {
        match self.find(data_source, measure) {
            Ok(at) => self.0[at].2 = q,
            Err(at) => {
                // Grown by exactly one: most cells keep two or three measures for good.
                self.0.reserve_exact(1);
                self.0.insert(at, (Name::from(data_source), Name::from(measure), q));
            }
        }
    }

    /// (data source, measure, quantity), sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, Qty)> {
        self.0.iter().map(|(d, m, q)| (d.as_str(), m.as_str(), *q))
    }

    /// The measures of each data source in turn.
    fn groups(&self) -> impl Iterator<Item = &[(Name, Name, Qty)]> {
        self.0.chunk_by(|a, b| a.0 == b.0)
    }
}

impl Serialize for CellQuantities {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Measures<'a>(&'a [(Name, Name, Qty)]);
        impl Serialize for Measures<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|(_, m, q)| (m, q)))
            }
        }
        let mut map = serializer.serialize_map(Some(self.groups().count()))?;
        for group in self.groups() {
            map.serialize_entry(&group[0].0, &Measures(group))?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for CellQuantities {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let nested = LiteMap::<Name, LiteMap<Name, Qty>>::deserialize(deserializer)?;
        let mut flat = SmallVec::with_capacity(nested.values().map(LiteMap::len).sum());
        for (data_source, measures) in nested.iter() {
            for (measure, q) in measures.iter() {
                flat.push((data_source.clone(), measure.clone(), *q));
            }
        }
        Ok(CellQuantities(flat))
    }
}

/// State of one stock cell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CellState {
    pub quantities: CellQuantities,
    /// Per physical measure, the `modifiedDateTimeUTC` of the last set-on-hand applied.
    pub set_modified_ms: BTreeMap<MeasureRef, u64>,
    /// UTC day -> scheduled deltas (never part of current on-hand).
    pub schedules: BTreeMap<i64, Quantities>,
    /// Group path (values in level order) -> its allocation.
    pub allocations: BTreeMap<Vec<String>, AllocationState>,
}

impl CellState {
    pub fn get(&self, m: &MeasureRef) -> Qty {
        self.quantities.get(&m.data_source, &m.measure).unwrap_or(Qty::ZERO)
    }

    pub fn set(&mut self, m: &MeasureRef, q: Qty) {
        self.quantities.set(&m.data_source, &m.measure, q);
    }
}

/// The value at `key`, inserted first (from `make`) by growing the vector by exactly one slot:
/// stored maps stay at their length, where a Vec's first push reserves room for four (a cell
/// held 832 bytes of vectors for 208 of entries).
pub(crate) fn get_or_insert_exact<'a, K, Q, V>(
    map: &'a mut LiteMap<K, V>,
    key: &Q,
    make: impl FnOnce() -> (K, V),
) -> &'a mut V
where
    K: Ord + std::borrow::Borrow<Q>,
    Q: Ord + ?Sized,
{
    if let Err(at) = map.find_index(key) {
        insert_exact(map, at, make());
    }
    map.get_mut(key).expect("present or inserted above")
}

/// Inserts `pair` at position `at` (where it sorts), growing the vector by exactly one slot.
fn insert_exact<K, V>(map: &mut LiteMap<K, V>, at: usize, pair: (K, V)) {
    let mut pairs = std::mem::take(map).into_tuple_vec();
    pairs.reserve_exact(1);
    pairs.insert(at, pair);
    *map = LiteMap::from_sorted_store_unchecked(pairs);
}

/// A reservation: a product + dimensions + holding measure, with its open quantity. Kept once
/// per reserved key, so its names are inline (`Name`): encoded as the strings they were.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Reservation {
    pub product: Name,
    pub dims: LiteMap<Name, Name>,
    pub measure: MeasureRef,
    pub quantity: Qty,
}

impl Reservation {
    /// The cell the reservation holds stock in.
    pub fn cell(&self) -> Cell {
        Cell {
            product: self.product.to_string(),
            dims: self.dims.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }
}

/// A reservation id as the 16 bytes its text spells: every id is
/// [`crate::stock::reservation_id_text`] of a digest, so the 36 characters need not be kept.
/// Encoded as that text (snapshots keep their bytes; hex order is byte order, so sorted maps too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ReservationKey(pub [u8; 16]);

impl ReservationKey {
    /// The key of a client's reservation id; `None` for text no reservation id has.
    pub fn parse(text: &str) -> Option<ReservationKey> {
        crate::stock::reservation_id_bytes(text).map(ReservationKey)
    }
}

impl Serialize for ReservationKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::stock::reservation_id_text(&self.0))
    }
}

impl<'de> Deserialize<'de> for ReservationKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ReservationKey, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ReservationKey::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("'{text}' is not a reservation id")))
    }
}

/// A product's cells by their dimensions. Most products have one cell or a few per partition,
/// so a sorted vector, not a BTreeMap (whose first node has room, and bytes, for eleven).
pub(crate) type Cells = LiteMap<CellDims, CellState>;

/// The cell of `cells` at exactly `dims`.
pub(crate) fn cell_at<'a>(cells: &'a Cells, dims: &Dims) -> Option<&'a CellState> {
    cells.get_by(|stored| stored.cmp_dims(dims))
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartitionState {
    /// product -> dimensions -> cell
    #[serde(with = "sorted_map")]
    pub products: FastMap<Name, Cells>,
    #[serde(with = "sorted_map")]
    pub reservations: FastMap<ReservationKey, Reservation>,
}

impl PartitionState {
    pub fn reservation(&self, id: &str) -> Option<&Reservation> {
        self.reservations.get(&ReservationKey::parse(id)?)
    }
}

/// The hash map of the replicated state: foldhash, seeded at random per process as std's SipHash
/// is (keys are client-chosen, so a fixed seed would let a client pick colliding ones). A reserve's
/// apply took 6% less than with SipHash (`examples/apply_cost.rs`).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The large maps of the replicated state (a partition's products and reservations, a shard's
/// remembered event ids) are hash maps: a lookup in a B-tree of 100,000 string keys compared up
/// to ten keys in each of four or five nodes, each comparison a cache miss, and that was most of
/// a reserve's cost in the state machine. They are written sorted by key, so snapshot bytes (and
/// the state hash) are what the B-trees wrote, and nothing visible depends on the hasher's
/// seed: whatever iterates them where order shows sorts first.
pub(crate) mod sorted_map {
    use std::collections::HashMap;
    use std::hash::{BuildHasher, Hash};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, K: Ord + Serialize, V: Serialize, H>(
        map: &HashMap<K, V, H>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&K, &V)> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        serializer.collect_map(entries)
    }

    pub fn deserialize<'de, D, K, V, H>(deserializer: D) -> Result<HashMap<K, V, H>, D::Error>
    where
        D: Deserializer<'de>,
        K: Eq + Hash + Deserialize<'de>,
        V: Deserialize<'de>,
        H: BuildHasher + Default,
    {
        HashMap::deserialize(deserializer)
    }
}

/// One group path's allocation in a cell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationState {
    pub allocated: Qty,
    pub consumed: Qty,
    pub cumulative_allocated: Qty,
    pub cumulative_consumed: Qty,
}

/// The partition, created on first use (the key cloned only then).
pub(crate) fn partition_mut<'a>(
    partitions: &'a mut BTreeMap<PartitionKey, PartitionState>,
    p: &PartitionKey,
) -> &'a mut PartitionState {
    if !partitions.contains_key(p) {
        partitions.insert(p.clone(), PartitionState::default());
    }
    partitions.get_mut(p).expect("inserted above")
}

/// The cell of a partition, created on first use. Keys are cloned only when something is
/// created: this runs for every command.
pub(crate) fn cell_in<'a>(partition: &'a mut PartitionState, cell: &Cell) -> &'a mut CellState {
    if !partition.products.contains_key(cell.product.as_str()) {
        partition
            .products
            .insert(Name::from(cell.product.as_str()), Cells::new());
    }
    let cells = partition
        .products
        .get_mut(cell.product.as_str())
        .expect("inserted above");
    let at = match cells
        .as_slice()
        .binary_search_by(|(stored, _)| stored.cmp_dims(&cell.dims))
    {
        Ok(at) => at,
        Err(at) => {
            insert_exact(cells, at, (CellDims::of(&cell.dims), CellState::default()));
            at
        }
    };
    // LiteMap has no mutable access by position: its iterator steps there (a product has a few cells).
    cells
        .iter_mut()
        .nth(at)
        .map(|(_, state)| state)
        .expect("found or inserted above")
}

/// The cell, created on first use.
pub(crate) fn cell_mut<'a>(
    partitions: &'a mut BTreeMap<PartitionKey, PartitionState>,
    p: &PartitionKey,
    cell: &Cell,
) -> &'a mut CellState {
    cell_in(partition_mut(partitions, p), cell)
}

pub(crate) fn cell_ref<'a>(
    partitions: &'a BTreeMap<PartitionKey, PartitionState>,
    p: &PartitionKey,
    cell: &Cell,
) -> Option<&'a CellState> {
    cell_at(partitions.get(p)?.products.get(cell.product.as_str())?, &cell.dims)
}

/// A calculated measure summed over the cells of one product whose dimensions contain `filter`.
pub(crate) fn calculated_over(cells: Option<&Cells>, formula: &Formula, filter: &[(&String, &String)]) -> Qty {
    let Some(cells) = cells else { return Qty::ZERO };
    cells
        .iter()
        .filter(|(dims, _)| dims.contains_all(filter))
        .map(|(_, cell)| formula.value(cell.quantities.iter()))
        .sum()
}

/// The least, over `filters`, of [`calculated_over`]: each cell's formula is evaluated once, not
/// once per filter (a reservation checks every level of the hierarchy, usually over one cell).
pub(crate) fn calculated_min_over<'a, F: AsRef<[(&'a String, &'a String)]>>(
    cells: Option<&Cells>,
    formula: &Formula,
    filters: &[F],
) -> Qty {
    let Some(cells) = cells else { return Qty::ZERO };
    let mut sums: SmallVec<[Qty; 4]> = smallvec::smallvec![Qty::ZERO; filters.len()];
    for (dims, cell) in cells.iter() {
        let mut value = None;
        let dims = dims.read();
        for (sum, filter) in sums.iter_mut().zip(filters) {
            if dims.contains_all(filter.as_ref()) {
                *sum = *sum + *value.get_or_insert_with(|| formula.value(cell.quantities.iter()));
            }
        }
    }
    sums.into_iter().min().unwrap_or(Qty::ZERO)
}

/// Idempotency key: one client id per partition and kind of operation, as the first 16 bytes of
/// SHA-256 over (partition, operation, id). A fixed-size key keeps the lookups that every command
/// makes free of pointer chasing through strings (a collision needs about 2^64 ids).
pub(crate) type EventKey = [u8; 16];

pub(crate) fn event_key(partition: &PartitionKey, op: OpCode, id: &str) -> EventKey {
    let mut h = Sha256::new();
    partition.feed_canonical_bytes(|bytes| h.update(bytes));
    h.update(op.prefix().as_bytes());
    h.update([0u8]);
    h.update(id.as_bytes());
    truncate(h.finalize().into())
}

/// Which partition (and environment) a remembered event belongs to, for clean-up.
pub(crate) fn scope_tags(partition: &PartitionKey) -> (u64, u64) {
    let tag = |bytes: &[u8]| {
        let d: [u8; 32] = Sha256::digest(bytes).into();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    };
    (tag(partition.environment.as_bytes()), tag(&partition.canonical_bytes()))
}

pub(crate) fn truncate(digest: [u8; 32]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// A remembered event id's record as snapshots encode it (kept in memory as
/// [`RememberedEvents`]' compact form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct EventRecord {
    pub fingerprint: [u8; 16],
    pub ts_ms: u64,
    pub environment_tag: u64,
    pub partition_tag: u64,
    pub result: RememberedResult,
}

/// A remembered command's result, as small as the common case allows: a shard remembers up to a
/// million of them, and nearly all are a plain success, a reserve's with its reservation id
/// (36 characters of hex, kept as the 16 bytes they spell). Encoded as the [`CmdResult`] it
/// stands for, so snapshots are the bytes they were.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RememberedResult {
    Success { reservation: Option<[u8; 16]> },
    Other(Box<CmdResult>),
}

impl RememberedResult {
    pub fn of(result: &CmdResult) -> RememberedResult {
        let plain = result.outcome == Outcome::Success && result.message.is_empty() && result.invalid_offset.is_none();
        match (&result.reservation_id, plain) {
            (None, true) => RememberedResult::Success { reservation: None },
            (Some(id), true) => match crate::stock::reservation_id_bytes(id) {
                Some(bytes) => RememberedResult::Success {
                    reservation: Some(bytes),
                },
                None => RememberedResult::Other(Box::new(result.clone())),
            },
            _ => RememberedResult::Other(Box::new(result.clone())),
        }
    }

    pub fn result(&self) -> CmdResult {
        match self {
            RememberedResult::Success { reservation } => CmdResult {
                reservation_id: reservation.as_ref().map(crate::stock::reservation_id_text),
                ..CmdResult::success()
            },
            RememberedResult::Other(result) => (**result).clone(),
        }
    }
}

impl Serialize for RememberedResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.result().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RememberedResult {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<RememberedResult, D::Error> {
        Ok(RememberedResult::of(&CmdResult::deserialize(deserializer)?))
    }
}

pub(crate) fn fingerprint(command: &Command) -> [u8; 16] {
    let mut h = Sha256::new();
    if crate::digest::hash_encoding(command, &mut h).is_err() {
        // A command that cannot be encoded (none can) hashes as no bytes, as it always did.
        h = Sha256::new();
    }
    truncate(h.finalize().into())
}

/// Cells as they were before a command touched them, to be put back exactly (created cells,
/// products and partitions removed again) when the command is refused after all.
pub(crate) type SavedCells = Vec<(PartitionKey, Cell, bool, bool, Option<CellState>)>;

/// Saves the named cells (and whether their partition and product existed).
pub(crate) fn save_cells<'a>(
    partitions: &BTreeMap<PartitionKey, PartitionState>,
    cells: impl IntoIterator<Item = (&'a PartitionKey, &'a Cell)>,
) -> SavedCells {
    cells
        .into_iter()
        .map(|(p, cell)| {
            let partition = partitions.get(p);
            let product = partition.and_then(|s| s.products.get(cell.product.as_str()));
            (
                p.clone(),
                cell.clone(),
                partition.is_some(),
                product.is_some(),
                product.and_then(|cells| cell_at(cells, &cell.dims)).cloned(),
            )
        })
        .collect()
}

/// Puts saved cells back as they were, last saved first (so a cell saved twice ends as it was
/// when first saved).
pub(crate) fn restore_cells(partitions: &mut BTreeMap<PartitionKey, PartitionState>, saved: SavedCells) {
    for (p, cell, partition_existed, product_existed, before) in saved.into_iter().rev() {
        if !partition_existed {
            partitions.remove(&p);
            continue;
        }
        let Some(partition) = partitions.get_mut(&p) else {
            continue;
        };
        if !product_existed {
            partition.products.remove(cell.product.as_str());
            continue;
        }
        let Some(cells) = partition.products.get_mut(cell.product.as_str()) else {
            continue;
        };
        match before {
            Some(state) => {
                cells.insert(CellDims::of(&cell.dims), state);
            }
            None => {
                cells.remove(&CellDims::of(&cell.dims));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names kept inline (`Name`) encode as the strings they replaced: logs and snapshots written
    /// before read back, and state hashes stay equal.
    #[test]
    fn inline_names_encode_as_strings_did() {
        let long = "a-data-source-name-longer-than-twenty-four-bytes";
        let rows = [("pos", "inbound", 3), ("iv", "softreservphysical", -2), (long, "m", 1)];
        let mut cell = CellState::default();
        let mut nested: BTreeMap<String, BTreeMap<String, Qty>> = BTreeMap::new();
        for (ds, m, n) in rows {
            cell.set(&MeasureRef::new(ds, m), Qty::from_i64(n));
            nested
                .entry(ds.to_string())
                .or_default()
                .insert(m.to_string(), Qty::from_i64(n));
        }
        let bytes = postcard::to_stdvec(&nested).expect("encode");
        assert_eq!(postcard::to_stdvec(&cell.quantities).expect("encode"), bytes);
        let decoded: CellQuantities = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(decoded, cell.quantities);
        assert_eq!(cell.get(&MeasureRef::new(long, "m")), Qty::from_i64(1));
        assert_eq!(cell.get(&MeasureRef::new("iv", "nosuch")), Qty::ZERO);
    }

    /// Cells keyed by inline names encode, sort and are found as when keyed by [`Dims`].
    #[test]
    fn cell_dimensions_kept_inline_encode_and_order_as_dims_did() {
        let dims_of =
            |pairs: &[(&str, &str)]| -> Dims { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        let all = [
            dims_of(&[("colorid", "red"), ("sizeid", "m")]),
            dims_of(&[("colorid", "blue")]),
            dims_of(&[]),
            dims_of(&[("colorid", "red")]),
            dims_of(&[
                ("colorid", "blue"),
                ("sizeid", "a-size-name-longer-than-twenty-four-bytes"),
            ]),
        ];
        let mut before: LiteMap<Dims, CellState> = LiteMap::new();
        let mut partition = PartitionState::default();
        for (i, dims) in all.iter().enumerate() {
            let mut cell = CellState::default();
            cell.set(&MeasureRef::new("pos", "inbound"), Qty::from_i64(i as i64));
            before.insert(dims.clone(), cell.clone());
            *cell_in(
                &mut partition,
                &Cell {
                    product: "p".into(),
                    dims: dims.clone(),
                },
            ) = cell;
        }
        let after = &partition.products["p"];
        assert_eq!(
            postcard::to_stdvec(after).expect("encode"),
            postcard::to_stdvec(&before).expect("encode")
        );
        for (i, dims) in all.iter().enumerate() {
            assert_eq!(
                cell_at(after, dims).map(|c| c.get(&MeasureRef::new("pos", "inbound"))),
                Some(Qty::from_i64(i as i64))
            );
        }
        assert!(cell_at(after, &dims_of(&[("colorid", "green")])).is_none());
        let decoded: Cells = postcard::from_bytes(&postcard::to_stdvec(&before).expect("encode")).expect("decode");
        assert_eq!(&decoded, after);
    }

    /// Two quantities inside the cell, in no more room than the vector and its heap block took.
    #[test]
    fn a_cell_keeps_two_quantities_inline() {
        assert!(std::mem::size_of::<CellQuantities>() <= 136);
        let mut cell = CellState::default();
        cell.set(&MeasureRef::new("pos", "inbound"), Qty::from_i64(5));
        cell.set(&MeasureRef::new("iv", "softreservphysical"), Qty::from_i64(1));
        assert!(!cell.quantities.0.spilled());
        cell.set(&MeasureRef::new("iv", "ordered"), Qty::from_i64(2));
        assert!(cell.quantities.0.spilled());
        let names: Vec<(&str, &str, Qty)> = cell.quantities.iter().collect();
        assert_eq!(
            names,
            [
                ("iv", "ordered", Qty::from_i64(2)),
                ("iv", "softreservphysical", Qty::from_i64(1)),
                ("pos", "inbound", Qty::from_i64(5))
            ]
        );
    }

    #[test]
    fn hash_maps_encode_sorted_as_btreemaps_did() {
        let products = ["p9", "p1", "p5", "p3", "p7", "p2"];
        let mut state = PartitionState::default();
        let mut sorted: BTreeMap<String, Cells> = BTreeMap::new();
        for (i, p) in products.iter().enumerate() {
            let mut cell = CellState::default();
            cell.set(&MeasureRef::new("pos", "inbound"), Qty::from_i64(i as i64 + 1));
            let cells: Cells = [(CellDims::default(), cell)].into_iter().collect();
            state.products.insert(Name::from(*p), cells.clone());
            sorted.insert(p.to_string(), cells);
        }
        // Reservations as they were kept before (the id's text, strings): the same bytes.
        #[derive(Serialize)]
        struct Before {
            product: String,
            dims: Dims,
            measure: MeasureRef,
            quantity: Qty,
        }
        let mut reservations: BTreeMap<String, Before> = BTreeMap::new();
        for (i, p) in products.iter().enumerate() {
            let partition = PartitionKey::new("env", "usmf", "1", "11");
            let dims: Dims = [("colorId".to_string(), format!("c{i}"))].into_iter().collect();
            let cell = Cell {
                product: p.to_string(),
                dims: dims.clone(),
            };
            let measure = MeasureRef::new("iv", "softreservphysical");
            let id = crate::stock::reservation_id(&partition, &cell, &measure);
            let key = ReservationKey::parse(&id).expect("an id's text parses");
            let reservation = Reservation {
                product: Name::from(*p),
                dims: dims
                    .iter()
                    .map(|(k, v)| (Name::from(k.as_str()), Name::from(v.as_str())))
                    .collect(),
                measure: measure.clone(),
                quantity: Qty::from_i64(i as i64),
            };
            assert_eq!(reservation.cell(), cell);
            state.reservations.insert(key, reservation);
            let before = Before {
                product: p.to_string(),
                dims,
                measure,
                quantity: Qty::from_i64(i as i64),
            };
            reservations.insert(id, before);
        }
        let bytes = postcard::to_stdvec(&state).expect("encode");
        assert_eq!(bytes, postcard::to_stdvec(&(&sorted, &reservations)).expect("encode"));
        let back: PartitionState = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, state);
        assert_eq!(postcard::to_stdvec(&back).expect("encode"), bytes);
        let first = reservations.keys().next().expect("six reservations");
        assert_eq!(
            back.reservation(first).map(|r| r.quantity),
            state.reservation(first).map(|r| r.quantity)
        );
        assert!(back.reservation("not-an-id").is_none());
    }

    #[test]
    fn a_reservation_id_that_is_not_one_is_refused_when_decoded() {
        let bytes = postcard::to_stdvec("0123").expect("encode");
        assert!(postcard::from_bytes::<ReservationKey>(&bytes).is_err());
        let id = "0123abcd-0123-4567-89ab-cdef01234567";
        let key: ReservationKey = postcard::from_bytes(&postcard::to_stdvec(id).expect("encode")).expect("decode");
        assert_eq!(crate::stock::reservation_id_text(&key.0), id);
    }

    #[test]
    fn remembered_results_are_compact_and_encode_as_the_result() {
        let partition = PartitionKey::new("e", "o", "s", "l");
        let cell = Cell {
            product: "p".to_string(),
            dims: Dims::new(),
        };
        let id = crate::stock::reservation_id(&partition, &cell, &MeasureRef::new("iv", "softreservphysical"));
        let reserved = CmdResult {
            reservation_id: Some(id.clone()),
            ..CmdResult::success()
        };
        let odd_id = CmdResult {
            reservation_id: Some(id.to_uppercase()),
            ..CmdResult::success()
        };
        let refused = CmdResult::refused(Outcome::Insufficient, "not enough stock");
        for (result, compact) in [
            (reserved, true),
            (CmdResult::success(), true),
            (odd_id, false),
            (refused, false),
        ] {
            let remembered = RememberedResult::of(&result);
            assert_eq!(
                matches!(remembered, RememberedResult::Success { .. }),
                compact,
                "{result:?}"
            );
            assert_eq!(remembered.result(), result);
            let bytes = postcard::to_stdvec(&remembered).expect("encode");
            assert_eq!(bytes, postcard::to_stdvec(&result).expect("encode"));
            assert_eq!(
                postcard::from_bytes::<RememberedResult>(&bytes).expect("decode"),
                remembered
            );
        }
        assert_eq!(crate::stock::reservation_id_bytes(&id[..35]), None);
        assert_eq!(crate::stock::reservation_id_bytes(&format!("{id}0")), None);
        assert_eq!(
            crate::stock::reservation_id_bytes(&id.replacen('-', "0", 1)[..36]),
            None
        );
        assert_eq!(crate::stock::reservation_id_bytes(&id.replacen('-', "", 1)), None);
    }
}
