//! Watch events decoded once per member and shared by every watch that sends them.
//!
//! Hundreds of watches on one resource receive the same store event. Each of them used to
//! decode the new and the previous object from JSON, clone the one it sends and encode it
//! again, so the cost of one write grew with the number of watches. Now the first watch to
//! handle an event decodes it into a [`Decoded`] kept in a small [`Cache`] keyed by (revision,
//! key) (a key changes at most once per revision: the store refuses a transaction that would
//! change it twice); every other watch filters the same values and, for JSON output, copies
//! bytes encoded once per side.
//!
//! Invariant: the cache changes what a watch costs, never what it sends. An entry holds only
//! what the store's event determines; a watch that finds no entry (evicted, or too big to
//! keep) decodes the event itself and gets equal values. The cache is bounded in entries and
//! estimated bytes and evicts the lowest revisions first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde_json::Value;

#[cfg(test)]
mod tests;

/// Which object of an event a watch sends: the one written, or the one before the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    New,
    Old,
}

/// One store event, decoded.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The object a put wrote, with its resourceVersion; None for a delete or an undecodable value.
    pub new: Option<Value>,
    /// The object before the event, with the event's revision as its resourceVersion (what a
    /// DELETED event carries); None if there was none or it did not decode.
    pub old: Option<Value>,
    new_json: OnceLock<Bytes>,
    old_json: OnceLock<Bytes>,
}

impl Decoded {
    pub fn new(new: Option<Value>, old: Option<Value>) -> Decoded {
        Decoded {
            new,
            old,
            ..Decoded::default()
        }
    }

    pub fn object(&self, side: Side) -> Option<&Value> {
        match side {
            Side::New => self.new.as_ref(),
            Side::Old => self.old.as_ref(),
        }
    }

    /// The object of `side` encoded as JSON, encoded by the first caller. Two callers racing
    /// may both encode it; the results are equal and one is kept.
    pub fn json(&self, side: Side) -> Option<Bytes> {
        let (cell, object) = match side {
            Side::New => (&self.new_json, self.new.as_ref()?),
            Side::Old => (&self.old_json, self.old.as_ref()?),
        };
        if let Some(bytes) = cell.get() {
            return Some(bytes.clone());
        }
        let bytes = Bytes::from(serde_json::to_vec(object).unwrap_or_default());
        Some(cell.get_or_init(|| bytes).clone())
    }
}

/// The member's shared decoded events.
pub struct Cache {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct Inner {
    /// Revision → the decoded events of that revision (few per revision).
    by_revision: BTreeMap<u64, Vec<Entry>>,
    entries: usize,
    bytes: usize,
}

struct Entry {
    key: Vec<u8>,
    decoded: Arc<Decoded>,
    weight: usize,
}

impl Default for Cache {
    /// 1,024 events or 8 MiB (estimated), whichever is reached first.
    fn default() -> Cache {
        Cache::new(1024, 8 << 20)
    }
}

impl Cache {
    pub fn new(max_entries: usize, max_bytes: usize) -> Cache {
        Cache {
            inner: Mutex::new(Inner::default()),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    /// The decoded event at (`revision`, `key`): the shared one, or `decode()`'s result (kept
    /// for the next watches unless its estimated size `weight` is over an eighth of the budget).
    /// `decode` runs without the lock held.
    pub fn get_or_decode(
        &self,
        revision: u64,
        key: &[u8],
        weight: usize,
        decode: impl FnOnce() -> Decoded,
    ) -> Arc<Decoded> {
        if let Some(found) = self.lookup(revision, key) {
            return found;
        }
        let decoded = Arc::new(decode());
        if weight > self.max_bytes / 8 {
            return decoded;
        }
        let mut inner = self.lock();
        let slot = inner.by_revision.entry(revision).or_default();
        if let Some(found) = slot.iter().find(|e| e.key == key) {
            // Another watch decoded it meanwhile: share theirs.
            return found.decoded.clone();
        }
        slot.push(Entry {
            key: key.to_vec(),
            decoded: decoded.clone(),
            weight,
        });
        inner.entries += 1;
        inner.bytes += weight;
        while inner.entries > self.max_entries || inner.bytes > self.max_bytes {
            let Some((_, evicted)) = inner.by_revision.pop_first() else {
                break;
            };
            inner.entries -= evicted.len();
            inner.bytes -= evicted.iter().map(|e| e.weight).sum::<usize>();
        }
        decoded
    }

    fn lookup(&self, revision: u64, key: &[u8]) -> Option<Arc<Decoded>> {
        self.lock()
            .by_revision
            .get(&revision)?
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.decoded.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The lock is never held across code that can panic midway through an update.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries
    }
}

/// An estimate of what an event's decoded values and their JSON take, from its raw sizes.
pub fn weight(event: &skiff_store::types::Event) -> usize {
    let raw = event.kv.value.len() + event.prev_kv.as_ref().map_or(0, |kv| kv.value.len());
    256 + 4 * raw
}
