//! Unit tests of the watch handler's pure steps: event types under selectors, line framing.

use serde_json::json;
use skiff_store::types::EventKind::{Delete, Put};

use super::*;

#[test]
fn classify_follows_the_selectors_across_the_change() {
    let cases = [
        // (kind, new matches, old matches) -> sent
        (Put, Some(true), None, Some(("ADDED", Side::New))),
        (Put, Some(false), None, None),
        (Put, Some(true), Some(true), Some(("MODIFIED", Side::New))),
        (Put, Some(true), Some(false), Some(("ADDED", Side::New))),
        (Put, Some(false), Some(true), Some(("DELETED", Side::Old))),
        (Put, Some(false), Some(false), None),
        // A put whose value did not decode sends nothing.
        (Put, None, Some(true), None),
        (Put, None, None, None),
        (Delete, None, Some(true), Some(("DELETED", Side::Old))),
        (Delete, None, Some(false), None),
        (Delete, None, None, None),
    ];
    for (kind, new, old, expected) in cases {
        assert_eq!(
            classify(kind, new, old),
            expected,
            "{kind:?} {new:?} {old:?}"
        );
    }
}

#[test]
fn json_line_frames_the_same_bytes_as_line() {
    let object = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "resourceVersion": "12", "labels": {"x": "y\"z"}},
        "data": {"k": "line\nbreak", "u": "ü"}
    });
    for kind in ["ADDED", "MODIFIED", "DELETED"] {
        let encoded = serde_json::to_vec(&object).expect("encodes");
        assert_eq!(json_line(kind, &encoded), line(kind, &object));
    }
}
