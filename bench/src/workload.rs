//! The workloads (what each request is), stock set-up, and the client loop (closed or open).

use crate::api::{self, Conn, Key, Verdict};
use crate::rng::{Rng, Zipf};
use crate::stats::{Class, Live, Recorder, Schedule, latency_us};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Products spread over `sites` x `locations` pairs: product `i` lives at pair `i mod pairs`.
#[derive(Clone, Debug)]
pub struct Space {
    pub tag: String,
    pub products: usize,
    pub sites: usize,
    pub locations: usize,
}

pub fn site_id(s: usize) -> String {
    format!("{}", s + 1)
}

pub fn location_id(s: usize, l: usize) -> String {
    format!("{}{:02}", s + 1, l + 1)
}

/// The query workload's locations exist at every site, so sites x locations is a cross product
/// (an index query's siteId and locationId lists multiply).
pub fn shared_location_id(l: usize) -> String {
    format!("L{:02}", l + 1)
}

impl Space {
    pub fn key(&self, i: usize) -> Key {
        let pair = i % (self.sites * self.locations);
        let (s, l) = (pair / self.locations, pair % self.locations);
        Key {
            product: format!("{}-p{i}", self.tag),
            site: site_id(s),
            location: location_id(s, l),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChanOp {
    Change,
    Reserve,
    Unreserve,
    Query,
}

const CHAN_LABELS: [[&str; 4]; 3] = [
    ["web.change", "web.reserve", "web.unreserve", "web.query"],
    [
        "marketplace.change",
        "marketplace.reserve",
        "marketplace.unreserve",
        "marketplace.query",
    ],
    ["pos.change", "pos.reserve", "pos.unreserve", "pos.query"],
];

/// Weighted operation mix of one channel, e.g. "reserve=60,unreserve=10,query=30".
#[derive(Clone, Debug, PartialEq)]
pub struct Mix(pub Vec<(ChanOp, f64)>);

impl Mix {
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut v = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not NAME=WEIGHT"))?;
            let op = match name.trim() {
                "change" => ChanOp::Change,
                "reserve" => ChanOp::Reserve,
                "unreserve" => ChanOp::Unreserve,
                "query" => ChanOp::Query,
                other => {
                    return Err(format!(
                        "unknown operation '{other}' (change, reserve, unreserve, query)"
                    ));
                }
            };
            let w: f64 = w.trim().parse().map_err(|_| format!("'{w}' is not a weight"))?;
            if !(w.is_finite() && w >= 0.0) {
                return Err(format!("weight of {name} must be >= 0"));
            }
            v.push((op, w));
        }
        if v.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
            return Err(format!("mix '{text}' has no positive weight"));
        }
        Ok(Mix(v))
    }

    pub fn pick(&self, rng: &mut Rng) -> ChanOp {
        let total: f64 = self.0.iter().map(|(_, w)| w).sum();
        let mut u = rng.unit() * total;
        for &(op, w) in &self.0 {
            if u < w {
                return op;
            }
            u -= w;
        }
        self.0
            .iter()
            .rev()
            .find(|(_, w)| *w > 0.0)
            .map_or(ChanOp::Reserve, |(op, _)| *op)
    }
}

/// Client `c` of `n` belongs to the channel whose share of clients covers it.
pub fn channel_of(c: usize, n: usize, split: &[f64; 3]) -> usize {
    let total: f64 = split.iter().sum();
    let x = (c as f64 + 0.5) / n as f64 * total;
    let mut acc = 0.0;
    for (i, w) in split.iter().enumerate() {
        acc += w;
        if x < acc {
            return i;
        }
    }
    2
}

pub enum Spec {
    Spread {
        space: Space,
        qty: i64,
    },
    Hot {
        key: Key,
    },
    Bulk {
        space: Space,
        size: usize,
    },
    Channels {
        space: Space,
        zipf: Zipf,
        mixes: [Mix; 3],
        split: [f64; 3],
    },
    Query {
        tag: String,
        products: usize,
        sites: usize,
        locations: usize,
        per_query: usize,
        exact_ratio: f64,
    },
}

impl Spec {
    pub fn name(&self) -> &'static str {
        match self {
            Spec::Spread { .. } => "spread",
            Spec::Hot { .. } => "hot",
            Spec::Bulk { .. } => "bulk",
            Spec::Channels { .. } => "channels",
            Spec::Query { .. } => "query",
        }
    }

    pub fn query_product(tag: &str, i: usize) -> String {
        format!("{tag}-q{i}")
    }

    /// The stock to load before the clock starts.
    pub fn stock(&self, onhand: i64, hot_stock: i64) -> Vec<(Key, i64)> {
        match self {
            Spec::Spread { space, .. } | Spec::Bulk { space, .. } | Spec::Channels { space, .. } => {
                (0..space.products).map(|i| (space.key(i), onhand)).collect()
            }
            Spec::Hot { key } => vec![(key.clone(), hot_stock)],
            Spec::Query {
                tag,
                products,
                sites,
                locations,
                ..
            } => {
                let mut v = Vec::with_capacity(products * sites * locations);
                for p in 0..*products {
                    for s in 0..*sites {
                        for l in 0..*locations {
                            let key = Key {
                                product: Self::query_product(tag, p),
                                site: site_id(s),
                                location: shared_location_id(l),
                            };
                            v.push((key, onhand));
                        }
                    }
                }
                v
            }
        }
    }

    /// Records a query answer must hold (every product was stocked at every pair).
    fn expected_records(&self, products_asked: usize) -> Option<u32> {
        match self {
            Spec::Query { sites, locations, .. } => Some((products_asked * sites * locations) as u32),
            Spec::Channels { .. } => Some(1),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judge {
    Write,
    Bulk,
    Query,
}

/// One request to send.
pub struct Req {
    pub op: &'static str,
    pub path: &'static str,
    pub body: Vec<u8>,
    pub items: u32,
    pub judge: Judge,
    pub expect_records: Option<u32>,
    /// Channels: the key a reserve was for (to unreserve later).
    pub key: Option<usize>,
}

pub struct ClientState {
    pub rng: Rng,
    id_prefix: String,
    seq: u64,
    pub channel: usize,
    /// Channels: (key, reservationId) of reserves this client may cancel.
    pub held: Vec<(usize, String)>,
    picks: Vec<usize>,
}

impl ClientState {
    pub fn new(tag: &str, c: usize, seed: u64, channel: usize) -> ClientState {
        ClientState {
            rng: Rng::for_client(seed, c),
            id_prefix: format!("{tag}-c{c}-"),
            seq: 0,
            channel,
            held: Vec::new(),
            picks: Vec::new(),
        }
    }

    fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("{}{}", self.id_prefix, self.seq)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn reserve_req(st: &mut ClientState, org: &str, key: &Key, qty: i64, op: &'static str) -> Req {
    let id = st.next_id();
    Req {
        op,
        path: "onhand/reserve",
        body: to_json(&api::ReserveBody::new(&id, org, key, qty)),
        items: 1,
        judge: Judge::Write,
        expect_records: None,
        key: None,
    }
}

impl Spec {
    pub fn next(&self, st: &mut ClientState, org: &str) -> Req {
        match self {
            Spec::Spread { space, qty } => {
                let key = space.key(st.rng.below(space.products));
                reserve_req(st, org, &key, *qty, "reserve")
            }
            Spec::Hot { key } => reserve_req(st, org, key, 1, "reserve"),
            Spec::Bulk { space, size } => {
                // `size` distinct keys, spread over every partition.
                st.picks.clear();
                while st.picks.len() < *size {
                    for _ in st.picks.len()..*size {
                        let k = st.rng.below(space.products);
                        st.picks.push(k);
                    }
                    st.picks.sort_unstable();
                    st.picks.dedup();
                }
                let picks = std::mem::take(&mut st.picks);
                let keys: Vec<Key> = picks.iter().map(|&i| space.key(i)).collect();
                let ids: Vec<String> = keys.iter().map(|_| st.next_id()).collect();
                let bodies: Vec<api::ReserveBody> = keys
                    .iter()
                    .zip(&ids)
                    .map(|(k, id)| api::ReserveBody::new(id, org, k, 1))
                    .collect();
                let body = to_json(&bodies);
                st.picks = picks;
                Req {
                    op: "reserve_bulk",
                    path: "onhand/reserve/bulk",
                    body,
                    items: *size as u32,
                    judge: Judge::Bulk,
                    expect_records: None,
                    key: None,
                }
            }
            Spec::Channels { space, zipf, mixes, .. } => {
                let ch = st.channel;
                let labels = &CHAN_LABELS[ch];
                let mut op = mixes[ch].pick(&mut st.rng);
                if op == ChanOp::Unreserve && st.held.is_empty() {
                    op = ChanOp::Reserve;
                }
                match op {
                    ChanOp::Reserve => {
                        let k = zipf.sample(&mut st.rng);
                        let mut r = reserve_req(st, org, &space.key(k), 1, labels[1]);
                        r.key = Some(k);
                        r
                    }
                    ChanOp::Unreserve => {
                        let at = st.rng.below(st.held.len());
                        let (k, rid) = st.held.swap_remove(at);
                        let key = space.key(k);
                        let id = st.next_id();
                        let body = api::UnreserveBody {
                            id: &id,
                            org,
                            product: &key.product,
                            reservation_id: &rid,
                            dimensions: api::Dims {
                                site: &key.site,
                                location: &key.location,
                            },
                            offset: 1,
                        };
                        Req {
                            op: labels[2],
                            path: "onhand/unreserve",
                            body: to_json(&body),
                            items: 1,
                            judge: Judge::Write,
                            expect_records: None,
                            key: None,
                        }
                    }
                    ChanOp::Change => {
                        // A store sale (pos.outbound 1), now and then a receipt (iv.onhand +20).
                        let key = space.key(zipf.sample(&mut st.rng));
                        let id = st.next_id();
                        let receipt = st.rng.below(10) == 0;
                        let body = if receipt {
                            api::ChangeBody::new(&id, org, &key, "pos", "inbound", 20)
                        } else {
                            api::ChangeBody::new(&id, org, &key, "pos", "outbound", 1)
                        };
                        Req {
                            op: labels[0],
                            path: "onhand",
                            body: to_json(&body),
                            items: 1,
                            judge: Judge::Write,
                            expect_records: None,
                            key: None,
                        }
                    }
                    ChanOp::Query => {
                        let key = space.key(zipf.sample(&mut st.rng));
                        let body = api::index_query(org, vec![&key.product], vec![&key.site], vec![&key.location]);
                        Req {
                            op: labels[3],
                            path: "onhand/indexquery",
                            body: to_json(&body),
                            items: 1,
                            judge: Judge::Query,
                            expect_records: self.expected_records(1),
                            key: None,
                        }
                    }
                }
            }
            Spec::Query {
                tag,
                products,
                sites,
                locations,
                per_query,
                exact_ratio,
            } => {
                st.picks.clear();
                while st.picks.len() < *per_query {
                    let p = st.rng.below(*products);
                    if !st.picks.contains(&p) {
                        st.picks.push(p);
                    }
                }
                let names: Vec<String> = st.picks.iter().map(|&p| Self::query_product(tag, p)).collect();
                let names_ref: Vec<&str> = names.iter().map(String::as_str).collect();
                let site_ids: Vec<String> = (0..*sites).map(site_id).collect();
                let exact = st.rng.unit() < *exact_ratio;
                let loc_ids: Vec<String> = (0..*locations).map(shared_location_id).collect();
                let (op, path, body) = if exact {
                    let pairs: Vec<[&str; 2]> = site_ids
                        .iter()
                        .flat_map(|s| loc_ids.iter().map(move |l| [s.as_str(), l.as_str()]))
                        .collect();
                    (
                        "exactquery",
                        "onhand/exactquery",
                        to_json(&api::exact_query(org, names_ref, pairs)),
                    )
                } else {
                    let sites_ref: Vec<&str> = site_ids.iter().map(String::as_str).collect();
                    let locs_ref: Vec<&str> = loc_ids.iter().map(String::as_str).collect();
                    (
                        "indexquery",
                        "onhand/indexquery",
                        to_json(&api::index_query(org, names_ref, sites_ref, locs_ref)),
                    )
                };
                Req {
                    op,
                    path,
                    body,
                    items: 1,
                    judge: Judge::Query,
                    expect_records: self.expected_records(*per_query),
                    key: None,
                }
            }
        }
    }
}

/// Load stock with bulk on-hand events (512 a call, `parallel` calls at a time). Retries 503 and
/// transport errors with the same ids (idempotent), fails on anything else.
pub async fn load_stock(
    conns: &[Conn],
    tag: &str,
    org: &str,
    stock: &[(Key, i64)],
    parallel: usize,
) -> Result<(), String> {
    let chunks: Vec<Vec<u8>> = stock
        .chunks(512)
        .enumerate()
        .map(|(ci, chunk)| {
            let ids: Vec<String> = (0..chunk.len()).map(|i| format!("{tag}-load-{ci}-{i}")).collect();
            let events: Vec<api::ChangeBody> = chunk
                .iter()
                .zip(&ids)
                .map(|((k, n), id)| api::ChangeBody::new(id, org, k, "pos", "inbound", *n))
                .collect();
            to_json(&events)
        })
        .collect();
    let sizes: Vec<u32> = stock.chunks(512).map(|c| c.len() as u32).collect();
    let chunks = Arc::new(chunks);
    let sizes = Arc::new(sizes);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..parallel.max(1) {
        let conn = conns[w % conns.len()].clone();
        let (chunks, sizes, next) = (chunks.clone(), sizes.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= chunks.len() {
                    return Ok(());
                }
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let v = conn
                        .post("onhand/bulk", chunks[i].clone(), |s, b| {
                            api::classify_bulk(s, b, sizes[i])
                        })
                        .await
                        .unwrap_or_else(|k| Verdict::error(k, true));
                    match v {
                        Verdict::Ok { .. } => break,
                        // 503/429/timeouts, and bulk items of an unreachable shard: the same
                        // events again (same ids: already applied items answer as before).
                        Verdict::Error { retryable: true, .. } if attempt < 30 => {
                            tokio::time::sleep(Duration::from_millis(100 * attempt.min(10))).await;
                        }
                        Verdict::Mixed {
                            kind: Some(ref kind),
                            refused: 0,
                            ..
                        } if kind == "bulk_unknown" && attempt < 30 => {
                            tokio::time::sleep(Duration::from_millis(100 * attempt.min(10))).await;
                        }
                        other => return Err(format!("stock load, call {i}: {other:?}")),
                    }
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| format!("stock load task: {e}"))??;
    }
    Ok(())
}

impl Spec {
    /// Quantity of every reserve.
    pub fn qty(&self) -> i64 {
        match self {
            Spec::Spread { qty, .. } => *qty,
            _ => 1,
        }
    }

    /// What the store must hold reserved in all after a run whose every outcome is known: the
    /// successful reserve items x qty; channels: successful reserves - successful unreserves (each
    /// unreserve cancels 1 of an earlier successful reserve of the same key).
    pub fn expected_reserved(&self, total: &Recorder) -> f64 {
        let ok_of = |suffix: &str| -> u64 {
            total
                .by_op
                .iter()
                .filter(|(k, _)| k.ends_with(suffix))
                .map(|(_, o)| o.ok)
                .sum()
        };
        match self {
            Spec::Channels { .. } => ok_of(".reserve") as f64 - ok_of(".unreserve") as f64,
            _ => total.ok_items as f64 * self.qty() as f64,
        }
    }

    /// The key space of spread, bulk and channels.
    pub fn space(&self) -> Option<&Space> {
        match self {
            Spec::Spread { space, .. } | Spec::Bulk { space, .. } | Spec::Channels { space, .. } => Some(space),
            _ => None,
        }
    }
}

/// Read every key of `space` back with index queries (one site/location pair and up to 1,000
/// products a query, `parallel` queries in flight) and add up what the answers say.
pub async fn read_back_space(
    conns: &[Conn],
    org: &str,
    space: &Space,
    parallel: usize,
) -> Result<api::ReadBack, String> {
    let pairs = space.sites * space.locations;
    let mut bodies = Vec::new();
    for p in 0..pairs {
        let keys: Vec<Key> = (p..space.products).step_by(pairs).map(|i| space.key(i)).collect();
        for chunk in keys.chunks(1000) {
            let names: Vec<&str> = chunk.iter().map(|k| k.product.as_str()).collect();
            let body = api::index_query(org, names, vec![&chunk[0].site], vec![&chunk[0].location]);
            bodies.push(to_json(&body));
        }
    }
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..parallel.max(1) {
        let conn = conns[w % conns.len()].clone();
        let (bodies, next) = (bodies.clone(), next.clone());
        tasks.spawn(async move {
            let mut sum = api::ReadBack::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= bodies.len() {
                    return Ok::<_, String>(sum);
                }
                let mut attempt = 0;
                let rb = loop {
                    attempt += 1;
                    let r = conn
                        .post("onhand/indexquery", bodies[i].clone(), |s, b| match s {
                            200 => api::read_back(b).map_err(|e| (false, e)),
                            503 | 429 => Err((true, format!("HTTP {s}"))),
                            _ => Err((false, format!("HTTP {s}: {}", String::from_utf8_lossy(b)))),
                        })
                        .await
                        .unwrap_or_else(|k| Err((true, k.to_string())));
                    match r {
                        Ok(rb) => break rb,
                        Err((true, _)) if attempt < 10 => tokio::time::sleep(Duration::from_millis(200)).await,
                        Err((_, e)) => return Err(format!("read-back query {i}: {e}")),
                    }
                };
                sum.records += rb.records;
                sum.reserved += rb.reserved;
                sum.available += rb.available;
                sum.negative += rb.negative;
            }
        });
    }
    let mut total = api::ReadBack::default();
    while let Some(r) = tasks.join_next().await {
        let rb = r.map_err(|e| format!("read-back task: {e}"))??;
        total.records += rb.records;
        total.reserved += rb.reserved;
        total.available += rb.available;
        total.negative += rb.negative;
    }
    Ok(total)
}

pub struct Plan {
    pub spec: Spec,
    pub org: String,
    pub tag: String,
    pub seed: u64,
    pub deadline: Option<Instant>,
    pub requests: Option<u64>,
    pub schedule: Option<Schedule>,
    pub retries: u32,
    pub clients: usize,
}

/// Open loop: a send counts as late beyond this (tokio's timers have 1 ms resolution).
pub const LATE: Duration = Duration::from_millis(2);

/// Stop a client after this many errors in a row (server gone, misconfiguration).
const MAX_CONSECUTIVE_ERRORS: u32 = 200;

/// Extra per-client results beside the counts.
#[derive(Default)]
pub struct ClientEnd {
    /// Logical operations whose outcome stayed unknown (error after every retry).
    pub unresolved: u64,
    pub sold_out: bool,
}

pub async fn client_loop(
    c: usize,
    conn: Conn,
    plan: Arc<Plan>,
    live: Arc<Live>,
    issued: Arc<AtomicU64>,
) -> (Recorder, ClientEnd) {
    let channel = match &plan.spec {
        Spec::Channels { split, .. } => channel_of(c, plan.clients, split),
        _ => 0,
    };
    let mut st = ClientState::new(&plan.tag, c, plan.seed, channel);
    let mut rec = Recorder::default();
    let mut end = ClientEnd::default();
    let hot = matches!(plan.spec, Spec::Hot { .. });
    let mut consecutive_errors = 0u32;
    'ops: loop {
        if plan.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if let Some(r) = plan.requests
            && issued.fetch_add(1, Ordering::Relaxed) >= r
        {
            break;
        }
        let intended = match &plan.schedule {
            Some(s) => {
                let (_, due) = s.claim();
                if plan.deadline.is_some_and(|d| due >= d) {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                Some(due)
            }
            None => None,
        };
        let mut req = plan.spec.next(&mut st, &plan.org);
        rec.ops += 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = Instant::now();
            if let Some(i) = intended
                && attempt == 1
                && sent.saturating_duration_since(i) > LATE
            {
                rec.late_sends += 1;
            }
            let body = if attempt <= plan.retries {
                req.body.clone()
            } else {
                std::mem::take(&mut req.body)
            };
            let (judge, items) = (req.judge, req.items);
            let verdict = conn
                .post(req.path, body, |s, b| match judge {
                    Judge::Write => api::classify_write(s, b),
                    Judge::Bulk => api::classify_bulk(s, b, items),
                    Judge::Query => api::classify_query(s, b),
                })
                .await
                .unwrap_or_else(|k| Verdict::error(k, true));
            let done = Instant::now();
            let lat = latency_us(if attempt == 1 { intended } else { None }, sent, done);
            let (class, ok_items) = match verdict {
                Verdict::Ok {
                    items,
                    reservation_id,
                    records,
                } => {
                    if let Some(want) = req.expect_records
                        && records != want
                    {
                        rec.error_kind("query:wrong_record_count", || {
                            format!("{}: {records} records, expected {want}", req.op)
                        });
                        (Class::Error, 0)
                    } else {
                        rec.ok_items += items as u64;
                        rec.records += records as u64;
                        if let (Some(k), Some(rid)) = (req.key, reservation_id)
                            && st.held.len() < 4096
                        {
                            st.held.push((k, rid));
                        }
                        (Class::Ok, items as u64)
                    }
                }
                Verdict::Refused { items } => {
                    rec.refused_items += items as u64;
                    (Class::Refused, 0)
                }
                Verdict::Mixed {
                    ok,
                    refused,
                    errored,
                    kind,
                } => {
                    rec.ok_items += ok as u64;
                    rec.refused_items += refused as u64;
                    rec.error_items += errored as u64;
                    if errored > 0 {
                        let kind = kind.unwrap_or_else(|| "bulk_error".into());
                        rec.error_kind(&kind, || {
                            format!("{}: {ok} ok, {refused} refused, {errored} {kind}", req.op)
                        });
                        (Class::Error, ok as u64)
                    } else {
                        (Class::Refused, ok as u64)
                    }
                }
                Verdict::Error { kind, retryable } => {
                    rec.error_kind(&kind, || format!("{} {}: {kind}", req.op, req.path));
                    rec.record(req.op, Class::Error, lat);
                    live.record(done, Class::Error, 0, lat);
                    consecutive_errors += 1;
                    if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                        end.unresolved += 1;
                        break 'ops;
                    }
                    if retryable && attempt <= plan.retries && plan.deadline.is_none_or(|d| Instant::now() < d) {
                        tokio::time::sleep(Duration::from_millis(10 * attempt as u64)).await;
                        continue;
                    }
                    end.unresolved += 1;
                    break;
                }
            };
            consecutive_errors = if class == Class::Error {
                consecutive_errors + 1
            } else {
                0
            };
            rec.record(req.op, class, lat);
            live.record(done, class, ok_items, lat);
            if hot && class == Class::Refused {
                end.sold_out = true;
                break 'ops;
            }
            break;
        }
    }
    (rec, end)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let products: std::collections::HashSet<&str> =
            items.iter().map(|i| i["productId"].as_str().unwrap()).collect();
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
}
