//! The write-ahead log on its own: what survives a reopen, torn and damaged files, segment
//! rotation and deletion. openraft's conformance suite runs on it in `conformance.rs`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use ivory_core::Batch;
use ivory_raft::wal::{SEGMENT_MAGIC, Wal};
use ivory_raft::{GroupEntry, TypeConfig};
use openraft::alias::{EntryOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::testing::log_id;

fn entry(term: u64, index: u64, ts_ms: u64) -> EntryOf<TypeConfig> {
    EntryOf::<TypeConfig>::new_normal(
        log_id::<TypeConfig>(term, 1, index),
        GroupEntry::Shard(Arc::new(Batch {
            ts_ms,
            commands: Vec::new(),
        })),
    )
}

fn indexes(wal: &Wal, group: u32) -> Vec<u64> {
    wal.entries(group, 0, None)
        .expect("read")
        .iter()
        .map(|e| e.index())
        .collect()
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    files
}

#[test]
fn entries_vote_and_purge_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vote = VoteOf::<TypeConfig>::new_committed(3, 1);
    {
        let wal = Wal::open(dir.path()).expect("open");
        wal.append(7, (1..=10).map(|i| entry(1, i, i))).expect("append");
        wal.append(9, (1..=3).map(|i| entry(2, i, i))).expect("append");
        wal.save_vote(7, &vote).expect("vote");
        wal.save_committed(7, Some(log_id::<TypeConfig>(1, 1, 8)))
            .expect("committed");
        wal.truncate_after(7, Some(log_id::<TypeConfig>(1, 1, 8)))
            .expect("truncate");
        wal.append(7, [entry(3, 9, 99)]).expect("append after truncate");
        wal.purge(7, log_id::<TypeConfig>(1, 1, 4)).expect("purge");
        wal.drop_group(9).expect("drop");
        wal.write_and_sync(true).expect("sync");
    }
    let wal = Wal::open(dir.path()).expect("reopen");
    assert_eq!(indexes(&wal, 7), vec![5, 6, 7, 8, 9]);
    let last = wal.entries(7, 9, Some(10)).expect("read");
    assert_eq!(
        last[0].log_id(),
        log_id::<TypeConfig>(3, 1, 9),
        "the entry written after the truncation"
    );
    assert_eq!(wal.vote(7).expect("vote"), Some(vote));
    assert_eq!(
        wal.committed(7).expect("committed"),
        Some(log_id::<TypeConfig>(1, 1, 8))
    );
    let (last_id, purged) = wal.log_state(7).expect("state");
    assert_eq!(last_id, Some(log_id::<TypeConfig>(3, 1, 9)));
    assert_eq!(purged, Some(log_id::<TypeConfig>(1, 1, 4)));
    assert!(indexes(&wal, 9).is_empty(), "a dropped group starts empty");
}

#[test]
fn unsynced_appends_are_readable_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path()).expect("open");
    wal.append(1, (1..=3).map(|i| entry(1, i, i))).expect("append");
    assert_eq!(indexes(&wal, 1), vec![1, 2, 3]);
}

#[test]
fn a_hole_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path()).expect("open");
    wal.append(1, [entry(1, 1, 1)]).expect("append");
    assert!(wal.append(1, [entry(1, 3, 3)]).is_err());
}

#[test]
fn a_torn_tail_is_cut_and_what_follows_it_never_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let end = {
        let wal = Wal::open(dir.path()).expect("open");
        wal.append(1, (1..=5).map(|i| entry(1, i, i))).expect("append");
        wal.write_and_sync(true).expect("sync");
        wal.segments().expect("segments").last().expect("a segment").1 as usize
    };
    let file = segments(dir.path()).into_iter().next().expect("a segment");
    let bytes = std::fs::read(&file).expect("read");
    // A crash in the middle of the next round: a half-written record, then a complete one.
    let f = OpenOptions::new().write(true).open(&file).expect("open segment");
    f.write_all_at(&[40, 0, 0, 0, 1, 2, 3, 4, 1, 1], end as u64)
        .expect("torn");
    f.write_all_at(&bytes[SEGMENT_MAGIC.len()..end], end as u64 + 64)
        .expect("stray records");
    drop(f);
    {
        let wal = Wal::open(dir.path()).expect("reopen cuts the torn tail");
        assert_eq!(indexes(&wal, 1), vec![1, 2, 3, 4, 5]);
        wal.append(1, [entry(2, 6, 6)]).expect("append after the cut");
        wal.write_and_sync(true).expect("sync");
    }
    let wal = Wal::open(dir.path()).expect("reopen");
    assert_eq!(indexes(&wal, 1), vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn damage_before_the_tail_stops_the_open_and_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let wal = Wal::open_with(dir.path(), 4096).expect("open");
        for i in 1..=200 {
            wal.append(1, [entry(1, i, i)]).expect("append");
            wal.write_and_sync(true).expect("sync");
        }
    }
    let files = segments(dir.path());
    assert!(files.len() >= 2, "small segments rotate: {files:?}");
    let first = &files[0];
    let mut f = OpenOptions::new().write(true).open(first).expect("open");
    f.write_all_at(b"XX", SEGMENT_MAGIC.len() as u64 + 12).expect("damage");
    f.flush().expect("flush");
    let err = Wal::open_with(dir.path(), 4096).err().expect("damaged log refused");
    assert!(
        err.to_string().contains(&first.display().to_string()),
        "message names the file: {err}"
    );
}

#[test]
fn segments_rotate_and_purged_ones_are_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vote = VoteOf::<TypeConfig>::new_committed(5, 2);
    {
        let wal = Wal::open_with(dir.path(), 4096).expect("open");
        wal.save_vote(3, &vote).expect("vote");
        for i in 1..=300 {
            wal.append(3, [entry(5, i, i)]).expect("append");
            wal.append(4, [entry(5, i, i)]).expect("append");
            wal.write_and_sync(true).expect("sync");
        }
        let before = wal.segments().expect("segments").len();
        assert!(before > 3, "{before} segments");
        wal.purge(3, log_id::<TypeConfig>(5, 1, 290)).expect("purge");
        wal.write_and_sync(true).expect("sync");
        assert_eq!(
            wal.segments().expect("segments").len(),
            before,
            "group 4 still needs every segment"
        );
        wal.purge(4, log_id::<TypeConfig>(5, 1, 280)).expect("purge");
        wal.write_and_sync(true).expect("sync");
        let after = wal.segments().expect("segments").len();
        assert!(after < before, "purged segments deleted: {before} -> {after}");
    }
    let wal = Wal::open_with(dir.path(), 4096).expect("reopen");
    assert_eq!(indexes(&wal, 3), (291..=300).collect::<Vec<_>>());
    assert_eq!(indexes(&wal, 4), (281..=300).collect::<Vec<_>>());
    assert_eq!(
        wal.vote(3).expect("vote"),
        Some(vote),
        "the checkpoint carried the vote"
    );
    let (_, purged) = wal.log_state(3).expect("state");
    assert_eq!(purged, Some(log_id::<TypeConfig>(5, 1, 290)));
}

#[test]
fn old_entries_are_read_back_from_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path()).expect("open");
    // More than a group's cache: the first entries are evicted and read with pread.
    let big = |i: u64| {
        EntryOf::<TypeConfig>::new_normal(
            log_id::<TypeConfig>(1, 1, i),
            GroupEntry::Shard(Arc::new(Batch {
                ts_ms: i,
                commands: vec![
                    ivory_core::Command::PutConfig {
                        environment: format!("env-{i}"),
                        config_json: "x".repeat(64 * 1024),
                    };
                    1
                ],
            })),
        )
    };
    for i in 1..=40 {
        wal.append(2, [big(i)]).expect("append");
        wal.write_and_sync(true).expect("sync");
    }
    let all = wal.entries(2, 1, None).expect("read");
    assert_eq!(all.len(), 40);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(*e, big(i as u64 + 1));
    }
}
