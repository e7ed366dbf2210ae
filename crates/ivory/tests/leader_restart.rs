//! A leader killed with -9 and restarted at once must not answer a linearizable read from
//! before the writes it acknowledged. Found by the nemesis (seed 438610): openraft restores a
//! restarted leader without an election by default, and its read index then came from the
//! committed index it had persisted, which lags what it acknowledged.

use std::path::Path;
use std::time::{Duration, Instant};

use ivory_nemesis::cluster::Cluster;
use ivory_nemesis::history::Key;

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const TEST_TIMEOUT: Duration = Duration::from_secs(170);
const ROUNDS: usize = 6;

#[tokio::test]
async fn a_restarted_leader_never_reads_stale() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (mut cluster, api) = Cluster::start_healthy(Path::new(BIN), 3, 1, &[])
            .await
            .expect("cluster up");
        let key = Key {
            location: "11".into(),
            product: "RESTART".into(),
        };
        let mut acknowledged = 0;
        for round in 0..ROUNDS {
            cluster.wait_healthy(Duration::from_secs(60)).await.expect("healthy");
            let leader = cluster.leaders().await.get(&0).copied().expect("shard 0 has a leader");
            let i = cluster.nodes.iter().position(|n| n.id == leader).expect("a node");
            for w in 0..5 {
                api.seed_stock(
                    &key,
                    1,
                    &format!("r{round}-w{w}"),
                    Instant::now() + Duration::from_secs(20),
                )
                .await
                .expect("write acknowledged");
                acknowledged += 1;
            }
            cluster.kill9(i);
            cluster.restart(i).expect("restart");
            let deadline = Instant::now() + Duration::from_secs(20);
            let onhand = loop {
                match api.read_key(i, &key).await {
                    Ok((onhand, _)) => break onhand,
                    Err(e) => {
                        assert!(Instant::now() < deadline, "no read from the restarted node: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            };
            assert_eq!(
                onhand, acknowledged,
                "round {round}: the restarted leader (node {leader}) read {onhand}, {acknowledged} were acknowledged"
            );
        }
    })
    .await
    .expect("the test finishes in time");
}
