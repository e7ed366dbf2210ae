//! `/metrics` of a real node after traffic: latency histograms with `_bucket` series from 100 µs to
//! 10 s, and every metric the Grafana dashboard (deploy/grafana/ivory.json) queries is exported.

use std::time::Duration;

use ivory_tests::Cluster;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const DASHBOARD: &str = include_str!("../../../deploy/grafana/ivory.json");

/// The `ivory_...` metric names a PromQL expression mentions.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("ivory_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// Series names in Prometheus text (the part before `{` or the value).
fn exported_series(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_queries_only_exported_metrics_and_latency_is_bucketed() {
    let run = async {
        let cluster = Cluster::single(std::path::Path::new(BIN), 2);
        cluster.wait_healthy(Duration::from_secs(30)).await;
        let client = cluster.client(0, "metrics").await;
        for i in 0..20 {
            let r = client
                .post_ok(
                    "onhand",
                    &json!({"id": format!("m{i}"), "organizationId": "usmf", "productId": format!("p{i}"),
                            "dimensions": {"siteId": "1", "locationId": "11"}, "quantities": {"pos": {"inbound": 1}}}),
                )
                .await;
            assert_eq!(r["processingStatus"], "success", "{r}");
        }
        let text = reqwest::get(format!("http://{}/metrics", cluster.nodes[0].addr))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body");
        let series = exported_series(&text);

        for histogram in [
            "ivory_http_request_duration_seconds",
            "ivory_raft_apply_seconds",
            "ivory_raft_fsync_seconds",
        ] {
            for le in ["0.0001", "0.001", "0.1", "10", "+Inf"] {
                let bucket = text
                    .lines()
                    .any(|l| l.starts_with(&format!("{histogram}_bucket{{")) && l.contains(&format!("le=\"{le}\"")));
                assert!(bucket, "no {histogram}_bucket le={le} in\n{text}");
            }
        }

        let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(!panels.is_empty());
        let mut checked = 0;
        for panel in panels {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr");
                let names = metric_names(expr);
                assert!(
                    !names.is_empty(),
                    "panel {} queries no ivory metric: {expr}",
                    panel["title"]
                );
                for name in names {
                    assert!(
                        series.contains(&name),
                        "panel {} queries {name}, which /metrics does not export:\n{text}",
                        panel["title"]
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 10, "only {checked} metric references checked");
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the metrics test finishes within 2 minutes");
}
