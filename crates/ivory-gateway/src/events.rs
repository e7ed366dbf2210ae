//! `GET /api/environment/{env}/events?from=<cursor>`: the hold events of every shard, merged.
//!
//! Each shard keeps its last 10,000 events in its replicated state with a sequence number
//! (`ivory_core::hold`), so a follower reads them with linearizable reads and a leader change
//! loses none. The cursor is one position per shard, `0:12,1:5,...` (a shard left out is at 0):
//! every event carries the cursor just after it (the SSE `id:`), so `from=` or `Last-Event-ID`
//! resumes exactly after the last event a client saw. Events of other environments are skipped.
//!
//! - Server-sent events (default): long-polls the shards every 200 ms; a shard that cannot be
//!   read for a moment (an election) is read again on the next round from the same position.
//! - `wait=false`: one JSON page `{events, cursor}` (at most `limit` events per shard).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ivory_core::hold::Event;
use ivory_core::{ReadRequest, ReadResponse};
use serde_json::{Value, json};

use crate::holds::rfc3339;
use crate::parse::{ApiPath, ApiQuery};
use crate::{ApiError, AppState, json_response};

/// How often a follower asks the shards for new events.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Events read from one shard per round (and the default page size of `wait=false`).
pub(crate) const READ_LIMIT: usize = 1000;

/// One position per shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cursor(BTreeMap<u32, u64>);

impl Cursor {
    pub fn parse(text: &str, shards: u32) -> Result<Cursor, ApiError> {
        let bad = |part: &str| {
            ApiError::bad_request(
                "field.bad_value",
                format!("from: '{part}' is not SHARD:POSITION (a cursor looks like 0:12,1:5)"),
            )
        };
        let mut out = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (shard, pos) = part.split_once(':').ok_or_else(|| bad(part))?;
            let shard: u32 = shard.trim().parse().map_err(|_| bad(part))?;
            let pos: u64 = pos.trim().parse().map_err(|_| bad(part))?;
            if shard >= shards {
                return Err(ApiError::bad_request(
                    "field.bad_value",
                    format!("from: shard {shard} does not exist ({shards} shards)"),
                ));
            }
            out.insert(shard, pos);
        }
        Ok(Cursor(out))
    }

    fn at(&self, shard: u32) -> u64 {
        self.0.get(&shard).copied().unwrap_or(0)
    }

    pub fn render(&self, shards: u32) -> String {
        (0..shards)
            .map(|s| format!("{s}:{}", self.at(s)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn event_json(shard: u32, e: &Event) -> Value {
    if let Some(stock) = &e.stock {
        return json!({
            "type": e.kind.name(),
            "organizationId": stock.partition.organization,
            "productId": stock.product,
            "siteId": stock.partition.site,
            "locationId": stock.partition.location,
            "measure": stock.measure.to_string(),
            "value": stock.value.to_json(),
            "threshold": stock.threshold.to_json(),
            "at": rfc3339(e.ts_ms),
            "shard": shard,
            "seq": e.seq,
        });
    }
    json!({
        "type": e.kind.name(),
        "holdId": e.hold.id,
        "organizationId": e.hold.organization,
        "status": e.status.name(),
        "at": rfc3339(e.ts_ms),
        "shard": shard,
        "seq": e.seq,
    })
}

/// `limit` of a `wait=false` page.
pub(crate) fn page_limit(text: Option<&str>) -> Result<usize, ApiError> {
    match text.map(str::parse::<usize>) {
        None => Ok(READ_LIMIT),
        Some(Ok(l)) if (1..=10_000).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::bad_request(
            "field.bad_value",
            "limit: a number from 1 to 10000",
        )),
    }
}

/// One round: every shard's events after the cursor (this environment's), each with the cursor
/// after it; the cursor moves past every event read, whatever its environment. A shard that
/// cannot be read stays where it is.
pub(crate) async fn poll(s: &AppState, env: &str, cursor: &mut Cursor, limit: usize) -> Vec<(String, u32, Event)> {
    let shards = s.backend.shard_count();
    let reads = (0..shards).map(|shard| {
        let from_seq = cursor.at(shard);
        async move {
            let r = s.read(shard, ReadRequest::Events { from_seq, limit }).await;
            (shard, r)
        }
    });
    let mut out = Vec::new();
    for (shard, result) in futures::future::join_all(reads).await {
        match result {
            Ok(ReadResponse::Events { events, .. }) => {
                for e in events {
                    cursor.0.insert(shard, e.seq + 1);
                    if e.hold.environment == env {
                        out.push((cursor.render(shards), shard, e));
                    }
                }
            }
            Ok(_) => tracing::warn!(shard, "an events read answered something else"),
            Err(e) => tracing::debug!(shard, code = %e.code, "events read failed; retried next round"),
        }
    }
    out
}

#[utoipa::path(get, path = "/api/environment/{environmentId}/events", tag = "holds", summary = "Hold and stock events",
    params(crate::openapi::EnvironmentPath, crate::openapi::EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this cursor (server-sent events)")),
    responses(
        (status = 200, description = "`wait=false`: one JSON page; else server-sent events whose `id:` is the cursor after the event",
            content(
                (crate::openapi::EventsPage = "application/json"),
                (crate::openapi::ServerSentEvent = "text/event-stream"),
            )),
    ))]
/// `GET /events?from=<cursor>&wait=false&limit=N`, or a server-sent event stream.
pub(crate) async fn events(
    State(s): State<AppState>,
    ApiPath(env): ApiPath<String>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let shards = s.backend.shard_count();
    let from = param("from").or_else(|| {
        headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let mut cursor = match Cursor::parse(from.as_deref().unwrap_or(""), shards) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let wait = !param("wait").is_some_and(|w| w.eq_ignore_ascii_case("false") || w == "0");
    if !wait {
        let limit = match page_limit(param("limit").as_deref()) {
            Ok(l) => l,
            Err(e) => return e.into_response(),
        };
        let page = poll(&s, &env, &mut cursor, limit).await;
        let events: Vec<Value> = page
            .into_iter()
            .map(|(id, shard, e)| {
                let mut v = event_json(shard, &e);
                v["cursor"] = json!(id);
                v
            })
            .collect();
        return json_response(
            StatusCode::OK,
            json!({"events": events, "cursor": cursor.render(shards)}),
        );
    }
    // Each follower polls every shard: their number per environment is bounded.
    let Some(slot) = s.limits.follow(&env) else {
        return crate::limits::overloaded(
            "overload.too_many_followers",
            format!("environment '{env}' has as many event-stream followers as this node serves"),
        );
    };
    let state = (s, env, cursor, VecDeque::<(String, Value)>::new(), slot);
    let stream = futures::stream::unfold(state, |(s, env, mut cursor, mut buffer, slot)| async move {
        loop {
            if let Some((id, v)) = buffer.pop_front() {
                let event = SseEvent::default()
                    .id(id)
                    .event(v["type"].as_str().unwrap_or("event"))
                    .data(v.to_string());
                return Some((Ok::<_, Infallible>(event), (s, env, cursor, buffer, slot)));
            }
            buffer.extend(
                poll(&s, &env, &mut cursor, READ_LIMIT)
                    .await
                    .into_iter()
                    .map(|(id, shard, e)| (id, event_json(shard, &e))),
            );
            if buffer.is_empty() {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
