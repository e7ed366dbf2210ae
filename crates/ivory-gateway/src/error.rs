//! The gateway's error answer: `{"code": "<stable.code>", "message": "<names the field>"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refused or failed request. Nothing was applied when the status is 4xx.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 400 for a body that breaks the schema or a limit; `message` names the field.
    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 502: the backend answered something the gateway cannot use.
    pub fn bad_backend(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, "backend.bad_response", message)
    }

    /// An error of the layer below (a stable `code` such as `raft.no_quorum`), made once where it
    /// happens: 503 + Retry-After when the same call may succeed if retried, else 502.
    pub fn backend(code: &str, message: impl Into<String>, retryable: bool, retry_after_ms: u64) -> ApiError {
        if retryable {
            ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: code.to_string(),
                message: message.into(),
                retry_after_s: Some(retry_after_ms.div_ceil(1000).max(1)),
            }
        } else {
            ApiError::new(StatusCode::BAD_GATEWAY, code, message)
        }
    }

    /// Whether the same call may succeed if retried (a backend's 503).
    pub fn is_retryable(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "code": self.code,
            "message": self.message,
            "statusCode": self.status.as_u16(),
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}
