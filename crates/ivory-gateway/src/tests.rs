//! Gateway tests through the REST layer against `LocalBackend` (4 shards).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::local::LocalBackend;
use crate::{GatewayConfig, router};

const ENV: &str = "env-A1";
const KEY: &[u8] = b"test signing key";

fn setup() -> (Router, Arc<LocalBackend>) {
    let backend = Arc::new(LocalBackend::new(4));
    let mut config = GatewayConfig::new("client", "s3cret", KEY.to_vec());
    config.body_limit_bytes = 4 * 1024 * 1024;
    config.backend_backoff_max_ms = 5;
    (router(backend.clone(), config), backend)
}

struct Reply {
    status: StatusCode,
    body: Value,
    headers: HeaderMap,
}

async fn send(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply { status, body, headers }
}

async fn token(app: &Router, env: &str) -> String {
    let r = send(
        app,
        Method::POST,
        "/token",
        None,
        Some(json!({"client_id": "client", "client_secret": "s3cret", "context": env}).to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["expires_in"], 3600);
    r.body["access_token"].as_str().unwrap().to_string()
}

async fn post(app: &Router, t: &str, path: &str, body: Value) -> Reply {
    send(
        app,
        Method::POST,
        &format!("/api/environment/{ENV}/{path}"),
        Some(t),
        Some(body.to_string()),
        &[],
    )
    .await
}

fn stock(id: &str, product: &str, site: &str, loc: &str, extra: Value, qty: Value) -> Value {
    let mut dims = json!({"siteId": site, "locationId": loc});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            dims[k] = v;
        }
    }
    json!({"id": id, "organizationId": "usmf", "productId": product, "dimensions": dims, "quantities": {"pos": {"inbound": qty}}})
}

fn index_query(products: &[&str], sites: &[&str], locs: &[&str], group: &[&str]) -> Value {
    json!({"filters": {"organizationId": ["usmf"], "productId": products, "siteId": sites, "locationId": locs},
           "groupByValues": group, "returnNegative": true})
}

/// Sum of one measure over the records of a query answer.
fn total(records: &Value, ds: &str, measure: &str) -> f64 {
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["quantities"][ds][measure].as_f64().unwrap_or(0.0))
        .sum()
}

async fn onhand_total(app: &Router, t: &str, product: &str) -> f64 {
    let r = post(app, t, "onhand/indexquery", index_query(&[product], &[], &[], &[])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    total(&r.body, "iv", "onhand")
}

#[tokio::test]
async fn t_shirt_events_through_rest() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    // Map the POS machine id onto a base dimension, as a real configuration would.
    let cfg = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/configuration"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(cfg.status, StatusCode::OK);
    let mut doc = cfg.body.clone();
    doc["inventorySystemConfigurations"]["pos"]["dimensionMappings"] = json!({"posmachineid": "inventdimension1"});
    let r = post(&app, &t, "configuration/hardupdate", doc).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let test201 = json!({"id": "Test201", "organizationId": "usmf", "productId": "T-shirt", "dimensionDataSource": "pos",
        "dimensions": {"siteId": "1", "locationId": "11", "posMachineId": "0001", "colorId": "red"},
        "quantities": {"pos": {"inbound": 1}}});
    let r = post(&app, &t, "onhand", test201.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], "ohe~Test201");
    assert_eq!(r.body["processingStatus"], "success");
    assert_eq!(r.body["statusCode"], 200);
    // Resubmission must not double count.
    let r = post(&app, &t, "onhand", test201).await;
    assert_eq!(r.status, StatusCode::OK);
    let test202 = json!({"id": "Test202", "organizationId": "usmf", "productId": "T-shirt",
        "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"}, "quantities": {"pos": {"inbound": 1}}});
    assert_eq!(post(&app, &t, "onhand", test202).await.status, StatusCode::OK);
    let bulk = json!([
        {"id": "Test203", "organizationId": "usmf", "productId": "T-shirt", "dimensionDataSource": "pos",
         "dimensions": {"SiteId": "Site1", "LocationId": "11", "posMachineId": "0001", "colorId": "red"},
         "quantities": {"pos": {"inbound": 1}}},
        {"id": "Test204", "organizationId": "usmf", "productId": "T-shirt",
         "dimensions": {"siteId": "1", "locationId": "11", "colorId": "black"}, "quantities": {"pos": {"outbound": 3}}}
    ]);
    let r = post(&app, &t, "onhand/bulk", bulk).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["success"].as_array().unwrap().len(), 2, "{}", r.body);
    assert_eq!(r.body["success"][0]["id"], "ohe~Test203");
    for b in ["failure", "conflict", "notFound", "partialSuccess", "unknown"] {
        assert_eq!(r.body[b], json!([]));
    }
    let q = json!({"dimensionDataSource": "pos", "filters": {"organizationId": ["usmf"], "productId": ["T-shirt"],
        "siteId": ["1"], "locationId": ["11", "12", "13"], "colorId": ["red"]},
        "groupByValues": ["ColorId", "sizeId"], "returnNegative": true});
    let r = post(&app, &t, "onhand/indexquery", q).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let records = r.body.as_array().unwrap();
    assert_eq!(records.len(), 1, "{}", r.body);
    assert_eq!(records[0]["productId"], "T-shirt");
    assert_eq!(
        records[0]["dimensions"],
        json!({"ColorId": "red", "siteid": "1", "locationid": "11"})
    );
    assert_eq!(records[0]["quantities"]["pos"]["inbound"], json!(2));
    // The black T-shirt: outbound 3 lowers availability to -3.
    let r = post(
        &app,
        &t,
        "onhand/indexquery",
        index_query(&["T-shirt"], &["1"], &["11"], &["colorId"]),
    )
    .await;
    let black = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dimensions"]["colorId"] == "black")
        .unwrap()
        .clone();
    assert_eq!(black["quantities"]["pos"]["outbound"], json!(3));
    assert_eq!(black["quantities"]["iv"]["availabletoreserve"], json!(-3));
    // Without returnNegative the negative calculated measure is left out.
    let mut q = index_query(&["T-shirt"], &["1"], &["11"], &["colorId"]);
    q["returnNegative"] = json!(false);
    let r = post(&app, &t, "onhand/indexquery", q).await;
    let black = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dimensions"]["colorId"] == "black")
        .unwrap()
        .clone();
    assert!(black["quantities"]["iv"].get("availabletoreserve").is_none(), "{black}");
    // GET form of the query.
    let r = send(&app, Method::GET,
        &format!("/api/environment/{ENV}/onhand?organizationId=usmf&productId=T-shirt&siteId=1&locationId=11&colorId=red&groupBy=colorId,sizeId&returnNegative=true"),
        Some(&t), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body[0]["quantities"]["pos"]["inbound"], json!(2));
    assert_eq!(r.body[0]["dimensions"]["colorId"], "red");
}

#[tokio::test]
async fn cabinet_reservation_and_unreserve_10_12() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let dims = json!({"ColorId": "red", "SizeId": "small"});
    assert_eq!(
        post(
            &app,
            &t,
            "onhand",
            stock("s1", "D0002", "1", "11", dims.clone(), json!(20))
        )
        .await
        .status,
        StatusCode::OK
    );
    let reserve = |id: &str, qty: Value| {
        json!({"id": id, "organizationId": "usmf", "productId": "D0002",
        "dimensions": {"SiteId": "1", "LocationId": "11", "ColorId": "red", "SizeId": "small"},
        "quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": qty, "ifCheckAvailForReserv": true})
    };
    let r = post(&app, &t, "onhand/reserve", reserve("Testrequest-0005", json!(1))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], "ohre~Testrequest-0005");
    assert_eq!(r.body["processingStatus"], "success");
    assert_eq!(r.body["message"], "");
    let rid = r.body["reservationId"].as_str().unwrap().to_string();
    // Not enough stock: HTTP 409, body statusCode 500 as IV has it.
    let r = post(&app, &t, "onhand/reserve", reserve("too-much", json!(100))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["statusCode"], 500);
    assert_eq!(r.body["processingStatus"], "failure");
    assert_eq!(r.body["code"], "stock.insufficient");
    // Reserve up to 10 in total, then offset 12: partialSuccess with 2 invalid.
    let r = post(&app, &t, "onhand/reserve", reserve("r9", json!("9"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["reservationId"], rid.as_str());
    let unreserve = |id: &str, rid: &str, qty: i64| {
        json!({"id": id, "organizationId": "usmf", "productId": "D0002",
        "reservationId": rid, "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red", "sizeId": "small"}, "OffsetQty": qty})
    };
    let r = post(&app, &t, "onhand/unreserve", unreserve("u1", &rid, 12)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], "ohoe~u1");
    assert_eq!(r.body["processingStatus"], "partialSuccess");
    assert_eq!(r.body["totalInvalidOffsetQtyByReservId"], json!(2));
    assert_eq!(r.body["reservationId"], rid.as_str());
    let r = post(&app, &t, "onhand/unreserve", unreserve("u2", "no-such-reservation", 1)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(r.body["statusCode"], 404);
    // Same id, different body: conflict.
    let r = post(&app, &t, "onhand/unreserve", unreserve("u1", &rid, 3)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    // Bulk buckets.
    let r = post(
        &app,
        &t,
        "onhand/unreserve/bulk",
        json!([unreserve("b1", "nope", 1), unreserve("u1", &rid, 3), {"id": "bad"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["notFound"][0]["id"], "ohoe~b1");
    assert_eq!(r.body["conflict"][0]["id"], "ohoe~u1");
    assert_eq!(r.body["failure"][0]["id"], "ohoe~bad");
    assert_eq!(r.body["failure"][0]["statusCode"], 400);
    let r = post(
        &app,
        &t,
        "onhand/reserve/bulk",
        json!([reserve("rb1", json!(1)), reserve("rb2", json!(1000))]),
    )
    .await;
    assert_eq!(r.body["success"][0]["id"], "ohre~rb1", "{}", r.body);
    assert_eq!(r.body["failure"][0]["statusCode"], 500);
}

#[tokio::test]
async fn exact_versus_index_query() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let items: Vec<Value> = [("1", "A"), ("1", "B"), ("2", "A"), ("2", "B")]
        .iter()
        .enumerate()
        .map(|(i, (s, l))| stock(&format!("e{i}"), "P1", s, l, json!({"colorId": "red"}), json!(i + 1)))
        .collect();
    assert_eq!(
        post(&app, &t, "onhand/bulk", Value::Array(items)).await.body["success"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let r = post(
        &app,
        &t,
        "onhand/indexquery",
        index_query(&["P1"], &["1", "2"], &["A", "B"], &[]),
    )
    .await;
    assert_eq!(r.body.as_array().unwrap().len(), 4, "{}", r.body);
    // Sorted by location, then site.
    let order: Vec<(String, String)> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dimensions"]["locationid"].as_str().unwrap().into(),
                r["dimensions"]["siteid"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ("A".into(), "1".into()),
            ("A".into(), "2".into()),
            ("B".into(), "1".into()),
            ("B".into(), "2".into())
        ]
    );
    let exact = json!({"filters": {"organizationId": ["usmf"], "productId": ["P1"], "dimensions": ["siteId", "locationId", "ColorId"],
        "values": [["1", "A", "red"], ["2", "B", "red"]]}, "groupByValues": [], "returnNegative": true});
    let r = post(&app, &t, "onhand/exactquery", exact).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let recs = r.body.as_array().unwrap();
    assert_eq!(recs.len(), 2, "{}", r.body);
    assert_eq!(
        recs[0]["dimensions"],
        json!({"ColorId": "red", "siteid": "1", "locationid": "A"})
    );
    assert_eq!(total(&r.body, "iv", "onhand"), 1.0 + 4.0);
    // v2: keys may carry organizationId.
    let exact2 = json!({"filters": {"productId": ["P1"], "keys": ["organizationId", "siteId", "locationId"],
        "values": [["usmf", "1", "B"], ["other", "1", "B"]]}, "returnNegative": true});
    let r = send(
        &app,
        Method::POST,
        &format!("/api/environment/{ENV}/onhand/exactquery"),
        Some(&t),
        Some(exact2.to_string()),
        &[("Api-Version", "2.0")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["Value"].as_array().unwrap().len(), 1, "{}", r.body);
    assert_eq!(r.body["Value"][0]["quantities"]["iv"]["onhand"], json!(2));
    assert_eq!(r.body["nextLink"], "");
    // All locations of a product: no site and location, fan out to every shard.
    assert_eq!(onhand_total(&app, &t, "P1").await, 10.0);
    // Exact query without tuples fails.
    let r = post(&app, &t, "onhand/exactquery", json!({"filters": {"organizationId": ["usmf"], "productId": ["P1"], "dimensions": ["siteId", "locationId"], "values": []}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["code"], "field.empty");
}

#[tokio::test]
async fn limits_bulk_locations_products() {
    let (app, backend) = setup();
    let t = token(&app, ENV).await;
    let items = |n: usize, tag: &str| -> Value {
        Value::Array(
            (0..n)
                .map(|i| {
                    stock(
                        &format!("{tag}{i}"),
                        &format!("L{}", i % 7),
                        &format!("{}", i % 5),
                        &format!("{}", i % 3),
                        json!({}),
                        json!(1),
                    )
                })
                .collect(),
        )
    };
    let before = backend.proposals.load(Ordering::SeqCst);
    let r = post(&app, &t, "onhand/bulk", items(513, "x")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["code"], "limit.bulk_items");
    assert_eq!(backend.proposals.load(Ordering::SeqCst), before, "nothing proposed");
    let products: Vec<String> = (0..7).map(|i| format!("L{i}")).collect();
    let refs: Vec<&str> = products.iter().map(String::as_str).collect();
    let sum = |r: &Value| total(r, "iv", "onhand");
    let r = post(&app, &t, "onhand/indexquery", index_query(&refs, &[], &[], &[])).await;
    assert_eq!(sum(&r.body), 0.0);
    let r = post(&app, &t, "onhand/bulk", items(512, "y")).await;
    assert_eq!(r.body["success"].as_array().unwrap().len(), 512);
    // One proposal per shard touched, at most 4.
    assert!(backend.proposals.load(Ordering::SeqCst) - before <= 4);
    let r = post(&app, &t, "onhand/indexquery", index_query(&refs, &[], &[], &[])).await;
    assert_eq!(sum(&r.body), 512.0);

    let sites: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let locs10: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let locs11: Vec<String> = (0..11).map(|i| i.to_string()).collect();
    let s: Vec<&str> = sites.iter().map(String::as_str).collect();
    let l10: Vec<&str> = locs10.iter().map(String::as_str).collect();
    let l11: Vec<&str> = locs11.iter().map(String::as_str).collect();
    let r = post(&app, &t, "onhand/indexquery", index_query(&[], &s, &l10, &[])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(sum(&r.body), 512.0);
    let r = post(&app, &t, "onhand/indexquery", index_query(&[], &s, &l11, &[])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["code"], "limit.locations");
    assert!(r.body["message"].as_str().unwrap().contains("siteId"));

    let many: Vec<String> = (0..5001).map(|i| format!("L{i}")).collect();
    let m5000: Vec<&str> = many[..5000].iter().map(String::as_str).collect();
    let m5001: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = post(&app, &t, "onhand/indexquery", index_query(&m5000, &["0"], &["0"], &[])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = post(&app, &t, "onhand/indexquery", index_query(&m5001, &["0"], &["0"], &[])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["code"], "limit.products");
    // v1 takes exactly one organization.
    let mut q = index_query(&["L1"], &["0"], &["0"], &[]);
    q["filters"]["organizationId"] = json!(["usmf", "other"]);
    let r = post(&app, &t, "onhand/indexquery", q).await;
    assert_eq!(r.body["code"], "limit.organizations");
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let good = stock("ok", "B1", "1", "11", json!({}), json!(5));
    assert_eq!(post(&app, &t, "onhand", good.clone()).await.status, StatusCode::OK);
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("id");
    cases.push((v, "field.missing"));
    let mut v = good.clone();
    v["id"] = json!("n1");
    v["quantities"]["iv"]["onhand"] = json!("abc");
    cases.push((v, "field.bad_number"));
    let mut v = good.clone();
    v["id"] = json!("n2");
    v["quantities"]["iv"]["onhand"] = json!("NaN");
    cases.push((v, "field.bad_number"));
    let mut v = good.clone();
    v["id"] = json!("n3");
    v["quantities"]["iv"]["onhand"] = json!("1e40");
    cases.push((v, "field.bad_number"));
    // (An on-hand change without siteId is accepted, as IV has it: tests/iv_compat.rs.)
    let mut v = good.clone();
    v["id"] = json!("n4");
    v["dimensions"]["siteId"] = json!("x".repeat(300));
    cases.push((v, "field.too_long"));
    let mut v = good.clone();
    v["id"] = json!("n5");
    v["quantities"] = json!({"iv": {"nosuchmeasure": 1}});
    cases.push((v, "command.invalid"));
    let mut v = good.clone();
    v["id"] = json!("n6");
    v["dimensions"]["madeUpDim"] = json!("x");
    cases.push((v, "field.bad_dimensions"));
    cases.push((json!([1, 2]), "body.not_object"));
    cases.push((
        json!({"id": "n7", "organizationId": "usmf", "productId": "B1", "dimensions": "x", "quantities": {}}),
        "field.bad_type",
    ));
    for (body, code) in cases {
        let r = post(&app, &t, "onhand", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body} -> {}", r.body);
        assert_eq!(r.body["code"], code, "{body} -> {}", r.body);
        assert!(!r.body["message"].as_str().unwrap().is_empty());
    }
    let r = send(
        &app,
        Method::POST,
        &format!("/api/environment/{ENV}/onhand"),
        Some(&t),
        Some("{not json".into()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["code"], "body.malformed");
    let r = post(&app, &t, "onhand/bulk", json!({"not": "an array"})).await;
    assert_eq!(r.body["code"], "body.not_array");
    let huge = format!("[{}]", vec![good.to_string(); 40_000].join(","));
    let r = send(
        &app,
        Method::POST,
        &format!("/api/environment/{ENV}/onhand/bulk"),
        Some(&t),
        Some(huge),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["code"], "body.too_large");
    let r = post(
        &app,
        &t,
        "configuration/hardupdate",
        json!({"inventorySystemConfigurations": {"iv": {"physicalMeasures": "x"}}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = send(
        &app,
        Method::POST,
        &format!("/api/environment/{ENV}/onhand/indexquery"),
        Some(&t),
        Some(index_query(&["B1"], &[], &[], &[]).to_string()),
        &[("Api-Version", "3.0")],
    )
    .await;
    assert_eq!(r.body["code"], "header.api_version");
    assert_eq!(onhand_total(&app, &t, "B1").await, 5.0);
    // A bulk with one malformed item applies the others.
    let mut bad = good.clone();
    bad["id"] = json!("bulk-bad");
    bad["quantities"]["iv"]["onhand"] = json!([1]);
    let mut ok2 = good.clone();
    ok2["id"] = json!("bulk-ok");
    let r = post(&app, &t, "onhand/bulk", json!([bad, ok2])).await;
    assert_eq!(r.body["failure"][0]["id"], "ohe~bulk-bad", "{}", r.body);
    assert!(
        r.body["failure"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("[0].quantities.iv.onhand"),
        "{}",
        r.body
    );
    assert_eq!(r.body["success"][0]["id"], "ohe~bulk-ok");
    assert_eq!(onhand_total(&app, &t, "B1").await, 10.0);
}

#[tokio::test]
async fn set_on_hand_and_partial_bulk_outage() {
    let (app, backend) = setup();
    let t = token(&app, ENV).await;
    let tshirt = |id: &str, qty: i64, at: Option<&str>| {
        let mut v = json!({"id": id, "organizationId": "usmf", "productId": "T-shirt",
            "dimensions": {"siteId": "1", "locationId": "11", "colorId": "red"}, "quantities": {"pos": {"inbound": qty}}});
        if let Some(at) = at {
            v["modifiedDateTimeUTC"] = json!(at);
        }
        v
    };
    post(&app, &t, "onhand", tshirt("c1", 7, None)).await;
    let r = post(
        &app,
        &t,
        "setonhand/pos/bulk",
        json!([tshirt("s1", 100, Some("2024-05-01T10:00:00Z"))]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["success"][0]["id"], "ohse~s1");
    // An older set is ignored.
    post(
        &app,
        &t,
        "setonhand/POS/bulk/",
        json!([tshirt("s2", 1, Some("2024-04-01T10:00:00Z"))]),
    )
    .await;
    let r = post(
        &app,
        &t,
        "onhand/indexquery",
        index_query(&["T-shirt"], &["1"], &["11"], &[]),
    )
    .await;
    assert_eq!(total(&r.body, "pos", "inbound"), 100.0, "{}", r.body);
    let r = post(
        &app,
        &t,
        "setonhand/pos/bulk",
        json!([tshirt("s3", 1, Some("not a time"))]),
    )
    .await;
    assert_eq!(r.body["failure"][0]["code"], "field.bad_timestamp", "{}", r.body);

    // One shard down: its items land in `unknown`, the others apply.
    let items: Vec<Value> = (0..40)
        .map(|i| stock(&format!("o{i}"), "OUT", "1", &i.to_string(), json!({}), json!(1)))
        .collect();
    let down = crate::Backend::shard_of(&*backend, &ivory_core::PartitionKey::new(ENV, "usmf", "1", "0"));
    backend.failing_shard.store(down, Ordering::SeqCst);
    let r = post(&app, &t, "onhand/bulk", Value::Array(items.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let unknown = r.body["unknown"].as_array().unwrap().len();
    let success = r.body["success"].as_array().unwrap().len();
    assert!(unknown > 0 && success > 0 && unknown + success == 40, "{}", r.body);
    assert_eq!(r.body["unknown"][0]["statusCode"], 503);
    assert_eq!(r.body["unknown"][0]["processingStatus"], "unknown");
    // Retrying the whole bulk is safe: applied items replay, the rest apply now.
    backend.failing_shard.store(u32::MAX, Ordering::SeqCst);
    let r = post(&app, &t, "onhand/bulk", Value::Array(items)).await;
    assert_eq!(r.body["success"].as_array().unwrap().len(), 40);
    assert_eq!(onhand_total(&app, &t, "OUT").await, 40.0);
}

#[tokio::test]
async fn real_listener_smoke() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (app, _) = setup();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /HealthZ/ HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.to_ascii_lowercase().contains("x-request-id: abc"), "{text}");
    server.abort();
}

mod atp_allocation;
mod grpc;
mod grpc_holds;
mod http_surface;
mod iv_compat;
mod limits;
mod roles;
