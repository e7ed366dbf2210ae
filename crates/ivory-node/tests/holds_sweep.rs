//! Hold expiry on an in-process 3-node cluster: the leader's sweeper expires a hold without any
//! traffic, every replica applies the same expiry, and a linearizable read never counts an expired
//! hold.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ivory_core::hold::{HoldCommand, HoldKey, HoldLine, HoldState, HoldStatus};
use ivory_core::{Cell, Command, Dims, MeasureRef, Qty, ReadRequest, ReadResponse};
use ivory_node::{Node, SWEEP_INTERVAL};

const T: Duration = Duration::from_secs(20);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn key(id: &str) -> HoldKey {
    HoldKey {
        environment: "env".into(),
        organization: "org".into(),
        id: id.into(),
    }
}

fn create(id: &str, qty: i64, expires_at_ms: u64) -> Command {
    Command::Hold(HoldCommand::Create {
        key: key(id),
        measure: MeasureRef::new("iv", "softreservphysical"),
        lines: vec![HoldLine {
            line_id: "1".into(),
            partition: partition(),
            cell: Cell {
                product: "p".into(),
                dims: Dims::new(),
            },
            quantity: Qty::from_i64(qty),
            allow_oversell: false,
        }],
        expires_at_ms,
        all_or_nothing: true,
        tentative: false,
        body_fingerprint: [0; 16],
        primary: true,
    })
}

/// The hold as this replica has it, without a read-index round (so without a sweep).
fn local_hold(node: &Node, id: &str) -> Option<HoldState> {
    match node.read_local_stale(0, &ReadRequest::Hold(key(id))) {
        Ok(ReadResponse::Hold(h)) => h.map(|b| *b),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_sweeps_expired_holds_and_reads_never_count_them() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let cluster = TestCluster::start(3, 1, 3).await;
        let leader = cluster.wait_leader(0, T).await;
        let ids: Vec<String> = (0..5).map(|i| format!("stock-{i}")).collect();
        let stock: Vec<Command> = ids.iter().map(|id| add_one(id)).collect();
        cluster.propose_retrying(leader, 0, stock, T).await;
        // An empty batch is accepted: it is the sweep.
        assert_eq!(
            cluster.node(leader).propose(0, Vec::new()).await.expect("empty batch"),
            Vec::new()
        );

        // Idle: no traffic after the create; the sweeper alone expires it on every replica.
        let expires_at = now_ms() + 400;
        cluster
            .propose_retrying(leader, 0, vec![create("h1", 5, expires_at)], T)
            .await;
        assert_eq!(
            local_hold(cluster.node(leader), "h1").map(|h| h.status),
            Some(HoldStatus::Active)
        );
        wait_for(T, "every replica expired h1", || {
            (1..=3).all(|id| local_hold(cluster.node(id), "h1").is_some_and(|h| h.status == HoldStatus::Expired))
        })
        .await;
        let h = local_hold(cluster.node(leader), "h1").expect("h1");
        let (_, expired_at) = *h.history.last().expect("history");
        assert!(
            expired_at >= expires_at && expired_at <= expires_at + SWEEP_INTERVAL.as_millis() as u64 + 750,
            "swept {} ms after the expiry",
            expired_at.saturating_sub(expires_at)
        );

        // A linearizable read right after an expiry sees the stock back, even before a sweep tick.
        let expires_at = now_ms() + 300;
        cluster
            .propose_retrying(leader, 0, vec![create("h2", 5, expires_at)], T)
            .await;
        assert_eq!(
            read_onhand(cluster.node(leader), 0).await.expect("read"),
            Qty::from_i64(5)
        );
        let wait = Duration::from_millis(expires_at.saturating_sub(now_ms()) + 1);
        tokio::time::sleep(wait).await;
        let started = Instant::now();
        let response = cluster
            .node(leader)
            .read(0, ReadRequest::Hold(key("h2")))
            .await
            .expect("read");
        let ReadResponse::Hold(Some(h2)) = response else {
            panic!("h2 is known: {response:?}");
        };
        assert_eq!(h2.status, HoldStatus::Expired, "read at {:?}", started.elapsed());
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
