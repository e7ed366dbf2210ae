//! Where a group's current snapshot is kept: a file of its own, `<storage>/snapshots/g{id}.snap`,
//! replaced whole (temporary file, fsync, rename, fsync of the directory).
//!
//! They were a sled value. sled 0.34 puts values over about 128 KiB into files under `blobs/` and
//! deletes a replaced one only when it cleans the log segment that pointed to it, which a store
//! whose log lives elsewhere (the WAL) almost never does: 612 MB of blobs after 20 s of traffic
//! with a snapshot every 100 commands, until the disk was full. A snapshot still in sled (written
//! by an older build) is read from there until the first new one replaces it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use crate::durable::{create_dir_all_durable, sync_dir};
use crate::io_err;

/// The sled key of a snapshot written by an older build.
const LEGACY_KEY: &[u8] = b"snapshot";

/// One group's stored snapshot (the encoded `StoredSnapshot`).
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    file: PathBuf,
    tree: sled::Tree,
}

impl SnapshotStore {
    pub(crate) fn new(file: PathBuf, tree: sled::Tree) -> SnapshotStore {
        SnapshotStore { file, tree }
    }

    /// The stored snapshot's bytes, if there is one.
    ///
    /// # Errors
    /// IO or sled errors.
    pub fn get(&self) -> io::Result<Option<Vec<u8>>> {
        match File::open(&self.file) {
            Ok(mut file) => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)?;
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.tree.get(LEGACY_KEY) {
                Ok(value) => Ok(value.map(|v| v.to_vec())),
                // The group left this node: nothing stored.
                Err(sled::Error::CollectionNotFound(_)) => Ok(None),
                Err(e) => Err(io_err(e)),
            },
            Err(e) => Err(e),
        }
    }

    /// Replaces the stored snapshot, durably, before it returns.
    ///
    /// # Errors
    /// IO errors: the caller treats them as a failed write (fatal).
    pub fn put(&self, bytes: &[u8]) -> io::Result<()> {
        let dir = self
            .file
            .parent()
            .ok_or_else(|| io_err("a snapshot file has a directory"))?;
        create_dir_all_durable(dir)?;
        let tmp = self.file.with_extension("snap.tmp");
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.file)?;
        sync_dir(dir)?;
        // The older copy, if any: the file now answers for the group.
        match self.tree.remove(LEGACY_KEY) {
            Ok(_) => Ok(()),
            // The group left this node while its snapshot was being built (a replica move):
            // the snapshot is moot, and a file left behind would greet a later replica of it.
            Err(sled::Error::CollectionNotFound(_)) => self.remove(),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Removes the stored snapshot (the group left this node).
    ///
    /// # Errors
    /// IO errors other than a missing file.
    pub fn remove(&self) -> io::Result<()> {
        match std::fs::remove_file(&self.file) {
            Ok(()) => self.file.parent().map_or(Ok(()), sync_dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}
