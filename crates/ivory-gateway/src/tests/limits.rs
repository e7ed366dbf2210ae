//! Event-stream followers are capped per environment; a follower's place is freed when it leaves.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

use super::{KEY, send, token};
use crate::local::LocalBackend;
use crate::{GatewayConfig, router};

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
