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
    type Case<'a> = (Method, String, Vec<(&'a str, &'a str)>, String);
    let cases: Vec<Case> = vec![
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

/// A document as IV's `GET /configuration` gives it out, with every field IV has.
pub(super) const IV_CONFIGURATION: &str = include_str!("../../../../tests/data/iv_configuration.json");

#[tokio::test]
async fn the_whole_iv_document_round_trips() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let mut doc: Value = serde_json::from_str(IV_CONFIGURATION).unwrap();
    // The URL names the environment: a document copied from another one takes this one's id.
    let r = post(&app, &t, "configuration/hardupdate", doc.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    doc["environmentId"] = json!(ENV);
    assert_eq!(r.body, doc);
    let get = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/configuration"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(get.body, doc);
    // Read it, change one field, post it again.
    let mut changed = get.body.clone();
    changed["scheduleConfiguration"]["schedulePeriodInDays"] = json!(14);
    changed["storageConfiguration"]["accountName"] = json!("other");
    let r = post(&app, &t, "configuration/hardupdate", changed.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let get = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/configuration"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(get.body, changed);
    // The calculated iv.onhand counts stock of every supply measure, and the @iv formulas build on it.
    for (i, (ds, m)) in [
        ("pos", "posinbound"),
        ("iom", "onhand"),
        ("fno", "physicalinvent"),
        ("erp", "unrestricted"),
    ]
    .iter()
    .enumerate()
    {
        let body = json!({"id": format!("s{i}"), "organizationId": "usmf", "productId": "P1",
                          "dimensions": {"siteId": "1", "locationId": "11"}, "quantities": {*ds: {*m: 5}}});
        let r = post(&app, &t, "onhand", body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let q = json!({"filters": {"organizationId": ["usmf"], "productId": ["P1"], "siteId": ["1"], "locationId": ["11"]},
                   "groupByValues": [], "returnNegative": true});
    let r = post(&app, &t, "onhand/indexquery", q).await;
    let quantities = &r.body[0]["quantities"];
    assert_eq!(quantities["iv"]["onhand"], 20, "{}", r.body);
    assert_eq!(quantities["iv"]["availabletoreserve"], 20, "{}", r.body);
    assert_eq!(quantities["@iv"]["@available_to_reserve"], 20, "{}", r.body);
    assert_eq!(quantities["@iv"]["@available_to_allocate"], 20, "{}", r.body);
}

#[tokio::test]
async fn only_contradictions_are_refused_naming_the_field() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let doc: Value = serde_json::from_str(IV_CONFIGURATION).unwrap();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "cachePartitionIdVersion",
            Box::new(|d| d["cachePartitionIdVersion"] = json!("byProductId")),
        ),
        (
            "allocationConfiguration.targetGroups",
            Box::new(|d| d["allocationConfiguration"]["targetGroups"] = json!(["region"])),
        ),
        (
            "inventorySystemConfigurations.@iv.calculatedMeasures.@available_to_reserve.additionModifiers[0]",
            Box::new(|d| {
                d["inventorySystemConfigurations"]["@iv"]["calculatedMeasures"]["@available_to_reserve"]["additionModifiers"]
                    [0] = json!("iv.nosuch")
            }),
        ),
        // A cycle is named where the walk (in name order) first meets it.
        (
            "inventorySystemConfigurations.@iv.calculatedMeasures.@available_to_reserve.additionModifiers[0]",
            Box::new(|d| {
                d["inventorySystemConfigurations"]["iv"]["calculatedMeasures"]["onhand"]["additionModifiers"] = json!([
                    "fno.physicalinvent",
                    "iom.onhand",
                    "erp.unrestricted",
                    "pos.posinbound",
                    "pos.inbound",
                    "@iv.@available_to_reserve"
                ])
            }),
        ),
    ];
    for (field, edit) in cases {
        let mut bad = doc.clone();
        edit(&mut bad);
        let r = post(&app, &t, "configuration/hardupdate", bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}: {}", r.body);
        assert_eq!(r.body["code"], "config.invalid");
        assert!(
            r.body["message"].as_str().unwrap().starts_with(&format!("{field}:")),
            "{field}: {}",
            r.body
        );
    }
    // Nothing changed: the default is still in force.
    let get = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/configuration"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert!(get.body.get("environmentId").is_none(), "{}", get.body);
}

#[tokio::test]
async fn a_consumed_hold_leaves_on_hand_whatever_measure_the_stock_came_in_on() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let dims = json!({"siteId": "1", "locationId": "11"});
    let r = post(
        &app,
        &t,
        "onhand",
        json!({"id": "in", "organizationId": "usmf", "productId": "H1", "dimensions": dims,
        "quantities": {"pos": {"posinbound": 5}}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = post(
        &app,
        &t,
        "holds",
        json!({"id": "h1", "organizationId": "usmf",
        "items": [{"productId": "H1", "dimensions": dims, "quantity": 2}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = post(&app, &t, "holds/h1/consume", json!({"organizationId": "usmf"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let q = json!({"filters": {"organizationId": ["usmf"], "productId": ["H1"], "siteId": ["1"], "locationId": ["11"]},
                   "groupByValues": [], "returnNegative": true});
    let r = post(&app, &t, "onhand/indexquery", q).await;
    let quantities = &r.body[0]["quantities"];
    assert_eq!(quantities["iv"]["onhand"], 3, "{}", r.body);
    assert_eq!(quantities["iv"]["softreservphysical"], 0, "{}", r.body);
    assert_eq!(quantities["iv"]["availabletoreserve"], 3, "{}", r.body);
    assert_eq!(quantities["@iv"]["@available_to_reserve"], 3, "{}", r.body);
    assert_eq!(quantities["pos"]["outbound"], 2, "{}", r.body);
}

#[tokio::test]
async fn by_location_stock_may_come_without_site_and_location_but_is_not_reserved_there() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let r = post(
        &app,
        &t,
        "onhand",
        json!({"id": "nl1", "organizationId": "usmf", "productId": "NL",
        "dimensions": {"ColorId": "Red"}, "quantities": {"pos": {"inbound": 4}}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = post(
        &app,
        &t,
        "onhand/reserve",
        json!({"id": "nl2", "organizationId": "usmf", "productId": "NL",
        "dimensions": {"ColorId": "Red"}, "quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": 1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(
        (r.body["statusCode"].clone(), r.body["processingStatus"].clone()),
        (json!(500), json!("failure"))
    );
    assert!(r.body["message"].as_str().unwrap().contains("siteId"), "{}", r.body);
    let r = post(
        &app,
        &t,
        "allocation/allocate",
        json!({"id": "nl3", "organizationId": "usmf", "productId": "NL",
        "dimensions": {}, "groups": {"channel": "Online"}, "quantity": 1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(
        (r.body["statusCode"].clone(), r.body["processingStatus"].clone()),
        (json!(500), json!("failure"))
    );
}

#[tokio::test]
async fn clean_up_deletes_everything_of_the_partitions_and_forgets_their_ids() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let dims = json!({"siteId": "1", "locationId": "11", "ColorId": "Red", "SizeId": "M"});
    let today = ivory_core::date::format_day(crate::queries::today());
    let writes = [
        (
            "onhand",
            json!({"id": "w1", "organizationId": "usmf", "productId": "C1", "dimensions": dims, "quantities": {"pos": {"posinbound": 10}}}),
        ),
        (
            "onhand/reserve",
            json!({"id": "w2", "organizationId": "usmf", "productId": "C1", "dimensions": dims,
            "quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": 2}),
        ),
        (
            "allocation/allocate",
            json!({"id": "w3", "organizationId": "usmf", "productId": "C1", "dimensions": dims,
            "groups": {"channel": "Online"}, "quantity": 3}),
        ),
        (
            "onhand/changeschedule",
            json!({"id": "w4", "organizationId": "usmf", "productId": "C1", "dimensions": dims,
            "quantitiesByDate": {today: {"pos": {"inbound": 5}}}}),
        ),
        (
            "holds",
            json!({"id": "w5", "organizationId": "usmf", "items": [{"productId": "C1", "dimensions": dims, "quantity": 1}]}),
        ),
    ];
    let mut first = Vec::new();
    for (path, body) in &writes {
        let r = post(&app, &t, path, body.clone()).await;
        assert!(r.status.is_success(), "{path}: {}", r.body);
        first.push(r.body);
    }
    let ids = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/allpartitionids"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(ids.body, json!(["usmf~1~11"]));
    let r = send(
        &app,
        Method::DELETE,
        &format!("/api/environment/{ENV}/partitions/cleanupalldata"),
        Some(&t),
        Some(ids.body.to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ids = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/allpartitionids"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(ids.body, json!([]));
    let hold = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/holds/w5?organizationId=usmf"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(hold.status, StatusCode::NOT_FOUND, "{}", hold.body);
    // The same ids are new again: every write applies as the first time did.
    for ((path, body), before) in writes.iter().zip(&first) {
        let r = post(&app, &t, path, body.clone()).await;
        assert!(r.status.is_success(), "{path}: {}", r.body);
        if *path != "holds" {
            assert_eq!(&r.body, before, "{path}");
        }
    }
    let q = json!({"filters": {"organizationId": ["usmf"], "productId": ["C1"], "siteId": ["1"], "locationId": ["11"]},
                   "groupByValues": [], "returnNegative": true});
    let r = post(&app, &t, "onhand/indexquery", q).await;
    let quantities = &r.body[0]["quantities"];
    assert_eq!(quantities["iv"]["onhand"], 10, "{}", r.body);
    assert_eq!(quantities["iv"]["softreservphysical"], 3, "{}", r.body);
    assert_eq!(quantities["@iv"]["@allocated"], 3, "{}", r.body);
}

#[tokio::test]
async fn partitions_by_product() {
    let (app, backend) = setup();
    let t = token(&app, ENV).await;
    let config_path = format!("/api/environment/{ENV}/configuration/hardupdate");
    let mut doc: Value = serde_json::from_str(IV_CONFIGURATION).unwrap();
    doc["partitionConfiguration"]["useDimensions"] = json!(false);
    doc["cachePartitionIdVersion"] = json!("byProductId");
    // Not while the environment holds data by location.
    let r = post(&app, &t, "onhand", stock("loc", "L1", "1", "11", json!({}), json!(1))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(&app, Method::POST, &config_path, Some(&t), Some(doc.to_string()), &[]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["code"], "config.partition_mode_locked");
    assert!(
        r.body["message"].as_str().unwrap().contains("cleanupalldata"),
        "{}",
        r.body
    );
    let r = send(
        &app,
        Method::DELETE,
        &format!("/api/environment/{ENV}/cleanupalldata"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(&app, Method::POST, &config_path, Some(&t), Some(doc.to_string()), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Site and location are optional on every write.
    let change = |id: &str, product: &str, dims: Value, q: i64| json!({"id": id, "organizationId": "usmf", "productId": product, "dimensions": dims, "quantities": {"pos": {"posinbound": q}}});
    for (id, product, dims, q) in [
        (
            "p1",
            "Cap",
            json!({"siteId": "1", "locationId": "11", "ColorId": "Red"}),
            4,
        ),
        ("p2", "Cap", json!({"siteId": "2", "locationId": "21"}), 5),
        ("p3", "Cap", json!({}), 1),
        ("p4", "Hat", json!({"siteId": "1", "locationId": "11"}), 7),
    ] {
        let r = post(&app, &t, "onhand", change(id, product, dims, q)).await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {}", r.body);
    }
    // The product is the partition, hashed onto the shards.
    let ids = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/allpartitionids"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(ids.body, json!(["usmf~Cap", "usmf~Hat"]));
    let shards: std::collections::BTreeSet<u32> = (0..40)
        .map(|i| {
            crate::Backend::shard_of(
                &*backend,
                &ivory_core::PartitionKey::by_product(ENV, "usmf", format!("P{i}")),
            )
        })
        .collect();
    assert!(shards.len() > 1, "{shards:?}");

    // A reserve without dimensions checks availability summed over the product (10).
    let reserve = |id: &str, dims: Value, q: i64| {
        json!({"id": id, "organizationId": "usmf", "productId": "Cap", "dimensions": dims,
               "quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": q})
    };
    let r = post(&app, &t, "onhand/reserve", reserve("r1", json!({}), 11)).await;
    assert_eq!(
        (r.status, r.body["statusCode"].clone()),
        (StatusCode::CONFLICT, json!(500)),
        "{}",
        r.body
    );
    let r = post(&app, &t, "onhand/reserve", reserve("r2", json!({}), 6)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // At site 2 only 5 are there.
    let r = post(
        &app,
        &t,
        "onhand/reserve",
        reserve("r3", json!({"siteId": "2", "locationId": "21"}), 5),
    )
    .await;
    assert_eq!(
        (r.status, r.body["statusCode"].clone()),
        (StatusCode::CONFLICT, json!(500)),
        "{}",
        r.body
    );
    let r = post(
        &app,
        &t,
        "onhand/reserve",
        reserve("r4", json!({"siteId": "2", "locationId": "21"}), 4),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = post(
        &app,
        &t,
        "allocation/allocate",
        json!({"id": "a1", "organizationId": "usmf", "productId": "Hat",
        "dimensions": {}, "groups": {"channel": "Online"}, "quantity": 3}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let r = post(
        &app,
        &t,
        "allocation/query",
        json!({"organizationId": "usmf", "productId": "Hat", "dimensions": {}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body[0]["quantities"]["@iv"]["@allocated"], 3, "{}", r.body);
    assert_eq!(r.body[0]["dimensions"], json!({}), "{}", r.body);
    // Index query: no site/location = the product over every location; with them, per location.
    let q = |sites: Value, locs: Value| {
        json!({"filters": {"organizationId": ["usmf"], "productId": ["Cap"], "siteId": sites, "locationId": locs},
               "groupByValues": [], "returnNegative": true})
    };
    let r = post(&app, &t, "onhand/indexquery", q(json!([]), json!([]))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.body);
    assert_eq!(r.body[0]["quantities"]["iv"]["onhand"], 10, "{}", r.body);
    assert_eq!(r.body[0]["quantities"]["iv"]["softreservphysical"], 10, "{}", r.body);
    assert!(r.body[0]["dimensions"].get("siteid").is_none(), "{}", r.body);
    let r = post(&app, &t, "onhand/indexquery", q(json!(["2"]), json!([]))).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.body);
    assert_eq!(r.body[0]["dimensions"]["siteid"], "2", "{}", r.body);
    assert_eq!(r.body[0]["quantities"]["iv"]["onhand"], 5, "{}", r.body);
    // Index and exact queries must name the product.
    let mut no_product = q(json!(["1"]), json!(["11"]));
    no_product["filters"]["productId"] = json!([]);
    let r = post(&app, &t, "onhand/indexquery", no_product).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().starts_with("filters.productId"),
        "{}",
        r.body
    );
    let exact = |products: Value| {
        json!({"filters": {"organizationId": ["usmf"], "productId": products, "dimensions": ["ColorId"], "values": [["Red"]]},
               "groupByValues": [], "returnNegative": true})
    };
    let r = post(&app, &t, "onhand/exactquery", exact(json!([]))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().starts_with("filters.productId"),
        "{}",
        r.body
    );
    let r = post(&app, &t, "onhand/exactquery", exact(json!(["Cap"]))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body[0]["quantities"]["iv"]["onhand"], 4, "{}", r.body);
    // Clean-up by product ids.
    let r = send(
        &app,
        Method::DELETE,
        &format!("/api/environment/{ENV}/cleanupalldata"),
        Some(&t),
        Some(json!(["usmf~Cap"]).to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ids = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/allpartitionids"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(ids.body, json!(["usmf~Hat"]));
}
