//! `--report FILE.html`: one self-contained page (inline SVG, no script, no external file) with
//! throughput over time, latency percentiles over time, the latency distribution and the summary.

use crate::stats::Second;
use hdrhistogram::Histogram;
use serde_json::Value;

/// Key order of the JSON result line (serde_json's map sorts keys; people read this line).
const ORDER: &[&str] = &[
    "target",
    "deployment",
    "nodes",
    "urls",
    "label",
    "workload",
    "mode",
    "clients",
    "duration_s",
    "elapsed_s",
    "requests",
    "successes",
    "failures",
    "errors",
    "unresolved",
    "items_per_request",
    "rps",
    "ok_rps",
    "failed_rps",
    "error_rps",
    "items_per_s",
    "ok_items_per_s",
    "latency_us",
    "p50",
    "p99",
    "p999",
    "max",
    "mean",
    "hot",
    "stock",
    "store_reserved",
    "store_available",
    "exact",
    "oversold",
    "reason",
    "open_loop",
    "errors_by_kind",
    "first_error",
    "records",
    "loadgen_cpu_pct",
    "server_cpu_pct",
    "cores",
    "seed",
    "tag",
    "by_op",
    "ok",
    "refused",
];

fn key_rank(k: &str) -> usize {
    ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len())
}

/// Keys of an object in the result line's order (known keys first, the rest alphabetically).
pub fn ordered_keys(m: &serde_json::Map<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_by(|a, b| key_rank(a).cmp(&key_rank(b)).then_with(|| a.cmp(b)));
    keys
}

/// Compact JSON with object keys in the result line's order, recursively.
pub fn ordered(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> = ordered_keys(m)
                .into_iter()
                .map(|k| format!("{}:{}", Value::from(k.as_str()), ordered(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(ordered).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "Nice" axis ticks from 0 to at least `max`.
pub fn nice_ticks(max: f64) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

const W: f64 = 860.0;
const H: f64 = 300.0;
const L: f64 = 70.0;
const R: f64 = 150.0;
const T: f64 = 20.0;
const B: f64 = 40.0;

/// A line chart. `log_y`: logarithmic y axis (for latencies), values must be > 0.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
    x_ticks: Option<&[(f64, &str)]>,
) -> String {
    let xmax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let ymax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let (pw, ph) = (W - L - R, H - T - B);
    let x = |v: f64| L + v / xmax * pw;
    let (yticks, ymap): (Vec<f64>, Box<dyn Fn(f64) -> f64>) = if log_y {
        let lo = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let lo = if lo.is_finite() {
            10f64.powf(lo.log10().floor())
        } else {
            0.01
        };
        let hi = 10f64.powf(ymax.max(lo * 10.0).log10().ceil());
        let mut ticks = Vec::new();
        let mut t = lo;
        while t <= hi * 1.0001 {
            ticks.push(t);
            t *= 10.0;
        }
        let (a, b) = (lo.log10(), hi.log10());
        (
            ticks,
            Box::new(move |v: f64| T + ph - (v.max(lo).log10() - a) / (b - a) * ph),
        )
    } else {
        let ticks = nice_ticks(ymax);
        let top = *ticks.last().unwrap_or(&1.0);
        (ticks, Box::new(move |v: f64| T + ph - v / top * ph))
    };
    let mut s = format!(
        r#"<figure><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#,
        esc(title)
    );
    s += &format!(r##"<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>"##);
    for t in &yticks {
        let y = ymap(*t);
        s += &format!(
            r##"<line x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            L + pw,
            L - 6.0,
            y + 4.0,
            fmt_num(*t)
        );
    }
    let ticks: Vec<(f64, String)> = match x_ticks {
        Some(t) => t.iter().map(|(v, l)| (*v, l.to_string())).collect(),
        None => nice_ticks(xmax).into_iter().map(|t| (t, fmt_num(t))).collect(),
    };
    for (t, label) in ticks {
        if t > xmax * 1.0001 {
            break;
        }
        let xv = x(t);
        s += &format!(
            r##"<line x1="{xv:.1}" x2="{xv:.1}" y1="{T}" y2="{}" stroke="#eee"/><text x="{xv:.1}" y="{}" text-anchor="middle">{}</text>"##,
            T + ph,
            T + ph + 16.0,
            esc(&label)
        );
    }
    s += &format!(
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        L + pw / 2.0,
        H - 6.0,
        esc(x_label)
    );
    s += &format!(
        r#"<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        T + ph / 2.0,
        T + ph / 2.0,
        esc(y_label)
    );
    for (i, se) in series.iter().enumerate() {
        if se.points.is_empty() {
            continue;
        }
        let pts: Vec<String> = se
            .points
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", x(*a), ymap(*b)))
            .collect();
        s += &format!(
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            se.color,
            pts.join(" ")
        );
        if se.points.len() == 1 {
            let (a, b) = se.points[0];
            s += &format!(
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                x(a),
                ymap(b),
                se.color
            );
        }
        let ly = T + 14.0 + i as f64 * 18.0;
        s += &format!(
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            W - R + 10.0,
            W - R + 30.0,
            se.color,
            W - R + 36.0,
            ly + 4.0,
            esc(se.name)
        );
    }
    s += "</svg></figure>";
    s
}

/// The HTML page: summary JSON as a table plus three charts.
pub fn render(
    summary: &Value,
    timeline: &[Second],
    hist: &Histogram<u64>,
    items_per_request: u64,
    elapsed_s: f64,
) -> String {
    let secs: Vec<f64> = (0..timeline.len()).map(|i| i as f64 + 0.5).collect();
    // The last second is usually partial (answers in flight at the deadline): per-second rates
    // divide by the part of it the run covered, and a sliver under 0.2 s is left out.
    let span = |i: usize| -> f64 { (elapsed_s - i as f64).clamp(0.0, 1.0) };
    let col = |f: &dyn Fn(&Second) -> f64| -> Vec<(f64, f64)> {
        timeline
            .iter()
            .zip(&secs)
            .enumerate()
            .filter(|(i, _)| elapsed_s <= 0.0 || span(*i) >= 0.2)
            .map(|(i, (s, x))| (*x, if elapsed_s > 0.0 { f(s) / span(i) } else { f(s) }))
            .collect()
    };
    let mut thr = vec![
        Series {
            name: "ok / s",
            color: "#2a7",
            points: col(&|s| s.ok as f64),
        },
        Series {
            name: "refused / s",
            color: "#e90",
            points: col(&|s| s.refused as f64),
        },
        Series {
            name: "errors / s",
            color: "#d22",
            points: col(&|s| s.errors as f64),
        },
    ];
    if items_per_request > 1 {
        thr = vec![
            Series {
                name: "ok items / s",
                color: "#2a7",
                points: col(&|s| s.ok_items as f64),
            },
            Series {
                name: "errors / s",
                color: "#d22",
                points: col(&|s| s.errors as f64),
            },
        ];
    }
    let ms = |v: u64| v as f64 / 1000.0;
    let busy: Vec<(&Second, f64)> = timeline
        .iter()
        .zip(secs.iter().copied())
        .filter(|(s, _)| !s.hist.is_empty())
        .collect();
    let lat_series = |name: &'static str, color: &'static str, q: Option<f64>| Series {
        name,
        color,
        points: busy
            .iter()
            .map(|(s, x)| (*x, ms(q.map_or(s.hist.max(), |q| s.hist.value_at_quantile(q)).max(1))))
            .collect(),
    };
    let lat = vec![
        lat_series("p50", "#27c", Some(0.5)),
        lat_series("p99", "#e90", Some(0.99)),
        lat_series("p99.9", "#d22", Some(0.999)),
        lat_series("max", "#777", None),
    ];
    // Distribution: x = "nines" (log10 of 1/(1-q)), y = latency.
    let qs = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999];
    let dist = vec![Series {
        name: "latency",
        color: "#27c",
        points: if hist.is_empty() {
            vec![]
        } else {
            qs.iter()
                .map(|q| (-(1.0f64 - q).log10(), ms(hist.value_at_quantile(*q).max(1))))
                .collect()
        },
    }];
    let title = format!(
        "ivory-bench: {} on {}",
        summary["workload"].as_str().unwrap_or("?"),
        summary["deployment"].as_str().unwrap_or("?")
    );
    let mut rows = String::new();
    if let Some(obj) = summary.as_object() {
        for k in ordered_keys(obj) {
            let shown = match &obj[k] {
                Value::String(s) => s.clone(),
                other => ordered(other),
            };
            rows += &format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&shown));
        }
    }
    let lat_us = &summary["latency_us"];
    let headline = format!(
        "<p class=big><b>{}</b> ok req/s &middot; <b>{}</b> items/s &middot; p50 <b>{}</b> ms &middot; p99 <b>{}</b> ms &middot; p99.9 <b>{}</b> ms &middot; errors <b>{}</b></p>",
        fmt_num(summary["ok_rps"].as_f64().unwrap_or(0.0)),
        fmt_num(summary["ok_items_per_s"].as_f64().unwrap_or(0.0)),
        trim(lat_us["p50"].as_f64().unwrap_or(0.0) / 1000.0),
        trim(lat_us["p99"].as_f64().unwrap_or(0.0) / 1000.0),
        trim(lat_us["p999"].as_f64().unwrap_or(0.0) / 1000.0),
        summary["errors"]
    );
    let mut check = String::new();
    for (name, field, ok_key) in [("hot check", "hot", "exact"), ("read-back check", "verify", "ok")] {
        if let Some(h) = summary.get(field) {
            let ok = h[ok_key].as_bool() == Some(true);
            check += &format!(
                "<p class={}>{name}: {}</p><p class=detail>{}</p>",
                if ok { "pass" } else { "fail" },
                if ok { "PASSED" } else { "FAILED" },
                esc(&ordered(h))
            );
        }
    }
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>{t}</title><style>
body{{font-family:sans-serif;margin:24px;color:#222;max-width:900px}} h1{{font-size:20px}} .big{{font-size:17px}}
figure{{margin:16px 0}} figcaption{{font-weight:bold;margin-bottom:4px}} table{{border-collapse:collapse;font-size:12px}}
th,td{{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}} td{{font-family:monospace;word-break:break-all}}
.pass{{color:#161;font-weight:bold;margin-bottom:0}} .fail{{color:#b00;font-weight:bold;margin-bottom:0}}
.detail{{font-family:monospace;font-size:12px;overflow-wrap:anywhere;margin-top:2px}}</style></head><body>
<h1>{t}</h1>{headline}{check}{c1}{c2}{c3}<h2>Result</h2><table>{rows}</table></body></html>
"#,
        t = esc(&title),
        c1 = line_chart(
            "Throughput per second",
            "seconds since start",
            "per second",
            &thr,
            false,
            None
        ),
        c2 = line_chart(
            "Latency per second (log scale)",
            "seconds since start",
            "milliseconds",
            &lat,
            true,
            None
        ),
        c3 = line_chart(
            "Latency distribution (whole run, by percentile)",
            "percentile",
            "milliseconds",
            &dist,
            true,
            Some(&[
                (0.0, "p0"),
                (1.0, "p90"),
                (2.0, "p99"),
                (3.0, "p99.9"),
                (4.0, "p99.99"),
                (5.0, "p99.999")
            ]),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Class, Live, new_hist};
    use std::time::{Duration, Instant};

    #[test]
    fn result_line_keeps_a_readable_key_order() {
        let v = serde_json::json!({"by_op": {"reserve": {"ok": 1}}, "workload": "hot", "target": "ivory", "zeta": [1, {"b": 2, "a": 1}],
            "latency_us": {"max": 9, "p50": 1, "mean": 2.5, "p999": 8, "p99": 5}});
        let line = ordered(&v);
        assert_eq!(
            line,
            r#"{"target":"ivory","workload":"hot","latency_us":{"p50":1,"p99":5,"p999":8,"max":9,"mean":2.5},"by_op":{"reserve":{"ok":1}},"zeta":[1,{"a":1,"b":2}]}"#
        );
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn ticks_are_nice_and_cover_the_maximum() {
        assert_eq!(nice_ticks(10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = nice_ticks(47_123.0);
        assert!(*t.last().unwrap() >= 47_123.0 && t.len() <= 7, "{t:?}");
        assert_eq!(nice_ticks(0.0).len(), 6);
        assert_eq!(fmt_num(1_500_000.0), "1.5M");
        assert_eq!(fmt_num(2_000.0), "2k");
        assert_eq!(fmt_num(0.25), "0.25");
    }

    #[test]
    fn report_is_self_contained_and_escaped() {
        let t0 = Instant::now();
        let live = Live::new(t0);
        let mut h = new_hist();
        for i in 0..3000u64 {
            let at = t0 + Duration::from_millis(i);
            live.record(at, if i % 100 == 0 { Class::Refused } else { Class::Ok }, 1, 100 + i);
            h.record(100 + i).unwrap();
        }
        let summary = serde_json::json!({"workload": "hot", "deployment": "<spawn1>", "ok_rps": 1000.0, "ok_items_per_s": 1000.0,
            "latency_us": {"p50": 1500, "p99": 3000, "p999": 3090}, "errors": 0,
            "hot": {"exact": true, "stock": 10}});
        let html = render(&summary, &live.timeline(), &h, 1, 3.0);
        assert!(html.starts_with("<!doctype html>"));
        assert_eq!(html.matches("<svg").count(), 3);
        assert!(html.contains("&lt;spawn1&gt;") && !html.contains("<spawn1>"));
        assert!(html.contains("hot check: PASSED"));
        assert!(
            !html.contains("<script") && !html.contains("http://") && !html.contains("https://")
                || html.contains("http://www.w3.org/2000/svg")
        );
        assert!(!html.contains("NaN") && !html.contains("inf"));
        // an empty run still renders
        let empty = render(&serde_json::json!({}), &[], &new_hist(), 512, 0.0);
        assert_eq!(empty.matches("<svg").count(), 3);
        assert!(!empty.contains("NaN"));
    }
}
