//! The operators' web console: `GET /console` is one self-contained page (no CDN, no build step);
//! it holds no data until the operator signs in with the cluster secret, then calls the JSON routes
//! below with the secret in `X-Ivory-Cluster-Secret` and reads this node's `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ivory_core::hold::Event;
use ivory_core::{ReadRequest, ReadResponse};
use ivory_gateway::ApiError;
use ivory_node::proto::{self, cluster_server::Cluster};
use ivory_node::{ClusterSecret, Node};

const PAGE: &str = include_str!("console.html");

/// Adds `/console` and its JSON routes to `app` (the cluster-plane router, outside the REST
/// in-flight bound, like `/status`).
pub fn routes(app: axum::Router, node: Node, secret: Arc<ClusterSecret>) -> axum::Router {
    let (status_node, status_secret) = (node.clone(), secret.clone());
    let (add_node, add_secret) = (node.clone(), secret.clone());
    app.route("/console", axum::routing::get(page))
        .route(
            "/console/api/status",
            axum::routing::get(move |headers: HeaderMap| status(status_node.clone(), status_secret.clone(), headers)),
        )
        .route(
            "/console/api/metrics",
            axum::routing::get({
                let (node, secret) = (node.clone(), secret.clone());
                move |headers: HeaderMap| metrics(node.clone(), secret.clone(), headers)
            }),
        )
        .route(
            "/console/api/holds",
            axum::routing::get({
                let (node, secret) = (node.clone(), secret.clone());
                move |headers: HeaderMap| holds(node.clone(), secret.clone(), headers)
            }),
        )
        .route(
            "/console/api/add-node",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                add(add_node.clone(), add_secret.clone(), headers, body)
            }),
        )
        .route(
            "/console/api/remove-node",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                remove(node.clone(), secret.clone(), headers, body)
            }),
        )
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Only this origin: the page loads nothing from anywhere else.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        PAGE,
    )
        .into_response()
}

fn refused() -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "auth.cluster_secret_required",
        format!(
            "the console's routes need the cluster secret (header {})",
            ivory_gateway::auth::CLUSTER_SECRET_HEADER
        ),
    )
    .into_response()
}

fn unavailable(message: &str) -> Response {
    let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cluster.unavailable", message);
    error.retry_after_s = Some(1);
    error.into_response()
}

/// The same document as `ivory cluster status --json`, plus the id of the node that answered.
async fn status(node: Node, secret: Arc<ClusterSecret>, headers: HeaderMap) -> Response {
    if !ivory_gateway::auth::has_cluster_secret(Some(&secret), &headers) {
        return refused();
    }
    let reply = match Cluster::status(&node, tonic::Request::new(proto::ClusterStatusRequest {})).await {
        Ok(reply) => reply.into_inner(),
        Err(e) => return unavailable(e.message()),
    };
    if let Some(e) = &reply.error {
        return unavailable(&e.message);
    }
    let mut json = crate::cluster_cli::status_json(&reply);
    json["node"] = node.id().into();
    Json(json).into_response()
}

/// Bounds one member's `/metrics` fetch: an unreachable member must not stall the page.
const SCRAPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// A `/metrics` answer larger than this is cut off (it is a few hundred KiB at most).
const SCRAPE_MAX_BYTES: usize = 4 << 20;

/// `GET /metrics` of a member over plain HTTP/1.0 (the node has no HTTP client; this is all the
/// console needs). `Err` with a reason when the member does not answer 200.
async fn scrape(addr: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        (&mut stream)
            .take(SCRAPE_MAX_BYTES as u64)
            .read_to_end(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&body);
        let (head, rest) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            return Err(head.lines().next().unwrap_or_default().to_string());
        }
        Ok(rest.to_string())
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// `GET /console/api/metrics`: every member's `/metrics` text by node id (`{"1": {"text": ...},
/// "2": {"error": ...}}`), fetched by this node so that the page needs only its own origin.
/// Over TLS the members are not scraped (this plain-HTTP fetch cannot speak TLS): only this node's.
async fn metrics(node: Node, secret: Arc<ClusterSecret>, headers: HeaderMap) -> Response {
    if !ivory_gateway::auth::has_cluster_secret(Some(&secret), &headers) {
        return refused();
    }
    let reply = match Cluster::status(&node, tonic::Request::new(proto::ClusterStatusRequest {})).await {
        Ok(reply) => reply.into_inner(),
        Err(e) => return unavailable(e.message()),
    };
    let members: Vec<(u64, String)> = reply
        .members
        .iter()
        .filter(|m| m.state != "removed")
        .map(|m| (m.id, m.addr.clone()))
        .collect();
    let scrapes = futures::future::join_all(members.iter().map(|(_, addr)| scrape(addr))).await;
    let out: serde_json::Map<String, serde_json::Value> = members
        .iter()
        .zip(scrapes)
        .map(|((id, _), scraped)| {
            let value = match scraped {
                Ok(text) => serde_json::json!({ "text": text }),
                Err(error) => serde_json::json!({ "error": error }),
            };
            (id.to_string(), value)
        })
        .collect();
    Json(serde_json::Value::Object(out)).into_response()
}

/// Latest events shown, over all shards.
const EVENTS_SHOWN: usize = 20;

/// One shard's hold counts and latest events, read through its leader.
async fn shard_holds(node: &Node, shard: u32) -> Result<(BTreeMap<String, u64>, Vec<Event>), String> {
    let counts = match node.read(shard, ReadRequest::HoldCounts).await {
        Ok(ReadResponse::HoldCounts(counts)) => counts,
        Ok(_) => return Err("the shard answered something else".into()),
        Err(e) => return Err(e.to_string()),
    };
    // Where the stream ends, then its last events.
    let end = match node
        .read(
            shard,
            ReadRequest::Events {
                from_seq: u64::MAX,
                limit: 0,
            },
        )
        .await
    {
        Ok(ReadResponse::Events { next_seq, .. }) => next_seq,
        Ok(_) => return Err("the shard answered something else".into()),
        Err(e) => return Err(e.to_string()),
    };
    let from_seq = end.saturating_sub(EVENTS_SHOWN as u64);
    match node
        .read(
            shard,
            ReadRequest::Events {
                from_seq,
                limit: EVENTS_SHOWN,
            },
        )
        .await
    {
        Ok(ReadResponse::Events { events, .. }) => Ok((counts, events)),
        Ok(_) => Err("the shard answered something else".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `GET /console/api/holds`: holds per status over every shard and the latest events of all
/// shards, newest first (`{"holds": {"active": 3, ...}, "events": [...], "errors": {"2": "..."}}`).
async fn holds(node: Node, secret: Arc<ClusterSecret>, headers: HeaderMap) -> Response {
    if !ivory_gateway::auth::has_cluster_secret(Some(&secret), &headers) {
        return refused();
    }
    let reply = match Cluster::status(&node, tonic::Request::new(proto::ClusterStatusRequest {})).await {
        Ok(reply) => reply.into_inner(),
        Err(e) => return unavailable(e.message()),
    };
    let shards: Vec<u32> = (0..reply.shard_count).collect();
    let answers = futures::future::join_all(shards.iter().map(|shard| shard_holds(&node, *shard))).await;
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut events: Vec<(u32, Event)> = Vec::new();
    let mut errors = serde_json::Map::new();
    for (shard, answer) in shards.iter().zip(answers) {
        match answer {
            Ok((counts, shard_events)) => {
                for (status, n) in counts {
                    *totals.entry(status).or_default() += n;
                }
                events.extend(shard_events.into_iter().map(|e| (*shard, e)));
            }
            Err(e) => {
                errors.insert(shard.to_string(), e.into());
            }
        }
    }
    events.sort_by(|(sa, a), (sb, b)| b.ts_ms.cmp(&a.ts_ms).then(sb.cmp(sa)).then(b.seq.cmp(&a.seq)));
    events.truncate(EVENTS_SHOWN);
    let events: Vec<serde_json::Value> = events
        .into_iter()
        .map(|(shard, e)| {
            serde_json::json!({
                "shard": shard,
                "seq": e.seq,
                "tsMs": e.ts_ms,
                "kind": e.kind.name(),
                "environment": e.hold.environment,
                "organization": e.hold.organization,
                "hold": e.hold.id,
                "status": e.status.name(),
            })
        })
        .collect();
    Json(serde_json::json!({ "holds": totals, "events": events, "errors": errors })).into_response()
}

fn bad_body(message: String) -> Response {
    ApiError::new(StatusCode::BAD_REQUEST, "body.malformed", message).into_response()
}

fn cluster_reply(reply: Result<tonic::Response<proto::ClusterReply>, tonic::Status>) -> Response {
    match reply.map(tonic::Response::into_inner) {
        Ok(proto::ClusterReply { error: Some(e), .. }) if e.code == "cluster.refused" => {
            ApiError::new(StatusCode::CONFLICT, "cluster.refused", e.message).into_response()
        }
        Ok(proto::ClusterReply { error: Some(e), .. }) => unavailable(&e.message),
        Ok(r) => {
            Json(serde_json::json!({"message": r.message, "placementVersion": r.placement_version})).into_response()
        }
        Err(e) => unavailable(e.message()),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddNode {
    id: u64,
    address: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveNode {
    id: u64,
}

/// `POST /console/api/add-node` `{"id": 4, "address": "HOST:PORT"}`: `ivory cluster add-node`.
async fn add(node: Node, secret: Arc<ClusterSecret>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !ivory_gateway::auth::has_cluster_secret(Some(&secret), &headers) {
        return refused();
    }
    let request: AddNode = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_body(format!("expected {{\"id\": N, \"address\": \"HOST:PORT\"}}: {e}")),
    };
    if request.id == 0 || ivory_cluster::check_member_addr(&request.address).is_err() {
        return bad_body("the id must be positive and the address HOST:PORT".into());
    }
    cluster_reply(
        Cluster::add_node(
            &node,
            tonic::Request::new(proto::JoinRequest {
                node_id: request.id,
                addr: request.address,
            }),
        )
        .await,
    )
}

/// `POST /console/api/remove-node` `{"id": 3}`: `ivory cluster remove-node` (drain, then remove).
async fn remove(node: Node, secret: Arc<ClusterSecret>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !ivory_gateway::auth::has_cluster_secret(Some(&secret), &headers) {
        return refused();
    }
    let request: RemoveNode = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_body(format!("expected {{\"id\": N}}: {e}")),
    };
    cluster_reply(
        Cluster::remove_node(
            &node,
            tonic::Request::new(proto::RemoveNodeRequest { node_id: request.id }),
        )
        .await,
    )
}
