//! Generated gRPC code for `proto/raft.proto` and `proto/kv.proto`, and conversions between
//! the KV service's protobuf messages and the store's own types.
//!
//! Conversions from the wire are fallible (`TryFrom`) and name the field that is wrong, so a
//! malformed request becomes an `InvalidArgument` status and never a panic.

#![allow(clippy::all, missing_docs)]

pub mod raft {
    tonic::include_proto!("skiff.raft");
}

pub mod kv {
    tonic::include_proto!("skiff.kv");
}

use crate::types::{self, Compare, CompareOp, CompareTarget, EventKind, OpResult, TxnOp};

/// A request field that does not make sense.
#[derive(Debug, thiserror::Error)]
#[error("invalid request: {0}")]
pub struct Invalid(pub String);

impl From<types::KeyValue> for kv::KeyValue {
    fn from(k: types::KeyValue) -> Self {
        kv::KeyValue {
            key: k.key,
            value: k.value,
            create_revision: k.create_revision,
            mod_revision: k.mod_revision,
            version: k.version,
            lease: k.lease,
        }
    }
}

impl From<kv::KeyValue> for types::KeyValue {
    fn from(k: kv::KeyValue) -> Self {
        types::KeyValue {
            key: k.key,
            value: k.value,
            create_revision: k.create_revision,
            mod_revision: k.mod_revision,
            version: k.version,
            lease: k.lease,
        }
    }
}

impl TryFrom<kv::Compare> for Compare {
    type Error = Invalid;
    fn try_from(c: kv::Compare) -> Result<Self, Invalid> {
        let op = match kv::compare::Op::try_from(c.op) {
            Ok(kv::compare::Op::Equal) => CompareOp::Equal,
            Ok(kv::compare::Op::NotEqual) => CompareOp::NotEqual,
            Ok(kv::compare::Op::Greater) => CompareOp::Greater,
            Ok(kv::compare::Op::Less) => CompareOp::Less,
            Err(_) => {
                return Err(Invalid(format!(
                    "compare.op {} is not one of EQUAL, NOT_EQUAL, GREATER, LESS",
                    c.op
                )));
            }
        };
        let target = match c.target {
            Some(kv::compare::Target::Version(v)) => CompareTarget::Version(v),
            Some(kv::compare::Target::CreateRevision(v)) => CompareTarget::CreateRevision(v),
            Some(kv::compare::Target::ModRevision(v)) => CompareTarget::ModRevision(v),
            Some(kv::compare::Target::Value(v)) => CompareTarget::Value(v),
            Some(kv::compare::Target::Lease(v)) => CompareTarget::Lease(v),
            None => return Err(Invalid("compare.target is missing".into())),
        };
        if c.key.is_empty() {
            return Err(Invalid("compare.key is empty".into()));
        }
        Ok(Compare {
            key: c.key,
            target,
            op,
        })
    }
}

impl From<Compare> for kv::Compare {
    fn from(c: Compare) -> Self {
        let op = match c.op {
            CompareOp::Equal => kv::compare::Op::Equal,
            CompareOp::NotEqual => kv::compare::Op::NotEqual,
            CompareOp::Greater => kv::compare::Op::Greater,
            CompareOp::Less => kv::compare::Op::Less,
        };
        let target = match c.target {
            CompareTarget::Version(v) => kv::compare::Target::Version(v),
            CompareTarget::CreateRevision(v) => kv::compare::Target::CreateRevision(v),
            CompareTarget::ModRevision(v) => kv::compare::Target::ModRevision(v),
            CompareTarget::Value(v) => kv::compare::Target::Value(v),
            CompareTarget::Lease(v) => kv::compare::Target::Lease(v),
        };
        kv::Compare {
            op: op as i32,
            key: c.key,
            target: Some(target),
        }
    }
}

impl TryFrom<kv::TxnOp> for TxnOp {
    type Error = Invalid;
    fn try_from(o: kv::TxnOp) -> Result<Self, Invalid> {
        match o.op {
            Some(kv::txn_op::Op::Put(p)) => {
                if p.key.is_empty() {
                    return Err(Invalid("put.key is empty".into()));
                }
                Ok(TxnOp::Put {
                    key: p.key,
                    value: p.value,
                    lease: p.lease,
                    prev_kv: p.prev_kv,
                })
            }
            Some(kv::txn_op::Op::Delete(d)) => {
                if d.key.is_empty() {
                    return Err(Invalid("delete.key is empty".into()));
                }
                Ok(TxnOp::Delete {
                    key: d.key,
                    range_end: d.range_end,
                    prev_kv: d.prev_kv,
                })
            }
            Some(kv::txn_op::Op::Range(r)) => Ok(TxnOp::Range {
                key: r.key,
                range_end: r.range_end,
                limit: r.limit,
            }),
            None => Err(Invalid(
                "a transaction operation has no put, delete or range".into(),
            )),
        }
    }
}

impl From<TxnOp> for kv::TxnOp {
    fn from(o: TxnOp) -> Self {
        let op = match o {
            TxnOp::Put {
                key,
                value,
                lease,
                prev_kv,
            } => kv::txn_op::Op::Put(kv::PutOp {
                key,
                value,
                lease,
                prev_kv,
            }),
            TxnOp::Delete {
                key,
                range_end,
                prev_kv,
            } => kv::txn_op::Op::Delete(kv::DeleteOp {
                key,
                range_end,
                prev_kv,
            }),
            TxnOp::Range {
                key,
                range_end,
                limit,
            } => kv::txn_op::Op::Range(kv::RangeOp {
                key,
                range_end,
                limit,
            }),
        };
        kv::TxnOp { op: Some(op) }
    }
}

impl TryFrom<kv::TxnRequest> for types::Txn {
    type Error = Invalid;
    fn try_from(t: kv::TxnRequest) -> Result<Self, Invalid> {
        Ok(types::Txn {
            compares: t
                .compares
                .into_iter()
                .map(Compare::try_from)
                .collect::<Result<_, _>>()?,
            success: t
                .success
                .into_iter()
                .map(TxnOp::try_from)
                .collect::<Result<_, _>>()?,
            failure: t
                .failure
                .into_iter()
                .map(TxnOp::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl From<OpResult> for kv::OpResult {
    fn from(r: OpResult) -> Self {
        let result = match r {
            OpResult::Put { prev_kv } => kv::op_result::Result::Put(kv::PutResult {
                prev_kv: prev_kv.map(Into::into),
            }),
            OpResult::Delete { deleted, prev_kvs } => {
                kv::op_result::Result::Delete(kv::DeleteResult {
                    deleted,
                    prev_kvs: prev_kvs.into_iter().map(Into::into).collect(),
                })
            }
            OpResult::Range { kvs, more } => kv::op_result::Result::Range(kv::RangeResult {
                kvs: kvs.into_iter().map(Into::into).collect(),
                more,
            }),
        };
        kv::OpResult {
            result: Some(result),
        }
    }
}

impl TryFrom<kv::OpResult> for OpResult {
    type Error = Invalid;
    fn try_from(r: kv::OpResult) -> Result<Self, Invalid> {
        Ok(match r.result {
            Some(kv::op_result::Result::Put(p)) => OpResult::Put {
                prev_kv: p.prev_kv.map(Into::into),
            },
            Some(kv::op_result::Result::Delete(d)) => OpResult::Delete {
                deleted: d.deleted,
                prev_kvs: d.prev_kvs.into_iter().map(Into::into).collect(),
            },
            Some(kv::op_result::Result::Range(r)) => OpResult::Range {
                kvs: r.kvs.into_iter().map(Into::into).collect(),
                more: r.more,
            },
            None => return Err(Invalid("an operation result is empty".into())),
        })
    }
}

impl From<types::Event> for kv::Event {
    fn from(e: types::Event) -> Self {
        let kind = match e.kind {
            EventKind::Put => kv::event::Kind::Put,
            EventKind::Delete => kv::event::Kind::Delete,
        };
        kv::Event {
            kind: kind as i32,
            kv: Some(e.kv.into()),
            prev_kv: e.prev_kv.map(Into::into),
        }
    }
}

impl From<kv::Event> for types::Event {
    fn from(e: kv::Event) -> Self {
        let kind = if e.kind == kv::event::Kind::Delete as i32 {
            EventKind::Delete
        } else {
            EventKind::Put
        };
        types::Event {
            kind,
            kv: e.kv.map(Into::into).unwrap_or_default(),
            prev_kv: e.prev_kv.map(Into::into),
        }
    }
}
