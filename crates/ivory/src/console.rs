//! The operators' web console: `GET /console` is one self-contained page (no CDN, no build step);
//! it holds no data until the operator signs in with the cluster secret, then calls the JSON routes
//! below with the secret in `X-Ivory-Cluster-Secret` and reads this node's `/metrics`.

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
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
