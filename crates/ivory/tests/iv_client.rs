//! A client written for IV's service, run unchanged against real `ivory` processes (issue 14):
//! health ping, IV's whole configuration document, writes by location, reservation hierarchy
//! versions, allocation, clean-up, and ATP on the documented default configuration.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ivory_tests::{Client, Cluster};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// IV's `GET /configuration` document with every field IV has (also used by the gateway tests).
const IV_CONFIGURATION: &str = include_str!("../../../tests/data/iv_configuration.json");

fn day(offset: i64) -> String {
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    ivory_core::date::format_day(now_s / 86_400 + offset)
}

fn at(site: &str, location: &str, extra: Value) -> Value {
    let mut dims = json!({"siteId": site, "locationId": location});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            dims[k] = v;
        }
    }
    dims
}

fn reserve(id: &str, product: &str, dims: Value, quantity: i64) -> Value {
    json!({"id": id, "organizationId": "usmf", "productId": product, "dimensions": dims,
           "quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": quantity})
}

async fn send(c: &Client, path: &str, body: &Value) -> (u16, Value) {
    let a = c.post(path, body).await.expect("request sent");
    (a.status, a.body)
}

async fn get(c: &Client, path: &str) -> Value {
    let a = c.get(path).await.expect("request sent");
    assert_eq!(a.status, 200, "GET {path}: {}", a.body);
    a.body
}

async fn delete(c: &Client, path: &str, body: &Value) -> (u16, Value) {
    let r = c
        .http
        .delete(c.api(path))
        .bearer_auth(&c.token)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The one record of a product at site 1, location 11.
async fn quantities(c: &Client, product: &str) -> Value {
    let records = c
        .post_ok(
            "onhand/indexquery",
            &json!({"filters": {"organizationId": ["usmf"], "productId": [product], "siteId": ["1"], "locationId": ["11"]},
                    "groupByValues": [], "returnNegative": true}),
        )
        .await;
    assert_eq!(records.as_array().map(Vec::len), Some(1), "{records}");
    records[0]["quantities"].clone()
}

#[tokio::test]
async fn an_iv_client_runs_unchanged() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = Cluster::nodes(Path::new(BIN), 3, 4);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let c = cluster.client(0, "ivc").await;
        let other = cluster.client(2, "ivc").await;

        // Transport: the ping needs no token; `bearer` in lower case and a GET with a JSON content
        // type and no body are fine.
        let ping = c.http.get(format!("{}/health/ping", c.base)).send().await.expect("ping");
        assert_eq!(ping.status().as_u16(), 200);
        let ping: Value = ping.json().await.expect("ping JSON");
        assert_eq!(ping["status"], "ok");
        let ids = c
            .http
            .get(c.api("allpartitionids"))
            .header("authorization", format!("bearer {}", c.token))
            .header("content-type", "application/json")
            .send()
            .await
            .expect("GET");
        assert_eq!(ids.status().as_u16(), 200);
        assert_eq!(ids.json::<Value>().await.expect("JSON"), json!([]), "never written to");

        // IV's whole document: stored as posted (the URL's environment id wins), read back equal
        // through another node, changed in one field and posted again.
        let mut doc: Value = serde_json::from_str(IV_CONFIGURATION).expect("document");
        c.post_ok("configuration/hardupdate", &doc).await;
        doc["environmentId"] = json!("ivc");
        assert_eq!(get(&other, "configuration").await, doc);
        doc["partitionLockConfiguration"]["retryCount"] = json!(5);
        assert_eq!(c.post_ok("configuration/hardupdate", &doc).await, doc);
        assert_eq!(get(&other, "configuration").await, doc);

        // By location: stock with and without site and location; reserve and allocate need them.
        let stock = |id: &str, dims: Value, m: (&str, &str), q: i64| {
            json!({"id": id, "organizationId": "usmf", "productId": "Shoe", "dimensions": dims,
                   "quantities": {m.0: {m.1: q}}})
        };
        let red = at("1", "11", json!({"ColorId": "Red", "StyleId": "S1"}));
        c.post_ok("onhand", &stock("in-1", red.clone(), ("pos", "posinbound"), 6)).await;
        c.post_ok("onhand", &stock("in-2", red.clone(), ("iom", "onhand"), 4)).await;
        c.post_ok("onhand", &stock("in-3", json!({"ColorId": "Red"}), ("pos", "inbound"), 3)).await;
        for (path, body) in [
            ("onhand/reserve", reserve("no-site", "Shoe", json!({"ColorId": "Red"}), 1)),
            ("allocation/allocate", json!({"id": "no-site-a", "organizationId": "usmf", "productId": "Shoe",
                "dimensions": {"ColorId": "Red"}, "groups": {"channel": "Online"}, "quantity": 1})),
        ] {
            let (status, body) = send(&c, path, &body).await;
            assert_eq!(status, 409, "{path}: {body}");
            assert_eq!(body["statusCode"], 500, "{path}: {body}");
            assert_eq!(body["processingStatus"], "failure", "{path}: {body}");
        }
        let q = quantities(&c, "Shoe").await;
        assert_eq!(q["iv"]["onhand"], 10, "{q}");
        assert_eq!(q["@iv"]["@available_to_reserve"], 10, "{q}");
        // An index query may leave out the product; an exact query needs site and location.
        let all = c
            .post_ok(
                "onhand/indexquery",
                &json!({"filters": {"organizationId": ["usmf"], "productId": [], "siteId": ["1"], "locationId": ["11"]},
                        "groupByValues": [], "returnNegative": true}),
            )
            .await;
        assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
        let (status, body) = send(
            &c,
            "onhand/exactquery",
            &json!({"filters": {"organizationId": ["usmf"], "productId": ["Shoe"], "dimensions": ["ColorId"], "values": [["Red"]]},
                    "groupByValues": [], "returnNegative": true}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().unwrap_or("").contains("siteId"), "{body}");

        // reservConfiguration.version 0: dimensions must be a prefix of the hierarchy.
        let (status, body) = send(&c, "onhand/reserve", &reserve("v0-style", "Shoe", red.clone(), 1)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().unwrap_or("").contains("styleid"), "{body}");
        let (status, body) = send(&c, "onhand/reserve", &reserve("v0-color", "Shoe", at("1", "11", json!({"ColorId": "Red"})), 2)).await;
        assert_eq!((status, body["processingStatus"].clone()), (200, json!("success")), "{body}");
        // Version 1: any dimensions, availability checked at the dimensions given (10 at S1, 2 reserved).
        doc["reservConfiguration"]["version"] = json!(1);
        c.post_ok("configuration/hardupdate", &doc).await;
        let (status, body) = send(&c, "onhand/reserve", &reserve("v1-short", "Shoe", red.clone(), 9)).await;
        assert_eq!((status, body["statusCode"].clone()), (409, json!(500)), "{body}");
        let (status, body) = send(&c, "onhand/reserve", &reserve("v1-style", "Shoe", red.clone(), 8)).await;
        assert_eq!((status, body["processingStatus"].clone()), (200, json!("success")), "{body}");

        // Allocation with the document's groups (IV's spelling), then unallocate.
        let alloc = |id: &str, q: i64| {
            json!({"id": id, "organizationId": "usmf", "productId": "Shoe", "dimensions": at("1", "11", json!({})),
                   "groups": {"channel": "Online", "customerGroup": "VIP"}, "quantity": q})
        };
        c.post_ok("allocation/allocate", &alloc("al-1", 7)).await;
        let (status, body) = send(&c, "allocation/allocate", &alloc("al-2", 4)).await;
        assert_eq!((status, body["statusCode"].clone()), (409, json!(500)), "only 3 left to allocate: {body}");
        c.post_ok("allocation/unallocate", &alloc("ual-1", 2)).await;
        let q = quantities(&c, "Shoe").await;
        assert_eq!(q["@iv"]["@allocated"], 5, "{q}");
        assert_eq!(q["@iv"]["@available_to_allocate"], 5, "{q}");
        let groups = c
            .post_ok(
                "allocation/query",
                &json!({"organizationId": "usmf", "productId": "Shoe", "dimensions": at("1", "11", json!({}))}),
            )
            .await;
        assert_eq!(groups[0]["groups"]["customerGroup"], "VIP", "{groups}");

        // Clean-up by the listed ids deletes everything; the same event ids are new again.
        let ids = get(&c, "allpartitionids").await;
        assert_eq!(ids, json!(["usmf~1~11", "usmf~~"]), "{ids}");
        let (status, body) = delete(&c, "cleanupalldata", &ids).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(get(&other, "allpartitionids").await, json!([]));
        c.post_ok("onhand", &stock("in-1", red.clone(), ("pos", "posinbound"), 6)).await;
        let (status, body) = send(&c, "onhand/reserve", &reserve("v1-style", "Shoe", red.clone(), 6)).await;
        assert_eq!((status, body["processingStatus"].clone()), (200, json!("success")), "{body}");
        let q = quantities(&c, "Shoe").await;
        assert_eq!((q["iv"]["onhand"].clone(), q["iv"]["softreservphysical"].clone()), (json!(6), json!(6)), "{q}");

        // By product: the mode changes only once the data is gone (the message says how).
        c.post_ok("onhand", &stock("in-9", red.clone(), ("pos", "posinbound"), 1)).await;
        let mut by_product = doc.clone();
        by_product["partitionConfiguration"]["useDimensions"] = json!(false);
        by_product["cachePartitionIdVersion"] = json!("byProductId");
        let (status, body) = send(&c, "configuration/hardupdate", &by_product).await;
        assert_eq!(status, 409, "{body}");
        assert!(body["message"].as_str().unwrap_or("").contains("cleanupalldata"), "{body}");
        let (status, body) = delete(&c, "partitions/cleanupalldata", &json!([])).await;
        assert_eq!(status, 200, "{body}");
        let ids = get(&c, "allpartitionids").await;
        assert_eq!(ids, json!(["usmf~1~11"]), "an empty list deletes nothing: {ids}");
        let (status, body) = delete(&c, "partitions/cleanupalldata", &ids).await;
        assert_eq!(status, 200, "{body}");
        c.post_ok("configuration/hardupdate", &by_product).await;
        // Writes with and without site and location; a reserve without dimensions checks the
        // product's total; allocation without dimensions.
        for (id, dims, q) in [("bp-1", red.clone(), 6), ("bp-2", at("2", "21", json!({})), 5), ("bp-3", json!({}), 1)] {
            c.post_ok("onhand", &stock(id, dims, ("pos", "posinbound"), q)).await;
        }
        assert_eq!(get(&c, "allpartitionids").await, json!(["usmf~Shoe"]));
        let (status, body) = send(&c, "onhand/reserve", &reserve("bp-r1", "Shoe", json!({}), 13)).await;
        assert_eq!((status, body["statusCode"].clone()), (409, json!(500)), "{body}");
        let (status, body) = send(&c, "onhand/reserve", &reserve("bp-r2", "Shoe", json!({}), 12)).await;
        assert_eq!((status, body["processingStatus"].clone()), (200, json!("success")), "{body}");
        c.post_ok("onhand", &stock("bp-4", at("2", "21", json!({})), ("pos", "posinbound"), 4)).await;
        c.post_ok("allocation/allocate", &json!({"id": "bp-a1", "organizationId": "usmf", "productId": "Shoe",
            "dimensions": {}, "groups": {"channel": "Online"}, "quantity": 2}))
        .await;
        let index = |products: Value, sites: Value| {
            json!({"filters": {"organizationId": ["usmf"], "productId": products, "siteId": sites, "locationId": []},
                   "groupByValues": [], "returnNegative": true})
        };
        let total = c.post_ok("onhand/indexquery", &index(json!(["Shoe"]), json!([]))).await;
        assert_eq!(total.as_array().map(Vec::len), Some(1), "{total}");
        assert_eq!(total[0]["quantities"]["iv"]["onhand"], 16, "{total}");
        assert_eq!(total[0]["quantities"]["iv"]["availabletoreserve"], 4, "{total}");
        let site2 = other.post_ok("onhand/indexquery", &index(json!(["Shoe"]), json!(["2"]))).await;
        assert_eq!(site2[0]["dimensions"]["siteid"], "2", "{site2}");
        assert_eq!(site2[0]["quantities"]["iv"]["onhand"], 9, "{site2}");
        let (status, body) = send(&c, "onhand/indexquery", &index(json!([]), json!(["2"]))).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().unwrap_or("").starts_with("filters.productId"), "{body}");
        let (status, body) = send(
            &c,
            "onhand/exactquery",
            &json!({"filters": {"organizationId": ["usmf"], "productId": [], "dimensions": ["ColorId"], "values": [["Red"]]},
                    "groupByValues": [], "returnNegative": true}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let exact = c
            .post_ok(
                "onhand/exactquery",
                &json!({"filters": {"organizationId": ["usmf"], "productId": ["Shoe"], "dimensions": ["ColorId"], "values": [["Red"]]},
                        "groupByValues": [], "returnNegative": true}),
            )
            .await;
        assert_eq!(exact[0]["quantities"]["iv"]["onhand"], 6, "{exact}");
        let (status, body) = delete(&c, "cleanupalldata", &json!(["usmf~Shoe"])).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(get(&other, "allpartitionids").await, json!([]));

        // The ATP doc's example on the default configuration, stock on pos.posinbound, queried
        // at /indexquery as IV's own ATP test client does.
        let d = cluster.client(0, "ivd").await;
        d.post_ok("onhand", &json!({"id": "bike", "organizationId": "usmf", "productId": "Bike",
            "dimensions": at("1", "11", json!({})), "quantities": {"pos": {"posinbound": 20}}}))
        .await;
        for (i, (offset, q)) in [(0, -3), (2, 10), (3, -15), (4, 1), (5, 3)].into_iter().enumerate() {
            d.post_ok("onhand/changeschedule", &json!({"id": format!("plan-{i}"), "organizationId": "usmf", "productId": "Bike",
                "dimensions": at("1", "11", json!({})), "quantitiesByDate": {day(offset): {"pos": {"posinbound": q}}}}))
            .await;
        }
        let records = d
            .post_ok(
                "indexquery",
                &json!({"filters": {"organizationId": ["usmf"], "productId": ["Bike"], "siteId": ["1"], "locationId": ["11"]},
                        "groupByValues": ["colorId", "sizeId"], "returnNegative": true, "QueryATP": true}),
            )
            .await;
        let atp: Vec<f64> = records[0]["atpQuantities"]
            .as_object()
            .expect("atpQuantities")
            .values()
            .map(|q| q["@iv"]["@available_to_reserve"].as_f64().expect("ATP"))
            .collect();
        assert_eq!(atp, [12.0, 12.0, 12.0, 12.0, 13.0, 16.0, 16.0]);
        let now = &records[0]["quantities"];
        for (ds, m) in [("iv", "onhand"), ("iv", "availabletoreserve"), ("@iv", "@available_to_reserve"), ("@iv", "@available_to_allocate")] {
            assert_eq!(now[ds][m], 20, "{ds}.{m}: {now}");
        }
    })
    .await
    .expect("test finished in time");
}
