//! `ivory-nemesis`: runs seeded fault-injection runs against real `ivory node` processes.
//!
//! ```text
//! cargo build --release -p ivory -p ivory-nemesis
//! target/release/ivory-nemesis --runs 20              # seeds from the clock, printed
//! target/release/ivory-nemesis --seed 1234            # replay one seed's schedule
//! target/release/ivory-nemesis --duration 30m --out nemesis-out
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ivory_nemesis::nemesis::Kind;
use ivory_nemesis::{RunConfig, Summary, run_once};

#[derive(Parser)]
#[command(
    name = "ivory-nemesis",
    about = "Fault-injection runs against a real Ivory cluster, checked for oversell, lost acknowledgements, exactly once, linearizability and liveness"
)]
struct Cli {
    /// The ivory binary (default: `ivory` next to this binary).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Replay this seed (one run); without it each run draws a seed and prints it.
    #[arg(long)]
    seed: Option<u64>,
    /// The first seed of a series (then +1 per run); default: from the clock. Lets parallel
    /// series use disjoint seeds.
    #[arg(long, conflicts_with = "seed")]
    first_seed: Option<u64>,
    /// Number of runs.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Keep running new seeds for this long instead (e.g. 30m, 2h, 90s).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Seconds of client traffic (and nemesis) per run.
    #[arg(long, default_value_t = 20)]
    traffic: u64,
    /// Nodes per cluster (3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    #[arg(long, default_value_t = 4)]
    shards: u32,
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Comma-separated nemeses: kill, pause, partition, slow-net, slow-disk, membership,
    /// fail-sync, clock-jump, disk-full, lose-unsynced; `none` for a fault-free run. Default: all
    /// (disk-full and lose-unsynced only as root, one of them per run).
    #[arg(long)]
    nemeses: Option<String>,
    /// Adds the membership-change nemesis to the default mix (needs `ivory cluster add-node`).
    #[arg(long)]
    membership: bool,
    /// lose-unsynced: a directory entry is durable only once its directory is fsynced (POSIX's
    /// letter), not also when the file it names is (as ext4's journal does).
    #[arg(long)]
    lossyfs_strict: bool,
    /// Seconds within which every shard must take a write after the faults heal.
    #[arg(long, default_value_t = 10)]
    liveness_bound: u64,
    /// Print every run's schedule and nemesis events, not only a failing run's.
    #[arg(long)]
    verbose: bool,
    /// Where a failing run leaves its history, schedule, violations and node logs.
    #[arg(long, default_value = "nemesis-out")]
    out: PathBuf,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (num, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 90s, 30m, 2h"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("'{text}': the unit is s, m or h")),
    }
}

async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term => {} }
}

fn default_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("ivory")))
        .unwrap_or_else(|| PathBuf::from("ivory"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bin = cli.bin.clone().unwrap_or_else(default_bin);
    if !bin.exists() {
        eprintln!(
            "ivory-nemesis: no ivory binary at {} (build it, or pass --bin)",
            bin.display()
        );
        return ExitCode::FAILURE;
    }
    let mut kinds = match &cli.nemeses {
        Some(list) if list.trim() == "none" => Vec::new(),
        Some(list) => match list.split(',').map(Kind::parse).collect::<Result<Vec<_>, _>>() {
            Ok(k) => k,
            Err(e) => {
                eprintln!("ivory-nemesis: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Kind::long_defaults(),
    };
    if cli.membership && !kinds.contains(&Kind::Membership) {
        kinds.push(Kind::Membership);
    }
    if kinds.iter().any(|k| matches!(k, Kind::DiskFull | Kind::LoseUnsynced)) && !ivory_nemesis::disk::is_root() {
        println!("disk-full and lose-unsynced left out of the mix: not root (their file systems need root)");
        kinds.retain(|k| !matches!(k, Kind::DiskFull | Kind::LoseUnsynced));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ivory-nemesis: {e}");
            return ExitCode::FAILURE;
        }
    };
    let began = Instant::now();
    let mut summary = Summary::default();
    let mut run = 0usize;
    let mut next_seed = cli.seed.or(cli.first_seed).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 1_000_000)
            .unwrap_or(1)
    });
    loop {
        let more = match (cli.seed, cli.duration) {
            (Some(_), _) => run == 0,
            (None, Some(d)) => began.elapsed() < d,
            (None, None) => run < cli.runs,
        };
        if !more {
            break;
        }
        run += 1;
        let seed = next_seed;
        next_seed += 1;
        let mut cfg = RunConfig::new(bin.clone(), seed);
        cfg.nodes = cli.nodes;
        cfg.shards = cli.shards;
        cfg.clients = cli.clients;
        cfg.traffic = Duration::from_secs(cli.traffic);
        cfg.kinds = kinds.clone();
        cfg.lossyfs_strict = cli.lossyfs_strict;
        cfg.liveness_bound = Duration::from_secs(cli.liveness_bound);
        cfg.out = Some(cli.out.clone());
        println!("run {run}: seed {seed} (replay: --seed {seed})");
        // Ctrl-C or SIGTERM ends the run: dropping it kills its processes and removes its dir.
        let outcome = runtime.block_on(async {
            tokio::select! {
                r = run_once(&cfg) => Some(r),
                _ = stop_signal() => None,
            }
        });
        let Some(outcome) = outcome else {
            println!("seed {seed}: interrupted");
            break;
        };
        match outcome {
            Ok(report) => {
                println!("{}", report.summary());
                if !report.passed() || cli.verbose {
                    println!("  schedule:\n    {}", report.schedule.join("\n    "));
                    println!("  nemesis:\n    {}", report.nemesis_events.join("\n    "));
                    if !report.passed() {
                        println!("  history and logs: {}", cli.out.join(format!("seed-{seed}")).display());
                    }
                }
                summary.add(&report);
            }
            Err(e) => {
                println!("seed {seed}: run error: {e}");
                summary.errors.push(format!("seed {seed}: {e}"));
            }
        }
    }
    println!("\n==== summary ====\n{}", summary.render());
    if summary.violations == 0 && summary.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
