//! The worked examples of IV's documentation and the other platforms' reservation APIs (docs/iv-compatibility.md), run on
//! ivory-core alone.

use ivory_core::*;

const ENV: &str = "env-1";
const ORG: &str = "usmf";

/// Builds a cell the way the gateway does: data-source dimension names mapped to base ones.
fn cell(shard: &Shard, data_source: Option<&str>, product: &str, dims: &[(&str, &str)]) -> (PartitionKey, Cell) {
    let (site, location, dims) = shard
        .config(ENV)
        .normalize_dimensions(data_source, dims.iter().copied())
        .expect("valid dimensions");
    (
        PartitionKey::new(ENV, ORG, site, location),
        Cell {
            product: product.into(),
            dims,
        },
    )
}

fn qty(ds: &str, measure: &str, q: i64) -> Quantities {
    [(
        ds.to_string(),
        [(measure.to_string(), Qty::from_i64(q))].into_iter().collect(),
    )]
    .into_iter()
    .collect()
}

fn one(shard: &mut Shard, ts_ms: u64, command: Command) -> CmdResult {
    shard
        .apply(&Batch {
            ts_ms,
            commands: vec![command],
        })
        .remove(0)
}

fn query(shard: &Shard, site: &str, location: &str, products: &[&str], group_by: &[&str]) -> Vec<Record> {
    match shard.read(&ReadRequest::Query(Query {
        environment: ENV.into(),
        organization: ORG.into(),
        locations: Some(vec![(site.into(), location.into())]),
        products: products.iter().map(|p| p.to_string()).collect(),
        filters: Default::default(),
        exact: None,
        group_by: group_by.iter().map(|g| g.to_string()).collect(),
        return_negative: true,
        atp: None,
    })) {
        ReadResponse::Records(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

fn measure(record: &Record, ds: &str, m: &str) -> Qty {
    quantity(&record.quantities, ds, m)
}

fn change(id: &str, p: PartitionKey, c: Cell, quantities: Quantities) -> Command {
    Command::OnHandChange(OnHandChange {
        id: id.into(),
        partition: p,
        cell: c,
        quantities,
    })
}

/// API doc: a POS return of one red T-shirt (with and without dimensionDataSource), then a bulk
/// of a return (red) and a sale of three black T-shirts, then a count that sets red to 100.
#[test]
fn t_shirt_events() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let pos_dims = [
        ("siteId", "1"),
        ("locationId", "11"),
        ("posMachineId", "0001"),
        ("colorId", "red"),
    ];
    let (p, red_at_machine) = cell(&shard, Some("pos"), "T-shirt", &pos_dims);
    let r = one(
        &mut shard,
        1,
        change("Test201", p.clone(), red_at_machine.clone(), qty("pos", "inbound", 1)),
    );
    assert_eq!(r.outcome, Outcome::Success);
    let (_, red) = cell(
        &shard,
        None,
        "T-shirt",
        &[("siteId", "1"), ("locationId", "11"), ("colorId", "red")],
    );
    let r = one(
        &mut shard,
        2,
        change("Test202", p.clone(), red.clone(), qty("pos", "inbound", 1)),
    );
    assert_eq!(r.outcome, Outcome::Success);

    // The bulk: Test203 names site "Site1", another partition; Test204 sells 3 black.
    let (p_site1, red_site1) = cell(
        &shard,
        Some("pos"),
        "T-shirt",
        &[
            ("SiteId", "Site1"),
            ("LocationId", "11"),
            ("posMachineId", "0001"),
            ("colorId", "red"),
        ],
    );
    let (_, black) = cell(
        &shard,
        None,
        "T-shirt",
        &[("siteId", "1"), ("locationId", "11"), ("colorId", "black")],
    );
    let results = shard.apply(&Batch {
        ts_ms: 3,
        commands: vec![
            change("Test203", p_site1.clone(), red_site1, qty("pos", "inbound", 1)),
            change("Test204", p.clone(), black, qty("pos", "outbound", 3)),
        ],
    });
    assert!(results.iter().all(|r| r.outcome == Outcome::Success));

    let by_color = query(&shard, "1", "11", &["T-shirt"], &["colorid"]);
    assert_eq!(by_color.len(), 2);
    let black = by_color
        .iter()
        .find(|r| r.dims.get("colorid").unwrap() == "black")
        .unwrap();
    let red = by_color
        .iter()
        .find(|r| r.dims.get("colorid").unwrap() == "red")
        .unwrap();
    assert_eq!(measure(red, "pos", "inbound"), Qty::from_i64(2));
    assert_eq!(measure(red, "iv", "availabletoreserve"), Qty::from_i64(2));
    assert_eq!(measure(black, "pos", "outbound"), Qty::from_i64(3));
    assert_eq!(measure(black, "iv", "availabletoreserve"), Qty::from_i64(-3));
    let site1 = query(&shard, "Site1", "11", &["T-shirt"], &[]);
    assert_eq!(measure(&site1[0], "pos", "inbound"), Qty::ONE);

    // The count: red at POS machine 0001 is 100, whatever it was.
    let set = Command::SetOnHand(SetOnHand {
        id: "Test204".into(),
        partition: p.clone(),
        cell: red_at_machine.clone(),
        quantities: qty("pos", "inbound", 100),
        modified_ms: Some(10_000),
    });
    assert_eq!(one(&mut shard, 4, set).outcome, Outcome::Success);
    let by_color = query(&shard, "1", "11", &["T-shirt"], &["colorid"]);
    let red = by_color
        .iter()
        .find(|r| r.dims.get("colorid").unwrap() == "red")
        .unwrap();
    assert_eq!(
        measure(red, "pos", "inbound"),
        Qty::from_i64(101),
        "100 at the machine + 1 without"
    );

    // A count older than the last one applied is ignored.
    let stale = Command::SetOnHand(SetOnHand {
        id: "Test205".into(),
        partition: p,
        cell: red_at_machine,
        quantities: qty("pos", "inbound", 7),
        modified_ms: Some(9_000),
    });
    let r = one(&mut shard, 5, stale);
    assert_eq!(r.outcome, Outcome::Success);
    assert!(r.message.contains("older"), "{}", r.message);
    let red = query(&shard, "1", "11", &["T-shirt"], &["colorid"]);
    let red = red.iter().find(|r| r.dims.get("colorid").unwrap() == "red").unwrap();
    assert_eq!(measure(red, "pos", "inbound"), Qty::from_i64(101));
}

fn reserve(id: &str, p: &PartitionKey, c: &Cell, q: i64, availability: Availability) -> Command {
    Command::Reserve(Reserve {
        id: id.into(),
        partition: p.clone(),
        cell: c.clone(),
        measure: MeasureRef::new("iv", "softreservphysical"),
        quantity: Qty::from_i64(q),
        availability,
    })
}

/// Reservations doc: Contoso reserves one small red cabinet D0002 at site 1, warehouse 11.
#[test]
fn d0002_cabinet_reservation() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let dims = [
        ("SiteId", "1"),
        ("LocationId", "11"),
        ("ColorId", "red"),
        ("SizeId", "small"),
    ];
    let (p, cabinet) = cell(&shard, None, "D0002", &dims);

    let r = one(
        &mut shard,
        1,
        reserve("Testrequest-0005", &p, &cabinet, 1, Availability::Checked),
    );
    assert_eq!(r.outcome, Outcome::Insufficient, "no stock yet");
    assert_eq!(r.outcome.iv_status_code(), 500);

    one(
        &mut shard,
        2,
        change("stock-1", p.clone(), cabinet.clone(), qty("fno", "physicalinvent", 3)),
    );
    let r = one(
        &mut shard,
        3,
        reserve("Testrequest-0006", &p, &cabinet, 1, Availability::Checked),
    );
    assert_eq!(r.outcome, Outcome::Success);
    let reservation = r.reservation_id.clone().expect("a reservation id");
    assert_eq!(
        reservation,
        reservation_id(&p, &cabinet, &MeasureRef::new("iv", "softreservphysical"))
    );

    let rec = &query(&shard, "1", "11", &["D0002"], &["colorid", "sizeid"])[0];
    assert_eq!(measure(rec, "iv", "softreservphysical"), Qty::ONE);
    assert_eq!(measure(rec, "iv", "availabletoreserve"), Qty::from_i64(2));

    // The id names product + dimensions, not the request: a second reserve gets the same id.
    let r2 = one(
        &mut shard,
        4,
        reserve("Testrequest-0007", &p, &cabinet, 2, Availability::Checked),
    );
    assert_eq!(r2.reservation_id.as_deref(), Some(reservation.as_str()));
    let r3 = one(
        &mut shard,
        5,
        reserve("Testrequest-0008", &p, &cabinet, 1, Availability::Checked),
    );
    assert_eq!(r3.outcome, Outcome::Insufficient, "3 on hand, 3 reserved");

    // Cancel with a negative quantity and the check off.
    let r = one(
        &mut shard,
        6,
        reserve("Testrequest-0009", &p, &cabinet, -2, Availability::Unchecked),
    );
    assert_eq!(r.outcome, Outcome::Success);
    let rec = &query(&shard, "1", "11", &["D0002"], &[])[0];
    assert_eq!(measure(rec, "iv", "softreservphysical"), Qty::ONE);
    // A negative quantity with the check on is refused, whatever is available.
    let r = one(
        &mut shard,
        7,
        reserve("Testrequest-0010", &p, &cabinet, -1, Availability::Checked),
    );
    assert_eq!(r.outcome, Outcome::Insufficient);
    // With the check off a reservation always applies, and may oversell.
    let r = one(
        &mut shard,
        8,
        reserve("Testrequest-0011", &p, &cabinet, 10, Availability::Unchecked),
    );
    assert_eq!(r.outcome, Outcome::Success);
    let rec = &query(&shard, "1", "11", &["D0002"], &[])[0];
    assert_eq!(measure(rec, "iv", "availabletoreserve"), Qty::from_i64(-8));
}

/// API doc: reserved 10, OffsetQty 12 -> partialSuccess, totalInvalidOffsetQtyByReservId 2.
#[test]
fn unreserve_more_than_reserved_is_partial_success() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let (p, c) = cell(&shard, None, "P1", &[("siteId", "1"), ("locationId", "11")]);
    one(
        &mut shard,
        1,
        change("s", p.clone(), c.clone(), qty("pos", "inbound", 10)),
    );
    let id = one(&mut shard, 2, reserve("r", &p, &c, 10, Availability::Checked))
        .reservation_id
        .unwrap();
    let unreserve = |event: &str, offset: i64| {
        Command::Unreserve(Unreserve {
            id: event.into(),
            partition: p.clone(),
            reservation_id: id.clone(),
            offset: Qty::from_i64(offset),
        })
    };
    let r = one(&mut shard, 3, unreserve("u1", 12));
    assert_eq!(r.outcome, Outcome::PartialSuccess);
    assert_eq!(r.invalid_offset, Some(Qty::from_i64(2)));
    let rec = &query(&shard, "1", "11", &["P1"], &[])[0];
    assert_eq!(measure(rec, "iv", "softreservphysical"), Qty::ZERO);
    assert_eq!(measure(rec, "iv", "availabletoreserve"), Qty::from_i64(10));

    // Within the reserved amount: success with excess 0.
    one(&mut shard, 4, reserve("r2", &p, &c, 4, Availability::Checked));
    let r = one(&mut shard, 5, unreserve("u2", 3));
    assert_eq!((r.outcome, r.invalid_offset), (Outcome::Success, Some(Qty::ZERO)));

    // Unknown id -> notFound, and nothing is remembered against the partition's stock.
    let r = one(
        &mut shard,
        6,
        Command::Unreserve(Unreserve {
            id: "u3".into(),
            partition: p.clone(),
            reservation_id: "no-such".into(),
            offset: Qty::ONE,
        }),
    );
    assert_eq!(r.outcome, Outcome::NotFound);
    assert_eq!(r.outcome.bucket(), "notFound");
}

#[test]
fn replays_return_the_first_result_and_conflicts_change_nothing() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let (p, c) = cell(&shard, None, "P1", &[("siteId", "1"), ("locationId", "11")]);
    one(
        &mut shard,
        1,
        change("s", p.clone(), c.clone(), qty("pos", "inbound", 1)),
    );
    let first = one(&mut shard, 2, reserve("r", &p, &c, 1, Availability::Checked));
    let hash = shard.state_hash();
    assert_eq!(
        one(&mut shard, 3, reserve("r", &p, &c, 1, Availability::Checked)),
        first
    );
    let conflict = one(&mut shard, 4, reserve("r", &p, &c, 2, Availability::Checked));
    assert_eq!(conflict.outcome, Outcome::Conflict);
    // Only the clock moved.
    let mut replica = Shard::restore(&shard.snapshot()).unwrap();
    assert_eq!(replica.state_hash(), shard.state_hash());
    assert_ne!(hash, [0; 32]);
    // The same id for another kind of operation is a different event.
    let r = one(&mut replica, 5, change("r", p, c, qty("pos", "inbound", 1)));
    assert_eq!(r.outcome, Outcome::Success);
}

#[test]
fn event_ids_are_forgotten_after_the_retention_window() {
    let mut shard = Shard::new(1_000);
    let (p, c) = cell(&shard, None, "P1", &[("siteId", "1"), ("locationId", "11")]);
    one(
        &mut shard,
        1,
        change("s", p.clone(), c.clone(), qty("pos", "inbound", 1)),
    );
    assert_eq!(shard.remembered_events(), 1);
    one(
        &mut shard,
        500,
        change("s", p.clone(), c.clone(), qty("pos", "inbound", 1)),
    );
    assert_eq!(shard.remembered_events(), 1, "a replay inside the window");
    one(&mut shard, 2_000, change("t", p, c, qty("pos", "inbound", 1)));
    assert_eq!(shard.remembered_events(), 1, "'s' expired, 't' is new");
}

#[test]
fn bad_commands_are_refused_and_change_nothing() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let (p, c) = cell(
        &shard,
        None,
        "P1",
        &[("siteId", "1"), ("locationId", "11"), ("colorid", "red")],
    );
    let before = shard.snapshot();
    let cases = [
        change("a", p.clone(), c.clone(), qty("nosuch", "onhand", 1)),
        change("b", p.clone(), c.clone(), qty("iv", "nosuch", 1)),
        change("c", p.clone(), c.clone(), qty("@iv", "@allocated", 1)),
        change("d", p.clone(), c.clone(), Quantities::new()),
        reserve("e", &p, &c, 0, Availability::Checked),
        Command::Reserve(Reserve {
            id: "f".into(),
            partition: p.clone(),
            cell: c.clone(),
            measure: MeasureRef::new("iv", "onhand"),
            quantity: Qty::ONE,
            availability: Availability::Checked,
        }),
        // sizeid without colorid skips a level of the reservation hierarchy.
        reserve(
            "g",
            &p,
            &Cell {
                product: "P1".into(),
                dims: [("sizeid".to_string(), "small".to_string())].into_iter().collect(),
            },
            1,
            Availability::Unchecked,
        ),
        Command::PutConfig {
            environment: ENV.into(),
            config_json: "{\"reservConfiguration\":{\"keys\":[\"colorid\"]}}".into(),
        },
    ];
    for command in cases {
        let r = one(&mut shard, 0, command.clone());
        assert_eq!(r.outcome, Outcome::Invalid, "{command:?}");
        assert!(!r.message.is_empty());
    }
    assert_eq!(shard.snapshot(), before);
    // Overflow is refused too: the limit is 10^15.
    one(
        &mut shard,
        0,
        change("h", p.clone(), c.clone(), qty("pos", "inbound", 900_000_000_000_000)),
    );
    let r = one(
        &mut shard,
        0,
        change("i", p, c, qty("pos", "inbound", 200_000_000_000_000)),
    );
    assert_eq!(r.outcome, Outcome::Invalid);
}

/// Index vs exact query: the index query takes the cross product of filter values, the exact
/// query only the listed tuples.
#[test]
fn exact_query_matches_tuples_only() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    for (i, (color, size)) in [("red", "s"), ("red", "m"), ("blue", "s"), ("blue", "m")]
        .into_iter()
        .enumerate()
    {
        let (p, c) = cell(
            &shard,
            None,
            "P1",
            &[
                ("siteId", "1"),
                ("locationId", "11"),
                ("colorid", color),
                ("sizeid", size),
            ],
        );
        one(
            &mut shard,
            1,
            change(&format!("e{i}"), p, c, qty("pos", "inbound", i as i64 + 1)),
        );
    }
    let base = Query {
        environment: ENV.into(),
        organization: ORG.into(),
        locations: Some(vec![("1".into(), "11".into())]),
        products: vec!["P1".into()],
        filters: [
            ("colorid".to_string(), vec!["red".to_string(), "blue".to_string()]),
            ("sizeid".to_string(), vec!["s".to_string()]),
        ]
        .into_iter()
        .collect(),
        exact: None,
        group_by: vec!["colorid".into(), "sizeid".into()],
        return_negative: true,
        atp: None,
    };
    let ReadResponse::Records(index) = shard.read(&ReadRequest::Query(base.clone())) else {
        panic!()
    };
    assert_eq!(index.len(), 2, "red/s and blue/s");
    let exact = Query {
        filters: Default::default(),
        exact: Some(ExactFilter {
            dims: vec!["siteid".into(), "locationid".into(), "colorid".into(), "sizeid".into()],
            tuples: vec![vec!["1".into(), "11".into(), "red".into(), "m".into()]],
        }),
        group_by: vec![],
        ..base
    };
    let ReadResponse::Records(rows) = shard.read(&ReadRequest::Query(exact)) else {
        panic!()
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].dims.get("colorid").unwrap(), "red");
    assert_eq!(rows[0].dims.get("sizeid").unwrap(), "m");
    assert_eq!(measure(&rows[0], "iv", "onhand"), Qty::from_i64(2));
}

/// A reservation at a fine level may not take stock that a coarser reservation counted on.
#[test]
fn every_level_of_the_hierarchy_is_checked() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let (p, red_m) = cell(
        &shard,
        None,
        "P1",
        &[
            ("siteId", "1"),
            ("locationId", "11"),
            ("colorid", "red"),
            ("sizeid", "m"),
        ],
    );
    let (_, red) = cell(
        &shard,
        None,
        "P1",
        &[("siteId", "1"), ("locationId", "11"), ("colorid", "red")],
    );
    one(
        &mut shard,
        1,
        change("s", p.clone(), red_m.clone(), qty("pos", "inbound", 1)),
    );
    assert_eq!(
        one(&mut shard, 2, reserve("r1", &p, &red, 1, Availability::Checked)).outcome,
        Outcome::Success
    );
    assert_eq!(
        one(&mut shard, 3, reserve("r2", &p, &red_m, 1, Availability::Checked)).outcome,
        Outcome::Insufficient
    );
}

#[test]
fn a_default_configuration_applies_to_environments_without_their_own() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let mut doc: serde_json::Value = serde_json::from_str(&shard.config(ENV).to_json()).unwrap();
    doc["inventorySystemConfigurations"]["iv"]["physicalMeasures"]
        .as_array_mut()
        .unwrap()
        .push("returned".into());
    let put = |env: &str, json: String| Command::PutConfig {
        environment: env.into(),
        config_json: json,
    };
    assert_eq!(
        one(&mut shard, 1, put(DEFAULT_ENVIRONMENT, doc.to_string())).outcome,
        Outcome::Success
    );
    let returned = MeasureRef::new("iv", "returned");
    assert!(shard.config(ENV).is_physical(&returned));
    // An environment's own configuration wins over the default.
    let builtin = Config::default_config().to_json();
    assert_eq!(one(&mut shard, 2, put(ENV, builtin)).outcome, Outcome::Success);
    assert!(!shard.config(ENV).is_physical(&returned));
    assert!(shard.config("other").is_physical(&returned));
}
