//! TLS through real processes, with certificates made at run time (rcgen): a 3-node cluster over
//! mutual TLS runs, grows and shrinks; plain HTTP on its port gets no HTTP answer; the CLI needs
//! the CA; a node whose certificate comes from another CA cannot join.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ivory_tests::{Cluster, free_port, fully_settled, member_state};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");
const SHARDS: u32 = 4;
const SETTLE: Duration = Duration::from_secs(120);
const CLI: Duration = Duration::from_secs(120);

/// A CA written to `dir/<name>-ca.pem`, able to sign node certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: PathBuf,
}

fn ca(dir: &Path, name: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let cert = params.self_signed(&key).expect("CA certificate");
    let pem = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&pem, cert.pem()).expect("write CA");
    Ca {
        issuer: Issuer::new(params, key),
        pem,
    }
}

/// A node certificate for 127.0.0.1 signed by `ca`: (cert file, key file).
fn node_cert(dir: &Path, ca: &Ca, name: &str) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca.issuer).expect("node certificate");
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (c.display().to_string(), k.display().to_string())
}

/// `Admin/Status` over TLS with the cluster secret, showing `identity` (cert, key) if given.
async fn admin_status(
    addr: std::net::SocketAddr,
    ca: &Path,
    identity: Option<(&str, &str)>,
) -> Result<ivory_node::proto::StatusReply, tonic::Status> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).expect("CA")));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert).expect("cert"),
            std::fs::read(key).expect("key"),
        ));
    }
    let channel = ivory_node::network::endpoint(&addr.to_string(), Some(&tls))
        .expect("endpoint")
        .connect()
        .await
        .expect("TLS connect");
    let secret = std::sync::Arc::new(ivory_node::ClusterSecret::new(ivory_tests::CLUSTER_SECRET).expect("secret"));
    let mut admin = ivory_node::proto::admin_client::AdminClient::with_interceptor(
        channel,
        ivory_node::auth::ClusterToken::new(secret),
    );
    admin
        .status(ivory_node::proto::StatusRequest {})
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_mutual_tls_grows_shrinks_and_keeps_strangers_out() {
    let pki = tempfile::tempdir().expect("temp dir");
    let ours = ca(pki.path(), "ours");
    let theirs = ca(pki.path(), "theirs");
    let (cert, key) = node_cert(pki.path(), &ours, "node");
    let (bad_cert, bad_key) = node_cert(pki.path(), &theirs, "impostor");
    let ca_path = ours.pem.display().to_string();
    let tls = ["--tls-cert", &cert, "--tls-key", &key, "--tls-ca", &ca_path];

    let mut cluster = Cluster::nodes_with(Path::new(BIN), 3, SHARDS, &[], &tls);
    cluster.cli_extra = vec!["--tls-ca".into(), ca_path.clone()];
    cluster.wait_cluster(0, SETTLE, "settled over TLS", fully_settled).await;
    let endpoint = cluster.nodes[0].addr.to_string();

    // Plain HTTP on the TLS port: no HTTP answer.
    let mut tcp = tokio::net::TcpStream::connect(cluster.nodes[0].addr)
        .await
        .expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 256];
    let n = match tokio::time::timeout(Duration::from_secs(15), tcp.read(&mut buf)).await {
        Ok(Ok(n)) => n,
        Ok(Err(_)) => 0,
        Err(_) => panic!("plain HTTP on the TLS port was neither answered nor closed in 15 s"),
    };
    assert!(
        !buf[..n].starts_with(b"HTTP/"),
        "plain HTTP was answered: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    // Node-only services need a node's certificate besides the secret; the operators' Cluster
    // service needs the secret only.
    let without_cert = admin_status(cluster.nodes[0].addr, &ours.pem, None).await;
    assert_eq!(without_cert.map_err(|s| s.code()), Err(tonic::Code::Unauthenticated));
    let with_cert = admin_status(cluster.nodes[0].addr, &ours.pem, Some((&cert, &key))).await;
    assert!(with_cert.is_ok(), "{with_cert:?}");

    // The CLI without the CA cannot talk to it; with it, it can (shown by wait_cluster above).
    let plain = cluster.cli(&["cluster", "status", "--endpoint", &endpoint], CLI).await;
    assert!(!plain.success, "{plain:?}");

    // A backup over TLS: every group's snapshot comes from its leader through the endpoint.
    let out = pki.path().join("backup");
    let out = out.display().to_string();
    let backup = ["backup", "--endpoint", &endpoint, "--out", &out, "--tls-ca", &ca_path];
    let backed_up = cluster.cli(&backup, CLI).await;
    assert!(backed_up.success, "{backed_up:?}");
    assert!(pki.path().join("backup/manifest.json").exists());

    // Grow: node 4 joins over TLS and takes replicas; then shrink it away again.
    let addr4: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let add = [
        "cluster",
        "add-node",
        "--endpoint",
        &endpoint,
        "--id",
        "4",
        "--address",
        &addr4.to_string(),
    ];
    let added = cluster.cli(&[&add[..], &["--tls-ca", &ca_path]].concat(), CLI).await;
    assert!(added.success, "{added:?}");
    cluster.join_with(4, 0, addr4, &[], &tls);
    let status = cluster
        .wait_cluster(0, SETTLE, "node 4 active and settled", |s| {
            member_state(s, 4).as_deref() == Some("active") && fully_settled(s)
        })
        .await;
    let hosted = status["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["id"] == 4))
        .and_then(|m| m["replicas"].as_u64());
    assert!(hosted.is_some_and(|r| r > 0), "node 4 hosts nothing: {status:#}");
    let removed = cluster
        .cli(
            &[
                "cluster",
                "remove-node",
                "--endpoint",
                &endpoint,
                "--id",
                "4",
                "--tls-ca",
                &ca_path,
            ],
            CLI,
        )
        .await;
    assert!(removed.success, "{removed:?}\n{}", cluster.logs());

    // A node with a certificate from another CA cannot join (its handshake is refused).
    let addr5: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let add = [
        "cluster",
        "add-node",
        "--endpoint",
        &endpoint,
        "--id",
        "5",
        "--address",
        &addr5.to_string(),
    ];
    let added = cluster.cli(&[&add[..], &["--tls-ca", &ca_path]].concat(), CLI).await;
    assert!(added.success, "{added:?}");
    let impostor = ["--tls-cert", &bad_cert, "--tls-key", &bad_key, "--tls-ca", &ca_path];
    let i = cluster.join_with(5, 0, addr5, &[], &impostor);
    let exited = cluster.nodes[i].wait_exit(Duration::from_secs(60)).await;
    assert!(
        exited.is_some_and(|ok| !ok),
        "the impostor kept running:\n{}",
        cluster.nodes[i].log()
    );
    let status = cluster.cluster_status(0).await.expect("status");
    assert_eq!(member_state(&status, 5).as_deref(), Some("joining"), "{status:#}");
}
