//! Roles: environment `*` (the cluster-wide default configuration) changes only with the cluster
//! secret; the cluster secret opens no environment's data.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{KEY, send, token};
use crate::local::LocalBackend;
use crate::{GatewayConfig, router};

const SECRET: &str = "the-cluster-secret-for-roles";

fn app() -> axum::Router {
    let mut config = GatewayConfig::new("client", "s3cret", KEY.to_vec());
    config.cluster_secret = Some(Arc::new(ivory_cluster::ClusterSecret::new(SECRET).unwrap()));
    router(Arc::new(LocalBackend::new(2)), config)
}

#[tokio::test]
async fn only_the_cluster_secret_changes_environment_star() {
    let app = app();
    let star = token(&app, "*").await;
    let path = "/api/environment/*/configuration";
    let doc = send(&app, Method::GET, path, Some(&star), None, &[]).await;
    assert_eq!(doc.status, StatusCode::OK, "an API token reads `*`");
    let mut changed = doc.body.clone();
    changed["inventorySystemConfigurations"]["pos"]["dimensionMappings"] = json!({"posmachineid": "inventdimension1"});
    let update = "/api/environment/*/configuration/hardupdate";
    let body = || Some(changed.to_string());

    let refused = send(&app, Method::POST, update, Some(&star), body(), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.body["code"], "auth.cluster_secret_required");
    let wrong = [("x-ivory-cluster-secret", "not-the-cluster-secret-at-all")];
    let refused = send(&app, Method::POST, update, Some(&star), body(), &wrong).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let cleanup = send(
        &app,
        Method::DELETE,
        "/api/environment/*/cleanupalldata",
        Some(&star),
        None,
        &[],
    )
    .await;
    assert_eq!(cleanup.status, StatusCode::FORBIDDEN);
    let unchanged = send(&app, Method::GET, path, Some(&star), None, &[]).await;
    assert_eq!(unchanged.body, doc.body, "a refused update changed `*`");

    let ok = send(
        &app,
        Method::POST,
        update,
        None,
        body(),
        &[("x-ivory-cluster-secret", SECRET)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let now = send(&app, Method::GET, path, Some(&star), None, &[]).await;
    assert_ne!(now.body, doc.body, "the update with the secret took");

    // The cluster secret is no token for any environment's data.
    let data = send(
        &app,
        Method::GET,
        "/api/environment/demo/configuration",
        None,
        None,
        &[("x-ivory-cluster-secret", SECRET)],
    )
    .await;
    assert_eq!(data.status, StatusCode::UNAUTHORIZED);
    let bearer = send(
        &app,
        Method::GET,
        "/api/environment/demo/configuration",
        Some(SECRET),
        None,
        &[],
    )
    .await;
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);
}
