//! Reads: index and exact queries over the partitions of one shard, and admin reads.
//!
//! Records aggregate cells to (product, site, location, group-by dimensions) and carry every
//! configured physical measure and every calculated one, as IV's records do (docs/iv-compatibility.md §2.6).

use std::collections::BTreeMap;

use litemap::LiteMap;
use serde::{Deserialize, Serialize};

use crate::config::{Config, triples};
use crate::model::{Dims, LOCATION_ID, PartitionKey, Quantities, SITE_ID};
use crate::qty::Qty;
use crate::state::{CellDims, Cells, PartitionState, get_or_insert_exact};

/// IV: at most 5,000 product ids per query.
pub const QUERY_PRODUCTS_MAX: usize = 5_000;
/// IV v1: NumOf(siteId) x NumOf(locationId) <= 100.
pub const QUERY_LOCATIONS_MAX: usize = 100;

/// Exact query: the cell's values of `dims` must equal one of `tuples`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExactFilter {
    /// Base dimension names, lower case; may include `siteid` and `locationid`.
    pub dims: Vec<String>,
    pub tuples: Vec<Vec<String>>,
}

/// A query over the partitions of one environment and organization in one shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub environment: String,
    pub organization: String,
    /// (site, location) pairs; `None` = every partition of the organization.
    pub locations: Option<Vec<(String, String)>>,
    /// Product ids; empty = every product.
    pub products: Vec<String>,
    /// Base dimension (lower case, not site or location) -> accepted values; `""` accepts cells
    /// without that dimension.
    pub filters: BTreeMap<String, Vec<String>>,
    pub exact: Option<ExactFilter>,
    /// Base dimensions to aggregate by, lower case; site and location are always kept.
    pub group_by: Vec<String>,
    pub return_negative: bool,
    /// `QueryATP`: add scheduled deltas and ATP per day to each record.
    pub atp: Option<AtpRequest>,
}

impl Query {
    /// The rules a query must follow under an environment's configuration (ATP queries: the
    /// group-by is exactly one ATP index set, filters only on partition and that set's dims).
    ///
    /// # Errors
    /// A message naming the field at fault.
    pub fn validate(&self, config: &Config) -> Result<(), String> {
        if self.products.len() > QUERY_PRODUCTS_MAX {
            return Err(format!(
                "filters.productId: {} ids; at most {QUERY_PRODUCTS_MAX}",
                self.products.len()
            ));
        }
        if self.atp.is_none() {
            return Ok(());
        }
        let sets = &config.schedule.index_sets;
        let mut group: Vec<&str> = self.group_by.iter().map(String::as_str).collect();
        group.retain(|d| *d != SITE_ID && *d != LOCATION_ID);
        let Some(set) = sets
            .iter()
            .find(|s| s.len() == group.len() && s.iter().zip(&group).all(|(a, b)| a == b))
        else {
            let listed: Vec<String> = sets.iter().map(|s| format!("[{}]", s.join(", "))).collect();
            return Err(format!(
                "groupByValues: an ATP query groups by exactly one schedule index set: {}",
                listed.join(" or ")
            ));
        };
        if let Some(extra) = self.filters.keys().find(|d| !set.contains(d)) {
            return Err(format!(
                "filters.{extra}: an ATP query filters only on partition keys and [{}]",
                set.join(", ")
            ));
        }
        Ok(())
    }
}

/// One aggregated row of a query answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub product: String,
    pub site: String,
    pub location: String,
    /// The group-by dimensions that the aggregated cells have.
    pub dims: Dims,
    /// Physical and calculated measures side by side, every configured data source.
    pub quantities: Quantities,
    /// ATP queries: UTC day -> scheduled deltas (and the ATP measures applied to them).
    pub quantities_by_date: BTreeMap<i64, Quantities>,
    /// ATP queries: UTC day -> ATP per ATP measure, every day of the window (within from/to).
    pub atp_quantities: BTreeMap<i64, Quantities>,
}

fn dim_value<'a>(partition: &'a PartitionKey, dims: &'a CellDims, name: &str) -> Option<&'a str> {
    // By product, site and location are dimensions of the cell.
    match name {
        SITE_ID if partition.product.is_empty() => Some(&partition.site),
        LOCATION_ID if partition.product.is_empty() => Some(&partition.location),
        _ => dims.get(name),
    }
}

fn cell_matches(q: &Query, partition: &PartitionKey, dims: &CellDims) -> bool {
    let filters_ok = q.filters.iter().all(|(name, values)| {
        let have = dim_value(partition, dims, name).unwrap_or("");
        values.iter().any(|v| v == have)
    });
    filters_ok
        && q.exact.as_ref().is_none_or(|exact| {
            exact.tuples.iter().any(|tuple| {
                exact
                    .dims
                    .iter()
                    .zip(tuple)
                    .all(|(name, want)| dim_value(partition, dims, name).unwrap_or("") == want)
            })
        })
}

fn selected<'a>(
    partitions: &'a BTreeMap<PartitionKey, PartitionState>,
    q: &'a Query,
) -> impl Iterator<Item = (&'a PartitionKey, &'a PartitionState)> + 'a {
    let lo = PartitionKey::new(q.environment.clone(), q.organization.clone(), "", "");
    partitions
        .range(lo..)
        .take_while(|(p, _)| p.environment == q.environment && p.organization == q.organization)
        .filter(|(p, _)| {
            q.locations
                .as_ref()
                .is_none_or(|list| list.iter().any(|(s, l)| *s == p.site && *l == p.location))
        })
}

/// Evaluates a query on one shard's partitions. Records come sorted by (location key, product,
/// group values), so the gateway's merge of shard answers is deterministic.
pub(crate) fn evaluate(partitions: &BTreeMap<PartitionKey, PartitionState>, config: &Config, q: &Query) -> Vec<Record> {
    let mut group_by: Vec<&str> = q.group_by.iter().map(String::as_str).collect();
    if let Some(exact) = &q.exact {
        group_by.extend(exact.dims.iter().map(String::as_str));
    }
    group_by.sort_unstable();
    group_by.dedup();
    // By location every record is of one site and location; by product they are grouped only
    // when the query names them, else a record sums the product over every location.
    let mut location_group_by = group_by.clone();
    location_group_by.retain(|d| *d != SITE_ID && *d != LOCATION_ID);

    let mut out = Vec::new();
    for (partition, state) in selected(partitions, q) {
        let group_by = if partition.product.is_empty() {
            &location_group_by
        } else {
            &group_by
        };
        let products: Box<dyn Iterator<Item = (&str, &Cells)>> = if q.products.is_empty() {
            let mut all: Vec<(&str, &Cells)> = state.products.iter().map(|(p, c)| (p.as_str(), c)).collect();
            all.sort_unstable_by(|a, b| a.0.cmp(b.0));
            Box::new(all.into_iter())
        } else {
            Box::new(
                q.products
                    .iter()
                    .filter_map(|p| state.products.get_key_value(p.as_str()))
                    .map(|(p, c)| (p.as_str(), c)),
            )
        };
        for (product, cells) in products {
            let mut groups: BTreeMap<Dims, (Quantities, BTreeMap<i64, Quantities>)> = BTreeMap::new();
            for (dims, cell) in cells {
                if !cell_matches(q, partition, dims) {
                    continue;
                }
                let key: Dims = group_by
                    .iter()
                    .filter_map(|d| dims.get(d).map(|v| (d.to_string(), v.to_string())))
                    .collect();
                let (sums, scheduled) = groups.entry(key).or_default();
                add_into(sums, cell.quantities.iter());
                if q.atp.is_some() {
                    for (day, deltas) in &cell.schedules {
                        add_into(scheduled.entry(*day).or_default(), triples(deltas));
                    }
                }
            }
            for (mut dims, (physical, scheduled)) in groups {
                let site = dims.remove(SITE_ID).unwrap_or_else(|| partition.site.clone());
                let location = dims.remove(LOCATION_ID).unwrap_or_else(|| partition.location.clone());
                let (quantities_by_date, atp_quantities) = match &q.atp {
                    Some(request) => atp_for(config, request, &physical, &scheduled),
                    None => Default::default(),
                };
                out.push(Record {
                    product: product.to_string(),
                    site,
                    location,
                    dims,
                    quantities: with_all_measures(config, &physical, q.return_negative),
                    quantities_by_date,
                    atp_quantities,
                });
            }
        }
    }
    out
}

fn add_into<'a>(sums: &mut Quantities, more: impl IntoIterator<Item = (&'a str, &'a str, Qty)>) {
    for (ds, m, v) in more {
        let into = get_or_insert_exact(sums, ds, || (ds.to_string(), LiteMap::new()));
        let slot = get_or_insert_exact(into, m, || (m.to_string(), Qty::ZERO));
        *slot = *slot + v;
    }
}

/// Every configured physical measure (0 where absent) and every calculated measure.
pub(crate) fn with_all_measures(config: &Config, physical: &Quantities, return_negative: bool) -> Quantities {
    let get = |ds: &str, m: &str| crate::model::quantity(physical, ds, m);
    let mut out = Quantities::new();
    for (ds, source) in &config.data_sources {
        let slot = out.entry(ds.clone()).or_default();
        for m in &source.physical {
            slot.insert(m.clone(), get(ds, m));
        }
    }
    for (calc, formula) in &config.calculated {
        out.entry(calc.data_source.clone())
            .or_default()
            .insert(calc.measure.clone(), formula.value(triples(physical)));
    }
    if !return_negative {
        for (_, measures) in out.iter_mut() {
            measures.retain(|_, v| !v.is_negative());
        }
    }
    out
}

// Available-to-promise over a cell's schedules (written by `schedule`): ATP(d) = min over d' in
// [d, end of window] of projected(d'), where projected(d) = the ATP measure now plus every
// scheduled delta of it dated on or before d.

/// What an ATP query asks: the window starts at `today` (the reader's UTC day); `from`/`to` only
/// filter which days are returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtpRequest {
    pub today: i64,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// `quantitiesByDate` and `atpQuantities` of one aggregated record.
fn atp_for(
    config: &Config,
    request: &AtpRequest,
    current: &Quantities,
    scheduled: &BTreeMap<i64, Quantities>,
) -> (BTreeMap<i64, Quantities>, BTreeMap<i64, Quantities>) {
    let rules = &config.schedule;
    let end = request.today + i64::from(rules.period_days) - 1;
    let in_window: BTreeMap<i64, &Quantities> = scheduled.range(request.today..=end).map(|(d, q)| (*d, q)).collect();

    let mut by_date = BTreeMap::new();
    for (day, deltas) in &in_window {
        let mut row = (*deltas).clone();
        for m in &rules.by_date_measures {
            if let Some(f) = config.calculated.get(m) {
                row.entry(m.data_source.clone())
                    .or_default()
                    .insert(m.measure.clone(), f.value(triples(deltas)));
            }
        }
        by_date.insert(*day, row);
    }

    let days: Vec<i64> = (request.today..=end).collect();
    let mut atp: BTreeMap<i64, Quantities> = BTreeMap::new();
    for m in &rules.atp_measures {
        let Some(f) = config.calculated.get(m) else { continue };
        let mut projected = Vec::with_capacity(days.len());
        let mut level = f.value(triples(current));
        for day in &days {
            if let Some(deltas) = in_window.get(day) {
                level = level + f.value(triples(deltas));
            }
            projected.push(level);
        }
        // Suffix minima: what can be promised on day d without breaking a later day.
        let mut floor: Option<Qty> = None;
        for (i, day) in days.iter().enumerate().rev() {
            let value = floor.map_or(projected[i], |f| f.min(projected[i]));
            floor = Some(value);
            let wanted = request.from.is_none_or(|f| *day >= f) && request.to.is_none_or(|t| *day <= t);
            if wanted {
                atp.entry(*day)
                    .or_default()
                    .entry(m.data_source.clone())
                    .or_default()
                    .insert(m.measure.clone(), value);
            }
        }
    }
    (by_date, atp)
}
