//! The leader's timestamp for a batch (`ts_ms`): the wall clock, kept within a bounded step of
//! the time this process has measured on its monotonic clock since it started, and never below
//! the shard's clock. A wall clock that jumps far ahead (a bad NTP step, an operator) would
//! otherwise expire every hold and prune idempotency keys early; it is logged and clamped.
//!
//! A clock that was already wrong when the process started is not caught here: the shard's clock
//! cannot tell it from a shard that was idle. The state machine itself never reads a clock.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How far the wall clock may run ahead of the monotonic estimate before it is clamped: room
/// for NTP slewing over a long uptime, far below any hold's or key's lifetime.
pub const CLOCK_STEP_MAX_MS: u64 = 60_000;

// A non-primary part of a cross-shard hold expires by itself two clamp steps after the hold
// (ivory-core `SIBLING_EXPIRY_GRACE_MS`), so that no leader clock ends it before the primary.
const _: () = assert!(ivory_core::hold::SIBLING_EXPIRY_GRACE_MS == 2 * CLOCK_STEP_MAX_MS);

/// The wall clock and the monotonic clock read together when the node started.
static START: LazyLock<(u64, Instant)> = LazyLock::new(|| (ivory_raft::now_ms(), Instant::now()));
/// The last time a clamp was logged (wall ms), so a clock stuck ahead logs once a minute.
static LAST_WARNED: AtomicU64 = AtomicU64::new(0);
/// Fault injection (`clockAheadMs` of `/_test/fault`): added to the wall clock this module reads,
/// as a clock stepped forward would be. Zero (one relaxed load) unless a test sets it.
static AHEAD_MS: AtomicU64 = AtomicU64::new(0);

/// Fault injection: the wall clock this process stamps entries with runs `ms` ahead from now
/// on (zero heals). Process-wide: in-process clusters share it.
pub fn set_ahead_ms(ms: u64) {
    AHEAD_MS.store(ms, Ordering::Relaxed);
}

/// The offset set by [`set_ahead_ms`].
pub fn ahead_ms() -> u64 {
    AHEAD_MS.load(Ordering::Relaxed)
}

/// Reads the start point; called when the node starts so later jumps are measured from there.
pub fn init() {
    LazyLock::force(&START);
}

/// The wall clock, clamped to the monotonic estimate plus [`CLOCK_STEP_MAX_MS`].
pub fn now_ms() -> u64 {
    let (wall0, mono0) = *START;
    let estimate = wall0.saturating_add(u64::try_from(mono0.elapsed().as_millis()).unwrap_or(u64::MAX));
    let now = ivory_raft::now_ms().saturating_add(ahead_ms());
    let clamped = clamp(now, estimate);
    if clamped != now {
        let last = LAST_WARNED.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 60_000
            && LAST_WARNED
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                wall_ms = now,
                used_ms = clamped,
                ahead_ms = now - estimate,
                "the wall clock jumped ahead of the time measured since start: timestamps are clamped"
            );
            metrics::counter!("ivory_clock_clamped_total").increment(1);
        }
    }
    clamped
}

/// The timestamp of a batch for a shard whose clock is `shard_clock_ms`: never below it.
pub fn stamp_ms(shard_clock_ms: u64) -> u64 {
    now_ms().max(shard_clock_ms)
}

/// `now` limited to `estimate + CLOCK_STEP_MAX_MS` (a clock behind is left alone: the shard's
/// clock keeps timestamps from going backwards).
pub fn clamp(now: u64, estimate: u64) -> u64 {
    now.min(estimate.saturating_add(CLOCK_STEP_MAX_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_far_ahead_is_clamped_and_one_behind_never_goes_back() {
        let t = 1_700_000_000_000;
        assert_eq!(clamp(t + 5, t), t + 5, "small drift passes");
        assert_eq!(
            clamp(t + 86_400_000, t),
            t + CLOCK_STEP_MAX_MS,
            "a day ahead is clamped"
        );
        assert_eq!(clamp(t - 86_400_000, t), t - 86_400_000);
        assert_eq!(clamp(u64::MAX, u64::MAX), u64::MAX, "no overflow");
        // Behind the shard's clock: the shard's clock.
        let stamped = stamp_ms(u64::MAX - 1);
        assert_eq!(stamped, u64::MAX - 1);
        let now = stamp_ms(0);
        assert!(
            now.abs_diff(ivory_raft::now_ms()) < 1_000,
            "a sane clock is used as it is"
        );
    }
}
