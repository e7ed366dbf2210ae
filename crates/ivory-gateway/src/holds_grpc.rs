//! gRPC service `ivory.v1.Holds` (proto/ivory/v1/holds.proto): typed messages calling the holds
//! service layer that REST calls (`holds::create_hold`, `read_hold`, `run_step`, `patch_hold`;
//! `events::poll`), with the same auth (`grpc::check_access`), limits and validation.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;

use futures::Stream;
use ivory_core::hold::Event;
use serde_json::{Map, Value};
use tonic::metadata::MetadataMap;
use tonic::{Response, Status};

use crate::events::{Cursor, POLL_INTERVAL, READ_LIMIT, poll};
use crate::grpc::{canonical, check_access, status_of};
use crate::grpc_messages as m;
use crate::hold_steps::{Step, patch_hold, run_step};
use crate::holds::{HoldView, Parts, create_hold, line_dims, line_status, read_hold, rfc3339};
use crate::proto::holds_server::{Holds, HoldsServer};
use crate::proto::{
    ConsumeHoldRequest, CreateHoldRequest, ExtendHoldRequest, FollowEventsRequest, Hold, HoldEvent, HoldHistoryEntry,
    HoldLine, HoldRef, PatchHoldItemsRequest,
};
use crate::{ApiError, AppState};

pub(crate) struct GrpcHolds {
    s: AppState,
}

pub(crate) fn server(s: AppState, body_limit: usize) -> HoldsServer<GrpcHolds> {
    HoldsServer::new(GrpcHolds { s }).max_decoding_message_size(body_limit)
}

type Reply<T> = Result<Response<T>, Status>;
type EventStream = Pin<Box<dyn Stream<Item = Result<HoldEvent, Status>> + Send + 'static>>;

/// The typed hold: what REST renders as JSON.
fn hold(parts: &Parts, created: bool) -> Hold {
    let Some(view) = HoldView::of(parts) else {
        return Hold::default();
    };
    let p = view.primary;
    Hold {
        id: p.key.id.clone(),
        organization_id: p.key.organization.clone(),
        status: view.status.name().into(),
        expires_at: p.expires_at_ms.map(rfc3339).unwrap_or_default(),
        created_at: p.history.first().map(|(_, at)| rfc3339(*at)).unwrap_or_default(),
        all_or_nothing: p.all_or_nothing,
        measure: p.measure.to_string(),
        items: view
            .lines()
            .map(|(line, state)| HoldLine {
                line_id: line.line_id.clone(),
                product_id: line.cell.product.clone(),
                dimensions: line_dims(line).into_iter().collect(),
                quantity: line.quantity.to_string(),
                allow_oversell: line.allow_oversell,
                status: line_status(state).into(),
            })
            .collect(),
        history: p
            .history
            .iter()
            .map(|(st, at)| HoldHistoryEntry {
                status: st.name().into(),
                at: rfc3339(*at),
            })
            .collect(),
        created,
    }
}

/// Hold bodies take the holds' field names too (`items`, `lineIds`, ...), as over REST.
fn hold_body(value: Value) -> Result<Map<String, Value>, Status> {
    match canonical(value, crate::holds::canon())? {
        Value::Object(map) => Ok(map),
        _ => Err(status_of(&ApiError::bad_request(
            "body.not_object",
            "body: must be a JSON object",
        ))),
    }
}

fn params(r: &HoldRef) -> HashMap<String, String> {
    HashMap::from([("organizationId".to_string(), r.organization_id.clone())])
}

impl GrpcHolds {
    async fn step(&self, metadata: &MetadataMap, r: HoldRef, body: Value, step: Step) -> Reply<Hold> {
        check_access(&self.s, metadata, &r.environment_id, false)?;
        let body = hold_body(body)?;
        let parts = run_step(&self.s, r.environment_id.clone(), &r.hold_id, &params(&r), &body, step)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(hold(&parts, false)))
    }
}

fn event(cursor: String, shard: u32, e: &Event) -> HoldEvent {
    let stock = e.stock.is_some();
    HoldEvent {
        r#type: e.kind.name().into(),
        hold_id: e.hold.id.clone(),
        organization_id: e.hold.organization.clone(),
        status: if stock { String::new() } else { e.status.name().into() },
        at: rfc3339(e.ts_ms),
        shard,
        seq: e.seq,
        cursor,
    }
}

#[tonic::async_trait]
impl Holds for GrpcHolds {
    type FollowEventsStream = EventStream;

    async fn create(&self, r: tonic::Request<CreateHoldRequest>) -> Reply<Hold> {
        let (metadata, _, r) = r.into_parts();
        let env = r.environment_id.clone();
        check_access(&self.s, &metadata, &env, false)?;
        let body = hold_body(m::create_hold(r))?;
        let (created, parts) = create_hold(&self.s, env, &body).await.map_err(|e| status_of(&e))?;
        Ok(Response::new(hold(&parts, created)))
    }
    async fn get(&self, r: tonic::Request<HoldRef>) -> Reply<Hold> {
        let (metadata, _, r) = r.into_parts();
        check_access(&self.s, &metadata, &r.environment_id, true)?;
        let key = crate::holds::key_of(r.environment_id.clone(), &r.hold_id, &params(&r), &Map::new())
            .map_err(|e| status_of(&e))?;
        let parts = read_hold(&self.s, &key).await.map_err(|e| status_of(&e))?;
        Ok(Response::new(hold(&parts, false)))
    }
    async fn patch_items(&self, r: tonic::Request<PatchHoldItemsRequest>) -> Reply<Hold> {
        let (metadata, _, r) = r.into_parts();
        let h = r.hold.unwrap_or_default();
        check_access(&self.s, &metadata, &h.environment_id, false)?;
        let body = hold_body(m::patch_hold(r.items, r.expires_in_seconds))?;
        let parts = patch_hold(&self.s, h.environment_id.clone(), &h.hold_id, &params(&h), &body)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(hold(&parts, false)))
    }
    async fn extend(&self, r: tonic::Request<ExtendHoldRequest>) -> Reply<Hold> {
        let (metadata, _, r) = r.into_parts();
        let mut body = Map::new();
        if r.expires_in_seconds > 0 {
            body.insert("expiresInSeconds".into(), r.expires_in_seconds.into());
        }
        let h = r.hold.unwrap_or_default();
        self.step(&metadata, h, Value::Object(body), Step::Extend).await
    }
    async fn confirm(&self, r: tonic::Request<HoldRef>) -> Reply<Hold> {
        let (metadata, _, r) = r.into_parts();
        self.step(&metadata, r, Value::Object(Map::new()), Step::Confirm).await
    }
    async fn consume(&self, r: tonic::Request<ConsumeHoldRequest>) -> Reply<Hold> {
        let (metadata, _, r) = r.into_parts();
        let mut body = Map::new();
        if !r.line_ids.is_empty() {
            body.insert("lineIds".into(), r.line_ids.into());
        }
        let h = r.hold.unwrap_or_default();
        self.step(&metadata, h, Value::Object(body), Step::Consume).await
    }
    async fn release(&self, r: tonic::Request<HoldRef>) -> Reply<Hold> {
        let (metadata, _, r) = r.into_parts();
        self.step(&metadata, r, Value::Object(Map::new()), Step::Release).await
    }

    /// Every hold event of the environment from `from` on (polled every 200 ms when there is
    /// nothing new); a bad token or cursor is the call's status. The stream takes one of the
    /// environment's event-follower places (shared with REST's event streams) while it runs.
    async fn follow_events(&self, r: tonic::Request<FollowEventsRequest>) -> Reply<EventStream> {
        let (metadata, _, r) = r.into_parts();
        let env = r.environment_id;
        check_access(&self.s, &metadata, &env, true)?;
        let shards = self.s.backend.shard_count();
        let cursor = Cursor::parse(&r.from, shards).map_err(|e| status_of(&e))?;
        let Some(slot) = self.s.limits.follow(&env) else {
            return Err(status_of(&ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "overload.too_many_followers",
                format!("environment '{env}' has as many event-stream followers as this node serves"),
            )));
        };
        let state = (self.s.clone(), env, cursor, VecDeque::<HoldEvent>::new(), slot);
        let stream = futures::stream::unfold(state, |(s, env, mut cursor, mut buffer, slot)| async move {
            loop {
                if let Some(e) = buffer.pop_front() {
                    return Some((Ok(e), (s, env, cursor, buffer, slot)));
                }
                let page = poll(&s, &env, &mut cursor, READ_LIMIT).await;
                buffer.extend(page.into_iter().map(|(c, shard, e)| event(c, shard, &e)));
                if buffer.is_empty() {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
