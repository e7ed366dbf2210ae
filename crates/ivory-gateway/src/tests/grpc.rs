//! The gRPC API with a real tonic client against a real listener on 127.0.0.1:0.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

use super::{ENV, KEY, index_query, post, stock};
use crate::auth::{issue_token, now_s};
use crate::local::LocalBackend;
use crate::proto::inventory_client::InventoryClient;
use crate::proto::{BulkWriteRequest, QueryRequest, WriteRequest};
use crate::{Backend, GatewayConfig, grpc_service, router};

fn config() -> GatewayConfig {
    let mut c = GatewayConfig::new("client", "s3cret", KEY.to_vec());
    c.backend_backoff_max_ms = 5;
    c
}

/// REST and gRPC on one listener, as the binary serves them; plus an in-process REST router
/// over the same backend.
async fn serve() -> (InventoryClient<Channel>, axum::Router) {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(4));
    let app = grpc_service(backend.clone(), config()).fallback_service(router(backend.clone(), config()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = InventoryClient::connect(format!("http://{addr}")).await.unwrap();
    (client, router(backend, config()))
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn write(body: Value) -> WriteRequest {
    WriteRequest {
        environment_id: ENV.into(),
        body_json: body.to_string(),
    }
}

fn reserve(id: &str, qty: i64) -> Value {
    json!({"id": id, "organizationId": "usmf", "productId": "G1", "dimensions": {"siteId": "1", "locationId": "13"},
           "quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": qty})
}

#[tokio::test]
async fn grpc_needs_a_token_of_the_environment() {
    let (mut client, _) = serve().await;
    let e = client
        .on_hand_change(tonic::Request::new(write(stock(
            "g0",
            "G1",
            "1",
            "13",
            json!({}),
            json!(1),
        ))))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().starts_with("auth.missing_token:"), "{e:?}");

    let bad = authed(write(stock("g0", "G1", "1", "13", json!({}), json!(1))), "not.a-token");
    let e = client.on_hand_change(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    let other = issue_token(KEY, "other-env", "client", now_s() + 60);
    let e = client
        .on_hand_change(authed(write(stock("g0", "G1", "1", "13", json!({}), json!(1))), &other))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().starts_with("auth.wrong_environment:"), "{e:?}");
}

#[tokio::test]
async fn grpc_reserve_and_query_match_rest() {
    let (mut client, rest) = serve().await;
    let t = issue_token(KEY, ENV, "client", now_s() + 600);

    let r = client
        .on_hand_change(authed(write(stock("g1", "G1", "1", "13", json!({}), json!(10))), &t))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.id.as_str(), r.processing_status.as_str(), r.status_code),
        ("ohe~g1", "success", 200)
    );

    let g = client
        .reserve(authed(write(reserve("gr1", 3)), &t))
        .await
        .unwrap()
        .into_inner();
    let h = post(&rest, &t, "onhand/reserve", reserve("hr1", 3)).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    assert_eq!(g.id, "ohre~gr1");
    assert_eq!(g.processing_status, h.body["processingStatus"]);
    assert_eq!(i64::from(g.status_code), h.body["statusCode"].as_i64().unwrap());
    assert!(!g.reservation_id.is_empty());

    // The same query both ways: the same records.
    let q = index_query(&["G1"], &["1"], &["13"], &[]);
    let g = client
        .index_query(authed(
            QueryRequest {
                environment_id: ENV.into(),
                body_json: q.to_string(),
                ..Default::default()
            },
            &t,
        ))
        .await
        .unwrap()
        .into_inner();
    let h = post(&rest, &t, "onhand/indexquery", q).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    let g_records: Vec<Value> = g
        .records_json
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    assert_eq!(Value::Array(g_records), h.body);
    assert_eq!(h.body[0]["quantities"]["iv"]["softreservphysical"], json!(6));

    // Refusals carry the REST code: shortfall, bad field.
    let e = client
        .reserve(authed(write(reserve("gr2", 100)), &t))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().starts_with("stock.insufficient:"), "{e:?}");
    let mut bad = reserve("gr3", 1);
    bad.as_object_mut().unwrap().remove("quantity");
    let e = client.reserve(authed(write(bad), &t)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("quantity"), "{e:?}");

    // Bulk: IV's buckets, typed.
    let items = json!([reserve("gb1", 1), reserve("gb2", 1000)]);
    let b = client
        .reserve_bulk(authed(
            BulkWriteRequest {
                environment_id: ENV.into(),
                items_json: items.to_string(),
                inventory_system: String::new(),
            },
            &t,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.success.len(), 1, "{b:?}");
    assert_eq!(b.success[0].id, "ohre~gb1");
    assert_eq!(b.failure.len() + b.conflict.len(), 1, "{b:?}");

    // v2 paging goes through.
    let g = client
        .index_query(authed(
            QueryRequest {
                environment_id: ENV.into(),
                body_json: index_query(&["G1"], &["1"], &["13"], &[]).to_string(),
                api_version: "2.0".into(),
                page_number: 1,
                page_size: 10,
            },
            &t,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.records_json.len(), 1);
    assert_eq!(g.next_link, "");
}

#[tokio::test]
async fn grpc_allocation_and_schedule() {
    let (mut client, _) = serve().await;
    let t = issue_token(KEY, ENV, "client", now_s() + 600);
    client
        .on_hand_change(authed(write(stock("s1", "G2", "1", "13", json!({}), json!(10))), &t))
        .await
        .unwrap();
    let a = json!({"id": "ga1", "organizationId": "usmf", "productId": "G2",
                   "dimensions": {"siteId": "1", "locationId": "13"}, "groups": {"channel": "Web"}, "quantity": 4});
    let r = client.allocate(authed(write(a), &t)).await.unwrap().into_inner();
    assert_eq!(r.id, "alc~ga1");
    let q = json!({"organizationId": "usmf", "productId": "G2", "dimensions": {"siteId": "1", "locationId": "13"}});
    let g = client
        .allocation_query(authed(
            QueryRequest {
                environment_id: ENV.into(),
                body_json: q.to_string(),
                ..Default::default()
            },
            &t,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.records_json.len(), 1);
    let rec: Value = serde_json::from_str(&g.records_json[0]).unwrap();
    assert_eq!(rec["groups"], json!({"channel": "Web"}));
    assert_eq!(rec["quantities"]["@iv"]["@allocated"], json!(4));

    let day = ivory_core::date::format_day(crate::queries::today() + 10);
    let s = json!({"id": "gs1", "organizationId": "usmf", "productId": "G2",
                   "dimensions": {"siteId": "1", "locationId": "13"}, "quantitiesByDate": {day: {"pos": {"inbound": 1}}}});
    let e = client.change_schedule(authed(write(s), &t)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("command.invalid:"), "{e:?}");
}
