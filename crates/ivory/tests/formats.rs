//! Versioned formats at a real node's boundary: a caller that speaks another version of the node
//! protocol is refused with a message naming both versions, before any service sees the call.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ivory_node::ClusterSecret;
use ivory_node::auth::{ClusterToken, PROTOCOL_HEADER};
use ivory_node::proto;
use ivory_node::proto::cluster_client::ClusterClient;
use ivory_tests::{CLUSTER_SECRET, Cluster};
use tonic::service::Interceptor;

const BIN: &str = env!("CARGO_BIN_EXE_ivory");

/// Signs with the cluster's secret, then claims protocol `version`.
#[derive(Clone)]
struct Speaks(&'static str);

impl Interceptor for Speaks {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let secret = Arc::new(ClusterSecret::new(CLUSTER_SECRET).expect("secret"));
        let mut request = ClusterToken::new(secret).call(request)?;
        request
            .metadata_mut()
            .insert(PROTOCOL_HEADER, self.0.parse().expect("header"));
        Ok(request)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_of_another_protocol_version_is_refused_by_name() {
    let run = async {
        let node = Cluster::single(Path::new(BIN), 2);
        node.wait_healthy(Duration::from_secs(60)).await;
        let channel = ivory_tests::grpc_channel(node.nodes[0].addr).await;
        let mut current = ClusterClient::with_interceptor(channel.clone(), Speaks("1"));
        let status = current
            .status(proto::ClusterStatusRequest {})
            .await
            .expect("version 1 is served");
        assert_eq!(status.into_inner().shard_count, 2);
        let mut newer = ClusterClient::with_interceptor(channel, Speaks("2"));
        let refused = newer
            .status(proto::ClusterStatusRequest {})
            .await
            .expect_err("version 2 is refused");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
        assert!(
            refused
                .message()
                .contains("protocol version 2; this node knows version 1"),
            "{refused:?}"
        );
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("finishes within 2 minutes");
}
