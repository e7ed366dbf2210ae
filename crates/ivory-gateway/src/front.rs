//! The gateway's front: every request to the public API passes one hand-written service, [`Api`],
//! which takes a place among the requests in flight, sends the public gRPC services to tonic and
//! gives REST its request id, log span and canonical path before routing; [`Track`] counts each
//! REST request by route once it is routed.
//!
//! These were four `from_fn` middlewares (a fifth checked the token: now `auth::RequireToken`)
//! and two routers falling back to one another. Each `from_fn` layer cloned its inner service,
//! boxed a `Next` and boxed a future per request; with the routers that was about a fifth of a
//! single reserve's server CPU (bench/README.md). Here a request costs one boxed future in [`Api`]
//! and one in [`Track`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::response::Response;
use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::limits;

/// Where the gRPC services' paths begin (`/ivory.v1.Inventory/Reserve`); no REST path does.
const GRPC_PATH_PREFIX: &str = "/ivory.v1.";
/// Paths outside the bound on requests in flight, so that an overloaded node can still be watched.
const UNBOUNDED_PATHS: [&str; 2] = ["/healthz", "/metrics"];

/// REST and the public gRPC API on one port, over one gateway. Paths under `/ivory.v1.` go to the
/// gRPC services (tonic answers UNIMPLEMENTED for an unknown one); every other path is REST.
#[derive(Clone)]
pub struct Api {
    grpc: Router,
    rest: Router,
    /// `None`: no bound (the gateway's own tests).
    places: Option<Arc<Semaphore>>,
}

impl Api {
    pub(crate) fn new(grpc: Router, rest: Router, in_flight_max: Option<usize>) -> Api {
        Api {
            grpc,
            rest,
            places: in_flight_max.map(|max| Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS)))),
        }
    }

    /// The bound's places, for a test to take them.
    #[cfg(test)]
    pub(crate) fn places(&self) -> Option<Arc<Semaphore>> {
        self.places.clone()
    }

    /// A place among the requests in flight, held until the response's head is ready (a stream's
    /// body runs on without it); `Ok(None)` where none is needed.
    fn take_place(&self, path: &str) -> Result<Option<OwnedSemaphorePermit>, Full> {
        let Some(places) = &self.places else { return Ok(None) };
        if UNBOUNDED_PATHS.contains(&path) {
            return Ok(None);
        }
        Arc::clone(places).try_acquire_owned().map(Some).map_err(|_| Full)
    }
}

/// Every place is taken: the answer is 429 at once, before the body is read.
struct Full;

impl Service<Request> for Api {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both routers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Ok(place) = self.take_place(request.uri().path()) else {
            metrics::counter!("ivory_http_overload_refused_total").increment(1);
            let refused = limits::overloaded(
                "overload.too_many_requests",
                "this node has too many requests in flight; retry after the Retry-After seconds",
            );
            return Box::pin(std::future::ready(Ok(refused)));
        };
        if request.uri().path().starts_with(GRPC_PATH_PREFIX) {
            let response = self.grpc.call(request);
            return Box::pin(async move {
                let response = response.await;
                drop(place);
                response
            });
        }
        let rest = self.rest.clone();
        Box::pin(async move {
            let response = rest_request(rest, request).await;
            drop(place);
            Ok(response)
        })
    }
}

/// A REST request: its id (the client's, or a new one) in a log span and in the response's
/// header, and its path made canonical before routing.
async fn rest_request(mut rest: Router, mut request: Request) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= REQUEST_ID_LEN_MAX)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    make_path_canonical(&mut request);
    let Ok(mut response) = rest.call(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest client request id echoed; longer ones are replaced by a generated id.
const REQUEST_ID_LEN_MAX: usize = 128;

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

fn make_path_canonical(request: &mut Request) {
    if is_canonical_path(request.uri().path()) {
        return;
    }
    let uri = request.uri();
    let path = canonical_path_of(uri.path());
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

/// Counts every REST request by route, method and status, with its duration: a layer on the
/// routed REST router, where the matched route is known.
#[derive(Clone, Default)]
pub(crate) struct TrackLayer {
    metrics: Arc<RequestMetrics>,
}

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Track<S> {
    inner: S,
    metrics: Arc<RequestMetrics>,
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = limits::method_label(request.method());
        let started = Instant::now();
        let response = self.inner.call(request);
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            let Ok(response) = response.await;
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            let (requests, duration) = metrics.handles(route, method, response.status().as_u16());
            requests.increment(1);
            duration.record(started.elapsed().as_secs_f64());
            Ok(response)
        })
    }
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
