//! Group commit on the leader: writes proposed while earlier ones are still committing wait
//! in a queue and go out together as one log entry (`Op::Batch`).
//!
//! Every entry costs one synced apply on every member (the applied state is durable before
//! openraft learns of it, DESIGN.md §2.1), and openraft 0.9 applies what commits as it
//! commits, so without batching N concurrent writes cost N synced applies in a row. With it,
//! at most [`IN_FLIGHT`] entries are being committed at a time and whatever arrives meanwhile
//! shares the next one. A write that finds nothing in flight is proposed at once, alone and
//! unwrapped, so a lone client waits no longer than before.
//!
//! Semantics are those of one entry per request: each request of a batch is applied in order
//! with its own revision, its own fence check and its own response (apply.rs). A batch commits
//! or is lost as a whole, which each request's caller sees exactly as for a lone entry.
//!
//! `take_batch` is the decision (pure); `Batcher` is the task around it.

use std::collections::VecDeque;
use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::{Error, Result};
use crate::metrics::StoreMetrics;
use crate::raft_types::Raft;
use crate::types::{Member, MemberId, Op, Outcome, Request, Response, TxnOp};

/// Log entries being committed at once (more arrive while they are).
pub const IN_FLIGHT: usize = 2;
/// Requests in one entry at most.
pub const MAX_REQUESTS: usize = 256;

/// What a proposer learns: `Ok(None)` means the request was not proposed (this member is not,
/// or no longer, the leader) and may be retried elsewhere.
pub type Reply = Result<Option<Response>>;

struct Pending {
    request: Request,
    bytes: usize,
    reply: oneshot::Sender<Reply>,
}

/// The size a request adds to an entry, roughly (keys and values dominate).
pub fn approx_bytes(request: &Request) -> usize {
    const OVERHEAD: usize = 32;
    match &request.op {
        Op::Txn(txn) => {
            let compares: usize = txn
                .compares
                .iter()
                .map(|c| {
                    let value = match &c.target {
                        crate::types::CompareTarget::Value(v) => v.len(),
                        _ => 0,
                    };
                    c.key.len() + value + OVERHEAD
                })
                .sum();
            let ops: usize = txn
                .success
                .iter()
                .chain(&txn.failure)
                .map(|op| match op {
                    TxnOp::Put { key, value, .. } => key.len() + value.len() + OVERHEAD,
                    TxnOp::Delete { key, range_end, .. } | TxnOp::Range { key, range_end, .. } => {
                        key.len() + range_end.len() + OVERHEAD
                    }
                })
                .sum();
            compares + ops + OVERHEAD
        }
        Op::LeaseRevoke { ids } => ids.len() * 8 + OVERHEAD,
        Op::RegisterMember { name } => name.len() + OVERHEAD,
        Op::Batch(requests) => requests.iter().map(approx_bytes).sum::<usize>() + OVERHEAD,
        Op::Compact { .. } | Op::LeaseGrant { .. } | Op::Noop => OVERHEAD,
    }
}

/// Takes the next entry's requests from the front of `queue` (items are `(bytes, item)`): in
/// order, at most `max_count` and `max_bytes`, but always at least one, so a request as large
/// as the limit still goes out (alone).
pub fn take_batch<T>(
    queue: &mut VecDeque<(usize, T)>,
    max_count: usize,
    max_bytes: usize,
) -> Vec<T> {
    let mut out = Vec::new();
    let mut bytes = 0;
    while let Some((b, _)) = queue.front() {
        if !out.is_empty() && (out.len() >= max_count || bytes + b > max_bytes) {
            break;
        }
        bytes += b;
        if let Some((_, item)) = queue.pop_front() {
            out.push(item);
        }
    }
    out
}

/// The queue in front of `client_write`; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Batcher {
    /// Starts the batching task; it ends when every `Batcher` clone is dropped.
    pub fn start(raft: Raft, max_bytes: usize, metrics: StoreMetrics) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, rx, max_bytes, metrics));
        Batcher { tx }
    }

    /// Queues `request` and returns where its answer will come. A caller that stops waiting
    /// (its deadline passed) drops the receiver, and a request still queued then is never
    /// proposed.
    pub fn propose(&self, request: Request) -> oneshot::Receiver<Reply> {
        let (reply, rx) = oneshot::channel();
        let bytes = approx_bytes(&request);
        if let Err(mpsc::error::SendError(p)) = self.tx.send(Pending {
            request,
            bytes,
            reply,
        }) {
            let _ = p.reply.send(Err(Error::Shutdown));
        }
        rx
    }
}

async fn run(
    raft: Raft,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    max_bytes: usize,
    metrics: StoreMetrics,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut queue: VecDeque<(usize, Pending)> = VecDeque::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if queue.is_empty() {
            match rx.recv().await {
                Some(p) => queue.push_back((p.bytes, p)),
                None => return,
            }
        }
        while let Ok(p) = rx.try_recv() {
            queue.push_back((p.bytes, p));
        }
        queue.retain(|(_, p)| !p.reply.is_closed());
        let batch = take_batch(&mut queue, MAX_REQUESTS, max_bytes);
        if batch.is_empty() {
            continue;
        }
        metrics.proposal_batch.observe(batch.len() as f64);
        let raft = raft.clone();
        tokio::spawn(async move {
            commit(&raft, batch).await;
            drop(slot);
        });
    }
}

/// Proposes one entry for `batch` and answers every request of it.
async fn commit(raft: &Raft, mut batch: Vec<Pending>) {
    if batch.len() == 1
        && let Some(p) = batch.pop()
    {
        let answer = raft.client_write(p.request).await;
        let _ = p.reply.send(answer_of(answer.map(|r| r.data)));
        return;
    }
    let (requests, replies): (Vec<Request>, Vec<oneshot::Sender<Reply>>) =
        batch.into_iter().map(|p| (p.request, p.reply)).unzip();
    let n = requests.len();
    let answer = raft.client_write(Request::new(Op::Batch(requests))).await;
    match answer {
        Ok(resp) => {
            let resp = resp.data;
            match resp.result {
                Ok(Outcome::Batch(responses)) if responses.len() == n => {
                    for (reply, r) in replies.into_iter().zip(responses) {
                        let _ = reply.send(Ok(Some(r)));
                    }
                }
                // Apply answers a batch with one response per request; anything else is a
                // refusal of the whole entry, which every request shares.
                Ok(other) => {
                    for reply in replies {
                        let _ = reply.send(Err(Error::Storage(format!(
                            "a batch of {n} writes was answered with {other:?}"
                        ))));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Ok(Some(Response {
                            revision: resp.revision,
                            result: Err(e.clone()),
                        })));
                    }
                }
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(answer_of(Err(e.clone())));
            }
        }
    }
}

type WriteError = RaftError<MemberId, ClientWriteError<MemberId, Member>>;

fn answer_of(answer: std::result::Result<Response, WriteError>) -> Reply {
    match answer {
        Ok(resp) => Ok(Some(resp)),
        // openraft answers ForwardToLeader only for entries never proposed or truncated.
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Ok(None),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(Error::Membership(e.to_string()))
        }
        Err(RaftError::Fatal(_)) => Err(Error::Shutdown),
    }
}

#[cfg(test)]
mod tests;
