//! Stock set-up before a run and the read-back after it.

use super::spec::to_json;
use super::{Space, Spec};
use crate::api::{self, Conn, Key, Verdict};
use crate::stats::Recorder;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
