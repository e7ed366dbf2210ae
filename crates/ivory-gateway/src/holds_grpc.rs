//! gRPC service `ivory.v1.Holds` (proto/ivory/v1/holds.proto): the holds routes and the event
//! stream, served by calling the REST router in process (as `grpc.rs` does for `Inventory`), so
//! validation, auth, codes and messages are the REST ones.

use std::collections::VecDeque;
use std::pin::Pin;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use futures::Stream;
use serde_json::Value;
use tonic::metadata::MetadataMap;
use tonic::{Response, Status};
use tower::ServiceExt;

use crate::events::POLL_INTERVAL;
use crate::grpc_code;
use crate::proto::holds_server::{Holds, HoldsServer};
use crate::proto::{FollowEventsRequest, HoldEvent, HoldReply, HoldRequest};

pub(crate) struct GrpcHolds {
    rest: Router,
}

pub(crate) fn server(rest: Router) -> HoldsServer<GrpcHolds> {
    HoldsServer::new(GrpcHolds { rest })
}

/// Percent-encodes everything but unreserved characters, for a path segment or query value.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// One REST call in process; a non-2xx answer becomes a gRPC status.
async fn call(
    rest: &Router,
    metadata: &MetadataMap,
    method: Method,
    path_and_query: String,
    body: String,
) -> Result<Value, Status> {
    let mut request = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("content-type", "application/json");
    if let Some(auth) = metadata.get("authorization").and_then(|v| v.to_str().ok()) {
        request = request.header("authorization", auth);
    }
    let request = request
        .body(Body::from(body))
        .map_err(|e| Status::invalid_argument(format!("request.invalid: {e}")))?;
    let response = match rest.clone().oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| Status::internal(format!("internal.body: {e}")))?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    let code = text(&value, "code");
    let message = text(&value, "message");
    Err(Status::new(grpc_code(status, &code), format!("{code}: {message}")))
}

impl GrpcHolds {
    async fn hold(
        &self,
        request: tonic::Request<HoldRequest>,
        method: Method,
        action: &str,
    ) -> Result<Response<HoldReply>, Status> {
        let (metadata, _, r) = request.into_parts();
        let mut path = format!("/api/environment/{}/holds", enc(&r.environment_id));
        if action != "create" {
            if r.hold_id.is_empty() {
                return Err(Status::invalid_argument("field.missing: hold_id: is required"));
            }
            path.push('/');
            path.push_str(&enc(&r.hold_id));
            if !action.is_empty() {
                path.push('/');
                path.push_str(action);
            }
            path.push_str(&format!("?organizationId={}", enc(&r.organization_id)));
        }
        let v = call(&self.rest, &metadata, method, path, r.body_json).await?;
        Ok(Response::new(HoldReply {
            hold_json: v.to_string(),
        }))
    }
}

type Reply<T> = Result<Response<T>, Status>;
type EventStream = Pin<Box<dyn Stream<Item = Result<HoldEvent, Status>> + Send + 'static>>;

fn hold_event(v: &Value) -> HoldEvent {
    HoldEvent {
        r#type: text(v, "type"),
        hold_id: text(v, "holdId"),
        organization_id: text(v, "organizationId"),
        status: text(v, "status"),
        at: text(v, "at"),
        shard: v.get("shard").and_then(Value::as_u64).unwrap_or(0) as u32,
        seq: v.get("seq").and_then(Value::as_u64).unwrap_or(0),
        cursor: text(v, "cursor"),
    }
}

/// One page of events after `cursor`, and the cursor after it.
async fn page(
    rest: &Router,
    metadata: &MetadataMap,
    env: &str,
    cursor: &str,
) -> Result<(Vec<HoldEvent>, String), Status> {
    let path = format!("/api/environment/{}/events?from={}&wait=false", enc(env), enc(cursor));
    let v = call(rest, metadata, Method::GET, path, String::new()).await?;
    let events = v
        .get("events")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(hold_event).collect())
        .unwrap_or_default();
    Ok((events, text(&v, "cursor")))
}

#[tonic::async_trait]
impl Holds for GrpcHolds {
    type FollowEventsStream = EventStream;

    async fn create(&self, r: tonic::Request<HoldRequest>) -> Reply<HoldReply> {
        self.hold(r, Method::POST, "create").await
    }
    async fn get(&self, r: tonic::Request<HoldRequest>) -> Reply<HoldReply> {
        self.hold(r, Method::GET, "").await
    }
    async fn patch_items(&self, r: tonic::Request<HoldRequest>) -> Reply<HoldReply> {
        self.hold(r, Method::PATCH, "items").await
    }
    async fn extend(&self, r: tonic::Request<HoldRequest>) -> Reply<HoldReply> {
        self.hold(r, Method::POST, "extend").await
    }
    async fn confirm(&self, r: tonic::Request<HoldRequest>) -> Reply<HoldReply> {
        self.hold(r, Method::POST, "confirm").await
    }
    async fn consume(&self, r: tonic::Request<HoldRequest>) -> Reply<HoldReply> {
        self.hold(r, Method::POST, "consume").await
    }
    async fn release(&self, r: tonic::Request<HoldRequest>) -> Reply<HoldReply> {
        self.hold(r, Method::DELETE, "").await
    }

    /// Long-polls the JSON pages of `/events` (every 200 ms when there is nothing new). The first
    /// page is read before the stream starts, so a bad token or cursor is the call's status. A
    /// page that fails later (no quorum for a moment) is read again from the same cursor.
    async fn follow_events(&self, r: tonic::Request<FollowEventsRequest>) -> Reply<EventStream> {
        let (metadata, _, r) = r.into_parts();
        let (first, cursor) = page(&self.rest, &metadata, &r.environment_id, &r.from).await?;
        let state = (
            self.rest.clone(),
            metadata,
            r.environment_id,
            cursor,
            VecDeque::from(first),
        );
        // After an error the stream ends (the error is its status).
        let stream = futures::stream::unfold(Some(state), |state| async move {
            let (rest, metadata, env, mut cursor, mut buffer) = state?;
            loop {
                if let Some(event) = buffer.pop_front() {
                    return Some((Ok(event), Some((rest, metadata, env, cursor, buffer))));
                }
                match page(&rest, &metadata, &env, &cursor).await {
                    Ok((events, next)) => {
                        let idle = events.is_empty();
                        buffer.extend(events);
                        cursor = next;
                        if idle {
                            tokio::time::sleep(POLL_INTERVAL).await;
                        }
                    }
                    Err(e) if e.code() == tonic::Code::Unavailable => tokio::time::sleep(POLL_INTERVAL).await,
                    Err(e) => return Some((Err(e), None)),
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
