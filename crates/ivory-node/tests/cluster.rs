//! In-process clusters: 3+ real nodes, real sled in temp dirs, real tonic on loopback.

mod common;

use std::time::Duration;

use common::*;
use ivory_core::Qty;

const T: Duration = Duration::from_secs(20);

/// Writes through every node (followers forward), all replicas end with the same state hash,
/// and a linearizable read through a follower sees every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_several_groups_replicate_to_equal_state_hashes() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let cluster = TestCluster::start(3, 4, 3).await;
        for shard in 0..4 {
            cluster.wait_leader(shard, T).await;
        }
        for i in 0..12u32 {
            let shard = i % 4;
            let via = 1 + u64::from(i % 3);
            cluster
                .propose_retrying(via, shard, vec![add_one(&format!("e{i}"))], T)
                .await;
        }
        for shard in 0..4 {
            cluster.wait_converged(shard, T).await;
            cluster.assert_replicas_equal(shard, 3);
            let leader = cluster.wait_leader(shard, T).await;
            let follower = (1..=3).find(|id| *id != leader).expect("a follower");
            let onhand = read_onhand(cluster.node(follower), shard)
                .await
                .expect("read via follower");
            assert_eq!(onhand, Qty::from_i64(3));
        }
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// The leader's node goes away: another node takes over, acknowledged writes survive, writes continue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_a_new_one_and_loses_nothing() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut cluster = TestCluster::start(3, 2, 3).await;
        let old = cluster.wait_leader(0, T).await;
        for i in 0..20 {
            cluster
                .propose_retrying(old, 0, vec![add_one(&format!("a{i}"))], T)
                .await;
        }
        cluster.stop_node(old).await;
        let survivor = (1..=3).find(|id| *id != old).expect("survivor");
        let new = cluster.wait_leader(0, T).await;
        assert_ne!(new, old);
        for i in 0..20 {
            cluster
                .propose_retrying(survivor, 0, vec![add_one(&format!("b{i}"))], T)
                .await;
        }
        let onhand = read_onhand(cluster.node(survivor), 0).await.expect("read");
        assert_eq!(onhand, Qty::from_i64(40), "no acknowledged write lost");
        cluster.wait_converged(0, T).await;
        cluster.assert_replicas_equal(0, 2);
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// A node restarted from its sled directory recovers its state and catches up on what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_recovers_from_sled_and_catches_up() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut cluster = TestCluster::start(3, 2, 3).await;
        let leader = cluster.wait_leader(0, T).await;
        for i in 0..10 {
            cluster
                .propose_retrying(leader, 0, vec![add_one(&format!("a{i}"))], T)
                .await;
        }
        cluster.wait_converged(0, T).await;
        let victim = (1..=3).rev().find(|id| *id != leader).expect("a follower");
        // The victim restarts from a stored snapshot plus the log after it.
        let raft = cluster.node(victim).raft_handle(0).expect("raft");
        raft.trigger().snapshot().await.expect("snapshot");
        raft.wait(Some(T))
            .metrics(|m| m.snapshot.is_some(), "victim snapshot")
            .await
            .expect("victim snapshot");
        drop(raft);
        for i in 0..3 {
            cluster
                .propose_retrying(leader, 0, vec![add_one(&format!("s{i}"))], T)
                .await;
        }
        cluster.wait_converged(0, T).await;
        cluster.stop_node(victim).await;
        for i in 0..10 {
            cluster
                .propose_retrying(leader, 0, vec![add_one(&format!("b{i}"))], T)
                .await;
        }
        cluster.restart_node(victim).await;
        let index = cluster.wait_converged(0, T).await;
        assert_eq!(cluster.status(victim, 0).and_then(|s| s.last_applied), Some(index));
        cluster.assert_replicas_equal(0, 3);
        let onhand = read_onhand(cluster.node(victim), 0)
            .await
            .expect("read via restarted node");
        assert_eq!(onhand, Qty::from_i64(23));
        // The other shard came back too.
        cluster.wait_converged(1, T).await;
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// After a snapshot and a log purge, a new replica can only catch up by snapshot; then the
/// leader itself leaves (leadership moves first) and a removed replica stops receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_replica_catches_up_by_snapshot_and_removed_replica_stops() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut cluster = TestCluster::start(3, 1, 3).await;
        let leader = cluster.wait_leader(0, T).await;
        for i in 0..30 {
            cluster
                .propose_retrying(leader, 0, vec![add_one(&format!("a{i}"))], T)
                .await;
        }
        let index = cluster.wait_converged(0, T).await;
        let raft = cluster.node(leader).raft_handle(0).expect("raft");
        raft.trigger().snapshot().await.expect("snapshot");
        raft.wait(Some(T))
            .metrics(
                |m| m.snapshot.as_ref().is_some_and(|s| s.index() >= index),
                "snapshot built",
            )
            .await
            .expect("snapshot built");
        raft.trigger().purge_log(index).await.expect("purge");
        raft.wait(Some(T))
            .metrics(|m| m.purged.as_ref().is_some_and(|p| p.index() >= index), "log purged")
            .await
            .expect("log purged");

        let new = cluster.add_node().await;
        let addr = cluster.peers[&new].clone();
        cluster
            .node(leader)
            .add_replica(0, new, addr)
            .await
            .expect("add replica");
        let new_raft = cluster.node(new).raft_handle(0).expect("new replica runs");
        // The log before `index` is gone on the leader: only a snapshot explains a caught-up replica.
        new_raft
            .wait(Some(T))
            .metrics(
                |m| m.snapshot.as_ref().is_some_and(|s| s.index() >= index),
                "caught up by snapshot",
            )
            .await
            .expect("caught up by snapshot");
        cluster.wait_converged(0, T).await;
        assert_eq!(
            read_onhand(cluster.node(new), 0).await.expect("read"),
            Qty::from_i64(30)
        );
        let status = cluster.status(leader, 0).expect("status");
        assert_eq!(status.voters.len(), 4);

        // The leader leaves: leadership moves away first, then the new leader removes it.
        cluster
            .node(new)
            .remove_replica(0, leader)
            .await
            .expect("remove leader");
        let next = cluster.wait_leader(0, T).await;
        assert_ne!(next, leader);
        wait_for(T, "old leader dropped its replica", || {
            cluster.status(leader, 0).is_none()
        })
        .await;
        let status = cluster.status(next, 0).expect("status");
        assert!(!status.voters.contains(&leader), "{status:?}");
        for i in 0..5 {
            cluster
                .propose_retrying(next, 0, vec![add_one(&format!("b{i}"))], T)
                .await;
        }
        cluster.wait_converged(0, T).await;
        assert!(
            cluster.node(leader).apply_digest(0).is_none(),
            "removed replica is gone"
        );
        cluster.assert_replicas_equal(0, 3);
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// 1,000 concurrent proposals to one group: every one acknowledged, applied exactly once, and
/// every replica ends in the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_proposals_apply_exactly_once_in_one_order() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let cluster = TestCluster::start(3, 1, 3).await;
        let leader = cluster.wait_leader(0, T).await;
        let before = cluster.status(leader, 0).and_then(|s| s.last_applied).unwrap_or(0);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000u32 {
            // Mostly through the leader, some forwarded by followers.
            let via = if i % 10 == 0 { 1 + u64::from(i % 3) } else { leader };
            let node = cluster.node(via).clone();
            tasks.spawn(async move { node.propose(0, vec![add_one(&format!("c{i}"))]).await });
        }
        let mut acked = 0;
        while let Some(joined) = tasks.join_next().await {
            let results = joined.expect("task").expect("proposal acknowledged");
            assert!(results[0].outcome.applied(), "{results:?}");
            acked += 1;
        }
        assert_eq!(acked, 1000);
        let index = cluster.wait_converged(0, T).await;
        assert!(index > before, "entries were appended");
        cluster.assert_replicas_equal(0, 3);
        for id in 1..=3 {
            let local = cluster
                .node(id)
                .read_local_stale(0, &onhand_query())
                .expect("local read");
            assert_eq!(onhand_of(&local), Qty::from_i64(1000), "node {id}");
        }
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// Many concurrent proposals for two shards through a node that leads neither: each caller gets
/// the results of its own commands, in order, however the forwarding node and the leaders
/// batched them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_proposals_for_several_shards_each_get_their_own_results() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let cluster = TestCluster::start(3, 2, 3).await;
        let leaders = [cluster.wait_leader(0, T).await, cluster.wait_leader(1, T).await];
        let via = (1..=3)
            .find(|id| !leaders.contains(id))
            .expect("a node leading neither shard");
        let calls_before = cluster.node(via).forward_calls();
        let stream_calls_before = cluster.node(via).forward_stream_calls();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..300u32 {
            let shard = i % 2;
            // 1 to 3 commands; every fifth proposal ends by reusing its first event id with
            // another quantity, which must come back as a conflict for that command only.
            let mut commands: Vec<_> = (0..=(i % 3)).map(|k| add(&format!("f{i}-{k}"), 1)).collect();
            if i % 5 == 0 {
                commands.push(add(&format!("f{i}-0"), 2));
            }
            let node = cluster.node(via).clone();
            tasks.spawn(async move { (i, commands.len(), node.propose(shard, commands).await) });
        }
        let mut units = [0i64; 2];
        while let Some(joined) = tasks.join_next().await {
            let (i, sent, results) = joined.expect("task");
            let results = results.expect("proposal acknowledged");
            assert_eq!(results.len(), sent, "proposal {i}: one result per command");
            let conflicted = i % 5 == 0;
            for (k, result) in results.iter().enumerate() {
                let last_reused = conflicted && k == sent - 1;
                if last_reused {
                    assert_eq!(
                        result.outcome,
                        ivory_core::Outcome::Conflict,
                        "proposal {i}: {results:?}"
                    );
                } else {
                    assert!(result.outcome.applied(), "proposal {i} command {k}: {results:?}");
                    units[(i % 2) as usize] += 1;
                }
            }
        }
        // Forwards that queued for one shard's leader shared calls.
        let calls = cluster.node(via).forward_calls() - calls_before;
        assert!((2..300).contains(&calls), "300 forwarded proposals took {calls} calls");
        // ... on the stream of calls to the leader's node, not as Propose calls (the metadata
        // group's forwards, if any, go there too).
        let stream_calls = cluster.node(via).forward_stream_calls() - stream_calls_before;
        assert!(
            stream_calls >= calls,
            "{calls} forwards, {stream_calls} on the Forward stream"
        );
        for shard in 0..2u32 {
            cluster.wait_converged(shard, T).await;
            cluster.assert_replicas_equal(shard, 3);
            let onhand = read_onhand(cluster.node(via), shard).await.expect("read");
            assert_eq!(onhand, Qty::from_i64(units[shard as usize]), "shard {shard}");
        }
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// A node replicates every group it leads to a peer on one `Replicate` stream: 8 shards and the
/// metadata group, each replicated to two followers, open at least 16 sessions, and those share
/// at most one stream per pair of nodes (no node restarts here, so no stream is reopened).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_replicates_to_a_peer_on_one_shared_stream() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let cluster = TestCluster::start(3, 8, 3).await;
        for shard in 0..8u32 {
            let leader = cluster.wait_leader(shard, T).await;
            cluster
                .propose_retrying(leader, shard, vec![add(&format!("s{shard}"), i64::from(shard) + 1)], T)
                .await;
        }
        for shard in 0..8u32 {
            cluster.wait_converged(shard, T).await;
            cluster.assert_replicas_equal(shard, 3);
            let onhand = read_onhand(cluster.node(1), shard).await.expect("read");
            assert_eq!(onhand, Qty::from_i64(i64::from(shard) + 1), "shard {shard}");
        }
        let (mut streams, mut sessions) = (0, 0);
        for id in 1..=3 {
            let (node_streams, node_sessions) = cluster.node(id).replication_opened();
            assert!(node_streams <= 2, "node {id} opened {node_streams} streams to 2 peers");
            streams += node_streams;
            sessions += node_sessions;
        }
        assert!(sessions >= 16, "{sessions} sessions on {streams} streams");
        assert!(streams <= 6, "{sessions} sessions on {streams} streams");
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// `ivory serve`: one node, replication factor 1, every shard led locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_serves_writes_and_reads() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let cluster = TestCluster::start(1, 2, 1).await;
        for shard in 0..2 {
            cluster.wait_leader(shard, T).await;
            cluster
                .propose_retrying(1, shard, vec![add_one("s1"), add_one("s2")], T)
                .await;
            // A replay of the same event id changes nothing.
            cluster.propose_retrying(1, shard, vec![add_one("s1")], T).await;
            assert_eq!(
                read_onhand(cluster.node(1), shard).await.expect("read"),
                Qty::from_i64(2)
            );
        }
        let err = cluster
            .node(1)
            .propose(9, vec![add_one("x")])
            .await
            .expect_err("unknown shard");
        assert_eq!(err.code(), "raft.unknown_shard");
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// With only a minority left, writes fail in bounded time with a retryable error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_refuses_writes_with_a_retryable_error() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut cluster = TestCluster::start(3, 1, 3).await;
        let leader = cluster.wait_leader(0, T).await;
        cluster.propose_retrying(leader, 0, vec![add_one("m0")], T).await;
        for id in (1..=3).filter(|id| *id != leader) {
            cluster.stop_node(id).await;
        }
        let started = std::time::Instant::now();
        let err = cluster
            .node(leader)
            .propose(0, vec![add_one("m1")])
            .await
            .expect_err("no quorum");
        assert!(err.is_retryable(), "{err:?}");
        assert!(matches!(err.code(), "raft.no_quorum" | "node.unavailable"), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "bounded: {:?}",
            started.elapsed()
        );
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// An isolated leader cannot commit; the majority elects another leader and goes on; after the
/// network heals, the old leader drops its unacknowledged entry and converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_cannot_commit_and_rejoins_after_heal() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let cluster = TestCluster::start(3, 1, 3).await;
        let old = cluster.wait_leader(0, T).await;
        for i in 0..5 {
            cluster
                .propose_retrying(old, 0, vec![add_one(&format!("a{i}"))], T)
                .await;
        }
        cluster.isolate(old);
        let new = cluster.wait_leader_except(0, old, T).await;
        let err = cluster
            .node(old)
            .propose(0, vec![add_one("lost")])
            .await
            .expect_err("minority write");
        assert!(err.is_retryable(), "{err:?}");
        for i in 0..5 {
            cluster
                .propose_retrying(new, 0, vec![add_one(&format!("b{i}"))], T)
                .await;
        }
        cluster.heal();
        cluster.wait_converged(0, T).await;
        cluster.assert_replicas_equal(0, 3);
        for id in 1..=3 {
            let local = cluster
                .node(id)
                .read_local_stale(0, &onhand_query())
                .expect("local read");
            assert_eq!(
                onhand_of(&local),
                Qty::from_i64(10),
                "node {id}: only acknowledged writes"
            );
        }
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// Invariant 3: acknowledged writes survive a restart of the whole cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_acknowledged_writes() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut cluster = TestCluster::start(3, 2, 3).await;
        for shard in 0..2 {
            let leader = cluster.wait_leader(shard, T).await;
            for i in 0..10 {
                cluster
                    .propose_retrying(leader, shard, vec![add_one(&format!("w{i}"))], T)
                    .await;
            }
        }
        cluster.wait_converged(0, T).await;
        let digests_before = cluster.apply_digests(0);
        assert_eq!(digests_before.len(), 3);
        for id in 1..=3 {
            cluster.stop_node(id).await;
        }
        for id in 1..=3 {
            cluster.restart_node(id).await;
        }
        // Every replica re-applied the same batches in the same order as before the restart.
        cluster.wait_converged(0, T).await;
        assert_eq!(cluster.apply_digests(0), digests_before);
        for shard in 0..2 {
            let leader = cluster.wait_leader(shard, T).await;
            assert_eq!(
                read_onhand(cluster.node(leader), shard).await.expect("read"),
                Qty::from_i64(10)
            );
            cluster.propose_retrying(leader, shard, vec![add_one("after")], T).await;
            cluster.wait_converged(shard, T).await;
            cluster.assert_replicas_equal(shard, 3);
        }
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// Leadership follows the writes: when every write of a shard comes through one node, that node
/// comes to lead the shard (it was forwarding each of them), and nothing written during the
/// moves is lost. Once the writes come through every node alike, leaderships are balanced by
/// count again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_follows_the_writes_and_is_balanced_again_when_they_spread() {
    tokio::time::timeout(Duration::from_secs(120), async {
        const SHARDS: u32 = 4;
        let cluster = TestCluster::start(3, SHARDS, 3).await;
        let mut leaders = Vec::new();
        for shard in 0..SHARDS {
            leaders.push(cluster.wait_leader(shard, T).await);
        }
        // The node leading the fewest shards, so that most must move to it.
        let via = (1..=3u64)
            .min_by_key(|id| leaders.iter().filter(|l| *l == id).count())
            .expect("a node");
        let all_led_by = |node: u64| (0..SHARDS).all(|s| cluster.leader(s) == Some(node));
        let mut written = [0i64; SHARDS as usize];
        let mut round = 0u32;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while !all_led_by(via) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "writes all came through node {via}, yet shards are led by {:?}",
                (0..SHARDS).map(|s| cluster.leader(s)).collect::<Vec<_>>()
            );
            for shard in 0..SHARDS {
                let commands = (0..40).map(|k| add_one(&format!("w{round}-{shard}-{k}"))).collect();
                cluster.propose_retrying(via, shard, commands, T).await;
                written[shard as usize] += 40;
            }
            round += 1;
        }
        // Now through every node in turn: the pins go and leaderships spread out again.
        let most_led = || {
            (1..=3u64)
                .map(|id| (0..SHARDS).filter(|s| cluster.leader(*s) == Some(id)).count())
                .max()
                .unwrap_or(0)
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while most_led() > SHARDS.div_ceil(3) as usize {
            assert!(
                tokio::time::Instant::now() < deadline,
                "writes came through every node, yet one leads {} of {SHARDS} shards",
                most_led()
            );
            for via in 1..=3u64 {
                for shard in 0..SHARDS {
                    let commands = (0..20)
                        .map(|k| add_one(&format!("s{round}-{via}-{shard}-{k}")))
                        .collect();
                    cluster.propose_retrying(via, shard, commands, T).await;
                    written[shard as usize] += 20;
                }
            }
            round += 1;
        }
        for shard in 0..SHARDS {
            cluster.wait_converged(shard, T).await;
            cluster.assert_replicas_equal(shard, 3);
            let onhand = read_onhand(cluster.node(via), shard).await.expect("read");
            assert_eq!(
                onhand,
                Qty::from_i64(written[shard as usize]),
                "shard {shard}: no write lost"
            );
        }
        cluster.shutdown().await;
    })
    .await
    .expect("test timed out");
}
