//! A refused command changes nothing: after any sequence of random commands, every refused one
//! left the partitions and the holds bit for bit as they were (its event id may be remembered).

use proptest::prelude::*;

use super::Shard;
use crate::command::{
    Allocation, Availability, Batch, Command, Consumption, Modifier, OnHandChange, Reallocation, Reserve,
    ScheduleChange, SetOnHand, Unreserve,
};
use crate::hold::{HoldCommand, HoldKey, HoldLine};
use crate::model::{Cell, Dims, MeasureRef, PartitionKey, Quantities};
use crate::qty::Qty;
use crate::stock::reservation_id;

const MS_PER_DAY: u64 = 86_400_000;
const NOW: u64 = 19_000 * MS_PER_DAY;

fn partition(p: u8) -> PartitionKey {
    // Partition 2 has no site or location: stock may go there, reservations may not.
    match p {
        0 => PartitionKey::new("env", "usmf", "1", "11"),
        1 => PartitionKey::new("env", "usmf", "1", "12"),
        _ => PartitionKey::new("env", "usmf", "", ""),
    }
}

fn cell(product: u8, dims: u8) -> Cell {
    let mut d = Dims::new();
    if dims >= 1 {
        d.insert("colorid".into(), "red".into());
    }
    if dims >= 2 {
        d.insert("sizeid".into(), "m".into());
    }
    Cell {
        product: format!("p{product}"),
        dims: d,
    }
}

fn qty(v: i64, huge: bool) -> Qty {
    if huge {
        // Close to the bound: a second one leaves the allowed range.
        Qty::new(crate::qty::QTY_ABS_MAX - rust_decimal::Decimal::ONE).unwrap_or(Qty::ZERO)
    } else {
        Qty::from_i64(v)
    }
}

fn quantities(measure: u8, v: Qty) -> Quantities {
    let (ds, m) = match measure {
        0 => ("pos", "inbound"),
        1 => ("fno", "physicalinvent"),
        2 => ("iv", "nosuchmeasure"),
        _ => ("@iv", "@allocated"),
    };
    [(ds.to_string(), [(m.to_string(), v)].into_iter().collect())]
        .into_iter()
        .collect()
}

fn groups(g: u8) -> Vec<String> {
    match g {
        0 => vec!["web".into()],
        1 => vec!["store".into()],
        2 => vec!["web".into(), "vip".into()],
        _ => Vec::new(),
    }
}

fn hold_line(n: usize, p: u8, product: u8, dims: u8, v: i64) -> HoldLine {
    HoldLine {
        line_id: format!("l{n}"),
        partition: partition(p),
        cell: cell(product, dims),
        quantity: Qty::from_i64(v),
        allow_oversell: false,
    }
}

type LineSpec = (u8, u8, u8, i64);

#[allow(clippy::too_many_arguments)]
fn command(
    kind: u8,
    id: u8,
    p: u8,
    product: u8,
    dims: u8,
    measure: u8,
    v: i64,
    huge: bool,
    g: u8,
    lines: &[LineSpec],
) -> Command {
    let (partition, cell, id_s, q) = (partition(p), cell(product, dims), format!("e{id}"), qty(v, huge));
    let soft = MeasureRef::new("iv", "softreservphysical");
    let key = HoldKey {
        environment: "env".into(),
        organization: "usmf".into(),
        id: format!("h{id}"),
    };
    let lines: Vec<HoldLine> = lines
        .iter()
        .enumerate()
        .map(|(n, (lp, lprod, ldims, lv))| hold_line(n, *lp, *lprod, *ldims, *lv))
        .collect();
    match kind {
        0 => Command::OnHandChange(OnHandChange {
            id: id_s,
            partition,
            cell,
            quantities: quantities(measure, q),
        }),
        1 => Command::SetOnHand(SetOnHand {
            id: id_s,
            partition,
            cell,
            quantities: quantities(measure, q),
            modified_ms: None,
        }),
        2 | 3 => Command::Reserve(Reserve {
            id: id_s,
            partition,
            cell,
            measure: soft,
            quantity: q,
            availability: if kind == 2 {
                Availability::Checked
            } else {
                Availability::Unchecked
            },
        }),
        4 => Command::Unreserve(Unreserve {
            id: id_s,
            reservation_id: reservation_id(&partition, &cell, &soft),
            partition,
            offset: q,
        }),
        5 => Command::ScheduleChange(ScheduleChange {
            id: id_s,
            partition,
            cell,
            quantities_by_date: [((NOW / MS_PER_DAY) as i64 + i64::from(measure), quantities(0, q))]
                .into_iter()
                .collect(),
        }),
        6 => Command::Allocate(Allocation {
            id: id_s,
            partition,
            cell,
            groups: groups(g),
            quantity: q,
        }),
        7 => Command::Unallocate(Allocation {
            id: id_s,
            partition,
            cell,
            groups: groups(g),
            quantity: q,
        }),
        8 => Command::Reallocate(Reallocation {
            id: id_s,
            partition,
            cell,
            source_groups: groups(g),
            groups: groups((g + 1) % 3),
            quantity: q,
        }),
        9 => Command::Consume(Consumption {
            id: id_s,
            partition,
            cell,
            groups: groups(g),
            quantity: q,
            physical: vec![(MeasureRef::new("pos", "outbound"), Modifier::Addition)],
        }),
        10 => Command::Hold(HoldCommand::Create {
            key,
            measure: soft,
            lines,
            expires_at_ms: NOW + 3_600_000,
            all_or_nothing: measure.is_multiple_of(2),
            tentative: false,
            body_fingerprint: [id; 16],
            primary: true,
        }),
        11 => Command::Hold(HoldCommand::ReplaceLines {
            key,
            lines,
            expires_at_ms: NOW + 3_600_000,
        }),
        12 => Command::Hold(HoldCommand::Consume {
            key,
            line_ids: Vec::new(),
        }),
        _ => Command::Hold(HoldCommand::Release { key }),
    }
}

fn state_bytes(shard: &Shard) -> (Vec<u8>, Vec<u8>) {
    let partitions = postcard::to_stdvec(&shard.state.partitions).unwrap_or_default();
    let holds = postcard::to_stdvec(&shard.state.holds).unwrap_or_default();
    (partitions, holds)
}

fn line_spec() -> impl Strategy<Value = LineSpec> {
    (0u8..3, 0u8..2, 0u8..3, 1i64..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn refused_commands_change_nothing(
        steps in prop::collection::vec(
            (0u8..14, 0u8..6, 0u8..3, 0u8..2, 0u8..3, 0u8..4, -3i64..15, prop::bool::weighted(0.1), 0u8..4,
             prop::collection::vec(line_spec(), 0..4)),
            1..40,
        )
    ) {
        let mut shard = Shard::new(crate::shard::EVENT_RETENTION_MS_DEFAULT);
        // Stock to reserve and allocate from, so that not everything is refused.
        shard.apply(&Batch { ts_ms: NOW, commands: vec![command(0, 200, 0, 0, 1, 0, 10, false, 0, &[])] });
        for (kind, id, p, product, dims, measure, v, huge, g, lines) in steps {
            let c = command(kind, id, p, product, dims, measure, v, huge, g, &lines);
            let before = state_bytes(&shard);
            let result = shard.apply_one(&c);
            if !result.outcome.applied() {
                prop_assert_eq!(state_bytes(&shard), before, "refused: {:?} -> {:?}", c, result);
            }
        }
    }
}
