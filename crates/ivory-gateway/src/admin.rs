//! Configuration, partitions, clean-up, health and metrics.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ivory_core::{Command, Config, Outcome, PartitionKey, ReadRequest, ReadResponse};
use serde_json::{Value, json};

use crate::parse::ApiPath;
use crate::{ApiError, AppState, json_response};

#[utoipa::path(get, path = "/api/environment/{environmentId}/configuration", tag = "admin", summary = "The environment's configuration",
    params(crate::openapi::EnvironmentPath),
    responses((status = 200, description = "IV's configuration document", body = ivory_core::config::ConfigDoc)))]
/// `GET /configuration`: the environment's configuration document (IV's JSON shape), from shard 0.
pub(crate) async fn get_configuration(State(s): State<AppState>, ApiPath(env): ApiPath<String>) -> Response {
    match s.read(0, ReadRequest::Config { environment: env }).await {
        Ok(ReadResponse::Config(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(v) => json_response(StatusCode::OK, v),
            Err(e) => ApiError::bad_backend(format!("stored configuration is not JSON: {e}")).into_response(),
        },
        Ok(_) => ApiError::bad_backend("a configuration read answered something else").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn propose_everywhere(s: &AppState, command: Command) -> Result<(), ApiError> {
    let shards = 0..s.backend.shard_count();
    let proposals = shards.map(|shard| {
        let command = command.clone();
        async move { s.propose(shard, vec![command]).await }
    });
    for outcome in futures::future::join_all(proposals).await {
        for r in outcome? {
            if r.outcome == Outcome::Invalid {
                return Err(ApiError::bad_request("config.invalid", r.message));
            }
            if !r.outcome.applied() {
                return Err(ApiError::new(StatusCode::CONFLICT, "command.refused", r.message));
            }
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/environment/{environmentId}/configuration/hardupdate", tag = "admin", summary = "Replace the environment's configuration",
    params(crate::openapi::EnvironmentPath),
    request_body(content = ivory_core::config::ConfigDoc, content_type = "application/json", description = "IV's configuration document (as `GET configuration` answers); keys in any case"),
    responses(
        (status = 200, description = "The stored document", body = ivory_core::config::ConfigDoc),
        (status = 409, description = "A shard refused it (`command.refused`)", body = crate::openapi::ErrorBody),
    ))]
/// `POST /configuration/hardupdate`: validated here first (400 naming the field), then proposed
/// to every shard. Answers the stored document.
pub(crate) async fn hard_update(
    State(s): State<AppState>,
    ApiPath(env): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let bytes = match crate::parse::body_bytes(body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut config = match parse_configuration(&bytes) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    config.set_environment_id(&env);
    if let Err(e) = check_mode_change(&s, &env, &config).await {
        return e.into_response();
    }
    let config_json = config.to_json();
    let command = Command::PutConfig {
        environment: env.clone(),
        config_json: config_json.clone(),
    };
    let result = propose_everywhere(&s, command).await;
    s.forget_config(&env);
    match result {
        Ok(()) => match serde_json::from_str::<Value>(&config_json) {
            Ok(v) => json_response(StatusCode::OK, v),
            Err(_) => json_response(StatusCode::OK, json!({})),
        },
        Err(e) => e.into_response(),
    }
}

/// The partition mode may change only while the environment holds no data: its partitions
/// would be read the other way. (Checked here, before any shard takes the document.)
async fn check_mode_change(s: &AppState, env: &str, config: &Config) -> Result<(), ApiError> {
    s.forget_config(env);
    let current = s.environment_config(env).await?;
    if current.partition_mode == config.partition_mode {
        return Ok(());
    }
    let ids = partition_ids(s, env).await?;
    if ids.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "config.partition_mode_locked",
        format!(
            "partitionConfiguration: the partition mode cannot change while the environment holds data ({} partitions); \
             delete it first with DELETE /cleanupalldata (or /partitions/cleanupalldata)",
            ids.len()
        ),
    ))
}

/// A configuration document: 400 naming the field it breaks.
pub(crate) fn parse_configuration(bytes: &[u8]) -> Result<Config, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("body.malformed", "body: not UTF-8"))?;
    Config::from_json(text).map_err(|e| {
        let code = if e.field == "(body)" {
            "body.malformed"
        } else {
            "config.invalid"
        };
        ApiError::bad_request(code, e.to_string())
    })
}

#[utoipa::path(get, path = "/api/environment/{environmentId}/allpartitionids", tag = "admin", summary = "Every partition holding data",
    params(crate::openapi::EnvironmentPath),
    responses((status = 200, description = "`<organizationId>~<siteId>~<locationId>`, sorted", body = Vec<String>)))]
/// `GET /allpartitionids`: every partition of the environment that holds data, as
/// `<organizationId>~<siteId>~<locationId>`, sorted.
pub(crate) async fn all_partition_ids(State(s): State<AppState>, ApiPath(env): ApiPath<String>) -> Response {
    match partition_ids(&s, &env).await {
        Ok(ids) => json_response(StatusCode::OK, json!(ids)),
        Err(e) => e.into_response(),
    }
}

async fn partition_ids(s: &AppState, env: &str) -> Result<Vec<String>, ApiError> {
    let reads = (0..s.backend.shard_count()).map(|shard| {
        let env = env.to_string();
        let s = s.clone();
        async move { s.read(shard, ReadRequest::Partitions { environment: env }).await }
    });
    let mut ids = Vec::new();
    for outcome in futures::future::join_all(reads).await {
        match outcome? {
            ReadResponse::Partitions(list) => ids.extend(list.iter().map(PartitionKey::partition_id)),
            _ => return Err(ApiError::bad_backend("a partitions read answered something else")),
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

#[utoipa::path(delete, path = "/api/environment/{environmentId}/partitions/cleanupalldata", tag = "admin", summary = "Delete partitions",
    params(crate::openapi::EnvironmentPath),
    request_body(content = Vec<crate::openapi::PartitionId>, content_type = "application/json",
        description = "Partition ids as `allpartitionids` lists them; an empty body deletes every partition of the environment"),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::CleanUpResult),
        (status = 409, description = "A shard refused it (`command.refused`)", body = crate::openapi::ErrorBody),
    ))]
/// `DELETE /cleanupalldata` and `/partitions/cleanupalldata`: body = JSON array of partition ids
/// (`<org>~<site>~<location>`, as `/allpartitionids` lists them); an empty body deletes every
/// partition of the environment. Proposed to every shard.
pub(crate) async fn clean_up(
    State(s): State<AppState>,
    ApiPath(env): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let partitions = match partition_list(&env, body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match propose_everywhere(
        &s,
        Command::CleanUp {
            environment: env,
            partitions,
        },
    )
    .await
    {
        Ok(()) => json_response(
            StatusCode::OK,
            json!({"processingStatus": "success", "message": "", "statusCode": 200}),
        ),
        Err(e) => e.into_response(),
    }
}

/// The body of a clean-up: `None` (empty body) = every partition of the environment.
pub(crate) fn partition_list(
    env: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<Vec<PartitionKey>>, ApiError> {
    if matches!(&body, Ok(b) if b.iter().all(u8::is_ascii_whitespace)) {
        return Ok(None);
    }
    let Value::Array(items) = crate::parse::json_body(body)? else {
        return Err(ApiError::bad_request(
            "body.not_array",
            "body: a JSON array of partition ids",
        ));
    };
    let mut list = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let text = crate::parse::text_value(item, format_args!("[{i}]"))?;
        let parts: Vec<&str> = text.split('~').collect();
        match parts.as_slice() {
            [org, site, location] => list.push(PartitionKey::new(env, *org, *site, *location)),
            [org, product] => list.push(PartitionKey::by_product(env, *org, *product)),
            _ => {
                return Err(ApiError::bad_request(
                    "field.bad_value",
                    format!(
                        "[{i}]: '{text}' is not a partition id <organizationId>~<siteId>~<locationId> or <organizationId>~<productId>"
                    ),
                ));
            }
        }
    }
    Ok(Some(list))
}

#[utoipa::path(delete, path = "/api/environment/{environmentId}/cleanupalldata", tag = "admin", summary = "Delete partitions",
    params(crate::openapi::EnvironmentPath),
    request_body(content = Vec<crate::openapi::PartitionId>, content_type = "application/json",
        description = "Partition ids as `allpartitionids` lists them; an empty body deletes every partition of the environment"),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::CleanUpResult),
        (status = 409, description = "A shard refused it (`command.refused`)", body = crate::openapi::ErrorBody),
    ))]
/// `DELETE /cleanupalldata`: the same as `/partitions/cleanupalldata` (IV has both).
pub(crate) async fn clean_up_alias(
    state: State<AppState>,
    env: ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    clean_up(state, env, body).await
}

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Health",
    responses(
        (status = 200, description = "Every shard has a leader accepting writes", body = crate::openapi::Health),
        (status = 503, description = "Not every shard has a leader (`cluster.unhealthy`)", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ))]
/// `GET /healthz`: 200 when every shard has a leader accepting writes, else 503.
pub(crate) async fn healthz(State(s): State<AppState>) -> Response {
    match s.backend.healthy().await {
        Ok(()) => json_response(StatusCode::OK, json!({"status": "ok"})),
        Err(message) => {
            let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cluster.unhealthy", message);
            e.retry_after_s = Some(1);
            e.into_response()
        }
    }
}

#[utoipa::path(get, path = "/health/ping", tag = "operations", summary = "Liveness ping (IV's path)",
    responses((status = 200, description = "The process answers HTTP; no token, no cluster check", body = crate::openapi::Health)))]
/// `GET /health/ping`: IV clients ping this before anything else; it says the process answers,
/// not that the cluster can take writes (`/healthz` says that).
pub(crate) async fn health_ping() -> Response {
    json_response(StatusCode::OK, json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 404, description = "No metrics recorder is configured (`metrics.disabled`)", body = crate::openapi::ErrorBody),
    ))]
/// `GET /metrics`: Prometheus text, when a recorder handle was configured.
pub(crate) async fn metrics(State(s): State<AppState>) -> Response {
    match &s.config.metrics {
        Some(handle) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics.disabled",
            "no metrics recorder is configured",
        )
        .into_response(),
    }
}
