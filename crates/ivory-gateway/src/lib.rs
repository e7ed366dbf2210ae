//! Ivory's IV-compatible REST gateway (docs/iv-compatibility.md): auth, JSON leniency, validation and limits,
//! bulk split by shard, query fan-out and merge. Every stock rule lives in `ivory-core`; this crate
//! only parses, validates shapes and limits, routes to shards and merges answers.
//!
//! Read in this order: `front` (what every request passes), `rest_router` (the routes), `service` (the typed service layer
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
mod front;
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
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use futures::future::BoxFuture;
use ivory_core::{CmdResult, Command, Config, PartitionKey, ReadRequest, ReadResponse};

pub use error::ApiError;
pub use front::Api;
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

/// The whole public surface (REST, and the gRPC services under `/ivory.v1.`) as a router, with no
/// bound on requests in flight. REST paths are matched case-insensitively (the environment id
/// keeps its case) and with or without a trailing slash.
pub fn router(backend: Arc<dyn Backend>, config: GatewayConfig) -> Router {
    Router::new().fallback_service(api(backend, config, None))
}

/// The public gRPC API and REST on one port over one gateway (one configuration cache, one cap
/// on event followers for both), at most `in_flight_max` requests at a time ([`Api`]). A node
/// serves it as the fallback of its own routes.
pub fn api(backend: Arc<dyn Backend>, config: GatewayConfig, in_flight_max: Option<usize>) -> Api {
    let state = gateway(backend, config);
    Api::new(grpc::grpc_router(state.clone()), rest_router(state), in_flight_max)
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
    let api = api.route_layer(auth::RequireTokenLayer(state.clone()));
    let mut open = Router::new();
    for (path, handlers) in open_routes() {
        open = open.route(path, handlers);
    }
    open.merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(front::TrackLayer::default())
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
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

pub(crate) fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}
