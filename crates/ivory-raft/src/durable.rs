//! Directories that survive a power cut, and the free space a node needs to open its storage.
//!
//! A new file or directory is durable only once the directory naming it is fsynced: ext4's
//! journal usually does that with the next fsync of anything, POSIX does not promise it, and
//! the nemesis' strict lossyfs showed whole nodes coming back empty without it (finding 5 of
//! tests/nemesis/README.md).

use std::fs::File;
use std::io;
use std::path::Path;

/// A node does not open its storage with less free space than this on the data directory's
/// file system. sled's recovery writes at open, and an open cut short by a full disk left the
/// database unreadable for good (finding 4 of tests/nemesis/README.md); refusing to start
/// instead lets a supervisor retry once there is space.
pub const START_FREE_BYTES_MIN: u64 = 4 << 20;

/// fsyncs a directory, so that the entries created or removed in it so far are durable.
///
/// # Errors
/// When the directory cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `create_dir_all`, with each directory it creates made durable in its parent.
///
/// # Errors
/// As `create_dir_all`, or when a parent cannot be synced.
pub fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_dir_all_durable(parent)?;
    match std::fs::create_dir(dir) {
        Ok(()) => sync_dir(parent),
        // Made meanwhile by someone else: as durable as they made it, but synced once more.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => sync_dir(parent),
        Err(e) => Err(e),
    }
}

/// Bytes an unprivileged writer may still use on the file system holding `path`.
///
/// # Errors
/// When the file system cannot be queried.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Refuses (`StorageFull`) to go on with less than [`START_FREE_BYTES_MIN`] free under `dir`.
///
/// # Errors
/// `StorageFull` naming the directory and both figures, or the error of the query.
pub fn require_free_space_to_start(dir: &Path) -> io::Result<()> {
    let free = free_bytes(dir)?;
    if free < START_FREE_BYTES_MIN {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "No space left to start: {free} bytes free on the file system of {}, a node needs \
                 {START_FREE_BYTES_MIN} to open its storage",
                dir.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_every_missing_level_and_accepts_an_existing_one() {
        let root = tempfile::tempdir().expect("temp dir");
        let deep = root.path().join("a").join("b").join("c");
        create_dir_all_durable(&deep).expect("created");
        assert!(deep.is_dir());
        create_dir_all_durable(&deep).expect("already there");
        let file = root.path().join("a").join("file");
        std::fs::write(&file, b"x").expect("file");
        assert!(
            create_dir_all_durable(&file.join("d")).is_err(),
            "a file is no directory"
        );
    }

    #[test]
    fn free_space_is_read_and_a_full_file_system_refuses_the_start() {
        let root = tempfile::tempdir().expect("temp dir");
        let free = free_bytes(root.path()).expect("statvfs");
        assert!(free > 0);
        assert_eq!(
            require_free_space_to_start(root.path()).is_ok(),
            free >= START_FREE_BYTES_MIN,
            "{free} bytes free"
        );
    }
}
