//! Hostile input (issue 9 item 5): a property-based fuzz of every endpoint through the real
//! router over `LocalBackend`. Each case seeds a little stock and a hold, then sends 1 to 4
//! requests of one endpoint with well-formed, malformed and adversarial bodies, paths, queries,
//! headers and tokens, and checks after each one:
//!
//! - no panic, and no 5xx but the documented, retryable 503 with `Retry-After` (only while
//!   the backend is made to fail);
//! - every non-2xx body is `{code, message, statusCode}` with a code from the documented list;
//! - a refusal changed nothing: the shards' state hashes are equal before and after (the clock
//!   is frozen so a refused proposal cannot move it). Refusals that the design remembers (409,
//!   404 `reservation.not_found`: the answer is kept under the id) or that leave a refused
//!   cross-shard hold's released parts behind are checked on the stock instead: every
//!   partition's quantities are equal before and after.
//!
//! Cases per endpoint: `IVORY_FUZZ_CASES` (default 128: about 15 s for every endpoint on 2 cores;
//! the decoding smoke test in `fuzzing` runs 40 times as many).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use ivory_core::model::BASE_DIMENSIONS;
use ivory_core::{Qty, Query, ReadRequest, ReadResponse};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::local::LocalBackend;
use crate::{Backend, GatewayConfig, router};

mod inputs;

use inputs::*;

const ENV: &str = "fz";
const KEY: &[u8] = b"hostile signing key";
const SHARDS: u32 = 4;
/// Small enough that an oversize body is cheap to build; a 513-item bulk still fits.
const BODY_LIMIT: usize = 256 * 1024;

/// Every code the gateway documents (crates/ivory-gateway/README.md), plus the injected
/// backend failures.
const KNOWN_CODES: &[&str] = &[
    "body.malformed",
    "body.not_object",
    "body.not_array",
    "body.unreadable",
    "body.too_large",
    "field.missing",
    "field.empty",
    "field.bad_type",
    "field.bad_number",
    "field.bad_value",
    "field.too_long",
    "field.duplicate",
    "field.bad_dimensions",
    "field.bad_dimension",
    "field.bad_timestamp",
    "limit.bulk_items",
    "limit.products",
    "limit.locations",
    "limit.organizations",
    "limit.tuples",
    "limit.page_size",
    "limit.hold_lines",
    "header.api_version",
    "config.invalid",
    "command.invalid",
    "query.invalid",
    "token.missing_context",
    "token.bad_context",
    "token.missing_secret",
    "auth.missing_token",
    "auth.invalid_token",
    "auth.expired_token",
    "auth.invalid_client",
    "auth.wrong_environment",
    "reservation.not_found",
    "route.not_found",
    "route.method_not_allowed",
    "metrics.disabled",
    "stock.insufficient",
    "event.conflict",
    "command.refused",
    "config.partition_mode_locked",
    "hold.invalid",
    "hold.not_found",
    "hold.insufficient",
    "hold.conflict",
    "raft.no_quorum",
];

/// Refusals whose answer the shard remembers under the client's id (exactly once), or whose
/// cross-shard protocol leaves released parts behind: the stock must not change.
const REMEMBERED: &[&str] = &[
    "stock.insufficient",
    "event.conflict",
    "reservation.not_found",
    "command.refused",
    "hold.insufficient",
    "hold.conflict",
    "hold.invalid",
];

pub(crate) fn fuzz_cases() -> u32 {
    std::env::var("IVORY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

// ---- the harness ----------------------------------------------------------------------------------

struct Harness {
    app: Router,
    backend: Arc<LocalBackend>,
    clock_ms: u64,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Harness {
    async fn new() -> Harness {
        let backend = Arc::new(LocalBackend::new(SHARDS));
        let clock_ms = crate::holds::now_ms();
        backend.clock_ms.store(clock_ms, Ordering::SeqCst);
        let mut config = GatewayConfig::new("client", "s3cret", KEY.to_vec());
        config.body_limit_bytes = BODY_LIMIT;
        config.backend_backoff_max_ms = 1;
        let h = Harness {
            app: router(backend.clone(), config),
            backend,
            clock_ms,
        };
        // An empty entry in every shard brings each clock to the frozen time: a shard's first
        // proposal must not be what moves it.
        for shard in 0..SHARDS {
            h.backend.propose(shard, Vec::new()).await.expect("sweep");
        }
        h.seed().await;
        h
    }

    /// Stock in every (product, site, location), a reservation and a hold, so that valid
    /// requests can succeed.
    async fn seed(&self) {
        let mut items = Vec::new();
        for p in PRODUCTS {
            for s in SITES {
                for l in LOCATIONS {
                    items.push(
                        json!({"id": format!("seed-{p}-{s}-{l}"), "organizationId": "usmf", "productId": p,
                        "dimensions": {"siteId": s, "locationId": l, "colorId": "red"},
                        "quantities": {"pos": {"inbound": 50}}}),
                    );
                }
            }
        }
        let seeds = [
            ("onhand/bulk", Value::Array(items)),
            (
                "onhand/reserve",
                json!({"id": "seed-r", "organizationId": "usmf", "productId": "P1",
                    "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"},
                    "modifier": "softreservphysical", "quantity": 5}),
            ),
            (
                "allocation/allocate",
                json!({"id": "seed-a", "organizationId": "usmf", "productId": "P1",
                    "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"},
                    "groups": {"channel": "Online", "customerGroup": "VIP"}, "quantity": 10}),
            ),
            (
                "holds",
                json!({"id": "seed-hold", "organizationId": "usmf", "items": [
                    {"lineId": "1", "productId": "P2", "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"}, "quantity": 2},
                    {"lineId": "2", "productId": "P2", "dimensions": {"siteId": "2", "locationId": "12", "colorId": "red"}, "quantity": 1}]}),
            ),
        ];
        for (path, body) in seeds {
            let r = self
                .send(&Req {
                    method: Method::POST,
                    path: api(path),
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: Some(body.to_string().into_bytes()),
                    auth: Auth::Good,
                    fail_calls: 0,
                })
                .await
                .expect("a valid request");
            assert!(
                r.status.is_success(),
                "seed {path}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }

    fn token(&self, auth: &Auth) -> Option<String> {
        let valid_until = self.clock_ms / 1000 + 3600;
        match auth {
            Auth::Good => Some(crate::auth::issue_token(KEY, ENV, "client", valid_until)),
            Auth::Missing => None,
            Auth::Garbage(t) => Some(t.clone()),
            Auth::OtherEnvironment => Some(crate::auth::issue_token(KEY, "other", "client", valid_until)),
            Auth::Expired => Some(crate::auth::issue_token(KEY, ENV, "client", 1)),
        }
    }

    /// `None` when the request is not valid HTTP (a URI or header the `http` crate refuses):
    /// no server ever sees it.
    async fn send(&self, req: &Req) -> Option<Reply> {
        let mut builder = Request::builder().method(req.method.clone()).uri(&req.path);
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(t) = self.token(&req.auth) {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        let body = req.body.clone().map(Body::from).unwrap_or_else(Body::empty);
        let request = builder.body(body).ok()?;
        let response = match self.app.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let headers = response.headers().clone();
        let is_stream = headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        // An event stream never ends; its status and headers are the answer.
        let body = if is_stream {
            Vec::new()
        } else {
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default()
        };
        Some(Reply { status, headers, body })
    }

    /// Every partition's quantities, zeros left out (a released hold leaves `0` where there
    /// was nothing): what a client can see of the stock.
    async fn stock(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let group_by: Vec<String> = BASE_DIMENSIONS
            .iter()
            .filter(|d| !matches!(**d, "siteid" | "locationid"))
            .map(|d| (*d).to_string())
            .collect();
        for shard in 0..SHARDS {
            let Ok(ReadResponse::Partitions(partitions)) = self
                .backend
                .read(
                    shard,
                    ReadRequest::Partitions {
                        environment: ENV.into(),
                    },
                )
                .await
            else {
                panic!("partitions read failed");
            };
            for p in partitions {
                let query = Query {
                    environment: ENV.into(),
                    organization: p.organization.clone(),
                    locations: Some(vec![(p.site.clone(), p.location.clone())]),
                    products: Vec::new(),
                    filters: BTreeMap::new(),
                    exact: None,
                    group_by: group_by.clone(),
                    return_negative: true,
                    atp: None,
                };
                let Ok(ReadResponse::Records(records)) = self.backend.read(shard, ReadRequest::Query(query)).await
                else {
                    panic!("stock read failed");
                };
                for r in records {
                    let quantities: Vec<String> = r
                        .quantities
                        .iter()
                        .flat_map(|(ds, m)| {
                            m.iter()
                                .filter(|(_, q)| **q != Qty::ZERO)
                                .map(move |(name, q)| format!("{ds}.{name}={q}"))
                        })
                        .collect();
                    if !quantities.is_empty() {
                        let key = format!(
                            "{}~{}~{}|{}|{:?}",
                            p.organization, p.site, p.location, r.product, r.dims
                        );
                        out.insert(key, quantities.join(","));
                    }
                }
            }
        }
        out
    }
}

fn error_shape(reply: &Reply) -> Result<String, TestCaseError> {
    let body: Value = serde_json::from_slice(&reply.body).map_err(|e| {
        TestCaseError::fail(format!(
            "{} answered a body that is not JSON ({e}): {:?}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ))
    })?;
    let code = body["code"].as_str().unwrap_or_default().to_string();
    prop_assert!(
        KNOWN_CODES.contains(&code.as_str()),
        "{} with an undocumented code: {body}",
        reply.status
    );
    prop_assert!(body["message"].is_string(), "no message: {body}");
    prop_assert!(body["statusCode"].is_u64(), "no statusCode: {body}");
    let content_type = reply.headers.get("content-type").map(|v| v.as_bytes().to_vec());
    prop_assert_eq!(content_type.as_deref(), Some(&b"application/json"[..]), "{}", body);
    Ok(code)
}

/// For a bulk answered 200: whether no item was applied, and whether every item was refused
/// as invalid before reaching a shard.
fn bulk_refused(reply: &Reply) -> Option<(bool, bool)> {
    let body: Value = serde_json::from_slice(&reply.body).ok()?;
    let applied = ["success", "partialSuccess", "unknown"]
        .iter()
        .any(|b| body[*b].as_array().is_some_and(|a| !a.is_empty()));
    let all_400 = ["success", "partialSuccess", "unknown", "conflict", "notFound"]
        .iter()
        .all(|b| body[*b].as_array().is_some_and(Vec::is_empty))
        && body["failure"]
            .as_array()
            .is_some_and(|a| a.iter().all(|i| i["statusCode"] == 400));
    Some((!applied, all_400))
}

/// Sends one request and checks the answer and what it changed.
async fn check(h: &Harness, req: &Req) -> Result<(), TestCaseError> {
    let hashes_before = h.backend.state_hashes();
    let stock_before = h.stock().await;
    h.backend.fail_retryable.store(req.fail_calls, Ordering::SeqCst);
    let reply = h.send(req).await;
    h.backend.fail_retryable.store(0, Ordering::SeqCst);
    let Some(reply) = reply else {
        return Ok(());
    };
    let injected = req.fail_calls > 0;
    let status = reply.status;
    let text = || {
        String::from_utf8_lossy(&reply.body)
            .chars()
            .take(400)
            .collect::<String>()
    };

    if status.is_server_error() {
        prop_assert!(
            status == StatusCode::SERVICE_UNAVAILABLE && injected,
            "{status} without an injected failure: {}",
            text()
        );
        let retry_after = reply
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        prop_assert!(
            retry_after.is_some_and(|s| s >= 1),
            "503 without Retry-After: {}",
            text()
        );
        error_shape(&reply)?;
        return Ok(());
    }
    if !status.is_success() {
        let code = error_shape(&reply)?;
        if injected {
            // A retried call may have reached a shard before the failure was reported.
            return Ok(());
        }
        if REMEMBERED.contains(&code.as_str()) {
            prop_assert_eq!(&h.stock().await, &stock_before, "{} {} changed the stock", status, code);
        } else {
            prop_assert!(
                h.backend.state_hashes() == hashes_before,
                "{status} {code} changed the state: {}",
                text()
            );
        }
        return Ok(());
    }
    if status == StatusCode::OK
        && req.method == Method::POST
        && req.path.to_ascii_lowercase().contains("/bulk")
        && !injected
        && let Some((none_applied, all_invalid)) = bulk_refused(&reply)
    {
        if all_invalid {
            prop_assert!(
                h.backend.state_hashes() == hashes_before,
                "a bulk of invalid items changed the state: {}",
                text()
            );
        } else if none_applied {
            prop_assert_eq!(
                &h.stock().await,
                &stock_before,
                "a refused bulk changed the stock: {}",
                text()
            );
        }
    }
    Ok(())
}

fn run_endpoint(name: &'static str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let config = ProptestConfig {
        cases: fuzz_cases(),
        max_shrink_iters: 500,
        // The case, not a file, is the regression: failures print the shrunk requests.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(request(name), 1..5);
    let result = runner.run(&strategy, |requests| {
        runtime.block_on(async {
            let h = Harness::new().await;
            for req in &requests {
                check(&h, req).await?;
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("endpoint {name}: {e}");
    }
}

macro_rules! hostile {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_endpoint($name);
            }
        )*

        /// The tests above cover every endpoint of the list.
        #[test]
        fn every_endpoint_is_fuzzed() {
            let tested = [$($name),*];
            assert_eq!(tested.len(), ENDPOINTS.len());
            for e in ENDPOINTS {
                assert!(tested.contains(e), "{e} is not fuzzed");
            }
        }
    };
}

hostile! {
    hostile_onhand => "onhand",
    hostile_onhand_bulk => "onhand_bulk",
    hostile_setonhand_bulk => "setonhand_bulk",
    hostile_reserve => "reserve",
    hostile_reserve_bulk => "reserve_bulk",
    hostile_unreserve => "unreserve",
    hostile_unreserve_bulk => "unreserve_bulk",
    hostile_changeschedule => "changeschedule",
    hostile_changeschedule_bulk => "changeschedule_bulk",
    hostile_allocate => "allocate",
    hostile_unallocate => "unallocate",
    hostile_reallocate => "reallocate",
    hostile_consume => "consume",
    hostile_allocation_query => "allocation_query",
    hostile_indexquery => "indexquery",
    hostile_exactquery => "exactquery",
    hostile_get_onhand => "get_onhand",
    hostile_configuration => "configuration",
    hostile_hardupdate => "hardupdate",
    hostile_allpartitionids => "allpartitionids",
    hostile_cleanup => "cleanup",
    hostile_holds_create => "holds_create",
    hostile_holds_get => "holds_get",
    hostile_holds_release => "holds_release",
    hostile_holds_patch => "holds_patch",
    hostile_holds_extend => "holds_extend",
    hostile_holds_confirm => "holds_confirm",
    hostile_holds_consume => "holds_consume",
    hostile_events => "events",
    hostile_token => "token",
    hostile_operations => "operations",
}

/// The endpoint list above names every route the router registers (`openapi` walks the same
/// list for the document): a new route fails here until it is fuzzed.
#[test]
fn the_fuzz_covers_every_route() {
    let fuzzed: std::collections::BTreeSet<(String, String)> = [
        ("/onhand", "POST", "onhand"),
        ("/onhand", "GET", "get_onhand"),
        ("/onhand/bulk", "POST", "onhand_bulk"),
        ("/setonhand/{system}/bulk", "POST", "setonhand_bulk"),
        ("/onhand/reserve", "POST", "reserve"),
        ("/onhand/reserve/bulk", "POST", "reserve_bulk"),
        ("/onhand/unreserve", "POST", "unreserve"),
        ("/onhand/unreserve/bulk", "POST", "unreserve_bulk"),
        ("/onhand/changeschedule", "POST", "changeschedule"),
        ("/onhand/changeschedule/bulk", "POST", "changeschedule_bulk"),
        ("/allocation/allocate", "POST", "allocate"),
        ("/allocation/unallocate", "POST", "unallocate"),
        ("/allocation/reallocate", "POST", "reallocate"),
        ("/allocation/consume", "POST", "consume"),
        ("/allocation/query", "POST", "allocation_query"),
        ("/onhand/indexquery", "POST", "indexquery"),
        ("/indexquery", "POST", "indexquery"),
        ("/onhand/exactquery", "POST", "exactquery"),
        ("/configuration", "GET", "configuration"),
        ("/configuration/hardupdate", "POST", "hardupdate"),
        ("/allpartitionids", "GET", "allpartitionids"),
        ("/partitions/cleanupalldata", "DELETE", "cleanup"),
        ("/cleanupalldata", "DELETE", "cleanup"),
        ("/holds", "POST", "holds_create"),
        ("/holds/{id}", "GET", "holds_get"),
        ("/holds/{id}", "DELETE", "holds_release"),
        ("/holds/{id}/items", "PATCH", "holds_patch"),
        ("/holds/{id}/extend", "POST", "holds_extend"),
        ("/holds/{id}/confirm", "POST", "holds_confirm"),
        ("/holds/{id}/consume", "POST", "holds_consume"),
        ("/events", "GET", "events"),
    ]
    .iter()
    .map(|(p, m, e)| {
        assert!(ENDPOINTS.contains(e));
        (
            crate::openapi::doc_path(&format!("{}{p}", crate::API_PREFIX)),
            (*m).to_string(),
        )
    })
    .chain(
        ["/token", "/health/ping", "/healthz", "/metrics", "/openapi.json"]
            .iter()
            .map(|p| {
                (
                    (*p).to_string(),
                    if *p == "/token" { "POST" } else { "GET" }.to_string(),
                )
            }),
    )
    .collect();
    assert_eq!(fuzzed, crate::openapi::documented_operations());
}
