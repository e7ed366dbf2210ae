//! Ivory's IV-compatible REST gateway (docs/iv-compatibility.md): auth, JSON leniency, validation and limits,
//! bulk split by shard, query fan-out and merge. Every stock rule lives in `ivory-core`; this crate
//! only parses, validates shapes and limits, routes to shards and merges answers.
//!
//! Read in this order: [`router`] (the routes and middleware), `service` (the typed service layer
//! REST and gRPC both call), `writes` (on-hand change, set, reserve, unreserve, change schedule,
//! allocate, unallocate, reallocate, consume), `queries` (index, exact and GET queries with ATP,
//! allocation query), `holds` and `events`, `admin` (configuration, partitions, clean-up), `auth`
//! (tokens and the access rule), `grpc` and `holds_grpc` (the typed gRPC API over the service
//! layer, `grpc_messages` its message mapping). [`api`] serves both on one port.
//!
//! The layer below is the [`Backend`] trait: the `ivory` binary implements it over raft nodes;
//! tests use `LocalBackend` (feature `test-support`).

mod admin;
mod allocation_query;
pub mod auth;
mod error;
mod events;
/// Every request's parser on arbitrary bytes, for fuzzers (`fuzz/`); not part of the API.
#[doc(hidden)]
pub mod fuzzing;
mod grpc;
mod grpc_messages;
mod hold_steps;
mod holds;
mod holds_grpc;
pub mod limits;
mod openapi;
mod parse;
mod queries;
mod records;
mod reserve_body;
mod service;
mod url_query;
mod writes;

#[cfg(test)]
mod holds_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(any(test, feature = "test-support"))]
pub mod local;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use futures::future::BoxFuture;
use ivory_core::{CmdResult, Command, Config, PartitionKey, ReadRequest, ReadResponse};
use tracing::Instrument;

pub use error::ApiError;
pub use grpc::{CODE_METADATA, grpc_code, grpc_service};

/// The generated messages, server and client of proto/ivory/v1/inventory.proto.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("ivory.v1");
}

/// The cluster as the gateway sees it: shards that take proposals and answer reads.
///
/// Errors are the gateway's own [`ApiError`], made once by the backend from its error
/// ([`ApiError::backend`]): 503 with Retry-After when the same call may succeed if retried, 502
/// otherwise.
pub trait Backend: Send + Sync + 'static {
    fn shard_of(&self, partition: &PartitionKey) -> u32;
    fn shard_count(&self) -> u32;
    /// Proposes the commands as one log entry of `shard`; one result per command, in order.
    fn propose(&self, shard: u32, commands: Vec<Command>) -> BoxFuture<'static, Result<Vec<CmdResult>, ApiError>>;
    fn read(&self, shard: u32, request: ReadRequest) -> BoxFuture<'static, Result<ReadResponse, ApiError>>;
    /// `Ok` when every shard has a leader accepting writes.
    fn healthy(&self) -> BoxFuture<'static, Result<(), String>>;
    /// Whether `propose` and `read` already retry what is retryable (following leaders, waiting
    /// out elections): then the gateway calls once, so a write has one retry loop, not two nested.
    fn retries_itself(&self) -> bool {
        false
    }
}

/// Everything the gateway needs besides the backend.
#[derive(Clone)]
pub struct GatewayConfig {
    /// The one API client: `POST /token` exchanges these for a bearer token.
    pub client_id: String,
    pub client_secret: String,
    /// HMAC-SHA256 key that signs tokens; every node of a cluster must share it.
    pub signing_key: Vec<u8>,
    /// Token lifetime (IV: 3600).
    pub token_ttl_s: u64,
    /// Largest request body accepted; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// Renders `GET /metrics` when set; when `None`, `/metrics` answers 404.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Attempts per backend call on a retryable error (at least 1).
    pub backend_attempts_max: u32,
    /// Longest pause between two attempts.
    pub backend_backoff_max_ms: u64,
    /// How long a fetched environment configuration is reused to map data-source dimensions.
    pub config_cache_ttl_ms: u64,
    /// The cluster secret: the only credential that changes environment `*`. `None`: nothing does.
    pub cluster_secret: Option<Arc<ivory_cluster::ClusterSecret>>,
    /// Event-stream followers (`GET .../events`) per environment at once; past it 429.
    pub event_followers_max: usize,
}

impl GatewayConfig {
    /// Defaults for everything but the credentials: 3600 s tokens, 2 MiB bodies, 4 attempts.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>, signing_key: Vec<u8>) -> GatewayConfig {
        GatewayConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            signing_key,
            token_ttl_s: 3600,
            body_limit_bytes: 2 * 1024 * 1024,
            metrics: None,
            backend_attempts_max: 4,
            backend_backoff_max_ms: 200,
            config_cache_ttl_ms: 2000,
            cluster_secret: None,
            event_followers_max: limits::EVENT_FOLLOWERS_DEFAULT,
        }
    }
}

pub(crate) struct Gateway {
    pub backend: Arc<dyn Backend>,
    pub config: GatewayConfig,
    pub limits: limits::Limits,
    configs: Mutex<HashMap<String, (Arc<Config>, Instant)>>,
}

pub(crate) type AppState = Arc<Gateway>;

impl Gateway {
    /// Calls the backend with `arg`, retrying retryable errors (503) a bounded number of times with
    /// a short, growing pause (once when the backend retries itself); the last error is the
    /// answer. `arg` is copied only while another attempt may follow.
    pub async fn with_retry<A, T, F>(&self, arg: A, mut call: F) -> Result<T, ApiError>
    where
        A: Clone,
        F: FnMut(A) -> BoxFuture<'static, Result<T, ApiError>>,
    {
        let attempts = if self.backend.retries_itself() {
            1
        } else {
            self.config.backend_attempts_max.max(1)
        };
        let mut attempt = 0;
        let mut arg = Some(arg);
        loop {
            attempt += 1;
            let this = if attempt < attempts { arg.clone() } else { arg.take() };
            let Some(this) = this else {
                return Err(ApiError::bad_backend("a backend call ran out of its argument"));
            };
            match call(this).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < attempts => {
                    let pause = (10u64 << attempt.min(8)).min(self.config.backend_backoff_max_ms);
                    tracing::debug!(code = %e.code, attempt, pause, "retrying backend call");
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn propose(&self, shard: u32, commands: Vec<Command>) -> Result<Vec<CmdResult>, ApiError> {
        let expected = commands.len();
        let results = self
            .with_retry(commands, |commands| self.backend.propose(shard, commands))
            .await?;
        if results.len() != expected {
            return Err(ApiError::bad_backend(format!(
                "shard {shard} answered {} results for {expected} commands",
                results.len()
            )));
        }
        Ok(results)
    }

    pub async fn read(&self, shard: u32, request: ReadRequest) -> Result<ReadResponse, ApiError> {
        self.with_retry(request, |request| self.backend.read(shard, request))
            .await
    }

    /// The environment's configuration, from shard 0, cached briefly.
    pub async fn environment_config(&self, environment: &str) -> Result<Arc<Config>, ApiError> {
        let ttl = Duration::from_millis(self.config.config_cache_ttl_ms);
        if let Ok(cache) = self.configs.lock()
            && let Some((config, at)) = cache.get(environment)
            && at.elapsed() < ttl
        {
            return Ok(Arc::clone(config));
        }
        let response = self
            .read(
                0,
                ReadRequest::Config {
                    environment: environment.to_string(),
                },
            )
            .await?;
        let ReadResponse::Config(json) = response else {
            return Err(ApiError::bad_backend("a configuration read answered something else"));
        };
        let config = Arc::new(
            Config::from_json(&json)
                .map_err(|e| ApiError::bad_backend(format!("stored configuration does not parse: {e}")))?,
        );
        if let Ok(mut cache) = self.configs.lock() {
            cache.insert(environment.to_string(), (Arc::clone(&config), Instant::now()));
        }
        Ok(config)
    }

    pub fn forget_config(&self, environment: &str) {
        if let Ok(mut cache) = self.configs.lock() {
            cache.remove(environment);
        }
    }
}

/// Prefix of every route that needs a bearer token for its environment. (The router's parameter
/// names are also the `route` label of the HTTP metrics; the OpenAPI document spells them as
/// IV does, `{environmentId}` and `{inventorySystem}`.)
pub(crate) const API_PREFIX: &str = "/api/environment/{environment}";

/// The routes under [`API_PREFIX`]. The one list both the router and the OpenAPI test walk
/// (`openapi::tests`), so a route cannot be added without its documentation.
pub(crate) fn api_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/onhand", post(writes::onhand).get(queries::get_onhand)),
        ("/onhand/bulk", post(writes::onhand_bulk)),
        ("/setonhand/{system}/bulk", post(writes::setonhand_bulk)),
        ("/onhand/reserve", post(writes::reserve)),
        ("/onhand/reserve/bulk", post(writes::reserve_bulk)),
        ("/onhand/unreserve", post(writes::unreserve)),
        ("/onhand/unreserve/bulk", post(writes::unreserve_bulk)),
        ("/onhand/changeschedule", post(writes::change_schedule)),
        ("/onhand/changeschedule/bulk", post(writes::change_schedule_bulk)),
        ("/allocation/allocate", post(writes::allocate)),
        ("/allocation/unallocate", post(writes::unallocate)),
        ("/allocation/reallocate", post(writes::reallocate)),
        ("/allocation/consume", post(writes::consume)),
        ("/allocation/query", post(allocation_query::allocation_query)),
        ("/onhand/indexquery", post(queries::index_query)),
        ("/indexquery", post(queries::index_query_alias)),
        ("/onhand/exactquery", post(queries::exact_query)),
        ("/configuration", get(admin::get_configuration)),
        ("/configuration/hardupdate", post(admin::hard_update)),
        ("/allpartitionids", get(admin::all_partition_ids)),
        ("/partitions/cleanupalldata", delete(admin::clean_up)),
        ("/cleanupalldata", delete(admin::clean_up_alias)),
        ("/holds", post(holds::create)),
        ("/holds/{id}", get(holds::get).delete(hold_steps::release)),
        ("/holds/{id}/items", patch(hold_steps::patch_items)),
        ("/holds/{id}/extend", post(hold_steps::extend)),
        ("/holds/{id}/confirm", post(hold_steps::confirm)),
        ("/holds/{id}/consume", post(hold_steps::consume)),
        ("/events", get(events::events)),
    ]
}

/// The routes outside any environment: no bearer token.
pub(crate) fn open_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/token", post(auth::token)),
        ("/health/ping", get(admin::health_ping)),
        ("/healthz", get(admin::healthz)),
        ("/metrics", get(admin::metrics)),
        ("/openapi.json", get(openapi::serve)),
    ]
}

/// The whole REST surface. Paths are matched case-insensitively (the environment id keeps its
/// case) and with or without a trailing slash.
///
/// To serve it next to tonic's gRPC routes on one port, make it the gRPC router's fallback:
/// `grpc_router.fallback_service(ivory_gateway::router(backend, config))`.
pub fn router(backend: Arc<dyn Backend>, config: GatewayConfig) -> Router {
    rest_router(gateway(backend, config))
}

/// The public gRPC API and REST on one port over one gateway (one configuration cache, one cap
/// on event followers for both): gRPC's routes, REST as their fallback.
pub fn api(backend: Arc<dyn Backend>, config: GatewayConfig) -> Router {
    let state = gateway(backend, config);
    grpc::grpc_router(state.clone()).fallback_service(rest_router(state))
}

pub(crate) fn gateway(backend: Arc<dyn Backend>, config: GatewayConfig) -> AppState {
    Arc::new(Gateway {
        backend,
        limits: limits::Limits::new(config.event_followers_max),
        configs: Mutex::new(HashMap::new()),
        config,
    })
}

fn rest_router(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    let mut api = Router::new();
    for (path, handlers) in api_routes() {
        api = api.route(&format!("{API_PREFIX}{path}"), handlers);
    }
    let api = api.route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token));
    let mut open = Router::new();
    for (path, handlers) in open_routes() {
        open = open.route(path, handlers);
    }
    let request_metrics = Arc::new(RequestMetrics::default());
    let inner = open
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(move |request, next| {
            track(Arc::clone(&request_metrics), request, next)
        }))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    Router::new()
        .fallback_service(inner)
        .layer(middleware::from_fn(canonical_path))
        .layer(middleware::from_fn(request_id))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route.not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "route.method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// The canonical form of a path: lower case except the environment id, no trailing slash.
pub(crate) fn canonical_path_of(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
    let segments: Vec<&str> = trimmed.split('/').collect();
    let is_api = segments.len() > 3
        && segments[1].eq_ignore_ascii_case("api")
        && segments[2].eq_ignore_ascii_case("environment");
    segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            // The environment id and a hold id keep their case.
            let is_hold_id = is_api && i == 5 && segments[4].eq_ignore_ascii_case("holds");
            if is_api && i == 3 || is_hold_id {
                (*s).to_string()
            } else {
                s.to_ascii_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether `canonical_path_of(path) == path`, without allocating: what clients send nearly always.
pub(crate) fn is_canonical_path(path: &str) -> bool {
    if path.is_empty() || path.len() > 1 && path.ends_with('/') {
        return false;
    }
    let mut segments = path.split('/');
    let count = path.split('/').count();
    let second = segments.nth(1).unwrap_or("");
    let third = segments.next().unwrap_or("");
    let is_api = count > 3 && second.eq_ignore_ascii_case("api") && third.eq_ignore_ascii_case("environment");
    let is_holds = is_api && path.split('/').nth(4).is_some_and(|s| s.eq_ignore_ascii_case("holds"));
    path.split('/').enumerate().all(|(i, segment)| {
        let keeps_case = is_api && i == 3 || is_holds && i == 5;
        keeps_case || !segment.bytes().any(|b| b.is_ascii_uppercase())
    })
}

async fn canonical_path(mut request: Request, next: Next) -> Response {
    if is_canonical_path(request.uri().path()) {
        return next.run(request).await;
    }
    let uri = request.uri();
    let path = canonical_path_of(uri.path());
    if path != uri.path() {
        let path_and_query = match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = uri.clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(new_uri) = axum::http::Uri::from_parts(parts) {
                *request.uri_mut() = new_uri;
            }
        }
    }
    next.run(request).await
}

const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest client request id echoed; longer ones are replaced by a generated id.
const REQUEST_ID_LEN_MAX: usize = 128;

async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= REQUEST_ID_LEN_MAX)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// The request metrics' handles, registered once per route, method and status: a labelled key
/// built and looked up in the registry cost every request a few allocations and a hash.
#[derive(Default)]
struct RequestMetrics {
    by_route: Mutex<HashMap<String, ByMethodAndStatus>>,
}

type ByMethodAndStatus = HashMap<(&'static str, u16), RequestHandles>;

/// Requests counted, and their durations.
type RequestHandles = (metrics::Counter, metrics::Histogram);

impl RequestMetrics {
    fn handles(&self, route: &str, method: &'static str, status: u16) -> RequestHandles {
        let register = || {
            let counter = metrics::counter!("ivory_http_requests_total", "route" => route.to_string(), "method" => method, "status" => status.to_string());
            let histogram = metrics::histogram!("ivory_http_request_duration_seconds", "route" => route.to_string(), "method" => method);
            (counter, histogram)
        };
        let Ok(mut by_route) = self.by_route.lock() else {
            return register();
        };
        if !by_route.contains_key(route) {
            by_route.insert(route.to_string(), HashMap::new());
        }
        let Some(by_status) = by_route.get_mut(route) else {
            return register();
        };
        by_status.entry((method, status)).or_insert_with(register).clone()
    }
}

async fn track(metrics: Arc<RequestMetrics>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = limits::method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (requests, duration) = metrics.handles(route, method, response.status().as_u16());
    requests.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    response
}

pub(crate) fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}
