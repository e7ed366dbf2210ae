//! What a client written for IV's service relies on (issue 14): transport details, the whole
//! configuration document, the documented default configuration.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{ENV, post, send, setup, stock, token};

/// A raw request: the headers exactly as given (no token or content type added).
async fn raw(
    app: &axum::Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Option<String>, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, content_type, body)
}

#[tokio::test]
async fn health_ping_answers_json_without_a_token() {
    let (app, _) = setup();
    let (status, content_type, body) = raw(&app, Method::GET, "/health/ping", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(body["status"], "ok");
    // IV clients send their usual headers to it too.
    let (status, _, _) = raw(
        &app,
        Method::GET,
        "/Health/Ping/",
        &[("content-type", "application/json")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn transport_details_real_clients_rely_on() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let lower = format!("bearer {t}");
    let upper = format!("BEARER {t}");
    let r = post(&app, &t, "onhand", stock("t1", "P1", "1", "11", json!({}), json!(5))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for auth in [&lower, &upper] {
        // A GET with a JSON content type and no body.
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        let (status, _, body) = raw(
            &app,
            Method::GET,
            &format!("/api/environment/{ENV}/configuration"),
            &headers,
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["inventorySystemConfigurations"].is_object(), "{body}");
        let path = format!("/api/environment/{ENV}/onhand?organizationId=usmf&productId=P1&siteId=1&locationId=11");
        let (status, _, body) = raw(&app, Method::GET, &path, &headers, "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body[0]["quantities"]["iv"]["onhand"], 5, "{body}");
        let (status, _, body) = raw(
            &app,
            Method::GET,
            &format!("/api/environment/{ENV}/allpartitionids"),
            &headers,
            "",
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, json!(["usmf~1~11"])));
    }
    // The index query also at /indexquery (IV's ATP test client posts there).
    let q = json!({"filters": {"organizationId": ["usmf"], "productId": ["P1"], "siteId": ["1"], "locationId": ["11"]},
                   "groupByValues": [], "returnNegative": true});
    let r = post(&app, &t, "indexquery", q.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, post(&app, &t, "onhand/indexquery", q).await.body);
    assert_eq!(r.body[0]["quantities"]["iv"]["onhand"], 5, "{}", r.body);
    // DELETE with a JSON array body.
    let r = send(
        &app,
        Method::DELETE,
        &format!("/api/environment/{ENV}/cleanupalldata"),
        Some(&t),
        Some(json!(["usmf~1~11"]).to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/allpartitionids"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(r.body, json!([]));
}

#[tokio::test]
async fn every_failure_is_json() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let auth = format!("Bearer {t}");
    let json_ct = ("content-type", "application/json");
    let cases: Vec<(Method, String, Vec<(&str, &str)>, String)> = vec![
        (Method::GET, "/nowhere".into(), vec![], String::new()),
        (Method::DELETE, "/health/ping".into(), vec![], String::new()),
        (
            Method::POST,
            format!("/api/environment/{ENV}/onhand"),
            vec![],
            "{}".into(),
        ),
        (
            Method::POST,
            format!("/api/environment/{ENV}/onhand"),
            vec![("authorization", "Bearer nope"), json_ct],
            "{}".into(),
        ),
        (
            Method::POST,
            format!("/api/environment/{ENV}/onhand"),
            vec![("authorization", auth.as_str()), json_ct],
            "{not json".into(),
        ),
        (
            Method::POST,
            format!("/api/environment/{ENV}/indexquery"),
            vec![("authorization", auth.as_str()), json_ct],
            "[]".into(),
        ),
        (
            Method::POST,
            format!("/api/environment/{ENV}/configuration/hardupdate"),
            vec![("authorization", auth.as_str())],
            "[1]".into(),
        ),
        (
            Method::DELETE,
            format!("/api/environment/{ENV}/cleanupalldata"),
            vec![("authorization", auth.as_str()), json_ct],
            "{\"a\":1}".into(),
        ),
        (
            Method::POST,
            format!("/api/environment/{ENV}/onhand"),
            vec![("authorization", auth.as_str()), json_ct],
            "x".repeat(5 << 20),
        ),
        (Method::POST, "/token".into(), vec![json_ct], "{}".into()),
    ];
    for (method, path, headers, body) in cases {
        let (status, content_type, answer) = raw(&app, method.clone(), &path, &headers, &body).await;
        assert!(!status.is_success(), "{method} {path}: {status}");
        assert_eq!(
            content_type.as_deref(),
            Some("application/json"),
            "{method} {path}: {status}"
        );
        assert!(
            answer["code"].is_string() && answer["message"].is_string(),
            "{method} {path}: {answer}"
        );
        assert_eq!(answer["statusCode"], status.as_u16(), "{method} {path}");
    }
}
