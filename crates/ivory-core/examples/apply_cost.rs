//! CPU of the state machine alone (no Raft, HTTP or storage) for the shapes of `ivory-bench
//! spread` and `bulk`: 100,000 keys loaded, then reserves of 1 with fresh ids, one per batch
//! (spread) or 512 per batch (bulk). A profiling aid (`perf record` around it); the figures that
//! count are the bench harness's (bench/README.md).
//!
//! `cargo run --release -p ivory-core --example apply_cost [KEYS] [RESERVES]`

use std::time::Instant;

use ivory_core::*;

fn key(i: usize) -> (PartitionKey, Cell) {
    let pair = i % 50;
    let partition = PartitionKey::new("bench", "usmf", format!("{}", pair / 10 + 1), format!("{pair:03}"));
    let cell = Cell {
        product: format!("b1796553428866-p{i}"),
        dims: Dims::new(),
    };
    (partition, cell)
}

fn reserve(r: usize, keys: usize) -> Command {
    let (partition, cell) = key(r.wrapping_mul(7919) % keys);
    Command::Reserve(Reserve {
        id: format!("b1796553428866-c{}-{r}", r % 64),
        partition,
        cell,
        measure: MeasureRef::new("iv", "softreservphysical"),
        quantity: Qty::ONE,
        availability: Availability::Checked,
    })
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().unwrap_or(0));
    let keys = args.next().filter(|n| *n > 0).unwrap_or(100_000);
    let reserves = args.next().filter(|n| *n > 0).unwrap_or(200_000);
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let mut ts_ms = 1;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(512) {
        let commands = chunk
            .iter()
            .map(|&i| {
                let (partition, cell) = key(i);
                let quantities = [(
                    "pos".to_string(),
                    [("inbound".to_string(), Qty::from_i64(1_000_000))]
                        .into_iter()
                        .collect(),
                )]
                .into_iter()
                .collect();
                Command::OnHandChange(OnHandChange {
                    id: format!("load-{i}"),
                    partition,
                    cell,
                    quantities,
                })
            })
            .collect();
        ts_ms += 1;
        shard.apply(&Batch { ts_ms, commands });
    }
    for (label, per_batch) in [("spread (1 per batch)", 1), ("bulk (512 per batch)", 512)] {
        let batches: Vec<Batch> = (0..reserves)
            .collect::<Vec<_>>()
            .chunks(per_batch)
            .map(|chunk| {
                ts_ms += 1;
                let offset = if per_batch == 1 { 0 } else { reserves };
                Batch {
                    ts_ms,
                    commands: chunk.iter().map(|&r| reserve(r + offset, keys)).collect(),
                }
            })
            .collect();
        let started = Instant::now();
        let mut applied = 0;
        for batch in &batches {
            applied += shard.apply(batch).iter().filter(|r| r.outcome.applied()).count();
        }
        let elapsed = started.elapsed();
        println!(
            "{label}: {reserves} reserves ({applied} applied) in {:.0} ms, {:.2} us each",
            elapsed.as_secs_f64() * 1e3,
            elapsed.as_secs_f64() * 1e6 / reserves as f64
        );
    }
}
