//! What each request is: the key space, the channel mixes and the workload specs, and the
//! request each client sends next.

use crate::api::{self, Key};
use crate::rng::{Rng, Zipf};

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

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
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
