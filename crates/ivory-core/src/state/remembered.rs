//! A shard's remembered event ids, compact in memory: up to a million per shard, so every byte
//! of a record is paid a million times (plus the hash table's empty slots, 44-87% load).
//!
//! A record is 44 bytes (60 with its key in the table, 80 before): the scope of the event (its
//! environment's and partition's tags, the same for every event of a partition) is a `u32` index
//! into a per-shard table of the scopes in use, and the result is the reservation id of a plain
//! success (nearly all), with the rare other results kept aside. Encoded exactly as the map of
//! [`EventRecord`]s it replaced (sorted by key), so snapshots and state hashes keep their bytes.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{EventKey, EventRecord, FastMap, RememberedResult};
use crate::command::CmdResult;

/// `Compact::reservation` of a plain success without a reservation id.
const PLAIN: [u8; 16] = [0; 16];
/// `Compact::reservation` of a result kept in `RememberedEvents::others`. A plain success whose
/// reservation id spells either marker is kept there too, so the two never mean an id.
const OTHER: [u8; 16] = [0xff; 16];

/// One remembered command. The timestamp is kept as bytes so that the record aligns to 4, not 8:
/// 44 bytes, not 48.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Compact {
    fingerprint: [u8; 16],
    /// The reservation id of a plain success, or [`PLAIN`] or [`OTHER`].
    reservation: [u8; 16],
    ts_ms: [u8; 8],
    /// Index in `RememberedEvents::scopes`.
    scope: u32,
}

/// The environment and partition tags ([`super::scope_tags`]) of remembered events, and how many
/// of them are remembered: the slot is reused once none is.
#[derive(Clone, Debug)]
struct Scope {
    environment_tag: u64,
    partition_tag: u64,
    events: u32,
}

/// Remembered event ids: key -> fingerprint, timestamp, scope and result.
#[derive(Clone, Debug, Default)]
pub(crate) struct RememberedEvents {
    events: FastMap<EventKey, Compact>,
    /// Results that are not a plain success (refusals, conflicts, odd ids), by key.
    others: FastMap<EventKey, Box<CmdResult>>,
    scopes: Vec<Scope>,
    scope_ids: FastMap<(u64, u64), u32>,
    /// Slots of `scopes` no event uses.
    free: Vec<u32>,
}

/// A remembered event, as read.
pub(crate) struct Seen<'a> {
    record: &'a Compact,
    other: Option<&'a CmdResult>,
}

impl<'a> Seen<'a> {
    pub fn fingerprint(&self) -> &'a [u8; 16] {
        &self.record.fingerprint
    }

    pub fn ts_ms(&self) -> u64 {
        u64::from_le_bytes(self.record.ts_ms)
    }

    /// The event's scope: a small number, the same for every event of a partition while any is
    /// remembered (not replicated: it may differ between replicas).
    pub fn scope(&self) -> u32 {
        self.record.scope
    }

    pub fn result(&self) -> CmdResult {
        self.result_ref().to_result()
    }

    fn result_ref(&self) -> ResultRef<'a> {
        match (self.record.reservation, self.other) {
            (OTHER, Some(result)) => ResultRef::Other(result),
            (PLAIN, _) => ResultRef::Plain(None),
            (reservation, _) => ResultRef::Plain(Some(reservation)),
        }
    }
}

/// A remembered result, borrowed; encoded as the [`CmdResult`] it stands for.
enum ResultRef<'a> {
    Plain(Option<[u8; 16]>),
    Other(&'a CmdResult),
}

impl ResultRef<'_> {
    fn to_result(&self) -> CmdResult {
        match self {
            ResultRef::Plain(reservation) => RememberedResult::Success {
                reservation: *reservation,
            }
            .result(),
            ResultRef::Other(result) => (*result).clone(),
        }
    }
}

impl Serialize for ResultRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ResultRef::Plain(_) => self.to_result().serialize(serializer),
            ResultRef::Other(result) => result.serialize(serializer),
        }
    }
}

impl RememberedEvents {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn get(&self, key: &EventKey) -> Option<Seen<'_>> {
        let record = self.events.get(key)?;
        let other = (record.reservation == OTHER)
            .then(|| self.others.get(key).map(|b| &**b))
            .flatten();
        Some(Seen { record, other })
    }

    /// Remembers an event (replacing what `key` had); returns its scope, or `None` when no scope
    /// slot is left (more than 2^32 partitions with remembered events: not with a bounded
    /// state), and then the event is not remembered.
    pub fn insert(
        &mut self,
        key: EventKey,
        fingerprint: [u8; 16],
        ts_ms: u64,
        (environment_tag, partition_tag): (u64, u64),
        result: RememberedResult,
    ) -> Option<u32> {
        self.remove(&key);
        let scope = self.scope_slot(environment_tag, partition_tag)?;
        let reservation = match result {
            RememberedResult::Success { reservation: None } => PLAIN,
            RememberedResult::Success { reservation: Some(id) } if id != PLAIN && id != OTHER => id,
            other => {
                self.others.insert(key, Box::new(other.result()));
                OTHER
            }
        };
        self.events.insert(
            key,
            Compact {
                fingerprint,
                reservation,
                ts_ms: ts_ms.to_le_bytes(),
                scope,
            },
        );
        Some(scope)
    }

    /// The slot of a scope, taken (or reused) if new; counts one more event in it.
    fn scope_slot(&mut self, environment_tag: u64, partition_tag: u64) -> Option<u32> {
        let tags = (environment_tag, partition_tag);
        let slot = match self.scope_ids.get(&tags) {
            Some(slot) => *slot,
            None => {
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        let slot = u32::try_from(self.scopes.len()).ok()?;
                        self.scopes.push(Scope {
                            environment_tag,
                            partition_tag,
                            events: 0,
                        });
                        slot
                    }
                };
                let scope = self.scopes.get_mut(slot as usize)?;
                *scope = Scope {
                    environment_tag,
                    partition_tag,
                    events: 0,
                };
                self.scope_ids.insert(tags, slot);
                slot
            }
        };
        let scope = self.scopes.get_mut(slot as usize)?;
        scope.events += 1;
        Some(slot)
    }

    /// Forgets an event; returns the scope it had.
    pub fn remove(&mut self, key: &EventKey) -> Option<u32> {
        let record = self.events.remove(key)?;
        if record.reservation == OTHER {
            self.others.remove(key);
        }
        self.release_scope(record.scope, 1);
        Some(record.scope)
    }

    fn release_scope(&mut self, slot: u32, events: u32) {
        if let Some(scope) = self.scopes.get_mut(slot as usize) {
            scope.events = scope.events.saturating_sub(events);
            if scope.events == 0 {
                self.scope_ids.remove(&(scope.environment_tag, scope.partition_tag));
                self.free.push(slot);
            }
        }
    }

    /// Keeps the events of the scopes (environment tag, partition tag) that `keep` accepts.
    pub fn retain_scopes(&mut self, mut keep: impl FnMut(u64, u64) -> bool) {
        let doomed: Vec<bool> = self
            .scopes
            .iter()
            .map(|s| s.events > 0 && !keep(s.environment_tag, s.partition_tag))
            .collect();
        if !doomed.contains(&true) {
            return;
        }
        let is_doomed = |slot: u32| doomed.get(slot as usize).copied().unwrap_or(false);
        self.events.retain(|_, record| !is_doomed(record.scope));
        let events = &self.events;
        self.others.retain(|key, _| events.contains_key(key));
        for (slot, doomed) in doomed.iter().enumerate() {
            if *doomed {
                let events = self.scopes.get(slot).map_or(0, |s| s.events);
                self.release_scope(slot as u32, events);
            }
        }
    }
}

/// The form the state hash and snapshots read: the map of [`EventRecord`]s, sorted by key.
impl Serialize for RememberedEvents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// [`EventRecord`]'s fields, borrowed.
        #[derive(Serialize)]
        struct RecordRef<'a> {
            fingerprint: &'a [u8; 16],
            ts_ms: u64,
            environment_tag: u64,
            partition_tag: u64,
            result: ResultRef<'a>,
        }
        let mut keys: Vec<&EventKey> = self.events.keys().collect();
        keys.sort_unstable();
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            let seen = self
                .get(key)
                .ok_or_else(|| S::Error::custom("remembered event vanished"))?;
            let scope = self
                .scopes
                .get(seen.scope() as usize)
                .ok_or_else(|| S::Error::custom("remembered event without a scope"))?;
            if seen.record.reservation == OTHER && seen.other.is_none() {
                return Err(S::Error::custom("remembered event without its result"));
            }
            let record = RecordRef {
                fingerprint: seen.fingerprint(),
                ts_ms: seen.ts_ms(),
                environment_tag: scope.environment_tag,
                partition_tag: scope.partition_tag,
                result: seen.result_ref(),
            };
            entries.push((key, record));
        }
        serializer.collect_map(entries)
    }
}

impl<'de> Deserialize<'de> for RememberedEvents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RememberedEvents, D::Error> {
        struct Records;
        impl<'de> Visitor<'de> for Records {
            type Value = RememberedEvents;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of remembered event ids")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RememberedEvents, A::Error> {
                let mut out = RememberedEvents::default();
                // A hint from the bytes, so bounded: a large one is grown to.
                out.events.reserve(map.size_hint().unwrap_or(0).min(1 << 16));
                while let Some((key, record)) = map.next_entry::<EventKey, EventRecord>()? {
                    let tags = (record.environment_tag, record.partition_tag);
                    out.insert(key, record.fingerprint, record.ts_ms, tags, record.result)
                        .ok_or_else(|| serde::de::Error::custom("too many partitions with remembered events"))?;
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(Records)
    }
}

/// Equal when the same events are remembered with the same records (scope slots may differ).
impl PartialEq for RememberedEvents {
    fn eq(&self, other: &RememberedEvents) -> bool {
        let tags = |events: &RememberedEvents, slot: u32| {
            events
                .scopes
                .get(slot as usize)
                .map(|s| (s.environment_tag, s.partition_tag))
        };
        self.len() == other.len()
            && self.events.keys().all(|key| match (self.get(key), other.get(key)) {
                (Some(a), Some(b)) => {
                    a.fingerprint() == b.fingerprint()
                        && a.ts_ms() == b.ts_ms()
                        && tags(self, a.scope()) == tags(other, b.scope())
                        && a.result() == b.result()
                }
                _ => false,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::command::Outcome;

    /// The record is what a shard keeps per remembered event id (up to a million): 80 bytes
    /// with the key before, 60 now.
    #[test]
    fn a_remembered_event_stays_small() {
        assert!(
            std::mem::size_of::<Compact>() <= 44,
            "{}",
            std::mem::size_of::<Compact>()
        );
        assert!(std::mem::size_of::<(EventKey, Compact)>() <= 60);
    }

    fn record(i: u8, result: &CmdResult, env: u64, partition: u64) -> EventRecord {
        EventRecord {
            fingerprint: [i; 16],
            ts_ms: 1_000 + u64::from(i),
            environment_tag: env,
            partition_tag: partition,
            result: RememberedResult::of(result),
        }
    }

    /// Encoded as the sorted map of full records it replaced, whatever the results; decoded
    /// back to the same; scopes freed and reused as events go and come.
    #[test]
    fn remembered_events_encode_as_the_map_of_records_did() {
        let reserved = |id: [u8; 16]| CmdResult {
            reservation_id: Some(crate::stock::reservation_id_text(&id)),
            ..CmdResult::success()
        };
        let results = [
            CmdResult::success(),
            reserved([0x5a; 16]),
            reserved(PLAIN),
            reserved(OTHER),
            CmdResult::refused(Outcome::Insufficient, "not enough stock"),
            CmdResult {
                reservation_id: Some("not-hex".into()),
                ..CmdResult::success()
            },
        ];
        let mut before: HashMap<EventKey, EventRecord> = HashMap::new();
        let mut events = RememberedEvents::default();
        for i in 0..60u8 {
            let key = [i.wrapping_mul(37); 16];
            let result = &results[usize::from(i) % results.len()];
            let (env, partition) = (u64::from(i % 2), u64::from(i % 7));
            let r = record(i, result, env, partition);
            let scope = events
                .insert(key, r.fingerprint, r.ts_ms, (env, partition), r.result.clone())
                .expect("a scope");
            assert_eq!(events.get(&key).map(|s| s.scope()), Some(scope));
            assert_eq!(events.get(&key).map(|s| s.result()).as_ref(), Some(result));
            before.insert(key, r);
        }
        assert_eq!(events.scopes.len(), 14, "one slot per (environment, partition)");
        #[derive(Serialize)]
        struct Before<'a>(#[serde(with = "crate::state::sorted_map")] &'a HashMap<EventKey, EventRecord>);
        let check = |events: &RememberedEvents, before: &HashMap<EventKey, EventRecord>| {
            let bytes = postcard::to_stdvec(events).expect("encode");
            assert_eq!(bytes, postcard::to_stdvec(&Before(before)).expect("encode"));
            let back: RememberedEvents = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(&back, events);
            assert_eq!(postcard::to_stdvec(&back).expect("encode"), bytes);
        };
        check(&events, &before);

        // Every event of partition 3 goes: its slots are free, and reused by a new partition.
        let gone: Vec<EventKey> = before
            .iter()
            .filter(|(_, r)| r.partition_tag == 3)
            .map(|(k, _)| *k)
            .collect();
        for key in &gone {
            events.remove(key).expect("remembered");
            before.remove(key);
        }
        assert_eq!(events.free.len(), 2);
        let aside = |r: &EventRecord| match r.result {
            RememberedResult::Success { reservation: None } => false,
            RememberedResult::Success { reservation: Some(id) } => id == PLAIN || id == OTHER,
            RememberedResult::Other(_) => true,
        };
        assert_eq!(events.others.len(), before.values().filter(|r| aside(r)).count());
        check(&events, &before);
        let r = record(200, &results[4], 9, 9);
        events
            .insert([200; 16], r.fingerprint, r.ts_ms, (9, 9), r.result.clone())
            .expect("a scope");
        before.insert([200; 16], r);
        assert_eq!((events.scopes.len(), events.free.len()), (14, 1), "a free slot reused");
        check(&events, &before);

        // A clean-up of environment 1's partitions 1 and 2.
        events.retain_scopes(|env, partition| !(env == 1 && (partition == 1 || partition == 2)));
        before.retain(|_, r| !(r.environment_tag == 1 && (r.partition_tag == 1 || r.partition_tag == 2)));
        assert_eq!(events.len(), before.len());
        assert_eq!(events.free.len(), 3);
        check(&events, &before);
        let others = events.others.len();
        assert!(others > 0 && others < events.len(), "{others} of {}", events.len());
    }
}
