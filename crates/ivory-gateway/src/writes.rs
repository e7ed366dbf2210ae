//! On-hand change, set on-hand, reserve, unreserve, change schedule and the allocation writes:
//! single (result envelope + HTTP status by outcome) and bulk (<= 512 items, one proposal per shard in parallel, IV's buckets, HTTP 200).
//!
//! Bulk rule: every item is validated first. The whole call is refused (400, nothing applied) only
//! when the body is not an array or has more than 512 items; a malformed item becomes a `failure`
//! result with `statusCode` 400 and the other items still go. When a shard cannot be reached after
//! the gateway's retries its items land in `unknown` (statusCode 503); when no shard could be
//! reached at all the call answers 503. Replaying the same bulk is safe: ids are idempotent.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ivory_core::{BATCH_COMMANDS_MAX, CmdResult, Outcome};
use serde_json::Value;

use crate::parse::{ApiPath, WriteKind, body_bytes, json_value};
use crate::reserve_body;
use crate::service::{self, BUCKETS, ItemAnswer};
use crate::{ApiError, AppState};

type Body = Result<Bytes, BytesRejection>;

#[utoipa::path(post, path = "/api/environment/{environmentId}/onhand", tag = "on-hand", summary = "Change on-hand quantities",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::OnHandChangeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or the same id and body again: the first answer)", body = crate::openapi::WriteResult),
        (status = 409, description = "Not enough stock (`stock.insufficient`, body statusCode 500) or the id was used with another body (`event.conflict`)", body = crate::openapi::WriteResult),
    ))]
pub(crate) async fn onhand(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    single(s, env, WriteKind::Change, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/onhand/reserve", tag = "reservations", summary = "Soft-reserve stock",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::ReserveRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or the same id and body again: the first answer)", body = crate::openapi::WriteResult),
        (status = 409, description = "Not enough stock (`stock.insufficient`, body statusCode 500) or the id was used with another body (`event.conflict`)", body = crate::openapi::WriteResult),
    ))]
pub(crate) async fn reserve(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    single(s, env, WriteKind::Reserve, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/onhand/unreserve", tag = "reservations", summary = "Release a reservation",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::UnreserveRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or the same id and body again: the first answer)", body = crate::openapi::WriteResult),
        (status = 409, description = "Not enough stock (`stock.insufficient`, body statusCode 500) or the id was used with another body (`event.conflict`)", body = crate::openapi::WriteResult),
        (status = 404, description = "Unknown reservation (`reservation.not_found`)", body = crate::openapi::WriteResult),
    ))]
pub(crate) async fn unreserve(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    single(s, env, WriteKind::Unreserve, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/onhand/bulk", tag = "on-hand", summary = "Change on-hand quantities, in bulk",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::OnHandChangeBulk, content_type = "application/json"),
    responses(
        (status = 200, description = "Every item in one bucket, in request order; a malformed item is a `failure` with statusCode 400", body = crate::openapi::BulkResult),
    ))]
pub(crate) async fn onhand_bulk(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    bulk(s, env, WriteKind::Change, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/onhand/reserve/bulk", tag = "reservations", summary = "Soft-reserve, in bulk",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::ReserveBulk, content_type = "application/json"),
    responses(
        (status = 200, description = "Every item in one bucket, in request order; a malformed item is a `failure` with statusCode 400", body = crate::openapi::BulkResult),
    ))]
pub(crate) async fn reserve_bulk(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    bulk(s, env, WriteKind::Reserve, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/onhand/unreserve/bulk", tag = "reservations", summary = "Release reservations, in bulk",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::UnreserveBulk, content_type = "application/json"),
    responses(
        (status = 200, description = "Every item in one bucket, in request order; a malformed item is a `failure` with statusCode 400", body = crate::openapi::BulkResult),
    ))]
pub(crate) async fn unreserve_bulk(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    bulk(s, env, WriteKind::Unreserve, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/onhand/changeschedule", tag = "on-hand", summary = "Schedule on-hand changes by date",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::ChangeScheduleRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or the same id and body again: the first answer)", body = crate::openapi::WriteResult),
        (status = 409, description = "Not enough stock (`stock.insufficient`, body statusCode 500) or the id was used with another body (`event.conflict`)", body = crate::openapi::WriteResult),
    ))]
pub(crate) async fn change_schedule(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    single(s, env, WriteKind::Schedule, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/onhand/changeschedule/bulk", tag = "on-hand", summary = "Schedule on-hand changes, in bulk",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::ChangeScheduleBulk, content_type = "application/json"),
    responses(
        (status = 200, description = "Every item in one bucket, in request order; a malformed item is a `failure` with statusCode 400", body = crate::openapi::BulkResult),
    ))]
pub(crate) async fn change_schedule_bulk(
    State(s): State<AppState>,
    ApiPath(env): ApiPath<String>,
    body: Body,
) -> Response {
    bulk(s, env, WriteKind::Schedule, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/allocation/allocate", tag = "allocation", summary = "Allocate to a group path",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::AllocationRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or the same id and body again: the first answer)", body = crate::openapi::WriteResult),
        (status = 409, description = "Not enough stock (`stock.insufficient`, body statusCode 500) or the id was used with another body (`event.conflict`)", body = crate::openapi::WriteResult),
    ))]
pub(crate) async fn allocate(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    single(s, env, WriteKind::Allocate, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/allocation/unallocate", tag = "allocation", summary = "Take an allocation back",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::AllocationRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or the same id and body again: the first answer)", body = crate::openapi::WriteResult),
        (status = 409, description = "Not enough stock (`stock.insufficient`, body statusCode 500) or the id was used with another body (`event.conflict`)", body = crate::openapi::WriteResult),
    ))]
pub(crate) async fn unallocate(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    single(s, env, WriteKind::Unallocate, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/allocation/reallocate", tag = "allocation", summary = "Move an allocation between group paths",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::ReallocateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or the same id and body again: the first answer)", body = crate::openapi::WriteResult),
        (status = 409, description = "Not enough stock (`stock.insufficient`, body statusCode 500) or the id was used with another body (`event.conflict`)", body = crate::openapi::WriteResult),
    ))]
pub(crate) async fn reallocate(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    single(s, env, WriteKind::Reallocate, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/allocation/consume", tag = "allocation", summary = "Consume allocated stock",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::ConsumeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or the same id and body again: the first answer)", body = crate::openapi::WriteResult),
        (status = 409, description = "Not enough stock (`stock.insufficient`, body statusCode 500) or the id was used with another body (`event.conflict`)", body = crate::openapi::WriteResult),
    ))]
pub(crate) async fn consume(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    single(s, env, WriteKind::Consume, body).await
}
#[utoipa::path(post, path = "/api/environment/{environmentId}/setonhand/{inventorySystem}/bulk", tag = "on-hand", summary = "Set on-hand quantities, in bulk",
    params(crate::openapi::EnvironmentPath, ("inventorySystem" = String, Path, description = "Accepted and not used")),
    request_body(content = crate::openapi::SetOnHandBulk, content_type = "application/json"),
    responses(
        (status = 200, description = "Every item in one bucket, in request order; a malformed item is a `failure` with statusCode 400", body = crate::openapi::BulkResult),
    ))]
/// `{inventorySystem}` is accepted and not used: each item's `quantities` names its data sources.
pub(crate) async fn setonhand_bulk(
    State(s): State<AppState>,
    ApiPath((env, _system)): ApiPath<(String, String)>,
    body: Body,
) -> Response {
    bulk(s, env, WriteKind::Set, body).await
}

/// A stable code for a refusal by the shard.
pub(crate) fn outcome_code(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Success | Outcome::PartialSuccess => None,
        Outcome::Insufficient => Some("stock.insufficient"),
        Outcome::NotFound => Some("reservation.not_found"),
        Outcome::Conflict => Some("event.conflict"),
        Outcome::Invalid => Some("command.invalid"),
        Outcome::Refused => Some("command.refused"),
    }
}

pub(crate) fn http_status(outcome: Outcome) -> StatusCode {
    match outcome {
        Outcome::Success | Outcome::PartialSuccess => StatusCode::OK,
        Outcome::Insufficient | Outcome::Conflict | Outcome::Refused => StatusCode::CONFLICT,
        Outcome::NotFound => StatusCode::NOT_FOUND,
        Outcome::Invalid => StatusCode::BAD_REQUEST,
    }
}

/// IV's per-item envelope, serialized straight from the result: no JSON tree is built for a
/// bulk call's 512 answers. Fields in the order of their names, as a JSON object map wrote them.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    id: PrefixedId<'a>,
    message: &'a str,
    processing_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_id: Option<&'a str>,
    status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_invalid_offset_qty_by_reserv_id: Option<Value>,
}

/// `<kind prefix>~<id>`, written without an intermediate string.
struct PrefixedId<'a>(WriteKind, &'a str);

impl serde::Serialize for PrefixedId<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}~{}", self.0.prefix(), self.1))
    }
}

/// IV's single-result envelope.
fn result_envelope<'a>(kind: WriteKind, id: &'a str, r: &'a CmdResult) -> Envelope<'a> {
    Envelope {
        code: outcome_code(r.outcome),
        id: PrefixedId(kind, id),
        message: &r.message,
        processing_status: r.outcome.processing_status(),
        reservation_id: r.reservation_id.as_deref(),
        status_code: r.outcome.iv_status_code(),
        total_invalid_offset_qty_by_reserv_id: (kind == WriteKind::Unreserve)
            .then(|| r.invalid_offset.unwrap_or(ivory_core::Qty::ZERO).to_json()),
    }
}

/// The envelope of an item the gateway refused before proposing it.
fn refused_envelope<'a>(kind: WriteKind, id: &'a str, e: &'a ApiError) -> Envelope<'a> {
    Envelope {
        code: Some(&e.code),
        id: PrefixedId(kind, id),
        message: &e.message,
        processing_status: "failure",
        reservation_id: None,
        status_code: e.status.as_u16(),
        total_invalid_offset_qty_by_reserv_id: None,
    }
}

fn envelope_response(status: StatusCode, envelope: &Envelope<'_>) -> Response {
    (status, axum::Json(envelope)).into_response()
}

async fn single(s: AppState, env: String, kind: WriteKind, body: Body) -> Response {
    let bytes = match body_bytes(body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let answer = match (kind == WriteKind::Reserve)
        .then(|| reserve_body::single(&bytes))
        .flatten()
    {
        Some(item) => service::reserve_single(&s, &env, &item).await,
        None => match json_value(&bytes) {
            Ok(value) => service::write_single(&s, &env, kind, &value).await,
            Err(e) => return e.into_response(),
        },
    };
    match answer {
        Ok((id, ItemAnswer::Applied(r))) => envelope_response(http_status(r.outcome), &result_envelope(kind, &id, &r)),
        Ok((id, ItemAnswer::Refused(e) | ItemAnswer::Unknown(e))) => {
            envelope_response(e.status, &refused_envelope(kind, &id, &e))
        }
        Err(e) => e.into_response(),
    }
}

/// A bulk body: a JSON array of at most 512 items (each checked on its own later).
pub(crate) fn bulk_items(value: Value) -> Result<Vec<Value>, ApiError> {
    let Value::Array(items) = value else {
        return Err(ApiError::bad_request(
            "body.not_array",
            "body: a bulk call takes a JSON array of items",
        ));
    };
    if items.len() > BATCH_COMMANDS_MAX {
        return Err(ApiError::bad_request(
            "limit.bulk_items",
            format!(
                "body: {} items, at most {BATCH_COMMANDS_MAX} per bulk call",
                items.len()
            ),
        ));
    }
    Ok(items)
}

async fn bulk(s: AppState, env: String, kind: WriteKind, body: Body) -> Response {
    let bytes = match body_bytes(body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let reserves = (kind == WriteKind::Reserve)
        .then(|| reserve_body::bulk(&bytes))
        .flatten();
    let answers = match reserves {
        Some(items) => service::reserve_items(&s, &env, &items).await,
        None => match json_value(&bytes).and_then(bulk_items) {
            Ok(items) => service::write_items(&s, &env, kind, &items).await,
            Err(e) => return e.into_response(),
        },
    };
    let answers = match answers {
        Ok(answers) => answers,
        Err(e) => return e.into_response(),
    };
    // Every bucket is present, empty or not.
    let mut buckets: BTreeMap<&str, Vec<Envelope<'_>>> = BUCKETS.iter().map(|b| (*b, Vec::new())).collect();
    for (id, answer) in &answers {
        let Some(answer) = answer else { continue };
        let envelope = match answer {
            ItemAnswer::Applied(r) => result_envelope(kind, id, r),
            ItemAnswer::Refused(e) => refused_envelope(kind, id, e),
            ItemAnswer::Unknown(e) => Envelope {
                processing_status: "unknown",
                ..refused_envelope(kind, id, e)
            },
        };
        buckets.entry(answer.bucket()).or_default().push(envelope);
    }
    (StatusCode::OK, axum::Json(&buckets)).into_response()
}
