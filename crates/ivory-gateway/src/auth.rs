//! Bearer tokens: `POST /token` exchanges the client credentials for an HMAC-SHA256-signed token
//! scoped to one environment; every `/api/environment/{env}/...` call must carry one.
//!
//! Token = `base64url(payload JSON) "." base64url(HMAC-SHA256(signing_key, payload))`, payload
//! `{"env": <environment id>, "sub": <client id>, "exp": <unix seconds>}`. Signatures and
//! credentials are compared in constant time.

use std::convert::Infallible;
use std::future::Ready;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::Either;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower::{Layer, Service};

use crate::{ApiError, AppState};

/// Longest token accepted; anything longer is not one of ours.
const TOKEN_LEN_MAX: usize = 4096;

#[derive(Serialize, Deserialize)]
struct Claims {
    env: String,
    sub: String,
    exp: u64,
}

use ivory_cluster::auth::mac;
pub use ivory_cluster::auth::now_s;

/// Signs a token for `environment` that expires at `expires_at_s` (unix seconds).
///
/// ```
/// use ivory_gateway::auth::{TokenError, issue_token, verify_token};
/// let t = issue_token(b"key", "env1", "client", 1_000);
/// assert_eq!(verify_token(b"key", &t, "env1", 999), Ok(()));
/// assert_eq!(verify_token(b"key", &t, "env1", 1_000), Err(TokenError::Expired));
/// assert_eq!(verify_token(b"key", &t, "env2", 999), Err(TokenError::WrongEnvironment));
/// assert_eq!(verify_token(b"other", &t, "env1", 999), Err(TokenError::BadSignature));
/// ```
pub fn issue_token(signing_key: &[u8], environment: &str, client_id: &str, expires_at_s: u64) -> String {
    let claims = Claims {
        env: environment.to_string(),
        sub: client_id.to_string(),
        exp: expires_at_s,
    };
    let payload = serde_json::to_vec(&claims).unwrap_or_default();
    let mut m = mac(signing_key);
    m.update(&payload);
    let sig = m.finalize().into_bytes();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(sig))
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
    WrongEnvironment,
}

/// Checks a token's signature, expiry and environment.
///
/// # Errors
/// The first check that fails, in that order.
pub fn verify_token(signing_key: &[u8], token: &str, environment: &str, now_s: u64) -> Result<(), TokenError> {
    if token.len() > TOKEN_LEN_MAX {
        return Err(TokenError::Malformed);
    }
    let (payload_b64, sig_b64) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| TokenError::Malformed)?;
    let mut m = mac(signing_key);
    m.update(&payload);
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now_s {
        return Err(TokenError::Expired);
    }
    if claims.env != environment {
        return Err(TokenError::WrongEnvironment);
    }
    Ok(())
}

/// Constant-time string equality (compares MACs of both sides, so lengths do not leak either).
fn ct_eq(key: &[u8], a: &str, b: &str) -> bool {
    let mut ma = mac(key);
    ma.update(a.as_bytes());
    let mut mb = mac(key);
    mb.update(b.as_bytes());
    mb.verify_slice(&ma.finalize().into_bytes()).is_ok()
}

fn unauthorized(code: &str, message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    bearer_of(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// A path segment percent-decoded as the `Path` extractor decodes it; `None` when not UTF-8.
fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).ok()?);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The REST header an operator puts the cluster secret in, to change environment `*`.
pub const CLUSTER_SECRET_HEADER: &str = "x-ivory-cluster-secret";

/// Whether the request carries the cluster secret itself (compared in constant time). The one
/// check every HTTP sign-in with the cluster secret goes through.
pub fn has_cluster_secret(secret: Option<&ivory_cluster::ClusterSecret>, headers: &HeaderMap) -> bool {
    let Some(secret) = secret else { return false };
    headers
        .get(CLUSTER_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|candidate| secret.verify_secret(candidate))
}

/// Who calls: what REST reads from its headers and gRPC from its metadata.
pub(crate) struct Caller<'a> {
    /// The bearer token, if any.
    pub bearer: Option<&'a str>,
    /// Whether the call carries the cluster secret itself (checked by [`has_cluster_secret`]).
    pub cluster_secret: bool,
    /// Whether the call only reads (REST GET): environment `*` is read with an API token.
    pub read_only: bool,
}

/// The one access rule of the data plane, for REST (`RequireToken`) and gRPC: `*` (the
/// cluster-wide default configuration) is changed only with the cluster secret (an API client
/// token may read it); every other environment takes a bearer token issued for it.
///
/// # Errors
/// 401 `auth.missing_token`, `auth.invalid_token`, `auth.expired_token`; 403
/// `auth.cluster_secret_required`, `auth.wrong_environment`.
pub(crate) fn authorize(signing_key: &[u8], environment: &str, caller: &Caller<'_>) -> Result<(), ApiError> {
    if environment == ivory_core::DEFAULT_ENVIRONMENT && !caller.read_only {
        if caller.cluster_secret {
            return Ok(());
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth.cluster_secret_required",
            format!("environment '*' is changed only with the cluster secret (header {CLUSTER_SECRET_HEADER})"),
        ));
    }
    let unauthorized = |code: &str, message: &str| ApiError::new(StatusCode::UNAUTHORIZED, code, message);
    let Some(token) = caller.bearer else {
        return Err(unauthorized(
            "auth.missing_token",
            "Authorization: Bearer <token> is required (POST /token)",
        ));
    };
    match verify_token(signing_key, token, environment, now_s()) {
        Ok(()) => Ok(()),
        Err(TokenError::Malformed) => Err(unauthorized("auth.invalid_token", "the bearer token is malformed")),
        Err(TokenError::BadSignature) => Err(unauthorized(
            "auth.invalid_token",
            "the bearer token's signature is wrong",
        )),
        Err(TokenError::Expired) => Err(unauthorized("auth.expired_token", "the bearer token has expired")),
        Err(TokenError::WrongEnvironment) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth.wrong_environment",
            format!("the bearer token is not valid for environment '{environment}'"),
        )),
    }
}

/// The bearer token of an `Authorization` value (`Bearer <token>`, scheme in any case).
pub(crate) fn bearer_of(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Every `/api/environment/{env}/...` route answers only a caller that [`refusal`] lets in: a
/// route layer written by hand (no boxed future, no clone of the route per request).
#[derive(Clone)]
pub(crate) struct RequireTokenLayer(pub(crate) AppState);

impl<S> Layer<S> for RequireTokenLayer {
    type Service = RequireToken<S>;

    fn layer(&self, inner: S) -> RequireToken<S> {
        RequireToken {
            inner,
            state: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct RequireToken<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for RequireToken<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match refusal(&self.state, &request) {
            None => Either::Right(self.inner.call(request)),
            Some(refused) => Either::Left(std::future::ready(Ok(refused))),
        }
    }
}

/// The answer to a request to an environment's route whose bearer token (or cluster secret) does
/// not let it in; `None` lets it in. Paths are canonical by now.
fn refusal(state: &AppState, request: &Request) -> Option<Response> {
    // Decoded, as the handlers see it: a token for `a%20b` must not open environment `a b`.
    let raw = request.uri().path().split('/').nth(3).unwrap_or("");
    let Some(environment) = decode_segment(raw) else {
        return Some(ApiError::bad_request("field.bad_value", "path: the environment id is not UTF-8").into_response());
    };
    let read_only = request.method() == axum::http::Method::GET;
    // The secret is only looked at where it can open something.
    let cluster_secret = environment == ivory_core::DEFAULT_ENVIRONMENT
        && !read_only
        && has_cluster_secret(state.config.cluster_secret.as_deref(), request.headers());
    let caller = Caller {
        bearer: bearer(request.headers()),
        cluster_secret,
        read_only,
    };
    match authorize(&state.config.signing_key, &environment, &caller) {
        Ok(()) => None,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => Some(unauthorized(&e.code, &e.message)),
        Err(e) => Some(e.into_response()),
    }
}

/// Decodes `application/x-www-form-urlencoded` text into (lower-cased key, value) pairs.
fn parse_form(text: &str) -> Vec<(String, String)> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'+' {
                out.push(b' ');
            } else if b == b'%'
                && let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                )
            {
                out.push(h * 16 + l);
                i += 2;
            } else {
                out.push(b);
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k).to_ascii_lowercase(), decode(v))
        })
        .collect()
}

fn token_fields(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !is_form && let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        return Ok(map
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k.to_ascii_lowercase(), s)),
                serde_json::Value::Number(n) => Some((k.to_ascii_lowercase(), n.to_string())),
                _ => None,
            })
            .collect());
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("body.malformed", "the token request is neither JSON nor a form"))?;
    Ok(parse_form(text))
}

/// What a token request asks for, before the credentials are checked.
pub(crate) struct TokenRequest {
    pub environment: String,
    pub client_id: Option<String>,
    pub secret: String,
}

/// Reads a token request (JSON or form) and checks its shape: 400 naming what is missing.
pub(crate) fn token_request(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, ApiError> {
    let fields = token_fields(headers, body)?;
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Some(environment) = get("context").filter(|c| !c.is_empty()) else {
        return Err(ApiError::bad_request(
            "token.missing_context",
            "context: the environment id is required",
        ));
    };
    if environment.len() > ivory_core::model::NAME_LEN_MAX || environment.contains('/') {
        return Err(ApiError::bad_request(
            "token.bad_context",
            "context: not a valid environment id",
        ));
    }
    let Some(secret) = get("client_secret").or_else(|| get("client_assertion")) else {
        return Err(ApiError::bad_request(
            "token.missing_secret",
            "client_secret (or IV's client_assertion) is required",
        ));
    };
    Ok(TokenRequest {
        environment,
        client_id: get("client_id"),
        secret,
    })
}

#[utoipa::path(post, path = "/token", tag = "auth", summary = "Get a bearer token for an environment",
    request_body(content(
        (crate::openapi::TokenRequest = "application/json"),
        (crate::openapi::TokenRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "A token for the environment named by `context`", body = crate::openapi::TokenAnswer),
        (status = 400, description = "`token.missing_context`, `token.bad_context`, `token.missing_secret`, `body.malformed`", body = crate::openapi::ErrorBody),
        (status = 401, description = "Wrong client credentials (`auth.invalid_client`)", body = crate::openapi::ErrorBody,
            headers(("WWW-Authenticate" = String))),
    ))]
/// `POST /token`: `{client_id, client_secret, context}` as JSON or form, or IV's shape
/// `{grant_type, client_assertion_type, client_assertion, scope, context, context_type}` where
/// `client_assertion` carries the client secret. `context` is the environment id.
pub(crate) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Not a bare `Bytes`: its rejection (413 over the body limit) would be plain text.
    let body = match crate::parse::body_bytes(body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let request = match token_request(&headers, &body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let key = &state.config.signing_key;
    let id_ok = request
        .client_id
        .as_deref()
        .is_none_or(|id| ct_eq(key, id, &state.config.client_id));
    let secret_ok = ct_eq(key, &request.secret, &state.config.client_secret);
    if !(id_ok & secret_ok) {
        return unauthorized("auth.invalid_client", "client credentials are not valid");
    }
    let ttl = state.config.token_ttl_s;
    let access_token = issue_token(key, &request.environment, &state.config.client_id, now_s() + ttl);
    axum::Json(json!({"access_token": access_token, "token_type": "bearer", "expires_in": ttl})).into_response()
}
