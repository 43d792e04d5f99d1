//! The KV service: the store's etcd-like API for tools and tests.
//!
//! Malformed requests are refused with `InvalidArgument` naming the field; nothing is written.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{Role, require};
use crate::pb::Invalid;
use crate::pb::kv::kv_server::Kv;
use crate::pb::kv::*;
use crate::store::Store;
use crate::types::{self, key_range};
use crate::{range, watch};

pub struct KvService {
    pub store: Store,
}

impl KvService {
    fn header(&self, revision: u64) -> Option<Header> {
        let status = self.store.status();
        Some(Header {
            revision,
            member_id: status.member_id,
            raft_term: status.term,
        })
    }
}

fn invalid(e: Invalid) -> Status {
    Status::invalid_argument(e.0)
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        require(&request, Role::Store)?;
        let r = request.into_inner();
        if r.key.is_empty() {
            return Err(Status::invalid_argument("range.key is empty"));
        }
        let req = range::Request {
            key: r.key,
            range_end: r.range_end,
            limit: r.limit,
            revision: r.revision,
            count: r.count,
            keys_only: r.keys_only,
        };
        let resp = self
            .store
            .range(req, r.serializable)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(RangeResponse {
            header: self.header(resp.revision),
            kvs: resp.kvs.into_iter().map(Into::into).collect(),
            more: resp.more,
            count: resp.count,
        }))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        require(&request, Role::Store)?;
        let r = request.into_inner();
        let fence = (r.fence_term != 0).then_some(r.fence_term);
        let txn = types::Txn::try_from(r).map_err(invalid)?;
        let (revision, result) = self
            .store
            .txn(txn, fence)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(TxnResponse {
            header: self.header(revision),
            succeeded: result.succeeded,
            responses: result.responses.into_iter().map(Into::into).collect(),
        }))
    }

    async fn compact(
        &self,
        request: Request<CompactRequest>,
    ) -> Result<Response<CompactResponse>, Status> {
        require(&request, Role::Store)?;
        let compact_revision = self
            .store
            .compact(request.get_ref().revision)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(CompactResponse {
            header: self.header(self.store.local_revision()),
            compact_revision,
        }))
    }

    type WatchStream = BoxStream<WatchResponse>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        require(&request, Role::Store)?;
        let mut input = request.into_inner();
        let first = match input.next().await {
            Some(Ok(WatchRequest {
                request: Some(watch_request::Request::Create(c)),
            })) => c,
            Some(Ok(_)) => {
                return Err(Status::invalid_argument(
                    "the first watch message must be a create request",
                ));
            }
            Some(Err(e)) => return Err(e),
            None => {
                return Err(Status::invalid_argument(
                    "the watch stream ended before a create request",
                ));
            }
        };
        if first.key.is_empty() {
            return Err(Status::invalid_argument("watch.key is empty"));
        }
        let (start, end) = key_range(&first.key, &first.range_end);
        let mut watcher = self.store.watch(watch::Request {
            start,
            end,
            start_revision: first.start_revision,
            prev_kv: first.prev_kv,
            progress_interval: (first.progress_notify_ms > 0)
                .then(|| Duration::from_millis(first.progress_notify_ms)),
        });
        let progress = watcher.progress_handle();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = input.next().await {
                if let Some(watch_request::Request::Progress(true)) = msg.request {
                    let _ = progress.try_send(());
                }
            }
        });
        let status = self.store.status();
        let (member_id, raft_term) = (status.member_id, status.term);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(item) = watcher.next().await {
                let msg = match item {
                    Ok(resp) => WatchResponse {
                        header: Some(Header {
                            revision: resp.revision,
                            member_id,
                            raft_term,
                        }),
                        events: resp.events.into_iter().map(Into::into).collect(),
                        progress: resp.progress,
                        ..WatchResponse::default()
                    },
                    Err(e) => {
                        let compact_revision = match &e {
                            watch::Error::Compacted { compact_revision } => *compact_revision,
                            _ => 0,
                        };
                        let end = WatchResponse {
                            header: Some(Header {
                                revision: 0,
                                member_id,
                                raft_term,
                            }),
                            canceled: true,
                            cancel_reason: e.to_string(),
                            compact_revision,
                            ..WatchResponse::default()
                        };
                        let _ = tx.send(Ok(end)).await;
                        return;
                    }
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        require(&request, Role::Store)?;
        let r = request.into_inner();
        let (id, ttl) = self
            .store
            .lease_grant(r.ttl, Some(r.id))
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(LeaseGrantResponse {
            header: self.header(self.store.local_revision()),
            id,
            ttl,
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        require(&request, Role::Store)?;
        let revision = self
            .store
            .lease_revoke(request.get_ref().id)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(LeaseRevokeResponse {
            header: self.header(revision),
        }))
    }

    type LeaseKeepAliveStream = BoxStream<LeaseKeepAliveResponse>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        require(&request, Role::Store)?;
        let mut input = request.into_inner();
        let store = self.store.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(Ok(req)) = input.next().await {
                let reply = match store.lease_keep_alive(req.id).await {
                    Ok(ttl) => Ok(LeaseKeepAliveResponse {
                        header: None,
                        id: req.id,
                        ttl,
                    }),
                    Err(e) => Err(e.to_status()),
                };
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        require(&request, Role::Store)?;
        let s = self.store.status();
        Ok(Response::new(StatusResponse {
            header: self.header(s.revision),
            leader_id: s.leader.unwrap_or(0),
            name: s.name,
            applied_index: s.applied_index,
            commit_index: s.commit_index,
            compact_revision: s.compact_revision,
            db_size: s.db_size,
            is_learner: s.is_learner,
            cluster_id: s.cluster_id,
            snapshot_index: s.snapshot_index,
            purged_index: s.purged_index,
            raft_term: s.term,
        }))
    }
}
