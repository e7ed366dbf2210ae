//! `ivory serve` as a user runs it: the worked examples of IV's documentation over REST, limits, bad input, auth,
//! and a kill -9 + restart that must keep every acknowledged write.

use std::path::Path;
use std::time::Duration;

use ivory_tests::{Client, Cluster, sum_measure};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn index_query(org: &str, site: &str, location: &str, products: &[&str], group_by: &[&str]) -> Value {
    json!({
        "filters": {"organizationId": [org], "productId": products, "siteId": [site], "locationId": [location]},
        "groupByValues": group_by,
        "returnNegative": true
    })
}

async fn walkthrough(c: &Client) {
    // API doc: a POS return of one red T-shirt, with the data source's own dimension name.
    let r = c
        .post_ok(
            "onhand",
            &json!({"id": "Test201", "organizationId": "usmf", "productId": "T-shirt", "dimensionDataSource": "pos",
                    "dimensions": {"siteId": "1", "locationId": "11", "posMachineId": "0001", "colorId": "red"},
                    "quantities": {"pos": {"inbound": 1}}}),
        )
        .await;
    assert_eq!(r["processingStatus"], "success", "{r}");
    // The bulk: a return (red) and a sale of three black, keys in other cases, a number as a string.
    let r = c
        .post_ok(
            "onhand/bulk",
            &json!([
                {"id": "Test203", "organizationId": "usmf", "productId": "T-shirt",
                 "dimensions": {"SiteId": "1", "LocationId": "11", "colorId": "red"}, "quantities": {"pos": {"inbound": 1}}},
                {"ID": "Test204", "organizationid": "usmf", "productid": "T-shirt",
                 "dimensions": {"siteid": "1", "locationid": "11", "ColorId": "black"}, "quantities": {"pos": {"outbound": "3"}}}
            ]),
        )
        .await;
    assert_eq!(r["success"].as_array().map(Vec::len), Some(2), "{r}");

    let records = c
        .post_ok(
            "onhand/indexquery",
            &index_query("usmf", "1", "11", &["T-shirt"], &["colorId"]),
        )
        .await;
    let by_color = |color: &str| -> Value {
        records
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["dimensions"]["colorId"] == color).cloned())
            .unwrap_or_else(|| panic!("no {color} record in {records}"))
    };
    assert_eq!(by_color("red")["quantities"]["pos"]["inbound"], 2);
    assert_eq!(by_color("black")["quantities"]["iv"]["availabletoreserve"], -3);

    // Reservations doc: the D0002 cabinet, after stock arrives.
    let cabinet = json!({"SiteId": "1", "LocationId": "11", "ColorId": "red", "SizeId": "small"});
    let reserve = |id: &str, q: i64| {
        json!({"id": id, "organizationId": "usmf", "productId": "D0002", "dimensions": cabinet,
               "quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": q, "ifCheckAvailForReserv": true})
    };
    let short = c.post("onhand/reserve", &reserve("Testrequest-0005", 1)).await.unwrap();
    assert_eq!(
        short.status, 409,
        "a shortfall is a conflict, never a 5xx: {}",
        short.body
    );
    assert_eq!(short.body["statusCode"], 500);
    c.post_ok(
        "onhand",
        &json!({"id": "stock-d0002", "organizationId": "usmf", "productId": "D0002", "dimensions": cabinet,
                "quantities": {"fno": {"physicalinvent": 10}}}),
    )
    .await;
    let ok = c.post_ok("onhand/reserve", &reserve("Testrequest-0006", 10)).await;
    assert_eq!(ok["processingStatus"], "success", "{ok}");
    assert_eq!(ok["id"], "ohre~Testrequest-0006");
    let reservation_id = ok["reservationId"].as_str().expect("reservationId").to_string();
    // A replay of the same id gives the same answer and reserves nothing more.
    assert_eq!(c.post_ok("onhand/reserve", &reserve("Testrequest-0006", 10)).await, ok);

    // Reserved 10, OffsetQty 12 -> partialSuccess, totalInvalidOffsetQtyByReservId 2.
    let un = c
        .post_ok(
            "onhand/unreserve",
            &json!({"id": "un-1", "organizationId": "usmf", "productId": "D0002", "reservationId": reservation_id,
                    "dimensions": cabinet, "OffsetQty": 12}),
        )
        .await;
    assert_eq!(un["processingStatus"], "partialSuccess", "{un}");
    assert_eq!(un["totalInvalidOffsetQtyByReservId"], 2);
    let records = c
        .post_ok("onhand/indexquery", &index_query("usmf", "1", "11", &["D0002"], &[]))
        .await;
    assert_eq!(sum_measure(&records, "iv", "softreservphysical"), 0.0);
    assert_eq!(sum_measure(&records, "iv", "availabletoreserve"), 10.0);
}

#[tokio::test]
async fn serve_walkthrough_limits_auth_and_restart() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut cluster = Cluster::single(Path::new(BIN), 4);
        cluster.wait_healthy(Duration::from_secs(30)).await;
        let c = cluster.client(0, "env-a").await;
        walkthrough(&c).await;

        // Limits: 512 items are fine, 513 are refused whole and write nothing.
        let item = |i: usize| {
            json!({"id": format!("bulk-{i}"), "organizationId": "usmf", "productId": format!("B{i}"),
                   "dimensions": {"siteId": "9", "locationId": "91"}, "quantities": {"pos": {"inbound": 1}}})
        };
        let too_many: Vec<Value> = (0..513).map(item).collect();
        let refused = c.post("onhand/bulk", &Value::Array(too_many)).await.unwrap();
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert!(
            refused.body["code"].is_string(),
            "a stable error code: {}",
            refused.body
        );
        let records = c
            .post_ok("onhand/indexquery", &index_query("usmf", "9", "91", &[], &[]))
            .await;
        assert_eq!(
            records.as_array().map(Vec::len),
            Some(0),
            "513 items wrote nothing: {records}"
        );
        let fine: Vec<Value> = (0..512).map(item).collect();
        let r = c.post_ok("onhand/bulk", &Value::Array(fine)).await;
        assert_eq!(r["success"].as_array().map(Vec::len), Some(512));

        // Query limits: NumOf(siteId) x NumOf(locationId) <= 100, at most 5,000 products.
        let grid = |sites: usize, locations: usize, products: usize| {
            json!({"filters": {"organizationId": ["usmf"],
                               "productId": (0..products).map(|i| format!("Q{i}")).collect::<Vec<_>>(),
                               "siteId": (0..sites).map(|i| i.to_string()).collect::<Vec<_>>(),
                               "locationId": (0..locations).map(|i| i.to_string()).collect::<Vec<_>>()},
                   "groupByValues": [], "returnNegative": true})
        };
        for (sites, locations, products, status) in [
            (10, 10, 1, 200),
            (101, 1, 1, 400),
            (1, 1, 5_000, 200),
            (1, 1, 5_001, 400),
        ] {
            let a = c
                .post("onhand/indexquery", &grid(sites, locations, products))
                .await
                .unwrap();
            assert_eq!(a.status, status, "{sites} x {locations} x {products}: {}", a.body);
        }

        // Bad input: a clear 400 naming the field, nothing applied.
        let bad = c
            .post(
                "onhand",
                &json!({"id": "bad-1", "organizationId": "usmf", "productId": "T-shirt",
                        "dimensions": {"siteId": "1", "locationId": "11"}, "quantities": {"pos": {"inbound": "lots"}}}),
            )
            .await
            .unwrap();
        assert_eq!(bad.status, 400, "{}", bad.body);
        assert!(
            bad.body["message"].as_str().unwrap_or("").contains("inbound"),
            "{}",
            bad.body
        );

        // Auth: no token -> 401; a token for another environment -> 403.
        let no_token = c.http.post(c.api("onhand")).json(&item(0)).send().await.unwrap();
        assert_eq!(no_token.status().as_u16(), 401);
        let other = cluster.client(0, "env-b").await;
        let wrong_env = c
            .http
            .post(c.api("onhand"))
            .bearer_auth(&other.token)
            .json(&item(0))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong_env.status().as_u16(), 403);

        // kill -9 and restart on the same data directory: everything acknowledged is still there.
        cluster.nodes[0].kill9();
        cluster.restart(0);
        cluster.wait_healthy(Duration::from_secs(30)).await;
        let c = cluster.client(0, "env-a").await;
        let records = c
            .post_ok("onhand/indexquery", &index_query("usmf", "1", "11", &["T-shirt"], &[]))
            .await;
        assert_eq!(sum_measure(&records, "pos", "inbound"), 2.0, "{records}");
        let records = c
            .post_ok("onhand/indexquery", &index_query("usmf", "9", "91", &[], &[]))
            .await;
        assert_eq!(records.as_array().map(Vec::len), Some(512));
        // And the replayed reservation still answers from memory after the restart.
        let records = c
            .post_ok("onhand/indexquery", &index_query("usmf", "1", "11", &["D0002"], &[]))
            .await;
        assert_eq!(sum_measure(&records, "iv", "availabletoreserve"), 10.0);
    })
    .await
    .expect("the test finishes in time");
}
