//! Calculated measures: formulas over physical measures, where a term may itself be a
//! calculated measure (expanded when the configuration is compiled, so evaluation only ever
//! sums physical measures).

use std::collections::{BTreeMap, BTreeSet};

use litemap::LiteMap;

use super::ConfigError;
use super::{ConfigDoc, DataSource, FormulaDoc, bad};
use crate::model::{MeasureRef, Quantities, canonical_name};
use crate::qty::Qty;

/// A calculated measure: the sum of its addition terms minus the sum of its subtraction terms,
/// every term a physical measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Formula {
    add: Vec<MeasureRef>,
    sub: Vec<MeasureRef>,
    /// Data source -> measure -> how often it is added less how often it is subtracted. Every
    /// availability check evaluates a formula of up to a few dozen terms over a cell that holds
    /// a few measures: walking the cell's measures and looking each up here costs a handful of
    /// string comparisons where looking up every term in the cell cost two searches per term.
    coefficients: Quantities<i64>,
}

impl Formula {
    pub fn new(add: Vec<MeasureRef>, sub: Vec<MeasureRef>) -> Formula {
        let mut coefficients: Quantities<i64> = Quantities::new();
        for (terms, sign) in [(&add, 1), (&sub, -1)] {
            for m in terms {
                let measures = coefficients.entry(m.data_source.clone()).or_default();
                *measures.entry(m.measure.clone()).or_default() += sign;
            }
        }
        Formula { add, sub, coefficients }
    }

    pub fn add(&self) -> &[MeasureRef] {
        &self.add
    }

    pub fn sub(&self) -> &[MeasureRef] {
        &self.sub
    }

    /// The formula over one cell's (or one sum's) physical quantities, as (data source, measure,
    /// quantity) with each data source's measures together. Exact: quantities are bounded far
    /// below the decimal's range, so the order of the additions does not matter.
    pub fn value<'a>(&self, quantities: impl IntoIterator<Item = (&'a str, &'a str, Qty)>) -> Qty {
        let mut total = Qty::ZERO;
        let mut source: Option<(&str, Option<&LiteMap<String, i64>>)> = None;
        for (data_source, measure, quantity) in quantities {
            let coefficients = match source {
                Some((name, coefficients)) if name == data_source => coefficients,
                _ => {
                    let coefficients = self.coefficients.get(data_source);
                    source = Some((data_source, coefficients));
                    coefficients
                }
            };
            let Some(coefficients) = coefficients else { continue };
            total = match coefficients.get(measure) {
                None | Some(0) => total,
                Some(1) => total + quantity,
                Some(-1) => total - quantity,
                Some(&k) => total + quantity.times(k),
            };
        }
        total
    }
}

/// A map of maps (data source -> measure -> quantity) as [`Formula::value`] reads it.
pub fn triples<K: std::borrow::Borrow<str> + Ord>(
    quantities: &LiteMap<K, LiteMap<K, Qty>>,
) -> impl Iterator<Item = (&str, &str, Qty)> {
    quantities
        .iter()
        .flat_map(|(ds, measures)| measures.iter().map(move |(m, q)| (ds.borrow(), m.borrow(), *q)))
}

/// A calculated measure as declared: the path of its field and its formula.
type Declared<'a> = BTreeMap<MeasureRef, (String, &'a FormulaDoc)>;

/// Calculated measures, each expanded into physical terms. A term may name another calculated
/// measure (IV's `@iv.@available_to_reserve` builds on the calculated `iv.onhand`): its terms
/// are taken in, with their signs flipped under a subtraction; a cycle is refused.
pub(crate) fn compile_calculated(
    doc: &ConfigDoc,
    data_sources: &BTreeMap<String, DataSource>,
) -> Result<BTreeMap<MeasureRef, Formula>, ConfigError> {
    let mut declared: Declared = BTreeMap::new();
    for (ds_key, ds) in &doc.inventory_system_configurations {
        let ds_name = canonical_name(ds_key);
        for (calc_key, formula) in &ds.calculated_measures {
            let field = format!("inventorySystemConfigurations.{ds_key}.calculatedMeasures.{calc_key}");
            let calc = MeasureRef::new(&ds_name, calc_key);
            if data_sources
                .get(&ds_name)
                .is_some_and(|d| d.physical.contains(&calc.measure))
            {
                return Err(bad(
                    field,
                    "a calculated measure cannot share a physical measure's name",
                ));
            }
            declared.insert(calc, (field, formula));
        }
    }
    let mut out = BTreeMap::new();
    for calc in declared.keys() {
        expand(calc, &declared, data_sources, &mut out, &mut Vec::new())?;
    }
    Ok(out)
}

fn expand(
    calc: &MeasureRef,
    declared: &Declared,
    data_sources: &BTreeMap<String, DataSource>,
    out: &mut BTreeMap<MeasureRef, Formula>,
    stack: &mut Vec<MeasureRef>,
) -> Result<Formula, ConfigError> {
    if let Some(done) = out.get(calc) {
        return Ok(done.clone());
    }
    let Some((field, formula)) = declared.get(calc) else {
        return Err(bad("(configuration)", format!("'{calc}' is not declared")));
    };
    stack.push(calc.clone());
    let mut seen = BTreeSet::new();
    let (mut add, mut sub) = (Vec::new(), Vec::new());
    let lists = [
        (&formula.addition_modifiers, "additionModifiers", true),
        (&formula.subtraction_modifiers, "subtractionModifiers", false),
    ];
    for (list, which, positive) in lists {
        for (i, term) in list.iter().enumerate() {
            let tfield = format!("{field}.{which}[{i}]");
            let m = MeasureRef::parse(term)
                .ok_or_else(|| bad(&tfield, format!("'{term}' is not of the form dataSource.measure")))?;
            if !seen.insert(m.clone()) {
                return Err(bad(&tfield, format!("'{m}' appears twice in the formula")));
            }
            let (plus, minus) = if data_sources
                .get(&m.data_source)
                .is_some_and(|d| d.physical.contains(&m.measure))
            {
                (vec![m], Vec::new())
            } else if declared.contains_key(&m) {
                if stack.contains(&m) {
                    return Err(bad(&tfield, format!("'{m}' refers back to '{calc}' (a cycle)")));
                }
                let inner = expand(&m, declared, data_sources, out, stack)?;
                (inner.add, inner.sub)
            } else {
                return Err(bad(&tfield, format!("'{m}' is not a configured measure")));
            };
            if positive {
                add.extend(plus);
                sub.extend(minus);
            } else {
                add.extend(minus);
                sub.extend(plus);
            }
        }
    }
    stack.pop();
    let result = Formula::new(add, sub);
    out.insert(calc.clone(), result.clone());
    Ok(result)
}
