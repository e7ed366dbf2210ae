//! Proposal coalescing (DESIGN.md §6): on a shard's leader, proposals that queue up while earlier
//! ones are in flight leave together as one log entry. Each Raft entry costs an append, a flush
//! share, task hops and an apply round trip; one entry for many requests pays them once. A node
//! that forwards to the leader coalesces the same way, per shard and leader: one `Propose` call
//! carries what queued for it (a hot key's forwards would otherwise be a call each).
//!
//! There is no linger: a lone proposal goes out at once. Batches grow only when the shard is busy,
//! because a batch is cut only when an in-flight slot is free.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use ivory_core::{BATCH_COMMANDS_MAX, CmdResult, Command};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::NodeError;
use crate::network::encode;
use crate::node::{Inner, Node};

/// Proposals waiting per shard; senders wait beyond it (backpressure, not unbounded memory).
const QUEUED_PROPOSALS_MAX: usize = 4096;
/// Batches of one shard in flight at once: enough to keep the log busy while one is fsynced.
const IN_FLIGHT_BATCHES_MAX: usize = 4;

type Reply = oneshot::Sender<Result<Vec<CmdResult>, NodeError>>;

struct Pending {
    commands: Vec<Command>,
    reply: Reply,
}

/// A shard's queue and the slots its batches take.
#[derive(Clone)]
struct ShardQueue {
    tx: mpsc::Sender<Pending>,
    in_flight: Arc<Semaphore>,
}

/// Where a shard's batches go: into this node's log (it leads), or to the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Route {
    Local,
    Forward(u64),
}

/// One queue and one batching task per shard and route, created on first use.
#[derive(Default)]
pub(crate) struct Coalescer {
    queues: Mutex<HashMap<(u32, Route), ShardQueue>>,
    /// `Propose` calls this node made to leaders (each carries one batch).
    forward_calls: std::sync::atomic::AtomicU64,
}

impl Coalescer {
    fn queue(&self, inner: &Arc<Inner>, shard: u32, route: Route) -> Option<ShardQueue> {
        let mut queues = self.queues.lock().ok()?;
        let queue = queues.entry((shard, route)).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUED_PROPOSALS_MAX);
            let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_BATCHES_MAX));
            tokio::spawn(run(Arc::downgrade(inner), shard, route, rx, in_flight.clone()));
            ShardQueue { tx, in_flight }
        });
        Some(queue.clone())
    }

    /// Drops every queue: the batching tasks end once their queue is empty.
    pub(crate) fn close(&self) {
        if let Ok(mut queues) = self.queues.lock() {
            queues.clear();
        }
    }
}

impl Node {
    /// Proposes `commands` on this node (which should lead `shard`) through the shard's queue; the
    /// answer is this proposal's results, in order, whatever it was batched with.
    pub(crate) async fn propose_coalesced(
        &self,
        shard: u32,
        commands: Vec<Command>,
    ) -> Result<Vec<CmdResult>, NodeError> {
        self.coalesce(shard, Route::Local, commands).await
    }

    /// Forwards `commands` to `target` (which should lead `shard`), batched with the other
    /// proposals this node forwards it for the shard meanwhile.
    pub(crate) async fn forward_coalesced(
        &self,
        target: u64,
        shard: u32,
        commands: Vec<Command>,
    ) -> Result<Vec<CmdResult>, NodeError> {
        self.coalesce(shard, Route::Forward(target), commands).await
    }

    /// When nothing is queued and a slot is free, the caller's own task goes on: a batch of one
    /// would leave at once anyway, and going straight saves two task hand-overs and a spawn.
    async fn coalesce(&self, shard: u32, route: Route, commands: Vec<Command>) -> Result<Vec<CmdResult>, NodeError> {
        let stopped = || NodeError::Unavailable(format!("shard {shard}: this node is shutting down"));
        let queue = self
            .inner
            .coalescer
            .queue(&self.inner, shard, route)
            .ok_or_else(stopped)?;
        if queue.tx.capacity() == QUEUED_PROPOSALS_MAX {
            // tokio's semaphore hands released slots to queued waiters first: the batching task
            // waiting for one is never overtaken by this path.
            if let Ok(_slot) = queue.in_flight.clone().try_acquire_owned() {
                record_batch(route, 1);
                let total = commands.len();
                let results = self.send_batch(shard, route, commands).await?;
                return if results.len() == total {
                    Ok(results)
                } else {
                    Err(result_count_error(shard, results.len(), total))
                };
            }
        }
        let (reply, answer) = oneshot::channel();
        queue
            .tx
            .send(Pending { commands, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// How many `Propose` calls this node has made to other nodes' leaders (for tests; operators
    /// see `ivory_node_forward_batch_proposals`).
    pub fn forward_calls(&self) -> u64 {
        self.inner
            .coalescer
            .forward_calls
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forwarded proposals this node sent on `Forward` streams rather than as `Propose` calls,
    /// since start (for tests).
    pub fn forward_stream_calls(&self) -> u64 {
        self.inner.peers.forwards.calls()
    }

    /// `Replicate` streams this node opened to other nodes, and the replication sessions (one
    /// group to one follower each) it opened on them, since start (for tests).
    pub fn replication_opened(&self) -> (u64, u64) {
        self.inner.peers.replication_opened()
    }

    async fn send_batch(&self, shard: u32, route: Route, commands: Vec<Command>) -> Result<Vec<CmdResult>, NodeError> {
        match route {
            Route::Local => self.propose_local(shard, commands).await,
            Route::Forward(target) => {
                let encoded = encode(&commands).map_err(NodeError::Invalid)?;
                self.inner
                    .coalescer
                    .forward_calls
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.forward_propose(target, shard, encoded).await
            }
        }
    }
}

fn record_batch(route: Route, proposals: usize) {
    let name = match route {
        Route::Local => "ivory_node_batch_proposals",
        Route::Forward(_) => "ivory_node_forward_batch_proposals",
    };
    metrics::histogram!(name).record(proposals as f64);
}

fn result_count_error(shard: u32, results: usize, commands: usize) -> NodeError {
    NodeError::Storage(format!("shard {shard}: {results} results for {commands} commands"))
}

async fn run(
    inner: Weak<Inner>,
    shard: u32,
    route: Route,
    mut queue: mpsc::Receiver<Pending>,
    in_flight: Arc<Semaphore>,
) {
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match queue.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        // Wait for a slot before cutting the batch: whatever queues meanwhile joins it.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        let mut commands = batch[0].commands.len();
        while let Ok(next) = queue.try_recv() {
            if commands + next.commands.len() > BATCH_COMMANDS_MAX {
                carried = Some(next);
                break;
            }
            commands += next.commands.len();
            batch.push(next);
        }
        let Some(node) = inner.upgrade().map(|inner| Node { inner }) else {
            return;
        };
        record_batch(route, batch.len());
        tokio::spawn(async move {
            propose_batch(&node, shard, route, batch).await;
            drop(permit);
        });
    }
}

async fn propose_batch(node: &Node, shard: u32, route: Route, mut batch: Vec<Pending>) {
    let counts: Vec<usize> = batch.iter().map(|p| p.commands.len()).collect();
    let all: Vec<Command> = batch.iter_mut().flat_map(|p| std::mem::take(&mut p.commands)).collect();
    let total = all.len();
    match node.send_batch(shard, route, all).await {
        Ok(results) if results.len() == total => {
            let mut results = results.into_iter();
            for (pending, n) in batch.into_iter().zip(counts) {
                let _ = pending.reply.send(Ok(results.by_ref().take(n).collect()));
            }
        }
        Ok(results) => {
            let e = result_count_error(shard, results.len(), total);
            for pending in batch {
                let _ = pending.reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for pending in batch {
                let _ = pending.reply.send(Err(e.clone()));
            }
        }
    }
}
