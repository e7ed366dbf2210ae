//! Index query (POST, Api-Version 1.0 and 2.0 with paging), GET on-hand and exact query: limits
//! checked here, partitions grouped by shard, reads fanned out in parallel, answers merged and
//! sorted by (locationId, siteId, productId, group-by values).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ivory_core::config::PartitionMode;
use ivory_core::date::{day_of_ms, parse_day};
use ivory_core::model::{LOCATION_ID, SITE_ID, base_dimension, canonical_name};
use ivory_core::query::{QUERY_LOCATIONS_MAX, QUERY_PRODUCTS_MAX};
use ivory_core::schedule::AtpRequest;
use ivory_core::{Config, ExactFilter, PartitionKey, Query, ReadRequest, ReadResponse, Record};
use serde_json::{Map, Value, json};

use crate::parse::{ApiPath, bool_value, json_body, mapping_config, optional_text, text_value};
use crate::records::record_json;
pub(crate) use crate::url_query::onhand_query_body;
use crate::url_query::query_pairs;
use crate::{ApiError, AppState, json_response};

/// IV 2024 (*By location*): at most 10,000 site x location pairs per query, beyond v1's 100.
pub const QUERY_LOCATIONS_V2_MAX: usize = 10_000;
/// v2: organizations per query; each one is a separate read per shard.
pub const QUERY_ORGANIZATIONS_V2_MAX: usize = 100;
/// Tuples per exact query: bounded like product ids.
pub const EXACT_TUPLES_MAX: usize = 5_000;
/// v2 paging: warehouses per page when `pageSize` is not given, and the most allowed.
pub const PAGE_SIZE_DEFAULT: usize = 100;
pub const PAGE_SIZE_MAX: usize = 1_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ApiVersion {
    V1,
    V2,
}

pub(crate) fn api_version(headers: &HeaderMap) -> Result<ApiVersion, ApiError> {
    let Some(value) = headers.get("api-version") else {
        return Ok(ApiVersion::V1);
    };
    api_version_of(value.to_str().ok())
}

/// An `Api-Version` value (`None`: not text): 1.0 or 2.0.
pub(crate) fn api_version_of(value: Option<&str>) -> Result<ApiVersion, ApiError> {
    match value.map(|v| v.trim().trim_matches('"')) {
        Some("1.0" | "1") => Ok(ApiVersion::V1),
        Some("2.0" | "2") => Ok(ApiVersion::V2),
        _ => Err(ApiError::bad_request(
            "header.api_version",
            "Api-Version: must be 1.0 or 2.0",
        )),
    }
}

/// One read plan per organization: where to look and, for exact queries, which tuples.
struct Plan {
    organization: String,
    locations: Option<Vec<(String, String)>>,
    exact: Option<ExactFilter>,
}

/// What every plan shares.
struct Common {
    products: Vec<String>,
    filters: BTreeMap<String, Vec<String>>,
    /// (base dimension, name as the client sent it), for grouping and echo.
    group_by: Vec<(String, String)>,
    return_negative: bool,
    /// `QueryATP`: the window starts at the gateway's UTC day.
    atp: Option<AtpRequest>,
}

fn string_list(obj: &Map<String, Value>, field: &str, path: &str) -> Result<Vec<String>, ApiError> {
    let name = format!("{path}.{field}");
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if v.is_null() {
                    Ok(String::new())
                } else {
                    text_value(v, format_args!("{name}[{i}]"))
                }
            })
            .collect(),
        Some(v) => Ok(vec![text_value(v, &name)?]),
    }
}

fn map_dim(config: &Config, data_source: Option<&str>, name: &str, field: &str) -> Result<String, ApiError> {
    let lower = canonical_name(name);
    let mapped = data_source
        .and_then(|ds| config.data_sources.get(&canonical_name(ds)))
        .and_then(|ds| ds.dimension_mappings.get(&lower).cloned());
    mapped
        .or_else(|| base_dimension(&lower).map(str::to_string))
        .ok_or_else(|| {
            ApiError::bad_request(
                "field.bad_dimension",
                format!("{field}: '{name}' is not a base dimension and not mapped by the data source"),
            )
        })
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn check_products(products: &[String]) -> Result<(), ApiError> {
    if products.len() > QUERY_PRODUCTS_MAX {
        return Err(ApiError::bad_request(
            "limit.products",
            format!(
                "filters.productId: {} ids, at most {QUERY_PRODUCTS_MAX} per query",
                products.len()
            ),
        ));
    }
    Ok(())
}

/// The UTC day of the gateway's clock: "today" of an ATP query.
pub(crate) fn today() -> i64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    day_of_ms(ms)
}

fn wants_atp(obj: &Map<String, Value>) -> Result<bool, ApiError> {
    bool_value(obj.get("QueryATP"), "QueryATP", false)
}

/// `QueryATP` with `ATPFromDate` / `ATPToDate` (they only filter the days returned).
fn atp_request(obj: &Map<String, Value>) -> Result<Option<AtpRequest>, ApiError> {
    if !wants_atp(obj)? {
        return Ok(None);
    }
    let day = |field: &str| -> Result<Option<i64>, ApiError> {
        match optional_text(obj, field, "")? {
            None => Ok(None),
            Some(text) => parse_day(&text).map(Some).ok_or_else(|| {
                ApiError::bad_request(
                    "field.bad_timestamp",
                    format!("{field}: '{text}' is not a date (expected e.g. 2023-09-26)"),
                )
            }),
        }
    };
    let (from, to) = (day("ATPFromDate")?, day("ATPToDate")?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::bad_request(
            "field.bad_value",
            "ATPFromDate: is after ATPToDate",
        ));
    }
    Ok(Some(AtpRequest {
        today: today(),
        from,
        to,
    }))
}

fn group_by(
    obj: &Map<String, Value>,
    config: &Config,
    data_source: Option<&str>,
) -> Result<Vec<(String, String)>, ApiError> {
    string_list(obj, "groupByValues", "")?
        .into_iter()
        .enumerate()
        .filter(|(_, name)| !name.is_empty())
        .map(|(i, name)| {
            Ok((
                map_dim(config, data_source, &name, &format!("groupByValues[{i}]"))?,
                name,
            ))
        })
        .collect()
}

fn filters_object(obj: &Map<String, Value>) -> Result<&Map<String, Value>, ApiError> {
    match obj.get("filters") {
        Some(Value::Object(f)) => Ok(f),
        Some(_) => Err(ApiError::bad_request("field.bad_type", "filters: must be an object")),
        None => Err(ApiError::bad_request("field.missing", "filters: is required")),
    }
}

fn organizations(filters: &Map<String, Value>, version: ApiVersion) -> Result<Vec<String>, ApiError> {
    let orgs = sorted_unique(string_list(filters, "organizationId", "filters")?);
    if orgs.is_empty() || orgs.iter().any(String::is_empty) {
        return Err(ApiError::bad_request(
            "field.missing",
            "filters.organizationId: one value is required",
        ));
    }
    if orgs.len() > QUERY_ORGANIZATIONS_V2_MAX {
        return Err(ApiError::bad_request(
            "limit.organizations",
            format!(
                "filters.organizationId: {} values, at most {QUERY_ORGANIZATIONS_V2_MAX}",
                orgs.len()
            ),
        ));
    }
    if version == ApiVersion::V1 && orgs.len() != 1 {
        return Err(ApiError::bad_request(
            "limit.organizations",
            format!(
                "filters.organizationId: {} values; Api-Version 1.0 takes exactly one",
                orgs.len()
            ),
        ));
    }
    Ok(orgs)
}

/// Parses an index query body (v1 or v2) into plans.
fn index_plans(
    obj: &Map<String, Value>,
    config: &Config,
    version: ApiVersion,
) -> Result<(Vec<Plan>, Common), ApiError> {
    let atp = atp_request(obj)?;
    let data_source = optional_text(obj, "dimensionDataSource", "")?;
    let ds = data_source.as_deref();
    let filters = filters_object(obj)?;
    let orgs = organizations(filters, version)?;
    let raw_products = string_list(filters, "productId", "filters")?;
    check_products(&raw_products)?;
    let products = sorted_unique(raw_products.into_iter().filter(|p| !p.is_empty()).collect());
    let mut sites = string_list(filters, "siteId", "filters")?;
    let mut locations = string_list(filters, "locationId", "filters")?;
    let mut dim_filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in filters.keys() {
        if matches!(key.as_str(), "organizationId" | "productId" | "siteId" | "locationId") {
            continue;
        }
        let field = format!("filters.{key}");
        let base = map_dim(config, ds, key, &field)?;
        let values = string_list(filters, key, "filters")?;
        match base.as_str() {
            SITE_ID => sites.extend(values),
            LOCATION_ID => locations.extend(values),
            // An empty list filters nothing (IV clients send `"colorId": []`).
            _ if values.is_empty() => {}
            _ => dim_filters.entry(base).or_default().extend(values),
        }
    }
    let sites = sorted_unique(sites.into_iter().filter(|s| !s.is_empty()).collect());
    let locations = sorted_unique(locations.into_iter().filter(|s| !s.is_empty()).collect());
    let by_product = config.partition_mode == PartitionMode::ByProduct;
    let mut group = group_by(obj, config, ds)?;
    let pairs = match (sites.is_empty(), locations.is_empty()) {
        // By product, site and location filter (and split) the product's cells like any dimension.
        _ if by_product => {
            if products.is_empty() {
                return Err(ApiError::bad_request(
                    "field.missing",
                    "filters.productId: required when partitions are by product",
                ));
            }
            for (dim, sent, values) in [(SITE_ID, "siteId", sites), (LOCATION_ID, "locationId", locations)] {
                if !values.is_empty() {
                    dim_filters.insert(dim.to_string(), values);
                    group.push((dim.to_string(), sent.to_string()));
                }
            }
            None
        }
        (true, true) => {
            if products.is_empty() {
                return Err(ApiError::bad_request(
                    "field.missing",
                    "filters.productId: required when filters.siteId and filters.locationId are empty",
                ));
            }
            None
        }
        (false, false) => {
            let count = sites.len().saturating_mul(locations.len());
            let max = if version == ApiVersion::V1 {
                QUERY_LOCATIONS_MAX
            } else {
                QUERY_LOCATIONS_V2_MAX
            };
            if count > max {
                return Err(ApiError::bad_request(
                    "limit.locations",
                    format!(
                        "filters.siteId x filters.locationId: {} x {} = {count} pairs, at most {max}",
                        sites.len(),
                        locations.len()
                    ),
                ));
            }
            Some(
                sites
                    .iter()
                    .flat_map(|s| locations.iter().map(move |l| (s.clone(), l.clone())))
                    .collect::<Vec<_>>(),
            )
        }
        (true, false) => {
            return Err(ApiError::bad_request(
                "field.missing",
                "filters.siteId: required with filters.locationId",
            ));
        }
        (false, true) => {
            return Err(ApiError::bad_request(
                "field.missing",
                "filters.locationId: required with filters.siteId",
            ));
        }
    };
    let reads = orgs.len().saturating_mul(pairs.as_ref().map_or(1, Vec::len));
    if reads > QUERY_LOCATIONS_V2_MAX {
        return Err(ApiError::bad_request(
            "limit.locations",
            format!("filters: {reads} organization x site x location combinations, at most {QUERY_LOCATIONS_V2_MAX}"),
        ));
    }
    let common = Common {
        products,
        filters: dim_filters,
        group_by: group,
        return_negative: bool_value(obj.get("returnNegative"), "returnNegative", false)?,
        atp,
    };
    let plans = orgs
        .into_iter()
        .map(|organization| Plan {
            organization,
            locations: pairs.clone(),
            exact: None,
        })
        .collect();
    Ok((plans, common))
}

/// Parses an exact query body: v1 `dimensions` + `values`, v2 `keys` + `values` (keys may name
/// `organizationId`).
fn exact_plans(
    obj: &Map<String, Value>,
    config: &Config,
    version: ApiVersion,
) -> Result<(Vec<Plan>, Common), ApiError> {
    let atp = atp_request(obj)?;
    let data_source = optional_text(obj, "dimensionDataSource", "")?;
    let ds = data_source.as_deref();
    let filters = filters_object(obj)?;
    let raw_products = string_list(filters, "productId", "filters")?;
    check_products(&raw_products)?;
    let products = sorted_unique(raw_products.into_iter().filter(|p| !p.is_empty()).collect());
    let names_field = if version == ApiVersion::V2 && filters.contains_key("keys") {
        "keys"
    } else {
        "dimensions"
    };
    let names = string_list(filters, names_field, "filters")?;
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "field.missing",
            format!("filters.{names_field}: is required"),
        ));
    }
    let org_column = names.iter().position(|n| n.eq_ignore_ascii_case("organizationId"));
    if org_column.is_some() && version == ApiVersion::V1 {
        return Err(ApiError::bad_request(
            "field.bad_value",
            "filters.dimensions: organizationId may be a key only with Api-Version 2.0",
        ));
    }
    let mut dims = Vec::new();
    let mut sent = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if Some(i) == org_column {
            continue;
        }
        dims.push(map_dim(config, ds, name, &format!("filters.{names_field}[{i}]"))?);
        sent.push(name.clone());
    }
    let by_product = config.partition_mode == PartitionMode::ByProduct;
    let columns = match (
        dims.iter().position(|d| d == SITE_ID),
        dims.iter().position(|d| d == LOCATION_ID),
    ) {
        _ if by_product => {
            if products.is_empty() {
                return Err(ApiError::bad_request(
                    "field.missing",
                    "filters.productId: required when partitions are by product",
                ));
            }
            None
        }
        (Some(site_col), Some(loc_col)) => Some((site_col, loc_col)),
        _ => {
            return Err(ApiError::bad_request(
                "field.missing",
                format!("filters.{names_field}: must include siteId and locationId"),
            ));
        }
    };
    if BTreeSet::from_iter(dims.iter()).len() != dims.len() {
        return Err(ApiError::bad_request(
            "field.duplicate",
            format!("filters.{names_field}: a dimension is named twice"),
        ));
    }
    let orgs = match org_column {
        Some(_) => Vec::new(),
        None => organizations(filters, version)?,
    };
    let Some(Value::Array(rows)) = filters.get("values") else {
        return Err(ApiError::bad_request(
            "field.missing",
            "filters.values: an array of value tuples is required",
        ));
    };
    if rows.is_empty() {
        return Err(ApiError::bad_request(
            "field.empty",
            "filters.values: at least one tuple is required",
        ));
    }
    if rows.len() > EXACT_TUPLES_MAX {
        return Err(ApiError::bad_request(
            "limit.tuples",
            format!("filters.values: {} tuples, at most {EXACT_TUPLES_MAX}", rows.len()),
        ));
    }
    // organization -> tuples (without the organization column)
    let mut by_org: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let Value::Array(cells) = row else {
            return Err(ApiError::bad_request(
                "field.bad_type",
                format!("filters.values[{i}]: must be an array"),
            ));
        };
        if cells.len() != names.len() {
            return Err(ApiError::bad_request(
                "field.bad_value",
                format!("filters.values[{i}]: {} values for {} names", cells.len(), names.len()),
            ));
        }
        let mut tuple = Vec::with_capacity(dims.len());
        let mut org = None;
        for (j, cell) in cells.iter().enumerate() {
            let text = if cell.is_null() {
                String::new()
            } else {
                text_value(cell, format_args!("filters.values[{i}][{j}]"))?
            };
            if Some(j) == org_column {
                org = Some(text);
            } else {
                tuple.push(text);
            }
        }
        match org {
            Some(o) if o.is_empty() => {
                return Err(ApiError::bad_request(
                    "field.empty",
                    format!("filters.values[{i}]: organizationId is empty"),
                ));
            }
            Some(o) => by_org.entry(o).or_default().push(tuple),
            None => {
                for o in &orgs {
                    by_org.entry(o.clone()).or_default().push(tuple.clone());
                }
            }
        }
    }
    if by_org.len() > QUERY_ORGANIZATIONS_V2_MAX {
        return Err(ApiError::bad_request(
            "limit.organizations",
            format!(
                "filters.values: {} organizations, at most {QUERY_ORGANIZATIONS_V2_MAX}",
                by_org.len()
            ),
        ));
    }
    let mut plans = Vec::new();
    for (organization, tuples) in by_org {
        let pairs: BTreeSet<(String, String)> = match columns {
            Some((site_col, loc_col)) => tuples
                .iter()
                .map(|t| (t[site_col].clone(), t[loc_col].clone()))
                .collect(),
            None => BTreeSet::new(),
        };
        if version == ApiVersion::V1 && pairs.len() > QUERY_LOCATIONS_MAX {
            return Err(ApiError::bad_request(
                "limit.locations",
                format!(
                    "filters.values: {} (siteId, locationId) pairs, at most {QUERY_LOCATIONS_MAX}",
                    pairs.len()
                ),
            ));
        }
        plans.push(Plan {
            organization,
            locations: columns.map(|_| pairs.into_iter().collect()),
            exact: Some(ExactFilter {
                dims: dims.clone(),
                tuples,
            }),
        });
    }
    let mut group = group_by(obj, config, ds)?;
    group.extend(dims.into_iter().zip(sent));
    let common = Common {
        products,
        filters: BTreeMap::new(),
        group_by: group,
        return_negative: bool_value(obj.get("returnNegative"), "returnNegative", false)?,
        atp,
    };
    Ok((plans, common))
}

/// Parses a posted query's body (an object) into plans.
fn plans_of(
    obj: &Map<String, Value>,
    config: &Config,
    version: ApiVersion,
    exact: bool,
) -> Result<(Vec<Plan>, Common), ApiError> {
    if exact {
        exact_plans(obj, config, version)
    } else {
        index_plans(obj, config, version)
    }
}

/// Every check a query makes before it reads, on one body: what the `fuzzing` entry point runs.
pub(crate) fn check_query(
    env: &str,
    body: Value,
    config: &Config,
    version: ApiVersion,
    exact: bool,
) -> Result<(), ApiError> {
    let Value::Object(obj) = body else {
        return Err(ApiError::bad_request("body.not_object", "body: must be a JSON object"));
    };
    let (plans, common) = plans_of(&obj, config, version, exact)?;
    let group_by = query_group_by(config, &common);
    for plan in plans {
        let query = query_of(env, &plan, plan.locations.clone(), &common, &group_by);
        if query.atp.is_some() {
            query
                .validate(config)
                .map_err(|m| ApiError::bad_request("query.invalid", m))?;
        }
    }
    Ok(())
}

fn query_group_by(config: &Config, common: &Common) -> Vec<String> {
    let group_by: Vec<String> = sorted_unique(common.group_by.iter().map(|(b, _)| b.clone()).collect());
    if common.atp.is_some() {
        in_index_set_order(config, group_by)
    } else {
        group_by
    }
}

fn query_of(
    env: &str,
    plan: &Plan,
    locations: Option<Vec<(String, String)>>,
    common: &Common,
    group_by: &[String],
) -> Query {
    Query {
        environment: env.to_string(),
        organization: plan.organization.clone(),
        locations,
        products: common.products.clone(),
        filters: common.filters.clone(),
        exact: plan.exact.clone(),
        group_by: group_by.to_vec(),
        return_negative: common.return_negative,
        atp: common.atp.clone(),
    }
}

/// Fans the plans out to their shards in parallel; (organization, record) pairs, sorted.
async fn fan_out(
    s: &AppState,
    env: &str,
    plans: Vec<Plan>,
    common: &Common,
    config: &Config,
) -> Result<Vec<(String, Record)>, ApiError> {
    let group_by = query_group_by(config, common);
    let mut reads = Vec::new();
    for plan in plans {
        let mut by_shard: BTreeMap<u32, Option<Vec<(String, String)>>> = BTreeMap::new();
        match &plan.locations {
            Some(pairs) => {
                for (site, location) in pairs {
                    let key = PartitionKey::new(env, plan.organization.clone(), site.clone(), location.clone());
                    by_shard
                        .entry(s.backend.shard_of(&key))
                        .or_insert_with(|| Some(Vec::new()))
                        .get_or_insert_with(Vec::new)
                        .push((site.clone(), location.clone()));
                }
            }
            None => {
                for shard in 0..s.backend.shard_count() {
                    by_shard.insert(shard, None);
                }
            }
        }
        for (shard, locations) in by_shard {
            let query = query_of(env, &plan, locations, common, &group_by);
            if query.atp.is_some() {
                query
                    .validate(config)
                    .map_err(|m| ApiError::bad_request("query.invalid", m))?;
            }
            let org = plan.organization.clone();
            let s = Arc::clone(s);
            reads.push(async move { (org, s.read(shard, ReadRequest::Query(query)).await) });
        }
    }
    let mut out = Vec::new();
    for (org, answer) in futures::future::join_all(reads).await {
        match answer? {
            ReadResponse::Records(records) => out.extend(records.into_iter().map(|r| (org.clone(), r))),
            ReadResponse::Refused(message) => return Err(ApiError::bad_request("query.invalid", message)),
            _ => return Err(ApiError::bad_backend("a query answered something else")),
        }
    }
    out.sort_by(|(oa, a), (ob, b)| {
        (&a.location, &a.site, oa, &a.product, &a.dims).cmp(&(&b.location, &b.site, ob, &b.product, &b.dims))
    });
    Ok(out)
}

/// An ATP group-by names one schedule index set in any order: put it in the set's order, which is
/// the order `Query::validate` compares.
fn in_index_set_order(config: &Config, group_by: Vec<String>) -> Vec<String> {
    let (partition, rest): (Vec<String>, Vec<String>) =
        group_by.into_iter().partition(|d| d == SITE_ID || d == LOCATION_ID);
    let wanted: BTreeSet<&String> = rest.iter().collect();
    match config
        .schedule
        .index_sets
        .iter()
        .find(|set| set.len() == rest.len() && set.iter().collect::<BTreeSet<_>>() == wanted)
    {
        Some(set) => set.iter().cloned().chain(partition).collect(),
        None => rest.into_iter().chain(partition).collect(),
    }
}

pub(crate) fn paging(query: Option<&str>) -> Result<(usize, usize), ApiError> {
    let mut page = 1usize;
    let mut size = PAGE_SIZE_DEFAULT;
    for (k, v) in query_pairs(query) {
        let parsed =
            || {
                v.trim().parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::bad_request("field.bad_value", format!("{k}: must be a whole number >= 1"))
                })
            };
        match k.to_ascii_lowercase().as_str() {
            "pagenumber" => page = parsed()?,
            "pagesize" => size = parsed()?,
            _ => {}
        }
    }
    if size > PAGE_SIZE_MAX {
        return Err(ApiError::bad_request(
            "limit.page_size",
            format!("pageSize: at most {PAGE_SIZE_MAX}"),
        ));
    }
    Ok((page, size))
}

/// A query's answer (the service layer's result): (organization, record) pairs in IV's order,
/// and how to name them.
pub(crate) struct QueryAnswer {
    pub records: Vec<(String, Record)>,
    /// (base dimension, name as the client sent it).
    pub group_by: Vec<(String, String)>,
    pub atp: bool,
}

/// A v2 page: `pageSize` warehouses (distinct siteId + locationId, in the answer's order) and the
/// nextLink (`""` on the last page).
pub(crate) fn page_of<'a>(
    endpoint: &str,
    records: &'a [(String, Record)],
    page: (usize, usize),
) -> (Vec<&'a (String, Record)>, String) {
    let (number, size) = page;
    let mut warehouses: Vec<(&str, &str)> = Vec::new();
    for (_, r) in records {
        let w = (r.location.as_str(), r.site.as_str());
        if warehouses.last() != Some(&w) {
            warehouses.push(w);
        }
    }
    let start = (number - 1).saturating_mul(size);
    let wanted: BTreeSet<(&str, &str)> = warehouses.iter().skip(start).take(size).copied().collect();
    let list = records
        .iter()
        .filter(|(_, r)| wanted.contains(&(r.location.as_str(), r.site.as_str())))
        .collect();
    let next = if start.saturating_add(size) < warehouses.len() {
        format!("onhand/{endpoint}?pageNumber={}&pageSize={size}", number + 1)
    } else {
        String::new()
    };
    (list, next)
}

/// Renders the answer: v1 a record array; v2 `{"Value": [...], "nextLink": ...}` ([`page_of`]).
fn render(version: ApiVersion, endpoint: &str, answer: &QueryAnswer, page: (usize, usize)) -> Response {
    if version == ApiVersion::V1 {
        let list: Vec<Value> = answer
            .records
            .iter()
            .map(|(_, r)| record_json(None, r, &answer.group_by, answer.atp))
            .collect();
        return json_response(StatusCode::OK, Value::Array(list));
    }
    let (records, next) = page_of(endpoint, &answer.records, page);
    let list: Vec<Value> = records
        .into_iter()
        .map(|(org, r)| record_json(Some(org), r, &answer.group_by, answer.atp))
        .collect();
    json_response(StatusCode::OK, json!({"Value": list, "nextLink": next}))
}

/// The service layer's query: parses the body (index or exact, v1 or v2) under the environment's
/// configuration into read plans, checks the limits, fans the reads out and merges the records.
pub(crate) async fn query(
    s: &AppState,
    env: &str,
    version: ApiVersion,
    exact: bool,
    body: Value,
) -> Result<QueryAnswer, ApiError> {
    let Value::Object(obj) = body else {
        return Err(ApiError::bad_request("body.not_object", "body: must be a JSON object"));
    };
    let ds = optional_text(&obj, "dimensionDataSource", "")?;
    let config = mapping_config(s, env, ds.is_some() || wants_atp(&obj)?).await?;
    let (plans, common) = plans_of(&obj, &config, version, exact)?;
    let records = fan_out(s, env, plans, &common, &config).await?;
    Ok(QueryAnswer {
        records,
        group_by: common.group_by,
        atp: common.atp.is_some(),
    })
}

async fn run(
    s: AppState,
    env: String,
    version: ApiVersion,
    endpoint: &'static str,
    body: Value,
    page: (usize, usize),
) -> Result<Response, ApiError> {
    let answer = query(&s, &env, version, endpoint == "exactquery", body).await?;
    Ok(render(version, endpoint, &answer, page))
}

pub(crate) fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

#[utoipa::path(post, path = "/api/environment/{environmentId}/onhand/indexquery", tag = "queries", summary = "Query on-hand by index",
    params(crate::openapi::EnvironmentPath, crate::openapi::PageQuery, crate::openapi::ApiVersionHeader),
    request_body(content = crate::openapi::IndexQueryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Api-Version 1.0: an array of records; 2.0: a page `{Value, nextLink}`",
            body = inline(crate::openapi::QueryAnswer)),
    ))]
/// `POST /onhand/indexquery` (v1; v2 with `?pageNumber=&pageSize=`).
pub(crate) async fn index_query(
    State(s): State<AppState>,
    ApiPath(env): ApiPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    posted_query(s, env, query, headers, body, "indexquery").await
}

#[utoipa::path(post, path = "/api/environment/{environmentId}/indexquery", tag = "queries", summary = "Query on-hand by index (the path some IV clients use)",
    params(crate::openapi::EnvironmentPath, crate::openapi::PageQuery, crate::openapi::ApiVersionHeader),
    request_body(content = crate::openapi::IndexQueryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The same answer as `onhand/indexquery`",
            body = inline(crate::openapi::QueryAnswer)),
    ))]
/// `POST /indexquery`: IV's own ATP test client posts index queries here, without `/onhand`.
pub(crate) async fn index_query_alias(
    state: State<AppState>,
    env: ApiPath<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    index_query(state, env, query, headers, body).await
}

#[utoipa::path(post, path = "/api/environment/{environmentId}/onhand/exactquery", tag = "queries", summary = "Query on-hand by exact dimension tuples",
    params(crate::openapi::EnvironmentPath, crate::openapi::PageQuery, crate::openapi::ApiVersionHeader),
    request_body(content = crate::openapi::ExactQueryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Api-Version 1.0: an array of records; 2.0: a page `{Value, nextLink}`",
            body = inline(crate::openapi::QueryAnswer)),
    ))]
/// `POST /onhand/exactquery` (v1 `dimensions`; v2 `keys`, paged like the index query).
pub(crate) async fn exact_query(
    State(s): State<AppState>,
    ApiPath(env): ApiPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    posted_query(s, env, query, headers, body, "exactquery").await
}

async fn posted_query(
    s: AppState,
    env: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: &'static str,
) -> Response {
    respond(
        async {
            let version = api_version(&headers)?;
            let page = paging(query.as_deref())?;
            run(s, env, version, kind, json_body(body)?, page).await
        }
        .await,
    )
}

#[utoipa::path(get, path = "/api/environment/{environmentId}/onhand", tag = "queries", summary = "Query on-hand by URL parameters",
    params(crate::openapi::EnvironmentPath, crate::openapi::OnHandQuery),
    responses((status = 200, description = "The records, as a v1 index query answers", body = Vec<crate::openapi::QueryRecord>)))]
/// `GET /onhand?organizationId=&productId=&siteId=&locationId=&<dim>=&groupBy=a,b&returnNegative=`:
/// parameter names in any case, each repeatable; `groupBy` also comma-separated. Same rules as a
/// v1 index query.
pub(crate) async fn get_onhand(
    State(s): State<AppState>,
    ApiPath(env): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let body = onhand_query_body(query.as_deref());
    respond(run(s, env, ApiVersion::V1, "indexquery", body, (1, PAGE_SIZE_DEFAULT)).await)
}
