//! Change schedules, ATP and allocation on ivory-core alone (issue 6).

use std::collections::BTreeMap;

use ivory_core::allocation::{AllocationQuery, AllocationRecord};
use ivory_core::date::{MS_PER_DAY, days_from_civil};
use ivory_core::schedule::AtpRequest;
use ivory_core::*;
use proptest::prelude::*;

const ENV: &str = "env";

fn partition() -> PartitionKey {
    PartitionKey::new(ENV, "usmf", "1", "11")
}

fn cell(product: &str) -> Cell {
    Cell {
        product: product.into(),
        dims: Dims::new(),
    }
}

fn q(ds: &str, m: &str, v: i64) -> Quantities {
    [(
        ds.to_string(),
        [(m.to_string(), Qty::from_i64(v))].into_iter().collect(),
    )]
    .into_iter()
    .collect()
}

fn apply(shard: &mut Shard, ts_ms: u64, command: Command) -> CmdResult {
    shard
        .apply(&Batch {
            ts_ms,
            commands: vec![command],
        })
        .remove(0)
}

fn schedule(id: &str, product: &str, deltas: &[(i64, i64)]) -> Command {
    Command::ScheduleChange(ScheduleChange {
        id: id.into(),
        partition: partition(),
        cell: cell(product),
        quantities_by_date: deltas.iter().map(|(day, v)| (*day, q("pos", "inbound", *v))).collect(),
    })
}

fn query_shard(shard: &Shard, product: &str, today: i64, group_by: &[&str]) -> ReadResponse {
    shard.read(&ReadRequest::Query(Query {
        environment: ENV.into(),
        organization: "usmf".into(),
        locations: Some(vec![("1".into(), "11".into())]),
        products: vec![product.into()],
        filters: BTreeMap::new(),
        exact: None,
        group_by: group_by.iter().map(|g| g.to_string()).collect(),
        return_negative: false,
        atp: Some(AtpRequest {
            today,
            from: None,
            to: None,
        }),
    }))
}

/// The ATP doc's worked example: on-hand 20; -3 on day 1, +10 day 3, -15 day 4, +1 day 5, +3 day 6
/// -> projected 17,17,27,12,13,16,16 -> ATP 12,12,12,12,13,16,16.
#[test]
fn atp_worked_example() {
    let today = days_from_civil(2022, 2, 1).unwrap();
    let now = today as u64 * MS_PER_DAY + 3_600_000;
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let stock = Command::OnHandChange(OnHandChange {
        id: "s".into(),
        partition: partition(),
        cell: cell("Bike"),
        quantities: q("pos", "inbound", 20),
    });
    assert_eq!(apply(&mut shard, now, stock).outcome, Outcome::Success);
    let plan = [
        (today, -3),
        (today + 2, 10),
        (today + 3, -15),
        (today + 4, 1),
        (today + 5, 3),
    ];
    let r = apply(&mut shard, now, schedule("plan", "Bike", &plan));
    assert_eq!(r.outcome, Outcome::Success, "{}", r.message);

    let ReadResponse::Records(records) = query_shard(&shard, "Bike", today, &["colorid", "sizeid"]) else {
        panic!("records")
    };
    assert_eq!(records.len(), 1);
    let atp: Vec<Qty> = records[0]
        .atp_quantities
        .values()
        .map(|q| quantity(q, "@iv", "@available_to_reserve"))
        .collect();
    let expected: Vec<Qty> = [12, 12, 12, 12, 13, 16, 16].into_iter().map(Qty::from_i64).collect();
    assert_eq!(atp, expected);
    assert_eq!(records[0].atp_quantities.keys().next(), Some(&today));
    // quantitiesByDate: the scheduled deltas and the ATP measure applied to them.
    let day4 = &records[0].quantities_by_date[&(today + 3)];
    assert_eq!(quantity(day4, "pos", "inbound"), Qty::from_i64(-15));
    assert_eq!(quantity(day4, "iv", "onhand"), Qty::from_i64(-15));
    assert_eq!(quantity(day4, "@iv", "@available_to_reserve"), Qty::from_i64(-15));
    // Schedules never change current on-hand.
    assert_eq!(quantity(&records[0].quantities, "iv", "onhand"), Qty::from_i64(20));
    // A day later, day 1's delta has left the window and is no longer counted.
    let ReadResponse::Records(later) = query_shard(&shard, "Bike", today + 1, &["colorid", "sizeid"]) else {
        panic!("records")
    };
    let first = quantity(
        later[0].atp_quantities.values().next().unwrap(),
        "@iv",
        "@available_to_reserve",
    );
    assert_eq!(
        first,
        Qty::from_i64(15),
        "20 +10 -15 = 15 is the low point from day 2 on"
    );
    // An ATP query must group by a schedule index set.
    assert!(matches!(
        query_shard(&shard, "Bike", today, &["styleid"]),
        ReadResponse::Refused(_)
    ));
    let ReadResponse::Records(none) = query_shard(&shard, "Nothing", today, &["colorid", "sizeid"]) else {
        panic!("records")
    };
    assert!(none.is_empty());
}

#[test]
fn schedule_window_edges() {
    let today = days_from_civil(2024, 3, 10).unwrap();
    let now = today as u64 * MS_PER_DAY + 12 * 3_600_000;
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let period = shard.config(ENV).schedule.period_days as i64;
    let before = shard.snapshot();
    for (label, day) in [("yesterday", today - 1), ("day after the window", today + period)] {
        let r = apply(&mut shard, now, schedule(label, "P", &[(day, 1)]));
        assert_eq!(r.outcome, Outcome::Invalid, "{label}");
        assert!(r.message.contains("outside the schedule window"), "{}", r.message);
    }
    // Refused input changes nothing but the clock.
    let mut reference = Shard::restore(&before).unwrap();
    reference.apply(&Batch {
        ts_ms: now,
        commands: vec![],
    });
    assert_eq!(shard.state_hash(), reference.state_hash());
    for (label, day) in [("today", today), ("last day", today + period - 1)] {
        let r = apply(&mut shard, now, schedule(label, "P", &[(day, 1)]));
        assert_eq!(r.outcome, Outcome::Success, "{label}: {}", r.message);
    }
}

fn groups(path: &[&str]) -> Vec<String> {
    path.iter().map(|g| g.to_string()).collect()
}

fn allocation(id: &str, path: &[&str], v: i64) -> Allocation {
    Allocation {
        id: id.into(),
        partition: partition(),
        cell: cell("P"),
        groups: groups(path),
        quantity: Qty::from_i64(v),
    }
}

fn allocations(shard: &Shard, prefix: &[&str]) -> Vec<AllocationRecord> {
    match shard.read(&ReadRequest::Allocations(AllocationQuery {
        partition: partition(),
        cell: cell("P"),
        groups: groups(prefix),
    })) {
        ReadResponse::Allocations(a) => a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn allocation_hierarchy_rules() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let config = shard.config(ENV).clone();
    let path = |pairs: &[(&str, &str)]| {
        config.group_path(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    };
    assert_eq!(
        path(&[("Channel", "Online"), ("customerGroup", "VIP")]).unwrap(),
        ["Online", "VIP"]
    );
    assert!(
        path(&[("customerGroup", "VIP")])
            .unwrap_err()
            .contains("groups.channel")
    );
    assert!(path(&[("planet", "Mars")]).unwrap_err().contains("groups.planet"));

    let stock = Command::OnHandChange(OnHandChange {
        id: "s".into(),
        partition: partition(),
        cell: cell("P"),
        quantities: q("pos", "inbound", 10),
    });
    apply(&mut shard, 1, stock);
    let ok = |r: CmdResult| assert_eq!(r.outcome, Outcome::Success, "{}", r.message);
    ok(apply(
        &mut shard,
        2,
        Command::Allocate(allocation("a1", &["Online"], 6)),
    ));
    assert_eq!(
        apply(&mut shard, 3, Command::Allocate(allocation("a2", &["Store"], 5))).outcome,
        Outcome::Insufficient
    );
    ok(apply(&mut shard, 4, Command::Allocate(allocation("a3", &["Store"], 4))));
    // Reallocate is the only way from a parent group to a sub-group.
    ok(apply(
        &mut shard,
        5,
        Command::Reallocate(Reallocation {
            id: "r1".into(),
            partition: partition(),
            cell: cell("P"),
            source_groups: groups(&["Online"]),
            groups: groups(&["Online", "VIP"]),
            quantity: Qty::from_i64(2),
        }),
    ));
    // Consume 1 of Online/VIP into a soft reservation.
    ok(apply(
        &mut shard,
        6,
        Command::Consume(Consumption {
            id: "c1".into(),
            partition: partition(),
            cell: cell("P"),
            groups: groups(&["Online", "VIP"]),
            quantity: Qty::ONE,
            physical: vec![(MeasureRef::new("iv", "softreservphysical"), Modifier::Addition)],
        }),
    ));
    let fno = apply(
        &mut shard,
        7,
        Command::Consume(Consumption {
            id: "c2".into(),
            partition: partition(),
            cell: cell("P"),
            groups: groups(&["Online"]),
            quantity: Qty::ONE,
            physical: vec![(MeasureRef::new("fno", "physicalinvent"), Modifier::Subtraction)],
        }),
    );
    assert_eq!(fno.outcome, Outcome::Invalid);
    assert!(fno.message.contains("fno"));
    assert_eq!(
        apply(&mut shard, 8, Command::Unallocate(allocation("u1", &["Store"], 5))).outcome,
        Outcome::Insufficient
    );
    ok(apply(
        &mut shard,
        9,
        Command::Unallocate(allocation("u2", &["Store"], 4)),
    ));

    let online = allocations(&shard, &["Online"]);
    assert_eq!(online.len(), 2);
    let vip = online.iter().find(|a| a.groups == ["Online", "VIP"]).unwrap();
    assert_eq!((vip.state.allocated, vip.state.consumed), (Qty::ONE, Qty::ONE));
    assert_eq!(allocations(&shard, &[]).len(), 3);
    let ReadResponse::Records(records) = shard.read(&ReadRequest::Query(Query {
        environment: ENV.into(),
        organization: "usmf".into(),
        locations: None,
        products: vec!["P".into()],
        filters: BTreeMap::new(),
        exact: None,
        group_by: vec![],
        return_negative: true,
        atp: None,
    })) else {
        panic!("records")
    };
    let iv = &records[0].quantities;
    assert_eq!(
        quantity(iv, "@iv", "@allocated"),
        Qty::from_i64(5),
        "6 online - 1 consumed; store returned"
    );
    assert_eq!(quantity(iv, "@iv", "@consumed"), Qty::ONE);
    assert_eq!(quantity(iv, "iv", "softreservphysical"), Qty::ONE);
    assert_eq!(quantity(iv, "@iv", "@available_to_allocate"), Qty::from_i64(5));
}

#[derive(Clone, Debug)]
enum AllocOp {
    Stock(i64),
    Allocate(u8, i64),
    Unallocate(u8, i64),
    Reallocate(u8, u8, i64),
    Consume(u8, i64),
}

const PATHS: [&[&str]; 3] = [&["Online"], &["Online", "VIP"], &["Store"]];

fn alloc_op() -> impl Strategy<Value = AllocOp> {
    prop_oneof![
        (-3i64..15).prop_map(AllocOp::Stock),
        (0u8..3, 1i64..8).prop_map(|(p, v)| AllocOp::Allocate(p, v)),
        (0u8..3, 1i64..8).prop_map(|(p, v)| AllocOp::Unallocate(p, v)),
        (0u8..3, 0u8..3, 1i64..8).prop_map(|(a, b, v)| AllocOp::Reallocate(a, b, v)),
        (0u8..3, 1i64..8).prop_map(|(p, v)| AllocOp::Consume(p, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// No over-allocation: allocate succeeds exactly when the pool (on-hand - allocated) covers it;
    /// paths never go below zero; totals match a reference model.
    #[test]
    fn allocation_matches_the_model(ops in prop::collection::vec(alloc_op(), 1..60)) {
        let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
        let (mut on_hand, mut paths, mut consumed) = (0i64, [0i64; 3], 0i64);
        for (i, op) in ops.iter().enumerate() {
            let id = format!("e{i}");
            let (command, expected) = match *op {
                AllocOp::Stock(v) => {
                    on_hand += v;
                    (Command::OnHandChange(OnHandChange { id, partition: partition(), cell: cell("P"), quantities: q("pos", "inbound", v) }), Outcome::Success)
                }
                AllocOp::Allocate(p, v) => {
                    let ok = on_hand - paths.iter().sum::<i64>() >= v;
                    if ok { paths[p as usize] += v; }
                    (Command::Allocate(allocation(&id, PATHS[p as usize], v)), if ok { Outcome::Success } else { Outcome::Insufficient })
                }
                AllocOp::Unallocate(p, v) => {
                    let ok = paths[p as usize] >= v;
                    if ok { paths[p as usize] -= v; }
                    (Command::Unallocate(allocation(&id, PATHS[p as usize], v)), if ok { Outcome::Success } else { Outcome::Insufficient })
                }
                AllocOp::Reallocate(a, b, v) => {
                    let cmd = Command::Reallocate(Reallocation {
                        id, partition: partition(), cell: cell("P"),
                        source_groups: groups(PATHS[a as usize]), groups: groups(PATHS[b as usize]), quantity: Qty::from_i64(v),
                    });
                    if a == b { (cmd, Outcome::Invalid) }
                    else if paths[a as usize] >= v { paths[a as usize] -= v; paths[b as usize] += v; (cmd, Outcome::Success) }
                    else { (cmd, Outcome::Insufficient) }
                }
                AllocOp::Consume(p, v) => {
                    let ok = paths[p as usize] >= v;
                    if ok { paths[p as usize] -= v; consumed += v; }
                    (Command::Consume(Consumption {
                        id, partition: partition(), cell: cell("P"), groups: groups(PATHS[p as usize]),
                        quantity: Qty::from_i64(v), physical: vec![],
                    }), if ok { Outcome::Success } else { Outcome::Insufficient })
                }
            };
            let r = apply(&mut shard, i as u64, command);
            prop_assert_eq!(r.outcome, expected, "op {} {:?}: {}", i, op, r.message);
        }
        let records = allocations(&shard, &[]);
        for (p, path) in PATHS.iter().enumerate() {
            let got = records.iter().find(|r| r.groups == groups(path)).map_or(Qty::ZERO, |r| r.state.allocated);
            prop_assert_eq!(got, Qty::from_i64(paths[p]));
            prop_assert!(!got.is_negative());
        }
        let total_consumed: Qty = records.iter().map(|r| r.state.consumed).sum();
        prop_assert_eq!(total_consumed, Qty::from_i64(consumed));
    }
}
