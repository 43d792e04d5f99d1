//! Unit tests of the pure apply: revisions, compares, history events, leases, compaction,
//! fencing and member ids, over an in-memory view (no RocksDB, no tokio).

use std::collections::BTreeMap;
use std::convert::Infallible;

use super::*;
use crate::types::{Compare, CompareOp, CompareTarget, Op, Request, TxnOp, prefix_end};

#[derive(Default)]
struct MemView {
    kv: BTreeMap<Vec<u8>, KvRecord>,
    leases: BTreeMap<LeaseId, LeaseRecord>,
    lease_keys: BTreeMap<(LeaseId, Vec<u8>), ()>,
}

impl ReadView for MemView {
    type Error = Infallible;
    fn get(&self, key: &[u8]) -> Result<Option<KvRecord>, Infallible> {
        Ok(self.kv.get(key).cloned())
    }
    fn scan(&self, start: &[u8], end: &RangeEnd) -> Result<Vec<(Vec<u8>, KvRecord)>, Infallible> {
        Ok(self
            .kv
            .range(start.to_vec()..)
            .take_while(|(k, _)| end.contains(start, k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn lease(&self, id: LeaseId) -> Result<Option<LeaseRecord>, Infallible> {
        Ok(self.leases.get(&id).cloned())
    }
    fn lease_keys(&self, id: LeaseId) -> Result<Vec<Vec<u8>>, Infallible> {
        Ok(self
            .lease_keys
            .keys()
            .filter(|(l, _)| *l == id)
            .map(|(_, k)| k.clone())
            .collect())
    }
}

impl MemView {
    /// Folds an applier's changes into the view, as the RocksDB shell does with a write batch.
    fn commit(&mut self, changes: Changes) {
        for (k, v) in changes.kv {
            match v {
                Some(r) => self.kv.insert(k, r),
                None => self.kv.remove(&k),
            };
        }
        for (id, l) in changes.leases {
            match l {
                Some(r) => self.leases.insert(id, r),
                None => self.leases.remove(&id),
            };
        }
        for (lk, attached) in changes.lease_keys {
            if attached {
                self.lease_keys.insert(lk, ());
            } else {
                self.lease_keys.remove(&lk);
            }
        }
    }
}

fn put(key: &str, value: &str) -> TxnOp {
    TxnOp::Put {
        key: key.into(),
        value: value.into(),
        lease: 0,
        prev_kv: true,
    }
}

fn txn(ops: Vec<TxnOp>) -> Request {
    Request::new(Op::Txn(Txn {
        compares: vec![],
        success: ops,
        failure: vec![],
    }))
}

fn no_members() -> BTreeMap<MemberId, Member> {
    BTreeMap::new()
}

/// Applies requests one by one (each in its own batch), returning the responses.
fn run(view: &mut MemView, counters: &mut Counters, requests: &[Request]) -> Vec<Response> {
    let mut out = Vec::new();
    for r in requests {
        let mut a = Applier::new(&*view, *counters);
        out.push(a.apply(1, r, &no_members()).expect("view never fails"));
        *counters = a.counters;
        let changes = a.changes;
        view.commit(changes);
    }
    out
}

#[test]
fn each_write_request_gets_exactly_one_revision() {
    let mut view = MemView::default();
    let mut c = Counters::default();
    let r = run(
        &mut view,
        &mut c,
        &[
            txn(vec![put("a", "1"), put("b", "1")]),
            txn(vec![put("a", "2")]),
        ],
    );
    assert_eq!(r[0].revision, 1, "a two-key transaction is one revision");
    assert_eq!(r[1].revision, 2);
    let a = view.kv.get(b"a".as_slice()).expect("a exists");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (1, 2, 2));
    let b = view.kv.get(b"b".as_slice()).expect("b exists");
    assert_eq!((b.create_revision, b.mod_revision, b.version), (1, 1, 1));
}

#[test]
fn one_batch_of_several_entries_sees_its_own_earlier_writes() {
    let view = MemView::default();
    let mut a = Applier::new(&view, Counters::default());
    let r1 = a
        .apply(1, &txn(vec![put("k", "1")]), &no_members())
        .expect("ok");
    let r2 = a
        .apply(1, &txn(vec![put("k", "2")]), &no_members())
        .expect("ok");
    assert_eq!((r1.revision, r2.revision), (1, 2));
    let rec = a.get(b"k").expect("ok").expect("present");
    assert_eq!(
        (rec.version, rec.create_revision, rec.mod_revision),
        (2, 1, 2)
    );
    assert_eq!(a.changes.events.len(), 2);
    let prev = a.changes.events[1].2.prev_kv.clone().expect("prev kept");
    assert_eq!(prev.value, b"1");
}

#[test]
fn compares_choose_the_branch_and_failed_read_only_branch_takes_no_revision() {
    let mut view = MemView::default();
    let mut c = Counters::default();
    run(&mut view, &mut c, &[txn(vec![put("k", "v")])]);
    let cases: Vec<(CompareTarget, CompareOp, bool)> = vec![
        (CompareTarget::ModRevision(1), CompareOp::Equal, true),
        (CompareTarget::ModRevision(2), CompareOp::Equal, false),
        (CompareTarget::ModRevision(2), CompareOp::Less, true),
        (CompareTarget::Version(1), CompareOp::Equal, true),
        (CompareTarget::Version(0), CompareOp::Greater, true),
        (CompareTarget::CreateRevision(0), CompareOp::Equal, false),
        (CompareTarget::Value(b"v".to_vec()), CompareOp::Equal, true),
        (
            CompareTarget::Value(b"w".to_vec()),
            CompareOp::NotEqual,
            true,
        ),
        (CompareTarget::Lease(0), CompareOp::Equal, true),
    ];
    for (target, op, expect) in cases {
        let req = Request::new(Op::Txn(Txn {
            compares: vec![Compare {
                key: b"k".to_vec(),
                target: target.clone(),
                op,
            }],
            success: vec![],
            failure: vec![TxnOp::Range {
                key: b"k".to_vec(),
                range_end: vec![],
                limit: 0,
            }],
        }));
        let r = run(&mut view, &mut c, &[req]);
        match &r[0].result {
            Ok(Outcome::Txn(t)) => assert_eq!(t.succeeded, expect, "{target:?} {op:?}"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            r[0].revision, 1,
            "read-only transactions do not bump the revision"
        );
    }
}

#[test]
fn create_if_absent_is_expressed_with_create_revision_zero() {
    let mut view = MemView::default();
    let mut c = Counters::default();
    let create = Request::new(Op::Txn(Txn {
        compares: vec![Compare {
            key: b"x".to_vec(),
            target: CompareTarget::CreateRevision(0),
            op: CompareOp::Equal,
        }],
        success: vec![put("x", "1")],
        failure: vec![TxnOp::Range {
            key: b"x".to_vec(),
            range_end: vec![],
            limit: 0,
        }],
    }));
    let r = run(&mut view, &mut c, &[create.clone(), create]);
    let succeeded = |r: &Response| match &r.result {
        Ok(Outcome::Txn(t)) => t.succeeded,
        _ => panic!("not a txn"),
    };
    assert!(succeeded(&r[0]));
    assert!(!succeeded(&r[1]), "the second create finds the key");
    assert_eq!(r[1].revision, 1);
}

#[test]
fn delete_range_deletes_in_one_revision_with_prev_values() {
    let mut view = MemView::default();
    let mut c = Counters::default();
    run(
        &mut view,
        &mut c,
        &[txn(vec![put("p/a", "1"), put("p/b", "2"), put("q", "3")])],
    );
    let mut a = Applier::new(&view, c);
    let del = txn(vec![TxnOp::Delete {
        key: b"p/".to_vec(),
        range_end: prefix_end(b"p/"),
        prev_kv: true,
    }]);
    let r = a.apply(1, &del, &no_members()).expect("ok");
    assert_eq!(r.revision, 2);
    match r.result {
        Ok(Outcome::Txn(t)) => match &t.responses[0] {
            OpResult::Delete { deleted, prev_kvs } => {
                assert_eq!(*deleted, 2);
                assert_eq!(prev_kvs.len(), 2);
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let revs: Vec<_> = a
        .changes
        .events
        .iter()
        .map(|(rev, seq, _)| (*rev, *seq))
        .collect();
    assert_eq!(revs, vec![(2, 0), (2, 1)]);
    assert!(
        a.changes
            .events
            .iter()
            .all(|(_, _, e)| e.kind == EventKind::Delete)
    );
    // Deleting nothing is not a write.
    let r = a.apply(1, &del, &no_members()).expect("ok");
    assert_eq!(r.revision, 2);
}

#[test]
fn recreated_key_restarts_version_and_create_revision() {
    let mut view = MemView::default();
    let mut c = Counters::default();
    let del = txn(vec![TxnOp::Delete {
        key: b"k".to_vec(),
        range_end: vec![],
        prev_kv: false,
    }]);
    run(
        &mut view,
        &mut c,
        &[txn(vec![put("k", "1")]), del, txn(vec![put("k", "2")])],
    );
    let k = view.kv.get(b"k".as_slice()).expect("k");
    assert_eq!((k.create_revision, k.mod_revision, k.version), (3, 3, 1));
}

#[test]
fn refused_transactions_change_nothing() {
    let mut view = MemView::default();
    let mut c = Counters::default();
    let cases = vec![
        txn(vec![put("a", "1"), put("a", "2")]),
        txn(vec![TxnOp::Put {
            key: b"a".to_vec(),
            value: vec![],
            lease: 42,
            prev_kv: false,
        }]),
        txn(vec![
            put("p/x", "1"),
            TxnOp::Delete {
                key: b"p/".to_vec(),
                range_end: prefix_end(b"p/"),
                prev_kv: false,
            },
        ]),
    ];
    for case in cases {
        let r = run(&mut view, &mut c, &[case]);
        assert!(r[0].result.is_err(), "{:?}", r[0]);
        assert_eq!(r[0].revision, 0);
    }
    assert!(view.kv.is_empty());
}

#[test]
fn fence_term_must_match_the_entry_term() {
    let view = MemView::default();
    let mut a = Applier::new(&view, Counters::default());
    let mut req = txn(vec![put("k", "v")]);
    req.fence_term = Some(3);
    let stale = a.apply(4, &req, &no_members()).expect("ok");
    assert_eq!(
        stale.result,
        Err(ApplyError::Fenced {
            fence_term: 3,
            entry_term: 4
        })
    );
    assert!(a.changes.kv.is_empty(), "a fenced request writes nothing");
    let current = a.apply(3, &req, &no_members()).expect("ok");
    assert!(current.result.is_ok());
    assert_eq!(current.revision, 1);
}

#[test]
fn a_batch_applies_each_request_as_its_own_write() {
    let view = MemView::default();
    let mut a = Applier::new(&view, Counters::default());
    let mut fenced = txn(vec![put("f", "1")]);
    fenced.fence_term = Some(3);
    let mut current = txn(vec![put("c", "1")]);
    current.fence_term = Some(4);
    let batch = Request::new(Op::Batch(vec![
        txn(vec![put("k", "1")]),
        fenced,
        txn(vec![put("k", "2"), put("j", "1")]),
        Request::new(Op::Batch(vec![txn(vec![put("n", "1")])])),
        current,
    ]));
    let r = a.apply(4, &batch, &no_members()).expect("ok");
    let Ok(Outcome::Batch(rs)) = &r.result else {
        panic!("a batch is answered per request: {r:?}");
    };
    assert_eq!(rs.len(), 5);
    // Its own revision per write, in order; a refused request takes none.
    assert_eq!(rs[0].revision, 1);
    assert!(rs[0].result.is_ok());
    assert_eq!(
        rs[1].result,
        Err(ApplyError::Fenced {
            fence_term: 3,
            entry_term: 4
        })
    );
    assert_eq!(rs[2].revision, 2);
    assert!(matches!(rs[3].result, Err(ApplyError::Invalid(_))));
    assert_eq!(rs[4].revision, 3);
    assert!(rs[4].result.is_ok());
    assert_eq!(r.revision, 3);
    // The second write saw the first; nothing fenced or nested was written.
    let k = a.get(b"k").expect("ok").expect("present");
    assert_eq!((k.version, k.create_revision, k.mod_revision), (2, 1, 2));
    assert!(a.get(b"f").expect("ok").is_none());
    assert!(a.get(b"n").expect("ok").is_none());
    let revs: Vec<u64> = a.changes.events.iter().map(|e| e.0).collect();
    assert_eq!(
        revs,
        vec![1, 2, 2, 3],
        "two events share the two-key write's revision"
    );
}

#[test]
fn compaction_only_moves_forward_and_never_past_the_current_revision() {
    let mut view = MemView::default();
    let mut c = Counters::default();
    run(
        &mut view,
        &mut c,
        &[txn(vec![put("a", "1")]), txn(vec![put("a", "2")])],
    );
    let r = run(
        &mut view,
        &mut c,
        &[Request::new(Op::Compact { revision: 5 })],
    );
    assert_eq!(
        r[0].result,
        Err(ApplyError::FutureRevision {
            requested: 5,
            current: 2
        })
    );
    run(
        &mut view,
        &mut c,
        &[Request::new(Op::Compact { revision: 2 })],
    );
    assert_eq!(c.compact_revision, 2);
    let r = run(
        &mut view,
        &mut c,
        &[Request::new(Op::Compact { revision: 1 })],
    );
    assert_eq!(
        r[0].result,
        Ok(Outcome::Compacted {
            compact_revision: 2
        })
    );
    assert_eq!(c.revision, 2, "compaction is not a write revision");
}

#[test]
fn lease_revoke_deletes_attached_keys_in_one_revision() {
    let mut view = MemView::default();
    let mut c = Counters::default();
    let attach = |k: &str| TxnOp::Put {
        key: k.into(),
        value: b"v".to_vec(),
        lease: 7,
        prev_kv: false,
    };
    let r = run(
        &mut view,
        &mut c,
        &[
            Request::new(Op::LeaseGrant {
                id: 7,
                ttl_secs: 10,
            }),
            txn(vec![attach("e/1"), attach("e/2"), put("other", "x")]),
            // Re-putting e/2 without the lease detaches it.
            txn(vec![put("e/2", "kept")]),
            Request::new(Op::LeaseRevoke { ids: vec![7] }),
        ],
    );
    assert_eq!(
        r[0].result,
        Ok(Outcome::LeaseGranted {
            id: 7,
            ttl_secs: 10
        })
    );
    assert_eq!(r[3].result, Ok(Outcome::LeasesRevoked { deleted_keys: 1 }));
    assert_eq!(r[3].revision, 3);
    assert!(!view.kv.contains_key(b"e/1".as_slice()));
    assert!(view.kv.contains_key(b"e/2".as_slice()));
    assert!(view.leases.is_empty());
    assert!(view.lease_keys.is_empty());
    let again = run(
        &mut view,
        &mut c,
        &[Request::new(Op::LeaseRevoke { ids: vec![7] })],
    );
    assert_eq!(again[0].result, Err(ApplyError::LeaseNotFound(7)));
}

#[test]
fn lease_grant_validates_id_ttl_and_uniqueness() {
    let mut view = MemView::default();
    let mut c = Counters::default();
    let r = run(
        &mut view,
        &mut c,
        &[
            Request::new(Op::LeaseGrant {
                id: 0,
                ttl_secs: 10,
            }),
            Request::new(Op::LeaseGrant { id: 1, ttl_secs: 0 }),
            Request::new(Op::LeaseGrant { id: 1, ttl_secs: 5 }),
            Request::new(Op::LeaseGrant { id: 1, ttl_secs: 5 }),
        ],
    );
    assert!(matches!(r[0].result, Err(ApplyError::Invalid(_))));
    assert_eq!(r[1].result, Err(ApplyError::InvalidTtl(0)));
    assert!(r[2].result.is_ok());
    assert_eq!(r[3].result, Err(ApplyError::LeaseExists(1)));
}

#[test]
fn member_ids_are_never_reused_and_names_are_unique() {
    let view = MemView::default();
    let mut a = Applier::new(&view, Counters::default());
    a.note_members([1]);
    let mut members = BTreeMap::new();
    members.insert(
        1,
        Member {
            name: "m1".into(),
            addr: "127.0.0.1:1".into(),
        },
    );
    let reg = |name: &str| Request::new(Op::RegisterMember { name: name.into() });
    let r = a.apply(1, &reg("m2"), &members).expect("ok");
    assert_eq!(r.result, Ok(Outcome::MemberRegistered { id: 2 }));
    // m2 never joined (crashed before); registering again allocates a new id.
    let r = a.apply(1, &reg("m2"), &members).expect("ok");
    assert_eq!(r.result, Ok(Outcome::MemberRegistered { id: 3 }));
    let r = a.apply(1, &reg("m1"), &members).expect("ok");
    assert_eq!(r.result, Err(ApplyError::MemberNameTaken("m1".into())));
    a.note_members([2]);
    assert_eq!(
        a.counters.member_seq, 3,
        "a lower id in a membership never lowers the sequence"
    );
}

#[test]
fn prefix_end_matches_etcd() {
    assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
    assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    assert_eq!(prefix_end(b""), vec![0]);
}
