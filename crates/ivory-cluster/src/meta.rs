//! The cluster's metadata: members, the layout, the placement of every shard's replicas and the
//! replica moves in flight. It is the state machine of the metadata Raft group ([`META_GROUP`]),
//! which every node follows, so [`ClusterMeta::apply`] is deterministic: no clock, no randomness,
//! no I/O. The rebalancer's decisions ([`ClusterMeta::next_moves`]) are pure functions of it too.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Layout, Placement};

/// The metadata group's Raft group id; shard groups are `0..shard_count`.
pub const META_GROUP: u32 = u32::MAX;

/// A member's life: registered (`Joining`) until it follows the metadata group, then `Active`
/// (holds replicas), `Draining` once an operator asked to remove it (its replicas move away), and
/// `Removed` when it holds nothing and left the metadata group. Ids are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MemberState {
    Joining,
    Active,
    Draining,
    Removed,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Joining => "joining",
            MemberState::Active => "active",
            MemberState::Draining => "draining",
            MemberState::Removed => "removed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// "host:port" where the node serves gRPC (and REST).
    pub addr: String,
    pub state: MemberState,
}

/// One replica move of one shard: add a replica, remove one, or both (add first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub add: Option<u64>,
    pub remove: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Written once by the node that bootstraps the cluster; later copies are refused.
    Init {
        layout: Layout,
        replication: u32,
        members: BTreeMap<u64, String>,
        placement: BTreeMap<u32, Vec<u64>>,
    },
    /// Registers a node as `Joining`; the same id and address again is a no-op.
    AddMember {
        id: u64,
        addr: String,
    },
    /// `Joining` -> `Active`, once the node follows the metadata group.
    Activate {
        id: u64,
    },
    /// `Active` -> `Draining`; refused when the others could not hold every shard's replicas.
    /// A `Joining` node (registered, never activated, holding nothing) goes straight to `Removed`.
    Drain {
        id: u64,
    },
    /// `Draining` -> `Removed`; refused while the node still holds or receives a replica.
    Remove {
        id: u64,
    },
    BeginMove {
        shard: u32,
        mv: Move,
    },
    /// The move is done; `replicas` are the shard's voters as its Raft group committed them.
    FinishMove {
        shard: u32,
        replicas: Vec<u64>,
    },
    /// The move failed before it changed the shard's voters; they are what `placement` says.
    AbortMove {
        shard: u32,
    },
    /// A member restarted at another address (a rescheduled pod) and keeps its id: the others
    /// dial it there from now on. Refused for a removed or unknown node, or an address another
    /// member has. (Last variant: log entries encode variants by position.)
    SetAddress {
        id: u64,
        addr: String,
    },
}

/// The answer to one [`MetaCommand`]: the placement version after it, or why it was refused
/// (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaReply {
    Done { version: u64 },
    Refused { reason: String },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMeta {
    /// `None` until [`MetaCommand::Init`].
    pub layout: Option<Layout>,
    pub replication: u32,
    pub members: BTreeMap<u64, Member>,
    /// Shard -> the voters of its Raft group, as of the last finished move.
    pub placement: BTreeMap<u32, Vec<u64>>,
    pub moves: BTreeMap<u32, Move>,
    /// Bumped by every change of members, placement or moves: gateways compare it.
    pub version: u64,
}

fn refused(reason: impl Into<String>) -> MetaReply {
    MetaReply::Refused { reason: reason.into() }
}

impl ClusterMeta {
    pub fn is_initialized(&self) -> bool {
        self.layout.is_some()
    }

    pub fn shard_count(&self) -> u32 {
        self.layout.as_ref().map_or(0, |l| l.shard_count)
    }

    pub fn addr_of(&self, id: u64) -> Option<&str> {
        self.members.get(&id).map(|m| m.addr.as_str())
    }

    /// Members in `state`, in id order.
    pub fn members_in(&self, state: MemberState) -> Vec<u64> {
        self.members
            .iter()
            .filter(|(_, m)| m.state == state)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The placement the node ring asks for: replicas only on `Active` members.
    pub fn desired_placement(&self) -> BTreeMap<u32, Vec<u64>> {
        let ring = Placement::new(self.members_in(MemberState::Active), self.replication as usize);
        (0..self.shard_count())
            .map(|shard| {
                let mut replicas = ring.replicas_of(shard);
                replicas.sort_unstable();
                (shard, replicas)
            })
            .collect()
    }

    /// Nodes that hold, or are about to receive, a replica of any shard.
    pub fn nodes_in_use(&self) -> BTreeSet<u64> {
        let mut used: BTreeSet<u64> = self.placement.values().flatten().copied().collect();
        used.extend(self.moves.values().filter_map(|m| m.add));
        used
    }

    /// Whether every shard sits on its desired replicas with no move in flight.
    pub fn is_settled(&self) -> bool {
        self.moves.is_empty() && self.placement == self.desired_placement()
    }

    /// The next moves the rebalancer should start, at most `budget` of them and one per shard:
    /// each adds one desired replica and/or removes one undesired one, so that a shard never has
    /// fewer voters than it had (a removal only goes with an add, or from a shard above its size).
    pub fn next_moves(&self, budget: usize) -> Vec<(u32, Move)> {
        let desired = self.desired_placement();
        let mut out = Vec::new();
        for (shard, want) in &desired {
            if out.len() >= budget {
                break;
            }
            if self.moves.contains_key(shard) {
                continue;
            }
            let have = self.placement.get(shard).map(Vec::as_slice).unwrap_or_default();
            let add = want.iter().find(|n| !have.contains(n)).copied();
            // Prefer removing a draining node's replica: that is what its operator waits for.
            let mut extra: Vec<u64> = have.iter().filter(|n| !want.contains(n)).copied().collect();
            extra.sort_by_key(|n| (self.members.get(n).map(|m| m.state) != Some(MemberState::Draining), *n));
            let remove = if add.is_some() || have.len() > want.len() {
                extra.first().copied()
            } else {
                None
            };
            if add.is_some() || remove.is_some() {
                out.push((*shard, Move { add, remove }));
            }
        }
        out
    }

    /// Applies one command; a refused command changes nothing.
    pub fn apply(&mut self, command: &MetaCommand) -> MetaReply {
        let reply = self.apply_inner(command);
        if matches!(reply, MetaReply::Done { .. }) {
            self.version += 1;
            MetaReply::Done { version: self.version }
        } else {
            reply
        }
    }

    fn apply_inner(&mut self, command: &MetaCommand) -> MetaReply {
        let ok = MetaReply::Done { version: 0 };
        if !self.is_initialized() && !matches!(command, MetaCommand::Init { .. }) {
            return refused("the cluster is not initialized yet");
        }
        match command {
            MetaCommand::Init {
                layout,
                replication,
                members,
                placement,
            } => {
                if self.is_initialized() {
                    return refused("the cluster is already initialized");
                }
                if let Err(e) = layout.validate() {
                    return refused(e.to_string());
                }
                if *replication == 0 || members.is_empty() {
                    return refused("a cluster needs a member and a replication factor of at least 1");
                }
                self.layout = Some(layout.clone());
                self.replication = *replication;
                self.members = members
                    .iter()
                    .map(|(id, addr)| {
                        let member = Member {
                            addr: addr.clone(),
                            state: MemberState::Active,
                        };
                        (*id, member)
                    })
                    .collect();
                self.placement = placement.clone();
                ok
            }
            MetaCommand::AddMember { id, addr } => {
                if *id == 0 {
                    return refused("node ids start at 1");
                }
                if let Some(m) = self.members.get(id) {
                    return if m.state == MemberState::Removed {
                        refused(format!("node {id} was removed; ids are never reused"))
                    } else if m.addr != *addr {
                        refused(format!("node {id} is already a member at {}", m.addr))
                    } else {
                        ok
                    };
                }
                if let Some((other, _)) = self
                    .members
                    .iter()
                    .find(|(_, m)| m.addr == *addr && m.state != MemberState::Removed)
                {
                    return refused(format!("{addr} is already node {other}'s address"));
                }
                self.members.insert(
                    *id,
                    Member {
                        addr: addr.clone(),
                        state: MemberState::Joining,
                    },
                );
                ok
            }
            MetaCommand::SetAddress { id, addr } => {
                if let Err(e) = crate::check_member_addr(addr) {
                    return refused(e);
                }
                if let Some((other, _)) = self
                    .members
                    .iter()
                    .find(|(o, m)| *o != id && m.addr == *addr && m.state != MemberState::Removed)
                {
                    return refused(format!("{addr} is already node {other}'s address"));
                }
                match self.members.get_mut(id) {
                    Some(m) if m.state != MemberState::Removed => {
                        m.addr = addr.clone();
                        ok
                    }
                    Some(_) => refused(format!("node {id} was removed")),
                    None => refused(format!("node {id} is not a member")),
                }
            }
            MetaCommand::Activate { id } => match self.members.get_mut(id) {
                Some(m) if m.state == MemberState::Joining => {
                    m.state = MemberState::Active;
                    ok
                }
                Some(m) if m.state == MemberState::Active => ok,
                Some(m) => refused(format!("node {id} is {}, not joining", m.state.as_str())),
                None => refused(format!("node {id} is not a member")),
            },
            MetaCommand::Drain { id } => {
                match self.members.get(id).map(|m| m.state) {
                    Some(MemberState::Active) => {}
                    Some(MemberState::Draining) => return ok,
                    Some(MemberState::Joining) => {
                        if let Some(m) = self.members.get_mut(id) {
                            m.state = MemberState::Removed;
                        }
                        return ok;
                    }
                    Some(state) => return refused(format!("node {id} is {}, not active", state.as_str())),
                    None => return refused(format!("node {id} is not a member")),
                }
                let others = self.members_in(MemberState::Active).len() - 1;
                if others < self.replication as usize {
                    return refused(format!(
                        "removing node {id} would leave {others} active node(s) for a replication factor of {}: \
                         every shard would run below its replication factor; add a node first",
                        self.replication
                    ));
                }
                if let Some(m) = self.members.get_mut(id) {
                    m.state = MemberState::Draining;
                }
                ok
            }
            MetaCommand::Remove { id } => {
                match self.members.get(id).map(|m| m.state) {
                    Some(MemberState::Draining) => {}
                    Some(MemberState::Removed) => return ok,
                    Some(state) => return refused(format!("node {id} is {}, not draining", state.as_str())),
                    None => return refused(format!("node {id} is not a member")),
                }
                if self.nodes_in_use().contains(id) || self.moves.values().any(|m| m.remove == Some(*id)) {
                    return refused(format!("node {id} still holds replicas"));
                }
                if let Some(m) = self.members.get_mut(id) {
                    m.state = MemberState::Removed;
                }
                ok
            }
            MetaCommand::BeginMove { shard, mv } => {
                if *shard >= self.shard_count() {
                    return refused(format!("shard {shard} does not exist"));
                }
                if self.moves.contains_key(shard) {
                    return refused(format!("shard {shard} already has a move in flight"));
                }
                if mv.add.is_none() && mv.remove.is_none() {
                    return refused("a move adds or removes a replica");
                }
                let have = self.placement.get(shard).cloned().unwrap_or_default();
                if let Some(add) = mv.add {
                    if self.members.get(&add).map(|m| m.state) != Some(MemberState::Active) {
                        return refused(format!("node {add} is not an active member"));
                    }
                    if have.contains(&add) {
                        return refused(format!("node {add} already holds shard {shard}"));
                    }
                }
                if let Some(remove) = mv.remove {
                    if !have.contains(&remove) {
                        return refused(format!("node {remove} does not hold shard {shard}"));
                    }
                    if mv.add.is_none() && have.len() <= 1 {
                        return refused(format!("node {remove} holds the last replica of shard {shard}"));
                    }
                }
                self.moves.insert(*shard, *mv);
                ok
            }
            MetaCommand::FinishMove { shard, replicas } => {
                if self.moves.remove(shard).is_none() {
                    return refused(format!("shard {shard} has no move in flight"));
                }
                let mut replicas = replicas.clone();
                replicas.sort_unstable();
                replicas.dedup();
                self.placement.insert(*shard, replicas);
                ok
            }
            MetaCommand::AbortMove { shard } => {
                if self.moves.remove(shard).is_none() {
                    return refused(format!("shard {shard} has no move in flight"));
                }
                ok
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(nodes: u64, shards: u32, replication: u32) -> ClusterMeta {
        let members: BTreeMap<u64, String> = (1..=nodes).map(|i| (i, format!("127.0.0.1:{}", 7000 + i))).collect();
        let ring = Placement::new(members.keys().copied(), replication as usize);
        let placement = (0..shards)
            .map(|s| {
                let mut r = ring.replicas_of(s);
                r.sort_unstable();
                (s, r)
            })
            .collect();
        let mut meta = ClusterMeta::default();
        let reply = meta.apply(&MetaCommand::Init {
            layout: Layout::new(shards),
            replication,
            members,
            placement,
        });
        assert_eq!(reply, MetaReply::Done { version: 1 });
        meta
    }

    /// Runs the rebalancer's plan to the end as if every move succeeded, checking each step.
    fn settle(meta: &mut ClusterMeta, budget: usize) -> usize {
        let mut moves = 0;
        for _ in 0..10_000 {
            let next = meta.next_moves(budget);
            if next.is_empty() {
                break;
            }
            assert!(next.len() <= budget);
            for (shard, mv) in next {
                let before = meta.placement[&shard].clone();
                assert!(matches!(
                    meta.apply(&MetaCommand::BeginMove { shard, mv }),
                    MetaReply::Done { .. }
                ));
                let mut after: Vec<u64> = before.iter().copied().filter(|n| Some(*n) != mv.remove).collect();
                after.extend(mv.add);
                assert!(
                    after.len() >= before.len().min(meta.replication as usize),
                    "{before:?} -> {after:?}"
                );
                let finish = MetaCommand::FinishMove { shard, replicas: after };
                assert!(matches!(meta.apply(&finish), MetaReply::Done { .. }));
                moves += 1;
            }
        }
        moves
    }

    #[test]
    fn growing_and_shrinking_converge_one_replica_at_a_time() {
        let mut meta = cluster(3, 64, 3);
        assert!(meta.is_settled());
        for id in [4, 5] {
            let add = MetaCommand::AddMember {
                id,
                addr: format!("127.0.0.1:{}", 7000 + id),
            };
            let desired = meta.desired_placement();
            assert!(matches!(meta.apply(&add), MetaReply::Done { .. }));
            // A joining node is not given replicas before it follows the metadata group.
            assert_eq!(meta.desired_placement(), desired);
            assert!(matches!(
                meta.apply(&MetaCommand::Activate { id }),
                MetaReply::Done { .. }
            ));
        }
        let moved = settle(&mut meta, 2);
        assert!(meta.is_settled());
        // 64 shards x 3 replicas over 5 nodes: the two new nodes take about 2/5 of 192.
        assert!((40..=110).contains(&moved), "{moved} moves");
        for id in [1, 2] {
            assert!(matches!(meta.apply(&MetaCommand::Drain { id }), MetaReply::Done { .. }));
            // Removal is refused while the node still holds replicas.
            assert!(matches!(
                meta.apply(&MetaCommand::Remove { id }),
                MetaReply::Refused { .. }
            ));
            settle(&mut meta, 2);
            assert!(!meta.nodes_in_use().contains(&id));
            assert!(matches!(
                meta.apply(&MetaCommand::Remove { id }),
                MetaReply::Done { .. }
            ));
        }
        assert!(meta.is_settled());
        assert_eq!(meta.members_in(MemberState::Active), vec![3, 4, 5]);
        assert!(meta.placement.values().all(|r| r == &vec![3, 4, 5]));
    }

    #[test]
    fn draining_below_the_replication_factor_is_refused_and_changes_nothing() {
        let mut meta = cluster(3, 8, 3);
        let before = meta.clone();
        let reply = meta.apply(&MetaCommand::Drain { id: 2 });
        let MetaReply::Refused { reason } = reply else {
            panic!("drain accepted: {reply:?}")
        };
        assert!(reason.contains("replication factor of 3"), "{reason}");
        assert_eq!(meta, before);
    }

    #[test]
    fn a_registration_can_be_withdrawn_before_the_node_runs() {
        let mut meta = cluster(3, 4, 3);
        let add = MetaCommand::AddMember {
            id: 4,
            addr: "127.0.0.1:7004".into(),
        };
        assert!(matches!(meta.apply(&add), MetaReply::Done { .. }));
        assert!(matches!(
            meta.apply(&MetaCommand::Drain { id: 4 }),
            MetaReply::Done { .. }
        ));
        assert_eq!(meta.members[&4].state, MemberState::Removed);
        assert!(meta.is_settled());
        // The id stays used.
        assert!(matches!(meta.apply(&add), MetaReply::Refused { .. }));
    }

    #[test]
    fn ids_and_addresses_are_never_shared() {
        let mut meta = cluster(3, 4, 3);
        let taken = MetaCommand::AddMember {
            id: 9,
            addr: "127.0.0.1:7001".into(),
        };
        assert!(matches!(meta.apply(&taken), MetaReply::Refused { .. }));
        let moved = MetaCommand::AddMember {
            id: 2,
            addr: "127.0.0.1:9999".into(),
        };
        assert!(matches!(meta.apply(&moved), MetaReply::Refused { .. }));
        let again = MetaCommand::AddMember {
            id: 2,
            addr: "127.0.0.1:7002".into(),
        };
        assert!(matches!(meta.apply(&again), MetaReply::Done { .. }));
    }

    #[test]
    fn moves_are_checked_against_the_placement() {
        let mut meta = cluster(3, 4, 3);
        let bad = [
            Move {
                add: Some(1),
                remove: None,
            },
            Move {
                add: Some(9),
                remove: None,
            },
            Move {
                add: None,
                remove: None,
            },
        ];
        for mv in bad {
            assert!(
                matches!(
                    meta.apply(&MetaCommand::BeginMove { shard: 0, mv }),
                    MetaReply::Refused { .. }
                ),
                "{mv:?}"
            );
        }
        let mut single = cluster(1, 2, 1);
        let last = Move {
            add: None,
            remove: Some(1),
        };
        assert!(matches!(
            single.apply(&MetaCommand::BeginMove { shard: 0, mv: last }),
            MetaReply::Refused { .. }
        ));
        assert!(matches!(
            meta.apply(&MetaCommand::AbortMove { shard: 1 }),
            MetaReply::Refused { .. }
        ));
    }

    #[test]
    fn nothing_but_init_before_init() {
        let mut meta = ClusterMeta::default();
        assert!(matches!(
            meta.apply(&MetaCommand::AddMember {
                id: 1,
                addr: "a:1".into()
            }),
            MetaReply::Refused { .. }
        ));
        assert_eq!(meta, ClusterMeta::default());
        let mut meta = cluster(1, 2, 1);
        let again = MetaCommand::Init {
            layout: Layout::new(2),
            replication: 1,
            members: BTreeMap::from([(1, "a:1".to_string())]),
            placement: BTreeMap::new(),
        };
        assert!(matches!(meta.apply(&again), MetaReply::Refused { .. }));
    }

    #[test]
    fn a_member_keeps_its_id_at_a_new_address_unless_another_has_it() {
        let mut meta = cluster(3, 2, 3);
        let moved = MetaCommand::SetAddress {
            id: 2,
            addr: "ivory-1.ivory:7001".into(),
        };
        assert!(matches!(meta.apply(&moved), MetaReply::Done { .. }));
        assert_eq!(meta.addr_of(2), Some("ivory-1.ivory:7001"));
        assert_eq!(meta.members[&2].state, MemberState::Active);
        let before = meta.clone();
        for refused in [
            MetaCommand::SetAddress {
                id: 3,
                addr: "ivory-1.ivory:7001".into(),
            },
            MetaCommand::SetAddress {
                id: 9,
                addr: "h:1".into(),
            },
            MetaCommand::SetAddress {
                id: 1,
                addr: "not an address".into(),
            },
        ] {
            assert!(matches!(meta.apply(&refused), MetaReply::Refused { .. }), "{refused:?}");
        }
        assert_eq!(meta, before, "a refusal changes nothing");
    }
}
