//! A cell's dimensions as the state keeps them.
//!
//! An availability check compares every cell of the product with each level of the reservation
//! hierarchy. With the dimensions in a map of their own, each cell cost a cache miss for the
//! map's vector and more for the names it points to; under a bulk reserve over products of four
//! cells those misses were a fifth of the server's CPU. Here the pairs are one string, kept
//! inside the cell itself up to 24 bytes (two short pairs, as in most keys).

use std::cmp::Ordering;

use compact_str::CompactString;
use litemap::LiteMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::model::Dims;

/// (name, value) pairs, sorted by name, written one after another as `<byte length>:<text>`
/// each (`7:colorid2:c06:sizeid1:m`). Ordered and encoded exactly as the [`Dims`] map they stand
/// for, so snapshots and state hashes do not change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CellDims(CompactString);

impl CellDims {
    pub fn of(dims: &Dims) -> CellDims {
        CellDims::from_sorted(dims.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// From pairs already sorted by name, each name once (as a map gives them).
    fn from_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> CellDims {
        use std::fmt::Write;
        let mut text = CompactString::default();
        for (name, value) in pairs {
            // Writing into a string cannot fail.
            let _ = write!(text, "{}:{name}{}:{value}", name.len(), value.len());
        }
        CellDims(text)
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> Pairs<'_> {
        Pairs(self.0.as_str())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Whether every (dimension, value) of `filter` is among the pairs.
    pub fn contains_all(&self, filter: &[(&String, &String)]) -> bool {
        self.read().contains_all(filter)
    }

    /// The pairs read once, to check several filters against them (an availability check has
    /// one per level of the reservation hierarchy).
    pub fn read(&self) -> ReadDims<'_> {
        ReadDims(self.iter().collect())
    }

    /// This against `dims`, in the order [`Dims`] has (pairs compared in turn).
    pub fn cmp_dims(&self, dims: &Dims) -> Ordering {
        self.iter().cmp(dims.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// A [`CellDims`]' pairs, read.
pub(crate) struct ReadDims<'a>(SmallVec<[(&'a str, &'a str); 4]>);

impl ReadDims<'_> {
    /// Whether every (dimension, value) of `filter` is among the pairs.
    pub fn contains_all(&self, filter: &[(&String, &String)]) -> bool {
        filter.iter().all(|(k, v)| {
            self.0
                .iter()
                .any(|(name, value)| *name == k.as_str() && *value == v.as_str())
        })
    }
}

/// The pairs of a [`CellDims`].
pub(crate) struct Pairs<'a>(&'a str);

impl<'a> Pairs<'a> {
    /// One `len:text` part. The length is read byte by byte: `find(':')` and `parse` were a
    /// tenth of a follower's apply under spread (a `memcmp` call per character searched).
    fn part(&mut self) -> Option<&'a str> {
        let bytes = self.0.as_bytes();
        let mut len = 0usize;
        let mut digits = 0;
        while let Some(&byte) = bytes.get(digits) {
            if byte == b':' {
                break;
            }
            let digit = byte.checked_sub(b'0').filter(|d| *d < 10)?;
            len = len.checked_mul(10)?.checked_add(usize::from(digit))?;
            digits += 1;
        }
        if digits == 0 || bytes.get(digits) != Some(&b':') {
            return None;
        }
        let start = digits + 1;
        let part = self.0.get(start..start.checked_add(len)?)?;
        self.0 = self.0.get(start + len..)?;
        Some(part)
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        Some((self.part()?, self.part()?))
    }
}

impl Ord for CellDims {
    fn cmp(&self, other: &Self) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for CellDims {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for CellDims {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // postcard writes a map's length first.
        let mut map = serializer.serialize_map(Some(self.iter().count()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for CellDims {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = LiteMap::<CompactString, CompactString>::deserialize(deserializer)?;
        Ok(CellDims::from_sorted(map.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims_of(pairs: &[(&str, &str)]) -> Dims {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn pairs_read_back_as_written_whatever_their_text() {
        for pairs in [
            &[][..],
            &[("colorid", "red"), ("sizeid", "m")][..],
            &[
                ("a:b", "7:x"),
                ("empty", ""),
                ("", "no name"),
                ("naïve", "größe-longer-than-24-bytes"),
            ][..],
        ] {
            let dims = dims_of(pairs);
            let stored = CellDims::of(&dims);
            let back: Vec<(&str, &str)> = stored.iter().collect();
            let want: Vec<(&str, &str)> = dims.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(back, want);
            assert_eq!(stored.cmp_dims(&dims), Ordering::Equal);
            for (k, v) in dims.iter() {
                assert_eq!(stored.get(k), Some(v.as_str()));
            }
            assert_eq!(stored.get("nosuch"), None);
        }
    }

    #[test]
    fn a_part_reads_its_length_and_text_and_nothing_malformed() {
        let mut pairs = Pairs("12:colorid:red0:");
        assert_eq!(pairs.part(), Some("colorid:red0"));
        assert_eq!(pairs.part(), None, "no digits before the colon");
        for bad in ["", ":x", "3", "3x:abc", "5:abc", "99999999999999999999999:x"] {
            assert_eq!(Pairs(bad).part(), None, "{bad:?}");
        }
        assert_eq!(Pairs("0:").part(), Some(""));
        assert_eq!(Pairs("3:abcrest").part(), Some("abc"));
    }

    #[test]
    fn two_short_pairs_stay_inline() {
        let stored = CellDims::of(&dims_of(&[("colorid", "c0"), ("sizeid", "m")]));
        assert!(!stored.0.is_heap_allocated());
    }

    /// Sorted and encoded as the [`Dims`] maps they stand for.
    #[test]
    fn order_and_encoding_are_those_of_dims() {
        let all = [
            dims_of(&[("colorid", "red"), ("sizeid", "m")]),
            dims_of(&[("colorid", "blue")]),
            dims_of(&[]),
            dims_of(&[("colorid", "red")]),
            dims_of(&[("colorid", "re"), ("sizeid", "d")]),
            dims_of(&[
                ("colorid", "blue"),
                ("sizeid", "a-size-name-longer-than-twenty-four-bytes"),
            ]),
            dims_of(&[("c", "x"), ("colorid", "a")]),
        ];
        for a in &all {
            for b in &all {
                assert_eq!(CellDims::of(a).cmp(&CellDims::of(b)), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(CellDims::of(a).cmp_dims(b), a.cmp(b));
            }
            let bytes = postcard::to_stdvec(a).expect("encode");
            assert_eq!(postcard::to_stdvec(&CellDims::of(a)).expect("encode"), bytes);
            let decoded: CellDims = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(decoded, CellDims::of(a));
        }
    }
}
