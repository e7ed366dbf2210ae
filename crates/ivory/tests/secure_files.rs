//! Secret files: `ivory serve` creates its API client (credentials.json) and cluster secret with
//! mode 0600, and refuses to start on a credentials.json others can read.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ivory");

fn serve(data: &std::path::Path, port: u16) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .env_remove("IVORY_CLIENT_ID")
        .env_remove("IVORY_CLIENT_SECRET")
        .env_remove("IVORY_CLUSTER_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("file exists").permissions().mode() & 0o777
}

/// Kills the child on drop, whatever the test's outcome.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_creates_its_secrets_0600_and_refuses_a_readable_credentials_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("d");
    let child = Killed(serve(&data, ivory_tests::free_port()).spawn().expect("ivory starts"));
    let (credentials, secret) = (data.join("credentials.json"), data.join("cluster-secret"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(credentials.exists() && secret.exists()) {
        assert!(Instant::now() < deadline, "the secret files were not created in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mode(&credentials), 0o600);
    assert_eq!(mode(&secret), 0o600);
    drop(child);

    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = serve(&data, ivory_tests::free_port()).output().expect("ivory runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a world-readable credentials.json");
    assert!(
        stderr.contains("credentials.json") && stderr.contains("chmod 600"),
        "{stderr}"
    );
}
