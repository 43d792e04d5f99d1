//! Read-index batching for linearizable reads.
//!
//! Every read that arrives while no confirmation round is running joins the next round; one
//! round (the leader confirming its leadership with a quorum, or a follower asking the leader)
//! serves them all. A read is only served by a round that started after the read arrived, so
//! it sees every write committed before it began.

use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::pb::raft::ReadIndexRequest;
use crate::pb::raft::admin_client::AdminClient;
use crate::peers::Peers;
use crate::raft_types::Raft;
use crate::types::MemberId;

type Waiter = oneshot::Sender<Result<u64>>;

#[derive(Clone)]
pub struct ReadIndex {
    tx: mpsc::UnboundedSender<Waiter>,
}

impl ReadIndex {
    pub fn start(raft: Raft, peers: Peers, me: MemberId, round_timeout: Duration) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(more) = rx.try_recv() {
                    waiters.push(more);
                }
                let result =
                    match tokio::time::timeout(round_timeout, round(&raft, &peers, me)).await {
                        Ok(r) => r,
                        Err(_) => Err(Error::Timeout(round_timeout)),
                    };
                for w in waiters {
                    let _ = w.send(result.clone());
                }
            }
        });
        ReadIndex { tx }
    }

    /// The log index a linearizable read must wait for.
    pub async fn read_index(&self, timeout: Duration) -> Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(tx).map_err(|_| Error::Shutdown)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Shutdown),
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }
}

/// One confirmation round, retried across leader changes until it succeeds.
async fn round(raft: &Raft, peers: &Peers, me: MemberId) -> Result<u64> {
    let mut metrics = raft.metrics();
    loop {
        let leader = metrics.borrow_and_update().current_leader;
        match leader {
            Some(l) if l == me => match raft.ensure_linearizable().await {
                Ok(read_log_id) => return Ok(read_log_id.map(|l| l.index).unwrap_or(0)),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {}
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {}
                Err(RaftError::Fatal(_)) => return Err(Error::Shutdown),
            },
            Some(l) => {
                if let Some(ch) = peers.channel(l) {
                    let mut client = AdminClient::new(ch);
                    // Asking is idempotent: when another election starts (the leader was cut
                    // off and may never answer), ask the next leader instead.
                    let mut changes = metrics.clone();
                    let deposed = async move {
                        if changes
                            .wait_for(|m| m.current_leader != Some(l))
                            .await
                            .is_err()
                        {
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        biased;
                        answer = client.read_index(ReadIndexRequest {}) => match answer {
                            Ok(r) => return Ok(r.into_inner().index),
                            Err(status) => {
                                tracing::debug!("read index from leader {l} failed: {status}");
                            }
                        },
                        () = deposed => {
                            tracing::debug!("leader {l} changed while asking it for a read index");
                        }
                    }
                }
            }
            None => {}
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), metrics.changed()).await;
    }
}
