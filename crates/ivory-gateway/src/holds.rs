//! Holds: a cart's lines held for a time to live, all of them or none, with a lifecycle
//! (DESIGN.md §3 "Holds"; docs/iv-compatibility.md §8). Every rule about stock is in `ivory_core::hold`;
//! this module parses, routes lines to shards and runs the cross-shard protocol:
//!
//! - lines in one shard: one `Create(tentative = false)`, one log entry, all or nothing;
//! - lines in several shards: `Create(tentative = true, expires in 10 s)` in each, in parallel
//!   (the primary's with `SetSiblings`, the other parts' shards, in the same log entry); then
//!   `Commit` in each: the primary with the hold's expiry, the other parts with a safety net
//!   [`SIBLING_EXPIRY_GRACE_MS`] later, as the primary alone decides when the hold expires (its
//!   shard's leader expires the other parts then). Any refusal releases the parts already
//!   held. A gateway that dies half way leaves tentative parts that expire by themselves (the
//!   sweep; the primary's expiry takes the others with it).
//!
//! A hold is known by (environment, organizationId, id): the routes that name a hold by id take
//! `organizationId` as a query parameter (or in the body of a POST/PATCH).
//!
//! This module parses holds, creates them ([`create_hold`]) and reads them ([`read_hold`]); the
//! lifecycle after the create is `hold_steps`. Both are the service layer REST and gRPC call.
//!
//! Replays: a create whose id is known with the same body answers 200 with the hold as it is now
//! (a first create answers 201); a known id with another body is 409 `hold.conflict`. A create
//! whose primary part is still tentative (its gateway died) runs the protocol again to its end.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ivory_core::hold::{
    HoldCommand, HoldKey, HoldLine, HoldState, HoldStatus, LineState, SIBLING_EXPIRY_GRACE_MS, body_fingerprint,
};
use ivory_core::json::KeyCanon;
use ivory_core::{CmdResult, Command, MeasureRef, Outcome, ReadRequest, ReadResponse};
use serde_json::{Map, Value, json};

use crate::parse::{
    ApiPath, ApiQuery, FIELDS, bool_value, json_body, mapping_config, optional_text, partition_and_cell, qty_value,
    required_text, text_value,
};
use crate::{ApiError, AppState, json_response};

/// The first phase's expiry across shards: a gateway that dies leaves nothing held longer.
pub const TENTATIVE_TTL_MS: u64 = 10_000;
/// `expiresInSeconds` when the client gives none (Kibo's default cart timer: 15 minutes).
pub const EXPIRES_IN_DEFAULT_S: u64 = 900;
/// Longest `expiresInSeconds` accepted: 7 days.
pub const EXPIRES_IN_MAX_S: u64 = 7 * 24 * 3600;
/// Test hook (off unless set): pause this long between the two phases of a cross-shard create.
pub const TEST_PAUSE_ENV: &str = "IVORY_TEST_HOLD_PAUSE_MS";
/// With the hook on, pause only holds whose id starts with this (default: every hold).
pub const TEST_PAUSE_PREFIX_ENV: &str = "IVORY_TEST_HOLD_PAUSE_PREFIX";

const HOLD_FIELDS: &[&str] = &[
    "items",
    "lineId",
    "lineIds",
    "expiresInSeconds",
    "allOrNothing",
    "allowOversell",
];

pub(crate) type Body = Result<Bytes, BytesRejection>;
pub(crate) type Params = ApiQuery<HashMap<String, String>>;

pub(crate) fn canon() -> &'static KeyCanon {
    static CANON: OnceLock<KeyCanon> = OnceLock::new();
    CANON.get_or_init(|| {
        let all: Vec<&'static str> = FIELDS.iter().chain(HOLD_FIELDS).copied().collect();
        KeyCanon::new(&all)
    })
}

pub(crate) fn hold_body(body: Body) -> Result<Value, ApiError> {
    let value = json_body(body)?;
    canon()
        .apply(value)
        .map_err(|e| ApiError::bad_request("body.malformed", e))
}

/// An empty body counts as `{}` for the action routes.
pub(crate) fn optional_body(body: Body) -> Result<Map<String, Value>, ApiError> {
    if matches!(&body, Ok(b) if b.iter().all(u8::is_ascii_whitespace)) {
        return Ok(Map::new());
    }
    match hold_body(body)? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(ApiError::bad_request("body.not_object", "body: must be a JSON object")),
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-11-23T10:26:09.123Z`.
pub(crate) fn rfc3339(ms: u64) -> String {
    let (y, m, d) = ivory_core::date::civil_from_days((ms / 86_400_000) as i64);
    let t = ms % 86_400_000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        t / 3_600_000,
        (t / 60_000) % 60,
        (t / 1000) % 60,
        t % 1000
    )
}

fn test_pause(id: &str) -> Option<Duration> {
    static HOOK: OnceLock<Option<(u64, String)>> = OnceLock::new();
    let hook = HOOK.get_or_init(|| {
        let ms = std::env::var(TEST_PAUSE_ENV).ok()?.trim().parse::<u64>().ok()?;
        let prefix = std::env::var(TEST_PAUSE_PREFIX_ENV).unwrap_or_default();
        tracing::warn!(
            ms,
            prefix,
            "test hook on: cross-shard hold creates pause between their phases"
        );
        Some((ms, prefix))
    });
    hook.as_ref()
        .filter(|(_, prefix)| id.starts_with(prefix.as_str()))
        .map(|(ms, _)| Duration::from_millis(*ms))
}

/// The stable code and HTTP status of a shard's refusal.
fn refusal(r: &CmdResult) -> ApiError {
    let (status, code) = match r.outcome {
        Outcome::Insufficient => (StatusCode::CONFLICT, "hold.insufficient"),
        Outcome::Conflict => (StatusCode::CONFLICT, "hold.conflict"),
        Outcome::NotFound => (StatusCode::NOT_FOUND, "hold.not_found"),
        Outcome::Invalid => (StatusCode::BAD_REQUEST, "hold.invalid"),
        Outcome::Refused => (StatusCode::CONFLICT, "command.refused"),
        Outcome::Success | Outcome::PartialSuccess => (StatusCode::BAD_GATEWAY, "backend.bad_response"),
    };
    ApiError::new(status, code, r.message.clone())
}

/// `organizationId` from the query (any case) or the body.
fn organization(params: &HashMap<String, String>, body: &Map<String, Value>) -> Result<String, ApiError> {
    let from_query = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("organizationId"))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty());
    match from_query {
        Some(org) => Ok(org),
        None => required_text(body, "organizationId", "").map_err(|_| {
            ApiError::bad_request(
                "field.missing",
                "organizationId: is required (query parameter, or in the body)",
            )
        }),
    }
}

fn hold_id(id: &str) -> Result<String, ApiError> {
    let id = text_value(&Value::String(id.to_string()), "id")?;
    if id.is_empty() {
        return Err(ApiError::bad_request("field.empty", "id: must not be empty"));
    }
    Ok(id)
}

pub(crate) fn expires_in(body: &Map<String, Value>, default: Option<u64>) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "field.bad_value",
            format!("expiresInSeconds: a whole number of seconds from 1 to {EXPIRES_IN_MAX_S}"),
        )
    };
    let seconds = match body.get("expiresInSeconds") {
        None | Some(Value::Null) => {
            default.ok_or_else(|| ApiError::bad_request("field.missing", "expiresInSeconds: is required"))?
        }
        Some(Value::Number(n)) => n.as_u64().ok_or_else(bad)?,
        Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| bad())?,
        Some(_) => return Err(bad()),
    };
    if !(1..=EXPIRES_IN_MAX_S).contains(&seconds) {
        return Err(bad());
    }
    Ok(seconds)
}

/// The items of a create or a PATCH, as hold lines in request order.
pub(crate) async fn parse_items(
    s: &AppState,
    environment: &str,
    organization: &str,
    body: &Map<String, Value>,
) -> Result<Vec<HoldLine>, ApiError> {
    let items = items_of(body)?;
    let config = mapping_config(s, environment, crate::parse::needs_mappings(items)).await?;
    parse_lines(&config, environment, organization, items)
}

/// `items`: an array of 1 to 512 lines.
pub(crate) fn items_of(body: &Map<String, Value>) -> Result<&[Value], ApiError> {
    let Some(Value::Array(items)) = body.get("items") else {
        return Err(ApiError::bad_request(
            "field.missing",
            "items: an array of 1 to 512 lines is required",
        ));
    };
    if items.is_empty() || items.len() > ivory_core::hold::HOLD_LINES_MAX {
        return Err(ApiError::bad_request(
            "limit.hold_lines",
            format!(
                "items: {} lines, a hold has 1 to {}",
                items.len(),
                ivory_core::hold::HOLD_LINES_MAX
            ),
        ));
    }
    Ok(items)
}

/// The lines of a create or a PATCH under a configuration (its dimension mappings).
pub(crate) fn parse_lines(
    config: &ivory_core::Config,
    environment: &str,
    organization: &str,
    items: &[Value],
) -> Result<Vec<HoldLine>, ApiError> {
    let mut lines = Vec::with_capacity(items.len());
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("items[{i}]");
        let Value::Object(obj) = item else {
            return Err(ApiError::bad_request(
                "body.not_object",
                format!("{path}: must be a JSON object"),
            ));
        };
        let mut obj = obj.clone();
        obj.insert("organizationId".into(), Value::String(organization.to_string()));
        let (partition, cell) = partition_and_cell(&obj, environment, config, &path, true, false)?;
        let line_id = optional_text(&obj, "lineId", &path)?.unwrap_or_else(|| (i + 1).to_string());
        if !seen.insert(line_id.clone()) {
            return Err(ApiError::bad_request(
                "field.duplicate",
                format!("{path}.lineId: '{line_id}' is used twice"),
            ));
        }
        let quantity = match obj.get("quantity") {
            None | Some(Value::Null) => {
                return Err(ApiError::bad_request(
                    "field.missing",
                    format!("{path}.quantity: is required"),
                ));
            }
            Some(v) => qty_value(v, format_args!("{path}.quantity"))?,
        };
        if !quantity.is_positive() {
            return Err(ApiError::bad_request(
                "field.bad_value",
                format!("{path}.quantity: must be greater than zero"),
            ));
        }
        let allow_oversell = bool_value(obj.get("allowOversell"), format_args!("{path}.allowOversell"), false)?;
        lines.push(HoldLine {
            line_id,
            partition,
            cell,
            quantity,
            allow_oversell,
        });
    }
    Ok(lines)
}

/// Lines by shard, each shard's lines in request order.
pub(crate) fn by_shard(s: &AppState, lines: &[HoldLine]) -> BTreeMap<u32, Vec<HoldLine>> {
    let mut out: BTreeMap<u32, Vec<HoldLine>> = BTreeMap::new();
    for line in lines {
        out.entry(s.backend.shard_of(&line.partition))
            .or_default()
            .push(line.clone());
    }
    out
}

/// Proposes one hold command per shard, in parallel; one answer per shard.
pub(crate) async fn propose_each(
    s: &AppState,
    commands: Vec<(u32, HoldCommand)>,
) -> Vec<(u32, Result<CmdResult, ApiError>)> {
    propose_batches(s, commands.into_iter().map(|(shard, c)| (shard, vec![c])).collect()).await
}

/// Proposes hold commands per shard (each shard's as one log entry), in parallel; one answer per
/// shard: its first refusal, else its first command's answer.
pub(crate) async fn propose_batches(
    s: &AppState,
    batches: Vec<(u32, Vec<HoldCommand>)>,
) -> Vec<(u32, Result<CmdResult, ApiError>)> {
    let calls = batches.into_iter().map(|(shard, commands)| async move {
        let result = s
            .propose(shard, commands.into_iter().map(Command::Hold).collect())
            .await
            .and_then(|r| {
                let refused = r.iter().position(|r| !r.outcome.applied()).unwrap_or(0);
                r.into_iter()
                    .nth(refused)
                    .ok_or_else(|| ApiError::bad_backend("empty result"))
            });
        (shard, result)
    });
    futures::future::join_all(calls).await
}

/// The expiry of a hold's part: the hold's own on its primary part; on the others, a safety net
/// [`SIBLING_EXPIRY_GRACE_MS`] later (the primary's expiry ends them first, see `ivory_core::hold`).
pub(crate) fn part_expiry(primary: bool, expires_at_ms: u64) -> u64 {
    if primary {
        expires_at_ms
    } else {
        expires_at_ms.saturating_add(SIBLING_EXPIRY_GRACE_MS)
    }
}

/// The first failure among the answers: a business refusal before a backend error.
pub(crate) fn first_failure(results: &[(u32, Result<CmdResult, ApiError>)]) -> Option<ApiError> {
    let refused = results.iter().find_map(|(_, r)| match r {
        Ok(r) if !r.outcome.applied() => Some(refusal(r)),
        _ => None,
    });
    refused.or_else(|| results.iter().find_map(|(_, r)| r.as_ref().err().cloned()))
}

/// The hold's part in one shard.
async fn read_part(s: &AppState, shard: u32, key: &HoldKey) -> Result<Option<HoldState>, ApiError> {
    match s.read(shard, ReadRequest::Hold(key.clone())).await? {
        ReadResponse::Hold(h) => Ok(h.map(|b| *b)),
        _ => Err(ApiError::bad_backend("a hold read answered something else")),
    }
}

/// The hold's parts in every shard that knows it (linearizable reads, in parallel).
pub(crate) async fn read_parts(s: &AppState, key: &HoldKey) -> Result<Vec<(u32, HoldState)>, ApiError> {
    let reads = (0..s.backend.shard_count()).map(|shard| async move { (shard, read_part(s, shard, key).await) });
    let mut parts = Vec::new();
    for (shard, result) in futures::future::join_all(reads).await {
        if let Some(h) = result? {
            parts.push((shard, h));
        }
    }
    // A refused create with another body under this id may have left (released, never
    // committed) parts behind: they are not this hold's.
    let fingerprint = primary(&parts).map(|p| p.body_fingerprint);
    parts.retain(|(_, h)| Some(h.body_fingerprint) == fingerprint);
    Ok(parts)
}

fn committed(h: &HoldState) -> bool {
    h.history
        .iter()
        .any(|(s, _)| matches!(s, HoldStatus::Active | HoldStatus::Confirmed))
}

/// The part that speaks for the hold: a primary part (its first line's shard), preferring one
/// that was committed, then the latest created (a refused request under the same id leaves only
/// never-committed parts); else the first part known.
pub(crate) fn primary(parts: &[(u32, HoldState)]) -> Option<&HoldState> {
    parts
        .iter()
        .filter(|(_, h)| h.primary)
        .max_by_key(|(shard, h)| {
            (
                committed(h),
                h.history.first().map(|(_, at)| *at),
                std::cmp::Reverse(*shard),
            )
        })
        .or_else(|| parts.first())
        .map(|(_, h)| h)
}

pub(crate) fn line_status(state: LineState) -> &'static str {
    match state {
        LineState::Held => "held",
        LineState::Short => "short",
        LineState::Consumed => "consumed",
        LineState::Released => "released",
    }
}

/// The hold as the client sees it: the primary part's status, expiry and history, every
/// part's lines (the primary's first). While the primary's lines are released or consumed but
/// another part still holds stock, that part's status is the hold's. Once the primary has
/// expired the hold has: every line reads released, also a line of another part whose expiry
/// has not landed yet (its stock returns to the shard shortly after, never before).
pub(crate) struct HoldView<'a> {
    pub primary: &'a HoldState,
    pub status: HoldStatus,
    /// The parts, the primary first.
    pub ordered: Vec<&'a HoldState>,
}

impl HoldView<'_> {
    pub fn of(parts: &[(u32, HoldState)]) -> Option<HoldView<'_>> {
        let p = primary(parts)?;
        let mut status = p.status;
        if status.is_terminal()
            && status != HoldStatus::Expired
            && let Some((_, other)) = parts
                .iter()
                .find(|(_, h)| !h.status.is_terminal() && h.lines.iter().any(|l| l.state == LineState::Held))
        {
            status = other.status;
        }
        let mut ordered: Vec<&HoldState> = vec![p];
        ordered.extend(parts.iter().map(|(_, h)| h).filter(|h| !std::ptr::eq(*h, p)));
        Some(HoldView {
            primary: p,
            status,
            ordered,
        })
    }

    /// Every line with its state as the client sees it, the primary's first.
    pub fn lines(&self) -> impl Iterator<Item = (&HoldLine, LineState)> {
        let expired = self.status == HoldStatus::Expired;
        self.ordered.iter().flat_map(|h| h.lines.iter()).map(move |l| {
            let state = if expired && l.state == LineState::Held {
                LineState::Released
            } else {
                l.state
            };
            (&l.line, state)
        })
    }
}

/// A line's dimensions as the client sees them: the cell's, siteid and locationid.
pub(crate) fn line_dims(line: &HoldLine) -> BTreeMap<String, String> {
    let mut dims: BTreeMap<String, String> = line.cell.dims.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    dims.insert("siteid".into(), line.partition.site.clone());
    dims.insert("locationid".into(), line.partition.location.clone());
    dims
}

fn hold_json(parts: &[(u32, HoldState)]) -> Value {
    let Some(view) = HoldView::of(parts) else {
        return Value::Null;
    };
    let p = view.primary;
    let items: Vec<Value> = view
        .lines()
        .map(|(line, state)| {
            json!({
                "lineId": line.line_id,
                "productId": line.cell.product,
                "dimensions": line_dims(line),
                "quantity": line.quantity.to_json(),
                "allowOversell": line.allow_oversell,
                "status": line_status(state),
            })
        })
        .collect();
    let history: Vec<Value> = p
        .history
        .iter()
        .map(|(st, at)| json!({"status": st.name(), "at": rfc3339(*at)}))
        .collect();
    json!({
        "id": p.key.id,
        "organizationId": p.key.organization,
        "status": view.status.name(),
        // None once confirmed, released or consumed; an expired hold keeps the time it expired.
        "expiresAt": p.expires_at_ms.map(rfc3339),
        "createdAt": p.history.first().map(|(_, at)| rfc3339(*at)),
        "allOrNothing": p.all_or_nothing,
        "measure": p.measure.to_string(),
        "items": items,
        "history": history,
    })
}

/// A hold's parts, as every shard that knows it has them: the service layer's hold result.
pub(crate) type Parts = Vec<(u32, HoldState)>;

/// The hold as it is now; 404 `hold.not_found` when no shard knows it.
pub(crate) async fn read_hold(s: &AppState, key: &HoldKey) -> Result<Parts, ApiError> {
    let parts = read_parts(s, key).await?;
    if parts.is_empty() {
        return Err(not_found(key));
    }
    Ok(parts)
}

/// REST's answer with the hold: `status` and its JSON.
pub(crate) fn answer(result: Result<(StatusCode, Parts), ApiError>) -> Response {
    match result {
        Ok((status, parts)) => json_response(status, hold_json(&parts)),
        Err(e) => e.into_response(),
    }
}

pub(crate) fn not_found(key: &HoldKey) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "hold.not_found",
        format!("hold '{}' of organization '{}' is not known", key.id, key.organization),
    )
}

/// What a create request means, not how it is spelled: key case and spacing do not change it.
pub(crate) fn request_fingerprint(
    measure: &MeasureRef,
    lines: &[HoldLine],
    ttl_ms: u64,
    all_or_nothing: bool,
) -> [u8; 16] {
    body_fingerprint(format!("{measure:?}|{lines:?}|{ttl_ms}|{all_or_nothing}").as_bytes())
}

#[utoipa::path(post, path = "/api/environment/{environmentId}/holds", tag = "holds", summary = "Hold a cart's lines, all or nothing",
    params(crate::openapi::EnvironmentPath),
    request_body(content = crate::openapi::HoldCreateRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Held", body = crate::openapi::Hold),
        (status = 200, description = "The same id and request again: the hold as it is now", body = crate::openapi::Hold),
        (status = 409, description = "A line the stock cannot cover (`hold.insufficient`, nothing held) or the id is known with another body (`hold.conflict`)", body = crate::openapi::ErrorBody),
    ))]
/// `POST /holds`.
pub(crate) async fn create(State(s): State<AppState>, ApiPath(env): ApiPath<String>, body: Body) -> Response {
    answer(
        async {
            let Value::Object(body) = hold_body(body)? else {
                return Err(ApiError::bad_request("body.not_object", "body: must be a JSON object"));
            };
            let (created, parts) = create_hold(&s, env, &body).await?;
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, parts))
        }
        .await,
    )
}

/// A create's fields besides its lines.
pub(crate) struct CreateOptions {
    pub ttl_ms: u64,
    pub all_or_nothing: bool,
    pub measure: MeasureRef,
}

pub(crate) fn create_options(body: &Map<String, Value>) -> Result<CreateOptions, ApiError> {
    let ttl_ms = expires_in(body, Some(EXPIRES_IN_DEFAULT_S))? * 1000;
    let all_or_nothing = bool_value(body.get("allOrNothing"), "allOrNothing", true)?;
    let modifier = optional_text(body, "modifier", "")?.unwrap_or_else(|| "softreservphysical".into());
    let measure = match optional_text(body, "quantityDataSource", "")? {
        Some(ds) => MeasureRef::new(&ds, &modifier),
        None => MeasureRef::parse(&modifier).unwrap_or_else(|| MeasureRef::new("iv", &modifier)),
    };
    Ok(CreateOptions {
        ttl_ms,
        all_or_nothing,
        measure,
    })
}

/// The service layer's create: `(true, parts)` for a first create, `(false, parts)` for a
/// replay of the same request.
pub(crate) async fn create_hold(
    s: &AppState,
    env: String,
    body: &Map<String, Value>,
) -> Result<(bool, Parts), ApiError> {
    let organization = required_text(body, "organizationId", "")?;
    let id = required_text(body, "id", "")?;
    let lines = parse_items(s, &env, &organization, body).await?;
    let CreateOptions {
        ttl_ms,
        all_or_nothing,
        measure,
    } = create_options(body)?;
    let fingerprint = request_fingerprint(&measure, &lines, ttl_ms, all_or_nothing);
    let key = HoldKey {
        environment: env,
        organization,
        id,
    };
    let parts = by_shard(s, &lines);
    let primary_shard = s.backend.shard_of(&lines[0].partition);

    // A replay: the primary part answers for the hold.
    if let Some(existing) = read_part(s, primary_shard, &key).await? {
        if existing.body_fingerprint != fingerprint {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "hold.conflict",
                format!("hold '{}' exists with a different body", key.id),
            ));
        }
        if existing.status != HoldStatus::Tentative {
            // An earlier attempt committed the primary but not every other part (its answer
            // was lost): commit the tentative ones before their short expiry ends them.
            if let (HoldStatus::Active, Some(at)) = (existing.status, existing.expires_at_ms) {
                let commits: Vec<(u32, HoldCommand)> = read_parts(s, &key)
                    .await?
                    .into_iter()
                    .filter(|(_, h)| h.status == HoldStatus::Tentative && !h.primary)
                    .map(|(shard, _)| {
                        let commit = HoldCommand::Commit {
                            key: key.clone(),
                            expires_at_ms: part_expiry(false, at),
                        };
                        (shard, commit)
                    })
                    .collect();
                if let Some(e) = first_failure(&propose_each(s, commits).await) {
                    return Err(e);
                }
            }
            return Ok((false, read_hold(s, &key).await?));
        }
    }

    let create = |shard: u32, lines: Vec<HoldLine>, expires_at_ms: u64, tentative: bool| HoldCommand::Create {
        key: key.clone(),
        measure: measure.clone(),
        lines,
        expires_at_ms,
        all_or_nothing,
        tentative,
        body_fingerprint: fingerprint,
        primary: shard == primary_shard,
    };

    if parts.len() == 1 {
        // One shard: one log entry, all or nothing.
        let commands = vec![(primary_shard, create(primary_shard, lines, now_ms() + ttl_ms, false))];
        let results = propose_each(s, commands).await;
        if let Some(e) = first_failure(&results) {
            return Err(e);
        }
        return Ok((true, read_hold(s, &key).await?));
    }

    // Phase 1: tentative parts everywhere, with a short expiry; the primary learns the other
    // parts' shards in the same log entry, so its expiry (tentative or not) takes them along.
    let tentative_until = now_ms() + TENTATIVE_TTL_MS;
    let siblings: Vec<u32> = parts.keys().copied().filter(|shard| *shard != primary_shard).collect();
    let commands: Vec<(u32, Vec<HoldCommand>)> = parts
        .iter()
        .map(|(shard, lines)| {
            let mut batch = vec![create(*shard, lines.clone(), tentative_until, true)];
            if *shard == primary_shard {
                batch.push(HoldCommand::SetSiblings {
                    key: key.clone(),
                    body_fingerprint: fingerprint,
                    shards: siblings.clone(),
                });
            }
            (*shard, batch)
        })
        .collect();
    let results = propose_batches(s, commands).await;
    if let Some(e) = first_failure(&results) {
        // Only the parts this request placed: a shard that refused holds nothing of it (or holds
        // another request's hold under this id, which is not ours to release), and a shard whose
        // answer was lost keeps at most a tentative part that expires by itself.
        let placed = results
            .iter()
            .filter(|(shard, r)| match r {
                Ok(r) => r.outcome.applied(),
                // The primary's answer was lost: it may be there (a release of nothing is fine).
                Err(_) => *shard == primary_shard,
            })
            .map(|(shard, _)| *shard);
        release_everywhere(s, &key, primary_shard, placed).await;
        return Err(e);
    }
    if let Some(pause) = test_pause(&key.id) {
        tracing::warn!(hold = %key.id, ?pause, "test hook: pausing between the phases of a hold");
        tokio::time::sleep(pause).await;
    }
    // Phase 2: commit everywhere with the hold's real expiry (the other parts: its safety net).
    let expires_at_ms = now_ms() + ttl_ms;
    let commands: Vec<(u32, HoldCommand)> = parts
        .keys()
        .map(|shard| {
            (
                *shard,
                HoldCommand::Commit {
                    key: key.clone(),
                    expires_at_ms: part_expiry(*shard == primary_shard, expires_at_ms),
                },
            )
        })
        .collect();
    let results = propose_each(s, commands).await;
    if let Some(e) = first_failure(&results) {
        release_everywhere(s, &key, primary_shard, parts.keys().copied()).await;
        return Err(ApiError::new(
            e.status,
            e.code,
            format!(
                "the hold could not be committed in every shard; nothing is held: {}",
                e.message
            ),
        ));
    }
    Ok((true, read_hold(s, &key).await?))
}

/// Best effort, the primary's part first: the others only once it is released (or known not to
/// hold anything), since the primary decides. Were the others released while the primary's
/// release had not landed, a retry of the create could find the primary committed and answer
/// with a hold whose other parts a late release of this attempt then takes away. A part left
/// behind goes with the primary's expiry (passed on to it) or its own tentative one.
async fn release_everywhere(s: &AppState, key: &HoldKey, primary_shard: u32, shards: impl Iterator<Item = u32>) {
    let (first, rest): (Vec<u32>, Vec<u32>) = shards.partition(|shard| *shard == primary_shard);
    let release = |shards: Vec<u32>| {
        shards
            .into_iter()
            .map(|shard| (shard, HoldCommand::Release { key: key.clone() }))
            .collect()
    };
    let mut settled = true;
    for round in [first, rest] {
        if !settled {
            tracing::warn!(hold = %key.id, shards = ?round, "the primary part's release after a failed hold did not land; the other parts go with its expiry");
            break;
        }
        for (shard, result) in propose_each(s, release(round)).await {
            match result {
                Ok(r) if r.outcome.applied() || r.outcome == Outcome::NotFound => {}
                Ok(r) => {
                    tracing::info!(shard, hold = %key.id, message = %r.message, "release after a failed hold refused")
                }
                Err(e) => {
                    settled = false;
                    tracing::warn!(shard, hold = %key.id, error = %e.message, "release after a failed hold failed; the tentative part expires")
                }
            }
        }
    }
}

pub(crate) fn key_of(
    env: String,
    id: &str,
    params: &HashMap<String, String>,
    body: &Map<String, Value>,
) -> Result<HoldKey, ApiError> {
    Ok(HoldKey {
        environment: env,
        organization: organization(params, body)?,
        id: hold_id(id)?,
    })
}

#[utoipa::path(get, path = "/api/environment/{environmentId}/holds/{id}", tag = "holds", summary = "A hold",
    params(crate::openapi::HoldPath, crate::openapi::HoldQuery),
    responses((status = 200, description = "The hold as it is now", body = crate::openapi::Hold), (status = 404, description = "Unknown hold (`hold.not_found`)", body = crate::openapi::ErrorBody)))]
/// `GET /holds/{id}?organizationId=`.
pub(crate) async fn get(
    State(s): State<AppState>,
    ApiPath((env, id)): ApiPath<(String, String)>,
    ApiQuery(params): Params,
) -> Response {
    answer(
        async {
            let key = key_of(env, &id, &params, &Map::new())?;
            Ok((StatusCode::OK, read_hold(&s, &key).await?))
        }
        .await,
    )
}
