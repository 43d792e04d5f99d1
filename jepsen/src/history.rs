//! What a run records: every operation's invocation and completion with its outcome, every
//! event each watcher saw, the nemesis' actions, and the final state read after healing.
//!
//! Times are nanoseconds since the run started (one monotonic clock in the harness process).
//! An operation whose outcome is not known (timeout, connection lost after sending, 5xx) is
//! `Unknown`: the checkers treat it as possibly applied at any time after its invocation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server acknowledged the operation.
    Ok,
    /// The server definitely did not apply it (409 Conflict on a precondition).
    Fail,
    /// Anything else: it may or may not have taken effect.
    Unknown,
}

/// One operation on a register (a ConfigMap whose `data.value` holds an integer).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RegOp {
    pub process: u32,
    /// Index of the member the client talked to.
    pub member: usize,
    pub key: String,
    pub call: u64,
    pub ret: u64,
    pub outcome: Outcome,
    pub kind: RegKind,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RegKind {
    /// GET without resourceVersion: must be linearizable. `value` None with an Ok outcome
    /// means the object was not found.
    Read { value: Option<u64>, rv: Option<u64> },
    /// GET with resourceVersion=0: any state the member has applied (may be stale).
    StaleRead { value: Option<u64>, rv: Option<u64> },
    /// PUT with metadata.resourceVersion = `expect_rv` (the version that held `expect`),
    /// setting the value to `new` (unique per write). `new_rv` is the answer's version.
    Cas {
        expect: u64,
        expect_rv: u64,
        new: u64,
        new_rv: Option<u64>,
    },
}

/// One create of a uniquely named ConfigMap (the set workload).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SetOp {
    pub process: u32,
    pub member: usize,
    pub name: String,
    pub call: u64,
    pub ret: u64,
    pub outcome: Outcome,
    pub rv: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// A watch event reduced to what the checkers compare.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub rv: u64,
    pub kind: EventKind,
    pub name: String,
    /// `data.value` of the object, if it has one.
    pub value: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum WatchEntry {
    /// The watcher (re)started a watch on `member` from `from_rv` (exclusive).
    Start {
        member: usize,
        from_rv: u64,
        at: u64,
    },
    Event(Event),
    Bookmark {
        rv: u64,
    },
    /// The watch ended with an error; `gone` for 410 (compacted).
    Error {
        message: String,
        gone: bool,
    },
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchLog {
    pub watcher: u32,
    pub entries: Vec<WatchEntry>,
    /// The watcher caught up with the final revision before it was stopped.
    pub caught_up: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NemesisEvent {
    pub at: u64,
    pub what: String,
}

/// Everything a run recorded.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct History {
    /// Register keys and their initial (value, rv), created before the workload started.
    pub initial: BTreeMap<String, (u64, u64)>,
    /// The revision every watcher and the reference watch start after.
    pub start_rv: u64,
    pub registers: Vec<RegOp>,
    pub sets: Vec<SetOp>,
    pub watches: Vec<WatchLog>,
    /// A watch from `start_rv` taken after the run, up to `final_rv`.
    pub reference: Vec<Event>,
    /// The highest revision of any object in the namespace at the end.
    pub final_rv: u64,
    /// Names of the set workload's objects listed at the end (None if the list failed).
    pub final_set: Option<Vec<String>>,
    pub nemesis: Vec<NemesisEvent>,
    /// Members that started and served after a disk fault they must have refused.
    #[serde(default)]
    pub disk: Vec<String>,
}

/// Seconds with milliseconds, for excerpts.
pub fn secs(ns: u64) -> String {
    if ns == u64::MAX {
        return "never".into();
    }
    format!("{:.3}s", ns as f64 / 1e9)
}
