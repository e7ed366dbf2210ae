//! Requests in flight are bounded per node, health and metrics aside; event-stream followers are
//! capped per environment; a place is freed when its holder leaves.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

use super::{KEY, send, token};
use crate::local::LocalBackend;
use crate::{GatewayConfig, api, router};

#[tokio::test]
async fn event_followers_are_capped_per_environment() {
    let mut config = GatewayConfig::new("client", "s3cret", KEY.to_vec());
    config.event_followers_max = 1;
    let app = router(Arc::new(LocalBackend::new(2)), config);
    let follow = |env: &'static str, t: String| {
        let app = app.clone();
        async move {
            let req = Request::builder()
                .method(Method::GET)
                .uri(format!("/api/environment/{env}/events"))
                .header("authorization", format!("Bearer {t}"))
                .body(Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap()
        }
    };
    let (a, b) = (token(&app, "a").await, token(&app, "b").await);
    let first = follow("a", a.clone()).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = send(&app, Method::GET, "/api/environment/a/events", Some(&a), None, &[]).await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS, "{}", second.body);
    assert_eq!(second.body["code"], "overload.too_many_followers");
    assert!(second.headers.contains_key("retry-after"));
    // Another environment has its own places.
    let other = follow("b", b).await;
    assert_eq!(other.status(), StatusCode::OK);
    // The first follower leaves: its place is free again.
    drop(first);
    let again = follow("a", a).await;
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn past_the_bound_on_requests_in_flight_a_request_is_refused_at_once_but_health_answers() {
    let served = api(
        Arc::new(LocalBackend::new(2)),
        GatewayConfig::new("client", "s3cret", KEY.to_vec()),
        Some(1),
    );
    let places = served.places().expect("a bound was given");
    let app = axum::Router::new().fallback_service(served);
    let reserve = || {
        send(
            &app,
            Method::POST,
            "/api/environment/a/onhand/reserve",
            None,
            Some("{}".to_string()),
            &[],
        )
    };
    let held = Arc::clone(&places).try_acquire_owned().expect("the only place is free");
    let refused = reserve().await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.body);
    assert_eq!(refused.body["code"], "overload.too_many_requests");
    assert!(refused.headers.contains_key("retry-after"));
    // gRPC shares the bound.
    let grpc = app
        .clone()
        .oneshot(
            Request::builder()
                .method(Method::POST)
                .uri("/ivory.v1.Inventory/Reserve")
                .header("content-type", "application/grpc")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(grpc.status(), StatusCode::TOO_MANY_REQUESTS);
    let health = send(&app, Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    // No recorder in this test: /metrics answers that it has none, not that the node is full.
    let metrics = send(&app, Method::GET, "/metrics", None, None, &[]).await;
    assert_eq!(metrics.body["code"], "metrics.disabled", "{}", metrics.body);
    drop(held);
    // The place is back: the same request now reaches the token check.
    let admitted = reserve().await;
    assert_eq!(admitted.status, StatusCode::UNAUTHORIZED, "{}", admitted.body);
    assert_eq!(places.available_permits(), 1, "a finished request gives its place back");
}

#[tokio::test]
async fn grpc_paths_reach_the_grpc_services_and_every_other_path_is_rest() {
    let app = router(
        Arc::new(LocalBackend::new(2)),
        GatewayConfig::new("client", "s3cret", KEY.to_vec()),
    );
    let grpc = |path: &'static str| {
        let app = app.clone();
        async move {
            let req = Request::builder()
                .method(Method::POST)
                .uri(path)
                .header("content-type", "application/grpc")
                .body(Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap()
        }
    };
    // tonic's answer to a method it does not serve: UNIMPLEMENTED (12), not REST's 404.
    let unknown = grpc("/ivory.v1.Inventory/NoSuchMethod").await;
    assert_eq!(unknown.headers()["grpc-status"], "12");
    // A REST path, in any case and with a trailing slash, is REST.
    let health = send(&app, Method::GET, "/Health/Ping/", None, None, &[]).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    assert!(health.headers.contains_key("x-request-id"));
    let missing = send(&app, Method::GET, "/ivory-v1", None, None, &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["code"], "route.not_found");
}
