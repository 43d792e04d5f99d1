//! Unit tests of the watch hub and watchers over a real (temporary) RocksDB: range filtering of
//! shared events, replay then live without gap or duplicate, compaction, slow watchers.

use std::collections::BTreeMap;

use rocksdb::WriteBatch;

use super::*;
use crate::apply::{Changes, Counters, KvRecord};
use crate::db::write_changes;
use crate::types::{EventKind, KeyValue, prefix_end};

use super::start as start_watch;

struct Fixture {
    _tmp: tempfile::TempDir,
    db: Db,
    hub: Hub,
    revision: u64,
    values: BTreeMap<Vec<u8>, KeyValue>,
}

impl Fixture {
    fn new(queue_len: usize) -> Fixture {
        let tmp = tempfile::tempdir().expect("test setup");
        let db = Db::open(tmp.path()).expect("test setup");
        Fixture {
            _tmp: tmp,
            db,
            hub: Hub::new(0, queue_len),
            revision: 0,
            values: BTreeMap::new(),
        }
    }

    /// One revision writing every key (durable first, then published, like apply).
    fn put(&mut self, keys: &[&str]) -> u64 {
        self.revision += 1;
        let rev = self.revision;
        let mut changes = Changes::default();
        for (seq, key) in keys.iter().enumerate() {
            let prev = self.values.get(key.as_bytes()).cloned();
            let kv = KeyValue {
                key: key.as_bytes().to_vec(),
                value: format!("{key}@{rev}").into_bytes(),
                create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                mod_revision: rev,
                version: prev.as_ref().map_or(1, |p| p.version + 1),
                lease: 0,
            };
            self.values.insert(kv.key.clone(), kv.clone());
            changes.kv.insert(
                kv.key.clone(),
                Some(KvRecord {
                    value: kv.value.clone(),
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                    version: kv.version,
                    lease: 0,
                }),
            );
            changes.events.push((
                rev,
                seq as u32,
                Event {
                    kind: EventKind::Put,
                    kv,
                    prev_kv: prev,
                },
            ));
        }
        self.write(&changes, None);
        let batch: Vec<Event> = changes.events.into_iter().map(|(_, _, e)| e).collect();
        self.hub.publish(vec![(rev, batch)], rev);
        rev
    }

    fn write(&self, changes: &Changes, compact_before: Option<(u64, u64)>) {
        let counters = Counters {
            revision: self.revision,
            compact_revision: compact_before.map_or(0, |(_, new)| new),
            member_seq: 0,
        };
        let mut batch = WriteBatch::default();
        write_changes(&self.db, &mut batch, changes, &counters, compact_before)
            .expect("test setup");
        self.db.write_synced(batch).expect("test setup");
    }

    fn watch(&self, start: &str, end: RangeEnd, from: u64, prev_kv: bool, out: usize) -> Watcher {
        start_watch(
            self.db.clone(),
            &self.hub,
            Request {
                start: start.as_bytes().to_vec(),
                end,
                start_revision: from,
                prev_kv,
                progress_interval: None,
            },
            out,
        )
    }
}

fn prefix(p: &str) -> RangeEnd {
    RangeEnd::Before(prefix_end(p.as_bytes()))
}

/// (revision, keys) of the next response.
async fn next(w: &mut Watcher) -> (u64, Vec<String>) {
    let resp = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("a response in time")
        .expect("the watch is open")
        .expect("no error");
    let keys = resp
        .events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.kv.key).into_owned())
        .collect();
    (resp.revision, keys)
}

#[tokio::test]
async fn live_events_reach_only_the_watchers_of_their_keys() {
    let mut f = Fixture::new(64);
    let mut on_a = f.watch("/a/", prefix("/a/"), 0, false, 64);
    let mut on_b1 = f.watch("/b/1", RangeEnd::Single, 0, true, 64);
    f.put(&["/a/1", "/b/1", "/c/1"]);
    f.put(&["/c/2"]);
    f.put(&["/b/1", "/b/2"]);
    f.put(&["/a/2", "/a/1"]);
    assert_eq!(next(&mut on_a).await, (1, vec!["/a/1".to_string()]));
    assert_eq!(
        next(&mut on_a).await,
        (4, vec!["/a/2".to_string(), "/a/1".to_string()])
    );
    assert_eq!(next(&mut on_b1).await, (1, vec!["/b/1".to_string()]));
    let resp = on_b1.next().await.expect("a response").expect("no error");
    assert_eq!(resp.revision, 3);
    assert_eq!(resp.events.len(), 1);
    assert_eq!(resp.events[0].kv.value, b"/b/1@3");
    let prev = resp.events[0].prev_kv.as_ref().expect("prev_kv asked for");
    assert_eq!(prev.value, b"/b/1@1");

    // Without prev_kv the previous value is stripped.
    f.put(&["/a/1"]);
    let resp = on_a.next().await.expect("a response").expect("no error");
    assert_eq!(resp.revision, 5);
    assert!(resp.events[0].prev_kv.is_none());
}

#[tokio::test]
async fn a_watch_replays_history_then_follows_live_events_without_gap_or_duplicate() {
    let mut f = Fixture::new(64);
    for i in 0..30 {
        f.put(&[&format!("/{}/{}", ["a", "b", "c"][i % 3], i % 4)]);
    }
    let mut w = f.watch("/a/", prefix("/a/"), 5, true, 64);
    for i in 30..40 {
        f.put(&[&format!("/{}/{}", ["a", "b", "c"][i % 3], i % 4)]);
    }
    let expected: Vec<u64> = (5..=40).filter(|rev| (rev - 1) % 3 == 0).collect();
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let (rev, keys) = next(&mut w).await;
        assert_eq!(keys.len(), 1);
        assert!(keys[0].starts_with("/a/"), "{keys:?}");
        seen.push(rev);
    }
    assert_eq!(seen, expected);
    // The replayed events carry their previous values like live ones.
    let mut w = f.watch("/a/", prefix("/a/"), 13, true, 64);
    let resp = w.next().await.expect("a response").expect("no error");
    assert_eq!(resp.revision, 13);
    assert_eq!(
        resp.events[0]
            .prev_kv
            .as_ref()
            .expect("prev_kv asked for")
            .mod_revision,
        1
    );
}

#[tokio::test]
async fn a_watch_from_a_compacted_revision_fails_with_compacted() {
    let mut f = Fixture::new(64);
    for i in 0..10 {
        f.put(&[&format!("/a/{i}")]);
    }
    f.write(&Changes::default(), Some((0, 6)));
    let mut w = f.watch("/a/", prefix("/a/"), 3, false, 64);
    match w.next().await {
        Some(Err(Error::Compacted { compact_revision })) => assert_eq!(compact_revision, 6),
        other => panic!("expected Compacted, got {other:?}"),
    }
    let mut w = f.watch("/a/", prefix("/a/"), 6, false, 64);
    assert_eq!(next(&mut w).await, (6, vec!["/a/5".to_string()]));
}

#[tokio::test]
async fn a_watcher_that_falls_behind_is_cancelled_and_the_others_keep_going() {
    let mut f = Fixture::new(16);
    let mut slow = f.watch("/a/", prefix("/a/"), 0, false, 1);
    let mut fast = f.watch("/a/", prefix("/a/"), 0, false, 64);
    let mut fast_seen = Vec::new();
    for i in 0..60 {
        f.put(&[&format!("/a/{}", i % 5)]);
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        while let Ok(Some(resp)) = tokio::time::timeout(Duration::from_millis(1), fast.next()).await
        {
            fast_seen.push(resp.expect("no error").revision);
        }
    }
    assert_eq!(fast_seen, (1..=60).collect::<Vec<_>>());
    let mut slow_seen = Vec::new();
    let reason = loop {
        match slow.next().await {
            Some(Ok(resp)) => slow_seen.push(resp.revision),
            Some(Err(Error::Canceled(reason))) => break reason,
            other => panic!("expected events then Canceled, got {other:?}"),
        }
    };
    assert!(reason.contains("fell too far behind"), "{reason}");
    assert!(!slow_seen.is_empty() && slow_seen.len() < 60);
    assert_eq!(slow_seen, (1..=slow_seen.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_watch_on_one_key_replays_only_that_keys_changes() {
    let mut f = Fixture::new(64);
    f.put(&["/a/1"]); // 1
    for i in 0..20 {
        f.put(&[&format!("/b/{i}")]); // 2..=21
    }
    f.put(&["/a/2"]); // 22
    // Unchanged since its own revision: nothing to replay, then live events.
    let mut from_own = f.watch("/a/1", RangeEnd::Single, 2, false, 64);
    // Changed at 23 before this watch registers: replayed.
    f.put(&["/a/1"]); // 23
    let mut from_older = f.watch("/a/1", RangeEnd::Single, 2, false, 64);
    let mut absent = f.watch("/a/3", RangeEnd::Single, 2, false, 64);
    f.put(&["/a/3", "/a/1"]); // 24
    assert_eq!(next(&mut from_own).await, (23, vec!["/a/1".to_string()]));
    assert_eq!(next(&mut from_own).await, (24, vec!["/a/1".to_string()]));
    assert_eq!(next(&mut from_older).await, (23, vec!["/a/1".to_string()]));
    assert_eq!(next(&mut from_older).await, (24, vec!["/a/1".to_string()]));
    assert_eq!(next(&mut absent).await, (24, vec!["/a/3".to_string()]));
}

#[tokio::test]
async fn a_replay_hands_out_one_revision_at_a_time_and_stops_when_told() {
    let mut f = Fixture::new(64);
    for i in 0..200 {
        f.put(&[&format!("/a/{}", i % 7), &format!("/b/{i}")]);
    }
    let request = Request {
        start: b"/a/".to_vec(),
        end: prefix("/a/"),
        start_revision: 10,
        prev_kv: false,
        progress_interval: None,
    };
    let mut seen = Vec::new();
    replay(&f.db, &request, 10, 200, |rev, events| {
        assert_eq!(events.len(), 1, "only the /a/ key of revision {rev}");
        seen.push(rev);
        seen.len() < 5
    })
    .expect("replay");
    assert_eq!(
        seen,
        vec![10, 11, 12, 13, 14],
        "in order, and nothing after the stop"
    );
    // Read to the end, the last revision is there too.
    let mut all = Vec::new();
    replay(&f.db, &request, 10, 200, |rev, _| {
        all.push(rev);
        true
    })
    .expect("replay");
    assert_eq!(all, (10..=200).collect::<Vec<_>>());
}

#[tokio::test]
async fn progress_notifications_keep_coming_while_events_flow_and_cover_what_came_before() {
    let mut f = Fixture::new(1024);
    let mut w = start_watch(
        f.db.clone(),
        &f.hub,
        Request {
            start: b"/a/".to_vec(),
            end: prefix("/a/"),
            start_revision: 1,
            prev_kv: false,
            progress_interval: Some(Duration::from_millis(200)),
        },
        4096,
    );
    // A write every 20 ms for 1.2 s: never 200 ms without an event.
    for i in 0..60 {
        f.put(&[&format!("/a/{}", i % 3)]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut last_event = 0;
    let mut bookmarks = Vec::new();
    // Bookmarks never stop coming: read until one covers the last write.
    while bookmarks.last().is_none_or(|b| *b < 60) {
        let resp = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("a response in time")
            .expect("the watch is open")
            .expect("no error");
        if resp.progress {
            assert!(
                resp.revision >= last_event,
                "a bookmark at {} after an event at {last_event}",
                resp.revision
            );
            bookmarks.push(resp.revision);
        } else {
            assert!(
                bookmarks.last().is_none_or(|b| resp.revision > *b),
                "an event at {} after a bookmark at {:?}",
                resp.revision,
                bookmarks.last()
            );
            last_event = resp.revision;
        }
    }
    assert_eq!(last_event, 60, "every event arrived");
    assert!(
        bookmarks.iter().filter(|b| **b < 60).count() >= 2,
        "bookmarks while events flowed: {bookmarks:?}"
    );
}
