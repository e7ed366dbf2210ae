//! Holds on a 3-node cluster of real processes: all or nothing across shards, a gateway killed
//! between the two phases, expiry by the leaders' sweep (the primary part's, passed on to the
//! other parts), and the event stream across a leader kill.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use ivory_cluster::{Layout, ShardRing};
use ivory_core::PartitionKey;
use ivory_tests::{Client, Cluster, sum_measure};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const SHARDS: u32 = 4;
const ENV: &str = "env";
const ORG: &str = "org";
/// The gateway's tentative expiry (ivory-gateway `TENTATIVE_TTL_MS`).
const TENTATIVE_TTL: Duration = Duration::from_secs(10);

fn ring() -> ShardRing {
    ShardRing::new(&Layout::new(SHARDS)).expect("layout")
}

/// Sites (location "11") whose partitions cover as many shards as possible, `n` of them, the
/// first ones in distinct shards.
fn sites(n: usize) -> Vec<(String, u32)> {
    let ring = ring();
    let mut by_shard: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for i in 1..400 {
        let site = format!("s{i}");
        by_shard
            .entry(ring.shard_of(&PartitionKey::new(ENV, ORG, &site, "11")))
            .or_default()
            .push(site);
    }
    let mut out = Vec::new();
    for round in 0.. {
        for (shard, list) in &by_shard {
            if let Some(site) = list.get(round) {
                out.push((site.clone(), *shard));
                if out.len() == n {
                    return out;
                }
            }
        }
    }
    out
}

fn stock(id: &str, product: &str, site: &str, qty: i64) -> Value {
    json!({"id": id, "organizationId": ORG, "productId": product,
           "dimensions": {"siteId": site, "locationId": "11"}, "quantities": {"pos": {"inbound": qty}}})
}

fn item(line: &str, product: &str, site: &str, qty: i64) -> Value {
    json!({"lineId": line, "productId": product, "dimensions": {"siteId": site, "locationId": "11"}, "quantity": qty})
}

async fn measure(c: &Client, product: &str, m: &str) -> f64 {
    let q = json!({"filters": {"organizationId": [ORG], "productId": [product]}, "groupByValues": [], "returnNegative": true});
    let records = c.post_ok("onhand/indexquery", &q).await;
    sum_measure(&records, "iv", m)
}

/// Waits until `check` holds, polling every 50 ms; panics with `what` after `timeout`.
async fn until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Milliseconds since the epoch of `2026-11-23T10:26:09.123Z`.
fn ms_of(text: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| text[r].parse::<u32>().expect("a number");
    let days = ivory_core::date::days_from_civil(i64::from(n(0..4)), n(5..7), n(8..10)).expect("a date");
    let secs = u64::from(n(11..13)) * 3600 + u64::from(n(14..16)) * 60 + u64::from(n(17..19));
    days as u64 * 86_400_000 + secs * 1000 + u64::from(n(20..23))
}

/// POST that retries an unknown outcome (503, dropped connection) with the same body: holds
/// are idempotent by id and body.
async fn post_retrying(c: &Client, path: &str, body: &Value) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c.post(path, body).await {
            Ok(a) if a.status != 503 => return (a.status, a.body),
            other => {
                assert!(Instant::now() < deadline, "{path} kept failing: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn holds_across_shards_settle_all_or_nothing() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let cluster = Cluster::nodes_with_env(
            Path::new(BIN),
            3,
            SHARDS,
            &[("IVORY_TEST_HOLD_PAUSE_MS", "5000"), ("IVORY_TEST_HOLD_PAUSE_PREFIX", "paused-")],
        );
        let mut cluster = cluster;
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let gateway = cluster.client(0, ENV).await;
        let other = cluster.client(1, ENV).await;
        let sites = sites(5);
        assert!(sites.iter().map(|(_, s)| s).collect::<BTreeSet<_>>().len() >= 3, "{sites:?}");
        for (i, (site, _)) in sites.iter().enumerate() {
            gateway.post_ok("onhand", &stock(&format!("st-{i}"), "SKU", site, 5)).await;
        }

        // 1. Five lines across shards, the last one short: nothing is held anywhere.
        let items: Vec<Value> = sites
            .iter()
            .enumerate()
            .map(|(i, (site, _))| item(&format!("l{i}"), "SKU", site, if i == 4 { 6 } else { 2 }))
            .collect();
        let body = json!({"id": "cart-short", "organizationId": ORG, "items": items});
        let (status, err) = post_retrying(&gateway, "holds", &body).await;
        assert_eq!(status, 409, "{err}");
        assert_eq!(err["code"], "hold.insufficient", "{err}");
        assert!(err["message"].as_str().unwrap_or("").contains("'l4'"), "{err}");
        for c in [&gateway, &other] {
            assert_eq!(measure(c, "SKU", "availabletoreserve").await, 25.0, "full availability");
            assert_eq!(measure(c, "SKU", "softreservphysical").await, 0.0, "nothing held");
        }

        // 2. An abandoned hold across shards expires, and the leaders' sweep (not a read) returns
        // its stock within one sweep interval of its expiry.
        let body = json!({"id": "cart-abandoned", "organizationId": ORG, "expiresInSeconds": 2,
            "items": [item("a", "SKU", &sites[0].0, 5), item("b", "SKU", &sites[1].0, 5)]});
        let (status, hold) = post_retrying(&gateway, "holds", &body).await;
        assert_eq!(status, 201, "{hold}");
        assert_eq!(hold["status"], "active");
        assert_eq!(measure(&other, "SKU", "availabletoreserve").await, 15.0);
        let expires_at = ms_of(hold["expiresAt"].as_str().expect("expiresAt"));
        // No read in the meantime: only the sweeper can expire it.
        let now = ivory_core_now();
        // Read only after the slack below has passed: a sweep done by this read would be too late.
        tokio::time::sleep(Duration::from_millis(expires_at.saturating_sub(now) + 1500)).await;
        let got = other
            .get(&format!("holds/cart-abandoned?organizationId={ORG}"))
            .await
            .expect("GET hold");
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(got.body["status"], "expired", "{}", got.body);
        let history = got.body["history"].as_array().expect("history");
        let expired_at = ms_of(history.last().expect("a change")["at"].as_str().expect("at"));
        assert!(
            // One sweep interval (250 ms) plus scheduling slack on a busy 2-core machine.
            expired_at >= expires_at && expired_at <= expires_at + 250 + 750,
            "expired by the sweep at {expired_at}, {} ms after its expiry {expires_at}",
            expired_at.saturating_sub(expires_at)
        );
        // The primary decides: every line reads released, also the other shard's before its
        // part's expiry (passed on by the primary's leader) has landed.
        assert!(
            got.body["items"].as_array().expect("items").iter().all(|i| i["status"] == "released"),
            "{}",
            got.body
        );
        // The other part's own expiry is a safety net two minutes later: its stock comes back
        // within seconds only because the primary's shard leader passes the expiry on.
        let passed_on = Instant::now();
        until(Duration::from_secs(5), "the other shard's part released after the primary's expiry", || async {
            measure(&other, "SKU", "availabletoreserve").await == 25.0
        })
        .await;
        assert_eq!(measure(&other, "SKU", "softreservphysical").await, 0.0, "nothing is held");
        eprintln!("other part released {:?} after the read", passed_on.elapsed());

        // 3. kill -9 the gateway between the two phases: the tentative parts expire by themselves.
        let body = json!({"id": "paused-cart", "organizationId": ORG, "expiresInSeconds": 600,
            "items": [item("a", "SKU", &sites[0].0, 4), item("b", "SKU", &sites[1].0, 4), item("c", "SKU", &sites[2].0, 4)]});
        let started = Instant::now();
        let in_flight = {
            let c = gateway.clone();
            tokio::spawn(async move { c.post("holds", &body).await })
        };
        until(Duration::from_secs(5), "the tentative parts are held", || async {
            let a = other.get(&format!("holds/paused-cart?organizationId={ORG}")).await;
            matches!(a, Ok(a) if a.status == 200 && a.body["status"] == "tentative"
                && a.body["items"].as_array().is_some_and(|i| i.len() == 3))
        })
        .await;
        assert_eq!(measure(&other, "SKU", "availabletoreserve").await, 13.0, "held tentatively");
        cluster.nodes[0].kill9();
        assert!(in_flight.await.expect("task").is_err(), "the gateway died before it answered");
        let killed_after = started.elapsed();
        assert!(killed_after < Duration::from_secs(5), "killed in the pause");
        until(TENTATIVE_TTL + Duration::from_secs(8), "the tentative parts expired", || async {
            let a = other.get(&format!("holds/paused-cart?organizationId={ORG}")).await;
            matches!(a, Ok(a) if a.status == 200 && a.body["status"] == "expired")
        })
        .await;
        assert!(started.elapsed() >= TENTATIVE_TTL - Duration::from_millis(500));
        assert_eq!(measure(&other, "SKU", "availabletoreserve").await, 25.0, "nothing is held");
        assert_eq!(measure(&other, "SKU", "softreservphysical").await, 0.0);
        let hold = other
            .get(&format!("holds/paused-cart?organizationId={ORG}"))
            .await
            .expect("GET")
            .body;
        assert!(
            hold["items"].as_array().expect("items").iter().all(|i| i["status"] == "released"),
            "{hold}"
        );
    })
    .await
    .expect("the test finishes in time");
}

fn ivory_core_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One server-sent event: (id, data).
type Sse = (String, Value);

/// Follows `GET /events` (server-sent events) from `last_event_id`.
struct Follower {
    response: reqwest::Response,
    buffer: String,
}

impl Follower {
    async fn open(c: &Client, last_event_id: Option<&str>) -> Follower {
        // No overall timeout: the stream is long-lived.
        let http = reqwest::Client::new();
        let mut request = http.get(c.api("events")).bearer_auth(&c.token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("events stream");
        assert_eq!(response.status(), 200);
        Follower {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when none came before `deadline`.
    async fn next(&mut self, deadline: Instant) -> Option<Sse> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = serde_json::from_str(v.trim()).ok();
                    }
                }
                if let (Some(id), Some(data)) = (id, data) {
                    return Some((id, data));
                }
            }
            let chunk = tokio::time::timeout_at(deadline.into(), self.response.chunk())
                .await
                .ok()?;
            let chunk = chunk.expect("stream readable")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn key(e: &Value) -> String {
    format!(
        "{}/{}",
        e["holdId"].as_str().unwrap_or("?"),
        e["type"].as_str().unwrap_or("?")
    )
}

/// Creates a one-line hold in `site` and releases every other one: 1 or 2 events.
async fn hold_events(c: &Client, n: usize, site: &str, expected: &mut Vec<String>) {
    let id = format!("h{n}");
    let body = json!({"id": id, "organizationId": ORG, "items": [item("1", "SKU", site, 1)]});
    let (status, hold) = post_retrying(c, "holds", &body).await;
    assert!(status == 201 || status == 200, "{status} {hold}");
    expected.push(format!("{id}/hold.created"));
    if n % 2 == 1 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = c
                .http
                .delete(c.api(&format!("holds/{id}?organizationId={ORG}")))
                .bearer_auth(&c.token)
                .send()
                .await;
            match r {
                Ok(r) if r.status().as_u16() == 200 => break,
                other => {
                    assert!(Instant::now() < deadline, "DELETE {id}: {other:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        expected.push(format!("{id}/hold.released"));
    }
}

#[tokio::test]
async fn event_stream_delivers_every_event_once_across_a_leader_kill() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut cluster = Cluster::nodes(Path::new(BIN), 3, SHARDS);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        let sites = sites(4);
        let (victim_site, victim_shard) = sites[0].clone();
        let leader = cluster.leader_of(victim_shard).await.expect("a leader");
        let victim = cluster
            .nodes
            .iter()
            .position(|n| n.id == leader)
            .expect("leader is a node");
        let follower_node = (victim + 1) % 3;
        let c = cluster.client(follower_node, ENV).await;
        for (i, (site, _)) in sites.iter().enumerate() {
            c.post_ok("onhand", &stock(&format!("st-{i}"), "SKU", site, 100)).await;
        }
        let mut follow = Follower::open(&c, None).await;
        let mut expected = Vec::new();
        let mut seen: Vec<Sse> = Vec::new();
        // Before the kill: holds in every shard, most in the victim's shard.
        for n in 0..8 {
            let site = if n % 2 == 0 {
                &victim_site
            } else {
                &sites[n % sites.len()].0
            };
            hold_events(&c, n, site, &mut expected).await;
        }
        while seen.len() < 6 {
            let e = follow
                .next(Instant::now() + Duration::from_secs(10))
                .await
                .expect("an event");
            seen.push(e);
        }
        cluster.nodes[victim].kill9();
        // After the kill: more holds, through the surviving node, while the shard elects.
        for n in 8..16 {
            let site = if n % 2 == 0 {
                &victim_site
            } else {
                &sites[n % sites.len()].0
            };
            hold_events(&c, n, site, &mut expected).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < expected.len() {
            match follow.next(deadline).await {
                Some(e) => seen.push(e),
                None => break,
            }
        }
        // Nothing more arrives (no duplicates).
        assert!(
            follow
                .next(Instant::now() + Duration::from_millis(1200))
                .await
                .is_none()
        );
        let mut got: Vec<String> = seen.iter().map(|(_, v)| key(v)).collect();
        let mut want = expected.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "every event exactly once\n{}", cluster.logs());

        // Resume from an event's id (Last-Event-ID) on a new connection: exactly the rest.
        let mut resumed = Follower::open(&c, Some(&seen[4].0)).await;
        let mut rest = Vec::new();
        while rest.len() < seen.len() - 5 {
            let e = resumed
                .next(Instant::now() + Duration::from_secs(10))
                .await
                .expect("an event");
            rest.push(key(&e.1));
        }
        assert!(
            resumed
                .next(Instant::now() + Duration::from_millis(800))
                .await
                .is_none()
        );
        let mut after: Vec<String> = seen[5..].iter().map(|(_, v)| key(v)).collect();
        rest.sort();
        after.sort();
        assert_eq!(rest, after);
    })
    .await
    .expect("the test finishes in time");
}
