//! Query records as JSON, in IV's shape (docs/iv-compatibility.md §2.6).

use std::collections::BTreeMap;

use ivory_core::date::format_day;
use ivory_core::model::{LOCATION_ID, SITE_ID};
use ivory_core::{Quantities, Record};
use serde_json::{Map, Value, json};

/// One record as IV answers it: `dimensions` with group-by names as sent, `quantities`, and with
/// ATP `quantitiesByDate` and `atpQuantities`.
pub(crate) fn record_json(org: Option<&str>, record: &Record, group_by: &[(String, String)], atp: bool) -> Value {
    let dims: Map<String, Value> = record_dims(record, group_by)
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    let mut out = Map::new();
    if let Some(org) = org {
        out.insert("organizationId".into(), json!(org));
    }
    out.insert("productId".into(), json!(record.product));
    out.insert("dimensions".into(), Value::Object(dims));
    out.insert("quantities".into(), quantities_json(&record.quantities));
    if atp {
        out.insert(
            "quantitiesByDate".into(),
            by_date_json(&record.quantities_by_date, "T00:00:00"),
        );
        out.insert(
            "atpQuantities".into(),
            by_date_json(&record.atp_quantities, "T00:00:00Z"),
        );
    }
    Value::Object(out)
}

/// A record's dimensions: group-by names as sent, then siteid and locationid.
pub(crate) fn record_dims(record: &Record, group_by: &[(String, String)]) -> BTreeMap<String, String> {
    let mut dims = BTreeMap::new();
    for (base, value) in &record.dims {
        let name = group_by
            .iter()
            .find(|(b, _)| b == base)
            .map_or(base.as_str(), |(_, sent)| sent.as_str());
        dims.insert(name.to_string(), value.clone());
    }
    // A product's total over every location (partitions by product) has none to name.
    if !(record.site.is_empty() && record.location.is_empty()) {
        dims.insert(SITE_ID.into(), record.site.clone());
        dims.insert(LOCATION_ID.into(), record.location.clone());
    }
    dims
}

fn quantities_json(q: &Quantities) -> Value {
    let sources: Map<String, Value> = q
        .iter()
        .map(|(ds, measures)| {
            let m: Map<String, Value> = measures.iter().map(|(k, q)| (k.clone(), q.to_json())).collect();
            (ds.clone(), Value::Object(m))
        })
        .collect();
    Value::Object(sources)
}

/// `{"2022-02-02T00:00:00": {...}}` (docs/iv-compatibility.md §2.6 spells the two maps' keys differently).
fn by_date_json(days: &BTreeMap<i64, Quantities>, suffix: &str) -> Value {
    Value::Object(
        days.iter()
            .map(|(d, q)| (format!("{}{suffix}", format_day(*d)), quantities_json(q)))
            .collect(),
    )
}
