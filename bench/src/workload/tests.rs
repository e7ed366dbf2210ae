use super::*;
use crate::api::{self, Conn, Key};
use crate::rng::{Rng, Zipf};
use crate::stats::{Class, Live, Recorder};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[test]
fn mixes_parse_and_pick_by_weight() {
    let m = Mix::parse("reserve=3, query=1,unreserve=0").unwrap();
    let mut rng = Rng::new(5);
    let mut n = [0u32; 4];
    for _ in 0..40_000 {
        n[m.pick(&mut rng) as usize] += 1;
    }
    assert_eq!(n[ChanOp::Unreserve as usize], 0);
    let ratio = n[ChanOp::Reserve as usize] as f64 / n[ChanOp::Query as usize] as f64;
    assert!((2.7..3.3).contains(&ratio), "{ratio}");
    assert!(Mix::parse("buy=1").is_err());
    assert!(Mix::parse("reserve=0").is_err());
    assert!(Mix::parse("reserve").is_err());
}

#[test]
fn clients_are_split_over_channels() {
    let split = [50.0, 30.0, 20.0];
    let counts = (0..64).fold([0; 3], |mut a, c| {
        a[channel_of(c, 64, &split)] += 1;
        a
    });
    assert_eq!(counts.iter().sum::<i32>(), 64);
    assert!(
        (31..=33).contains(&counts[0]) && (18..=20).contains(&counts[1]),
        "{counts:?}"
    );
    assert_eq!(channel_of(0, 1, &[0.0, 0.0, 1.0]), 2);
}

#[test]
fn spaces_and_requests_have_unique_ids_and_every_pair() {
    let space = Space {
        tag: "t".into(),
        products: 1000,
        sites: 5,
        locations: 10,
    };
    let pairs: std::collections::HashSet<(String, String)> =
        (0..1000).map(|i| space.key(i)).map(|k| (k.site, k.location)).collect();
    assert_eq!(pairs.len(), 50);
    let spec = Spec::Bulk { space, size: 512 };
    let mut st = ClientState::new("t", 3, 1, 0);
    let r = spec.next(&mut st, "usmf");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 512);
    let ids: std::collections::HashSet<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let products: std::collections::HashSet<&str> = items.iter().map(|i| i["productId"].as_str().unwrap()).collect();
    assert_eq!((ids.len(), products.len()), (512, 512));
    let r2 = spec.next(&mut st, "usmf");
    let v2: serde_json::Value = serde_json::from_slice(&r2.body).unwrap();
    assert_ne!(v2[0]["id"], v[0]["id"]);
}

#[test]
fn expected_reserved_counts_reserves_minus_unreserves() {
    let space = Space {
        tag: "t".into(),
        products: 10,
        sites: 1,
        locations: 1,
    };
    let mut r = Recorder::default();
    for _ in 0..5 {
        r.record("web.reserve", Class::Ok, 1);
    }
    r.record("web.reserve", Class::Refused, 1);
    r.record("marketplace.reserve", Class::Ok, 1);
    r.record("web.unreserve", Class::Ok, 1);
    r.record("marketplace.unreserve", Class::Ok, 1);
    r.record("pos.change", Class::Ok, 1);
    let ch = Spec::Channels {
        space: space.clone(),
        zipf: Zipf::new(10, 1.0).unwrap(),
        mixes: [
            Mix::parse("reserve=1").unwrap(),
            Mix::parse("reserve=1").unwrap(),
            Mix::parse("reserve=1").unwrap(),
        ],
        split: [1.0, 1.0, 1.0],
    };
    assert_eq!(ch.expected_reserved(&r), 4.0);
    r.ok_items = 7;
    assert_eq!(
        Spec::Spread {
            space: space.clone(),
            qty: 3
        }
        .expected_reserved(&r),
        21.0
    );
    assert_eq!(Spec::Bulk { space, size: 2 }.expected_reserved(&r), 7.0);
}

#[test]
fn query_requests_cover_the_pairs() {
    let spec = Spec::Query {
        tag: "t".into(),
        products: 20,
        sites: 10,
        locations: 10,
        per_query: 5,
        exact_ratio: 1.0,
    };
    let mut st = ClientState::new("t", 0, 1, 0);
    let r = spec.next(&mut st, "usmf");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["filters"]["values"].as_array().unwrap().len(), 100);
    assert_eq!(v["filters"]["productId"].as_array().unwrap().len(), 5);
    assert_eq!(r.expect_records, Some(500));
    assert_eq!(spec.stock(7, 0).len(), 2000);
}

/// A tiny HTTP/1.1 keep-alive stub: the first `stock` reserves succeed, then 409 shortfalls;
/// every 7th request first answers 503 (retryable).
async fn stub_server(stock: u64) -> (String, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sold = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(AtomicU64::new(0));
    let sold2 = sold.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (sold, seen) = (sold2.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // one request: headers, then content-length bytes
                    let (head_end, len) = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| {
                                    l.strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap())
                                })
                                .unwrap_or(0);
                            break (p + 4, len);
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buf.len() < head_end + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + len);
                    let (status, body) = if seen.fetch_add(1, Ordering::SeqCst) % 7 == 6 {
                        ("503 Service Unavailable", r#"{"code":"raft.no_quorum"}"#.to_string())
                    } else if sold.fetch_add(1, Ordering::SeqCst) < stock {
                        (
                            "200 OK",
                            r#"{"reservationId":"r","processingStatus":"success","statusCode":200}"#.to_string(),
                        )
                    } else {
                        sold.fetch_sub(1, Ordering::SeqCst);
                        (
                            "409 Conflict",
                            r#"{"processingStatus":"failure","statusCode":500}"#.to_string(),
                        )
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), sold)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_loop_against_a_stub_counts_exactly_and_retries_503() {
    let (base, sold) = stub_server(300).await;
    let key = Key {
        product: "t-hot".into(),
        site: "1".into(),
        location: "101".into(),
    };
    let start = Instant::now();
    let plan = Arc::new(Plan {
        spec: Spec::Hot { key },
        org: "usmf".into(),
        tag: "t".into(),
        seed: 1,
        deadline: Some(start + Duration::from_secs(20)),
        requests: None,
        schedule: None,
        retries: 10,
        clients: 4,
    });
    let live = Arc::new(Live::new(start));
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..4 {
        let http = api::http_client(Duration::from_secs(5), 1).unwrap();
        let conn = Conn::new(http, &base, "bench", "token");
        tasks.push(tokio::spawn(client_loop(
            c,
            conn,
            plan.clone(),
            live.clone(),
            issued.clone(),
        )));
    }
    let mut total = Recorder::default();
    for t in tasks {
        let (r, end) = t.await.unwrap();
        assert!(end.sold_out);
        assert_eq!(end.unresolved, 0);
        total.merge(&r);
    }
    assert_eq!(total.ok, 300);
    assert_eq!(sold.load(Ordering::SeqCst), 300);
    assert_eq!(total.refused, 4);
    assert!(total.errors > 0);
    assert_eq!(total.errors_by_kind.get("http_503:raft.no_quorum"), Some(&total.errors));
    assert_eq!(total.requests, 304 + total.errors);
    let tl = live.timeline();
    assert_eq!(tl.iter().map(|s| s.ok).sum::<u64>(), 300);
}
