//! The cluster plane's credentials on the wire. Every node-to-node and operator gRPC call carries
//! a token signed with the cluster secret ([`ivory_cluster::ClusterSecret`]) in the
//! [`TOKEN_HEADER`] metadata; [`Node::grpc_router`](crate::Node::grpc_router) refuses any call
//! without a good one with UNAUTHENTICATED before a service sees it.
//!
//! Outgoing: the node's own peer channels sign every request ([`crate::network::PeerChannel`]);
//! any other client (the CLI, a joining node) wraps its stub with [`ClusterToken`]:
//! `ClusterClient::with_interceptor(channel, ClusterToken::new(secret))`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
pub use ivory_cluster::auth::TOKEN_HEADER;
use ivory_cluster::{ClusterAuthError, ClusterSecret};
use tonic::metadata::MetadataValue;

/// The header naming the version of the node protocol (proto/ivory/v1/raft.proto and the postcard
/// values inside it) a caller speaks. Every node and operator call carries it; a call without it is
/// from a build before versions were sent, which spoke version 1.
pub const PROTOCOL_HEADER: &str = "x-ivory-protocol";
/// The node protocol version this build speaks, and the only one it accepts.
pub const PROTOCOL_VERSION: &str = "1";

/// Refuses a caller (or, on a node's own calls, an answering node) whose protocol version this
/// node does not know, saying which.
///
/// # Errors
/// The message for the caller (and the log).
pub fn check_protocol(headers: &http::HeaderMap) -> Result<(), String> {
    match headers.get(PROTOCOL_HEADER) {
        None => Ok(()),
        Some(v) if v.as_bytes() == PROTOCOL_VERSION.as_bytes() => Ok(()),
        Some(v) => Err(format!(
            "the other node speaks Ivory node protocol version {}; this node knows version {PROTOCOL_VERSION} only \
             (run one ivory version across the cluster, or upgrade one node at a time between versions that \
             share a protocol)",
            String::from_utf8_lossy(v.as_bytes())
        )),
    }
}

/// The header naming the cluster a node belongs to ([`crate::NodeConfig::cluster_id`]). Two
/// clusters that share a secret (copied from one template, say) must still never take each other's
/// Raft messages: a node that reaches a member of another cluster (an address reused by it) would
/// otherwise vote in its elections or overwrite its log. A call without the header (the operators'
/// CLI, a node registering, a build from before cluster ids) is not checked.
pub const CLUSTER_ID_HEADER: &str = "x-ivory-cluster-id";

/// Refuses a caller of another cluster than `own`, saying which.
///
/// # Errors
/// The message for the caller (and the log).
pub fn check_cluster(own: Option<&http::HeaderValue>, headers: &http::HeaderMap) -> Result<(), String> {
    match (own, headers.get(CLUSTER_ID_HEADER)) {
        (Some(own), Some(theirs)) if own != theirs => Err(format!(
            "the caller belongs to cluster {}, this node to cluster {}: a member address of one cluster reaches a \
             node of another (give each cluster its own cluster secret)",
            String::from_utf8_lossy(theirs.as_bytes()),
            String::from_utf8_lossy(own.as_bytes())
        )),
        _ => Ok(()),
    }
}

/// Adds the cluster token, the protocol version and this node's cluster id (when it has one) to a
/// request's headers.
pub fn sign(secret: &ClusterSecret, cluster_id: Option<&http::HeaderValue>, headers: &mut http::HeaderMap) {
    headers.insert(PROTOCOL_HEADER, http::HeaderValue::from_static(PROTOCOL_VERSION));
    if let Some(id) = cluster_id {
        headers.insert(CLUSTER_ID_HEADER, id.clone());
    }
    // A token is `v1.<digits>.<hex>`: always a valid header value.
    if let Ok(value) = http::HeaderValue::from_str(&secret.token()) {
        headers.insert(TOKEN_HEADER, value);
    }
}

/// A tonic interceptor that signs each call with the cluster secret.
#[derive(Clone)]
pub struct ClusterToken(Arc<ClusterSecret>);

impl ClusterToken {
    pub fn new(secret: Arc<ClusterSecret>) -> ClusterToken {
        ClusterToken(secret)
    }
}

impl tonic::service::Interceptor for ClusterToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let value = MetadataValue::try_from(self.0.token())
            .map_err(|_| tonic::Status::internal("the cluster token is not a header value"))?;
        request.metadata_mut().insert(TOKEN_HEADER, value);
        request
            .metadata_mut()
            .insert(PROTOCOL_HEADER, MetadataValue::from_static(PROTOCOL_VERSION));
        Ok(request)
    }
}

/// Checks a request's cluster token.
///
/// # Errors
/// Why it is refused (also when missing).
pub fn verify(secret: &ClusterSecret, headers: &http::HeaderMap) -> Result<(), ClusterAuthError> {
    let token = headers.get(TOKEN_HEADER).ok_or(ClusterAuthError::Missing)?;
    let token = token.to_str().map_err(|_| ClusterAuthError::Malformed)?;
    secret.verify_token(token)
}

/// A request extension the server sets on every request of a TLS connection whose client showed
/// a certificate the CA verified (mutual TLS).
#[derive(Clone, Copy, Debug)]
pub struct PeerCertified;

/// What the middleware checks.
#[derive(Clone)]
pub(crate) struct Guard {
    pub secret: Arc<ClusterSecret>,
    /// With mutual TLS, the node-only services (Raft transport, Shard, Admin) also need a
    /// certified peer; the `Cluster` service (operators' CLI) needs the secret only.
    pub require_certified_peer: bool,
    /// This node's cluster: a caller naming another one is refused.
    pub cluster_id: Option<http::HeaderValue>,
}

/// What a caller with a good token must also match: this build's protocol and this node's
/// cluster. A refusal names the counter that counts it.
fn check_caller(guard: &Guard, headers: &http::HeaderMap) -> Result<(), (&'static str, String)> {
    check_protocol(headers).map_err(|why| ("ivory_protocol_refused_total", why))?;
    check_cluster(guard.cluster_id.as_ref(), headers).map_err(|why| ("ivory_cluster_id_refused_total", why))
}

/// The middleware in front of the node's gRPC services: UNAUTHENTICATED (a gRPC answer, HTTP 200
/// with `grpc-status: 16`) unless the call carries a good cluster token (and, with mutual TLS,
/// comes from a certified node); nothing is decoded before.
pub(crate) async fn require_cluster_token(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let uncertified = guard.require_certified_peer
        && request.extensions().get::<PeerCertified>().is_none()
        && !request.uri().path().starts_with("/ivory.v1.Cluster/");
    if uncertified {
        metrics::counter!("ivory_cluster_auth_refused_total").increment(1);
        return tonic::Status::unauthenticated(
            "node-to-node calls need a client certificate signed by the cluster's CA",
        )
        .into_http::<axum::body::Body>();
    }
    match verify(&guard.secret, request.headers()) {
        Ok(()) => match check_caller(&guard, request.headers()) {
            Ok(()) => {
                let mut response = next.run(request).await;
                response
                    .headers_mut()
                    .insert(PROTOCOL_HEADER, http::HeaderValue::from_static(PROTOCOL_VERSION));
                response
            }
            Err((counter, why)) => {
                metrics::counter!(counter).increment(1);
                tracing::warn!(path = %request.uri().path(), "{why}");
                tonic::Status::failed_precondition(why).into_http::<axum::body::Body>()
            }
        },
        Err(e) => {
            metrics::counter!("ivory_cluster_auth_refused_total").increment(1);
            tracing::debug!(path = %request.uri().path(), error = %e, "cluster call refused");
            tonic::Status::unauthenticated(e.to_string()).into_http::<axum::body::Body>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_of_an_unknown_protocol_version_is_refused_by_name() {
        let mut headers = http::HeaderMap::new();
        assert!(
            check_protocol(&headers).is_ok(),
            "no header: a build from before versions (1)"
        );
        let secret = ClusterSecret::new("a secret of 16+ characters").expect("secret");
        sign(&secret, None, &mut headers);
        assert_eq!(headers[PROTOCOL_HEADER], PROTOCOL_VERSION);
        assert!(check_protocol(&headers).is_ok());
        headers.insert(PROTOCOL_HEADER, http::HeaderValue::from_static("2"));
        let why = check_protocol(&headers).expect_err("refused");
        assert!(why.contains("protocol version 2; this node knows version 1"), "{why}");
        let mut reply = http::Response::new(());
        reply
            .headers_mut()
            .insert(PROTOCOL_HEADER, http::HeaderValue::from_static("3"));
        assert!(
            check_protocol(reply.headers()).is_err(),
            "an answer of another version too"
        );
    }
}
