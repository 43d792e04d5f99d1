//! The Raft service: hands replication messages from other members to openraft.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use super::auth::{Role, require};
use crate::pb::raft::Envelope;
use crate::pb::raft::raft_server::Raft;
use crate::store::Store;

pub struct RaftService {
    pub store: Store,
}

fn decode<T: DeserializeOwned>(e: &Envelope) -> Result<T, Status> {
    postcard::from_bytes(&e.data)
        .map_err(|err| Status::invalid_argument(format!("undecodable raft message: {err}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Response<Envelope>, Status> {
    postcard::to_stdvec(v)
        .map(|data| Response::new(Envelope { data }))
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<Envelope>,
    ) -> Result<Response<Envelope>, Status> {
        require(&request, Role::Member)?;
        let rpc = decode(request.get_ref())?;
        encode(&self.store.raft().append_entries(rpc).await)
    }

    /// Votes go only to candidates in this member's configuration: a member dropped by
    /// `force-new-cluster` or `cluster remove` that comes back cannot win an election here.
    async fn vote(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let cn = require(&request, Role::Member)?;
        let name = cn.strip_prefix("member:").unwrap_or(&cn);
        let members = self.store.members();
        if !members.is_empty() && !members.iter().any(|m| m.name == name) {
            return Err(Status::permission_denied(format!(
                "{name} is not a member of this cluster's configuration; wipe its data directory and join again with a token"
            )));
        }
        let rpc = decode(request.get_ref())?;
        encode(&self.store.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<Envelope>,
    ) -> Result<Response<Envelope>, Status> {
        require(&request, Role::Member)?;
        let rpc = decode(request.get_ref())?;
        encode(&self.store.raft().install_snapshot(rpc).await)
    }
}
