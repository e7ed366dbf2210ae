//! A small file system a test can fill: a size-limited tmpfs mounted on a directory (root
//! only), unmounted when the guard drops (also when a test panics), and a filler file that takes
//! all but a few bytes of it. The `disk-full` nemesis gives each node's data directory one;
//! `crates/ivory/tests/storage_faults.rs` fills one under a single node.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether this process runs as root (mounting a tmpfs needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs of a fixed size mounted on a directory; unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
    mounted: bool,
}

impl Tmpfs {
    /// Creates `path` if needed and mounts a tmpfs of `size_bytes` on it.
    ///
    /// # Errors
    /// When the directory cannot be made or `mount` fails (not root, no `mount`).
    pub fn mount(path: &Path, size_bytes: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| format!("mount point {}: {e}", path.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs on {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
            mounted: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts (lazily if it is busy) and removes the mount point; a no-op the second time.
    pub fn unmount(&mut self) {
        if !std::mem::replace(&mut self.mounted, false) {
            return;
        }
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // A process still has a file open there: detach now, freed when it closes.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// Fills the file system of `filler`'s directory with `filler`, then gives back `leave` bytes
/// of it: what is left to others is about `leave`. Returns the filler's size.
///
/// # Errors
/// When the filler cannot be made or shrunk.
pub fn fill(filler: &Path, leave: u64) -> Result<u64, String> {
    let mut file = std::fs::File::create(filler).map_err(|e| format!("filler {}: {e}", filler.display()))?;
    let chunk = vec![1u8; 1 << 20];
    while file.write_all(&chunk).is_ok() {}
    // The last partial chunk: fill to the last page.
    let small = vec![1u8; 4096];
    while file.write_all(&small).is_ok() {}
    let len = file.metadata().map_err(|e| format!("filler size: {e}"))?.len();
    file.set_len(len.saturating_sub(leave))
        .map_err(|e| format!("shrink filler: {e}"))?;
    Ok(len.saturating_sub(leave))
}
