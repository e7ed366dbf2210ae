//! Hold expiry on an in-process 3-node cluster: the leader's sweeper expires a hold without any
//! traffic, every replica applies the same expiry, and a linearizable read never counts an expired
//! hold.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ivory_core::hold::{HoldCommand, HoldKey, HoldLine, HoldState, HoldStatus, SIBLING_EXPIRY_GRACE_MS};
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

/// The hold as this replica of `shard` has it, without a read-index round.
fn part_of(node: &Node, shard: u32, id: &str) -> Option<HoldState> {
    match node.read_local_stale(shard, &ReadRequest::Hold(key(id))) {
        Ok(ReadResponse::Hold(h)) => h.map(|b| *b),
        _ => None,
    }
}

/// A cross-shard hold (finding 6): the primary part's expiry decides. The other part, whose own
/// expiry is its safety net two minutes later, is expired by the primary shard's leader right
/// after the primary expires, on every replica; after a leader change, the new leader does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primarys_leader_expires_the_other_parts_after_the_primary() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut cluster = TestCluster::start(3, 2, 3).await;
        let (l0, l1) = (cluster.wait_leader(0, T).await, cluster.wait_leader(1, T).await);
        cluster.propose_retrying(l0, 0, vec![add_one("s0")], T).await;
        cluster.propose_retrying(l1, 1, vec![add_one("s1")], T).await;
        let part = |id: &str, expires_at_ms: u64, primary: bool| {
            let mut command = create(id, 1, expires_at_ms);
            if let Command::Hold(HoldCommand::Create { primary: p, .. }) = &mut command {
                *p = primary;
            }
            command
        };
        let siblings = |id: &str| {
            Command::Hold(HoldCommand::SetSiblings {
                key: key(id),
                body_fingerprint: [0; 16],
                shards: vec![1],
            })
        };

        // 1. The primary (shard 0) expires by its leader's sweep; the other part follows at once.
        let expires_at = now_ms() + 600;
        let other_at = expires_at + SIBLING_EXPIRY_GRACE_MS;
        cluster
            .propose_retrying(l0, 0, vec![part("x1", expires_at, true), siblings("x1")], T)
            .await;
        cluster
            .propose_retrying(l1, 1, vec![part("x1", other_at, false)], T)
            .await;
        wait_for(T, "the other part expired on every replica", || {
            (1..=3).all(|id| part_of(cluster.node(id), 1, "x1").is_some_and(|h| h.status == HoldStatus::Expired))
        })
        .await;
        let primary = part_of(cluster.node(l0), 0, "x1").expect("primary part");
        let other = part_of(cluster.node(l1), 1, "x1").expect("other part");
        let (_, primary_expired) = *primary.history.last().expect("history");
        let (_, other_expired) = *other.history.last().expect("history");
        assert_eq!(primary.status, HoldStatus::Expired);
        assert!(
            primary_expired >= expires_at && other_expired >= primary_expired,
            "never before the primary: primary at {primary_expired}, other at {other_expired}"
        );
        assert!(
            other_expired < expires_at + 10_000,
            "passed on, not by the safety net: {} ms after the expiry",
            other_expired - expires_at
        );
        assert_eq!(read_onhand(cluster.node(l1), 1).await.expect("read"), Qty::from_i64(1));

        // 2. Another node leads the primary's shard now (the old leader stopped): the owed list
        // is replicated state, and the new leader passes the expiry on.
        cluster.stop_node(l0).await;
        let l0b = cluster.wait_leader_except(0, l0, T).await;
        let l1b = cluster.wait_leader_except(1, l0, T).await;
        let expires_at = now_ms() + 1_500;
        cluster
            .propose_retrying(l0b, 0, vec![part("x2", expires_at, true), siblings("x2")], T)
            .await;
        cluster
            .propose_retrying(l1b, 1, vec![part("x2", expires_at + SIBLING_EXPIRY_GRACE_MS, false)], T)
            .await;
        wait_for(T, "the other part of x2 expired", || {
            part_of(cluster.node(l1b), 1, "x2").is_some_and(|h| h.status == HoldStatus::Expired)
        })
        .await;
        cluster.restart_node(l0).await;
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
