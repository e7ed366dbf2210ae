//! The lifecycle of a hold after its create (DESIGN.md §3 "Holds"): release, confirm, extend and
//! consume ([`run_step`], sent to every part of the hold it applies to) and the PATCH of its
//! lines ([`patch_hold`], compensated across shards). The REST routes parse their bodies and
//! render the hold; gRPC (`holds_grpc`) calls the same functions.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ivory_core::hold::{HoldCommand, HoldKey, HoldState, HoldStatus, LineState};
use serde_json::{Map, Value};

use crate::holds::{
    Body, EXPIRES_IN_DEFAULT_S, Params, Parts, answer, by_shard, expires_in, first_failure, hold_body, key_of,
    not_found, now_ms, optional_body, parse_items, part_expiry, primary, propose_batches, propose_each, read_hold,
    read_parts,
};
use crate::parse::{ApiPath, ApiQuery, text_value};
use crate::{ApiError, AppState};

/// Which lifecycle step a route takes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step {
    Release,
    Confirm,
    Extend,
    Consume,
}

/// REST's lifecycle routes: the body (empty = `{}`), then [`run_step`]; 200 with the hold.
async fn step(
    s: AppState,
    env: String,
    id: String,
    params: HashMap<String, String>,
    body: Body,
    step: Step,
) -> Response {
    answer(
        async {
            let body = optional_body(body)?;
            Ok((StatusCode::OK, run_step(&s, env, &id, &params, &body, step).await?))
        }
        .await,
    )
}

/// The service layer's lifecycle step: sent to every part it applies to; all applied -> the hold.
pub(crate) async fn run_step(
    s: &AppState,
    env: String,
    id: &str,
    params: &HashMap<String, String>,
    body: &Map<String, Value>,
    step: Step,
) -> Result<Parts, ApiError> {
    {
        let key = key_of(env, id, params, body)?;
        let parts = read_parts(s, &key).await?;
        let Some(p) = primary(&parts) else {
            return Err(not_found(&key));
        };
        let p_status = p.status;
        let live = |h: &HoldState| {
            matches!(
                h.status,
                HoldStatus::Tentative | HoldStatus::Active | HoldStatus::Confirmed
            )
        };
        let refused = |what: &str| {
            ApiError::new(
                StatusCode::CONFLICT,
                "hold.conflict",
                format!("hold is {}; {what}", p_status.name()),
            )
        };
        // The primary decides: once it has expired, so has the hold, whatever another part's
        // expiry has not reached yet (a release still frees such a part at once).
        if p_status == HoldStatus::Expired && !matches!(step, Step::Release) {
            return Err(refused(match step {
                Step::Confirm => "only an active hold can be confirmed",
                Step::Extend => "only an active hold can be extended",
                _ => "only an active or confirmed hold can be consumed",
            }));
        }
        let commands: Vec<(u32, HoldCommand)> = match step {
            Step::Release => {
                let c: Vec<_> = parts
                    .iter()
                    .filter(|(_, h)| live(h))
                    .map(|(shard, _)| (*shard, HoldCommand::Release { key: key.clone() }))
                    .collect();
                if c.is_empty() && p_status != HoldStatus::Released {
                    return Err(refused("there is nothing left to release"));
                }
                c
            }
            Step::Confirm => {
                let c: Vec<_> = parts
                    .iter()
                    .filter(|(_, h)| h.status == HoldStatus::Active)
                    .map(|(shard, _)| (*shard, HoldCommand::Confirm { key: key.clone() }))
                    .collect();
                if c.is_empty() && p_status != HoldStatus::Confirmed {
                    return Err(refused("only an active hold can be confirmed"));
                }
                c
            }
            Step::Extend => {
                let expires_at_ms = now_ms() + expires_in(body, None)? * 1000;
                let c: Vec<_> = parts
                    .iter()
                    .filter(|(_, h)| h.status == HoldStatus::Active)
                    .map(|(shard, h)| {
                        (
                            *shard,
                            HoldCommand::Extend {
                                key: key.clone(),
                                // The other parts' safety nets move with the hold's expiry.
                                expires_at_ms: part_expiry(h.primary, expires_at_ms),
                            },
                        )
                    })
                    .collect();
                if c.is_empty() || p_status != HoldStatus::Active {
                    return Err(refused("only an active hold can be extended"));
                }
                c
            }
            Step::Consume => consume_commands(&key, &parts, body)?,
        };
        let results = propose_each(s, commands).await;
        if let Some(e) = first_failure(&results) {
            return Err(e);
        }
        read_hold(s, &key).await
    }
}

/// `lineIds` of a consume: empty = every line.
pub(crate) fn line_ids(body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match body.get("lineIds") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(ids)) => ids
            .iter()
            .enumerate()
            .map(|(i, v)| text_value(v, format_args!("lineIds[{i}]")))
            .collect(),
        Some(_) => Err(ApiError::bad_request(
            "field.bad_type",
            "lineIds: must be an array of line ids",
        )),
    }
}

/// `lineIds` (all lines when absent or empty) to `Consume` per shard that holds them.
fn consume_commands(
    key: &HoldKey,
    parts: &[(u32, HoldState)],
    body: &Map<String, Value>,
) -> Result<Vec<(u32, HoldCommand)>, ApiError> {
    let consumable = |h: &HoldState| matches!(h.status, HoldStatus::Active | HoldStatus::Confirmed);
    let wanted = line_ids(body)?;
    // A consume repeated after its first answer was lost: the same answer, nothing proposed.
    let line_consumed = |id: &String| {
        parts
            .iter()
            .flat_map(|(_, h)| h.lines.iter())
            .any(|l| &l.line.line_id == id && l.state == LineState::Consumed)
    };
    let done = if wanted.is_empty() {
        !parts.is_empty() && parts.iter().all(|(_, h)| h.status == HoldStatus::Consumed)
    } else {
        wanted.iter().all(line_consumed)
    };
    if done {
        return Ok(Vec::new());
    }
    let mut commands = Vec::new();
    if wanted.is_empty() {
        commands.extend(parts.iter().filter(|(_, h)| consumable(h)).map(|(shard, _)| {
            (
                *shard,
                HoldCommand::Consume {
                    key: key.clone(),
                    line_ids: Vec::new(),
                },
            )
        }));
    } else {
        let mut per_shard: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for id in &wanted {
            let Some((shard, _)) = parts
                .iter()
                .find(|(_, h)| h.lines.iter().any(|l| &l.line.line_id == id))
            else {
                return Err(ApiError::bad_request(
                    "field.bad_value",
                    format!("lineIds: '{id}' is not a line of this hold"),
                ));
            };
            per_shard.entry(*shard).or_default().push(id.clone());
        }
        commands.extend(per_shard.into_iter().map(|(shard, line_ids)| {
            (
                shard,
                HoldCommand::Consume {
                    key: key.clone(),
                    line_ids,
                },
            )
        }));
    }
    if commands.is_empty()
        || commands
            .iter()
            .any(|(shard, _)| !parts.iter().any(|(s, h)| s == shard && consumable(h)))
    {
        let status = primary(parts).map_or("unknown", |p| p.status.name());
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "hold.conflict",
            format!("hold is {status}; only an active or confirmed hold can be consumed"),
        ));
    }
    Ok(commands)
}

#[utoipa::path(delete, path = "/api/environment/{environmentId}/holds/{id}", tag = "holds", summary = "Release every open line",
    params(crate::openapi::HoldPath, crate::openapi::HoldQuery),
    responses((status = 200, description = "The hold as it is now", body = crate::openapi::Hold), (status = 404, description = "Unknown hold (`hold.not_found`)", body = crate::openapi::ErrorBody), (status = 409, description = "The hold's status does not allow it (`hold.conflict`)", body = crate::openapi::ErrorBody)))]
/// `DELETE /holds/{id}`: releases every open line (Digital River).
pub(crate) async fn release(
    State(s): State<AppState>,
    ApiPath((env, id)): ApiPath<(String, String)>,
    ApiQuery(params): Params,
    body: Body,
) -> Response {
    step(s, env, id, params, body, Step::Release).await
}

#[utoipa::path(post, path = "/api/environment/{environmentId}/holds/{id}/confirm", tag = "holds", summary = "Keep the hold without expiry",
    params(crate::openapi::HoldPath, crate::openapi::HoldQuery),
    responses((status = 200, description = "The hold as it is now", body = crate::openapi::Hold), (status = 404, description = "Unknown hold (`hold.not_found`)", body = crate::openapi::ErrorBody), (status = 409, description = "The hold's status does not allow it (`hold.conflict`)", body = crate::openapi::ErrorBody)))]
/// `POST /holds/{id}/confirm`: no expiry from now on (VTEX's confirmed).
pub(crate) async fn confirm(
    State(s): State<AppState>,
    ApiPath((env, id)): ApiPath<(String, String)>,
    ApiQuery(params): Params,
    body: Body,
) -> Response {
    step(s, env, id, params, body, Step::Confirm).await
}

#[utoipa::path(post, path = "/api/environment/{environmentId}/holds/{id}/extend", tag = "holds", summary = "A new expiry, from now",
    params(crate::openapi::HoldPath, crate::openapi::HoldQuery),
    request_body(content = Option<crate::openapi::HoldExtendRequest>, content_type = "application/json"),
    responses((status = 200, description = "The hold as it is now", body = crate::openapi::Hold), (status = 404, description = "Unknown hold (`hold.not_found`)", body = crate::openapi::ErrorBody), (status = 409, description = "The hold's status does not allow it (`hold.conflict`)", body = crate::openapi::ErrorBody)))]
/// `POST /holds/{id}/extend {expiresInSeconds}`: a new expiry, counted from now.
pub(crate) async fn extend(
    State(s): State<AppState>,
    ApiPath((env, id)): ApiPath<(String, String)>,
    ApiQuery(params): Params,
    body: Body,
) -> Response {
    step(s, env, id, params, body, Step::Extend).await
}

#[utoipa::path(post, path = "/api/environment/{environmentId}/holds/{id}/consume", tag = "holds", summary = "The held stock leaves on-hand",
    params(crate::openapi::HoldPath, crate::openapi::HoldQuery),
    request_body(content = Option<crate::openapi::HoldConsumeRequest>, content_type = "application/json"),
    responses((status = 200, description = "The hold as it is now", body = crate::openapi::Hold), (status = 404, description = "Unknown hold (`hold.not_found`)", body = crate::openapi::ErrorBody), (status = 409, description = "The hold's status does not allow it (`hold.conflict`)", body = crate::openapi::ErrorBody)))]
/// `POST /holds/{id}/consume {lineIds?}`: the stock leaves on-hand, as a fulfilment order does.
pub(crate) async fn consume(
    State(s): State<AppState>,
    ApiPath((env, id)): ApiPath<(String, String)>,
    ApiQuery(params): Params,
    body: Body,
) -> Response {
    step(s, env, id, params, body, Step::Consume).await
}

#[utoipa::path(patch, path = "/api/environment/{environmentId}/holds/{id}/items", tag = "holds", summary = "Replace the lines; the timer restarts",
    params(crate::openapi::HoldPath, crate::openapi::HoldQuery),
    request_body(content = crate::openapi::HoldPatchRequest, content_type = "application/json"),
    responses((status = 200, description = "The hold as it is now", body = crate::openapi::Hold), (status = 404, description = "Unknown hold (`hold.not_found`)", body = crate::openapi::ErrorBody), (status = 409, description = "Not active (`hold.conflict`) or a line the stock cannot cover (`hold.insufficient`; the old lines are kept)", body = crate::openapi::ErrorBody)))]
/// `PATCH /holds/{id}/items {items, expiresInSeconds?}`: the full new list of lines; the timer
/// restarts (`expiresInSeconds`, default 900). Within one shard the change is one log entry,
/// all or nothing. Across shards it is compensated, not atomic: each shard's part changes on its
/// own and, when one refuses, the parts already changed get their old lines back (a concurrent
/// reader may see the mix for that moment; if the old stock was taken meanwhile, putting it back
/// fails and that part keeps the new lines: the answer then says so).
pub(crate) async fn patch_items(
    State(s): State<AppState>,
    ApiPath((env, id)): ApiPath<(String, String)>,
    ApiQuery(params): Params,
    body: Body,
) -> Response {
    answer(
        async {
            let Value::Object(body) = hold_body(body)? else {
                return Err(ApiError::bad_request("body.not_object", "body: must be a JSON object"));
            };
            Ok((StatusCode::OK, patch_hold(&s, env, &id, &params, &body).await?))
        }
        .await,
    )
}

/// The service layer's PATCH of a hold's lines.
pub(crate) async fn patch_hold(
    s: &AppState,
    env: String,
    id: &str,
    params: &HashMap<String, String>,
    body: &Map<String, Value>,
) -> Result<Parts, ApiError> {
    let key = key_of(env, id, params, body)?;
    let lines = parse_items(s, &key.environment, &key.organization, body).await?;
    let expires_at_ms = now_ms() + expires_in(body, Some(EXPIRES_IN_DEFAULT_S))? * 1000;
    let parts = read_parts(s, &key).await?;
    let Some(p_ref) = primary(&parts) else {
        return Err(not_found(&key));
    };
    let primary_shard = parts
        .iter()
        .find(|(_, h)| std::ptr::eq(h, p_ref))
        .map(|(shard, _)| *shard);
    let p = p_ref.clone();
    if p.status != HoldStatus::Active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "hold.conflict",
            format!("hold is {}; only an active hold's lines can change", p.status.name()),
        ));
    }
    let mut new_lines = by_shard(s, &lines);
    for (shard, _) in &parts {
        new_lines.entry(*shard).or_default();
    }
    let old: BTreeMap<u32, &HoldState> = parts.iter().map(|(shard, h)| (*shard, h)).collect();
    // The primary learns of the parts the new lines add (in the log entry of its own change), so
    // its expiry takes them along; their own expiry is a safety net later.
    let added: Vec<u32> = new_lines.keys().copied().filter(|s| !old.contains_key(s)).collect();
    let commands: Vec<(u32, Vec<HoldCommand>)> = new_lines
        .into_iter()
        .map(|(shard, lines)| {
            let is_primary = Some(shard) == primary_shard;
            let command = if old.contains_key(&shard) {
                HoldCommand::ReplaceLines {
                    key: key.clone(),
                    lines,
                    expires_at_ms: part_expiry(is_primary, expires_at_ms),
                }
            } else {
                HoldCommand::Create {
                    key: key.clone(),
                    measure: p.measure.clone(),
                    lines,
                    expires_at_ms: part_expiry(false, expires_at_ms),
                    all_or_nothing: p.all_or_nothing,
                    tentative: false,
                    body_fingerprint: p.body_fingerprint,
                    primary: false,
                }
            };
            let mut batch = vec![command];
            if is_primary && !added.is_empty() {
                batch.push(HoldCommand::SetSiblings {
                    key: key.clone(),
                    body_fingerprint: p.body_fingerprint,
                    shards: added.clone(),
                });
            }
            (shard, batch)
        })
        .collect();
    let results = propose_batches(s, commands).await;
    let Some(e) = first_failure(&results) else {
        return read_hold(s, &key).await;
    };
    // Compensate: the parts that changed get their old lines back.
    let undo: Vec<(u32, HoldCommand)> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(r) if r.outcome.applied()))
        .map(|(shard, _)| {
            let (lines, expires) = match old.get(shard) {
                Some(h) => (
                    h.lines
                        .iter()
                        .filter(|l| l.state == LineState::Held)
                        .map(|l| l.line.clone())
                        .collect(),
                    h.expires_at_ms.unwrap_or(expires_at_ms),
                ),
                None => (Vec::new(), expires_at_ms),
            };
            (
                *shard,
                HoldCommand::ReplaceLines {
                    key: key.clone(),
                    lines,
                    expires_at_ms: expires,
                },
            )
        })
        .collect();
    let undone = propose_each(s, undo).await;
    let message = match first_failure(&undone) {
        None => format!("{}; the hold keeps its old lines", e.message),
        Some(u) => format!(
            "{}; putting the old lines back failed in a shard ({}), so the hold now mixes old and new lines: read it",
            e.message, u.message
        ),
    };
    Err(ApiError::new(e.status, e.code, message))
}
