//! Property tests of the shard state machine against a small reference model (DESIGN.md §4:
//! invariants 1, 2 and 5).

use std::collections::BTreeMap;

use ivory_core::*;
use proptest::prelude::*;

const ENV: &str = "env";
const ORG: &str = "org";

fn partition() -> PartitionKey {
    PartitionKey::new(ENV, ORG, "1", "11")
}

/// A cell of the model: product index and how deep into (color, size) it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Spot {
    product: u8,
    color: Option<u8>,
    size: Option<u8>,
}

impl Spot {
    fn cell(self) -> Cell {
        let mut dims = Dims::new();
        if let Some(c) = self.color {
            dims.insert("colorid".into(), format!("c{c}"));
        }
        if let Some(s) = self.size {
            dims.insert("sizeid".into(), format!("s{s}"));
        }
        Cell {
            product: format!("p{}", self.product),
            dims,
        }
    }

    /// Filters a reservation here must pass: product, then color, then color+size.
    fn levels(self) -> Vec<Spot> {
        let mut out = vec![Spot {
            color: None,
            size: None,
            ..self
        }];
        if self.color.is_some() {
            out.push(Spot { size: None, ..self });
        }
        if self.size.is_some() {
            out.push(self);
        }
        out
    }

    /// Whether a cell at `other` lies under this filter.
    fn covers(self, other: Spot) -> bool {
        self.product == other.product
            && (self.color.is_none() || self.color == other.color)
            && (self.size.is_none() || self.size == other.size)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Change { at: Spot, qty: i64 },
    Reserve { at: Spot, qty: i64, checked: bool },
    Unreserve { at: Spot, offset: i64 },
}

fn spot() -> impl Strategy<Value = Spot> {
    (0u8..2, prop::option::of(0u8..2), prop::option::of(0u8..2)).prop_map(|(product, color, size)| Spot {
        product,
        color,
        // The reservation hierarchy is color then size: a size needs a color.
        size: color.and(size),
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (spot(), -5i64..20).prop_map(|(at, qty)| Op::Change { at, qty }),
        (spot(), -3i64..8, prop::bool::weighted(0.85)).prop_map(|(at, qty, checked)| Op::Reserve { at, qty, checked }),
        (spot(), 1i64..8).prop_map(|(at, offset)| Op::Unreserve { at, offset }),
    ]
}

fn command(id: usize, op: &Op) -> Command {
    let p = partition();
    let soft = MeasureRef::new("iv", "softreservphysical");
    match *op {
        Op::Change { at, qty } => Command::OnHandChange(OnHandChange {
            id: format!("e{id}"),
            partition: p,
            cell: at.cell(),
            quantities: [(
                "pos".to_string(),
                [("inbound".to_string(), Qty::from_i64(qty))].into_iter().collect(),
            )]
            .into_iter()
            .collect(),
        }),
        Op::Reserve { at, qty, checked } => Command::Reserve(Reserve {
            id: format!("e{id}"),
            partition: p,
            cell: at.cell(),
            measure: soft,
            quantity: Qty::from_i64(qty),
            availability: if checked {
                Availability::Checked
            } else {
                Availability::Unchecked
            },
        }),
        Op::Unreserve { at, offset } => Command::Unreserve(Unreserve {
            id: format!("e{id}"),
            reservation_id: reservation_id(&p, &at.cell(), &soft),
            partition: p,
            offset: Qty::from_i64(offset),
        }),
    }
}

/// The reference: per spot (on hand, reserved), and the open quantity of each reservation.
#[derive(Default)]
struct Model {
    cells: BTreeMap<Spot, (i64, i64)>,
    reservations: BTreeMap<Spot, i64>,
}

impl Model {
    fn available(&self, filter: Spot) -> i64 {
        self.cells
            .iter()
            .filter(|(at, _)| filter.covers(**at))
            .map(|(_, (on_hand, reserved))| on_hand - reserved)
            .sum()
    }

    /// The outcome the model predicts, applying the op when it succeeds.
    fn apply(&mut self, op: &Op) -> Outcome {
        match *op {
            Op::Change { at, qty } => {
                self.cells.entry(at).or_default().0 += qty;
                Outcome::Success
            }
            Op::Reserve { qty: 0, .. } => Outcome::Invalid,
            Op::Reserve { at, qty, checked } => {
                if checked && (qty < 0 || at.levels().iter().any(|l| self.available(*l) < qty)) {
                    return Outcome::Insufficient;
                }
                self.cells.entry(at).or_default().1 += qty;
                *self.reservations.entry(at).or_default() += qty;
                Outcome::Success
            }
            Op::Unreserve { at, offset } => {
                let Some(open) = self.reservations.get_mut(&at) else {
                    return Outcome::NotFound;
                };
                let taken = offset.min((*open).max(0));
                *open -= taken;
                self.cells.entry(at).or_default().1 -= taken;
                if taken == offset {
                    Outcome::Success
                } else {
                    Outcome::PartialSuccess
                }
            }
        }
    }
}

fn apply_one(shard: &mut Shard, ts_ms: u64, command: Command) -> CmdResult {
    shard
        .apply(&Batch {
            ts_ms,
            commands: vec![command],
        })
        .remove(0)
}

/// iv.availabletoreserve of the cells under `filter`, as the shard's query reports it.
fn shard_available(shard: &Shard, filter: Spot) -> Qty {
    let mut filters = BTreeMap::new();
    if let Some(c) = filter.color {
        filters.insert("colorid".to_string(), vec![format!("c{c}")]);
    }
    if let Some(s) = filter.size {
        filters.insert("sizeid".to_string(), vec![format!("s{s}")]);
    }
    let ReadResponse::Records(records) = shard.read(&ReadRequest::Query(Query {
        environment: ENV.into(),
        organization: ORG.into(),
        locations: None,
        products: vec![format!("p{}", filter.product)],
        filters,
        exact: None,
        group_by: vec![],
        return_negative: true,
        atp: None,
    })) else {
        panic!("query answers records")
    };
    records
        .iter()
        .map(|r| quantity(&r.quantities, "iv", "availabletoreserve"))
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Invariant 1: a checked reservation succeeds exactly when the model says stock covers it at
    /// every level of the hierarchy, and never leaves a level it passed below zero.
    #[test]
    fn no_oversell_with_the_check_on(ops in prop::collection::vec(op(), 1..80)) {
        let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
        let mut model = Model::default();
        for (i, op) in ops.iter().enumerate() {
            let expected = model.apply(op);
            let got = apply_one(&mut shard, i as u64, command(i, op));
            prop_assert_eq!(got.outcome, expected, "op {} {:?}: {}", i, op, got.message);
            if let (Op::Reserve { at, checked: true, .. }, Outcome::Success) = (op, got.outcome) {
                for level in at.levels() {
                    prop_assert!(shard_available(&shard, level) >= Qty::ZERO, "oversold at {:?}", level);
                }
            }
        }
        for product in 0..2 {
            let all = Spot { product, color: None, size: None };
            prop_assert_eq!(shard_available(&shard, all), Qty::from_i64(model.available(all)));
        }
    }

    /// Invariant 2: a replay of an event id returns the first result and changes nothing; the same
    /// id with another body is a conflict and changes nothing.
    #[test]
    fn replays_are_idempotent(
        ops in prop::collection::vec(op(), 1..60),
        replays in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..30),
    ) {
        let mut with_replays = Shard::new(EVENT_RETENTION_MS_DEFAULT);
        let mut plain = Shard::new(EVENT_RETENTION_MS_DEFAULT);
        let mut results: Vec<CmdResult> = Vec::new();
        let mut replays = replays.into_iter().peekable();
        for (i, op) in ops.iter().enumerate() {
            let ts = i as u64;
            let r = apply_one(&mut with_replays, ts, command(i, op));
            prop_assert_eq!(&r, &apply_one(&mut plain, ts, command(i, op)));
            results.push(r);
            // Replays happen at the same timestamp, so the clocks of both shards stay equal.
            while let Some((index, same_body)) = replays.next_if(|_| i % 3 == 0) {
                let k = index.index(results.len());
                if results[k].outcome == Outcome::Invalid {
                    // Refused bad input is not remembered: its id is free to use again.
                    continue;
                }
                let mut again = command(k, &ops[k]);
                if !same_body {
                    // Same id, different body.
                    again = match again {
                        Command::OnHandChange(mut c) => { c.cell.product.push('x'); Command::OnHandChange(c) }
                        Command::Reserve(mut c) => { c.cell.product.push('x'); Command::Reserve(c) }
                        Command::Unreserve(mut c) => { c.offset = c.offset + Qty::ONE; Command::Unreserve(c) }
                        other => other,
                    };
                }
                let r = apply_one(&mut with_replays, ts, again);
                if same_body {
                    prop_assert_eq!(&r, &results[k]);
                } else {
                    prop_assert_eq!(r.outcome, Outcome::Conflict);
                }
                prop_assert_eq!(with_replays.state_hash(), plain.state_hash());
            }
        }
        prop_assert_eq!(with_replays.state_hash(), plain.state_hash());
    }

    /// Invariant 5 (snapshots): a restored snapshot has the same hash and behaves the same.
    #[test]
    fn snapshot_round_trip_keeps_the_hash(
        before in prop::collection::vec(op(), 0..50),
        after in prop::collection::vec(op(), 0..30),
    ) {
        let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
        for (i, op) in before.iter().enumerate() {
            apply_one(&mut shard, i as u64, command(i, op));
        }
        let mut restored = Shard::restore(&shard.snapshot()).unwrap();
        prop_assert_eq!(restored.state_hash(), shard.state_hash());
        prop_assert_eq!(restored.snapshot(), shard.snapshot());
        for (j, op) in after.iter().enumerate() {
            let i = before.len() + j;
            prop_assert_eq!(apply_one(&mut shard, i as u64, command(i, op)), apply_one(&mut restored, i as u64, command(i, op)));
        }
        prop_assert_eq!(restored.state_hash(), shard.state_hash());
    }

    /// Invariant 5: two replicas that apply the same log (one of them catching up from a snapshot
    /// part way) end with the same state hash.
    #[test]
    fn replicas_of_one_log_agree(
        ops in prop::collection::vec(op(), 1..80),
        batch_sizes in prop::collection::vec(1usize..6, 1..80),
        snapshot_at in any::<prop::sample::Index>(),
    ) {
        let mut log = Vec::new();
        let mut i = 0;
        for size in batch_sizes.iter().cycle() {
            if i >= ops.len() { break; }
            let end = (i + size).min(ops.len());
            log.push(Batch { ts_ms: log.len() as u64 * 7, commands: (i..end).map(|k| command(k, &ops[k])).collect() });
            i = end;
        }
        let cut = snapshot_at.index(log.len() + 1);
        let mut leader = Shard::new(EVENT_RETENTION_MS_DEFAULT);
        let mut follower = Shard::new(EVENT_RETENTION_MS_DEFAULT);
        for batch in &log[..cut] {
            leader.apply(batch);
        }
        let mut late = Shard::restore(&leader.snapshot()).unwrap();
        for batch in &log[..cut] {
            follower.apply(batch);
        }
        for batch in &log[cut..] {
            let a = leader.apply(batch);
            prop_assert_eq!(&a, &follower.apply(batch));
            prop_assert_eq!(&a, &late.apply(batch));
        }
        prop_assert_eq!(leader.state_hash(), follower.state_hash());
        prop_assert_eq!(leader.state_hash(), late.state_hash());
    }
}
