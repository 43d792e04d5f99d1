//! The Event printer, for core/v1 Events and events.k8s.io/v1 Events (whose fields have other
//! names: `regarding`, `note`, `deprecatedSource`, ...).

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::{Printer, column, int, name_of, printer_of, since, string, text, wide};

pub(super) fn printer(group: &str, resource: &str) -> Option<Printer> {
    match (group, resource) {
        ("", "events") | ("events.k8s.io", "events") => printer_of(
            &[
                string("Last Seen", "When the event was last seen."),
                string("Type", "The type of the event."),
                string("Reason", "Why the event happened."),
                string("Object", "The object the event is about."),
                wide("Subobject", "The part of the object the event is about."),
                wide("Source", "Who reported the event."),
                string("Message", "What happened."),
                wide("First Seen", "When the event was first seen."),
                column("Count", "integer", "How many times the event happened.", 1),
                column("Name", "string", "The name of the event.", 1),
            ],
            if group.is_empty() {
                core_event
            } else {
                new_event
            },
        ),
        _ => None,
    }
}

struct EventFields {
    last_seen: String,
    first_seen: String,
    regarding: Value,
    source: String,
    message: String,
    count: i64,
}

fn event_cells(object: &Value, fields: EventFields, now: Timestamp) -> Vec<Value> {
    let kind = text(&fields.regarding, "/kind").to_ascii_lowercase();
    let since_or_unknown = |timestamp: &str| since(timestamp, now);
    vec![
        json!(since_or_unknown(&fields.last_seen)),
        json!(text(object, "/type")),
        json!(text(object, "/reason")),
        json!(format!("{kind}/{}", text(&fields.regarding, "/name"))),
        json!(text(&fields.regarding, "/fieldPath")),
        json!(fields.source),
        json!(fields.message),
        json!(since_or_unknown(&fields.first_seen)),
        json!(fields.count),
        json!(name_of(object)),
    ]
}

fn first_non_empty(candidates: &[String]) -> String {
    candidates
        .iter()
        .find(|candidate| !candidate.is_empty())
        .cloned()
        .unwrap_or_default()
}

fn event_source(component: String, host: String) -> String {
    match (component.is_empty(), host.is_empty()) {
        (_, true) => component,
        (true, false) => host,
        (false, false) => format!("{component}, {host}"),
    }
}

fn core_event(object: &Value, now: Timestamp) -> Vec<Value> {
    let series_count = int(object, "/series/count");
    let fields = EventFields {
        last_seen: first_non_empty(&[
            text(object, "/series/lastObservedTime"),
            text(object, "/lastTimestamp"),
            text(object, "/eventTime"),
        ]),
        first_seen: first_non_empty(&[text(object, "/firstTimestamp"), text(object, "/eventTime")]),
        regarding: object.get("involvedObject").cloned().unwrap_or(Value::Null),
        source: event_source(
            first_non_empty(&[
                text(object, "/source/component"),
                text(object, "/reportingComponent"),
            ]),
            first_non_empty(&[
                text(object, "/source/host"),
                text(object, "/reportingInstance"),
            ]),
        ),
        message: text(object, "/message"),
        count: if series_count > 0 {
            series_count
        } else {
            int(object, "/count")
        },
    };
    event_cells(object, fields, now)
}

fn new_event(object: &Value, now: Timestamp) -> Vec<Value> {
    let series_count = int(object, "/series/count");
    let fields = EventFields {
        last_seen: first_non_empty(&[
            text(object, "/series/lastObservedTime"),
            text(object, "/deprecatedLastTimestamp"),
            text(object, "/eventTime"),
        ]),
        first_seen: first_non_empty(&[
            text(object, "/deprecatedFirstTimestamp"),
            text(object, "/eventTime"),
        ]),
        regarding: object.get("regarding").cloned().unwrap_or(Value::Null),
        source: event_source(
            first_non_empty(&[
                text(object, "/deprecatedSource/component"),
                text(object, "/reportingController"),
            ]),
            first_non_empty(&[
                text(object, "/deprecatedSource/host"),
                text(object, "/reportingInstance"),
            ]),
        ),
        message: text(object, "/note"),
        count: if series_count > 0 {
            series_count
        } else {
            int(object, "/deprecatedCount")
        },
    };
    event_cells(object, fields, now)
}
