//! The HTTP surface through the REST router: auth, odd paths and oversize tokens, key and number
//! leniency, v2 paging, retries and 503, request ids, health and metrics, canonical paths.

use super::*;

#[tokio::test]
async fn auth_rules() {
    let (app, _) = setup();
    let path = format!("/api/environment/{ENV}/onhand/indexquery");
    let body = Some(index_query(&["X"], &[], &[], &[]).to_string());
    let r = send(&app, Method::POST, &path, None, body.clone(), &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["code"], "auth.missing_token");
    let t = token(&app, ENV).await;
    let mut tampered = t.clone();
    tampered.insert(3, if tampered.as_bytes()[3] == b'A' { 'B' } else { 'A' });
    let r = send(&app, Method::POST, &path, Some(&tampered), body.clone(), &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let expired = crate::auth::issue_token(KEY, ENV, "client", crate::auth::now_s() - 1);
    let r = send(&app, Method::POST, &path, Some(&expired), body.clone(), &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["code"], "auth.expired_token");
    let other = token(&app, "env-B2").await;
    let r = send(&app, Method::POST, &path, Some(&other), body.clone(), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let forged = crate::auth::issue_token(b"other key", ENV, "client", crate::auth::now_s() + 100);
    assert_eq!(
        send(&app, Method::POST, &path, Some(&forged), body.clone(), &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // `bearer` in lower case.
    let r = send(
        &app,
        Method::POST,
        &path,
        None,
        body.clone(),
        &[("Authorization", &format!("bearer {t}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Bad credentials.
    let r = send(
        &app,
        Method::POST,
        "/token",
        None,
        Some(json!({"client_id": "client", "client_secret": "nope", "context": ENV}).to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // IV's body shape; and a form body.
    let r = send(&app, Method::POST, "/token", None, Some(json!({"grant_type": "client_credentials", "client_assertion_type": "aad_app",
        "client_assertion": "s3cret", "scope": "https://inventoryservice.operations365.dynamics.com/.default", "context": ENV, "context_type": "finops-env"}).to_string()), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let req = Request::builder()
        .method("POST")
        .uri("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "client_id=client&client_secret=s3cret&context={ENV}"
        )))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Found by the hostile-input fuzz: extractor rejections were plain text, and the token's
/// environment was compared with the path segment before percent-decoding.
#[tokio::test]
async fn percent_encoded_paths_and_oversize_tokens_answer_json() {
    let (app, _) = setup();
    let t = token(&app, "a%20b").await;
    let r = send(
        &app,
        Method::GET,
        "/api/environment/a%20b/configuration",
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["code"], "auth.wrong_environment");
    let t = token(&app, "a b").await;
    let r = send(
        &app,
        Method::GET,
        "/api/environment/a%20b/configuration",
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(
        &app,
        Method::GET,
        "/api/environment/%FF/configuration",
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["code"], "field.bad_value");

    let t = token(&app, ENV).await;
    for path in [
        "holds/%FF?organizationId=usmf",
        "holds/%C0%AF/confirm?organizationId=usmf",
    ] {
        let method = if path.contains("confirm") {
            Method::POST
        } else {
            Method::GET
        };
        let r = send(
            &app,
            method,
            &format!("/api/environment/{ENV}/{path}"),
            Some(&t),
            None,
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert_eq!(r.body["code"], "field.bad_value", "{path}");
    }
    let r = send(
        &app,
        Method::POST,
        &format!("/api/environment/{ENV}/setonhand/%FF/bulk"),
        Some(&t),
        Some("[]".into()),
        &[],
    )
    .await;
    assert_eq!(r.body["code"], "field.bad_value", "{}", r.body);

    let r = send(
        &app,
        Method::POST,
        "/token",
        None,
        Some(" ".repeat(5 * 1024 * 1024)),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["code"], "body.too_large", "{}", r.body);
}

#[tokio::test]
async fn leniency_keys_numbers_paths() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let body = json!({"ID": "len1", "OrganizationID": "usmf", "PRODUCTID": "Lp", "Dimensions": {"SITEID": "1", "locationid": "11", "colorId": "", "SizeId": "M"},
        "Quantities": {"POS": {"InBound": "10"}}});
    let r = send(
        &app,
        Method::POST,
        &format!("/API/Environment/{ENV}/OnHand/"),
        Some(&t),
        Some(body.to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], "ohe~len1");
    let q = json!({"Filters": {"organizationid": ["usmf"], "ProductId": ["Lp"], "SiteID": [1], "LOCATIONID": ["11"], "ColorId": [""]},
        "GroupByValues": ["SizeId"], "ReturnNegative": "true"});
    let r = send(
        &app,
        Method::POST,
        &format!("/api/environment/{ENV}/onhand/indexQuery/"),
        Some(&t),
        Some(q.to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body[0]["quantities"]["iv"]["onhand"], json!(10));
    assert_eq!(
        r.body[0]["dimensions"],
        json!({"SizeId": "M", "siteid": "1", "locationid": "11"})
    );
    // Exact decimals.
    let mut b = body.clone();
    b["ID"] = json!("len2");
    b["Quantities"]["POS"]["InBound"] = json!("0.1");
    post(&app, &t, "onhand", b.clone()).await;
    b["ID"] = json!("len3");
    b["Quantities"]["POS"]["InBound"] = json!(0.2);
    post(&app, &t, "onhand", b).await;
    let r = post(
        &app,
        &t,
        "onhand/indexquery",
        index_query(&["Lp"], &["1"], &["11"], &[]),
    )
    .await;
    assert_eq!(r.body[0]["quantities"]["iv"]["onhand"].to_string(), "10.3");
}

#[tokio::test]
async fn v2_paging() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let items: Vec<Value> = ["10", "20", "30"]
        .iter()
        .map(|l| stock(&format!("p{l}"), "PG", "1", l, json!({}), json!(1)))
        .collect();
    post(&app, &t, "onhand/bulk", Value::Array(items)).await;
    let q = index_query(&["PG"], &["1"], &["10", "20", "30"], &[]).to_string();
    let path = |qs: &str| format!("/api/environment/{ENV}/onhand/indexquery{qs}");
    let r = send(
        &app,
        Method::POST,
        &path("?pageNumber=1&pageSize=2"),
        Some(&t),
        Some(q.clone()),
        &[("Api-Version", "2.0")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["Value"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["Value"][0]["dimensions"]["locationid"], "10");
    assert_eq!(r.body["nextLink"], "onhand/indexquery?pageNumber=2&pageSize=2");
    let r = send(
        &app,
        Method::POST,
        &path("?pageNumber=2&pageSize=2"),
        Some(&t),
        Some(q.clone()),
        &[("Api-Version", "2.0")],
    )
    .await;
    assert_eq!(r.body["Value"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["Value"][0]["dimensions"]["locationid"], "30");
    assert_eq!(r.body["nextLink"], "");
    let r = send(
        &app,
        Method::POST,
        &path("?pageSize=0"),
        Some(&t),
        Some(q),
        &[("Api-Version", "2.0")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn retries_then_503_with_retry_after() {
    let (app, backend) = setup();
    let t = token(&app, ENV).await;
    backend.fail_retryable.store(2, Ordering::SeqCst);
    let r = post(&app, &t, "onhand", stock("rt1", "R", "1", "1", json!({}), json!(1))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    backend.fail_retryable.store(1000, Ordering::SeqCst);
    let r = post(&app, &t, "onhand", stock("rt2", "R", "1", "1", json!({}), json!(1))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["code"], "raft.no_quorum");
    assert!(r.headers.get("retry-after").is_some());
    backend.fail_retryable.store(0, Ordering::SeqCst);
}

#[tokio::test]
async fn admin_request_id_health_metrics() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    post(&app, &t, "onhand", stock("a1", "A", "1", "11", json!({}), json!(1))).await;
    post(&app, &t, "onhand", stock("a2", "A", "2", "22", json!({}), json!(1))).await;
    let r = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/allpartitionids"),
        Some(&t),
        None,
        &[("x-request-id", "req-42")],
    )
    .await;
    assert_eq!(r.body, json!(["usmf~1~11", "usmf~2~22"]));
    assert_eq!(r.headers["x-request-id"], "req-42");
    let r = send(
        &app,
        Method::DELETE,
        &format!("/api/environment/{ENV}/partitions/cleanupalldata"),
        Some(&t),
        Some(json!(["usmf~1~11"]).to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(onhand_total(&app, &t, "A").await, 1.0);
    let r = send(
        &app,
        Method::DELETE,
        &format!("/api/environment/{ENV}/cleanupalldata"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(onhand_total(&app, &t, "A").await, 0.0);
    let r = send(&app, Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get("x-request-id").is_some());
    let r = send(&app, Method::GET, "/metrics", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = send(&app, Method::GET, "/nope", None, None, &[]).await;
    assert_eq!(r.body["code"], "route.not_found");
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let mut config = GatewayConfig::new("c", "s", KEY.to_vec());
    config.metrics = Some(handle);
    let app2 = router(Arc::new(LocalBackend::new(1)), config);
    assert_eq!(
        send(&app2, Method::GET, "/metrics", None, None, &[]).await.status,
        StatusCode::OK
    );
}

#[test]
fn canonical_paths() {
    assert_eq!(
        crate::front::canonical_path_of("/API/Environment/EnvX/OnHand/IndexQuery/"),
        "/api/environment/EnvX/onhand/indexquery"
    );
    assert_eq!(crate::front::canonical_path_of("/Token/"), "/token");
    assert_eq!(crate::front::canonical_path_of("/"), "/");
    for path in [
        "",
        "/",
        "//",
        "/token",
        "/Token",
        "/token/",
        "/api/environment/EnvX/onhand/reserve",
        "/api/environment/EnvX/onhand/Reserve",
        "/API/environment/EnvX/onhand",
        "/api/Environment/EnvX",
        "/api/environment/EnvX",
        "/api/environment/E/holds/HoldA",
        "/api/environment/E/HOLDS/HoldA",
        "/api/environment/E/holds/HoldA/Release",
        "/api/environment/E/holds/HoldA/release",
        "/api/x/EnvX/y",
    ] {
        assert_eq!(
            crate::front::is_canonical_path(path),
            crate::front::canonical_path_of(path) == path,
            "{path}"
        );
    }
    assert_eq!(
        crate::parse::timestamp_ms(&json!("1970-01-02T00:00:01.5Z"), "f").unwrap(),
        86_401_500
    );
    assert!(crate::parse::timestamp_ms(&json!("yesterday"), "f").is_err());
}

#[tokio::test]
async fn metrics_per_route_and_unreserve_without_product() {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    let handle = HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .unwrap()
        })
        .clone();
    let mut config = GatewayConfig::new("client", "s3cret", KEY.to_vec());
    config.metrics = Some(handle);
    let app = router(Arc::new(LocalBackend::new(2)), config);
    let t = token(&app, ENV).await;
    let dims = json!({"siteId": "1", "locationId": "11"});
    post(&app, &t, "onhand", stock("m1", "M", "1", "11", json!({}), json!(3))).await;
    let r = post(
        &app,
        &t,
        "onhand/reserve",
        json!({"id": "m2", "organizationId": "usmf", "productId": "M", "dimensions": dims,
        "modifier": "softreservphysical", "quantity": 2}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rid = r.body["reservationId"].as_str().unwrap();
    let r = post(
        &app,
        &t,
        "onhand/unreserve",
        json!({"id": "m3", "organizationId": "usmf", "reservationId": rid, "dimensions": dims, "OffsetQty": "2"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["totalInvalidOffsetQtyByReservId"], json!(0));
    let r = send(&app, Method::GET, "/metrics", None, None, &[]).await;
    let text = r.body.as_str().unwrap_or_default().to_string();
    assert!(text.contains("ivory_http_requests_total"), "{text}");
    assert!(
        text.contains("route=\"/api/environment/{environment}/onhand/reserve\""),
        "{text}"
    );
    assert!(text.contains("ivory_http_request_duration_seconds"), "{text}");
}
