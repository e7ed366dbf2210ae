//! A cluster's id, kept in `DATA/cluster-id` from the data directory's first start. Every node
//! names it on its calls to the others, and refuses calls naming another cluster
//! (`ivory_node::auth::CLUSTER_ID_HEADER`): two clusters sharing a secret must still never take
//! each other's Raft messages.
//!
//! The initial members of a cluster choose it without talking to each other: it is derived from
//! what they all start with (`--initial-cluster`, shards, replicas), as etcd derives its cluster
//! id from its initial cluster. A cluster of one (`ivory serve`) and a restored data directory get
//! a random one. A joining node takes its seed's.

use std::collections::BTreeMap;
use std::path::Path;

use rand::RngCore;
use sha2::{Digest, Sha256};

const FILE: &str = "cluster-id";

/// The id of a cluster created from `members` (every initial member computes the same one).
pub fn derive(members: &BTreeMap<u64, String>, shards: u32, replicas: usize) -> String {
    let mut hash = Sha256::new();
    hash.update(b"ivory cluster id v1\n");
    for (id, addr) in members {
        hash.update(format!("{id}={addr}\n").as_bytes());
    }
    hash.update(format!("shards={shards}\nreplicas={replicas}\n").as_bytes());
    hex(&hash.finalize()[..8])
}

/// A new id for a cluster nobody else has to agree on.
pub fn random() -> String {
    let mut raw = [0u8; 8];
    rand::rng().fill_bytes(&mut raw);
    hex(&raw)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `id` as the data directory's cluster id.
pub fn store(data: &Path, id: &str) -> Result<(), String> {
    crate::files::write_atomic(&data.join(FILE), format!("{id}\n").as_bytes(), false)
}

/// The data directory's cluster id. A new data directory (`fresh`) stores `new_id()`; one from
/// before cluster ids has none, and its node names none and checks none.
pub fn load_or_create(
    data: &Path,
    fresh: bool,
    new_id: impl FnOnce() -> Option<String>,
) -> Result<Option<String>, String> {
    let path = data.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            let valid = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                return Err(format!(
                    "{} does not hold a cluster id (1 to 64 letters, digits or '-')",
                    path.display()
                ));
            }
            Ok(Some(id.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !fresh {
                tracing::warn!(
                    "{} is missing: this data directory predates cluster ids, so this node does not check that \
                     the nodes calling it belong to its cluster",
                    path.display()
                );
                return Ok(None);
            }
            let id = new_id();
            if let Some(id) = &id {
                store(data, id)?;
            }
            Ok(id)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(addrs: &[&str]) -> BTreeMap<u64, String> {
        addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (i as u64 + 1, a.to_string()))
            .collect()
    }

    #[test]
    fn initial_members_agree_and_other_clusters_differ() {
        let a = members(&["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"]);
        assert_eq!(derive(&a, 16, 3), derive(&a.clone(), 16, 3));
        assert_eq!(derive(&a, 16, 3).len(), 16);
        let other_address = members(&["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.4:7000"]);
        assert_ne!(derive(&a, 16, 3), derive(&other_address, 16, 3));
        assert_ne!(derive(&a, 16, 3), derive(&a, 8, 3));
        assert_ne!(derive(&a, 16, 3), derive(&a, 16, 1));
        assert_ne!(random(), random());
    }

    #[test]
    fn the_first_start_fixes_the_id_and_later_starts_read_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create(dir.path(), true, || Some("abc123".into())).expect("stored");
        assert_eq!(first.as_deref(), Some("abc123"));
        let again = load_or_create(dir.path(), false, || Some("other".into())).expect("read");
        assert_eq!(again.as_deref(), Some("abc123"), "a restart keeps the first id");

        let old = tempfile::tempdir().expect("temp dir");
        let none = load_or_create(old.path(), false, || Some("new".into())).expect("no id");
        assert_eq!(none, None, "a data directory from before cluster ids gets none");
        assert!(!old.path().join(FILE).exists());

        std::fs::write(dir.path().join(FILE), "not an id!\n").expect("write");
        let err = load_or_create(dir.path(), false, || None).expect_err("refused");
        assert!(err.contains("does not hold a cluster id"), "{err}");
    }
}
