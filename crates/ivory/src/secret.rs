//! Where the cluster secret comes from: `IVORY_CLUSTER_SECRET`, else `--cluster-secret-file`,
//! else (for `ivory serve` only) a file in the data directory, created once with mode 0600.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ivory_cluster::ClusterSecret;

pub const ENV: &str = "IVORY_CLUSTER_SECRET";
/// The file `ivory serve` keeps its generated secret in, inside the data directory.
pub const DATA_FILE: &str = "cluster-secret";

/// How to tell an operator to provide the secret.
pub const HOW: &str = "set IVORY_CLUSTER_SECRET or pass --cluster-secret-file FILE (the secret every node \
                       of the cluster shares; `ivory serve` keeps its own in DATA/cluster-secret)";

fn from_env_or_file(file: Option<&Path>) -> Result<Option<Arc<ClusterSecret>>, String> {
    if let Ok(text) = std::env::var(ENV) {
        return ClusterSecret::new(&text)
            .map(|s| Some(Arc::new(s)))
            .map_err(|e| format!("{ENV}: {e}"));
    }
    let Some(path) = file else { return Ok(None) };
    check_private(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --cluster-secret-file {}: {e}", path.display()))?;
    ClusterSecret::new(&text)
        .map(|s| Some(Arc::new(s)))
        .map_err(|e| format!("--cluster-secret-file {}: {e}", path.display()))
}

/// The secret of an operator command or of `ivory node`: required.
pub fn required(file: Option<&Path>) -> Result<Arc<ClusterSecret>, String> {
    from_env_or_file(file)?.ok_or_else(|| format!("no cluster secret: {HOW}"))
}

/// Writes `contents` to a new file that is 0600 from its creation (never readable by others, not
/// even for a moment), atomically ([`crate::files::write_atomic`]). Fails if the file exists.
pub fn create_private(path: &Path, contents: &str) -> Result<(), String> {
    if path.exists() {
        return Err(format!("cannot create {}: it exists", path.display()));
    }
    crate::files::write_atomic(path, contents.as_bytes(), true)
}

/// Refuses a secret-holding file that others may read or write.
pub fn check_private(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} holds a secret but is readable or writable by others (mode {:o}); \
                 run `chmod 600 {}` and start again",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
    }
    Ok(())
}

/// The secret of `ivory serve`: as [`required`], else the data directory's, created on first start.
pub fn for_serve(file: Option<&Path>, data: &Path) -> Result<Arc<ClusterSecret>, String> {
    if let Some(secret) = from_env_or_file(file)? {
        return Ok(secret);
    }
    let path: PathBuf = data.join(DATA_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            check_private(&path)?;
            let secret = ClusterSecret::new(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::info!(file = %path.display(), "cluster secret read from the data directory");
            Ok(Arc::new(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = ClusterSecret::generate();
            create_private(&path, &format!("{text}\n"))?;
            let secret = ClusterSecret::new(&text)?;
            println!(
                "ivory: created the cluster secret in {path} (mode 0600); operator commands need it:\n\
                 \x20 export IVORY_CLUSTER_SECRET=\"$(cat {path})\"",
                path = path.display()
            );
            tracing::info!(file = %path.display(), "cluster secret created");
            Ok(Arc::new(secret))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_from_creation_and_wider_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        create_private(&path, "x").unwrap();
        check_private(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(check_private(&path).unwrap_err().contains("chmod 600"));
        }
        assert!(
            create_private(&path, "y").is_err(),
            "an existing file is never overwritten"
        );
    }
}
