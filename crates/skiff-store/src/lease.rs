//! Lease deadlines, kept in memory on every member and acted on only by the leader.
//!
//! Deadlines are not replicated (clocks differ between machines): the leader decides expiry and
//! proposes a replicated `LeaseRevoke`, which deletes the lease and its keys in one revision.
//! A member that becomes leader restarts every lease's full TTL, so a keep-alive sent to the
//! old leader is never lost to a failover. `LeaseClock` is pure: callers pass `now`.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::types::LeaseId;

#[derive(Debug, Default)]
pub struct LeaseClock {
    leases: HashMap<LeaseId, (i64, Instant)>,
}

impl LeaseClock {
    /// A lease exists with this TTL; its clock starts now.
    pub fn granted(&mut self, id: LeaseId, ttl_secs: i64, now: Instant) {
        self.leases.insert(id, (ttl_secs, now + ttl(ttl_secs)));
    }

    pub fn revoked(&mut self, id: LeaseId) {
        self.leases.remove(&id);
    }

    /// Renews a lease; returns its TTL, or None if it does not exist.
    pub fn keep_alive(&mut self, id: LeaseId, now: Instant) -> Option<i64> {
        let (ttl_secs, deadline) = self.leases.get_mut(&id)?;
        *deadline = now + ttl(*ttl_secs);
        Some(*ttl_secs)
    }

    /// Seconds left before expiry, or None if unknown.
    pub fn remaining(&self, id: LeaseId, now: Instant) -> Option<i64> {
        self.leases
            .get(&id)
            .map(|(_, d)| d.saturating_duration_since(now).as_secs() as i64)
    }

    /// Restarts every lease's full TTL (on winning an election).
    pub fn restart_all(&mut self, now: Instant) {
        for (ttl_secs, deadline) in self.leases.values_mut() {
            *deadline = now + ttl(*ttl_secs);
        }
    }

    /// Replaces the known leases (after loading or installing a snapshot).
    pub fn reload(&mut self, leases: impl IntoIterator<Item = (LeaseId, i64)>, now: Instant) {
        self.leases = leases
            .into_iter()
            .map(|(id, t)| (id, (t, now + ttl(t))))
            .collect();
    }

    /// Leases past their deadline, oldest first.
    pub fn expired(&self, now: Instant) -> Vec<LeaseId> {
        let mut out: Vec<(Instant, LeaseId)> = self
            .leases
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(id, (_, d))| (*d, *id))
            .collect();
        out.sort();
        out.into_iter().map(|(_, id)| id).collect()
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

fn ttl(secs: i64) -> Duration {
    Duration::from_secs(secs.max(1) as u64)
}
