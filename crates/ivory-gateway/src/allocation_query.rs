//! `POST /allocation/query`: a product's allocations by group path.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::Arc;

use ivory_core::allocation::{AllocationQuery, AllocationRecord};
use ivory_core::model::{LOCATION_ID, SITE_ID};
use ivory_core::{Config, ReadRequest, ReadResponse};
use serde_json::{Map, Value, json};

use crate::parse::{ApiPath, json_body, partition_and_cell, target_groups};
use crate::queries::respond;
use crate::{ApiError, AppState, json_response};

/// The body of an allocation query.
pub(crate) fn allocation_request(
    obj: &Map<String, Value>,
    env: &str,
    config: &Config,
) -> Result<AllocationQuery, ApiError> {
    let (partition, cell) = partition_and_cell(obj, env, config, "", true, false)?;
    let groups = target_groups(obj, config, "", false)?;
    Ok(AllocationQuery {
        partition,
        cell,
        groups,
    })
}

#[utoipa::path(post, path = "/api/environment/{environmentId}/allocation/query", tag = "allocation", summary = "Query allocations",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::AllocationQueryRequest, content_type = "application/json"),
    responses((status = 200, description = "One record per group path", body = Vec<crate::openapi::AllocationRecord>)))]
/// `POST /allocation/query`: `{productId, organizationId, dimensions, groups}`; dimensions match
/// exactly, `groups` (or `targetGroups`) is a prefix of the path (empty = every path). Answers
/// `[{productId, dimensions, groups: {level: value}, quantities: {"@iv": {...}}}]`.
pub(crate) async fn allocation_query(
    State(s): State<AppState>,
    ApiPath(env): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(
        async {
            let value = json_body(body)?;
            let Value::Object(obj) = &value else {
                return Err(ApiError::bad_request("body.not_object", "body: must be a JSON object"));
            };
            let (config, records) = allocations(&s, &env, obj).await?;
            let names = crate::parse::field_names();
            let list: Vec<Value> = records
                .iter()
                .map(|r| {
                    let dims: Map<String, Value> = record_dims(r).into_iter().map(|(k, v)| (k, json!(v))).collect();
                    let groups: Map<String, Value> = config
                        .allocation_groups
                        .iter()
                        .zip(&r.groups)
                        .map(|(level, v)| (names.canonical(level), json!(v)))
                        .collect();
                    json!({
                        "productId": r.product,
                        "dimensions": dims,
                        "groups": groups,
                        "quantities": {"@iv": {
                            "@allocated": r.state.allocated.to_json(),
                            "@consumed": r.state.consumed.to_json(),
                            "@cumulative_allocated": r.state.cumulative_allocated.to_json(),
                            "@cumulative_consumed": r.state.cumulative_consumed.to_json(),
                        }},
                    })
                })
                .collect();
            Ok(json_response(StatusCode::OK, Value::Array(list)))
        }
        .await,
    )
}

/// A record's dimensions: the cell's, with siteid and locationid (by product, these are among
/// the cell's dimensions already).
pub(crate) fn record_dims(r: &AllocationRecord) -> Vec<(String, String)> {
    let mut dims: BTreeMap<String, String> = r.dims.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if !(r.site.is_empty() && r.location.is_empty()) {
        dims.insert(SITE_ID.into(), r.site.clone());
        dims.insert(LOCATION_ID.into(), r.location.clone());
    }
    dims.into_iter().collect()
}

/// The service layer's allocation query: the body parsed under the environment's configuration
/// (returned too: its group levels name the records' groups), read from the partition's shard.
pub(crate) async fn allocations(
    s: &AppState,
    env: &str,
    obj: &Map<String, Value>,
) -> Result<(Arc<Config>, Vec<AllocationRecord>), ApiError> {
    let config = s.environment_config(env).await?;
    let query = allocation_request(obj, env, &config)?;
    let shard = s.backend.shard_of(&query.partition);
    let request = ReadRequest::Allocations(query);
    let records = match s.read(shard, request).await? {
        ReadResponse::Allocations(list) => list,
        ReadResponse::Refused(message) => return Err(ApiError::bad_request("query.invalid", message)),
        _ => return Err(ApiError::bad_backend("an allocation query answered something else")),
    };
    Ok((config, records))
}
