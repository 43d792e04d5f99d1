//! `Store`: the handle every user of the replicated store holds (the API server, the KV
//! service, tools). Any member accepts any call: writes are proposed on the leader (forwarded
//! when this member is not it), linearizable reads go through a read-index round, local reads
//! and watches are served from this member's replica.
//!
//! Invariant: a write is reported committed only when openraft applied it; a write whose fate
//! is unknown (the leader vanished after it was sent) is reported as `OutcomeUnknown`, never
//! retried here, so a client never applies a write twice by accident.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch as tokio_watch;

use crate::batch::Batcher;
use crate::config::Config;
use crate::db::{Db, View};
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::metrics::StoreMetrics;
use crate::pb::raft::admin_client::AdminClient;
use crate::pb::raft::{ForwardRequest, LeaseKeepAliveForward};
use crate::peers::Peers;
use crate::raft_types::Raft;
use crate::read_index::ReadIndex;
use crate::state_machine::Shared;
use crate::tls::{Ca, JoinToken};
use crate::types::{
    ApplyError, LeaseId, MemberId, Op, Outcome, Request, Response, Txn, TxnOp, TxnResult,
};
use crate::{range, watch};

/// Who leads the cluster, as this member sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leadership {
    pub leader: Option<MemberId>,
    pub term: u64,
    /// This member is the leader of `term`.
    pub is_self: bool,
}

pub(crate) struct Inner {
    pub identity: Identity,
    pub config: Config,
    pub raft: Raft,
    pub db: Db,
    pub shared: Arc<Shared>,
    pub peers: Peers,
    pub token: JoinToken,
    pub ca: Ca,
    pub reads: ReadIndex,
    pub metrics: StoreMetrics,
    /// Group commit in front of `raft.client_write` (batch.rs).
    pub batcher: Batcher,
    /// A leader transfer is under way: writes wait.
    pub transferring: AtomicBool,
    /// This member has applied everything committed at some moment since it started, so its
    /// replica may answer serializable reads (a member that starts empty, or far behind, does
    /// not hand out its half-filled state as "any version").
    pub caught_up: AtomicBool,
    pub leadership: tokio_watch::Sender<Leadership>,
    pub shutdown: tokio_watch::Sender<bool>,
}

/// A running member of the replicated store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// A member's view of itself and the cluster.
#[derive(Clone, Debug)]
pub struct Status {
    pub member_id: MemberId,
    pub name: String,
    pub cluster_id: String,
    pub leader: Option<MemberId>,
    pub term: u64,
    pub is_learner: bool,
    pub applied_index: u64,
    pub commit_index: u64,
    pub revision: u64,
    pub compact_revision: u64,
    pub db_size: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
}

impl Store {
    pub fn member_id(&self) -> MemberId {
        self.inner.identity.member_id
    }

    pub fn name(&self) -> &str {
        &self.inner.identity.name
    }

    pub fn cluster_id(&self) -> &str {
        &self.inner.identity.cluster_id
    }

    /// The cluster CA (the API server issues client certificates with it).
    pub fn ca(&self) -> &Ca {
        &self.inner.ca
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Follows leadership changes (the control loops start and stop on it).
    pub fn leadership(&self) -> tokio_watch::Receiver<Leadership> {
        self.inner.leadership.subscribe()
    }

    pub fn current_leader(&self) -> Option<MemberId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    fn check_limits(&self, request: &Request) -> Result<()> {
        let limits = &self.inner.config.limits;
        let Op::Txn(txn) = &request.op else {
            return Ok(());
        };
        let n_ops = txn.success.len() + txn.failure.len();
        if n_ops > limits.max_txn_ops || txn.compares.len() > limits.max_txn_ops {
            return Err(Error::TooLarge(format!(
                "a transaction has {n_ops} operations and {} compares; the limit is {} of each",
                txn.compares.len(),
                limits.max_txn_ops
            )));
        }
        let mut total = 0usize;
        for op in txn.success.iter().chain(&txn.failure) {
            let (key, value) = match op {
                TxnOp::Put { key, value, .. } => (key, value.len()),
                TxnOp::Delete { key, .. } | TxnOp::Range { key, .. } => (key, 0),
            };
            if key.is_empty() {
                return Err(Error::Invalid("an empty key is not allowed".into()));
            }
            if key.len() > limits.max_key_bytes {
                return Err(Error::TooLarge(format!(
                    "a key of {} bytes exceeds the limit of {} bytes",
                    key.len(),
                    limits.max_key_bytes
                )));
            }
            if value > limits.max_value_bytes {
                return Err(Error::TooLarge(format!(
                    "the value for key {:?} is {value} bytes; the limit is {} bytes",
                    String::from_utf8_lossy(key),
                    limits.max_value_bytes
                )));
            }
            total += key.len() + value;
        }
        if total > limits.max_request_bytes {
            return Err(Error::TooLarge(format!(
                "the request carries {total} bytes; the limit is {} bytes",
                limits.max_request_bytes
            )));
        }
        Ok(())
    }

    /// Proposes a write and waits for it to be applied; any member may be called.
    pub async fn write(&self, request: Request) -> Result<Response> {
        self.check_limits(&request)?;
        let deadline = Instant::now() + self.inner.config.request_timeout;
        let mut metrics = self.inner.raft.metrics();
        loop {
            let leader = metrics.borrow_and_update().current_leader;
            let transferring = self.inner.transferring.load(Ordering::Acquire);
            match leader {
                Some(l) if l == self.member_id() && !transferring => {
                    match self.propose_local(request.clone(), deadline).await {
                        Ok(Some(resp)) => return Ok(resp),
                        Ok(None) => {} // not proposed (no longer leader): retry
                        Err(e) => return Err(e),
                    }
                }
                Some(l) if l != self.member_id() => match self.forward(l, &request, deadline).await
                {
                    Ok(resp) => {
                        self.inner.metrics.proposals_forwarded.inc();
                        return Ok(resp);
                    }
                    Err(Forward::Retry) => {}
                    Err(Forward::Failed(e)) => return Err(e),
                },
                _ => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(if leader.is_none() {
                    Error::NoLeader
                } else {
                    Error::Timeout(self.inner.config.request_timeout)
                });
            }
            let pause =
                (deadline - now).min(Duration::from_millis(if transferring { 20 } else { 50 }));
            let _ = tokio::time::timeout(pause, metrics.changed()).await;
        }
    }

    /// Proposes on this member (the leader). `Ok(None)`: it was not proposed; retry elsewhere.
    pub(crate) async fn propose_local(
        &self,
        request: Request,
        deadline: Instant,
    ) -> Result<Option<Response>> {
        if self.inner.config.unsafe_ack_before_commit
            && let Op::Txn(txn) = &request.op
        {
            // The negative control: answer success if the commit takes more than 20 ms.
            let guess = unsafe_success(txn, self.local_revision() + 1);
            let raft = self.inner.raft.clone();
            let mut proposal = tokio::spawn(async move { raft.client_write(request).await });
            return match tokio::time::timeout(Duration::from_millis(20), &mut proposal).await {
                Ok(Ok(Ok(resp))) => Ok(Some(resp.data)),
                _ => Ok(Some(guess)),
            };
        }
        let proposal = self.inner.batcher.propose(request);
        match tokio::time::timeout_at(deadline.into(), proposal).await {
            Err(_) => {
                self.inner.metrics.proposals_failed.inc();
                Err(Error::OutcomeUnknown(
                    "timed out waiting for the write to commit".into(),
                ))
            }
            Ok(Ok(Ok(Some(resp)))) => {
                self.inner.metrics.proposals_committed.inc();
                Ok(Some(resp))
            }
            Ok(Ok(other)) => other,
            // The batcher is gone: the member is stopping.
            Ok(Err(_)) => Err(Error::Shutdown),
        }
    }

    async fn forward(
        &self,
        leader: MemberId,
        request: &Request,
        deadline: Instant,
    ) -> Result<Response, Forward> {
        let Some(channel) = self.inner.peers.channel(leader) else {
            return Err(Forward::Retry);
        };
        let bytes = postcard::to_stdvec(request)
            .map_err(|e| Forward::Failed(Error::Invalid(e.to_string())))?;
        let mut client = AdminClient::new(channel)
            .max_decoding_message_size(crate::peers::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::peers::MAX_MESSAGE_BYTES);
        let mut metrics = self.inner.raft.metrics();
        if metrics.borrow_and_update().current_leader != Some(leader) {
            return Err(Forward::Retry); // nothing was sent
        }
        let call = client.forward(ForwardRequest { request: bytes });
        // A leader cut off from the others (partitioned, paused) may never answer. Once this
        // member has seen another leader or an election for an election timeout, waiting for
        // the deadline would only delay the client (a deposed leader that is still reachable,
        // as in a leader transfer, forwards the write itself well within that time).
        let grace = self.inner.config.election_timeout_max;
        let deposed = async move {
            if metrics
                .wait_for(|m| m.current_leader != Some(leader))
                .await
                .is_err()
            {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(grace).await;
        };
        let answer = tokio::select! {
            biased;
            answer = tokio::time::timeout_at(deadline.into(), call) => answer,
            () = deposed => {
                return Err(Forward::Failed(Error::OutcomeUnknown(
                    "the leader changed while the write was in flight; it may or may not have been applied".into(),
                )));
            }
        };
        match answer {
            Err(_) => Err(Forward::Failed(Error::OutcomeUnknown(
                "timed out waiting for the leader".into(),
            ))),
            Ok(Ok(reply)) => postcard::from_bytes(&reply.into_inner().response).map_err(|e| {
                Forward::Failed(Error::OutcomeUnknown(format!(
                    "undecodable reply from the leader: {e}"
                )))
            }),
            Ok(Err(status)) => Err(classify_forward_failure(&status)),
        }
    }

    /// Runs a transaction; refusals by apply become errors.
    pub async fn txn(&self, txn: Txn, fence_term: Option<u64>) -> Result<(u64, TxnResult)> {
        let resp = self
            .write(Request {
                fence_term,
                op: Op::Txn(txn),
            })
            .await?;
        match resp.result {
            Ok(Outcome::Txn(t)) => Ok((resp.revision, t)),
            Ok(other) => Err(Error::Storage(format!("unexpected outcome {other:?}"))),
            Err(e) => Err(Error::Apply(e)),
        }
    }

    /// Waits until this member has applied everything committed before the call began.
    pub async fn linearizable_barrier(&self) -> Result<()> {
        let timeout = self.inner.config.request_timeout;
        let index = self.inner.reads.read_index(timeout).await?;
        self.inner
            .raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => Error::Timeout(timeout),
                openraft::metrics::WaitError::ShuttingDown => Error::Shutdown,
            })?;
        self.inner.caught_up.store(true, Ordering::Release);
        Ok(())
    }

    /// Reads a key range; linearizable unless `serializable` (then from this replica as is).
    pub async fn range(
        &self,
        request: range::Request,
        serializable: bool,
    ) -> Result<range::Response> {
        // A local read (serializable, or the unsafe negative control) still waits for one
        // read index after the member starts: see `Inner::caught_up`.
        let local = serializable || self.inner.config.unsafe_local_reads;
        if !local || !self.inner.caught_up.load(Ordering::Acquire) {
            self.linearizable_barrier().await?;
        }
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || range::read(&View::snapshot(&db), &request))
            .await
            .map_err(|e| Error::Storage(e.to_string()))?
            .map_err(|e| match e {
                range::Error::Compacted {
                    requested,
                    compact_revision,
                } => Error::Compacted {
                    requested,
                    compact_revision,
                },
                range::Error::FutureRevision { requested, current } => {
                    Error::FutureRevision { requested, current }
                }
                range::Error::Db(e) => Error::Storage(e.to_string()),
            })
    }

    /// Starts a watch served from this member's replica.
    pub fn watch(&self, request: watch::Request) -> watch::Watcher {
        self.inner
            .metrics
            .watchers
            .set(self.inner.shared.hub.watcher_count() as i64 + 1);
        watch::start(self.inner.db.clone(), &self.inner.shared.hub, request, 64)
    }

    /// The revision of this member's replica (no read-index round).
    pub fn local_revision(&self) -> u64 {
        self.inner.shared.state().counters.revision
    }

    pub async fn lease_grant(&self, ttl_secs: i64, id: Option<LeaseId>) -> Result<(LeaseId, i64)> {
        let id = id
            .filter(|i| *i != 0)
            .unwrap_or_else(|| (rand::random::<u64>() >> 1).max(1) as i64);
        let resp = self
            .write(Request::new(Op::LeaseGrant { id, ttl_secs }))
            .await?;
        match resp.result {
            Ok(Outcome::LeaseGranted { id, ttl_secs }) => Ok((id, ttl_secs)),
            Ok(other) => Err(Error::Storage(format!("unexpected outcome {other:?}"))),
            Err(e) => Err(Error::Apply(e)),
        }
    }

    pub async fn lease_revoke(&self, id: LeaseId) -> Result<u64> {
        let resp = self
            .write(Request::new(Op::LeaseRevoke { ids: vec![id] }))
            .await?;
        match resp.result {
            Ok(_) => Ok(resp.revision),
            Err(e) => Err(Error::Apply(e)),
        }
    }

    /// Renews a lease on the leader; returns its TTL.
    pub async fn lease_keep_alive(&self, id: LeaseId) -> Result<i64> {
        let deadline = Instant::now() + self.inner.config.request_timeout;
        loop {
            match self.current_leader() {
                Some(l) if l == self.member_id() => {
                    return self
                        .inner
                        .shared
                        .with_leases(|c| c.keep_alive(id, Instant::now()))
                        .ok_or(Error::Apply(ApplyError::LeaseNotFound(id)));
                }
                Some(l) => {
                    if let Some(ch) = self.inner.peers.channel(l) {
                        let mut client = AdminClient::new(ch);
                        let call = client.lease_keep_alive(LeaseKeepAliveForward { id });
                        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), call).await
                        {
                            let r = r.into_inner();
                            return if r.found {
                                Ok(r.ttl)
                            } else {
                                Err(Error::Apply(ApplyError::LeaseNotFound(id)))
                            };
                        }
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

    /// Compacts history before `revision` (replicated).
    pub async fn compact(&self, revision: u64) -> Result<u64> {
        let resp = self.write(Request::new(Op::Compact { revision })).await?;
        match resp.result {
            Ok(Outcome::Compacted { compact_revision }) => Ok(compact_revision),
            Ok(other) => Err(Error::Storage(format!("unexpected outcome {other:?}"))),
            Err(e) => Err(Error::Apply(e)),
        }
    }

    /// Writes a backup of this member's replica (one consistent view) to `path`; `progress`
    /// is called with the number of records written.
    pub async fn backup_to(
        &self,
        path: &std::path::Path,
        progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<crate::snapshot::Header> {
        let db = self.inner.db.clone();
        let path = path.to_path_buf();
        let cluster_id = self.cluster_id().to_string();
        let started = Instant::now();
        let header = tokio::task::spawn_blocking(move || {
            crate::snapshot::build(
                &db,
                &path,
                &cluster_id,
                |last| {
                    let (term, index) = last.map_or((0, 0), |l| (l.leader_id.term, l.index));
                    format!("backup-{term}-{index}")
                },
                progress,
            )
        })
        .await
        .map_err(|e| Error::Storage(format!("backup task failed: {e}")))?
        .map_err(|e| Error::Storage(format!("writing the backup: {e}")))?;
        self.inner
            .metrics
            .snapshot_build
            .observe(started.elapsed().as_secs_f64());
        Ok(header)
    }

    pub fn status(&self) -> Status {
        let m = self.inner.raft.metrics().borrow().clone();
        let st = self.inner.shared.state();
        let is_learner = !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.member_id());
        Status {
            member_id: self.member_id(),
            name: self.name().to_string(),
            cluster_id: self.cluster_id().to_string(),
            leader: m.current_leader,
            term: m.current_term,
            is_learner,
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            commit_index: m.last_log_index.unwrap_or(0),
            revision: st.counters.revision,
            compact_revision: st.counters.compact_revision,
            db_size: self.inner.db.approximate_size(),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            purged_index: m.purged.map(|l| l.index).unwrap_or(0),
        }
    }

    /// Stops the member: Raft first, then background tasks (the gRPC server stops with them).
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }

    pub fn shutdown_signal(&self) -> tokio_watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }
}

/// What an unsafe early acknowledgement claims: every comparison held, every operation done.
fn unsafe_success(txn: &Txn, revision: u64) -> Response {
    let responses = txn
        .success
        .iter()
        .map(|op| match op {
            TxnOp::Put { .. } => crate::types::OpResult::Put { prev_kv: None },
            TxnOp::Delete { .. } => crate::types::OpResult::Delete {
                deleted: 1,
                prev_kvs: Vec::new(),
            },
            TxnOp::Range { .. } => crate::types::OpResult::Range {
                kvs: Vec::new(),
                more: false,
            },
        })
        .collect();
    Response {
        revision,
        result: Ok(Outcome::Txn(TxnResult {
            succeeded: true,
            responses,
        })),
    }
}

pub(crate) enum Forward {
    /// Certainly not proposed: safe to retry.
    Retry,
    Failed(Error),
}

/// What a failed forward means for the write. Only a refusal the leader itself sent (not
/// leader, shutting down) or a connection that was never made proves the write was not
/// proposed; every other failure leaves its fate unknown.
fn classify_forward_failure(status: &tonic::Status) -> Forward {
    if status.message().starts_with("Service was not ready")
        || status.code() == tonic::Code::FailedPrecondition
    {
        return Forward::Retry;
    }
    match postcard::from_bytes::<Error>(status.details()) {
        Ok(Error::NoLeader | Error::Shutdown) => Forward::Retry,
        Ok(e) => Forward::Failed(e),
        Err(_) => Forward::Failed(Error::OutcomeUnknown(format!(
            "{}: {}",
            status.code(),
            status.message()
        ))),
    }
}
