//! Small KV helpers for tests: put, get, watch, over the real gRPC API.

use skiff_store::pb::kv::kv_client::KvClient;
use skiff_store::pb::kv::{
    Compare, KeyValue, PutOp, RangeRequest, TxnOp, TxnRequest, TxnResponse, compare, txn_op,
};
use tonic::transport::Channel;

pub fn put_op(key: &str, value: &str) -> TxnOp {
    TxnOp {
        op: Some(txn_op::Op::Put(PutOp {
            key: key.into(),
            value: value.into(),
            lease: 0,
            prev_kv: false,
        })),
    }
}

/// Puts one key; returns the write's revision.
pub async fn put(kv: &mut KvClient<Channel>, key: &str, value: &str) -> Result<u64, tonic::Status> {
    let r = kv
        .txn(TxnRequest {
            success: vec![put_op(key, value)],
            ..Default::default()
        })
        .await?;
    Ok(r.into_inner().header.map(|h| h.revision).unwrap_or(0))
}

/// Puts only if the key does not exist.
pub async fn create(
    kv: &mut KvClient<Channel>,
    key: &str,
    value: &str,
) -> Result<TxnResponse, tonic::Status> {
    let cmp = Compare {
        op: compare::Op::Equal as i32,
        key: key.into(),
        target: Some(compare::Target::CreateRevision(0)),
    };
    Ok(kv
        .txn(TxnRequest {
            compares: vec![cmp],
            success: vec![put_op(key, value)],
            ..Default::default()
        })
        .await?
        .into_inner())
}

pub async fn get(
    kv: &mut KvClient<Channel>,
    key: &str,
    serializable: bool,
) -> Result<Option<KeyValue>, tonic::Status> {
    let r = kv
        .range(RangeRequest {
            key: key.into(),
            serializable,
            ..Default::default()
        })
        .await?;
    Ok(r.into_inner().kvs.into_iter().next())
}

/// Every key under a prefix (linearizable unless `serializable`).
pub async fn prefix(
    kv: &mut KvClient<Channel>,
    prefix: &str,
    serializable: bool,
) -> Result<Vec<KeyValue>, tonic::Status> {
    let end = skiff_store::types::prefix_end(prefix.as_bytes());
    let r = kv
        .range(RangeRequest {
            key: prefix.into(),
            range_end: end,
            serializable,
            ..Default::default()
        })
        .await?;
    Ok(r.into_inner().kvs)
}
