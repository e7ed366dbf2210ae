//! The typed `Holds` gRPC service against REST on the same gateway and listener: every RPC gets
//! what REST gives for the same operation (twin holds on twin products, `HG` over gRPC and `HR`
//! over REST), refusals carry REST's codes, and the event stream delivers the holds' events.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use futures::StreamExt;
use serde_json::{Value, json};

use super::grpc::{authed, same_refusal, serve};
use super::{ENV, KEY, post, send};
use crate::auth::{issue_token, now_s};
use crate::proto::holds_client::HoldsClient;
use crate::proto::*;

fn line(id: &str, product: &str, qty: &str) -> HoldLineRequest {
    HoldLineRequest {
        line_id: id.into(),
        product_id: product.into(),
        dimensions: [("siteId", "1"), ("locationId", "13")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        quantity: qty.into(),
        ..Default::default()
    }
}

fn line_json(id: &str, product: &str, qty: i64) -> Value {
    json!({"lineId": id, "productId": product, "dimensions": {"siteId": "1", "locationId": "13"}, "quantity": qty})
}

fn hold_ref(id: &str) -> HoldRef {
    HoldRef {
        environment_id: ENV.into(),
        organization_id: "usmf".into(),
        hold_id: id.into(),
    }
}

/// A typed hold equals REST's JSON of it (ids, products and times aside when `twins`).
fn same_hold(g: &Hold, r: &Value, twins: bool) {
    assert_eq!(g.status, r["status"], "{g:?} {r}");
    assert_eq!(g.organization_id, r["organizationId"]);
    assert_eq!(g.all_or_nothing, r["allOrNothing"]);
    assert_eq!(g.measure, r["measure"]);
    assert_eq!(g.expires_at.is_empty(), r["expiresAt"].is_null(), "{g:?} {r}");
    let items = r["items"].as_array().unwrap();
    assert_eq!(g.items.len(), items.len(), "{g:?} {r}");
    for (gi, ri) in g.items.iter().zip(items) {
        assert_eq!(gi.line_id, ri["lineId"]);
        assert_eq!(gi.status, ri["status"]);
        assert_eq!(gi.allow_oversell, ri["allowOversell"]);
        assert_eq!(gi.quantity, ri["quantity"].to_string());
        let dims: BTreeMap<String, String> = gi.dimensions.clone().into_iter().collect();
        assert_eq!(json!(dims), ri["dimensions"]);
        if !twins {
            assert_eq!(gi.product_id, ri["productId"]);
        }
    }
    let history: Vec<&str> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(g.history.iter().map(|h| h.status.as_str()).collect::<Vec<_>>(), history);
    if !twins {
        assert_eq!(g.id, r["id"]);
        assert_eq!(g.expires_at, r["expiresAt"].as_str().unwrap_or(""));
        assert_eq!(g.created_at, r["createdAt"].as_str().unwrap_or(""));
        let at: Vec<&str> = r["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["at"].as_str().unwrap())
            .collect();
        assert_eq!(g.history.iter().map(|h| h.at.as_str()).collect::<Vec<_>>(), at);
    }
}

async fn rest(app: &Router, t: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let path = format!("/api/environment/{ENV}/{path}");
    let r = send(app, method, &path, Some(t), body.map(|b| b.to_string()), &[]).await;
    (r.status, r.body)
}

#[tokio::test]
async fn every_holds_rpc_answers_as_rest_does() {
    let (channel, app, _) = serve().await;
    let mut grpc = HoldsClient::new(channel);
    let t = issue_token(KEY, ENV, "client", now_s() + 600);
    for p in ["HG", "HR"] {
        let stock = json!({"id": format!("s-{p}"), "organizationId": "usmf", "productId": p,
            "dimensions": {"siteId": "1", "locationId": "13"}, "quantities": {"pos": {"inbound": 10}}});
        assert_eq!(post(&app, &t, "onhand", stock).await.status, StatusCode::OK);
    }
    // The stream starts before anything happens; a bad cursor is refused as REST refuses it.
    let follow = |from: &str| {
        authed(
            FollowEventsRequest {
                environment_id: ENV.into(),
                from: from.into(),
            },
            &t,
        )
    };
    let e = grpc.follow_events(follow("9:1")).await.unwrap_err();
    let (status, body) = rest(&app, &t, Method::GET, "events?from=9:1&wait=false", None).await;
    same_refusal(&e, status, &body);
    let mut events = grpc.follow_events(follow("")).await.unwrap().into_inner();

    // Create: 201 / created; the same request again: 200 / not created.
    let create = |id: &str, p: &str, qty: &str| CreateHoldRequest {
        environment_id: ENV.into(),
        organization_id: "usmf".into(),
        id: id.into(),
        items: vec![line("1", p, qty)],
        expires_in_seconds: 600,
        ..Default::default()
    };
    let create_json = |id: &str, p: &str, qty: i64| json!({"id": id, "organizationId": "usmf", "items": [line_json("1", p, qty)], "expiresInSeconds": 600});
    for (created, status) in [(true, StatusCode::CREATED), (false, StatusCode::OK)] {
        let g = grpc
            .create(authed(create("H-G", "HG", "3"), &t))
            .await
            .unwrap()
            .into_inner();
        let (s, r) = rest(&app, &t, Method::POST, "holds", Some(create_json("H-R", "HR", 3))).await;
        assert_eq!(s, status, "{r}");
        assert_eq!(g.created, created);
        same_hold(&g, &r, true);
    }
    // Refusals on the same data both ways: another body under a known id; not enough stock.
    let e = grpc.create(authed(create("H-R", "HR", "4"), &t)).await.unwrap_err();
    let (s, r) = rest(&app, &t, Method::POST, "holds", Some(create_json("H-R", "HR", 4))).await;
    assert_eq!(r["code"], "hold.conflict", "{r}");
    same_refusal(&e, s, &r);
    let e = grpc.create(authed(create("H-X", "HR", "100"), &t)).await.unwrap_err();
    let (s, r) = rest(&app, &t, Method::POST, "holds", Some(create_json("H-X", "HR", 100))).await;
    assert_eq!(r["code"], "hold.insufficient", "{r}");
    same_refusal(&e, s, &r);

    // Get: the same hold both ways, field by field; an unknown one is NOT_FOUND / 404.
    let g = grpc.get(authed(hold_ref("H-R"), &t)).await.unwrap().into_inner();
    let (s, r) = rest(&app, &t, Method::GET, "holds/H-R?organizationId=usmf", None).await;
    assert_eq!(s, StatusCode::OK);
    same_hold(&g, &r, false);
    let e = grpc.get(authed(hold_ref("nope"), &t)).await.unwrap_err();
    let (s, r) = rest(&app, &t, Method::GET, "holds/nope?organizationId=usmf", None).await;
    same_refusal(&e, s, &r);

    // PatchItems, Extend, Confirm, Consume on the twins.
    let g = grpc
        .patch_items(authed(
            PatchHoldItemsRequest {
                hold: Some(hold_ref("H-G")),
                items: vec![line("1", "HG", "2"), line("2", "HG", "1")],
                expires_in_seconds: 0,
            },
            &t,
        ))
        .await
        .unwrap()
        .into_inner();
    let patch = json!({"items": [line_json("1", "HR", 2), line_json("2", "HR", 1)]});
    let (s, r) = rest(
        &app,
        &t,
        Method::PATCH,
        "holds/H-R/items?organizationId=usmf",
        Some(patch),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    same_hold(&g, &r, true);
    let g = grpc
        .extend(authed(
            ExtendHoldRequest {
                hold: Some(hold_ref("H-G")),
                expires_in_seconds: 120,
            },
            &t,
        ))
        .await
        .unwrap()
        .into_inner();
    let (s, r) = rest(
        &app,
        &t,
        Method::POST,
        "holds/H-R/extend?organizationId=usmf",
        Some(json!({"expiresInSeconds": 120})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    same_hold(&g, &r, true);
    // Extend without a time: the same 400 both ways.
    let e = grpc
        .extend(authed(
            ExtendHoldRequest {
                hold: Some(hold_ref("H-R")),
                expires_in_seconds: 0,
            },
            &t,
        ))
        .await
        .unwrap_err();
    let (s, r) = rest(&app, &t, Method::POST, "holds/H-R/extend?organizationId=usmf", None).await;
    same_refusal(&e, s, &r);
    let g = grpc.confirm(authed(hold_ref("H-G"), &t)).await.unwrap().into_inner();
    let (s, r) = rest(&app, &t, Method::POST, "holds/H-R/confirm?organizationId=usmf", None).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    same_hold(&g, &r, true);
    assert_eq!(g.status, "confirmed");
    let g = grpc
        .consume(authed(
            ConsumeHoldRequest {
                hold: Some(hold_ref("H-G")),
                line_ids: vec!["2".into()],
            },
            &t,
        ))
        .await
        .unwrap()
        .into_inner();
    let (s, r) = rest(
        &app,
        &t,
        Method::POST,
        "holds/H-R/consume?organizationId=usmf",
        Some(json!({"lineIds": ["2"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    same_hold(&g, &r, true);

    // Release: the rest of the line goes back; releasing again answers the same.
    for _ in 0..2 {
        let g = grpc.release(authed(hold_ref("H-G"), &t)).await.unwrap().into_inner();
        let (s, r) = rest(&app, &t, Method::DELETE, "holds/H-R?organizationId=usmf", None).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        same_hold(&g, &r, true);
    }
    // Consuming a released hold: the same refusal both ways.
    let consume_all = |id: &str| ConsumeHoldRequest {
        hold: Some(hold_ref(id)),
        line_ids: Vec::new(),
    };
    let e = grpc.consume(authed(consume_all("H-R"), &t)).await.unwrap_err();
    let (s, r) = rest(&app, &t, Method::POST, "holds/H-R/consume?organizationId=usmf", None).await;
    assert_eq!(r["code"], "hold.conflict", "{r}");
    same_refusal(&e, s, &r);

    // FollowEvents: H-G's life as it happened (the stream never ends by itself: bounded reads).
    let mut seen = Vec::new();
    while !seen.contains(&"hold.released".to_string()) {
        let e = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("an event within 5 s")
            .expect("the stream goes on")
            .expect("an event");
        assert!(!e.cursor.is_empty());
        if e.hold_id == "H-G" {
            seen.push(e.r#type);
        }
    }
    assert_eq!(seen.first().map(String::as_str), Some("hold.created"), "{seen:?}");
    for kind in ["hold.changed", "hold.extended", "hold.confirmed", "hold.consumed"] {
        assert!(seen.iter().any(|s| s == kind), "{kind} in {seen:?}");
    }
    // No token: refused before the stream starts.
    let e = grpc
        .follow_events(FollowEventsRequest {
            environment_id: ENV.into(),
            from: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
}
