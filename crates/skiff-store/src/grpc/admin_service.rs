//! The Admin service: joining, membership, leader transfer, and member-to-member helpers
//! (write forwarding, read index, lease keep-alive forwarding).

use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use super::auth::{Role, require};
use crate::cluster::MemberInfo;
use crate::error::Error;
use crate::pb::raft::admin_server::Admin;
use crate::pb::raft::*;
use crate::store::Store;
use crate::tls::JoinToken;
use crate::types::Request as StoreRequest;

pub struct AdminService {
    pub store: Store,
}

fn member_info(m: &MemberInfo) -> crate::pb::raft::MemberInfo {
    crate::pb::raft::MemberInfo {
        id: m.id,
        name: m.name.clone(),
        addr: m.addr.clone(),
        voter: m.voter,
        leader: m.leader,
        matched_index: m.matched_index.unwrap_or(0),
        has_matched: m.matched_index.is_some(),
    }
}

fn not_leader() -> Status {
    Status::failed_precondition("this member is not the leader")
}

type BackupChunks =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<BackupChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Admin for AdminService {
    type BackupStream = BackupChunks;

    /// Builds a backup file from a consistent view of this member's replica, then streams it.
    async fn backup(
        &self,
        request: Request<BackupRequest>,
    ) -> Result<Response<BackupChunks>, Status> {
        require(&request, Role::Store)?;
        // At least as fresh as every write acknowledged before the call.
        self.store
            .linearizable_barrier()
            .await
            .map_err(|e| e.to_status())?;
        let dir = crate::identity::DataDir::new(&self.store.config().data_dir).snapshots();
        let path = dir.join(format!("stream-{:016x}.backup", rand::random::<u64>()));
        let header = self
            .store
            .backup_to(&path, |_| {})
            .await
            .map_err(|e| e.to_status())?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Status::internal(format!("opening the backup: {e}")));
        // The open handle keeps the data readable; the name goes now.
        let _ = tokio::fs::remove_file(&path).await;
        let mut file = file?;
        let total_bytes = file
            .metadata()
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .len();
        let revision = header.counters.revision;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut first = true;
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let n = match file.read(&mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                };
                if n == 0 && !first {
                    return;
                }
                buf.truncate(n);
                let chunk = BackupChunk {
                    total_bytes,
                    revision,
                    data: buf,
                };
                first = false;
                if tx.send(Ok(chunk)).await.is_err() || n == 0 {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let req = request.into_inner();
        let presented =
            JoinToken::parse(&req.token).map_err(|e| Status::unauthenticated(e.to_string()))?;
        let ours = &self.store.inner.token;
        if presented.ca_sha256 != ours.ca_sha256 || !ours.secret_matches(&presented) {
            return Err(Status::unauthenticated(
                "the join token is not this cluster's; use the token `skiff server --init` printed (or <data-dir>/token)",
            ));
        }
        if req.addr.is_empty() {
            return Err(Status::invalid_argument(
                "the joining member's address is empty",
            ));
        }
        if let Some(mut leader) = self.store.leader_admin().await.map_err(|e| e.to_status())? {
            return leader.join(req).await;
        }
        let id = self
            .store
            .join_on_leader(&req.name, &req.addr)
            .await
            .map_err(|e| e.to_status())?;
        let ca = self.store.ca();
        Ok(Response::new(JoinResponse {
            cluster_id: self.store.cluster_id().to_string(),
            member_id: id,
            ca_cert_pem: ca.cert_pem.clone(),
            ca_key_pem: ca.key_pem.clone(),
            members: self.store.members().iter().map(member_info).collect(),
            cluster_files: crate::identity::DataDir::new(&self.store.config().data_dir)
                .load_cluster_files()
                .map_err(|e| Status::internal(e.to_string()))?
                .into_iter()
                .collect(),
        }))
    }

    async fn members(
        &self,
        request: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        require(&request, Role::Store)?;
        // The leader knows how far each member has replicated: ask it when it is elsewhere.
        if !self.store.is_leader()
            && let Ok(Some(mut leader)) = self.store.leader_admin().await
            && let Ok(r) = leader.members(MembersRequest {}).await
        {
            return Ok(r);
        }
        let status = self.store.status();
        Ok(Response::new(MembersResponse {
            members: self.store.members().iter().map(member_info).collect(),
            leader_id: status.leader.unwrap_or(0),
            term: status.term,
            cluster_id: status.cluster_id,
            changing: self.store.configuration_changing(),
        }))
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<RemoveMemberResponse>, Status> {
        require(&request, Role::Store)?;
        let members = self
            .store
            .remove_member(&request.get_ref().name)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(RemoveMemberResponse {
            members: members.iter().map(member_info).collect(),
        }))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        require(&request, Role::Store)?;
        let (leader_id, term) = self
            .store
            .transfer_leader(&request.get_ref().name)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(TransferLeaderResponse { leader_id, term }))
    }

    async fn update_address(
        &self,
        request: Request<UpdateAddressRequest>,
    ) -> Result<Response<UpdateAddressResponse>, Status> {
        require(&request, Role::Member)?;
        let req = request.into_inner();
        if let Some(mut leader) = self.store.leader_admin().await.map_err(|e| e.to_status())? {
            return leader.update_address(req).await;
        }
        self.store
            .update_address_on_leader(req.id, &req.name, &req.addr)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(UpdateAddressResponse {}))
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardResponse>, Status> {
        require(&request, Role::Member)?;
        if !self.store.is_leader() {
            return Err(not_leader());
        }
        let req: StoreRequest = postcard::from_bytes(&request.get_ref().request)
            .map_err(|e| Status::invalid_argument(format!("undecodable request: {e}")))?;
        let deadline = Instant::now() + self.store.config().request_timeout;
        match self.store.propose_local(req, deadline).await {
            Ok(Some(resp)) => {
                let bytes =
                    postcard::to_stdvec(&resp).map_err(|e| Status::internal(e.to_string()))?;
                Ok(Response::new(ForwardResponse { response: bytes }))
            }
            Ok(None) => Err(not_leader()),
            Err(e) => Err(e.to_status()),
        }
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        require(&request, Role::Member)?;
        if !self.store.is_leader() {
            return Err(not_leader());
        }
        let index = self
            .store
            .inner
            .reads
            .read_index(self.store.config().request_timeout)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn pause_election(
        &self,
        request: Request<PauseElectionRequest>,
    ) -> Result<Response<PauseElectionResponse>, Status> {
        require(&request, Role::Member)?;
        let millis = request.get_ref().millis.min(60_000);
        self.store.pause_elections(Duration::from_millis(millis));
        Ok(Response::new(PauseElectionResponse {}))
    }

    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        require(&request, Role::Member)?;
        let millis = request.get_ref().millis.min(60_000);
        let (elected, term) = self
            .store
            .campaign(Duration::from_millis(millis))
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(CampaignResponse { elected, term }))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<LeaseKeepAliveForward>,
    ) -> Result<Response<LeaseKeepAliveForwardResponse>, Status> {
        require(&request, Role::Member)?;
        if !self.store.is_leader() {
            return Err(not_leader());
        }
        let id = request.get_ref().id;
        match self.store.lease_keep_alive(id).await {
            Ok(ttl) => Ok(Response::new(LeaseKeepAliveForwardResponse {
                ttl,
                found: true,
            })),
            Err(Error::Apply(crate::types::ApplyError::LeaseNotFound(_))) => {
                Ok(Response::new(LeaseKeepAliveForwardResponse {
                    ttl: 0,
                    found: false,
                }))
            }
            Err(e) => Err(e.to_status()),
        }
    }
}
