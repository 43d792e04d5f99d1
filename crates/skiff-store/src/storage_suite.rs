//! openraft's storage test suite against the RocksDB log store and state machine
//! (CONVENTIONS.md: a trait's implementations pass the trait's shared suite).

use openraft::testing::{StoreBuilder, Suite};

use crate::db::Db;
use crate::log_store::LogStore;
use crate::metrics::StoreMetrics;
use crate::raft_types::{StorageError, TypeConfig};
use crate::state_machine::{self, StateMachine};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let io = |e: std::io::Error| openraft::StorageIOError::write(&e);
        let dir = tempfile::tempdir().map_err(io)?;
        let fail = |e: &dyn std::error::Error| {
            openraft::StorageIOError::write(&std::io::Error::other(e.to_string()))
        };
        let db = Db::open(&dir.path().join("db")).map_err(|e| fail(&e))?;
        let metrics = StoreMetrics::private();
        let shared =
            state_machine::load(&db, metrics.clone(), "suite", 64).map_err(|e| fail(&e))?;
        let log = LogStore::new(db.clone(), metrics);
        let sm =
            StateMachine::new(db, &dir.path().join("snapshots"), shared).map_err(|e| fail(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn rocksdb_log_store_and_state_machine_pass_the_openraft_suite() -> Result<(), StorageError> {
    Suite::test_all(RocksBuilder)
}
