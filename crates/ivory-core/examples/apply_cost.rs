//! CPU of the state machine alone (no Raft, HTTP or storage) for the shapes of `ivory-bench
//! spread` and `bulk`: 100,000 keys loaded, then reserves of 1 with fresh ids, one per batch
//! (spread) or 512 per batch (bulk). A profiling aid (`perf record` around it); the figures that
//! count are the bench harness's (bench/README.md).
//!
//! `cargo run --release -p ivory-core --example apply_cost [KEYS] [RESERVES]`

use std::time::Instant;

use ivory_core::*;

mod shapes;
use shapes::{load, reserve};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().unwrap_or(0));
    let keys = args.next().filter(|n| *n > 0).unwrap_or(100_000);
    let reserves = args.next().filter(|n| *n > 0).unwrap_or(200_000);
    let mut shard = Shard::new(EVENT_RETENTION_MS_DEFAULT);
    let mut ts_ms = load(&mut shard, keys);
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
