//! Membership operations: join, list, remove, re-address, promote learners, transfer leadership.
//!
//! Members are known by stable ids (allocated by the replicated state machine, never reused)
//! and unique names; addresses are data that can change. Every change runs on the leader; a
//! member that receives one forwards it. A joining member enters as a learner and the leader
//! promotes it to voter once it has caught up (a loop, so a promotion interrupted by a
//! failover is finished by the next leader).
//!
//! openraft 0.9 has no leader transfer, so it is done cooperatively: the leader pauses writes
//! and its heartbeats, the other voters pause their elections, and the target campaigns once
//! the leader's lease has run out. Every pause has a deadline, so a failed transfer heals itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use openraft::ChangeMembers;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};

use crate::error::{Error, Result};
use crate::pb::raft::admin_client::AdminClient;
use crate::pb::raft::{CampaignRequest, PauseElectionRequest};
use crate::store::Store;
use crate::types::{Member, MemberId, Op, Outcome, Request};

/// A member as the cluster configuration records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: MemberId,
    pub name: String,
    pub addr: String,
    pub voter: bool,
    pub leader: bool,
    /// Last log index the leader knows it holds (only on the leader).
    pub matched_index: Option<u64>,
}

impl Store {
    /// The members in this member's current configuration.
    pub fn members(&self) -> Vec<MemberInfo> {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<MemberId> = membership.voter_ids().collect();
        let matched: BTreeMap<MemberId, Option<u64>> = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default();
        membership
            .nodes()
            .map(|(id, node)| MemberInfo {
                id: *id,
                name: node.name.clone(),
                addr: node.addr.clone(),
                voter: voters.contains(id),
                leader: m.current_leader == Some(*id),
                matched_index: if *id == self.member_id() && m.current_leader == Some(*id) {
                    m.last_log_index
                } else {
                    matched.get(id).copied().flatten()
                },
            })
            .collect()
    }

    fn member_by_name(&self, name: &str) -> Option<MemberInfo> {
        self.members().into_iter().find(|m| m.name == name)
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.current_leader() == Some(self.member_id())
    }

    /// An admin client to the leader, or None when this member is the leader.
    pub(crate) async fn leader_admin(
        &self,
    ) -> Result<Option<AdminClient<tonic::transport::Channel>>> {
        let deadline = Instant::now() + self.inner.config.request_timeout;
        loop {
            match self.current_leader() {
                Some(l) if l == self.member_id() => return Ok(None),
                Some(l) => {
                    if let Some(ch) = self.inner.peers.channel(l) {
                        return Ok(Some(AdminClient::new(ch)));
                    }
                }
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(Error::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Applies a membership change on this member (the leader), retrying while another change
    /// is still in progress.
    pub(crate) async fn change_membership(
        &self,
        change: ChangeMembers<MemberId, Member>,
    ) -> Result<()> {
        let deadline = Instant::now() + self.inner.config.request_timeout;
        loop {
            match self
                .inner
                .raft
                .change_membership(change.clone(), false)
                .await
            {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                    return Err(Error::NoLeader);
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    // Another change whose log entry is not committed yet: wait for it.
                    let in_progress = matches!(e, ChangeMembershipError::InProgress(_));
                    if Instant::now() >= deadline || !in_progress {
                        return Err(Error::Membership(e.to_string()));
                    }
                }
                Err(RaftError::Fatal(_)) => return Err(Error::Shutdown),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// On the leader: registers a new member (allocating its id) and adds it as a learner.
    pub(crate) async fn join_on_leader(&self, name: &str, addr: &str) -> Result<MemberId> {
        validate_member_name(name)?;
        if let Some(existing) = self.member_by_name(name) {
            return Err(Error::Apply(crate::types::ApplyError::MemberNameTaken(
                format!(
                    "{} (id {} at {}); remove it first with `skiff cluster remove {}`",
                    name, existing.id, existing.addr, name
                ),
            )));
        }
        let resp = self
            .write(Request::new(Op::RegisterMember {
                name: name.to_string(),
            }))
            .await?;
        let id = match resp.result {
            Ok(Outcome::MemberRegistered { id }) => id,
            Ok(other) => return Err(Error::Storage(format!("unexpected outcome {other:?}"))),
            Err(e) => return Err(Error::Apply(e)),
        };
        self.inner.peers.set_address(id, addr);
        match self
            .inner
            .raft
            .add_learner(
                id,
                Member {
                    name: name.to_string(),
                    addr: addr.to_string(),
                },
                false,
            )
            .await
        {
            Ok(_) => {}
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                return Err(Error::NoLeader);
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                return Err(Error::Membership(e.to_string()));
            }
            Err(RaftError::Fatal(_)) => return Err(Error::Shutdown),
        }
        tracing::info!(member = id, name, addr, "member joined as a learner");
        Ok(id)
    }

    /// Removes a member by name (runs on the leader).
    pub async fn remove_member(&self, name: &str) -> Result<Vec<MemberInfo>> {
        if let Some(mut leader) = self.leader_admin().await? {
            leader
                .remove_member(crate::pb::raft::RemoveMemberRequest {
                    name: name.to_string(),
                })
                .await
                .map_err(|s| Error::from_status(&s))?;
            return Ok(self.members());
        }
        let member = self
            .member_by_name(name)
            .ok_or_else(|| Error::NotFound(format!("member {name:?}")))?;
        let change = if member.voter {
            let remaining = self
                .members()
                .iter()
                .filter(|m| m.voter && m.id != member.id)
                .count();
            if remaining == 0 {
                return Err(Error::Membership(
                    "cannot remove the last voting member".into(),
                ));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([member.id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([member.id]))
        };
        self.change_membership(change).await?;
        if member.voter {
            // A removed voter is kept as a learner by openraft's joint step; drop it entirely.
            if self.members().iter().any(|m| m.id == member.id) {
                self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([member.id])))
                    .await?;
            }
        }
        self.inner.peers.forget(member.id);
        tracing::info!(member = member.id, name, "member removed");
        Ok(self.members())
    }

    /// Records a member's new peer address (runs on the leader).
    pub(crate) async fn update_address_on_leader(
        &self,
        id: MemberId,
        name: &str,
        addr: &str,
    ) -> Result<()> {
        let member = self
            .members()
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| {
                Error::NotFound(format!("member id {id} (was it removed from the cluster?)"))
            })?;
        if member.name != name {
            return Err(Error::Invalid(format!(
                "member {id} is named {:?}, not {name:?}",
                member.name
            )));
        }
        if member.addr == addr {
            return Ok(());
        }
        self.inner.peers.set_address(id, addr);
        let node = Member {
            name: name.to_string(),
            addr: addr.to_string(),
        };
        self.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
            .await?;
        tracing::info!(member = id, name, addr, "member address updated");
        Ok(())
    }

    /// True while the configuration is a joint one: a membership change is half done.
    pub fn configuration_changing(&self) -> bool {
        let m = self.inner.raft.metrics().borrow().clone();
        m.membership_config.membership().get_joint_config().len() > 1
    }

    /// On the leader: finishes a membership change left half done.
    ///
    /// openraft changes membership in two steps (a joint configuration, then the new one), and
    /// a leader that loses its leadership or crashes between them leaves the cluster in the
    /// joint configuration: every later commit then needs a majority of both the old and the
    /// new voters. Moving to the joint configuration's last half is what the second step would
    /// have done; while the joint entry is not committed yet this is refused as "in progress"
    /// and tried again on the next tick.
    pub(crate) async fn finish_joint_change(&self) {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let joint = membership.get_joint_config();
        if joint.len() < 2 {
            return;
        }
        let Some(goal) = joint.last().cloned() else {
            return;
        };
        match self
            .inner
            .raft
            .change_membership(ChangeMembers::ReplaceAllVoters(goal.clone()), false)
            .await
        {
            Ok(_) => tracing::info!(voters = ?goal, "finished a half-done membership change"),
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_),
            ))) => {}
            Err(e) => tracing::warn!(voters = ?goal, "finishing a membership change failed: {e}"),
        }
    }

    /// On the leader: promotes learners that have caught up.
    pub(crate) async fn promote_caught_up_learners(&self) {
        let m = self.inner.raft.metrics().borrow().clone();
        let Some(last) = m.last_log_index else { return };
        let Some(replication) = &m.replication else {
            return;
        };
        let voters: BTreeSet<MemberId> = m.membership_config.membership().voter_ids().collect();
        let learners: Vec<MemberId> = m
            .membership_config
            .membership()
            .learner_ids()
            .filter(|id| !voters.contains(id))
            .collect();
        for id in learners {
            let matched = replication.get(&id).copied().flatten().map(|l| l.index);
            if matched.is_some_and(|i| i + 64 >= last) {
                tracing::info!(member = id, "promoting caught-up learner to voter");
                if let Err(e) = self
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
                    .await
                {
                    tracing::warn!(member = id, "promotion failed: {e}");
                }
            }
        }
    }

    /// Makes the named voter the leader.
    pub async fn transfer_leader(&self, name: &str) -> Result<(MemberId, u64)> {
        if let Some(mut leader) = self.leader_admin().await? {
            let r = leader
                .transfer_leader(crate::pb::raft::TransferLeaderRequest {
                    name: name.to_string(),
                })
                .await
                .map_err(|s| Error::from_status(&s))?
                .into_inner();
            return Ok((r.leader_id, r.term));
        }
        let target = self
            .member_by_name(name)
            .ok_or_else(|| Error::NotFound(format!("member {name:?}")))?;
        if !target.voter {
            return Err(Error::Membership(format!(
                "{name} is a learner; only a voter can lead"
            )));
        }
        if target.id == self.member_id() {
            let m = self.inner.raft.metrics().borrow().clone();
            return Ok((target.id, m.current_term));
        }
        let cfg = self.inner.config.clone();
        let pause = cfg.election_timeout_max * 6;
        self.inner.transferring.store(true, Ordering::Release);
        let result = self.run_transfer(&target, pause).await;
        self.inner.raft.runtime_config().heartbeat(true);
        self.inner.raft.runtime_config().elect(true);
        self.inner.transferring.store(false, Ordering::Release);
        result
    }

    async fn run_transfer(&self, target: &MemberInfo, pause: Duration) -> Result<(MemberId, u64)> {
        // 1. Let the target catch up with everything (writes are paused meanwhile).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let caught_up = self.members().iter().any(|m| {
                m.id == target.id
                    && m.matched_index == self.inner.raft.metrics().borrow().last_log_index
            });
            if caught_up {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Membership(format!(
                    "{} did not catch up with the log in time",
                    target.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // 2. The other voters stop campaigning for a while; the leader stops its heartbeats.
        let millis = pause.as_millis() as u64;
        for m in self
            .members()
            .into_iter()
            .filter(|m| m.voter && m.id != target.id && m.id != self.member_id())
        {
            if let Some(ch) = self.inner.peers.channel(m.id)
                && let Err(e) = AdminClient::new(ch)
                    .pause_election(PauseElectionRequest { millis })
                    .await
            {
                tracing::warn!(member = m.id, "could not pause elections: {e}");
            }
        }
        self.inner.raft.runtime_config().elect(false);
        self.inner.raft.runtime_config().heartbeat(false);
        // 3. The target campaigns once the leader lease it saw has run out.
        let ch = self
            .inner
            .peers
            .channel(target.id)
            .ok_or_else(|| Error::NotFound(format!("address of {}", target.name)))?;
        let reply = AdminClient::new(ch)
            .campaign(CampaignRequest { millis })
            .await
            .map_err(|s| Error::from_status(&s))?
            .into_inner();
        if !reply.elected {
            return Err(Error::Membership(format!(
                "{} was not elected in time; the old leader resumes",
                target.name
            )));
        }
        tracing::info!(to = target.id, term = reply.term, "leadership transferred");
        Ok((target.id, reply.term))
    }

    /// Part of a transfer, on the target: campaign until elected or the deadline passes.
    pub(crate) async fn campaign(&self, within: Duration) -> Result<(bool, u64)> {
        let deadline = Instant::now() + within;
        let cfg = &self.inner.config;
        self.inner.raft.runtime_config().elect(true);
        // Followers refuse votes while the old leader's lease (election_timeout_max) runs.
        tokio::time::sleep(cfg.election_timeout_max + Duration::from_millis(20)).await;
        loop {
            let _ = self.inner.raft.trigger().elect().await;
            let wait_until = Instant::now() + cfg.election_timeout_min;
            while Instant::now() < wait_until {
                let m = self.inner.raft.metrics().borrow().clone();
                if m.current_leader == Some(self.member_id()) {
                    return Ok((true, m.current_term));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if Instant::now() >= deadline {
                let m = self.inner.raft.metrics().borrow().clone();
                return Ok((false, m.current_term));
            }
        }
    }

    /// Part of a transfer, on the other voters: no elections until `within` has passed.
    pub(crate) fn pause_elections(&self, within: Duration) {
        self.inner.raft.runtime_config().elect(false);
        let raft = self.inner.raft.clone();
        tokio::spawn(async move {
            tokio::time::sleep(within).await;
            raft.runtime_config().elect(true);
        });
    }
}

/// Member names are DNS-label-like: they appear in certificates, logs and commands.
pub fn validate_member_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "member name {name:?} must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'"
        )))
    }
}
