//! `LocalBackend`: N in-process `ivory_core::Shard`s behind mutexes, a fake of the cluster for
//! tests of the gateway and of layers above it. Not a cluster: no replication, no persistence.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use ivory_core::hold::HoldCommand;
use ivory_core::{
    Batch, CmdResult, Command, EVENT_RETENTION_MS_DEFAULT, PartitionKey, ReadRequest, ReadResponse, Shard,
};

use crate::{ApiError, Backend};

pub struct LocalBackend {
    shards: Vec<Mutex<Shard>>,
    /// The next this many calls (propose or read) fail with a retryable `raft.no_quorum`.
    pub fail_retryable: AtomicU32,
    /// Every call to this shard fails with a retryable error (`u32::MAX` = none).
    pub failing_shard: AtomicU32,
    /// Number of `propose` calls made, for tests.
    pub proposals: AtomicU32,
    /// When not 0, the leader timestamp of every proposal and sweep instead of the wall clock:
    /// tests that compare state hashes need a clock that a refused request cannot move.
    pub clock_ms: AtomicU64,
}

impl LocalBackend {
    /// # Panics
    /// When `shard_count` is 0.
    pub fn new(shard_count: u32) -> LocalBackend {
        assert!(shard_count > 0);
        LocalBackend {
            shards: (0..shard_count)
                .map(|_| Mutex::new(Shard::new(EVENT_RETENTION_MS_DEFAULT)))
                .collect(),
            fail_retryable: AtomicU32::new(0),
            failing_shard: AtomicU32::new(u32::MAX),
            proposals: AtomicU32::new(0),
            clock_ms: AtomicU64::new(0),
        }
    }

    /// Every shard's state hash (`Shard::state_hash`), in shard order.
    ///
    /// # Panics
    /// When a shard's lock is poisoned.
    pub fn state_hashes(&self) -> Vec<[u8; 32]> {
        self.shards
            .iter()
            .map(|m| m.lock().expect("shard lock").state_hash())
            .collect()
    }

    /// Tests: an empty entry stamped `ts_ms` on one shard (the sweep of a leader whose clock
    /// reads `ts_ms`, ahead of the others'), then what expired primaries owe the other shards.
    ///
    /// # Panics
    /// When the shard does not exist or its lock is poisoned.
    pub fn sweep_at(&self, shard: u32, ts_ms: u64) {
        self.shards[shard as usize].lock().expect("shard lock").apply(&Batch {
            ts_ms,
            commands: Vec::new(),
        });
        self.settle_sibling_expiries();
    }

    fn now_ms(&self) -> u64 {
        match self.clock_ms.load(Ordering::SeqCst) {
            0 => now_ms(),
            fixed => fixed,
        }
    }

    fn injected_failure(&self, shard: u32) -> Option<ApiError> {
        if self.failing_shard.load(Ordering::SeqCst) == shard {
            return Some(ApiError::backend(
                "raft.no_leader",
                format!("injected: shard {shard} has no leader"),
                true,
                20,
            ));
        }
        self.fail_retryable
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()
            .map(|_| ApiError::backend("raft.no_quorum", "injected: shard has no quorum", true, 20))
    }

    /// What a node's sweeper does for the shards it leads: the expiries that expired primary
    /// parts owe other shards are proposed there, then acknowledged (a shard failing by
    /// injection is skipped, and retried at the next call).
    fn settle_sibling_expiries(&self) {
        let failing = self.failing_shard.load(Ordering::SeqCst);
        for (primary, m) in self.shards.iter().enumerate() {
            let owed = match m.lock() {
                Ok(guard) if guard.owes_sibling_expiries() => guard.sibling_expiries(usize::MAX),
                _ => continue,
            };
            for expiry in owed {
                let done: Vec<u32> = expiry
                    .shards
                    .iter()
                    .copied()
                    .filter(|&shard| shard != failing)
                    .filter(|&shard| {
                        let command = Command::Hold(HoldCommand::ExpirePart {
                            key: expiry.key.clone(),
                            body_fingerprint: expiry.body_fingerprint,
                        });
                        self.shards.get(shard as usize).is_none_or(|m| {
                            m.lock().is_ok_and(|mut guard| {
                                let ts_ms = self.now_ms();
                                guard.apply(&Batch {
                                    ts_ms,
                                    commands: vec![command],
                                })[0]
                                    .outcome
                                    .applied()
                            })
                        })
                    })
                    .collect();
                if !done.is_empty()
                    && primary as u32 != failing
                    && let Ok(mut guard) = m.lock()
                {
                    let ts_ms = self.now_ms();
                    guard.apply(&Batch {
                        ts_ms,
                        commands: vec![Command::Hold(HoldCommand::SiblingsExpired {
                            key: expiry.key.clone(),
                            shards: done,
                        })],
                    });
                }
            }
        }
    }

    fn shard(&self, shard: u32) -> Result<&Mutex<Shard>, ApiError> {
        self.shards.get(shard as usize).ok_or_else(|| {
            ApiError::backend(
                "cluster.no_such_shard",
                format!("shard {shard} does not exist"),
                false,
                0,
            )
        })
    }
}

fn poisoned() -> ApiError {
    ApiError::backend("internal.poisoned", "shard lock poisoned", false, 0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// FNV-1a over the partition's canonical bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Backend for LocalBackend {
    fn shard_of(&self, partition: &PartitionKey) -> u32 {
        (fnv1a(&partition.canonical_bytes()) % self.shards.len() as u64) as u32
    }

    fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    fn propose(&self, shard: u32, commands: Vec<Command>) -> BoxFuture<'static, Result<Vec<CmdResult>, ApiError>> {
        self.proposals.fetch_add(1, Ordering::SeqCst);
        let result = match self.injected_failure(shard) {
            Some(e) => Err(e),
            None => self.shard(shard).and_then(|m| {
                let ts_ms = self.now_ms();
                let mut guard = m.lock().map_err(|_| poisoned())?;
                Ok(guard.apply(&Batch { ts_ms, commands }))
            }),
        };
        self.settle_sibling_expiries();
        Box::pin(async move { result })
    }

    fn read(&self, shard: u32, request: ReadRequest) -> BoxFuture<'static, Result<ReadResponse, ApiError>> {
        let swept = match self.injected_failure(shard) {
            Some(e) => Err(e),
            None => self.shard(shard).and_then(|m| {
                let mut guard = m.lock().map_err(|_| poisoned())?;
                // As a node's linearizable read does: sweep first when a hold is due.
                let now = self.now_ms();
                if guard.next_expiry_ms().is_some_and(|at| at <= now) {
                    guard.apply(&Batch {
                        ts_ms: now,
                        commands: Vec::new(),
                    });
                }
                Ok(())
            }),
        };
        // Expiries owed to other shards land before the read, as a node's sweeper lands them
        // shortly after the expiry.
        let result = swept.and_then(|()| {
            self.settle_sibling_expiries();
            self.shard(shard)
                .and_then(|m| m.lock().map_err(|_| poisoned()).map(|g| g.read(&request)))
        });
        Box::pin(async move { result })
    }

    fn healthy(&self) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}
