//! Checkers over a recorded history. Each reports its first violation with the operations
//! involved. Per key, the model is a counter pair: on-hand `o`, and the reserved quantity
//! `s` = IV reservations `rv` + held lines `held`; available = `o - s`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::history::{History, Key, Op, OpKind, Outcome};
use crate::wgl::{self, Entry, Model, Verdict};

/// One checker's finding.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub checker: &'static str,
    pub key: Option<String>,
    pub message: String,
    /// The operations involved, as history lines.
    pub ops: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.checker)?;
        if let Some(k) = &self.key {
            write!(f, " {k}:")?;
        }
        write!(f, " {}", self.message)?;
        for op in &self.ops {
            write!(f, "\n    {op}")?;
        }
        Ok(())
    }
}

/// The model's state for one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyState {
    pub onhand: i64,
    /// What IV reservations of the key hold (unreserve takes at most this).
    pub rv: i64,
    /// What hold lines on the key hold.
    pub held: i64,
    /// Whether the key's reservation exists (a reserve was applied once).
    pub exists: bool,
    /// Cross-shard creates that were refused or stayed unknown ([`OpKind::HoldUndo`]), by
    /// [`hold_tag`], sorted: `tent` placed their tentative line here (counted in `held`) and it
    /// has not gone yet; `gone` were settled without a line (their undo came first, or their
    /// create placed nothing), waiting for the other half of the pair.
    pub tent: Vec<u64>,
    pub gone: Vec<u64>,
}

/// A hold id as a small tag for the model's state (FNV-1a).
pub fn hold_tag(hold: &str) -> u64 {
    hold.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn with(set: &[u64], tag: u64) -> Vec<u64> {
    let mut v = set.to_vec();
    if let Err(i) = v.binary_search(&tag) {
        v.insert(i, tag);
    }
    v
}

fn without(set: &[u64], tag: u64) -> Vec<u64> {
    set.iter().copied().filter(|t| *t != tag).collect()
}

impl KeyState {
    pub fn new(onhand: i64) -> KeyState {
        KeyState {
            onhand,
            rv: 0,
            held: 0,
            exists: false,
            tent: Vec::new(),
            gone: Vec::new(),
        }
    }

    fn available(&self) -> i64 {
        self.onhand - self.rv - self.held
    }
}

/// The sequential specification of one key.
pub struct InventoryModel;

impl Model for InventoryModel {
    type State = KeyState;
    type Op = (OpKind, Outcome);

    fn step(&self, s: &KeyState, (kind, outcome): &(OpKind, Outcome)) -> Vec<KeyState> {
        let same = || vec![s.clone()];
        let unknown = matches!(outcome, Outcome::Unknown { .. });
        // A definite refusal other than lack of stock changes nothing (a cross-shard create's
        // tentative line aside, below).
        let cross_refused = matches!(kind, OpKind::HoldCreate { cross: true, .. }) && !matches!(outcome, Outcome::Ok);
        if matches!(outcome, Outcome::Failed { .. }) && !cross_refused {
            return same();
        }
        match kind {
            OpKind::Read => match outcome {
                Outcome::Read { onhand, reserved } if *onhand == s.onhand && *reserved == s.rv + s.held => same(),
                Outcome::Read { .. } => vec![],
                _ => same(),
            },
            OpKind::OnHand { q } => {
                let after = KeyState {
                    onhand: s.onhand + q,
                    ..s.clone()
                };
                if unknown { vec![s.clone(), after] } else { vec![after] }
            }
            OpKind::Reserve { q, .. } => {
                let fits = s.available() >= *q;
                let after = KeyState {
                    rv: s.rv + q,
                    exists: true,
                    ..s.clone()
                };
                match outcome {
                    Outcome::Ok if fits => vec![after],
                    Outcome::Insufficient if !fits => same(),
                    Outcome::Unknown { .. } if fits => vec![s.clone(), after],
                    Outcome::Unknown { .. } => same(),
                    _ => vec![],
                }
            }
            OpKind::Unreserve { q } => {
                let taken = (*q).min(s.rv.max(0));
                let after = KeyState {
                    rv: s.rv - taken,
                    ..s.clone()
                };
                match outcome {
                    Outcome::Unreserved { excess } if s.exists && *excess == q - taken => vec![after],
                    Outcome::NotFound if !s.exists => same(),
                    Outcome::Unknown { .. } if s.exists => vec![s.clone(), after],
                    Outcome::Unknown { .. } => same(),
                    _ => vec![],
                }
            }
            // A refused or unknown cross-shard create: phase 1 may place a tentative line (if
            // it fits) that its `HoldUndo` takes away again; or nothing is placed.
            OpKind::HoldCreate { hold, q, .. } if cross_refused => {
                let tag = hold_tag(hold);
                if s.gone.binary_search(&tag).is_ok() {
                    // The undo came first: nothing is placed any more.
                    return vec![KeyState {
                        gone: without(&s.gone, tag),
                        ..s.clone()
                    }];
                }
                let mut next = vec![KeyState {
                    gone: with(&s.gone, tag),
                    ..s.clone()
                }];
                if s.available() >= *q {
                    next.push(KeyState {
                        held: s.held + q,
                        tent: with(&s.tent, tag),
                        ..s.clone()
                    });
                }
                next
            }
            OpKind::HoldUndo { hold, q, .. } => {
                let tag = hold_tag(hold);
                let done = if s.tent.binary_search(&tag).is_ok() {
                    KeyState {
                        held: s.held - q,
                        tent: without(&s.tent, tag),
                        ..s.clone()
                    }
                } else if s.gone.binary_search(&tag).is_ok() {
                    KeyState {
                        gone: without(&s.gone, tag),
                        ..s.clone()
                    }
                } else {
                    KeyState {
                        gone: with(&s.gone, tag),
                        ..s.clone()
                    }
                };
                // Unknown: the tentative part may never go (an unknown create may have committed).
                if unknown { vec![done, s.clone()] } else { vec![done] }
            }
            OpKind::HoldCreate { q, lines, .. } => {
                let fits = s.available() >= *q;
                let after = KeyState {
                    held: s.held + q,
                    ..s.clone()
                };
                match outcome {
                    Outcome::Ok if fits => vec![after],
                    // With several lines another line may be the short one.
                    Outcome::Insufficient if !fits || *lines > 1 => same(),
                    Outcome::Unknown { .. } if fits => vec![s.clone(), after],
                    Outcome::Unknown { .. } => same(),
                    _ => vec![],
                }
            }
            OpKind::HoldRelease { q, .. } => {
                let after = KeyState {
                    held: s.held - q,
                    ..s.clone()
                };
                match outcome {
                    Outcome::Ok => vec![after],
                    Outcome::Unknown { .. } => vec![s.clone(), after],
                    _ => vec![],
                }
            }
            // Only a hold's own lines expire: never more than is held.
            OpKind::HoldExpire { q, .. } => {
                let after = KeyState {
                    held: s.held - q,
                    ..s.clone()
                };
                let possible = s.held >= *q;
                match outcome {
                    Outcome::Ok if possible => vec![after],
                    Outcome::Unknown { .. } if possible => vec![s.clone(), after],
                    Outcome::Unknown { .. } => same(),
                    _ => vec![],
                }
            }
            OpKind::HoldConsume { q, .. } => {
                let after = KeyState {
                    onhand: s.onhand - q,
                    held: s.held - q,
                    ..s.clone()
                };
                match outcome {
                    Outcome::Ok => vec![after],
                    Outcome::Unknown { .. } => vec![s.clone(), after],
                    _ => vec![],
                }
            }
        }
    }
}

/// What the checks need besides the history.
pub struct CheckInput<'a> {
    pub history: &'a History,
    /// Every key's stock before the traffic started.
    pub initial_stock: i64,
    /// The final read of every key after healing (on-hand, reserved).
    pub final_reads: &'a BTreeMap<Key, (i64, i64)>,
    /// Search budget of the linearizability check per key.
    pub max_steps: u64,
}

/// Everything the checkers found; `gave_up` lists keys whose linearizability search ran out of budget.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Findings {
    pub violations: Vec<Violation>,
    pub gave_up: Vec<String>,
}

/// Runs every checker (liveness is checked while the run heals, see `run`).
pub fn check_all(input: &CheckInput<'_>) -> Findings {
    let mut f = Findings::default();
    for key in input.history.keys() {
        let ops: Vec<&Op> = input.history.of_key(&key).collect();
        f.violations.extend(no_oversell(&key, &ops));
        if let Some(&fin) = input.final_reads.get(&key) {
            f.violations
                .extend(no_lost_acknowledgement(&key, &ops, input.initial_stock, fin));
            f.violations.extend(exactly_once(&key, &ops, input.initial_stock, fin));
        } else {
            f.violations.push(Violation {
                checker: "no-lost-ack",
                key: Some(key.to_string()),
                message: "no final read after healing".into(),
                ops: vec![],
            });
        }
        match linearizable(&key, &ops, input.initial_stock, input.max_steps) {
            Ok(()) => {}
            Err(Some(v)) => f.violations.push(v),
            Err(None) => f.gave_up.push(key.to_string()),
        }
    }
    for d in &input.history.duplicates {
        f.violations.push(Violation {
            checker: "exactly-once",
            key: None,
            message: format!(
                "a duplicate of {} ({}) answered differently from the first delivery",
                d.id, d.request
            ),
            ops: vec![format!("first: {}", d.first), format!("second: {}", d.second)],
        });
    }
    f
}

fn lines(ops: &[&Op], max: usize) -> Vec<String> {
    let skip = ops.len().saturating_sub(max);
    let mut out: Vec<String> = ops.iter().skip(skip).map(|o| o.to_string()).collect();
    if skip > 0 {
        out.insert(0, format!("... {skip} earlier operations"));
    }
    out
}

/// No oversell: with the availability check on, nothing reserved more than was available. A
/// read never sees availabletoreserve below zero (every write keeps it >= 0), and the
/// acknowledged reservations minus everything that could have given stock back never exceed
/// the most stock there could have been.
pub fn no_oversell(key: &Key, ops: &[&Op]) -> Option<Violation> {
    for op in ops {
        if let Outcome::Read { onhand, reserved } = op.outcome
            && onhand - reserved < 0
        {
            let before: Vec<&Op> = ops
                .iter()
                .filter(|o| {
                    o.complete_us.is_some_and(|c| c <= op.invoke_us)
                        && o.outcome == Outcome::Ok
                        && matches!(o.kind, OpKind::Reserve { .. } | OpKind::HoldCreate { .. })
                })
                .copied()
                .collect();
            let mut involved = lines(&before, 6);
            involved.push(op.to_string());
            return Some(Violation {
                checker: "no-oversell",
                key: Some(key.to_string()),
                message: format!(
                    "read #{} saw onhand {onhand}, reserved {reserved}: availabletoreserve {} < 0",
                    op.index,
                    onhand - reserved
                ),
                ops: involved,
            });
        }
    }
    None
}

/// Bounds of the final (on-hand, reserved) implied by the history.
#[derive(Debug, Default)]
struct Bounds {
    onhand_min: i64,
    onhand_max: i64,
    reserved_min: i64,
    reserved_max: i64,
}

fn bounds(ops: &[&Op], initial: i64) -> Bounds {
    let mut b = Bounds {
        onhand_min: initial,
        onhand_max: initial,
        ..Bounds::default()
    };
    for op in ops {
        let ok = op.outcome.is_ok();
        let unknown = op.outcome.is_unknown();
        match (&op.kind, &op.outcome) {
            (OpKind::OnHand { q }, _) if ok => {
                b.onhand_min += q;
                b.onhand_max += q;
            }
            (OpKind::OnHand { q }, _) if unknown => b.onhand_max += q,
            (OpKind::Reserve { q, .. } | OpKind::HoldCreate { q, .. }, _) if ok => {
                b.reserved_min += q;
                b.reserved_max += q;
            }
            (OpKind::Reserve { q, .. } | OpKind::HoldCreate { q, .. }, _) if unknown => b.reserved_max += q,
            (OpKind::Unreserve { q }, Outcome::Unreserved { excess }) => {
                b.reserved_min -= q - excess;
                b.reserved_max -= q - excess;
            }
            (OpKind::Unreserve { q }, _) if unknown => b.reserved_min -= q,
            (OpKind::HoldRelease { q, .. } | OpKind::HoldExpire { q, .. }, _) if ok => {
                b.reserved_min -= q;
                b.reserved_max -= q;
            }
            (OpKind::HoldRelease { q, .. } | OpKind::HoldExpire { q, .. }, _) if unknown => b.reserved_min -= q,
            (OpKind::HoldConsume { q, .. }, _) if ok => {
                b.reserved_min -= q;
                b.reserved_max -= q;
                b.onhand_min -= q;
                b.onhand_max -= q;
            }
            (OpKind::HoldConsume { q, .. }, _) if unknown => {
                b.reserved_min -= q;
                b.onhand_min -= q;
            }
            // A refused cross-shard create whose tentative line may not have gone yet.
            (
                OpKind::HoldUndo {
                    q, refused_us: Some(_), ..
                },
                _,
            ) if unknown => b.reserved_max += q,
            _ => {}
        }
    }
    b
}

fn writes<'a>(ops: &[&'a Op]) -> Vec<&'a Op> {
    ops.iter().filter(|o| !o.kind.is_read()).copied().collect()
}

/// No lost acknowledgement: the final read after healing holds every acknowledged write.
pub fn no_lost_acknowledgement(
    key: &Key,
    ops: &[&Op],
    initial: i64,
    (onhand, reserved): (i64, i64),
) -> Option<Violation> {
    let b = bounds(ops, initial);
    let mut problems = Vec::new();
    if onhand < b.onhand_min {
        problems.push(format!(
            "final onhand {onhand} < {} (the acknowledged on-hand changes and consumes)",
            b.onhand_min
        ));
    }
    if reserved < b.reserved_min {
        problems.push(format!(
            "final reserved {reserved} < {} (the acknowledged reservations and holds, less everything that may have been given back): an acknowledged reservation is missing, or a give-back counted twice",
            b.reserved_min
        ));
    }
    (!problems.is_empty()).then(|| Violation {
        checker: "no-lost-ack",
        key: Some(key.to_string()),
        message: problems.join("; "),
        ops: lines(&writes(ops), 12),
    })
}

/// The sums reachable by choosing, for each item, one value of its set (a DP over a bitset).
fn reachable_sums(base: i64, items: &[Vec<i64>]) -> (i64, Vec<bool>) {
    let lo = base + items.iter().map(|c| c.iter().copied().min().unwrap_or(0)).sum::<i64>();
    let hi = base + items.iter().map(|c| c.iter().copied().max().unwrap_or(0)).sum::<i64>();
    let width = usize::try_from(hi - lo + 1).unwrap_or(1);
    let mut reach = vec![false; width];
    let start = usize::try_from(base - lo).unwrap_or(0);
    reach[start] = true;
    for choices in items {
        let mut next = vec![false; width];
        for (i, r) in reach.iter().enumerate() {
            if *r {
                for c in choices {
                    let j = i as i64 + c;
                    if let Ok(j) = usize::try_from(j)
                        && j < width
                    {
                        next[j] = true;
                    }
                }
            }
        }
        reach = next;
    }
    (lo, reach)
}

/// Exactly once: the final quantities are the acknowledged writes plus some subset of the
/// unknown ones, each counted at most once: within [ok, ok + unknown] and equal to a sum that
/// some choice of the unknown operations gives.
pub fn exactly_once(key: &Key, ops: &[&Op], initial: i64, (onhand, reserved): (i64, i64)) -> Option<Violation> {
    let b = bounds(ops, initial);
    let mut problems = Vec::new();
    if onhand > b.onhand_max {
        problems.push(format!(
            "final onhand {onhand} > {}: more than every acknowledged and unknown on-hand change once",
            b.onhand_max
        ));
    }
    if reserved > b.reserved_max {
        problems.push(format!(
            "final reserved {reserved} > {}: more than every acknowledged and unknown reservation once",
            b.reserved_max
        ));
    }
    if problems.is_empty() {
        // The choices of the unknown operations, on top of the acknowledged ones.
        let mut onhand_items: Vec<Vec<i64>> = Vec::new();
        let mut reserved_items: Vec<Vec<i64>> = Vec::new();
        let mut onhand_base = initial;
        let mut reserved_base = 0;
        for op in ops.iter().filter(|o| o.outcome.is_ok() || o.outcome.is_unknown()) {
            let unknown = op.outcome.is_unknown();
            match (&op.kind, &op.outcome) {
                (OpKind::OnHand { q }, _) if unknown => onhand_items.push(vec![0, *q]),
                (OpKind::OnHand { q }, _) => onhand_base += q,
                (OpKind::Reserve { q, .. } | OpKind::HoldCreate { q, .. }, _) if unknown => {
                    reserved_items.push(vec![0, *q])
                }
                (OpKind::Reserve { q, .. } | OpKind::HoldCreate { q, .. }, _) => reserved_base += q,
                (OpKind::Unreserve { q }, Outcome::Unreserved { excess }) => reserved_base -= q - excess,
                // An unknown unreserve takes anything from 0 to q (it is clamped).
                (OpKind::Unreserve { q }, _) if unknown => reserved_items.push((0..=*q).map(|v| -v).collect()),
                (OpKind::HoldRelease { q, .. } | OpKind::HoldExpire { q, .. }, _) if unknown => {
                    reserved_items.push(vec![0, -q])
                }
                (OpKind::HoldRelease { q, .. } | OpKind::HoldExpire { q, .. }, _) => reserved_base -= q,
                (OpKind::HoldConsume { q, .. }, _) if unknown => {
                    // Consume moves both together: check each measure on its own (sound, weaker).
                    onhand_items.push(vec![0, -q]);
                    reserved_items.push(vec![0, -q]);
                }
                (OpKind::HoldConsume { q, .. }, _) => {
                    onhand_base -= q;
                    reserved_base -= q;
                }
                (
                    OpKind::HoldUndo {
                        q, refused_us: Some(_), ..
                    },
                    _,
                ) if unknown => reserved_items.push(vec![0, *q]),
                _ => {}
            }
        }
        let (lo, reach) = reachable_sums(onhand_base, &onhand_items);
        if !usize::try_from(onhand - lo).is_ok_and(|i| reach.get(i).copied().unwrap_or(false)) {
            problems.push(format!(
                "final onhand {onhand} is no sum of the acknowledged changes ({onhand_base}) and a subset of the {} unknown ones",
                onhand_items.len()
            ));
        }
        let (lo, reach) = reachable_sums(reserved_base, &reserved_items);
        if !usize::try_from(reserved - lo).is_ok_and(|i| reach.get(i).copied().unwrap_or(false)) {
            problems.push(format!(
                "final reserved {reserved} is no sum of the acknowledged reservations ({reserved_base}) and a subset of the {} unknown ones",
                reserved_items.len()
            ));
        }
    }
    (!problems.is_empty()).then(|| Violation {
        checker: "exactly-once",
        key: Some(key.to_string()),
        message: problems.join("; "),
        ops: lines(&writes(ops), 12),
    })
}

/// Linearizability of the key's history against [`InventoryModel`]. `Err(None)`: the search
/// ran out of budget.
pub fn linearizable(key: &Key, ops: &[&Op], initial: i64, max_steps: u64) -> Result<(), Option<Violation>> {
    // Unanswered reads say nothing.
    let kept: Vec<&Op> = ops
        .iter()
        .filter(|o| !(o.kind.is_read() && o.outcome.is_unknown()))
        .copied()
        .collect();
    let entries: Vec<Entry<(OpKind, Outcome)>> = kept
        .iter()
        .map(|o| Entry {
            op: (o.kind.clone(), o.outcome.clone()),
            call: o.invoke_us,
            ret: o.complete_us,
        })
        .collect();
    match wgl::check(&InventoryModel, KeyState::new(initial), &entries, max_steps) {
        Verdict::Linearizable => Ok(()),
        Verdict::GaveUp { .. } => Err(None),
        Verdict::Violation { stuck, depth, state } => {
            let op = kept[stuck];
            // The operations that overlap the stuck one, and the last few before it.
            let end = op.complete_us.unwrap_or(u64::MAX);
            let around: Vec<&Op> = kept
                .iter()
                .filter(|o| o.invoke_us <= end && o.complete_us.is_none_or(|c| c + 2_000_000 >= op.invoke_us))
                .copied()
                .collect();
            let mut involved = lines(&around, 14);
            involved.push(format!("stuck: {op}"));
            Err(Some(Violation {
                checker: "linearizable",
                key: Some(key.to_string()),
                message: format!(
                    "no linearization: after {depth} operations in the deepest order found the model is {state:?}, and #{} cannot be placed",
                    op.index
                ),
                ops: involved,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(index: usize, kind: OpKind, t: (u64, Option<u64>), outcome: Outcome) -> Op {
        Op {
            index,
            client: 0,
            id: format!("id{index}"),
            key: key(),
            kind,
            invoke_us: t.0,
            complete_us: t.1,
            outcome,
            attempts: 1,
        }
    }

    fn key() -> Key {
        Key {
            location: "L".into(),
            product: "P".into(),
        }
    }

    fn read(onhand: i64, reserved: i64) -> Outcome {
        Outcome::Read { onhand, reserved }
    }

    #[test]
    fn an_oversold_history_fails_linearizability_and_oversell() {
        // Stock 2; two reserves of 2 both acknowledged one after the other.
        let ops = [
            op(0, OpKind::Reserve { q: 2, bulk: false }, (0, Some(10)), Outcome::Ok),
            op(1, OpKind::Reserve { q: 2, bulk: false }, (20, Some(30)), Outcome::Ok),
            op(2, OpKind::Read, (40, Some(50)), read(2, 4)),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert!(linearizable(&key(), &refs, 2, 10_000).is_err());
        assert!(no_oversell(&key(), &refs).is_some());
    }

    #[test]
    fn unknown_reserves_may_count_once_but_not_twice() {
        let ops = [
            op(
                0,
                OpKind::Reserve { q: 1, bulk: false },
                (0, None),
                Outcome::Unknown { error: "t".into() },
            ),
            op(1, OpKind::Reserve { q: 2, bulk: false }, (5, Some(10)), Outcome::Ok),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert!(exactly_once(&key(), &refs, 10, (10, 3)).is_none());
        assert!(exactly_once(&key(), &refs, 10, (10, 2)).is_none());
        assert!(exactly_once(&key(), &refs, 10, (10, 4)).is_some());
        assert!(no_lost_acknowledgement(&key(), &refs, 10, (10, 1)).is_some());
        assert!(linearizable(&key(), &refs, 10, 10_000).is_ok());
    }

    #[test]
    fn unreserve_and_holds_follow_the_model() {
        let ops = [
            op(0, OpKind::Reserve { q: 3, bulk: false }, (0, Some(10)), Outcome::Ok),
            op(
                1,
                OpKind::Unreserve { q: 5 },
                (20, Some(30)),
                Outcome::Unreserved { excess: 2 },
            ),
            op(
                2,
                OpKind::HoldCreate {
                    hold: "h".into(),
                    q: 4,
                    lines: 1,
                    cross: false,
                },
                (40, Some(50)),
                Outcome::Ok,
            ),
            op(
                3,
                OpKind::HoldConsume { hold: "h".into(), q: 4 },
                (60, Some(70)),
                Outcome::Ok,
            ),
            op(4, OpKind::Read, (80, Some(90)), read(1, 0)),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert!(linearizable(&key(), &refs, 5, 10_000).is_ok());
        assert!(exactly_once(&key(), &refs, 5, (1, 0)).is_none());
        assert!(no_lost_acknowledgement(&key(), &refs, 5, (1, 0)).is_none());
    }

    #[test]
    fn an_expired_hold_frees_its_lines_once_and_a_settled_expiry_must_have_happened() {
        let create = op(
            0,
            OpKind::HoldCreate {
                hold: "h".into(),
                q: 3,
                lines: 1,
                cross: false,
            },
            (0, Some(10)),
            Outcome::Ok,
        );
        let expire = op(
            1,
            OpKind::HoldExpire {
                hold: "h".into(),
                q: 3,
                ttl_s: 2,
                sibling: false,
            },
            (0, None),
            Outcome::Unknown { error: "expiry".into() },
        );
        let held = op(2, OpKind::Read, (20, Some(30)), read(5, 3));
        let unsettled = crate::history::History {
            ops: vec![create.clone(), expire.clone(), held.clone()],
            ..Default::default()
        };
        // Due after the final reads began: it stays unknown.
        let mut settled = unsettled.clone();
        settled.settle_expiries(1_000_000, 3_000_009, &[(0, 1, 60_000_000)], &[]);
        assert!(settled.ops[1].outcome.is_unknown());
        // Settled: it happened by its time to live after the create's answer, plus the margin.
        settled.settle_expiries(1_000_000, 3_000_010, &[(0, 1, 60_000_000)], &[]);
        assert_eq!(settled.ops[1].outcome, Outcome::Ok);
        assert_eq!(settled.ops[1].complete_us, Some(3_000_010));
        // Without a clock ahead it cannot happen before its time to live (less the margin).
        let mut on_time = unsettled.clone();
        on_time.settle_expiries(1_000_000, 3_000_010, &[], &[]);
        assert_eq!(on_time.ops[1].invoke_us, 1_000_000);
        assert_eq!(settled.ops[1].invoke_us, 0, "a clock ahead: from the create on");
        // A line of a cross-shard hold outside the primary's location: the primary's expiry
        // reaches it up to SIBLING_PASS_ON_US later, and later still past a fault meanwhile.
        let mut sibling = unsettled.clone();
        if let OpKind::HoldExpire { sibling: s, .. } = &mut sibling.ops[1].kind {
            *s = true;
        }
        use crate::history::{FAULT_RECOVERY_US, SIBLING_EXPIRY_GRACE_US, SIBLING_PASS_ON_US};
        // (what, end of the run, fault windows, when the sibling line's expiry window closes)
        type Case<'a> = (&'a str, u64, &'a [(u64, u64)], u64);
        let cases: [Case; 4] = [
            ("quiet", 10_000_000, &[], 3_000_010 + SIBLING_PASS_ON_US),
            (
                "stalled by a fault",
                20_000_000,
                &[(2_000_000, 4_000_000), (13_000_000, 13_500_000)],
                4_000_000 + FAULT_RECOVERY_US + SIBLING_PASS_ON_US,
            ),
            (
                "chained faults",
                60_000_000,
                &[(2_000_000, 4_000_000), (11_000_000, 12_000_000)],
                12_000_000 + FAULT_RECOVERY_US + SIBLING_PASS_ON_US,
            ),
            (
                "the part's own safety net",
                400_000_000,
                &[(2_000_000, 300_000_000)],
                3_000_010 + SIBLING_EXPIRY_GRACE_US,
            ),
        ];
        for (what, end, faults, closes) in cases {
            let mut history = sibling.clone();
            history.settle_expiries(1_000_000, end, &[], faults);
            assert_eq!(history.ops[1].complete_us, Some(closes), "{what}");
        }
        // The settled expiry must show in a later read, and frees the lines once, not twice.
        let freed = op(3, OpKind::Read, (4_000_000, Some(4_000_010)), read(5, 0));
        let still_held = op(3, OpKind::Read, (4_000_000, Some(4_000_010)), read(5, 3));
        let refs = |extra: &Op| -> Vec<Op> {
            let mut ops = settled.ops.clone();
            ops.push(extra.clone());
            ops
        };
        let ok = refs(&freed);
        assert!(linearizable(&key(), &ok.iter().collect::<Vec<_>>(), 5, 10_000).is_ok());
        assert!(exactly_once(&key(), &ok.iter().collect::<Vec<_>>(), 5, (5, 0)).is_none());
        let bad = refs(&still_held);
        assert!(linearizable(&key(), &bad.iter().collect::<Vec<_>>(), 5, 10_000).is_err());
        assert!(exactly_once(&key(), &bad.iter().collect::<Vec<_>>(), 5, (5, 3)).is_some());
        // An expiry can never free more than is held.
        let over = [expire, op(2, OpKind::Read, (20, Some(30)), read(5, -3))];
        assert!(linearizable(&key(), &over.iter().collect::<Vec<_>>(), 5, 10_000).is_err());
    }

    #[test]
    fn a_refused_cross_shard_line_may_be_held_for_a_moment_but_not_after_its_undo() {
        let create = |outcome: Outcome| {
            op(
                0,
                OpKind::HoldCreate {
                    hold: "x".into(),
                    q: 2,
                    lines: 2,
                    cross: true,
                },
                (0, Some(100)),
                outcome,
            )
        };
        let undo = |done: Option<u64>| {
            op(
                1,
                OpKind::HoldUndo {
                    hold: "x".into(),
                    q: 2,
                    refused_us: Some(100),
                    gone_us: None,
                },
                (0, done),
                if done.is_some() {
                    Outcome::Ok
                } else {
                    Outcome::Unknown { error: "t".into() }
                },
            )
        };
        // A reserve refused while the tentative line held the last units, then read free.
        let ops = [
            create(Outcome::Insufficient),
            undo(Some(200)),
            op(
                2,
                OpKind::Reserve { q: 4, bulk: false },
                (10, Some(20)),
                Outcome::Insufficient,
            ),
            op(3, OpKind::Read, (30, Some(40)), read(5, 2)),
            op(4, OpKind::Read, (300, Some(310)), read(5, 0)),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert!(linearizable(&key(), &refs, 5, 10_000).is_ok());
        assert!(exactly_once(&key(), &refs, 5, (5, 0)).is_none());
        // Still held after the undo's bound: not a refusal.
        let mut late = ops.clone();
        late[4] = op(4, OpKind::Read, (300, Some(310)), read(5, 2));
        let refs: Vec<&Op> = late.iter().collect();
        assert!(linearizable(&key(), &refs, 5, 10_000).is_err());
        assert!(exactly_once(&key(), &refs, 5, (5, 2)).is_some());
        // With the undo not yet settled at the final read, either is allowed.
        let open = [create(Outcome::Insufficient), undo(None)];
        let refs: Vec<&Op> = open.iter().collect();
        assert!(exactly_once(&key(), &refs, 5, (5, 2)).is_none());
        assert!(exactly_once(&key(), &refs, 5, (5, 0)).is_none());
        // An acknowledged cross-shard line is held once and stays.
        let ok = [create(Outcome::Ok), op(2, OpKind::Read, (300, Some(310)), read(5, 0))];
        let refs: Vec<&Op> = ok.iter().collect();
        assert!(linearizable(&key(), &refs, 5, 10_000).is_err());
        assert!(no_lost_acknowledgement(&key(), &refs, 5, (5, 0)).is_some());
    }
}
