//! Unit tests of the record encodings that reads rely on without decoding whole records, and
//! of how a damaged write-ahead log is handled at open.

use super::*;
use crate::types::{EventKind, KeyValue};

fn kv(key: &[u8], value: &[u8], revision: u64) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: value.to_vec(),
        create_revision: revision,
        mod_revision: revision,
        version: 1,
        lease: 0,
    }
}

#[test]
fn event_key_reads_the_key_of_every_kind_of_event() {
    let long_key = vec![b'k'; 300]; // a length that takes two varint bytes
    let cases = [
        Event {
            kind: EventKind::Put,
            kv: kv(b"/registry/a", &[7u8; 1000], 5),
            prev_kv: None,
        },
        Event {
            kind: EventKind::Put,
            kv: kv(&long_key, b"new", 6),
            prev_kv: Some(kv(&long_key, b"old", 5)),
        },
        Event {
            kind: EventKind::Delete,
            kv: kv(b"", b"", 7),
            prev_kv: Some(kv(b"", b"gone", 3)),
        },
    ];
    for event in cases {
        let record = encode(&event).expect("test setup");
        assert_eq!(event_key(&record).expect("a key"), event.kv.key.as_slice());
    }
}

#[test]
fn event_key_of_a_truncated_record_is_an_error() {
    let record = encode(&Event {
        kind: EventKind::Put,
        kv: kv(b"/registry/abc", b"v", 1),
        prev_kv: None,
    })
    .expect("test setup");
    assert!(event_key(&record[..4]).is_err());
    assert!(event_key(&[]).is_err());
}

#[test]
fn history_in_range_visits_the_kept_keys_like_history_does() {
    let tmp = tempfile::tempdir().expect("test setup");
    let db = Db::open(tmp.path()).expect("test setup");
    let mut changes = Changes::default();
    for rev in 1..=20u64 {
        let key = format!("/k/{}", rev % 3);
        changes.events.push((
            rev,
            0,
            Event {
                kind: EventKind::Put,
                kv: kv(key.as_bytes(), format!("v{rev}").as_bytes(), rev),
                prev_kv: None,
            },
        ));
    }
    let mut batch = WriteBatch::default();
    write_changes(&db, &mut batch, &changes, &Counters::default(), None).expect("test setup");
    db.write_synced(batch).expect("test setup");

    let view = View::snapshot(&db);
    let mut all = Vec::new();
    view.history(4, 17, |rev, e| {
        all.push((rev, e));
        Ok(true)
    })
    .expect("test setup");
    let mut kept = Vec::new();
    view.history_in_range(
        4,
        17,
        |key| key == b"/k/1",
        |rev, e| {
            kept.push((rev, e));
            Ok(true)
        },
    )
    .expect("test setup");
    let expected: Vec<_> = all
        .into_iter()
        .filter(|(_, e)| e.kv.key == b"/k/1")
        .collect();
    assert_eq!(kept, expected);
    assert_eq!(
        kept.iter().map(|(rev, _)| *rev).collect::<Vec<_>>(),
        [4, 7, 10, 13, 16]
    );
}

/// Writes three synced records to a fresh database and closes it; returns the WAL segment.
fn db_with_records(dir: &Path) -> std::path::PathBuf {
    let db = Db::open(dir).unwrap();
    for i in 0..3u64 {
        let mut batch = WriteBatch::default();
        batch.put_cf(db.cf(CF_RAFT).unwrap(), u64_key(i), vec![7u8; 200]);
        db.write_synced(batch).unwrap();
    }
    drop(db);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a WAL segment")
}

#[test]
fn a_flipped_byte_in_the_log_is_refused_not_replayed_up_to() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = db_with_records(tmp.path());
    let mut bytes = std::fs::read(&wal).unwrap();
    // Inside the second record's payload (each record is a little over 200 bytes).
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&wal, &bytes).unwrap();
    match Db::open(tmp.path()) {
        Err(Error::Corrupt { reason, .. }) => assert!(!reason.is_empty()),
        Err(e) => panic!("expected a corruption refusal, got {e}"),
        Ok(_) => panic!("a database with a damaged log opened"),
    }
}

#[test]
fn a_torn_last_record_is_dropped_and_the_rest_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = db_with_records(tmp.path());
    let len = std::fs::metadata(&wal).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let db = Db::open(tmp.path()).expect("a torn tail must not stop the member");
    let raft = db.cf(CF_RAFT).unwrap();
    assert!(db.raw().get_cf(raft, u64_key(0)).unwrap().is_some());
    assert!(db.raw().get_cf(raft, u64_key(1)).unwrap().is_some());
    assert!(db.raw().get_cf(raft, u64_key(2)).unwrap().is_none());
}
