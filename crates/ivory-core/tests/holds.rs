//! Holds on ivory-core alone: all-or-nothing, lifecycle, deterministic expiry (issue 7).

use std::collections::BTreeMap;

use ivory_core::hold::{EventKind, HoldCommand, HoldKey, HoldLine, HoldStatus, SIBLING_EXPIRY_GRACE_MS};
use ivory_core::*;
use proptest::prelude::*;

const ENV: &str = "env";

fn partition() -> PartitionKey {
    PartitionKey::new(ENV, "org", "1", "11")
}

fn key(id: u32) -> HoldKey {
    HoldKey {
        environment: ENV.into(),
        organization: "org".into(),
        id: format!("h{id}"),
    }
}

fn line(n: u8, product: u8, quantity: i64) -> HoldLine {
    HoldLine {
        line_id: format!("l{n}"),
        partition: partition(),
        cell: Cell {
            product: format!("p{product}"),
            dims: Dims::new(),
        },
        quantity: Qty::from_i64(quantity),
        allow_oversell: false,
    }
}

fn soft() -> MeasureRef {
    MeasureRef::new("iv", "softreservphysical")
}

fn create(id: u32, lines: Vec<HoldLine>, expires_at_ms: u64, all_or_nothing: bool) -> Command {
    Command::Hold(HoldCommand::Create {
        key: key(id),
        measure: soft(),
        lines,
        expires_at_ms,
        all_or_nothing,
        tentative: false,
        body_fingerprint: [id as u8; 16],
        primary: true,
    })
}

fn apply(shard: &mut Shard, ts_ms: u64, command: Command) -> CmdResult {
    shard
        .apply(&Batch {
            ts_ms,
            commands: vec![command],
        })
        .remove(0)
}

fn stock(shard: &mut Shard, product: u8, quantity: i64) {
    let r = apply(
        shard,
        0,
        Command::OnHandChange(OnHandChange {
            id: format!("stock-{product}"),
            partition: partition(),
            cell: Cell {
                product: format!("p{product}"),
                dims: Dims::new(),
            },
            quantities: [(
                "pos".to_string(),
                [("inbound".to_string(), Qty::from_i64(quantity))].into_iter().collect(),
            )]
            .into_iter()
            .collect(),
        }),
    );
    assert_eq!(r.outcome, Outcome::Success);
}

fn measure_of(shard: &Shard, product: u8, ds: &str, m: &str) -> Qty {
    let ReadResponse::Records(records) = shard.read(&ReadRequest::Query(Query {
        environment: ENV.into(),
        organization: "org".into(),
        locations: None,
        products: vec![format!("p{product}")],
        filters: BTreeMap::new(),
        exact: None,
        group_by: vec![],
        return_negative: true,
        atp: None,
    })) else {
        panic!("records")
    };
    records.iter().map(|r| quantity(&r.quantities, ds, m)).sum()
}

fn status(shard: &Shard, id: u32) -> Option<HoldStatus> {
    match shard.read(&ReadRequest::Hold(key(id))) {
        ReadResponse::Hold(h) => h.map(|h| h.status),
        other => panic!("{other:?}"),
    }
}

#[test]
fn all_or_nothing_holds_nothing_when_one_line_is_short() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    stock(&mut shard, 0, 5);
    stock(&mut shard, 1, 1);
    let r = apply(
        &mut shard,
        10,
        create(1, vec![line(0, 0, 3), line(1, 1, 2)], 1_000, true),
    );
    assert_eq!(r.outcome, Outcome::Insufficient);
    assert!(r.message.contains("'l1'"), "{}", r.message);
    assert_eq!(
        measure_of(&shard, 0, "iv", "softreservphysical"),
        Qty::ZERO,
        "line 0 was undone"
    );
    assert_eq!(status(&shard, 1), None);
    // Not all-or-nothing: the line that fits is held, the short one is reported.
    let r = apply(
        &mut shard,
        11,
        create(2, vec![line(0, 0, 3), line(1, 1, 2)], 1_000, false),
    );
    assert_eq!(r.outcome, Outcome::PartialSuccess, "{}", r.message);
    assert_eq!(measure_of(&shard, 0, "iv", "availabletoreserve"), Qty::from_i64(2));
}

#[test]
fn lifecycle_and_expiry_by_leader_time() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    stock(&mut shard, 0, 10);
    assert_eq!(
        apply(&mut shard, 100, create(1, vec![line(0, 0, 4)], 1_000, true)).outcome,
        Outcome::Success
    );
    assert_eq!(
        apply(&mut shard, 100, create(2, vec![line(0, 0, 4)], 5_000, true)).outcome,
        Outcome::Success
    );
    // A replay of a create is idempotent; another body under the same id is a conflict.
    assert_eq!(
        apply(&mut shard, 101, create(1, vec![line(0, 0, 4)], 1_000, true)).outcome,
        Outcome::Success
    );
    let other_body = Command::Hold(HoldCommand::Create {
        key: key(1),
        measure: soft(),
        lines: vec![line(0, 0, 1)],
        expires_at_ms: 1_000,
        all_or_nothing: true,
        tentative: false,
        body_fingerprint: [9; 16],
        primary: true,
    });
    assert_eq!(apply(&mut shard, 101, other_body).outcome, Outcome::Conflict);
    assert_eq!(measure_of(&shard, 0, "iv", "availabletoreserve"), Qty::from_i64(2));
    assert_eq!(shard.next_expiry_ms(), Some(1_000));

    assert_eq!(
        apply(&mut shard, 200, Command::Hold(HoldCommand::Confirm { key: key(2) })).outcome,
        Outcome::Success
    );
    // The leader's sweep: an empty batch at t=1000 expires hold 1, not the confirmed hold 2.
    shard.apply(&Batch {
        ts_ms: 1_000,
        commands: vec![],
    });
    assert_eq!(status(&shard, 1), Some(HoldStatus::Expired));
    assert_eq!(status(&shard, 2), Some(HoldStatus::Confirmed));
    assert_eq!(measure_of(&shard, 0, "iv", "availabletoreserve"), Qty::from_i64(6));
    assert_eq!(shard.next_expiry_ms(), None);
    // An expired hold cannot be confirmed or released back into life.
    assert_eq!(
        apply(&mut shard, 1_001, Command::Hold(HoldCommand::Confirm { key: key(1) })).outcome,
        Outcome::Conflict
    );

    // Consuming the confirmed hold: the stock leaves on-hand, the reservation goes.
    let r = apply(
        &mut shard,
        1_002,
        Command::Hold(HoldCommand::Consume {
            key: key(2),
            line_ids: vec![],
        }),
    );
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(status(&shard, 2), Some(HoldStatus::Consumed));
    assert_eq!(measure_of(&shard, 0, "iv", "onhand"), Qty::from_i64(6));
    assert_eq!(measure_of(&shard, 0, "iv", "softreservphysical"), Qty::ZERO);
    // The same consume again (a retry): success, the stock does not leave twice, and no event
    // (the event list below is unchanged). The state hash moves with the batch's leader time.
    let again = Command::Hold(HoldCommand::Consume {
        key: key(2),
        line_ids: vec![],
    });
    assert_eq!(apply(&mut shard, 1_003, again).outcome, Outcome::Success);
    assert_eq!(measure_of(&shard, 0, "iv", "onhand"), Qty::from_i64(6));
    assert_eq!(measure_of(&shard, 0, "iv", "softreservphysical"), Qty::ZERO);

    let ReadResponse::Events { events, next_seq } = shard.read(&ReadRequest::Events {
        from_seq: 0,
        limit: 100,
    }) else {
        panic!("events")
    };
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::HoldCreated,
            EventKind::HoldCreated,
            EventKind::HoldConfirmed,
            EventKind::HoldExpired,
            EventKind::HoldConsumed
        ]
    );
    assert_eq!(next_seq, 5);
    let ReadResponse::Events { events, .. } = shard.read(&ReadRequest::Events {
        from_seq: 3,
        limit: 100,
    }) else {
        panic!("events")
    };
    assert_eq!(
        events.first().map(|e| e.seq),
        Some(3),
        "a follower resumes from its position"
    );
}

#[test]
fn tentative_holds_commit_or_expire() {
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    stock(&mut shard, 0, 10);
    let tentative = |id: u32, expires: u64| {
        Command::Hold(HoldCommand::Create {
            key: key(id),
            measure: soft(),
            lines: vec![line(0, 0, 3)],
            expires_at_ms: expires,
            all_or_nothing: true,
            tentative: true,
            body_fingerprint: [id as u8; 16],
            primary: true,
        })
    };
    assert_eq!(apply(&mut shard, 0, tentative(1, 500)).outcome, Outcome::Success);
    assert_eq!(apply(&mut shard, 0, tentative(2, 500)).outcome, Outcome::Success);
    let commit = |id: u32| {
        Command::Hold(HoldCommand::Commit {
            key: key(id),
            expires_at_ms: 60_000,
        })
    };
    assert_eq!(apply(&mut shard, 100, commit(1)).outcome, Outcome::Success);
    // Hold 2's coordinator died: its tentative lines expire, and a late commit is refused.
    assert_eq!(apply(&mut shard, 600, commit(2)).outcome, Outcome::Conflict);
    assert_eq!(status(&shard, 1), Some(HoldStatus::Active));
    assert_eq!(status(&shard, 2), Some(HoldStatus::Expired));
    assert_eq!(measure_of(&shard, 0, "iv", "availabletoreserve"), Qty::from_i64(7));
}

/// A cross-shard hold: its primary part alone decides when it expires. The other part's own
/// expiry is a safety net two clamp steps later, so its leader's clock running a minute ahead
/// does not end it early; the primary's expiry is passed on (`ExpirePart`) and acknowledged.
#[test]
fn a_non_primary_part_does_not_expire_at_its_own_earlier_clock() {
    let expires_at = 10_000;
    let (mut primary, mut sibling) = (
        Shard::new(EVENT_RETENTION_MS_DEFAULT),
        Shard::new(EVENT_RETENTION_MS_DEFAULT),
    );
    stock(&mut primary, 0, 10);
    stock(&mut sibling, 0, 10);
    let part = |is_primary: bool| {
        let mut part = create(1, vec![line(0, 0, 4)], 5_000, true);
        if let Command::Hold(HoldCommand::Create { tentative, primary, .. }) = &mut part {
            (*tentative, *primary) = (true, is_primary);
        }
        part
    };
    let set_siblings = |fingerprint: u8| {
        Command::Hold(HoldCommand::SetSiblings {
            key: key(1),
            body_fingerprint: [fingerprint; 16],
            shards: vec![7],
        })
    };
    let results = primary.apply(&Batch {
        ts_ms: 100,
        commands: vec![part(true), set_siblings(1)],
    });
    assert!(results.iter().all(|r| r.outcome == Outcome::Success), "{results:?}");
    // Another hold's body under the id does not get to name siblings.
    assert_eq!(apply(&mut primary, 100, set_siblings(9)).outcome, Outcome::Conflict);
    assert_eq!(apply(&mut sibling, 100, part(false)).outcome, Outcome::Success);
    let commit = |at: u64| {
        Command::Hold(HoldCommand::Commit {
            key: key(1),
            expires_at_ms: at,
        })
    };
    assert_eq!(apply(&mut primary, 200, commit(expires_at)).outcome, Outcome::Success);
    assert_eq!(
        apply(&mut sibling, 200, commit(expires_at + SIBLING_EXPIRY_GRACE_MS)).outcome,
        Outcome::Success
    );

    // The sibling's leader stamps a full clamp step (60 s) past the hold's expiry: still held.
    sibling.apply(&Batch {
        ts_ms: expires_at + 60_000,
        commands: vec![],
    });
    assert_eq!(status(&sibling, 1), Some(HoldStatus::Active));
    assert_eq!(measure_of(&sibling, 0, "iv", "softreservphysical"), Qty::from_i64(4));
    assert!(
        primary.sibling_expiries(10).is_empty(),
        "nothing owed while the primary is open"
    );

    // The primary expires: its expiry is owed to shard 7 and survives a snapshot.
    primary.apply(&Batch {
        ts_ms: expires_at,
        commands: vec![],
    });
    assert_eq!(status(&primary, 1), Some(HoldStatus::Expired));
    let owed = primary.sibling_expiries(10);
    assert_eq!(owed.len(), 1);
    assert_eq!(
        (owed[0].key.clone(), owed[0].body_fingerprint, owed[0].shards.clone()),
        (key(1), [1; 16], vec![7])
    );
    let restored = Shard::restore(&primary.snapshot()).expect("restore");
    assert_eq!(restored.sibling_expiries(10), owed);
    assert_eq!(restored.state_hash(), primary.state_hash());

    // Passed on: the sibling's part expires (idempotently), and its stock is back.
    let expire = || {
        Command::Hold(HoldCommand::ExpirePart {
            key: key(1),
            body_fingerprint: [1; 16],
        })
    };
    assert_eq!(
        apply(&mut sibling, expires_at + 60_100, expire()).outcome,
        Outcome::Success
    );
    assert_eq!(status(&sibling, 1), Some(HoldStatus::Expired));
    assert_eq!(measure_of(&sibling, 0, "iv", "softreservphysical"), Qty::ZERO);
    assert_eq!(measure_of(&sibling, 0, "iv", "availabletoreserve"), Qty::from_i64(10));
    let before = sibling.state_hash();
    assert_eq!(
        apply(&mut sibling, expires_at + 60_100, expire()).outcome,
        Outcome::Success
    );
    assert_eq!(sibling.state_hash(), before, "a retry changes nothing");
    assert_eq!(measure_of(&sibling, 0, "iv", "availabletoreserve"), Qty::from_i64(10));

    // Acknowledged: nothing owed any more, and the state encodes as it did before the table.
    let ack = Command::Hold(HoldCommand::SiblingsExpired {
        key: key(1),
        shards: vec![7],
    });
    assert_eq!(apply(&mut primary, expires_at + 200, ack).outcome, Outcome::Success);
    assert!(primary.sibling_expiries(10).is_empty());
    assert!(!primary.owes_sibling_expiries());
    let bytes = primary.snapshot();
    assert_eq!(Shard::restore(&bytes).expect("restore").snapshot(), bytes);
    let mut torn = restored.snapshot();
    torn.push(0);
    assert!(
        Shard::restore(&torn).is_err(),
        "bytes after the sibling table are refused"
    );
}

/// A non-primary part whose primary never passes anything on (its shard lost) still ends: by
/// its safety net, and not before.
#[test]
fn a_non_primary_part_ends_by_its_safety_net() {
    let mut sibling = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    stock(&mut sibling, 0, 10);
    let create = Command::Hold(HoldCommand::Create {
        key: key(2),
        measure: soft(),
        lines: vec![line(0, 0, 3)],
        expires_at_ms: 1_000 + SIBLING_EXPIRY_GRACE_MS,
        all_or_nothing: true,
        tentative: false,
        body_fingerprint: [2; 16],
        primary: false,
    });
    assert_eq!(apply(&mut sibling, 0, create).outcome, Outcome::Success);
    sibling.apply(&Batch {
        ts_ms: SIBLING_EXPIRY_GRACE_MS,
        commands: vec![],
    });
    assert_eq!(status(&sibling, 2), Some(HoldStatus::Active));
    sibling.apply(&Batch {
        ts_ms: 1_000 + SIBLING_EXPIRY_GRACE_MS,
        commands: vec![],
    });
    assert_eq!(status(&sibling, 2), Some(HoldStatus::Expired));
    assert_eq!(measure_of(&sibling, 0, "iv", "availabletoreserve"), Qty::from_i64(10));
    // An ExpirePart for another body under the id, or for an unknown hold, changes nothing.
    let stray = Command::Hold(HoldCommand::ExpirePart {
        key: key(3),
        body_fingerprint: [3; 16],
    });
    assert_eq!(
        apply(&mut sibling, 2_000 + SIBLING_EXPIRY_GRACE_MS, stray).outcome,
        Outcome::Success
    );
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        lines: Vec<(u8, i64)>,
        ttl: u64,
        all_or_nothing: bool,
    },
    Release(u32),
    Confirm(u32),
    Consume(u32),
    Reserve(u8, i64),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::collection::vec((0u8..2, 1i64..5), 1..4), 1u64..2_000, any::<bool>())
            .prop_map(|(lines, ttl, all_or_nothing)| Op::Create { lines, ttl, all_or_nothing }),
        1 => (0u32..20).prop_map(Op::Release),
        1 => (0u32..20).prop_map(Op::Confirm),
        1 => (0u32..20).prop_map(Op::Consume),
        1 => (0u8..2, 1i64..4).prop_map(|(p, q)| Op::Reserve(p, q)),
        2 => (1u64..800).prop_map(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Holds never oversell; every hold ends in exactly one terminal state; the stock of every
    /// hold that did not end consumed comes back exactly once.
    #[test]
    fn holds_settle_and_never_oversell(ops in prop::collection::vec(op(), 1..60)) {
        let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
        let initial = [12i64, 6];
        stock(&mut shard, 0, initial[0]);
        stock(&mut shard, 1, initial[1]);
        let mut now = 1u64;
        let mut created = 0u32;
        let mut reserved_iv = [0i64; 2];
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Create { lines, ttl, all_or_nothing } => {
                    let lines = lines.iter().enumerate().map(|(n, (p, q))| line(n as u8, *p, *q)).collect();
                    let r = apply(&mut shard, now, create(created, lines, now + ttl, *all_or_nothing));
                    prop_assert!(r.outcome != Outcome::Invalid, "{}", r.message);
                    created += 1;
                }
                Op::Release(h) => { apply(&mut shard, now, Command::Hold(HoldCommand::Release { key: key(*h) })); }
                Op::Confirm(h) => { apply(&mut shard, now, Command::Hold(HoldCommand::Confirm { key: key(*h) })); }
                Op::Consume(h) => { apply(&mut shard, now, Command::Hold(HoldCommand::Consume { key: key(*h), line_ids: vec![] })); }
                Op::Reserve(p, q) => {
                    let r = apply(&mut shard, now, Command::Reserve(Reserve {
                        id: format!("r{i}"), partition: partition(),
                        cell: Cell { product: format!("p{p}"), dims: Dims::new() },
                        measure: soft(), quantity: Qty::from_i64(*q), availability: Availability::Checked,
                    }));
                    if r.outcome == Outcome::Success { reserved_iv[*p as usize] += q; }
                }
                Op::Tick(ms) => { now += ms; shard.apply(&Batch { ts_ms: now, commands: vec![] }); }
            }
            for p in 0..2 {
                prop_assert!(measure_of(&shard, p, "iv", "availabletoreserve") >= Qty::ZERO, "oversold p{} after op {}", p, i);
            }
        }
        // Far in the future every unconfirmed hold has expired; release the confirmed ones.
        now += 10_000;
        shard.apply(&Batch { ts_ms: now, commands: vec![] });
        for h in 0..created {
            if status(&shard, h) == Some(HoldStatus::Confirmed) {
                apply(&mut shard, now, Command::Hold(HoldCommand::Release { key: key(h) }));
            }
        }
        for h in 0..created {
            let ReadResponse::Hold(hold) = shard.read(&ReadRequest::Hold(key(h))) else { panic!() };
            if let Some(hold) = hold {
                prop_assert!(hold.status.is_terminal(), "hold {} is {:?}", h, hold.status);
                let terminal = hold.history.iter().filter(|(s, _)| s.is_terminal()).count();
                prop_assert_eq!(terminal, 1, "hold {} history {:?}", h, hold.history);
            }
        }
        // What is reserved now is exactly the IV reservations: every hold gave its stock back
        // (or consumed it) once.
        for p in 0..2u8 {
            prop_assert_eq!(measure_of(&shard, p, "iv", "softreservphysical"), Qty::from_i64(reserved_iv[p as usize]));
            let on_hand = measure_of(&shard, p, "iv", "onhand");
            prop_assert_eq!(
                measure_of(&shard, p, "iv", "availabletoreserve"),
                on_hand - Qty::from_i64(reserved_iv[p as usize])
            );
            prop_assert!(on_hand <= Qty::from_i64(initial[p as usize]));
        }
    }
}

#[test]
fn stock_below_threshold_fires_once_per_crossing() {
    use ivory_core::hold::EventKind;
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let mut doc: serde_json::Value = serde_json::from_str(&shard.config(ENV).to_json()).expect("config JSON");
    doc["AlertConfiguration"] = serde_json::json!({});
    let on = Command::PutConfig {
        environment: ENV.into(),
        config_json: doc.to_string(),
    };
    assert_eq!(apply(&mut shard, 0, on).outcome, Outcome::Success);
    stock(&mut shard, 0, 3);
    let reserve = |id: &str, q: i64| {
        Command::Reserve(Reserve {
            id: id.into(),
            partition: partition(),
            cell: Cell {
                product: "p0".into(),
                dims: Dims::new(),
            },
            measure: soft(),
            quantity: Qty::from_i64(q),
            availability: Availability::Checked,
        })
    };
    let alerts = |shard: &Shard| -> Vec<(String, Qty)> {
        let ReadResponse::Events { events, .. } = shard.read(&ReadRequest::Events {
            from_seq: 0,
            limit: 100,
        }) else {
            panic!("events")
        };
        events
            .into_iter()
            .filter(|e| e.kind == EventKind::StockBelowThreshold)
            .map(|e| {
                let alert = e.stock.expect("a stock event carries its alert");
                (alert.product, alert.value)
            })
            .collect()
    };
    apply(&mut shard, 1, reserve("r1", 2));
    assert!(
        alerts(&shard).is_empty(),
        "1 left: not below the default threshold of 1"
    );
    apply(&mut shard, 2, reserve("r2", 1));
    assert_eq!(alerts(&shard), [("p0".to_string(), Qty::ZERO)], "sold out");
    // A refused reserve changes nothing and does not alert again.
    assert_eq!(apply(&mut shard, 3, reserve("r3", 1)).outcome, Outcome::Insufficient);
    assert_eq!(alerts(&shard).len(), 1);
    // Restocked (a new event id: `stock` would replay its first one), then sold out again by a
    // hold: a second crossing, a second alert.
    let restock = Command::OnHandChange(OnHandChange {
        id: "restock".into(),
        partition: partition(),
        cell: Cell {
            product: "p0".into(),
            dims: Dims::new(),
        },
        quantities: [(
            "pos".to_string(),
            [("inbound".to_string(), Qty::from_i64(3))].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
    });
    assert_eq!(apply(&mut shard, 3, restock).outcome, Outcome::Success);
    assert_eq!(alerts(&shard).len(), 1);
    apply(&mut shard, 4, create(7, vec![line(0, 0, 3)], 1_000, true));
    assert_eq!(alerts(&shard).len(), 2);
    // Alerts off by configuration: no more events.
    doc["AlertConfiguration"] = serde_json::Value::Null;
    let off = Command::PutConfig {
        environment: ENV.into(),
        config_json: doc.to_string(),
    };
    assert_eq!(apply(&mut shard, 5, off).outcome, Outcome::Success);
    apply(&mut shard, 6, Command::Hold(HoldCommand::Release { key: key(7) }));
    apply(&mut shard, 7, create(8, vec![line(0, 0, 3)], 1_000, true));
    assert_eq!(alerts(&shard).len(), 2);
}
