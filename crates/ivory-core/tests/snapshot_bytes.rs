//! Snapshot bytes are a format: replicas compare state hashes, and snapshots written by older
//! builds must load. A stream that exercises every path of the remembered event ids (successes
//! with and without reservation ids, refusals, conflicts, replays, retention by time, count and
//! partition bounds, clean-ups) must give the state hashes that the build before the compact
//! in-memory form of remembered ids (`56691c5`) gave.

use ivory_core::*;

fn partition(env: usize, pair: usize) -> PartitionKey {
    PartitionKey::new(
        format!("env{env}"),
        "usmf",
        format!("{}", pair / 3 + 1),
        format!("{pair:03}"),
    )
}

fn cell(product: usize) -> Cell {
    Cell {
        product: format!("p{product}"),
        dims: Dims::new(),
    }
}

fn onhand(id: String, p: PartitionKey, product: usize, quantity: i64) -> Command {
    Command::OnHandChange(OnHandChange {
        id,
        partition: p,
        cell: cell(product),
        quantities: [(
            "pos".to_string(),
            [("inbound".to_string(), Qty::from_i64(quantity))].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
    })
}

fn reserve(id: String, p: PartitionKey, product: usize, quantity: i64) -> Command {
    Command::Reserve(Reserve {
        id,
        partition: p,
        cell: cell(product),
        measure: MeasureRef::new("iv", "softreservphysical"),
        quantity: Qty::from_i64(quantity),
        availability: Availability::Checked,
    })
}

/// The stream, batch by batch, from a small deterministic generator.
fn batches() -> Vec<Batch> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n) as usize
    };
    let mut out = Vec::new();
    let mut ts_ms = 1_000;
    for b in 0..400 {
        ts_ms += 1 + next(40) as u64;
        let mut commands = Vec::new();
        for c in 0..1 + next(6) {
            let p = partition(next(2), next(9));
            let product = next(12);
            // Ids repeat now and then: replays (same body) and conflicts (another body).
            let id = if next(5) == 0 {
                format!("e{}", next(50))
            } else {
                format!("e{b}-{c}")
            };
            commands.push(match next(10) {
                0..=2 => onhand(id, p, product, next(5) as i64),
                3..=7 => reserve(id, p, product, 1 + next(3) as i64),
                // Invalid (not remembered): a reserve of nothing.
                8 => reserve(id, p, product, 0),
                _ => reserve(id, p, product, 100),
            });
        }
        if b % 97 == 50 {
            commands.push(Command::CleanUp {
                environment: "env1".into(),
                partitions: Some(vec![partition(1, next(9)), partition(1, next(9))]),
            });
        }
        if b == 300 {
            commands.push(Command::CleanUp {
                environment: "env0".into(),
                partitions: None,
            });
        }
        out.push(Batch { ts_ms, commands });
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn snapshot_bytes_are_those_of_earlier_builds() {
    // Retention of 3 s over about 8 s of timestamps; small count and partition bounds.
    let mut shard = Shard::new(3_000).with_events_max(200).with_partition_events_max(15);
    let mut hashes = Vec::new();
    let mut results = Vec::new();
    let mut remembered = Vec::new();
    // A replica restored from a snapshot at every checkpoint, applying the same batches after.
    let mut replica: Option<Shard> = None;
    for (i, batch) in batches().iter().enumerate() {
        results.extend(shard.apply(batch));
        if let Some(replica) = replica.as_mut() {
            replica.apply(batch);
        }
        if i % 50 == 49 {
            if let Some(replica) = &replica {
                assert_eq!(replica.state_hash(), shard.state_hash(), "batch {i}: the replica");
            }
            let bytes = shard.snapshot();
            replica = Some(
                Shard::restore(&bytes)
                    .expect("restore")
                    .with_events_max(200)
                    .with_partition_events_max(15),
            );
            hashes.push(hex(&shard.state_hash()));
            remembered.push(shard.remembered_events());
            assert_eq!(replica.as_ref().map(Shard::snapshot), Some(bytes), "batch {i}");
        }
    }
    let outcomes: Vec<String> = results.iter().map(|r| format!("{:?}", r.outcome)).collect();
    for kind in ["Success", "Insufficient", "Conflict", "Invalid"] {
        assert!(
            outcomes.iter().any(|o| o == kind),
            "the stream has a {kind}: {outcomes:?}"
        );
    }
    let results_hash = hex(&sha2_of(format!("{results:?}").as_bytes()));
    println!("hashes: {hashes:?}\nresults: {results_hash}\nremembered: {remembered:?}");
    // The count bound (200, plus what one batch adds) was reached.
    assert!(
        remembered.iter().any(|n| *n > 195) && remembered.iter().all(|n| *n <= 210),
        "{remembered:?}"
    );
    assert_eq!(hashes, GOLDEN_HASHES);
    assert_eq!(results_hash, GOLDEN_RESULTS);
}

fn sha2_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Printed by this test at `56691c5`.
const GOLDEN_HASHES: [&str; 8] = [
    "65101874a9ec8229291a5a95298fc7fddb767b3377204e3948dc222a2cb81cf3",
    "fe30aaeec592ed5200d9848eb109c86a90c708b94789994516d9693d63707815",
    "4c9bdd2aaa699a7adf62614165af61a91d828d41db4ed61f8d24fcf278bec028",
    "9dffb92cd8b254a3b9865190a760a97ac8f1d79b081b3efbd5ced37e003cd6f4",
    "424a317e206eeb6bdb18989016f89cac08fccd2a8f8b2cf943ade085c1ab238f",
    "62995e0dd1c2868d94ef267284ad4ac1df2b2ea991aaed32c4f12b5081b72fd5",
    "9c0a71bcd934d0f833019f1ca2ef1ce47f0f59221a6a2e336bb7ace1324aa59d",
    "f077d4220629c12d1b00a72f96e97d25c9fc7a36f3ca2940b397941a8412431c",
];
const GOLDEN_RESULTS: &str = "854c5113e6f0a57c07c5e33a08d76d0438b17b7742833627f833c6732148b71f";
