//! The RocksDB log store and state machine pass openraft's storage
//! conformance suite.

use std::sync::Arc;

use amoskys_consensus::store::{self, LogStore, StateMachine};
use amoskys_consensus::{NodeId, TypeConfig};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = amoskys_consensus::lab::open_db(dir.path()).expect("db");
        let opened = store::open(db as Arc<dyn store::Database>).map_err(|e| {
            openraft::StorageIOError::read(openraft::AnyError::error(e.to_string()))
        })?;
        Ok((dir, opened.log, opened.sm))
    }
}

#[test]
fn rocksdb_store_passes_the_openraft_suite() {
    if let Err(e) = Suite::test_all(RocksBuilder) {
        panic!("the suite failed: {e}");
    }
}
