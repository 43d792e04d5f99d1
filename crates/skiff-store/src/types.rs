//! The data the store replicates: requests, responses, key-values, events and members.
//!
//! These are the values that travel through the Raft log and come out of `apply`. They are
//! plain data (serde for the log's encoding), with no behaviour beyond small helpers.
//! Invariant: every field is deterministic input to `apply`; nothing here reads a clock.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A member's stable identity. Assigned once by the replicated state machine, never reused.
pub type MemberId = u64;

/// A lease's identity, chosen by the proposer (etcd-style signed 64-bit; 0 means "no lease").
pub type LeaseId = i64;

/// What the Raft membership records about a member: its stable name and current peer address.
/// The address may change (a member that restarts elsewhere updates it); the id never does.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

/// A key with its value and bookkeeping, as etcd reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: u64,
    /// Revision of the last write to the key.
    pub mod_revision: u64,
    /// Number of writes since creation (1 after create).
    pub version: u64,
    /// Lease the key is attached to, 0 for none.
    pub lease: LeaseId,
}

/// The kind of change an [`Event`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change to one key at one revision. `kv.mod_revision` is the revision of the change; for
/// a delete, `kv` carries only the key and that revision. `prev_kv` is the key's state just
/// before the change (None if it did not exist).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

/// A write proposed to the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// If set, apply rejects the request unless its log entry was proposed in this term
    /// (DESIGN.md §2.10): a deposed leader's control loops can never change the store.
    pub fence_term: Option<u64>,
    pub op: Op,
}

impl Request {
    pub fn new(op: Op) -> Self {
        Self {
            fence_term: None,
            op,
        }
    }
}

/// The operations of the replicated state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// compare → success ops | failure ops, like etcd's Txn.
    Txn(Txn),
    /// Forget history before `revision` (replicated compaction).
    Compact { revision: u64 },
    /// Create a lease. The id is chosen by the proposer so that apply stays deterministic.
    LeaseGrant { id: LeaseId, ttl_secs: i64 },
    /// Delete leases and every key attached to them, in one revision.
    LeaseRevoke { ids: Vec<LeaseId> },
    /// Allocate the next member id for a joining member with this name.
    RegisterMember { name: String },
    /// Does nothing; used as a write barrier.
    Noop,
    /// Several requests proposed together in one log entry (group commit: one append, one
    /// fsync, one apply for all of them). Each is applied in order as if it had its own entry:
    /// its own revision, its own fence check against the entry's term, its own response.
    /// Only the leader's batcher makes these; a batch inside a batch is refused.
    Batch(Vec<Request>),
}

/// An etcd-style transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

/// One comparison against a key's current state. A missing key has version, create and mod
/// revision 0, lease 0 and an empty value, as in etcd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: Vec<u8>,
    pub target: CompareTarget,
    pub op: CompareOp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Version(u64),
    CreateRevision(u64),
    ModRevision(u64),
    Value(Vec<u8>),
    Lease(LeaseId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// One operation inside a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: LeaseId,
        prev_kv: bool,
    },
    /// Delete `key`, or the range `[key, range_end)` when `range_end` is not empty
    /// (`range_end == [0]` means every key ≥ `key`).
    Delete {
        key: Vec<u8>,
        range_end: Vec<u8>,
        prev_kv: bool,
    },
    /// Read the current state inside the transaction (e.g. to return the winner on conflict).
    Range {
        key: Vec<u8>,
        range_end: Vec<u8>,
        limit: u64,
    },
}

/// What applying one log entry produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The store's revision after this entry (the write's own revision if it wrote).
    pub revision: u64,
    pub result: Result<Outcome, ApplyError>,
}

impl Response {
    /// The response openraft records for blank and membership entries.
    pub fn internal(revision: u64) -> Self {
        Self {
            revision,
            result: Ok(Outcome::Internal),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Txn(TxnResult),
    Compacted {
        compact_revision: u64,
    },
    LeaseGranted {
        id: LeaseId,
        ttl_secs: i64,
    },
    LeasesRevoked {
        deleted_keys: u64,
    },
    MemberRegistered {
        id: MemberId,
    },
    Noop,
    /// A blank or membership entry.
    Internal,
    /// The responses to an `Op::Batch`, one per request, in order.
    Batch(Vec<Response>),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResult {
    pub succeeded: bool,
    pub responses: Vec<OpResult>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    Put {
        prev_kv: Option<KeyValue>,
    },
    Delete {
        deleted: u64,
        prev_kvs: Vec<KeyValue>,
    },
    Range {
        kvs: Vec<KeyValue>,
        more: bool,
    },
}

/// Why apply refused a request. Deterministic: every replica refuses it the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "fenced out: the request carries term {fence_term} but was proposed in term {entry_term}"
    )]
    Fenced { fence_term: u64, entry_term: u64 },
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),
    #[error("lease {0} already exists")]
    LeaseExists(LeaseId),
    #[error("invalid lease ttl {0}: must be between 1 and 31536000 seconds")]
    InvalidTtl(i64),
    #[error("compaction revision {requested} is beyond the current revision {current}")]
    FutureRevision { requested: u64, current: u64 },
    #[error("a member named {0:?} already exists")]
    MemberNameTaken(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// The key range `[start, end)` a (key, range_end) pair denotes, etcd-style.
pub fn key_range(key: &[u8], range_end: &[u8]) -> (Vec<u8>, RangeEnd) {
    if range_end.is_empty() {
        (key.to_vec(), RangeEnd::Single)
    } else if range_end == [0] {
        (key.to_vec(), RangeEnd::Unbounded)
    } else {
        (key.to_vec(), RangeEnd::Before(range_end.to_vec()))
    }
}

/// The upper end of a key range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeEnd {
    /// Only the start key itself.
    Single,
    /// Every key ≥ start.
    Unbounded,
    /// Keys < this one.
    Before(Vec<u8>),
}

impl RangeEnd {
    /// Whether `key` (≥ the range start) is still inside the range.
    pub fn contains(&self, start: &[u8], key: &[u8]) -> bool {
        match self {
            RangeEnd::Single => key == start,
            RangeEnd::Unbounded => key >= start,
            RangeEnd::Before(end) => key >= start && key < end.as_slice(),
        }
    }
}

/// The smallest key greater than every key with this prefix (etcd's `GetPrefixRangeEnd`);
/// `[0]` (unbounded) when the prefix is all 0xff or empty.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
