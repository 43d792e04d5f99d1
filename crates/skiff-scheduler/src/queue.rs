//! The scheduling queue: pending pods in priority order (higher first, then first come), pods
//! that did not fit parked until the cluster changes (or for at most 60 s), with per-pod back-off
//! (1 s doubling to 10 s) so a pod that keeps failing does not hog the scheduler.
//!
//! Invariants: a pod is in at most one of the active heap and the unschedulable set (the newest
//! object wins); popping skips entries superseded by a later add or removed; `parked` holds
//! exactly the keys of parked pods, so counting and retrying cost what is parked, not everything
//! pending (the runner asks on every event; with thousands of pods pending, a scan each time made
//! scheduling quadratic); pure data, the clock is an input.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

#[derive(Debug)]
struct Entry {
    priority: i32,
    sequence: u64,
    key: String,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.sequence == other.sequence
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.sequence.cmp(&self.sequence))
    }
}

#[derive(Debug)]
struct Pending {
    pod: Arc<Pod>,
    sequence: u64,
    attempts: u32,
    /// Set while parked as unschedulable: (since, not before).
    parked: Option<(Instant, Instant)>,
}

/// The queue.
#[derive(Debug, Default)]
pub struct Queue {
    heap: BinaryHeap<Entry>,
    pods: HashMap<String, Pending>,
    /// Keys of the pods whose `parked` is set.
    parked: HashSet<String>,
    sequence: u64,
}

/// How long an unschedulable pod waits at most before it is tried again.
pub const MAX_PARKED: Duration = Duration::from_secs(60);

fn backoff(attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(4);
    (Duration::from_secs(1) * 2u32.pow(exponent)).min(Duration::from_secs(10))
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

impl Queue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or refresh a pending pod (keeps its attempts; an update makes a parked pod active).
    pub fn add(&mut self, key: String, pod: Arc<Pod>) {
        self.sequence += 1;
        let sequence = self.sequence;
        let attempts = self.pods.get(&key).map(|p| p.attempts).unwrap_or(0);
        self.heap.push(Entry {
            priority: priority(&pod),
            sequence,
            key: key.clone(),
        });
        self.parked.remove(&key);
        self.pods.insert(
            key,
            Pending {
                pod,
                sequence,
                attempts,
                parked: None,
            },
        );
    }

    /// Forget a pod (bound or deleted).
    pub fn remove(&mut self, key: &str) {
        self.pods.remove(key);
        self.parked.remove(key);
    }

    /// The next pod to schedule, if any is active.
    pub fn pop(&mut self) -> Option<(String, Arc<Pod>)> {
        while let Some(entry) = self.heap.pop() {
            if let Some(pending) = self.pods.get_mut(&entry.key)
                && pending.sequence == entry.sequence
                && pending.parked.is_none()
            {
                pending.attempts += 1;
                pending.sequence = 0;
                return Some((entry.key, pending.pod.clone()));
            }
        }
        None
    }

    /// Park a pod that did not fit (it stays known until bound or deleted).
    pub fn park(&mut self, key: &str, now: Instant) {
        if let Some(pending) = self.pods.get_mut(key) {
            pending.parked = Some((now, now + backoff(pending.attempts)));
            self.parked.insert(key.to_string());
        }
    }

    /// The cluster changed: parked pods become active once their back-off has passed; pods parked
    /// for `MAX_PARKED` always do. Returns how many moved.
    pub fn retry_parked(&mut self, now: Instant, cluster_changed: bool) -> usize {
        let mut moved = 0;
        let keys: Vec<String> = self
            .parked
            .iter()
            .filter(|key| {
                self.pods
                    .get(*key)
                    .and_then(|p| p.parked)
                    .is_some_and(|(since, not_before)| {
                        now >= not_before
                            && (cluster_changed || now.duration_since(since) >= MAX_PARKED)
                    })
            })
            .cloned()
            .collect();
        for key in keys {
            self.parked.remove(&key);
            if let Some(pending) = self.pods.get_mut(&key) {
                self.sequence += 1;
                pending.sequence = self.sequence;
                pending.parked = None;
                self.heap.push(Entry {
                    priority: priority(&pending.pod),
                    sequence: self.sequence,
                    key,
                });
                moved += 1;
            }
        }
        moved
    }

    /// The earliest time a parked pod's back-off ends (to wake up for it).
    pub fn next_retry(&self) -> Option<Instant> {
        self.parked
            .iter()
            .filter_map(|key| self.pods.get(key)?.parked.map(|(_, at)| at))
            .min()
    }

    /// (active, parked) counts.
    pub fn counts(&self) -> (usize, usize) {
        let parked = self.parked.len();
        (self.pods.len().saturating_sub(parked), parked)
    }
}

#[cfg(test)]
mod tests;
