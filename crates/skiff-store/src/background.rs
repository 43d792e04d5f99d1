//! A member's background loops. Each runs on every member; the ones that change the cluster act
//! only on the leader, and their writes carry the leader's term as a fence (DESIGN.md §2.10).
//!
//! - leadership and metrics: mirror openraft's metrics into Prometheus, the leadership channel
//!   and the peer address book; restart lease clocks on winning an election;
//! - lease expiry: revoke expired leases through the log;
//! - compaction: keep at least `history_window` of history, compact the rest;
//! - promotion: turn caught-up learners into voters;
//! - address: tell the cluster when this member's address changed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use openraft::ServerState;

use crate::pb::raft::UpdateAddressRequest;
use crate::pb::raft::admin_client::AdminClient;
use crate::store::{Leadership, Store};
use crate::types::{Op, Request};

pub(crate) fn spawn_all(store: &Store) {
    tokio::spawn(leadership_and_metrics(store.clone()));
    tokio::spawn(lease_expiry(store.clone()));
    tokio::spawn(compaction(store.clone()));
    tokio::spawn(promotion(store.clone()));
    tokio::spawn(announce_address(store.clone()));
}

/// Runs `tick` every `period` until the member shuts down.
async fn every<F, Fut>(store: &Store, period: Duration, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut shutdown = store.shutdown_signal();
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => tick().await,
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

async fn leadership_and_metrics(store: Store) {
    let inner = &store.inner;
    let mut metrics = inner.raft.metrics();
    let mut shutdown = store.shutdown_signal();
    let mut last_leader = None;
    let me = store.member_id();
    loop {
        let m = metrics.borrow_and_update().clone();
        let g = &inner.metrics;
        g.term.set(m.current_term as i64);
        g.commit_index.set(m.last_log_index.unwrap_or(0) as i64);
        g.has_leader.set(i64::from(m.current_leader.is_some()));
        let is_self = m.current_leader == Some(me) && m.state == ServerState::Leader;
        g.is_leader.set(i64::from(is_self));
        let membership = m.membership_config.membership();
        g.members.set(membership.nodes().count() as i64);
        g.voters.set(membership.voter_ids().count() as i64);
        for (id, node) in membership.nodes() {
            if *id != me {
                inner.peers.set_address(*id, &node.addr);
            }
        }
        if m.current_leader != last_leader {
            if last_leader.is_some() || m.current_leader.is_some() {
                g.leader_changes.inc();
            }
            tracing::info!(leader = ?m.current_leader, term = m.current_term, "leader changed");
            if is_self {
                store
                    .inner
                    .shared
                    .with_leases(|c| c.restart_all(Instant::now()));
            }
            last_leader = m.current_leader;
        }
        let now = Leadership {
            leader: m.current_leader,
            term: m.current_term,
            is_self,
        };
        inner.leadership.send_if_modified(|l| {
            let changed = *l != now;
            *l = now;
            changed
        });
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        g.db_size.set(inner.db.approximate_size() as i64);
    }
}

fn fenced_if_leader(store: &Store) -> Option<u64> {
    let l = *store.inner.leadership.borrow();
    l.is_self.then_some(l.term)
}

async fn lease_expiry(store: Store) {
    let s = store.clone();
    every(&store, Duration::from_millis(250), move || {
        let store = s.clone();
        async move {
            let Some(term) = fenced_if_leader(&store) else {
                return;
            };
            let expired = store
                .inner
                .shared
                .with_leases(|c| c.expired(Instant::now()));
            if expired.is_empty() {
                return;
            }
            let req = Request {
                fence_term: Some(term),
                op: Op::LeaseRevoke {
                    ids: expired.clone(),
                },
            };
            match store.write(req).await {
                Ok(_) => tracing::debug!(?expired, "expired leases revoked"),
                Err(e) => tracing::warn!(?expired, "revoking expired leases failed: {e}"),
            }
        }
    })
    .await;
}

async fn compaction(store: Store) {
    let s = store.clone();
    let window = store.config().history_window;
    let period = store.config().compaction_interval;
    let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut sampled_term = 0u64;
    every(&store, period, move || {
        let store = s.clone();
        let now = Instant::now();
        let leading = fenced_if_leader(&store);
        // Samples are only trusted from this member's own continuous leadership.
        if leading != Some(sampled_term) {
            samples.clear();
            sampled_term = leading.unwrap_or(0);
        }
        let state = store.inner.shared.state();
        let mut target = None;
        if let Some(term) = leading {
            samples.push_back((now, state.counters.revision));
            while samples.len() > 1
                && samples
                    .get(1)
                    .is_some_and(|(t, _)| now.duration_since(*t) >= window)
            {
                samples.pop_front();
            }
            if let Some((t, rev)) = samples.front()
                && now.duration_since(*t) >= window
                && *rev > state.counters.compact_revision
            {
                target = Some((term, *rev));
            }
        }
        async move {
            if let Some((term, revision)) = target {
                let req = Request {
                    fence_term: Some(term),
                    op: Op::Compact { revision },
                };
                let started = Instant::now();
                let written = store.write(req).await;
                store
                    .inner
                    .metrics
                    .compaction
                    .observe(started.elapsed().as_secs_f64());
                match written {
                    Ok(_) => tracing::info!(revision, "history compacted"),
                    Err(e) => tracing::warn!(revision, "compaction failed: {e}"),
                }
            }
        }
    })
    .await;
}

async fn promotion(store: Store) {
    let s = store.clone();
    every(&store, Duration::from_millis(500), move || {
        let store = s.clone();
        async move {
            if store.is_leader() {
                store.finish_joint_change().await;
                store.promote_caught_up_learners().await;
            }
        }
    })
    .await;
}

/// If the membership records another address for this member, tell the cluster (through any
/// member it can reach) until the membership shows the new one.
async fn announce_address(store: Store) {
    let me = store.member_id();
    let addr = store.config().advertise_addr.clone();
    let mut shutdown = store.shutdown_signal();
    loop {
        let members = store.members();
        let recorded = members.iter().find(|m| m.id == me).map(|m| m.addr.clone());
        if recorded.is_none() || recorded.as_deref() == Some(addr.as_str()) {
            // Not a member yet (joining) or up to date: check again later.
            if recorded.is_some() {
                return;
            }
        } else {
            tracing::info!(old = ?recorded, new = %addr, "this member's address changed; telling the cluster");
            let req = UpdateAddressRequest {
                id: me,
                name: store.name().to_string(),
                addr: addr.clone(),
            };
            let mut done = false;
            if store.is_leader() {
                done = store
                    .update_address_on_leader(me, store.name(), &addr)
                    .await
                    .is_ok();
            }
            for m in members.iter().filter(|m| m.id != me) {
                if done {
                    break;
                }
                if let Ok(ch) = store.inner.peers.channel_to(&m.addr) {
                    let mut client = AdminClient::new(ch);
                    let call = client.update_address(req.clone());
                    if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), call).await {
                        done = true;
                    }
                }
            }
            if done {
                tracing::info!("address update accepted");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
