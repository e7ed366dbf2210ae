//! The short nemesis suite (tests/nemesis): a few seeded runs of a 3-node cluster under kill -9,
//! SIGSTOP, partitions, slow network and slow disk, membership changes, failed fsyncs (the node
//! exits 74 and is restarted) and clock jumps, with snapshots every 100 commands and holds left
//! to expire, checked for oversell, lost acknowledgements, exactly once, per-key
//! linearizability, liveness and crashes. Replay a failing seed with
//! `cargo run --release -p ivory-nemesis -- --seed N`.

use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
/// Seeds chosen so that every nemesis kind runs among them (1: slow-net, partition, pause,
/// membership; 8: clock-jump, slow-disk, fail-sync; 13: kill, pause, membership, slow-net);
/// each run draws every fault from its seed.
const SEEDS: [u64; 3] = [1, 8, 13];
const TRAFFIC: Duration = Duration::from_secs(20);
const SUITE_TIMEOUT: Duration = Duration::from_secs(280);

#[test]
fn seeded_nemesis_runs_find_no_violation() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        tokio::time::timeout(
            SUITE_TIMEOUT,
            ivory_nemesis::short_suite(Path::new(BIN), &SEEDS, TRAFFIC),
        )
        .await
    });
    match result {
        Err(_) => panic!("the nemesis suite did not finish within {SUITE_TIMEOUT:?}"),
        Ok(Err(failures)) => panic!("nemesis violations:\n{failures}"),
        Ok(Ok(summary)) => {
            assert_eq!(summary.runs, SEEDS.len());
            assert!(summary.faults.values().sum::<u64>() > 0, "no fault was injected");
        }
    }
}
