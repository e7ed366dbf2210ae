//! `GET /onhand?...`: the URL's parameters as the index query body they stand for.

use serde_json::{Map, Value, json};

/// Decodes a URL query string into (key, value) pairs (`+` is a space, `%XX` a byte).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if hex(i + 1).is_some() && hex(i + 2).is_some() => {
                    let v = hex(i + 1).unwrap_or(0) * 16 + hex(i + 2).unwrap_or(0);
                    out.push(u8::try_from(v).unwrap_or(b'?'));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The index query body that `GET /onhand?...` stands for.
pub(crate) fn onhand_query_body(query: Option<&str>) -> Value {
    let mut filters = Map::new();
    let mut group: Vec<Value> = Vec::new();
    let mut body = Map::new();
    for (key, value) in query_pairs(query) {
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "groupby" | "groupbyvalues" => {
                group.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(|v| json!(v)),
                );
            }
            "returnnegative" => {
                body.insert("returnNegative".into(), json!(value));
            }
            "queryatp" => {
                body.insert("QueryATP".into(), json!(value));
            }
            "dimensiondatasource" => {
                body.insert("dimensionDataSource".into(), json!(value));
            }
            "atpfromdate" => {
                body.insert("ATPFromDate".into(), json!(value));
            }
            "atptodate" => {
                body.insert("ATPToDate".into(), json!(value));
            }
            _ => {
                let canonical = match lower.as_str() {
                    "organizationid" => "organizationId".to_string(),
                    "productid" => "productId".to_string(),
                    "siteid" => "siteId".to_string(),
                    "locationid" => "locationId".to_string(),
                    _ => lower,
                };
                let slot = filters.entry(canonical).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = slot {
                    list.push(json!(value));
                }
            }
        }
    }
    body.insert("filters".into(), Value::Object(filters));
    body.insert("groupByValues".into(), Value::Array(group));
    Value::Object(body)
}
