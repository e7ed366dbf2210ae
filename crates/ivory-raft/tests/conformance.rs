//! openraft's storage conformance suite against the write-ahead log store and shard state machine.

use ivory_raft::{GroupLogStore, NodeStorage, ShardStateMachine, StorageOptions, TypeConfig};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb, StorageError};

struct SledBuilder;

impl StoreBuilder<TypeConfig, GroupLogStore, ShardStateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, GroupLogStore, ShardStateMachine), StorageError<TypeConfig>> {
        let to_storage = |e: std::io::Error| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e);
        let dir = tempfile::tempdir().map_err(to_storage)?;
        let storage = NodeStorage::open_async(dir.path().to_path_buf(), StorageOptions::default())
            .await
            .map_err(to_storage)?;
        let (log, sm) = storage.open_group(7).await.map_err(to_storage)?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_store_passes_openraft_suite() {
    tokio::time::timeout(std::time::Duration::from_secs(120), Suite::test_all(SledBuilder))
        .await
        .expect("suite timed out")
        .expect("suite failed");
}
