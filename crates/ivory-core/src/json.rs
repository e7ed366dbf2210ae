//! JSON leniency that real IV clients rely on (docs/iv-compatibility.md §0): keys in any case.
//!
//! Structural keys are renamed to their canonical spelling from a list of known field names;
//! every other key (a data-source, measure or dimension name) is lower-cased, since Ivory compares
//! those names in lower case anyway.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Longest nesting accepted in a JSON body; deeper input is refused rather than recursed into.
pub const JSON_DEPTH_MAX: usize = 32;

/// A lookup from lower-cased key to its canonical spelling. Build it once (a `static`): it sits
/// on every request's path.
pub struct KeyCanon {
    by_lower: HashMap<String, &'static str>,
    canonical: HashSet<&'static str>,
}

/// Where in a body a refusal is, collected while unwinding: the success path builds no paths.
enum Step {
    Key(String),
    Index(usize),
}

struct Refusal {
    steps: Vec<Step>,
    message: String,
}

impl Refusal {
    fn at(mut self, step: Step) -> Refusal {
        self.steps.push(step);
        self
    }

    /// `a.b[2].c: message`, as the path was written before it was collected lazily.
    fn render(self) -> String {
        let mut path = String::new();
        for step in self.steps.iter().rev() {
            match step {
                Step::Key(key) if path.is_empty() => path.push_str(key),
                Step::Key(key) => {
                    path.push('.');
                    path.push_str(key);
                }
                Step::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        format!("{path}: {}", self.message)
    }
}

impl KeyCanon {
    pub fn new(known: &[&'static str]) -> KeyCanon {
        KeyCanon {
            by_lower: known.iter().map(|k| (k.to_ascii_lowercase(), *k)).collect(),
            canonical: known.iter().copied().collect(),
        }
    }

    /// The canonical spelling of `key`: the known field it names in any case, else lower case.
    pub fn canonical(&self, key: &str) -> String {
        self.canonical_of(key).into_owned()
    }

    /// Borrowed when `key` is canonical already, which is what well-behaved clients send.
    fn canonical_of<'k>(&self, key: &'k str) -> Cow<'k, str> {
        if self.canonical.contains(key) {
            return Cow::Borrowed(key);
        }
        let trimmed = key.trim();
        if trimmed.len() == key.len() && !key.bytes().any(|b| b.is_ascii_uppercase()) {
            return match self.by_lower.get(key) {
                Some(known) => Cow::Owned((*known).to_string()),
                None => Cow::Borrowed(key),
            };
        }
        let lower = trimmed.to_ascii_lowercase();
        match self.by_lower.get(&lower) {
            Some(known) => Cow::Owned((*known).to_string()),
            None => Cow::Owned(lower),
        }
    }

    /// Rewrites every object key in `value`, recursively.
    ///
    /// # Errors
    /// When `value` nests deeper than [`JSON_DEPTH_MAX`], or when two keys of one object become
    /// the same key (`"onhand"` and `"OnHand"`): that would silently drop one of them.
    pub fn apply(&self, mut value: Value) -> Result<Value, String> {
        match self.apply_at(&mut value, 0) {
            Ok(()) => Ok(value),
            Err(refusal) => Err(refusal.render()),
        }
    }

    fn apply_at(&self, value: &mut Value, depth: usize) -> Result<(), Refusal> {
        if depth > JSON_DEPTH_MAX {
            return Err(Refusal {
                steps: Vec::new(),
                message: format!("nested deeper than {JSON_DEPTH_MAX} levels"),
            });
        }
        match value {
            Value::Object(map) => {
                if map.keys().all(|k| matches!(self.canonical_of(k), Cow::Borrowed(_))) {
                    // Keys already canonical cannot collide: only the values need a look.
                    for (key, inner) in map.iter_mut() {
                        self.apply_at(inner, depth + 1)
                            .map_err(|r| r.at(Step::Key(key.clone())))?;
                    }
                    return Ok(());
                }
                let old = std::mem::take(map);
                for (key, mut inner) in old {
                    let canonical = self.canonical_of(&key).into_owned();
                    if let Err(r) = self.apply_at(&mut inner, depth + 1) {
                        return Err(r.at(Step::Key(canonical)));
                    }
                    if map.contains_key(&canonical) {
                        return Err(Refusal {
                            steps: vec![Step::Key(canonical)],
                            message: "the key is given twice (keys are case-insensitive)".into(),
                        });
                    }
                    map.insert(canonical, inner);
                }
                Ok(())
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.apply_at(item, depth + 1).map_err(|r| r.at(Step::Index(i)))?;
                }
                Ok(())
            }
            _ => Ok(()),
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

    #[test]
    fn refusals_name_the_path_and_canonical_keys_are_kept() {
        let canon = KeyCanon::new(&["items"]);
        let mut deep = json!(1);
        for _ in 0..=JSON_DEPTH_MAX {
            deep = json!([deep]);
        }
        let err = canon
            .apply(json!({"Items": [{"x": 1}, {"B": {"c": 1, "C": 2}}]}))
            .unwrap_err();
        assert_eq!(err, "items[1].b.c: the key is given twice (keys are case-insensitive)");
        let err = canon.apply(json!({"items": deep})).unwrap_err();
        assert!(err.starts_with("items[0][0]"), "{err}");
        assert!(
            err.ends_with(&format!("nested deeper than {JSON_DEPTH_MAX} levels")),
            "{err}"
        );
        let body = json!({"items": [{"a": {"b": 1}}], "other": null});
        assert_eq!(canon.apply(body.clone()).unwrap(), body);
    }
}
