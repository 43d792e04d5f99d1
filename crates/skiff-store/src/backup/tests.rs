//! Unit tests for the pure parts of backups and a restore round trip on a real RocksDB.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rocksdb::WriteBatch;

use super::*;
use crate::db::CF_HISTORY;

#[test]
fn restored_counters_bump_and_compact_everything_before() {
    let backup = Counters {
        revision: 120,
        compact_revision: 40,
        member_seq: 3,
    };
    let c = restored_counters(backup, 1_000, 4);
    assert_eq!(c.revision, 1_120);
    assert_eq!(c.compact_revision, 1_120);
    assert_eq!(c.member_seq, 4);
    // A zero bump still moves ahead; overflow saturates instead of wrapping.
    assert_eq!(restored_counters(backup, 0, 1).revision, 121);
    let huge = Counters {
        revision: u64::MAX - 1,
        ..backup
    };
    assert_eq!(restored_counters(huge, 10, 1).revision, u64::MAX);
}

#[test]
fn first_member_id_is_above_every_allocated_id() {
    let counters = Counters {
        revision: 1,
        compact_revision: 0,
        member_seq: 7,
    };
    assert_eq!(first_member_id(&counters, &StoredMembership::default()), 8);
    let none = Counters::default();
    assert_eq!(first_member_id(&none, &StoredMembership::default()), 1);
}

#[test]
fn prune_keeps_the_newest() {
    let files: Vec<(PathBuf, u64)> = (0..7)
        .map(|i| (PathBuf::from(format!("b{i}")), 100 + i as u64))
        .collect();
    let doomed = prune_plan(&files, 5);
    assert_eq!(doomed, vec![PathBuf::from("b1"), PathBuf::from("b0")]);
    assert!(prune_plan(&files, 10).is_empty());
    assert_eq!(prune_plan(&files, 0).len(), 7);
}

fn seed(db: &Db) {
    let mut batch = WriteBatch::default();
    for i in 0..50u32 {
        batch.put_cf(db.cf(CF_KV).unwrap(), format!("/k/{i:03}"), b"value");
    }
    batch.put_cf(db.cf(CF_HISTORY).unwrap(), db::history_key(5, 0), b"event");
    let counters = Counters {
        revision: 60,
        compact_revision: 2,
        member_seq: 3,
    };
    batch.put_cf(
        db.cf(CF_SM).unwrap(),
        sm_key::COUNTERS,
        db::encode(&counters).unwrap(),
    );
    db.write_synced(batch).unwrap();
}

#[test]
fn restore_round_trip_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(&tmp.path().join("src")).unwrap();
    seed(&db);
    let file = tmp.path().join("b.backup");
    let header = snapshot::build(&db, &file, "c1", |_| "id".into(), |_| {}).unwrap();
    assert_eq!(header.skiff_version, SKIFF_VERSION);
    let (_, records) = check(&file).unwrap();
    assert_eq!(records, 51);

    let target = tmp.path().join("restored");
    let restored = restore(
        RestoreOptions {
            backup: &file,
            data_dir: &target,
            name: "r1",
            cluster_files: BTreeMap::from([("k".to_string(), b"v".to_vec())]),
            revision_bump: 1000,
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(restored.keys, 50);
    assert_eq!(restored.revision, 1060);
    assert_eq!(restored.identity.member_id, 4);
    assert_ne!(restored.identity.cluster_id, "c1");
    let dir = DataDir::new(&target);
    assert!(dir.is_initialized() && dir.initialize_marker().exists());
    let rdb = Db::open(&dir.db()).unwrap();
    let c = rdb.counters().unwrap();
    assert_eq!((c.revision, c.compact_revision), (1060, 1060));
    let mut history = 0;
    View::live(&rdb)
        .for_each(CF_HISTORY, &[], |_, _| {
            history += 1;
            Ok(true)
        })
        .unwrap();
    assert_eq!(history, 0, "history before the restore is compacted away");

    // A non-empty target is refused.
    let again = restore(
        RestoreOptions {
            backup: &file,
            data_dir: &target,
            name: "r1",
            cluster_files: BTreeMap::new(),
            revision_bump: 1000,
        },
        |_| {},
    );
    assert!(matches!(again, Err(Error::DataDir(_))), "{again:?}");

    // One flipped byte is refused by the checksum.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let corrupt = tmp.path().join("corrupt.backup");
    std::fs::write(&corrupt, &bytes).unwrap();
    let err = check(&corrupt).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
}
