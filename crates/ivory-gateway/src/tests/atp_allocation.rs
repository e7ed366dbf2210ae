//! Change schedules, ATP queries and allocation through the REST layer.

use axum::Router;
use axum::http::{Method, StatusCode};
use ivory_core::date::format_day;
use serde_json::{Value, json};

use super::{ENV, post, send, setup, stock, token};
use crate::queries::today;

fn day(offset: i64) -> String {
    format_day(today() + offset)
}

fn schedule(id: &str, product: &str, by_date: Value) -> Value {
    json!({"id": id, "organizationId": "usmf", "productId": product,
           "dimensions": {"siteId": "1", "locationId": "13", "ColorId": "Red", "SizeId": "M"},
           "quantitiesByDate": by_date})
}

fn atp_query(product: &str) -> Value {
    json!({"filters": {"organizationId": ["usmf"], "productId": [product], "siteId": ["1"], "locationId": ["13"]},
           "groupByValues": ["ColorId", "SizeId"], "returnNegative": true, "QueryATP": true})
}

/// `@iv.@available_to_reserve` of the one record, per day of `atpQuantities`, in day order.
fn atp_values(records: &Value) -> Vec<(String, f64)> {
    let list = records.as_array().unwrap();
    assert_eq!(list.len(), 1, "{records}");
    list[0]["atpQuantities"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(d, q)| (d.clone(), q["@iv"]["@available_to_reserve"].as_f64().unwrap()))
        .collect()
}

async fn seed(app: &Router, t: &str, product: &str, qty: i64) {
    let body = stock(
        &format!("seed-{product}"),
        product,
        "1",
        "13",
        json!({"ColorId": "Red", "SizeId": "M"}),
        json!(qty),
    );
    let r = post(app, t, "onhand", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn atp_worked_example_through_index_get_and_exact_queries() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    seed(&app, &t, "P-ATP", 20).await;
    // Day 1 is today: -3 day 1, +10 day 3, -15 day 4, +1 day 5, +3 day 6 (docs/iv-compatibility.md §4).
    let by_date = json!({
        day(0): {"pos": {"inbound": -3}},
        format!("{}T00:00:00Z", day(2)): {"pos": {"inbound": 10}},
        day(3).replace('-', "/"): {"pos": {"inbound": "-15"}},
        day(4): {"pos": {"inbound": 1}},
        day(5): {"POS": {"InBound": 3}},
    });
    let r = post(&app, &t, "onhand/changeschedule", schedule("cs-1", "P-ATP", by_date)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], "ohcs~cs-1");
    assert_eq!(r.body["processingStatus"], "success");
    assert_eq!(r.body["statusCode"], 200);

    let r = post(&app, &t, "onhand/indexquery", atp_query("P-ATP")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let atp = atp_values(&r.body);
    let want = [12.0, 12.0, 12.0, 12.0, 13.0, 16.0, 16.0];
    assert_eq!(atp.len(), 7, "{}", r.body);
    for (i, (d, v)) in atp.iter().enumerate() {
        assert_eq!(d, &format!("{}T00:00:00Z", day(i as i64)));
        assert_eq!(*v, want[i], "day {i}: {}", r.body);
    }
    let record = &r.body[0];
    // Schedules never change current on-hand.
    assert_eq!(record["quantities"]["iv"]["onhand"], json!(20));
    assert_eq!(record["dimensions"]["ColorId"], "Red");
    let by_date = record["quantitiesByDate"].as_object().unwrap();
    assert_eq!(by_date.len(), 5, "{record}");
    assert_eq!(by_date[&format!("{}T00:00:00", day(3))]["iv"]["onhand"], json!(-15));

    // v2 answers the same records in a page.
    let r = send(
        &app,
        Method::POST,
        &format!("/api/environment/{ENV}/onhand/indexquery"),
        Some(&t),
        Some(atp_query("P-ATP").to_string()),
        &[("Api-Version", "2.0")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(atp_values(&r.body["Value"]).len(), 7);

    // GET with the ATP parameters in any case; from/to only filter the days returned.
    let path = format!(
        "/api/environment/{ENV}/onhand?organizationId=usmf&productId=P-ATP&siteId=1&locationId=13&groupBy=ColorId,SizeId&queryatp=true&AtpFromDate={}&ATPTODATE={}",
        day(4),
        day(5)
    );
    let r = send(&app, Method::GET, &path, Some(&t), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let atp = atp_values(&r.body);
    assert_eq!(
        atp,
        vec![
            (format!("{}T00:00:00Z", day(4)), 13.0),
            (format!("{}T00:00:00Z", day(5)), 16.0)
        ]
    );

    // Exact query: the tuple's dimensions are the group-by.
    let exact = json!({"filters": {"organizationId": ["usmf"], "productId": ["P-ATP"],
        "dimensions": ["siteId", "locationId", "ColorId", "SizeId"], "values": [["1", "13", "Red", "M"]]},
        "QueryATP": "true", "ATPToDate": day(1)});
    let r = post(&app, &t, "onhand/exactquery", exact).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        atp_values(&r.body).iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        vec![12.0, 12.0]
    );

    // Without QueryATP the records carry no ATP fields.
    let mut plain = atp_query("P-ATP");
    plain["QueryATP"] = json!(false);
    let r = post(&app, &t, "onhand/indexquery", plain).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body[0].get("atpQuantities").is_none(), "{}", r.body);
}

#[tokio::test]
async fn atp_query_rules_are_checked() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    seed(&app, &t, "P-ATP2", 5).await;
    let mut q = atp_query("P-ATP2");
    q["groupByValues"] = json!(["ColorId"]);
    let r = post(&app, &t, "onhand/indexquery", q).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["code"], "query.invalid");
    assert!(
        r.body["message"].as_str().unwrap().contains("groupByValues"),
        "{}",
        r.body
    );

    let mut q = atp_query("P-ATP2");
    q["filters"]["StyleId"] = json!(["x"]);
    let r = post(&app, &t, "onhand/indexquery", q).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("filters.styleid"),
        "{}",
        r.body
    );

    // ATP values are returned even when negative, whatever returnNegative says.
    let body = schedule("neg", "P-ATP2", json!({ day(1): {"pos": {"inbound": -8}} }));
    let r = post(&app, &t, "onhand/changeschedule", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // `quantityDataSource` lets a date hold `{measure: number}`.
    let mut body = schedule("qds", "P-ATP2", json!({ day(2): {"inbound": 1} }));
    body["quantityDataSource"] = json!("pos");
    let r = post(&app, &t, "onhand/changeschedule", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut q = atp_query("P-ATP2");
    q["returnNegative"] = json!(false);
    let r = post(&app, &t, "onhand/indexquery", q).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let values: Vec<f64> = atp_values(&r.body).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, vec![-3.0, -3.0, -2.0, -2.0, -2.0, -2.0, -2.0], "{}", r.body);

    let mut q = atp_query("P-ATP2");
    q["ATPFromDate"] = json!("someday");
    let r = post(&app, &t, "onhand/indexquery", q).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("ATPFromDate"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn schedule_window_edges_and_bad_dates() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    seed(&app, &t, "P-WIN", 10).await;
    let one = |id: &str, d: String, q: i64| schedule(id, "P-WIN", json!({ d: {"pos": {"inbound": q}} }));

    let r = post(&app, &t, "onhand/changeschedule", one("w-yesterday", day(-1), 1)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["id"], "ohcs~w-yesterday");
    assert_eq!(r.body["processingStatus"], "failure");
    assert!(r.body["message"].as_str().unwrap().contains(&day(-1)), "{}", r.body);

    let r = post(&app, &t, "onhand/changeschedule", one("w-today", day(0), 2)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = post(&app, &t, "onhand/changeschedule", one("w-last", day(6), 3)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = post(&app, &t, "onhand/changeschedule", one("w-after", day(7), 4)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains(&day(7)), "{}", r.body);

    // One bad day refuses the whole schedule: nothing of it is applied.
    let both = schedule(
        "w-mixed",
        "P-WIN",
        json!({ day(1): {"pos": {"inbound": 100}}, day(7): {"pos": {"inbound": 1}} }),
    );
    let r = post(&app, &t, "onhand/changeschedule", both).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // An unparseable key is refused by the gateway, naming the key.
    let r = post(
        &app,
        &t,
        "onhand/changeschedule",
        one("w-bad", "next tuesday".into(), 1),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("quantitiesByDate.next tuesday"),
        "{}",
        r.body
    );

    let r = post(&app, &t, "onhand/indexquery", atp_query("P-WIN")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let by_date = r.body[0]["quantitiesByDate"].as_object().unwrap().clone();
    let days: Vec<&String> = by_date.keys().collect();
    assert_eq!(
        days,
        vec![&format!("{}T00:00:00", day(0)), &format!("{}T00:00:00", day(6))]
    );
    assert_eq!(r.body[0]["quantities"]["iv"]["onhand"], json!(10));

    // Bulk: items succeed or fail on their own; ids echo.
    let items = json!([
        one("b-1", day(1), 1),
        one("b-2", day(9), 1),
        one("b-3", "2023-02-30".into(), 1),
        {"id": "b-4"},
    ]);
    let r = post(&app, &t, "onhand/changeschedule/bulk", items).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["success"].as_array().unwrap().len(), 1, "{}", r.body);
    assert_eq!(r.body["success"][0]["id"], "ohcs~b-1");
    assert_eq!(r.body["failure"].as_array().unwrap().len(), 3, "{}", r.body);

    let too_many: Vec<Value> = (0..513).map(|i| one(&format!("m{i}"), day(0), 1)).collect();
    let r = post(&app, &t, "onhand/changeschedule/bulk", json!(too_many)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["code"], "limit.bulk_items");
}

fn alloc(id: &str, groups: Value, qty: Value) -> Value {
    json!({"id": id, "organizationId": "usmf", "productId": "P-AL",
           "dimensions": {"siteId": "1", "locationId": "13", "ColorId": "Red", "SizeId": "M"},
           "groups": groups, "quantity": qty})
}

async fn alloc_query(app: &Router, t: &str, groups: Value) -> Value {
    let mut body = alloc("", groups, json!(0));
    body.as_object_mut().unwrap().remove("id");
    body.as_object_mut().unwrap().remove("quantity");
    let r = post(app, t, "allocation/query", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

#[tokio::test]
async fn allocation_round_trip() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    seed(&app, &t, "P-AL", 100).await;

    let r = post(
        &app,
        &t,
        "allocation/allocate",
        alloc("a1", json!({"channel": "Online", "customerGroup": "VIP"}), json!(30)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], "alc~a1");
    assert_eq!(r.body["processingStatus"], "success");
    // `targetGroups` is the 2022 name of `groups`; keys in any case.
    let mut b = alloc("a2", Value::Null, json!("10"));
    b.as_object_mut().unwrap().remove("groups");
    b["TargetGroups"] = json!({"CHANNEL": "Online"});
    let r = post(&app, &t, "allocation/allocate", b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Over-allocation: 60 left in the pool.
    let r = post(
        &app,
        &t,
        "allocation/allocate",
        alloc("a3", json!({"channel": "Store"}), json!(61)),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["statusCode"], 500);
    assert_eq!(r.body["code"], "stock.insufficient");
    assert_eq!(r.body["id"], "alc~a3");

    let r = post(
        &app,
        &t,
        "allocation/allocate",
        alloc("a4", json!({"channel": "Online", "city": "Oslo"}), json!(1)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("groups.city"),
        "{}",
        r.body
    );
    let r = post(
        &app,
        &t,
        "allocation/allocate",
        alloc("a5", json!({"customerGroup": "VIP"}), json!(1)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("groups.channel"),
        "{}",
        r.body
    );
    let mut b = alloc("a6", json!({"channel": "Online"}), json!(1));
    b["dimensions"].as_object_mut().unwrap().remove("siteId");
    // By location, an allocation without site and location is a business refusal (IV: body 500).
    let r = post(&app, &t, "allocation/allocate", b).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["statusCode"], 500, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("siteId"), "{}", r.body);
    let r = post(
        &app,
        &t,
        "allocation/allocate",
        alloc("a7", json!({"channel": "Online"}), json!(0)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // Reallocate: sourceGroups -> groups (a sub-group of the source).
    let mut b = alloc(
        "r1",
        json!({"channel": "Online", "customerGroup": "VIP", "region": "US"}),
        json!(5),
    );
    b["sourceGroups"] = json!({"channel": "Online"});
    let r = post(&app, &t, "allocation/reallocate", b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], "ralc~r1");
    let mut b = alloc("r2", json!({"channel": "Store"}), json!(50));
    b["sourceGroups"] = json!({"channel": "Online"});
    let r = post(&app, &t, "allocation/reallocate", b).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    let r = post(
        &app,
        &t,
        "allocation/unallocate",
        alloc("u1", json!({"channel": "Online", "customerGroup": "VIP"}), json!(4)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], "ualc~u1");

    // Consume: fno is not a target; the modifier word is checked; iv.softreservphysical: Addition
    // turns the consumption into a soft reservation.
    let mut b = alloc("c0", json!({"channel": "Online", "customerGroup": "VIP"}), json!(1));
    b["physicalMeasures"] = json!({"fno": {"physicalinvent": "Subtraction"}});
    let r = post(&app, &t, "allocation/consume", b).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("fno"), "{}", r.body);
    let mut b = alloc("c1", json!({"channel": "Online", "customerGroup": "VIP"}), json!(1));
    b["physicalMeasures"] = json!({"iv": {"softreservphysical": "Plus"}});
    let r = post(&app, &t, "allocation/consume", b).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("physicalMeasures.iv.softreservphysical"),
        "{}",
        r.body
    );
    let mut b = alloc("c2", json!({"channel": "Online", "customerGroup": "VIP"}), json!(6));
    b["physicalMeasures"] = json!({"iv": {"softreservphysical": "Addition"}});
    let r = post(&app, &t, "allocation/consume", b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], "csm~c2");
    let mut b = alloc("c3", json!({"channel": "Online", "customerGroup": "VIP"}), json!(100));
    b["physicalMeasures"] = json!({"pos": {"inbound": "Subtraction"}});
    let r = post(&app, &t, "allocation/consume", b).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    let all = alloc_query(&app, &t, json!({})).await;
    let list = all.as_array().unwrap();
    assert_eq!(list.len(), 3, "{all}");
    let find = |groups: Value| {
        list.iter()
            .find(|r| r["groups"] == groups)
            .unwrap_or_else(|| panic!("no {groups} in {all}"))
            .clone()
    };
    let online = find(json!({"channel": "Online"}));
    assert_eq!(online["productId"], "P-AL");
    assert_eq!(online["dimensions"]["siteid"], "1");
    assert_eq!(online["dimensions"]["colorid"], "Red");
    assert_eq!(online["quantities"]["@iv"]["@allocated"], json!(5));
    assert_eq!(online["quantities"]["@iv"]["@cumulative_allocated"], json!(10));
    let vip = find(json!({"channel": "Online", "customerGroup": "VIP"}));
    // 30 allocated, 4 unallocated, 6 consumed.
    assert_eq!(vip["quantities"]["@iv"]["@allocated"], json!(20));
    assert_eq!(vip["quantities"]["@iv"]["@consumed"], json!(6));
    assert_eq!(vip["quantities"]["@iv"]["@cumulative_allocated"], json!(30));
    assert_eq!(vip["quantities"]["@iv"]["@cumulative_consumed"], json!(6));
    let us = find(json!({"channel": "Online", "customerGroup": "VIP", "region": "US"}));
    assert_eq!(us["quantities"]["@iv"]["@allocated"], json!(5));

    // A prefix selects the sub-tree; `targetGroups` works here too.
    let mut body = alloc("", Value::Null, json!(0));
    let obj = body.as_object_mut().unwrap();
    obj.remove("groups");
    obj.insert(
        "targetGroups".into(),
        json!({"channel": "Online", "customerGroup": "VIP"}),
    );
    let r = post(&app, &t, "allocation/query", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body.as_array().unwrap().len(), 2, "{}", r.body);
    let mut body = alloc("", json!({"region": "US"}), json!(0));
    body.as_object_mut().unwrap().remove("quantity");
    let r = post(&app, &t, "allocation/query", body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("groups.channel"),
        "{}",
        r.body
    );

    // The consumption is a soft reservation: it lowers what is available to reserve.
    let q = json!({"filters": {"organizationId": ["usmf"], "productId": ["P-AL"], "siteId": ["1"], "locationId": ["13"]},
                   "groupByValues": [], "returnNegative": true});
    let r = post(&app, &t, "onhand/indexquery", q).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let quantities = &r.body[0]["quantities"];
    assert_eq!(quantities["iv"]["softreservphysical"], json!(6), "{}", r.body);
    assert_eq!(quantities["iv"]["availabletoreserve"], json!(94), "{}", r.body);
    assert_eq!(quantities["iv"]["onhand"], json!(100), "{}", r.body);
    assert_eq!(quantities["@iv"]["@allocated"], json!(30), "{}", r.body);
    assert_eq!(quantities["@iv"]["@available_to_allocate"], json!(70), "{}", r.body);
}

#[tokio::test]
async fn atp_group_by_matches_an_index_set_in_any_order() {
    let (app, _) = setup();
    let t = token(&app, ENV).await;
    let r = send(
        &app,
        Method::GET,
        &format!("/api/environment/{ENV}/configuration"),
        Some(&t),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut config = r.body;
    config["scheduleConfiguration"]["indexAttributeSets"] = json!([{"setNumber": 1, "keys": ["sizeid", "colorid"]}]);
    let r = post(&app, &t, "configuration/hardupdate", config).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    seed(&app, &t, "P-ORD", 4).await;
    for group in [json!(["ColorId", "SizeId"]), json!(["SizeId", "ColorId"])] {
        let mut q = atp_query("P-ORD");
        q["groupByValues"] = group;
        let r = post(&app, &t, "onhand/indexquery", q).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(atp_values(&r.body)[0].1, 4.0);
    }
}
