//! Change schedules, ATP and allocation through the REST API of a real 3-node cluster (issue 6).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ivory_tests::{Client, Cluster};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn day(offset: i64) -> String {
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    ivory_core::date::format_day(now_s / 86_400 + offset)
}

fn dims() -> Value {
    json!({"siteId": "1", "locationId": "11"})
}

async fn status_of(c: &Client, path: &str, body: &Value) -> (u16, Value) {
    let a = c.post(path, body).await.expect("request sent");
    (a.status, a.body)
}

async fn atp(c: &Client, product: &str) -> Vec<f64> {
    let records = c
        .post_ok(
            "onhand/indexquery",
            &json!({"filters": {"organizationId": ["org"], "productId": [product], "siteId": ["1"], "locationId": ["11"]},
                    "groupByValues": ["colorId", "sizeId"], "returnNegative": true, "QueryATP": true}),
        )
        .await;
    let record = &records[0];
    let by_day = record["atpQuantities"].as_object().expect("atpQuantities");
    by_day
        .values()
        .map(|q| q["@iv"]["@available_to_reserve"].as_f64().expect("ATP value"))
        .collect()
}

#[tokio::test]
async fn schedules_atp_and_allocation_on_three_nodes() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = Cluster::nodes(Path::new(BIN), 3, 4);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let c = cluster.client(0, "env").await;
        let other = cluster.client(2, "env").await;

        // The ATP doc's worked example, written through node 1 and read through node 3.
        c.post_ok(
            "onhand",
            &json!({"id": "bike-stock", "organizationId": "org", "productId": "Bike", "dimensions": dims(),
                    "quantities": {"pos": {"inbound": 20}}}),
        )
        .await;
        let plan: Vec<Value> = [(0, -3), (2, 10), (3, -15), (4, 1), (5, 3)]
            .iter()
            .enumerate()
            .map(|(i, (offset, q))| {
                json!({"id": format!("plan-{i}"), "organizationId": "org", "productId": "Bike", "dimensions": dims(),
                       "quantitiesByDate": {day(*offset): {"pos": {"inbound": q}}}})
            })
            .collect();
        let r = c.post_ok("onhand/changeschedule/bulk", &Value::Array(plan)).await;
        assert_eq!(r["success"].as_array().map(Vec::len), Some(5), "{r}");
        assert_eq!(atp(&other, "Bike").await, [12.0, 12.0, 12.0, 12.0, 13.0, 16.0, 16.0]);

        // Schedule window edges: yesterday and the day after the window are refused, nothing applied.
        for (label, offset) in [("yesterday", -1), ("after the window", 7)] {
            let (status, body) = status_of(
                &c,
                "onhand/changeschedule",
                &json!({"id": format!("edge-{offset}"), "organizationId": "org", "productId": "Bike", "dimensions": dims(),
                        "quantitiesByDate": {day(offset): {"pos": {"inbound": 100}}}}),
            )
            .await;
            assert_eq!(status, 400, "{label}: {body}");
            assert!(body["message"].as_str().unwrap_or("").contains("window"), "{body}");
        }
        assert_eq!(atp(&c, "Bike").await, [12.0, 12.0, 12.0, 12.0, 13.0, 16.0, 16.0], "nothing applied");

        // Allocation: ring-fence 6 for Online, move 2 to Online/VIP, consume 1 into a soft reservation.
        let alloc = |id: &str, groups: Value, q: i64| {
            json!({"id": id, "organizationId": "org", "productId": "Bike", "dimensions": dims(), "groups": groups, "quantity": q})
        };
        let r = c.post_ok("allocation/allocate", &alloc("a1", json!({"channel": "Online"}), 6)).await;
        assert_eq!(r["processingStatus"], "success", "{r}");
        let (status, body) = status_of(&c, "allocation/allocate", &alloc("a2", json!({"channel": "Store"}), 15)).await;
        assert_eq!(status, 409, "over-allocation: {body}");
        let r = other
            .post_ok(
                "allocation/reallocate",
                &json!({"id": "r1", "organizationId": "org", "productId": "Bike", "dimensions": dims(),
                        "sourceGroups": {"channel": "Online"}, "targetGroups": {"channel": "Online", "customerGroup": "VIP"},
                        "quantity": 2}),
            )
            .await;
        assert_eq!(r["processingStatus"], "success", "{r}");
        let mut consume = alloc("c1", json!({"channel": "Online", "customerGroup": "VIP"}), 1);
        consume["physicalMeasures"] = json!({"iv": {"softreservphysical": "Addition"}});
        c.post_ok("allocation/consume", &consume).await;
        let rows = other
            .post_ok(
                "allocation/query",
                &json!({"organizationId": "org", "productId": "Bike", "dimensions": dims(), "groups": {"channel": "Online"}}),
            )
            .await;
        let vip = rows
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["groups"]["customerGroup"] == "VIP"))
            .unwrap_or_else(|| panic!("no VIP row in {rows}"));
        assert_eq!(vip["quantities"]["@iv"]["@allocated"], 1);
        assert_eq!(vip["quantities"]["@iv"]["@consumed"], 1);

        // Bad inputs: unknown group level, a gap in levels, fno as a consume target.
        let (status, body) = status_of(&c, "allocation/allocate", &alloc("b1", json!({"planet": "Mars"}), 1)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().unwrap_or("").contains("planet"), "{body}");
        let (status, _) = status_of(&c, "allocation/allocate", &alloc("b2", json!({"customerGroup": "VIP"}), 1)).await;
        assert_eq!(status, 400);
        let mut fno = alloc("b3", json!({"channel": "Online"}), 1);
        fno["physicalMeasures"] = json!({"fno": {"physicalinvent": "Subtraction"}});
        let (status, body) = status_of(&c, "allocation/consume", &fno).await;
        assert_eq!(status, 400, "{body}");
        // None of them changed anything: Online still has 4 allocated.
        let rows = c
            .post_ok(
                "allocation/query",
                &json!({"organizationId": "org", "productId": "Bike", "dimensions": dims(), "groups": {"channel": "Online"}}),
            )
            .await;
        let online = rows
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["groups"].as_object().is_some_and(|g| g.len() == 1)))
            .unwrap_or_else(|| panic!("no Online row in {rows}"));
        assert_eq!(online["quantities"]["@iv"]["@allocated"], 4);
    })
    .await
    .expect("the test finishes in time");
}
