//! Unit tests of the shared decoded-event cache: sharing, bounds, eviction order.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::*;

fn decoded(n: u64) -> Decoded {
    Decoded::new(Some(json!({"n": n})), None)
}

#[test]
fn the_first_watch_decodes_and_the_others_share() {
    let cache = Cache::new(16, 1 << 20);
    let decodes = AtomicUsize::new(0);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(cache.get_or_decode(7, b"/k", 100, || {
            decodes.fetch_add(1, Ordering::Relaxed);
            decoded(7)
        }));
    }
    assert_eq!(decodes.load(Ordering::Relaxed), 1);
    assert!(got.iter().all(|d| Arc::ptr_eq(d, &got[0])));
    // Another key of the same revision is another event.
    let other = cache.get_or_decode(7, b"/l", 100, || decoded(8));
    assert_eq!(other.new, Some(json!({"n": 8})));
    assert_eq!(cache.len(), 2);
}

#[test]
fn json_is_encoded_once_per_side_and_absent_sides_have_none() {
    let d = Decoded::new(Some(json!({"a": 1})), Some(json!({"b": 2})));
    let first = d.json(Side::New).expect("encodes");
    assert_eq!(&first[..], br#"{"a":1}"#);
    assert_eq!(first.as_ptr(), d.json(Side::New).expect("encodes").as_ptr());
    assert_eq!(&d.json(Side::Old).expect("encodes")[..], br#"{"b":2}"#);
    let delete = Decoded::new(None, Some(json!({})));
    assert!(delete.json(Side::New).is_none());
    assert!(delete.object(Side::New).is_none());
}

#[test]
fn the_lowest_revisions_are_evicted_first_within_both_bounds() {
    let cache = Cache::new(3, 1 << 20);
    for rev in [5, 3, 9, 4] {
        cache.get_or_decode(rev, b"/k", 10, || decoded(rev));
    }
    assert_eq!(cache.len(), 3);
    let decodes = AtomicUsize::new(0);
    let again = |rev: u64| {
        cache.get_or_decode(rev, b"/k", 10, || {
            decodes.fetch_add(1, Ordering::Relaxed);
            decoded(rev)
        })
    };
    again(9);
    again(5);
    assert_eq!(decodes.load(Ordering::Relaxed), 0, "9 and 5 are kept");
    let evicted = again(3);
    assert_eq!(decodes.load(Ordering::Relaxed), 1, "3 was evicted");
    assert_eq!(evicted.new, Some(json!({"n": 3})));

    let by_bytes = Cache::new(100, 1000);
    for rev in 1..=10 {
        by_bytes.get_or_decode(rev, b"/k", 120, || decoded(rev));
    }
    assert_eq!(by_bytes.len(), 8, "8 x 120 bytes fit in 1000");
}

#[test]
fn an_event_too_big_to_keep_is_decoded_but_not_kept() {
    let cache = Cache::new(100, 8000);
    cache.get_or_decode(1, b"/big", 1001, || decoded(1));
    assert_eq!(cache.len(), 0);
    cache.get_or_decode(1, b"/small", 1000, || decoded(1));
    assert_eq!(cache.len(), 1);
}
