//! A linearizability checker: Wing & Gong's search with Lowe's memoisation (the cache of
//! (linearized set, model state) pairs already explored), after Horn & Kroening's description.
//! Models may be nondeterministic (an operation whose outcome is unknown may or may not have
//! taken effect): `step` returns every state it may lead to.
//!
//! Written here rather than taken from crates.io: `todc-utils`' `WGLChecker` takes only
//! deterministic specifications and complete histories (no pending operations), and
//! stateright's `LinearizabilityTester` searches without memoisation and brings a model checker
//! along; histories with many unknown outcomes need both things.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash + Debug;
    type Op: Debug;
    /// Every state `op` (with the outcome it recorded) may lead to from `state`; none when the
    /// recorded outcome is impossible there.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Vec<Self::State>;
}

/// One operation: invoked at `call`, answered at `ret` (`None`: never answered, so it may take
/// effect at any point after `call`, or not at all if the model allows that).
#[derive(Clone, Debug)]
pub struct Entry<O> {
    pub op: O,
    pub call: u64,
    pub ret: Option<u64>,
}

/// The checker's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<S> {
    Linearizable,
    /// No order exists. `stuck` is the operation that could not be placed in the deepest
    /// partial order found (`depth` operations long, ending in `state`).
    Violation {
        stuck: usize,
        depth: usize,
        state: S,
    },
    /// The search took more than the step budget.
    GaveUp {
        steps: u64,
    },
}

const NIL: usize = usize::MAX;

/// Checks `entries` from `init`, within `max_steps` search steps.
pub fn check<M: Model>(model: &M, init: M::State, entries: &[Entry<M::Op>], max_steps: u64) -> Verdict<M::State> {
    let n = entries.len();
    // Events 1..=2n: a call and a return per operation; 0 is the list head.
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in entries.iter().enumerate() {
        events.push((e.call, 0, i));
        // A return at the same instant as another's call is concurrent with it: calls first.
        events.push((e.ret.unwrap_or(u64::MAX), 1, i));
    }
    events.sort_unstable();
    let len = events.len() + 1;
    let mut next = vec![NIL; len];
    let mut prev = vec![NIL; len];
    let mut op_of = vec![0usize; len];
    let mut is_call = vec![false; len];
    let mut ret_of_op = vec![0usize; n];
    let mut call_of_op = vec![0usize; n];
    for (k, &(_, kind, i)) in events.iter().enumerate() {
        let node = k + 1;
        op_of[node] = i;
        is_call[node] = kind == 0;
        if kind == 0 {
            call_of_op[i] = node;
        } else {
            ret_of_op[i] = node;
        }
        prev[node] = k;
        next[k] = node;
    }
    let _ = call_of_op;
    let mut match_of = vec![NIL; len];
    for node in 1..len {
        if is_call[node] {
            match_of[node] = ret_of_op[op_of[node]];
        }
    }

    fn unlink(next: &mut [usize], prev: &mut [usize], node: usize) {
        let (p, nx) = (prev[node], next[node]);
        next[p] = nx;
        if nx != NIL {
            prev[nx] = p;
        }
    }
    fn relink(next: &mut [usize], prev: &mut [usize], node: usize) {
        let (p, nx) = (prev[node], next[node]);
        next[p] = node;
        if nx != NIL {
            prev[nx] = node;
        }
    }

    let words = n.div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State, usize)> = Vec::new();
    let mut state = init;
    let mut entry = next[0];
    let mut start_alt = 0usize;
    let mut steps: u64 = 0;
    let mut best: Option<(usize, usize, M::State)> = None;

    while next[0] != NIL {
        steps += 1;
        if steps > max_steps {
            return Verdict::GaveUp { steps };
        }
        if entry == NIL {
            // Nothing left to try at this level (cannot happen with a return at the end).
            break;
        }
        if is_call[entry] {
            let i = op_of[entry];
            let candidates = model.step(&state, &entries[i].op);
            let mut moved = false;
            for (k, candidate) in candidates.into_iter().enumerate().skip(start_alt) {
                linearized[i / 64] |= 1 << (i % 64);
                if cache.insert((linearized.clone(), candidate.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, candidate), k));
                    // Lift the operation: its call and its return leave the list.
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, match_of[entry]);
                    entry = next[0];
                    moved = true;
                    break;
                }
                linearized[i / 64] &= !(1 << (i % 64));
            }
            start_alt = 0;
            if !moved {
                entry = next[entry];
            }
        } else {
            // A return whose operation is not linearized yet: undo the last choice.
            if best.as_ref().is_none_or(|b| stack.len() >= b.0) {
                best = Some((stack.len(), op_of[entry], state.clone()));
            }
            let Some((call, old, k)) = stack.pop() else {
                let (depth, stuck, state) = best.unwrap_or((0, op_of[entry], state));
                return Verdict::Violation { stuck, depth, state };
            };
            let i = op_of[call];
            state = old;
            linearized[i / 64] &= !(1 << (i % 64));
            relink(&mut next, &mut prev, match_of[call]);
            relink(&mut next, &mut prev, call);
            entry = call;
            start_alt = k + 1;
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register of u8: write(v) / read(v) / write that may not have happened.
    struct Register;

    #[derive(Debug)]
    enum Op {
        Write(u8),
        Read(u8),
        MaybeWrite(u8),
    }

    impl Model for Register {
        type State = u8;
        type Op = Op;
        fn step(&self, s: &u8, op: &Op) -> Vec<u8> {
            match op {
                Op::Write(v) => vec![*v],
                Op::Read(v) => {
                    if v == s {
                        vec![*s]
                    } else {
                        vec![]
                    }
                }
                Op::MaybeWrite(v) => vec![*s, *v],
            }
        }
    }

    fn e(op: Op, call: u64, ret: Option<u64>) -> Entry<Op> {
        Entry { op, call, ret }
    }

    #[test]
    fn concurrent_write_may_be_seen_or_not() {
        let h = vec![
            e(Op::Write(1), 0, Some(10)),
            e(Op::Read(0), 1, Some(2)),
            e(Op::Read(1), 3, Some(4)),
        ];
        assert_eq!(check(&Register, 0, &h, 1000), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_the_write_returned_is_caught() {
        let h = vec![e(Op::Write(1), 0, Some(1)), e(Op::Read(0), 2, Some(3))];
        assert!(matches!(
            check(&Register, 0, &h, 1000),
            Verdict::Violation { stuck: 1, .. }
        ));
    }

    #[test]
    fn reads_must_agree_on_one_order() {
        // Two writes concurrent with two readers that see them in opposite orders.
        let h = vec![
            e(Op::Write(1), 0, Some(100)),
            e(Op::Write(2), 0, Some(100)),
            e(Op::Read(1), 10, Some(11)),
            e(Op::Read(2), 12, Some(13)),
            e(Op::Read(2), 10, Some(11)),
            e(Op::Read(1), 12, Some(13)),
        ];
        assert!(matches!(check(&Register, 0, &h, 10_000), Verdict::Violation { .. }));
    }

    #[test]
    fn unknown_outcomes_may_apply_late_or_never() {
        let h = vec![
            e(Op::MaybeWrite(5), 0, None),
            e(Op::Read(0), 1, Some(2)),
            e(Op::Read(5), 3, Some(4)),
        ];
        assert_eq!(check(&Register, 0, &h, 1000), Verdict::Linearizable);
        let h = vec![e(Op::MaybeWrite(5), 0, None), e(Op::Read(0), 1, Some(2))];
        assert_eq!(check(&Register, 0, &h, 1000), Verdict::Linearizable);
        let h = vec![
            e(Op::MaybeWrite(5), 0, None),
            e(Op::Read(5), 1, Some(2)),
            e(Op::Read(0), 3, Some(4)),
        ];
        assert!(matches!(check(&Register, 0, &h, 1000), Verdict::Violation { .. }));
    }

    #[test]
    fn many_concurrent_operations_stay_cheap() {
        let mut h = Vec::new();
        for i in 0..400u64 {
            let v = (i % 7) as u8;
            h.push(e(Op::Write(v), i * 10, Some(i * 10 + 25)));
            h.push(e(Op::Read(v), i * 10 + 26, Some(i * 10 + 27)));
        }
        assert_eq!(check(&Register, 0, &h, 5_000_000), Verdict::Linearizable);
    }
}
