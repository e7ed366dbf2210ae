//! The typed public gRPC API of a real `ivory serve` process, on the port REST answers on: a
//! tonic client's writes, query and hold give what REST gives for the same operations, and its
//! refusals carry REST's codes.

use std::time::Duration;

use ivory_gateway::proto::holds_client::HoldsClient;
use ivory_gateway::proto::inventory_client::InventoryClient;
use ivory_gateway::proto::{
    CreateHoldRequest, HoldLineRequest, IndexQueryRequest, Measures, OnHandChange, OnHandChangeRequest, Product,
    Quantities, Reserve, ReserveRequest,
};
use ivory_tests::{Client, Cluster};
use serde_json::{Value, json};
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const ENV: &str = "grpc-e2e";

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
    r
}

fn product(p: &str) -> Option<Product> {
    Some(Product {
        organization_id: "usmf".into(),
        product_id: p.into(),
        dimensions: [("siteId", "1"), ("locationId", "11")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
}

fn reserve(id: &str, p: &str, quantity: &str) -> ReserveRequest {
    ReserveRequest {
        environment_id: ENV.into(),
        item: Some(Reserve {
            id: id.into(),
            product: product(p),
            modifier: "iv.softreservphysical".into(),
            quantity: quantity.into(),
            ..Default::default()
        }),
    }
}

/// `iv.softreservphysical` and `iv.availabletoreserve` of a product, over REST.
async fn rest_stock(c: &Client, p: &str) -> (Value, Value) {
    let q = json!({"filters": {"organizationId": ["usmf"], "productId": [p], "siteId": ["1"], "locationId": ["11"]}});
    let r = c.post_ok("onhand/indexquery", &q).await;
    let iv = &r[0]["quantities"]["iv"];
    (iv["softreservphysical"].clone(), iv["availabletoreserve"].clone())
}

async fn scenario(c: &Client, channel: Channel) {
    let mut grpc = InventoryClient::new(channel.clone());
    let t = c.token.clone();
    // Stock for the twins: G over gRPC, R over REST.
    let g = grpc
        .on_hand_change(authed(
            OnHandChangeRequest {
                environment_id: ENV.into(),
                item: Some(OnHandChange {
                    id: "g-in".into(),
                    product: product("G"),
                    quantities: Some(Quantities {
                        data_sources: [(
                            "pos".to_string(),
                            Measures {
                                values: [("inbound".to_string(), "10".to_string())].into(),
                            },
                        )]
                        .into(),
                    }),
                }),
            },
            &t,
        ))
        .await
        .expect("on-hand change over gRPC")
        .into_inner();
    assert_eq!((g.id.as_str(), g.processing_status.as_str()), ("ohe~g-in", "success"));
    c.post_ok(
        "onhand",
        &json!({"id": "r-in", "organizationId": "usmf", "productId": "R",
                "dimensions": {"siteId": "1", "locationId": "11"}, "quantities": {"pos": {"inbound": 10}}}),
    )
    .await;

    // A reserve each way: the same envelope, the same stock after.
    let g = grpc
        .reserve(authed(reserve("g-r1", "G", "3"), &t))
        .await
        .expect("reserve over gRPC")
        .into_inner();
    let r = c
        .post_ok(
            "onhand/reserve",
            &json!({"id": "r-r1", "organizationId": "usmf", "productId": "R",
                    "dimensions": {"siteId": "1", "locationId": "11"}, "modifier": "iv.softreservphysical", "quantity": 3}),
        )
        .await;
    assert_eq!(g.processing_status, r["processingStatus"]);
    assert_eq!(i64::from(g.status_code), r["statusCode"].as_i64().unwrap_or(0));
    assert!(
        !g.reservation_id.is_empty() && r["reservationId"].is_string(),
        "{g:?} {r}"
    );
    assert_eq!(rest_stock(c, "G").await, rest_stock(c, "R").await);
    assert_eq!(rest_stock(c, "G").await.0, json!(3));

    // The typed query reads what REST reads.
    let q = grpc
        .index_query(authed(
            IndexQueryRequest {
                environment_id: ENV.into(),
                organization_id: vec!["usmf".into()],
                product_id: vec!["G".into(), "R".into()],
                site_id: vec!["1".into()],
                location_id: vec!["11".into()],
                ..Default::default()
            },
            &t,
        ))
        .await
        .expect("query over gRPC")
        .into_inner();
    assert_eq!(q.records.len(), 2, "{q:?}");
    for record in &q.records {
        let iv = &record.quantities.as_ref().expect("quantities").data_sources["iv"].values;
        assert_eq!(iv["softreservphysical"], "3", "{record:?}");
        assert_eq!(iv["availabletoreserve"], "7", "{record:?}");
    }

    // Refusals: not enough stock, no token; nothing changed.
    let e = grpc
        .reserve(authed(reserve("g-r2", "G", "100"), &t))
        .await
        .expect_err("a shortfall");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert_eq!(
        e.metadata().get("x-ivory-code").and_then(|v| v.to_str().ok()),
        Some("stock.insufficient")
    );
    let r = c
        .post(
            "onhand/reserve",
            &json!({"id": "r-r2", "organizationId": "usmf", "productId": "R",
                    "dimensions": {"siteId": "1", "locationId": "11"}, "modifier": "iv.softreservphysical", "quantity": 100}),
        )
        .await
        .expect("request sent");
    assert_eq!((r.status, r.body["code"].as_str()), (409, Some("stock.insufficient")));
    assert_eq!(
        e.message(),
        format!("stock.insufficient: {}", r.body["message"].as_str().unwrap_or(""))
    );
    let e = grpc
        .reserve(tonic::Request::new(reserve("g-r3", "G", "1")))
        .await
        .expect_err("no token");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert_eq!(rest_stock(c, "G").await.0, json!(3));

    // A hold over gRPC is the hold REST reads.
    let mut holds = HoldsClient::new(channel);
    let h = holds
        .create(authed(
            CreateHoldRequest {
                environment_id: ENV.into(),
                organization_id: "usmf".into(),
                id: "cart-1".into(),
                items: vec![HoldLineRequest {
                    product_id: "G".into(),
                    dimensions: [
                        ("siteId".to_string(), "1".to_string()),
                        ("locationId".to_string(), "11".to_string()),
                    ]
                    .into(),
                    quantity: "2".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            &t,
        ))
        .await
        .expect("hold over gRPC")
        .into_inner();
    assert!(h.created, "{h:?}");
    let r = c.get("holds/cart-1?organizationId=usmf").await.expect("request sent");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], h.status);
    assert_eq!(r.body["expiresAt"], h.expires_at);
    assert_eq!(r.body["items"][0]["status"], h.items[0].status);
}

#[tokio::test]
async fn public_grpc_of_ivory_serve_answers_as_rest() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = Cluster::single(std::path::Path::new(BIN), 4);
        cluster.wait_healthy(Duration::from_secs(30)).await;
        let c = cluster.client(0, ENV).await;
        let channel = ivory_tests::grpc_channel(cluster.nodes[0].addr).await;
        scenario(&c, channel).await;
    })
    .await
    .expect("the test finished within its time");
}
