//! The public gRPC API, service `ivory.v1.Inventory` (proto/ivory/v1/inventory.proto): typed
//! messages calling the service layer (`service`, `queries::query`, `allocation_query::allocations`)
//! that REST calls. No HTTP request is built and the REST router is not involved.
//!
//! A message is mapped onto the request fields the REST parser reads (`grpc_messages`) and goes
//! through the same parser, so validation, its stable codes and its messages are one code path;
//! auth is `auth::authorize` (bearer token from the `authorization` metadata), the bulk limit is
//! `writes::bulk_items`, the query limits are the query parser's. Errors: [`status_of`].

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use ivory_core::json::KeyCanon;
use serde_json::Value;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::allocation_query::{allocations, record_dims};
use crate::auth::{Caller, authorize, bearer_of};
use crate::grpc_messages as m;
use crate::parse::WriteKind;
use crate::proto::inventory_server::{Inventory, InventoryServer};
use crate::proto::{
    AllocationQueryRequest, AllocationQueryResponse, AllocationRecord, AllocationRequest, BulkWriteResult,
    ChangeScheduleBulkRequest, ChangeScheduleRequest, ConsumeRequest, ExactQueryRequest, IndexQueryRequest,
    OnHandChangeBulkRequest, OnHandChangeRequest, QueryRecord, QueryResponse, ReallocateRequest, ReserveBulkRequest,
    ReserveRequest, SetOnHandBulkRequest, UnreserveBulkRequest, UnreserveRequest, WriteResult,
};
use crate::queries::{ApiVersion, api_version_of, page_of, paging, query};
use crate::service::{self, ItemAnswer};
use crate::writes::{bulk_items, http_status, outcome_code};
use crate::{ApiError, AppState, Backend, GatewayConfig, gateway};

/// The metadata key of a refusal's stable code.
pub const CODE_METADATA: &str = "x-ivory-code";

/// The gRPC services (`Inventory`, `Holds`) as an axum router (tonic `Routes::into_axum_router`),
/// over a gateway of their own. To serve REST and gRPC on one port over one gateway (one
/// configuration cache, one cap on event followers), use [`crate::api`].
pub fn grpc_service(backend: Arc<dyn Backend>, config: GatewayConfig) -> Router {
    grpc_router(gateway(backend, config))
}

pub(crate) fn grpc_router(state: AppState) -> Router {
    let limit = state.config.body_limit_bytes;
    // A message is bounded as a REST body is (tonic refuses a larger one with OUT_OF_RANGE).
    let inventory = InventoryServer::new(GrpcInventory { s: state.clone() }).max_decoding_message_size(limit);
    tonic::service::Routes::new(inventory)
        .add_service(crate::holds_grpc::server(state, limit))
        .into_axum_router()
}

/// The gRPC code of a REST status: 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403
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

/// An [`ApiError`] as a gRPC status: message `<code>: <message>`, metadata `x-ivory-code` (and
/// `retry-after` in seconds when REST would send it).
pub(crate) fn status_of(e: &ApiError) -> Status {
    let mut status = Status::new(grpc_code(e.status, &e.code), format!("{}: {}", e.code, e.message));
    if let Ok(v) = MetadataValue::try_from(e.code.as_str()) {
        status.metadata_mut().insert(CODE_METADATA, v);
    }
    if let Some(s) = e.retry_after_s
        && let Ok(v) = MetadataValue::try_from(s.to_string())
    {
        status.metadata_mut().insert("retry-after", v);
    }
    status
}

/// The data plane's access rule on a call's metadata (`auth::authorize`); `read_only` as the
/// REST method is GET. The environment id must be given.
pub(crate) fn check_access(s: &AppState, metadata: &MetadataMap, env: &str, read_only: bool) -> Result<(), Status> {
    if env.is_empty() {
        return Err(status_of(&ApiError::bad_request(
            "field.missing",
            "environment_id: is required",
        )));
    }
    let text = |key: &str| metadata.get(key).and_then(|v| v.to_str().ok());
    let cluster_secret = env == ivory_core::DEFAULT_ENVIRONMENT
        && !read_only
        && s.config.cluster_secret.as_deref().is_some_and(|secret| {
            text(crate::auth::CLUSTER_SECRET_HEADER).is_some_and(|candidate| secret.verify_secret(candidate))
        });
    let caller = Caller {
        bearer: text("authorization").and_then(bearer_of),
        cluster_secret,
        read_only,
    };
    authorize(&s.config.signing_key, env, &caller).map_err(|e| status_of(&e))
}

/// Keys in IV's canonical spelling (and dimension names lower-cased), as `parse::json_body`
/// leaves a REST body.
pub(crate) fn canonical(value: Value, canon: &KeyCanon) -> Result<Value, Status> {
    canon
        .apply(value)
        .map_err(|e| status_of(&ApiError::bad_request("body.malformed", e)))
}

fn write_result(kind: WriteKind, id: &str, answer: &ItemAnswer) -> WriteResult {
    let prefixed = format!("{}~{id}", kind.prefix());
    match answer {
        ItemAnswer::Applied(r) => WriteResult {
            id: prefixed,
            processing_status: r.outcome.processing_status().into(),
            message: r.message.clone(),
            status_code: i32::from(r.outcome.iv_status_code()),
            code: outcome_code(r.outcome).unwrap_or_default().into(),
            reservation_id: r.reservation_id.clone().unwrap_or_default(),
            total_invalid_offset_qty: if kind == WriteKind::Unreserve {
                r.invalid_offset.unwrap_or(ivory_core::Qty::ZERO).to_string()
            } else {
                String::new()
            },
        },
        ItemAnswer::Refused(e) | ItemAnswer::Unknown(e) => WriteResult {
            id: prefixed,
            processing_status: if matches!(answer, ItemAnswer::Unknown(_)) {
                "unknown"
            } else {
                "failure"
            }
            .into(),
            message: e.message.clone(),
            status_code: i32::from(e.status.as_u16()),
            code: e.code.clone(),
            ..WriteResult::default()
        },
    }
}

struct GrpcInventory {
    s: AppState,
}

type Reply<T> = Result<tonic::Response<T>, Status>;

impl GrpcInventory {
    /// One write: its envelope when the shard applied it; any refusal is a status, as REST
    /// answers it with a non-2xx status.
    async fn single(&self, metadata: &MetadataMap, env: &str, kind: WriteKind, item: Value) -> Reply<WriteResult> {
        check_access(&self.s, metadata, env, false)?;
        let item = canonical(item, crate::parse::field_names())?;
        let (id, answer) = service::write_single(&self.s, env, kind, &item)
            .await
            .map_err(|e| status_of(&e))?;
        match &answer {
            ItemAnswer::Applied(r) if http_status(r.outcome) == StatusCode::OK => {
                Ok(tonic::Response::new(write_result(kind, &id, &answer)))
            }
            ItemAnswer::Applied(r) => Err(status_of(&ApiError::new(
                http_status(r.outcome),
                outcome_code(r.outcome).unwrap_or_default(),
                r.message.clone(),
            ))),
            ItemAnswer::Refused(e) | ItemAnswer::Unknown(e) => Err(status_of(e)),
        }
    }

    /// A bulk: at most 512 items; IV's buckets, items in request order within each.
    async fn bulk(
        &self,
        metadata: &MetadataMap,
        env: &str,
        kind: WriteKind,
        items: Vec<Value>,
    ) -> Reply<BulkWriteResult> {
        check_access(&self.s, metadata, env, false)?;
        let items = canonical(Value::Array(items), crate::parse::field_names())?;
        let items = bulk_items(items).map_err(|e| status_of(&e))?;
        let answers = service::write_items(&self.s, env, kind, &items)
            .await
            .map_err(|e| status_of(&e))?;
        let mut out = BulkWriteResult::default();
        for (id, answer) in answers {
            let Some(answer) = answer else { continue };
            let result = write_result(kind, &id, &answer);
            match answer.bucket() {
                "success" => out.success.push(result),
                "conflict" => out.conflict.push(result),
                "notFound" => out.not_found.push(result),
                "partialSuccess" => out.partial_success.push(result),
                "unknown" => out.unknown.push(result),
                _ => out.failure.push(result),
            }
        }
        Ok(tonic::Response::new(out))
    }

    async fn query(&self, metadata: &MetadataMap, q: m::PostedQuery) -> Reply<QueryResponse> {
        check_access(&self.s, metadata, &q.environment, false)?;
        let version = match q.api_version.as_str() {
            "" => ApiVersion::V1,
            v => api_version_of(Some(v)).map_err(|e| status_of(&e))?,
        };
        let mut params = Vec::new();
        if q.page_number > 0 {
            params.push(format!("pageNumber={}", q.page_number));
        }
        if q.page_size > 0 {
            params.push(format!("pageSize={}", q.page_size));
        }
        let page = paging(Some(&params.join("&"))).map_err(|e| status_of(&e))?;
        let body = canonical(q.body, crate::parse::field_names())?;
        let answer = query(&self.s, &q.environment, version, q.exact, body)
            .await
            .map_err(|e| status_of(&e))?;
        let record = |org: Option<&str>, r: &ivory_core::Record| QueryRecord {
            organization_id: org.unwrap_or_default().to_string(),
            product_id: r.product.clone(),
            dimensions: crate::records::record_dims(r, &answer.group_by).into_iter().collect(),
            quantities: Some(m::quantities(&r.quantities)),
            quantities_by_date: if answer.atp {
                m::by_date(&r.quantities_by_date)
            } else {
                Default::default()
            },
            atp_quantities: if answer.atp {
                m::by_date(&r.atp_quantities)
            } else {
                Default::default()
            },
        };
        let response = if version == ApiVersion::V1 {
            QueryResponse {
                records: answer.records.iter().map(|(_, r)| record(None, r)).collect(),
                next_link: String::new(),
            }
        } else {
            let endpoint = if q.exact { "exactquery" } else { "indexquery" };
            let (records, next_link) = page_of(endpoint, &answer.records, page);
            QueryResponse {
                records: records.into_iter().map(|(org, r)| record(Some(org), r)).collect(),
                next_link,
            }
        };
        Ok(tonic::Response::new(response))
    }
}

#[tonic::async_trait]
impl Inventory for GrpcInventory {
    async fn on_hand_change(&self, r: tonic::Request<OnHandChangeRequest>) -> Reply<WriteResult> {
        let (metadata, _, r) = r.into_parts();
        let item = m::on_hand_change(r.item.unwrap_or_default());
        self.single(&metadata, &r.environment_id, WriteKind::Change, item).await
    }
    async fn on_hand_change_bulk(&self, r: tonic::Request<OnHandChangeBulkRequest>) -> Reply<BulkWriteResult> {
        let (metadata, _, r) = r.into_parts();
        let items = r.items.into_iter().map(m::on_hand_change).collect();
        self.bulk(&metadata, &r.environment_id, WriteKind::Change, items).await
    }
    async fn set_on_hand_bulk(&self, r: tonic::Request<SetOnHandBulkRequest>) -> Reply<BulkWriteResult> {
        let (metadata, _, r) = r.into_parts();
        let items = r.items.into_iter().map(m::set_on_hand).collect();
        self.bulk(&metadata, &r.environment_id, WriteKind::Set, items).await
    }
    async fn reserve(&self, r: tonic::Request<ReserveRequest>) -> Reply<WriteResult> {
        let (metadata, _, r) = r.into_parts();
        let item = m::reserve(r.item.unwrap_or_default());
        self.single(&metadata, &r.environment_id, WriteKind::Reserve, item)
            .await
    }
    async fn reserve_bulk(&self, r: tonic::Request<ReserveBulkRequest>) -> Reply<BulkWriteResult> {
        let (metadata, _, r) = r.into_parts();
        let items = r.items.into_iter().map(m::reserve).collect();
        self.bulk(&metadata, &r.environment_id, WriteKind::Reserve, items).await
    }
    async fn unreserve(&self, r: tonic::Request<UnreserveRequest>) -> Reply<WriteResult> {
        let (metadata, _, r) = r.into_parts();
        let item = m::unreserve(r.item.unwrap_or_default());
        self.single(&metadata, &r.environment_id, WriteKind::Unreserve, item)
            .await
    }
    async fn unreserve_bulk(&self, r: tonic::Request<UnreserveBulkRequest>) -> Reply<BulkWriteResult> {
        let (metadata, _, r) = r.into_parts();
        let items = r.items.into_iter().map(m::unreserve).collect();
        self.bulk(&metadata, &r.environment_id, WriteKind::Unreserve, items)
            .await
    }
    async fn change_schedule(&self, r: tonic::Request<ChangeScheduleRequest>) -> Reply<WriteResult> {
        let (metadata, _, r) = r.into_parts();
        let item = m::schedule(r.item.unwrap_or_default());
        self.single(&metadata, &r.environment_id, WriteKind::Schedule, item)
            .await
    }
    async fn change_schedule_bulk(&self, r: tonic::Request<ChangeScheduleBulkRequest>) -> Reply<BulkWriteResult> {
        let (metadata, _, r) = r.into_parts();
        let items = r.items.into_iter().map(m::schedule).collect();
        self.bulk(&metadata, &r.environment_id, WriteKind::Schedule, items)
            .await
    }
    async fn index_query(&self, r: tonic::Request<IndexQueryRequest>) -> Reply<QueryResponse> {
        let (metadata, _, r) = r.into_parts();
        self.query(&metadata, m::index_query(r)).await
    }
    async fn exact_query(&self, r: tonic::Request<ExactQueryRequest>) -> Reply<QueryResponse> {
        let (metadata, _, r) = r.into_parts();
        self.query(&metadata, m::exact_query(r)).await
    }
    async fn allocate(&self, r: tonic::Request<AllocationRequest>) -> Reply<WriteResult> {
        let (metadata, _, r) = r.into_parts();
        let env = r.environment_id.clone();
        self.single(&metadata, &env, WriteKind::Allocate, m::allocation(r))
            .await
    }
    async fn unallocate(&self, r: tonic::Request<AllocationRequest>) -> Reply<WriteResult> {
        let (metadata, _, r) = r.into_parts();
        let env = r.environment_id.clone();
        self.single(&metadata, &env, WriteKind::Unallocate, m::allocation(r))
            .await
    }
    async fn reallocate(&self, r: tonic::Request<ReallocateRequest>) -> Reply<WriteResult> {
        let (metadata, _, r) = r.into_parts();
        let env = r.environment_id.clone();
        self.single(&metadata, &env, WriteKind::Reallocate, m::reallocation(r))
            .await
    }
    async fn consume(&self, r: tonic::Request<ConsumeRequest>) -> Reply<WriteResult> {
        let (metadata, _, r) = r.into_parts();
        let env = r.environment_id.clone();
        self.single(&metadata, &env, WriteKind::Consume, m::consumption(r))
            .await
    }
    async fn allocation_query(&self, r: tonic::Request<AllocationQueryRequest>) -> Reply<AllocationQueryResponse> {
        let (metadata, _, r) = r.into_parts();
        let env = r.environment_id.clone();
        check_access(&self.s, &metadata, &env, false)?;
        let canon = crate::parse::field_names();
        let Value::Object(body) = canonical(m::allocation_query(r), canon)? else {
            return Err(status_of(&ApiError::bad_request(
                "body.not_object",
                "body: must be a JSON object",
            )));
        };
        let (config, records) = allocations(&self.s, &env, &body).await.map_err(|e| status_of(&e))?;
        let records = records
            .iter()
            .map(|r| AllocationRecord {
                product_id: r.product.clone(),
                dimensions: record_dims(r).into_iter().collect(),
                groups: config
                    .allocation_groups
                    .iter()
                    .zip(&r.groups)
                    .map(|(level, v)| (canon.canonical(level), v.clone()))
                    .collect(),
                allocated: r.state.allocated.to_string(),
                consumed: r.state.consumed.to_string(),
                cumulative_allocated: r.state.cumulative_allocated.to_string(),
                cumulative_consumed: r.state.cumulative_consumed.to_string(),
            })
            .collect();
        Ok(tonic::Response::new(AllocationQueryResponse { records }))
    }
}
