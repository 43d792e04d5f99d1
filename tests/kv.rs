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

/// Puts one key, again after an unknown outcome or an unreachable leader (a leader change
/// under the suite's load): only for filling a store with fixed values, where a second write
/// of the same value is harmless. Returns the revision of the write that was acknowledged.
pub async fn put_retrying(
    kv: &mut KvClient<Channel>,
    key: &str,
    value: &str,
) -> Result<u64, tonic::Status> {
    let mut tries = 0;
    loop {
        match put(kv, key, value).await {
            Err(e)
                if tries < 20
                    && matches!(e.code(), tonic::Code::Unknown | tonic::Code::Unavailable) =>
            {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
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

/// The store key every fenced API write also puts (`skiff_apiserver::objects::FENCE_LOG_KEY`).
pub const FENCE_LOG_KEY: &str = "/skiff/fence-log";

/// One control-loop write from the fence log: its revision, the term it carried, its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceRecord {
    pub revision: u64,
    pub term: u64,
    pub key: String,
}

fn fence_record(kv: &KeyValue) -> anyhow::Result<FenceRecord> {
    let value: serde_json::Value = serde_json::from_slice(&kv.value)?;
    Ok(FenceRecord {
        revision: kv.mod_revision,
        term: value
            .get("term")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| anyhow::anyhow!("fence record without a term: {value}"))?,
        key: value
            .get("key")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

/// The latest fence-log record (linearizable read), if any fenced write happened.
pub async fn last_fence_record(kv: &mut KvClient<Channel>) -> anyhow::Result<Option<FenceRecord>> {
    get(kv, FENCE_LOG_KEY, false)
        .await?
        .map(|kv| fence_record(&kv))
        .transpose()
}

/// Every fence-log record from `from_revision` up to the latest one, in revision order, read
/// from the store's history with a watch (the history window must still hold them).
pub async fn fence_log(
    kv: &mut KvClient<Channel>,
    from_revision: u64,
) -> anyhow::Result<Vec<FenceRecord>> {
    use futures::StreamExt;
    use skiff_store::pb::kv::{WatchCreate, WatchRequest, watch_request};
    let Some(last) = last_fence_record(kv).await? else {
        return Ok(Vec::new());
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request: Some(watch_request::Request::Create(WatchCreate {
            key: FENCE_LOG_KEY.into(),
            range_end: skiff_store::types::prefix_end(FENCE_LOG_KEY.as_bytes()),
            start_revision: from_revision.max(1),
            prev_kv: false,
            progress_notify_ms: 0,
        })),
    })
    .await?;
    let mut stream = kv
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut records = Vec::new();
    while records.last().map(|r: &FenceRecord| r.revision) < Some(last.revision) {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the fence log's history stopped at revision {:?} before {}",
                    records.last().map(|r: &FenceRecord| r.revision),
                    last.revision
                )
            })?;
        let Some(response) = next else {
            anyhow::bail!("the watch of the fence log ended early");
        };
        let response = response?;
        anyhow::ensure!(
            !response.canceled,
            "the watch of the fence log was canceled: {} (compacted at {})",
            response.cancel_reason,
            response.compact_revision
        );
        for event in response.events {
            if let Some(kv) = event.kv {
                records.push(fence_record(&kv)?);
            }
        }
    }
    drop(tx);
    Ok(records)
}
