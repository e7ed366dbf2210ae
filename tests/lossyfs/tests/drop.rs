//! lossyfs through the kernel: what was synced survives a drop, what was not is gone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn sync_dir(dir: &Path) {
    File::open(dir).expect("open dir").sync_all().expect("fsync dir");
}

fn read(path: &Path) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    File::open(path).ok()?.read_to_end(&mut out).ok()?;
    Some(out)
}

#[test]
fn synced_data_survives_a_drop_and_unsynced_data_is_gone() {
    if !is_root() || !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: mounting a FUSE file system needs root and /dev/fuse");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let fs = lossyfs::mount(dir.path(), lossyfs::Durability::Strict).expect("mounted");
    let root = dir.path();

    // Synced: data and entry.
    let mut a = File::create(root.join("a")).expect("create a");
    a.write_all(b"synced").expect("write");
    a.sync_all().expect("fsync a");
    sync_dir(root);
    // Then more that is never synced.
    a.write_all(b" and not").expect("write more");
    drop(a);
    // Entry synced, data not: comes back empty.
    let mut c = File::create(root.join("c")).expect("create c");
    sync_dir(root);
    c.write_all(b"lost").expect("write");
    drop(c);
    // A directory, a file in it, all synced; then a rename nobody synced.
    std::fs::create_dir(root.join("d")).expect("mkdir");
    let mut e = File::create(root.join("d/e")).expect("create d/e");
    e.write_all(&vec![7u8; 10_000]).expect("write");
    e.sync_all().expect("fsync");
    sync_dir(&root.join("d"));
    sync_dir(root);
    std::fs::rename(root.join("d/e"), root.join("d/f")).expect("rename");
    // Data synced, entry not.
    let mut b = File::create(root.join("b")).expect("create b");
    b.write_all(b"orphan").expect("write");
    b.sync_data().expect("fdatasync b");
    drop(b);
    // A truncate nobody synced.
    OpenOptions::new()
        .write(true)
        .open(root.join("d/f"))
        .expect("open")
        .set_len(10)
        .expect("truncate");

    assert_eq!(read(&root.join("a")).as_deref(), Some(&b"synced and not"[..]));
    assert_eq!(read(&root.join("b")).as_deref(), Some(&b"orphan"[..]));
    assert_eq!(read(&root.join("d/f")).map(|v| v.len()), Some(10));

    let dropped = fs.drop_unsynced();
    assert!(
        dropped.files >= 2 && dropped.dirs >= 2 && dropped.gone >= 1,
        "{dropped:?}"
    );

    assert_eq!(
        read(&root.join("a")).as_deref(),
        Some(&b"synced"[..]),
        "a keeps what was synced"
    );
    assert_eq!(read(&root.join("b")), None, "b's entry was never synced");
    assert_eq!(
        read(&root.join("c")).as_deref(),
        Some(&b""[..]),
        "c's data was never synced"
    );
    assert_eq!(read(&root.join("d/f")), None, "the rename was never synced");
    assert_eq!(read(&root.join("d/e")), Some(vec![7u8; 10_000]), "d/e is back whole");
    let mut names: Vec<String> = std::fs::read_dir(root)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "c", "d"]);

    // It keeps working after a drop.
    std::fs::write(root.join("g"), b"after").expect("write after");
    assert_eq!(read(&root.join("g")).as_deref(), Some(&b"after"[..]));
    drop(fs);
}

#[test]
fn ordered_durability_keeps_the_entries_of_a_synced_file() {
    if !is_root() || !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: mounting a FUSE file system needs root and /dev/fuse");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let fs = lossyfs::mount(dir.path(), lossyfs::Durability::Ordered).expect("mounted");
    let root = dir.path();
    std::fs::create_dir(root.join("wal")).expect("mkdir");
    let mut seg = File::create(root.join("wal/1")).expect("create");
    seg.write_all(b"entry").expect("write");
    seg.sync_data().expect("fdatasync");
    seg.write_all(b" torn").expect("write more");
    drop(seg);
    std::fs::write(root.join("never-synced"), b"x").expect("write");
    fs.drop_unsynced();
    assert_eq!(read(&root.join("wal/1")).as_deref(), Some(&b"entry"[..]));
    assert_eq!(read(&root.join("never-synced")), None);
}
