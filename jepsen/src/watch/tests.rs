//! Handmade good and bad watch logs.

use super::*;

fn e(rv: u64, kind: EventKind, name: &str, value: Option<&str>) -> Event {
    Event {
        rv,
        kind,
        name: name.into(),
        value: value.map(String::from),
    }
}

fn reference() -> Vec<Event> {
    vec![
        e(11, EventKind::Modified, "reg-0", Some("100")),
        e(12, EventKind::Added, "set-1", None),
        // Two objects in one revision (one transaction).
        e(13, EventKind::Added, "set-2", None),
        e(13, EventKind::Added, "set-3", None),
        e(14, EventKind::Modified, "reg-0", Some("200")),
    ]
}

fn attempted() -> HashSet<(String, Option<String>)> {
    [
        ("reg-0", Some("100")),
        ("reg-0", Some("200")),
        ("reg-0", Some("300")),
        ("set-1", None),
        ("set-2", None),
        ("set-3", None),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v.map(String::from)))
    .collect()
}

fn start(from_rv: u64) -> WatchEntry {
    WatchEntry::Start {
        member: 0,
        from_rv,
        at: 0,
    }
}

fn run(reference: &[Event], acked: &[Event], entries: Vec<WatchEntry>, caught_up: bool) -> Summary {
    let attempted = attempted();
    let watches = vec![WatchLog {
        watcher: 1,
        entries,
        caught_up,
    }];
    check(&Input {
        start_rv: 10,
        final_rv: 14,
        reference,
        watches: &watches,
        acked,
        attempted: &attempted,
    })
}

fn all_events_from(rv: u64) -> Vec<WatchEntry> {
    reference()
        .into_iter()
        .filter(|x| x.rv > rv)
        .map(WatchEntry::Event)
        .collect()
}

#[test]
fn complete_log_with_restarts_and_bookmarks_passes() {
    let r = reference();
    let mut entries = vec![start(10)];
    entries.push(WatchEntry::Event(r[0].clone()));
    entries.push(WatchEntry::Bookmark { rv: 11 });
    entries.push(WatchEntry::Error {
        message: "connection reset".into(),
        gone: false,
    });
    entries.push(start(11));
    entries.push(WatchEntry::Event(r[1].clone()));
    entries.push(WatchEntry::Event(r[2].clone()));
    entries.push(WatchEntry::Event(r[3].clone()));
    entries.push(start(13));
    entries.push(WatchEntry::Event(r[4].clone()));
    entries.push(WatchEntry::Bookmark { rv: 20 });
    let s = run(&r, &[r[0].clone(), r[4].clone()], entries, true);
    assert!(s.anomalies.is_empty(), "{:#?}", s.anomalies);
    assert_eq!((s.restarts, s.bookmarks, s.events_seen), (3, 2, 5));
}

#[test]
fn gap_is_reported() {
    let r = reference();
    let mut entries = vec![start(10), WatchEntry::Event(r[0].clone())];
    entries.push(WatchEntry::Event(r[4].clone()));
    let s = run(&r, &[], entries, true);
    assert_eq!(s.anomalies.len(), 1, "{:#?}", s.anomalies);
    assert!(
        s.anomalies[0].summary.contains("gap"),
        "{}",
        s.anomalies[0].summary
    );
    assert!(s.anomalies[0].summary.contains("set-1"));
}

#[test]
fn half_a_revision_then_resume_is_a_gap() {
    let r = reference();
    let mut entries = vec![start(10)];
    entries.extend(r[..3].iter().cloned().map(WatchEntry::Event));
    entries.push(start(13));
    entries.push(WatchEntry::Event(r[4].clone()));
    let s = run(&r, &[], entries, true);
    assert_eq!(s.anomalies.len(), 1, "{:#?}", s.anomalies);
    assert!(
        s.anomalies[0].summary.contains("set-3"),
        "{}",
        s.anomalies[0].summary
    );
}

#[test]
fn repeats_and_reordering_are_reported() {
    let r = reference();
    let entries = vec![
        start(10),
        WatchEntry::Event(r[0].clone()),
        WatchEntry::Event(r[0].clone()),
    ];
    let s = run(&r, &[], entries, true);
    assert!(
        s.anomalies[0].summary.contains("repeated"),
        "{:#?}",
        s.anomalies
    );
    let entries = vec![
        start(10),
        WatchEntry::Event(r[1].clone()),
        WatchEntry::Event(r[0].clone()),
    ];
    let s = run(&r, &[], entries, true);
    assert_eq!(s.anomalies.len(), 1, "{:#?}", s.anomalies);
}

#[test]
fn untruthful_bookmark_is_reported() {
    let r = reference();
    let entries = vec![
        start(10),
        WatchEntry::Event(r[0].clone()),
        WatchEntry::Bookmark { rv: 12 },
    ];
    let s = run(&r, &[], entries, true);
    assert!(
        s.anomalies[0].summary.contains("bookmark at rv 12"),
        "{:#?}",
        s.anomalies
    );
}

#[test]
fn stalled_watcher_and_gone_are_reported() {
    let r = reference();
    let s = run(&r, &[], all_events_from(12), false);
    assert_eq!(s.anomalies.len(), 1, "{:#?}", s.anomalies);
    let mut entries = vec![start(10)];
    entries.extend(all_events_from(10));
    assert!(
        run(&r, &[], entries.clone(), false).anomalies[0]
            .summary
            .contains("did not reach")
    );
    entries.push(WatchEntry::Error {
        message: "too old".into(),
        gone: true,
    });
    assert!(
        run(&r, &[], entries, true).anomalies[0]
            .summary
            .contains("410")
    );
}

#[test]
fn reference_must_agree_with_acknowledged_writes() {
    let r = reference();
    let mut entries = vec![start(10)];
    entries.extend(all_events_from(10));
    // An acknowledged write missing from the history.
    let lost = e(15, EventKind::Modified, "reg-0", Some("300"));
    let s = run(&r, &[lost], entries.clone(), true);
    assert_eq!(s.anomalies.len(), 1, "{:#?}", s.anomalies);
    assert!(
        s.anomalies[0]
            .excerpt
            .contains("acknowledged write missing")
    );
    // A value nobody wrote.
    let mut bad = r.clone();
    bad[4].value = Some("999".into());
    let mut entries = vec![start(10)];
    entries.extend(bad.iter().cloned().map(WatchEntry::Event));
    let s = run(&bad, &[], entries, true);
    assert!(
        s.anomalies[0].excerpt.contains("no client wrote this"),
        "{:#?}",
        s.anomalies
    );
}
