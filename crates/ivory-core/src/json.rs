//! JSON leniency that real IV clients rely on (../../../docs/iv-api.md §0): keys in any case.
//!
//! Structural keys are renamed to their canonical spelling from a list of known field names;
//! every other key (a data-source, measure or dimension name) is lower-cased, since Ivory compares
//! those names in lower case anyway.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Longest nesting accepted in a JSON body; deeper input is refused rather than recursed into.
pub const JSON_DEPTH_MAX: usize = 32;

/// A lookup from lower-cased key to its canonical spelling.
pub struct KeyCanon {
    by_lower: BTreeMap<String, &'static str>,
}

impl KeyCanon {
    pub fn new(known: &[&'static str]) -> KeyCanon {
        KeyCanon {
            by_lower: known.iter().map(|k| (k.to_ascii_lowercase(), *k)).collect(),
        }
    }

    /// The canonical spelling of `key`: the known field it names in any case, else lower case.
    pub fn canonical(&self, key: &str) -> String {
        let lower = key.trim().to_ascii_lowercase();
        match self.by_lower.get(&lower) {
            Some(known) => (*known).to_string(),
            None => lower,
        }
    }

    /// Rewrites every object key in `value`, recursively.
    ///
    /// # Errors
    /// When `value` nests deeper than [`JSON_DEPTH_MAX`], or when two keys of one object become
    /// the same key (`"onhand"` and `"OnHand"`): that would silently drop one of them.
    pub fn apply(&self, value: Value) -> Result<Value, String> {
        self.apply_at(value, 0, "")
    }

    fn apply_at(&self, value: Value, depth: usize, path: &str) -> Result<Value, String> {
        if depth > JSON_DEPTH_MAX {
            return Err(format!("{path}: nested deeper than {JSON_DEPTH_MAX} levels"));
        }
        match value {
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (key, inner) in map {
                    let canonical = self.canonical(&key);
                    let inner_path = if path.is_empty() {
                        canonical.clone()
                    } else {
                        format!("{path}.{canonical}")
                    };
                    let inner = self.apply_at(inner, depth + 1, &inner_path)?;
                    if out.insert(canonical, inner).is_some() {
                        return Err(format!(
                            "{inner_path}: the key is given twice (keys are case-insensitive)"
                        ));
                    }
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| self.apply_at(item, depth + 1, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renames_known_and_lowercases_names() {
        let canon = KeyCanon::new(&["productId", "quantities"]);
        let v = canon
            .apply(json!({"PRODUCTID": "p", "Quantities": {"POS": {"InBound": 1}}}))
            .unwrap();
        assert_eq!(v, json!({"productId": "p", "quantities": {"pos": {"inbound": 1}}}));
    }

    #[test]
    fn duplicate_keys_after_folding_are_refused() {
        let canon = KeyCanon::new(&[]);
        let err = canon.apply(json!({"a": {"OnHand": 1, "onhand": 2}})).unwrap_err();
        assert!(err.contains("a.onhand"), "{err}");
    }
}
