//! The typed gRPC API with a real tonic client against a real listener on 127.0.0.1:0, next to
//! REST on the same gateway (`crate::api`): every `Inventory` RPC gets the results REST gives for
//! the same operation. Writes that change stock run twice, on twin products (`PG` over gRPC, `PR`
//! over REST), and the two are compared; refusals and queries run on the same data both ways.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

use super::{ENV, KEY, Reply, index_query, post, send};
use crate::auth::{issue_token, now_s};
use crate::local::LocalBackend;
use crate::proto::inventory_client::InventoryClient;
use crate::proto::*;
use crate::{Backend, CODE_METADATA, GatewayConfig, grpc_code};

fn config() -> GatewayConfig {
    let mut c = GatewayConfig::new("client", "s3cret", KEY.to_vec());
    c.backend_backoff_max_ms = 5;
    c
}

/// REST and gRPC on one listener over one gateway, as the binary serves them; the same router
/// answers the in-process REST calls.
pub(super) async fn serve() -> (Channel, Router, Arc<LocalBackend>) {
    let backend = Arc::new(LocalBackend::new(4));
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    let app = crate::router(dyn_backend, config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = app.clone();
    tokio::spawn(async move { axum::serve(listener, served).await });
    let channel = tokio::time::timeout(
        Duration::from_secs(10),
        Channel::from_shared(format!("http://{addr}")).unwrap().connect(),
    )
    .await
    .expect("connect in time")
    .unwrap();
    (channel, app, backend)
}

pub(super) fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn product(p: &str) -> Option<Product> {
    Some(Product {
        organization_id: "usmf".into(),
        product_id: p.into(),
        dimension_data_source: String::new(),
        dimensions: [("siteId", "1"), ("locationId", "13"), ("ColorId", "Red")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

fn dims_json() -> Value {
    json!({"siteId": "1", "locationId": "13", "ColorId": "Red"})
}

fn quantities(ds: &str, measure: &str, value: &str) -> Option<Quantities> {
    Some(Quantities {
        data_sources: [(
            ds.to_string(),
            Measures {
                values: [(measure.to_string(), value.to_string())].into(),
            },
        )]
        .into(),
    })
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .normalize()
}

/// A REST record's quantities with decimals, as the typed ones.
fn json_quantities(v: &Value) -> BTreeMap<String, BTreeMap<String, Decimal>> {
    v.as_object()
        .map(|sources| {
            sources
                .iter()
                .map(|(ds, m)| {
                    let m = m.as_object().unwrap();
                    (
                        ds.clone(),
                        m.iter().map(|(k, q)| (k.clone(), dec(&q.to_string()))).collect(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn typed_quantities(q: Option<&Quantities>) -> BTreeMap<String, BTreeMap<String, Decimal>> {
    q.map(|q| {
        q.data_sources
            .iter()
            .map(|(ds, m)| (ds.clone(), m.values.iter().map(|(k, v)| (k.clone(), dec(v))).collect()))
            .collect()
    })
    .unwrap_or_default()
}

/// A typed record equals a REST record (the product id aside when comparing twins).
fn same_record(g: &QueryRecord, r: &Value, twins: bool) {
    if !twins {
        assert_eq!(g.product_id, r["productId"], "{g:?} {r}");
    }
    assert_eq!(
        g.organization_id,
        r["organizationId"].as_str().unwrap_or(""),
        "{g:?} {r}"
    );
    let dims: BTreeMap<String, String> = r["dimensions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(g.dimensions.clone().into_iter().collect::<BTreeMap<_, _>>(), dims);
    assert_eq!(
        typed_quantities(g.quantities.as_ref()),
        json_quantities(&r["quantities"])
    );
}

/// A typed envelope equals a REST one: the same operation prefix, status and code.
fn same_write(g: &WriteResult, r: &Value, g_id: &str, r_id: &str) {
    let prefix = r["id"].as_str().unwrap().strip_suffix(&format!("~{r_id}")).unwrap();
    assert_eq!(g.id, format!("{prefix}~{g_id}"), "{g:?} {r}");
    assert_eq!(g.processing_status, r["processingStatus"], "{g:?} {r}");
    assert_eq!(i64::from(g.status_code), r["statusCode"].as_i64().unwrap(), "{g:?} {r}");
    assert_eq!(g.code, r["code"].as_str().unwrap_or(""), "{g:?} {r}");
    assert_eq!(g.reservation_id.is_empty(), r["reservationId"].is_null(), "{g:?} {r}");
    match r.get("totalInvalidOffsetQtyByReservId") {
        Some(q) => assert_eq!(dec(&g.total_invalid_offset_qty), dec(&q.to_string())),
        None => assert_eq!(g.total_invalid_offset_qty, ""),
    }
}

fn same_bulk(g: &BulkWriteResult, r: &Value, g_prefix: &str, r_prefix: &str) {
    for (typed, name) in [
        (&g.success, "success"),
        (&g.failure, "failure"),
        (&g.conflict, "conflict"),
        (&g.not_found, "notFound"),
        (&g.partial_success, "partialSuccess"),
        (&g.unknown, "unknown"),
    ] {
        let rest = r[name].as_array().unwrap();
        assert_eq!(typed.len(), rest.len(), "{name}: {g:?} {r}");
        for (gi, ri) in typed.iter().zip(rest) {
            let r_id = ri["id"].as_str().unwrap().split_once('~').unwrap().1;
            let g_id = r_id.replacen(r_prefix, g_prefix, 1);
            same_write(gi, ri, &g_id, r_id);
        }
    }
}

/// A refusal: the gRPC status carries REST's code (message and metadata) and its message.
#[track_caller]
pub(super) fn same_refusal(e: &tonic::Status, status: StatusCode, body: &Value) {
    let code = body["code"].as_str().unwrap();
    assert_eq!(e.code(), grpc_code(status, code), "{e:?} {body}");
    assert_eq!(e.message(), format!("{code}: {}", body["message"].as_str().unwrap()));
    assert_eq!(e.metadata().get(CODE_METADATA).unwrap().to_str().unwrap(), code);
}

struct Twins {
    grpc: InventoryClient<Channel>,
    rest: Router,
    t: String,
}

impl Twins {
    async fn rest(&self, path: &str, body: Value) -> Reply {
        post(&self.rest, &self.t, path, body).await
    }
    fn r<T>(&self, m: T) -> tonic::Request<T> {
        authed(m, &self.t)
    }
    async fn query_pair(&mut self, products: &[&str], version: &str) -> (QueryResponse, Value) {
        let g = self
            .grpc
            .index_query(self.r(IndexQueryRequest {
                environment_id: ENV.into(),
                api_version: version.into(),
                organization_id: vec!["usmf".into()],
                product_id: products.iter().map(|p| p.to_string()).collect(),
                site_id: vec!["1".into()],
                location_id: vec!["13".into()],
                group_by_values: vec!["ColorId".into()],
                return_negative: true,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let mut q = index_query(products, &["1"], &["13"], &["ColorId"]);
        let headers = [("api-version", version)];
        let path = format!("/api/environment/{ENV}/onhand/indexquery");
        q["returnNegative"] = json!(true);
        let r = send(
            &self.rest,
            Method::POST,
            &path,
            Some(&self.t),
            Some(q.to_string()),
            &headers,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (g, r.body)
    }
}

#[tokio::test]
async fn every_inventory_rpc_answers_as_rest_does() {
    let (channel, rest, _) = serve().await;
    let t = issue_token(KEY, ENV, "client", now_s() + 600);
    let mut w = Twins {
        grpc: InventoryClient::new(channel),
        rest,
        t,
    };
    let body = |id: &str, p: &str, rest: Value| {
        let mut b = json!({"id": id, "organizationId": "usmf", "productId": p, "dimensions": dims_json()});
        for (k, v) in rest.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };

    // OnHandChange.
    let g = w
        .grpc
        .on_hand_change(w.r(OnHandChangeRequest {
            environment_id: ENV.into(),
            item: Some(OnHandChange {
                id: "g1".into(),
                product: product("PG"),
                quantities: quantities("pos", "inbound", "20"),
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    let r = w
        .rest(
            "onhand",
            body("r1", "PR", json!({"quantities": {"pos": {"inbound": 20}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    same_write(&g, &r.body, "g1", "r1");

    // OnHandChangeBulk: one good item, one the parser refuses (a failure with statusCode 400).
    let g = w
        .grpc
        .on_hand_change_bulk(w.r(OnHandChangeBulkRequest {
            environment_id: ENV.into(),
            items: vec![
                OnHandChange {
                    id: "gb1".into(),
                    product: product("PG"),
                    quantities: quantities("pos", "inbound", "1.5"),
                },
                OnHandChange {
                    id: "gb2".into(),
                    product: product("PG"),
                    quantities: quantities("pos", "inbound", "abc"),
                },
            ],
        }))
        .await
        .unwrap()
        .into_inner();
    let items = json!([
        body("rb1", "PR", json!({"quantities": {"pos": {"inbound": 1.5}}})),
        body("rb2", "PR", json!({"quantities": {"pos": {"inbound": "abc"}}})),
    ]);
    let r = w.rest("onhand/bulk", items).await;
    same_bulk(&g, &r.body, "gb", "rb");
    assert_eq!((g.success.len(), g.failure.len()), (1, 1), "{g:?}");
    assert_eq!(g.failure[0].code, "field.bad_number");

    // SetOnHandBulk.
    let g = w
        .grpc
        .set_on_hand_bulk(w.r(SetOnHandBulkRequest {
            environment_id: ENV.into(),
            inventory_system: "iv".into(),
            items: vec![SetOnHand {
                id: "gs1".into(),
                product: product("PG"),
                quantities: quantities("iom", "onhand", "5"),
                modified_date_time_utc: "2024-01-31T12:00:00Z".into(),
            }],
        }))
        .await
        .unwrap()
        .into_inner();
    let items = json!([body(
        "rs1",
        "PR",
        json!({"quantities": {"iom": {"onhand": 5}}, "modifiedDateTimeUTC": "2024-01-31T12:00:00Z"})
    )]);
    let r = w.rest("setonhand/iv/bulk", items).await;
    same_bulk(&g, &r.body, "gs", "rs");

    // Reserve, then Unreserve part of it.
    let reserve = |id: &str, p: &str, q: &str| ReserveRequest {
        environment_id: ENV.into(),
        item: Some(Reserve {
            id: id.into(),
            product: product(p),
            quantity_data_source: "iv".into(),
            modifier: "softreservphysical".into(),
            quantity: q.into(),
            if_check_avail_for_reserv: None,
        }),
    };
    let reserve_json = |id: &str, p: &str, q: Value| {
        body(
            id,
            p,
            json!({"quantityDataSource": "iv", "modifier": "softreservphysical", "quantity": q}),
        )
    };
    let g = w
        .grpc
        .reserve(w.r(reserve("gr1", "PG", "4")))
        .await
        .unwrap()
        .into_inner();
    let r = w.rest("onhand/reserve", reserve_json("rr1", "PR", json!(4))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    same_write(&g, &r.body, "gr1", "rr1");
    let (g_reservation, r_reservation) = (g.reservation_id.clone(), r.body["reservationId"].clone());

    let unreserve = |id: &str, p: &str, reservation: &str, q: &str| Unreserve {
        id: id.into(),
        product: product(p),
        reservation_id: reservation.into(),
        offset_qty: q.into(),
    };
    let unreserve_json =
        |id: &str, p: &str, q: Value| body(id, p, json!({"reservationId": r_reservation, "OffsetQty": q}));
    let g = w
        .grpc
        .unreserve(w.r(UnreserveRequest {
            environment_id: ENV.into(),
            item: Some(unreserve("gu1", "PG", &g_reservation, "1")),
        }))
        .await
        .unwrap()
        .into_inner();
    let r = w.rest("onhand/unreserve", unreserve_json("ru1", "PR", json!(1))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    same_write(&g, &r.body, "gu1", "ru1");

    // ReserveBulk: one fits, one is short.
    let g = w
        .grpc
        .reserve_bulk(w.r(ReserveBulkRequest {
            environment_id: ENV.into(),
            items: vec![
                reserve("gq1", "PG", "1").item.unwrap(),
                reserve("gq2", "PG", "1000").item.unwrap(),
            ],
        }))
        .await
        .unwrap()
        .into_inner();
    let items = json!([
        reserve_json("rq1", "PR", json!(1)),
        reserve_json("rq2", "PR", json!(1000))
    ]);
    let r = w.rest("onhand/reserve/bulk", items).await;
    same_bulk(&g, &r.body, "gq", "rq");
    assert_eq!(g.success.len(), 1, "{g:?}");

    // UnreserveBulk: more than the reservation holds (the excess is reported).
    let g = w
        .grpc
        .unreserve_bulk(w.r(UnreserveBulkRequest {
            environment_id: ENV.into(),
            items: vec![unreserve("gv1", "PG", &g_reservation, "5")],
        }))
        .await
        .unwrap()
        .into_inner();
    let r = w
        .rest("onhand/unreserve/bulk", json!([unreserve_json("rv1", "PR", json!(5))]))
        .await;
    same_bulk(&g, &r.body, "gv", "rv");
    let excess = g.success.iter().chain(&g.partial_success).next().unwrap();
    assert!(dec(&excess.total_invalid_offset_qty) > Decimal::ZERO, "{g:?}");

    // ChangeSchedule and ChangeScheduleBulk: tomorrow's inbound.
    let day = ivory_core::date::format_day(crate::queries::today() + 1);
    let schedule = |id: &str, p: &str| ScheduleChange {
        id: id.into(),
        product: product(p),
        quantity_data_source: String::new(),
        quantities_by_date: [(day.clone(), quantities("pos", "inbound", "3").unwrap())].into(),
    };
    let schedule_json = |id: &str, p: &str| {
        body(
            id,
            p,
            json!({"quantitiesByDate": {day.clone(): {"pos": {"inbound": 3}}}}),
        )
    };
    let g = w
        .grpc
        .change_schedule(w.r(ChangeScheduleRequest {
            environment_id: ENV.into(),
            item: Some(schedule("gc1", "PG")),
        }))
        .await
        .unwrap()
        .into_inner();
    let r = w.rest("onhand/changeschedule", schedule_json("rc1", "PR")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    same_write(&g, &r.body, "gc1", "rc1");
    let g = w
        .grpc
        .change_schedule_bulk(w.r(ChangeScheduleBulkRequest {
            environment_id: ENV.into(),
            items: vec![schedule("gd1", "PG")],
        }))
        .await
        .unwrap()
        .into_inner();
    let r = w
        .rest("onhand/changeschedule/bulk", json!([schedule_json("rd1", "PR")]))
        .await;
    same_bulk(&g, &r.body, "gd", "rd");

    // Allocate, Unallocate, Reallocate, Consume.
    let groups = |c: &str| [("channel".to_string(), c.to_string())].into_iter().collect();
    let allocation = |id: &str, p: &str, c: &str, q: &str| AllocationRequest {
        environment_id: ENV.into(),
        id: id.into(),
        product: product(p),
        groups: groups(c),
        quantity: q.into(),
    };
    let g = w
        .grpc
        .allocate(w.r(allocation("ga1", "PG", "Web", "6")))
        .await
        .unwrap()
        .into_inner();
    let r = w
        .rest(
            "allocation/allocate",
            body("ra1", "PR", json!({"groups": {"channel": "Web"}, "quantity": 6})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    same_write(&g, &r.body, "ga1", "ra1");
    let g = w
        .grpc
        .unallocate(w.r(allocation("gn1", "PG", "Web", "1")))
        .await
        .unwrap()
        .into_inner();
    let r = w
        .rest(
            "allocation/unallocate",
            body("rn1", "PR", json!({"groups": {"channel": "Web"}, "quantity": 1})),
        )
        .await;
    same_write(&g, &r.body, "gn1", "rn1");
    let g = w
        .grpc
        .reallocate(w.r(ReallocateRequest {
            environment_id: ENV.into(),
            id: "gl1".into(),
            product: product("PG"),
            source_groups: groups("Web"),
            groups: groups("Store"),
            quantity: "2".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let r = w
        .rest(
            "allocation/reallocate",
            body(
                "rl1",
                "PR",
                json!({"sourceGroups": {"channel": "Web"}, "groups": {"channel": "Store"}, "quantity": 2}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    same_write(&g, &r.body, "gl1", "rl1");
    let physical = [(
        "pos".to_string(),
        PhysicalMeasures {
            measures: [("inbound".to_string(), Modifier::Subtraction as i32)].into(),
        },
    )];
    let g = w
        .grpc
        .consume(w.r(ConsumeRequest {
            environment_id: ENV.into(),
            id: "gk1".into(),
            product: product("PG"),
            groups: groups("Web"),
            quantity: "1".into(),
            physical_measures: physical.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let r = w
        .rest(
            "allocation/consume",
            body(
                "rk1",
                "PR",
                json!({"groups": {"channel": "Web"}, "quantity": 1, "physicalMeasures": {"pos": {"inbound": "Subtraction"}}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    same_write(&g, &r.body, "gk1", "rk1");

    // AllocationQuery: the same records both ways, and the twins alike.
    let aq = |p: &str| AllocationQueryRequest {
        environment_id: ENV.into(),
        product: product(p),
        groups: Default::default(),
    };
    for (p, twin) in [("PG", "PR"), ("PR", "PR")] {
        let g = w.grpc.allocation_query(w.r(aq(p))).await.unwrap().into_inner();
        let r = w
            .rest(
                "allocation/query",
                json!({"organizationId": "usmf", "productId": twin, "dimensions": dims_json()}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let list = r.body.as_array().unwrap();
        assert_eq!(g.records.len(), list.len(), "{g:?} {}", r.body);
        assert_eq!(g.records.len(), 2, "{g:?}");
        for (gr, rr) in g.records.iter().zip(list) {
            let groups: BTreeMap<String, String> = gr.groups.clone().into_iter().collect();
            assert_eq!(json!(groups), rr["groups"]);
            assert_eq!(
                json!(gr.dimensions.clone().into_iter().collect::<BTreeMap<_, _>>()),
                rr["dimensions"]
            );
            let iv = &rr["quantities"]["@iv"];
            assert_eq!(dec(&gr.allocated), dec(&iv["@allocated"].to_string()));
            assert_eq!(dec(&gr.consumed), dec(&iv["@consumed"].to_string()));
            assert_eq!(
                dec(&gr.cumulative_allocated),
                dec(&iv["@cumulative_allocated"].to_string())
            );
            assert_eq!(
                dec(&gr.cumulative_consumed),
                dec(&iv["@cumulative_consumed"].to_string())
            );
        }
    }

    // IndexQuery, v1 and v2: the twins hold the same stock, and both APIs read the same records.
    for version in ["1.0", "2.0"] {
        let (g, r) = w.query_pair(&["PG", "PR"], version).await;
        let list = if version == "1.0" {
            r.as_array().unwrap().clone()
        } else {
            r["Value"].as_array().unwrap().clone()
        };
        assert_eq!(g.records.len(), 2, "{g:?}");
        assert_eq!(g.records.len(), list.len());
        for (gr, rr) in g.records.iter().zip(&list) {
            same_record(gr, rr, false);
        }
        same_record(&g.records[0], &list[1], true);
        assert_eq!(g.next_link, r["nextLink"].as_str().unwrap_or(""));
    }
    let (g, _) = w.query_pair(&["PG"], "1.0").await;
    let q = typed_quantities(g.records[0].quantities.as_ref());
    // 20 + 1.5 in, 1 consumed out of pos.inbound.
    assert_eq!(q["pos"]["inbound"], dec("20.5"), "{q:?}");

    // ExactQuery.
    let g = w
        .grpc
        .exact_query(w.r(ExactQueryRequest {
            environment_id: ENV.into(),
            organization_id: vec!["usmf".into()],
            product_id: vec!["PG".into(), "PR".into()],
            dimensions: vec!["siteId".into(), "locationId".into(), "ColorId".into()],
            values: vec![StringList {
                values: vec!["1".into(), "13".into(), "Red".into()],
            }],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let q = json!({"filters": {"organizationId": ["usmf"], "productId": ["PG", "PR"],
        "dimensions": ["siteId", "locationId", "ColorId"], "values": [["1", "13", "Red"]]}});
    let r = w.rest("onhand/exactquery", q).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = r.body.as_array().unwrap();
    assert_eq!((g.records.len(), list.len()), (2, 2), "{g:?} {}", r.body);
    for (gr, rr) in g.records.iter().zip(list) {
        same_record(gr, rr, false);
    }
}

#[tokio::test]
async fn grpc_refuses_what_rest_refuses_with_the_same_codes() {
    let (channel, rest, _) = serve().await;
    let mut grpc = InventoryClient::new(channel);
    let t = issue_token(KEY, ENV, "client", now_s() + 600);
    let stock = json!({"id": "s1", "organizationId": "usmf", "productId": "PX", "dimensions": dims_json(),
        "quantities": {"pos": {"inbound": 2}}});
    assert_eq!(post(&rest, &t, "onhand", stock).await.status, StatusCode::OK);
    let reserve = |q: &str| ReserveRequest {
        environment_id: ENV.into(),
        item: Some(Reserve {
            id: "x1".into(),
            product: product("PX"),
            quantity_data_source: "iv".into(),
            modifier: "softreservphysical".into(),
            quantity: q.into(),
            if_check_avail_for_reserv: None,
        }),
    };
    let reserve_json = |q: Value| {
        let mut b = json!({"id": "x1", "organizationId": "usmf", "productId": "PX", "dimensions": dims_json(),
            "quantityDataSource": "iv", "modifier": "softreservphysical"});
        if !q.is_null() {
            b["quantity"] = q;
        }
        b
    };

    // Not enough stock: FAILED_PRECONDITION / 409, and nothing reserved either way.
    let e = grpc.reserve(authed(reserve("100"), &t)).await.unwrap_err();
    let r = post(&rest, &t, "onhand/reserve", reserve_json(json!(100))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    same_refusal(&e, r.status, &r.body);
    assert_eq!(e.code(), Code::FailedPrecondition);

    // A missing field: INVALID_ARGUMENT / 400 with the same message.
    let e = grpc.reserve(authed(reserve(""), &t)).await.unwrap_err();
    let r = post(&rest, &t, "onhand/reserve", reserve_json(Value::Null)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    same_refusal(&e, r.status, &r.body);

    // No token, a token of another environment.
    let e = grpc.reserve(tonic::Request::new(reserve("1"))).await.unwrap_err();
    let path = format!("/api/environment/{ENV}/onhand/reserve");
    let r = send(
        &rest,
        Method::POST,
        &path,
        None,
        Some(reserve_json(json!(1)).to_string()),
        &[],
    )
    .await;
    same_refusal(&e, r.status, &r.body);
    assert_eq!(e.code(), Code::Unauthenticated);
    let other = issue_token(KEY, "other-env", "client", now_s() + 60);
    let e = grpc.reserve(authed(reserve("1"), &other)).await.unwrap_err();
    let r = post(&rest, &other, "onhand/reserve", reserve_json(json!(1))).await;
    same_refusal(&e, r.status, &r.body);
    assert_eq!(e.code(), Code::PermissionDenied);

    // Environment `*` is changed only with the cluster secret.
    let star = issue_token(KEY, "*", "client", now_s() + 60);
    let mut request = reserve("1");
    request.environment_id = "*".into();
    let e = grpc.reserve(authed(request, &star)).await.unwrap_err();
    let r = send(
        &rest,
        Method::POST,
        "/api/environment/*/onhand/reserve",
        Some(&star),
        Some(reserve_json(json!(1)).to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    same_refusal(&e, r.status, &r.body);

    // Bulk limit: 513 items is refused whole.
    let item = reserve("1").item.unwrap();
    let e = grpc
        .reserve_bulk(authed(
            ReserveBulkRequest {
                environment_id: ENV.into(),
                items: vec![item; 513],
            },
            &t,
        ))
        .await
        .unwrap_err();
    let r = post(
        &rest,
        &t,
        "onhand/reserve/bulk",
        json!(vec![reserve_json(json!(1)); 513]),
    )
    .await;
    assert_eq!(r.body["code"], "limit.bulk_items", "{}", r.body);
    same_refusal(&e, r.status, &r.body);

    // Query limits: more than 5,000 products; two organizations in v1; a bad Api-Version.
    let products: Vec<String> = (0..5001).map(|i| format!("p{i}")).collect();
    let e = grpc
        .index_query(authed(
            IndexQueryRequest {
                environment_id: ENV.into(),
                organization_id: vec!["usmf".into()],
                product_id: products.clone(),
                ..Default::default()
            },
            &t,
        ))
        .await
        .unwrap_err();
    let r = post(
        &rest,
        &t,
        "onhand/indexquery",
        json!({"filters": {"organizationId": ["usmf"], "productId": products}}),
    )
    .await;
    assert_eq!(r.body["code"], "limit.products", "{}", r.body);
    same_refusal(&e, r.status, &r.body);
    let e = grpc
        .index_query(authed(
            IndexQueryRequest {
                environment_id: ENV.into(),
                organization_id: vec!["usmf".into(), "other".into()],
                product_id: vec!["PX".into()],
                ..Default::default()
            },
            &t,
        ))
        .await
        .unwrap_err();
    let r = post(
        &rest,
        &t,
        "onhand/indexquery",
        json!({"filters": {"organizationId": ["usmf", "other"], "productId": ["PX"]}}),
    )
    .await;
    assert_eq!(r.body["code"], "limit.organizations", "{}", r.body);
    same_refusal(&e, r.status, &r.body);
    let e = grpc
        .index_query(authed(
            IndexQueryRequest {
                environment_id: ENV.into(),
                api_version: "3.0".into(),
                ..Default::default()
            },
            &t,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("header.api_version: "), "{e:?}");

    // A message over the body limit (2 MiB here): tonic refuses it before any service decodes it.
    let mut huge = reserve("1");
    if let Some(item) = huge.item.as_mut() {
        item.id = "x".repeat(3 * 1024 * 1024);
    }
    let e = grpc.reserve(authed(huge, &t)).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{}", e.message());

    // None of it changed anything.
    let r = post(
        &rest,
        &t,
        "onhand/indexquery",
        index_query(&["PX"], &["1"], &["13"], &[]),
    )
    .await;
    assert_eq!(
        r.body[0]["quantities"]["iv"]["softreservphysical"],
        json!(0),
        "{}",
        r.body
    );
    assert_eq!(r.body[0]["quantities"]["pos"]["inbound"], json!(2), "{}", r.body);
}
