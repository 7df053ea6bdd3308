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
        let (log, sm, _) = store::open(db as Arc<dyn store::Database>)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn rocksdb_store_passes_the_openraft_suite() -> Result<(), StorageError<NodeId>> {
    Suite::test_all(RocksBuilder)
}
