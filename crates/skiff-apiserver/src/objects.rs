//! Kubernetes objects in the replicated store: keys, encoding, reads with `resourceVersion`
//! semantics, paged lists at a fixed revision, and atomic writes.
//!
//! Objects are stored as JSON without `metadata.resourceVersion`, which is filled in from the
//! key's mod revision on every read (a list's is the revision it was read at). Secrets are
//! encrypted before they reach the store. Every write is one store transaction whose compares
//! express create-if-absent or update-if-unchanged, so 409s come from the store, never from a
//! racy read.
//!
//! A write that carries a fence term (a control loop's, `x-skiff-fence-term`) also puts
//! [`FENCE_LOG_KEY`] in its own transaction, so the store's history holds, at each such write's
//! revision, the term it carried and the object it changed. Apply accepts a fenced write only in
//! its own term and Raft terms only grow along the log, so in revision order those terms never
//! go down: a watch of that key from revision 1 is the record that no two leaders' control loops
//! ever interleaved (`tests/t60_fencing.rs` checks it across leader changes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use skiff_core::registry::Resource;
use skiff_core::status;
use skiff_store::Store;
use skiff_store::range;
use skiff_store::types::{
    Compare, CompareOp, CompareTarget, KeyValue, OpResult, Txn, TxnOp, prefix_end,
};

use crate::encryption::Encryption;

/// How fresh a read must be (`resourceVersion` / `resourceVersionMatch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Unset: the latest state (linearizable).
    Latest,
    /// `0`: any state this member has.
    Any,
    /// `N` (NotOlderThan): at least revision N.
    NotOlderThan(u64),
    /// `N` with `resourceVersionMatch=Exact`, or a continue token: exactly revision N.
    Exact(u64),
}

impl Freshness {
    /// Parses `resourceVersion` and `resourceVersionMatch`.
    pub fn parse(rv: Option<&str>, rv_match: Option<&str>) -> Result<Freshness, status::Error> {
        let rv = rv.filter(|s| !s.is_empty());
        let n = match rv {
            None => None,
            Some(s) => Some(s.parse::<u64>().map_err(|_| {
                status::Error::bad_request(format!(
                    "invalid resource version {s:?}: it must be a number from a previous response"
                ))
            })?),
        };
        Ok(match (n, rv_match.filter(|s| !s.is_empty())) {
            (None, None) => Freshness::Latest,
            (None, Some(m)) => {
                return Err(status::Error::bad_request(format!(
                    "resourceVersionMatch {m:?} needs a resourceVersion"
                )));
            }
            (Some(0), None) | (Some(0), Some("NotOlderThan")) => Freshness::Any,
            (Some(n), None) | (Some(n), Some("NotOlderThan")) => Freshness::NotOlderThan(n),
            (Some(0), Some("Exact")) => {
                return Err(status::Error::bad_request(
                    "resourceVersionMatch=Exact cannot be used with resourceVersion 0",
                ));
            }
            (Some(n), Some("Exact")) => Freshness::Exact(n),
            (Some(_), Some(m)) => {
                return Err(status::Error::bad_request(format!(
                    "unknown resourceVersionMatch {m:?}: use NotOlderThan or Exact"
                )));
            }
        })
    }
}

/// Maps a store error to the Status a client should see.
pub fn store_error(e: skiff_store::Error) -> status::Error {
    use skiff_store::Error as E;
    use skiff_store::types::ApplyError as A;
    match e {
        E::NoLeader | E::Shutdown => status::Error::service_unavailable(format!(
            "the control plane has no leader right now: {e}"
        )),
        E::Timeout(_) => {
            status::Error::timeout("request did not complete within the allowed duration", 1)
        }
        E::OutcomeUnknown(why) => status::Error::timeout(
            &format!(
                "the outcome of the write is unknown ({why}); read the object before retrying"
            ),
            1,
        ),
        E::Compacted {
            requested,
            compact_revision,
        } => status::Error::expired(format!(
            "too old resource version: {requested} ({compact_revision})"
        )),
        E::FutureRevision { requested, current } => status::Error::timeout(
            &format!(
                "Too large resource version: {requested}, current resource version: {current}"
            ),
            1,
        ),
        E::Apply(A::Fenced {
            fence_term,
            entry_term,
        }) => fenced(fence_term, entry_term),
        E::TooLarge(why) => status::Error::request_entity_too_large(&why),
        E::Invalid(why) => status::Error::bad_request(why),
        other => status::Error::internal(&other.to_string()),
    }
}

/// A write refused because its fence term is over (the caller's leadership ended).
pub fn fenced(fence_term: u64, entry_term: u64) -> status::Error {
    status::Error::conflict(
        "",
        "",
        "",
        &format!(
            "fenced out: term {fence_term} is over (the current leader's term is {entry_term})"
        ),
    )
    .with_causes(vec![status::Cause {
        reason: "FencedOut".into(),
        message: format!("term {fence_term} is over"),
        field: String::new(),
    }])
}

/// The store key every fenced write also puts (outside `/registry/`, so no Kubernetes client
/// sees it): its history is the sequence of control-loop writes. Each value is JSON
/// `{"term": <fence term>, "key": "<the object's store key>"}`.
pub const FENCE_LOG_KEY: &str = "/skiff/fence-log";

/// Adds the fence-log put to a fenced transaction's success operations.
fn log_fenced_write(txn: &mut Txn, fence: Option<u64>) {
    let Some(term) = fence else {
        return;
    };
    let key = txn
        .success
        .iter()
        .find_map(|op| match op {
            TxnOp::Put { key, .. } | TxnOp::Delete { key, .. } => {
                Some(String::from_utf8_lossy(key).into_owned())
            }
            _ => None,
        })
        .unwrap_or_default();
    let record = serde_json::json!({"term": term, "key": key}).to_string();
    txn.success.push(put(FENCE_LOG_KEY, record.into_bytes()));
}

/// A page of a list.
pub struct Listed {
    pub items: Vec<Value>,
    pub revision: u64,
    pub continue_token: Option<String>,
}

/// Options of a list.
pub struct ListOptions<'a> {
    pub freshness: Freshness,
    pub limit: u64,
    pub continue_token: Option<&'a str>,
    /// Keeps an object if true (label and field selectors).
    pub filter: &'a (dyn Fn(&Value) -> bool + Send + Sync),
}

#[derive(Clone)]
pub struct Objects {
    pub store: Store,
    pub crypt: Arc<Encryption>,
}

fn encrypted(resource: &Resource) -> bool {
    resource.group.is_empty() && resource.plural == "secrets"
}

impl Objects {
    pub fn key(resource: &Resource, namespace: &str, name: &str) -> String {
        resource.storage_key(namespace, name)
    }

    /// The prefix (ending in `/`) of every object of the resource in a namespace (or all).
    pub fn prefix(resource: &Resource, namespace: &str) -> String {
        if namespace.is_empty() {
            format!("{}/", resource.storage_prefix())
        } else {
            format!("{}/", resource.storage_namespace_prefix(namespace))
        }
    }

    /// The stored bytes of an object.
    pub fn encode(&self, resource: &Resource, object: &Value) -> Vec<u8> {
        let mut object = object.clone();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("selfLink");
        }
        let bytes = serde_json::to_vec(&object).unwrap_or_default();
        if encrypted(resource) {
            self.crypt.encrypt(&bytes)
        } else {
            bytes
        }
    }

    /// The object from stored bytes, with its resourceVersion.
    pub fn decode(&self, resource: &Resource, kv: &KeyValue) -> Result<Value, status::Error> {
        let plain = if encrypted(resource) {
            self.crypt
                .decrypt(&kv.value)
                .map_err(|e| status::Error::internal(&e.to_string()))?
        } else {
            kv.value.clone()
        };
        let mut object: Value = serde_json::from_slice(&plain).map_err(|e| {
            status::Error::internal(&format!(
                "stored object {} is corrupt: {e}",
                String::from_utf8_lossy(&kv.key)
            ))
        })?;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert(
                "resourceVersion".into(),
                Value::String(kv.mod_revision.to_string()),
            );
        }
        Ok(object)
    }

    /// Waits until this member's replica has reached `revision` (or fails with 504).
    async fn reach(&self, revision: u64) -> Result<(), status::Error> {
        if self.store.local_revision() >= revision {
            return Ok(());
        }
        self.store
            .linearizable_barrier()
            .await
            .map_err(store_error)?;
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.store.local_revision() < revision {
            if Instant::now() >= deadline {
                return Err(store_error(skiff_store::Error::FutureRevision {
                    requested: revision,
                    current: self.store.local_revision(),
                }));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn range(
        &self,
        request: range::Request,
        freshness: Freshness,
    ) -> Result<range::Response, status::Error> {
        let serializable = match freshness {
            Freshness::Latest => false,
            Freshness::Any => true,
            Freshness::NotOlderThan(n) | Freshness::Exact(n) => {
                self.reach(n).await?;
                true
            }
        };
        self.store
            .range(request, serializable)
            .await
            .map_err(store_error)
    }

    /// One object, or None.
    pub async fn get(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        freshness: Freshness,
    ) -> Result<Option<Value>, status::Error> {
        let key = Self::key(resource, namespace, name).into_bytes();
        let revision = if let Freshness::Exact(n) = freshness {
            n
        } else {
            0
        };
        let resp = self
            .range(
                range::Request {
                    key,
                    revision,
                    ..Default::default()
                },
                freshness,
            )
            .await?;
        match resp.kvs.first() {
            Some(kv) => Ok(Some(self.decode(resource, kv)?)),
            None => Ok(None),
        }
    }

    /// A page of objects under `prefix`, filtered, at one revision.
    pub async fn list(
        &self,
        resource: &Resource,
        prefix: &str,
        opts: &ListOptions<'_>,
    ) -> Result<Listed, status::Error> {
        let mut items = Vec::new();
        let end = self
            .list_each(resource, prefix, opts, |object| items.push(object))
            .await?;
        Ok(Listed {
            items,
            revision: end.revision,
            continue_token: end.continue_token,
        })
    }

    /// Like [`Objects::list`], but hands each object to `visit` as soon as it is decoded (and
    /// kept by the filter), so a caller that encodes as it goes never holds every decoded
    /// object of a big list at once. The items of the returned [`Listed`] are empty.
    pub async fn list_each(
        &self,
        resource: &Resource,
        prefix: &str,
        opts: &ListOptions<'_>,
        mut visit: impl FnMut(Value) + Send,
    ) -> Result<Listed, status::Error> {
        let end = prefix_end(prefix.as_bytes());
        let (mut start, mut revision, mut freshness) =
            (prefix.as_bytes().to_vec(), 0u64, opts.freshness);
        if let Some(token) = opts.continue_token.filter(|t| !t.is_empty()) {
            let (rv, after) = decode_continue(token)?;
            start = format!("{prefix}{after}").into_bytes();
            start.push(0);
            revision = rv;
            freshness = Freshness::Exact(rv);
        } else if let Freshness::Exact(n) = freshness {
            revision = n;
        }
        let limit = opts.limit;
        let chunk = if limit == 0 { 0 } else { limit.max(100) };
        let mut n_items = 0u64;
        let mut continue_token = None;
        loop {
            let req = range::Request {
                key: start.clone(),
                range_end: end.clone(),
                limit: chunk,
                revision,
                ..Default::default()
            };
            let resp = self
                .range(req, freshness)
                .await
                .map_err(|e| continue_expired(e, opts.continue_token))?;
            revision = resp.revision;
            freshness = Freshness::Exact(revision);
            let n = resp.kvs.len();
            for (i, kv) in resp.kvs.iter().enumerate() {
                let object = self.decode(resource, kv)?;
                if !(opts.filter)(&object) {
                    continue;
                }
                visit(object);
                n_items += 1;
                if limit > 0 && n_items == limit {
                    let more = i + 1 < n || resp.more;
                    if more {
                        let after =
                            String::from_utf8_lossy(&kv.key[prefix.len().min(kv.key.len())..])
                                .into_owned();
                        continue_token = Some(encode_continue(revision, &after));
                    }
                    return Ok(Listed {
                        items: Vec::new(),
                        revision,
                        continue_token,
                    });
                }
            }
            if !resp.more || n == 0 {
                break;
            }
            if let Some(last) = resp.kvs.last() {
                start = last.key.clone();
                start.push(0);
            }
        }
        Ok(Listed {
            items: Vec::new(),
            revision,
            continue_token,
        })
    }

    /// Runs a transaction carrying the caller's fence term (recorded in the fence log, see
    /// [`FENCE_LOG_KEY`]); returns (revision, result).
    pub async fn txn(
        &self,
        mut txn: Txn,
        fence: Option<u64>,
    ) -> Result<(u64, skiff_store::types::TxnResult), status::Error> {
        log_fenced_write(&mut txn, fence);
        self.store.txn(txn, fence).await.map_err(store_error)
    }

    /// Creates `key` if absent, with extra keys (allocations) created in the same transaction.
    /// Returns the new revision, or None if any of the keys already exists.
    pub async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        extra: Vec<(String, Vec<u8>)>,
        fence: Option<u64>,
    ) -> Result<Option<u64>, status::Error> {
        let mut compares = vec![absent(key)];
        let mut success = vec![put(key, value)];
        for (k, v) in extra {
            compares.push(absent(&k));
            success.push(put(&k, v));
        }
        let (rev, result) = self
            .txn(
                Txn {
                    compares,
                    success,
                    failure: vec![],
                },
                fence,
            )
            .await?;
        Ok(result.succeeded.then_some(rev))
    }

    /// Replaces `key` if its mod revision is still `expected`; extra puts and deletes ride along.
    /// Returns the new revision, or None on a conflict (or if the key is gone).
    pub async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: u64,
        extra_puts: Vec<(String, Vec<u8>)>,
        extra_deletes: Vec<String>,
        fence: Option<u64>,
    ) -> Result<Option<u64>, status::Error> {
        let mut compares = vec![Compare {
            key: key.as_bytes().to_vec(),
            target: CompareTarget::ModRevision(expected),
            op: CompareOp::Equal,
        }];
        let mut success = vec![put(key, value)];
        for (k, v) in extra_puts {
            compares.push(absent(&k));
            success.push(put(&k, v));
        }
        for k in extra_deletes {
            success.push(TxnOp::Delete {
                key: k.into_bytes(),
                range_end: vec![],
                prev_kv: false,
            });
        }
        let (rev, result) = self
            .txn(
                Txn {
                    compares,
                    success,
                    failure: vec![],
                },
                fence,
            )
            .await?;
        Ok(result.succeeded.then_some(rev))
    }

    /// Deletes `key` if its mod revision is still `expected`, with extra keys. Returns the
    /// revision of the delete, or None on a conflict.
    pub async fn delete(
        &self,
        key: &str,
        expected: u64,
        extra: Vec<String>,
        fence: Option<u64>,
    ) -> Result<Option<u64>, status::Error> {
        let compares = vec![Compare {
            key: key.as_bytes().to_vec(),
            target: CompareTarget::ModRevision(expected),
            op: CompareOp::Equal,
        }];
        let mut success = vec![TxnOp::Delete {
            key: key.as_bytes().to_vec(),
            range_end: vec![],
            prev_kv: false,
        }];
        for k in extra {
            success.push(TxnOp::Delete {
                key: k.into_bytes(),
                range_end: vec![],
                prev_kv: false,
            });
        }
        let (rev, result) = self
            .txn(
                Txn {
                    compares,
                    success,
                    failure: vec![],
                },
                fence,
            )
            .await?;
        if !result.succeeded {
            return Ok(None);
        }
        let deleted = result
            .responses
            .iter()
            .any(|r| matches!(r, OpResult::Delete { deleted, .. } if *deleted > 0));
        Ok(deleted.then_some(rev))
    }

    /// A raw key (allocations, tokens), read locally.
    pub async fn raw_get(&self, key: &str) -> Result<Option<KeyValue>, status::Error> {
        let resp = self
            .range(
                range::Request {
                    key: key.as_bytes().to_vec(),
                    ..Default::default()
                },
                Freshness::Any,
            )
            .await?;
        Ok(resp.kvs.into_iter().next())
    }
}

pub fn absent(key: &str) -> Compare {
    Compare {
        key: key.as_bytes().to_vec(),
        target: CompareTarget::CreateRevision(0),
        op: CompareOp::Equal,
    }
}

pub fn put(key: &str, value: Vec<u8>) -> TxnOp {
    TxnOp::Put {
        key: key.as_bytes().to_vec(),
        value,
        lease: 0,
        prev_kv: false,
    }
}

fn encode_continue(revision: u64, after: &str) -> String {
    let token = serde_json::json!({"v": "meta.k8s.io/v1", "rv": revision, "start": after});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String), status::Error> {
    let bad = || {
        status::Error::bad_request(
            "invalid continue token: pass the continue value of a previous list unchanged",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(bad)?
        .to_string();
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((rv, start))
}

fn continue_expired(e: status::Error, token: Option<&str>) -> status::Error {
    if e.code() == 410 && token.is_some() {
        status::Error::expired(
            "The provided continue parameter is too old to display a consistent list result. Start a new list without the continue parameter.",
        )
    } else {
        e
    }
}

#[cfg(test)]
mod tests;
