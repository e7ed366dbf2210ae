//! The public gRPC API (proto/ivory/v1/inventory.proto): the same operations as REST, served by
//! calling the REST router in process, so validation, limits, auth and status rules are one code
//! path. Requests carry IV's JSON bodies; results are typed (write envelopes, bulk buckets) or
//! the REST records as JSON strings (queries).
//!
//! Auth: `authorization: Bearer <token>` metadata, checked by the REST middleware. Errors: the
//! gRPC status message is `<stable.code>: <message>`; the code follows the HTTP status (see
//! [`grpc_code`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use tower::ServiceExt;

use crate::proto::inventory_server::{Inventory, InventoryServer};
use crate::proto::{BulkWriteRequest, BulkWriteResult, QueryRequest, QueryResponse, WriteRequest, WriteResult};
use crate::{Backend, GatewayConfig, router};

/// The gRPC service as an axum router (tonic `Routes::into_axum_router`). To serve REST and gRPC
/// on one port: `grpc_service(b.clone(), c.clone()).fallback_service(router(b, c))` (tonic's
/// router has a fallback of its own, so `merge` would panic).
pub fn grpc_service(backend: Arc<dyn Backend>, config: GatewayConfig) -> Router {
    let service = GrpcInventory {
        rest: router(backend, config),
    };
    tonic::service::Routes::new(InventoryServer::new(service)).into_axum_router()
}

/// The gRPC code of a REST answer: 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403
/// PERMISSION_DENIED, 404 NOT_FOUND, 409 FAILED_PRECONDITION (`stock.insufficient`) /
/// ALREADY_EXISTS (`event.conflict`) / ABORTED, 413 and 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE,
/// anything else INTERNAL.
pub fn grpc_code(status: StatusCode, code: &str) -> Code {
    match status.as_u16() {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 if code == "stock.insufficient" => Code::FailedPrecondition,
        409 if code == "event.conflict" => Code::AlreadyExists,
        409 => Code::Aborted,
        413 | 429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        _ => Code::Internal,
    }
}

struct GrpcInventory {
    rest: Router,
}

/// Characters an environment id may use in a path segment without escaping.
fn valid_environment(env: &str) -> bool {
    !env.is_empty()
        && env.len() <= ivory_core::model::NAME_LEN_MAX
        && env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn write_result(v: &Value) -> WriteResult {
    WriteResult {
        id: text(v, "id"),
        processing_status: text(v, "processingStatus"),
        message: text(v, "message"),
        status_code: v
            .get("statusCode")
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(0),
        code: text(v, "code"),
        reservation_id: text(v, "reservationId"),
        total_invalid_offset_qty: v
            .get("totalInvalidOffsetQtyByReservId")
            .map(Value::to_string)
            .unwrap_or_default(),
    }
}

fn bulk_result(v: &Value) -> BulkWriteResult {
    let bucket = |name: &str| {
        v.get(name)
            .and_then(Value::as_array)
            .map(|items| items.iter().map(write_result).collect())
            .unwrap_or_default()
    };
    BulkWriteResult {
        success: bucket("success"),
        failure: bucket("failure"),
        conflict: bucket("conflict"),
        not_found: bucket("notFound"),
        partial_success: bucket("partialSuccess"),
        unknown: bucket("unknown"),
    }
}

fn query_response(v: &Value) -> QueryResponse {
    let (records, next_link) = match v {
        Value::Array(list) => (list.as_slice(), String::new()),
        _ => (
            v.get("Value").and_then(Value::as_array).map_or(&[][..], Vec::as_slice),
            text(v, "nextLink"),
        ),
    };
    QueryResponse {
        records_json: records.iter().map(Value::to_string).collect(),
        next_link,
    }
}

impl GrpcInventory {
    /// Runs one REST call in process; a non-2xx answer becomes a gRPC status.
    async fn call(
        &self,
        metadata: &MetadataMap,
        env: &str,
        path: &str,
        api_version: Option<&str>,
        body: String,
    ) -> Result<Value, Status> {
        if !valid_environment(env) {
            return Err(Status::invalid_argument(
                "field.bad_value: environment_id: letters, digits, '-', '_', '.' or '~' only",
            ));
        }
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("/api/environment/{env}/{path}"))
            .header("content-type", "application/json");
        if let Some(auth) = metadata.get("authorization").and_then(|v| v.to_str().ok()) {
            request = request.header("authorization", auth);
        }
        if let Some(v) = api_version.filter(|v| !v.is_empty()) {
            request = request.header("api-version", v);
        }
        let request = request
            .body(Body::from(body))
            .map_err(|e| Status::invalid_argument(format!("request.invalid: {e}")))?;
        let response = match self.rest.clone().oneshot(request).await {
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

    async fn write(
        &self,
        request: tonic::Request<WriteRequest>,
        path: &str,
    ) -> Result<tonic::Response<WriteResult>, Status> {
        let (metadata, _, r) = request.into_parts();
        let v = self.call(&metadata, &r.environment_id, path, None, r.body_json).await?;
        Ok(tonic::Response::new(write_result(&v)))
    }

    async fn bulk(
        &self,
        request: tonic::Request<BulkWriteRequest>,
        path: &str,
    ) -> Result<tonic::Response<BulkWriteResult>, Status> {
        let (metadata, _, r) = request.into_parts();
        let v = self
            .call(&metadata, &r.environment_id, path, None, r.items_json)
            .await?;
        Ok(tonic::Response::new(bulk_result(&v)))
    }

    async fn query(
        &self,
        request: tonic::Request<QueryRequest>,
        path: &str,
    ) -> Result<tonic::Response<QueryResponse>, Status> {
        let (metadata, _, r) = request.into_parts();
        let mut params = Vec::new();
        if r.page_number > 0 {
            params.push(format!("pageNumber={}", r.page_number));
        }
        if r.page_size > 0 {
            params.push(format!("pageSize={}", r.page_size));
        }
        let path = if params.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", params.join("&"))
        };
        let v = self
            .call(&metadata, &r.environment_id, &path, Some(&r.api_version), r.body_json)
            .await?;
        Ok(tonic::Response::new(query_response(&v)))
    }
}

type Reply<T> = Result<tonic::Response<T>, Status>;

#[tonic::async_trait]
impl Inventory for GrpcInventory {
    async fn on_hand_change(&self, r: tonic::Request<WriteRequest>) -> Reply<WriteResult> {
        self.write(r, "onhand").await
    }
    async fn on_hand_change_bulk(&self, r: tonic::Request<BulkWriteRequest>) -> Reply<BulkWriteResult> {
        self.bulk(r, "onhand/bulk").await
    }
    async fn set_on_hand_bulk(&self, r: tonic::Request<BulkWriteRequest>) -> Reply<BulkWriteResult> {
        let system = match r.get_ref().inventory_system.as_str() {
            "" => "iv".to_string(),
            s if valid_environment(s) => s.to_string(),
            _ => {
                return Err(Status::invalid_argument(
                    "field.bad_value: inventory_system: letters, digits, '-', '_', '.' or '~' only",
                ));
            }
        };
        self.bulk(r, &format!("setonhand/{system}/bulk")).await
    }
    async fn reserve(&self, r: tonic::Request<WriteRequest>) -> Reply<WriteResult> {
        self.write(r, "onhand/reserve").await
    }
    async fn reserve_bulk(&self, r: tonic::Request<BulkWriteRequest>) -> Reply<BulkWriteResult> {
        self.bulk(r, "onhand/reserve/bulk").await
    }
    async fn unreserve(&self, r: tonic::Request<WriteRequest>) -> Reply<WriteResult> {
        self.write(r, "onhand/unreserve").await
    }
    async fn unreserve_bulk(&self, r: tonic::Request<BulkWriteRequest>) -> Reply<BulkWriteResult> {
        self.bulk(r, "onhand/unreserve/bulk").await
    }
    async fn change_schedule(&self, r: tonic::Request<WriteRequest>) -> Reply<WriteResult> {
        self.write(r, "onhand/changeschedule").await
    }
    async fn change_schedule_bulk(&self, r: tonic::Request<BulkWriteRequest>) -> Reply<BulkWriteResult> {
        self.bulk(r, "onhand/changeschedule/bulk").await
    }
    async fn index_query(&self, r: tonic::Request<QueryRequest>) -> Reply<QueryResponse> {
        self.query(r, "onhand/indexquery").await
    }
    async fn exact_query(&self, r: tonic::Request<QueryRequest>) -> Reply<QueryResponse> {
        self.query(r, "onhand/exactquery").await
    }
    async fn allocate(&self, r: tonic::Request<WriteRequest>) -> Reply<WriteResult> {
        self.write(r, "allocation/allocate").await
    }
    async fn unallocate(&self, r: tonic::Request<WriteRequest>) -> Reply<WriteResult> {
        self.write(r, "allocation/unallocate").await
    }
    async fn reallocate(&self, r: tonic::Request<WriteRequest>) -> Reply<WriteResult> {
        self.write(r, "allocation/reallocate").await
    }
    async fn consume(&self, r: tonic::Request<WriteRequest>) -> Reply<WriteResult> {
        self.write(r, "allocation/consume").await
    }
    async fn allocation_query(&self, r: tonic::Request<QueryRequest>) -> Reply<QueryResponse> {
        self.query(r, "allocation/query").await
    }
}
