use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::{DOC_API_PREFIX, doc_path};
use crate::local::LocalBackend;
use crate::{API_PREFIX, GatewayConfig, api_routes, open_routes, router};

fn app() -> axum::Router {
    router(
        Arc::new(LocalBackend::new(2)),
        GatewayConfig::new("client", "secret", b"key".to_vec()),
    )
}

async fn call(app: &axum::Router, method: Method, path: &str) -> (StatusCode, Option<String>, Value) {
    let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap();
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_document_is_served_and_valid_json() {
    let (status, content_type, doc) = call(&app(), Method::GET, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "Ivory REST API");
    // Every reference resolves to a schema of the document.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{r}"));
        assert!(schemas.contains_key(name), "{r} is not in components.schemas");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Every (path, method) the router answers is documented, and nothing else: the paths come
/// from the router's own route lists, the methods from probing the real router (a method a
/// route lacks answers 405 `route.method_not_allowed`).
#[tokio::test]
async fn the_document_lists_every_route_the_router_registers() {
    let app = app();
    let paths: Vec<String> = api_routes()
        .into_iter()
        .map(|(p, _)| format!("{API_PREFIX}{p}"))
        .chain(open_routes().into_iter().map(|(p, _)| p.to_string()))
        .collect();
    let mut registered = BTreeSet::new();
    for template in &paths {
        let concrete = template
            .replace("{environment}", "env-doc")
            .replace("{system}", "fno")
            .replace("{id}", "hold-1");
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let (status, _, body) = call(&app, method.clone(), &concrete).await;
            assert_ne!(body["code"], "route.not_found", "{method} {concrete}");
            if body["code"] != "route.method_not_allowed" {
                registered.insert((doc_path(template), method.to_string()));
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            }
        }
    }
    assert_eq!(registered, super::documented_operations());
    assert_eq!(registered.len(), 36, "{registered:#?}");
}

#[test]
fn every_operation_documents_its_errors() {
    let doc = serde_json::to_value(super::document()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let has = |s: &str| responses.contains_key(s);
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}");
            if path.starts_with(DOC_API_PREFIX) {
                for s in ["400", "401", "403", "503"] {
                    assert!(has(s), "{method} {path} lacks {s}");
                }
                assert!(
                    responses["503"]["headers"]["Retry-After"].is_object(),
                    "{method} {path}"
                );
                assert_eq!(op["security"][0]["bearer"], serde_json::json!([]), "{method} {path}");
            }
            if op.get("requestBody").is_some() {
                assert!(has("413") && has("400"), "{method} {path}");
                let body = &op["requestBody"]["content"];
                assert!(body.as_object().unwrap().values().all(|c| c["schema"].is_object()));
            }
            for (status, r) in responses {
                if !status.starts_with('2') && status != "404" || status == "404" && path.contains("hold") {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"]
                            .as_str()
                            .map(|s| s.ends_with("/ErrorBody") || s.ends_with("/WriteResult")),
                        Some(true),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}
