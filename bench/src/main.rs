//! ivory-bench: drives Ivory's public REST API like order systems do, and reports honest figures.
//! One JSON line on stdout per run; progress on stderr; `--report FILE.html` for charts.

mod api;
mod peer;
mod report;
mod rng;
mod spawn;
mod stats;
mod workload;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use stats::{Live, Recorder, round};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use workload::{Mix, Plan, Space, Spec};

#[derive(Parser)]
#[command(
    name = "ivory-bench",
    version,
    about = "Load harness for Ivory's IV-compatible REST API"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    workload: WorkloadCmd,
}

#[derive(Args)]
struct Common {
    /// Target a running cluster (repeatable: clients are spread over the URLs).
    #[arg(long, global = true)]
    url: Vec<String>,
    /// Start a local `ivory serve` (1) or a 3-node cluster (3) and stop it afterwards.
    #[arg(long, global = true, value_parser = clap::builder::PossibleValuesParser::new(["1", "3"]))]
    spawn: Option<String>,
    #[arg(long, global = true, default_value = "target/release/ivory")]
    ivory_bin: PathBuf,
    /// Shards of a spawned cluster.
    #[arg(long, global = true, default_value_t = 16)]
    shards: u32,
    /// Keep the spawned cluster's data directory and logs.
    #[arg(long, global = true)]
    keep_data: bool,
    #[arg(long, global = true, env = "IVORY_CLIENT_ID", default_value = "ivory-bench")]
    client_id: String,
    #[arg(
        long,
        global = true,
        env = "IVORY_CLIENT_SECRET",
        default_value = "ivory-bench-secret-0000",
        hide_env_values = true
    )]
    client_secret: String,
    /// Environment id (token context and path).
    #[arg(long, global = true, default_value = "bench")]
    env: String,
    #[arg(long, global = true, default_value = "usmf")]
    org: String,
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(long, global = true, default_value_t = 64)]
    clients: usize,
    /// Seconds to run (default 10; for hot a safety cap, default 300).
    #[arg(long, global = true)]
    duration: Option<f64>,
    /// Stop after this many requests in all.
    #[arg(long, global = true)]
    requests: Option<u64>,
    /// Open loop: send at this many requests per second in all; latency counts from the
    /// intended send time (no coordinated omission). Without it: closed loop.
    #[arg(long, global = true)]
    rate: Option<f64>,
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Run tag in every id and product id (default: from the clock, unique per run).
    #[arg(long, global = true)]
    tag: Option<String>,
    /// Per-request timeout, milliseconds.
    #[arg(long, global = true, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Retries of a request after 503/429/transport errors (same ids: idempotent).
    #[arg(long, global = true, default_value_t = 3)]
    retries: u32,
    /// Stock load: bulk on-hand calls in flight.
    #[arg(long, global = true, default_value_t = 4)]
    setup_parallel: usize,
    /// spread, bulk, channels: afterwards read every key back with index queries and check that
    /// the reserved quantities add up to what the clients were told (exit code 1 if not).
    #[arg(long, global = true)]
    verify: bool,
    /// Skip loading stock (it is already there under --tag).
    #[arg(long, global = true)]
    no_setup: bool,
    /// Write an HTML report (self-contained, inline SVG charts).
    #[arg(long, global = true)]
    report: Option<PathBuf>,
    /// Free text copied into the JSON line.
    #[arg(long, global = true, default_value = "")]
    label: String,
    /// Tokio worker threads of the load generator (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Run spread, hot or bulk against another store instead of Ivory, to compare side by side:
    /// `--peer postgres postgres://USER@HOST:PORT/DB` or `--peer redis redis://HOST:PORT`.
    #[arg(long, global = true, num_args = 2, value_names = ["STORE", "URL"])]
    peer: Vec<String>,
}

#[derive(Args, Clone)]
struct SpaceArgs {
    /// Products (one key each).
    #[arg(long, default_value_t = 100_000)]
    products: usize,
    #[arg(long, default_value_t = 5)]
    sites: usize,
    /// Locations per site.
    #[arg(long, default_value_t = 10)]
    locations: usize,
    /// On-hand per key loaded before the run.
    #[arg(long, default_value_t = 1_000_000)]
    onhand: i64,
}

#[derive(Subcommand)]
enum WorkloadCmd {
    /// Uniform single reserves over many well-stocked keys.
    Spread {
        #[command(flatten)]
        space: SpaceArgs,
        #[arg(long, default_value_t = 1)]
        qty: i64,
    },
    /// Flash sale: one key with stock N; every client reserves 1 until sold out. Exactly N must
    /// succeed and a query must show N reserved and 0 available, else exit code 1.
    Hot {
        #[arg(long, default_value_t = 50_000)]
        stock: i64,
    },
    /// reserve/bulk of --size distinct keys across partitions.
    Bulk {
        #[command(flatten)]
        space: SpaceArgs,
        #[arg(long, default_value_t = 512)]
        size: usize,
    },
    /// A mix of order channels (web, marketplace, store POS) with a Zipf choice of products.
    Channels {
        #[command(flatten)]
        space: SpaceArgs,
        /// Zipf exponent over products (0 = uniform).
        #[arg(long, default_value_t = 1.0)]
        zipf: f64,
        #[arg(long, default_value = "reserve=50,unreserve=10,query=40")]
        web: String,
        #[arg(long, default_value = "reserve=60,unreserve=30,query=10")]
        marketplace: String,
        #[arg(long, default_value = "change=70,reserve=10,query=20")]
        pos: String,
        /// Share of clients per channel: web,marketplace,pos.
        #[arg(long, default_value = "50,30,20")]
        split: String,
    },
    /// Index and exact queries over sites x locations pairs (<= 100).
    Query {
        #[arg(long, default_value_t = 100)]
        products: usize,
        #[arg(long, default_value_t = 10)]
        sites: usize,
        /// Locations (the same ids at every site).
        #[arg(long, default_value_t = 10)]
        locations: usize,
        /// Products named in each query.
        #[arg(long, default_value_t = 10)]
        per_query: usize,
        /// Share of exact queries (the rest are index queries).
        #[arg(long, default_value_t = 0.5)]
        exact_ratio: f64,
        #[arg(long, default_value_t = 1_000)]
        onhand: i64,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(t) = cli.common.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ivory-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let code = rt.block_on(async {
        tokio::select! {
            r = run(cli) => match r {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(e) => {
                    eprintln!("ivory-bench: {e}");
                    2
                }
            },
            _ = tokio::signal::ctrl_c() => {
                // Dropping `run` drops the spawned cluster's guard, which kills it.
                eprintln!("ivory-bench: interrupted");
                130
            }
        }
    });
    std::process::ExitCode::from(code)
}

fn sanitize_tag(t: &str) -> Result<String, String> {
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("--tag '{t}': use letters, digits, '-' and '_'"));
    }
    Ok(t.to_string())
}

fn parse_split(s: &str) -> Result<[f64; 3], String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--split: {e}"))?;
    match v[..] {
        [a, b, c] if a >= 0.0 && b >= 0.0 && c >= 0.0 && a + b + c > 0.0 => Ok([a, b, c]),
        _ => Err("--split wants three non-negative shares web,marketplace,pos".into()),
    }
}

fn build_spec(w: &WorkloadCmd, tag: &str) -> Result<(Spec, i64, i64), String> {
    let space = |a: &SpaceArgs| -> Result<Space, String> {
        if a.products == 0 || a.sites == 0 || a.locations == 0 {
            return Err("--products, --sites and --locations must be positive".into());
        }
        Ok(Space {
            tag: tag.to_string(),
            products: a.products,
            sites: a.sites,
            locations: a.locations,
        })
    };
    Ok(match w {
        WorkloadCmd::Spread { space: a, qty } => (
            Spec::Spread {
                space: space(a)?,
                qty: *qty,
            },
            a.onhand,
            0,
        ),
        WorkloadCmd::Hot { stock } => {
            if *stock <= 0 {
                return Err("--stock must be positive".into());
            }
            let key = api::Key {
                product: format!("{tag}-hot"),
                site: "1".into(),
                location: "101".into(),
            };
            (Spec::Hot { key }, 0, *stock)
        }
        WorkloadCmd::Bulk { space: a, size } => {
            if *size == 0 || *size > a.products {
                return Err("--size must be in 1..=--products".into());
            }
            (
                Spec::Bulk {
                    space: space(a)?,
                    size: *size,
                },
                a.onhand,
                0,
            )
        }
        WorkloadCmd::Channels {
            space: a,
            zipf,
            web,
            marketplace,
            pos,
            split,
        } => {
            let mixes = [Mix::parse(web)?, Mix::parse(marketplace)?, Mix::parse(pos)?];
            let spec = Spec::Channels {
                space: space(a)?,
                zipf: rng::Zipf::new(a.products, *zipf)?,
                mixes,
                split: parse_split(split)?,
            };
            (spec, a.onhand, 0)
        }
        WorkloadCmd::Query {
            products,
            sites,
            locations,
            per_query,
            exact_ratio,
            onhand,
        } => {
            if *sites == 0 || *locations == 0 || sites * locations > 100 {
                return Err("--sites x --locations must be in 1..=100".into());
            }
            if *per_query == 0 || per_query > products {
                return Err("--per-query must be in 1..=--products".into());
            }
            let spec = Spec::Query {
                tag: tag.to_string(),
                products: *products,
                sites: *sites,
                locations: *locations,
                per_query: *per_query,
                exact_ratio: exact_ratio.clamp(0.0, 1.0),
            };
            (spec, *onhand, 0)
        }
    })
}

/// `--peer STORE URL`: the workload against PostgreSQL or Redis; one JSON line as for Ivory.
async fn run_peer(cli: &Cli, store: &str, url: &str, tag: String) -> Result<bool, String> {
    let c = &cli.common;
    let workload = match &cli.workload {
        WorkloadCmd::Spread { space, qty } => peer::PeerWorkload::Spread {
            keys: space.products,
            onhand: space.onhand,
            qty: *qty,
        },
        WorkloadCmd::Hot { stock } => peer::PeerWorkload::Hot { stock: *stock },
        WorkloadCmd::Bulk { space, size } => peer::PeerWorkload::Bulk {
            keys: space.products,
            onhand: space.onhand,
            size: *size,
        },
        _ => return Err("--peer runs spread, hot and bulk".into()),
    };
    let hot = matches!(workload, peer::PeerWorkload::Hot { .. });
    let duration = c.duration.unwrap_or(if hot { 300.0 } else { 10.0 });
    let out = peer::run(peer::PeerRun {
        kind: peer::PeerKind::parse(store)?,
        url: url.to_string(),
        workload,
        clients: c.clients,
        duration: Duration::from_secs_f64(duration.max(0.1)),
        seed: c.seed,
        tag,
        no_setup: c.no_setup,
        label: c.label.clone(),
    })
    .await?;
    println!("{out}");
    Ok(out["errors"] == 0 && (!hot || out["hot"]["exact"] == true))
}

/// Ok(true): run done and every check passed; Ok(false): a check failed (exit 1).
async fn run(cli: Cli) -> Result<bool, String> {
    let c = &cli.common;
    if c.clients == 0 {
        return Err("--clients must be positive".into());
    }
    if c.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("--rate must be positive".into());
    }
    let tag = match &c.tag {
        Some(t) => sanitize_tag(t)?,
        None => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            format!("b{}", t.as_millis())
        }
    };
    if let [store, url] = c.peer.as_slice() {
        return run_peer(&cli, store, url, tag).await;
    }
    let (spec, onhand, hot_stock) = build_spec(&cli.workload, &tag)?;

    // Target: spawned or given.
    let mut cluster = None;
    let (urls, deployment) = match (&c.spawn, c.url.is_empty()) {
        (Some(n), true) => {
            let nodes: u8 = n.parse().map_err(|_| "--spawn 1|3")?;
            let opts = spawn::SpawnOpts {
                nodes,
                bin: &c.ivory_bin,
                shards: c.shards,
                client_id: &c.client_id,
                client_secret: &c.client_secret,
                keep_dir: c.keep_data,
            };
            let cl = spawn::spawn(&opts).await?;
            let urls = cl.urls.clone();
            cluster = Some(cl);
            (
                urls,
                if nodes == 1 {
                    "spawn:ivory-serve".to_string()
                } else {
                    "spawn:3-node".to_string()
                },
            )
        }
        (None, false) => (
            c.url.iter().map(|u| u.trim_end_matches('/').to_string()).collect(),
            "url".to_string(),
        ),
        (Some(_), false) => return Err("--spawn and --url exclude each other".into()),
        (None, true) => return Err("give --spawn 1|3 or --url URL".into()),
    };
    let result = bench(
        &cli,
        &tag,
        spec,
        onhand,
        hot_stock,
        &urls,
        &deployment,
        cluster.as_ref(),
    )
    .await;
    if let Some(mut cl) = cluster {
        if result.is_err() {
            eprintln!("[spawn] node 1 log tail:\n{}", spawn::log_tail(cl.dir(), 1));
        }
        cl.stop().await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn bench(
    cli: &Cli,
    tag: &str,
    spec: Spec,
    onhand: i64,
    hot_stock: i64,
    urls: &[String],
    deployment: &str,
    cluster: Option<&spawn::Cluster>,
) -> Result<bool, String> {
    let c = &cli.common;
    let timeout = Duration::from_millis(c.timeout_ms);
    // One token per node (each node signs with the key derived from the shared secret).
    let setup_http = api::http_client(timeout.max(Duration::from_secs(30)), 64)?;
    let mut tokens = Vec::new();
    for u in urls {
        tokens.push(api::get_token(&setup_http, u, &c.env, &c.client_id, &c.client_secret).await?);
    }
    let conn_to =
        |i: usize, http: reqwest::Client| api::Conn::new(http, &urls[i % urls.len()], &c.env, &tokens[i % urls.len()]);

    if !c.no_setup {
        let t0 = Instant::now();
        let stock = spec.stock(onhand, hot_stock);
        let conns: Vec<api::Conn> = (0..c.setup_parallel.max(1))
            .map(|i| conn_to(i, setup_http.clone()))
            .collect();
        workload::load_stock(&conns, tag, &c.org, &stock, c.setup_parallel).await?;
        eprintln!(
            "[setup] loaded {} keys in {:.1}s",
            stock.len(),
            t0.elapsed().as_secs_f64()
        );
    }

    let hot = matches!(spec, Spec::Hot { .. });
    let duration = c.duration.or(match (c.requests, hot) {
        (Some(_), _) => None,
        (None, true) => Some(300.0),
        (None, false) => Some(10.0),
    });
    let items_per_request = match &spec {
        Spec::Bulk { size, .. } => *size as u64,
        _ => 1,
    };
    let workload_name = spec.name();
    let hot_key = match &spec {
        Spec::Hot { key } => Some(key.clone()),
        _ => None,
    };
    // Each client gets its own reqwest client: its own keep-alive connection.
    let mut conns = Vec::with_capacity(c.clients);
    for i in 0..c.clients {
        conns.push(conn_to(i, api::http_client(timeout, 1)?));
    }
    let start = Instant::now() + Duration::from_millis(20);
    let plan = Arc::new(Plan {
        spec,
        org: c.org.clone(),
        tag: tag.to_string(),
        seed: c.seed,
        deadline: duration.map(|d| start + Duration::from_secs_f64(d)),
        requests: c.requests,
        schedule: c.rate.map(|r| stats::Schedule::new(start, r)),
        retries: c.retries,
        clients: c.clients,
    });
    let live = Arc::new(Live::new(start));
    let issued = Arc::new(AtomicU64::new(0));

    let pb = progress_bar(duration, c.requests, if hot { Some(hot_stock as u64) } else { None });
    let ticker = {
        let (pb, live) = (pb.clone(), live.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let secs = live.start.elapsed().as_secs_f64().max(1e-3);
                let (req, ok, err) = (
                    live.requests.load(Ordering::Relaxed),
                    live.ok.load(Ordering::Relaxed),
                    live.errors.load(Ordering::Relaxed),
                );
                match (duration, hot) {
                    (_, true) => pb.set_position(ok),
                    (Some(_), false) => pb.set_position((secs * 1000.0) as u64),
                    (None, false) => pb.set_position(req),
                }
                pb.set_message(format!(
                    "{req} req, {ok} ok, {err} errors, {:.0} ok/s",
                    ok as f64 / secs
                ));
            }
        })
    };

    let cpu0 = stats::cpu_seconds(None);
    let server_pids = cluster.map(|cl| cl.pids()).unwrap_or_default();
    let server_cpu0: Option<f64> = server_pids.iter().map(|p| stats::cpu_seconds(Some(*p))).sum();
    tokio::time::sleep_until(start.into()).await;
    let mut tasks = Vec::with_capacity(c.clients);
    for (i, conn) in conns.into_iter().enumerate() {
        let (plan, live, issued) = (plan.clone(), live.clone(), issued.clone());
        tasks.push(tokio::spawn(workload::client_loop(i, conn, plan, live, issued)));
    }
    let mut total = Recorder::default();
    let mut unresolved = 0;
    let mut sold_out_clients = 0;
    for t in tasks {
        let (r, end) = t.await.map_err(|e| format!("client task: {e}"))?;
        total.merge(&r);
        unresolved += end.unresolved;
        sold_out_clients += end.sold_out as usize;
    }
    let elapsed = start.elapsed();
    let cpu = stats::cpu_seconds(None).zip(cpu0).map(|(b, a)| b - a);
    let server_cpu1: Option<f64> = server_pids.iter().map(|p| stats::cpu_seconds(Some(*p))).sum();
    let server_cpu = server_cpu1.zip(server_cpu0).map(|(b, a)| b - a);
    ticker.abort();
    pb.finish_and_clear();

    let secs = elapsed.as_secs_f64().max(1e-9);
    let h = &total.hist;
    let lat = |h: &hdrhistogram::Histogram<u64>| {
        json!({
            "p50": h.value_at_quantile(0.50), "p99": h.value_at_quantile(0.99), "p999": h.value_at_quantile(0.999),
            "max": h.max(), "mean": round(h.mean(), 1),
        })
    };
    let by_op: serde_json::Map<String, Value> = total
        .by_op
        .iter()
        .map(|(k, o)| {
            (
                k.to_string(),
                json!({"requests": o.requests, "ok": o.ok, "refused": o.refused, "errors": o.errors,
                       "ok_rps": round(o.ok as f64 / secs, 1), "latency_us": lat(&o.hist)}),
            )
        })
        .collect();
    let mut out = json!({
        "target": "ivory",
        "deployment": deployment,
        "nodes": urls.len(),
        "urls": urls,
        "label": c.label,
        "workload": workload_name,
        "mode": if c.rate.is_some() { "open" } else { "closed" },
        "clients": c.clients,
        "duration_s": duration,
        "elapsed_s": round(secs, 3),
        "requests": total.requests,
        "successes": total.ok,
        "failures": total.refused,
        "errors": total.errors,
        "items_per_request": items_per_request,
        "rps": round(total.requests as f64 / secs, 1),
        "ok_rps": round(total.ok as f64 / secs, 1),
        "failed_rps": round(total.refused as f64 / secs, 1),
        "error_rps": round(total.errors as f64 / secs, 1),
        "items_per_s": round((total.ok_items + total.refused_items + total.error_items) as f64 / secs, 1),
        "ok_items_per_s": round(total.ok_items as f64 / secs, 1),
        "latency_us": lat(h),
        "errors_by_kind": total.errors_by_kind,
        "unresolved": unresolved,
        "by_op": by_op,
        "seed": c.seed,
        "tag": tag,
        "loadgen_cpu_pct": cpu.map(|x| round(x / secs * 100.0, 0)),
        "server_cpu_pct": server_cpu.map(|x| round(x / secs * 100.0, 0)),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    if total.records > 0 {
        out["records"] = json!(total.records);
    }
    if let Some(e) = &total.first_error {
        out["first_error"] = json!(e);
    }
    if let Some(rate) = c.rate {
        // Operations due before the deadline that no client got round to sending: their latency
        // would be at least (deadline - due), so a large number means the figures above are
        // for a server that could not keep up with the rate.
        let due = duration.map(|d| (d * rate).floor() as u64);
        out["open_loop"] = json!({
            "target_rps": rate,
            "due": due,
            "started": total.ops,
            "not_sent": due.map(|d| d.saturating_sub(total.ops)),
            "late_sends_over_2ms": total.late_sends,
            "latency_from": "intended_send_time",
        });
    }
    let mut passed = true;
    if let Some(key) = hot_key {
        let conn = conn_to(0, setup_http.clone());
        let body = serde_json::to_vec(&api::index_query(
            &c.org,
            vec![&key.product],
            vec![&key.site],
            vec![&key.location],
        ))
        .map_err(|e| e.to_string())?;
        let read = conn
            .post("onhand/indexquery", body, |s, b| {
                if s == 200 {
                    api::read_back(b)
                } else {
                    Err(format!("index query: HTTP {s}"))
                }
            })
            .await
            .unwrap_or_else(|k| Err(format!("index query: {k}")));
        let n = hot_stock as u64;
        let mut reasons = Vec::new();
        if total.ok != n {
            reasons.push(format!("{} reserves succeeded, expected exactly {n}", total.ok));
        }
        if unresolved > 0 {
            reasons.push(format!(
                "{unresolved} reserves ended in errors after retries (outcome unknown)"
            ));
        }
        let (reserved, available) = match &read {
            Ok(rb) => (Some(rb.reserved), Some(rb.available)),
            Err(e) => {
                reasons.push(format!("read-back failed: {e}"));
                (None, None)
            }
        };
        if let Some(r) = reserved
            && r != hot_stock as f64
        {
            reasons.push(format!("index query shows softreservphysical = {r}, expected {n}"));
        }
        if let Some(a) = available
            && a != 0.0
        {
            reasons.push(format!("index query shows availabletoreserve = {a}, expected 0"));
        }
        if duration.is_some() && sold_out_clients < c.clients && total.ok < n {
            reasons.push(format!(
                "not sold out in time: {sold_out_clients} of {} clients saw the shortfall",
                c.clients
            ));
        }
        let exact = reasons.is_empty();
        passed &= exact;
        out["hot"] = json!({
            "stock": n, "successes": total.ok, "store_reserved": reserved, "store_available": available,
            "exact": exact, "oversold": total.ok > n || reserved.is_some_and(|r| r > hot_stock as f64),
            "reason": if exact { Value::Null } else { json!(reasons.join("; ")) },
        });
        if !exact {
            eprintln!("ivory-bench: HOT CHECK FAILED: {}", reasons.join("; "));
        }
    }
    if c.verify
        && let Some(space) = plan.spec.space()
    {
        let t0 = Instant::now();
        let conns: Vec<api::Conn> = (0..c.setup_parallel.max(1))
            .map(|i| conn_to(i, setup_http.clone()))
            .collect();
        let qty = plan.spec.qty() as f64;
        let expected = plan.spec.expected_reserved(&total);
        let exactness_known = unresolved == 0 && total.error_items == 0;
        let mut reasons = Vec::new();
        let v = match workload::read_back_space(&conns, &c.org, space, c.setup_parallel).await {
            Ok(rb) => {
                if rb.records != space.products {
                    reasons.push(format!("{} records for {} keys", rb.records, space.products));
                }
                if exactness_known && rb.reserved != expected {
                    reasons.push(format!(
                        "store holds {} reserved, clients were told {expected}",
                        rb.reserved
                    ));
                }
                if !exactness_known && rb.reserved > expected + (unresolved + total.error_items) as f64 * qty {
                    reasons.push(format!(
                        "store holds {} reserved, more than the clients could have caused",
                        rb.reserved
                    ));
                }
                if !matches!(plan.spec, Spec::Channels { .. }) && rb.negative > 0 {
                    reasons.push(format!("{} keys with negative availabletoreserve", rb.negative));
                }
                json!({"keys": space.products, "records": rb.records, "store_reserved": rb.reserved,
                       "expected_reserved": expected, "negative_available": rb.negative,
                       "exact_known": exactness_known, "ok": reasons.is_empty(),
                       "reason": if reasons.is_empty() { Value::Null } else { json!(reasons.join("; ")) },
                       "seconds": round(t0.elapsed().as_secs_f64(), 1)})
            }
            Err(e) => {
                reasons.push(e.clone());
                json!({"ok": false, "reason": e})
            }
        };
        if !reasons.is_empty() {
            passed = false;
            eprintln!("ivory-bench: VERIFY FAILED: {}", reasons.join("; "));
        }
        out["verify"] = v;
    }
    println!("{}", report::ordered(&out));
    if let Some(path) = &c.report {
        let html = report::render(&out, &live.timeline(), &total.hist, items_per_request, secs);
        std::fs::write(path, html).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("[report] {}", path.display());
    }
    Ok(passed)
}

fn progress_bar(duration: Option<f64>, requests: Option<u64>, hot_stock: Option<u64>) -> indicatif::ProgressBar {
    let len = match (hot_stock, duration, requests) {
        (Some(n), _, _) => n,
        (None, Some(d), _) => (d * 1000.0) as u64,
        (None, None, Some(r)) => r,
        _ => 0,
    };
    let pb = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {percent:>3}% {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    pb.set_style(style);
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses_every_workload() {
        for args in [
            vec!["ivory-bench", "spread", "--spawn", "1", "--products", "10"],
            vec![
                "ivory-bench",
                "--url",
                "http://x:1",
                "hot",
                "--stock",
                "5",
                "--clients",
                "8",
            ],
            vec![
                "ivory-bench",
                "bulk",
                "--size",
                "512",
                "--rate",
                "100",
                "--url",
                "http://x",
            ],
            vec![
                "ivory-bench",
                "channels",
                "--zipf",
                "1.2",
                "--split",
                "1,1,1",
                "--spawn",
                "3",
            ],
            vec![
                "ivory-bench",
                "query",
                "--sites",
                "10",
                "--locations",
                "10",
                "--requests",
                "100",
                "--spawn",
                "1",
            ],
        ] {
            let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(build_spec(&cli.workload, "t").is_ok(), "{args:?}");
        }
        assert!(Cli::try_parse_from(["ivory-bench", "spread", "--spawn", "2"]).is_err());
        let bad = Cli::try_parse_from(["ivory-bench", "query", "--sites", "20", "--locations", "10"]).unwrap();
        assert!(build_spec(&bad.workload, "t").is_err());
        assert!(sanitize_tag("ok-1_x").is_ok() && sanitize_tag("no space").is_err());
        assert_eq!(parse_split("50,30,20").unwrap(), [50.0, 30.0, 20.0]);
        assert!(parse_split("1,2").is_err());
    }
}
