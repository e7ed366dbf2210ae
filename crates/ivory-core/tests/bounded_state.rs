//! Bounded replicated state (issue 16): finished holds leave the state after the retention
//! period, a hold's history is capped, and event ids are bounded by count as well as by time.

use ivory_core::hold::{HOLD_HISTORY_MAX, HoldCommand, HoldKey, HoldLine, HoldStatus};
use ivory_core::*;

const ENV: &str = "env";
const RETENTION_MS: u64 = 60_000;

fn partition() -> PartitionKey {
    PartitionKey::new(ENV, "org", "1", "11")
}

fn key(id: u64) -> HoldKey {
    HoldKey {
        environment: ENV.into(),
        organization: "org".into(),
        id: format!("h{id}"),
    }
}

fn onhand(id: String, quantity: i64) -> Command {
    Command::OnHandChange(OnHandChange {
        id,
        partition: partition(),
        cell: Cell {
            product: "p".into(),
            dims: Dims::new(),
        },
        quantities: [(
            "pos".to_string(),
            [("inbound".to_string(), Qty::from_i64(quantity))].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
    })
}

fn create(id: u64, expires_at_ms: u64) -> Command {
    Command::Hold(HoldCommand::Create {
        key: key(id),
        measure: MeasureRef::new("iv", "softreservphysical"),
        lines: vec![HoldLine {
            line_id: "l".into(),
            partition: partition(),
            cell: Cell {
                product: "p".into(),
                dims: Dims::new(),
            },
            quantity: Qty::from_i64(1),
            allow_oversell: false,
        }],
        expires_at_ms,
        all_or_nothing: true,
        tentative: false,
        body_fingerprint: [7; 16],
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

fn hold(shard: &Shard, id: u64) -> Option<Box<hold::HoldState>> {
    match shard.read(&ReadRequest::Hold(key(id))) {
        ReadResponse::Hold(h) => h,
        other => panic!("{other:?}"),
    }
}

#[test]
fn state_stays_flat_over_a_long_stream_of_finished_holds_and_fresh_ids() {
    let mut shard = Shard::new(RETENTION_MS).with_events_max(5_000);
    assert_eq!(
        apply(&mut shard, 1, onhand("stock".into(), 1_000_000)).outcome,
        Outcome::Success
    );
    let mut sizes = Vec::new();
    // 40 000 holds and 40 000 fresh ids over 20 retention periods, one of each every 30 ms.
    for n in 0..40_000u64 {
        let now = 10 + n * 30;
        assert_eq!(
            apply(&mut shard, now, create(n, now + 10_000)).outcome,
            Outcome::Success
        );
        let end = match n % 3 {
            0 => HoldCommand::Release { key: key(n) },
            1 => HoldCommand::Consume {
                key: key(n),
                line_ids: vec![],
            },
            // Left to expire.
            _ => HoldCommand::Extend {
                key: key(n),
                expires_at_ms: now + 5_000,
            },
        };
        apply(&mut shard, now, Command::Hold(end));
        apply(&mut shard, now, onhand(format!("id-{n}"), 1));
        if n % 5_000 == 4_999 {
            sizes.push((shard.hold_count(), shard.remembered_events(), shard.snapshot().len()));
        }
    }
    // Within a retention period (60 s / 30 ms = 2 000 batches) of holds, and the id cap.
    for (holds, ids, _) in &sizes {
        assert!(*holds <= 2_200, "holds kept: {sizes:?}");
        assert!(*ids <= 5_001, "ids kept: {sizes:?}");
    }
    let (first, last) = (sizes[1].2, sizes[sizes.len() - 1].2);
    assert!(last <= first + first / 10, "the snapshot grows: {sizes:?}");
    // A finished hold is readable within the retention period, gone after it.
    assert_eq!(hold(&shard, 39_998).map(|h| h.status), Some(HoldStatus::Active));
    assert!(hold(&shard, 39_999).is_some_and(|h| h.status.is_terminal()));
    assert!(hold(&shard, 10).is_none(), "a hold finished long ago is forgotten");
    // Deterministic: a restored replica is the same state and keeps pruning alike.
    let restored = Shard::restore(&shard.snapshot()).expect("restores");
    assert_eq!(restored.state_hash(), shard.state_hash());
}

#[test]
fn a_hold_extended_many_times_keeps_its_creation_and_latest_history() {
    let mut shard = Shard::new(RETENTION_MS);
    apply(&mut shard, 1, onhand("stock".into(), 10));
    apply(&mut shard, 2, create(1, 1_000));
    for n in 0..100 {
        apply(
            &mut shard,
            3 + n,
            Command::Hold(HoldCommand::Extend {
                key: key(1),
                expires_at_ms: 10_000 + n,
            }),
        );
    }
    let h = hold(&shard, 1).expect("kept");
    assert_eq!(h.history.len(), HOLD_HISTORY_MAX);
    assert_eq!(h.history.last(), Some(&(HoldStatus::Active, 102)), "latest kept");
    assert_eq!(h.history[0], (HoldStatus::Active, 2), "creation kept");
}

#[test]
fn past_the_id_cap_the_oldest_id_is_forgotten_and_a_retry_applies_again() {
    let mut shard = Shard::new(RETENTION_MS).with_events_max(100);
    for n in 0..200 {
        apply(&mut shard, 1, onhand(format!("id-{n}"), 1));
    }
    // Pruned before each entry applies: the cap plus at most one entry's ids.
    assert!(shard.remembered_events() <= 101, "{}", shard.remembered_events());
    // The newest id still replays; the oldest counts again (documented in DESIGN.md).
    apply(&mut shard, 1, onhand("id-199".into(), 1));
    assert_eq!(inbound(&shard), Qty::from_i64(200), "a remembered id replays");
    apply(&mut shard, 1, onhand("id-0".into(), 1));
    assert_eq!(inbound(&shard), Qty::from_i64(201), "a forgotten id applies as new");
}

fn inbound(shard: &Shard) -> Qty {
    let ReadResponse::Records(records) = shard.read(&ReadRequest::Query(Query {
        environment: ENV.into(),
        organization: "org".into(),
        locations: None,
        products: vec!["p".into()],
        filters: std::collections::BTreeMap::new(),
        exact: None,
        group_by: vec![],
        return_negative: true,
        atp: None,
    })) else {
        panic!("records")
    };
    records.iter().map(|r| quantity(&r.quantities, "pos", "inbound")).sum()
}

#[test]
fn clean_up_removes_the_holds_of_deleted_partitions_and_their_expiry_changes_nothing() {
    let mut shard = Shard::new(RETENTION_MS);
    apply(&mut shard, 1, onhand("stock".into(), 10));
    assert_eq!(apply(&mut shard, 2, create(1, 1_000)).outcome, Outcome::Success);
    let r = apply(
        &mut shard,
        3,
        Command::CleanUp {
            environment: ENV.into(),
            partitions: Some(vec![partition()]),
        },
    );
    assert_eq!(r.outcome, Outcome::Success);
    assert!(hold(&shard, 1).is_none(), "the hold went with its partition");
    assert_eq!(shard.hold_count(), 0);
    // Past its expiry: nothing is released into the (now empty) partition.
    apply(&mut shard, 2_000, onhand("after".into(), 1));
    assert_eq!(inbound(&shard), Qty::from_i64(1));
    let soft = |shard: &Shard| {
        let ReadResponse::Records(records) = shard.read(&ReadRequest::Query(Query {
            environment: ENV.into(),
            organization: "org".into(),
            locations: None,
            products: vec!["p".into()],
            filters: std::collections::BTreeMap::new(),
            exact: None,
            group_by: vec![],
            return_negative: true,
            atp: None,
        })) else {
            panic!("records")
        };
        records
            .iter()
            .map(|r| quantity(&r.quantities, "iv", "softreservphysical"))
            .sum::<Qty>()
    };
    assert_eq!(soft(&shard), Qty::ZERO, "no negative soft reservation");
}

fn onhand_at(location: &str, product: &str, id: String) -> Command {
    Command::OnHandChange(OnHandChange {
        id,
        partition: PartitionKey::new(ENV, "org", "1", location),
        cell: Cell {
            product: product.into(),
            dims: Dims::new(),
        },
        quantities: [(
            "pos".to_string(),
            [("inbound".to_string(), Qty::from_i64(1))].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
    })
}

fn inbound_of(shard: &Shard, product: &str) -> Qty {
    let ReadResponse::Records(records) = shard.read(&ReadRequest::Query(Query {
        environment: ENV.into(),
        organization: "org".into(),
        locations: None,
        products: vec![product.into()],
        filters: std::collections::BTreeMap::new(),
        exact: None,
        group_by: vec![],
        return_negative: true,
        atp: None,
    })) else {
        panic!("records")
    };
    records.iter().map(|r| quantity(&r.quantities, "pos", "inbound")).sum()
}

#[test]
fn a_busy_partition_forgets_its_own_oldest_ids_and_never_those_of_a_quiet_one() {
    const PER_PARTITION: usize = 1_000;
    let mut shard = Shard::new(RETENTION_MS)
        .with_events_max(50_000)
        .with_partition_events_max(PER_PARTITION);
    for n in 0..10 {
        apply(&mut shard, 1, onhand_at("12", "quiet", format!("q-{n}")));
    }
    // 30 000 fresh ids in one partition, one entry a millisecond: within the retention period,
    // under the shard's cap, so only the partition's bound forgets anything.
    let mut sizes = Vec::new();
    for n in 0..30_000u64 {
        apply(&mut shard, 2 + n, onhand_at("11", "busy", format!("b-{n}")));
        if n % 5_000 == 4_999 {
            sizes.push((shard.remembered_events(), shard.snapshot().len()));
        }
    }
    for (ids, _) in &sizes {
        assert!(*ids <= PER_PARTITION + 10, "ids kept: {sizes:?}");
    }
    let (first, last) = (sizes[0].1, sizes[sizes.len() - 1].1);
    assert!(last <= first + first / 20, "the snapshot grows: {sizes:?}");
    let now = 40_000;
    // The quiet partition's ids are all remembered: a retry changes nothing.
    apply(&mut shard, now, onhand_at("12", "quiet", "q-0".into()));
    assert_eq!(inbound_of(&shard, "quiet"), Qty::from_i64(10), "a quiet id replays");
    // In the busy partition the newest replay; the oldest apply again (documented in DESIGN.md).
    apply(&mut shard, now, onhand_at("11", "busy", "b-29999".into()));
    assert_eq!(inbound_of(&shard, "busy"), Qty::from_i64(30_000), "a recent id replays");
    apply(&mut shard, now, onhand_at("11", "busy", "b-0".into()));
    assert_eq!(
        inbound_of(&shard, "busy"),
        Qty::from_i64(30_001),
        "a forgotten id applies as new"
    );

    // A replica restored from a snapshot rebuilds the per-partition order and keeps forgetting
    // the same ids as the one that applied the log.
    let mut restored = Shard::restore(&shard.snapshot())
        .expect("restores")
        .with_events_max(50_000)
        .with_partition_events_max(PER_PARTITION);
    assert_eq!(restored.state_hash(), shard.state_hash());
    for n in 30_000..31_500u64 {
        let ts = now + n;
        apply(&mut shard, ts, onhand_at("11", "busy", format!("b-{n}")));
        apply(&mut restored, ts, onhand_at("11", "busy", format!("b-{n}")));
    }
    assert_eq!(restored.state_hash(), shard.state_hash());
    assert_eq!(restored.remembered_events(), shard.remembered_events());
    assert!(shard.remembered_events() <= PER_PARTITION + 10);
}
