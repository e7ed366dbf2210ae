//! The documented default configuration (issue 14): supply on any documented supply measure
//! counts in every calculated measure that availability is computed from.

use ivory_core::*;

const ENV: &str = "env-default";

fn partition() -> PartitionKey {
    PartitionKey::new(ENV, "usmf", "1", "11")
}

fn cell() -> Cell {
    Cell {
        product: "Bike".into(),
        dims: Dims::new(),
    }
}

fn apply(shard: &mut Shard, command: Command) -> CmdResult {
    shard
        .apply(&Batch {
            ts_ms: 1_000,
            commands: vec![command],
        })
        .remove(0)
}

fn change(id: &str, ds: &str, m: &str, q: i64) -> Command {
    Command::OnHandChange(OnHandChange {
        id: id.into(),
        partition: partition(),
        cell: cell(),
        quantities: [(
            ds.to_string(),
            [(m.to_string(), Qty::from_i64(q))].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
    })
}

fn reserve(id: &str, ds: &str, m: &str, q: i64) -> Command {
    Command::Reserve(Reserve {
        id: id.into(),
        partition: partition(),
        cell: cell(),
        measure: MeasureRef::new(ds, m),
        quantity: Qty::from_i64(q),
        availability: Availability::Checked,
    })
}

fn quantities(shard: &Shard) -> Quantities {
    let request = ReadRequest::Query(Query {
        environment: ENV.into(),
        organization: "usmf".into(),
        locations: Some(vec![("1".into(), "11".into())]),
        products: vec!["Bike".into()],
        filters: Default::default(),
        exact: None,
        group_by: vec![],
        return_negative: true,
        atp: None,
    });
    let ReadResponse::Records(mut records) = shard.read(&request) else {
        panic!("records")
    };
    assert_eq!(records.len(), 1);
    records.remove(0).quantities
}

fn get(q: &Quantities, ds: &str, m: &str) -> i64 {
    let v = q.get(ds).and_then(|d| d.get(m)).copied().unwrap_or(Qty::ZERO);
    v.to_string().parse().unwrap_or_else(|_| panic!("{ds}.{m} = {v}"))
}

#[test]
fn every_supply_measure_counts_in_every_calculated_measure() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    // Supply on each documented supply measure, demand on pos.posoutbound.
    for (i, (ds, m, q)) in [
        ("pos", "posinbound", 10),
        ("iom", "onhand", 20),
        ("fno", "physicalinvent", 30),
        ("erp", "unrestricted", 40),
        ("pos", "inbound", 5),
        ("pos", "posoutbound", 3),
    ]
    .into_iter()
    .enumerate()
    {
        let r = apply(&mut shard, change(&format!("c{i}"), ds, m, q));
        assert_eq!(r.outcome, Outcome::Success, "{ds}.{m}: {}", r.message);
    }
    let q = quantities(&shard);
    let on_hand = 10 + 20 + 30 + 40 + 5 - 3;
    assert_eq!(get(&q, "iv", "onhand"), on_hand);
    assert_eq!(get(&q, "iv", "availabletoreserve"), on_hand);
    assert_eq!(get(&q, "@iv", "@available_to_reserve"), on_hand);
    assert_eq!(get(&q, "@iv", "@available_to_allocate"), on_hand);
    assert_eq!(get(&q, "iv", "onhandavailable"), on_hand);
    assert_eq!(get(&q, "iv", "inventorysupply"), on_hand);
    assert_eq!(get(&q, "pos", "availquantity"), 10 - 3);

    // Soft reservations: IV's (gated by iv.availabletoreserve) and @iv's (gated by
    // @iv.@available_to_reserve) each lower their own availability; on-hand stays.
    let r = apply(&mut shard, reserve("r1", "iv", "softreservphysical", 12));
    assert_eq!(r.outcome, Outcome::Success, "{}", r.message);
    let r = apply(&mut shard, reserve("r2", "@iv", "@softreserved", 7));
    assert_eq!(r.outcome, Outcome::Success, "{}", r.message);
    let q = quantities(&shard);
    assert_eq!(get(&q, "iv", "onhand"), on_hand);
    assert_eq!(get(&q, "iv", "availabletoreserve"), on_hand - 12);
    assert_eq!(get(&q, "@iv", "@available_to_reserve"), on_hand - 7);
    assert_eq!(get(&q, "iv", "softreserved"), 12);
    assert_eq!(get(&q, "iv", "reservedtotal"), 12);
    assert_eq!(get(&q, "iv", "inventorydemand"), 12);
    assert_eq!(get(&q, "iv", "onhandavailable"), on_hand - 12);
    // More than is left is refused.
    let r = apply(&mut shard, reserve("r3", "iv", "softreservphysical", on_hand - 11));
    assert_eq!(r.outcome, Outcome::Insufficient, "{}", r.message);
    let r = apply(&mut shard, reserve("r4", "@iv", "@softreserved", on_hand - 6));
    assert_eq!(r.outcome, Outcome::Insufficient, "{}", r.message);
}

#[test]
fn iom_and_erp_are_configured_and_iv_onhand_is_calculated() {
    let c = Config::default_config();
    for (ds, m) in [
        ("iom", "onhand"),
        ("iom", "onorder"),
        ("erp", "unrestricted"),
        ("erp", "qualityinspection"),
    ] {
        assert!(c.is_physical(&MeasureRef::new(ds, m)), "{ds}.{m}");
    }
    assert!(!c.is_physical(&MeasureRef::new("iv", "onhand")));
    // Posting to a calculated measure is refused, naming it.
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let r = apply(&mut shard, change("x", "iv", "onhand", 1));
    assert_eq!(r.outcome, Outcome::Invalid, "{}", r.message);
}

#[test]
fn the_allocation_calculation_drives_available_to_allocate() {
    let mut doc: serde_json::Value = serde_json::from_str(&Config::default_config().to_json()).expect("JSON");
    doc["allocationConfiguration"]["availableToAllocateCalculation"] =
        serde_json::json!({"pos.posinbound": "addition", "@iv.@allocated": "subtraction"});
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let r = apply(
        &mut shard,
        Command::PutConfig {
            environment: ENV.into(),
            config_json: doc.to_string(),
        },
    );
    assert_eq!(r.outcome, Outcome::Success, "{}", r.message);
    for (i, (ds, m, q)) in [("pos", "posinbound", 4), ("iom", "onhand", 10)]
        .into_iter()
        .enumerate()
    {
        let r = apply(&mut shard, change(&format!("c{i}"), ds, m, q));
        assert_eq!(r.outcome, Outcome::Success, "{}", r.message);
    }
    let allocate = |id: &str, q: i64| {
        Command::Allocate(Allocation {
            id: id.into(),
            partition: partition(),
            cell: cell(),
            groups: vec!["Online".into()],
            quantity: Qty::from_i64(q),
        })
    };
    // Only pos.posinbound is in this pool, whatever on-hand holds.
    assert_eq!(apply(&mut shard, allocate("a1", 5)).outcome, Outcome::Insufficient);
    assert_eq!(apply(&mut shard, allocate("a2", 3)).outcome, Outcome::Success);
    let q = quantities(&shard);
    assert_eq!(get(&q, "iv", "onhand"), 14);
    assert_eq!(get(&q, "@iv", "@available_to_allocate"), 1);
}
