//! Holds and events through the REST layer against `LocalBackend` (4 shards).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use ivory_core::PartitionKey;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::Backend;
use crate::local::LocalBackend;
use crate::{GatewayConfig, router};

const ENV: &str = "env-H";
const ORG: &str = "usmf";

fn setup() -> (Router, Arc<LocalBackend>) {
    let backend = Arc::new(LocalBackend::new(4));
    let mut config = GatewayConfig::new("client", "s3cret", b"k".to_vec());
    config.backend_backoff_max_ms = 5;
    (router(backend.clone(), config), backend)
}

async fn call(app: &Router, method: Method, path: &str, t: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(format!("/api/environment/{ENV}/{path}"))
        .header("authorization", format!("Bearer {t}"));
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn token(app: &Router) -> String {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/token")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"client_id": "client", "client_secret": "s3cret", "context": ENV}).to_string(),
        ))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// Two (site, location) pairs that live in different shards.
fn two_shards(backend: &LocalBackend) -> [(String, String); 2] {
    let first = ("1".to_string(), "11".to_string());
    let s0 = backend.shard_of(&PartitionKey::new(ENV, ORG, "1", "11"));
    for i in 2..100 {
        let site = i.to_string();
        if backend.shard_of(&PartitionKey::new(ENV, ORG, &site, "11")) != s0 {
            return [first, (site, "11".to_string())];
        }
    }
    panic!("no second shard found");
}

async fn stock(app: &Router, t: &str, product: &str, at: &(String, String), qty: i64) {
    let body = json!({"id": format!("s-{product}-{}-{qty}", at.0), "organizationId": ORG, "productId": product,
        "dimensions": {"siteId": at.0, "locationId": at.1}, "quantities": {"pos": {"inbound": qty}}});
    let (status, body) = call(app, Method::POST, "onhand", t, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn available(app: &Router, t: &str, product: &str) -> f64 {
    let q = json!({"filters": {"organizationId": [ORG], "productId": [product]}, "groupByValues": [], "returnNegative": true});
    let (status, body) = call(app, Method::POST, "onhand/indexquery", t, Some(q)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|r| r["quantities"]["iv"]["availabletoreserve"].as_f64().unwrap_or(0.0))
        .sum()
}

fn item(line: &str, product: &str, at: &(String, String), qty: i64) -> Value {
    json!({"lineId": line, "productId": product, "dimensions": {"siteId": at.0, "locationId": at.1}, "quantity": qty})
}

fn statuses(hold: &Value) -> Vec<String> {
    hold["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{}={}", i["lineId"].as_str().unwrap(), i["status"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn create_replay_and_conflict() {
    let (app, backend) = setup();
    let t = token(&app).await;
    let [a, _] = two_shards(&backend);
    stock(&app, &t, "P1", &a, 10).await;
    stock(&app, &t, "P2", &a, 10).await;
    let body = json!({"id": "Cart-1", "organizationId": ORG, "expiresInSeconds": 600,
        "items": [item("1", "P1", &a, 3), item("2", "P2", &a, 4)]});
    let (status, hold) = call(&app, Method::POST, "holds", &t, Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    assert_eq!(hold["id"], "Cart-1");
    assert_eq!(hold["status"], "active");
    assert!(hold["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(statuses(&hold), ["1=held", "2=held"]);
    assert_eq!(hold["history"][0]["status"], "active");
    assert_eq!(available(&app, &t, "P1").await, 7.0);
    // A replay, spelled differently (key case, numbers as strings): the same hold, 200.
    let replay = json!({"ID": "Cart-1", "organizationid": ORG, "ExpiresInSeconds": "600",
        "Items": [{"LineId": "1", "productId": "P1", "dimensions": {"siteId": a.0, "locationId": a.1}, "quantity": "3"},
                  item("2", "P2", &a, 4)]});
    let (status, again) = call(&app, Method::POST, "holds", &t, Some(replay)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, hold);
    assert_eq!(available(&app, &t, "P1").await, 7.0, "a replay holds nothing more");
    // The same id with another body.
    let other = json!({"id": "Cart-1", "organizationId": ORG, "items": [item("1", "P1", &a, 1)]});
    let (status, err) = call(&app, Method::POST, "holds", &t, Some(other)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["code"], "hold.conflict");
    // The id keeps its case in the path; organizationId is a query parameter.
    let (status, got) = call(
        &app,
        Method::GET,
        &format!("holds/Cart-1?organizationId={ORG}"),
        &t,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, hold);
    let (status, err) = call(&app, Method::GET, "holds/Cart-1", &t, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("holds/cart-1?organizationId={ORG}"),
        &t,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Bad input names the field and holds nothing.
    let bad = json!({"id": "Cart-2", "organizationId": ORG, "items": [item("1", "P1", &a, 1), {"lineId": "2", "productId": "P1", "dimensions": {"siteId": a.0, "locationId": a.1}, "quantity": -1}]});
    let (status, err) = call(&app, Method::POST, "holds", &t, Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["message"].as_str().unwrap().contains("items[1].quantity"), "{err}");
    let bad = json!({"id": "Cart-2", "organizationId": ORG, "expiresInSeconds": 0, "items": [item("1", "P1", &a, 1)]});
    assert_eq!(
        call(&app, Method::POST, "holds", &t, Some(bad)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(available(&app, &t, "P1").await, 7.0);
}

#[tokio::test]
async fn all_or_nothing_across_shards_holds_nothing_when_one_line_is_short() {
    let (app, backend) = setup();
    let t = token(&app).await;
    let [a, b] = two_shards(&backend);
    stock(&app, &t, "P1", &a, 5).await;
    stock(&app, &t, "P2", &b, 5).await;
    stock(&app, &t, "P3", &b, 1).await;
    let body = json!({"id": "Cart-X", "organizationId": ORG,
        "items": [item("a", "P1", &a, 2), item("b", "P2", &b, 2), item("c", "P3", &b, 2)]});
    let (status, err) = call(&app, Method::POST, "holds", &t, Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["code"], "hold.insufficient");
    assert!(err["message"].as_str().unwrap().contains("'c'"), "{err}");
    for (p, q) in [("P1", 5.0), ("P2", 5.0), ("P3", 1.0)] {
        assert_eq!(available(&app, &t, p).await, q, "{p}: nothing is held");
    }
    // A hold that never was is not in the event stream.
    let (_, page) = call(&app, Method::GET, "events?wait=false", &t, None).await;
    assert_eq!(page["events"], json!([]), "{page}");
    // Across shards with enough stock: every line held, in both shards.
    let body = json!({"id": "Cart-Y", "organizationId": ORG,
        "items": [item("a", "P1", &a, 2), item("b", "P2", &b, 2)]});
    let (status, hold) = call(&app, Method::POST, "holds", &t, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    assert_eq!(hold["status"], "active");
    assert_eq!(statuses(&hold), ["a=held", "b=held"]);
    let h: Vec<&str> = hold["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(h, ["tentative", "active"]);
    assert_eq!(available(&app, &t, "P1").await, 3.0);
    assert_eq!(available(&app, &t, "P2").await, 3.0);
    // Not all-or-nothing: the short line is named and the others are held.
    let body = json!({"id": "Cart-Z", "organizationId": ORG, "allOrNothing": false,
        "items": [item("a", "P1", &a, 1), item("c", "P3", &b, 2)]});
    let (status, hold) = call(&app, Method::POST, "holds", &t, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    assert_eq!(statuses(&hold), ["a=held", "c=short"]);
}

#[tokio::test]
async fn lifecycle_transitions_and_refusals() {
    let (app, backend) = setup();
    let t = token(&app).await;
    let [a, b] = two_shards(&backend);
    stock(&app, &t, "P1", &a, 10).await;
    stock(&app, &t, "P2", &b, 10).await;
    let q = format!("?organizationId={ORG}");
    let body = json!({"id": "L1", "organizationId": ORG, "items": [item("1", "P1", &a, 2), item("2", "P2", &b, 3)]});
    assert_eq!(
        call(&app, Method::POST, "holds", &t, Some(body)).await.0,
        StatusCode::CREATED
    );
    // Extend an active hold.
    let (status, hold) = call(
        &app,
        Method::POST,
        &format!("holds/L1/extend{q}"),
        &t,
        Some(json!({"expiresInSeconds": 3600})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    assert_eq!(hold["status"], "active");
    // Confirm: no expiry from now on; extend is refused; confirm again is fine.
    let (status, hold) = call(&app, Method::POST, &format!("holds/L1/confirm{q}"), &t, None).await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    assert_eq!(hold["status"], "confirmed");
    assert!(hold["expiresAt"].is_null());
    assert_eq!(
        call(&app, Method::POST, &format!("holds/L1/confirm{q}"), &t, None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, err) = call(
        &app,
        Method::POST,
        &format!("holds/L1/extend{q}"),
        &t,
        Some(json!({"expiresInSeconds": 60})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    // Consume one line (in the second shard): its stock leaves on-hand; the hold is still open.
    let (status, hold) = call(
        &app,
        Method::POST,
        &format!("holds/L1/consume{q}"),
        &t,
        Some(json!({"lineIds": ["2"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    assert_eq!(statuses(&hold), ["1=held", "2=consumed"]);
    assert_eq!(hold["status"], "confirmed");
    assert_eq!(available(&app, &t, "P2").await, 7.0);
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("holds/L1/consume{q}"),
        &t,
        Some(json!({"lineIds": ["nope"]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Consume the rest: consumed; nothing else is allowed.
    let (status, hold) = call(&app, Method::POST, &format!("holds/L1/consume{q}"), &t, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    assert_eq!(hold["status"], "consumed");
    assert_eq!(statuses(&hold), ["1=consumed", "2=consumed"]);
    assert_eq!(available(&app, &t, "P1").await, 8.0);
    // A retried consume (its first answer lost) gets the same success and changes nothing.
    let (status, again) = call(&app, Method::POST, &format!("holds/L1/consume{q}"), &t, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(statuses(&again), ["1=consumed", "2=consumed"]);
    assert_eq!(available(&app, &t, "P1").await, 8.0);
    assert_eq!(
        call(&app, Method::DELETE, &format!("holds/L1{q}"), &t, None).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        call(&app, Method::POST, &format!("holds/L1/confirm{q}"), &t, None)
            .await
            .0,
        StatusCode::CONFLICT
    );
    // Another hold, abandoned: DELETE releases everything; a second DELETE is fine.
    let body = json!({"id": "L2", "organizationId": ORG, "items": [item("1", "P1", &a, 8), item("2", "P2", &b, 7)]});
    assert_eq!(
        call(&app, Method::POST, "holds", &t, Some(body)).await.0,
        StatusCode::CREATED
    );
    assert_eq!(available(&app, &t, "P1").await, 0.0);
    let (status, hold) = call(&app, Method::DELETE, &format!("holds/L2{q}"), &t, None).await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    assert_eq!(hold["status"], "released");
    assert_eq!(statuses(&hold), ["1=released", "2=released"]);
    assert_eq!(
        call(&app, Method::DELETE, &format!("holds/L2{q}"), &t, None).await.0,
        StatusCode::OK
    );
    assert_eq!(available(&app, &t, "P1").await, 8.0);
    assert_eq!(available(&app, &t, "P2").await, 7.0);
    assert_eq!(
        call(&app, Method::POST, &format!("holds/L2/consume{q}"), &t, None)
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        call(&app, Method::DELETE, &format!("holds/none{q}"), &t, None).await.0,
        StatusCode::NOT_FOUND
    );
    // An abandoned hold expires by itself and its stock comes back.
    let body = json!({"id": "L3", "organizationId": ORG, "expiresInSeconds": 1, "items": [item("1", "P1", &a, 8)]});
    assert_eq!(
        call(&app, Method::POST, "holds", &t, Some(body)).await.0,
        StatusCode::CREATED
    );
    assert_eq!(available(&app, &t, "P1").await, 0.0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, hold) = call(&app, Method::GET, &format!("holds/L3{q}"), &t, None).await;
        if hold["status"] == "expired" {
            break;
        }
        assert!(Instant::now() < deadline, "{hold}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(available(&app, &t, "P1").await, 8.0);
}

/// Finding 6: the primary part alone decides when a cross-shard hold expires. The other
/// shard's leader clock a minute past the hold's expiry does not end its part; the primary's
/// expiry does, at once, and reads show the hold whole in either state.
#[tokio::test]
async fn a_cross_shard_hold_expires_by_its_primary_only() {
    let (app, backend) = setup();
    let t = token(&app).await;
    let [a, b] = two_shards(&backend);
    let (primary, other) = (
        backend.shard_of(&PartitionKey::new(ENV, ORG, &a.0, &a.1)),
        backend.shard_of(&PartitionKey::new(ENV, ORG, &b.0, &b.1)),
    );
    stock(&app, &t, "P6", &a, 5).await;
    stock(&app, &t, "P6", &b, 5).await;
    let q = format!("?organizationId={ORG}");
    let body = json!({"id": "F6", "organizationId": ORG, "expiresInSeconds": 30,
        "items": [item("1", "P6", &a, 2), item("2", "P6", &b, 3)]});
    let (status, hold) = call(&app, Method::POST, "holds", &t, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let expires_at = crate::holds::now_ms() + 30_000;
    let part = |shard: u32| {
        let backend = backend.clone();
        async move {
            let key = ivory_core::hold::HoldKey {
                environment: ENV.into(),
                organization: ORG.into(),
                id: "F6".into(),
            };
            match backend.read(shard, ivory_core::ReadRequest::Hold(key)).await {
                Ok(ivory_core::ReadResponse::Hold(Some(h))) => *h,
                other => panic!("{other:?}"),
            }
        }
    };
    let (p, o) = (part(primary).await, part(other).await);
    let (p_at, o_at) = (p.expires_at_ms.unwrap(), o.expires_at_ms.unwrap());
    assert_eq!(
        o_at,
        p_at + ivory_core::hold::SIBLING_EXPIRY_GRACE_MS,
        "the other part's safety net"
    );

    // Extend moves both: the primary to the new expiry, the other part two minutes past it.
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("holds/F6/extend{q}"),
        &t,
        Some(json!({"expiresInSeconds": 40})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (p, o) = (part(primary).await, part(other).await);
    let (p_at, o_at) = (p.expires_at_ms.unwrap(), o.expires_at_ms.unwrap());
    assert!(p_at >= expires_at + 9_000, "extended: {p_at}");
    assert_eq!(o_at, p_at + ivory_core::hold::SIBLING_EXPIRY_GRACE_MS);

    // The other shard's leader stamps a clamp step (60 s) past the hold's expiry: still whole.
    backend.sweep_at(other, p_at + 60_000);
    let (_, hold) = call(&app, Method::GET, &format!("holds/F6{q}"), &t, None).await;
    assert_eq!(hold["status"], "active", "{hold}");
    assert_eq!(statuses(&hold), ["1=held", "2=held"]);
    assert_eq!(available(&app, &t, "P6").await, 5.0);

    // The primary's leader reaches the expiry: the whole hold expires, the other part with it.
    backend.sweep_at(primary, p_at);
    let (_, hold) = call(&app, Method::GET, &format!("holds/F6{q}"), &t, None).await;
    assert_eq!(hold["status"], "expired", "{hold}");
    assert_eq!(statuses(&hold), ["1=released", "2=released"]);
    assert_eq!(part(other).await.status, ivory_core::hold::HoldStatus::Expired);
    assert_eq!(available(&app, &t, "P6").await, 10.0);
    // Past its primary's expiry a hold takes no extend, confirm or consume.
    for step in ["extend", "confirm", "consume"] {
        let (status, body) = call(
            &app,
            Method::POST,
            &format!("holds/F6/{step}{q}"),
            &t,
            Some(json!({"expiresInSeconds": 60})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{step}: {body}");
    }
}

#[tokio::test]
async fn patch_items_replaces_lines_across_shards() {
    let (app, backend) = setup();
    let t = token(&app).await;
    let [a, b] = two_shards(&backend);
    stock(&app, &t, "P1", &a, 10).await;
    stock(&app, &t, "P2", &b, 10).await;
    let q = format!("?organizationId={ORG}");
    let body = json!({"id": "C1", "organizationId": ORG, "items": [item("1", "P1", &a, 2)]});
    assert_eq!(
        call(&app, Method::POST, "holds", &t, Some(body)).await.0,
        StatusCode::CREATED
    );
    // Change line 1, add line 2 in another shard.
    let patch = json!({"items": [item("1", "P1", &a, 5), item("2", "P2", &b, 4)], "expiresInSeconds": 300});
    let (status, hold) = call(&app, Method::PATCH, &format!("holds/C1/items{q}"), &t, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    assert_eq!(statuses(&hold), ["1=held", "2=held"]);
    assert_eq!(hold["items"][0]["quantity"], json!(5));
    assert_eq!(available(&app, &t, "P1").await, 5.0);
    assert_eq!(available(&app, &t, "P2").await, 6.0);
    // Too much in one shard: refused, the old lines are kept everywhere.
    let patch = json!({"items": [item("1", "P1", &a, 1), item("2", "P2", &b, 40)]});
    let (status, err) = call(&app, Method::PATCH, &format!("holds/C1/items{q}"), &t, Some(patch)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(available(&app, &t, "P1").await, 5.0);
    assert_eq!(available(&app, &t, "P2").await, 6.0);
    // Remove line 1 (its shard keeps no line).
    let patch = json!({"items": [item("2", "P2", &b, 1)]});
    let (status, hold) = call(&app, Method::PATCH, &format!("holds/C1/items{q}"), &t, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    assert_eq!(statuses(&hold), ["2=held"]);
    assert_eq!(hold["status"], "active");
    assert_eq!(available(&app, &t, "P1").await, 10.0);
    assert_eq!(available(&app, &t, "P2").await, 9.0);
    // Consume all, then PATCH is refused.
    assert_eq!(
        call(&app, Method::POST, &format!("holds/C1/consume{q}"), &t, None)
            .await
            .0,
        StatusCode::OK
    );
    let patch = json!({"items": [item("2", "P2", &b, 1)]});
    assert_eq!(
        call(&app, Method::PATCH, &format!("holds/C1/items{q}"), &t, Some(patch))
            .await
            .0,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn event_cursor_pages_and_resumes() {
    let (app, backend) = setup();
    let t = token(&app).await;
    let [a, b] = two_shards(&backend);
    stock(&app, &t, "P1", &a, 10).await;
    stock(&app, &t, "P2", &b, 10).await;
    let q = format!("?organizationId={ORG}");
    for (id, at, product) in [("E1", &a, "P1"), ("E2", &b, "P2"), ("E3", &a, "P1")] {
        let body = json!({"id": id, "organizationId": ORG, "items": [item("1", product, at, 1)]});
        assert_eq!(
            call(&app, Method::POST, "holds", &t, Some(body)).await.0,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        call(&app, Method::POST, &format!("holds/E1/confirm{q}"), &t, None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, Method::DELETE, &format!("holds/E2{q}"), &t, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, Method::POST, &format!("holds/E3/consume{q}"), &t, None)
            .await
            .0,
        StatusCode::OK
    );
    // Page one event per shard at a time, following the cursor.
    let mut cursor = String::new();
    let mut seen = Vec::new();
    for _ in 0..20 {
        let (status, page) = call(
            &app,
            Method::GET,
            &format!("events?from={cursor}&wait=false&limit=1"),
            &t,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        for e in events {
            assert!(e["at"].as_str().unwrap().ends_with('Z'));
            seen.push(format!(
                "{}:{}",
                e["holdId"].as_str().unwrap(),
                e["type"].as_str().unwrap()
            ));
        }
        cursor = page["cursor"].as_str().unwrap().to_string();
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "E1:hold.confirmed",
            "E1:hold.created",
            "E2:hold.created",
            "E2:hold.released",
            "E3:hold.consumed",
            "E3:hold.created"
        ]
    );
    // Nothing new after the cursor; a new event shows up from it.
    let (_, page) = call(&app, Method::GET, &format!("events?from={cursor}&wait=false"), &t, None).await;
    assert_eq!(page["events"], json!([]));
    assert_eq!(
        call(&app, Method::POST, &format!("holds/E1/consume{q}"), &t, None)
            .await
            .0,
        StatusCode::OK
    );
    let (_, page) = call(&app, Method::GET, &format!("events?from={cursor}&wait=false"), &t, None).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["events"][0]["type"], "hold.consumed");
    assert_eq!(page["events"][0]["status"], "consumed");
    // A cursor naming a shard that does not exist is refused.
    let (status, _) = call(&app, Method::GET, "events?from=9:1&wait=false", &t, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sse_stream_sends_events_with_cursor_ids() {
    let (app, backend) = setup();
    let t = token(&app).await;
    let [a, _] = two_shards(&backend);
    stock(&app, &t, "P1", &a, 10).await;
    let body = json!({"id": "S1", "organizationId": ORG, "items": [item("1", "P1", &a, 1)]});
    assert_eq!(
        call(&app, Method::POST, "holds", &t, Some(body)).await.0,
        StatusCode::CREATED
    );
    let req = Request::builder()
        .uri(format!("/api/environment/{ENV}/events"))
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = resp.into_body().into_data_stream();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text.contains("\n\n") {
        use futures::StreamExt;
        let chunk = tokio::time::timeout_at(deadline.into(), body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: hold.created"), "{text}");
    assert!(text.contains("\"holdId\":\"S1\""), "{text}");
    let shard = backend.shard_of(&PartitionKey::new(ENV, ORG, &a.0, &a.1));
    assert!(
        text.contains(&format!("{shard}:1")),
        "the id is the cursor after the event: {text}"
    );
}

/// A gateway died after phase 1: tentative parts are left in both shards. The client's retry of
/// the same request completes the protocol, and every line is held once.
#[tokio::test]
async fn a_retry_completes_a_hold_whose_gateway_died_between_the_phases() {
    use ivory_core::hold::{HoldCommand, HoldKey, HoldLine};
    use ivory_core::{Cell, Command, MeasureRef, Qty};

    let (app, backend) = setup();
    let t = token(&app).await;
    let [a, b] = two_shards(&backend);
    stock(&app, &t, "P1", &a, 5).await;
    stock(&app, &t, "P2", &b, 5).await;
    let line = |id: &str, product: &str, at: &(String, String)| HoldLine {
        line_id: id.into(),
        partition: PartitionKey::new(ENV, ORG, &at.0, &at.1),
        cell: Cell {
            product: product.into(),
            dims: Default::default(),
        },
        quantity: Qty::from_i64(2),
        allow_oversell: false,
    };
    let lines = [line("1", "P1", &a), line("2", "P2", &b)];
    let measure = MeasureRef::new("iv", "softreservphysical");
    let fingerprint = crate::holds::request_fingerprint(&measure, &lines, 900_000, true);
    let key = HoldKey {
        environment: ENV.into(),
        organization: ORG.into(),
        id: "R1".into(),
    };
    let primary = backend.shard_of(&lines[0].partition);
    for l in &lines {
        let shard = backend.shard_of(&l.partition);
        let create = HoldCommand::Create {
            key: key.clone(),
            measure: measure.clone(),
            lines: vec![l.clone()],
            expires_at_ms: crate::holds::now_ms() + 10_000,
            all_or_nothing: true,
            tentative: true,
            body_fingerprint: fingerprint,
            primary: shard == primary,
        };
        let r = backend.propose(shard, vec![Command::Hold(create)]).await.unwrap();
        assert!(r[0].outcome.applied(), "{r:?}");
    }
    let (_, hold) = call(&app, Method::GET, &format!("holds/R1?organizationId={ORG}"), &t, None).await;
    assert_eq!(hold["status"], "tentative", "{hold}");
    assert_eq!(available(&app, &t, "P1").await, 3.0);
    let body = json!({"id": "R1", "organizationId": ORG, "items": [item("1", "P1", &a, 2), item("2", "P2", &b, 2)]});
    let (status, hold) = call(&app, Method::POST, "holds", &t, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    assert_eq!(hold["status"], "active");
    assert_eq!(statuses(&hold), ["1=held", "2=held"]);
    assert_eq!(available(&app, &t, "P1").await, 3.0, "held once");
    assert_eq!(available(&app, &t, "P2").await, 3.0, "held once");
}

/// Another body under a known id whose first line lives in a shard the hold does not touch: the
/// conflict shows in phase 1, and the existing hold keeps its stock.
#[tokio::test]
async fn a_conflicting_create_never_releases_the_existing_hold() {
    let (app, backend) = setup();
    let t = token(&app).await;
    let [a, b] = two_shards(&backend);
    stock(&app, &t, "P1", &a, 10).await;
    stock(&app, &t, "P2", &b, 10).await;
    let body = json!({"id": "D1", "organizationId": ORG, "items": [item("1", "P1", &a, 3)]});
    assert_eq!(
        call(&app, Method::POST, "holds", &t, Some(body)).await.0,
        StatusCode::CREATED
    );
    let other = json!({"id": "D1", "organizationId": ORG, "items": [item("1", "P2", &b, 1), item("2", "P1", &a, 1)]});
    let (status, err) = call(&app, Method::POST, "holds", &t, Some(other)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["code"], "hold.conflict");
    assert_eq!(
        available(&app, &t, "P1").await,
        7.0,
        "the existing hold still holds its line"
    );
    assert_eq!(
        available(&app, &t, "P2").await,
        10.0,
        "the other request's part was released"
    );
    let (_, hold) = call(&app, Method::GET, &format!("holds/D1?organizationId={ORG}"), &t, None).await;
    assert_eq!(hold["status"], "active", "{hold}");
    assert_eq!(statuses(&hold), ["1=held"], "only the hold's own part: {hold}");
    // The same, with the existing hold's shard after the other request's first shard.
    let body = json!({"id": "D2", "organizationId": ORG, "items": [item("1", "P2", &b, 3)]});
    assert_eq!(
        call(&app, Method::POST, "holds", &t, Some(body)).await.0,
        StatusCode::CREATED
    );
    let other = json!({"id": "D2", "organizationId": ORG, "items": [item("1", "P1", &a, 1), item("2", "P2", &b, 1)]});
    assert_eq!(
        call(&app, Method::POST, "holds", &t, Some(other)).await.0,
        StatusCode::CONFLICT
    );
    let (_, hold) = call(&app, Method::GET, &format!("holds/D2?organizationId={ORG}"), &t, None).await;
    assert_eq!(hold["status"], "active", "{hold}");
    assert_eq!(statuses(&hold), ["1=held"], "{hold}");
    assert_eq!(available(&app, &t, "P2").await, 7.0);
    assert_eq!(available(&app, &t, "P1").await, 7.0);
    // Lifecycle steps reach only the hold's own parts.
    let (status, hold) = call(
        &app,
        Method::DELETE,
        &format!("holds/D2?organizationId={ORG}"),
        &t,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    assert_eq!(available(&app, &t, "P2").await, 10.0);
}

#[tokio::test]
async fn stock_below_threshold_reaches_the_event_stream() {
    let (app, backend) = setup();
    let t = token(&app).await;
    let [a, _] = two_shards(&backend);
    // Alerts are opt-in: the environment's configuration turns them on (threshold 1 = sold out).
    let (_, mut config) = call(&app, Method::GET, "configuration", &t, None).await;
    config["alertConfiguration"] = json!({"lowStockThreshold": "2"});
    let (status, body) = call(&app, Method::POST, "configuration/hardupdate", &t, Some(config)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    stock(&app, &t, "LAST", &a, 3).await;
    let reserve = |id: &str| {
        json!({"id": id, "organizationId": ORG, "productId": "LAST", "dimensions": {"siteId": a.0, "locationId": a.1},
               "quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": 1})
    };
    for id in ["r1", "r2"] {
        let (status, body) = call(&app, Method::POST, "onhand/reserve", &t, Some(reserve(id))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, page) = call(&app, Method::GET, "events?wait=false", &t, None).await;
    let alerts: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "stock.below-threshold")
        .collect();
    assert_eq!(alerts.len(), 1, "3 -> 2 is not below 2, 2 -> 1 is: {page}");
    assert_eq!(alerts[0]["productId"], "LAST");
    assert_eq!(alerts[0]["value"], 1);
    assert_eq!(alerts[0]["threshold"], 2);
    assert_eq!(alerts[0]["measure"], "iv.availabletoreserve");
}
