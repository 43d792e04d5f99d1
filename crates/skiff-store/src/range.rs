//! Range reads over one consistent view, at the latest revision or a past one.
//!
//! The latest state is the `kv` column family. A past revision R is reconstructed from it and
//! the history after R: for each key changed after R, its state at R is the `prev_kv` of its
//! first event after R (None if it did not exist). So reads at any revision ≥ the compaction
//! point are exact, and paging with continue tokens at a fixed revision is stable.

use std::collections::BTreeMap;

use crate::apply::KvRecord;
use crate::db::{self, CF_KV, View};
use crate::types::{KeyValue, RangeEnd};

/// A range read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub key: Vec<u8>,
    /// Empty: only `key`; `[0]`: every key ≥ `key`; else keys < `range_end`.
    pub range_end: Vec<u8>,
    /// At most this many keys (0 = no limit).
    pub limit: u64,
    /// Read at this revision (0 = latest).
    pub revision: u64,
    /// Also count every key in the range (costs a full scan of it).
    pub count: bool,
    /// Return keys and metadata without values.
    pub keys_only: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub kvs: Vec<KeyValue>,
    /// More keys follow the returned ones.
    pub more: bool,
    /// Keys in the whole range at that revision, if asked (else the number returned).
    pub count: u64,
    /// The revision the read was served at.
    pub revision: u64,
    pub compact_revision: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "required revision {requested} has been compacted (compact revision {compact_revision})"
    )]
    Compacted {
        requested: u64,
        compact_revision: u64,
    },
    #[error("required revision {requested} is a future revision (current revision {current})")]
    FutureRevision { requested: u64, current: u64 },
    #[error(transparent)]
    Db(#[from] db::Error),
}

/// Serves a range read from `view`.
pub fn read(view: &View<'_>, req: &Request) -> Result<Response, Error> {
    let counters = view.counters()?;
    let current = counters.revision;
    let revision = if req.revision == 0 {
        current
    } else {
        req.revision
    };
    if revision > current {
        return Err(Error::FutureRevision {
            requested: revision,
            current,
        });
    }
    if revision < counters.compact_revision {
        return Err(Error::Compacted {
            requested: revision,
            compact_revision: counters.compact_revision,
        });
    }
    let (start, end) = crate::types::key_range(&req.key, &req.range_end);
    // Keys whose state at `revision` differs from now: None = absent at `revision`.
    let mut past: BTreeMap<Vec<u8>, Option<KeyValue>> = BTreeMap::new();
    if revision < current {
        view.history_in_range(
            revision + 1,
            current,
            |key| end.contains(&start, key),
            |_, event| {
                // The first event after `revision` holds the key's state at it.
                past.entry(event.kv.key).or_insert(event.prev_kv);
                Ok(true)
            },
        )?;
    }
    let mut out = Response {
        revision,
        compact_revision: counters.compact_revision,
        ..Response::default()
    };
    let limit = if req.limit == 0 { u64::MAX } else { req.limit };
    let mut total = 0u64;
    let mut emit = |kv: KeyValue, out: &mut Response| -> bool {
        total += 1;
        if (out.kvs.len() as u64) < limit {
            let mut kv = kv;
            if req.keys_only {
                kv.value.clear();
            }
            out.kvs.push(kv);
            true
        } else {
            out.more = true;
            // Keep scanning only to count.
            req.count
        }
    };
    let mut past_iter = past.into_iter().peekable();
    let mut stopped = false;
    view.for_each(CF_KV, &start, |k, v| {
        if !end.contains(&start, k) {
            return Ok(false);
        }
        // Keys that existed at `revision` but were deleted since, ordered before `k`.
        while let Some((pk, _)) = past_iter.peek() {
            if pk.as_slice() >= k {
                break;
            }
            if let Some((_, Some(kv))) = past_iter.next()
                && !emit(kv, &mut out)
            {
                stopped = true;
                return Ok(false);
            }
        }
        let current_kv = match past_iter.peek() {
            Some((pk, _)) if pk.as_slice() == k => past_iter.next().and_then(|(_, kv)| kv),
            _ => {
                let record: KvRecord = db::decode(CF_KV, v)?;
                Some(record.into_kv(k))
            }
        };
        if let Some(kv) = current_kv
            && !emit(kv, &mut out)
        {
            stopped = true;
            return Ok(false);
        }
        Ok(true)
    })?;
    if !stopped {
        for (_, kv) in past_iter {
            if let Some(kv) = kv
                && !emit(kv, &mut out)
            {
                break;
            }
        }
    }
    out.count = if req.count {
        total
    } else {
        out.kvs.len() as u64
    };
    Ok(out)
}

/// Whether a key range is a single key (used to skip counting work).
pub fn is_single(req: &Request) -> bool {
    matches!(
        crate::types::key_range(&req.key, &req.range_end).1,
        RangeEnd::Single
    )
}
