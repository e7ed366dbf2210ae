//! The web console in a real headless browser (Debian's chromium) against a real 3-node cluster:
//! what the page shows must be what `ivory cluster status --json` says; without the cluster secret
//! it shows nothing. In CI (`CI=true`) a missing chromium fails the test; .ci/run installs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ivory_tests::{CLUSTER_SECRET, Cluster, fully_settled};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");

fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("IVORY_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    })
}

/// Runs headless chromium on `url`: the DOM after the page's scripts ran (`--dump-dom`), or a
/// screenshot into `screenshot`.
async fn browse(browser: &Path, url: &str, screenshot: Option<&Path>) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut command = tokio::process::Command::new(browser);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--window-size=1280,1000",
        // Virtual time runs the page's fetches and its 2 s refreshes before the DOM is dumped.
        "--virtual-time-budget=6000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(path) => command.arg(format!("--screenshot={}", path.display())),
        None => command.arg("--dump-dom"),
    };
    let out = tokio::time::timeout(Duration::from_secs(60), command.arg(url).kill_on_drop(true).output())
        .await
        .expect("chromium finishes within 60 s")
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The attributes of every `<tr>` carrying `attr`, from the dumped DOM.
fn rows(dom: &str, attr: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for tag in dom.split("<tr").skip(1) {
        let Some(end) = tag.find('>') else { continue };
        let mut attrs = BTreeMap::new();
        let mut rest = &tag[..end];
        while let Some(eq) = rest.find("=\"") {
            let name = rest[..eq].trim().to_string();
            let after = &rest[eq + 2..];
            let Some(close) = after.find('"') else { break };
            attrs.insert(name, after[..close].to_string());
            rest = &after[close + 1..];
        }
        if attrs.contains_key(attr) {
            out.push(attrs);
        }
    }
    out
}

fn ids(list: &Value) -> String {
    list.as_array()
        .map(|l| l.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// (id, address, state) per member and (shard, leader, replicas) per shard.
type View = (Vec<(String, String, String)>, Vec<(String, String, String)>);

/// Members and shard leaders/replicas as the page shows them, and as the status says.
fn page_view(dom: &str) -> View {
    let members = rows(dom, "data-member")
        .into_iter()
        .map(|r| {
            (
                r["data-member"].clone(),
                r["data-addr"].clone(),
                r["data-state"].clone(),
            )
        })
        .collect();
    let shards = rows(dom, "data-shard")
        .into_iter()
        .map(|r| {
            (
                r["data-shard"].clone(),
                r["data-leader"].clone(),
                r["data-replicas"].clone(),
            )
        })
        .collect();
    (members, shards)
}

fn status_view(status: &Value) -> View {
    let members = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["id"].to_string(),
                m["addr"].as_str().unwrap_or_default().to_string(),
                m["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let shards = status["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| (s["shard"].to_string(), s["leader"].to_string(), ids(&s["replicas"])))
        .collect();
    (members, shards)
}

#[tokio::test(flavor = "multi_thread")]
async fn console_in_headless_chromium_shows_the_cluster_status() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is required in CI (.ci/run installs Debian's chromium)"
        );
        eprintln!(
            "NOT RUN: console_in_headless_chromium_shows_the_cluster_status needs chromium (apt-get install chromium)"
        );
        return;
    };
    let run = async {
        let cluster = Cluster::nodes(Path::new(BIN), 3, 4);
        cluster.wait_healthy(Duration::from_secs(60)).await;
        cluster
            .wait_cluster(0, Duration::from_secs(60), "settled", fully_settled)
            .await;
        let base = format!("http://{}", cluster.nodes[0].addr);
        let http = reqwest::Client::new();

        // Two holds: one stays active, one is released; the page counts both and shows their events.
        let api = cluster.client(0, "console-env").await;
        api.post_ok(
            "onhand",
            &json!({"id": "stock-1", "organizationId": "org", "productId": "SKU",
                    "dimensions": {"siteId": "s1", "locationId": "l1"}, "quantities": {"pos": {"inbound": 10}}}),
        )
        .await;
        for id in ["kept-hold", "released-hold"] {
            api.post_ok(
                "holds",
                &json!({"id": id, "organizationId": "org", "items": [{"lineId": "1", "productId": "SKU",
                        "dimensions": {"siteId": "s1", "locationId": "l1"}, "quantity": 2}]}),
            )
            .await;
        }
        let released = api
            .http
            .delete(api.api("holds/released-hold?organizationId=org"))
            .bearer_auth(&api.token)
            .send()
            .await
            .expect("release");
        assert_eq!(released.status(), 200);
        let r = http
            .get(format!("{base}/console/api/holds"))
            .send()
            .await
            .expect("holds");
        assert_eq!(r.status(), 401, "the holds route needs the secret too");

        // The JSON routes refuse without the secret, with a stable code; bad bodies are 400s.
        let r = http
            .get(format!("{base}/console/api/status"))
            .send()
            .await
            .expect("status");
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.expect("json error");
        assert_eq!(body["code"], "auth.cluster_secret_required", "{body}");
        let r = http
            .get(format!("{base}/console/api/metrics"))
            .send()
            .await
            .expect("metrics");
        assert_eq!(r.status(), 401);
        let r = http
            .post(format!("{base}/console/api/add-node"))
            .header("x-ivory-cluster-secret", CLUSTER_SECRET)
            .body("{\"id\": \"four\"}")
            .send()
            .await
            .expect("add-node");
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.expect("json error");
        assert_eq!(body["code"], "body.malformed", "{body}");

        // Not signed in: the sign-in form and no data at all.
        let dom = browse(&browser, &format!("{base}/console"), None).await;
        assert!(dom.contains("data-signed-in=\"false\""), "{dom}");
        assert!(
            rows(&dom, "data-member").is_empty() && rows(&dom, "data-shard").is_empty(),
            "{dom}"
        );
        // A wrong secret is refused and shows nothing either.
        let dom = browse(&browser, &format!("{base}/console#secret=not-the-secret"), None).await;
        assert!(dom.contains("The cluster secret was refused."), "{dom}");
        assert!(rows(&dom, "data-member").is_empty(), "{dom}");

        // Signed in: the page must show what `ivory cluster status --json` shows. A leadership
        // could move between the two reads: compare only when the status is the same before and after.
        let url = format!("{base}/console#secret={CLUSTER_SECRET}");
        let mut compared = false;
        for _ in 0..5 {
            let before = cluster.cluster_status(0).await.expect("cluster status");
            let dom = browse(&browser, &url, None).await;
            let after = cluster.cluster_status(0).await.expect("cluster status");
            if status_view(&before) != status_view(&after) {
                continue;
            }
            assert!(dom.contains("data-loaded=\"true\""), "{dom}");
            let (members, shards) = page_view(&dom);
            let (want_members, want_shards) = status_view(&before);
            assert_eq!(members, want_members, "members on the page vs cluster status");
            assert_eq!(shards, want_shards, "shards on the page vs cluster status");
            assert_eq!(members.len(), 3);
            assert_eq!(shards.len(), 4);
            assert!(members.iter().all(|(_, _, state)| state == "active"), "{members:?}");
            // Traffic per member, from each one's /metrics: the health checks above were served.
            let traffic = rows(&dom, "data-node-traffic");
            let traffic_ids: Vec<&str> = traffic.iter().map(|r| r["data-node-traffic"].as_str()).collect();
            assert_eq!(traffic_ids, ["1", "2", "3"], "{dom}");
            for r in &traffic {
                let served: f64 = r.get("data-served").and_then(|n| n.parse().ok()).unwrap_or(0.0);
                assert!(
                    served >= 1.0,
                    "node {} shows no served request: {r:?}",
                    r["data-node-traffic"]
                );
            }
            // Holds per status and the latest events, over every shard.
            let holds = rows(&dom, "data-holds");
            assert_eq!(holds.len(), 1, "{dom}");
            assert_eq!(holds[0]["data-active"], "1", "{:?}", holds[0]);
            assert_eq!(holds[0]["data-released"], "1", "{:?}", holds[0]);
            assert_eq!(holds[0]["data-expired"], "0", "{:?}", holds[0]);
            let events: Vec<(String, String)> = rows(&dom, "data-event")
                .into_iter()
                .map(|r| (r["data-hold"].clone(), r["data-event"].clone()))
                .collect();
            for want in [
                ("kept-hold", "hold.created"),
                ("released-hold", "hold.created"),
                ("released-hold", "hold.released"),
            ] {
                assert!(
                    events.contains(&(want.0.to_string(), want.1.to_string())),
                    "{want:?} not among the latest events on the page: {events:?}"
                );
            }
            compared = true;
            break;
        }
        assert!(compared, "the cluster status never held still across a page load");

        if let Ok(path) = std::env::var("IVORY_CONSOLE_SCREENSHOT") {
            browse(&browser, &url, Some(Path::new(&path))).await;
            assert!(std::fs::metadata(&path).map(|m| m.len() > 0).unwrap_or(false));
        }
    };
    tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the console test finishes within 4 minutes");
}
