//! Counting and timing: HDR histograms per client, a per-second timeline, the open-loop schedule,
//! and the process CPU clock.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// 1 us .. 100 s at 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("static histogram bounds are valid")
}

/// Per-second buckets: 2 significant digits are enough for a chart and keep them small.
fn new_sec_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 2).expect("static histogram bounds are valid")
}

/// How one logical request ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Ok,
    Refused,
    Error,
}

#[derive(Clone, Debug)]
pub struct OpStats {
    pub requests: u64,
    pub ok: u64,
    pub refused: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            requests: 0,
            ok: 0,
            refused: 0,
            errors: 0,
            hist: new_hist(),
        }
    }
}

/// One client's counts; merged at the end.
#[derive(Clone, Debug)]
pub struct Recorder {
    pub requests: u64,
    pub ok: u64,
    pub refused: u64,
    pub errors: u64,
    pub ok_items: u64,
    pub refused_items: u64,
    pub error_items: u64,
    pub records: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    pub hist: Histogram<u64>,
    pub by_op: BTreeMap<&'static str, OpStats>,
    /// Open loop: sends that left more than `workload::LATE` (2 ms) after their intended time.
    pub late_sends: u64,
    /// Logical operations started (a retried request is one operation).
    pub ops: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            requests: 0,
            ok: 0,
            refused: 0,
            errors: 0,
            ok_items: 0,
            refused_items: 0,
            error_items: 0,
            records: 0,
            errors_by_kind: BTreeMap::new(),
            first_error: None,
            hist: new_hist(),
            by_op: BTreeMap::new(),
            late_sends: 0,
            ops: 0,
        }
    }
}

impl Recorder {
    pub fn record(&mut self, op: &'static str, class: Class, latency_us: u64) {
        let us = latency_us.max(1);
        self.requests += 1;
        self.hist.saturating_record(us);
        let o = self.by_op.entry(op).or_insert_with(OpStats::new);
        o.requests += 1;
        o.hist.saturating_record(us);
        match class {
            Class::Ok => {
                self.ok += 1;
                o.ok += 1;
            }
            Class::Refused => {
                self.refused += 1;
                o.refused += 1;
            }
            Class::Error => {
                self.errors += 1;
                o.errors += 1;
            }
        }
    }

    pub fn error_kind(&mut self, kind: &str, detail: impl FnOnce() -> String) {
        *self.errors_by_kind.entry(kind.to_string()).or_default() += 1;
        if self.first_error.is_none() {
            self.first_error = Some(detail());
        }
    }

    pub fn merge(&mut self, o: &Recorder) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.refused += o.refused;
        self.errors += o.errors;
        self.ok_items += o.ok_items;
        self.refused_items += o.refused_items;
        self.error_items += o.error_items;
        self.records += o.records;
        self.late_sends += o.late_sends;
        self.ops += o.ops;
        for (k, n) in &o.errors_by_kind {
            *self.errors_by_kind.entry(k.clone()).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
        self.hist.add(&o.hist).expect("histograms share bounds");
        for (k, s) in &o.by_op {
            let t = self.by_op.entry(k).or_insert_with(OpStats::new);
            t.requests += s.requests;
            t.ok += s.ok;
            t.refused += s.refused;
            t.errors += s.errors;
            t.hist.add(&s.hist).expect("histograms share bounds");
        }
    }
}

/// One second of the run.
#[derive(Clone, Debug)]
pub struct Second {
    pub ok: u64,
    pub refused: u64,
    pub errors: u64,
    pub ok_items: u64,
    pub hist: Histogram<u64>,
}

impl Second {
    fn new() -> Second {
        Second {
            ok: 0,
            refused: 0,
            errors: 0,
            ok_items: 0,
            hist: new_sec_hist(),
        }
    }
}

/// Counters every client updates: the progress bar reads them, the report charts the timeline.
pub struct Live {
    pub start: Instant,
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub ok_items: AtomicU64,
    pub errors: AtomicU64,
    timeline: Mutex<Vec<Second>>,
}

impl Live {
    pub fn new(start: Instant) -> Live {
        Live {
            start,
            requests: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            ok_items: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            timeline: Mutex::new(Vec::new()),
        }
    }

    pub fn record(&self, at: Instant, class: Class, ok_items: u64, latency_us: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match class {
            Class::Ok => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Class::Error => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            Class::Refused => {}
        }
        self.ok_items.fetch_add(ok_items, Ordering::Relaxed);
        let sec = at.saturating_duration_since(self.start).as_secs() as usize;
        let mut t = self.timeline.lock().unwrap_or_else(|p| p.into_inner());
        while t.len() <= sec {
            t.push(Second::new());
        }
        let s = &mut t[sec];
        match class {
            Class::Ok => s.ok += 1,
            Class::Refused => s.refused += 1,
            Class::Error => s.errors += 1,
        }
        s.ok_items += ok_items;
        s.hist.saturating_record(latency_us.max(1));
    }

    pub fn timeline(&self) -> Vec<Second> {
        self.timeline.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Open loop: request `i` (0-based, over all clients) is due at `start + i / rate`. Latency is
/// measured from that intended time, so a stalled server cannot hide the queue it causes.
#[derive(Debug)]
pub struct Schedule {
    start: Instant,
    interval_ns: f64,
    next: AtomicU64,
}

impl Schedule {
    pub fn new(start: Instant, rate_per_s: f64) -> Schedule {
        Schedule {
            start,
            interval_ns: 1e9 / rate_per_s,
            next: AtomicU64::new(0),
        }
    }

    pub fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos((i as f64 * self.interval_ns) as u64)
    }

    /// Claim the next slot: its index and intended send time.
    pub fn claim(&self) -> (u64, Instant) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i, self.due(i))
    }
}

/// Latency of a request in microseconds, from its intended send time (open loop) or from the
/// moment it was actually sent (closed loop).
pub fn latency_us(intended: Option<Instant>, sent: Instant, done: Instant) -> u64 {
    let from = intended.map_or(sent, |i| i.min(sent));
    done.saturating_duration_since(from).as_micros() as u64
}

/// User + system CPU seconds of process `pid` (or this process) so far: Linux /proc, USER_HZ = 100.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    parse_cpu_seconds(&stat)
}

fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

pub fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut r = Recorder::default();
        for us in 1..=10_000u64 {
            r.record("reserve", Class::Ok, us);
        }
        let h = &r.hist;
        let near = |a: u64, b: u64| (a as f64 - b as f64).abs() <= b as f64 * 0.002 + 1.0;
        assert!(near(h.value_at_quantile(0.5), 5_000), "{}", h.value_at_quantile(0.5));
        assert!(near(h.value_at_quantile(0.99), 9_900));
        assert!(near(h.value_at_quantile(0.999), 9_990));
        assert!(near(h.max(), 10_000));
        assert!((h.mean() - 5_000.5).abs() < 10.0);
    }

    #[test]
    fn merge_adds_counts_kinds_and_histograms() {
        let mut a = Recorder::default();
        a.record("reserve", Class::Ok, 10);
        a.record("reserve", Class::Refused, 20);
        let mut b = Recorder::default();
        b.record("query", Class::Error, 1_000_000);
        b.error_kind("timeout", || "first".into());
        b.error_kind("timeout", || "second".into());
        a.merge(&b);
        assert_eq!((a.requests, a.ok, a.refused, a.errors), (3, 1, 1, 1));
        assert_eq!(a.errors_by_kind["timeout"], 2);
        assert_eq!(a.first_error.as_deref(), Some("first"));
        assert_eq!(a.by_op["query"].errors, 1);
        assert_eq!(a.hist.len(), 3);
        assert!(a.hist.max() >= 999_000);
    }

    #[test]
    fn timeline_buckets_by_second() {
        let t0 = Instant::now();
        let live = Live::new(t0);
        live.record(t0, Class::Ok, 512, 100);
        live.record(t0 + Duration::from_millis(2500), Class::Error, 0, 100);
        let tl = live.timeline();
        assert_eq!(tl.len(), 3);
        assert_eq!((tl[0].ok, tl[0].ok_items), (1, 512));
        assert_eq!(tl[1].ok + tl[1].errors, 0);
        assert_eq!(tl[2].errors, 1);
        assert_eq!(live.requests.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn open_loop_schedule_and_coordinated_omission() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 1000.0);
        assert_eq!(s.claim(), (0, t0));
        let (i, due) = s.claim();
        assert_eq!(i, 1);
        assert_eq!(due - t0, Duration::from_millis(1));
        assert_eq!(s.due(2500) - t0, Duration::from_millis(2500));
        // A request due at t0 that could only leave 50 ms late and took 1 ms: 51 ms, not 1 ms.
        let sent = t0 + Duration::from_millis(50);
        let done = sent + Duration::from_millis(1);
        assert_eq!(latency_us(Some(t0), sent, done), 51_000);
        assert_eq!(latency_us(None, sent, done), 1_000);
    }

    #[test]
    fn proc_stat_parsing() {
        let stat = "1234 (ivory bench) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert_eq!(parse_cpu_seconds("garbage"), None);
        assert!(cpu_seconds(None).is_some());
    }
}
