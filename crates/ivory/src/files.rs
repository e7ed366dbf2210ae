//! The data directory's small files (`layout.json`, `joined.json`, `credentials.json`,
//! `cluster-secret`): written whole or not at all, and never silently re-created.
//!
//! A write goes to `NAME.tmp`, is fsynced, renamed over `NAME`, and the directory is fsynced, so a
//! crash leaves either no file or the complete one. A file that is missing while the node's
//! storage (`DATA/sled`) exists means the directory lost it: the node refuses to start rather than
//! make up a new layout or identity for data created under the old one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Writes `contents` to `path` atomically and durably; `private` files are 0600 from creation.
pub fn write_atomic(path: &Path, contents: &[u8], private: bool) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file path", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!("{}.tmp", name.to_string_lossy()));
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", tmp.display());
    // A leftover of a crash may have other permissions; the new file gets its own.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail("remove", e)),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut file = options.open(&tmp).map_err(|e| fail("create", e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("write", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), path.display()))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync the directory {}: {e}", dir.display()))
}

/// Refuses to re-create `path` when the node's storage already exists in `data`.
pub fn refuse_if_lost(path: &Path, data: &Path) -> Result<(), String> {
    let storage = data.join("sled");
    if storage.exists() {
        return Err(format!(
            "{} is missing but {} holds this node's data: refusing to start with a new one \
             (restore the file from a backup, or start with an empty data directory)",
            path.display(),
            storage.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layout.json");
        write_atomic(&path, b"{\"a\":1}", false).unwrap();
        write_atomic(&path, b"{\"b\":2}", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"b\":2}");
        assert!(!dir.path().join("layout.json.tmp").exists());
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600_even_over_a_leftover_temporary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("credentials.json.tmp");
        std::fs::write(&tmp, b"torn").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join("credentials.json");
        write_atomic(&path, b"secret", true).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
    }

    #[test]
    fn a_lost_file_is_refused_only_when_data_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layout.json");
        refuse_if_lost(&path, dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("sled")).unwrap();
        assert!(
            refuse_if_lost(&path, dir.path())
                .unwrap_err()
                .contains("layout.json is missing")
        );
    }
}
