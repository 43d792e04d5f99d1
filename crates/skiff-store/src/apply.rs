//! The state machine's decision, with no I/O: apply requests to a read view and collect changes.
//!
//! `Applier` reads the last durable state through a [`ReadView`] and keeps every change in an
//! overlay ([`Changes`]); the RocksDB shell (`state_machine.rs`) writes the overlay in one synced
//! batch. Invariants kept here (DESIGN.md §2):
//! - one revision per committed write request, assigned here from log order, never by the
//!   proposer; a request that changes nothing (failed compares with read-only ops, a refused
//!   request) does not consume a revision;
//! - every change to a key is recorded as an [`Event`] with the key's previous state, so history
//!   can replay watches and answer reads at past revisions;
//! - a fenced request is refused unless its entry was proposed in the fence term;
//! - deterministic: the result depends only on the view, the entry and earlier entries.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::types::{
    ApplyError, Compare, CompareOp, CompareTarget, Event, EventKind, KeyValue, LeaseId, Member,
    MemberId, Op, OpResult, Outcome, RangeEnd, Request, Response, Txn, TxnOp, TxnResult, key_range,
};

/// A key's stored state (the key itself is the storage key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvRecord {
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
    pub version: u64,
    pub lease: LeaseId,
}

impl KvRecord {
    /// The key-value this record holds for `key`, without copying the value.
    pub fn into_kv(self, key: &[u8]) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }

    pub fn to_kv(&self, key: &[u8]) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }
}

/// A lease's stored state. Deadlines are not replicated: the leader tracks them in memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub ttl_secs: i64,
}

/// The counters the state machine keeps besides keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Revision of the last write (0 before any).
    pub revision: u64,
    /// History before this revision is gone.
    pub compact_revision: u64,
    /// The highest member id ever allocated.
    pub member_seq: u64,
}

/// Read access to the durable state the applier starts from.
pub trait ReadView {
    type Error: std::error::Error + Send + Sync + 'static;
    fn get(&self, key: &[u8]) -> Result<Option<KvRecord>, Self::Error>;
    /// Every key in `[start, end)` in order.
    fn scan(&self, start: &[u8], end: &RangeEnd) -> Result<Vec<(Vec<u8>, KvRecord)>, Self::Error>;
    fn lease(&self, id: LeaseId) -> Result<Option<LeaseRecord>, Self::Error>;
    fn lease_keys(&self, id: LeaseId) -> Result<Vec<Vec<u8>>, Self::Error>;
}

/// Everything an `apply` call changes, to be written atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Final state per touched key; None = deleted.
    pub kv: BTreeMap<Vec<u8>, Option<KvRecord>>,
    /// New history: (revision, sequence within the revision, event), in order.
    pub events: Vec<(u64, u32, Event)>,
    pub leases: BTreeMap<LeaseId, Option<LeaseRecord>>,
    /// (lease, key) → attached (true) or detached (false).
    pub lease_keys: BTreeMap<(LeaseId, Vec<u8>), bool>,
    /// Leases created by this batch (the leader starts their TTL clocks).
    pub granted: Vec<(LeaseId, i64)>,
    /// Leases deleted by this batch.
    pub revoked: Vec<LeaseId>,
}

/// Applies requests in log order on top of a [`ReadView`].
pub struct Applier<'v, V: ReadView> {
    view: &'v V,
    pub counters: Counters,
    pub changes: Changes,
}

/// Errors reading the view: the shell turns them into a storage error (fatal for openraft).
#[derive(Debug, thiserror::Error)]
#[error("reading the state machine failed: {0}")]
pub struct ViewError(pub Box<dyn std::error::Error + Send + Sync>);

type ApplyResult<T> = Result<T, ViewError>;

impl<'v, V: ReadView> Applier<'v, V> {
    pub fn new(view: &'v V, counters: Counters) -> Self {
        Self {
            view,
            counters,
            changes: Changes::default(),
        }
    }

    /// Records that a membership containing these ids was applied (ids are never reused).
    pub fn note_members(&mut self, ids: impl IntoIterator<Item = MemberId>) {
        for id in ids {
            self.counters.member_seq = self.counters.member_seq.max(id);
        }
    }

    /// Applies one normal entry proposed in `entry_term`. `members` is the membership in effect.
    pub fn apply(
        &mut self,
        entry_term: u64,
        request: &Request,
        members: &BTreeMap<MemberId, Member>,
    ) -> ApplyResult<Response> {
        if let Some(fence_term) = request.fence_term
            && fence_term != entry_term
        {
            return Ok(self.refuse(ApplyError::Fenced {
                fence_term,
                entry_term,
            }));
        }
        let result = match &request.op {
            Op::Txn(txn) => self.txn(txn)?,
            Op::Compact { revision } => self.compact(*revision),
            Op::LeaseGrant { id, ttl_secs } => self.lease_grant(*id, *ttl_secs)?,
            Op::LeaseRevoke { ids } => self.lease_revoke(ids)?,
            Op::RegisterMember { name } => self.register_member(name, members),
            Op::Noop => Ok(Outcome::Noop),
            Op::Batch(requests) => {
                let mut responses = Vec::with_capacity(requests.len());
                for r in requests {
                    responses.push(if matches!(r.op, Op::Batch(_)) {
                        self.refuse(ApplyError::Invalid("a batch inside a batch".into()))
                    } else {
                        self.apply(entry_term, r, members)?
                    });
                }
                Ok(Outcome::Batch(responses))
            }
        };
        Ok(Response {
            revision: self.counters.revision,
            result,
        })
    }

    fn refuse(&self, error: ApplyError) -> Response {
        Response {
            revision: self.counters.revision,
            result: Err(error),
        }
    }

    /// The current state of a key, overlay first.
    pub fn get(&self, key: &[u8]) -> ApplyResult<Option<KvRecord>> {
        if let Some(state) = self.changes.kv.get(key) {
            return Ok(state.clone());
        }
        self.view.get(key).map_err(|e| ViewError(Box::new(e)))
    }

    /// Current keys in a range, overlay merged over the view, in key order.
    pub fn scan(&self, start: &[u8], end: &RangeEnd) -> ApplyResult<Vec<(Vec<u8>, KvRecord)>> {
        let mut merged: BTreeMap<Vec<u8>, KvRecord> = self
            .view
            .scan(start, end)
            .map_err(|e| ViewError(Box::new(e)))?
            .into_iter()
            .collect();
        for (key, state) in self.changes.kv.range(start.to_vec()..) {
            // Keys come in order from `start`, so the first one outside the range ends it.
            if !end.contains(start, key) {
                break;
            }
            match state {
                Some(record) => merged.insert(key.clone(), record.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().collect())
    }

    fn lease_state(&self, id: LeaseId) -> ApplyResult<Option<LeaseRecord>> {
        if let Some(state) = self.changes.leases.get(&id) {
            return Ok(state.clone());
        }
        self.view.lease(id).map_err(|e| ViewError(Box::new(e)))
    }

    fn attached_keys(&self, id: LeaseId) -> ApplyResult<BTreeSet<Vec<u8>>> {
        let mut keys: BTreeSet<Vec<u8>> = self
            .view
            .lease_keys(id)
            .map_err(|e| ViewError(Box::new(e)))?
            .into_iter()
            .collect();
        for ((lease, key), attached) in self.changes.lease_keys.range((id, Vec::new())..) {
            if *lease != id {
                break;
            }
            if *attached {
                keys.insert(key.clone());
            } else {
                keys.remove(key);
            }
        }
        Ok(keys)
    }

    fn compare(&self, compare: &Compare) -> ApplyResult<bool> {
        let current = self.get(&compare.key)?;
        let ordering = match (&compare.target, &current) {
            (CompareTarget::Version(v), c) => c.as_ref().map_or(0, |r| r.version).cmp(v),
            (CompareTarget::CreateRevision(v), c) => {
                c.as_ref().map_or(0, |r| r.create_revision).cmp(v)
            }
            (CompareTarget::ModRevision(v), c) => c.as_ref().map_or(0, |r| r.mod_revision).cmp(v),
            (CompareTarget::Lease(v), c) => c.as_ref().map_or(0, |r| r.lease).cmp(v),
            (CompareTarget::Value(v), Some(r)) => r.value.as_slice().cmp(v.as_slice()),
            // etcd: a value compare against a missing key is false whatever the operator.
            (CompareTarget::Value(_), None) => return Ok(false),
        };
        Ok(match compare.op {
            CompareOp::Equal => ordering.is_eq(),
            CompareOp::NotEqual => ordering.is_ne(),
            CompareOp::Greater => ordering.is_gt(),
            CompareOp::Less => ordering.is_lt(),
        })
    }

    fn txn(&mut self, txn: &Txn) -> ApplyResult<Result<Outcome, ApplyError>> {
        let mut succeeded = true;
        for compare in &txn.compares {
            if !self.compare(compare)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        if let Err(e) = self.check_ops(ops)? {
            return Ok(Err(e));
        }
        let revision = self.counters.revision + 1;
        let mut seq = 0u32;
        let mut wrote = false;
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match op {
                TxnOp::Put {
                    key,
                    value,
                    lease,
                    prev_kv,
                } => {
                    let prev = self.put(revision, &mut seq, key, value, *lease)?;
                    wrote = true;
                    OpResult::Put {
                        prev_kv: if *prev_kv { prev } else { None },
                    }
                }
                TxnOp::Delete {
                    key,
                    range_end,
                    prev_kv,
                } => {
                    let deleted = self.delete_range(revision, &mut seq, key, range_end)?;
                    wrote |= !deleted.is_empty();
                    OpResult::Delete {
                        deleted: deleted.len() as u64,
                        prev_kvs: if *prev_kv { deleted } else { Vec::new() },
                    }
                }
                TxnOp::Range {
                    key,
                    range_end,
                    limit,
                } => {
                    let (start, end) = key_range(key, range_end);
                    let found = self.scan(&start, &end)?;
                    let more = *limit > 0 && found.len() as u64 > *limit;
                    let take = if *limit > 0 {
                        *limit as usize
                    } else {
                        found.len()
                    };
                    let kvs = found.iter().take(take).map(|(k, r)| r.to_kv(k)).collect();
                    OpResult::Range { kvs, more }
                }
            };
            responses.push(response);
        }
        if wrote {
            self.counters.revision = revision;
        }
        Ok(Ok(Outcome::Txn(TxnResult {
            succeeded,
            responses,
        })))
    }

    /// Refuses a branch that etcd would refuse: a key put twice, a put inside a deleted range,
    /// a lease that does not exist. Checked before any change so a refused txn changes nothing.
    fn check_ops(&self, ops: &[TxnOp]) -> ApplyResult<Result<(), ApplyError>> {
        let mut put_keys = BTreeSet::new();
        for op in ops {
            if let TxnOp::Put { key, lease, .. } = op {
                if !put_keys.insert(key.as_slice()) {
                    return Ok(Err(ApplyError::Invalid(format!(
                        "duplicate key {:?} given in a transaction",
                        String::from_utf8_lossy(key)
                    ))));
                }
                if *lease != 0 && self.lease_state(*lease)?.is_none() {
                    return Ok(Err(ApplyError::LeaseNotFound(*lease)));
                }
            }
        }
        for op in ops {
            if let TxnOp::Delete { key, range_end, .. } = op {
                let (start, end) = key_range(key, range_end);
                if put_keys.iter().any(|k| end.contains(&start, k)) {
                    return Ok(Err(ApplyError::Invalid(
                        "a transaction may not put a key inside a range it deletes".into(),
                    )));
                }
            }
        }
        Ok(Ok(()))
    }

    fn put(
        &mut self,
        revision: u64,
        seq: &mut u32,
        key: &[u8],
        value: &[u8],
        lease: LeaseId,
    ) -> ApplyResult<Option<KeyValue>> {
        let prev = self.get(key)?;
        let record = KvRecord {
            value: value.to_vec(),
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease,
        };
        if let Some(p) = &prev
            && p.lease != 0
            && p.lease != lease
        {
            self.changes
                .lease_keys
                .insert((p.lease, key.to_vec()), false);
        }
        if lease != 0 {
            self.changes.lease_keys.insert((lease, key.to_vec()), true);
        }
        let prev_kv = prev.map(|p| p.to_kv(key));
        self.record_event(
            revision,
            seq,
            EventKind::Put,
            record.to_kv(key),
            prev_kv.clone(),
        );
        self.changes.kv.insert(key.to_vec(), Some(record));
        Ok(prev_kv)
    }

    fn delete_range(
        &mut self,
        revision: u64,
        seq: &mut u32,
        key: &[u8],
        range_end: &[u8],
    ) -> ApplyResult<Vec<KeyValue>> {
        let (start, end) = key_range(key, range_end);
        let victims = self.scan(&start, &end)?;
        let mut deleted = Vec::with_capacity(victims.len());
        for (victim, record) in victims {
            deleted.push(self.delete_key(revision, seq, &victim, &record));
        }
        Ok(deleted)
    }

    fn delete_key(
        &mut self,
        revision: u64,
        seq: &mut u32,
        key: &[u8],
        prev: &KvRecord,
    ) -> KeyValue {
        if prev.lease != 0 {
            self.changes
                .lease_keys
                .insert((prev.lease, key.to_vec()), false);
        }
        let tombstone = KeyValue {
            key: key.to_vec(),
            mod_revision: revision,
            ..KeyValue::default()
        };
        let prev_kv = prev.to_kv(key);
        self.record_event(
            revision,
            seq,
            EventKind::Delete,
            tombstone,
            Some(prev_kv.clone()),
        );
        self.changes.kv.insert(key.to_vec(), None);
        prev_kv
    }

    fn record_event(
        &mut self,
        revision: u64,
        seq: &mut u32,
        kind: EventKind,
        kv: KeyValue,
        prev_kv: Option<KeyValue>,
    ) {
        self.changes
            .events
            .push((revision, *seq, Event { kind, kv, prev_kv }));
        *seq += 1;
    }

    fn compact(&mut self, revision: u64) -> Result<Outcome, ApplyError> {
        if revision > self.counters.revision {
            return Err(ApplyError::FutureRevision {
                requested: revision,
                current: self.counters.revision,
            });
        }
        self.counters.compact_revision = self.counters.compact_revision.max(revision);
        Ok(Outcome::Compacted {
            compact_revision: self.counters.compact_revision,
        })
    }

    fn lease_grant(
        &mut self,
        id: LeaseId,
        ttl_secs: i64,
    ) -> ApplyResult<Result<Outcome, ApplyError>> {
        if id == 0 {
            return Ok(Err(ApplyError::Invalid("lease id 0 is reserved".into())));
        }
        if !(1..=31_536_000).contains(&ttl_secs) {
            return Ok(Err(ApplyError::InvalidTtl(ttl_secs)));
        }
        if self.lease_state(id)?.is_some() {
            return Ok(Err(ApplyError::LeaseExists(id)));
        }
        self.changes
            .leases
            .insert(id, Some(LeaseRecord { ttl_secs }));
        self.changes.granted.push((id, ttl_secs));
        Ok(Ok(Outcome::LeaseGranted { id, ttl_secs }))
    }

    fn lease_revoke(&mut self, ids: &[LeaseId]) -> ApplyResult<Result<Outcome, ApplyError>> {
        let mut existing = Vec::new();
        for id in ids {
            if self.lease_state(*id)?.is_some() && !existing.contains(id) {
                existing.push(*id);
            }
        }
        if existing.is_empty() {
            if let [only] = ids {
                return Ok(Err(ApplyError::LeaseNotFound(*only)));
            }
            return Ok(Ok(Outcome::LeasesRevoked { deleted_keys: 0 }));
        }
        let revision = self.counters.revision + 1;
        let mut seq = 0u32;
        let mut deleted_keys = 0u64;
        for id in existing {
            for key in self.attached_keys(id)? {
                if let Some(record) = self.get(&key)?
                    && record.lease == id
                {
                    self.delete_key(revision, &mut seq, &key, &record);
                    deleted_keys += 1;
                }
                self.changes.lease_keys.insert((id, key), false);
            }
            self.changes.leases.insert(id, None);
            self.changes.revoked.push(id);
        }
        if deleted_keys > 0 {
            self.counters.revision = revision;
        }
        Ok(Ok(Outcome::LeasesRevoked { deleted_keys }))
    }

    fn register_member(
        &mut self,
        name: &str,
        members: &BTreeMap<MemberId, Member>,
    ) -> Result<Outcome, ApplyError> {
        if members.values().any(|m| m.name == name) {
            return Err(ApplyError::MemberNameTaken(name.to_string()));
        }
        self.counters.member_seq += 1;
        Ok(Outcome::MemberRegistered {
            id: self.counters.member_seq,
        })
    }
}
