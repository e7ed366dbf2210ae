//! The same workloads against the stores order systems run today, so that a load tester sees
//! Ivory beside them in one report: `--peer postgres URL` and `--peer redis URL`.
//!
//! - PostgreSQL: one row per key `(key, onhand, reserved)`; a reserve is
//!   `UPDATE .. SET reserved = reserved + q WHERE key = $k AND onhand - reserved >= q` in autocommit
//!   (success = one row changed); a bulk is one transaction with one `UPDATE .. FROM unnest(..)`
//!   over the sorted keys, rolled back unless every row changed. Durable server defaults.
//! - Redis: a hash per key (`onhand`, `reserved`); a reserve is a Lua script (read, compare,
//!   increment); a bulk is one script over all keys (check all, then increment all). Run the server
//!   with `appendonly yes` and `appendfsync always` for the durability Ivory gives.
//!
//! Keys are the run's spread space (or the hot key), tagged like Ivory's, so runs never collide.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::rng::Rng;
use crate::stats::{new_hist, round};

const RESERVE_LUA: &str = r"
local v = redis.call('HMGET', KEYS[1], 'onhand', 'reserved')
local onhand = tonumber(v[1]) or 0
local reserved = tonumber(v[2]) or 0
local q = tonumber(ARGV[1])
if onhand - reserved < q then return 0 end
redis.call('HINCRBY', KEYS[1], 'reserved', q)
return 1";

const BULK_LUA: &str = r"
local q = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, 'onhand', 'reserved')
  if (tonumber(v[1]) or 0) - (tonumber(v[2]) or 0) < q then return 0 end
end
for i, k in ipairs(KEYS) do redis.call('HINCRBY', k, 'reserved', q) end
return 1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    Postgres,
    Redis,
}

impl PeerKind {
    pub fn parse(name: &str) -> Result<PeerKind, String> {
        match name {
            "postgres" | "pg" => Ok(PeerKind::Postgres),
            "redis" => Ok(PeerKind::Redis),
            other => Err(format!("--peer: unknown store '{other}' (postgres or redis)")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            PeerKind::Postgres => "postgres",
            PeerKind::Redis => "redis",
        }
    }
}

/// What to run against the peer.
pub struct PeerRun {
    pub kind: PeerKind,
    pub url: String,
    pub workload: PeerWorkload,
    pub clients: usize,
    pub duration: Duration,
    pub seed: u64,
    pub tag: String,
    pub no_setup: bool,
    pub label: String,
}

pub enum PeerWorkload {
    /// Reserve `qty` of one of `keys` keys with `onhand` each.
    Spread { keys: usize, onhand: i64, qty: i64 },
    /// Reserve 1 of one key with `stock`; each client stops at its first shortfall.
    Hot { stock: i64 },
    /// All-or-nothing reserve of 1 on `size` distinct keys.
    Bulk { keys: usize, onhand: i64, size: usize },
}

impl PeerWorkload {
    fn name(&self) -> &'static str {
        match self {
            PeerWorkload::Spread { .. } => "spread",
            PeerWorkload::Hot { .. } => "hot",
            PeerWorkload::Bulk { .. } => "bulk",
        }
    }

    fn stock(&self) -> (usize, i64) {
        match self {
            PeerWorkload::Spread { keys, onhand, .. } | PeerWorkload::Bulk { keys, onhand, .. } => (*keys, *onhand),
            PeerWorkload::Hot { stock } => (1, *stock),
        }
    }
}

fn key(tag: &str, i: usize) -> String {
    format!("{tag}:k{i}")
}

/// One connection of either store.
enum Conn {
    Postgres(tokio_postgres::Client),
    Redis(redis::aio::MultiplexedConnection),
}

async fn connect(kind: PeerKind, url: &str) -> Result<Conn, String> {
    match kind {
        PeerKind::Postgres => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("postgres {url}: {e}"))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    eprintln!("[peer] postgres connection ended: {e}");
                }
            });
            Ok(Conn::Postgres(client))
        }
        PeerKind::Redis => {
            let client = redis::Client::open(url).map_err(|e| format!("redis {url}: {e}"))?;
            let conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| format!("redis {url}: {e}"))?;
            Ok(Conn::Redis(conn))
        }
    }
}

async fn load(conn: &mut Conn, tag: &str, keys: usize, onhand: i64) -> Result<(), String> {
    match conn {
        Conn::Postgres(c) => {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS ivory_bench_stock (key text PRIMARY KEY, onhand bigint NOT NULL, reserved bigint NOT NULL)",
            )
            .await
            .map_err(|e| e.to_string())?;
            for start in (0..keys).step_by(10_000) {
                let names: Vec<String> = (start..keys.min(start + 10_000)).map(|i| key(tag, i)).collect();
                c.execute(
                    "INSERT INTO ivory_bench_stock SELECT k, $2, 0 FROM unnest($1::text[]) AS k ON CONFLICT (key) DO UPDATE SET onhand = $2, reserved = 0",
                    &[&names, &onhand],
                )
                .await
                .map_err(|e| e.to_string())?;
            }
        }
        Conn::Redis(c) => {
            for start in (0..keys).step_by(10_000) {
                let mut pipe = redis::pipe();
                for i in start..keys.min(start + 10_000) {
                    pipe.hset_multiple(key(tag, i), &[("onhand", onhand), ("reserved", 0)])
                        .ignore();
                }
                pipe.query_async::<()>(c).await.map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Reserves `qty` on every key, all or nothing: Ok(true) reserved, Ok(false) not enough stock.
async fn reserve(conn: &mut Conn, keys: &[String], qty: i64) -> Result<bool, String> {
    match conn {
        Conn::Postgres(c) if keys.len() == 1 => {
            let changed = c
                .execute(
                    "UPDATE ivory_bench_stock SET reserved = reserved + $2 WHERE key = $1 AND onhand - reserved >= $2",
                    &[&keys[0], &qty],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(changed == 1)
        }
        Conn::Postgres(c) => {
            let tx = c.transaction().await.map_err(|e| e.to_string())?;
            let changed = tx
                .execute(
                    "UPDATE ivory_bench_stock s SET reserved = s.reserved + $2 FROM unnest($1::text[]) AS k(key) \
                     WHERE s.key = k.key AND s.onhand - s.reserved >= $2",
                    &[&keys, &qty],
                )
                .await
                .map_err(|e| e.to_string())?;
            if changed as usize == keys.len() {
                tx.commit().await.map_err(|e| e.to_string())?;
                Ok(true)
            } else {
                tx.rollback().await.map_err(|e| e.to_string())?;
                Ok(false)
            }
        }
        Conn::Redis(c) => {
            let script = redis::Script::new(if keys.len() == 1 { RESERVE_LUA } else { BULK_LUA });
            let mut invocation = script.prepare_invoke();
            for k in keys {
                invocation.key(k);
            }
            invocation.arg(qty);
            let done: i64 = invocation.invoke_async(c).await.map_err(|e| e.to_string())?;
            Ok(done == 1)
        }
    }
}

async fn reserved_total(conn: &mut Conn, keys: &[String]) -> Result<(i64, i64), String> {
    match conn {
        Conn::Postgres(c) => {
            let row = c
                .query_one(
                    "SELECT COALESCE(SUM(reserved), 0)::bigint, COALESCE(SUM(onhand - reserved), 0)::bigint FROM ivory_bench_stock WHERE key = ANY($1)",
                    &[&keys],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok((row.get(0), row.get(1)))
        }
        Conn::Redis(c) => {
            let (mut reserved, mut available) = (0, 0);
            for k in keys {
                let (onhand, r): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
                    .arg(k)
                    .arg("onhand")
                    .arg("reserved")
                    .query_async(c)
                    .await
                    .map_err(|e| e.to_string())?;
                reserved += r.unwrap_or(0);
                available += onhand.unwrap_or(0) - r.unwrap_or(0);
            }
            Ok((reserved, available))
        }
    }
}

#[derive(Default)]
struct ClientResult {
    requests: u64,
    successes: u64,
    failures: u64,
    errors: u64,
    first_error: Option<String>,
    hist: Option<hdrhistogram::Histogram<u64>>,
}

/// Runs one workload against the peer; the JSON line has the fields of Ivory's runs.
pub async fn run(p: PeerRun) -> Result<Value, String> {
    let (keys, onhand) = p.workload.stock();
    if !p.no_setup {
        let mut conn = connect(p.kind, &p.url).await?;
        eprintln!("[peer] loading {keys} keys into {}", p.kind.name());
        load(&mut conn, &p.tag, keys, onhand).await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + p.duration;
    let p = Arc::new(p);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..p.clients {
        let p = p.clone();
        let stop = stop.clone();
        let sent = sent.clone();
        let mut conn = connect(p.kind, &p.url).await?;
        tasks.spawn(async move {
            let mut rng = Rng::for_client(p.seed, c);
            let mut out = ClientResult {
                hist: Some(new_hist()),
                ..ClientResult::default()
            };
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let (names, qty) = match &p.workload {
                    PeerWorkload::Spread { keys, qty, .. } => (vec![key(&p.tag, rng.below(*keys))], *qty),
                    PeerWorkload::Hot { .. } => (vec![key(&p.tag, 0)], 1),
                    PeerWorkload::Bulk { keys, size, .. } => {
                        let mut picked = std::collections::BTreeSet::new();
                        while picked.len() < (*size).min(*keys) {
                            picked.insert(rng.below(*keys));
                        }
                        // Sorted, so that row locks are always taken in one order.
                        let mut names: Vec<String> = picked.into_iter().map(|i| key(&p.tag, i)).collect();
                        names.sort();
                        (names, 1)
                    }
                };
                let began = Instant::now();
                let answer = reserve(&mut conn, &names, qty).await;
                let us = began.elapsed().as_micros() as u64;
                out.requests += 1;
                sent.fetch_add(1, Ordering::Relaxed);
                if let Some(h) = out.hist.as_mut() {
                    let _ = h.record(us.max(1));
                }
                match answer {
                    Ok(true) => out.successes += 1,
                    Ok(false) => {
                        out.failures += 1;
                        if matches!(p.workload, PeerWorkload::Hot { .. }) {
                            break;
                        }
                    }
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert(e);
                    }
                }
            }
            out
        });
    }
    let mut total = ClientResult {
        hist: Some(new_hist()),
        ..ClientResult::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let r = joined.map_err(|e| format!("client task: {e}"))?;
        total.requests += r.requests;
        total.successes += r.successes;
        total.failures += r.failures;
        total.errors += r.errors;
        if total.first_error.is_none() {
            total.first_error = r.first_error;
        }
        if let (Some(t), Some(h)) = (total.hist.as_mut(), r.hist.as_ref()) {
            let _ = t.add(h);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let items = match &p.workload {
        PeerWorkload::Bulk { size, .. } => *size as u64,
        _ => 1,
    };
    let h = total.hist.unwrap_or_else(new_hist);
    let mut out = json!({
        "target": p.kind.name(),
        "label": p.label,
        "deployment": format!("peer:{}", p.kind.name()),
        "workload": p.workload.name(),
        "mode": "closed",
        "clients": p.clients,
        "elapsed_s": round(elapsed, 3),
        "requests": total.requests,
        "successes": total.successes,
        "failures": total.failures,
        "errors": total.errors,
        "items_per_request": items,
        "rps": round(total.requests as f64 / elapsed, 1),
        "ok_rps": round(total.successes as f64 / elapsed, 1),
        "ok_items_per_s": round((total.successes * items) as f64 / elapsed, 1),
        "latency_us": {"p50": h.value_at_quantile(0.5), "p99": h.value_at_quantile(0.99),
            "p999": h.value_at_quantile(0.999), "max": h.max(), "mean": round(h.mean(), 1)},
        "first_error": total.first_error,
        "tag": p.tag,
        "seed": p.seed,
    });
    if let PeerWorkload::Hot { stock } = p.workload {
        let mut conn = connect(p.kind, &p.url).await?;
        let (reserved, available) = reserved_total(&mut conn, &[key(&p.tag, 0)]).await?;
        let exact = total.successes as i64 == stock && reserved == stock && available == 0;
        out["hot"] = json!({"stock": stock, "successes": total.successes, "store_reserved": reserved,
            "store_available": available, "exact": exact, "oversold": reserved > stock});
    }
    Ok(out)
}
